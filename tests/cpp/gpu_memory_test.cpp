// What the executor frees after a trial (release_after_trial, over a fake AcceleratorMemory)
// and each trial's peak GPU memory, through Experiment with a fake torch.cuda in sys.modules:
// no CUDA needed. Runs in executor_test's binary, whose environment starts the interpreter.
#include <gtest/gtest.h>
#include <pybind11/embed.h>

#include <cstdint>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "executor/accelerator_memory.h"
#include "executor/experiment.h"
#include "test_support.h"

namespace gridexp {
namespace {

namespace py = pybind11;
using nlohmann::json;
using testing::TempDir;

// ---- The release policy ----------------------------------------------------------------------

// Allocated bytes as a script: each allocated_bytes() answers the next figure (the last repeats).
class ScriptedMemory final : public AcceleratorMemory {
 public:
  explicit ScriptedMemory(std::vector<std::optional<std::int64_t>> figures)
      : figures_(std::move(figures)) {}
  std::optional<std::int64_t> allocated_bytes() override {
    std::optional<std::int64_t> figure = figures_.at(std::min(next_, figures_.size() - 1));
    ++next_;
    return figure;
  }
  void collect_garbage() override { ++collections; }
  void empty_cache() override { ++emptied; }

  int collections = 0;
  int emptied = 0;

 private:
  std::vector<std::optional<std::int64_t>> figures_;
  std::size_t next_ = 0;
};

TEST(ReleaseAfterTrial, DoesNothingWithoutAnAcceleratorInUse) {
  ScriptedMemory memory({std::nullopt});
  ReleaseReport report = release_after_trial(memory, std::nullopt, /*shared=*/true);
  EXPECT_FALSE(report.collected_garbage);
  EXPECT_FALSE(report.emptied_cache);
  EXPECT_EQ(memory.collections + memory.emptied, 0);
}

TEST(ReleaseAfterTrial, ATrialThatLeftNothingPaysForNothing) {
  ScriptedMemory memory({1000});
  ReleaseReport report = release_after_trial(memory, 1000, /*shared=*/false);
  EXPECT_FALSE(report.collected_garbage);
  EXPECT_FALSE(report.emptied_cache);
  EXPECT_EQ(memory.collections + memory.emptied, 0);

  ScriptedMemory fewer({400});  // the trial freed part of the dataset
  EXPECT_FALSE(release_after_trial(fewer, 1000, false).collected_garbage);
}

TEST(ReleaseAfterTrial, OnASharedGpuTheCacheIsEmptiedWithoutACollection) {
  ScriptedMemory memory({1000});
  ReleaseReport report = release_after_trial(memory, 1000, /*shared=*/true);
  EXPECT_FALSE(report.collected_garbage);
  EXPECT_TRUE(report.emptied_cache);
  EXPECT_EQ(memory.collections, 0);
  EXPECT_EQ(memory.emptied, 1);
}

TEST(ReleaseAfterTrial, GarbageLeftInCyclesIsCollectedAndTheCacheKept) {
  ScriptedMemory memory({1500, 1000});
  ReleaseReport report = release_after_trial(memory, 1000, /*shared=*/false);
  EXPECT_TRUE(report.collected_garbage);
  EXPECT_FALSE(report.emptied_cache);
  EXPECT_EQ(memory.collections, 1);
}

TEST(ReleaseAfterTrial, MemoryStillHeldAfterTheCollectionEmptiesTheCache) {
  ScriptedMemory memory({1500, 1200});
  ReleaseReport report = release_after_trial(memory, 1000, /*shared=*/false);
  EXPECT_TRUE(report.collected_garbage);
  EXPECT_TRUE(report.emptied_cache);
}

TEST(ReleaseAfterTrial, ATrialThatFirstUsedTheGpuStartsFromNothing) {
  ScriptedMemory clean({0});
  EXPECT_FALSE(release_after_trial(clean, std::nullopt, false).collected_garbage);
  ScriptedMemory leaked({512, 0});
  ReleaseReport report = release_after_trial(leaked, std::nullopt, false);
  EXPECT_TRUE(report.collected_garbage);
  EXPECT_FALSE(report.emptied_cache);
}

TEST(ReleaseAfterTrial, TheSharedSettingIsOneInTheEnvironment) {
  EXPECT_TRUE(shared_gpu_from_environment("1"));
  EXPECT_FALSE(shared_gpu_from_environment(nullptr));
  EXPECT_FALSE(shared_gpu_from_environment(""));
  EXPECT_FALSE(shared_gpu_from_environment("0"));
  EXPECT_FALSE(shared_gpu_from_environment("yes"));
}

// ---- Experiment over a fake torch.cuda -------------------------------------------------------

class DiscardingSink final : public EventSink {
 public:
  void post(ExecutorEvent) override {}
};

// The fake: two devices; FakeTensor(device, n) holds n bytes until it is freed. Every call but
// is_initialized() while CUDA is not initialized is counted in `uninitialized_calls`.
// gc.collect is wrapped to count the executor's collections; automatic collection is off
// so that only the executor's collections free cycles.
constexpr const char* kFakeTorch = R"py(
import gc, sys, types

class FakeCuda:
    def __init__(self):
        self.initialized = False
        self.allocated = [0, 0]
        self.peaks = [0, 0]
        self.emptied = 0
        self.uninitialized_calls = 0
    def _check(self):
        if not self.initialized:
            self.uninitialized_calls += 1
    def is_initialized(self):
        return self.initialized
    def device_count(self):
        self._check()
        return len(self.allocated)
    def memory_allocated(self, device):
        self._check()
        return self.allocated[device]
    def max_memory_allocated(self, device):
        self._check()
        return self.peaks[device]
    def reset_peak_memory_stats(self, device):
        self._check()
        self.peaks[device] = self.allocated[device]
    def empty_cache(self):
        self._check()
        self.emptied += 1

cuda = FakeCuda()
torch = types.ModuleType("torch")
torch.cuda = cuda
sys.modules["torch"] = torch

class FakeTensor:
    def __init__(self, device, size):
        cuda.initialized = True
        self.device, self.size = device, size
        cuda.allocated[device] += size
        cuda.peaks[device] = max(cuda.peaks[device], cuda.allocated[device])
    def __del__(self):
        cuda.allocated[self.device] -= self.size

collections = [0]
real_collect = gc.collect
def counting_collect(*args):
    collections[0] += 1
    return real_collect(*args)
gc.collect = counting_collect
gc.disable()

held = []
)py";

constexpr const char* kExperiment = R"py(
from fake_torch import FakeTensor, cuda, collections, held

def init_dataset(config):
    return FakeTensor(0, 1000) if config.get("gpu_dataset") else None

def run_one(hyperparameters, dataset):
    kind = hyperparameters["kind"]
    work = FakeTensor(hyperparameters.get("device", 0), hyperparameters.get("bytes", 300))
    if kind == "cycle":
        cycle = [work]
        cycle.append(cycle)
    elif kind == "hold":
        held.append(work)
    elif kind == "raise":
        raise MemoryError("CUDA out of memory")
    return {}, None
)py";

class ExperimentGpuMemory : public ::testing::Test {
 protected:
  ExperimentGpuMemory() : context_(sink_, clock_) {
    TrialContext::install(&context_);
    py::exec(
        "import sys\n"
        "_saved_torch = sys.modules.get('torch')\n",
        scope_);
    std::ofstream(workdir_.path() / "fake_torch.py") << kFakeTorch;
    std::ofstream(workdir_.path() / "experiment.py") << kExperiment;
    sys_path().attr("insert")(0, workdir_.path().string());
  }
  ~ExperimentGpuMemory() override {
    py::exec(
        "import gc, sys\n"
        "fake = sys.modules.pop('fake_torch', None)\n"
        "if fake is not None:\n"
        "    gc.collect = fake.real_collect\n"
        "gc.enable()\n"
        "sys.modules.pop('experiment', None)\n"
        "sys.modules.pop('torch', None)\n"
        "if _saved_torch is not None:\n"
        "    sys.modules['torch'] = _saved_torch\n",
        scope_);
    sys_path().attr("remove")(workdir_.path().string());
    TrialContext::install(nullptr);
  }

  static py::object sys_path() { return py::module_::import("sys").attr("path"); }
  static py::object fake() { return py::module_::import("fake_torch"); }
  static py::object cuda() { return fake().attr("cuda"); }
  static int collections() { return fake().attr("collections")[py::int_(0)].cast<int>(); }
  static int emptied() { return cuda().attr("emptied").cast<int>(); }
  static std::int64_t allocated(int device) {
    return cuda().attr("allocated")[py::int_(device)].cast<std::int64_t>();
  }

  void write_cpu_experiment() {
    std::ofstream(workdir_.path() / "experiment.py") << "def init_dataset(config):\n"
                                                        "    return None\n"
                                                        "def run_one(hyperparameters, dataset):\n"
                                                        "    return {}, None\n";
  }

  static StartCommand start_command(bool gpu_dataset) {
    return {json{{"gpu_dataset", gpu_dataset}}, true, false, ""};
  }
  static RunCommand run(const std::string& id, json hyperparameters) {
    return {json{{"id", id},
                 {"attempt", 1},
                 {"experiment", "demo"},
                 {"hyperparameters", std::move(hyperparameters)}},
            id};
  }
  // The peak the trial's event carries.
  static std::optional<std::int64_t> peak_of(const TrialOutcome& outcome) {
    if (const auto* result = std::get_if<ResultEvent>(&outcome.event)) {
      return result->peak_gpu_memory_bytes;
    }
    return std::get<FailedEvent>(outcome.event).peak_gpu_memory_bytes;
  }

  py::dict scope_;
  TempDir workdir_;
  FakeClock clock_;
  DiscardingSink sink_;
  TrialContext context_;
};

TEST_F(ExperimentGpuMemory, ATrialThatLeavesNothingIsNeitherCollectedNorEmptied) {
  Experiment experiment(workdir_.path());
  ASSERT_FALSE(experiment.start(start_command(/*gpu_dataset=*/true)).has_value());
  for (const char* id : {"a", "b", "c"}) {
    TrialOutcome outcome = experiment.run_trial(run(id, {{"kind", "clean"}}), context_);
    ASSERT_TRUE(std::holds_alternative<ResultEvent>(outcome.event));
    EXPECT_EQ(peak_of(outcome), 1300) << "the dataset and the trial's tensor";
  }
  EXPECT_EQ(collections(), 0);
  EXPECT_EQ(emptied(), 0);
  EXPECT_EQ(allocated(0), 1000) << "the dataset stays";
}

TEST_F(ExperimentGpuMemory, GarbageInCyclesIsCollectedBeforeTheNextTrial) {
  Experiment experiment(workdir_.path());
  ASSERT_FALSE(experiment.start(start_command(true)).has_value());
  experiment.run_trial(run("cycle", {{"kind", "cycle"}}), context_);
  EXPECT_EQ(collections(), 1);
  EXPECT_EQ(emptied(), 0) << "the collection freed it all: the cache serves the next trial";
  EXPECT_EQ(allocated(0), 1000);

  TrialOutcome failed = experiment.run_trial(run("oom", {{"kind", "raise"}}), context_);
  ASSERT_TRUE(std::holds_alternative<FailedEvent>(failed.event));
  EXPECT_EQ(peak_of(failed), 1300);
  EXPECT_EQ(allocated(0), 1000) << "the failed trial's tensor does not reach the next trial";
  EXPECT_EQ(emptied(), 0);
}

TEST_F(ExperimentGpuMemory, MemoryStillHeldAfterACollectionEmptiesTheCache) {
  Experiment experiment(workdir_.path());
  ASSERT_FALSE(experiment.start(start_command(true)).has_value());
  experiment.run_trial(run("hold", {{"kind", "hold"}}), context_);
  EXPECT_EQ(collections(), 1);
  EXPECT_EQ(emptied(), 1);
}

TEST_F(ExperimentGpuMemory, OnASharedGpuEveryTrialEmptiesTheCacheWithoutACollection) {
  Experiment experiment(workdir_.path(), /*shared_gpu=*/true);
  ASSERT_FALSE(experiment.start(start_command(true)).has_value());
  experiment.run_trial(run("a", {{"kind", "clean"}}), context_);
  experiment.run_trial(run("b", {{"kind", "clean"}}), context_);
  EXPECT_EQ(collections(), 0);
  EXPECT_EQ(emptied(), 2);
}

TEST_F(ExperimentGpuMemory, ThePeakIsEachTrialsOwnHighestOverTheDevices) {
  Experiment experiment(workdir_.path());
  ASSERT_FALSE(experiment.start(start_command(true)).has_value());
  TrialOutcome big = experiment.run_trial(
      run("big", {{"kind", "clean"}, {"device", 1}, {"bytes", 5000}}), context_);
  EXPECT_EQ(peak_of(big), 5000) << "device 1's peak, not the sum with device 0";
  TrialOutcome small = experiment.run_trial(
      run("small", {{"kind", "clean"}, {"device", 1}, {"bytes", 10}}), context_);
  EXPECT_EQ(peak_of(small), 1000) << "the peaks were reset: device 0's dataset is the highest";
}

TEST_F(ExperimentGpuMemory, NoCudaCallsAndNoPeakWhileCudaIsNotInitialized) {
  py::exec("import fake_torch\n");  // torch "imported", CUDA never initialized
  write_cpu_experiment();
  Experiment experiment(workdir_.path());
  ASSERT_FALSE(experiment.start(start_command(false)).has_value());
  TrialOutcome outcome = experiment.run_trial(run("cpu", {{"kind", "clean"}}), context_);
  EXPECT_FALSE(peak_of(outcome).has_value());
  EXPECT_EQ(cuda().attr("uninitialized_calls").cast<int>(), 0);
  EXPECT_EQ(collections(), 0);
}

TEST_F(ExperimentGpuMemory, NoPeakWithoutTorch) {
  py::exec("import sys\nsys.modules.pop('torch', None)\n");  // the fixture puts it back
  write_cpu_experiment();
  Experiment experiment(workdir_.path());
  ASSERT_FALSE(experiment.start(start_command(false)).has_value());
  TrialOutcome outcome = experiment.run_trial(run("cpu", {{"kind", "clean"}}), context_);
  ASSERT_TRUE(std::holds_alternative<ResultEvent>(outcome.event));
  EXPECT_FALSE(peak_of(outcome).has_value());
}

}  // namespace
}  // namespace gridexp
