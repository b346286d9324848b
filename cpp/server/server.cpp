#include "server/server.h"

#include <signal.h>
#include <sys/socket.h>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <optional>
#include <thread>

#include <httplib.h>

#include "common/file_system.h"
#include "common/version.h"
#include "server/config.h"
#include "server/config_change.h"
#include "server/experiment_files.h"
#include "server/grid.h"
#include "server/http_server.h"
#include "server/model_files.h"
#include "server/password.h"
#include "server/plotly_js.h"
#include "server/routes.h"
#include "server/sqlite_store.h"
#include "server/terminal_text.h"

namespace gridexp {
namespace {

constexpr std::uint64_t kMaxLogBytesPerTrial = 64ull << 20;

// Runs `task` every `period` on its own thread until destroyed.
class PeriodicTask {
 public:
  PeriodicTask(std::chrono::milliseconds period, std::function<void()> task)
      : thread_([this, period, task = std::move(task)] {
          std::unique_lock lock(mutex_);
          while (!stop_) {
            if (wake_.wait_for(lock, period, [this] { return stop_; })) break;
            lock.unlock();
            task();
            lock.lock();
          }
        }) {}
  ~PeriodicTask() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }

 private:
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::thread thread_;
};

// Turns SIGINT/SIGTERM into a call of `on_signal` on an ordinary thread (no work in a signal
// handler). Must be constructed before any other thread so that all of them inherit the mask.
class ShutdownSignals {
 public:
  ShutdownSignals() {
    sigemptyset(&signals_);
    sigaddset(&signals_, SIGINT);
    sigaddset(&signals_, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals_, nullptr);
  }
  ~ShutdownSignals() { stop_waiting(); }
  // The shutdown signal waiting to be taken, if any (blocked in every thread, it stays
  // pending): lets start-up, which runs before on_signal, stop early.
  std::optional<int> pending() const {
    sigset_t waiting;
    if (sigpending(&waiting) != 0) return std::nullopt;
    if (sigismember(&waiting, SIGINT) == 1) return SIGINT;
    if (sigismember(&waiting, SIGTERM) == 1) return SIGTERM;
    return std::nullopt;
  }
  // Calls `handler` on a thread of its own at the first signal, unless stop_waiting() came
  // first.
  void on_signal(std::function<void(int)> handler) {
    waiter_ = std::thread([this, handler = std::move(handler)] {
      int received = 0;
      if (sigwait(&signals_, &received) == 0 && !stopping_) handler(received);
    });
  }
  // Returns once on_signal's thread has ended: after this, its handler neither runs nor is
  // running, so what it touches may be destroyed.
  void stop_waiting() {
    if (!waiter_.joinable()) return;
    stopping_ = true;
    // Wake the waiting thread if no signal came (the server stopped on its own).
    pthread_kill(waiter_.native_handle(), SIGTERM);
    waiter_.join();
  }

 private:
  sigset_t signals_;
  std::atomic<bool> stopping_{false};
  std::thread waiter_;
};

const char* signal_name(int signal_number) {
  return signal_number == SIGINT ? "SIGINT" : "SIGTERM";
}

// Exit status of a start-up cut short by a signal: 128 + its number, as a shell reports a
// process the signal ended.
int stopped_while_starting(int signal_number, std::ostream& out) {
  out << "gridexp-server: " << signal_name(signal_number)
      << " received while starting; stopped before serving, the store as it was\n"
      << std::flush;
  return 128 + signal_number;
}

// Start-up errors quote files and command lines: escaped, they cannot drive the terminal.
void report(std::ostream& err, const std::string& message) {
  err << "gridexp-server: " << terminal_safe(message) << "\n";
}

std::string listen_url(const std::string& host, int port) {
  std::string shown = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return "http://" + shown + ":" + std::to_string(port);
}

// nullopt: start-up goes on; else it ends with this exit status.
using StepOutcome = std::optional<int>;

// One run of gridexp-server, one method per start-up step. Members are declared in the order
// the steps build them, so they are destroyed in reverse: the HTTP server before the context,
// files, store and clock its handlers use. serve() joins the signal thread (which stops the
// HTTP server) before it returns, so that thread never outlives what it touches.
class Server {
 public:
  Server(const ServerOptions& options, std::ostream& out, std::ostream& err)
      : options_(options),
        out_(out),
        err_(err),
        state_dir_(options.experiment_dir / ".gridexp"),
        state_db_(state_dir_ / "state.db") {}

  int run() {
    StepOutcome stop = load_experiment_config();
    if (!stop) stop = prepare_state_dir();
    if (!stop) stop = open_store();
    if (!stop) stop = record_grid();
    if (!stop) stop = prepare_files();
    if (stop) return *stop;
    create_context();
    if (StepOutcome not_listening = bind_port()) return *not_listening;
    print_banner();
    return serve();
  }

 private:
  // Validates the config before anything is written.
  StepOutcome load_experiment_config() {
    std::error_code error;
    if (!std::filesystem::is_directory(options_.experiment_dir, error)) {
      return fail(kExitBadConfig, "the experiment directory \"" + options_.experiment_dir.string() +
                                      "\" does not exist");
    }
    config_path_ = options_.resolved_config_path();
    Result<ExperimentConfig> config = load_config(config_path_);
    if (!config) return fail(kExitBadConfig, config.status().message());
    config_ = std::move(*config);
    // Before anything is written: a huge grid would take minutes and gigabytes to record.
    if (Status status = check_grid_size(config_, options_.max_grid_points); !status) {
      return fail(kExitBadConfig, status.message());
    }
    if (std::optional<int> signal_number = signals_.pending()) {
      return stopped_while_starting(*signal_number, out_);
    }
    return std::nullopt;
  }

  // <dir>/.gridexp, readable by the owner only, and the password.
  StepOutcome prepare_state_dir() {
    if (Status status = fs_.create_directories(state_dir_); !status) {
      return fail(kExitFailure, status.message());
    }
    std::error_code error;
    std::filesystem::permissions(state_dir_, std::filesystem::perms::owner_all,
                                 std::filesystem::perm_options::replace, error);
    const char* environment_password = std::getenv("GRIDEXP_PASSWORD");
    Result<PasswordChoice> password = choose_password(
        options_,
        environment_password ? std::optional<std::string>(environment_password) : std::nullopt,
        state_dir_, fs_);
    if (!password) return fail(kExitBadConfig, password.status().message());
    password_ = std::move(*password);
    return std::nullopt;
  }

  // The store, and which generation of the experiment's config this run serves.
  StepOutcome open_store() {
    StoreOptions store_options;
    store_options.lease_ms = static_cast<TimeMs>(options_.lease_seconds) * 1000;
    store_options.max_attempts = options_.max_attempts;
    Result<std::unique_ptr<SqliteStore>> store =
        SqliteStore::open(state_db_.string(), clock_, store_options, {options_.sync_full});
    if (!store) {
      return fail(kExitFailure,
                  "cannot open " + state_db_.string() + ": " + store.status().message());
    }
    store_ = std::move(*store);
    Result<std::optional<RecordedConfig>> recorded =
        store_->recorded_config(config_.experiment_name);
    if (!recorded)
      return fail(kExitFailure, "cannot read the store: " + recorded.status().message());
    Result<ConfigGenerationDecision> generation =
        decide_config_generation(config_, *recorded, options_.config_changed);
    if (!generation) {
      // Several lines, each already escaped.
      err_ << "gridexp-server: " << generation.status().message() << "\n";
      return kExitBadConfig;
    }
    generation_ = std::move(*generation);
    return std::nullopt;
  }

  StepOutcome record_grid() {
    grid_.emplace(config_, generation_.config_generation);
    // One transaction: a signal abandons it whole, so the store stays as it was.
    Status synced = store_->sync_grid(*grid_, [&] { return signals_.pending().has_value(); });
    if (std::optional<int> signal_number = signals_.pending(); !synced && signal_number) {
      return stopped_while_starting(*signal_number, out_);
    }
    if (!synced) return fail(kExitFailure, "cannot record the grid: " + synced.message());
    return std::nullopt;
  }

  // <dir>/models, <dir>/checkpoints (what an interrupted upload left, and files the store no
  // longer references, deleted) and <dir>/logs.
  StepOutcome prepare_files() {
    model_files_.emplace(options_.experiment_dir / "models", fs_);
    if (Status status = model_files_->prepare(); !status) {
      return fail(kExitFailure, status.message());
    }
    Result<std::vector<std::string>> referenced = store_->checkpoint_files();
    if (!referenced) return fail(kExitFailure, referenced.status().message());
    checkpoint_files_.emplace(options_.experiment_dir / "checkpoints", fs_);
    if (Status status = checkpoint_files_->prepare(*referenced); !status) {
      return fail(kExitFailure, status.message());
    }
    trial_logs_.emplace(options_.experiment_dir / "logs", kMaxLogBytesPerTrial, fs_);
    if (Status status = trial_logs_->prepare(); !status) {
      return fail(kExitFailure, status.message());
    }
    experiment_files_.emplace(options_.experiment_dir, state_dir_, fs_);
    return std::nullopt;
  }

  void create_context() {
    context_.emplace(*store_, *experiment_files_, *model_files_, *checkpoint_files_, *trial_logs_,
                     clock_);
    context_->password = password_.password;
    context_->experiment_config = config_.document;
    context_->experiment_name = config_.experiment_name;
    context_->lease_seconds = options_.lease_seconds;
    context_->max_upload_bytes = static_cast<std::uint64_t>(options_.max_upload_mb) << 20;
    context_->version = kVersion;
    context_->login_throttle.set_max_failures(options_.max_wrong_passwords);
    const char* environment_plotly = std::getenv("GRIDEXP_PLOTLY_JS");
    explicit_plotly_ = options_.plotly_js;
    if (!explicit_plotly_ && environment_plotly) explicit_plotly_ = environment_plotly;
    context_->plotly_js = find_plotly_js(running_program_dir(), explicit_plotly_);
  }

  StepOutcome bind_port() {
    http_.emplace(options_.threads);
    http_->set_payload_max_length(context_->max_upload_bytes);
    http_->set_read_timeout(60);
    http_->set_write_timeout(60);
    http_->set_keep_alive_max_count(100000);
    // An idle keep-alive connection is closed after this long (it holds no thread meanwhile).
    http_->set_keep_alive_timeout(2);
    http_->set_tcp_nodelay(true);
    install_routes(*http_, *context_);
    port_ = http_->bind(options_.host, options_.port);
    if (port_ < 0) {
      return fail(kExitFailure, "cannot listen on " + listen_url(options_.host, options_.port) +
                                    " (is another server using the port?)");
    }
    return std::nullopt;
  }

  void print_warnings() {
    if (!context_->plotly_js) {
      report(err_, "warning: plotly.min.js not found" +
                       (explicit_plotly_ ? " at " + explicit_plotly_->string() : std::string()) +
                       "; the dashboard shows no plots (pip install plotly, or --plotly-js FILE)");
    }
    if (password_.warn_visible) {
      err_ << "gridexp-server: warning: a password given with --password is visible to every "
              "user in `ps`; prefer --password-file or GRIDEXP_PASSWORD\n";
    }
  }

  ExperimentSummary trial_counts() const {
    ExperimentSummary counts;
    if (auto experiments = store_->list_experiments(); experiments) {
      for (const ExperimentSummary& experiment : *experiments) {
        if (experiment.name == config_.experiment_name) counts = experiment;
      }
    }
    return counts;
  }

  void print_banner() {
    ExperimentSummary counts = trial_counts();
    print_warnings();
    out_ << "gridexp-server " << kVersion << "\n"
         << "  experiment: " << terminal_safe(config_.experiment_name) << " ("
         << terminal_safe(config_path_.string()) << ", " << grid_->size() << " grid points)\n";
    if (!generation_.banner_line.empty())
      out_ << "  config:     " << generation_.banner_line << "\n";
    out_ << "  trials:     " << counts.pending << " pending, " << counts.running << " running, "
         << counts.done << " done, " << counts.failed << " failed, " << counts.cancelled
         << " cancelled\n"
         << "  state:      " << state_db_.string() << "\n"
         << "  password:   " << password_.origin;
    if (password_.print_it) out_ << ": " << password_.password;
    out_ << "\n"
         << "  listening on " << listen_url(options_.host, port_) << "\n"
         << "  dashboard:  "
         << listen_url(options_.host == "0.0.0.0" ? "127.0.0.1" : options_.host, port_)
         << "/ (log in with the password)\n"
         << "  workers:    gridexp-worker --address=<this host>:" << port_
         << " --password-file=<file holding the password>\n"
         << std::flush;
  }

  // Serves until SIGINT or SIGTERM; expired leases return to pending every second meanwhile.
  int serve() {
    PeriodicTask requeue(std::chrono::seconds(1), [&] {
      Result<std::int64_t> moved = store_->requeue_expired();
      if (moved && *moved > 0) ++context_->state_version;
    });
    std::atomic<bool> listen_returned{false};
    signals_.on_signal([&](int signal_number) {
      out_ << "gridexp-server: " << signal_name(signal_number)
           << " received, finishing requests in flight\n"
           << std::flush;
      // httplib ignores stop() until its accept loop runs; a signal can come just before.
      while (!http_->is_running() && !listen_returned) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      http_->stop();
    });
    Status served = http_->serve();
    listen_returned = true;
    signals_.stop_waiting();
    http_->close_connections();
    if (!served) report(err_, served.message());
    out_ << "gridexp-server: stopped\n" << std::flush;
    return served ? kExitOk : kExitFailure;
  }

  StepOutcome fail(int exit_status, const std::string& message) {
    report(err_, message);
    return exit_status;
  }

  const ServerOptions& options_;
  std::ostream& out_;
  std::ostream& err_;
  ShutdownSignals signals_;  // first: every thread started later inherits its signal mask
  FileSystem& fs_ = default_file_system();
  const std::filesystem::path state_dir_;
  const std::filesystem::path state_db_;
  std::filesystem::path config_path_;
  ExperimentConfig config_;
  PasswordChoice password_;
  SystemClock clock_;
  std::unique_ptr<SqliteStore> store_;
  ConfigGenerationDecision generation_;
  std::optional<Grid> grid_;
  std::optional<ModelFiles> model_files_;
  std::optional<CheckpointFiles> checkpoint_files_;
  std::optional<TrialLogs> trial_logs_;
  std::optional<ExperimentFiles> experiment_files_;
  std::optional<ServerContext> context_;
  std::optional<std::filesystem::path> explicit_plotly_;
  std::optional<HttpServer> http_;
  int port_ = -1;
};

}  // namespace

int run_server(const ServerOptions& options, std::ostream& out, std::ostream& err) {
  return Server(options, out, err).run();
}

}  // namespace gridexp
