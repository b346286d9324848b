// The dashboard: its page and static files (compiled in, see server/dashboard_files.h, plus
// plotly.min.js from the plotly Python package), and the session routes behind its login
// form — see docs/api.md, "Dashboard and session". The request gate has already checked the
// password or session of every request that reaches these handlers, except the login itself.
#include <string>

#include "common/auth.h"
#include "common/sha256.h"
#include "server/dashboard_files.h"
#include "server/http_util.h"
#include "server/routes.h"

namespace gridexp {
namespace {

constexpr char kSessionCookieName[] = "gridexp_session";

// Answers a compiled-in file with a strong ETag, revalidated on every load (a new server
// version must never run with an old script).
void serve_embedded(const httplib::Request& request, httplib::Response& response,
                    std::string_view bytes, const std::string& etag,
                    std::string_view content_type) {
  response.set_header("Cache-Control", "no-cache");
  response.set_header("ETag", etag);
  response.set_header("X-Content-Type-Options", "nosniff");
  if (request.get_header_value("If-None-Match") == etag) {
    response.status = 304;
    return;
  }
  response.set_content(std::string(bytes), std::string(content_type));
}

std::string cookie(const std::string& value, long long max_age_seconds) {
  return std::string(kSessionCookieName) + "=" + value +
         "; Path=/; HttpOnly; SameSite=Strict; Max-Age=" + std::to_string(max_age_seconds);
}

std::string strong_etag(std::string_view bytes) {
  return "\"" + sha256_hex(bytes).substr(0, 32) + "\"";
}

// The page at / and /index.html.
void install_page(httplib::Server& server) {
  std::optional<std::string_view> index = find_dashboard_file("index.html");
  if (!index) return;
  auto page = [bytes = *index, etag = strong_etag(*index)](const httplib::Request& request,
                                                           httplib::Response& response) {
    // The page frames nothing and is framed by nothing.
    response.set_header("X-Frame-Options", "DENY");
    // No inline scripts: text from the network can never run. 'self' lets the page load its
    // script modules from /static/. Plotly compiles its WebGL shaders' glue with new Function
    // (parallel coordinates), hence 'unsafe-eval'.
    response.set_header("Content-Security-Policy",
                        "default-src 'self'; script-src 'self' 'unsafe-eval'; img-src 'self' "
                        "data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'");
    serve_embedded(request, response, bytes, etag, "text/html; charset=utf-8");
  };
  server.Get("/", page);
  server.Get("/index.html", page);
}

// Every compiled-in file but the pages, at /static/<name>: the script modules and the styles.
void install_static_files(httplib::Server& server) {
  for (const DashboardFile& file : dashboard_files()) {
    if (file.name.ends_with(".html")) continue;
    server.Get("/static/" + std::string(file.name),
               [file, etag = strong_etag(file.bytes)](const httplib::Request& request,
                                                      httplib::Response& response) {
                 serve_embedded(request, response, file.bytes, etag, file.content_type);
               });
  }
}

// Plotly's file is large (about 4.6 MB): streamed from disk, its digest taken once.
void install_plotly(httplib::Server& server, ServerContext& context) {
  std::string plotly_sha;
  if (context.plotly_js) {
    if (Result<std::string> sha = sha256_file_hex(*context.plotly_js); sha) plotly_sha = *sha;
  }
  server.Get("/static/plotly.min.js", [&context, plotly_sha](const httplib::Request& request,
                                                             httplib::Response& response) {
    if (!context.plotly_js || plotly_sha.empty()) {
      return send_error(response, 404,
                        "plotly.min.js was not found: `pip install plotly` into gridexp's "
                        "environment, or start the server with --plotly-js FILE");
    }
    response.set_header("Cache-Control", "no-cache");
    serve_file(request, response,
               {*context.plotly_js, plotly_sha, "text/javascript; charset=utf-8", ""});
  });
}

// Log in (the form's password for a session cookie) and log out.
void install_session_routes(httplib::Server& server, ServerContext& context) {
  server.Post("/api/v1/session", [&context](const httplib::Request& request,
                                            httplib::Response& response) {
    Result<nlohmann::json> body = parse_json_object_body(request);
    if (!body) return send_status_error(response, body.status());
    auto password = body->find("password");
    bool right = password != body->end() && password->is_string() &&
                 constant_time_equals(password->get_ref<const std::string&>(), context.password);
    using Attempt = LoginThrottle::Attempt;
    if (TimeMs wait_ms = context.login_throttle.admit(
            request.remote_addr, right ? Attempt::kRightPassword : Attempt::kWrongPassword);
        wait_ms > 0) {
      return send_too_many_wrong_passwords(response, request.remote_addr, wait_ms);
    }
    if (!right) return send_error(response, 401, "wrong password");
    response.status = 204;
    response.set_header("Set-Cookie",
                        cookie(context.sessions.create(), context.sessions.lifetime_ms() / 1000));
    response.set_header("Cache-Control", "no-store");
  });

  server.Delete("/api/v1/session",
                [&context](const httplib::Request& request, httplib::Response& response) {
                  context.sessions.revoke(session_cookie(request));
                  response.status = 204;
                  response.set_header("Set-Cookie", cookie("", 0));
                });
}

}  // namespace

std::string session_cookie(const httplib::Request& request) {
  const std::string prefix = std::string(kSessionCookieName) + "=";
  std::string header = request.get_header_value("Cookie");
  std::size_t at = 0;
  while (at < header.size()) {
    std::size_t end = header.find(';', at);
    if (end == std::string::npos) end = header.size();
    std::size_t start = header.find_first_not_of(' ', at);
    if (start < end && header.compare(start, prefix.size(), prefix) == 0) {
      return header.substr(start + prefix.size(), end - start - prefix.size());
    }
    at = end + 1;
  }
  return "";
}

void install_dashboard_routes(httplib::Server& server, ServerContext& context) {
  install_page(server);
  install_static_files(server);
  install_plotly(server, context);
  install_session_routes(server, context);
}

}  // namespace gridexp
