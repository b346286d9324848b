// The worker's core without torch, Python or a server: ClaimLoop, WorkerSlot, TrialRunner,
// ExecutorSession and Delivery against a fake ServerApi and a scripted executor (an
// ExecutorChannel that answers commands as a script says). Covers a trial that succeeds,
// fails, ends its executor, has its executor killed by a signal (requeued, not failed), hangs
// past its stop grace, loses its lease, runs out of GPU memory beside another slot's trial
// (gpu_share.h), and a server that answers 5xx before it recovers; a model upload that
// overlaps the next trial (BackgroundDelivery, over a fake server of its own whose PUT the test
// holds), the loop's end waiting for it, and a model the server refuses. Checkpoints: a saved
// one uploaded with its headers before a failure is delivered, the latest-only upload queue,
// a download verified before the run, and the preemption by a stop signal (stop with reason
// preempted, the grace, the kill after it, /preempt and its fallback to /release).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/sha256.h"
#include "test_support.h"
#include "worker/background_delivery.h"
#include "worker/checkpoint_uploads.h"
#include "worker/claim_loop.h"
#include "worker/delivery.h"
#include "worker/outbox.h"
#include "worker/worker_exit.h"
#include "worker/worker_slot.h"

namespace gridexp {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

// What the scripted executor does with a run command.
// kExit: the executor exits with a status of its own; kKilled: a signal kills it (kill -9).
// kSucceedWithModel: as kSucceed, with a model file (<model_dir>/<trial>.pt) to upload.
enum class Script {
  kSucceed,
  kSucceedWithModel,
  kFail,
  kExit,
  kKilled,
  kHang,
  kStopWhenAsked,
  kOutOfMemoryOnce,
  kCheckpointThenFail,  // saves a checkpoint (step 5), then fails
  kStopObserved,        // a stop: run_one returns early, having seen should_stop()
  kStopUnobserved,      // a stop: run_one returns its full results (it never polled)
};

// What happened, in order, across the slot's thread and the delivery thread.
class Timeline {
 public:
  void add(std::string event) {
    std::lock_guard lock(mutex_);
    events_.push_back(std::move(event));
  }
  std::vector<std::string> events() const {
    std::lock_guard lock(mutex_);
    return events_;
  }
  // The position of `event`, or -1.
  long position(const std::string& event) const {
    std::lock_guard lock(mutex_);
    auto found = std::find(events_.begin(), events_.end(), event);
    return found == events_.end() ? -1 : found - events_.begin();
  }

 private:
  mutable std::mutex mutex_;
  std::vector<std::string> events_;
};

// Holds every caller of wait() from close() until open().
class Gate {
 public:
  void close() {
    std::lock_guard lock(mutex_);
    open_ = false;
  }
  void open() {
    std::lock_guard lock(mutex_);
    open_ = true;
    opened_.notify_all();
  }
  void wait() {
    std::unique_lock lock(mutex_);
    opened_.wait(lock, [this] { return open_; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable opened_;
  bool open_ = true;
};

struct ExecutorLog {
  Script script = Script::kSucceed;
  int spawned = 0;
  int killed = 0;
  std::vector<std::string> commands;  // "start", "run t1", "stop t1"
  std::atomic<int> runs{0};
  std::filesystem::path model_dir;  // kSucceedWithModel
  Timeline* timeline = nullptr;
  std::function<void(const std::string& trial_id)> before_run;
  std::optional<RunCommand> last_run;
  std::vector<ExecutorEvent> events_at_run;  // sent at a run, before the script's
  std::vector<std::string> stop_reasons;     // "preempted", "cancelled", "lease lost", "none"
};

class ScriptedExecutor final : public ExecutorChannel {
 public:
  explicit ScriptedExecutor(ExecutorLog& log) : log_(log) {}

  Status send(const ExecutorCommand& command) override {
    if (exited_) return Status::io_error("the executor is gone");
    if (std::holds_alternative<StartCommand>(command)) {
      log_.commands.push_back("start");
      events_.push_back(ExecutorEvent(ReadyEvent{}));
    } else if (const auto* run = std::get_if<RunCommand>(&command)) {
      if (log_.before_run) log_.before_run(run->trial_id);
      log_.last_run = *run;
      log_.commands.push_back("run " + run->trial_id);
      if (log_.timeline != nullptr) log_.timeline->add("run " + run->trial_id);
      ++log_.runs;
      for (ExecutorEvent& event : log_.events_at_run) events_.push_back(std::move(event));
      log_.events_at_run.clear();
      on_run(run->trial_id);
    } else {
      const auto& stop = std::get<StopCommand>(command);
      log_.commands.push_back("stop " + stop.trial_id);
      log_.stop_reasons.push_back(stop.reason ? stop_reason_name(*stop.reason) : "none");
      if (log_.script == Script::kStopWhenAsked) {
        events_.push_back(ExecutorEvent(FailedEvent{stop.trial_id, "KeyboardInterrupt", ""}));
      }
      if (log_.script == Script::kStopObserved || log_.script == Script::kStopUnobserved) {
        ResultEvent result{stop.trial_id, {{"acc", 0.5}}, std::nullopt};
        result.stop_observed = log_.script == Script::kStopObserved;
        events_.push_back(ExecutorEvent(result));
      }
    }
    return Status::ok();
  }
  std::optional<Result<ExecutorEvent>> next_event(milliseconds) override {
    if (events_.empty()) return std::nullopt;
    Result<ExecutorEvent> event = std::move(events_.front());
    events_.pop_front();
    return event;
  }
  bool has_exited() override { return exited_; }
  std::string exit_description() const override {
    if (!exited_) return "still running";
    return signal_ ? "killed by signal " + std::to_string(*signal_) : "exited with status 1";
  }
  std::optional<int> exit_signal() const override { return signal_; }
  void drain_output(milliseconds) override {}
  void interrupt_then_kill(milliseconds) override { kill_now(); }
  void kill_now() override {
    ++log_.killed;
    exited_ = true;
    signal_ = 9;
  }
  pid_t pid() const override { return -1; }

 private:
  void on_run(const std::string& trial_id) {
    switch (log_.script) {
      case Script::kSucceed:
        events_.push_back(ExecutorEvent(MetricsEvent{trial_id, 1, 10, {{"loss", 0.5}}}));
        events_.push_back(Status::invalid_argument("not an event"));  // logged, ignored
        events_.push_back(ExecutorEvent(ResultEvent{trial_id, {{"acc", 0.9}}, std::nullopt}));
        break;
      case Script::kSucceedWithModel: {
        std::filesystem::path model = log_.model_dir / (trial_id + ".pt");
        std::ofstream(model) << "weights of " << trial_id;
        events_.push_back(ExecutorEvent(ResultEvent{trial_id, {{"acc", 0.9}}, model.string()}));
        break;
      }
      case Script::kFail:
        events_.push_back(
            ExecutorEvent(FailedEvent{trial_id, "ValueError: bad batch", "Traceback"}));
        break;
      case Script::kExit:
        exited_ = true;
        break;
      case Script::kKilled:
        exited_ = true;
        signal_ = 9;
        break;
      case Script::kOutOfMemoryOnce: {
        FailedEvent failed{trial_id, "torch.OutOfMemoryError: CUDA out of memory", "Traceback"};
        failed.out_of_memory = true;
        events_.push_back(log_.runs == 1 ? ExecutorEvent(failed)
                                         : ExecutorEvent(ResultEvent{trial_id, {}, std::nullopt}));
        break;
      }
      case Script::kCheckpointThenFail: {
        // As python/gridexp does: the file complete in the staging directory, then the event.
        std::filesystem::path staging =
            std::filesystem::path(log_.last_run->checkpoint_dir).parent_path();
        std::filesystem::path saved = staging / ".saving-1.ckpt";
        std::ofstream(saved) << "state of " << trial_id;
        events_.push_back(
            ExecutorEvent(CheckpointEvent{trial_id, saved.string(), CheckpointKind::kObject, 5}));
        events_.push_back(ExecutorEvent(FailedEvent{trial_id, "ValueError: diverged", ""}));
        break;
      }
      case Script::kHang:
      case Script::kStopWhenAsked:
      case Script::kStopObserved:
      case Script::kStopUnobserved:
        break;
    }
  }

  ExecutorLog& log_;
  std::deque<Result<ExecutorEvent>> events_;
  bool exited_ = false;
  std::optional<int> signal_;
};

struct LinkFlags {
  std::atomic<bool> lease_lost{false};
  std::atomic<bool> stop_requested{false};
  std::atomic<int> metrics{0};
  std::atomic<int> flushed{0};  // links flush on the slot's thread and the delivery thread
  std::mutex log_mutex;
  std::vector<std::string> log_lines;  // guarded by log_mutex

  std::string log() {
    std::lock_guard lock(log_mutex);
    std::string text;
    for (const std::string& line : log_lines) text += line + "\n";
    return text;
  }
};

class FakeLink final : public TrialLink {
 public:
  explicit FakeLink(LinkFlags& flags) : flags_(flags) {}
  void push_metrics(json) override { ++flags_.metrics; }
  void push_log_line(const std::string& line) override {
    std::lock_guard lock(flags_.log_mutex);
    flags_.log_lines.push_back(line);
  }
  bool lease_lost() const override { return flags_.lease_lost; }
  bool stop_requested() const override { return flags_.stop_requested; }
  void flush_and_stop() override { ++flags_.flushed; }

 private:
  LinkFlags& flags_;
};

// Answers claims from a queue (then "the grid is finished"), every other call with {}.
class FakeServer final : public ServerApi {
 public:
  Result<json> get_json(const std::string& path) override { return answer("GET", path, {}); }
  Result<json> post_json(const std::string& path, const json& body) override {
    return answer("POST", path, body);
  }
  Result<json> post_json_text(const std::string& path, const std::string& text) override {
    return answer("POST", path, json::parse(text));
  }
  Result<json> put_file(const std::string& path, const std::filesystem::path& file,
                        const HttpHeaders& headers) override {
    if (timeline != nullptr) timeline->add("PUT " + path);
    {
      std::ifstream in(file, std::ios::binary);
      std::lock_guard lock(mutex);
      put_bodies.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
      put_headers.push_back(headers);
    }
    put_gate.wait();
    if (refuse_puts) return Status::too_large("HTTP 413: over --max-upload-mb");
    if (uploads_fail) return Status::unavailable("connection refused");
    if (timeline != nullptr) timeline->add("PUT returned " + path);
    if (!refused_model.empty() && path.ends_with("/" + refused_model + "/model")) {
      calls.emplace_back("PUT " + path, json::object());
      return Status::too_large("HTTP 413: the model is over --max-upload-mb");
    }
    return answer("PUT", path, {});
  }
  Result<HttpHeaders> get_file(const std::string& path, const HttpHeaders& headers,
                               const std::filesystem::path& destination) override {
    calls.emplace_back("GET " + path, json{{"lease_token", headers.at(0).second}});
    if (timeline != nullptr) timeline->add("GET " + path);
    auto file = files.find(path);
    if (file == files.end()) return Status::not_found("GET " + path + ": no checkpoint");
    std::ofstream(destination, std::ios::binary) << file->second;
    return HttpHeaders{};
  }
  std::unique_ptr<TrialLink> start_heartbeat(const std::string&, const std::string&,
                                             milliseconds) override {
    return std::make_unique<FakeLink>(link);
  }

  std::deque<Result<json>> claim_answers;
  std::string lost_state = "pending";               // what a report of a lost executor answers
  std::vector<std::pair<std::string, json>> calls;  // "POST /path", body
  LinkFlags link;
  Timeline* timeline = nullptr;              // set: PUTs and POSTs are added to it
  Gate put_gate;                             // holds PUTs while closed
  std::string refused_model;                 // a trial whose model PUT is answered 413
  std::atomic<bool> uploads_fail{false};     // every PUT: the server is unreachable
  std::atomic<bool> refuse_puts{false};      // every PUT: 413
  bool without_preempt = false;              // /preempt: 404, as from a server before it
  std::map<std::string, std::string> files;  // what GET <path> (get_file) answers
  std::mutex mutex;
  std::vector<std::string> put_bodies;   // guarded by mutex
  std::vector<HttpHeaders> put_headers;  // guarded by mutex

  // The bodies sent to paths ending in `suffix`.
  std::vector<json> sent_to(const std::string& suffix) const {
    std::vector<json> bodies;
    for (const auto& [call, body] : calls) {
      if (call.ends_with(suffix)) bodies.push_back(body);
    }
    return bodies;
  }

 private:
  Result<json> answer(const std::string& method, const std::string& path, const json& body) {
    calls.emplace_back(method + " " + path, body);
    if (timeline != nullptr) timeline->add(method + " " + path);
    if (path.ends_with("/lost")) return json{{"ok", true}, {"state", lost_state}};
    if (path.ends_with("/preempt")) {
      if (without_preempt) return Status::not_found("POST " + path + ": HTTP 404");
      return json{{"ok", true}, {"state", "pending"}};
    }
    if (!path.ends_with("/claim")) return json::object();
    if (claim_answers.empty()) return json{{"trial", nullptr}, {"pending", 0}, {"running", 0}};
    Result<json> next = std::move(claim_answers.front());
    claim_answers.pop_front();
    return next;
  }
};

json claimed_trial(const std::string& id) {
  return {{"trial",
           {{"id", id},
            {"lease_token", "lease-" + id},
            {"attempt", 1},
            {"experiment", "demo"},
            {"hyperparameters", {{"lr", 0.1}}}}},
          {"pending", 1},
          {"running", 0}};
}

class WorkerCore : public ::testing::Test {
 protected:
  WorkerCore() : outbox_(dir_.path() / "outbox", default_file_system()) {
    EXPECT_TRUE(outbox_.prepare());
    log_.model_dir = dir_.path();
    log_.timeline = &timeline_;
    server_.timeline = &timeline_;
    upload_server_.timeline = &timeline_;
    checkpoint_server_.timeline = &timeline_;
    retry_.first_delay = milliseconds(1);
    retry_.max_delay = milliseconds(1);
    retry_.sleep = [this](milliseconds) { return ++retry_sleeps_ < 100; };
  }

  // Runs the claim loop over one slot until it ends; returns the exit status.
  int run_worker(bool raise_on_failure = true, std::shared_ptr<ClaimQuota> quota = nullptr) {
    Delivery delivery(server_, outbox_, default_file_system(), retry_, progress_);
    Delivery upload_delivery(upload_server_, outbox_, default_file_system(), retry_, progress_);
    BackgroundDelivery uploads(upload_delivery, progress_);
    CheckpointUploads checkpoint_uploads(checkpoint_server_, retry_, progress_);
    SlotSetup setup;
    setup.uploads = &uploads;
    setup.checkpoint_staging = dir_.path() / "staging";
    setup.checkpoint_uploads = &checkpoint_uploads;
    setup.preempt_reason = [] { return std::string("SIGTERM"); };
    setup.stop_policy.preempt_grace = preempt_grace_;
    setup.stop_policy.kill_now = &kill_now_;
    setup.spawn = [this](const ExecutorLaunch&) -> Result<std::unique_ptr<ExecutorChannel>> {
      ++log_.spawned;
      return std::unique_ptr<ExecutorChannel>(std::make_unique<ScriptedExecutor>(log_));
    };
    setup.start = StartCommand{json::object(), true, false, ""};
    setup.stop_policy.event_poll = milliseconds(1);
    setup.stop_policy.interrupt_grace = milliseconds(1);
    setup.stop_policy.stop_grace = milliseconds(20);
    setup.stop_policy.output_drain = milliseconds(0);
    setup.gpu_seat = seat_;
    WorkerSlot slot(std::move(setup), server_, delivery, retry_, progress_, interrupted_);
    int claims = 0;
    ClaimSettings settings{"w1",
                           std::move(quota),
                           milliseconds(1),
                           raise_on_failure,
                           [](milliseconds) { return true; },
                           [&claims] { return "claim-" + std::to_string(++claims); },
                           seat_};
    ClaimLoop loop(std::move(settings), server_, slot, retry_, progress_, interrupted_);
    int exit_status = loop.run();
    timeline_.add("loop ended");
    return exit_status;
  }

  testing::TempDir dir_;
  Outbox outbox_;
  RetryPolicy retry_;
  int retry_sleeps_ = 0;
  Timeline timeline_;
  FakeServer server_;
  FakeServer upload_server_;      // the BackgroundDelivery's own
  FakeServer checkpoint_server_;  // the CheckpointUploads' own
  milliseconds preempt_grace_{2000};
  std::atomic<bool> kill_now_{false};
  ExecutorLog log_;
  Progress progress_{stderr};
  std::atomic<bool> interrupted_{false};
  GpuSeat seat_;  // set: the slot shares its GPU
};

TEST_F(WorkerCore, ATrialThatSucceedsIsCompletedAndTheWorkerEndsWithTheGrid) {
  server_.claim_answers.push_back(claimed_trial("t1"));
  EXPECT_EQ(run_worker(), kWorkerExitOk);
  std::vector<json> completed = server_.sent_to("/trials/t1/complete");
  ASSERT_EQ(completed.size(), 1u);
  EXPECT_EQ(completed[0]["lease_token"], "lease-t1");
  EXPECT_EQ(completed[0]["results"]["acc"], 0.9);
  EXPECT_EQ(completed[0]["next_claim_id"], "claim-2");
  EXPECT_EQ(server_.link.metrics.load(), 1);
  EXPECT_GE(server_.link.flushed.load(), 1);
  EXPECT_EQ(log_.commands, (std::vector<std::string>{"start", "run t1"}));
  Result<std::vector<FinishedTrial>> kept = outbox_.pending();
  ASSERT_TRUE(kept);
  EXPECT_TRUE(kept->empty()) << "delivered outcomes leave the outbox";
}

TEST_F(WorkerCore, ATrialThatFailsIsFailedAndStopsTheWorkerUnderRaiseOnFailure) {
  log_.script = Script::kFail;
  server_.claim_answers.push_back(claimed_trial("t1"));
  EXPECT_EQ(run_worker(), kWorkerExitFailed);
  std::vector<json> failed = server_.sent_to("/trials/t1/fail");
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(failed[0]["error"], "ValueError: bad batch");
  EXPECT_EQ(failed[0]["traceback"], "Traceback");
}

TEST_F(WorkerCore, AnExecutorThatExitsFailsItsTrialAndIsReplaced) {
  log_.script = Script::kExit;
  server_.claim_answers.push_back(claimed_trial("t1"));
  server_.claim_answers.push_back(claimed_trial("t2"));
  EXPECT_EQ(run_worker(/*raise_on_failure=*/false), kWorkerExitOk);
  std::vector<json> failed = server_.sent_to("/trials/t1/fail");
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(failed[0]["error"], "the executor running experiment.py exited with status 1");
  EXPECT_EQ(server_.sent_to("/trials/t2/fail").size(), 1u);
  EXPECT_TRUE(server_.sent_to("/lost").empty()) << "an exit of its own is the trial's failure";
  EXPECT_EQ(log_.spawned, 3) << "a new executor after each crash, before the next claim";
}

TEST_F(WorkerCore, AnExecutorKilledBySignalLosesTheAttemptAndTheTrialIsRequeued) {
  log_.script = Script::kKilled;
  server_.claim_answers.push_back(claimed_trial("t1"));
  server_.claim_answers.push_back(claimed_trial("t2"));
  EXPECT_EQ(run_worker(/*raise_on_failure=*/true), kWorkerExitOk)
      << "a lost executor is not the trial's failure: --raise_on_failure does not stop";
  std::vector<json> lost = server_.sent_to("/trials/t1/lost");
  ASSERT_EQ(lost.size(), 1u);
  EXPECT_EQ(lost[0]["lease_token"], "lease-t1");
  EXPECT_EQ(lost[0]["reason"], "the executor running experiment.py killed by signal 9");
  EXPECT_EQ(server_.sent_to("/trials/t2/lost").size(), 1u);
  EXPECT_TRUE(server_.sent_to("/fail").empty());
  EXPECT_TRUE(server_.sent_to("/release").empty()) << "the attempt counts: not a release";
  EXPECT_EQ(log_.spawned, 3) << "a new executor after each loss, before the next claim";
}

TEST_F(WorkerCore, ALostExecutorWhoseTrialUsedUpItsAttemptsStopsTheWorkerUnderRaiseOnFailure) {
  log_.script = Script::kKilled;
  server_.lost_state = "failed";
  server_.claim_answers.push_back(claimed_trial("t1"));
  server_.claim_answers.push_back(claimed_trial("t2"));
  EXPECT_EQ(run_worker(/*raise_on_failure=*/true), kWorkerExitFailed);
  EXPECT_EQ(server_.sent_to("/trials/t1/lost").size(), 1u);
  EXPECT_EQ(log_.commands, (std::vector<std::string>{"start", "run t1"}));
}

TEST_F(WorkerCore, ACancelledTrialThatHangsPastTheStopGraceIsKilledAndFailed) {
  log_.script = Script::kHang;
  server_.link.stop_requested = true;
  server_.claim_answers.push_back(claimed_trial("t1"));
  EXPECT_EQ(run_worker(), kWorkerExitOk) << "a cancelled trial is not a failure";
  // The killed executor is replaced before the next claim.
  EXPECT_EQ(log_.commands, (std::vector<std::string>{"start", "run t1", "stop t1", "start"}));
  EXPECT_EQ(log_.killed, 1);
  std::vector<json> failed = server_.sent_to("/trials/t1/fail");
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_TRUE(failed[0]["error"].get<std::string>().starts_with("cancelled; run_one did not stop"));
}

TEST_F(WorkerCore, ALeaseLostMidTrialStopsTheTrialAndDeliversNothing) {
  log_.script = Script::kStopWhenAsked;
  server_.link.lease_lost = true;
  server_.claim_answers.push_back(claimed_trial("t1"));
  EXPECT_EQ(run_worker(), kWorkerExitOk);
  EXPECT_EQ(log_.commands, (std::vector<std::string>{"start", "run t1", "stop t1"}));
  EXPECT_EQ(log_.killed, 0) << "it stopped within the grace";
  EXPECT_TRUE(server_.sent_to("/trials/t1/fail").empty());
  EXPECT_TRUE(server_.sent_to("/trials/t1/complete").empty());
}

TEST_F(WorkerCore, AServerThatAnswers5xxIsRetriedUntilItRecovers) {
  server_.claim_answers.push_back(Status::unavailable("HTTP 503"));
  server_.claim_answers.push_back(Status::unavailable("HTTP 502"));
  server_.claim_answers.push_back(claimed_trial("t1"));
  EXPECT_EQ(run_worker(), kWorkerExitOk);
  EXPECT_EQ(retry_sleeps_, 2);
  std::vector<json> claims = server_.sent_to("/workers/w1/claim");
  ASSERT_GE(claims.size(), 3u);
  EXPECT_EQ(claims[0]["claim_id"], claims[2]["claim_id"]) << "a retried claim keeps its id";
  EXPECT_EQ(server_.sent_to("/trials/t1/complete").size(), 1u);
}

TEST(ClaimQuotaTest, MaxTrialsCountsEveryTakeUntilGivenBack) {
  ClaimQuota quota(2);
  EXPECT_TRUE(quota.take());
  EXPECT_TRUE(quota.may_take());
  EXPECT_TRUE(quota.take());
  EXPECT_FALSE(quota.may_take());
  EXPECT_FALSE(quota.take());
  quota.give_back();
  EXPECT_TRUE(quota.take());
  EXPECT_EQ(quota.taken(), 2);
}

TEST(ClaimQuotaTest, AnEndedRunTakesNoMore) {
  ClaimQuota quota;
  EXPECT_TRUE(quota.take());
  quota.end_run();
  EXPECT_TRUE(quota.run_ended());
  EXPECT_FALSE(quota.may_take());
  EXPECT_FALSE(quota.take());
}

TEST_F(WorkerCore, ASharedQuotaStopsTheLoopAtMaxTrials) {
  server_.claim_answers.push_back(claimed_trial("t1"));
  server_.claim_answers.push_back(claimed_trial("t2"));
  server_.claim_answers.push_back(claimed_trial("t3"));
  auto quota = std::make_shared<ClaimQuota>(3);
  ASSERT_TRUE(quota->take()) << "another slot's trial";
  EXPECT_EQ(run_worker(true, quota), kWorkerExitOk);
  EXPECT_EQ(log_.commands, (std::vector<std::string>{"start", "run t1", "run t2"}));
  std::vector<json> last = server_.sent_to("/trials/t2/complete");
  ASSERT_EQ(last.size(), 1u);
  EXPECT_FALSE(last[0].contains("next_claim_id")) << "no next trial claimed past the quota";
  EXPECT_EQ(quota->taken(), 3);
}

TEST_F(WorkerCore, ALoopWhoseRunWasEndedElsewhereClaimsNothing) {
  server_.claim_answers.push_back(claimed_trial("t1"));
  auto quota = std::make_shared<ClaimQuota>();
  quota->end_run();
  EXPECT_EQ(run_worker(true, quota), kWorkerExitOk);
  EXPECT_TRUE(server_.sent_to("/workers/w1/claim").empty());
  EXPECT_EQ(log_.commands, (std::vector<std::string>{}));
}

TEST_F(WorkerCore, AFailureUnderRaiseOnFailureEndsTheRunForEverySlot) {
  log_.script = Script::kFail;
  server_.claim_answers.push_back(claimed_trial("t1"));
  auto quota = std::make_shared<ClaimQuota>();
  EXPECT_EQ(run_worker(true, quota), kWorkerExitFailed);
  EXPECT_TRUE(quota->run_ended());
}

// Once the first run has failed: whether the rerun has waited (it has not come yet), then
// `then()`, as another slot would.
std::jthread after_the_first_run(const ExecutorLog& log, std::atomic<bool>& waited,
                                 std::function<void()> then) {
  return std::jthread([&log, &waited, then = std::move(then)] {
    while (log.runs < 1) std::this_thread::sleep_for(milliseconds(1));
    std::this_thread::sleep_for(milliseconds(50));
    waited = log.runs == 1;
    then();
  });
}

TEST_F(WorkerCore, OutOfMemoryBesideASiblingRunsAgainAloneOnceItEndsAndDoesNotFail) {
  log_.script = Script::kOutOfMemoryOnce;
  seat_ = {std::make_shared<GpuShare>(GpuShare::Mode::kFixed, 2, GpuShare::MemoryReader{}), 0};
  ASSERT_TRUE(seat_.share->try_start(1)) << "another slot's trial runs";
  server_.claim_answers.push_back(claimed_trial("t1"));
  std::atomic<bool> waited{false};
  {
    std::jthread sibling = after_the_first_run(log_, waited, [this] { seat_.share->finish(1); });
    EXPECT_EQ(run_worker(), kWorkerExitOk);
  }
  EXPECT_TRUE(waited) << "the rerun waited for the sibling's trial to end";
  EXPECT_EQ(log_.commands, (std::vector<std::string>{"start", "run t1", "run t1"}));
  EXPECT_TRUE(server_.sent_to("/trials/t1/fail").empty());
  std::vector<json> completed = server_.sent_to("/trials/t1/complete");
  ASSERT_EQ(completed.size(), 1u);
  EXPECT_EQ(completed[0]["lease_token"], "lease-t1") << "the same lease";
  EXPECT_EQ(seat_.share->running(), 0) << "the turn was given back";
}

TEST_F(WorkerCore, OutOfMemoryOfATrialThatRanAloneIsAnOrdinaryFailure) {
  log_.script = Script::kOutOfMemoryOnce;
  seat_ = {std::make_shared<GpuShare>(GpuShare::Mode::kFixed, 2, GpuShare::MemoryReader{}), 0};
  server_.claim_answers.push_back(claimed_trial("t1"));
  EXPECT_EQ(run_worker(), kWorkerExitFailed);
  EXPECT_EQ(log_.commands, (std::vector<std::string>{"start", "run t1"}));
  std::vector<json> failed = server_.sent_to("/trials/t1/fail");
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(failed[0]["error"], "torch.OutOfMemoryError: CUDA out of memory");
}

TEST_F(WorkerCore, ALeaseLostWhileWaitingToRunAloneEndsTheTrialAsALostLease) {
  log_.script = Script::kOutOfMemoryOnce;
  seat_ = {std::make_shared<GpuShare>(GpuShare::Mode::kFixed, 2, GpuShare::MemoryReader{}), 0};
  ASSERT_TRUE(seat_.share->try_start(1)) << "another slot's trial runs, and runs on";
  server_.claim_answers.push_back(claimed_trial("t1"));
  std::atomic<bool> waited{false};
  {
    std::jthread expiry =
        after_the_first_run(log_, waited, [this] { server_.link.lease_lost = true; });
    EXPECT_EQ(run_worker(), kWorkerExitOk);
  }
  EXPECT_TRUE(waited);
  EXPECT_EQ(log_.commands, (std::vector<std::string>{"start", "run t1"}));
  EXPECT_TRUE(server_.sent_to("/trials/t1/fail").empty());
  EXPECT_TRUE(server_.sent_to("/trials/t1/complete").empty());
  EXPECT_EQ(seat_.share->running(), 1) << "only the sibling's turn is left";
}

// Waits up to 5 s for `ready`; whether it came.
bool eventually(const std::function<bool()>& ready) {
  for (int step = 0; step < 5000; ++step) {
    if (ready()) return true;
    std::this_thread::sleep_for(milliseconds(1));
  }
  return false;
}

TEST_F(WorkerCore, AModelUploadOverlapsTheNextTrialAndCompletesItsTrialAfterwards) {
  log_.script = Script::kSucceedWithModel;
  server_.claim_answers.push_back(claimed_trial("t1"));
  server_.claim_answers.push_back(claimed_trial("t2"));
  upload_server_.put_gate.close();
  std::atomic<bool> next_trial_ran_during_upload{false};
  {
    std::jthread releaser([this, &next_trial_ran_during_upload] {
      next_trial_ran_during_upload = eventually([this] { return log_.runs >= 2; });
      upload_server_.put_gate.open();
    });
    EXPECT_EQ(run_worker(), kWorkerExitOk);
  }
  EXPECT_TRUE(next_trial_ran_during_upload) << "t2 waited for the upload of t1's model";
  const long put_t1 = timeline_.position("PUT /api/v1/trials/t1/model");
  ASSERT_GE(put_t1, 0);
  EXPECT_LT(timeline_.position("POST /api/v1/workers/w1/claim"), put_t1)
      << "the next claim is answered before the upload starts";
  EXPECT_LT(timeline_.position("run t2"),
            timeline_.position("PUT returned /api/v1/trials/t1/model"));
  EXPECT_LT(timeline_.position("PUT returned /api/v1/trials/t1/model"),
            timeline_.position("POST /api/v1/trials/t1/complete"));
  EXPECT_LT(timeline_.position("POST /api/v1/trials/t2/complete"),
            timeline_.position("loop ended"));
  std::vector<json> claims = server_.sent_to("/workers/w1/claim");
  ASSERT_EQ(claims.size(), 3u) << "t1, t2, then the grid is finished";
  EXPECT_EQ(claims[1]["claim_id"], "claim-2") << "the id the completion would have carried";
  for (const char* trial : {"t1", "t2"}) {
    std::vector<json> completed =
        upload_server_.sent_to(std::string("/trials/") + trial + "/complete");
    ASSERT_EQ(completed.size(), 1u) << trial;
    EXPECT_FALSE(completed[0].contains("next_claim_id")) << "the slot claimed on its own";
    EXPECT_EQ(completed[0]["lease_token"], std::string("lease-") + trial);
    EXPECT_FALSE(std::filesystem::exists(dir_.path() / (std::string(trial) + ".pt")));
  }
  EXPECT_TRUE(server_.sent_to("/complete").empty()) << "only the deliverer's connection completes";
  EXPECT_EQ(server_.link.flushed.load(), 2) << "each lease kept alive until its completion";
  Result<std::vector<FinishedTrial>> kept = outbox_.pending();
  ASSERT_TRUE(kept);
  EXPECT_TRUE(kept->empty());
}

TEST_F(WorkerCore, TheLoopEndsOnlyOnceTheUploadInFlightHasEnded) {
  log_.script = Script::kSucceedWithModel;
  server_.claim_answers.push_back(claimed_trial("t1"));
  server_.claim_answers.push_back(claimed_trial("t2"));
  upload_server_.put_gate.close();
  auto quota = std::make_shared<ClaimQuota>(2);
  {
    std::jthread releaser([this] {
      eventually([this] { return server_.link.flushed >= 1; });  // t2, the last, delivered
      std::this_thread::sleep_for(milliseconds(50));
      upload_server_.put_gate.open();
    });
    EXPECT_EQ(run_worker(true, quota), kWorkerExitOk);
  }
  EXPECT_EQ(log_.commands, (std::vector<std::string>{"start", "run t1", "run t2"}));
  std::vector<json> last = server_.sent_to("/trials/t2/complete");
  ASSERT_EQ(last.size(), 1u) << "the last trial (--max_trials) is delivered at once";
  EXPECT_FALSE(last[0].contains("next_claim_id"));
  ASSERT_GE(timeline_.position("POST /api/v1/trials/t1/complete"), 0);
  EXPECT_LT(timeline_.position("POST /api/v1/trials/t1/complete"), timeline_.position("loop ended"))
      << "--max_trials ended the loop, which waited for t1's upload";
}

TEST_F(WorkerCore, AModelTheServerRefusesFailsItsTrialAndStopsTheWorkerUnderRaiseOnFailure) {
  log_.script = Script::kSucceedWithModel;
  upload_server_.refused_model = "t1";
  server_.claim_answers.push_back(claimed_trial("t1"));
  server_.claim_answers.push_back(claimed_trial("t2"));
  server_.claim_answers.push_back(claimed_trial("t3"));
  auto quota = std::make_shared<ClaimQuota>();
  std::atomic<bool> known_during_t2{false};
  // t2 starts once t1's failure is known: the run is ended for every slot then.
  log_.before_run = [&](const std::string& trial_id) {
    if (trial_id == "t2") known_during_t2 = eventually([&] { return quota->run_ended(); });
  };
  EXPECT_EQ(run_worker(true, quota), kWorkerExitFailed);
  EXPECT_TRUE(known_during_t2);
  std::vector<json> failed = upload_server_.sent_to("/trials/t1/fail");
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_TRUE(failed[0]["error"].get<std::string>().starts_with(
      "the model file is larger than the server accepts (--max-upload-mb)"))
      << failed[0]["error"];
  EXPECT_TRUE(upload_server_.sent_to("/trials/t1/complete").empty());
  EXPECT_EQ(log_.commands, (std::vector<std::string>{"start", "run t1", "run t2"}))
      << "no trial after the failure became known";
  EXPECT_EQ(upload_server_.sent_to("/trials/t2/complete").size(), 1u) << "t2 still delivered";
}

TEST_F(WorkerCore, ARefusedModelGoesOnWithoutRaiseOnFailure) {
  log_.script = Script::kSucceedWithModel;
  upload_server_.refused_model = "t1";
  server_.claim_answers.push_back(claimed_trial("t1"));
  server_.claim_answers.push_back(claimed_trial("t2"));
  EXPECT_EQ(run_worker(/*raise_on_failure=*/false), kWorkerExitOk);
  EXPECT_EQ(upload_server_.sent_to("/trials/t1/fail").size(), 1u);
  EXPECT_EQ(upload_server_.sent_to("/trials/t2/complete").size(), 1u);
}

TEST_F(WorkerCore, AnInterruptionDuringAnUploadThatCannotFinishKeepsTheOutcomeInTheOutbox) {
  log_.script = Script::kSucceedWithModel;
  upload_server_.uploads_fail = true;
  server_.claim_answers.push_back(claimed_trial("t1"));
  server_.claim_answers.push_back(claimed_trial("t2"));
  log_.before_run = [this](const std::string& trial_id) {
    if (trial_id == "t2") interrupted_ = true;  // Ctrl-C while t1's model is on its way
  };
  EXPECT_EQ(run_worker(), kWorkerExitInterrupted);
  EXPECT_TRUE(upload_server_.sent_to("/trials/t1/complete").empty());
  Result<std::vector<FinishedTrial>> kept = outbox_.pending();
  ASSERT_TRUE(kept);
  ASSERT_FALSE(kept->empty());
  EXPECT_EQ(kept->front().trial_id, "t1") << "kept for the next start";
  ASSERT_TRUE(kept->front().model_path);
  EXPECT_TRUE(std::filesystem::exists(*kept->front().model_path));
}

// The header `name` of the PUT number `index` to `server`, or "".
std::string put_header(FakeServer& server, std::size_t index, const std::string& name) {
  std::lock_guard lock(server.mutex);
  for (const auto& [key, value] : server.put_headers.at(index)) {
    if (key == name) return value;
  }
  return "";
}

TEST_F(WorkerCore, ASavedCheckpointIsUploadedWithItsHeadersBeforeTheFailureIsDelivered) {
  log_.script = Script::kCheckpointThenFail;
  server_.claim_answers.push_back(claimed_trial("t1"));
  EXPECT_EQ(run_worker(/*raise_on_failure=*/false), kWorkerExitOk);
  ASSERT_TRUE(log_.last_run);
  EXPECT_FALSE(log_.last_run->checkpoint) << "the claim announced none";
  EXPECT_EQ(log_.last_run->checkpoint_dir, (dir_.path() / "staging" / "dir").string());
  ASSERT_EQ(checkpoint_server_.put_bodies.size(), 1u);
  EXPECT_EQ(checkpoint_server_.put_bodies[0], "state of t1");
  EXPECT_EQ(put_header(checkpoint_server_, 0, "X-Gridexp-Lease-Token"), "lease-t1");
  EXPECT_EQ(put_header(checkpoint_server_, 0, "X-Gridexp-Sha256"), sha256_hex("state of t1"));
  EXPECT_EQ(put_header(checkpoint_server_, 0, "X-Gridexp-Checkpoint-Step"), "5");
  EXPECT_EQ(put_header(checkpoint_server_, 0, "X-Gridexp-Checkpoint-Kind"), "object");
  const long put = timeline_.position("PUT /api/v1/trials/t1/checkpoint");
  ASSERT_GE(put, 0);
  EXPECT_LT(put, timeline_.position("POST /api/v1/trials/t1/fail"))
      << "a retry resumes from it: it is on the server before the failure";
  EXPECT_FALSE(std::filesystem::exists(dir_.path() / "staging" / ".saving-1.ckpt"))
      << "uploaded, then deleted";
}

TEST_F(WorkerCore, ACheckpointOverTheServersLimitIsSaidInTheTrialsLogAndTheTrialGoesOn) {
  log_.script = Script::kCheckpointThenFail;
  checkpoint_server_.refuse_puts = true;
  server_.claim_answers.push_back(claimed_trial("t1"));
  EXPECT_EQ(run_worker(/*raise_on_failure=*/false), kWorkerExitOk);
  EXPECT_NE(server_.link.log().find("gridexp-worker: checkpoint at step 5 not kept: 0.0 MiB is "
                                    "over the server's --max-upload-mb"),
            std::string::npos)
      << server_.link.log();
  EXPECT_EQ(server_.sent_to("/trials/t1/fail").size(), 1u);
  EXPECT_FALSE(std::filesystem::exists(dir_.path() / "staging" / ".saving-1.ckpt"));
}

TEST_F(WorkerCore, OnlyTheLatestWaitingCheckpointIsUploadedAndSupersededOnesAreDeleted) {
  FakeServer server;
  CheckpointUploads uploads(server, retry_, progress_);
  std::vector<std::filesystem::path> files;
  for (int step = 1; step <= 4; ++step) {
    files.push_back(dir_.path() / ("c" + std::to_string(step)));
    std::ofstream(files.back()) << "step " << step;
  }
  server.put_gate.close();
  uploads.submit({"t1", "lease-t1", files[0], CheckpointKind::kObject, 1});
  ASSERT_TRUE(eventually([&] {
    std::lock_guard lock(server.mutex);
    return server.put_bodies.size() == 1;
  })) << "the first is in flight";
  for (int step = 2; step <= 4; ++step) {
    uploads.submit({"t1", "lease-t1", files[step - 1], CheckpointKind::kObject, step});
  }
  EXPECT_FALSE(std::filesystem::exists(files[1])) << "superseded while waiting";
  EXPECT_FALSE(std::filesystem::exists(files[2]));
  EXPECT_TRUE(std::filesystem::exists(files[3]));
  server.put_gate.open();
  uploads.finish("t1");
  ASSERT_EQ(server.put_bodies.size(), 2u);
  EXPECT_EQ(server.put_bodies[0], "step 1");
  EXPECT_EQ(server.put_bodies[1], "step 4") << "the latest, never one in between";
  EXPECT_EQ(uploads.uploaded(), 2);
  for (const auto& file : files) EXPECT_FALSE(std::filesystem::exists(file)) << file;

  std::ofstream(files[0]) << "dropped";
  server.put_gate.close();
  std::ofstream(files[1]) << "in flight";
  uploads.submit({"t2", "lease-t2", files[1], CheckpointKind::kFile, std::nullopt});
  ASSERT_TRUE(eventually([&] {
    std::lock_guard lock(server.mutex);
    return server.put_bodies.size() == 3;
  }));
  uploads.submit({"t2", "lease-t2", files[0], CheckpointKind::kFile, std::nullopt});
  uploads.drop("t2");  // the trial succeeded: what waits is of no use
  EXPECT_FALSE(std::filesystem::exists(files[0]));
  server.put_gate.open();
  uploads.finish("t2");
  EXPECT_EQ(server.put_bodies.size(), 3u);
}

json claimed_with_checkpoint(const std::string& id, const std::string& content,
                             const std::string& sha) {
  json claimed = claimed_trial(id);
  claimed["trial"]["attempt"] = 2;
  claimed["trial"]["checkpoint"] = {
      {"step", 7}, {"size", content.size()}, {"sha256", sha}, {"kind", "object"}, {"attempt", 1}};
  return claimed;
}

TEST_F(WorkerCore, TheCheckpointOfAnEarlierAttemptIsDownloadedAndCheckedBeforeTheRun) {
  const std::string content = "weights at step 7";
  server_.files["/api/v1/trials/t1/checkpoint"] = content;
  server_.claim_answers.push_back(claimed_with_checkpoint("t1", content, sha256_hex(content)));
  std::string seen_at_run;
  log_.before_run = [&](const std::string&) {
    std::ifstream in(dir_.path() / "staging" / "resume.ckpt");
    std::getline(in, seen_at_run);
  };
  EXPECT_EQ(run_worker(), kWorkerExitOk);
  EXPECT_EQ(seen_at_run, content) << "on disk before the run command";
  ASSERT_TRUE(log_.last_run && log_.last_run->checkpoint);
  EXPECT_EQ(log_.last_run->checkpoint->path, (dir_.path() / "staging" / "resume.ckpt").string());
  EXPECT_EQ(log_.last_run->checkpoint->kind, CheckpointKind::kObject);
  EXPECT_EQ(log_.last_run->checkpoint->step, 7);
  std::vector<json> downloads = server_.sent_to("GET /api/v1/trials/t1/checkpoint");
  ASSERT_EQ(downloads.size(), 1u);
  EXPECT_EQ(downloads[0]["lease_token"], "lease-t1");
  EXPECT_LT(timeline_.position("GET /api/v1/trials/t1/checkpoint"), timeline_.position("run t1"));
  EXPECT_FALSE(std::filesystem::exists(dir_.path() / "staging" / "resume.ckpt"))
      << "removed once the trial ended";
}

TEST_F(WorkerCore, ACheckpointWhoseShaDoesNotMatchIsTriedAgainThenTheTrialRunsFromItsStart) {
  const std::string content = "weights at step 7";
  server_.files["/api/v1/trials/t1/checkpoint"] = content;
  server_.claim_answers.push_back(
      claimed_with_checkpoint("t1", content, sha256_hex("other weights!!!!")));
  EXPECT_EQ(run_worker(), kWorkerExitOk);
  EXPECT_EQ(server_.sent_to("GET /api/v1/trials/t1/checkpoint").size(),
            static_cast<std::size_t>(TrialCheckpoints::kDownloadTries));
  ASSERT_TRUE(log_.last_run);
  EXPECT_FALSE(log_.last_run->checkpoint) << "a corrupt checkpoint is never handed over";
  EXPECT_NE(server_.link.log().find("the checkpoint at step 7 of an earlier attempt could not be "
                                    "downloaded (its SHA-256 is "),
            std::string::npos)
      << server_.link.log();
  EXPECT_NE(server_.link.log().find("the trial runs from its start"), std::string::npos);
  EXPECT_EQ(server_.sent_to("/trials/t1/complete").size(), 1u);
  EXPECT_FALSE(std::filesystem::exists(dir_.path() / "staging" / "resume.part"));
}

TEST_F(WorkerCore, AStopSignalPreemptsTheTrialWhichIsHandedBackWithItsLastCheckpoint) {
  log_.script = Script::kStopObserved;
  server_.claim_answers.push_back(claimed_trial("t1"));
  server_.claim_answers.push_back(claimed_trial("t2"));
  log_.before_run = [this](const std::string&) { interrupted_ = true; };  // SIGTERM mid-trial
  EXPECT_EQ(run_worker(), kWorkerExitInterrupted);
  EXPECT_EQ(log_.commands, (std::vector<std::string>{"start", "run t1", "stop t1"}));
  EXPECT_EQ(log_.stop_reasons, std::vector<std::string>{"preempted"});
  EXPECT_EQ(log_.killed, 0) << "it returned within the grace";
  std::vector<json> preempted = server_.sent_to("/trials/t1/preempt");
  ASSERT_EQ(preempted.size(), 1u);
  EXPECT_EQ(preempted[0]["lease_token"], "lease-t1");
  EXPECT_EQ(preempted[0]["reason"], "SIGTERM");
  EXPECT_TRUE(server_.sent_to("/trials/t1/complete").empty())
      << "results of a run_one that stopped early are not the trial's";
  EXPECT_TRUE(server_.sent_to("/release").empty());
  EXPECT_EQ(server_.sent_to("/workers/w1/claim").size(), 1u) << "no trial after the signal";
}

TEST_F(WorkerCore, AResultThatDidNotSeeTheStopIsARealCompletion) {
  log_.script = Script::kStopUnobserved;
  server_.claim_answers.push_back(claimed_trial("t1"));
  log_.before_run = [this](const std::string&) { interrupted_ = true; };
  EXPECT_EQ(run_worker(), kWorkerExitInterrupted);
  std::vector<json> completed = server_.sent_to("/trials/t1/complete");
  ASSERT_EQ(completed.size(), 1u);
  EXPECT_EQ(completed[0]["results"]["acc"], 0.5);
  EXPECT_TRUE(server_.sent_to("/preempt").empty());
}

TEST_F(WorkerCore, APreemptedTrialGoesBackByReleaseWhenTheServerHasNoPreempt) {
  log_.script = Script::kStopWhenAsked;  // run_one raises at the stop
  server_.without_preempt = true;
  server_.claim_answers.push_back(claimed_trial("t1"));
  log_.before_run = [this](const std::string&) { interrupted_ = true; };
  EXPECT_EQ(run_worker(), kWorkerExitInterrupted);
  EXPECT_EQ(server_.sent_to("/trials/t1/preempt").size(), 1u);
  std::vector<json> released = server_.sent_to("/trials/t1/release");
  ASSERT_EQ(released.size(), 1u);
  EXPECT_EQ(released[0]["lease_token"], "lease-t1");
  EXPECT_TRUE(server_.sent_to("/trials/t1/fail").empty()) << "a raise after the stop: preempted";
}

TEST_F(WorkerCore, ATrialThatOutlastsTheGraceIsKilledAndStillPreempted) {
  log_.script = Script::kHang;
  preempt_grace_ = milliseconds(30);
  server_.claim_answers.push_back(claimed_trial("t1"));
  log_.before_run = [this](const std::string&) { interrupted_ = true; };
  EXPECT_EQ(run_worker(), kWorkerExitInterrupted);
  EXPECT_EQ(log_.stop_reasons, std::vector<std::string>{"preempted"});
  EXPECT_EQ(log_.killed, 1);
  EXPECT_EQ(server_.sent_to("/trials/t1/preempt").size(), 1u);
  EXPECT_NE(server_.link.log().find("did not return within 0.03 s (--grace_seconds)"),
            std::string::npos)
      << server_.link.log();
}

TEST_F(WorkerCore, ASecondSignalKillsAtOnceAndStillUploadsWhatWasSavedAndPreempts) {
  log_.script = Script::kHang;
  preempt_grace_ = milliseconds(60'000);
  server_.claim_answers.push_back(claimed_trial("t1"));
  // A checkpoint saved before the signals.
  std::filesystem::path saved = dir_.path() / "staging" / ".saving-9.ckpt";
  log_.events_at_run.push_back(CheckpointEvent{"t1", saved.string(), CheckpointKind::kFile, 3});
  log_.before_run = [&](const std::string&) {
    std::ofstream(saved) << "saved before";
    interrupted_ = true;
    kill_now_ = true;
  };
  EXPECT_EQ(run_worker(), kWorkerExitInterrupted);
  EXPECT_EQ(log_.killed, 1);
  ASSERT_EQ(checkpoint_server_.put_bodies.size(), 1u);
  EXPECT_EQ(checkpoint_server_.put_bodies[0], "saved before");
  EXPECT_LT(timeline_.position("PUT /api/v1/trials/t1/checkpoint"),
            timeline_.position("POST /api/v1/trials/t1/preempt"));
}

TEST_F(WorkerCore, CheckpointDirContentsThatChangedAreKeptWhenTheTrialFails) {
  log_.script = Script::kFail;
  server_.claim_answers.push_back(claimed_trial("t1"));
  log_.before_run = [this](const std::string&) {
    std::ofstream(dir_.path() / "staging" / "dir" / "last.ckpt") << "framework state";
  };
  EXPECT_EQ(run_worker(/*raise_on_failure=*/false), kWorkerExitOk);
  ASSERT_EQ(checkpoint_server_.put_bodies.size(), 1u);
  EXPECT_EQ(put_header(checkpoint_server_, 0, "X-Gridexp-Checkpoint-Kind"), "directory");
  EXPECT_EQ(checkpoint_server_.put_bodies[0].substr(0, 2), "PK") << "a zip";
}

TEST_F(WorkerCore, AnUnchangedCheckpointDirIsNotUploaded) {
  log_.script = Script::kFail;
  server_.claim_answers.push_back(claimed_trial("t1"));
  EXPECT_EQ(run_worker(/*raise_on_failure=*/false), kWorkerExitOk);
  EXPECT_TRUE(checkpoint_server_.put_bodies.empty());
}

}  // namespace
}  // namespace gridexp
