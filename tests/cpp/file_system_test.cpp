// Tests for common/file_system: the POSIX FileSystem, and write_file_atomically against both
// the real disk and a fault-injecting FileSystem (short writes, failed sync, failed rename).
#include "common/file_system.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "test_support.h"

namespace gridexp {
namespace {

namespace fs = std::filesystem;
using namespace gridexp::testing;

// ---------------------------------------------------------------- PosixFileSystem

class PosixFileSystemTest : public ::testing::Test {
 protected:
  TempDir dir_;
  FileSystem& fs_ = default_file_system();
};

TEST_F(PosixFileSystemTest, DefaultFileSystemIsOneInstance) {
  EXPECT_EQ(&default_file_system(), &default_file_system());
}

TEST_F(PosixFileSystemTest, AppendThenSyncAndCloseWritesTheBytes) {
  fs::path path = dir_.path() / "out.bin";
  Result<std::unique_ptr<WritableFile>> file = fs_.create_exclusive(path, 0644);
  ASSERT_TRUE(file.is_ok()) << file.status().message();
  const std::string binary("\0\x01\xff tail", 8);
  ASSERT_TRUE((*file)->append("hello, ", 7));
  ASSERT_TRUE((*file)->append(binary.data(), binary.size()));
  ASSERT_TRUE((*file)->append("", 0));
  Status closed = (*file)->sync_and_close();
  ASSERT_TRUE(closed) << closed.message();
  EXPECT_EQ(read_file(path), "hello, " + binary);
}

TEST_F(PosixFileSystemTest, StartingWritebackBetweenAppendsKeepsEveryByte) {
  fs::path path = dir_.path() / "written-back.bin";
  Result<std::unique_ptr<WritableFile>> file = fs_.create_exclusive(path, 0644);
  ASSERT_TRUE(file.is_ok()) << file.status().message();
  (*file)->start_writeback();  // nothing written yet: harmless
  ASSERT_TRUE((*file)->append("first ", 6));
  (*file)->start_writeback();
  (*file)->start_writeback();  // nothing new: harmless
  ASSERT_TRUE((*file)->append("second", 6));
  (*file)->start_writeback();
  ASSERT_TRUE((*file)->sync_and_close());
  EXPECT_EQ(read_file(path), "first second");
}

TEST_F(PosixFileSystemTest, LargeAppendIsWrittenWhole) {
  fs::path path = dir_.path() / "large.bin";
  std::string data;
  for (int i = 0; i < 5'000'000; ++i) data.push_back(static_cast<char>(i % 251));
  Result<std::unique_ptr<WritableFile>> file = fs_.create_exclusive(path, 0644);
  ASSERT_TRUE(file.is_ok()) << file.status().message();
  ASSERT_TRUE((*file)->append(data.data(), data.size()));
  ASSERT_TRUE((*file)->sync_and_close());
  EXPECT_EQ(read_file(path), data);
}

TEST_F(PosixFileSystemTest, FileWithNoAppendIsEmpty) {
  fs::path path = dir_.path() / "empty";
  Result<std::unique_ptr<WritableFile>> file = fs_.create_exclusive(path, 0644);
  ASSERT_TRUE(file.is_ok()) << file.status().message();
  ASSERT_TRUE((*file)->sync_and_close());
  ASSERT_TRUE(fs::exists(path));
  EXPECT_EQ(fs::file_size(path), 0u);
}

TEST_F(PosixFileSystemTest, FileDestroyedWithoutCloseKeepsWhatWasAppended) {
  fs::path path = dir_.path() / "unclosed";
  {
    Result<std::unique_ptr<WritableFile>> file = fs_.create_exclusive(path, 0644);
    ASSERT_TRUE(file.is_ok()) << file.status().message();
    ASSERT_TRUE((*file)->append("abc", 3));
  }
  EXPECT_EQ(read_file(path), "abc");
}

TEST_F(PosixFileSystemTest, CreateExclusiveRefusesAnExistingFile) {
  fs::path path = dir_.path() / "existing";
  write_file(path, "old contents");
  Result<std::unique_ptr<WritableFile>> file = fs_.create_exclusive(path, 0644);
  ASSERT_FALSE(file.is_ok());
  EXPECT_EQ(file.status().code(), Code::kIoError);
  EXPECT_NE(file.status().message().find(path.string()), std::string::npos)
      << file.status().message();
  EXPECT_EQ(read_file(path), "old contents");
}

TEST_F(PosixFileSystemTest, CreateExclusiveDoesNotFollowASymlink) {
  fs::path target = dir_.path() / "target";
  fs::path link = dir_.path() / "link";
  fs::create_symlink(target, link);
  Result<std::unique_ptr<WritableFile>> file = fs_.create_exclusive(link, 0644);
  EXPECT_FALSE(file.is_ok());
  EXPECT_FALSE(fs::exists(target));
}

TEST_F(PosixFileSystemTest, CreateExclusiveInAMissingDirectoryFails) {
  Result<std::unique_ptr<WritableFile>> file =
      fs_.create_exclusive(dir_.path() / "no" / "such" / "file", 0644);
  ASSERT_FALSE(file.is_ok());
  EXPECT_EQ(file.status().code(), Code::kIoError);
}

TEST_F(PosixFileSystemTest, CreateExclusiveApplies0600DespiteAPermissiveUmask) {
  ScopedUmask umask(0);
  fs::path path = dir_.path() / "secret";
  Result<std::unique_ptr<WritableFile>> file = fs_.create_exclusive(path, 0600);
  ASSERT_TRUE(file.is_ok()) << file.status().message();
  ASSERT_TRUE((*file)->sync_and_close());
  EXPECT_EQ(permission_bits(path), 0600);
}

TEST_F(PosixFileSystemTest, CreateExclusiveApplies0600DespiteARestrictiveUmask) {
  ScopedUmask umask(0777);
  fs::path path = dir_.path() / "secret";
  Result<std::unique_ptr<WritableFile>> file = fs_.create_exclusive(path, 0600);
  ASSERT_TRUE(file.is_ok()) << file.status().message();
  ASSERT_TRUE((*file)->sync_and_close());
  EXPECT_EQ(permission_bits(path), 0600);
}

TEST_F(PosixFileSystemTest, CreateExclusiveAppliesModeBitsTheUmaskWouldClear) {
  ScopedUmask umask(022);
  fs::path path = dir_.path() / "shared";
  Result<std::unique_ptr<WritableFile>> file = fs_.create_exclusive(path, 0666);
  ASSERT_TRUE(file.is_ok()) << file.status().message();
  ASSERT_TRUE((*file)->sync_and_close());
  EXPECT_EQ(permission_bits(path), 0666);
}

TEST_F(PosixFileSystemTest, RenameDurablyReplacesTheDestination) {
  fs::path from = dir_.path() / "new";
  fs::path to = dir_.path() / "final";
  write_file(from, "new contents");
  write_file(to, "old contents");
  Status status = fs_.rename_durably(from, to);
  ASSERT_TRUE(status) << status.message();
  EXPECT_EQ(read_file(to), "new contents");
  EXPECT_FALSE(fs::exists(from));
  EXPECT_EQ(file_names(dir_.path()), std::vector<std::string>{"final"});
}

TEST_F(PosixFileSystemTest, RenameDurablyToANewName) {
  fs::path from = dir_.path() / "new";
  fs::create_directories(dir_.path() / "sub");
  fs::path to = dir_.path() / "sub" / "final";
  write_file(from, "contents");
  Status status = fs_.rename_durably(from, to);
  ASSERT_TRUE(status) << status.message();
  EXPECT_EQ(read_file(to), "contents");
  EXPECT_FALSE(fs::exists(from));
}

TEST_F(PosixFileSystemTest, RenameDurablyOfAMissingSourceFailsAndKeepsTheDestination) {
  fs::path to = dir_.path() / "final";
  write_file(to, "old contents");
  Status status = fs_.rename_durably(dir_.path() / "missing", to);
  ASSERT_FALSE(status);
  EXPECT_EQ(status.code(), Code::kIoError);
  EXPECT_NE(status.message().find(to.string()), std::string::npos) << status.message();
  EXPECT_EQ(read_file(to), "old contents");
}

TEST_F(PosixFileSystemTest, RemoveDeletesAFile) {
  fs::path path = dir_.path() / "doomed";
  write_file(path, "x");
  Status status = fs_.remove(path);
  ASSERT_TRUE(status) << status.message();
  EXPECT_FALSE(fs::exists(path));
}

TEST_F(PosixFileSystemTest, RemoveOfAMissingFileIsOk) {
  Status status = fs_.remove(dir_.path() / "never-existed");
  EXPECT_TRUE(status) << status.message();
}

TEST_F(PosixFileSystemTest, RemoveDeletesASymlinkNotItsTarget) {
  fs::path target = dir_.path() / "target";
  fs::path link = dir_.path() / "link";
  write_file(target, "keep me");
  fs::create_symlink(target, link);
  ASSERT_TRUE(fs_.remove(link));
  EXPECT_FALSE(fs::is_symlink(link));
  EXPECT_EQ(read_file(target), "keep me");
}

TEST_F(PosixFileSystemTest, RemoveOfADirectoryIsAnError) {
  fs::path directory = dir_.path() / "subdir";
  fs::create_directories(directory);
  Status status = fs_.remove(directory);
  EXPECT_FALSE(status);
  EXPECT_EQ(status.code(), Code::kIoError);
  EXPECT_TRUE(fs::is_directory(directory));
}

TEST_F(PosixFileSystemTest, CreateDirectoriesMakesEveryLevelAndToleratesExisting) {
  fs::path nested = dir_.path() / "a" / "b" / "c";
  ASSERT_TRUE(fs_.create_directories(nested));
  EXPECT_TRUE(fs::is_directory(nested));
  EXPECT_TRUE(fs_.create_directories(nested));
}

TEST_F(PosixFileSystemTest, CreateDirectoriesUnderAFileIsAnError) {
  write_file(dir_.path() / "plain", "x");
  Status status = fs_.create_directories(dir_.path() / "plain" / "sub");
  EXPECT_FALSE(status);
  EXPECT_EQ(status.code(), Code::kIoError);
}

// ---------------------------------------------------------------- write_file_atomically

class WriteFileAtomicallyTest : public ::testing::Test {
 protected:
  fs::path destination() const { return dir_.path() / "settings"; }

  // Asserts the failure left the old contents in place and no temporary file behind.
  void expect_untouched(const FaultyFileSystem& faulty, const std::string& old_contents) {
    EXPECT_EQ(read_file(destination()), old_contents);
    EXPECT_EQ(file_names(dir_.path()), std::vector<std::string>{"settings"});
    for (const fs::path& created : faulty.created) {
      EXPECT_NE(std::find(faulty.removed.begin(), faulty.removed.end(), created),
                faulty.removed.end())
          << created << " was never removed";
    }
  }

  TempDir dir_;
};

TEST_F(WriteFileAtomicallyTest, WritesTheContentsWithTheMode) {
  ScopedUmask umask(077);
  Status status = write_file_atomically(default_file_system(), destination(), "v=1\n", 0640);
  ASSERT_TRUE(status) << status.message();
  EXPECT_EQ(read_file(destination()), "v=1\n");
  EXPECT_EQ(permission_bits(destination()), 0640);
  EXPECT_EQ(file_names(dir_.path()), std::vector<std::string>{"settings"});
}

TEST_F(WriteFileAtomicallyTest, WritesEmptyContents) {
  Status status = write_file_atomically(default_file_system(), destination(), "", 0600);
  ASSERT_TRUE(status) << status.message();
  ASSERT_TRUE(fs::exists(destination()));
  EXPECT_EQ(fs::file_size(destination()), 0u);
}

TEST_F(WriteFileAtomicallyTest, ReplacesTheOldContentsAndLeavesNoTemporaryFile) {
  write_file(destination(), "old contents, longer than the new ones");
  Status status = write_file_atomically(default_file_system(), destination(), "new", 0600);
  ASSERT_TRUE(status) << status.message();
  EXPECT_EQ(read_file(destination()), "new");
  EXPECT_EQ(file_names(dir_.path()), std::vector<std::string>{"settings"});
}

TEST_F(WriteFileAtomicallyTest, ReplacesTheModeOfTheOldFile) {
  write_file(destination(), "old");
  fs::permissions(destination(), fs::perms(0644));
  ASSERT_TRUE(write_file_atomically(default_file_system(), destination(), "new", 0600));
  EXPECT_EQ(permission_bits(destination()), 0600);
}

TEST_F(WriteFileAtomicallyTest, TemporaryFileIsBesideTheDestinationWithAFreshName) {
  FaultyFileSystem recording(Faults{});
  ASSERT_TRUE(write_file_atomically(recording, destination(), "one", 0600));
  ASSERT_TRUE(write_file_atomically(recording, destination(), "two", 0600));
  ASSERT_EQ(recording.created.size(), 2u);
  for (const fs::path& temporary : recording.created) {
    // The same directory, so the rename never crosses filesystems.
    EXPECT_EQ(temporary.parent_path(), destination().parent_path());
    EXPECT_EQ(temporary.filename().string().rfind("settings.", 0), 0u) << temporary;
    EXPECT_EQ(temporary.extension(), ".tmp");
  }
  EXPECT_NE(recording.created[0], recording.created[1]);
  EXPECT_EQ(read_file(destination()), "two");
  EXPECT_EQ(file_names(dir_.path()), std::vector<std::string>{"settings"});
}

TEST_F(WriteFileAtomicallyTest, MissingDirectoryIsAnError) {
  Status status =
      write_file_atomically(default_file_system(), dir_.path() / "missing" / "file", "x", 0600);
  EXPECT_FALSE(status);
  EXPECT_EQ(status.code(), Code::kIoError);
}

TEST_F(WriteFileAtomicallyTest, ShortWriteKeepsTheOldContentsAndRemovesTheTemporaryFile) {
  write_file(destination(), "old contents");
  Faults faults;
  faults.fail_append_after_bytes = 5;
  FaultyFileSystem faulty(faults);
  Status status = write_file_atomically(faulty, destination(), "new contents that are long", 0600);
  ASSERT_FALSE(status);
  EXPECT_EQ(status.code(), Code::kIoError);
  EXPECT_NE(status.message().find("injected"), std::string::npos) << status.message();
  ASSERT_EQ(faulty.created.size(), 1u);
  expect_untouched(faulty, "old contents");
}

TEST_F(WriteFileAtomicallyTest, WriteFailingAtTheFirstByteKeepsTheOldContents) {
  write_file(destination(), "old contents");
  Faults faults;
  faults.fail_append_after_bytes = 0;
  FaultyFileSystem faulty(faults);
  EXPECT_FALSE(write_file_atomically(faulty, destination(), "new", 0600));
  ASSERT_EQ(faulty.created.size(), 1u);
  expect_untouched(faulty, "old contents");
}

TEST_F(WriteFileAtomicallyTest, FailedSyncKeepsTheOldContentsAndRemovesTheTemporaryFile) {
  write_file(destination(), "old contents");
  Faults faults;
  faults.fail_sync = true;
  FaultyFileSystem faulty(faults);
  Status status = write_file_atomically(faulty, destination(), "new", 0600);
  ASSERT_FALSE(status);
  EXPECT_EQ(status.code(), Code::kIoError);
  ASSERT_EQ(faulty.created.size(), 1u);
  expect_untouched(faulty, "old contents");
}

TEST_F(WriteFileAtomicallyTest, FailedRenameKeepsTheOldContentsAndRemovesTheTemporaryFile) {
  write_file(destination(), "old contents");
  Faults faults;
  faults.fail_rename = true;
  FaultyFileSystem faulty(faults);
  Status status = write_file_atomically(faulty, destination(), "new", 0600);
  ASSERT_FALSE(status);
  EXPECT_EQ(status.code(), Code::kIoError);
  EXPECT_NE(status.message().find("injected"), std::string::npos) << status.message();
  ASSERT_EQ(faulty.created.size(), 1u);
  expect_untouched(faulty, "old contents");
}

TEST_F(WriteFileAtomicallyTest, FailedCreateKeepsTheOldContents) {
  write_file(destination(), "old contents");
  Faults faults;
  faults.fail_create = true;
  FaultyFileSystem faulty(faults);
  Status status = write_file_atomically(faulty, destination(), "new", 0600);
  ASSERT_FALSE(status);
  EXPECT_EQ(status.code(), Code::kIoError);
  expect_untouched(faulty, "old contents");
}

TEST_F(WriteFileAtomicallyTest, FailureWithNoOldFileLeavesNothing) {
  Faults faults;
  faults.fail_rename = true;
  FaultyFileSystem faulty(faults);
  EXPECT_FALSE(write_file_atomically(faulty, destination(), "new", 0600));
  EXPECT_FALSE(fs::exists(destination()));
  EXPECT_TRUE(file_names(dir_.path()).empty());
}

}  // namespace
}  // namespace gridexp
