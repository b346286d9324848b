// Tests for worker/gpu_packing (how many trials fit on a GPU: pure arithmetic) and
// worker/gpu_share (slots taking turns at one GPU: the waits, the exclusive turn of a trial
// that ran out of memory while sharing, the ceiling an out-of-memory error leaves).
#include <atomic>
#include <chrono>
#include <thread>

#include <gtest/gtest.h>

#include "worker/gpu_packing.h"
#include "worker/gpu_share.h"

namespace gridexp {
namespace {

constexpr std::int64_t kGiB = std::int64_t{1} << 30;

GpuMemoryView gpu(std::optional<std::int64_t> total, std::optional<std::int64_t> used,
                  std::optional<std::int64_t> peak) {
  return {total, used, peak};
}

TEST(GpuPacking, OneTrialUntilAPeakIsMeasuredAndWithoutNvml) {
  EXPECT_EQ(trials_that_fit(gpu(std::nullopt, std::nullopt, std::nullopt)), 1);
  EXPECT_EQ(trials_that_fit(gpu(80 * kGiB, 0, std::nullopt)), 1);
  EXPECT_EQ(trials_that_fit(gpu(std::nullopt, std::nullopt, kGiB)), 1);
}

TEST(GpuPacking, KIsNinetyPercentOfTotalOverPeakPlusAllowance) {
  // floor(0.9 * 10 GiB / (2 GiB + 512 MiB)) = floor(3.6)
  EXPECT_EQ(trials_that_fit(gpu(10 * kGiB, 0, 2 * kGiB)), 3);
  // floor(0.9 * 10 GiB / 3 GiB) = floor(3.0): exactly on the boundary
  EXPECT_EQ(trials_that_fit(gpu(10 * kGiB, 0, 3 * kGiB - (kGiB / 2))), 3);
  EXPECT_EQ(trials_that_fit(gpu(10 * kGiB, 0, 4 * kGiB)), 2);
  EXPECT_EQ(trials_that_fit(gpu(10 * kGiB, 0, 9 * kGiB)), 1) << "never below one";
  EXPECT_EQ(trials_that_fit(gpu(10 * kGiB, 0, 40 * kGiB)), 1);
  EXPECT_EQ(trials_that_fit(gpu(80 * kGiB, 0, kGiB)), kMaxAutoTrialsPerGpu) << "48 fit";
  EXPECT_EQ(trials_that_fit(gpu(80 * kGiB, 0, 0)), kMaxAutoTrialsPerGpu);
  PackingRule four;
  four.max_trials = 4;
  EXPECT_EQ(trials_that_fit(gpu(80 * kGiB, 0, kGiB), four), 4);
}

TEST(GpuPacking, SharersAreAddedOneAtATimeAsPeaksAreReported) {
  GpuMemoryView fits_three = gpu(10 * kGiB, 0, 2 * kGiB);
  EXPECT_EQ(packing_ceiling(fits_three, 0, 8), 1);
  EXPECT_EQ(packing_ceiling(fits_three, 1, 8), 2);
  EXPECT_EQ(packing_ceiling(fits_three, 2, 8), 3);
  EXPECT_EQ(packing_ceiling(fits_three, 20, 8), 3);
  EXPECT_EQ(packing_ceiling(fits_three, 20, 2), 2) << "an out-of-memory ceiling";
  EXPECT_EQ(packing_ceiling(gpu(std::nullopt, std::nullopt, kGiB), 20, 8), 1) << "no NVML";
}

TEST(GpuPacking, ATrialJoinsOnlyBelowTheCeilingAndThePressureThreshold) {
  GpuMemoryView calm = gpu(10 * kGiB, 2 * kGiB, kGiB);
  EXPECT_TRUE(may_join(0, 1, gpu(std::nullopt, std::nullopt, std::nullopt))) << "the first";
  EXPECT_TRUE(may_join(0, 1, gpu(10 * kGiB, 10 * kGiB, kGiB))) << "the first, under pressure";
  EXPECT_TRUE(may_join(1, 3, calm));
  EXPECT_TRUE(may_join(2, 3, calm));
  EXPECT_FALSE(may_join(3, 3, calm));
  EXPECT_TRUE(may_join(1, 3, gpu(100 * kGiB, 85 * kGiB, kGiB))) << "85% is not above 85%";
  EXPECT_FALSE(may_join(1, 3, gpu(100 * kGiB, 86 * kGiB, kGiB)));
  EXPECT_FALSE(may_join(1, 3, gpu(std::nullopt, std::nullopt, kGiB))) << "unmeasured";
}

TEST(GpuPacking, AnOutOfMemoryErrorLowersTheCeilingBelowWhatRanThen) {
  EXPECT_EQ(ceiling_after_out_of_memory(8, 4), 3);
  EXPECT_EQ(ceiling_after_out_of_memory(2, 4), 2) << "never raises it";
  EXPECT_EQ(ceiling_after_out_of_memory(8, 2), 1);
  EXPECT_EQ(ceiling_after_out_of_memory(8, 1), 1);
}

// A GPU of `total` bytes whose NVML reading the test can change.
struct FakeGpu {
  std::atomic<std::int64_t> used{0};
  std::int64_t total = 10 * kGiB;

  GpuShare::MemoryReader reader() {
    return [this]() -> std::optional<GpuSample> {
      return GpuSample{0, 50, static_cast<std::uint64_t>(used.load()),
                       static_cast<std::uint64_t>(total)};
    };
  }
};

// Runs `work` on a thread and says whether it has returned.
class Background {
 public:
  explicit Background(std::function<bool()> work)
      : thread_([this, work = std::move(work)] {
          result_ = work();
          done_ = true;
        }) {}
  ~Background() { thread_.join(); }
  bool done() const { return done_; }
  bool result() const { return result_; }
  // True once done, false if not within `limit`.
  bool wait(std::chrono::milliseconds limit = std::chrono::milliseconds(5000)) const {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done_ && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return done_;
  }

 private:
  std::atomic<bool> done_{false};
  std::atomic<bool> result_{false};
  std::thread thread_;
};

void settle() { std::this_thread::sleep_for(std::chrono::milliseconds(150)); }

GpuShare::GiveUp never() {
  return [] { return false; };
}

TEST(GpuShare, AutoRunsOneTrialUntilAPeakIsMeasuredThenWhatFits) {
  FakeGpu fake;
  GpuShare share(GpuShare::Mode::kAutomatic, 8, fake.reader());
  EXPECT_TRUE(share.try_start(0));
  EXPECT_FALSE(share.try_start(1));
  EXPECT_FALSE(share.shared_during_turn(0));
  share.finish(0, 2 * kGiB);
  EXPECT_EQ(share.ceiling(), 2) << "one sharer more per reported peak";
  EXPECT_TRUE(share.try_start(0));
  EXPECT_TRUE(share.try_start(1));
  EXPECT_FALSE(share.try_start(2));
  share.finish(1, 2 * kGiB);
  EXPECT_EQ(share.ceiling(), 3) << "K_fit";
  EXPECT_TRUE(share.try_start(1));
  EXPECT_TRUE(share.try_start(2));
  EXPECT_FALSE(share.try_start(3));
  EXPECT_EQ(share.running(), 3);
  EXPECT_TRUE(share.shared_during_turn(0));
  share.finish(1, 4 * kGiB);
  EXPECT_EQ(share.ceiling(), 2) << "the largest peak counts";
  EXPECT_FALSE(share.try_start(1));
}

TEST(GpuShare, AutoWithoutNvmlRunsOneTrialAtATime) {
  GpuShare share(GpuShare::Mode::kAutomatic, 8, {});
  EXPECT_TRUE(share.try_start(0));
  share.finish(0, kGiB);
  EXPECT_TRUE(share.try_start(0));
  EXPECT_FALSE(share.try_start(1));
}

TEST(GpuShare, NoTrialJoinsUnderPressure) {
  FakeGpu fake;
  GpuShare share(GpuShare::Mode::kAutomatic, 8, fake.reader());
  share.finish(0, kGiB);
  fake.used = 9 * kGiB;
  EXPECT_TRUE(share.try_start(0)) << "the first trial always starts";
  EXPECT_FALSE(share.try_start(1));
  fake.used = 2 * kGiB;
  EXPECT_TRUE(share.try_start(1));
}

TEST(GpuShare, AWaitingStartGoesOnWhenATurnEndsOrGivesUp) {
  FakeGpu fake;
  GpuShare share(GpuShare::Mode::kAutomatic, 8, fake.reader());
  ASSERT_TRUE(share.try_start(0));
  Background waiting([&] { return share.start(1, never()); });
  settle();
  EXPECT_FALSE(waiting.done());
  share.finish(0, kGiB);
  ASSERT_TRUE(waiting.wait());
  EXPECT_TRUE(waiting.result());

  std::atomic<bool> interrupted{false};
  fake.used = fake.total;
  Background pressed([&] { return share.start(2, [&] { return interrupted.load(); }); });
  settle();
  EXPECT_FALSE(pressed.done());
  interrupted = true;
  ASSERT_TRUE(pressed.wait());
  EXPECT_FALSE(pressed.result());
  EXPECT_EQ(share.running(), 1);
}

TEST(GpuShare, FixedModeRunsKWhatever) {
  GpuShare share(GpuShare::Mode::kFixed, 2, {});
  EXPECT_TRUE(share.try_start(0));
  EXPECT_TRUE(share.try_start(1));
  EXPECT_EQ(share.ceiling(), 2);
  share.finish(0, 100 * kGiB);
  EXPECT_EQ(share.ceiling(), 2) << "no measuring with a fixed K";
}

TEST(GpuShare, AloneWaitsForRunningSiblingsWhileNoneStarts) {
  GpuShare share(GpuShare::Mode::kFixed, 3, {});
  ASSERT_TRUE(share.try_start(0));
  ASSERT_TRUE(share.try_start(1));
  EXPECT_TRUE(share.shared_during_turn(0));
  Background alone([&] { return share.start_alone(0, never()); });
  settle();
  EXPECT_FALSE(alone.done()) << "slot 1's trial still runs";
  EXPECT_FALSE(share.try_start(2)) << "no new start while a slot waits to be alone";
  share.finish(1);
  ASSERT_TRUE(alone.wait());
  EXPECT_TRUE(alone.result());
  EXPECT_EQ(share.running(), 1);
  EXPECT_FALSE(share.shared_during_turn(0));
  EXPECT_FALSE(share.try_start(1)) << "nor while it runs alone";
  share.end_alone(0);
  EXPECT_TRUE(share.try_start(1));
  EXPECT_TRUE(share.try_start(2));
  share.finish(0);
  share.finish(1);
  share.finish(2);
  EXPECT_EQ(share.running(), 0);
}

TEST(GpuShare, TwoSlotsWantingToBeAloneTakeTurns) {
  GpuShare share(GpuShare::Mode::kFixed, 2, {});
  ASSERT_TRUE(share.try_start(0));
  ASSERT_TRUE(share.try_start(1));
  std::atomic<int> alone_at_once{0};
  std::atomic<int> most_alone_at_once{0};
  auto run_alone = [&](int position) {
    if (!share.start_alone(position, never())) return false;
    most_alone_at_once = std::max(most_alone_at_once.load(), ++alone_at_once);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    --alone_at_once;
    share.end_alone(position);
    share.finish(position);
    return true;
  };
  Background first([&] { return run_alone(0); });
  Background second([&] { return run_alone(1); });
  ASSERT_TRUE(first.wait());
  ASSERT_TRUE(second.wait());
  EXPECT_TRUE(first.result() && second.result());
  EXPECT_EQ(most_alone_at_once.load(), 1);
  EXPECT_EQ(share.running(), 0);
}

TEST(GpuShare, GivingUpTheWaitToBeAloneLetsTheOthersGoOn) {
  GpuShare share(GpuShare::Mode::kFixed, 3, {});
  ASSERT_TRUE(share.try_start(0));
  ASSERT_TRUE(share.try_start(1));
  std::atomic<bool> lease_lost{false};
  Background alone([&] { return share.start_alone(0, [&] { return lease_lost.load(); }); });
  settle();
  lease_lost = true;
  ASSERT_TRUE(alone.wait());
  EXPECT_FALSE(alone.result());
  EXPECT_TRUE(share.try_start(2));
  share.finish(0);  // the loop's finish() of a turn given up: nothing more to give back
  EXPECT_EQ(share.running(), 2);
}

TEST(GpuShare, AnOutOfMemoryErrorWhileSharingLowersTheCeiling) {
  FakeGpu fake;
  GpuShare share(GpuShare::Mode::kAutomatic, 8, fake.reader());
  for (int trial = 0; trial < 5; ++trial) share.finish(0, kGiB);
  ASSERT_EQ(share.ceiling(), 6) << "floor(9 GiB / 1.5 GiB)";
  for (int position = 0; position < 3; ++position) ASSERT_TRUE(share.try_start(position));
  share.finish(2);
  Background alone([&] { return share.start_alone(0, never()); });
  settle();
  EXPECT_EQ(share.ceiling(), 2) << "three ran when it ran out of memory";
  share.finish(1);
  ASSERT_TRUE(alone.wait());
  share.end_alone(0);
  EXPECT_TRUE(share.try_start(1));
  EXPECT_FALSE(share.try_start(2));
  share.finish(0, kGiB);
  share.finish(1, kGiB);
  EXPECT_EQ(share.ceiling(), 2) << "for the rest of the run";
}

TEST(GpuShare, AFixedKKeepsItsCeilingAfterAnOutOfMemoryError) {
  GpuShare share(GpuShare::Mode::kFixed, 2, {});
  ASSERT_TRUE(share.try_start(0));
  ASSERT_TRUE(share.try_start(1));
  share.finish(1);
  ASSERT_TRUE(share.start_alone(0, never()));
  share.end_alone(0);
  share.finish(0);
  EXPECT_EQ(share.ceiling(), 2);
}

}  // namespace
}  // namespace gridexp
