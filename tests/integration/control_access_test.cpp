// Who may use the control endpoints ([control] allow and tokens, issue #16) through the real
// binary: loopback reaches them by default, an address outside `allow` gets 403, and with tokens
// a missing or wrong token gets 401 with a Bearer challenge, a token without the endpoint's scope
// 403, the right one the endpoint's answer, for /_arbiter/history and /_arbiter/locks. The token
// appears in neither the access log nor /config; `arbiter hash-token` prints the line to paste.

#include <gtest/gtest.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>

#include "tests/support/proxy_fixture.h"

namespace control_access_it {

using harness::ConfigOptions;
using harness::HeaderPairs;
using harness::HttpClient;
using harness::HttpResponse;
using nlohmann::json;
using namespace std::chrono_literals;

// Tokens of the tests and their SHA-256 (`arbiter hash-token TOKEN`).
constexpr std::string_view kOpsToken = "ops-token-4f1c9a";
constexpr std::string_view kReaderToken = "reader-token-77d2";

// Route "documents" with ETags, history and locks, so that both endpoints have something to show.
const std::string kDocumentsRoute =
    "\n[[route]]\nname = \"documents\"\npath = \"/documents/{id}\"\n"
    "methods = [\"GET\", \"PUT\"]\nupstream = \"legacy\"\n[route.etag]\n[route.history]\n[route.lock]\n";

std::string sha256_line(std::string_view token) {
  auto result = harness::run_arbiter({"hash-token", std::string(token)});
  EXPECT_EQ(result.exit_code, std::optional<int>(0)) << result.stderr_text;
  std::string line = result.stdout_text;
  while (!line.empty() && line.back() == '\n') line.pop_back();
  return line;
}

std::string tokens_table() {
  std::string ops = sha256_line(kOpsToken), reader = sha256_line(kReaderToken);
  return "\n[control]\ntokens = [{ name = \"ops\", " + ops + ", scopes = [\"history\", \"locks\"] },\n"
         "          { name = \"reader\", " + reader + ", scopes = [\"feed\"] }]\n";
}

class ControlAccessIt : public harness::ProxyFixture {
 protected:
  // The backend holds /documents/1; arbiter runs with `control` (a [control] table, or "").
  void start_with(const std::string& control) {
    HttpResponse created = send_to_backend("PUT", "/documents/1", json{{"id", "1"}, {"name", "seed"}}.dump());
    ASSERT_TRUE(created.status == 200 || created.status == 201) << created.status << " " << created.body;
    start(ConfigOptions{.leading_routes = kDocumentsRoute, .routes = control});
  }
  HttpResponse get(std::string_view target, HeaderPairs headers = {}) { return send("GET", target, {}, headers); }
  static HeaderPairs bearer(std::string_view token) { return {{"Authorization", "Bearer " + std::string(token)}}; }
  // A version in the history and a lock held, by `headers`' holder (the routes need no token).
  void write_and_lock() {
    HttpResponse put = send("PUT", "/documents/1", json{{"id", "1"}, {"name", "two"}}.dump(),
                            {{"Content-Type", "application/json"}});
    ASSERT_TRUE(put.status == 200 || put.status == 204) << put.status << " " << put.body;
    HttpResponse locked = send("LOCK", "/documents/1", json{{"owner", "it"}}.dump(), {{"Content-Type", "application/json"}});
    ASSERT_EQ(locked.status, 200) << locked.body;
  }
};

TEST_F(ControlAccessIt, WithoutTokensLoopbackReachesTheEndpoints) {
  start_with("");
  write_and_lock();
  EXPECT_EQ(get("/_arbiter/").status, 200);
  HttpResponse history = get("/_arbiter/history?resource=/documents/1");
  EXPECT_EQ(history.status, 200) << history.body;
  HttpResponse locks = get("/_arbiter/locks?resource=/documents/1");
  EXPECT_EQ(locks.status, 200) << locks.body;
}

TEST_F(ControlAccessIt, WithoutTokensAnAddressOutsideAllowIs403) {
  start_with("\n[control]\nallow = [\"10.0.0.0/8\"]\n");
  for (std::string_view target : {"/_arbiter/", "/_arbiter/history?resource=/documents/1",
                                  "/_arbiter/locks?resource=/documents/1", "/_arbiter/nothing"}) {
    HttpResponse refused = get(target);
    EXPECT_EQ(refused.status, 403) << target << " " << refused.body;
    EXPECT_EQ(refused.header("Content-Type").value_or(""), "application/problem+json");
    EXPECT_NE(refused.body.find("address-not-allowed"), std::string::npos) << refused.body;
    EXPECT_FALSE(refused.header("WWW-Authenticate")) << target;
  }
  EXPECT_EQ(get("/documents/1").status, 200);  // the routes are not concerned
}

TEST_F(ControlAccessIt, WithTokensEachEndpointNeedsATokenWithItsScope) {
  start_with(tokens_table());
  write_and_lock();
  for (std::string_view target : {"/_arbiter/history?resource=/documents/1", "/_arbiter/locks?resource=/documents/1"}) {
    HttpResponse missing = get(target);
    EXPECT_EQ(missing.status, 401) << target << " " << missing.body;
    EXPECT_EQ(missing.header("WWW-Authenticate").value_or(""), "Bearer realm=\"arbiter\"") << target;
    EXPECT_EQ(missing.header("Content-Type").value_or(""), "application/problem+json");

    HttpResponse wrong = get(target, bearer("ops-token-4f1c9b"));
    EXPECT_EQ(wrong.status, 401) << target << " " << wrong.body;
    EXPECT_EQ(wrong.header("WWW-Authenticate").value_or(""), "Bearer realm=\"arbiter\", error=\"invalid_token\"");

    HttpResponse unscoped = get(target, bearer(kReaderToken));
    EXPECT_EQ(unscoped.status, 403) << target << " " << unscoped.body;
    std::string scope = target.find("history") != std::string_view::npos ? "history" : "locks";
    EXPECT_EQ(unscoped.header("WWW-Authenticate").value_or(""),
              "Bearer realm=\"arbiter\", error=\"insufficient_scope\", scope=\"" + scope + "\"");
    EXPECT_EQ(json::parse(unscoped.body)["scope"], scope);

    HttpResponse granted = get(target, bearer(kOpsToken));
    EXPECT_EQ(granted.status, 200) << target << " " << granted.body;
  }
  // The index needs a token of any scope; restore needs "resolve", which no token here has.
  EXPECT_EQ(get("/_arbiter/").status, 401);
  EXPECT_EQ(get("/_arbiter/", bearer(kReaderToken)).status, 200);
  EXPECT_EQ(send("POST", "/_arbiter/history/restore?resource=/documents/1&version=1", {}, bearer(kOpsToken)).status, 403);
}

TEST_F(ControlAccessIt, TheTokenIsNeitherInTheAccessLogNorInConfig) {
  start_with(tokens_table());
  HeaderPairs headers = bearer(kOpsToken);
  headers.emplace_back("X-Request-Id", "control-access-log-1");
  EXPECT_EQ(get("/_arbiter/locks?resource=/documents/1", headers).status, 404);  // not locked: the handler's answer
  auto line = arbiter_->process().wait_for_line(std::regex("control-access-log-1"), 5s);
  ASSERT_TRUE(line);
  EXPECT_EQ(line->line.find(kOpsToken), std::string::npos) << line->line;
  EXPECT_EQ(line->line.find("Bearer"), std::string::npos) << line->line;

  HttpClient admin(*arbiter_->admin_port());
  HttpResponse config = harness::require(admin.request("GET", "/config"), admin);
  ASSERT_EQ(config.status, 200);
  EXPECT_EQ(config.body.find(kOpsToken), std::string::npos);
  std::string ops_hash = sha256_line(kOpsToken).substr(10, 64);
  EXPECT_EQ(config.body.find(ops_hash), std::string::npos) << config.body;
  EXPECT_EQ(json::parse(config.body)["control"]["tokens"][0],
            (json{{"name", "ops"}, {"scopes", {"history", "locks"}}}));
}

TEST_F(ControlAccessIt, AReloadAppliesTheTokensAndTakesThemAway) {
  start_with("");
  EXPECT_EQ(get("/_arbiter/").status, 200);
  auto reload = [&](const std::string& control) {
    arbiter_->config_file().replace(
        harness::make_config(backend_.port(), ConfigOptions{.leading_routes = kDocumentsRoute, .routes = control}));
    HttpClient admin(*arbiter_->admin_port());
    HttpResponse applied = harness::require(admin.request("POST", "/reload"), admin);
    ASSERT_EQ(applied.status, 200) << applied.body;
  };
  reload(tokens_table());
  EXPECT_EQ(get("/_arbiter/").status, 401);
  EXPECT_EQ(get("/_arbiter/", bearer(kOpsToken)).status, 200);
  reload("\n[control]\nallow = [\"10.0.0.0/8\"]\n");
  EXPECT_EQ(get("/_arbiter/", bearer(kOpsToken)).status, 403);
  reload("");
  EXPECT_EQ(get("/_arbiter/").status, 200);
}

TEST(ControlAccessCli, ExplainOfAControlPathSaysTheModeAndNotTheToken) {
  auto file = harness::write_temp_file(harness::make_config(9, ConfigOptions{.routes = tokens_table()}), ".toml");
  auto explained = harness::run_arbiter(
      {"explain", "-c", file.path(), "GET", "/_arbiter/locks", "-H", "Authorization: Bearer " + std::string(kOpsToken)});
  EXPECT_EQ(explained.exit_code, std::optional<int>(0)) << explained.stderr_text;
  EXPECT_NE(explained.stdout_text.find("control access: bearer tokens (ops, reader)"), std::string::npos)
      << explained.stdout_text;
  EXPECT_EQ(explained.stdout_text.find(kOpsToken), std::string::npos) << explained.stdout_text;
}

TEST(ControlAccessCli, HashTokenPrintsTheSha256LineFromTheArgumentOrStdin) {
  // SHA-256("abc"), FIPS 180-2 appendix B.1.
  const std::string abc = "sha256 = \"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\"";
  EXPECT_EQ(sha256_line("abc"), abc);
  std::string command = "printf 'abc\\n' | " + harness::arbiter_binary() + " hash-token";
  std::FILE* pipe = popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  char buffer[256] = {};
  std::string out;
  while (std::fgets(buffer, sizeof buffer, pipe) != nullptr) out += buffer;
  EXPECT_EQ(pclose(pipe), 0);
  EXPECT_EQ(out, abc + "\n");

  auto fresh = harness::run_arbiter({"hash-token", "--new"});
  ASSERT_EQ(fresh.exit_code, std::optional<int>(0)) << fresh.stderr_text;
  std::smatch parts;
  ASSERT_TRUE(std::regex_match(fresh.stdout_text, parts, std::regex("(arb_[0-9a-f]{64})\n(sha256 = \"[0-9a-f]{64}\")\n")))
      << fresh.stdout_text;
  EXPECT_EQ(sha256_line(parts[1].str()), parts[2].str());

  auto checked_with_tokens = harness::write_temp_file(harness::make_config(9, ConfigOptions{.routes = tokens_table()}), ".toml");
  auto check = harness::run_arbiter({"--check", "-c", checked_with_tokens.path()});
  EXPECT_EQ(check.exit_code, std::optional<int>(0)) << check.stderr_text;
  EXPECT_NE(check.stdout_text.find("control access: bearer tokens (ops, reader)"), std::string::npos) << check.stdout_text;
}

}  // namespace control_access_it

namespace control_access_it {

// Arbiter's token never reaches the backend: a restore handed on with tokens configured carries
// the caller's Arbiter-Upstream-Authorization as its Authorization instead.
TEST_F(ControlAccessIt, AHandedOnWriteCarriesTheUpstreamCredentialsNotTheToken) {
  std::string ops = sha256_line(kOpsToken);
  start_with("\n[control]\ntokens = [{ name = \"ops\", " + ops + ", scopes = [\"history\", \"resolve\"] }]\n");
  HttpResponse first = send("GET", "/documents/1");
  ASSERT_EQ(first.status, 200) << first.body;
  HttpResponse put = send("PUT", "/documents/1", json{{"id", "1"}, {"name", "two"}}.dump(),
                          {{"Content-Type", "application/json"}, {"If-Match", first.header("ETag").value_or("")}});
  ASSERT_TRUE(put.status == 200 || put.status == 204) << put.status << " " << put.body;
  clear_backend_log();
  HeaderPairs headers = bearer(kOpsToken);
  headers.emplace_back("If-Match", put.header("ETag").value_or(""));
  headers.emplace_back("Arbiter-Upstream-Authorization", "Basic YWxpY2U6c2VjcmV0");
  HttpResponse restored = send("POST", "/_arbiter/history/restore?resource=/documents/1&version=1", {}, headers);
  ASSERT_TRUE(restored.status == 200 || restored.status == 204) << restored.status << " " << restored.body;
  json log = backend_log();
  bool saw_put = false;
  for (const json& request : log) {
    if (request["method"] != "PUT") continue;
    saw_put = true;
    std::vector<std::string> authorization;
    for (const json& field : request["headers"]) {
      std::string name = field[0];
      EXPECT_EQ(field[1].get<std::string>().find(kOpsToken), std::string::npos) << log.dump();
      EXPECT_NE(name, "Arbiter-Upstream-Authorization");
      if (name == "Authorization" || name == "authorization") authorization.push_back(field[1]);
    }
    EXPECT_EQ(authorization, std::vector<std::string>{"Basic YWxpY2U6c2VjcmV0"}) << log.dump();
  }
  EXPECT_TRUE(saw_put) << log.dump();
}

}  // namespace control_access_it
