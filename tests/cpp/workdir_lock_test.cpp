#include "worker/workdir_lock.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "test_support.h"

namespace gridexp {
namespace {

TEST(WorkdirLock, ASecondWorkerIsRefusedNamingTheFirstUntilItLetsGo) {
  testing::TempDir dir;
  Result<std::unique_ptr<WorkdirLock>> first = WorkdirLock::acquire(dir.path());
  ASSERT_TRUE(first.is_ok()) << first.status().message();

  Result<std::unique_ptr<WorkdirLock>> second = WorkdirLock::acquire(dir.path());
  ASSERT_FALSE(second.is_ok());
  EXPECT_EQ(second.status().code(), Code::kConflict);
  const std::string& message = second.status().message();
  EXPECT_NE(message.find("pid " + std::to_string(::getpid())), std::string::npos) << message;
  EXPECT_NE(message.find(dir.path().parent_path().string()), std::string::npos) << message;
  EXPECT_NE(message.find("--workdir"), std::string::npos) << message;

  first.value().reset();
  EXPECT_TRUE(WorkdirLock::acquire(dir.path()).is_ok());
}

TEST(WorkdirLock, AFileLeftByADeadWorkerDoesNotBlock) {
  testing::TempDir dir;
  std::ofstream(dir.path() / "lock") << "pid 1 on elsewhere\n";
  Result<std::unique_ptr<WorkdirLock>> lock = WorkdirLock::acquire(dir.path());
  ASSERT_TRUE(lock.is_ok()) << lock.status().message();
  std::ifstream written(dir.path() / "lock");
  std::string owner;
  std::getline(written, owner);
  EXPECT_EQ(owner.rfind("pid " + std::to_string(::getpid()) + " on ", 0), 0u) << owner;
}

}  // namespace
}  // namespace gridexp
