// Tests for executor/stop_signals: the executor outlives SIGTERM and SIGUSR1 (a batch system
// sends them to every process of a job), while processes it forks, and programs it starts, die
// of them as before. Each test runs the "executor" in a forked child, so this process's
// handlers stay as they were; the children make async-signal-safe calls only.
#include "executor/stop_signals.h"

#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <csignal>

namespace gridexp {
namespace {

// The exit codes of the forked "executor" below; anything else is a failure.
constexpr int kSurvived = 0;
constexpr int kForkedChildSurvived = 10;
constexpr int kStartedProgramSurvived = 11;
constexpr int kCannotFork = 12;

// The wait status of `child`.
int wait_status_of(pid_t child) {
  int status = 0;
  while (::waitpid(child, &status, 0) < 0) {
  }
  return status;
}

bool died_of(int wait_status, int number) {
  return WIFSIGNALED(wait_status) && WTERMSIG(wait_status) == number;
}

// In a forked child: the executor's handlers, then `number` to itself, to a child it forks and
// to a program it execs. Exits with kSurvived when only the executor survived.
[[noreturn]] void run_executor_receiving(int number) {
  ignore_stop_signals_in_executor();
  ::raise(number);
  ::raise(number);  // and again: the handler stays

  pid_t forked = ::fork();
  if (forked < 0) ::_exit(kCannotFork);
  if (forked == 0) {
    ::raise(number);
    ::_exit(0);
  }
  if (!died_of(wait_status_of(forked), number)) ::_exit(kForkedChildSurvived);

  pid_t started = ::fork();
  if (started < 0) ::_exit(kCannotFork);
  if (started == 0) {
    // exec resets a handled signal to its default action.
    ::execl("/bin/sh", "sh", "-c",
            number == SIGTERM ? "kill -TERM $$; exit 0" : "kill -USR1 $$; exit 0",
            static_cast<char*>(nullptr));
    ::_exit(kCannotFork);
  }
  if (!died_of(wait_status_of(started), number)) ::_exit(kStartedProgramSurvived);
  ::_exit(kSurvived);
}

void expect_only_the_executor_survives(int number) {
  pid_t executor = ::fork();
  ASSERT_GE(executor, 0);
  if (executor == 0) run_executor_receiving(number);
  int status = wait_status_of(executor);
  ASSERT_TRUE(WIFEXITED(status)) << "the executor died of signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), kSurvived);
}

TEST(StopSignals, OnlyTheExecutorOutlivesSigterm) { expect_only_the_executor_survives(SIGTERM); }

TEST(StopSignals, OnlyTheExecutorOutlivesSigusr1) { expect_only_the_executor_survives(SIGUSR1); }

TEST(StopSignals, SigintStillEndsTheExecutor) {
  pid_t executor = ::fork();
  ASSERT_GE(executor, 0);
  if (executor == 0) {
    // The default whatever this test inherited (a background job starts with SIGINT ignored).
    ::signal(SIGINT, SIG_DFL);
    ignore_stop_signals_in_executor();
    ::raise(SIGINT);
    ::_exit(kSurvived);
  }
  EXPECT_TRUE(died_of(wait_status_of(executor), SIGINT));
}

}  // namespace
}  // namespace gridexp
