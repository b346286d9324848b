// See slurm_placement.h. The limits are the server's (server/slurm_placement_check.h).
#include "worker/slurm_placement.h"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <string>

namespace gridexp {
namespace {

constexpr std::size_t kMaxJobIdDigits = 20;
constexpr std::int64_t kMaxArrayTaskId = 4'294'967'295;
constexpr std::size_t kMaxNodeListChars = 1024;

bool is_job_id(const std::string& text) {
  return !text.empty() && text.size() <= kMaxJobIdDigits &&
         std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// The variable's value; empty when it is unset.
std::string variable(const EnvironmentLookup& lookup, const char* name) {
  const char* value = lookup(name);
  return value == nullptr ? std::string() : std::string(value);
}

// The variable as a decimal number in 0..max; nullopt when unset or anything else.
std::optional<std::int64_t> number_variable(const EnvironmentLookup& lookup, const char* name,
                                            std::int64_t max) {
  std::string text = variable(lookup, name);
  if (text.empty() ||
      !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  std::int64_t number = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), number);
  if (error != std::errc() || end != text.data() + text.size() || number > max) {
    return std::nullopt;
  }
  return number;
}

nlohmann::json job_id_or_null(const std::string& text) {
  return is_job_id(text) ? nlohmann::json(text) : nlohmann::json(nullptr);
}

nlohmann::json node_list_or_null(const std::string& text) {
  const bool printable =
      std::all_of(text.begin(), text.end(), [](char c) { return c >= 0x20 && c <= 0x7e; });
  if (text.empty() || text.size() > kMaxNodeListChars || !printable) return nullptr;
  return text;
}

}  // namespace

std::optional<nlohmann::json> slurm_placement(const EnvironmentLookup& lookup) {
  std::string job_id = variable(lookup, "SLURM_JOB_ID");
  if (!is_job_id(job_id)) return std::nullopt;
  std::optional<std::int64_t> array_task_id =
      number_variable(lookup, "SLURM_ARRAY_TASK_ID", kMaxArrayTaskId);
  return nlohmann::json{
      {"job_id", job_id},
      {"array_job_id", job_id_or_null(variable(lookup, "SLURM_ARRAY_JOB_ID"))},
      {"array_task_id", array_task_id ? nlohmann::json(*array_task_id) : nlohmann::json(nullptr)},
      {"node_list", node_list_or_null(variable(lookup, "SLURM_JOB_NODELIST"))},
      {"restart_count",
       number_variable(lookup, "SLURM_RESTART_COUNT", std::numeric_limits<std::int64_t>::max())
           .value_or(0)}};
}

std::optional<nlohmann::json> slurm_placement_of_this_process() {
  return slurm_placement([](const char* name) { return std::getenv(name); });
}

}  // namespace gridexp
