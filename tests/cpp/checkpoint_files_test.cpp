// CheckpointFiles: names built from the trial id and the digest, the commit order (rename,
// record, then the previous file deleted) under failures, a server start's clean-up, and a done
// trial's file found and deleted.
#include "server/checkpoint_files.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/sha256.h"
#include "test_support.h"

namespace gridexp {
namespace {

namespace fs = std::filesystem;
using namespace gridexp::testing;

constexpr char kTrialId[] = "00000000000000ab";

class CheckpointFilesTest : public ::testing::Test {
 protected:
  // A finished upload of `content` into `files`.
  static std::unique_ptr<ModelUpload> uploaded(CheckpointFiles& files, const std::string& content) {
    std::unique_ptr<ModelUpload> upload = std::move(files.begin_upload(kTrialId, 1 << 20)).value();
    EXPECT_TRUE(upload->append(content.data(), content.size()));
    EXPECT_TRUE(upload->finish(sha256_hex(content)));
    return upload;
  }

  // Commits `content`, recording it as the store would: returns the file it replaced.
  Status commit(CheckpointFiles& files, const std::string& content,
                Result<std::optional<std::string>> recorded) {
    std::unique_ptr<ModelUpload> upload = uploaded(files, content);
    std::string name = CheckpointFiles::file_name_for(kTrialId, upload->sha256());
    return files.commit(*upload, kTrialId, name, [&] { return recorded; });
  }

  std::vector<std::string> stored() const {
    std::vector<std::string> names = file_names(dir_.path() / "checkpoints");
    std::erase(names, ".incoming");
    return names;
  }

  TempDir dir_;
  fs::path checkpoints_ = dir_.path() / "checkpoints";
};

TEST_F(CheckpointFilesTest, NamesComeFromTheTrialIdAndTheDigestOnly) {
  std::string sha(64, 'c');
  EXPECT_EQ(CheckpointFiles::file_name_for(kTrialId, sha),
            "00000000000000ab-cccccccccccccccc.ckpt");
  EXPECT_TRUE(CheckpointFiles::is_checkpoint_file_name("00000000000000ab-cccccccccccccccc.ckpt"));
  for (const char* name :
       {"../00000000000000ab-cccccccccccccccc.ckpt", "x.ckpt", "",
        "00000000000000ab-cccccccccccccccc.pt", "00000000000000AB-cccccccccccccccc.ckpt",
        "00000000000000ab-ccccccccccccccc/.ckpt"}) {
    EXPECT_FALSE(CheckpointFiles::is_checkpoint_file_name(name)) << name;
  }
  CheckpointFiles files(checkpoints_, default_file_system());
  ASSERT_TRUE(files.prepare({}));
  EXPECT_EQ(files.begin_upload("../../etc/passwd", 10).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(files.begin_upload("00000000000000AB", 10).status().code(), Code::kInvalidArgument);
}

TEST_F(CheckpointFilesTest, ANewCheckpointReplacesThePreviousOnlyOnceRecorded) {
  CheckpointFiles files(checkpoints_, default_file_system());
  ASSERT_TRUE(files.prepare({}));
  ASSERT_TRUE(commit(files, "first", std::optional<std::string>()));
  const std::string first = CheckpointFiles::file_name_for(kTrialId, sha256_hex("first"));
  EXPECT_EQ(stored(), std::vector<std::string>{first});

  // The store refuses the second (the lease is gone): the first stays, the second goes.
  ASSERT_FALSE(commit(files, "second", Status::conflict("lease expired")));
  EXPECT_EQ(stored(), std::vector<std::string>{first});
  EXPECT_EQ(read_file(checkpoints_ / first), "first");

  // The same bytes again, refused: the recorded file is the one just renamed over; it stays.
  ASSERT_FALSE(commit(files, "first", Status::conflict("lease expired")));
  EXPECT_EQ(read_file(checkpoints_ / first), "first");

  ASSERT_TRUE(commit(files, "third", std::optional<std::string>(first)));
  const std::string third = CheckpointFiles::file_name_for(kTrialId, sha256_hex("third"));
  EXPECT_EQ(stored(), std::vector<std::string>{third});
  EXPECT_TRUE(file_names(checkpoints_ / ".incoming").empty());
}

TEST_F(CheckpointFilesTest, AFailedRenameKeepsThePreviousAndRecordsNothing) {
  Faults faults;
  faults.fail_rename = true;
  FaultyFileSystem failing(faults);
  CheckpointFiles files(checkpoints_, failing);
  const std::string previous = CheckpointFiles::file_name_for(kTrialId, std::string(64, 'd'));
  fs::create_directories(checkpoints_);
  write_file(checkpoints_ / previous, "previous");
  ASSERT_TRUE(files.prepare({previous}));
  bool recorded = false;
  std::unique_ptr<ModelUpload> upload = uploaded(files, "new");
  Status status = files.commit(*upload, kTrialId,
                               CheckpointFiles::file_name_for(kTrialId, upload->sha256()), [&] {
                                 recorded = true;
                                 return Result<std::optional<std::string>>(std::nullopt);
                               });
  EXPECT_EQ(status.code(), Code::kIoError);
  EXPECT_FALSE(recorded);
  upload.reset();
  EXPECT_EQ(stored(), std::vector<std::string>{previous});
  EXPECT_TRUE(file_names(checkpoints_ / ".incoming").empty());
}

TEST_F(CheckpointFilesTest, AStartDeletesLeftoversAndUnreferencedFiles) {
  const std::string kept = CheckpointFiles::file_name_for(kTrialId, std::string(64, '1'));
  const std::string unreferenced = CheckpointFiles::file_name_for(kTrialId, std::string(64, '2'));
  fs::create_directories(checkpoints_ / ".incoming");
  write_file(checkpoints_ / kept, "kept");
  write_file(checkpoints_ / unreferenced, "half-committed");
  write_file(checkpoints_ / "stray.tmp", "?");
  write_file(checkpoints_ / ".incoming" / "0123abcd", "half an upload");
  CheckpointFiles files(checkpoints_, default_file_system());
  ASSERT_TRUE(files.prepare({kept}));
  EXPECT_EQ(stored(), std::vector<std::string>{kept});
  EXPECT_TRUE(file_names(checkpoints_ / ".incoming").empty());
}

TEST_F(CheckpointFilesTest, ADoneTrialsFileIsDeletedOnceTheStoreDropsIt) {
  const std::string name = CheckpointFiles::file_name_for(kTrialId, std::string(64, '3'));
  fs::create_directories(checkpoints_);
  write_file(checkpoints_ / name, "state");
  CheckpointFiles files(checkpoints_, default_file_system());
  ASSERT_TRUE(files.prepare({name}));
  files.forget_unreferenced(kTrialId, [&](const std::string& file) { return file == name; });
  EXPECT_EQ(stored(), std::vector<std::string>{name}) << "still referenced: kept";
  files.forget_unreferenced("00000000000000cd", [](const std::string&) { return false; });
  EXPECT_EQ(stored(), std::vector<std::string>{name}) << "another trial's call";
  files.forget_unreferenced(kTrialId, [](const std::string&) { return false; });
  EXPECT_TRUE(stored().empty());
}

}  // namespace
}  // namespace gridexp
