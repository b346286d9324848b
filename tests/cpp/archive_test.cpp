// extract_zip: a normal tree with its permissions, every kind of refused archive (each leaving
// the destination exactly as it was), and disk failures leaving no partial file.
#include "worker/archive.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <zip.h>

#include <cstdint>
#include <cstring>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "test_support.h"

namespace gridexp {
namespace {

using testing::contains;
using testing::Faults;
using testing::FaultyFileSystem;
using testing::permission_bits;
using testing::read_file;
using testing::TempDir;
using testing::write_file;

// Writes a zip with libzip; contents must outlive zip_close, hence the deque.
class ZipBuilder {
 public:
  explicit ZipBuilder(const std::filesystem::path& path) {
    int error = 0;
    zip_ = zip_open(path.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &error);
    EXPECT_NE(zip_, nullptr) << "libzip error " << error;
  }

  ZipBuilder& file(const std::string& name, const std::string& contents, mode_t mode = 0644) {
    return add(name, contents, S_IFREG | mode);
  }
  ZipBuilder& directory(const std::string& name) {
    zip_int64_t index = zip_dir_add(zip_, name.c_str(), 0);
    EXPECT_GE(index, 0) << zip_strerror(zip_);
    set_mode(index, S_IFDIR | 0755);
    return *this;
  }
  ZipBuilder& symlink(const std::string& name, const std::string& target) {
    return add(name, target, S_IFLNK | 0777);
  }
  ZipBuilder& add(const std::string& name, const std::string& contents, mode_t unix_mode) {
    const std::string& kept = contents_.emplace_back(contents);
    zip_source_t* source = zip_source_buffer(zip_, kept.data(), kept.size(), 0);
    zip_int64_t index = zip_file_add(zip_, name.c_str(), source, 0);
    EXPECT_GE(index, 0) << name << ": " << zip_strerror(zip_);
    set_mode(index, unix_mode);
    return *this;
  }
  void close() { ASSERT_EQ(zip_close(zip_), 0) << zip_strerror(zip_); }

 private:
  void set_mode(zip_int64_t index, mode_t unix_mode) {
    EXPECT_EQ(zip_file_set_external_attributes(zip_, static_cast<zip_uint64_t>(index), 0,
                                               ZIP_OPSYS_UNIX, std::uint32_t{unix_mode} << 16),
              0);
  }

  zip_t* zip_ = nullptr;
  std::deque<std::string> contents_;
};

// Rewrites the uncompressed size an entry declares, in its local and its central header, as a
// zip bomb would.
void patch_declared_size(const std::filesystem::path& archive, const std::string& name,
                         std::uint32_t size) {
  std::string bytes = read_file(archive);
  int patched = 0;
  for (std::size_t at = bytes.find(name); at != std::string::npos; at = bytes.find(name, at + 1)) {
    if (at >= 30 && bytes.compare(at - 30, 4, "PK\x03\x04") == 0) {
      std::memcpy(&bytes[at - 30 + 22], &size, 4);
      ++patched;
    } else if (at >= 46 && bytes.compare(at - 46, 4, "PK\x01\x02") == 0) {
      std::memcpy(&bytes[at - 46 + 24], &size, 4);
      ++patched;
    }
  }
  ASSERT_EQ(patched, 2);
  write_file(archive, bytes);
}

// Replaces every occurrence of `from` in the archive's bytes with `to` (same length): names
// libzip itself would refuse to write.
void patch_bytes(const std::filesystem::path& archive, const std::string& from,
                 const std::string& to) {
  ASSERT_EQ(from.size(), to.size());
  std::string bytes = read_file(archive);
  for (std::size_t at = bytes.find(from); at != std::string::npos; at = bytes.find(from, at)) {
    bytes.replace(at, from.size(), to);
  }
  write_file(archive, bytes);
}

// Everything under `root`: each path with its type, permissions and contents or link target.
std::map<std::string, std::string> snapshot(const std::filesystem::path& root) {
  std::map<std::string, std::string> result;
  if (!std::filesystem::exists(root)) return result;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(root)) {
    std::string key = entry.path().lexically_relative(root).string();
    std::string& value = result[key];
    if (entry.is_symlink()) {
      value = "link to " + std::filesystem::read_symlink(entry.path()).string();
    } else if (entry.is_directory()) {
      value = "directory";
    } else {
      value = std::to_string(permission_bits(entry.path())) + " " + read_file(entry.path());
    }
  }
  return result;
}

class ArchiveTest : public ::testing::Test {
 protected:
  std::filesystem::path archive() const { return temp_.path() / "test.zip"; }
  std::filesystem::path destination() const { return temp_.path() / "workdir"; }

  // A destination with a file, a directory and a file inside it, to show it stays untouched.
  void populate_destination() {
    std::filesystem::create_directories(destination() / "old");
    write_file(destination() / "experiment.py", "old experiment");
    write_file(destination() / "old" / "notes.txt", "old notes");
  }

  TempDir temp_;
};

TEST_F(ArchiveTest, ExtractsTreeWithSanePermissions) {
  std::string binary("\0\x01\x02\xff binary", 10);
  ZipBuilder(archive())
      .file("experiment.py", "print('hi')\n")
      .file("bin/run.sh", "#!/bin/sh\n", 0755)
      .file("data/sub/blob.bin", binary)
      .directory("empty/")
      .file("setuid", "x", 04755)
      .file("private", "x", 0600)
      .file("shared", "x", 0666)
      .close();

  ASSERT_TRUE(extract_zip(archive(), destination(), ExtractLimits{}).is_ok());

  EXPECT_EQ(read_file(destination() / "experiment.py"), "print('hi')\n");
  EXPECT_EQ(read_file(destination() / "data" / "sub" / "blob.bin"), binary);
  EXPECT_TRUE(std::filesystem::is_directory(destination() / "empty"));
  EXPECT_EQ(permission_bits(destination() / "experiment.py"), 0644);
  EXPECT_EQ(permission_bits(destination() / "bin" / "run.sh"), 0755);
  EXPECT_EQ(permission_bits(destination() / "setuid"), 0755);
  EXPECT_EQ(permission_bits(destination() / "private"), 0600);
  EXPECT_EQ(permission_bits(destination() / "shared"), 0644);
  EXPECT_EQ(testing::file_names(destination()),
            (std::vector<std::string>{"bin", "data", "empty", "experiment.py", "private", "setuid",
                                      "shared"}));
}

TEST_F(ArchiveTest, ReplacesNamedFilesAndKeepsOthers) {
  populate_destination();
  ZipBuilder(archive()).file("experiment.py", "new experiment").close();

  ASSERT_TRUE(extract_zip(archive(), destination(), ExtractLimits{}).is_ok());

  EXPECT_EQ(read_file(destination() / "experiment.py"), "new experiment");
  EXPECT_EQ(read_file(destination() / "old" / "notes.txt"), "old notes");
  EXPECT_EQ(testing::file_names(destination()), (std::vector<std::string>{"experiment.py", "old"}));
}

struct BadArchive {
  const char* what;
  std::function<void(const std::filesystem::path&)> build;
  const char* entry_in_message;
};

TEST_F(ArchiveTest, RefusesUnsafeEntriesLeavingDestinationUntouched) {
  std::vector<BadArchive> cases = {
      {"absolute path",
       [](auto& path) { ZipBuilder(path).file("ok.txt", "x").file("/abs.txt", "x").close(); },
       "/abs.txt"},
      {"parent component", [](auto& path) { ZipBuilder(path).file("../evil.txt", "x").close(); },
       "../evil.txt"},
      {"inner parent component",
       [](auto& path) { ZipBuilder(path).file("a/../../evil.txt", "x").close(); },
       "a/../../evil.txt"},
      {"backslash", [](auto& path) { ZipBuilder(path).file("a\\evil.txt", "x").close(); },
       "a\\evil.txt"},
      {"drive letter", [](auto& path) { ZipBuilder(path).file("C:/evil.txt", "x").close(); },
       "C:/evil.txt"},
      {"dot component", [](auto& path) { ZipBuilder(path).file("./evil.txt", "x").close(); },
       "./evil.txt"},
      {"empty component", [](auto& path) { ZipBuilder(path).file("a//evil.txt", "x").close(); },
       "a//evil.txt"},
      {"invalid UTF-8", [](auto& path) { ZipBuilder(path).file("bad\xff.txt", "x").close(); },
       "bad\\xff.txt"},
      {"symlink entry",
       [](auto& path) {
         ZipBuilder(path).file("ok.txt", "x").symlink("link", "/etc/passwd").close();
       },
       "link"},
      {"fifo entry", [](auto& path) { ZipBuilder(path).add("fifo", "", S_IFIFO | 0644).close(); },
       "fifo"},
      {"directory without slash",
       [](auto& path) { ZipBuilder(path).add("dir", "", S_IFDIR | 0755).close(); }, "dir"},
      {"duplicate name",
       [](auto& path) {
         ZipBuilder(path).file("same.txt", "1").file("sbme.txt", "2").close();
         patch_bytes(path, "sbme.txt", "same.txt");
       },
       "same.txt"},
      {"file as a parent",
       [](auto& path) { ZipBuilder(path).file("a", "x").file("a/b.txt", "x").close(); }, "a/b.txt"},
      {"reserved path", [](auto& path) { ZipBuilder(path).file(".state/outbox/x", "x").close(); },
       ".state/outbox/x"},
  };
  populate_destination();
  std::map<std::string, std::string> before = snapshot(destination());
  ExtractLimits limits;
  limits.reserved_paths = {".state"};
  for (const BadArchive& bad : cases) {
    SCOPED_TRACE(bad.what);
    bad.build(archive());
    Status status = extract_zip(archive(), destination(), limits);
    EXPECT_EQ(status.code(), Code::kInvalidArgument) << status.message();
    EXPECT_TRUE(contains(status.message(), archive().string())) << status.message();
    EXPECT_TRUE(contains(status.message(), std::string("\"") + bad.entry_in_message + "\""))
        << status.message();
    EXPECT_EQ(snapshot(destination()), before);
  }
}

TEST_F(ArchiveTest, RefusesTooManyEntries) {
  populate_destination();
  std::map<std::string, std::string> before = snapshot(destination());
  ZipBuilder(archive()).file("a", "1").file("b", "2").file("c", "3").close();
  ExtractLimits limits;
  limits.max_entries = 2;

  Status status = extract_zip(archive(), destination(), limits);

  EXPECT_EQ(status.code(), Code::kTooLarge);
  EXPECT_TRUE(contains(status.message(), "3 entries")) << status.message();
  EXPECT_EQ(snapshot(destination()), before);
}

TEST_F(ArchiveTest, RefusesDeclaredSizeOverLimit) {
  populate_destination();
  std::map<std::string, std::string> before = snapshot(destination());
  ZipBuilder(archive())
      .file("first", std::string(60, 'a'))
      .file("second", std::string(60, 'b'))
      .close();
  ExtractLimits limits;
  limits.max_total_bytes = 100;

  Status status = extract_zip(archive(), destination(), limits);

  EXPECT_EQ(status.code(), Code::kTooLarge);
  EXPECT_TRUE(contains(status.message(), "\"second\"")) << status.message();
  EXPECT_EQ(snapshot(destination()), before);
}

TEST_F(ArchiveTest, CountsActualBytesWhenTheHeaderUnderstatesThem) {
  populate_destination();
  std::map<std::string, std::string> before = snapshot(destination());
  ZipBuilder(archive())
      .file("a-small.txt", "fine")
      .file("bomb.bin", std::string(1 << 20, '\0'))
      .file("new/z.txt", "fine")
      .close();
  patch_declared_size(archive(), "bomb.bin", 10);
  ExtractLimits limits;
  limits.max_total_bytes = 1000;  // the declared sizes pass; the inflated bytes would not

  Status status = extract_zip(archive(), destination(), limits);

  EXPECT_EQ(status.code(), Code::kTooLarge);
  EXPECT_TRUE(contains(status.message(), "\"bomb.bin\"")) << status.message();
  EXPECT_TRUE(contains(status.message(), "more than the 10 bytes")) << status.message();
  EXPECT_EQ(snapshot(destination()), before);
}

TEST_F(ArchiveTest, RefusesEntryShorterThanItsHeaderSays) {
  ZipBuilder(archive()).file("short.bin", std::string(1000, 'x')).close();
  patch_declared_size(archive(), "short.bin", 2000);

  Status status = extract_zip(archive(), destination(), ExtractLimits{});

  EXPECT_FALSE(status.is_ok());
  EXPECT_TRUE(contains(status.message(), "\"short.bin\"")) << status.message();
  EXPECT_FALSE(std::filesystem::exists(destination()));
}

TEST_F(ArchiveTest, RefusesPathThroughExistingSymlink) {
  TempDir outside;
  populate_destination();
  std::filesystem::create_directory_symlink(outside.path(), destination() / "link");
  std::map<std::string, std::string> before = snapshot(destination());

  for (const char* name : {"link/evil.txt", "link"}) {
    SCOPED_TRACE(name);
    ZipBuilder(archive()).file("ok.txt", "x").file(name, "x").close();
    Status status = extract_zip(archive(), destination(), ExtractLimits{});
    EXPECT_EQ(status.code(), Code::kInvalidArgument);
    EXPECT_TRUE(contains(status.message(), "symbolic link")) << status.message();
    EXPECT_EQ(snapshot(destination()), before);
    EXPECT_TRUE(std::filesystem::is_empty(outside.path()));
  }
}

TEST_F(ArchiveTest, RefusesFileWhereADirectoryIsNeededAndTheReverse) {
  populate_destination();
  std::map<std::string, std::string> before = snapshot(destination());
  for (const char* name : {"experiment.py/inner.txt", "old"}) {
    SCOPED_TRACE(name);
    ZipBuilder(archive()).file(name, "x").close();
    Status status = extract_zip(archive(), destination(), ExtractLimits{});
    EXPECT_EQ(status.code(), Code::kInvalidArgument) << status.message();
    EXPECT_EQ(snapshot(destination()), before);
  }
}

TEST_F(ArchiveTest, FailedWriteLeavesNoPartialFile) {
  populate_destination();
  std::map<std::string, std::string> before = snapshot(destination());
  ZipBuilder(archive())
      .file("first.txt", std::string(50, 'a'))
      .file("new/deeper/second.txt", std::string(50, 'b'))
      .file("experiment.py", std::string(5000, 'c'))
      .close();
  Faults faults;
  faults.fail_append_after_bytes = 100;
  FaultyFileSystem fs(faults);

  Status status = extract_zip(archive(), destination(), ExtractLimits{}, fs);

  EXPECT_EQ(status.code(), Code::kIoError);
  EXPECT_TRUE(contains(status.message(), "\"experiment.py\"")) << status.message();
  EXPECT_EQ(fs.created.size(), 3u);
  EXPECT_EQ(snapshot(destination()), before);
}

TEST_F(ArchiveTest, FailedRenameLeavesNoTemporaries) {
  populate_destination();
  ZipBuilder(archive()).file("experiment.py", "new").file("old/more.txt", "more").close();
  Faults faults;
  faults.fail_rename = true;
  FaultyFileSystem fs(faults);

  Status status = extract_zip(archive(), destination(), ExtractLimits{}, fs);

  EXPECT_EQ(status.code(), Code::kIoError);
  EXPECT_TRUE(contains(status.message(), "0 of 2 files")) << status.message();
  EXPECT_EQ(read_file(destination() / "experiment.py"), "old experiment");
  EXPECT_EQ(testing::file_names(destination()), (std::vector<std::string>{"experiment.py", "old"}));
  EXPECT_EQ(testing::file_names(destination() / "old"), std::vector<std::string>{"notes.txt"});
}

TEST_F(ArchiveTest, ReportsUnreadableArchive) {
  Status missing = extract_zip(archive(), destination(), ExtractLimits{});
  EXPECT_EQ(missing.code(), Code::kIoError);
  EXPECT_TRUE(contains(missing.message(), archive().string())) << missing.message();

  write_file(archive(), "this is not a zip archive");
  Status garbage = extract_zip(archive(), destination(), ExtractLimits{});
  EXPECT_EQ(garbage.code(), Code::kInvalidArgument);
  EXPECT_TRUE(contains(garbage.message(), archive().string())) << garbage.message();
  EXPECT_FALSE(std::filesystem::exists(destination()));
}

}  // namespace
}  // namespace gridexp
