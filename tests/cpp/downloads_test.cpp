// Downloader and fetch_and_extract against a real httplib::Server on a loopback port serving
// files the way gridexp-server does (serve_file: ETag, If-None-Match, Range), with hooks that
// break connections, fail, or lie about the ETag. Backoff sleeps are recorded, never slept.
#include "worker/downloads.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zip.h>

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>

#include "common/sha256.h"
#include "server/http_util.h"
#include "test_support.h"

namespace gridexp {
namespace {

using namespace std::chrono_literals;
using testing::contains;
using testing::read_file;
using testing::TempDir;

constexpr const char* kPassword = "secret";

FileToServe file_to_serve(const std::filesystem::path& path, const std::string& sha) {
  FileToServe file;
  file.path = path;
  file.sha256 = sha;
  return file;
}

struct SeenRequest {
  std::string if_none_match;
  std::string range;
  std::string if_range;
};

// Serves scripts.zip (whatever publish() last set) and a missing data.zip, checking the
// password. A hook sees each scripts.zip request first, numbered from 1, and answers it
// itself by returning true.
class FileServer {
 public:
  using Hook = std::function<bool(int number, const httplib::Request&, httplib::Response&)>;

  FileServer() {
    server_.Get("/api/v1/files/scripts.zip",
                [this](const httplib::Request& request, httplib::Response& response) {
                  answer(request, response);
                });
    server_.Get("/api/v1/files/data.zip", [](const httplib::Request&, httplib::Response& response) {
      send_error(response, 404, "file not found: data.zip");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    // stop() before the accept loop runs would be lost, and join() would hang.
    while (!server_.is_running()) std::this_thread::sleep_for(1ms);
  }
  ~FileServer() {
    server_.stop();
    thread_.join();
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

  // Replaces the served file the way gridexp-server does: a new file renamed over the old.
  void publish(const std::string& contents) {
    std::lock_guard lock(mutex_);
    publish_locked(contents);
  }
  void publish_locked(const std::string& contents) {
    ASSERT_TRUE(write_file_atomically(default_file_system(), directory_.path() / "scripts.zip",
                                      contents, 0644)
                    .is_ok());
    sha_ = sha256_hex(contents);
  }
  const std::string& sha() const { return sha_; }
  std::filesystem::path path() const { return directory_.path() / "scripts.zip"; }

  void set_hook(Hook hook) {
    std::lock_guard lock(mutex_);
    hook_ = std::move(hook);
  }
  std::vector<SeenRequest> requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
  }

 private:
  void answer(const httplib::Request& request, httplib::Response& response) {
    std::unique_lock lock(mutex_);
    requests_.push_back({request.get_header_value("If-None-Match"),
                         request.get_header_value("Range"), request.get_header_value("If-Range")});
    if (request.get_header_value("Authorization") != std::string("Bearer ") + kPassword) {
      send_error(response, 401, "wrong password");
      return;
    }
    if (hook_ && hook_(static_cast<int>(requests_.size()), request, response)) return;
    FileToServe file = file_to_serve(path(), sha_);
    lock.unlock();
    serve_file(request, response, file);
  }

  TempDir directory_;
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  mutable std::mutex mutex_;
  std::string sha_;
  Hook hook_;
  std::vector<SeenRequest> requests_;
};

// Answers with the first `cut` bytes of `contents` under its ETag and a Content-Length for
// all of it, then drops the connection, as a network failure mid-body would.
void answer_cut_short(httplib::Response& response, const std::string& contents, std::size_t cut) {
  response.set_header("ETag", "\"" + sha256_hex(contents) + "\"");
  response.set_content_provider(
      contents.size(), "application/octet-stream",
      [contents, cut](std::size_t offset, std::size_t length, httplib::DataSink& sink) {
        if (offset >= cut) return false;
        return sink.write(contents.data() + offset, std::min(length, cut - offset));
      });
}

std::string pseudo_random_bytes(std::size_t size, unsigned seed) {
  std::string bytes(size, '\0');
  for (std::size_t i = 0; i < size; ++i) {
    seed = seed * 1103515245u + 12345u;
    bytes[i] = static_cast<char>(seed >> 16);
  }
  return bytes;
}

// A zip with one file, as bytes.
std::string zip_with(const std::string& name, const std::string& contents) {
  TempDir directory;
  std::filesystem::path path = directory.path() / "a.zip";
  int error = 0;
  zip_t* zip = zip_open(path.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &error);
  EXPECT_NE(zip, nullptr);
  zip_file_add(zip, name.c_str(), zip_source_buffer(zip, contents.data(), contents.size(), 0), 0);
  EXPECT_EQ(zip_close(zip), 0);
  return read_file(path);
}

// A loopback port nothing listens on: bound, then closed.
int closed_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length), 0);
  ::close(fd);
  return ntohs(address.sin_port);
}

class DownloadsTest : public ::testing::Test {
 protected:
  DownloadsTest() { server_.publish(pseudo_random_bytes(200'000, 1)); }

  // Records each backoff instead of sleeping; gives up after `max_sleeps` of them.
  RetryPolicy recording_policy(std::size_t max_sleeps = 10) {
    RetryPolicy policy;
    policy.first_delay = 100ms;
    policy.max_delay = 300ms;
    policy.sleep = [this, max_sleeps](std::chrono::milliseconds delay) {
      sleeps_.push_back(delay);
      return sleeps_.size() < max_sleeps;
    };
    policy.on_retry = [this](const Status&, std::chrono::milliseconds) { ++retry_notices_; };
    return policy;
  }
  Downloader downloader(std::size_t max_sleeps = 10, const std::string& password = kPassword) {
    return Downloader(server_.url(), password, cache(), recording_policy(max_sleeps));
  }
  std::filesystem::path cache() const { return temp_.path() / "cache"; }
  std::vector<std::string> cache_names() const { return testing::file_names(cache()); }

  TempDir temp_;
  FileServer server_;
  std::vector<std::chrono::milliseconds> sleeps_;
  int retry_notices_ = 0;
};

TEST_F(DownloadsTest, DownloadsOnceThenRevalidatesWithNotModified) {
  Downloader files = downloader();

  Result<CachedFile> first = files.fetch("scripts.zip");
  ASSERT_TRUE(first.is_ok()) << first.status().message();
  EXPECT_TRUE(first->downloaded);
  EXPECT_EQ(first->sha256, server_.sha());
  EXPECT_EQ(first->path, cache() / (server_.sha() + ".zip"));
  EXPECT_EQ(read_file(first->path), read_file(server_.path()));

  Result<CachedFile> second = files.fetch("scripts.zip");
  ASSERT_TRUE(second.is_ok()) << second.status().message();
  EXPECT_FALSE(second->downloaded);
  EXPECT_EQ(second->path, first->path);

  std::vector<SeenRequest> requests = server_.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].if_none_match, "");
  EXPECT_EQ(requests[1].if_none_match, "\"" + server_.sha() + "\"");
  EXPECT_EQ(cache_names(),
            (std::vector<std::string>{server_.sha() + ".zip", "scripts.zip.sha256"}));
  EXPECT_TRUE(sleeps_.empty());
}

TEST_F(DownloadsTest, ResumesAfterConnectionDropsMidBody) {
  std::string contents = read_file(server_.path());
  server_.set_hook([&](int number, const httplib::Request&, httplib::Response& response) {
    if (number != 1) return false;
    answer_cut_short(response, contents, 70'000);
    return true;
  });

  Result<CachedFile> file = downloader().fetch("scripts.zip");

  ASSERT_TRUE(file.is_ok()) << file.status().message();
  EXPECT_EQ(read_file(file->path), contents);
  std::vector<SeenRequest> requests = server_.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[1].range, "bytes=70000-");
  EXPECT_EQ(requests[1].if_range, "\"" + server_.sha() + "\"");
  EXPECT_TRUE(sleeps_.empty()) << "an attempt that made progress resumes at once";
}

TEST_F(DownloadsTest, ResumesPartialDownloadLeftByEarlierProcess) {
  std::string contents = read_file(server_.path());
  server_.set_hook([&](int number, const httplib::Request&, httplib::Response& response) {
    if (number == 1) {
      answer_cut_short(response, contents, 50'000);
      return true;
    }
    if (number == 2) {
      answer_cut_short(response, contents, 0);
      return true;
    }
    return false;
  });
  Result<CachedFile> interrupted = downloader(/*max_sleeps=*/1).fetch("scripts.zip");
  ASSERT_FALSE(interrupted.is_ok());
  EXPECT_EQ(interrupted.status().code(), Code::kUnavailable);
  EXPECT_EQ(cache_names(), std::vector<std::string>{"scripts.zip." + server_.sha() + ".part"});

  Result<CachedFile> resumed = downloader().fetch("scripts.zip");

  ASSERT_TRUE(resumed.is_ok()) << resumed.status().message();
  EXPECT_EQ(read_file(resumed->path), contents);
  std::vector<SeenRequest> requests = server_.requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[2].range, "bytes=50000-");
  EXPECT_EQ(cache_names(),
            (std::vector<std::string>{server_.sha() + ".zip", "scripts.zip.sha256"}));
}

TEST_F(DownloadsTest, StartsOverWhenTheFileChangedBetweenAttempts) {
  std::string old_contents = read_file(server_.path());
  std::string new_contents = pseudo_random_bytes(old_contents.size(), 2);
  server_.set_hook([&](int number, const httplib::Request&, httplib::Response& response) {
    if (number != 1) return false;
    answer_cut_short(response, old_contents, 70'000);
    server_.publish_locked(new_contents);
    return true;
  });

  Result<CachedFile> file = downloader().fetch("scripts.zip");

  ASSERT_TRUE(file.is_ok()) << file.status().message();
  EXPECT_EQ(file->sha256, sha256_hex(new_contents));
  EXPECT_EQ(read_file(file->path), new_contents);
  // The resume names the old ETag in If-Range. httplib 0.11 ignores If-Range and answers with
  // a range of the new file, which the downloader must refuse (another ETag) and then ask for
  // the whole file; a server that honours If-Range sends the whole new file at once.
  std::vector<SeenRequest> requests = server_.requests();
  ASSERT_GE(requests.size(), 2u);
  ASSERT_LE(requests.size(), 3u);
  EXPECT_EQ(requests[1].range, "bytes=70000-");
  EXPECT_EQ(requests[1].if_range, "\"" + sha256_hex(old_contents) + "\"");
  if (requests.size() == 3) {
    EXPECT_EQ(requests[2].range, "");
  }
  EXPECT_EQ(cache_names(), (std::vector<std::string>{file->sha256 + ".zip", "scripts.zip.sha256"}));
}

TEST_F(DownloadsTest, KeepsThePartialFileThroughAServerErrorWhileResuming) {
  std::string contents = read_file(server_.path());
  server_.set_hook([&](int number, const httplib::Request&, httplib::Response& response) {
    if (number == 1) {
      answer_cut_short(response, contents, 70'000);
      return true;
    }
    if (number == 2) {
      // What httplib 0.11 makes of an error answer to a Range request: it slices the body.
      response.status = 416;
      return true;
    }
    if (number == 3) {
      send_error(response, 503, "restarting");
      return true;
    }
    return false;
  });

  Result<CachedFile> file = downloader().fetch("scripts.zip");

  ASSERT_TRUE(file.is_ok()) << file.status().message();
  EXPECT_EQ(read_file(file->path), contents);
  std::vector<SeenRequest> requests = server_.requests();
  ASSERT_EQ(requests.size(), 4u);
  EXPECT_EQ(requests[1].range, "bytes=70000-");
  EXPECT_EQ(requests[2].range, "");
  EXPECT_EQ(requests[3].range, "bytes=70000-");
  EXPECT_EQ(sleeps_, std::vector<std::chrono::milliseconds>{100ms});
}

TEST_F(DownloadsTest, FinishesLeftoverPartThatIsAlreadyComplete) {
  std::filesystem::create_directories(cache());
  testing::write_file(cache() / ("scripts.zip." + server_.sha() + ".part"),
                      read_file(server_.path()));

  Result<CachedFile> file = downloader().fetch("scripts.zip");

  ASSERT_TRUE(file.is_ok()) << file.status().message();
  EXPECT_EQ(read_file(file->path), read_file(server_.path()));
  EXPECT_EQ(cache_names(),
            (std::vector<std::string>{server_.sha() + ".zip", "scripts.zip.sha256"}));
}

TEST_F(DownloadsTest, RetriesServerErrorsWithCappedExponentialBackoff) {
  server_.set_hook([](int number, const httplib::Request&, httplib::Response& response) {
    if (number > 4) return false;
    send_error(response, 503, "busy");
    return true;
  });

  Result<CachedFile> file = downloader().fetch("scripts.zip");

  ASSERT_TRUE(file.is_ok()) << file.status().message();
  EXPECT_EQ(sleeps_, (std::vector<std::chrono::milliseconds>{100ms, 200ms, 300ms, 300ms}));
  EXPECT_EQ(retry_notices_, 1);
  EXPECT_EQ(server_.requests().size(), 5u);
}

TEST_F(DownloadsTest, GivesUpOnUnreachableServerWhenThePolicySaysSo) {
  Downloader files("http://127.0.0.1:" + std::to_string(closed_port()), kPassword, cache(),
                   recording_policy(/*max_sleeps=*/3));

  Result<CachedFile> file = files.fetch("scripts.zip");

  ASSERT_FALSE(file.is_ok());
  EXPECT_EQ(file.status().code(), Code::kUnavailable);
  EXPECT_TRUE(contains(file.status().message(), "scripts.zip")) << file.status().message();
  EXPECT_EQ(sleeps_.size(), 3u);
}

TEST_F(DownloadsTest, RefusesContentThatDoesNotMatchItsETag) {
  std::string claimed = sha256_hex("something else");
  server_.set_hook([&](int, const httplib::Request& request, httplib::Response& response) {
    serve_file(request, response, file_to_serve(server_.path(), claimed));
    return true;
  });

  Result<CachedFile> file = downloader(/*max_sleeps=*/2).fetch("scripts.zip");

  ASSERT_FALSE(file.is_ok());
  EXPECT_EQ(file.status().code(), Code::kIoError);
  EXPECT_TRUE(contains(file.status().message(), "SHA-256")) << file.status().message();
  EXPECT_EQ(server_.requests().size(), 2u);
  EXPECT_TRUE(cache_names().empty());
}

TEST_F(DownloadsTest, MissingFileIsNotFound) {
  Result<CachedFile> file = downloader().fetch("data.zip");

  ASSERT_FALSE(file.is_ok());
  EXPECT_EQ(file.status().code(), Code::kNotFound);
  EXPECT_EQ(file.status().message(), "the server has no data.zip");
  EXPECT_TRUE(sleeps_.empty());
}

TEST_F(DownloadsTest, WrongPasswordIsUnauthorized) {
  Result<CachedFile> file = downloader(10, "not the password").fetch("scripts.zip");

  ASSERT_FALSE(file.is_ok());
  EXPECT_EQ(file.status().code(), Code::kUnauthorized);
  EXPECT_TRUE(contains(file.status().message(), "wrong password")) << file.status().message();
  EXPECT_EQ(server_.requests().size(), 1u);
  EXPECT_TRUE(sleeps_.empty());
}

TEST_F(DownloadsTest, ChangedFileIsDownloadedAgainAndTheOldVersionDropped) {
  Downloader files = downloader();
  Result<CachedFile> first = files.fetch("scripts.zip");
  ASSERT_TRUE(first.is_ok()) << first.status().message();
  server_.publish(pseudo_random_bytes(1000, 3));

  Result<CachedFile> second = files.fetch("scripts.zip");

  ASSERT_TRUE(second.is_ok()) << second.status().message();
  EXPECT_TRUE(second->downloaded);
  EXPECT_EQ(second->sha256, server_.sha());
  EXPECT_NE(second->sha256, first->sha256);
  EXPECT_EQ(read_file(second->path), read_file(server_.path()));
  EXPECT_EQ(cache_names(),
            (std::vector<std::string>{second->sha256 + ".zip", "scripts.zip.sha256"}));
}

TEST_F(DownloadsTest, RefusesNamesThatAreNotPlainFileNames) {
  for (const char* name : {"", "../etc/passwd", "a/b.zip", ".hidden"}) {
    Result<CachedFile> file = downloader().fetch(name);
    EXPECT_EQ(file.status().code(), Code::kInvalidArgument) << name;
  }
  EXPECT_TRUE(server_.requests().empty());
}

TEST_F(DownloadsTest, ExtractsOnlyWhenTheArchiveChanged) {
  std::filesystem::path workdir = temp_.path() / "workdir";
  std::filesystem::path state = workdir / ".gridexp-worker";
  std::filesystem::create_directories(workdir);
  server_.publish(zip_with("experiment.py", "version = 1\n"));
  Downloader files(server_.url(), kPassword, state / "cache", recording_policy());

  Result<bool> first = fetch_and_extract(files, "scripts.zip", workdir, state, ExtractLimits{});
  ASSERT_TRUE(first.is_ok()) << first.status().message();
  EXPECT_TRUE(*first);
  EXPECT_EQ(read_file(workdir / "experiment.py"), "version = 1\n");
  EXPECT_EQ(read_file(state / "scripts.zip.extracted"), server_.sha() + "\n");

  Result<bool> unchanged = fetch_and_extract(files, "scripts.zip", workdir, state, ExtractLimits{});
  ASSERT_TRUE(unchanged.is_ok()) << unchanged.status().message();
  EXPECT_FALSE(*unchanged);

  server_.publish(zip_with("experiment.py", "version = 2\n"));
  Result<bool> changed = fetch_and_extract(files, "scripts.zip", workdir, state, ExtractLimits{});
  ASSERT_TRUE(changed.is_ok()) << changed.status().message();
  EXPECT_TRUE(*changed);
  EXPECT_EQ(read_file(workdir / "experiment.py"), "version = 2\n");
  EXPECT_EQ(server_.requests().size(), 3u);
}

TEST_F(DownloadsTest, RefusesArchiveThatWritesIntoTheStateDirectory) {
  std::filesystem::path workdir = temp_.path() / "workdir";
  std::filesystem::path state = workdir / ".gridexp-worker";
  server_.publish(zip_with(".gridexp-worker/cache/scripts.zip.sha256", "forged\n"));
  Downloader files(server_.url(), kPassword, state / "cache", recording_policy());

  Result<bool> extracted = fetch_and_extract(files, "scripts.zip", workdir, state, ExtractLimits{});

  ASSERT_FALSE(extracted.is_ok());
  EXPECT_EQ(extracted.status().code(), Code::kInvalidArgument);
  EXPECT_TRUE(contains(extracted.status().message(), "reserved")) << extracted.status().message();
  EXPECT_EQ(read_file(state / "cache" / "scripts.zip.sha256"), server_.sha() + "\n");
  EXPECT_FALSE(std::filesystem::exists(state / "scripts.zip.extracted"));
}

}  // namespace
}  // namespace gridexp
