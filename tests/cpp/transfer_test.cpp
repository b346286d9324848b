// Model uploads larger than one write batch (1 MiB), whose hashing and writing run on a thread
// of their own — including a write failure on that thread and an upload abandoned while it
// works. (serve_file at such sizes: ServeFileLarge in server_test.cpp.)
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>

#include "common/sha256.h"
#include "server/model_files.h"
#include "test_support.h"

namespace gridexp {
namespace {

namespace fs = std::filesystem;
using namespace gridexp::testing;

constexpr char kTrialId[] = "00000000000000ff";

std::string pattern(std::size_t size) {
  std::string text(size, '\0');
  for (std::size_t i = 0; i < size; ++i) text[i] = static_cast<char>((i * 131 + i / 4096) % 251);
  return text;
}

class LargeUploadTest : public ::testing::Test {
 protected:
  std::vector<std::string> incoming() const { return file_names(models_dir_ / ".incoming"); }
  fs::path final_path() const { return models_dir_ / (std::string(kTrialId) + ".pt"); }

  TempDir dir_;
  fs::path models_dir_ = dir_.path() / "models";
};

TEST_F(LargeUploadTest, ManyBatchesInSmallPiecesArriveWhole) {
  Faults counting;
  FaultyFileSystem real(counting);
  ModelFiles files(models_dir_, real);
  ASSERT_TRUE(files.prepare());
  const std::string model = pattern((7 << 19) + 123);  // 3.5 MiB and a bit
  std::unique_ptr<ModelUpload> upload = std::move(files.begin_upload(kTrialId, 64 << 20)).value();
  for (std::size_t at = 0; at < model.size(); at += 4096) {
    Status appended =
        upload->append(model.data() + at, std::min<std::size_t>(4096, model.size() - at));
    ASSERT_TRUE(appended) << appended.message();
  }
  Status finished = upload->finish(sha256_hex(model));
  ASSERT_TRUE(finished) << finished.message();
  EXPECT_EQ(upload->size_bytes(), model.size());
  ASSERT_TRUE(upload->commit());
  EXPECT_EQ(read_file(final_path()), model);
  EXPECT_TRUE(incoming().empty());
  // The disk was asked to start on each batch as it was written, not only at the end.
  EXPECT_GE(counting.writebacks->load(), 3);
}

TEST_F(LargeUploadTest, AWrongDigestOverManyBatchesIsRefused) {
  FaultyFileSystem real;
  ModelFiles files(models_dir_, real);
  ASSERT_TRUE(files.prepare());
  const std::string model = pattern(3 << 20);
  {
    std::unique_ptr<ModelUpload> upload = std::move(files.begin_upload(kTrialId, 64 << 20)).value();
    ASSERT_TRUE(upload->append(model.data(), model.size()));
    Status finished = upload->finish(sha256_hex("something else"));
    EXPECT_EQ(finished.code(), Code::kInvalidArgument);
  }
  EXPECT_TRUE(incoming().empty());
  EXPECT_FALSE(fs::exists(final_path()));
}

TEST_F(LargeUploadTest, AWriteFailureOnTheWriterThreadSurfacesAndLeavesNothing) {
  Faults faults;
  faults.fail_append_after_bytes = 1000;
  FaultyFileSystem faulty(faults);
  ModelFiles files(models_dir_, faulty);
  ASSERT_TRUE(files.prepare());
  const std::string model = pattern(3 << 20);
  {
    std::unique_ptr<ModelUpload> upload = std::move(files.begin_upload(kTrialId, 64 << 20)).value();
    Status status;
    for (std::size_t at = 0; at < model.size() && status; at += 65536) {
      status = upload->append(model.data() + at, 65536);
    }
    if (status) status = upload->finish(sha256_hex(model));
    ASSERT_FALSE(status);
    EXPECT_EQ(status.code(), Code::kIoError);
  }
  EXPECT_TRUE(incoming().empty());
  EXPECT_FALSE(fs::exists(final_path()));
}

TEST_F(LargeUploadTest, AnUploadAbandonedMidwayStopsItsWriterAndRemovesItsFile) {
  FaultyFileSystem real;
  ModelFiles files(models_dir_, real);
  ASSERT_TRUE(files.prepare());
  const std::string model = pattern(5 << 20);
  {
    std::unique_ptr<ModelUpload> upload = std::move(files.begin_upload(kTrialId, 64 << 20)).value();
    ASSERT_TRUE(upload->append(model.data(), model.size()));
    EXPECT_EQ(incoming().size(), 1u);
  }  // dropped without finish(): the connection went away
  EXPECT_TRUE(incoming().empty());
  EXPECT_FALSE(fs::exists(final_path()));
}

TEST_F(LargeUploadTest, OverTheLimitAcrossBatchesIsTooLarge) {
  FaultyFileSystem real;
  ModelFiles files(models_dir_, real);
  ASSERT_TRUE(files.prepare());
  const std::string model = pattern(3 << 20);
  std::unique_ptr<ModelUpload> upload = std::move(files.begin_upload(kTrialId, 2 << 20)).value();
  Status status;
  for (std::size_t at = 0; at < model.size() && status; at += 65536) {
    status = upload->append(model.data() + at, 65536);
  }
  EXPECT_EQ(status.code(), Code::kTooLarge);
  upload.reset();
  EXPECT_TRUE(incoming().empty());
}

}  // namespace
}  // namespace gridexp
