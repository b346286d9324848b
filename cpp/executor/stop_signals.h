// StopSignals: the executor outlives the signals a batch system sends to every process of a
// job, so its worker can stop the running trial gracefully.
//
// Slurm's scancel, a time limit or a preemption sends SIGTERM (and a --signal warning, often
// SIGUSR1) to every process of the job: the worker and its executors alike. The worker takes
// such a signal as the order to preempt: it asks each executor to stop its trial (`stop`,
// reason "preempted"), waits --grace_seconds and then kills it (docs/executor.md,
// "Preemption"). An executor killed by the same signal would lose its trial instead.
//
// ignore_stop_signals_in_executor() makes this process ignore SIGTERM and SIGUSR1 by a handler,
// not SIG_IGN: a handler is reset by exec, so programs the trial starts get the default
// action, and in a process forked from the executor without exec (a torch DataLoader worker)
// it restores the default action and re-raises, so those die of the signal as before. SIGINT
// (KeyboardInterrupt in the trial) and SIGKILL are untouched. Call once, from main(), before
// any thread starts; the handler is async-signal-safe.
#pragma once

namespace gridexp {

// sigaction() fails only for a bad signal number or address, neither possible here.
void ignore_stop_signals_in_executor();

}  // namespace gridexp
