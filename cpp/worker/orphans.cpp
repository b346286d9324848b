#include "worker/orphans.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

namespace gridexp {
namespace {

// The parent pid in /proc/<pid>/stat: the fourth field, counted after the command name, which
// is in parentheses and may itself hold spaces and parentheses.
pid_t parent_of(const std::filesystem::path& stat_path) {
  std::ifstream in(stat_path);
  std::string line;
  if (!std::getline(in, line)) return -1;
  std::size_t name_end = line.rfind(')');
  if (name_end == std::string::npos) return -1;
  char state = 0;
  int parent = -1;
  if (std::sscanf(line.c_str() + name_end + 1, " %c %d", &state, &parent) != 2) return -1;
  return parent;
}

}  // namespace

Status become_child_subreaper() {
  if (::prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
    return Status::internal(std::string("PR_SET_CHILD_SUBREAPER: ") + std::strerror(errno));
  }
  return Status::ok();
}

std::vector<pid_t> child_processes() {
  std::vector<pid_t> children;
  pid_t self = ::getpid();
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", error)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) continue;
    if (parent_of(entry.path() / "stat") == self) children.push_back(std::stoi(name));
  }
  return children;
}

bool started_with_environment_entry(pid_t pid, const std::string& marker) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/environ", std::ios::binary);
  std::string entry;
  while (std::getline(in, entry, '\0')) {
    if (entry == marker) return true;
  }
  return false;
}

int end_orphans(pid_t keep, std::chrono::milliseconds max_wait, const std::string& marker) {
  auto deadline = std::chrono::steady_clock::now() + max_wait;
  int ended = 0;
  std::vector<pid_t> doomed;
  while (true) {
    std::vector<pid_t> children = child_processes();
    std::erase(children, keep);
    if (!marker.empty()) {
      // A killed child's environ reads empty once it is a zombie: it stays doomed until reaped.
      std::erase_if(children, [&](pid_t child) {
        return std::find(doomed.begin(), doomed.end(), child) == doomed.end() &&
               !started_with_environment_entry(child, marker);
      });
    }
    if (children.empty()) return ended;
    // A child is ours until we reap it, so its pid cannot have been reused in between. One
    // that outlives SIGKILL for a while (another user's, in uninterruptible sleep) is not
    // waited for beyond `max_wait`.
    doomed.clear();
    for (pid_t child : children) {
      ::kill(child, SIGKILL);
      if (::waitpid(child, nullptr, WNOHANG) == child) {
        ++ended;
      } else {
        doomed.push_back(child);
      }
    }
    if (std::chrono::steady_clock::now() >= deadline) return ended;
    // The children's own children are re-parented to us as they die: look again.
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

}  // namespace gridexp
