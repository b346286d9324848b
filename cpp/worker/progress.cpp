#include "worker/progress.h"

#include <unistd.h>

#include <cstdio>

namespace gridexp {

std::string bounded_text(std::string_view text, std::size_t max_bytes) {
  if (text.size() <= max_bytes) return std::string(text);
  std::size_t cut = max_bytes;
  // Back up over UTF-8 continuation bytes (10xxxxxx) to the start of a character.
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return std::string(text.substr(0, cut)) + "… (" + std::to_string(text.size() - cut) +
         " bytes more)";
}

std::string format_metrics(const nlohmann::json& values) {
  std::string text;
  if (!values.is_object()) return text;
  for (const auto& [name, value] : values.items()) {
    if (!text.empty()) text += ' ';
    if (value.is_number_float()) {
      char number[32];
      std::snprintf(number, sizeof number, "%.4g", value.get<double>());
      text += name + "=" + number;
    } else if (value.is_string()) {
      text += name + "=" + value.get<std::string>();
    } else {
      text += name + "=" + value.dump();
    }
  }
  return text;
}

Progress::Progress(std::FILE* stream) : stream_(stream), interactive_(::isatty(::fileno(stream))) {}

void Progress::clear_status_locked() {
  if (interactive_ && status_shown_) std::fputs("\r\033[K", stream_);
  status_shown_ = false;
}

Progress::Running* Progress::running_on_this_thread_locked() {
  for (Running& running : running_) {
    if (running.thread == std::this_thread::get_id()) return &running;
  }
  return nullptr;
}

std::string Progress::status_line_locked() const {
  std::string line = "[" + std::to_string(done_) + "/" + std::to_string(total_) + " done] ";
  if (running_.empty()) {
    line += idle_reason_;
  } else if (running_.size() == 1) {
    line += "trial " + running_.front().trial_id;
    if (!running_.front().latest_metrics.empty()) line += "  " + running_.front().latest_metrics;
  } else {
    line += std::to_string(running_.size()) + " trials:";
    for (const Running& running : running_) {
      line += " " + running.trial_id;
      if (!running.latest_metrics.empty()) line += " (" + running.latest_metrics + ")";
    }
  }
  if (line.size() > 160) line = line.substr(0, 157) + "...";
  return line;
}

std::string Progress::status_line() {
  std::lock_guard lock(mutex_);
  return status_line_locked();
}

void Progress::redraw_locked() {
  if (!interactive_) return;
  std::fputs(("\r\033[K" + status_line_locked()).c_str(), stream_);
  std::fflush(stream_);
  status_shown_ = true;
}

void Progress::message(const std::string& text) {
  std::lock_guard lock(mutex_);
  clear_status_locked();
  std::fprintf(stream_, "gridexp-worker: %s\n", text.c_str());
  redraw_locked();
  std::fflush(stream_);
}

void Progress::output_line(const std::string& trial_id, const std::string& line) {
  std::lock_guard lock(mutex_);
  clear_status_locked();
  std::string prefix = trial_id.empty() ? "[executor] " : "[" + trial_id + "] ";
  std::fprintf(stream_, "%s%s\n", prefix.c_str(), line.c_str());
  redraw_locked();
  std::fflush(stream_);
}

void Progress::set_totals(std::int64_t done, std::int64_t total) {
  std::lock_guard lock(mutex_);
  done_ = done;
  total_ = total;
  redraw_locked();
}

void Progress::trial_started(const std::string& trial_id, int attempt,
                             const nlohmann::json& hyperparameters) {
  std::lock_guard lock(mutex_);
  if (Running* running = running_on_this_thread_locked()) {
    *running = {std::this_thread::get_id(), trial_id, ""};
  } else {
    running_.push_back({std::this_thread::get_id(), trial_id, ""});
  }
  clear_status_locked();
  std::fprintf(stream_, "gridexp-worker: trial %s (attempt %d): %s\n", trial_id.c_str(), attempt,
               format_metrics(hyperparameters).c_str());
  redraw_locked();
  std::fflush(stream_);
}

void Progress::metrics(const nlohmann::json& values, const nlohmann::json& step) {
  std::lock_guard lock(mutex_);
  Running* running = running_on_this_thread_locked();
  if (running == nullptr) return;
  running->latest_metrics =
      (step.is_number() ? "step " + step.dump() + ": " : "") + format_metrics(values);
  redraw_locked();
}

void Progress::trial_finished(const std::string& trial_id, bool succeeded,
                              const std::string& summary) {
  std::lock_guard lock(mutex_);
  std::erase_if(running_, [](const Running& running) {
    return running.thread == std::this_thread::get_id();
  });
  if (succeeded) ++done_;
  clear_status_locked();
  std::fprintf(stream_, "gridexp-worker: trial %s %s: %s\n", trial_id.c_str(),
               succeeded ? "done" : "failed", bounded_text(summary, kMaxSummaryBytes).c_str());
  redraw_locked();
  std::fflush(stream_);
}

void Progress::idle(const std::string& why) {
  std::lock_guard lock(mutex_);
  idle_reason_ = why;
  redraw_locked();
}

}  // namespace gridexp
