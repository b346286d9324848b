// Tests for common/sha256: FIPS 180-2 vectors, streaming against one-shot, and file hashing.
#include "common/sha256.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "test_support.h"

namespace gridexp {
namespace {

using namespace gridexp::testing;

constexpr char kEmptySha[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
constexpr char kAbcSha[] = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
constexpr char kTwoBlockInput[] = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
constexpr char kTwoBlockSha[] = "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1";
constexpr char kMillionASha[] = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";

TEST(Sha256Hex, EmptyInput) { EXPECT_EQ(sha256_hex(""), kEmptySha); }

TEST(Sha256Hex, Abc) { EXPECT_EQ(sha256_hex("abc"), kAbcSha); }

TEST(Sha256Hex, TwoBlockMessage) { EXPECT_EQ(sha256_hex(kTwoBlockInput), kTwoBlockSha); }

TEST(Sha256Hex, OneMillionA) { EXPECT_EQ(sha256_hex(std::string(1'000'000, 'a')), kMillionASha); }

TEST(Sha256Hex, IsLowercaseHexOf64Digits) {
  std::string hex = sha256_hex("anything");
  ASSERT_EQ(hex.size(), 64u);
  for (char c : hex) EXPECT_TRUE((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) << c;
}

TEST(Sha256Hex, NulBytesAreHashed) {
  EXPECT_NE(sha256_hex(std::string("a\0b", 3)), sha256_hex("a"));
  EXPECT_NE(sha256_hex(std::string("\0", 1)), kEmptySha);
}

TEST(Sha256Streaming, NoUpdateIsTheEmptyDigest) {
  Sha256 hasher;
  EXPECT_EQ(hasher.finish_hex(), kEmptySha);
}

TEST(Sha256Streaming, EverySplitOfAMessageEqualsOneShot) {
  const std::string message = kTwoBlockInput;
  for (std::size_t split = 0; split <= message.size(); ++split) {
    Sha256 hasher;
    hasher.update(std::string_view(message).substr(0, split));
    hasher.update(std::string_view(message).substr(split));
    EXPECT_EQ(hasher.finish_hex(), kTwoBlockSha) << "split at " << split;
  }
}

TEST(Sha256Streaming, ByteAtATimeEqualsOneShot) {
  Sha256 hasher;
  for (char c : std::string("abc")) hasher.update(&c, 1);
  EXPECT_EQ(hasher.finish_hex(), kAbcSha);
}

TEST(Sha256Streaming, UnevenChunksAcrossBlocksEqualOneShot) {
  std::string data;
  for (int i = 0; i < 100'000; ++i) data.push_back(static_cast<char>(i * 7 + i / 251));
  Sha256 hasher;
  std::size_t offset = 0;
  for (std::size_t chunk = 1; offset < data.size(); chunk = chunk * 3 + 1) {
    std::size_t size = std::min(chunk, data.size() - offset);
    hasher.update(data.data() + offset, size);
    offset += size;
  }
  EXPECT_EQ(hasher.finish_hex(), sha256_hex(data));
}

TEST(Sha256Streaming, EmptyUpdatesChangeNothing) {
  Sha256 hasher;
  hasher.update("");
  hasher.update("ab");
  hasher.update(nullptr, 0);
  hasher.update("c");
  hasher.update("");
  EXPECT_EQ(hasher.finish_hex(), kAbcSha);
}

TEST(Sha256FileHex, SmallFile) {
  TempDir dir;
  write_file(dir.path() / "abc.txt", "abc");
  Result<std::string> sha = sha256_file_hex(dir.path() / "abc.txt");
  ASSERT_TRUE(sha.is_ok()) << sha.status().message();
  EXPECT_EQ(*sha, kAbcSha);
}

TEST(Sha256FileHex, EmptyFile) {
  TempDir dir;
  write_file(dir.path() / "empty", "");
  Result<std::string> sha = sha256_file_hex(dir.path() / "empty");
  ASSERT_TRUE(sha.is_ok()) << sha.status().message();
  EXPECT_EQ(*sha, kEmptySha);
}

TEST(Sha256FileHex, FileLargerThanTheReadBufferWithBinaryContents) {
  TempDir dir;
  std::string data;
  for (int i = 0; i < 300'000; ++i) data.push_back(static_cast<char>(i % 256));
  write_file(dir.path() / "big.bin", data);
  Result<std::string> sha = sha256_file_hex(dir.path() / "big.bin");
  ASSERT_TRUE(sha.is_ok()) << sha.status().message();
  EXPECT_EQ(*sha, sha256_hex(data));
}

TEST(Sha256FileHex, FileOfExactlyOneReadBuffer) {
  TempDir dir;
  std::string data(1 << 16, 'x');
  write_file(dir.path() / "exact.bin", data);
  Result<std::string> sha = sha256_file_hex(dir.path() / "exact.bin");
  ASSERT_TRUE(sha.is_ok()) << sha.status().message();
  EXPECT_EQ(*sha, sha256_hex(data));
}

TEST(Sha256FileHex, MissingFileIsAnIoErrorNamingThePath) {
  TempDir dir;
  std::filesystem::path missing = dir.path() / "missing.bin";
  Result<std::string> sha = sha256_file_hex(missing);
  ASSERT_FALSE(sha.is_ok());
  EXPECT_EQ(sha.status().code(), Code::kIoError);
  EXPECT_NE(sha.status().message().find(missing.string()), std::string::npos)
      << sha.status().message();
}

TEST(Sha256FileHex, DirectoryIsAnIoError) {
  TempDir dir;
  Result<std::string> sha = sha256_file_hex(dir.path());
  ASSERT_FALSE(sha.is_ok()) << "hashed a directory as " << *sha;
  EXPECT_EQ(sha.status().code(), Code::kIoError);
}

}  // namespace
}  // namespace gridexp
