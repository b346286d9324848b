// The GLIBC_TUNABLES gridexp-server restarts itself with: the server's tcache setting added
// to the user's own tunables, never over a value the user chose, and nothing to do once set
// (so the restart happens once).
#include "server/malloc_tuning.h"

#include <gtest/gtest.h>

namespace gridexp {
namespace {

TEST(MallocTuningTest, AddsTheTcacheCountWhenUnset) {
  EXPECT_EQ(tunables_with_server_malloc_settings(nullptr), "glibc.malloc.tcache_count=64");
  EXPECT_EQ(tunables_with_server_malloc_settings(""), "glibc.malloc.tcache_count=64");
}

TEST(MallocTuningTest, KeepsTheUsersOtherTunables) {
  EXPECT_EQ(tunables_with_server_malloc_settings("glibc.malloc.arena_max=2"),
            "glibc.malloc.arena_max=2:glibc.malloc.tcache_count=64");
  // A name that only starts like the setting is another setting.
  EXPECT_EQ(tunables_with_server_malloc_settings("glibc.malloc.tcache_count_x=1"),
            "glibc.malloc.tcache_count_x=1:glibc.malloc.tcache_count=64");
}

TEST(MallocTuningTest, AddsNothingWhenTheCountIsAlreadySet) {
  EXPECT_EQ(tunables_with_server_malloc_settings("glibc.malloc.tcache_count=64"), "");
  EXPECT_EQ(tunables_with_server_malloc_settings("glibc.malloc.tcache_count=7"), "");
  EXPECT_EQ(
      tunables_with_server_malloc_settings("glibc.malloc.arena_max=2:glibc.malloc.tcache_count=3"),
      "");
}

}  // namespace
}  // namespace gridexp
