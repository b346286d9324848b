// ExecutorSession: starting an executor, and its conversation and output during a trial.
#include "worker/executor_session.h"

#include <utility>
#include <variant>

namespace gridexp {
namespace {

// "experiment.py:12: " for a fatal event that knows where, else "".
std::string where_prefix(const CodeLocation& location) {
  if (!location.file) return "";
  std::string where = *location.file;
  if (location.line) where += ":" + std::to_string(*location.line);
  return where + ": ";
}

}  // namespace

ExecutorSession::ExecutorSession(ExecutorSpawner spawn, ExecutorLaunch launch, Progress& progress,
                                 std::chrono::milliseconds event_poll)
    : spawn_(std::move(spawn)),
      launch_(std::move(launch)),
      progress_(progress),
      event_poll_(event_poll) {
  launch_.on_output = [this](const std::string& line, bool /*is_stderr*/) { on_output(line); };
}

ExecutorSession::~ExecutorSession() { channel_.reset(); }

void ExecutorSession::on_output(const std::string& line) {
  std::lock_guard lock(output_mutex_);
  if (output_link_ != nullptr) output_link_->push_log_line(line);
  progress_.output_line(output_trial_id_, line);
}

void ExecutorSession::route_output(const std::string& trial_id, TrialLink* link) {
  std::lock_guard lock(output_mutex_);
  output_trial_id_ = trial_id;
  output_link_ = link;
}

Status ExecutorSession::start(const StartCommand& start, const std::atomic<bool>& interrupted,
                              std::chrono::milliseconds interrupt_grace) {
  Result<std::unique_ptr<ExecutorChannel>> spawned = spawn_(launch_);
  if (!spawned) return spawned.status();
  channel_ = std::move(spawned).value();
  Status sent = channel_->send(start);
  Status ready = await_ready(interrupted, interrupt_grace);
  if (!ready && ready.code() == Code::kIoError && !sent) {
    return Status::io_error(ready.message() + " (" + sent.message() + ")");
  }
  return ready;
}

Status ExecutorSession::await_ready(const std::atomic<bool>& interrupted,
                                    std::chrono::milliseconds grace) {
  while (true) {
    if (interrupted) {
      interrupt_then_kill(grace);
      return Status::unavailable("interrupted while experiment.py was starting");
    }
    std::optional<Result<ExecutorEvent>> event = channel_->next_event(event_poll_);
    if (event && *event && std::holds_alternative<ReadyEvent>(**event)) return Status::ok();
    if (event && *event) {
      if (const auto* fatal = std::get_if<FatalEvent>(&**event)) {
        if (!fatal->traceback.empty()) progress_.output_line("", fatal->traceback);
        channel_.reset();
        return Status::invalid_argument(where_prefix(fatal->location) + fatal->error);
      }
    }
    if (event) continue;
    if (channel_->has_exited()) {
      std::string cause = channel_->exit_description();
      channel_.reset();
      return Status::io_error("the executor " + cause + " while starting experiment.py");
    }
  }
}

std::optional<std::string> ExecutorSession::take_exit_if_dead() {
  if (!channel_ || !channel_->has_exited()) return std::nullopt;
  std::string cause = channel_->exit_description();
  channel_.reset();
  return cause;
}

Status ExecutorSession::run(const RunCommand& command, TrialLink* link) {
  // Before the run command: the trial's first printed line may arrive before send() returns.
  route_output(command.trial_id, link);
  Status sent = channel_->send(command);
  if (!sent) {
    route_output("", nullptr);
    channel_.reset();
  }
  return sent;
}

Status ExecutorSession::stop(const std::string& trial_id, std::optional<StopReason> reason) {
  return channel_->send(StopCommand{trial_id, reason});
}

std::optional<Result<ExecutorEvent>> ExecutorSession::next_event(
    std::chrono::milliseconds timeout) {
  return channel_->next_event(timeout);
}

bool ExecutorSession::has_exited() { return channel_->has_exited(); }

std::string ExecutorSession::exit_description() const { return channel_->exit_description(); }

std::optional<int> ExecutorSession::exit_signal() const { return channel_->exit_signal(); }

void ExecutorSession::end_trial_output(std::chrono::milliseconds drain) {
  if (channel_) channel_->drain_output(drain);
  route_output("", nullptr);
}

void ExecutorSession::interrupt_then_kill(std::chrono::milliseconds grace) {
  channel_->interrupt_then_kill(grace);
  channel_.reset();
}

void ExecutorSession::kill_now() {
  channel_->kill_now();
  channel_.reset();
}

void ExecutorSession::forget_dead_executor() { channel_.reset(); }

}  // namespace gridexp
