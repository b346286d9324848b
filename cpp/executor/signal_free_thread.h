// Helper threads of the executor (command reader, event writer) run with every signal blocked:
// the kernel then delivers SIGINT to the main thread, where Python raises KeyboardInterrupt in
// the user's code, and the helpers' reads and writes are never cut short by EINTR.
#pragma once

#include <signal.h>

#include <thread>
#include <utility>

namespace gridexp {

template <typename Function>
std::thread start_signal_free_thread(Function&& function) {
  sigset_t all_signals;
  sigset_t previous;
  sigfillset(&all_signals);
  pthread_sigmask(SIG_SETMASK, &all_signals, &previous);  // the new thread inherits this mask
  std::thread thread(std::forward<Function>(function));
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  return thread;
}

}  // namespace gridexp
