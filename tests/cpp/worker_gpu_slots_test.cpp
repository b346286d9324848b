// Tests for worker/gpu_slots: which GPUs a worker sees (the driver's list, or an inherited
// CUDA_VISIBLE_DEVICES), and which slot gets which CUDA_VISIBLE_DEVICES from --gpus and
// --trials-per-gpu; the errors that name the flag and the GPUs there are.
#include "worker/gpu_slots.h"

#include <gtest/gtest.h>

namespace gridexp {
namespace {

const std::vector<std::string> kTwoGpus = {"GPU 0: NVIDIA H200", "GPU 1: NVIDIA H200"};
const std::vector<std::string> kFourGpus = {"GPU 0: A", "GPU 1: B", "GPU 2: C", "GPU 3: D"};

GpuChoice listed(std::vector<int> indices) {
  return {GpuChoice::Kind::kListed, std::move(indices)};
}

std::vector<SlotPlan> plan_ok(const GpuChoice& choice, int trials_per_gpu,
                              const std::vector<VisibleGpu>& visible) {
  Result<std::vector<SlotPlan>> slots = plan_slots(choice, trials_per_gpu, visible);
  EXPECT_TRUE(slots) << slots.status().message();
  return slots ? *slots : std::vector<SlotPlan>{};
}

std::vector<std::string> cuda_devices_of(const std::vector<SlotPlan>& slots) {
  std::vector<std::string> devices;
  for (const SlotPlan& slot : slots) devices.push_back(slot.cuda_visible_devices.value_or("-"));
  return devices;
}

TEST(VisibleGpus, AreTheDriversWhenNothingIsInherited) {
  std::vector<VisibleGpu> visible = visible_gpus(kTwoGpus, std::nullopt);
  ASSERT_EQ(visible.size(), 2u);
  EXPECT_EQ(visible[1].physical, "1");
  EXPECT_EQ(visible[1].description, "GPU 1: NVIDIA H200");
}

TEST(VisibleGpus, FollowAnInheritedCudaVisibleDevicesInItsOrder) {
  std::vector<VisibleGpu> visible = visible_gpus(kFourGpus, std::string("3, 1"));
  ASSERT_EQ(visible.size(), 2u);
  EXPECT_EQ(visible[0].physical, "3");
  EXPECT_EQ(visible[0].description, "GPU 3: D");
  EXPECT_EQ(visible[1].physical, "1");
}

TEST(VisibleGpus, EndWhereCudaWouldStopReadingTheList) {
  EXPECT_EQ(visible_gpus(kTwoGpus, std::string("1,7,0")).size(), 1u) << "7 does not exist";
  EXPECT_TRUE(visible_gpus(kTwoGpus, std::string("")).empty());
  EXPECT_TRUE(visible_gpus(kTwoGpus, std::string("-1")).empty());
  std::vector<VisibleGpu> by_uuid = visible_gpus(kTwoGpus, std::string("GPU-8c2f"));
  ASSERT_EQ(by_uuid.size(), 1u);
  EXPECT_EQ(by_uuid[0].physical, "GPU-8c2f");
}

TEST(VisibleGpus, NoDriverNoGpu) { EXPECT_TRUE(visible_gpus({}, std::string("0,1")).empty()); }

TEST(PlanSlots, AllGpusOneSlotEach) {
  std::vector<SlotPlan> slots = plan_ok({}, 1, visible_gpus(kTwoGpus, std::nullopt));
  EXPECT_EQ(cuda_devices_of(slots), (std::vector<std::string>{"0", "1"}));
  EXPECT_EQ(slots[1].number, 1);
  EXPECT_EQ(slots[1].devices, (std::vector<std::string>{"GPU 1: NVIDIA H200"}));
  EXPECT_EQ(slot_label(slots[1]), "slot 1 (GPU 1: NVIDIA H200)");
}

TEST(PlanSlots, TwoGpusTwoTrialsEachMakeFourSlotsSharingTheirGpus) {
  std::vector<SlotPlan> slots = plan_ok(listed({0, 1}), 2, visible_gpus(kTwoGpus, std::nullopt));
  EXPECT_EQ(cuda_devices_of(slots), (std::vector<std::string>{"0", "0", "1", "1"}));
  for (int number = 0; number < 4; ++number) {
    EXPECT_EQ(slots[number].number, number);
    EXPECT_TRUE(slots[number].shares_gpu);
    EXPECT_EQ(slots[number].position_on_gpu, number % 2) << "its place at its GPU's share";
  }
  std::vector<SlotPlan> alone = plan_ok(listed({0, 1}), 1, visible_gpus(kTwoGpus, std::nullopt));
  EXPECT_FALSE(alone[0].shares_gpu);
  EXPECT_FALSE(alone[1].shares_gpu);
}

TEST(PlanSlots, ListedIndicesReferToTheInheritedList) {
  std::vector<SlotPlan> slots =
      plan_ok(listed({1}), 1, visible_gpus(kFourGpus, std::string("2,3")));
  EXPECT_EQ(cuda_devices_of(slots), (std::vector<std::string>{"3"}));
  EXPECT_EQ(slots[0].devices, (std::vector<std::string>{"GPU 3: D"}));
}

TEST(PlanSlots, NoGpuIsOneSlotOnTheCpuWithTheEnvironmentAsItIs) {
  std::vector<SlotPlan> slots = plan_ok({}, 4, {});
  ASSERT_EQ(slots.size(), 1u);
  EXPECT_FALSE(slots[0].cuda_visible_devices);
  EXPECT_TRUE(slots[0].devices.empty());
  EXPECT_EQ(slot_label(slots[0]), "slot 0 (CPU)");
}

TEST(PlanSlots, GpusNoneIsOneSlotThatSeesNoGpu) {
  std::vector<SlotPlan> slots =
      plan_ok({GpuChoice::Kind::kNone, {}}, 2, visible_gpus(kTwoGpus, std::nullopt));
  ASSERT_EQ(slots.size(), 1u);
  EXPECT_EQ(slots[0].cuda_visible_devices, "");
  EXPECT_TRUE(slots[0].devices.empty());
}

TEST(PlanSlots, AGpuThatIsNotThereNamesTheFlagAndTheGpusThatAre) {
  Result<std::vector<SlotPlan>> slots =
      plan_slots(listed({0, 7}), 1, visible_gpus(kTwoGpus, std::nullopt));
  ASSERT_FALSE(slots);
  EXPECT_EQ(slots.status().message(),
            "--gpus 7: no such GPU; the GPUs here are 0 (GPU 0: NVIDIA H200), 1 (GPU 1: NVIDIA "
            "H200)");
}

TEST(PlanSlots, ListedGpusOnAMachineWithoutOneAreAnError) {
  Result<std::vector<SlotPlan>> slots = plan_slots(listed({0}), 1, {});
  ASSERT_FALSE(slots);
  EXPECT_NE(slots.status().message().find("no GPU"), std::string::npos);
  EXPECT_EQ(slots.status().message().find('\n'), std::string::npos);
}

}  // namespace
}  // namespace gridexp
