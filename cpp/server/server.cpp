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
  ~ShutdownSignals() {
    if (waiter_.joinable()) {
      // Wake the waiting thread if no signal came (the server stopped on its own).
      pthread_kill(waiter_.native_handle(), SIGTERM);
      waiter_.join();
    }
  }
  // The shutdown signal waiting to be taken, if any (blocked in every thread, it stays
  // pending): lets start-up, which runs before on_signal, stop early.
  std::optional<int> pending() const {
    sigset_t waiting;
    if (sigpending(&waiting) != 0) return std::nullopt;
    if (sigismember(&waiting, SIGINT) == 1) return SIGINT;
    if (sigismember(&waiting, SIGTERM) == 1) return SIGTERM;
    return std::nullopt;
  }
  void on_signal(std::function<void(int)> handler) {
    waiter_ = std::thread([this, handler = std::move(handler)] {
      int received = 0;
      if (sigwait(&signals_, &received) == 0) handler(received);
    });
  }

 private:
  sigset_t signals_;
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

}  // namespace

int run_server(const ServerOptions& options, std::ostream& out, std::ostream& err) {
  ShutdownSignals signals;
  std::error_code error;
  if (!std::filesystem::is_directory(options.experiment_dir, error)) {
    report(err,
           "the experiment directory \"" + options.experiment_dir.string() + "\" does not exist");
    return kExitBadConfig;
  }
  std::filesystem::path config_path = options.resolved_config_path();
  Result<ExperimentConfig> config = load_config(config_path);
  if (!config) {
    report(err, config.status().message());
    return kExitBadConfig;
  }
  // Before anything is written: a huge grid would take minutes and gigabytes to record.
  if (Status status = check_grid_size(*config, options.max_grid_points); !status) {
    report(err, status.message());
    return kExitBadConfig;
  }
  if (std::optional<int> signal_number = signals.pending()) {
    return stopped_while_starting(*signal_number, out);
  }

  FileSystem& fs = default_file_system();
  std::filesystem::path state_dir = options.experiment_dir / ".gridexp";
  if (Status status = fs.create_directories(state_dir); !status) {
    report(err, status.message());
    return kExitFailure;
  }
  std::filesystem::permissions(state_dir, std::filesystem::perms::owner_all,
                               std::filesystem::perm_options::replace, error);

  const char* environment_password = std::getenv("GRIDEXP_PASSWORD");
  Result<PasswordChoice> password = choose_password(
      options,
      environment_password ? std::optional<std::string>(environment_password) : std::nullopt,
      state_dir, fs);
  if (!password) {
    report(err, password.status().message());
    return kExitBadConfig;
  }

  SystemClock clock;
  StoreOptions store_options;
  store_options.lease_ms = static_cast<TimeMs>(options.lease_seconds) * 1000;
  store_options.max_attempts = options.max_attempts;
  Result<std::unique_ptr<SqliteStore>> store = SqliteStore::open(
      (state_dir / "state.db").string(), clock, store_options, {options.sync_full});
  if (!store) {
    report(err,
           "cannot open " + (state_dir / "state.db").string() + ": " + store.status().message());
    return kExitFailure;
  }
  Result<std::optional<RecordedConfig>> recorded =
      (*store)->recorded_config(config->experiment_name);
  if (!recorded) {
    report(err, "cannot read the store: " + recorded.status().message());
    return kExitFailure;
  }
  Result<ConfigGenerationDecision> generation =
      decide_config_generation(*config, *recorded, options.config_changed);
  if (!generation) {
    // Several lines, each already escaped.
    err << "gridexp-server: " << generation.status().message() << "\n";
    return kExitBadConfig;
  }
  Grid grid(*config, generation->config_generation);
  // One transaction: a signal abandons it whole, so the store stays as it was.
  Status synced = (*store)->sync_grid(grid, [&] { return signals.pending().has_value(); });
  if (std::optional<int> signal_number = signals.pending(); !synced && signal_number) {
    return stopped_while_starting(*signal_number, out);
  }
  if (!synced) {
    report(err, "cannot record the grid: " + synced.message());
    return kExitFailure;
  }

  ModelFiles model_files(options.experiment_dir / "models", fs);
  if (Status status = model_files.prepare(); !status) {
    report(err, status.message());
    return kExitFailure;
  }
  TrialLogs trial_logs(options.experiment_dir / "logs", kMaxLogBytesPerTrial, fs);
  if (Status status = trial_logs.prepare(); !status) {
    report(err, status.message());
    return kExitFailure;
  }
  ExperimentFiles experiment_files(options.experiment_dir, state_dir, fs);

  ServerContext context(**store, experiment_files, model_files, trial_logs, clock);
  context.password = password->password;
  context.experiment_config = config->document;
  context.experiment_name = config->experiment_name;
  context.lease_seconds = options.lease_seconds;
  context.max_upload_bytes = static_cast<std::uint64_t>(options.max_upload_mb) << 20;
  context.version = kVersion;
  context.login_throttle.set_max_failures(options.max_wrong_passwords);
  const char* environment_plotly = std::getenv("GRIDEXP_PLOTLY_JS");
  std::optional<std::filesystem::path> explicit_plotly = options.plotly_js;
  if (!explicit_plotly && environment_plotly) explicit_plotly = environment_plotly;
  context.plotly_js = find_plotly_js(running_program_dir(), explicit_plotly);

  HttpServer http(options.threads);
  http.set_payload_max_length(context.max_upload_bytes);
  http.set_read_timeout(60);
  http.set_write_timeout(60);
  http.set_keep_alive_max_count(100000);
  // An idle keep-alive connection is closed after this long (it holds no thread meanwhile).
  http.set_keep_alive_timeout(2);
  http.set_tcp_nodelay(true);
  install_routes(http, context);

  int port = http.bind(options.host, options.port);
  if (port < 0) {
    report(err, "cannot listen on " + listen_url(options.host, options.port) +
                    " (is another server using the port?)");
    return kExitFailure;
  }

  ExperimentSummary counts;
  if (auto experiments = (*store)->list_experiments(); experiments) {
    for (const ExperimentSummary& experiment : *experiments) {
      if (experiment.name == config->experiment_name) counts = experiment;
    }
  }
  if (!context.plotly_js) {
    report(err, "warning: plotly.min.js not found" +
                    (explicit_plotly ? " at " + explicit_plotly->string() : std::string()) +
                    "; the dashboard shows no plots (pip install plotly, or --plotly-js FILE)");
  }
  if (password->warn_visible) {
    err << "gridexp-server: warning: a password given with --password is visible to every "
           "user in `ps`; prefer --password-file or GRIDEXP_PASSWORD\n";
  }
  out << "gridexp-server " << kVersion << "\n"
      << "  experiment: " << terminal_safe(config->experiment_name) << " ("
      << terminal_safe(config_path.string()) << ", " << grid.size() << " grid points)\n";
  if (!generation->banner_line.empty()) out << "  config:     " << generation->banner_line << "\n";
  out << "  trials:     " << counts.pending << " pending, " << counts.running << " running, "
      << counts.done << " done, " << counts.failed << " failed, " << counts.cancelled
      << " cancelled\n"
      << "  state:      " << (state_dir / "state.db").string() << "\n"
      << "  password:   " << password->origin;
  if (password->print_it) out << ": " << password->password;
  out << "\n"
      << "  listening on " << listen_url(options.host, port) << "\n"
      << "  dashboard:  "
      << listen_url(options.host == "0.0.0.0" ? "127.0.0.1" : options.host, port)
      << "/ (log in with the password)\n"
      << "  workers:    gridexp-worker --address=<this host>:" << port
      << " --password-file=<file holding the password>\n"
      << std::flush;

  PeriodicTask requeue(std::chrono::seconds(1), [&] {
    Result<std::int64_t> moved = (*store)->requeue_expired();
    if (moved && *moved > 0) ++context.state_version;
  });
  std::atomic<bool> listen_returned{false};
  signals.on_signal([&](int signal_number) {
    out << "gridexp-server: " << signal_name(signal_number)
        << " received, finishing requests in flight\n"
        << std::flush;
    // httplib ignores stop() until its accept loop runs; a signal can come just before.
    while (!http.is_running() && !listen_returned) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    http.stop();
  });
  Status served = http.serve();
  listen_returned = true;
  http.close_connections();
  if (!served) report(err, served.message());
  out << "gridexp-server: stopped\n" << std::flush;
  return served ? kExitOk : kExitFailure;
}

}  // namespace gridexp
