// HttpServerApi: ServerApi over HTTP.
#include "worker/server_api.h"

#include "common/url.h"
#include "worker/trial_heartbeat.h"

namespace gridexp {

HttpServerApi::HttpServerApi(std::string base_url, std::string password,
                             std::filesystem::path spool_directory)
    : base_url_(std::move(base_url)),
      password_(std::move(password)),
      spool_directory_(std::move(spool_directory)),
      connection_(base_url_, password_) {}

Result<nlohmann::json> HttpServerApi::get_json(const std::string& path) {
  return connection_.get_json(path);
}

Result<nlohmann::json> HttpServerApi::post_json(const std::string& path,
                                                const nlohmann::json& body) {
  return connection_.post_json(path, body);
}

Result<nlohmann::json> HttpServerApi::post_json_text(const std::string& path,
                                                     const std::string& text) {
  return connection_.post_json_text(path, text);
}

Result<nlohmann::json> HttpServerApi::put_file(const std::string& path,
                                               const std::filesystem::path& file,
                                               const HttpHeaders& headers) {
  return connection_.put_file(path, file, headers);
}

Result<HttpHeaders> HttpServerApi::get_file(const std::string& path, const HttpHeaders& headers,
                                            const std::filesystem::path& destination) {
  return connection_.get_file(path, headers, destination);
}

std::unique_ptr<TrialLink> HttpServerApi::start_heartbeat(const std::string& trial_id,
                                                          const std::string& lease_token,
                                                          std::chrono::milliseconds interval) {
  return std::make_unique<TrialHeartbeat>(base_url_, password_, trial_id, lease_token, interval,
                                          spool_directory_, kMaxLogBytesPerTrial, gpu_reader_);
}

std::string trial_path(const std::string& trial_id, const char* action) {
  return "/api/v1/trials/" + encode_path_segment(trial_id) + "/" + action;
}

}  // namespace gridexp
