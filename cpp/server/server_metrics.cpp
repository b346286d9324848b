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

bool is_one_of(std::string_view value, std::initializer_list<std::string_view> options) {
  return std::find(options.begin(), options.end(), value) != options.end();
}

// The shortest text that reads back as `value` (0.0005, not 0.00050000000000000001).
std::string format_number(double value) {
  char text[64];
  auto [end, error] = std::to_chars(text, text + sizeof text, value, std::chars_format::general);
  return error == std::errc() ? std::string(text, end) : std::string("NaN");
}

}  // namespace

std::string route_label(std::string_view path) {
  std::vector<std::string_view> s = split_path(path);
  std::size_t n = s.size();
  if (n == 0) return "/";
  if (n == 1 && is_one_of(s[0], {"healthz", "metrics"})) return "/" + std::string(s[0]);
  if (n == 2 && s[0] == "static") return "/static/{file}";
  if (n < 3 || s[0] != "api" || s[1] != "v1") return "other";
  std::string_view kind = s[2];
  if (n == 3 && is_one_of(kind, {"experiments", "workers", "config", "session"})) {
    return "/api/v1/" + std::string(kind);
  }
  if (n == 4 && kind == "trials") return "/api/v1/trials/{id}";
  if (n == 5 && kind == "trials" &&
      is_one_of(s[4], {"heartbeat", "metrics", "model", "complete", "fail", "release", "log",
                       "attempts", "retry", "cancel"})) {
    return "/api/v1/trials/{id}/" + std::string(s[4]);
  }
  if (n == 5 && kind == "experiments" &&
      is_one_of(s[4], {"trials", "trials.csv", "retry", "cancel"})) {
    return "/api/v1/experiments/{name}/" + std::string(s[4]);
  }
  if (n == 5 && kind == "workers" && s[4] == "claim") return "/api/v1/workers/{id}/claim";
  if (n == 4 && kind == "files" && is_one_of(s[3], {"scripts.zip", "data.zip"})) {
    return "/api/v1/files/" + std::string(s[3]);
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
  std::string out;
  auto counter = [&out](const char* name, const char* help, std::uint64_t value) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " counter\n" + name +
           " " + std::to_string(value) + "\n";
  };
  out += "# HELP gridexp_trials Trials by experiment and state.\n# TYPE gridexp_trials gauge\n";
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
  out +=
      "# HELP gridexp_workers_online Workers seen within the lease time.\n"
      "# TYPE gridexp_workers_online gauge\ngridexp_workers_online " +
      std::to_string(workers_online) + "\n";
  counter("gridexp_claims_total", "Claims that handed a trial to a worker.", claims.load());
  counter("gridexp_completions_total", "Trials completed by workers.", completions.load());
  counter("gridexp_failures_total", "Trial failures reported by workers.", failures.load());
  counter("gridexp_model_bytes_uploaded_total", "Bytes of model files received and kept.",
          model_bytes_uploaded.load());
  counter("gridexp_store_calls_total", "Calls of the durable store (claims, completions, reads).",
          static_cast<std::uint64_t>(store.calls));
  counter("gridexp_store_transactions_total",
          "SQLite transactions the store calls ran in (calls that arrive together share one).",
          static_cast<std::uint64_t>(store.transactions));
  out +=
      "# HELP gridexp_store_calls_waiting Store calls queued for the next transaction.\n"
      "# TYPE gridexp_store_calls_waiting gauge\ngridexp_store_calls_waiting " +
      std::to_string(store.waiting) + "\n";

  out +=
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
