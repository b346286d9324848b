// gridexp-loadgen: simulated workers for the coordinator benchmark (bench/, scenario 1).
//
// Each of --workers threads opens its own keep-alive connection, registers once, waits for
// every other thread at a start line, then runs trials (completed with a small result) until
// --seconds have passed or the grid has nothing pending. It prints one JSON object on stdout:
// trials completed, wall seconds, latency percentiles per call, error counts and the number
// of grid points that were completed more than once (which must be 0).
//
// A cycle is what one trial costs the coordinator. With --protocol one-call (the default, as
// gridexp-worker does) it is one call: a completion that claims the next trial (a thread's
// first cycle is a plain claim, and its last trial is completed without a next claim after the
// deadline). With --protocol two-calls it is a claim, then a completion sent on its answer.
//
// Closed loop (the default): each thread starts its next cycle as soon as its last one is
// answered, so the offered load is whatever the server sustains. Open loop (--rate R): the
// threads together start R cycles per second, evenly spaced (thread i of N starts cycles at
// t0 + (k * N + i) / R); with one call per cycle the time between a thread's cycles stands for
// its trial's run. A cycle's first call is timed from when it was scheduled, not from when it
// could be sent, so a server that falls behind shows its queueing delay instead of hiding it
// (no coordinated omission); a two-call cycle's completion is timed from its claim's answer.
//
// Threads share nothing but the start line, an atomic stop flag and the per-thread result
// slots, which the main thread reads after joining them.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <latch>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "lean_http_client.h"

namespace {

using gridexp::bench::HttpAnswer;
using gridexp::bench::LeanHttpClient;

using Clock = std::chrono::steady_clock;

struct Options {
  std::string host = "127.0.0.1";
  int port = 8030;
  std::string password;
  int workers = 1;
  double seconds = 5.0;
  double rate = 0.0;     // cycles per second, all threads together; 0 for a closed loop
  bool one_call = true;  // a completion claims the next trial
};

struct WorkerResult {
  std::vector<double> claim_ms;
  std::vector<double> complete_ms;
  std::vector<double> cycle_ms;  // claim sent (or scheduled) -> completion answered
  std::vector<std::string> completed_ids;
  long errors = 0;
  long register_retries = 0;
  long reconnects = 0;
  long late_starts = 0;  // open loop: cycles sent more than 1 ms after their scheduled time
  std::string first_error;
};

void usage_and_exit() {
  std::cerr << "usage: gridexp-loadgen --port N --password P [--host ADDR] [--workers N] "
               "[--seconds S] [--rate CYCLES_PER_S] [--protocol one-call|two-calls]\n";
  std::exit(2);
}

Options parse_options(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    std::string name = argv[i];
    if (i + 1 >= argc) usage_and_exit();
    std::string value = argv[++i];
    if (name == "--host") {
      options.host = value;
    } else if (name == "--port") {
      options.port = std::stoi(value);
    } else if (name == "--password") {
      options.password = value;
    } else if (name == "--workers") {
      options.workers = std::stoi(value);
    } else if (name == "--seconds") {
      options.seconds = std::stod(value);
    } else if (name == "--rate") {
      options.rate = std::stod(value);
    } else if (name == "--protocol" && (value == "one-call" || value == "two-calls")) {
      options.one_call = value == "one-call";
    } else {
      usage_and_exit();
    }
  }
  if (options.password.empty() || options.workers < 1 || options.rate < 0) usage_and_exit();
  return options;
}

double milliseconds_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

void note_error(WorkerResult& result, const std::string& what, const HttpAnswer& answer) {
  ++result.errors;
  if (!result.first_error.empty()) return;
  result.first_error =
      what + ": " + (answer ? std::to_string(answer.status) + " " + answer.body : answer.error);
}

// Open loop: when thread `index` starts its cycle number `cycle`.
Clock::time_point scheduled_start(const Options& options, int index, long cycle,
                                  Clock::time_point started) {
  double seconds = (static_cast<double>(cycle) * options.workers + index) / options.rate;
  return started +
         std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

void run_worker(const Options& options, int index, std::latch& registered_line,
                std::latch& start_signal, std::atomic<bool>& stop,
                const Clock::time_point& started_at, const Clock::time_point& deadline,
                WorkerResult& result) {
  LeanHttpClient client(options.host, options.port, options.password);

  // Hundreds of simultaneous connects can overflow a listen backlog (cpp-httplib's default of
  // 5 in builds before HttpServer::bind): a refused or reset first call is retried as a real
  // worker would, and counted.
  std::string worker_id;
  for (int attempt = 0; attempt < 20 && worker_id.empty(); ++attempt) {
    HttpAnswer registered =
        client.post("/api/v1/workers", R"({"host":"loadgen","version":"bench"})");
    if (registered.status == 201) {
      worker_id = nlohmann::json::parse(registered.body).at("worker_id").get<std::string>();
    } else if (attempt == 19) {
      note_error(result, "register", registered);
    } else {
      ++result.register_retries;
      std::this_thread::sleep_for(std::chrono::milliseconds(20 * (attempt + 1)));
    }
  }
  registered_line.count_down();
  start_signal.wait();
  if (worker_id.empty()) return;

  const std::string claim_path = "/api/v1/workers/" + worker_id + "/claim";
  result.claim_ms.reserve(1 << 16);
  result.complete_ms.reserve(1 << 16);
  result.cycle_ms.reserve(1 << 16);
  const bool open_loop = options.rate > 0;
  // A small result, as a training run reports it; written out once (a completion's body is
  // composed as a string: a JSON document per call would cost the shared cores ~2 us).
  const std::string results = R"({"accuracy":0.5,"loss":0.25,"epochs":1})";
  // A claim id per claim, sent again with its retries, as gridexp-worker does.
  auto claim_id = [index](long cycle) {
    return std::to_string(index) + "-" + std::to_string(cycle);
  };
  // The trial leased and not yet completed, or null.
  nlohmann::json held = nullptr;
  // Takes the trial a claim answer leased. Without one, nothing is pending: the grid is
  // finished once nothing runs either, and until then this thread has nothing left to claim
  // (no simulated worker dies, so no lease comes back): it leaves instead of asking again
  // while the last trials complete, as a worker waits --poll_seconds.
  bool nothing_left = false;
  auto take = [&](const nlohmann::json& answer) {
    held = answer.at("trial");
    if (!held.is_null()) return;
    nothing_left = true;
    if (answer.at("running").get<long>() == 0) stop = true;
  };
  // Completes the held trial (claiming the next with `next_claim_id` when not empty).
  auto complete = [&](const std::string& next_claim_id) {
    const std::string trial_id = held.at("id").get<std::string>();
    std::string completion = R"({"lease_token":)" + held.at("lease_token").dump();
    completion += R"(,"results":)" + results;
    if (!next_claim_id.empty()) completion += R"(,"next_claim_id":")" + next_claim_id + '"';
    completion += '}';
    held = nullptr;
    HttpAnswer completed = client.post("/api/v1/trials/" + trial_id + "/complete", completion);
    if (completed.status != 200) {
      note_error(result, "complete", completed);
      return;
    }
    result.completed_ids.push_back(trial_id);
    if (!next_claim_id.empty()) take(nlohmann::json::parse(completed.body).at("next"));
  };
  for (long cycle = 0; !stop.load(std::memory_order_relaxed) && !nothing_left; ++cycle) {
    auto started = Clock::now();
    if (open_loop) {
      const auto scheduled = scheduled_start(options, index, cycle, started_at);
      if (scheduled >= deadline) break;
      if (scheduled > started) {
        std::this_thread::sleep_until(scheduled);
      } else if (started - scheduled > std::chrono::milliseconds(1)) {
        ++result.late_starts;
      }
      started = scheduled;
    } else if (started >= deadline) {
      break;
    }
    if (options.one_call && !held.is_null()) {
      complete(claim_id(cycle));
      const double took = milliseconds_since(started);
      result.complete_ms.push_back(took);
      result.cycle_ms.push_back(took);
      continue;
    }
    const std::string claim_body = R"({"claim_id":")" + claim_id(cycle) + R"("})";
    HttpAnswer claimed = client.post(claim_path, claim_body);
    for (int retry = 0; retry < 5 && claimed.closed_before_answer; ++retry) {
      // The server closes a keep-alive connection idle for 2 s (threads that registered
      // first wait that long at the start line): reconnect, as a worker would.
      ++result.reconnects;
      claimed = client.post(claim_path, claim_body);
    }
    result.claim_ms.push_back(milliseconds_since(started));
    if (claimed.status != 200) {
      note_error(result, "claim", claimed);
      continue;
    }
    take(nlohmann::json::parse(claimed.body));
    if (options.one_call || held.is_null()) continue;
    const auto cycle_started = started;
    started = Clock::now();
    complete("");
    result.complete_ms.push_back(milliseconds_since(started));
    result.cycle_ms.push_back(milliseconds_since(cycle_started));
  }
  if (!held.is_null()) complete("");  // the last trial, claimed by the last cycle
}

double percentile(std::vector<double>& values, double fraction) {
  if (values.empty()) return 0.0;
  auto index = static_cast<std::size_t>(fraction * static_cast<double>(values.size() - 1));
  std::nth_element(values.begin(), values.begin() + static_cast<long>(index), values.end());
  return values[index];
}

nlohmann::json latency_summary(std::vector<double> values) {
  return {{"calls", values.size()},
          {"p50_ms", percentile(values, 0.50)},
          {"p99_ms", percentile(values, 0.99)},
          {"max_ms", values.empty() ? 0.0 : *std::max_element(values.begin(), values.end())}};
}

}  // namespace

int main(int argc, char** argv) {
  const Options options = parse_options(argc, argv);
  std::vector<WorkerResult> results(static_cast<std::size_t>(options.workers));
  std::atomic<bool> stop{false};
  // Every thread connects and registers before the clock starts: the main thread sets the
  // deadline once all have passed the registered line, then lets them go (the latch orders
  // the write of the deadline before the threads' reads).
  std::latch registered_line(options.workers);
  std::latch start_signal(1);
  Clock::time_point started, deadline;
  std::vector<std::thread> threads;
  for (int index = 0; index < options.workers; ++index) {
    threads.emplace_back(run_worker, std::cref(options), index, std::ref(registered_line),
                         std::ref(start_signal), std::ref(stop), std::cref(started),
                         std::cref(deadline), std::ref(results[static_cast<std::size_t>(index)]));
  }
  registered_line.wait();
  started = Clock::now();
  deadline = started + std::chrono::duration_cast<Clock::duration>(
                           std::chrono::duration<double>(options.seconds));
  start_signal.count_down();
  for (auto& thread : threads) thread.join();
  const double wall_seconds = std::chrono::duration<double>(Clock::now() - started).count();

  std::vector<double> claim_ms, complete_ms, cycle_ms, all_ms;
  std::unordered_map<std::string, int> completions;
  long errors = 0, register_retries = 0, reconnects = 0, late_starts = 0;
  std::string first_error;
  for (auto& result : results) {
    register_retries += result.register_retries;
    reconnects += result.reconnects;
    late_starts += result.late_starts;
    claim_ms.insert(claim_ms.end(), result.claim_ms.begin(), result.claim_ms.end());
    complete_ms.insert(complete_ms.end(), result.complete_ms.begin(), result.complete_ms.end());
    cycle_ms.insert(cycle_ms.end(), result.cycle_ms.begin(), result.cycle_ms.end());
    for (const auto& id : result.completed_ids) ++completions[id];
    errors += result.errors;
    if (first_error.empty()) first_error = result.first_error;
  }
  all_ms = claim_ms;
  all_ms.insert(all_ms.end(), complete_ms.begin(), complete_ms.end());
  long trials = 0, duplicated = 0;
  for (const auto& [id, count] : completions) {
    trials += count;
    if (count > 1) ++duplicated;
  }
  nlohmann::json report = {{"workers", options.workers},
                           {"offered_cycles_per_second", options.rate},
                           {"late_starts", late_starts},
                           {"trials", trials},
                           {"seconds", wall_seconds},
                           {"trials_per_second", trials / wall_seconds},
                           {"duplicated_points", duplicated},
                           {"errors", errors},
                           {"register_retries", register_retries},
                           {"reconnects", reconnects},
                           {"first_error", first_error},
                           {"grid_exhausted", stop.load()},
                           {"claim", latency_summary(claim_ms)},
                           {"complete", latency_summary(complete_ms)},
                           {"call", latency_summary(all_ms)},
                           {"cycle", latency_summary(cycle_ms)}};
  std::cout << report.dump() << std::endl;
  return errors == 0 ? 0 : 1;
}
