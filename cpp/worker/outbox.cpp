#include "worker/outbox.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include "common/json_parse.h"

namespace gridexp {

nlohmann::json FinishedTrial::to_json() const {
  nlohmann::json value = {{"trial_id", trial_id},   {"lease_token", lease_token},
                          {"succeeded", succeeded}, {"results", results},
                          {"error", error},         {"traceback", traceback}};
  value["model_path"] = model_path ? nlohmann::json(model_path->string()) : nlohmann::json();
  if (peak_gpu_memory_bytes) value["peak_gpu_memory_bytes"] = *peak_gpu_memory_bytes;
  return value;
}

Result<FinishedTrial> FinishedTrial::from_json(const nlohmann::json& value) {
  try {
    FinishedTrial trial;
    trial.trial_id = value.at("trial_id").get<std::string>();
    trial.lease_token = value.at("lease_token").get<std::string>();
    trial.succeeded = value.at("succeeded").get<bool>();
    trial.results = value.at("results");
    trial.error = value.at("error").get<std::string>();
    trial.traceback = value.at("traceback").get<std::string>();
    if (!value.at("model_path").is_null()) {
      trial.model_path = value.at("model_path").get<std::string>();
    }
    if (auto peak = value.find("peak_gpu_memory_bytes"); peak != value.end() && !peak->is_null()) {
      trial.peak_gpu_memory_bytes = peak->get<std::int64_t>();
    }
    return trial;
  } catch (const nlohmann::json::exception& error) {
    return Status::invalid_argument(std::string("malformed outbox entry: ") + error.what());
  }
}

Outbox::Outbox(std::filesystem::path directory, FileSystem& fs)
    : directory_(std::move(directory)), fs_(fs) {}

Status Outbox::prepare() { return fs_.create_directories(directory_); }

std::filesystem::path Outbox::path_for(const std::string& trial_id) const {
  return directory_ / (trial_id + ".json");
}

Status Outbox::put(const FinishedTrial& trial) {
  return write_file_atomically(fs_, path_for(trial.trial_id), trial.to_json().dump(), 0600);
}

Result<std::vector<FinishedTrial>> Outbox::pending() const {
  std::vector<std::pair<std::filesystem::file_time_type, std::filesystem::path>> files;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(directory_, error)) {
    if (entry.path().extension() == ".json") {
      files.emplace_back(entry.last_write_time(error), entry.path());
    }
  }
  if (error) return Status::io_error("cannot list " + directory_.string() + ": " + error.message());
  std::sort(files.begin(), files.end());
  std::vector<FinishedTrial> trials;
  for (const auto& [modified, path] : files) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    Result<nlohmann::json> value = parse_json(text.str(), kMaxMessageJsonDepth);
    Result<FinishedTrial> trial =
        value ? FinishedTrial::from_json(value.value()) : Result<FinishedTrial>(value.status());
    if (!trial) {
      return Status::io_error("unreadable outbox entry " + path.string() + ": " +
                              trial.status().message());
    }
    trials.push_back(std::move(trial).value());
  }
  return trials;
}

Status Outbox::remove(const std::string& trial_id) { return fs_.remove(path_for(trial_id)); }

}  // namespace gridexp
