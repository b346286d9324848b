// Progress: the worker's console. Relays the executor's output prefixed with the trial id,
// and keeps a live status line under it — trials done/total, the running trials and their
// latest reported metrics — redrawn in place on a terminal, printed as plain lines otherwise.
// A trial is the running one of the thread that reported it started (each executor slot runs
// its trials on a thread of its own), and its metrics are those that thread reports.
// Safe from any thread (output arrives on reader threads).
#pragma once

#include <cstdint>
#include <cstdio>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

namespace gridexp {

class Progress {
 public:
  explicit Progress(std::FILE* stream);

  void message(const std::string& text);  // a line of the worker's own
  void output_line(const std::string& trial_id, const std::string& line);
  void set_totals(std::int64_t done, std::int64_t total);
  void trial_started(const std::string& trial_id, int attempt,
                     const nlohmann::json& hyperparameters);
  void metrics(const nlohmann::json& values, const nlohmann::json& step);
  // `summary` (results or the error) is shown up to kMaxSummaryBytes.
  void trial_finished(const std::string& trial_id, bool succeeded, const std::string& summary);
  void idle(const std::string& why);

  // The status line as a terminal shows it (without the control codes that redraw it).
  std::string status_line();

 private:
  struct Running {
    std::thread::id thread;
    std::string trial_id;
    std::string latest_metrics;
  };
  Running* running_on_this_thread_locked();
  std::string status_line_locked() const;
  void redraw_locked();
  void clear_status_locked();

  std::FILE* stream_;
  bool interactive_;
  std::mutex mutex_;
  std::int64_t done_ = 0;
  std::int64_t total_ = 0;
  std::vector<Running> running_;  // one per slot thread with a trial, in the order they started
  std::string idle_reason_;
  bool status_shown_ = false;
};

inline constexpr std::size_t kMaxSummaryBytes = 2000;

// `text` when it has at most `max_bytes`; otherwise its first `max_bytes` (not cutting a UTF-8
// character) and "… (N bytes more)".
std::string bounded_text(std::string_view text, std::size_t max_bytes);

// "loss=0.42 acc=0.8" from a JSON object of metrics, numbers in 4 significant digits.
std::string format_metrics(const nlohmann::json& values);

}  // namespace gridexp
