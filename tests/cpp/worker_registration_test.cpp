// POST /api/v1/workers and GET /api/v1/workers over HTTP, through the server's routes: a
// worker's Slurm placement is checked, stored and served (null for a worker outside Slurm).
#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/file_system.h"
#include "server/http_server.h"
#include "server/routes.h"
#include "server/sqlite_store.h"
#include "test_support.h"

namespace gridexp {
namespace {

constexpr const char* kPassword = "secret";

// The server's routes over a store in a TempDir, listening on a free loopback port.
class WorkerRegistrationTest : public ::testing::Test {
 protected:
  WorkerRegistrationTest()
      : store_(
            SqliteStore::open((dir_.path() / "state.db").string(), clock_, StoreOptions{}).value()),
        experiment_files_(dir_.path(), dir_.path() / ".gridexp", fs_),
        model_files_(dir_.path() / "models", fs_),
        checkpoint_files_(dir_.path() / "checkpoints", fs_),
        trial_logs_(dir_.path() / "logs", 1 << 20, fs_),
        context_(*store_, experiment_files_, model_files_, checkpoint_files_, trial_logs_, clock_),
        http_(2) {
    context_.password = kPassword;
    context_.experiment_name = "exp";
    install_routes(http_, context_);
    port_ = http_.bind("127.0.0.1", 0);
    serving_ = std::thread([this] { EXPECT_TRUE(http_.serve().is_ok()); });
    // stop() is ignored until the accept loop runs.
    while (!http_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~WorkerRegistrationTest() override {
    http_.stop();
    serving_.join();
    http_.close_connections();
  }

  // The answer to registering a worker with `about` as its body: status and JSON body.
  std::pair<int, nlohmann::json> register_worker(const nlohmann::json& about) {
    httplib::Client client("127.0.0.1", port_);
    httplib::Result answer = client.Post("/api/v1/workers", {{"Authorization", bearer()}},
                                         about.dump(), "application/json");
    if (!answer) return {0, nullptr};
    return {answer->status, nlohmann::json::parse(answer->body)};
  }

  // The registration of a worker on node01 with `slurm` as its placement.
  std::pair<int, nlohmann::json> register_with_slurm(const nlohmann::json& slurm) {
    return register_worker(
        {{"host", "node01"}, {"pid", 7}, {"version", "0.1.0"}, {"slurm", slurm}});
  }

  // GET /api/v1/workers: worker id -> the worker's JSON.
  std::map<std::string, nlohmann::json> workers() {
    httplib::Client client("127.0.0.1", port_);
    httplib::Result answer = client.Get("/api/v1/workers", {{"Authorization", bearer()}});
    std::map<std::string, nlohmann::json> by_id;
    if (!answer || answer->status != 200) {
      ADD_FAILURE() << "GET /api/v1/workers failed";
      return by_id;
    }
    for (const nlohmann::json& worker : nlohmann::json::parse(answer->body)) {
      by_id[worker["id"].get<std::string>()] = worker;
    }
    return by_id;
  }

  static std::string bearer() { return std::string("Bearer ") + kPassword; }

  testing::TempDir dir_;
  FakeClock clock_;
  FileSystem& fs_ = default_file_system();
  std::unique_ptr<SqliteStore> store_;
  ExperimentFiles experiment_files_;
  ModelFiles model_files_;
  CheckpointFiles checkpoint_files_;
  TrialLogs trial_logs_;
  ServerContext context_;
  HttpServer http_;
  int port_ = 0;
  std::thread serving_;
};

const nlohmann::json kArrayTask = {{"job_id", "1236"},
                                   {"array_job_id", "1234"},
                                   {"array_task_id", 2},
                                   {"node_list", "node[01-02]"},
                                   {"restart_count", 1}};

TEST_F(WorkerRegistrationTest, ASlurmPlacementIsStoredAndServed) {
  auto [status, registered] = register_with_slurm(kArrayTask);
  ASSERT_EQ(status, 201) << registered;
  auto [plain_status, plain] = register_worker({{"host", "laptop"}, {"pid", 8}});
  ASSERT_EQ(plain_status, 201) << plain;

  std::map<std::string, nlohmann::json> listed = workers();
  EXPECT_EQ(listed.at(registered["worker_id"].get<std::string>())["slurm"], kArrayTask);
  EXPECT_EQ(listed.at(plain["worker_id"].get<std::string>())["slurm"], nullptr);
}

TEST_F(WorkerRegistrationTest, APlacementWithoutItsOptionalKeysIsServedWithThemNull) {
  auto [status, registered] = register_with_slurm({{"job_id", "99"}});
  ASSERT_EQ(status, 201) << registered;
  EXPECT_EQ(workers().at(registered["worker_id"].get<std::string>())["slurm"],
            nlohmann::json({{"job_id", "99"},
                            {"array_job_id", nullptr},
                            {"array_task_id", nullptr},
                            {"node_list", nullptr},
                            {"restart_count", 0}}));
}

TEST_F(WorkerRegistrationTest, ANullPlacementIsNone) {
  auto [status, registered] = register_with_slurm(nullptr);
  ASSERT_EQ(status, 201) << registered;
  EXPECT_EQ(workers().at(registered["worker_id"].get<std::string>())["slurm"], nullptr);
}

TEST_F(WorkerRegistrationTest, EachWrongPlacementIsRefusedNamingTheKey) {
  auto with = [](const char* key, nlohmann::json value) {
    nlohmann::json placement = kArrayTask;
    placement[key] = std::move(value);
    return placement;
  };
  nlohmann::json without_job_id = kArrayTask;
  without_job_id.erase("job_id");
  const std::vector<std::pair<nlohmann::json, std::string>> refused = {
      {"1234", "slurm must be an object"},
      {nlohmann::json::array({"1234"}), "slurm must be an object"},
      {with("partition", "gpu"), "slurm.partition"},
      {without_job_id, "slurm.job_id"},
      {with("job_id", ""), "slurm.job_id"},
      {with("job_id", 1234), "slurm.job_id"},
      {with("job_id", "12a4"), "slurm.job_id"},
      {with("job_id", std::string(21, '1')), "slurm.job_id"},
      {with("array_job_id", "x"), "slurm.array_job_id"},
      {with("array_job_id", 1234), "slurm.array_job_id"},
      {with("array_task_id", -1), "slurm.array_task_id"},
      {with("array_task_id", 4294967296), "slurm.array_task_id"},
      {with("array_task_id", 2.5), "slurm.array_task_id"},
      {with("array_task_id", "2"), "slurm.array_task_id"},
      {with("node_list", std::string(1025, 'n')), "slurm.node_list"},
      {with("node_list", "node\n01"), "slurm.node_list"},
      {with("node_list", 1), "slurm.node_list"},
      {with("restart_count", -1), "slurm.restart_count"},
      {with("restart_count", nullptr), "slurm.restart_count"},
      {with("restart_count", 1.5), "slurm.restart_count"},
  };
  for (const auto& [placement, named] : refused) {
    auto [status, answer] = register_with_slurm(placement);
    EXPECT_EQ(status, 400) << placement;
    EXPECT_TRUE(testing::contains(answer.value("error", ""), named))
        << placement << " -> " << answer;
  }
  EXPECT_TRUE(workers().empty()) << "a refused registration registers nothing";
  // The limits themselves are accepted.
  EXPECT_EQ(register_with_slurm(with("array_task_id", 4294967295)).first, 201);
  EXPECT_EQ(register_with_slurm(with("node_list", std::string(1024, 'n'))).first, 201);
  EXPECT_EQ(register_with_slurm(with("job_id", std::string(20, '9'))).first, 201);
}

}  // namespace
}  // namespace gridexp
