// Live policy edits: SIGHUP and POST /reload re-read the configuration; state survives for what
// did not change, a broken file changes nothing.

#include <gtest/gtest.h>

#include <csignal>
#include <nlohmann/json.hpp>
#include <regex>
#include <thread>

#include "tests/support/proxy_fixture.h"

namespace {

using harness::ConfigOptions;
using harness::HttpClient;
using harness::HttpResponse;
using harness::make_config;
using nlohmann::json;
using namespace std::chrono_literals;

std::string limited_route(int burst) {
  return "\n[[route]]\nname = \"accounts\"\npath = \"/accounts/{id}\"\nupstream = \"legacy\"\n"
         "[[route.limit]]\nname = \"per-key\"\nrate = \"1/m\"\nburst = " +
         std::to_string(burst) + "\nkey = \"header:X-Api-Key\"\n";
}

class ReloadTest : public harness::ProxyFixture {
 protected:
  ConfigOptions with_limit(int burst, std::string extra_routes = {}) {
    return ConfigOptions{.routes = limited_route(burst) + extra_routes};
  }
  int get_status(std::string_view key) { return send("GET", "/accounts/1", {}, {{"X-Api-Key", std::string(key)}}).status; }

  // Rewrites the config file and sends SIGHUP; waits for the outcome in the log.
  void reload_with(const std::string& config_text, const char* expected_log) {
    harness::LinePosition before = arbiter_->process().position();
    arbiter_->config_file().replace(config_text);
    ASSERT_TRUE(arbiter_->process().signal(SIGHUP));
    auto line = arbiter_->process().wait_for_line(std::regex(expected_log), 5s, before);
    ASSERT_TRUE(line) << arbiter_->process().output_summary();
  }

  // Sends `request` (to /_test/hang) on a client of its own, kept open for the rest of the test,
  // and waits until the backend has one /_test/hang request per such client since the test's
  // clear_backend_log() (progress, not a clock: bounded polling of the backend's log).
  void hold(const std::string& request) {
    holders_.push_back(std::make_unique<HttpClient>(arbiter_->port()));
    ASSERT_TRUE(holders_.back()->send_raw(request));
    harness::eventually([&] { return hangs_arrived() >= holders_.size(); });
    ASSERT_EQ(hangs_arrived(), holders_.size()) << request << " never reached the backend";
  }
  std::size_t hangs_arrived() {
    std::size_t count = 0;
    for (const auto& entry : backend_log()) count += entry["target"] == "/_test/hang";
    return count;
  }
  std::vector<std::unique_ptr<HttpClient>> holders_;
};

TEST_F(ReloadTest, SpentTokensStaySpentAcrossAReload) {
  start(with_limit(2));
  EXPECT_EQ(get_status("alpha"), 200);
  EXPECT_EQ(get_status("alpha"), 200);
  EXPECT_EQ(get_status("alpha"), 429);
  reload_with(make_config(backend_.port(), with_limit(2)) + "# an edit elsewhere\n", "arbiter: reloaded ");
  EXPECT_EQ(get_status("alpha"), 429) << "a reload must never be a way around a limit";
}

TEST_F(ReloadTest, AChangedBurstAppliesToTheExistingBuckets) {
  start(with_limit(2));
  EXPECT_EQ(get_status("alpha"), 200);
  EXPECT_EQ(get_status("alpha"), 200);
  reload_with(make_config(backend_.port(), with_limit(4)), "arbiter: reloaded ");
  EXPECT_EQ(get_status("alpha"), 429);  // its bucket kept its level: empty
  for (int i = 0; i < 4; ++i) EXPECT_EQ(get_status("beta"), 200) << "request " << i;  // new capacity
  EXPECT_EQ(get_status("beta"), 429);
}

TEST_F(ReloadTest, ABrokenConfigIsRefusedAndTheOldPoliciesKeepAnswering) {
  start(with_limit(1));
  EXPECT_EQ(get_status("alpha"), 200);
  std::string broken = make_config(backend_.port(), with_limit(1));
  broken.replace(broken.find("burst = 1"), 9, "burst = \"many\"");
  reload_with(broken, "arbiter: reload refused: .*:[0-9]+:[0-9]+: route\\[[0-9]+\\]\\.limit\\[0\\]\\.burst");
  EXPECT_EQ(get_status("alpha"), 429);
  EXPECT_EQ(get_status("beta"), 200);
  EXPECT_EQ(send("GET", "/items/1").status, 200);
}

TEST_F(ReloadTest, AdminReloadAnswersTheErrorsAsProblemJson) {
  start(with_limit(1));
  std::string broken = make_config(backend_.port(), with_limit(1));
  broken.replace(broken.find("rate = \"1/m\""), 12, "rate = \"often\"");
  arbiter_->config_file().replace(broken);
  HttpClient admin(*arbiter_->admin_port());
  auto refused = admin.request("POST", "/reload");
  ASSERT_TRUE(refused) << admin.last_error();
  EXPECT_EQ(refused->status, 422);
  EXPECT_EQ(refused->header("Content-Type").value_or(""), "application/problem+json");
  json problem = json::parse(refused->body);
  ASSERT_EQ(problem["errors"].size(), 1u);
  EXPECT_NE(problem["errors"][0]["key"].get<std::string>().find("rate"), std::string::npos);
  EXPECT_GT(problem["errors"][0]["line"].get<int>(), 0);

  arbiter_->config_file().replace(make_config(backend_.port(), with_limit(1)));
  auto applied = admin.request("POST", "/reload");
  ASSERT_TRUE(applied) << admin.last_error();
  EXPECT_EQ(applied->status, 200);
  EXPECT_EQ(json::parse(applied->body)["status"], "reloaded");
}

// A route for /_test/hang, which the backend never answers: a request there holds whatever its
// policies gave it (a slot, a write turn) until its client goes. `policy` is the route's table.
std::string hanging_route(const std::string& policy) {
  return "\n[[route]]\nname = \"hang\"\npath = \"/_test/hang\"\nupstream = \"legacy\"\n" + policy;
}

// Issue #12 item 18: a reload applies a changed concurrency max_keys to the slot table (and
// the 503 names the new bound).
std::string hanging_route_with_max_keys(int max_keys) {
  return hanging_route("[route.concurrency]\nmax_in_flight = 1\nmax_queue = 0\nkey = \"header:X-Key\"\nmax_keys = " +
                       std::to_string(max_keys) + "\n");
}

// Issue #12 item 17: a write holding its resource's turn keeps it across a reload that replaces
// the ETag table (a larger max_entries). max_queue = 0 turns "the turn is taken" into an
// immediate 503 instead of a wait.
std::string hanging_etag_route(int max_entries) {
  return hanging_route("[route.etag]\nverify = \"cache\"\nmax_queue = 0\nmax_entries = " +
                       std::to_string(max_entries) + "\n");
}

TEST_F(ReloadTest, AChangedConcurrencyMaxKeysApplies) {
  start(ConfigOptions{.leading_routes = hanging_route_with_max_keys(1)});
  auto hold_key = [&](const std::string& key) {
    hold("GET /_test/hang HTTP/1.1\r\nHost: t\r\nX-Key: " + key + "\r\n\r\n");
  };
  auto refusal_detail = [&](const std::string& key) {
    HttpResponse refused = send("GET", "/_test/hang", {}, {{"X-Key", key}});
    EXPECT_EQ(refused.status, 503) << refused.body;
    return json::parse(refused.body)["detail"].get<std::string>();
  };
  clear_backend_log();
  hold_key("a");
  EXPECT_NE(refusal_detail("b").find("for 1 other clients already (max_keys)"), std::string::npos);
  reload_with(make_config(backend_.port(), ConfigOptions{.leading_routes = hanging_route_with_max_keys(2)}),
              "arbiter: reloaded ");
  hold_key("b");  // room for a second key now, beside the slot held since before the reload
  EXPECT_NE(refusal_detail("c").find("for 2 other clients already (max_keys)"), std::string::npos);
}

TEST_F(ReloadTest, AWriteHoldingItsTurnKeepsItAcrossAReloadThatReplacesTheEtagTable) {
  start(ConfigOptions{.leading_routes = hanging_etag_route(100)});
  clear_backend_log();
  hold("PUT /_test/hang HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}");
  reload_with(make_config(backend_.port(), ConfigOptions{.leading_routes = hanging_etag_route(2000000)}),
              "arbiter: reloaded ");
  HttpResponse busy = send("PUT", "/_test/hang", "{}");
  EXPECT_EQ(busy.status, 503) << busy.body;
  EXPECT_EQ(hangs_arrived(), 1u) << "a write under the new configuration passed the turn held under the old one";
}

TEST_F(ReloadTest, ANewRouteServesAtOnceAndARemovedOneStops) {
  start(with_limit(5));
  EXPECT_EQ(send("GET", "/things/1").status, 404);
  std::string things = "\n[[route]]\nname = \"things\"\npath = \"/things/{id}\"\nupstream = \"legacy\"\n";
  reload_with(make_config(backend_.port(), ConfigOptions{.routes = things}), "arbiter: reloaded ");
  EXPECT_EQ(send("GET", "/things/1").status, 404 /* the backend's own: no such document */);
  EXPECT_EQ(send("GET", "/things/1").header("Content-Type").value_or(""), "application/json");
  EXPECT_EQ(send("GET", "/accounts/1").status, 404);
  EXPECT_EQ(send("GET", "/accounts/1").header("Content-Type").value_or(""), "application/problem+json");
}

TEST_F(ReloadTest, ARequestInFlightFinishesUnderThePoliciesItStartedWith) {
  start(with_limit(5));
  clear_backend_log();
  // Held at the backend across the reload: the reload starts once the backend has the
  // request (not after a fixed pause), and the delay outlasts a slow reload.
  HttpClient slow(arbiter_->port(), 30s);
  ASSERT_TRUE(slow.send_raw(harness::format_request("GET", "/_test/delay?ms=3000", arbiter_->port())));
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (backend_log().empty() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_FALSE(backend_log().empty()) << "the slow request never reached the backend";
  // The new configuration has no route for it at all.
  std::string without_hooks = make_config(backend_.port(), with_limit(5));
  without_hooks.replace(without_hooks.find("path = \"/_test/*\""), 17, "path = \"/_gone/*\"");
  reload_with(without_hooks, "arbiter: reloaded ");
  auto response = slow.read_response();
  ASSERT_TRUE(response) << slow.last_error();
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(send("GET", "/_test/delay?ms=1").status, 404);
}

TEST_F(ReloadTest, ListenerChangesAreReportedAsNeedingARestart) {
  start(with_limit(5));
  std::string moved = make_config(backend_.port(), with_limit(5));
  moved.replace(moved.find("workers = 2"), 11, "workers = 3");
  reload_with(moved, "arbiter: reload: server.workers \\(2 -> 3\\) needs a restart");
  EXPECT_EQ(send("GET", "/items/1").status, 200);
}

}  // namespace
