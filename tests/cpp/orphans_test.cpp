// Tests for worker/orphans: what a child leaves behind with setsid and a double fork comes back
// to a subreaper, and end_orphans() ends it (and what it started in turn) but not the child
// it is told to keep.
#include "worker/orphans.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <vector>

namespace gridexp {
namespace {

bool is_child(pid_t pid) {
  std::vector<pid_t> children = child_processes();
  return std::find(children.begin(), children.end(), pid) != children.end();
}

bool is_gone(pid_t pid) { return ::kill(pid, 0) != 0 && errno == ESRCH; }

// Forks a child that starts a new session, forks `depth` generations of daemons below it
// (each one's parent a daemon too) and exits. Returns the daemons' pids, which each wrote to
// a pipe before pausing forever.
std::vector<pid_t> leave_daemons_behind(int depth) {
  int pids[2];
  EXPECT_EQ(::pipe(pids), 0);
  pid_t child = ::fork();
  if (child == 0) {
    ::setsid();
    for (int generation = 0; generation < depth; ++generation) {
      if (::fork() != 0) {
        if (generation == 0) ::_exit(0);  // the first parent exits: its daemon is orphaned
        break;
      }
      pid_t self = ::getpid();
      if (::write(pids[1], &self, sizeof self) != static_cast<ssize_t>(sizeof self)) ::_exit(1);
    }
    while (true) ::pause();
  }
  ::close(pids[1]);
  ::waitpid(child, nullptr, 0);
  std::vector<pid_t> daemons;
  for (int generation = 0; generation < depth; ++generation) {
    pid_t daemon = -1;
    EXPECT_EQ(::read(pids[0], &daemon, sizeof daemon), static_cast<ssize_t>(sizeof daemon));
    daemons.push_back(daemon);
  }
  ::close(pids[0]);
  return daemons;
}

TEST(Orphans, ADoubleForkedDaemonComesBackToTheSubreaperAndIsEnded) {
  ASSERT_TRUE(become_child_subreaper());
  std::vector<pid_t> daemons = leave_daemons_behind(1);
  ASSERT_TRUE(is_child(daemons[0]));
  EXPECT_EQ(end_orphans(-1, std::chrono::seconds(10)), 1);
  EXPECT_TRUE(is_gone(daemons[0]));
  EXPECT_TRUE(child_processes().empty());
}

TEST(Orphans, WhatADaemonStartedIsEndedToo) {
  ASSERT_TRUE(become_child_subreaper());
  std::vector<pid_t> daemons = leave_daemons_behind(3);
  EXPECT_EQ(end_orphans(-1, std::chrono::seconds(10)), 3);
  for (pid_t daemon : daemons) EXPECT_TRUE(is_gone(daemon)) << daemon;
}

TEST(Orphans, TheKeptChildIsLeftAlone) {
  ASSERT_TRUE(become_child_subreaper());
  pid_t kept = ::fork();
  if (kept == 0) {
    while (true) ::pause();
  }
  std::vector<pid_t> daemons = leave_daemons_behind(1);
  EXPECT_EQ(end_orphans(kept, std::chrono::seconds(10)), 1);
  EXPECT_TRUE(is_gone(daemons[0]));
  EXPECT_EQ(::kill(kept, 0), 0);
  ::kill(kept, SIGKILL);
  ::waitpid(kept, nullptr, 0);
}

// A child running sleep(1) with `entry` as its whole environment, once it has exec'd.
pid_t start_sleeper_with(const char* entry) {
  pid_t child = ::fork();
  if (child == 0) {
    char* const environment[] = {const_cast<char*>(entry), nullptr};
    ::execle("/bin/sleep", "sleep", "1000", static_cast<char*>(nullptr), environment);
    ::_exit(127);
  }
  for (int wait = 0; wait < 10'000 && !started_with_environment_entry(child, entry); ++wait) {
    ::usleep(1000);
  }
  EXPECT_TRUE(started_with_environment_entry(child, entry)) << entry;
  return child;
}

TEST(Orphans, AMarkerEndsOnlyTheChildrenThatStartedWithIt) {
  pid_t first_slot = start_sleeper_with("GRIDEXP_SLOT=1");
  pid_t second_slot = start_sleeper_with("GRIDEXP_SLOT=2");
  pid_t first_slot_executor = start_sleeper_with("GRIDEXP_SLOT=1");
  EXPECT_EQ(end_orphans(first_slot_executor, std::chrono::seconds(10), "GRIDEXP_SLOT=1"), 1);
  EXPECT_TRUE(is_gone(first_slot));
  EXPECT_EQ(::kill(second_slot, 0), 0);
  EXPECT_EQ(::kill(first_slot_executor, 0), 0);
  for (pid_t left : {second_slot, first_slot_executor}) {
    ::kill(left, SIGKILL);
    ::waitpid(left, nullptr, 0);
  }
}

}  // namespace
}  // namespace gridexp
