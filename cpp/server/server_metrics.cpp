#include "server/server_metrics.h"

#include <algorithm>
#include <charconv>

namespace gridexp {
namespace {

std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> segments;
  while (!path.empty()) {
    if (path.front() == '/') {
      path.remove_prefix(1);
      continue;
    }
    std::size_t end = path.find('/');
    segments.push_back(path.substr(0, end));
    path = end == std::string_view::npos ? std::string_view() : path.substr(end);
  }
  return segments;
}

// Every route's pattern: a segment in braces stands for any one segment.
constexpr std::string_view kRoutePatterns[] = {
    "/healthz",
    "/metrics",
    "/static/{file}",
    "/api/v1/experiments",
    "/api/v1/workers",
    "/api/v1/config",
    "/api/v1/session",
    "/api/v1/trials/{id}",
    "/api/v1/trials/{id}/heartbeat",
    "/api/v1/trials/{id}/metrics",
    "/api/v1/trials/{id}/model",
    "/api/v1/trials/{id}/complete",
    "/api/v1/trials/{id}/fail",
    "/api/v1/trials/{id}/release",
    "/api/v1/trials/{id}/preempt",
    "/api/v1/trials/{id}/lost",
    "/api/v1/trials/{id}/checkpoint",
    "/api/v1/trials/{id}/log",
    "/api/v1/trials/{id}/attempts",
    "/api/v1/trials/{id}/retry",
    "/api/v1/trials/{id}/cancel",
    "/api/v1/experiments/{name}/trials",
    "/api/v1/experiments/{name}/trials.csv",
    "/api/v1/experiments/{name}/retry",
    "/api/v1/experiments/{name}/cancel",
    "/api/v1/workers/{id}/claim",
    "/api/v1/files/scripts.zip",
    "/api/v1/files/data.zip",
};

bool matches(const std::vector<std::string_view>& pattern,
             const std::vector<std::string_view>& segments) {
  if (pattern.size() != segments.size()) return false;
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    if (!pattern[i].starts_with('{') && pattern[i] != segments[i]) return false;
  }
  return true;
}

// The shortest text that reads back as `value` (0.0005, not 0.00050000000000000001).
std::string format_number(double value) {
  char text[64];
  auto [end, error] = std::to_chars(text, text + sizeof text, value, std::chars_format::general);
  return error == std::errc() ? std::string(text, end) : std::string("NaN");
}

// A metric of one value, with its HELP and TYPE lines.
std::string single_value(const char* type, const char* name, const char* help,
                         const std::string& value) {
  return std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n" +
         name + " " + value + "\n";
}

std::string counter(const char* name, const char* help, std::uint64_t value) {
  return single_value("counter", name, help, std::to_string(value));
}

std::string gauge(const char* name, const char* help, std::int64_t value) {
  return single_value("gauge", name, help, std::to_string(value));
}

// The gauge of trials by experiment and state.
std::string render_trials(const std::vector<ExperimentSummary>& experiments) {
  std::string out =
      "# HELP gridexp_trials Trials by experiment and state.\n# TYPE gridexp_trials gauge\n";
  for (const ExperimentSummary& experiment : experiments) {
    std::string name = escape_label_value(experiment.name);
    std::pair<const char*, std::int64_t> states[] = {{"pending", experiment.pending},
                                                     {"running", experiment.running},
                                                     {"done", experiment.done},
                                                     {"failed", experiment.failed},
                                                     {"cancelled", experiment.cancelled}};
    for (const auto& [state, count] : states) {
      out += "gridexp_trials{experiment=\"" + name + "\",state=\"" + state + "\"} " +
             std::to_string(count) + "\n";
    }
  }
  return out;
}

}  // namespace

std::string route_label(std::string_view path) {
  // Split once, not on every request: this runs for each request the server answers.
  static const std::vector<std::vector<std::string_view>> kSplitPatterns = [] {
    std::vector<std::vector<std::string_view>> split;
    for (std::string_view pattern : kRoutePatterns) split.push_back(split_path(pattern));
    return split;
  }();
  std::vector<std::string_view> segments = split_path(path);
  if (segments.empty()) return "/";
  for (std::size_t i = 0; i < kSplitPatterns.size(); ++i) {
    if (matches(kSplitPatterns[i], segments)) return std::string(kRoutePatterns[i]);
  }
  return "other";
}

std::string escape_label_value(std::string_view value) {
  std::string escaped;
  escaped.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      escaped += "\\\\";
    } else if (c == '"') {
      escaped += "\\\"";
    } else if (c == '\n') {
      escaped += "\\n";
    } else {
      escaped += c;
    }
  }
  return escaped;
}

void ServerMetrics::observe_request(std::string_view method, std::string_view route,
                                    double seconds) {
  std::size_t bucket = static_cast<std::size_t>(
      std::lower_bound(kBucketBounds.begin(), kBucketBounds.end(), seconds) -
      kBucketBounds.begin());
  std::lock_guard lock(mutex_);
  Histogram& histogram = histograms_[{std::string(method), std::string(route)}];
  if (bucket < kBucketBounds.size()) ++histogram.buckets[bucket];
  ++histogram.count;
  histogram.sum += seconds;
}

std::string ServerMetrics::render(const std::vector<ExperimentSummary>& experiments,
                                  std::int64_t workers_online, const StoreStats& store) const {
  std::string out = render_trials(experiments);
  out += gauge("gridexp_workers_online", "Workers seen within the lease time.", workers_online);
  out += counter("gridexp_claims_total", "Claims that handed a trial to a worker.", claims.load());
  out += counter("gridexp_completions_total", "Trials completed by workers.", completions.load());
  out += counter("gridexp_failures_total", "Trial failures reported by workers.", failures.load());
  out += counter("gridexp_executors_lost_total",
                 "Trials whose executor died by a signal mid-trial (requeued or, past "
                 "--max-attempts, failed).",
                 executors_lost.load());
  out += counter("gridexp_model_bytes_uploaded_total", "Bytes of model files received and kept.",
                 model_bytes_uploaded.load());
  out += counter("gridexp_trials_preempted_total",
                 "Trials a stopped worker handed back (pending again at once, not counted).",
                 trials_preempted.load());
  out += counter("gridexp_checkpoint_uploads_total", "Checkpoints received and stored.",
                 checkpoint_uploads.load());
  out += counter("gridexp_checkpoint_bytes_total", "Bytes of checkpoints received and stored.",
                 checkpoint_bytes.load());
  out += counter("gridexp_checkpoint_downloads_total", "Checkpoints handed to a worker.",
                 checkpoint_downloads.load());
  out += counter("gridexp_store_calls_total",
                 "Calls of the durable store (claims, completions, reads).",
                 static_cast<std::uint64_t>(store.calls));
  out +=
      counter("gridexp_store_transactions_total",
              "SQLite transactions the store calls ran in (calls that arrive together share one).",
              static_cast<std::uint64_t>(store.transactions));
  out += gauge("gridexp_store_calls_waiting", "Store calls queued for the next transaction.",
               store.waiting);
  return out + render_histograms();
}

std::string ServerMetrics::render_histograms() const {
  std::string out =
      "# HELP gridexp_http_request_duration_seconds Time to answer an HTTP request.\n"
      "# TYPE gridexp_http_request_duration_seconds histogram\n";
  std::lock_guard lock(mutex_);
  for (const auto& [key, histogram] : histograms_) {
    std::string labels = "method=\"" + escape_label_value(key.first) + "\",route=\"" +
                         escape_label_value(key.second) + "\"";
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < kBucketBounds.size(); ++i) {
      cumulative += histogram.buckets[i];
      out += "gridexp_http_request_duration_seconds_bucket{" + labels + ",le=\"" +
             format_number(kBucketBounds[i]) + "\"} " + std::to_string(cumulative) + "\n";
    }
    out += "gridexp_http_request_duration_seconds_bucket{" + labels + ",le=\"+Inf\"} " +
           std::to_string(histogram.count) + "\n";
    out += "gridexp_http_request_duration_seconds_sum{" + labels + "} " +
           format_number(histogram.sum) + "\n";
    out += "gridexp_http_request_duration_seconds_count{" + labels + "} " +
           std::to_string(histogram.count) + "\n";
  }
  return out;
}

}  // namespace gridexp
