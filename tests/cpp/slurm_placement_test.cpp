// Tests for worker/slurm_placement: the placement a worker registers with, from a Slurm job's
// environment (here a map in place of the process's).
#include "worker/slurm_placement.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

namespace gridexp {
namespace {

using Environment = std::map<std::string, std::string>;

std::optional<nlohmann::json> placement_in(const Environment& environment) {
  return slurm_placement([&](const char* name) -> const char* {
    auto found = environment.find(name);
    return found == environment.end() ? nullptr : found->second.c_str();
  });
}

TEST(SlurmPlacement, NoneOutsideSlurm) {
  EXPECT_EQ(placement_in({}), std::nullopt);
  EXPECT_EQ(placement_in({{"SLURM_JOB_ID", ""}, {"SLURM_JOB_NODELIST", "node01"}}), std::nullopt);
}

TEST(SlurmPlacement, APlainJob) {
  EXPECT_EQ(placement_in({{"SLURM_JOB_ID", "1234"}, {"SLURM_JOB_NODELIST", "node[01-04]"}}),
            nlohmann::json({{"job_id", "1234"},
                            {"array_job_id", nullptr},
                            {"array_task_id", nullptr},
                            {"node_list", "node[01-04]"},
                            {"restart_count", 0}}));
}

TEST(SlurmPlacement, AnArrayTaskThatWasRequeued) {
  EXPECT_EQ(placement_in({{"SLURM_JOB_ID", "1236"},
                          {"SLURM_ARRAY_JOB_ID", "1234"},
                          {"SLURM_ARRAY_TASK_ID", "2"},
                          {"SLURM_JOB_NODELIST", "node01"},
                          {"SLURM_RESTART_COUNT", "3"}}),
            nlohmann::json({{"job_id", "1236"},
                            {"array_job_id", "1234"},
                            {"array_task_id", 2},
                            {"node_list", "node01"},
                            {"restart_count", 3}}));
}

TEST(SlurmPlacement, MalformedValuesAreNullOrZero) {
  EXPECT_EQ(placement_in({{"SLURM_JOB_ID", "1236"},
                          {"SLURM_ARRAY_JOB_ID", "12x"},
                          {"SLURM_ARRAY_TASK_ID", "-1"},
                          {"SLURM_JOB_NODELIST", "node\x01"},
                          {"SLURM_RESTART_COUNT", "two"}}),
            nlohmann::json({{"job_id", "1236"},
                            {"array_job_id", nullptr},
                            {"array_task_id", nullptr},
                            {"node_list", nullptr},
                            {"restart_count", 0}}));
}

TEST(SlurmPlacement, ValuesTheServerWouldRefuseAreLeftOut) {
  std::optional<nlohmann::json> placement =
      placement_in({{"SLURM_JOB_ID", "7"},
                    {"SLURM_ARRAY_TASK_ID", "4294967296"},
                    {"SLURM_JOB_NODELIST", std::string(1025, 'n')},
                    {"SLURM_RESTART_COUNT", "99999999999999999999999"}});
  ASSERT_TRUE(placement);
  EXPECT_EQ((*placement)["array_task_id"], nullptr);
  EXPECT_EQ((*placement)["node_list"], nullptr);
  EXPECT_EQ((*placement)["restart_count"], 0);
  EXPECT_EQ(placement_in({{"SLURM_JOB_ID", "4294967295"}, {"SLURM_ARRAY_TASK_ID", "4294967295"}})
                .value()["array_task_id"],
            4294967295);
}

TEST(SlurmPlacement, AJobIdThatIsNotDigitsIsNoPlacement) {
  EXPECT_EQ(placement_in({{"SLURM_JOB_ID", "12.3"}}), std::nullopt);
  EXPECT_EQ(placement_in({{"SLURM_JOB_ID", std::string(21, '1')}}), std::nullopt);
}

}  // namespace
}  // namespace gridexp
