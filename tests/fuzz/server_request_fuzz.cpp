// Fuzz target: what the server does with a request, body included, without a network: the
// input is raw HTTP requests (up to 8, as on one keep-alive connection), parsed by cpp-httplib and
// answered by the real routes (install_routes, cpp/server/routes.h: the gate, the worker protocol's
// body decoding, the read API, the actions) over an in-memory SqliteStore. One server answers
// inputs until its grid has nothing left to lease, then a fresh one is built: an input can see the
// state that earlier inputs left (a trial they completed, a worker they registered).
//
// Before each input a worker is registered and has claimed a trial, so that the calls behind
// a lease are reachable: "@WORKER@", "@TRIAL@" and "@LEASE@" in the input are replaced by that
// worker's id, the trial's id and its lease token (the seed corpus uses them; the password is
// "fuzz"). Any request must be answered without a crash, and never with the exception
// handler's "internal error" (an exception escaping a handler, e.g. a JSON value of an
// unexpected type).
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <httplib.h>

#include "common/clock.h"
#include "common/file_system.h"
#include "server/config.h"
#include "server/experiment_files.h"
#include "server/grid.h"
#include "server/model_files.h"
#include "server/routes.h"
#include "server/sqlite_store.h"
#include "server/trial_logs.h"

namespace fs = std::filesystem;

namespace {

// 2 x 2 x 50 points: a server answers up to 200 inputs before it is rebuilt, and a list of
// every trial stays cheap to answer.
std::string experiment_config() {
  std::string indexes;
  for (int index = 0; index < 50; ++index) indexes += (index ? ", " : "") + std::to_string(index);
  return "experiment_name: fuzz\ndataset: data.pt\nhyperparameters:\n  lr: [0.1, 0.01]\n"
         "  layers: [[8], [16, 8]]\n  index: [" +
         indexes + "]\n";
}

void require(bool condition, const char* what) {
  if (!condition) {
    std::fprintf(stderr, "server_request_fuzz: %s\n", what);
    std::abort();
  }
}

// The request comes from memory; the answer is kept to be checked.
class MemoryStream final : public httplib::Stream {
 public:
  explicit MemoryStream(std::string_view input) : input_(input) {}
  bool is_readable() const override { return true; }
  bool is_writable() const override { return true; }
  ssize_t read(char* data, std::size_t size) override {
    std::size_t count = std::min(size, input_.size() - position_);
    std::copy_n(input_.data() + position_, count, data);
    position_ += count;
    return static_cast<ssize_t>(count);
  }
  ssize_t write(const char* data, std::size_t size) override {
    output_.append(data, size);
    return static_cast<ssize_t>(size);
  }
  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    ip = "127.0.0.1";
    port = 40000;
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    ip = "127.0.0.1";
    port = 8030;
  }
  socket_t socket() const override { return INVALID_SOCKET; }
  const std::string& output() const { return output_; }
  bool at_end() const { return position_ == input_.size(); }

 private:
  std::string_view input_;
  std::size_t position_ = 0;
  std::string output_;
};

// process_request is protected: a subclass serves the requests of one stream, as on a
// keep-alive connection (at most kMaxRequests, so an input cannot take long).
class MemoryServer final : public httplib::Server {
 public:
  static constexpr int kMaxRequests = 8;
  void serve(MemoryStream& stream) {
    for (int count = 1; count <= kMaxRequests && !stream.at_end(); ++count) {
      if (!process(*this, stream, count == kMaxRequests)) return;
    }
  }

 private:
  // cpp-httplib 0.11 (Debian 12) takes the addresses from the stream, later versions as
  // arguments. A template, so that only the branch that compiles is instantiated (as in
  // server/http_server.cpp). False when the connection would be closed.
  template <typename Self>
  static bool process(Self& server, MemoryStream& stream, bool last) {
    bool closed = false;
    bool answered;
    if constexpr (requires { server.process_request(stream, last, closed, nullptr); }) {
      answered = server.process_request(stream, last, closed, nullptr);
    } else {
      answered = server.process_request(stream, "127.0.0.1", 40000, "127.0.0.1", 8030, last, closed,
                                        nullptr);
    }
    return answered && !closed;
  }
};

// Removed at exit; a crash leaves it for a look.
fs::path experiment_path;

void remove_experiment() {
  std::error_code ignored;
  fs::remove_all(experiment_path, ignored);
}

struct Experiment {
  Experiment()
      : directory(make_directory()), config(*gridexp::parse_config(experiment_config(), "config")) {
    gridexp::FileSystem& disk = gridexp::default_file_system();
    models = std::make_unique<gridexp::ModelFiles>(directory / "models", disk);
    checkpoints = std::make_unique<gridexp::CheckpointFiles>(directory / "checkpoints", disk);
    logs = std::make_unique<gridexp::TrialLogs>(directory / "logs", 1 << 20, disk);
    files = std::make_unique<gridexp::ExperimentFiles>(directory, directory / ".gridexp", disk);
    require(
        models->prepare().is_ok() && checkpoints->prepare({}).is_ok() && logs->prepare().is_ok(),
        "cannot prepare the files");
  }
  static fs::path make_directory() {
    std::error_code error;
    fs::path base = fs::is_directory("/dev/shm", error) && ::access("/dev/shm", W_OK) == 0
                        ? fs::path("/dev/shm")
                        : fs::temp_directory_path();
    fs::path directory = base / ("gridexp-server-fuzz-" + std::to_string(::getpid()));
    fs::remove_all(directory, error);
    fs::create_directories(directory / ".gridexp");
    std::ofstream(directory / "experiment.py") << "def run_one(h, d):\n    return {}, None\n";
    experiment_path = directory;
    std::atexit(remove_experiment);
    return directory;
  }
  fs::path directory;
  gridexp::ExperimentConfig config;
  std::unique_ptr<gridexp::ModelFiles> models;
  std::unique_ptr<gridexp::CheckpointFiles> checkpoints;
  std::unique_ptr<gridexp::TrialLogs> logs;
  std::unique_ptr<gridexp::ExperimentFiles> files;
  gridexp::SystemClock clock;
};

void replace_all(std::string& text, std::string_view from, const std::string& to) {
  for (std::size_t at = text.find(from); at != std::string::npos;
       at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
}

// Whether one of the answers is the exception handler's: a 500 whose body starts with
// {"error":"internal error: (the body alone could be a request's text echoed in an error).
bool exception_escaped(const std::string& answers) {
  for (std::size_t at = answers.find("HTTP/1.1 500 "); at != std::string::npos;
       at = answers.find("HTTP/1.1 500 ", at + 1)) {
    std::size_t body = answers.find("\r\n\r\n", at);
    if (body != std::string::npos &&
        answers.compare(body + 4, 26, "{\"error\":\"internal error: ") == 0) {
      return true;
    }
  }
  return false;
}

// A store, the context over it and a server with the routes installed. Building the routes
// (their regular expressions) costs far more than serving a request, so one server answers
// inputs until its grid has no pending trial left to lease.
struct Generation {
  explicit Generation(Experiment& experiment) {
    gridexp::SqliteOptions sqlite_options;
    sqlite_options.checkpoint_period = std::chrono::milliseconds(0);
    auto opened = gridexp::SqliteStore::open(":memory:", experiment.clock, gridexp::StoreOptions{},
                                             sqlite_options);
    require(opened.is_ok(), "cannot open the store");
    store = std::move(opened).value();
    require(store->sync_grid(gridexp::Grid(experiment.config)).is_ok(), "cannot add the grid");
    context = std::make_unique<gridexp::ServerContext>(*store, *experiment.files,
                                                       *experiment.models, *experiment.checkpoints,
                                                       *experiment.logs, experiment.clock);
    context->password = "fuzz";
    context->experiment_config = experiment.config.document;
    context->experiment_name = experiment.config.experiment_name;
    context->lease_seconds = 30;
    context->max_upload_bytes = 1 << 20;
    context->version = "0.1.0";
    context->login_throttle.set_max_failures(0);
    server = std::make_unique<MemoryServer>();
    server->set_payload_max_length(context->max_upload_bytes);
    gridexp::install_routes(*server, *context);
  }
  // Destroyed in reverse: the server, then the context, then the store.
  std::unique_ptr<gridexp::SqliteStore> store;
  std::unique_ptr<gridexp::ServerContext> context;
  std::unique_ptr<MemoryServer> server;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static Experiment experiment;
  static std::unique_ptr<Generation> generation;
  std::string worker_id;
  std::optional<gridexp::Lease> lease;
  for (int attempt = 0; attempt < 2 && !lease; ++attempt) {
    if (!generation) generation = std::make_unique<Generation>(experiment);
    auto worker = generation->store->register_worker(
        {"fuzz-host", 1, nlohmann::json::array(), "0.1.0", std::nullopt});
    require(worker.is_ok(), "cannot register");
    worker_id = worker->id;
    auto claim = generation->store->claim_next_trial(worker_id, "");
    if (claim && claim->lease) {
      lease = claim->lease;
    } else {
      generation.reset();
    }
  }
  require(lease.has_value(), "cannot lease a trial");

  std::string request(reinterpret_cast<const char*>(data), size);
  replace_all(request, "@WORKER@", worker_id);
  replace_all(request, "@TRIAL@", lease->trial_id);
  replace_all(request, "@LEASE@", lease->lease_token);
  MemoryStream stream(request);
  generation->server->serve(stream);
  // To see what a reproducer got: GRIDEXP_FUZZ_SHOW=1 server_request_fuzz crash-…
  static const bool show = std::getenv("GRIDEXP_FUZZ_SHOW") != nullptr;
  if (show) std::fprintf(stderr, "%s\n", stream.output().c_str());
  require(!exception_escaped(stream.output()), "an exception escaped a handler");
  return 0;
}
