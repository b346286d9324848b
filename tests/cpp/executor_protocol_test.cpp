// The typed supervisor <-> executor messages (common/executor_protocol.h): every message
// survives encode then decode, malformed lines are errors that say why, and the LineFramer
// reassembles lines split across reads.
#include "common/executor_protocol.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace gridexp {
namespace {

using nlohmann::json;

// `line` without its '\n', which encode_* adds and decode_* does not take.
std::string strip(std::string line) {
  EXPECT_EQ(line.back(), '\n');
  line.pop_back();
  return line;
}

TEST(ExecutorProtocol, CommandsSurviveARoundTrip) {
  StartCommand start{{{"a", 1}}, false, true, "/models"};
  Result<ExecutorCommand> decoded = decode_command(strip(encode_command(start)));
  ASSERT_TRUE(decoded) << decoded.status().message();
  const auto& start_back = std::get<StartCommand>(*decoded);
  EXPECT_EQ(start_back.config, start.config);
  EXPECT_FALSE(start_back.consistent_dataset);
  EXPECT_TRUE(start_back.save_models);
  EXPECT_EQ(start_back.model_dir, "/models");

  json trial = {{"id", "t1"}, {"attempt", 2}, {"experiment", "e"}, {"hyperparameters", {}}};
  trial["hyperparameters"] = json::object();
  decoded = decode_command(strip(encode_command(run_command(trial))));
  ASSERT_TRUE(decoded) << decoded.status().message();
  EXPECT_EQ(std::get<RunCommand>(*decoded).trial, trial);
  EXPECT_EQ(std::get<RunCommand>(*decoded).trial_id, "t1");

  decoded = decode_command(strip(encode_command(StopCommand{"t1"})));
  ASSERT_TRUE(decoded);
  EXPECT_EQ(std::get<StopCommand>(*decoded).trial_id, "t1");
}

TEST(ExecutorProtocol, EventsSurviveARoundTrip) {
  // Built member by member: GCC 12 at -O2 warns (maybe-uninitialized) on an optional inside a
  // braced temporary in an initializer list.
  FatalEvent located;
  located.error = "boom";
  located.location.file = "experiment.py";
  located.location.line = 12;
  located.traceback = "Traceback";
  FatalEvent unlocated;
  unlocated.error = "boom";
  std::vector<ExecutorEvent> events = {
      ReadyEvent{},
      located,
      unlocated,
      MetricsEvent{"t", 7, 1'700'000'000'000, {{"loss", 0.5}}},
      MetricsEvent{"t", std::nullopt, 5, json::object()},
      ResultEvent{"t", {{"acc", 0.9}}, "/m/t.pt"},
      ResultEvent{"t", json::array(), std::nullopt},
      FailedEvent{"t", "ValueError: x", "tb"},
  };
  for (const ExecutorEvent& event : events) {
    std::string line = encode_event(event);
    Result<ExecutorEvent> decoded = decode_event(strip(line));
    ASSERT_TRUE(decoded) << line << decoded.status().message();
    EXPECT_EQ(decoded->index(), event.index());
    EXPECT_EQ(encode_event(*decoded), line);
  }
}

TEST(ExecutorProtocol, MalformedLinesAreErrorsThatSayWhy) {
  for (const char* line :
       {"", "not json", "[1]", R"({"no": "type"})", R"({"type": "dance"})",
        R"({"type": "metrics", "trial_id": "t", "time_ms": "soon", "values": {}})",
        R"({"type": "result", "trial_id": "t"})",
        R"({"type": "failed", "trial_id": 3, "error": "", "traceback": ""})",
        R"({"type": "fatal", "error": "e", "line": "x", "traceback": ""})"}) {
    Result<ExecutorEvent> decoded = decode_event(line);
    EXPECT_FALSE(decoded) << line;
    if (!decoded) {
      EXPECT_FALSE(decoded.status().message().empty());
    }
  }
  Result<ExecutorEvent> wrong = decode_event(R"({"type": "failed", "trial_id": 3})");
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.status().message(), "failed: \"trial_id\" must be a string");
  EXPECT_FALSE(
      decode_command(R"({"type": "run", "trial": {"id": "../x", "hyperparameters": {}}})"));
  EXPECT_FALSE(decode_command(R"({"type": "start", "config": {}, "consistent_dataset": true,
                                  "save_models": true})"));
  EXPECT_FALSE(decode_command(R"({"type": "ready"})"));
}

TEST(ExecutorProtocol, PeakGpuMemoryIsAnOptionalFieldOfResultsAndFailures) {
  ResultEvent result{"t", {{"acc", 0.9}}, std::nullopt, 3'221'225'472};
  std::string line = encode_event(result);
  EXPECT_NE(line.find("\"peak_gpu_memory_bytes\":3221225472"), std::string::npos) << line;
  Result<ExecutorEvent> decoded = decode_event(strip(line));
  ASSERT_TRUE(decoded) << decoded.status().message();
  EXPECT_EQ(std::get<ResultEvent>(*decoded).peak_gpu_memory_bytes, 3'221'225'472);

  FailedEvent failed{"t", "torch.OutOfMemoryError: CUDA out of memory", "tb", 1024};
  decoded = decode_event(strip(encode_event(failed)));
  ASSERT_TRUE(decoded) << decoded.status().message();
  EXPECT_EQ(std::get<FailedEvent>(*decoded).peak_gpu_memory_bytes, 1024);

  std::string without = encode_event(ResultEvent{"t", json::object(), std::nullopt});
  EXPECT_EQ(without.find("peak_gpu_memory_bytes"), std::string::npos) << without;
  decoded = decode_event(R"({"type": "result", "trial_id": "t", "results": {},
                             "peak_gpu_memory_bytes": null})");
  ASSERT_TRUE(decoded);
  EXPECT_FALSE(std::get<ResultEvent>(*decoded).peak_gpu_memory_bytes.has_value());

  for (const char* bad : {R"({"type": "result", "trial_id": "t", "results": {},
                              "peak_gpu_memory_bytes": -1})",
                          R"({"type": "failed", "trial_id": "t", "error": "", "traceback": "",
                              "peak_gpu_memory_bytes": "1 GiB"})"}) {
    Result<ExecutorEvent> refused = decode_event(bad);
    ASSERT_FALSE(refused) << bad;
    EXPECT_NE(refused.status().message().find("\"peak_gpu_memory_bytes\" must be a non-negative"),
              std::string::npos)
        << refused.status().message();
  }
}

TEST(ExecutorProtocol, OutOfMemoryIsAnOptionalFlagOfFailures) {
  FailedEvent failed{"t", "torch.OutOfMemoryError: CUDA out of memory", "tb", 1024};
  failed.out_of_memory = true;
  std::string line = encode_event(failed);
  EXPECT_NE(line.find("\"out_of_memory\":true"), std::string::npos) << line;
  Result<ExecutorEvent> decoded = decode_event(strip(line));
  ASSERT_TRUE(decoded) << decoded.status().message();
  EXPECT_TRUE(std::get<FailedEvent>(*decoded).out_of_memory);

  std::string ordinary = encode_event(FailedEvent{"t", "ValueError: x", "tb"});
  EXPECT_EQ(ordinary.find("out_of_memory"), std::string::npos) << ordinary;
  decoded = decode_event(strip(ordinary));
  ASSERT_TRUE(decoded);
  EXPECT_FALSE(std::get<FailedEvent>(*decoded).out_of_memory);
  decoded = decode_event(R"({"type": "failed", "trial_id": "t", "error": "", "traceback": "",
                             "out_of_memory": null})");
  ASSERT_TRUE(decoded);
  EXPECT_FALSE(std::get<FailedEvent>(*decoded).out_of_memory);

  Result<ExecutorEvent> refused = decode_event(R"({"type": "failed", "trial_id": "t",
      "error": "", "traceback": "", "out_of_memory": "yes"})");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.status().message(), "failed: \"out_of_memory\" must be a boolean");
}

TEST(ExecutorProtocol, RunCarriesTheCheckpointToResumeFromAndTheCheckpointDir) {
  json trial = {{"id", "t1"}, {"attempt", 2}, {"hyperparameters", json::object()}};
  RunCommand run = run_command(trial);
  run.checkpoint = CheckpointRef{"/w/ckpt/resume.ckpt", CheckpointKind::kFile, 120};
  run.checkpoint_dir = "/w/ckpt/dir";
  Result<ExecutorCommand> decoded = decode_command(strip(encode_command(run)));
  ASSERT_TRUE(decoded) << decoded.status().message();
  const auto& back = std::get<RunCommand>(*decoded);
  ASSERT_TRUE(back.checkpoint);
  EXPECT_EQ(back.checkpoint->path, "/w/ckpt/resume.ckpt");
  EXPECT_EQ(back.checkpoint->kind, CheckpointKind::kFile);
  EXPECT_EQ(back.checkpoint->step, 120);
  EXPECT_EQ(back.checkpoint_dir, "/w/ckpt/dir");

  std::string plain = encode_command(run_command(trial));
  EXPECT_NE(plain.find("\"checkpoint\":null"), std::string::npos) << plain;
  decoded = decode_command(strip(plain));
  ASSERT_TRUE(decoded);
  EXPECT_FALSE(std::get<RunCommand>(*decoded).checkpoint);
  EXPECT_EQ(std::get<RunCommand>(*decoded).checkpoint_dir, "");

  for (const char* bad :
       {R"({"type": "run", "trial": {"id": "t", "hyperparameters": {}},
            "checkpoint": {"path": "/c", "kind": "pickle", "step": null}})",
        R"({"type": "run", "trial": {"id": "t", "hyperparameters": {}},
            "checkpoint": {"path": "relative", "kind": "object"}})",
        R"({"type": "run", "trial": {"id": "t", "hyperparameters": {}}, "checkpoint": 3})",
        R"({"type": "run", "trial": {"id": "t", "hyperparameters": {}},
            "checkpoint_dir": "dir"})"}) {
    EXPECT_FALSE(decode_command(bad)) << bad;
  }
  Result<ExecutorCommand> refused = decode_command(
      R"({"type": "run", "trial": {"id": "t", "hyperparameters": {}},
          "checkpoint": {"path": "/c", "kind": "pickle"}})");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.status().message(),
            "run: checkpoint: \"kind\" must be \"object\", \"file\" or \"directory\"");
}

TEST(ExecutorProtocol, StopSaysWhy) {
  for (StopReason reason :
       {StopReason::kCancelled, StopReason::kPreempted, StopReason::kLeaseLost}) {
    Result<ExecutorCommand> decoded =
        decode_command(strip(encode_command(StopCommand{"t", reason})));
    ASSERT_TRUE(decoded) << decoded.status().message();
    EXPECT_EQ(std::get<StopCommand>(*decoded).reason, reason);
  }
  EXPECT_NE(
      encode_command(StopCommand{"t", StopReason::kLeaseLost}).find("\"reason\":\"lease lost\""),
      std::string::npos);
  Result<ExecutorCommand> unsaid = decode_command(R"({"type": "stop", "trial_id": "t"})");
  ASSERT_TRUE(unsaid);
  EXPECT_FALSE(std::get<StopCommand>(*unsaid).reason);
  EXPECT_FALSE(decode_command(R"({"type": "stop", "trial_id": "t", "reason": "bored"})"));
}

TEST(ExecutorProtocol, CheckpointEventsAndStopObservedSurviveARoundTrip) {
  CheckpointEvent saved{"t", "/w/ckpt/saved-1.ckpt", CheckpointKind::kDirectory, 40};
  Result<ExecutorEvent> decoded = decode_event(strip(encode_event(saved)));
  ASSERT_TRUE(decoded) << decoded.status().message();
  const auto& back = std::get<CheckpointEvent>(*decoded);
  EXPECT_EQ(back.trial_id, "t");
  EXPECT_EQ(back.path, "/w/ckpt/saved-1.ckpt");
  EXPECT_EQ(back.kind, CheckpointKind::kDirectory);
  EXPECT_EQ(back.step, 40);
  decoded = decode_event(
      R"({"type": "checkpoint", "trial_id": "t", "path": "/a", "kind": "object", "step": null})");
  ASSERT_TRUE(decoded);
  EXPECT_FALSE(std::get<CheckpointEvent>(*decoded).step);
  EXPECT_FALSE(decode_event(R"({"type": "checkpoint", "trial_id": "t", "path": "a",
                                "kind": "object"})"));
  EXPECT_FALSE(decode_event(R"({"type": "checkpoint", "trial_id": "t", "path": "/a"})"));

  ResultEvent stopped{"t", json::object(), std::nullopt};
  stopped.stop_observed = true;
  std::string line = encode_event(stopped);
  EXPECT_NE(line.find("\"stop_observed\":true"), std::string::npos) << line;
  decoded = decode_event(strip(line));
  ASSERT_TRUE(decoded);
  EXPECT_TRUE(std::get<ResultEvent>(*decoded).stop_observed);
  std::string ran_through = encode_event(ResultEvent{"t", json::object(), std::nullopt});
  EXPECT_EQ(ran_through.find("stop_observed"), std::string::npos);
  decoded = decode_event(strip(ran_through));
  ASSERT_TRUE(decoded);
  EXPECT_FALSE(std::get<ResultEvent>(*decoded).stop_observed);
}

TEST(ExecutorProtocol, LineFramerJoinsPartialLines) {
  LineFramer framer;
  std::vector<std::string> lines;
  auto collect = [&lines](std::string_view line) { lines.emplace_back(line); };
  framer.feed("{\"type\": \"re", collect);
  EXPECT_TRUE(lines.empty());
  EXPECT_EQ(framer.pending_bytes(), 12u);
  framer.feed("ady\"}\n\nsecond\nthi", collect);
  framer.feed("rd", collect);
  framer.finish(collect);
  EXPECT_EQ(lines, (std::vector<std::string>{"{\"type\": \"ready\"}", "", "second", "third"}));
  EXPECT_TRUE(decode_event(lines[0]));
  framer.finish(collect);  // nothing left
  EXPECT_EQ(lines.size(), 4u);
}

}  // namespace
}  // namespace gridexp
