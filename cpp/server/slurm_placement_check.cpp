// See slurm_placement_check.h. The worker leaves out what this refuses
// (worker/slurm_placement.h), so a refusal means a client other than gridexp-worker.
#include "server/slurm_placement_check.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

namespace gridexp {
namespace {

constexpr std::size_t kMaxJobIdDigits = 20;
constexpr std::uint64_t kMaxArrayTaskId = 4'294'967'295;
constexpr std::size_t kMaxNodeListChars = 1024;
constexpr std::array<std::string_view, 5> kKeys = {"job_id", "array_job_id", "array_task_id",
                                                   "node_list", "restart_count"};

Status wrong(std::string_view key, std::string_view should_be) {
  return Status::invalid_argument("slurm." + std::string(key) + " must be " +
                                  std::string(should_be));
}

bool is_job_id(const nlohmann::json& value) {
  if (!value.is_string()) return false;
  const std::string& text = value.get_ref<const std::string&>();
  return !text.empty() && text.size() <= kMaxJobIdDigits &&
         std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Whether `value` is an integer in 0..max (parsed, a non-negative one is unsigned; built in
// C++, it may be signed).
bool is_integer_up_to(const nlohmann::json& value, std::uint64_t max) {
  if (value.is_number_unsigned()) return value.get<std::uint64_t>() <= max;
  return value.is_number_integer() && value.get<std::int64_t>() >= 0 &&
         static_cast<std::uint64_t>(value.get<std::int64_t>()) <= max;
}

bool is_node_list(const nlohmann::json& value) {
  if (!value.is_string()) return false;
  const std::string& text = value.get_ref<const std::string&>();
  return text.size() <= kMaxNodeListChars &&
         std::all_of(text.begin(), text.end(), [](char c) { return c >= 0x20 && c <= 0x7e; });
}

}  // namespace

Result<nlohmann::json> checked_slurm_placement(const nlohmann::json& placement) {
  if (!placement.is_object()) {
    return Status::invalid_argument(
        "slurm must be an object with the keys job_id, array_job_id, "
        "array_task_id, node_list and restart_count");
  }
  for (const auto& [key, value] : placement.items()) {
    if (std::find(kKeys.begin(), kKeys.end(), key) == kKeys.end()) {
      return Status::invalid_argument("slurm." + key + " is not a key of a Slurm placement");
    }
  }
  nlohmann::json checked = {{"job_id", placement.value("job_id", nlohmann::json(nullptr))},
                            {"array_job_id", placement.value("array_job_id", nlohmann::json())},
                            {"array_task_id", placement.value("array_task_id", nlohmann::json())},
                            {"node_list", placement.value("node_list", nlohmann::json())},
                            {"restart_count", placement.value("restart_count", nlohmann::json(0))}};
  if (!is_job_id(checked["job_id"])) {
    return wrong("job_id", "a string of 1 to 20 decimal digits");
  }
  if (!checked["array_job_id"].is_null() && !is_job_id(checked["array_job_id"])) {
    return wrong("array_job_id", "null or a string of 1 to 20 decimal digits");
  }
  if (!checked["array_task_id"].is_null() &&
      !is_integer_up_to(checked["array_task_id"], kMaxArrayTaskId)) {
    return wrong("array_task_id", "null or an integer from 0 to 4294967295");
  }
  if (!checked["node_list"].is_null() && !is_node_list(checked["node_list"])) {
    return wrong("node_list", "null or a string of at most 1024 printable ASCII characters");
  }
  if (!is_integer_up_to(checked["restart_count"],
                        static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))) {
    return wrong("restart_count", "an integer >= 0");
  }
  return checked;
}

}  // namespace gridexp
