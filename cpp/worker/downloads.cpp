// The download loop: one GET per attempt into a partial file, then verification and the rename
// into the cache; the retry policy decides between the attempts.
#include "worker/downloads.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>

#include <httplib.h>

#include "common/fd_io.h"
#include "common/sha256.h"
#include "common/url.h"

namespace gridexp {
namespace {

constexpr std::size_t kErrorBodyLimit = 1024;
constexpr std::chrono::seconds kConnectTimeout{10};
constexpr std::chrono::seconds kReadTimeout{60};  // the longest silence while receiving

bool is_sha256_hex(std::string_view text) {
  return text.size() == 64 && std::all_of(text.begin(), text.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

// The digest a strong ETag "<sha256>" carries, or empty when it carries none.
std::string sha_from_etag(const std::string& etag) {
  if (etag.size() != 66 || etag.front() != '"' || etag.back() != '"') return {};
  std::string sha = etag.substr(1, 64);
  return is_sha256_hex(sha) ? sha : std::string();
}

// A name that is safe both in the URL and as a file name in the cache.
bool is_plain_file_name(std::string_view name) {
  return !name.empty() && name.front() != '.' && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  });
}

// The first byte offset of "Content-Range: bytes <first>-<last>/<length>".
std::optional<std::uint64_t> content_range_start(const std::string& value) {
  constexpr std::string_view kPrefix = "bytes ";
  if (value.compare(0, kPrefix.size(), kPrefix) != 0) return std::nullopt;
  std::size_t dash = value.find('-', kPrefix.size());
  std::string digits = value.substr(kPrefix.size(), dash - kPrefix.size());
  if (dash == std::string::npos || digits.empty() ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  return std::stoull(digits);
}

// The first line of a small file; empty when it is missing.
std::string read_first_line(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

// A server's error body, shortened to one line for a message.
std::string detail_of(std::string body) {
  std::replace(body.begin(), body.end(), '\n', ' ');
  return body.empty() ? std::string() : ": " + body;
}

// `path` relative to `directory` ("a/b") when it lies strictly inside it, else empty.
std::string path_inside(const std::filesystem::path& path, const std::filesystem::path& directory) {
  std::error_code error;
  std::filesystem::path relative =
      std::filesystem::absolute(path, error)
          .lexically_normal()
          .lexically_relative(std::filesystem::absolute(directory, error).lexically_normal());
  std::string inside = relative.generic_string();
  while (inside.ends_with('/')) inside.pop_back();
  if (error || inside.empty() || inside == "." || inside == ".." || inside.starts_with("../")) {
    return {};
  }
  return inside;
}

std::filesystem::path cached_path(const std::filesystem::path& cache, const std::string& sha,
                                  const std::string& name) {
  return cache / (sha + std::filesystem::path(name).extension().string());
}

std::filesystem::path pointer_path(const std::filesystem::path& cache, const std::string& name) {
  return cache / (name + ".sha256");
}

// The partial download of one name: cache/<name>.<sha256>.part, where the digest is the ETag
// the bytes came with, so a later process can resume it with If-Range. Written with POSIX calls
// because the FileSystem seam only creates files, and a resumed download appends.
class PartFile {
 public:
  PartFile(FileSystem& fs, std::filesystem::path cache, std::string name)
      : fs_(fs), cache_(std::move(cache)), name_(std::move(name)) {}
  ~PartFile() { close(); }
  PartFile(const PartFile&) = delete;
  PartFile& operator=(const PartFile&) = delete;

  const std::string& sha() const { return sha_; }
  std::uint64_t size() const { return size_; }
  std::filesystem::path path() const { return cache_ / (name_ + "." + sha_ + ".part"); }

  // Adopts the partial download an earlier process left for this name, removing any extra.
  void adopt_leftover() {
    std::error_code error;
    std::string prefix = name_ + ".";
    constexpr std::string_view kSuffix = ".part";
    for (const auto& entry : std::filesystem::directory_iterator(cache_, error)) {
      std::string file = entry.path().filename().string();
      if (file.size() <= prefix.size() + kSuffix.size() || !file.starts_with(prefix) ||
          !file.ends_with(kSuffix)) {
        continue;
      }
      std::string sha = file.substr(prefix.size(), file.size() - prefix.size() - kSuffix.size());
      if (!is_sha256_hex(sha)) continue;
      std::uint64_t size = entry.file_size(error);
      if (!sha_.empty() || error) {
        ignore_outcome(fs_.remove(entry.path()));
        continue;
      }
      sha_ = sha;
      size_ = size;
    }
  }

  // Starts over, empty, for the file with digest `sha`.
  Status start(const std::string& sha) {
    discard();
    sha_ = sha;
    return open(O_WRONLY | O_CREAT | O_TRUNC);
  }

  Status resume() { return open(O_WRONLY | O_APPEND); }

  // A failed write ends the download; the next start adopts the file at its size on disk.
  Status append(const char* data, std::size_t size) {
    if (Status written = write_all(fd_, std::string_view(data, size)); !written) {
      return Status::io_error("cannot write " + path().string() + ": " + written.message());
    }
    size_ += size;
    return Status::ok();
  }

  Status sync_and_close() {
    if (::fsync(fd_) != 0) {
      Status status = errno_status("cannot sync");
      close();
      return status;
    }
    close();
    return Status::ok();
  }

  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  void discard() {
    close();
    if (!sha_.empty()) ignore_outcome(fs_.remove(path()));
    forget();
  }

  // After the file was renamed away: there is no partial download any more.
  void forget() {
    sha_.clear();
    size_ = 0;
  }

 private:
  Status open(int flags) {
    close();
    fd_ = ::open(path().c_str(), flags | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd_ < 0) return errno_status("cannot open");
    return Status::ok();
  }

  Status errno_status(const std::string& what) const {
    return Status::io_error(what + " " + path().string() + ": " + std::strerror(errno));
  }

  FileSystem& fs_;
  std::filesystem::path cache_;
  std::string name_;
  std::string sha_;
  std::uint64_t size_ = 0;
  int fd_ = -1;
};

enum class Retry {
  kNo,            // the answer is final, success or not
  kAfterBackoff,  // a transient failure: wait, then try again
  kAtOnce,        // the resume failed: ask again for the whole file (the next attempt sends no
                  // Range, so this cannot repeat without progress in between)
};

// One download of one name: each attempt is one GET.
class Transfer {
 public:
  Transfer(const std::string& base_url, const std::string& password,
           const std::filesystem::path& cache, const RetryPolicy& retry, FileSystem& fs,
           std::string name)
      : base_url_(base_url),
        password_(password),
        cache_(cache),
        retry_(retry),
        fs_(fs),
        name_(std::move(name)),
        part_(fs, cache, name_),
        client_(base_url) {
    client_.set_connection_timeout(kConnectTimeout);
    client_.set_read_timeout(kReadTimeout);
    client_.set_url_encode(false);  // the path is encoded by encode_path_segment
    current_ = read_first_line(pointer_path(cache_, name_));
    std::error_code error;
    if (!is_sha256_hex(current_) ||
        !std::filesystem::exists(cached_path(cache_, current_, name_), error)) {
      current_.clear();
    }
    part_.adopt_leftover();
  }

  Result<CachedFile> run() {
    std::chrono::milliseconds delay = retry_.first_delay;
    bool told = false;
    while (true) {
      std::uint64_t bytes_before = part_.size();
      Retry retry = Retry::kNo;
      Result<CachedFile> result = attempt(retry);
      if (retry == Retry::kNo) return result;
      if (part_.size() > bytes_before) {
        delay = retry_.first_delay;
        told = false;
        continue;
      }
      if (retry == Retry::kAtOnce) continue;
      if (!told && retry_.on_retry) retry_.on_retry(result.status(), delay);
      told = true;
      if (!retry_.sleep || !retry_.sleep(delay)) return result;
      delay = std::min(delay * 2, retry_.max_delay);
    }
  }

 private:
  // What one GET brought back, as on_response and on_body saw it.
  struct Answer {
    httplib::Error error = httplib::Error::Success;
    int http_status = 0;
    bool receiving = false;  // the body goes into the partial file
    Status refused;          // why accept() refused the answer
    bool stale_part = false;
    Status disk_error;
    std::string error_body;  // the start of a body that was not received
  };

  Result<CachedFile> attempt(Retry& retry) {
    bool resuming = part_.size() > 0 && !ask_whole_file_;
    ask_whole_file_ = false;
    Answer answer = get(resuming);
    if (!answer.disk_error) return answer.disk_error;
    if (!answer.refused) return answer.refused;
    if (answer.stale_part) {
      part_.discard();
      retry = Retry::kAtOnce;
      return Status::io_error("the partial " + name_ + " no longer matches the server's");
    }
    if (answer.error != httplib::Error::Success) {
      retry = Retry::kAfterBackoff;
      return Status::unavailable("cannot download " + name_ + " from " + base_url_ + ": " +
                                 httplib::to_string(answer.error));
    }
    return outcome_of(answer, resuming, retry);
  }

  httplib::Headers request_headers(bool resuming) const {
    httplib::Headers headers = {{"Accept-Encoding", "identity"}};
    if (!password_.empty()) headers.emplace("Authorization", "Bearer " + password_);
    if (!current_.empty()) headers.emplace("If-None-Match", "\"" + current_ + "\"");
    if (resuming) {
      headers.emplace("Range", "bytes=" + std::to_string(part_.size()) + "-");
      headers.emplace("If-Range", "\"" + part_.sha() + "\"");
    }
    return headers;
  }

  Answer get(bool resuming) {
    Answer answer;
    auto on_response = [&](const httplib::Response& response) {
      return accept(response, resuming, answer);
    };
    auto on_body = [&](const char* data, std::size_t size) {
      if (!answer.receiving) {
        answer.error_body.append(data, std::min(size, kErrorBodyLimit - answer.error_body.size()));
        return true;
      }
      answer.disk_error = part_.append(data, size);
      return answer.disk_error.is_ok();
    };
    httplib::Result result = client_.Get("/api/v1/files/" + encode_path_segment(name_),
                                         request_headers(resuming), on_response, on_body);
    answer.error = result.error();
    if (answer.error != httplib::Error::Success || !answer.receiving) part_.close();
    return answer;
  }

  // on_response: whether to receive the body. A 200 starts the partial file, a 206 resumes it.
  bool accept(const httplib::Response& response, bool resuming, Answer& answer) {
    answer.http_status = response.status;
    if (answer.http_status != 200 && answer.http_status != 206) return true;
    std::string sha = sha_from_etag(response.get_header_value("ETag"));
    if (sha.empty()) {
      answer.refused =
          Status::io_error("the server sent " + name_ + " without an ETag \"<sha256>\"");
      return false;
    }
    if (answer.http_status == 206 && !resuming) {
      answer.refused = Status::io_error("the server sent part of " + name_ + " unasked");
      return false;
    }
    if (answer.http_status == 206) {
      // A server that ignores If-Range may send a range of a newer file.
      if (sha != part_.sha() ||
          content_range_start(response.get_header_value("Content-Range")) != part_.size()) {
        answer.stale_part = true;
        return false;
      }
      answer.disk_error = part_.resume();
    } else {
      answer.disk_error = part_.start(sha);
    }
    answer.receiving = answer.disk_error.is_ok();
    return answer.receiving;
  }

  // The result of an answer that arrived whole, by its HTTP status.
  Result<CachedFile> outcome_of(const Answer& answer, bool resuming, Retry& retry) {
    int http_status = answer.http_status;
    switch (http_status) {
      case 200:
      case 206:
        return store(retry);
      case 304:
        if (current_.empty()) break;
        return CachedFile{cached_path(cache_, current_, name_), current_, false};
      case 401:
        return Status::unauthorized("the server at " + base_url_ + " refused the password for " +
                                    name_ + detail_of(answer.error_body));
      case 404:
        return Status::not_found("the server has no " + name_);
      case 416:
        // Also what httplib makes of an error answer to a Range request (it slices the error
        // body), so ask once for the whole file before giving up the partial one.
        if (!resuming) break;
        ask_whole_file_ = true;
        retry = Retry::kAtOnce;
        return Status::io_error("the server cannot resume " + name_);
      case 408:
      case 429:
        return unavailable(answer, retry);
      default:
        if (http_status < 500) break;
        return unavailable(answer, retry);
    }
    return Status::io_error("unexpected HTTP " + std::to_string(http_status) + " for " + name_ +
                            detail_of(answer.error_body));
  }

  // A transient refusal (408, 429, 5xx): worth another attempt after the backoff.
  Status unavailable(const Answer& answer, Retry& retry) const {
    retry = Retry::kAfterBackoff;
    return Status::unavailable("the server answered HTTP " + std::to_string(answer.http_status) +
                               " for " + name_ + detail_of(answer.error_body));
  }

  // Verifies the completed partial file against its ETag and moves it into the cache.
  Result<CachedFile> store(Retry& retry) {
    if (Status status = part_.sync_and_close(); !status) return status;
    Result<std::string> actual = sha256_file_hex(part_.path());
    if (!actual) return actual.status();
    std::string sha = part_.sha();
    if (*actual != sha) {
      part_.discard();
      retry = Retry::kAfterBackoff;
      return Status::io_error("the downloaded " + name_ + " has SHA-256 " + *actual + ", not the " +
                              sha + " its ETag names");
    }
    std::filesystem::path path = cached_path(cache_, sha, name_);
    if (Status status = fs_.rename_durably(part_.path(), path); !status) return status;
    part_.forget();
    if (Status status = write_file_atomically(fs_, pointer_path(cache_, name_), sha + "\n", 0644);
        !status) {
      return status;
    }
    if (!current_.empty() && current_ != sha) remove_unless_referenced(current_);
    return CachedFile{path, sha, true};
  }

  // Removes the cached file with digest `sha` unless another name's pointer still names it.
  void remove_unless_referenced(const std::string& sha) {
    std::error_code error;
    for (const auto& entry : std::filesystem::directory_iterator(cache_, error)) {
      if (entry.path().extension() == ".sha256" && read_first_line(entry.path()) == sha) return;
    }
    ignore_outcome(fs_.remove(cached_path(cache_, sha, name_)));
  }

  const std::string& base_url_;
  const std::string& password_;
  const std::filesystem::path& cache_;
  const RetryPolicy& retry_;
  FileSystem& fs_;
  std::string name_;
  std::string current_;  // the digest of the cached copy, empty when there is none
  PartFile part_;
  bool ask_whole_file_ = false;  // the next attempt sends no Range
  httplib::Client client_;
};

}  // namespace

Downloader::Downloader(std::string base_url, std::string password,
                       std::filesystem::path cache_directory, RetryPolicy retry, FileSystem& fs)
    : base_url_(std::move(base_url)),
      password_(std::move(password)),
      cache_directory_(std::move(cache_directory)),
      retry_(std::move(retry)),
      fs_(fs) {}

Result<CachedFile> Downloader::fetch(std::string_view name) {
  if (!is_plain_file_name(name)) {
    return Status::invalid_argument("not a plain file name: \"" + std::string(name) + "\"");
  }
  // httplib throws on another scheme.
  if (!base_url_.starts_with("http://") && !base_url_.starts_with("https://")) {
    return Status::invalid_argument("not an http:// or https:// server address: " + base_url_);
  }
  if (Status status = fs_.create_directories(cache_directory_); !status) return status;
  return Transfer(base_url_, password_, cache_directory_, retry_, fs_, std::string(name)).run();
}

Result<bool> fetch_and_extract(Downloader& downloader, std::string_view name,
                               const std::filesystem::path& workdir,
                               const std::filesystem::path& state_directory,
                               const ExtractLimits& limits, FileSystem& fs) {
  Result<CachedFile> file = downloader.fetch(name);
  if (!file) return file.status();
  std::filesystem::path marker = state_directory / (std::string(name) + ".extracted");
  if (read_first_line(marker) == file->sha256) return false;
  // Forget the old archive first: a failed extraction may have replaced some of its files.
  if (Status status = fs.remove(marker); !status) return status;
  ExtractLimits guarded = limits;
  if (std::string inside = path_inside(state_directory, workdir); !inside.empty()) {
    guarded.reserved_paths.push_back(inside);
  }
  if (Status status = extract_zip(file->path, workdir, guarded, fs); !status) return status;
  if (Status status = fs.create_directories(state_directory); !status) return status;
  if (Status status = write_file_atomically(fs, marker, file->sha256 + "\n", 0644); !status) {
    return status;
  }
  return true;
}

}  // namespace gridexp
