// CommandReader: the thread that reads the command pipe and splits it into commands.
#include "executor/command_reader.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "common/fd_io.h"
#include "executor/signal_free_thread.h"

namespace gridexp {

CommandReader::CommandReader(int fd, StopHandler on_stop) : fd_(fd), on_stop_(std::move(on_stop)) {
  if (::pipe2(wake_pipe_, O_CLOEXEC) != 0) {
    enqueue(ProtocolError{std::string("cannot create a pipe: ") + std::strerror(errno)});
    return;
  }
  thread_ = start_signal_free_thread([this] { read_until_end(); });
}

CommandReader::~CommandReader() {
  if (thread_.joinable()) {
    // Nothing to do when the wake-up fails: the pipe is ours and empty, so it cannot.
    ignore_outcome(write_all(wake_pipe_[1], std::string_view("\0", 1)));
    thread_.join();
  }
  for (int fd : wake_pipe_) {
    if (fd >= 0) ::close(fd);
  }
}

std::optional<Command> CommandReader::next(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  if (!command_ready_.wait_for(lock, timeout, [this] { return !queue_.empty(); })) {
    return std::nullopt;
  }
  Command command = std::move(queue_.front());
  queue_.pop_front();
  return command;
}

void CommandReader::read_until_end() {
  LineFramer framer;
  auto dispatch_line = [this](std::string_view line) { dispatch(line); };
  char buffer[65536];
  while (true) {
    pollfd watched[2] = {{fd_, POLLIN, 0}, {wake_pipe_[0], POLLIN, 0}};
    if (::poll(watched, 2, -1) < 0) {
      if (errno == EINTR) continue;
      enqueue(ProtocolError{std::string("cannot wait for commands: ") + std::strerror(errno)});
      return;
    }
    if (watched[1].revents != 0) return;  // the executor is shutting down
    ssize_t count = ::read(fd_, buffer, sizeof buffer);
    if (count < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (count < 0) {
      enqueue(ProtocolError{std::string("cannot read commands: ") + std::strerror(errno)});
      return;
    }
    if (count == 0) break;
    framer.feed(std::string_view(buffer, static_cast<std::size_t>(count)), dispatch_line);
  }
  framer.finish(dispatch_line);
  enqueue(EndOfCommands{});
}

void CommandReader::dispatch(std::string_view line) {
  if (line.find_first_not_of(" \t\r") == std::string_view::npos) return;
  Command command = parse_command(line);
  if (auto* stop = std::get_if<StopCommand>(&command)) {
    on_stop_(*stop);
  } else {
    enqueue(std::move(command));
  }
}

void CommandReader::enqueue(Command command) {
  {
    std::lock_guard lock(mutex_);
    queue_.push_back(std::move(command));
  }
  command_ready_.notify_one();
}

}  // namespace gridexp
