// Tests of gridexp-executor's pieces: the protocol, the pipes' reader and writer threads, the
// embedded interpreter's set-up, Python <-> JSON, exception descriptions, the trial context
// and its `_gridexp_executor` module, and Experiment over small experiment.py files. The
// whole executor, driven over its pipes, is tested in tests/python/test_executor.py.
//
// One interpreter serves the whole test binary (CPython does not restart cleanly); the main
// thread holds its GIL throughout.
#include <gtest/gtest.h>
#include <pybind11/embed.h>
#include <pybind11/stl.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "executor/command_reader.h"
#include "executor/event_writer.h"
#include "executor/experiment.h"
#include "executor/protocol.h"
#include "executor/python_errors.h"
#include "executor/python_json.h"
#include "executor/python_runtime.h"
#include "executor/trial_context.h"
#include "test_support.h"

namespace gridexp {
namespace {

namespace py = pybind11;
using nlohmann::json;
using testing::TempDir;

class PythonEnvironment final : public ::testing::Environment {
 public:
  void SetUp() override {
    Result<std::unique_ptr<PythonRuntime>> started =
        PythonRuntime::start(build_python_executable(), std::filesystem::current_path());
    ASSERT_TRUE(started) << started.status().message();
    runtime_ = std::move(*started);
  }
  void TearDown() override { runtime_.reset(); }

 private:
  std::unique_ptr<PythonRuntime> runtime_;
};

[[maybe_unused]] ::testing::Environment* const python_environment =
    ::testing::AddGlobalTestEnvironment(new PythonEnvironment);

// Evaluates a Python expression in a namespace that has run `setup`.
py::object evaluate(const std::string& expression, const std::string& setup = "") {
  py::dict scope;
  py::exec(setup, scope);
  return py::eval(expression, scope);
}

json to_json(const std::string& expression, const std::string& setup = "") {
  Result<json> converted = python_to_json(evaluate(expression, setup), "results");
  EXPECT_TRUE(converted) << converted.status().message();
  return converted ? *converted : json();
}

std::string conversion_error(const std::string& expression, const std::string& setup = "") {
  Result<json> converted = python_to_json(evaluate(expression, setup), "results");
  EXPECT_FALSE(converted);
  EXPECT_EQ(converted.status().code(), Code::kInvalidArgument);
  return converted.status().message();
}

bool can_import(const char* module) {
  try {
    py::module_::import(module);
    return true;
  } catch (const py::error_already_set&) {
    return false;
  }
}

// An event as the supervisor reads it.
json as_json(const ExecutorEvent& event) { return json::parse(encode_event(event)); }

json event_of(const TrialOutcome& outcome) { return as_json(outcome.event); }

class RecordingSink final : public EventSink {
 public:
  void post(ExecutorEvent event) override {
    std::lock_guard lock(mutex_);
    events_.push_back(as_json(event));
  }
  std::vector<json> events() {
    std::lock_guard lock(mutex_);
    return events_;
  }

 private:
  std::mutex mutex_;
  std::vector<json> events_;
};

// A pipe whose ends close with it.
struct Pipe {
  Pipe() { EXPECT_EQ(::pipe(fds), 0); }
  ~Pipe() {
    close_read();
    close_write();
  }
  void close_read() {
    if (fds[0] >= 0) ::close(fds[0]);
    fds[0] = -1;
  }
  void close_write() {
    if (fds[1] >= 0) ::close(fds[1]);
    fds[1] = -1;
  }
  void write(const std::string& text) const {
    ASSERT_EQ(::write(fds[1], text.data(), text.size()), static_cast<ssize_t>(text.size()));
  }
  std::string read_all() const {
    std::string text;
    char buffer[4096];
    ssize_t count;
    while ((count = ::read(fds[0], buffer, sizeof buffer)) > 0) text.append(buffer, count);
    return text;
  }
  int fds[2] = {-1, -1};
};

std::vector<json> parse_lines(const std::string& text) {
  std::vector<json> lines;
  std::size_t start = 0;
  for (std::size_t end; (end = text.find('\n', start)) != std::string::npos; start = end + 1) {
    lines.push_back(json::parse(text.substr(start, end - start)));
  }
  EXPECT_EQ(start, text.size()) << "the last line is not terminated";
  return lines;
}

// ---- protocol ----------------------------------------------------------------------------

TEST(ExecutorProtocol, ParsesStartRunAndStop) {
  Command start =
      parse_command(R"({"type": "start", "config": {"a": 1}, "consistent_dataset": false, )"
                    R"("save_models": true, "model_dir": "/models"})");
  ASSERT_TRUE(std::holds_alternative<StartCommand>(start));
  EXPECT_EQ(std::get<StartCommand>(start).config, json({{"a", 1}}));
  EXPECT_FALSE(std::get<StartCommand>(start).consistent_dataset);
  EXPECT_TRUE(std::get<StartCommand>(start).save_models);
  EXPECT_EQ(std::get<StartCommand>(start).model_dir, "/models");

  Command run =
      parse_command(R"({"type": "run", "trial": {"id": "3f2a", "attempt": 2, "experiment": "e", )"
                    R"("hyperparameters": {"lr": 0.1}}})");
  ASSERT_TRUE(std::holds_alternative<RunCommand>(run));
  EXPECT_EQ(std::get<RunCommand>(run).trial_id, "3f2a");
  EXPECT_EQ(std::get<RunCommand>(run).trial["attempt"], 2);

  Command stop = parse_command(R"({"type": "stop", "trial_id": "3f2a"})");
  ASSERT_TRUE(std::holds_alternative<StopCommand>(stop));
  EXPECT_EQ(std::get<StopCommand>(stop).trial_id, "3f2a");
}

TEST(ExecutorProtocol, RejectsMalformedCommands) {
  for (const char* line : {
           "not json",
           "[1, 2]",
           R"({"no": "type"})",
           R"({"type": "dance"})",
           R"({"type": "start", "consistent_dataset": true, "save_models": false})",
           R"({"type": "start", "config": {}, "consistent_dataset": 1, "save_models": false})",
           R"({"type": "start", "config": {}, "consistent_dataset": true, "save_models": true})",
           R"({"type": "run", "trial": {"hyperparameters": {}}})",
           R"({"type": "run", "trial": {"id": "../escape", "hyperparameters": {}}})",
           R"({"type": "run", "trial": {"id": "..", "hyperparameters": {}}})",
           R"({"type": "run", "trial": {"id": "a", "hyperparameters": [1]}})",
           R"({"type": "stop"})",
       }) {
    EXPECT_TRUE(std::holds_alternative<ProtocolError>(parse_command(line))) << line;
  }
}

TEST(ExecutorProtocol, EventsCarryNullsForUnknownParts) {
  EXPECT_EQ(as_json(FatalEvent{"boom", {}, ""}), json({{"type", "fatal"},
                                                       {"error", "boom"},
                                                       {"file", nullptr},
                                                       {"line", nullptr},
                                                       {"traceback", ""}}));
  // Member by member: GCC 12 at -O2 warns (maybe-uninitialized) on an optional inside a
  // braced temporary.
  FatalEvent located;
  located.error = "bad";
  located.location.file = "experiment.py";
  located.location.line = 12;
  EXPECT_EQ(as_json(located)["line"], 12);
  EXPECT_EQ(as_json(MetricsEvent{"t", std::nullopt, 5, {{"loss", 1}}})["step"], nullptr);
  EXPECT_EQ(as_json(ResultEvent{"t", {{"a", 1}}, std::nullopt})["model_path"], nullptr);
  EXPECT_EQ(as_json(FailedEvent{"t", "E: m", "tb"}),
            json({{"type", "failed"}, {"trial_id", "t"}, {"error", "E: m"}, {"traceback", "tb"}}));
}

// ---- EventWriter and CommandReader --------------------------------------------------------

TEST(ExecutorEventWriter, WritesOneLinePerEventInOrder) {
  Pipe pipe;
  {
    EventWriter writer(pipe.fds[1]);
    writer.post(ReadyEvent{});
    writer.post(MetricsEvent{"t", 1, 10, {{"loss", 0.5}}});
    writer.post(ResultEvent{"t", {{"text", "é\n"}}, std::nullopt});
  }
  pipe.close_write();
  std::vector<json> lines = parse_lines(pipe.read_all());
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0]["type"], "ready");
  EXPECT_EQ(lines[1]["values"]["loss"], 0.5);
  EXPECT_EQ(lines[2]["results"]["text"], "é\n");
}

TEST(ExecutorEventWriter, DropsMetricsBeyondTheLimitButNeverOtherEvents) {
  Pipe pipe;
  EventWriter writer(pipe.fds[1]);
  // Nobody reads yet: the pipe fills, the writer thread blocks, and metrics pile up.
  const std::size_t posted = EventWriter::kMaxQueuedMetrics + 5'000;
  for (std::size_t i = 0; i < posted; ++i) {
    writer.post(MetricsEvent{"t", static_cast<std::int64_t>(i), 0, {{"loss", 1.0}}});
  }
  writer.post(ResultEvent{"t", json::object(), std::nullopt});
  std::string text;
  std::thread reader([&] { text = pipe.read_all(); });
  writer.close();
  pipe.close_write();
  reader.join();
  std::vector<json> lines = parse_lines(text);
  ASSERT_FALSE(lines.empty());
  EXPECT_LT(lines.size(), posted);
  EXPECT_EQ(lines.back()["type"], "result");
}

TEST(ExecutorEventWriter, SurvivesASupervisorThatIsGone) {
  Pipe pipe;
  pipe.close_read();  // writes now fail with EPIPE (the test runs with SIGPIPE ignored by Python)
  EventWriter writer(pipe.fds[1]);
  writer.post(ReadyEvent{});
  writer.post(ReadyEvent{});
  writer.close();
  writer.post(ReadyEvent{});  // after close: discarded
}

TEST(ExecutorCommandReader, QueuesCommandsAndHandsStopsOverAtOnce) {
  Pipe pipe;
  std::mutex mutex;
  std::vector<std::string> stops;
  CommandReader reader(pipe.fds[0], [&](const StopCommand& stop) {
    std::lock_guard lock(mutex);
    stops.push_back(stop.trial_id +
                    (stop.reason ? std::string(" ") + stop_reason_name(*stop.reason) : ""));
  });
  pipe.write(R"({"type": "start", "config": {}, "consistent_dataset": true, "save_models": false})"
             "\n\n"
             R"({"type": "stop", "trial_id": "a"})"
             "\n"
             R"({"type": "stop", "trial_id": "b", "reason": "preempted"})"
             "\n"
             "garbage\n"
             R"({"type": "run", "trial": {"id": "b", "hyperparameters": {}}})");  // no '\n'
  pipe.close_write();
  auto next = [&reader] {
    std::optional<Command> command = reader.next(std::chrono::seconds(10));
    EXPECT_TRUE(command.has_value());
    return command.value_or(ProtocolError{"timed out"});
  };
  EXPECT_TRUE(std::holds_alternative<StartCommand>(next()));
  EXPECT_TRUE(std::holds_alternative<ProtocolError>(next()));
  EXPECT_TRUE(std::holds_alternative<RunCommand>(next()));
  EXPECT_TRUE(std::holds_alternative<EndOfCommands>(next()));
  EXPECT_FALSE(reader.next(std::chrono::milliseconds(10)).has_value());
  std::lock_guard lock(mutex);
  EXPECT_EQ(stops, (std::vector<std::string>{"a", "b preempted"}));
}

TEST(ExecutorCommandReader, StopsWhileWaitingForInput) {
  Pipe pipe;
  {
    CommandReader reader(pipe.fds[0], [](const StopCommand&) {});
    EXPECT_FALSE(reader.next(std::chrono::milliseconds(20)).has_value());
  }  // the destructor returns although the pipe stays open and empty
}

// ---- PythonRuntime -------------------------------------------------------------------------

TEST(ExecutorPythonRuntime, FindsThePythonBesideTheExecutor) {
  TempDir bin;
  std::filesystem::path executor = bin.path() / "gridexp-executor";
  EXPECT_EQ(find_python_executable(executor), build_python_executable());
  std::ofstream(bin.path() / "python3") << "#!/bin/sh\n";
  EXPECT_EQ(find_python_executable(executor), build_python_executable()) << "not executable";
  std::filesystem::permissions(bin.path() / "python3", std::filesystem::perms::owner_all);
  EXPECT_EQ(find_python_executable(executor), bin.path() / "python3");
  std::ofstream(bin.path() / "python") << "#!/bin/sh\n";
  std::filesystem::permissions(bin.path() / "python", std::filesystem::perms::owner_all);
  EXPECT_EQ(find_python_executable(executor), bin.path() / "python");
}

TEST(ExecutorPythonRuntime, IsSetUpAsTheDocSays) {
  py::module_ sys = py::module_::import("sys");
  EXPECT_EQ(sys.attr("executable").cast<std::string>(), build_python_executable().string());
  EXPECT_EQ(sys.attr("argv").cast<std::vector<std::string>>(),
            std::vector<std::string>{"experiment.py"});
  EXPECT_EQ(sys.attr("path")[py::int_(0)].cast<std::string>(),
            std::filesystem::current_path().string());
  EXPECT_TRUE(sys.attr("stdout").attr("write_through").cast<bool>()) << "stdio is unbuffered";
  EXPECT_TRUE(
      evaluate("signal.getsignal(signal.SIGINT) is signal.default_int_handler", "import signal")
          .cast<bool>());
  // The environment of the python named (a venv's prefix, where its packages live): what that
  // python itself reports. (Not sysconfig's 'data' path: Debian's own python reports
  // /usr/local there and /usr as its prefix.)
  std::string command = build_python_executable().string() + " -c 'import sys; print(sys.prefix)'";
  std::FILE* named = ::popen(command.c_str(), "r");
  ASSERT_NE(named, nullptr);
  char line[4096] = {};
  std::string reported = std::fgets(line, sizeof(line), named) != nullptr ? line : "";
  ASSERT_EQ(::pclose(named), 0);
  if (!reported.empty() && reported.back() == '\n') reported.pop_back();
  EXPECT_EQ(sys.attr("prefix").cast<std::string>(), reported);
}

// ---- python_to_json and json_to_python -----------------------------------------------------

TEST(ExecutorPythonJson, ConvertsPlainValues) {
  EXPECT_EQ(to_json("None"), json(nullptr));
  EXPECT_EQ(to_json("True"), json(true));
  EXPECT_EQ(to_json("False"), json(false));
  EXPECT_TRUE(to_json("True").is_boolean()) << "bool is checked before int";
  EXPECT_EQ(to_json("-42"), json(-42));
  EXPECT_EQ(to_json("0.25"), json(0.25));
  EXPECT_EQ(to_json("'héllo'"), json("héllo"));
  EXPECT_EQ(to_json("[1, 'a', None]"), json({1, "a", nullptr}));
  EXPECT_EQ(to_json("(1, (2, 3))"), json({1, {2, 3}}));
  EXPECT_EQ(to_json("{'a': {'b': [1.5]}, 'c': {}}"),
            json({{"a", {{"b", {1.5}}}}, {"c", json::object()}}));
  EXPECT_EQ(to_json("[]"), json::array());
}

TEST(ExecutorPythonJson, ConvertsSubclassesOfPlainTypes) {
  std::string setup =
      "import collections, enum\n"
      "class Color(enum.IntEnum):\n    RED = 3\n"
      "Point = collections.namedtuple('Point', 'x y')\n";
  EXPECT_EQ(to_json("Color.RED", setup), json(3));
  EXPECT_EQ(to_json("Point(1, 2)", setup), json({1, 2}));
  EXPECT_EQ(to_json("collections.OrderedDict(a=1)", setup), json({{"a", 1}}));
}

TEST(ExecutorPythonJson, SendsNonFiniteFloatsAsStrings) {
  EXPECT_EQ(to_json("[float('nan'), float('inf'), -float('inf')]"),
            json({"NaN", "Infinity", "-Infinity"}));
}

TEST(ExecutorPythonJson, KeepsIntsWithin64Bits) {
  EXPECT_EQ(to_json("2**63 - 1"), json(INT64_MAX));
  EXPECT_EQ(to_json("-2**63"), json(INT64_MIN));
  json unsigned_max = to_json("2**64 - 1");
  EXPECT_TRUE(unsigned_max.is_number_unsigned());
  EXPECT_EQ(unsigned_max.get<std::uint64_t>(), UINT64_MAX);
  EXPECT_EQ(conversion_error("{'n': [2**64]}"),
            "results['n'][0] is an int that does not fit in 64 bits, which cannot be sent as JSON");
  EXPECT_EQ(conversion_error("-2**63 - 1"),
            "results is an int that does not fit in 64 bits, which cannot be sent as JSON");
}

TEST(ExecutorPythonJson, NamesThePathAndTypeOfWhatCannotBeSent) {
  EXPECT_EQ(conversion_error("{'curve': [0.5, 0.4, 0.3, {1, 2}]}"),
            "results['curve'][3] is a set (builtins.set), which cannot be sent as JSON");
  EXPECT_EQ(conversion_error("{'a': ({'b': object()},)}"),
            "results['a'][0]['b'] is an object (builtins.object), which cannot be sent as JSON");
  EXPECT_EQ(conversion_error("{\"it's\": b'raw'}"),
            "results[\"it's\"] is a bytes (builtins.bytes), which cannot be sent as JSON");
  EXPECT_EQ(conversion_error("[Thing()]", "class Thing:\n    pass\n"),
            "results[0] is a Thing (builtins.Thing), which cannot be sent as JSON");
  EXPECT_EQ(conversion_error("{'x': 1j}"),
            "results['x'] is a complex (builtins.complex), which cannot be sent as JSON");
}

// What json.dumps makes of `expression`, parsed: the reference for keys.
json as_json_dumps_makes_it(const std::string& expression, const std::string& setup = "") {
  return json::parse(
      evaluate("json.dumps(" + expression + ")", "import json\n" + setup).cast<std::string>());
}

TEST(ExecutorPythonJson, TurnsKeysJsonDumpsAcceptsIntoItsStrings) {
  EXPECT_EQ(to_json("{'per_class_acc': {0: 0.5, 1: 0.25}}"),
            json({{"per_class_acc", {{"0", 0.5}, {"1", 0.25}}}}));
  std::string setup =
      "import enum\n"
      "class Color(enum.IntEnum):\n    RED = 3\n";
  for (const char* keys :
       {"{1.5: 'a', -0.0: 'b', 1e100: 'c', 2**70: 'd', -7: 'e'}", "{True: 1, None: 2}",
        "{False: 3}", "{Color.RED: 'red'}", "{'x': {0.1: {None: [1]}}}"}) {
    EXPECT_EQ(to_json(keys, setup), as_json_dumps_makes_it(keys, setup)) << keys;
  }
  EXPECT_EQ(to_json("{1.5: 0, True: 1, None: 2}"), json({{"1.5", 0}, {"true", 1}, {"null", 2}}));
  EXPECT_EQ(to_json("{float('nan'): 1, float('inf'): 2, -float('inf'): 3}"),
            json({{"NaN", 1}, {"Infinity", 2}, {"-Infinity", 3}}));
}

TEST(ExecutorPythonJson, RefusesKeysThatBecomeTheSameString) {
  EXPECT_EQ(conversion_error("{'per_class_acc': {1: 'a', '1': 'b'}}"),
            "results['per_class_acc'] has the keys 1 (builtins.int) and '1' (builtins.str), "
            "which both become the JSON key \"1\"");
  EXPECT_EQ(conversion_error("{'null': 0, None: 1}"),
            "results has the keys 'null' (builtins.str) and None (builtins.NoneType), "
            "which both become the JSON key \"null\"");
}

TEST(ExecutorPythonJson, RefusesKeysJsonDumpsRefuses) {
  EXPECT_EQ(conversion_error("{'pairs': {(1, 2): 0.5}}"),
            "results['pairs'] has a key (1, 2) (builtins.tuple); JSON object keys must be str, "
            "int, float, bool or None");
}

TEST(ExecutorPythonJson, SendsDatesAndTimesInIso8601AndPathsAsStrings) {
  std::string setup = "import datetime, pathlib\n";
  EXPECT_EQ(to_json("{'when': datetime.datetime(2024, 1, 2, 3, 4, 5, 600000), "
                    "'aware': datetime.datetime(2024, 1, 2, tzinfo=datetime.timezone.utc), "
                    "'day': datetime.date(2024, 1, 2), 'at': datetime.time(12, 30)}",
                    setup),
            json({{"when", "2024-01-02T03:04:05.600000"},
                  {"aware", "2024-01-02T00:00:00+00:00"},
                  {"day", "2024-01-02"},
                  {"at", "12:30:00"}}));
  EXPECT_EQ(to_json("[pathlib.Path('runs') / 'a.pt', pathlib.PureWindowsPath('C:/data')]", setup),
            json({"runs/a.pt", "C:\\data"}));
  EXPECT_EQ(to_json("{datetime.date(2024, 1, 2): 1, pathlib.PurePosixPath('/d'): 2}", setup),
            json({{"2024-01-02", 1}, {"/d", 2}}));
  std::string message = conversion_error("{'took': datetime.timedelta(seconds=3)}", setup);
  EXPECT_EQ(message,
            "results['took'] is a timedelta (datetime.timedelta), which cannot be sent as JSON");
}

TEST(ExecutorPythonJson, RefusesAListThatContainsItself) {
  std::string message = conversion_error("loop", "loop = []\nloop.append(loop)\n");
  EXPECT_NE(message.find("nested more than"), std::string::npos) << message;
}

TEST(ExecutorPythonJson, EscapesLoneSurrogates) {
  EXPECT_EQ(to_json("'a\\udc80b'"), json("a\\udc80b"));
}

TEST(ExecutorPythonJson, ConvertsNumpyValues) {
  if (!can_import("numpy")) GTEST_SKIP() << "numpy is not installed";
  std::string setup = "import numpy as np\n";
  EXPECT_EQ(to_json("np.float32(0.5)", setup), json(0.5));
  EXPECT_EQ(to_json("np.int64(-7)", setup), json(-7));
  EXPECT_EQ(to_json("np.bool_(True)", setup), json(true));
  EXPECT_EQ(to_json("np.arange(6).reshape(2, 3)", setup), json({{0, 1, 2}, {3, 4, 5}}));
  EXPECT_EQ(to_json("np.array([np.nan, np.inf])", setup), json({"NaN", "Infinity"}));
  EXPECT_EQ(to_json("{'m': np.array(2.5)}", setup), json({{"m", 2.5}}));
  EXPECT_EQ(to_json("{'when': np.datetime64('2024-01-01')}", setup),
            json({{"when", "2024-01-01"}}));
  EXPECT_EQ(
      to_json("{np.int64(3): 1, np.float32(0.5): 2, np.bool_(False): 3, np.str_('s'): 4}", setup),
      json({{"3", 1}, {"0.5", 2}, {"false", 3}, {"s", 4}}));
}

TEST(ExecutorPythonJson, ConvertsTorchValues) {
  if (!can_import("torch")) GTEST_SKIP() << "torch is not installed";
  std::string setup = "import torch\n";
  EXPECT_EQ(to_json("torch.tensor(0.5)", setup), json(0.5));
  EXPECT_EQ(to_json("torch.tensor([[1, 2], [3, 4]])", setup), json({{1, 2}, {3, 4}}));
  EXPECT_EQ(to_json("torch.ones(2, requires_grad=True) * 2", setup), json({2.0, 2.0}));
  EXPECT_EQ(to_json("torch.tensor([float('nan')])", setup), json({"NaN"}));
  EXPECT_EQ(to_json("{torch.tensor(2): 'a', torch.tensor(0.5): 'b'}", setup),
            json({{"2", "a"}, {"0.5", "b"}}));
  std::string message = conversion_error("{'dtype': torch.float32}", setup);
  EXPECT_NE(message.find("results['dtype'] is a dtype (torch.dtype)"), std::string::npos)
      << message;
}

TEST(ExecutorPythonJson, MakesPlainPythonObjectsOfJson) {
  json value = {{"a", {1, 2.5, "x", nullptr, true}},
                {"big", UINT64_MAX},
                {"nested", {{"b", json::object()}}}};
  py::object converted = json_to_python(value);
  py::dict scope;
  scope["value"] = converted;
  EXPECT_TRUE(py::eval("value == {'a': [1, 2.5, 'x', None, True], 'big': 2**64 - 1, "
                       "'nested': {'b': {}}}",
                       scope)
                  .cast<bool>());
  EXPECT_TRUE(
      py::eval("type(value['a'][4]) is bool and type(value['a'][0]) is int", scope).cast<bool>());
  Result<json> round_trip = python_to_json(converted, "value");
  ASSERT_TRUE(round_trip);
  EXPECT_EQ(*round_trip, value);
}

// ---- python_errors -------------------------------------------------------------------------

// Runs `code` as if from the file `file` and returns the exception it raises.
py::error_already_set raised_by(const std::string& code, const std::string& file) {
  try {
    py::module_ builtins = py::module_::import("builtins");
    builtins.attr("exec")(builtins.attr("compile")(code, file, "exec"), py::dict());
  } catch (py::error_already_set& error) {
    return std::move(error);
  }
  ADD_FAILURE() << "no exception";
  return py::error_already_set();
}

TEST(ExecutorPythonErrors, SummarizesAsTypeColonMessage) {
  TempDir workdir;
  EXPECT_EQ(exception_summary(raised_by("raise ValueError('bad batch')", "x.py")),
            "ValueError: bad batch");
  EXPECT_EQ(exception_summary(raised_by("raise KeyboardInterrupt", "x.py")), "KeyboardInterrupt");
  EXPECT_EQ(exception_summary(raised_by("import json\njson.loads('{')", "x.py"))
                .rfind("json.decoder.JSONDecodeError: Expecting property name", 0),
            0u);
}

TEST(ExecutorPythonErrors, FormatsTheTracebackAndFindsTheUserFrame) {
  TempDir workdir;
  std::string file = (workdir.path() / "experiment.py").string();
  py::error_already_set error =
      raised_by("def run():\n    import json\n    json.loads('{')\nrun()\n", file);
  std::string traceback = format_traceback(error);
  EXPECT_EQ(traceback.rfind("Traceback (most recent call last):", 0), 0u) << traceback;
  EXPECT_NE(traceback.find("line 3, in run"), std::string::npos) << traceback;
  CodeLocation location = locate_in_user_code(error, workdir.path());
  EXPECT_EQ(location.file, "experiment.py");  // json's own frames lie outside the workdir
  EXPECT_EQ(location.line, 3);
}

TEST(ExecutorPythonErrors, LocatesASyntaxErrorByItsOwnFileAndLine) {
  TempDir workdir;
  std::string file = (workdir.path() / "sub" / "helper.py").string();
  py::error_already_set error = raised_by("x = 1\nif x\n    pass\n", file);
  EXPECT_EQ(exception_summary(error).rfind("SyntaxError: expected ':'", 0), 0u)
      << exception_summary(error);
  CodeLocation location = locate_in_user_code(error, workdir.path());
  EXPECT_EQ(location.file, "sub/helper.py");
  EXPECT_EQ(location.line, 2);

  CodeLocation outside = locate_in_user_code(raised_by("1/0", "/elsewhere/x.py"), workdir.path());
  EXPECT_FALSE(outside.file.has_value());
  EXPECT_FALSE(outside.line.has_value());
}

// ---- TrialContext and the _gridexp_executor module -----------------------------------------

class ExecutorTrialContext : public ::testing::Test {
 protected:
  ExecutorTrialContext() : context_(sink_, clock_) { TrialContext::install(&context_); }
  ~ExecutorTrialContext() override { TrialContext::install(nullptr); }

  py::object call(const std::string& expression) {
    return evaluate(expression, "import _gridexp_executor as executor\n");
  }

  FakeClock clock_{1'700'000'000'000};
  RecordingSink sink_;
  TrialContext context_;
  const json trial_ = {
      {"id", "t1"}, {"attempt", 2}, {"experiment", "e"}, {"hyperparameters", {{"lr", 0.1}}}};
};

TEST_F(ExecutorTrialContext, ServesTheTrialInHand) {
  EXPECT_TRUE(call("executor.trial() is None").cast<bool>());
  context_.begin_trial(trial_);
  EXPECT_TRUE(call("executor.trial() == {'id': 't1', 'attempt': 2, 'experiment': 'e', "
                   "'hyperparameters': {'lr': 0.1}}")
                  .cast<bool>());
  context_.end_trial();
  EXPECT_TRUE(call("executor.trial() is None").cast<bool>());
}

TEST_F(ExecutorTrialContext, ReportsMetricsWithStepAndTime) {
  context_.begin_trial(trial_);
  call("executor.report(7, {'loss': 0.5, 'curve': [1, 2]})");
  call("executor.report(None, {'acc': float('nan')})");
  std::vector<json> events = sink_.events();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0],
            as_json(MetricsEvent{"t1", 7, 1'700'000'000'000, {{"loss", 0.5}, {"curve", {1, 2}}}}));
  EXPECT_EQ(events[1]["step"], nullptr);
  EXPECT_EQ(events[1]["values"]["acc"], "NaN");
}

TEST_F(ExecutorTrialContext, RaisesTypeErrorForMetricsThatCannotBeSent) {
  context_.begin_trial(trial_);
  try {
    call("executor.report(1, {'s': {1}})");
    ADD_FAILURE() << "no exception";
  } catch (const py::error_already_set& error) {
    EXPECT_TRUE(error.matches(PyExc_TypeError));
    EXPECT_EQ(exception_summary(error),
              "TypeError: metrics['s'] is a set (builtins.set), which cannot be sent as JSON");
  }
  EXPECT_TRUE(sink_.events().empty());
}

TEST_F(ExecutorTrialContext, IgnoresReportsOutsideATrialWithAWarning) {
  py::object warnings = evaluate("caught",
                                 "import warnings, _gridexp_executor as executor\n"
                                 "with warnings.catch_warnings(record=True) as caught:\n"
                                 "    warnings.simplefilter('always')\n"
                                 "    executor.report(1, {'loss': 1.0})\n"
                                 "caught = [str(w.message) for w in caught]\n");
  EXPECT_EQ(warnings.cast<std::vector<std::string>>(),
            std::vector<std::string>{"gridexp.report() outside a trial is ignored"});
  EXPECT_TRUE(sink_.events().empty());
}

TEST_F(ExecutorTrialContext, StopsTheTrialInHandOrTheNextOneAsked) {
  EXPECT_FALSE(call("executor.should_stop()").cast<bool>());
  context_.begin_trial(trial_);
  context_.request_stop("other");
  EXPECT_FALSE(context_.should_stop());
  std::thread([this] { context_.request_stop("t1"); }).join();
  EXPECT_TRUE(call("executor.should_stop()").cast<bool>());
  context_.end_trial();
  EXPECT_FALSE(context_.should_stop());

  // A stop that overtakes its run command still counts.
  context_.request_stop("t2");
  json next = trial_;
  next["id"] = "t2";
  context_.begin_trial(next);
  EXPECT_TRUE(context_.should_stop());
  context_.end_trial();
  // Stops for trials over long ago are forgotten.
  context_.begin_trial(trial_);
  EXPECT_FALSE(context_.should_stop());
  context_.end_trial();
}

TEST_F(ExecutorTrialContext, SaysWhyTheTrialWasStoppedAndWhetherItsCodeSawTheStop) {
  context_.begin_trial(trial_);
  EXPECT_TRUE(call("executor.stop_reason() is None").cast<bool>());
  context_.request_stop("t1", StopReason::kPreempted);
  EXPECT_FALSE(context_.stop_observed()) << "nobody asked yet";
  EXPECT_EQ(call("executor.stop_reason()").cast<std::string>(), "preempted");
  EXPECT_TRUE(call("executor.should_stop()").cast<bool>());
  EXPECT_TRUE(context_.stop_observed());
  context_.request_stop("t1", StopReason::kCancelled);
  EXPECT_EQ(call("executor.stop_reason()").cast<std::string>(), "preempted") << "the first stands";
  context_.end_trial();
  EXPECT_TRUE(call("executor.stop_reason() is None").cast<bool>());

  context_.request_stop("t2", StopReason::kLeaseLost);  // overtakes its run command
  json next = trial_;
  next["id"] = "t2";
  context_.begin_trial(next);
  EXPECT_FALSE(context_.stop_observed()) << "a new trial starts unobserved";
  EXPECT_EQ(call("executor.stop_reason()").cast<std::string>(), "lease lost");
  context_.end_trial();
}

TEST_F(ExecutorTrialContext, ServesTheCheckpointToResumeFromAndPostsSavedOnes) {
  EXPECT_TRUE(
      call("executor.checkpoint() is None and executor.checkpoint_dir() is None").cast<bool>());
  context_.begin_trial(trial_, CheckpointRef{"/s/resume.ckpt", CheckpointKind::kObject, 40},
                       "/s/dir");
  EXPECT_TRUE(
      call("executor.checkpoint() == {'path': '/s/resume.ckpt', 'kind': 'object', 'step': 40}")
          .cast<bool>());
  EXPECT_EQ(call("executor.checkpoint_dir()").cast<std::string>(), "/s/dir");
  EXPECT_EQ(call("executor.staging_dir()").cast<std::string>(), "/s");
  call("executor.checkpoint_saved('/s/saved-1.ckpt', 'file', 50)");
  std::vector<json> events = sink_.events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0],
            as_json(CheckpointEvent{"t1", "/s/saved-1.ckpt", CheckpointKind::kFile, 50}));
  for (const char* refused : {"executor.checkpoint_saved('/elsewhere/x.ckpt', 'file', None)",
                              "executor.checkpoint_saved('/s/x.ckpt', 'pickle', None)"}) {
    try {
      call(refused);
      ADD_FAILURE() << refused << " was accepted";
    } catch (const py::error_already_set& error) {
      EXPECT_TRUE(error.matches(PyExc_ValueError)) << refused;
    }
  }
  EXPECT_EQ(sink_.events().size(), 1u);
  context_.end_trial();
  EXPECT_TRUE(
      call("executor.checkpoint() is None and executor.staging_dir() is None").cast<bool>());
}

TEST(ExecutorTrialContextModule, AnswersSafelyWithNoContextInstalled) {
  py::object answers = evaluate("(executor.trial(), executor.should_stop())",
                                "import _gridexp_executor as executor\n");
  EXPECT_TRUE(answers.equal(py::make_tuple(py::none(), false)));
}

// ---- Experiment ----------------------------------------------------------------------------

// A workdir with an experiment.py, importable as `experiment` while the fixture lives.
class ExecutorExperiment : public ::testing::Test {
 protected:
  ExecutorExperiment() : context_(sink_, clock_) {
    TrialContext::install(&context_);
    sys_path().attr("insert")(0, workdir_.path().string());
  }
  ~ExecutorExperiment() override {
    sys_path().attr("remove")(workdir_.path().string());
    py::module_::import("sys").attr("modules").attr("pop")("experiment", py::none());
    TrialContext::install(nullptr);
  }

  static py::object sys_path() { return py::module_::import("sys").attr("path"); }

  void write_experiment(const std::string& code) {
    std::ofstream(workdir_.path() / "experiment.py") << code;
  }

  StartCommand start_command(bool consistent_dataset = true, bool save_models = false) const {
    return {json{{"name", "demo"}}, consistent_dataset, save_models,
            save_models ? (workdir_.path() / "models").string() : ""};
  }

  static RunCommand run_command(const std::string& id, json hyperparameters = {{"lr", 0.1}}) {
    return {json{{"id", id},
                 {"attempt", 1},
                 {"experiment", "demo"},
                 {"hyperparameters", std::move(hyperparameters)}},
            id};
  }

  TempDir workdir_;
  FakeClock clock_;
  RecordingSink sink_;
  TrialContext context_;
};

TEST_F(ExecutorExperiment, RunsTrialsOnTheSharedDataset) {
  write_experiment(
      "import _gridexp_executor as executor\n"
      "calls = []\n"
      "def init_dataset(config):\n"
      "    calls.append(config)\n"
      "    return [1, 2, 3]\n"
      "def run_one(hyperparameters, dataset):\n"
      "    executor.report(1, {'seen': len(calls)})\n"
      "    return {'lr': hyperparameters['lr'], 'sum': sum(dataset),\n"
      "            'id': executor.trial()['id']}, None\n");
  Experiment experiment(workdir_.path());
  ASSERT_FALSE(experiment.start(start_command()).has_value());
  for (const char* id : {"a", "b"}) {
    TrialOutcome outcome = experiment.run_trial(run_command(id), context_);
    EXPECT_FALSE(outcome.interrupted);
    EXPECT_EQ(event_of(outcome),
              as_json(ResultEvent{id, {{"lr", 0.1}, {"sum", 6}, {"id", id}}, std::nullopt}));
  }
  ASSERT_EQ(sink_.events().size(), 2u);
  EXPECT_EQ(sink_.events()[1]["values"]["seen"], 1) << "init_dataset ran once";
  EXPECT_FALSE(context_.has_trial());
}

TEST_F(ExecutorExperiment, BuildsTheDatasetPerTrialWhenNotConsistent) {
  write_experiment(
      "calls = []\n"
      "def init_dataset(config):\n"
      "    calls.append(1)\n"
      "    return len(calls)\n"
      "def run_one(hyperparameters, dataset):\n"
      "    return dataset, None\n");
  Experiment experiment(workdir_.path());
  ASSERT_FALSE(experiment.start(start_command(/*consistent_dataset=*/false)).has_value());
  EXPECT_EQ(event_of(experiment.run_trial(run_command("a"), context_))["results"], 1);
  EXPECT_EQ(event_of(experiment.run_trial(run_command("b"), context_))["results"], 2);
}

TEST_F(ExecutorExperiment, AResultSaysWhetherRunOneSawTheStop) {
  write_experiment(
      "import _gridexp_executor as executor\n"
      "def init_dataset(config):\n"
      "    return None\n"
      "def run_one(hyperparameters, dataset):\n"
      "    if hyperparameters['poll']:\n"
      "        return executor.should_stop(), None\n"
      "    return False, None\n");
  Experiment experiment(workdir_.path());
  ASSERT_FALSE(experiment.start(start_command()).has_value());
  for (bool poll : {true, false}) {
    context_.request_stop("a", StopReason::kPreempted);  // before its run command
    json event = event_of(experiment.run_trial(run_command("a", {{"poll", poll}}), context_));
    EXPECT_EQ(event["results"], poll);
    EXPECT_EQ(event.value("stop_observed", false), poll) << event;
  }
}

TEST_F(ExecutorExperiment, ReportsWhatWentWrongInATrial) {
  write_experiment(
      "def init_dataset(config):\n"
      "    return None\n"
      "def run_one(hyperparameters, dataset):\n"
      "    kind = hyperparameters['kind']\n"
      "    if kind == 'raise':\n"
      "        raise ValueError('bad batch')\n"
      "    if kind == 'interrupt':\n"
      "        raise KeyboardInterrupt\n"
      "    if kind == 'dict':\n"
      "        return {'a': 1}\n"
      "    return {'curve': [1, {2}]}, None\n");
  Experiment experiment(workdir_.path());
  ASSERT_FALSE(experiment.start(start_command()).has_value());

  TrialOutcome raised = experiment.run_trial(run_command("r", {{"kind", "raise"}}), context_);
  EXPECT_EQ(event_of(raised)["type"], "failed");
  EXPECT_EQ(event_of(raised)["error"], "ValueError: bad batch");
  std::string traceback = event_of(raised)["traceback"].get<std::string>();
  EXPECT_NE(traceback.find("experiment.py\", line 6, in run_one"), std::string::npos) << traceback;
  EXPECT_FALSE(raised.interrupted);

  TrialOutcome not_a_pair = experiment.run_trial(run_command("d", {{"kind", "dict"}}), context_);
  EXPECT_EQ(event_of(not_a_pair),
            as_json(FailedEvent{
                "d", "run_one must return a tuple (results, model), but returned a dict", ""}));

  TrialOutcome unsendable = experiment.run_trial(run_command("s", {{"kind", "set"}}), context_);
  EXPECT_EQ(event_of(unsendable)["error"],
            "results['curve'][1] is a set (builtins.set), which cannot be sent as JSON");

  TrialOutcome interrupted =
      experiment.run_trial(run_command("i", {{"kind", "interrupt"}}), context_);
  EXPECT_EQ(event_of(interrupted)["error"], "KeyboardInterrupt");
  EXPECT_TRUE(interrupted.interrupted);
}

TEST_F(ExecutorExperiment, SavesModelsWithTheExperimentsOwnSaveModel) {
  write_experiment(
      "def init_dataset(config):\n"
      "    return None\n"
      "def save_model(model, path):\n"
      "    if model == 'skip':\n"
      "        return\n"
      "    with open(path, 'w') as f:\n"
      "        f.write(model)\n"
      "def run_one(hyperparameters, dataset):\n"
      "    return {}, hyperparameters['model']\n");
  Experiment experiment(workdir_.path());
  ASSERT_FALSE(experiment.start(start_command(true, /*save_models=*/true)).has_value());
  std::filesystem::path saved = workdir_.path() / "models" / "m.pt";
  EXPECT_EQ(event_of(experiment.run_trial(run_command("m", {{"model", "weights"}}), context_)),
            as_json(ResultEvent{"m", json::object(), saved.string()}));
  EXPECT_EQ(testing::read_file(saved), "weights");

  std::filesystem::path skipped = workdir_.path() / "models" / "s.pt";
  std::ofstream(skipped) << "left by an earlier attempt";
  EXPECT_EQ(
      event_of(experiment.run_trial(run_command("s", {{"model", "skip"}}), context_))["error"],
      "save_model(model, path) returned without writing " + skipped.string());

  EXPECT_EQ(event_of(experiment.run_trial(run_command("n", {{"model", nullptr}}), context_)),
            as_json(ResultEvent{"n", json::object(), std::nullopt}));
}

TEST_F(ExecutorExperiment, FailsToStartWithoutExperimentPy) {
  Experiment experiment(workdir_.path());
  std::optional<StartFailure> failure = experiment.start(start_command());
  ASSERT_TRUE(failure.has_value());
  EXPECT_EQ(failure->error, "experiment.py not found in " + workdir_.path().string());
}

TEST_F(ExecutorExperiment, FailsToStartOnASyntaxError) {
  write_experiment("def init_dataset(config):\n    return None\n\ndef run_one(:\n    pass\n");
  std::optional<StartFailure> failure = Experiment(workdir_.path()).start(start_command());
  ASSERT_TRUE(failure.has_value());
  EXPECT_EQ(failure->error.rfind("experiment.py could not be imported: SyntaxError: ", 0), 0u)
      << failure->error;
  EXPECT_EQ(failure->location.file, "experiment.py");
  EXPECT_EQ(failure->location.line, 4);
  EXPECT_NE(failure->traceback.find("SyntaxError"), std::string::npos);
}

TEST_F(ExecutorExperiment, FailsToStartWithoutRunOneOrInitDataset) {
  write_experiment("def init_dataset(config):\n    return None\n");
  std::optional<StartFailure> failure = Experiment(workdir_.path()).start(start_command());
  ASSERT_TRUE(failure.has_value());
  EXPECT_EQ(failure->error, "experiment.py does not define run_one(hyperparameters, dataset)");
  EXPECT_EQ(failure->location.file, "experiment.py");

  py::module_::import("sys").attr("modules").attr("pop")("experiment");
  write_experiment("run_one = 3\n");
  failure = Experiment(workdir_.path()).start(start_command());
  ASSERT_TRUE(failure.has_value());
  EXPECT_EQ(failure->error, "experiment.py does not define init_dataset(config)");

  py::module_::import("sys").attr("modules").attr("pop")("experiment");
  write_experiment("run_one = 3\ndef init_dataset(config):\n    return None\n");
  failure = Experiment(workdir_.path()).start(start_command());
  ASSERT_TRUE(failure.has_value());
  EXPECT_EQ(failure->error, "experiment.py defines run_one, but as an int, not a function");
}

TEST_F(ExecutorExperiment, NamesTheOriginalsLaterNamesAndWhatToRenameThem) {
  write_experiment(
      "def InitDataset(config):\n    return None\n"
      "def CreateModel(hyperparameters):\n    return None\n"
      "def RunOne(hyperparameters, dataset):\n    return {}, None\n"
      "def SaveModel(model, path):\n    pass\n");
  std::optional<StartFailure> failure = Experiment(workdir_.path()).start(start_command());
  ASSERT_TRUE(failure.has_value());
  EXPECT_EQ(failure->error,
            "experiment.py does not define init_dataset(config) or run_one(hyperparameters, "
            "dataset); it defines InitDataset, RunOne, SaveModel and CreateModel, which belong to "
            "another version of the original framework's contract: rename InitDataset to "
            "init_dataset, RunOne to run_one, SaveModel to save_model; CreateModel has no "
            "counterpart (build the model inside run_one, which returns it)");
  EXPECT_EQ(failure->location.file, "experiment.py");

  py::module_::import("sys").attr("modules").attr("pop")("experiment");
  write_experiment(
      "def init_dataset(config):\n    return None\n"
      "def RunOne(hyperparameters, dataset):\n    return {}, None\n");
  failure = Experiment(workdir_.path()).start(start_command());
  ASSERT_TRUE(failure.has_value());
  EXPECT_EQ(failure->error,
            "experiment.py does not define run_one(hyperparameters, dataset); it defines RunOne, "
            "which belongs to another version of the original framework's contract: rename "
            "RunOne to run_one");
}

TEST_F(ExecutorExperiment, FailsToStartWhenInitDatasetRaises) {
  write_experiment(
      "def init_dataset(config):\n"
      "    raise FileNotFoundError('imdb.pt')\n"
      "def run_one(hyperparameters, dataset):\n"
      "    return {}, None\n");
  std::optional<StartFailure> failure = Experiment(workdir_.path()).start(start_command());
  ASSERT_TRUE(failure.has_value());
  EXPECT_EQ(failure->error, "init_dataset(config) raised FileNotFoundError: imdb.pt");
  EXPECT_EQ(failure->location.file, "experiment.py");
  EXPECT_EQ(failure->location.line, 2);
}

}  // namespace
}  // namespace gridexp
