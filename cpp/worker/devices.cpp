#include "worker/devices.h"

#include <algorithm>
#include <fstream>
#include <utility>

namespace gridexp {
namespace {

std::string trimmed(const std::string& text) {
  std::size_t first = text.find_first_not_of(" \t");
  if (first == std::string::npos) return "";
  std::size_t last = text.find_last_not_of(" \t\r");
  return text.substr(first, last - first + 1);
}

}  // namespace

std::vector<std::string> detect_devices(const std::filesystem::path& proc_root) {
  std::error_code error;
  std::filesystem::path gpus = proc_root / "driver" / "nvidia" / "gpus";
  std::vector<std::pair<int, std::string>> found;  // (device minor, model)
  for (const auto& entry : std::filesystem::directory_iterator(gpus, error)) {
    std::ifstream information(entry.path() / "information");
    std::string line;
    std::string model;
    int minor = static_cast<int>(found.size()) + 1000;  // unnumbered ones last
    while (std::getline(information, line)) {
      std::size_t colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string key = trimmed(line.substr(0, colon));
      std::string value = trimmed(line.substr(colon + 1));
      if (key == "Model") model = value;
      if (key == "Device Minor") {
        try {
          minor = std::stoi(value);
        } catch (const std::exception&) {
        }
      }
    }
    if (!model.empty()) found.emplace_back(minor, model);
  }
  std::sort(found.begin(), found.end());
  std::vector<std::string> devices;
  for (const auto& [minor, model] : found) {
    devices.push_back("GPU " + std::to_string(minor) + ": " + model);
  }
  return devices;
}

}  // namespace gridexp
