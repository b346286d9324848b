// Tests for the server's pure parts: command-line options, the password choice, model file
// uploads, the experiment archives, the read API's JSON and CSV shapes, and the HTTP helpers.
// Everything runs in fresh temporary directories; failures are injected through FileSystem.
#include <gtest/gtest.h>
#include <zip.h>

#include <chrono>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "common/file_system.h"
#include "common/sha256.h"
#include "server/experiment_files.h"
#include "server/http_util.h"
#include "server/model_files.h"
#include "server/options.h"
#include "server/password.h"
#include "server/routes.h"
#include "test_support.h"

namespace gridexp {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace gridexp::testing;

// ================================================================ options

Result<ServerOptions> parse(std::vector<std::string> arguments) {
  return parse_server_options(arguments);
}

// Parses arguments that must be rejected and returns the message.
std::string parse_error(std::vector<std::string> arguments) {
  Result<ServerOptions> options = parse_server_options(arguments);
  if (options.is_ok()) {
    ADD_FAILURE() << "accepted arguments that should have been refused";
    return "";
  }
  EXPECT_EQ(options.status().code(), Code::kInvalidArgument);
  return options.status().message();
}

TEST(ParseServerOptions, Defaults) {
  Result<ServerOptions> options = parse({});
  ASSERT_TRUE(options.is_ok()) << options.status().message();
  EXPECT_EQ(options->experiment_dir, fs::path("."));
  EXPECT_EQ(options->config_path, std::nullopt);
  EXPECT_EQ(options->resolved_config_path(), fs::path(".") / "config.yaml");
  EXPECT_EQ(options->host, "0.0.0.0");
  EXPECT_EQ(options->port, 8030);
  EXPECT_EQ(options->lease_seconds, 30);
  EXPECT_EQ(options->max_attempts, 3);
  EXPECT_EQ(options->max_upload_mb, 16384);
  EXPECT_EQ(options->password, std::nullopt);
  EXPECT_EQ(options->password_file, std::nullopt);
  EXPECT_EQ(options->threads, 64);
  EXPECT_FALSE(options->sync_full);
  EXPECT_FALSE(options->show_help);
  EXPECT_FALSE(options->show_version);
}

TEST(ParseServerOptions, PositionalDirectory) {
  Result<ServerOptions> options = parse({"experiments/mnist"});
  ASSERT_TRUE(options.is_ok()) << options.status().message();
  EXPECT_EQ(options->experiment_dir, fs::path("experiments/mnist"));
  EXPECT_EQ(options->resolved_config_path(), fs::path("experiments/mnist/config.yaml"));
}

TEST(ParseServerOptions, DirectoryMayComeAfterOptions) {
  Result<ServerOptions> options = parse({"--port", "9000", "exp"});
  ASSERT_TRUE(options.is_ok()) << options.status().message();
  EXPECT_EQ(options->experiment_dir, fs::path("exp"));
  EXPECT_EQ(options->port, 9000);
}

TEST(ParseServerOptions, PortAsSeparateValue) {
  Result<ServerOptions> options = parse({"--port", "8031"});
  ASSERT_TRUE(options.is_ok()) << options.status().message();
  EXPECT_EQ(options->port, 8031);
}

TEST(ParseServerOptions, PortWithEqualsAsTheSeedWritesIt) {
  Result<ServerOptions> options = parse({"--port=8030"});
  ASSERT_TRUE(options.is_ok()) << options.status().message();
  EXPECT_EQ(options->port, 8030);
  options = parse({"--port=9123"});
  ASSERT_TRUE(options.is_ok()) << options.status().message();
  EXPECT_EQ(options->port, 9123);
}

TEST(ParseServerOptions, PortZeroPicksAFreePort) {
  Result<ServerOptions> options = parse({"--port=0"});
  ASSERT_TRUE(options.is_ok()) << options.status().message();
  EXPECT_EQ(options->port, 0);
}

TEST(ParseServerOptions, SnakeCaseNames) {
  Result<ServerOptions> options = parse(
      {"--lease_seconds=5", "--max_attempts", "4", "--max_upload_mb=7", "--password_file=/etc/pw"});
  ASSERT_TRUE(options.is_ok()) << options.status().message();
  EXPECT_EQ(options->lease_seconds, 5);
  EXPECT_EQ(options->max_attempts, 4);
  EXPECT_EQ(options->max_upload_mb, 7);
  EXPECT_EQ(options->password_file, fs::path("/etc/pw"));
}

TEST(ParseServerOptions, EveryOptionWithSeparateValues) {
  Result<ServerOptions> options =
      parse({"exp", "--host", "127.0.0.1", "--port", "0", "--config", "other.yaml",
             "--lease-seconds", "5", "--max-attempts", "7", "--max-upload-mb", "10", "--threads",
             "8", "--password-file", "pw.txt", "--sync", "full"});
  ASSERT_TRUE(options.is_ok()) << options.status().message();
  EXPECT_EQ(options->experiment_dir, fs::path("exp"));
  EXPECT_EQ(options->host, "127.0.0.1");
  EXPECT_EQ(options->port, 0);
  EXPECT_EQ(options->config_path, fs::path("other.yaml"));
  EXPECT_EQ(options->resolved_config_path(), fs::path("other.yaml"));
  EXPECT_EQ(options->lease_seconds, 5);
  EXPECT_EQ(options->max_attempts, 7);
  EXPECT_EQ(options->max_upload_mb, 10);
  EXPECT_EQ(options->threads, 8);
  EXPECT_EQ(options->password_file, fs::path("pw.txt"));
  EXPECT_EQ(options->password, std::nullopt);
  EXPECT_TRUE(options->sync_full);
}

TEST(ParseServerOptions, EveryOptionWithEquals) {
  Result<ServerOptions> options = parse(
      {"--host=::1", "--port=1", "--config=c.yaml", "--lease-seconds=86400", "--max-attempts=1000",
       "--max-upload-mb=1", "--threads=2", "--password=hunter2", "--sync=normal"});
  ASSERT_TRUE(options.is_ok()) << options.status().message();
  EXPECT_EQ(options->host, "::1");
  EXPECT_EQ(options->port, 1);
  EXPECT_EQ(options->config_path, fs::path("c.yaml"));
  EXPECT_EQ(options->lease_seconds, 86400);
  EXPECT_EQ(options->max_attempts, 1000);
  EXPECT_EQ(options->max_upload_mb, 1);
  EXPECT_EQ(options->threads, 2);
  EXPECT_EQ(options->password, "hunter2");
  EXPECT_FALSE(options->sync_full);
}

TEST(ParseServerOptions, PasswordValueMayContainEqualsSigns) {
  Result<ServerOptions> options = parse({"--password=a=b=c"});
  ASSERT_TRUE(options.is_ok()) << options.status().message();
  EXPECT_EQ(options->password, "a=b=c");
}

TEST(ParseServerOptions, WrongPasswordThrottle) {
  EXPECT_EQ(parse({})->max_wrong_passwords, 20);
  EXPECT_EQ(parse({"--max-wrong-passwords", "0"})->max_wrong_passwords, 0);
  EXPECT_EQ(parse({"--max_wrong_passwords=5"})->max_wrong_passwords, 5);
  EXPECT_FALSE(parse({"--max-wrong-passwords", "-1"}).is_ok());
}

TEST(ParseServerOptions, LargestUploadLimit) {
  Result<ServerOptions> options = parse({"--max-upload-mb=16777216"});
  ASSERT_TRUE(options.is_ok()) << options.status().message();
  EXPECT_EQ(options->max_upload_mb, 16777216);
}

TEST(ParseServerOptions, LaterValueWins) {
  Result<ServerOptions> options = parse({"--port=1000", "--port", "2000"});
  ASSERT_TRUE(options.is_ok()) << options.status().message();
  EXPECT_EQ(options->port, 2000);
}

TEST(ParseServerOptions, HelpAndVersion) {
  Result<ServerOptions> options = parse({"--help"});
  ASSERT_TRUE(options.is_ok()) << options.status().message();
  EXPECT_TRUE(options->show_help);
  EXPECT_FALSE(options->show_version);

  options = parse({"-h"});
  ASSERT_TRUE(options.is_ok()) << options.status().message();
  EXPECT_TRUE(options->show_help);

  options = parse({"--version"});
  ASSERT_TRUE(options.is_ok()) << options.status().message();
  EXPECT_TRUE(options->show_version);
  EXPECT_FALSE(options->show_help);
}

TEST(ParseServerOptions, HelpTakesNoValue) {
  EXPECT_TRUE(contains(parse_error({"--help=yes"}), "--help"));
  EXPECT_TRUE(contains(parse_error({"--version=1"}), "--version"));
}

TEST(ParseServerOptions, UnknownLongOptionIsNamed) {
  std::string message = parse_error({"--frobnicate"});
  EXPECT_TRUE(contains(message, "--frobnicate")) << message;
  message = parse_error({"--frobnicate=3"});
  EXPECT_TRUE(contains(message, "--frobnicate")) << message;
}

TEST(ParseServerOptions, UnknownShortOptionIsNamed) {
  std::string message = parse_error({"-x"});
  EXPECT_TRUE(contains(message, "-x")) << message;
  message = parse_error({"-p", "8030"});
  EXPECT_TRUE(contains(message, "-p")) << message;
}

TEST(ParseServerOptions, MissingValueIsNamed) {
  for (const char* option :
       {"--port", "--host", "--config", "--lease-seconds", "--max-attempts", "--max-upload-mb",
        "--threads", "--password", "--password-file", "--sync"}) {
    std::string message = parse_error({option});
    EXPECT_TRUE(contains(message, option)) << message;
    EXPECT_TRUE(contains(message, "value")) << message;
  }
}

TEST(ParseServerOptions, NonNumberIsNamed) {
  for (const char* argument : {"--port=abc", "--port=80x", "--port=", "--port=8.5", "--port= 80"}) {
    std::string message = parse_error({argument});
    EXPECT_TRUE(contains(message, "--port")) << argument << ": " << message;
  }
  std::string message = parse_error({"--lease_seconds=soon"});
  EXPECT_TRUE(contains(message, "--lease-seconds")) << message;
  EXPECT_TRUE(contains(message, "soon")) << message;
  message = parse_error({"--threads", "many"});
  EXPECT_TRUE(contains(message, "--threads")) << message;
  message = parse_error({"--max-upload-mb=99999999999999999999999"});
  EXPECT_TRUE(contains(message, "--max-upload-mb")) << message;
}

TEST(ParseServerOptions, OptionInPlaceOfAValueIsNotANumber) {
  std::string message = parse_error({"--port", "--threads", "8"});
  EXPECT_TRUE(contains(message, "--port")) << message;
}

TEST(ParseServerOptions, OutOfRangeIsNamedWithItsBounds) {
  struct Case {
    const char* argument;
    const char* option;
  };
  for (const Case& c :
       {Case{"--port=65536", "--port"}, Case{"--port=-1", "--port"},
        Case{"--lease-seconds=1", "--lease-seconds"},
        Case{"--lease-seconds=86401", "--lease-seconds"},
        Case{"--max-attempts=0", "--max-attempts"}, Case{"--max-attempts=1001", "--max-attempts"},
        Case{"--max-upload-mb=0", "--max-upload-mb"},
        Case{"--max-upload-mb=16777217", "--max-upload-mb"}, Case{"--threads=1", "--threads"},
        Case{"--threads=4097", "--threads"}}) {
    std::string message = parse_error({c.argument});
    EXPECT_TRUE(contains(message, c.option)) << c.argument << ": " << message;
    EXPECT_TRUE(contains(message, "between")) << c.argument << ": " << message;
  }
}

TEST(ParseServerOptions, BadSyncModeIsNamed) {
  std::string message = parse_error({"--sync=sometimes"});
  EXPECT_TRUE(contains(message, "--sync")) << message;
  EXPECT_TRUE(contains(message, "sometimes")) << message;
}

TEST(ParseServerOptions, EmptyHostOrPasswordIsRefused) {
  EXPECT_TRUE(contains(parse_error({"--host="}), "--host"));
  EXPECT_TRUE(contains(parse_error({"--password="}), "--password"));
}

TEST(ParseServerOptions, TwoDirectoriesAreRefusedNamingBoth) {
  std::string message = parse_error({"first", "second"});
  EXPECT_TRUE(contains(message, "first")) << message;
  EXPECT_TRUE(contains(message, "second")) << message;
}

TEST(ParseServerOptions, PasswordAndPasswordFileTogetherAreRefused) {
  std::string message = parse_error({"--password=x", "--password-file=f"});
  EXPECT_TRUE(contains(message, "--password")) << message;
  EXPECT_TRUE(contains(message, "--password-file")) << message;
  EXPECT_FALSE(parse({"--password-file", "f", "--password", "x"}).is_ok());
}

TEST(ParseServerOptions, UsageMentionsEveryOption) {
  std::string usage = server_usage();
  for (const char* option :
       {"--port", "--host", "--config", "--password-file", "--password", "--lease-seconds",
        "--max-attempts", "--max-upload-mb", "--threads", "--sync", "--version", "--help"}) {
    EXPECT_TRUE(contains(usage, option)) << option;
  }
}

// ================================================================ password

class ChoosePasswordTest : public ::testing::Test {
 protected:
  ChoosePasswordTest() { fs::create_directories(state_dir_); }

  fs::path kept_path() const { return state_dir_ / "password"; }
  fs::path password_file(const std::string& contents) {
    fs::path path = dir_.path() / "password.txt";
    write_file(path, contents);
    return path;
  }
  Result<PasswordChoice> choose(const ServerOptions& options,
                                const std::optional<std::string>& environment = std::nullopt) {
    return choose_password(options, environment, state_dir_, default_file_system());
  }

  TempDir dir_;
  fs::path state_dir_ = dir_.path() / ".gridexp";
};

TEST_F(ChoosePasswordTest, CommandLinePasswordWinsOverEverything) {
  write_file(kept_path(), "kept\n");
  ServerOptions options;
  options.password = "from-cli";
  options.password_file = password_file("from-file\n");
  Result<PasswordChoice> choice = choose(options, "from-env");
  ASSERT_TRUE(choice.is_ok()) << choice.status().message();
  EXPECT_EQ(choice->password, "from-cli");
  EXPECT_EQ(choice->origin, "--password");
  EXPECT_TRUE(choice->warn_visible);
  EXPECT_FALSE(choice->print_it);
}

TEST_F(ChoosePasswordTest, PasswordFileWinsOverEnvironmentAndKeptFile) {
  write_file(kept_path(), "kept\n");
  ServerOptions options;
  options.password_file = password_file("from-file\nsecond line\n");
  Result<PasswordChoice> choice = choose(options, "from-env");
  ASSERT_TRUE(choice.is_ok()) << choice.status().message();
  EXPECT_EQ(choice->password, "from-file");
  EXPECT_TRUE(contains(choice->origin, "--password-file"));
  EXPECT_TRUE(contains(choice->origin, options.password_file->string()));
  EXPECT_FALSE(choice->warn_visible);
  EXPECT_FALSE(choice->print_it);
}

TEST_F(ChoosePasswordTest, PasswordFileWithoutNewlineOrWithCrlf) {
  ServerOptions options;
  options.password_file = password_file("no-newline");
  Result<PasswordChoice> choice = choose(options);
  ASSERT_TRUE(choice.is_ok()) << choice.status().message();
  EXPECT_EQ(choice->password, "no-newline");

  options.password_file = password_file("windows \t\r\nnext\r\n");
  choice = choose(options);
  ASSERT_TRUE(choice.is_ok()) << choice.status().message();
  EXPECT_EQ(choice->password, "windows");
}

TEST_F(ChoosePasswordTest, EmptyPasswordFileIsAnError) {
  for (const char* contents : {"", "\n", "  \r\n", "\nsecond line\n"}) {
    ServerOptions options;
    options.password_file = password_file(contents);
    Result<PasswordChoice> choice = choose(options, "from-env");
    ASSERT_FALSE(choice.is_ok()) << "accepted a password file holding '" << contents << "'";
    EXPECT_EQ(choice.status().code(), Code::kInvalidArgument);
    EXPECT_TRUE(contains(choice.status().message(), "empty")) << choice.status().message();
    EXPECT_TRUE(contains(choice.status().message(), options.password_file->string()));
  }
}

TEST_F(ChoosePasswordTest, MissingPasswordFileIsAnErrorNamingIt) {
  ServerOptions options;
  options.password_file = dir_.path() / "no-such-file";
  Result<PasswordChoice> choice = choose(options, "from-env");
  ASSERT_FALSE(choice.is_ok());
  EXPECT_EQ(choice.status().code(), Code::kInvalidArgument);
  EXPECT_TRUE(contains(choice.status().message(), options.password_file->string()))
      << choice.status().message();
  EXPECT_FALSE(fs::exists(kept_path()));
}

TEST_F(ChoosePasswordTest, EnvironmentWinsOverKeptFile) {
  write_file(kept_path(), "kept\n");
  Result<PasswordChoice> choice = choose(ServerOptions{}, "from-env");
  ASSERT_TRUE(choice.is_ok()) << choice.status().message();
  EXPECT_EQ(choice->password, "from-env");
  EXPECT_EQ(choice->origin, "GRIDEXP_PASSWORD");
  EXPECT_FALSE(choice->warn_visible);
  EXPECT_FALSE(choice->print_it);
}

TEST_F(ChoosePasswordTest, EmptyEnvironmentIsIgnored) {
  write_file(kept_path(), "kept\n");
  Result<PasswordChoice> choice = choose(ServerOptions{}, "");
  ASSERT_TRUE(choice.is_ok()) << choice.status().message();
  EXPECT_EQ(choice->password, "kept");
}

TEST_F(ChoosePasswordTest, KeptFileIsUsedAndPrinted) {
  write_file(kept_path(), "kept-password\n");
  Result<PasswordChoice> choice = choose(ServerOptions{});
  ASSERT_TRUE(choice.is_ok()) << choice.status().message();
  EXPECT_EQ(choice->password, "kept-password");
  EXPECT_TRUE(contains(choice->origin, kept_path().string())) << choice->origin;
  EXPECT_TRUE(choice->print_it);
  EXPECT_FALSE(choice->warn_visible);
}

TEST_F(ChoosePasswordTest, EmptyKeptFileIsAnError) {
  write_file(kept_path(), "");
  Result<PasswordChoice> choice = choose(ServerOptions{});
  ASSERT_FALSE(choice.is_ok());
  EXPECT_TRUE(contains(choice.status().message(), "empty")) << choice.status().message();
}

TEST_F(ChoosePasswordTest, GeneratedPasswordIsKeptWithMode0600AndPrinted) {
  ScopedUmask umask(0);
  Result<PasswordChoice> choice = choose(ServerOptions{});
  ASSERT_TRUE(choice.is_ok()) << choice.status().message();
  EXPECT_EQ(choice->password.size(), 24u);
  EXPECT_TRUE(contains(choice->origin, "generated")) << choice->origin;
  EXPECT_TRUE(choice->print_it);
  EXPECT_FALSE(choice->warn_visible);
  ASSERT_TRUE(fs::is_regular_file(kept_path()));
  EXPECT_EQ(read_file(kept_path()), choice->password + "\n");
  EXPECT_EQ(permission_bits(kept_path()), 0600);
  EXPECT_EQ(file_names(state_dir_), std::vector<std::string>{"password"});
}

TEST_F(ChoosePasswordTest, GeneratedPasswordIsReusedOnTheNextStart) {
  Result<PasswordChoice> first = choose(ServerOptions{});
  ASSERT_TRUE(first.is_ok()) << first.status().message();
  Result<PasswordChoice> second = choose(ServerOptions{});
  ASSERT_TRUE(second.is_ok()) << second.status().message();
  EXPECT_EQ(second->password, first->password);
  EXPECT_TRUE(contains(second->origin, "kept in")) << second->origin;
  EXPECT_TRUE(second->print_it);
}

TEST_F(ChoosePasswordTest, OtherSourcesNeverWriteTheKeptFile) {
  ServerOptions options;
  options.password = "from-cli";
  ASSERT_TRUE(choose(options).is_ok());
  ASSERT_TRUE(choose(ServerOptions{}, "from-env").is_ok());
  EXPECT_FALSE(fs::exists(kept_path()));
}

TEST_F(ChoosePasswordTest, FailedWriteOfTheGeneratedPasswordIsAnErrorAndLeavesNothing) {
  Faults faults;
  faults.fail_rename = true;
  FaultyFileSystem faulty(faults);
  Result<PasswordChoice> choice =
      choose_password(ServerOptions{}, std::nullopt, state_dir_, faulty);
  ASSERT_FALSE(choice.is_ok());
  EXPECT_EQ(choice.status().code(), Code::kIoError);
  EXPECT_TRUE(file_names(state_dir_).empty());
}

// ================================================================ model files

constexpr char kTrialId[] = "0123456789abcdef";

TEST(IsValidTrialId, SixteenLowercaseHexDigits) {
  EXPECT_TRUE(is_valid_trial_id("0123456789abcdef"));
  EXPECT_TRUE(is_valid_trial_id("ffffffffffffffff"));
  EXPECT_TRUE(is_valid_trial_id("0000000000000000"));
}

TEST(IsValidTrialId, RefusesEverythingElse) {
  EXPECT_FALSE(is_valid_trial_id(""));
  EXPECT_FALSE(is_valid_trial_id("0123456789abcde"));    // 15
  EXPECT_FALSE(is_valid_trial_id("0123456789abcdef0"));  // 17
  EXPECT_FALSE(is_valid_trial_id("0123456789ABCDEF"));
  EXPECT_FALSE(is_valid_trial_id("0123456789abcdeg"));
  EXPECT_FALSE(is_valid_trial_id("../../etc/passwd"));
  EXPECT_FALSE(is_valid_trial_id("0123456789abcd/."));
  EXPECT_FALSE(is_valid_trial_id(std::string("0123456789abcde\0", 16)));
}

class ModelFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Status status = files_.prepare();
    ASSERT_TRUE(status) << status.message();
  }

  std::unique_ptr<ModelUpload> begin(std::uint64_t max_bytes = 1 << 20) {
    Result<std::unique_ptr<ModelUpload>> upload = files_.begin_upload(kTrialId, max_bytes);
    EXPECT_TRUE(upload.is_ok()) << upload.status().message();
    return upload.is_ok() ? std::move(upload).value() : nullptr;
  }

  std::vector<std::string> incoming() const { return file_names(models_dir_ / ".incoming"); }
  fs::path final_path() const { return models_dir_ / (std::string(kTrialId) + ".pt"); }

  TempDir dir_;
  fs::path models_dir_ = dir_.path() / "models";
  FaultyFileSystem fs_;
  ModelFiles files_{models_dir_, fs_};
};

TEST_F(ModelFilesTest, PrepareCreatesTheDirectories) {
  EXPECT_TRUE(fs::is_directory(models_dir_));
  EXPECT_TRUE(fs::is_directory(models_dir_ / ".incoming"));
  EXPECT_TRUE(files_.prepare());
}

TEST_F(ModelFilesTest, PathForIsTheIdDotPt) {
  EXPECT_EQ(files_.path_for(kTrialId), models_dir_ / "0123456789abcdef.pt");
}

TEST_F(ModelFilesTest, UploadFinishCommitPutsTheFileInPlace) {
  const std::string model("pretend these are weights\0\x01\x02", 28);
  std::unique_ptr<ModelUpload> upload = begin();
  ASSERT_NE(upload, nullptr);
  EXPECT_EQ(incoming().size(), 1u);
  ASSERT_TRUE(upload->append(model.data(), 10));
  ASSERT_TRUE(upload->append(model.data() + 10, model.size() - 10));
  Status finished = upload->finish(sha256_hex(model));
  ASSERT_TRUE(finished) << finished.message();
  EXPECT_EQ(upload->sha256(), sha256_hex(model));
  EXPECT_EQ(upload->size_bytes(), model.size());
  EXPECT_FALSE(fs::exists(final_path()));
  Status committed = upload->commit();
  ASSERT_TRUE(committed) << committed.message();
  EXPECT_EQ(read_file(final_path()), model);
  EXPECT_TRUE(incoming().empty());
  upload.reset();
  EXPECT_EQ(read_file(final_path()), model);
  EXPECT_EQ(file_names(models_dir_),
            (std::vector<std::string>{".incoming", kTrialId + std::string(".pt")}));
}

TEST_F(ModelFilesTest, EmptyModelIsAccepted) {
  std::unique_ptr<ModelUpload> upload = begin();
  ASSERT_NE(upload, nullptr);
  ASSERT_TRUE(upload->finish(sha256_hex("")));
  ASSERT_TRUE(upload->commit());
  EXPECT_EQ(fs::file_size(final_path()), 0u);
}

TEST_F(ModelFilesTest, CommitReplacesAnEarlierModel) {
  write_file(final_path(), "old model");
  std::unique_ptr<ModelUpload> upload = begin();
  ASSERT_NE(upload, nullptr);
  ASSERT_TRUE(upload->append("new model", 9));
  ASSERT_TRUE(upload->finish(sha256_hex("new model")));
  ASSERT_TRUE(upload->commit());
  EXPECT_EQ(read_file(final_path()), "new model");
}

TEST_F(ModelFilesTest, WrongShaIsInvalidArgumentAndLeavesNothing) {
  write_file(final_path(), "old model");
  std::unique_ptr<ModelUpload> upload = begin();
  ASSERT_NE(upload, nullptr);
  ASSERT_TRUE(upload->append("corrupted", 9));
  Status finished = upload->finish(sha256_hex("what the worker sent"));
  ASSERT_FALSE(finished);
  EXPECT_EQ(finished.code(), Code::kInvalidArgument);
  EXPECT_TRUE(contains(finished.message(), sha256_hex("corrupted"))) << finished.message();
  upload.reset();
  EXPECT_EQ(read_file(final_path()), "old model");
  EXPECT_TRUE(incoming().empty());
}

TEST_F(ModelFilesTest, WrongShaWithNoEarlierModelLeavesNoFinalFile) {
  std::unique_ptr<ModelUpload> upload = begin();
  ASSERT_NE(upload, nullptr);
  ASSERT_TRUE(upload->append("bytes", 5));
  EXPECT_EQ(upload->finish(std::string(64, '0')).code(), Code::kInvalidArgument);
  upload.reset();
  EXPECT_FALSE(fs::exists(final_path()));
  EXPECT_TRUE(incoming().empty());
}

TEST_F(ModelFilesTest, UploadUpToTheLimitIsAccepted) {
  std::unique_ptr<ModelUpload> upload = begin(10);
  ASSERT_NE(upload, nullptr);
  ASSERT_TRUE(upload->append("01234", 5));
  ASSERT_TRUE(upload->append("56789", 5));
  ASSERT_TRUE(upload->finish(sha256_hex("0123456789")));
  ASSERT_TRUE(upload->commit());
  EXPECT_EQ(read_file(final_path()), "0123456789");
}

TEST_F(ModelFilesTest, UploadOverTheLimitIsTooLargeAndLeavesNothing) {
  std::unique_ptr<ModelUpload> upload = begin(10);
  ASSERT_NE(upload, nullptr);
  ASSERT_TRUE(upload->append("012345", 6));
  Status status = upload->append("6789x", 5);
  ASSERT_FALSE(status);
  EXPECT_EQ(status.code(), Code::kTooLarge);
  EXPECT_EQ(upload->size_bytes(), 6u);
  upload.reset();
  EXPECT_FALSE(fs::exists(final_path()));
  EXPECT_TRUE(incoming().empty());
}

TEST_F(ModelFilesTest, SingleChunkOverTheLimitIsTooLarge) {
  std::unique_ptr<ModelUpload> upload = begin(4);
  ASSERT_NE(upload, nullptr);
  EXPECT_EQ(upload->append("12345", 5).code(), Code::kTooLarge);
}

TEST_F(ModelFilesTest, AbandonedUploadRemovesItsTemporaryFile) {
  std::unique_ptr<ModelUpload> upload = begin();
  ASSERT_NE(upload, nullptr);
  ASSERT_TRUE(upload->append("half a model", 12));
  ASSERT_EQ(incoming().size(), 1u);
  upload.reset();
  EXPECT_TRUE(incoming().empty());
  EXPECT_FALSE(fs::exists(final_path()));
}

TEST_F(ModelFilesTest, FinishedButUncommittedUploadRemovesItsTemporaryFile) {
  std::unique_ptr<ModelUpload> upload = begin();
  ASSERT_NE(upload, nullptr);
  ASSERT_TRUE(upload->append("model", 5));
  ASSERT_TRUE(upload->finish(sha256_hex("model")));
  upload.reset();  // e.g. the lease was lost before the commit
  EXPECT_TRUE(incoming().empty());
  EXPECT_FALSE(fs::exists(final_path()));
}

TEST_F(ModelFilesTest, AppendOrFinishAfterFinishIsRefused) {
  std::unique_ptr<ModelUpload> upload = begin();
  ASSERT_NE(upload, nullptr);
  ASSERT_TRUE(upload->finish(sha256_hex("")));
  EXPECT_EQ(upload->append("x", 1).code(), Code::kInternal);
  EXPECT_EQ(upload->finish(sha256_hex("")).code(), Code::kInternal);
}

TEST_F(ModelFilesTest, ConcurrentUploadsOfOneTrialUseDistinctTemporaryFiles) {
  std::unique_ptr<ModelUpload> first = begin();
  std::unique_ptr<ModelUpload> second = begin();
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  EXPECT_EQ(incoming().size(), 2u);
  ASSERT_TRUE(first->append("first", 5));
  ASSERT_TRUE(second->append("second", 6));
  ASSERT_TRUE(second->finish(sha256_hex("second")));
  ASSERT_TRUE(second->commit());
  first.reset();
  second.reset();
  EXPECT_EQ(read_file(final_path()), "second");
  EXPECT_TRUE(incoming().empty());
}

TEST_F(ModelFilesTest, MalformedTrialIdIsRefusedBeforeAnyFileIsCreated) {
  for (const char* id : {"", "../../escape00000", "0123456789ABCDEF", "0123456789abcdef.pt"}) {
    Result<std::unique_ptr<ModelUpload>> upload = files_.begin_upload(id, 100);
    ASSERT_FALSE(upload.is_ok()) << id;
    EXPECT_EQ(upload.status().code(), Code::kInvalidArgument);
  }
  EXPECT_TRUE(fs_.created.empty());
  EXPECT_TRUE(incoming().empty());
}

TEST_F(ModelFilesTest, TemporaryFileLivesInIncomingAsPart) {
  std::unique_ptr<ModelUpload> upload = begin();
  ASSERT_NE(upload, nullptr);
  ASSERT_EQ(fs_.created.size(), 1u);
  EXPECT_EQ(fs_.created[0].parent_path(), models_dir_ / ".incoming");
  EXPECT_EQ(fs_.created[0].extension(), ".part");
  EXPECT_EQ(fs_.created[0].filename().string().rfind(kTrialId, 0), 0u);
}

TEST_F(ModelFilesTest, PrepareRemovesStalePartFilesOnly) {
  fs::path incoming_dir = models_dir_ / ".incoming";
  write_file(incoming_dir / (std::string(kTrialId) + ".1234.part"), "stale");
  write_file(incoming_dir / "fedcba9876543210.abcd.part", "stale too");
  write_file(incoming_dir / "README", "not ours");
  write_file(final_path(), "a finished model");
  Status status = files_.prepare();
  ASSERT_TRUE(status) << status.message();
  EXPECT_EQ(incoming(), std::vector<std::string>{"README"});
  EXPECT_EQ(read_file(final_path()), "a finished model");
}

TEST(ModelFilesUnprepared, BeginUploadWithoutPrepareIsAnIoError) {
  TempDir dir;
  ModelFiles files(dir.path() / "models", default_file_system());
  Result<std::unique_ptr<ModelUpload>> upload = files.begin_upload(kTrialId, 100);
  ASSERT_FALSE(upload.is_ok());
  EXPECT_EQ(upload.status().code(), Code::kIoError);
}

class FaultyModelFilesTest : public ::testing::Test {
 protected:
  std::vector<std::string> incoming() const { return file_names(models_dir_ / ".incoming"); }
  fs::path final_path() const { return models_dir_ / (std::string(kTrialId) + ".pt"); }

  TempDir dir_;
  fs::path models_dir_ = dir_.path() / "models";
};

TEST_F(FaultyModelFilesTest, FailedAppendIsAnErrorAndLeavesNothing) {
  Faults faults;
  faults.fail_append_after_bytes = 8;
  FaultyFileSystem faulty(faults);
  ModelFiles files(models_dir_, faulty);
  ASSERT_TRUE(files.prepare());
  {
    Result<std::unique_ptr<ModelUpload>> upload = files.begin_upload(kTrialId, 1 << 20);
    ASSERT_TRUE(upload.is_ok()) << upload.status().message();
    // Writes are batched: the failure shows at the latest when the upload is finished.
    Status status = (*upload)->append("12345", 5);
    if (status) status = (*upload)->append("6789abcdef", 10);
    if (status) status = (*upload)->finish(sha256_hex("123456789abcdef"));
    ASSERT_FALSE(status);
    EXPECT_EQ(status.code(), Code::kIoError);
    EXPECT_EQ(read_file(faulty.created.at(0)), "12345678");  // the short write really happened
  }
  EXPECT_TRUE(incoming().empty());
  EXPECT_FALSE(fs::exists(final_path()));
}

TEST_F(FaultyModelFilesTest, FailedSyncIsAnErrorAndLeavesNothing) {
  Faults faults;
  faults.fail_sync = true;
  FaultyFileSystem faulty(faults);
  ModelFiles files(models_dir_, faulty);
  ASSERT_TRUE(files.prepare());
  {
    Result<std::unique_ptr<ModelUpload>> upload = files.begin_upload(kTrialId, 1 << 20);
    ASSERT_TRUE(upload.is_ok()) << upload.status().message();
    ASSERT_TRUE((*upload)->append("model", 5));
    Status status = (*upload)->finish(sha256_hex("model"));
    ASSERT_FALSE(status);
    EXPECT_EQ(status.code(), Code::kIoError);
  }
  EXPECT_TRUE(incoming().empty());
  EXPECT_FALSE(fs::exists(final_path()));
}

TEST_F(FaultyModelFilesTest, FailedCommitIsAnErrorAndLeavesNothing) {
  Faults faults;
  faults.fail_rename = true;
  FaultyFileSystem faulty(faults);
  ModelFiles files(models_dir_, faulty);
  ASSERT_TRUE(files.prepare());
  write_file(final_path(), "old model");
  {
    Result<std::unique_ptr<ModelUpload>> upload = files.begin_upload(kTrialId, 1 << 20);
    ASSERT_TRUE(upload.is_ok()) << upload.status().message();
    ASSERT_TRUE((*upload)->append("model", 5));
    ASSERT_TRUE((*upload)->finish(sha256_hex("model")));
    Status status = (*upload)->commit();
    ASSERT_FALSE(status);
    EXPECT_EQ(status.code(), Code::kIoError);
  }
  EXPECT_TRUE(incoming().empty());
  EXPECT_EQ(read_file(final_path()), "old model");
}

// ================================================================ experiment files

struct ZipEntry {
  std::string name;
  std::string contents;
  std::time_t mtime = 0;
  std::uint32_t unix_mode = 0;
};

std::vector<ZipEntry> read_zip(const fs::path& path) {
  int error = 0;
  zip_t* archive = zip_open(path.c_str(), ZIP_RDONLY, &error);
  if (archive == nullptr) {
    ADD_FAILURE() << "cannot open " << path << " as a zip (libzip error " << error << ")";
    return {};
  }
  std::vector<ZipEntry> entries;
  zip_int64_t count = zip_get_num_entries(archive, 0);
  for (zip_uint64_t index = 0; index < static_cast<zip_uint64_t>(count); ++index) {
    zip_stat_t stat;
    zip_stat_init(&stat);
    if (zip_stat_index(archive, index, 0, &stat) != 0) {
      ADD_FAILURE() << "cannot stat entry " << index << " of " << path;
      break;
    }
    ZipEntry entry;
    entry.name = stat.name;
    entry.mtime = stat.mtime;
    entry.contents.resize(static_cast<std::size_t>(stat.size));
    zip_file_t* file = zip_fopen_index(archive, index, 0);
    if (file == nullptr ||
        zip_fread(file, entry.contents.data(), stat.size) != static_cast<zip_int64_t>(stat.size)) {
      ADD_FAILURE() << "cannot read entry " << entry.name << " of " << path;
    }
    if (file != nullptr) zip_fclose(file);
    zip_uint8_t opsys = 0;
    zip_uint32_t attributes = 0;
    zip_file_get_external_attributes(archive, index, 0, &opsys, &attributes);
    if (opsys == ZIP_OPSYS_UNIX) entry.unix_mode = attributes >> 16;
    entries.push_back(std::move(entry));
  }
  zip_discard(archive);
  return entries;
}

std::vector<std::string> zip_names(const fs::path& path) {
  std::vector<std::string> names;
  for (const ZipEntry& entry : read_zip(path)) names.push_back(entry.name);
  return names;
}

// Moves a file's modification time by `delta` from what it is now.
void shift_mtime(const fs::path& path, std::chrono::seconds delta) {
  fs::last_write_time(path, fs::last_write_time(path) + delta);
}

TEST(WriteDeterministicZip, StoresTheFilesUnderTheirNames) {
  TempDir dir;
  write_file(dir.path() / "train.py", "print('train')\n");
  write_file(dir.path() / "util.py", "X = 1\n");
  fs::path zip = dir.path() / "out.zip";
  Status status = write_deterministic_zip({dir.path() / "train.py", dir.path() / "util.py"}, zip);
  ASSERT_TRUE(status) << status.message();
  std::vector<ZipEntry> entries = read_zip(zip);
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].name, "train.py");
  EXPECT_EQ(entries[0].contents, "print('train')\n");
  EXPECT_EQ(entries[0].unix_mode, 0100644u);
  EXPECT_EQ(entries[1].name, "util.py");
  EXPECT_EQ(entries[1].contents, "X = 1\n");
  EXPECT_EQ(entries[0].mtime, entries[1].mtime);
}

TEST(WriteDeterministicZip, IdenticalSourcesGiveIdenticalBytesWhateverTheirTimesAndPlaces) {
  TempDir dir;
  fs::create_directories(dir.path() / "one");
  fs::create_directories(dir.path() / "two");
  for (const char* side : {"one", "two"}) {
    write_file(dir.path() / side / "a.py", "import b\nprint(b.VALUE)\n");
    write_file(dir.path() / side / "b.py", std::string(5000, 'x'));
  }
  shift_mtime(dir.path() / "one" / "a.py", std::chrono::hours(-24 * 400));
  shift_mtime(dir.path() / "two" / "b.py", std::chrono::hours(24 * 3));
  fs::permissions(dir.path() / "two" / "a.py", fs::perms(0755));
  ASSERT_TRUE(write_deterministic_zip({dir.path() / "one" / "a.py", dir.path() / "one" / "b.py"},
                                      dir.path() / "one.zip"));
  ASSERT_TRUE(write_deterministic_zip({dir.path() / "two" / "a.py", dir.path() / "two" / "b.py"},
                                      dir.path() / "two.zip"));
  std::string one = read_file(dir.path() / "one.zip");
  EXPECT_FALSE(one.empty());
  EXPECT_EQ(one, read_file(dir.path() / "two.zip"));
}

// Sets the TZ environment variable for one test and restores the previous value.
class ScopedTimeZone {
 public:
  explicit ScopedTimeZone(const char* zone) {
    if (const char* previous = std::getenv("TZ")) previous_ = previous;
    ::setenv("TZ", zone, 1);
    ::tzset();
  }
  ~ScopedTimeZone() {
    if (previous_) {
      ::setenv("TZ", previous_->c_str(), 1);
    } else {
      ::unsetenv("TZ");
    }
    ::tzset();
  }
  ScopedTimeZone(const ScopedTimeZone&) = delete;
  ScopedTimeZone& operator=(const ScopedTimeZone&) = delete;

 private:
  std::optional<std::string> previous_;
};

// The same sources must give the same SHA-256 whatever the server's time zone, so a restart
// under another TZ does not make every worker download the scripts again.
TEST(WriteDeterministicZip, IdenticalSourcesGiveIdenticalBytesInEveryTimeZone) {
  TempDir dir;
  write_file(dir.path() / "a.py", "x = 1\n");
  {
    ScopedTimeZone utc("UTC0");
    ASSERT_TRUE(write_deterministic_zip({dir.path() / "a.py"}, dir.path() / "utc.zip"));
  }
  {
    ScopedTimeZone tokyo("JST-9");
    ASSERT_TRUE(write_deterministic_zip({dir.path() / "a.py"}, dir.path() / "tokyo.zip"));
  }
  {
    ScopedTimeZone pacific("PST8");
    ASSERT_TRUE(write_deterministic_zip({dir.path() / "a.py"}, dir.path() / "pacific.zip"));
  }
  std::string utc = read_file(dir.path() / "utc.zip");
  EXPECT_EQ(read_file(dir.path() / "tokyo.zip"), utc);
  EXPECT_EQ(read_file(dir.path() / "pacific.zip"), utc);
}

TEST(WriteDeterministicZip, RewritingTheSameDestinationGivesTheSameBytes) {
  TempDir dir;
  write_file(dir.path() / "a.py", "pass\n");
  fs::path zip = dir.path() / "out.zip";
  ASSERT_TRUE(write_deterministic_zip({dir.path() / "a.py"}, zip));
  std::string first = read_file(zip);
  shift_mtime(dir.path() / "a.py", std::chrono::hours(1));
  ASSERT_TRUE(write_deterministic_zip({dir.path() / "a.py"}, zip));
  EXPECT_EQ(read_file(zip), first);
}

TEST(WriteDeterministicZip, DifferentContentsGiveDifferentBytes) {
  TempDir dir;
  write_file(dir.path() / "a.py", "A = 1\n");
  ASSERT_TRUE(write_deterministic_zip({dir.path() / "a.py"}, dir.path() / "1.zip"));
  write_file(dir.path() / "a.py", "A = 2\n");
  ASSERT_TRUE(write_deterministic_zip({dir.path() / "a.py"}, dir.path() / "2.zip"));
  EXPECT_NE(read_file(dir.path() / "1.zip"), read_file(dir.path() / "2.zip"));
}

TEST(WriteDeterministicZip, MissingSourceIsAnErrorAndWritesNothing) {
  TempDir dir;
  write_file(dir.path() / "a.py", "pass\n");
  fs::path zip = dir.path() / "out.zip";
  Status status = write_deterministic_zip({dir.path() / "a.py", dir.path() / "missing.py"}, zip);
  ASSERT_FALSE(status);
  EXPECT_EQ(status.code(), Code::kIoError);
  EXPECT_TRUE(contains(status.message(), "missing.py")) << status.message();
  EXPECT_FALSE(fs::exists(zip));
}

class ExperimentFilesTest : public ::testing::Test {
 protected:
  ExperimentFilesTest() { fs::create_directories(state_dir_); }

  fs::path built_zip() const { return state_dir_ / "scripts.zip"; }

  // The served file must be what its SHA-256 says.
  void expect_consistent(const FileToServe& file) {
    Result<std::string> actual = sha256_file_hex(file.path);
    ASSERT_TRUE(actual.is_ok()) << actual.status().message();
    EXPECT_EQ(file.sha256, *actual) << "the served SHA-256 is not the file's";
  }

  TempDir dir_;
  fs::path experiment_dir_ = dir_.path();
  fs::path state_dir_ = dir_.path() / ".gridexp";
  FaultyFileSystem fs_;
  ExperimentFiles files_{experiment_dir_, state_dir_, fs_};
};

TEST_F(ExperimentFilesTest, ScriptsZipWithNoPythonFilesIsNotFound) {
  write_file(experiment_dir_ / "config.yaml", "x: 1\n");
  write_file(experiment_dir_ / "notes.txt", "hello\n");
  Result<FileToServe> scripts = files_.scripts_zip();
  ASSERT_FALSE(scripts.is_ok());
  EXPECT_EQ(scripts.status().code(), Code::kNotFound);
  EXPECT_FALSE(fs::exists(built_zip()));
}

TEST_F(ExperimentFilesTest, DirectoryNamedLikeAPythonFileIsNotASource) {
  fs::create_directories(experiment_dir_ / "package.py");
  EXPECT_EQ(files_.scripts_zip().status().code(), Code::kNotFound);
}

TEST_F(ExperimentFilesTest, ScriptsZipHoldsTheTopLevelPythonFilesSorted) {
  write_file(experiment_dir_ / "train.py", "import util\n");
  write_file(experiment_dir_ / "util.py", "X = 1\n");
  write_file(experiment_dir_ / "a_first.py", "pass\n");
  write_file(experiment_dir_ / "config.yaml", "x: 1\n");
  write_file(experiment_dir_ / "readme.md", "# hi\n");
  write_file(experiment_dir_ / "script.pyc", "bytecode");
  fs::create_directories(experiment_dir_ / "sub");
  write_file(experiment_dir_ / "sub" / "nested.py", "pass\n");
  write_file(state_dir_ / "ignored.py", "pass\n");

  Result<FileToServe> scripts = files_.scripts_zip();
  ASSERT_TRUE(scripts.is_ok()) << scripts.status().message();
  EXPECT_EQ(scripts->path, built_zip());
  EXPECT_EQ(scripts->content_type, "application/zip");
  EXPECT_EQ(scripts->download_name, "scripts.zip");
  expect_consistent(*scripts);
  EXPECT_EQ(zip_names(scripts->path),
            (std::vector<std::string>{"a_first.py", "train.py", "util.py"}));
  std::vector<ZipEntry> entries = read_zip(scripts->path);
  ASSERT_EQ(entries.size(), 3u);
  EXPECT_EQ(entries[1].contents, "import util\n");
  // Only the built zip is left in the state directory: no temporary file.
  EXPECT_EQ(file_names(state_dir_), (std::vector<std::string>{"ignored.py", "scripts.zip"}));
}

TEST_F(ExperimentFilesTest, ScriptsZipIsNotRebuiltWhenNothingChanged) {
  write_file(experiment_dir_ / "train.py", "pass\n");
  Result<FileToServe> first = files_.scripts_zip();
  ASSERT_TRUE(first.is_ok()) << first.status().message();
  // A rebuild would give the built file a fresh modification time.
  fs::file_time_type marker = fs::last_write_time(built_zip()) - std::chrono::hours(1);
  fs::last_write_time(built_zip(), marker);
  Result<FileToServe> second = files_.scripts_zip();
  ASSERT_TRUE(second.is_ok()) << second.status().message();
  EXPECT_EQ(second->sha256, first->sha256);
  EXPECT_EQ(fs::last_write_time(built_zip()), marker);
  expect_consistent(*second);
}

TEST_F(ExperimentFilesTest, SameSourcesGiveTheSameShaAcrossServers) {
  write_file(experiment_dir_ / "train.py", "pass\n");
  Result<FileToServe> first = files_.scripts_zip();
  ASSERT_TRUE(first.is_ok()) << first.status().message();
  fs::remove(built_zip());
  shift_mtime(experiment_dir_ / "train.py", std::chrono::hours(-5));
  ExperimentFiles restarted(experiment_dir_, state_dir_, default_file_system());
  Result<FileToServe> second = restarted.scripts_zip();
  ASSERT_TRUE(second.is_ok()) << second.status().message();
  EXPECT_EQ(second->sha256, first->sha256);
}

TEST_F(ExperimentFilesTest, ScriptsZipIsRebuiltWhenASourceChanges) {
  write_file(experiment_dir_ / "train.py", "LR = 0.1\n");
  Result<FileToServe> first = files_.scripts_zip();
  ASSERT_TRUE(first.is_ok()) << first.status().message();
  write_file(experiment_dir_ / "train.py", "LR = 0.125\n");
  shift_mtime(experiment_dir_ / "train.py", std::chrono::seconds(10));
  Result<FileToServe> second = files_.scripts_zip();
  ASSERT_TRUE(second.is_ok()) << second.status().message();
  EXPECT_NE(second->sha256, first->sha256);
  expect_consistent(*second);
  std::vector<ZipEntry> entries = read_zip(second->path);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].contents, "LR = 0.125\n");
}

TEST_F(ExperimentFilesTest, ScriptsZipIsRebuiltWhenASourceIsAddedOrRemoved) {
  write_file(experiment_dir_ / "train.py", "pass\n");
  Result<FileToServe> first = files_.scripts_zip();
  ASSERT_TRUE(first.is_ok()) << first.status().message();

  write_file(experiment_dir_ / "extra.py", "pass\n");
  Result<FileToServe> second = files_.scripts_zip();
  ASSERT_TRUE(second.is_ok()) << second.status().message();
  EXPECT_NE(second->sha256, first->sha256);
  EXPECT_EQ(zip_names(second->path), (std::vector<std::string>{"extra.py", "train.py"}));
  expect_consistent(*second);

  fs::remove(experiment_dir_ / "extra.py");
  Result<FileToServe> third = files_.scripts_zip();
  ASSERT_TRUE(third.is_ok()) << third.status().message();
  EXPECT_EQ(third->sha256, first->sha256);
  EXPECT_EQ(zip_names(third->path), std::vector<std::string>{"train.py"});
  expect_consistent(*third);
}

TEST_F(ExperimentFilesTest, ScriptsZipIsRebuiltWhenTheBuiltFileWasDeleted) {
  write_file(experiment_dir_ / "train.py", "pass\n");
  Result<FileToServe> first = files_.scripts_zip();
  ASSERT_TRUE(first.is_ok()) << first.status().message();
  fs::remove(built_zip());
  Result<FileToServe> second = files_.scripts_zip();
  ASSERT_TRUE(second.is_ok()) << second.status().message();
  EXPECT_TRUE(fs::exists(built_zip()));
  EXPECT_EQ(second->sha256, first->sha256);
}

// The built scripts.zip is replaced by a new file of the same size; a filesystem with coarse
// timestamps (or two rebuilds within one clock tick) gives it the old modification time too.
// The SHA-256 served must still be the new file's.
TEST_F(ExperimentFilesTest, RebuiltScriptsZipIsNotServedWithTheOldSha) {
  Faults faults;
  faults.mtime_after_rename = fs::file_time_type::clock::now() - std::chrono::hours(1);
  FaultyFileSystem coarse(faults);
  ExperimentFiles files(experiment_dir_, state_dir_, coarse);

  write_file(experiment_dir_ / "train.py", "LR = 0.1\n");
  Result<FileToServe> first = files.scripts_zip();
  ASSERT_TRUE(first.is_ok()) << first.status().message();
  std::uintmax_t first_size = fs::file_size(built_zip());

  write_file(experiment_dir_ / "train.py", "LR = 0.2\n");  // same length, new contents
  shift_mtime(experiment_dir_ / "train.py", std::chrono::seconds(10));
  Result<FileToServe> second = files.scripts_zip();
  ASSERT_TRUE(second.is_ok()) << second.status().message();
  ASSERT_EQ(fs::file_size(built_zip()), first_size) << "the scenario needs equal sizes";
  std::vector<ZipEntry> entries = read_zip(built_zip());
  ASSERT_EQ(entries.size(), 1u);
  ASSERT_EQ(entries[0].contents, "LR = 0.2\n");
  expect_consistent(*second);
  EXPECT_NE(second->sha256, first->sha256);
}

TEST_F(ExperimentFilesTest, UsersOwnScriptsZipIsServedAsIs) {
  write_file(experiment_dir_ / "train.py", "pass\n");
  write_file(experiment_dir_ / "scripts.zip", "the user's own archive");
  Result<FileToServe> scripts = files_.scripts_zip();
  ASSERT_TRUE(scripts.is_ok()) << scripts.status().message();
  EXPECT_EQ(scripts->path, experiment_dir_ / "scripts.zip");
  EXPECT_EQ(scripts->sha256, sha256_hex("the user's own archive"));
  EXPECT_EQ(scripts->content_type, "application/zip");
  EXPECT_EQ(scripts->download_name, "scripts.zip");
  EXPECT_EQ(read_file(experiment_dir_ / "scripts.zip"), "the user's own archive");
  EXPECT_FALSE(fs::exists(built_zip()));
}

TEST_F(ExperimentFilesTest, UsersOwnScriptsZipWithoutPythonFiles) {
  write_file(experiment_dir_ / "scripts.zip", "archive");
  Result<FileToServe> scripts = files_.scripts_zip();
  ASSERT_TRUE(scripts.is_ok()) << scripts.status().message();
  EXPECT_EQ(scripts->sha256, sha256_hex("archive"));
}

TEST_F(ExperimentFilesTest, UsersOwnScriptsZipChangeGivesTheNewSha) {
  write_file(experiment_dir_ / "scripts.zip", "version one");
  Result<FileToServe> first = files_.scripts_zip();
  ASSERT_TRUE(first.is_ok()) << first.status().message();
  write_file(experiment_dir_ / "scripts.zip", "version two, longer");
  Result<FileToServe> second = files_.scripts_zip();
  ASSERT_TRUE(second.is_ok()) << second.status().message();
  EXPECT_EQ(second->sha256, sha256_hex("version two, longer"));
}

TEST_F(ExperimentFilesTest, FailedRenameOfTheBuiltZipIsAnErrorAndLeavesNoTemporaryFile) {
  Faults faults;
  faults.fail_rename = true;
  FaultyFileSystem faulty(faults);
  ExperimentFiles files(experiment_dir_, state_dir_, faulty);
  write_file(experiment_dir_ / "train.py", "pass\n");
  Result<FileToServe> scripts = files.scripts_zip();
  ASSERT_FALSE(scripts.is_ok());
  EXPECT_EQ(scripts.status().code(), Code::kIoError);
  EXPECT_TRUE(file_names(state_dir_).empty());
}

TEST_F(ExperimentFilesTest, DataZipMissingIsNotFound) {
  Result<FileToServe> data = files_.data_zip();
  ASSERT_FALSE(data.is_ok());
  EXPECT_EQ(data.status().code(), Code::kNotFound);
  EXPECT_TRUE(contains(data.status().message(), "data.zip")) << data.status().message();
}

TEST_F(ExperimentFilesTest, DataZipDirectoryIsNotFound) {
  fs::create_directories(experiment_dir_ / "data.zip");
  EXPECT_EQ(files_.data_zip().status().code(), Code::kNotFound);
}

TEST_F(ExperimentFilesTest, DataZipPresentIsServedWithItsSha) {
  write_file(experiment_dir_ / "data.zip", "pretend zip bytes");
  Result<FileToServe> data = files_.data_zip();
  ASSERT_TRUE(data.is_ok()) << data.status().message();
  EXPECT_EQ(data->path, experiment_dir_ / "data.zip");
  EXPECT_EQ(data->sha256, sha256_hex("pretend zip bytes"));
  EXPECT_EQ(data->content_type, "application/zip");
  EXPECT_EQ(data->download_name, "data.zip");
  Result<FileToServe> again = files_.data_zip();
  ASSERT_TRUE(again.is_ok()) << again.status().message();
  EXPECT_EQ(again->sha256, data->sha256);
}

TEST_F(ExperimentFilesTest, DataZipChangeGivesTheNewSha) {
  write_file(experiment_dir_ / "data.zip", "first");
  ASSERT_TRUE(files_.data_zip().is_ok());
  write_file(experiment_dir_ / "data.zip", "second, longer");
  Result<FileToServe> data = files_.data_zip();
  ASSERT_TRUE(data.is_ok()) << data.status().message();
  EXPECT_EQ(data->sha256, sha256_hex("second, longer"));
}

TEST_F(ExperimentFilesTest, DataZipRemovedAfterServingIsNotFound) {
  write_file(experiment_dir_ / "data.zip", "first");
  ASSERT_TRUE(files_.data_zip().is_ok());
  fs::remove(experiment_dir_ / "data.zip");
  EXPECT_EQ(files_.data_zip().status().code(), Code::kNotFound);
}

// ================================================================ routes: JSON and CSV shapes

TrialRecord make_trial(const std::string& id, TrialState state) {
  TrialRecord trial;
  trial.id = id;
  trial.experiment = "mnist";
  trial.state = state;
  trial.hyperparameters = json::object();
  return trial;
}

TEST(TrialToJson, PendingTrialHasNullsForWhatHasNotHappened) {
  TrialRecord trial = make_trial("00000000000000a1", TrialState::kPending);
  trial.grid_index = 4;
  trial.hyperparameters = {{"lr", 0.1}, {"batch", 32}};
  json expected = {
      {"id", "00000000000000a1"},
      {"experiment", "mnist"},
      {"grid_index", 4},
      {"in_config", true},
      {"state", "pending"},
      {"hyperparameters", {{"lr", 0.1}, {"batch", 32}}},
      {"results", nullptr},
      {"attempts", 0},
      {"worker", nullptr},
      {"started_at", nullptr},
      {"finished_at", nullptr},
      {"lease_expires_at", nullptr},
      {"error", nullptr},
      {"traceback", nullptr},
      {"model", nullptr},
      {"stop_requested", false},
      {"peak_gpu_memory_bytes", nullptr},
      {"checkpoint", nullptr},
  };
  EXPECT_EQ(trial_to_json(trial), expected);
}

TEST(TrialToJson, RunningTrialShowsItsLease) {
  TrialRecord trial = make_trial("00000000000000b2", TrialState::kRunning);
  trial.attempts = 2;
  trial.worker_id = "worker-7";
  trial.started_ms = 1'700'000'000'123;
  trial.lease_expires_ms = 1'700'000'030'123;
  trial.stop_requested = true;
  json shown = trial_to_json(trial);
  EXPECT_EQ(shown["state"], "running");
  EXPECT_EQ(shown["attempts"], 2);
  EXPECT_EQ(shown["worker"], "worker-7");
  EXPECT_EQ(shown["started_at"], "2023-11-14T22:13:20.123Z");
  EXPECT_EQ(shown["lease_expires_at"], "2023-11-14T22:13:50.123Z");
  EXPECT_EQ(shown["finished_at"], nullptr);
  EXPECT_EQ(shown["stop_requested"], true);
}

TEST(TrialToJson, LeaseExpiryIsHiddenOnceTheTrialIsNotRunning) {
  for (TrialState state : {TrialState::kPending, TrialState::kDone, TrialState::kFailed}) {
    TrialRecord trial = make_trial("00000000000000c3", state);
    trial.lease_expires_ms = 1'700'000'030'123;
    EXPECT_EQ(trial_to_json(trial)["lease_expires_at"], nullptr) << to_string(state);
  }
}

TEST(TrialToJson, DoneTrialWithResultsAndModel) {
  TrialRecord trial = make_trial("00000000000000d4", TrialState::kDone);
  trial.grid_index = 9;
  trial.in_config = false;
  trial.attempts = 1;
  trial.worker_id = "w1";
  trial.started_ms = 0;
  trial.finished_ms = 61'001;
  trial.results = {{"loss", 0.25}, {"curve", {1, 2}}};
  trial.model = ModelInfo{std::string(64, 'a'), 12345};
  trial.peak_gpu_memory_bytes = 6'000'000'000;
  trial.checkpoint = CheckpointInfo{std::nullopt,
                                    "directory",
                                    77,
                                    std::string(64, 'b'),
                                    2,
                                    61'001,
                                    "00000000000000d4-bbbbbbbbbbbbbbbb.ckpt"};
  json shown = trial_to_json(trial);
  EXPECT_EQ(shown["state"], "done");
  EXPECT_EQ(shown["in_config"], false);
  EXPECT_EQ(shown["started_at"], "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(shown["finished_at"], "1970-01-01T00:01:01.001Z");
  EXPECT_EQ(shown["results"], trial.results);
  EXPECT_EQ(shown["model"], (json{{"sha256", std::string(64, 'a')}, {"size", 12345}}));
  EXPECT_EQ(shown["peak_gpu_memory_bytes"], 6'000'000'000);
  // The file's name stays on the server.
  EXPECT_EQ(shown["checkpoint"], (json{{"step", nullptr},
                                       {"size", 77},
                                       {"kind", "directory"},
                                       {"attempt", 2},
                                       {"saved_at", "1970-01-01T00:01:01.001Z"}}));
  EXPECT_EQ(shown.size(), 18u);
}

TEST(TrialToJson, FailedTrialShowsErrorAndTraceback) {
  TrialRecord trial = make_trial("00000000000000e5", TrialState::kFailed);
  trial.error = "CUDA out of memory";
  trial.traceback = "Traceback (most recent call last):\n  ...";
  json shown = trial_to_json(trial);
  EXPECT_EQ(shown["state"], "failed");
  EXPECT_EQ(shown["error"], "CUDA out of memory");
  EXPECT_EQ(shown["traceback"], "Traceback (most recent call last):\n  ...");
}

TEST(ExperimentToJson, Shape) {
  ExperimentSummary experiment;
  experiment.name = "mnist";
  experiment.active = true;
  experiment.pending = 1;
  experiment.running = 2;
  experiment.done = 3;
  experiment.failed = 4;
  experiment.cancelled = 5;
  json expected = {
      {"name", "mnist"},
      {"active", true},
      {"total", 15},
      {"counts", {{"pending", 1}, {"running", 2}, {"done", 3}, {"failed", 4}, {"cancelled", 5}}},
      {"mean_duration_seconds", nullptr},
      {"eta_seconds", nullptr},
  };
  EXPECT_EQ(experiment_to_json(experiment, 0), expected);
}

TEST(ExperimentToJson, MeanDurationAndEstimateInSeconds) {
  ExperimentSummary experiment;
  experiment.name = "mnist";
  experiment.pending = 4;
  experiment.done = 2;
  experiment.mean_done_ms = 1'500;
  json shown = experiment_to_json(experiment, 0);
  EXPECT_DOUBLE_EQ(shown["mean_duration_seconds"].get<double>(), 1.5);
  EXPECT_DOUBLE_EQ(shown["eta_seconds"].get<double>(), 6.0);  // 4 trials, one at a time
}

TEST(EstimateSecondsLeft, UnknownBeforeTheFirstDoneTrial) {
  ExperimentSummary experiment;
  experiment.pending = 3;
  EXPECT_FALSE(estimate_seconds_left(experiment, 0).has_value());
}

TEST(EstimateSecondsLeft, ZeroWhenNothingIsLeftEvenWithoutDurations) {
  ExperimentSummary experiment;
  experiment.failed = 2;
  EXPECT_EQ(estimate_seconds_left(experiment, 0), 0.0);
}

TEST(EstimateSecondsLeft, PendingWorkIsSharedByTheRunningTrials) {
  ExperimentSummary experiment;
  experiment.pending = 6;
  experiment.running = 2;
  experiment.mean_done_ms = 10'000;
  // One running trial is 4 s in (6 s left), the other past the mean (counted as 0 left).
  experiment.running_started_ms = {96'000, 80'000};
  EXPECT_DOUBLE_EQ(*estimate_seconds_left(experiment, 100'000), (6 * 10.0 + 6.0) / 2);
}

TEST(ExperimentToJson, EmptyInactiveExperiment) {
  ExperimentSummary experiment;
  experiment.name = "old";
  json shown = experiment_to_json(experiment, 0);
  EXPECT_EQ(shown["active"], false);
  EXPECT_EQ(shown["total"], 0);
  EXPECT_EQ(shown["counts"]["failed"], 0);
}

constexpr char kFixedHeader[] = "id,state,attempts,worker,started_at,finished_at,error";

TEST(TrialsToCsv, NoTrialsGivesTheFixedHeaderOnly) {
  EXPECT_EQ(trials_to_csv({}), std::string(kFixedHeader) + "\n");
}

TEST(TrialsToCsv, FixedColumnsThenHyperparametersThenFlattenedResults) {
  TrialRecord done = make_trial("00000000000000a1", TrialState::kDone);
  done.attempts = 1;
  done.worker_id = "w1";
  done.started_ms = 0;
  done.finished_ms = 1'000;
  done.hyperparameters = {{"lr", 0.5}, {"optimizer", "adam"}};
  done.results = {{"loss", 0.25},
                  {"accuracy", {{"top1", 0.75}, {"top5", 1}}},
                  {"curve", {1, 2, 3}},
                  {"converged", true}};

  TrialRecord pending = make_trial("00000000000000b2", TrialState::kPending);
  pending.hyperparameters = {{"lr", 1}, {"batch", 32}};

  std::string csv = trials_to_csv({done, pending});
  EXPECT_EQ(csv, std::string(kFixedHeader) +
                     ",batch,lr,optimizer,accuracy.top1,accuracy.top5,converged,loss\n"
                     "00000000000000a1,done,1,w1,1970-01-01T00:00:00.000Z,"
                     "1970-01-01T00:00:01.000Z,,,0.5,adam,0.75,1,true,0.25\n"
                     "00000000000000b2,pending,0,,,,,32,1,,,,,\n");
}

TEST(TrialsToCsv, ResultNamedLikeAHyperparameterOrFixedColumnGetsAPrefix) {
  TrialRecord trial = make_trial("00000000000000a1", TrialState::kDone);
  trial.hyperparameters = {{"lr", 0.5}};
  trial.results = {{"lr", 0.125}, {"state", "ok"}, {"loss", 2}};
  std::string csv = trials_to_csv({trial});
  EXPECT_EQ(csv, std::string(kFixedHeader) +
                     ",lr,loss,results.lr,results.state\n"
                     "00000000000000a1,done,0,,,,,0.5,2,0.125,ok\n");
}

TEST(TrialsToCsv, HyperparameterNamedLikeAFixedColumnGetsAPrefix) {
  TrialRecord trial = make_trial("00000000000000a1", TrialState::kDone);
  trial.hyperparameters = {{"state", "frozen"}, {"lr", 0.5}};
  trial.results = {{"state", 1}, {"lr", 2}};
  std::string csv = trials_to_csv({trial});
  EXPECT_EQ(csv, std::string(kFixedHeader) +
                     ",lr,hyperparameters.state,results.lr,results.state\n"
                     "00000000000000a1,done,0,,,,,0.5,frozen,2,1\n");
}

TEST(TrialsToCsv, CellsWithCommasQuotesOrNewlinesAreQuoted) {
  TrialRecord trial = make_trial("00000000000000a1", TrialState::kFailed);
  trial.worker_id = "host,1";
  trial.error = "bad \"value\", see\nline two";
  trial.hyperparameters = {{"name", "a\rb"}, {"layers", {64, 32}}};
  trial.results = {{"note", "x,y"}, {"plain", "no quoting needed"}};
  std::string csv = trials_to_csv({trial});
  EXPECT_EQ(csv, std::string(kFixedHeader) +
                     ",layers,name,note,plain\n"
                     "00000000000000a1,failed,0,\"host,1\",,,"
                     "\"bad \"\"value\"\", see\nline two\","
                     "\"[64,32]\",\"a\rb\",\"x,y\",no quoting needed\n");
}

TEST(TrialsToCsv, HeaderNamesAreQuotedToo) {
  TrialRecord trial = make_trial("00000000000000a1", TrialState::kDone);
  trial.hyperparameters = {{"a,b", 1}};
  trial.results = {{"say \"hi\"", 2}};
  std::string csv = trials_to_csv({trial});
  EXPECT_EQ(csv, std::string(kFixedHeader) +
                     ",\"a,b\",\"say \"\"hi\"\"\"\n"
                     "00000000000000a1,done,0,,,,,1,2\n");
}

TEST(TrialsToCsv, ListsAreSkippedAndMissingResultsAreEmpty) {
  TrialRecord with = make_trial("00000000000000a1", TrialState::kDone);
  with.results = {{"history", {0.5, 0.25}}, {"nested", {{"steps", {1, 2}}, {"best", 3}}}};
  TrialRecord without = make_trial("00000000000000b2", TrialState::kRunning);
  TrialRecord scalar = make_trial("00000000000000c3", TrialState::kDone);
  scalar.results = 42;  // not an object: nothing to flatten
  std::string csv = trials_to_csv({with, without, scalar});
  EXPECT_EQ(csv, std::string(kFixedHeader) +
                     ",nested.best\n"
                     "00000000000000a1,done,0,,,,,3\n"
                     "00000000000000b2,running,0,,,,,\n"
                     "00000000000000c3,done,0,,,,,\n");
}

TEST(TrialsToCsv, NullResultValueIsAnEmptyCell) {
  TrialRecord trial = make_trial("00000000000000a1", TrialState::kDone);
  trial.results = {{"loss", nullptr}, {"acc", 1}};
  EXPECT_EQ(trials_to_csv({trial}), std::string(kFixedHeader) +
                                        ",acc,loss\n"
                                        "00000000000000a1,done,0,,,,,1,\n");
}

// ================================================================ http_util

TEST(Iso8601Utc, Epoch) { EXPECT_EQ(iso8601_utc(0), "1970-01-01T00:00:00.000Z"); }

TEST(Iso8601Utc, Milliseconds) {
  EXPECT_EQ(iso8601_utc(1), "1970-01-01T00:00:00.001Z");
  EXPECT_EQ(iso8601_utc(999), "1970-01-01T00:00:00.999Z");
  EXPECT_EQ(iso8601_utc(1'700'000'000'123), "2023-11-14T22:13:20.123Z");
}

TEST(Iso8601Utc, LeapDayAndLateDates) {
  EXPECT_EQ(iso8601_utc(951'782'400'000), "2000-02-29T00:00:00.000Z");
  EXPECT_EQ(iso8601_utc(4'102'444'799'999), "2099-12-31T23:59:59.999Z");
}

TEST(AttachmentDisposition, APlainNameIsQuotedAsItIs) {
  EXPECT_EQ(attachment_disposition("sentiment_analysis1.csv"),
            "attachment; filename=\"sentiment_analysis1.csv\"; "
            "filename*=UTF-8''sentiment_analysis1.csv");
}

TEST(AttachmentDisposition, QuotesControlsAndNonAsciiCannotBreakTheHeader) {
  EXPECT_EQ(attachment_disposition("a\"b\\c\r\nSet-Cookie: x=1; \xC3\xA9.csv"),
            "attachment; filename=\"a_b_c__Set-Cookie: x=1; __.csv\"; "
            "filename*=UTF-8''a%22b%5Cc%0D%0ASet-Cookie%3A%20x%3D1%3B%20%C3%A9.csv");
}

TEST(HttpStatusFor, EveryCode) {
  EXPECT_EQ(http_status_for(Code::kOk), 200);
  EXPECT_EQ(http_status_for(Code::kInvalidArgument), 400);
  EXPECT_EQ(http_status_for(Code::kUnauthorized), 401);
  EXPECT_EQ(http_status_for(Code::kNotFound), 404);
  EXPECT_EQ(http_status_for(Code::kConflict), 409);
  EXPECT_EQ(http_status_for(Code::kTooLarge), 413);
  EXPECT_EQ(http_status_for(Code::kIoError), 500);
  EXPECT_EQ(http_status_for(Code::kInternal), 500);
}

TEST(SendError, OneJsonShape) {
  httplib::Response response;
  send_error(response, 404, "no such trial");
  EXPECT_EQ(response.status, 404);
  EXPECT_EQ(response.get_header_value("Content-Type"), "application/json");
  EXPECT_EQ(json::parse(response.body), (json{{"error", "no such trial"}}));

  httplib::Response with_detail;
  send_error(with_detail, 409, "lease lost", {{"stop", true}});
  EXPECT_EQ(json::parse(with_detail.body),
            (json{{"error", "lease lost"}, {"detail", {{"stop", true}}}}));
}

TEST(SendError, StatusErrorMapsTheCode) {
  httplib::Response response;
  send_status_error(response, Status::too_large("too big"));
  EXPECT_EQ(response.status, 413);
  EXPECT_EQ(json::parse(response.body), (json{{"error", "too big"}}));
}

TEST(SendJson, InvalidUtf8IsReplacedNotThrown) {
  httplib::Response response;
  send_json(response, 200, {{"name", std::string("bad \xff byte")}});
  EXPECT_EQ(response.status, 200);
  EXPECT_TRUE(json::accept(response.body)) << response.body;
}

TEST(ParseJsonObjectBody, AcceptsAnObject) {
  httplib::Request request;
  request.body = R"({"lease_token": "abc", "n": 1})";
  Result<json> body = parse_json_object_body(request);
  ASSERT_TRUE(body.is_ok()) << body.status().message();
  EXPECT_EQ((*body)["lease_token"], "abc");
}

TEST(ParseJsonObjectBody, RefusesMalformedOrNonObjectBodies) {
  for (const char* text : {"", "{", "not json", "[1, 2]", "\"text\"", "42", "null"}) {
    httplib::Request request;
    request.body = text;
    Result<json> body = parse_json_object_body(request);
    ASSERT_FALSE(body.is_ok()) << text;
    EXPECT_EQ(body.status().code(), Code::kInvalidArgument) << text;
  }
}

TEST(ParseJsonObjectBody, RefusesOutOfRangeNumbersAndDeepNestingAsInvalidArgument) {
  // Issue 14: 1e400 answered 500, 100,000 nested brackets crashed the server.
  const std::string deep = std::string(100'000, '[') + std::string(100'000, ']');
  for (const std::string& text :
       {std::string(R"({"password": 1e400})"), std::string(R"({"n": -1e400})"),
        R"({"lease_token": "t", "results": )" + deep + "}", "{\"devices\": " + deep + "}"}) {
    httplib::Request request;
    request.body = text;
    Result<json> body = parse_json_object_body(request);
    ASSERT_FALSE(body.is_ok()) << text.substr(0, 60);
    EXPECT_EQ(body.status().code(), Code::kInvalidArgument);
    EXPECT_TRUE(contains(body.status().message(), "number overflow") ||
                contains(body.status().message(), "nested more than"))
        << body.status().message();
  }
}

TEST(ParseJsonObjectBody, TakesWhatTheExecutorSendsWithinItsEnvelope) {
  // Results nested as deep as the executor allows, inside a metrics call's envelope.
  std::string values = std::string(kMaxJsonDepth, '[') + std::string(kMaxJsonDepth, ']');
  httplib::Request request;
  request.body = R"({"lease_token": "t", "points": [{"values": {"v": )" + values + "}}]}";
  Result<json> body = parse_json_object_body(request);
  EXPECT_TRUE(body.is_ok()) << body.status().message();
}

TEST(MaxRequestBodyBytes, EachRouteHasItsLimit) {
  constexpr std::uint64_t kUpload = 16384ull << 20;
  auto limit = [&](const std::string& method, const std::string& path) {
    return max_request_body_bytes(method, path, kUpload);
  };
  EXPECT_EQ(limit("POST", "/api/v1/session"), 4096u);
  EXPECT_EQ(limit("DELETE", "/api/v1/session"), 64u << 10);
  EXPECT_EQ(limit("POST", "/api/v1/workers"), 1u << 20);
  EXPECT_EQ(limit("POST", "/api/v1/workers/w-1/claim"), 64u << 10);
  for (const char* call : {"heartbeat", "release", "retry", "cancel"}) {
    EXPECT_EQ(limit("POST", std::string("/api/v1/trials/0123456789abcdef/") + call), 64u << 10)
        << call;
  }
  for (const char* call : {"complete", "fail", "metrics", "log"}) {
    EXPECT_EQ(limit("POST", std::string("/api/v1/trials/0123456789abcdef/") + call), 64u << 20)
        << call;
  }
  EXPECT_EQ(limit("POST", "/api/v1/experiments/mnist/cancel"), 16u << 20);
  EXPECT_EQ(limit("PUT", "/api/v1/trials/0123456789abcdef/model"), kUpload);
  for (const char* method : {"GET", "HEAD", "OPTIONS"}) {
    EXPECT_EQ(limit(method, "/api/v1/trials/0123456789abcdef/model"), 0u) << method;
    EXPECT_EQ(limit(method, "/healthz"), 0u) << method;
  }
  EXPECT_EQ(limit("POST", "/no/such/route"), 64u << 10);
}

TEST(ServeFile, MatchingIfNoneMatchAnswers304) {
  TempDir dir;
  write_file(dir.path() / "data.zip", "bytes");
  FileToServe file{dir.path() / "data.zip", sha256_hex("bytes"), "application/zip", "data.zip"};
  httplib::Request request;
  request.headers.emplace("If-None-Match", "W/\"other\", \"" + sha256_hex("bytes") + "\"");
  httplib::Response response;
  serve_file(request, response, file);
  EXPECT_EQ(response.status, 304);
  EXPECT_EQ(response.get_header_value("ETag"), "\"" + sha256_hex("bytes") + "\"");
}

// Reads `length` bytes from `offset` through the response's content provider, as httplib would.
std::string drain_content(const httplib::Response& response, std::size_t offset,
                          std::size_t length) {
  std::string out;
  httplib::DataSink sink;
  sink.write = [&out](const char* data, std::size_t size) {
    out.append(data, size);
    return true;
  };
  sink.is_writable = [] { return true; };
  while (length > 0) {
    std::size_t before = out.size();
    if (!response.content_provider_(offset, length, sink)) break;
    std::size_t got = out.size() - before;
    if (got == 0) break;
    offset += got;
    length -= got;
  }
  return out;
}

TEST(ServeFile, OtherEtagStreamsTheFileWithHeaders) {
  TempDir dir;
  std::string contents;
  for (int i = 0; i < 200'000; ++i) contents.push_back(static_cast<char>('a' + i % 26));
  write_file(dir.path() / "data.zip", contents);
  FileToServe file{dir.path() / "data.zip", sha256_hex(contents), "application/zip", "data.zip"};
  httplib::Request request;
  request.headers.emplace("If-None-Match", "\"stale\"");
  httplib::Response response;
  serve_file(request, response, file);
  // Left unset, httplib answers 200 (or 206 for a Range request).
  EXPECT_TRUE(response.status == -1 || response.status == 200) << response.status;
  EXPECT_EQ(response.get_header_value("ETag"), "\"" + sha256_hex(contents) + "\"");
  EXPECT_EQ(response.get_header_value("Content-Type"), "application/zip");
  EXPECT_EQ(response.get_header_value("Content-Disposition"),
            "attachment; filename=\"data.zip\"; filename*=UTF-8''data.zip");
  ASSERT_EQ(response.content_length_, contents.size());
  ASSERT_TRUE(response.content_provider_);
  EXPECT_EQ(drain_content(response, 0, contents.size()), contents);
  EXPECT_EQ(drain_content(response, 70'000, 100'000), contents.substr(70'000, 100'000));
}

// Bytes that differ from one offset to the next, so a misplaced piece shows.
std::string patterned_bytes(std::size_t size) {
  std::string text(size, '\0');
  for (std::size_t i = 0; i < size; ++i) text[i] = static_cast<char>((i * 131 + i / 4096) % 251);
  return text;
}

TEST(ServeFileLarge, WholeBodyRangesAcrossBuffersAndTheLastBytes) {
  TempDir dir;
  const std::string contents = patterned_bytes(600'001);
  write_file(dir.path() / "m.pt", contents);
  httplib::Request request;
  httplib::Response response;
  serve_file(request, response, {dir.path() / "m.pt", sha256_hex(contents), "x", ""});
  ASSERT_EQ(response.content_length_, contents.size());
  EXPECT_EQ(drain_content(response, 0, contents.size()), contents);
  EXPECT_EQ(drain_content(response, 200'000, 350'000), contents.substr(200'000, 350'000));
  EXPECT_EQ(drain_content(response, contents.size() - 11, 11),
            contents.substr(contents.size() - 11));
}

TEST(ServeFileLarge, AnEmptyFileHasAnEmptyBody) {
  TempDir dir;
  write_file(dir.path() / "empty.pt", "");
  httplib::Request request;
  httplib::Response response;
  serve_file(request, response, {dir.path() / "empty.pt", sha256_hex(""), "x", ""});
  EXPECT_EQ(response.content_length_, 0u);
  EXPECT_EQ(drain_content(response, 0, 0), "");
}

TEST(ServeFile, MissingFileAnswers404) {
  TempDir dir;
  FileToServe file{dir.path() / "gone.zip", sha256_hex(""), "application/zip", ""};
  httplib::Request request;
  httplib::Response response;
  serve_file(request, response, file);
  EXPECT_EQ(response.status, 404);
  EXPECT_TRUE(json::parse(response.body).contains("error"));
}

}  // namespace
}  // namespace gridexp
