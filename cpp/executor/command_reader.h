// CommandReader: reads the supervisor's JSON-line commands on a thread of its own, so that a
// `stop` takes effect while run_one runs on the main thread.
//
// A stop command goes straight to the stop handler (on the reader thread); every other
// command, a malformed line (ProtocolError) and the end of the pipe (EndOfCommands, always
// last) are queued in order for next(). next() is for one consumer thread; the destructor
// stops the reader even while it waits in read(). Python is never touched here.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "executor/protocol.h"

namespace gridexp {

class CommandReader {
 public:
  using StopHandler = std::function<void(const StopCommand& stop)>;

  // Does not take ownership of fd. Starts reading at once.
  CommandReader(int fd, StopHandler on_stop);
  ~CommandReader();
  CommandReader(const CommandReader&) = delete;
  CommandReader& operator=(const CommandReader&) = delete;

  // The next queued command, waiting at most `timeout`; empty when none came in time.
  std::optional<Command> next(std::chrono::milliseconds timeout);

 private:
  void read_until_end();
  void dispatch(std::string_view line);
  void enqueue(Command command);

  const int fd_;
  const StopHandler on_stop_;
  int wake_pipe_[2] = {-1, -1};  // a byte on it ends the reader's wait
  std::mutex mutex_;
  std::condition_variable command_ready_;
  std::deque<Command> queue_;
  std::thread thread_;
};

}  // namespace gridexp
