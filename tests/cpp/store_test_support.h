// Helpers shared by the Store tests (store_test.cpp, store_checkpoint_test.cpp,
// store_gpu_memory_test.cpp), header-only, in gridexp::testing:
//   - value_of, expect_ok: the value of an OK result (anything else fails the test), an OK status.
//   - config_over, config_with_points, grid_of: configs and grids over one integer axis "x".
//   - worker_on, register_worker: a worker's registration and its id.
//   - SqliteStoreFile: a fixture with a database file in a TempDir, opened and reopened on a
//     FakeClock, up to a chosen schema version (migration tests).
// Like test_support.h, use each from one test thread.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "server/grid.h"
#include "server/sqlite_store.h"
#include "server/store.h"
#include "test_support.h"

namespace gridexp::testing {

// The value of an OK result. Anything else throws, which GoogleTest reports as a failure of
// the running test, with the status message.
template <typename T>
T value_of(Result<T> result) {
  if (!result.is_ok()) throw std::runtime_error("unexpected error: " + result.status().message());
  return std::move(result).value();
}

inline void expect_ok(const Status& status) { EXPECT_TRUE(status.is_ok()) << status.message(); }

// A config with one axis "x" over the given integers.
inline ExperimentConfig config_over(const std::string& experiment, const std::vector<int>& xs) {
  ExperimentConfig config;
  config.source_name = "config.yaml";
  config.experiment_name = experiment;
  Axis axis{"x", {}};
  for (int x : xs) axis.values.emplace_back(x);
  config.axes.push_back(std::move(axis));
  config.document = {{"experiment_name", experiment}};
  return config;
}

// A config with one axis "x" over 0 .. points - 1.
inline ExperimentConfig config_with_points(const std::string& experiment, int points) {
  std::vector<int> xs(static_cast<std::size_t>(points));
  for (int i = 0; i < points; ++i) xs[static_cast<std::size_t>(i)] = i;
  return config_over(experiment, xs);
}

// The grid of experiment "exp" over x = 0 .. points - 1.
inline Grid grid_of(int points) { return Grid(config_with_points("exp", points)); }

inline WorkerInfo worker_on(const std::string& host) {
  WorkerInfo info;
  info.host = host;
  info.pid = 4242;
  info.devices = nlohmann::json::array({"cuda:0"});
  info.version = "0.1.0";
  return info;
}

// Registers a worker on "gpu-box"; its id.
inline std::string register_worker(Store& store) {
  return value_of(store.register_worker(worker_on("gpu-box"))).id;
}

// A SqliteStore in a database file of its own, opened (again) by open_store().
class SqliteStoreFile : public ::testing::Test {
 protected:
  explicit SqliteStoreFile(StoreOptions store_options = {10'000, 3})
      : store_options_(store_options) {}

  std::unique_ptr<SqliteStore> open_store(SqliteOptions sqlite_options = {}) {
    return value_of(SqliteStore::open(path(), clock_, store_options_, sqlite_options));
  }
  // The store of a database migrated up to `schema_version` only, as an older gridexp left it.
  std::unique_ptr<SqliteStore> open_store_at_version(int schema_version) {
    SqliteOptions old_version;
    old_version.migrate_up_to_version = schema_version;
    return open_store(old_version);
  }
  std::string path() const { return (dir_.path() / "state.db").string(); }

  StoreOptions store_options_;
  FakeClock clock_;
  TempDir dir_;
};

}  // namespace gridexp::testing
