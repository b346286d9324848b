// Orphans: the processes the user's code started and left behind, ended by the worker.
//
// become_child_subreaper() makes this process the PR_SET_CHILD_SUBREAPER of everything it
// starts: a descendant of the executor whose parent exits (a daemon that double-forked, a
// `setsid` child of a dead shell) is re-parented to the worker instead of to init, so the
// worker still sees it. end_orphans() then ends every child of this process but the one it is
// told to keep (the live executor): SIGKILL, reap, and again for the orphans each death
// re-parents to us, until none is left.
//
// Not reached: a descendant that changed its user (kill() gets EPERM), and anything left when
// the worker itself is SIGKILLed (its executor dies with it by PR_SET_PDEATHSIG, but the
// executor's own descendants are re-parented to init). Process-wide; call from one thread
// at a time.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "common/status.h"

namespace gridexp {

Status become_child_subreaper();

// The live (or not yet reaped) child processes of this process, from /proc.
std::vector<pid_t> child_processes();

// Ends every child of this process except `keep` (-1: none kept), and the orphans that their
// deaths hand to a subreaper, for at most `max_wait`. Returns how many it ended. With a
// `marker` ("GRIDEXP_SLOT=2"), only the children that started with that variable in their
// environment (/proc/<pid>/environ): one executor slot's, while other slots' trials run on.
// Calls with different markers may run at once on different threads.
int end_orphans(pid_t keep, std::chrono::milliseconds max_wait, const std::string& marker = "");

// Whether the process started with the `marker` entry ("NAME=value") in its environment.
bool started_with_environment_entry(pid_t pid, const std::string& marker);

}  // namespace gridexp
