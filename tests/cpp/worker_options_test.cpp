// Tests for the worker's command line: the original framework's flag forms and defaults.
#include "worker/options.h"

#include <gtest/gtest.h>

namespace gridexp {
namespace {

WorkerOptions parse_ok(const std::vector<std::string>& arguments) {
  Result<WorkerOptions> options = parse_worker_options(arguments);
  EXPECT_TRUE(options) << options.status().message();
  return options ? *options : WorkerOptions{};
}

std::string parse_error(const std::vector<std::string>& arguments) {
  Result<WorkerOptions> options = parse_worker_options(arguments);
  EXPECT_FALSE(options);
  return options ? "" : options.status().message();
}

TEST(WorkerOptions, TheSeedsExactCommandLine) {
  WorkerOptions options =
      parse_ok({"--save_models=False", "--download_scripts", "--download_data=False",
                "--address=http://10.0.0.5:8030", "--server_password=very_secure"});
  EXPECT_FALSE(options.save_models);
  EXPECT_TRUE(options.download_scripts);
  EXPECT_FALSE(options.download_data);
  EXPECT_EQ(options.address, "http://10.0.0.5:8030");
  EXPECT_EQ(options.password, "very_secure");
}

TEST(WorkerOptions, DefaultsAreTheSeeds) {
  WorkerOptions options = parse_ok({"--address", "host:8030"});
  EXPECT_TRUE(options.save_models);
  EXPECT_FALSE(options.download_scripts);
  EXPECT_TRUE(options.download_data);
  EXPECT_FALSE(options.dry_run);
  EXPECT_TRUE(options.raise_on_failure);
  EXPECT_TRUE(options.consistent_dataset);
  EXPECT_EQ(options.workdir, ".");
  EXPECT_FALSE(options.max_trials);
  EXPECT_FALSE(options.password);
}

TEST(WorkerOptions, EveryBooleanForm) {
  for (const auto& [argument, expected] :
       std::vector<std::pair<std::string, bool>>{{"--save_models", true},
                                                 {"--save_models=True", true},
                                                 {"--save_models=true", true},
                                                 {"--save_models=1", true},
                                                 {"--save_models=False", false},
                                                 {"--save_models=FALSE", false},
                                                 {"--save_models=0", false},
                                                 {"--nosave_models", false},
                                                 {"--no-save-models", false},
                                                 {"--no_save_models", false},
                                                 {"--save-models=False", false},
                                                 {"--save-models", true}}) {
    std::vector<std::string> arguments = {"--address=h:1", "--save_models=False"};
    if (expected == false) arguments.back() = "--save_models=True";
    arguments.push_back(argument);
    EXPECT_EQ(parse_ok(arguments).save_models, expected) << argument;
  }
  WorkerOptions options = parse_ok({"--address=h:1", "--dry-run", "--noraise_on_failure",
                                    "--consistent-dataset=False", "--download-scripts=True"});
  EXPECT_TRUE(options.dry_run);
  EXPECT_FALSE(options.raise_on_failure);
  EXPECT_FALSE(options.consistent_dataset);
  EXPECT_TRUE(options.download_scripts);
}

TEST(WorkerOptions, ValuedOptions) {
  WorkerOptions options = parse_ok({"--address=h:1", "--workdir", "/tmp/w", "--max-trials=3",
                                    "--password-file=/etc/pw", "--poll_seconds=0.5"});
  EXPECT_EQ(options.workdir, "/tmp/w");
  EXPECT_EQ(options.max_trials, 3);
  EXPECT_EQ(options.password_file, "/etc/pw");
  EXPECT_DOUBLE_EQ(options.poll_seconds, 0.5);
  EXPECT_EQ(parse_ok({"--address=h:1", "--password=x"}).password, "x");
}

TEST(WorkerOptions, GraceSecondsDefaultsToAMinuteAndTakesBothForms) {
  EXPECT_DOUBLE_EQ(parse_ok({"--address=h:1"}).grace_seconds, 60);
  EXPECT_DOUBLE_EQ(parse_ok({"--address=h:1", "--grace_seconds=5"}).grace_seconds, 5);
  EXPECT_DOUBLE_EQ(parse_ok({"--address=h:1", "--grace-seconds", "0.5"}).grace_seconds, 0.5);
  EXPECT_DOUBLE_EQ(parse_ok({"--address=h:1", "--grace_seconds=0"}).grace_seconds, 0);
  for (const char* bad : {"--grace_seconds=-1", "--grace_seconds=soon", "--grace_seconds="}) {
    EXPECT_NE(parse_error({"--address=h:1", bad}).find("--grace_seconds"), std::string::npos)
        << bad;
  }
  EXPECT_NE(worker_usage().find("--grace_seconds=60"), std::string::npos);
}

TEST(WorkerOptions, ErrorsNameTheOption) {
  EXPECT_NE(parse_error({}).find("--address"), std::string::npos);
  EXPECT_NE(parse_error({"--address=h:1", "--frob"}).find("--frob"), std::string::npos);
  EXPECT_NE(parse_error({"--address=h:1", "--save_models=maybe"}).find("--save_models"),
            std::string::npos);
  EXPECT_NE(parse_error({"--address=h:1", "--max_trials=0"}).find("--max_trials"),
            std::string::npos);
  EXPECT_NE(parse_error({"--address=h:1", "--max_trials"}).find("needs a value"),
            std::string::npos);
  EXPECT_NE(parse_error({"--address=h:1", "--nosave_models=True"}).find("takes no value"),
            std::string::npos);
  EXPECT_NE(parse_error({"--address=h:1", "stray"}).find("stray"), std::string::npos);
  EXPECT_NE(parse_error({"--address=h:1/path"}).find("HOST:PORT"), std::string::npos);
  EXPECT_NE(parse_error({"--address=h:1", "--password=a", "--password_file=b"}).find("not both"),
            std::string::npos);
}

TEST(WorkerOptions, HelpAndVersionNeedNoAddress) {
  EXPECT_TRUE(parse_ok({"--help"}).show_help);
  EXPECT_TRUE(parse_ok({"-h"}).show_help);
  EXPECT_TRUE(parse_ok({"--version"}).show_version);
  EXPECT_NE(worker_usage().find("--save_models"), std::string::npos);
}

TEST(ServerBaseUrl, AcceptsHostPortAndUrls) {
  EXPECT_EQ(server_base_url("box:8030").value(), "http://box:8030");
  EXPECT_EQ(server_base_url("http://box:8030/").value(), "http://box:8030");
  EXPECT_EQ(server_base_url("https://box").value(), "https://box");
  EXPECT_EQ(server_base_url("[::1]:8030").value(), "http://[::1]:8030");
  EXPECT_FALSE(server_base_url("http://box:8030/api"));
  EXPECT_FALSE(server_base_url(""));
}

TEST(WorkerOptions, GpusAreAllAndOneTrialEachByDefault) {
  WorkerOptions options = parse_ok({"--address=h:1"});
  EXPECT_EQ(options.gpus.kind, GpuChoice::Kind::kAll);
  EXPECT_EQ(options.trials_per_gpu, 1);
}

TEST(WorkerOptions, GpusAndTrialsPerGpuWorkWithTheSeedsFlags) {
  WorkerOptions options = parse_ok({"--save_models=False", "--download_scripts", "--gpus", "0,2",
                                    "--address=http://10.0.0.5:8030",
                                    "--server_password=very_secure", "--trials-per-gpu=3"});
  EXPECT_EQ(options.gpus.kind, GpuChoice::Kind::kListed);
  EXPECT_EQ(options.gpus.indices, (std::vector<int>{0, 2}));
  EXPECT_EQ(options.trials_per_gpu, 3);
  EXPECT_FALSE(options.save_models);
  EXPECT_TRUE(options.download_scripts);
  EXPECT_EQ(options.password, "very_secure");
  EXPECT_EQ(parse_ok({"--address=h:1", "--gpus=None"}).gpus.kind, GpuChoice::Kind::kNone);
  EXPECT_EQ(parse_ok({"--address=h:1", "--gpus=all"}).gpus.kind, GpuChoice::Kind::kAll);
  EXPECT_EQ(parse_ok({"--address=h:1", "--trials_per_gpu", "2"}).trials_per_gpu, 2);
}

TEST(WorkerOptions, BadGpusNameTheFlag) {
  EXPECT_EQ(parse_error({"--address=h:1", "--gpus=0,0"}), "--gpus names GPU 0 twice in '0,0'");
  for (const char* bad : {"--gpus=x", "--gpus=0,,1", "--gpus=-1", "--gpus=", "--gpus=1,"}) {
    EXPECT_NE(parse_error({"--address=h:1", bad}).find("--gpus is all, none or GPU numbers"),
              std::string::npos)
        << bad;
  }
}

TEST(WorkerOptions, TrialsPerGpuIsAWholeNumberOfAtLeastOneOrAuto) {
  for (const char* bad : {"0", "-1", "autox", "1.5", ""}) {
    std::string error = parse_error({"--address=h:1", std::string("--trials-per-gpu=") + bad});
    EXPECT_EQ(error, std::string("--trials-per-gpu needs a whole number of at least 1 "
                                 "(executors per GPU) or auto, not '") +
                         bad + "'");
  }
}

TEST(WorkerOptions, TrialsPerGpuAutoChoosesPerGpu) {
  WorkerOptions automatic = parse_ok({"--address=h:1", "--trials-per-gpu", "auto"});
  EXPECT_TRUE(automatic.trials_per_gpu_auto);
  EXPECT_EQ(automatic.trials_per_gpu, 1);
  EXPECT_TRUE(parse_ok({"--address=h:1", "--trials_per_gpu=AUTO"}).trials_per_gpu_auto);
  WorkerOptions last_wins =
      parse_ok({"--address=h:1", "--trials-per-gpu=auto", "--trials-per-gpu=2"});
  EXPECT_FALSE(last_wins.trials_per_gpu_auto);
  EXPECT_EQ(last_wins.trials_per_gpu, 2);
  EXPECT_FALSE(parse_ok({"--address=h:1"}).trials_per_gpu_auto);
}

}  // namespace
}  // namespace gridexp
