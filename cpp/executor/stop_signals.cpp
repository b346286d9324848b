// See stop_signals.h.
#include "executor/stop_signals.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>

namespace gridexp {
namespace {

constexpr int kStopSignals[] = {SIGTERM, SIGUSR1};

// The executor's pid, set before the handler is installed and never changed after.
volatile pid_t executor_pid = 0;

void on_stop_signal(int number) {
  if (::getpid() == executor_pid) return;  // the worker decides when the executor stops
  // A process forked from the executor: die of the signal, as without this handler. The
  // signal is blocked while its handler runs, so it arrives again when this returns.
  const int saved_errno = errno;
  struct sigaction default_action = {};
  default_action.sa_handler = SIG_DFL;
  sigemptyset(&default_action.sa_mask);
  ::sigaction(number, &default_action, nullptr);
  ::raise(number);
  errno = saved_errno;
}

}  // namespace

void ignore_stop_signals_in_executor() {
  executor_pid = ::getpid();
  struct sigaction action = {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  // A read of the command pipe or the user's sleep goes on after the signal.
  action.sa_flags = SA_RESTART;
  for (int number : kStopSignals) ::sigaction(number, &action, nullptr);
}

}  // namespace gridexp
