#include "worker/executor_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string_view>
#include <vector>

#include "common/fd_io.h"

namespace gridexp {
namespace {

constexpr int kChildCommandFd = 3;
constexpr std::chrono::milliseconds kExitGrace{2000};
constexpr std::chrono::milliseconds kDrainGrace{1000};
constexpr int kChildEventFd = 4;

// Reads `fd` to its end, calling `on_line` for each line (a last unterminated one included).
// Gives up once `give_up()` says so while no data arrives: a grandchild that inherited the
// write end may keep the pipe open long after the executor is gone.
// `busy` is true from the moment data is readable until its lines were handed out, so that
// ExecutorProcess::drain_output can tell "nothing left to read" from "being read".
void for_each_line(int fd, const std::function<void(std::string_view)>& on_line,
                   const std::function<bool()>& give_up, std::atomic<bool>& busy,
                   std::atomic<bool>& finished) {
  LineFramer framer;
  char buffer[8192];
  while (true) {
    pollfd readable{fd, POLLIN, 0};
    int ready = ::poll(&readable, 1, 100);
    if (ready < 0 && errno == EINTR) continue;
    if (ready == 0) {
      if (give_up()) break;
      continue;
    }
    busy = true;
    ssize_t count = ::read(fd, buffer, sizeof buffer);
    if (count < 0 && errno == EINTR) {
      busy = false;
      continue;
    }
    if (count <= 0) break;
    framer.feed(std::string_view(buffer, static_cast<std::size_t>(count)), on_line);
    busy = false;
  }
  framer.finish(on_line);
  finished = true;
  busy = false;
  ::close(fd);
}

// The worker's environment minus what must not reach the user's code (the server's password
// and where it is kept), with the launch's own variables in place of the worker's.
std::vector<std::string> executor_environment(const ExecutorLaunch& launch) {
  static constexpr std::string_view kWithheld[] = {"GRIDEXP_PASSWORD=", "GRIDEXP_PASSWORD_FILE="};
  std::vector<std::string> environment;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    std::string_view variable(*entry);
    bool withheld = false;
    for (std::string_view prefix : kWithheld) withheld = withheld || variable.starts_with(prefix);
    for (const auto& [name, value] : launch.environment) {
      withheld = withheld || variable.starts_with(name + "=");
    }
    if (!withheld) environment.emplace_back(variable);
  }
  for (const auto& [name, value] : launch.environment) environment.push_back(name + "=" + value);
  return environment;
}

struct Pipe {
  int read = -1;
  int write = -1;
};

struct ChildPipes {
  Pipe command, event, out, err;
};

void close_pipes(ChildPipes& pipes) {
  for (Pipe* pipe : {&pipes.command, &pipes.event, &pipes.out, &pipes.err}) {
    for (int* fd : {&pipe->read, &pipe->write}) {
      if (*fd >= 0) ::close(*fd);
      *fd = -1;
    }
  }
}

Status open_pipes(ChildPipes& pipes) {
  for (Pipe* pipe : {&pipes.command, &pipes.event, &pipes.out, &pipes.err}) {
    int ends[2];
    if (::pipe2(ends, O_CLOEXEC) != 0) {
      Status failed = Status::io_error(std::string("cannot create pipes: ") + std::strerror(errno));
      close_pipes(pipes);
      return failed;
    }
    *pipe = Pipe{ends[0], ends[1]};
  }
  return Status::ok();
}

// What the child's execve needs.
struct ExecPlan {
  std::string executable;
  std::string workdir;
  std::vector<std::string> arguments;
  std::vector<std::string> environment;
};

// Pointers into `strings`, null-terminated, as execve takes them.
std::vector<char*> c_strings(std::vector<std::string>& strings) {
  std::vector<char*> pointers;
  for (std::string& text : strings) pointers.push_back(text.data());
  pointers.push_back(nullptr);
  return pointers;
}

// In the forked child: only async-signal-safe calls until exec.
[[noreturn]] void become_executor(const ChildPipes& pipes, const ExecPlan& plan, char** argv,
                                  char** envp, pid_t parent) {
  ::setpgid(0, 0);
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(127);  // the supervisor died before prctl took effect
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);  // the supervisor blocks SIGINT/SIGTERM
  int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  ::dup2(null_fd, 0);
  ::dup2(pipes.out.write, 1);
  ::dup2(pipes.err.write, 2);
  // dup2 clears close-on-exec on the new descriptors; order avoids clobbering.
  int command_read = ::fcntl(pipes.command.read, F_DUPFD_CLOEXEC, 10);
  int event_write = ::fcntl(pipes.event.write, F_DUPFD_CLOEXEC, 10);
  ::dup2(command_read, kChildCommandFd);
  ::dup2(event_write, kChildEventFd);
  // Whatever else the supervisor inherited or opened stays out of the user's code.
  ::close_range(kChildEventFd + 1, ~0U, 0);
  if (::chdir(plan.workdir.c_str()) != 0) ::_exit(126);
  ::execve(plan.executable.c_str(), argv, envp);
  ::_exit(127);
}

std::string signal_name(int number) {
  const char* description = ::sigabbrev_np(number);
  return description ? std::string("SIG") + description : "signal " + std::to_string(number);
}

}  // namespace

Result<std::unique_ptr<ExecutorProcess>> ExecutorProcess::spawn(const ExecutorLaunch& launch) {
  ChildPipes pipes;
  if (Status opened = open_pipes(pipes); !opened) return opened;
  // Built before fork: the child may only make async-signal-safe calls.
  ExecPlan plan{
      launch.executable.string(), launch.workdir.string(), {}, executor_environment(launch)};
  plan.arguments = {plan.executable, "--command-fd", std::to_string(kChildCommandFd), "--event-fd",
                    std::to_string(kChildEventFd)};
  std::vector<char*> argv = c_strings(plan.arguments);
  std::vector<char*> envp = c_strings(plan.environment);
  pid_t parent = ::getpid();

  pid_t pid = ::fork();
  if (pid < 0) {
    Status failed = Status::io_error(std::string("cannot fork: ") + std::strerror(errno));
    close_pipes(pipes);
    return failed;
  }
  if (pid == 0) become_executor(pipes, plan, argv.data(), envp.data(), parent);
  ::close(pipes.command.read);
  ::close(pipes.event.write);
  ::close(pipes.out.write);
  ::close(pipes.err.write);

  std::unique_ptr<ExecutorProcess> process(new ExecutorProcess());
  process->pid_ = pid;
  process->command_fd_ = pipes.command.write;
  process->on_output_ = launch.on_output;
  process->start_readers(pipes.event.read, pipes.out.read, pipes.err.read);
  return process;
}

Result<std::unique_ptr<ExecutorChannel>> ExecutorProcess::spawn_channel(
    const ExecutorLaunch& launch) {
  Result<std::unique_ptr<ExecutorProcess>> spawned = spawn(launch);
  if (!spawned) return spawned.status();
  return std::unique_ptr<ExecutorChannel>(std::move(spawned).value());
}

void ExecutorProcess::start_readers(int event_fd, int stdout_fd, int stderr_fd) {
  stdout_stream_.fd = stdout_fd;
  stderr_stream_.fd = stderr_fd;
  event_reader_ = std::thread([this, event_fd] { read_events(event_fd); });
  stdout_reader_ = std::thread([this, stdout_fd] { read_output(stdout_fd, false); });
  stderr_reader_ = std::thread([this, stderr_fd] { read_output(stderr_fd, true); });
}

ExecutorProcess::~ExecutorProcess() {
  if (command_fd_ >= 0) ::close(command_fd_);
  // End of commands asks the executor to exit on its own (running experiment.py's atexit
  // handlers); it gets a moment before it is killed.
  auto deadline = std::chrono::steady_clock::now() + kExitGrace;
  while (!reap(false) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (!reap(false)) kill_now();
  // Grandchildren (e.g. DataLoader workers) may hold the pipes open: kill the whole group,
  // and stop reading soon even if a process outside it still holds them.
  ::kill(-pid_, SIGKILL);
  stop_reading_at_ = std::chrono::steady_clock::now() + kDrainGrace;
  if (event_reader_.joinable()) event_reader_.join();
  if (stdout_reader_.joinable()) stdout_reader_.join();
  if (stderr_reader_.joinable()) stderr_reader_.join();
}

bool ExecutorProcess::reading_should_stop() const {
  return std::chrono::steady_clock::now() >= stop_reading_at_.load();
}

void ExecutorProcess::read_events(int fd) {
  for_each_line(
      fd,
      [this](std::string_view line) {
        Result<ExecutorEvent> event = decode_event(line);
        std::lock_guard lock(mutex_);
        events_.push_back(std::move(event));
        event_ready_.notify_all();
      },
      [this] { return reading_should_stop(); }, events_stream_.busy, events_stream_.finished);
  std::lock_guard lock(mutex_);
  events_closed_ = true;
  event_ready_.notify_all();
}

void ExecutorProcess::read_output(int fd, bool is_stderr) {
  Stream& stream = is_stderr ? stderr_stream_ : stdout_stream_;
  for_each_line(
      fd,
      [this, is_stderr](std::string_view line) {
        if (on_output_) on_output_(std::string(line), is_stderr);
      },
      [this] { return reading_should_stop(); }, stream.busy, stream.finished);
}

void ExecutorProcess::drain_output(std::chrono::milliseconds max_wait) {
  auto deadline = std::chrono::steady_clock::now() + max_wait;
  auto drained = [](const Stream& stream) {
    if (stream.finished) return true;
    int unread = 0;
    return !stream.busy && ::ioctl(stream.fd, FIONREAD, &unread) == 0 && unread == 0;
  };
  while (!(drained(stdout_stream_) && drained(stderr_stream_)) &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

Status ExecutorProcess::send(const ExecutorCommand& command) {
  if (!write_all(command_fd_, encode_command(command))) {
    return Status::io_error("the executor is gone: " + exit_description());
  }
  return Status::ok();
}

bool ExecutorProcess::reap(bool wait) {
  std::lock_guard lock(mutex_);
  if (exited_) return true;
  int status = 0;
  pid_t result = ::waitpid(pid_, &status, wait ? 0 : WNOHANG);
  if (result != pid_) return false;
  exited_ = true;
  wait_status_ = status;
  exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  event_ready_.notify_all();
  return true;
}

bool ExecutorProcess::has_exited() { return reap(false); }

std::optional<Result<ExecutorEvent>> ExecutorProcess::next_event(
    std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    {
      std::unique_lock lock(mutex_);
      if (!events_.empty()) {
        Result<ExecutorEvent> event = std::move(events_.front());
        events_.pop_front();
        return event;
      }
      if (exited_ && events_closed_) return std::nullopt;
      // A grandchild may keep the event pipe open after the executor died: poll for death.
      auto slice =
          std::min(deadline, std::chrono::steady_clock::now() + std::chrono::milliseconds(50));
      event_ready_.wait_until(lock, slice, [this] { return !events_.empty() || events_closed_; });
      if (!events_.empty()) continue;
    }
    if (reap(false)) {
      // Give the reader a moment to deliver what the child wrote just before it died.
      std::unique_lock lock(mutex_);
      event_ready_.wait_for(lock, std::chrono::milliseconds(200),
                            [this] { return !events_.empty() || events_closed_; });
      if (!events_.empty()) continue;
      return std::nullopt;
    }
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
  }
}

std::optional<int> ExecutorProcess::exit_signal() const {
  if (!exited_ || !WIFSIGNALED(wait_status_)) return std::nullopt;
  return WTERMSIG(wait_status_);
}

std::string ExecutorProcess::exit_description() const {
  if (!exited_) return "still running";
  if (WIFEXITED(wait_status_))
    return "exited with status " + std::to_string(WEXITSTATUS(wait_status_));
  int number = WTERMSIG(wait_status_);
  std::string text =
      "killed by signal " + std::to_string(number) + " (" + signal_name(number) + ")";
  if (number == SIGKILL) text += " — possibly out of memory";
  if (number == SIGSEGV || number == SIGBUS) text += " — a crash in native code";
  if (WCOREDUMP(wait_status_)) text += ", core dumped";
  return text;
}

void ExecutorProcess::interrupt_then_kill(std::chrono::milliseconds grace) {
  if (reap(false)) return;
  ::kill(pid_, SIGINT);
  auto deadline = std::chrono::steady_clock::now() + grace;
  while (std::chrono::steady_clock::now() < deadline) {
    if (reap(false)) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  kill_now();
}

void ExecutorProcess::kill_now() {
  ::kill(-pid_, SIGKILL);
  ::kill(pid_, SIGKILL);
  reap(true);
}

}  // namespace gridexp
