// Units behind the dashboard, the session login and /metrics: sessions, cookies, route
// labels, the Prometheus rendering, finding plotly.min.js and the compiled-in files.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "server/dashboard_files.h"
#include "server/login_throttle.h"
#include "server/plotly_js.h"
#include "server/routes.h"
#include "server/server_metrics.h"
#include "server/sessions.h"
#include "test_support.h"

namespace gridexp {
namespace {

TEST(Sessions, ACreatedTokenIsValidUntilItExpires) {
  FakeClock clock;
  Sessions sessions(clock, 1'000);
  std::string token = sessions.create();
  EXPECT_EQ(token.size(), 64u);
  EXPECT_TRUE(sessions.is_valid(token));
  clock.advance_ms(999);
  EXPECT_TRUE(sessions.is_valid(token));
  clock.advance_ms(1);
  EXPECT_FALSE(sessions.is_valid(token));
}

TEST(Sessions, UnknownEmptyAndAlteredTokensAreInvalid) {
  FakeClock clock;
  Sessions sessions(clock, 60'000);
  std::string token = sessions.create();
  EXPECT_FALSE(sessions.is_valid(""));
  EXPECT_FALSE(sessions.is_valid(std::string(64, '0')));
  std::string altered = token;
  altered[10] = altered[10] == 'a' ? 'b' : 'a';
  EXPECT_FALSE(sessions.is_valid(altered));
  EXPECT_FALSE(sessions.is_valid(token + "0"));
}

TEST(Sessions, RevokeEndsOnlyThatSession) {
  FakeClock clock;
  Sessions sessions(clock, 60'000);
  std::string first = sessions.create();
  std::string second = sessions.create();
  EXPECT_NE(first, second);
  sessions.revoke(first);
  EXPECT_FALSE(sessions.is_valid(first));
  EXPECT_TRUE(sessions.is_valid(second));
  sessions.revoke("never-issued");  // harmless
  EXPECT_TRUE(sessions.is_valid(second));
}

TEST(Sessions, TheOldestGoesWhenTheLimitIsReached) {
  FakeClock clock;
  Sessions sessions(clock, 60'000, /*max_sessions=*/2);
  std::string first = sessions.create();
  clock.advance_ms(1);
  std::string second = sessions.create();
  clock.advance_ms(1);
  std::string third = sessions.create();
  EXPECT_FALSE(sessions.is_valid(first));
  EXPECT_TRUE(sessions.is_valid(second));
  EXPECT_TRUE(sessions.is_valid(third));
}

using Attempt = LoginThrottle::Attempt;

TEST(LoginThrottle, RefusesAfterTooManyFailuresUntilTheWindowEnds) {
  FakeClock clock;
  LoginThrottle throttle(clock, /*max_failures=*/3, /*window_ms=*/60'000);
  for (int i = 0; i < 2; ++i) throttle.admit("10.0.0.1", Attempt::kWrongPassword);
  EXPECT_EQ(throttle.admit("10.0.0.1", Attempt::kNoPassword), 0);
  clock.advance_ms(10'000);
  throttle.admit("10.0.0.1", Attempt::kWrongPassword);
  EXPECT_EQ(throttle.admit("10.0.0.1", Attempt::kNoPassword), 50'000);
  EXPECT_EQ(throttle.admit("10.0.0.2", Attempt::kNoPassword), 0);  // others are not affected
  clock.advance_ms(50'000);
  EXPECT_EQ(throttle.admit("10.0.0.1", Attempt::kNoPassword), 0);
  throttle.admit("10.0.0.1", Attempt::kWrongPassword);  // a fresh window
  EXPECT_EQ(throttle.admit("10.0.0.1", Attempt::kNoPassword), 0);
}

TEST(LoginThrottle, ParallelGuessesGetAtMostTheLimitOfAnswersPerWindow) {
  FakeClock clock;
  LoginThrottle throttle(clock, /*max_failures=*/20, /*window_ms=*/60'000);
  std::atomic<int> answered{0};
  std::vector<std::thread> guessers;
  for (int t = 0; t < 8; ++t) {
    guessers.emplace_back([&] {
      for (int i = 0; i < 50; ++i) {
        if (throttle.admit("10.0.0.9", Attempt::kWrongPassword) == 0) ++answered;
      }
    });
  }
  for (std::thread& guesser : guessers) guesser.join();
  EXPECT_EQ(answered.load(), 20);
  // The right password gets no answer either until the window ends (a refusal tells nothing).
  EXPECT_EQ(throttle.admit("10.0.0.9", Attempt::kRightPassword), 60'000);
  EXPECT_EQ(throttle.admit("10.0.0.8", Attempt::kRightPassword), 0);
  EXPECT_EQ(throttle.admit("10.0.0.8", Attempt::kNoPassword), 0);
  clock.advance_ms(60'000);
  EXPECT_EQ(throttle.admit("10.0.0.9", Attempt::kRightPassword), 0);
}

TEST(LoginThrottle, ZeroTurnsItOff) {
  FakeClock clock;
  LoginThrottle throttle(clock, 3, 60'000);
  throttle.set_max_failures(0);
  for (int i = 0; i < 100; ++i) throttle.admit("proxy", Attempt::kWrongPassword);
  EXPECT_EQ(throttle.admit("proxy", Attempt::kNoPassword), 0);
}

TEST(LoginThrottle, FailuresSpreadOverWindowsNeverAddUp) {
  FakeClock clock;
  LoginThrottle throttle(clock, 3, 1'000);
  for (int i = 0; i < 10; ++i) {
    throttle.admit("a", Attempt::kWrongPassword);
    clock.advance_ms(600);
  }
  EXPECT_EQ(throttle.admit("a", Attempt::kNoPassword), 0);
}

TEST(LoginThrottle, TracksABoundedNumberOfClients) {
  FakeClock clock;
  LoginThrottle throttle(clock, 2, 60'000, /*max_clients=*/2);
  throttle.admit("old", Attempt::kWrongPassword);
  throttle.admit("old", Attempt::kWrongPassword);
  clock.advance_ms(1);
  throttle.admit("b", Attempt::kWrongPassword);
  clock.advance_ms(1);
  throttle.admit("c", Attempt::kWrongPassword);  // "old" is forgotten to make room
  EXPECT_EQ(throttle.admit("old", Attempt::kNoPassword), 0);
}

httplib::Request request_with_cookie(const std::string& cookie) {
  httplib::Request request;
  if (!cookie.empty()) request.headers.emplace("Cookie", cookie);
  return request;
}

TEST(SessionCookie, FoundAmongOtherCookies) {
  EXPECT_EQ(session_cookie(request_with_cookie("gridexp_session=abc")), "abc");
  EXPECT_EQ(session_cookie(request_with_cookie("theme=dark; gridexp_session=abc; x=1")), "abc");
  EXPECT_EQ(session_cookie(request_with_cookie("theme=dark;gridexp_session=abc")), "abc");
}

TEST(SessionCookie, AbsentOrOnlyASimilarName) {
  EXPECT_EQ(session_cookie(request_with_cookie("")), "");
  EXPECT_EQ(session_cookie(request_with_cookie("not_gridexp_session=abc")), "");
  EXPECT_EQ(session_cookie(request_with_cookie("gridexp_sessionx=abc")), "");
}

TEST(RouteLabel, IdsAndNamesBecomePlaceholders) {
  EXPECT_EQ(route_label("/api/v1/trials/3f2a9c1e8b7d6a50/heartbeat"),
            "/api/v1/trials/{id}/heartbeat");
  EXPECT_EQ(route_label("/api/v1/trials/3f2a9c1e8b7d6a50"), "/api/v1/trials/{id}");
  EXPECT_EQ(route_label("/api/v1/workers/9c0e/claim"), "/api/v1/workers/{id}/claim");
  EXPECT_EQ(route_label("/api/v1/experiments/mnist/trials.csv"),
            "/api/v1/experiments/{name}/trials.csv");
  EXPECT_EQ(route_label("/api/v1/experiments"), "/api/v1/experiments");
  EXPECT_EQ(route_label("/static/app.js"), "/static/{file}");
  EXPECT_EQ(route_label("/"), "/");
  EXPECT_EQ(route_label("/metrics"), "/metrics");
  EXPECT_EQ(route_label("/api/v1/files/scripts.zip"), "/api/v1/files/scripts.zip");
}

TEST(RouteLabel, AnythingElseIsOther) {
  EXPECT_EQ(route_label("/wp-admin/login.php"), "other");
  EXPECT_EQ(route_label("/api/v1/trials/x/unknown"), "other");
  EXPECT_EQ(route_label("/api/v2/experiments"), "other");
  EXPECT_EQ(route_label("/static/a/b"), "other");
}

TEST(EscapeLabelValue, BackslashQuoteAndNewline) {
  EXPECT_EQ(escape_label_value("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
  EXPECT_EQ(escape_label_value("plain"), "plain");
}

TEST(ServerMetrics, RendersGaugesCountersAndACumulativeHistogram) {
  ServerMetrics metrics;
  metrics.claims += 3;
  metrics.completions += 2;
  metrics.failures += 1;
  metrics.model_bytes_uploaded += 4096;
  metrics.observe_request("POST", "/api/v1/workers/{id}/claim", 0.0004);
  metrics.observe_request("POST", "/api/v1/workers/{id}/claim", 0.003);
  metrics.observe_request("POST", "/api/v1/workers/{id}/claim", 20.0);
  ExperimentSummary experiment;
  experiment.name = "say \"hi\"";
  experiment.pending = 4;
  experiment.cancelled = 1;
  std::string text = metrics.render({experiment}, 2, StoreStats{120, 45, 7});
  auto has = [&text](const std::string& line) {
    return text.find(line + "\n") != std::string::npos;
  };
  EXPECT_TRUE(has("gridexp_trials{experiment=\"say \\\"hi\\\"\",state=\"pending\"} 4")) << text;
  EXPECT_TRUE(has("gridexp_trials{experiment=\"say \\\"hi\\\"\",state=\"cancelled\"} 1"));
  EXPECT_TRUE(has("gridexp_workers_online 2"));
  EXPECT_TRUE(has("gridexp_claims_total 3"));
  EXPECT_TRUE(has("gridexp_completions_total 2"));
  EXPECT_TRUE(has("gridexp_failures_total 1"));
  EXPECT_TRUE(has("gridexp_model_bytes_uploaded_total 4096"));
  EXPECT_TRUE(has("gridexp_store_calls_total 120"));
  EXPECT_TRUE(has("gridexp_store_transactions_total 45"));
  EXPECT_TRUE(has("gridexp_store_calls_waiting 7"));
  EXPECT_TRUE(has("# TYPE gridexp_http_request_duration_seconds histogram"));
  const std::string labels = "method=\"POST\",route=\"/api/v1/workers/{id}/claim\"";
  EXPECT_TRUE(has("gridexp_http_request_duration_seconds_bucket{" + labels + ",le=\"0.0005\"} 1"));
  EXPECT_TRUE(has("gridexp_http_request_duration_seconds_bucket{" + labels + ",le=\"0.005\"} 2"));
  EXPECT_TRUE(has("gridexp_http_request_duration_seconds_bucket{" + labels + ",le=\"10\"} 2"));
  EXPECT_TRUE(has("gridexp_http_request_duration_seconds_bucket{" + labels + ",le=\"+Inf\"} 3"));
  EXPECT_TRUE(has("gridexp_http_request_duration_seconds_count{" + labels + "} 3"));
}

class FindPlotlyJsTest : public ::testing::Test {
 protected:
  testing::TempDir temp_;
  const std::filesystem::path& root_ = temp_.path();
  std::filesystem::path place(const std::filesystem::path& relative) {
    std::filesystem::path path = root_ / relative;
    std::filesystem::create_directories(path.parent_path());
    std::ofstream(path) << "/* plotly */";
    return path;
  }
};

TEST_F(FindPlotlyJsTest, FoundInAVirtualEnvironmentBesideTheProgram) {
  std::filesystem::path file =
      place("venv/lib/python3.11/site-packages/plotly/package_data/plotly.min.js");
  std::filesystem::create_directories(root_ / "venv/bin");
  EXPECT_EQ(find_plotly_js(root_ / "venv/bin", std::nullopt), file);
}

TEST_F(FindPlotlyJsTest, FoundInDebiansDistPackages) {
  std::filesystem::path file =
      place("usr/local/lib/python3.11/dist-packages/plotly/package_data/plotly.min.js");
  EXPECT_EQ(find_plotly_js(root_ / "usr/local/bin", std::nullopt), file);
}

TEST_F(FindPlotlyJsTest, NotFoundIsEmpty) {
  std::filesystem::create_directories(root_ / "venv/bin");
  EXPECT_FALSE(find_plotly_js(root_ / "venv/bin", std::nullopt).has_value());
}

TEST_F(FindPlotlyJsTest, AnExplicitPathWinsAndAMissingOneIsNotReplaced) {
  place("venv/lib/python3.11/site-packages/plotly/package_data/plotly.min.js");
  std::filesystem::path mine = place("mine.js");
  EXPECT_EQ(find_plotly_js(root_ / "venv/bin", mine), mine);
  EXPECT_FALSE(find_plotly_js(root_ / "venv/bin", root_ / "typo.js").has_value());
}

TEST(DashboardFiles, EveryPageAndAssetIsCompiledIn) {
  for (const char* name : {"index.html", "login.html", "app.js", "style.css"}) {
    std::optional<std::string_view> bytes = find_dashboard_file(name);
    ASSERT_TRUE(bytes.has_value()) << name;
    EXPECT_GT(bytes->size(), 100u) << name;
  }
  EXPECT_FALSE(find_dashboard_file("../config.yaml").has_value());
  EXPECT_FALSE(find_dashboard_file("").has_value());
}

TEST(DashboardFiles, NamesAreUniqueFlatAndTyped) {
  std::set<std::string_view> names;
  for (const DashboardFile& file : dashboard_files()) {
    EXPECT_TRUE(names.insert(file.name).second) << file.name;
    EXPECT_EQ(file.name.find('/'), std::string_view::npos) << file.name;
    EXPECT_TRUE(find_dashboard_file(file.name) == file.bytes) << file.name;
    std::string_view expected = file.name.ends_with(".js")     ? "text/javascript; charset=utf-8"
                                : file.name.ends_with(".css")  ? "text/css; charset=utf-8"
                                : file.name.ends_with(".html") ? "text/html; charset=utf-8"
                                                               : "";
    EXPECT_EQ(file.content_type, expected) << file.name;
  }
}

// The specifiers of a module's static and dynamic imports (and re-exports).
std::vector<std::string> module_imports(std::string_view source) {
  static const std::regex kSpecifier(R"re((?:\bfrom|\bimport)\s*\(?\s*["']([^"']*)["'])re");
  std::vector<std::string> specifiers;
  std::string text(source);
  for (auto match = std::sregex_iterator(text.begin(), text.end(), kSpecifier);
       match != std::sregex_iterator(); ++match) {
    specifiers.push_back((*match)[1].str());
  }
  return specifiers;
}

TEST(DashboardFiles, ModuleImportsAreFoundInAnyForm) {
  EXPECT_EQ(module_imports("import { a, b } from \"./a.js\";\nimport \"./b.js\";\n"
                           "export { c } from './c.js';\nconst d = await import(\"./d.js\");\n"
                           "import {\n  e,\n} from \"./e.js\";"),
            (std::vector<std::string>{"./a.js", "./b.js", "./c.js", "./d.js", "./e.js"}));
}

// The browser loads /static/app.js and, one request each, every module it imports: a module
// left out of GRIDEXP_DASHBOARD_FILES would be a 404 and a dashboard that never starts.
TEST(DashboardFiles, EveryModuleImportIsACompiledInModuleAndEveryModuleIsUsed) {
  std::set<std::string> reached = {"app.js"};
  std::vector<std::string> to_read = {"app.js"};
  while (!to_read.empty()) {
    std::string name = to_read.back();
    to_read.pop_back();
    std::optional<std::string_view> source = find_dashboard_file(name);
    ASSERT_TRUE(source.has_value()) << name;
    for (const std::string& specifier : module_imports(*source)) {
      // Modules import their neighbours by relative path: /static/ has no folders.
      ASSERT_TRUE(specifier.starts_with("./")) << name << " imports " << specifier;
      std::string imported = specifier.substr(2);
      EXPECT_TRUE(imported.ends_with(".js")) << name << " imports " << specifier;
      EXPECT_TRUE(find_dashboard_file(imported).has_value())
          << name << " imports " << specifier
          << ", which is not in GRIDEXP_DASHBOARD_FILES (cpp/CMakeLists.txt)";
      if (reached.insert(imported).second) to_read.push_back(imported);
    }
  }
  EXPECT_GT(reached.size(), 10u);
  for (const DashboardFile& file : dashboard_files()) {
    if (file.name.ends_with(".js")) {
      EXPECT_TRUE(reached.contains(std::string(file.name)))
          << file.name << " is compiled in, but no module imports it";
    }
  }
}

TEST(DashboardFiles, ThePageLoadsTheEntryModuleAndEveryStaticFileItNamesIsCompiledIn) {
  std::string page(find_dashboard_file("index.html").value_or(""));
  EXPECT_NE(page.find(R"(<script type="module" src="/static/app.js"></script>)"),
            std::string::npos);
  static const std::regex kStatic(R"re((?:src|href)="/static/([^"]+)")re");
  int found = 0;
  for (auto match = std::sregex_iterator(page.begin(), page.end(), kStatic);
       match != std::sregex_iterator(); ++match, ++found) {
    std::string name = (*match)[1].str();
    if (name == "plotly.min.js") continue;  // from the plotly package, not compiled in
    EXPECT_TRUE(find_dashboard_file(name).has_value()) << name;
  }
  EXPECT_GE(found, 3);
}

}  // namespace
}  // namespace gridexp
