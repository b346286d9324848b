#include "server/malloc_tuning.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <string_view>

namespace gridexp {
namespace {

constexpr std::string_view kTcacheCount = "glibc.malloc.tcache_count";
constexpr std::string_view kServerTcacheCount = "glibc.malloc.tcache_count=64";

}  // namespace

std::string tunables_with_server_malloc_settings(const char* current) {
  std::string tunables = current == nullptr ? "" : current;
  // name=value pairs separated by ':'.
  std::string_view rest = tunables;
  while (!rest.empty()) {
    std::string_view pair = rest.substr(0, rest.find(':'));
    if (pair.substr(0, pair.find('=')) == kTcacheCount) return "";
    rest.remove_prefix(std::min(rest.size(), pair.size() + 1));
  }
  if (!tunables.empty()) tunables += ':';
  tunables += kServerTcacheCount;
  return tunables;
}

void restart_with_server_malloc_settings(char** argv) {
  std::string tunables = tunables_with_server_malloc_settings(std::getenv("GLIBC_TUNABLES"));
  if (tunables.empty()) return;
  if (::setenv("GLIBC_TUNABLES", tunables.c_str(), 1) != 0) return;
  ::execv("/proc/self/exe", argv);
  // Not reached unless exec failed (no /proc): run as we are, without a second attempt.
}

}  // namespace gridexp
