// The conflicts page's endpoints (proxy/control/ui_endpoints.h): the embedded files with their
// types and security fields, the redirect, the scopes, and the counters per route read from the
// metrics, with a recording responder: no sockets.

#include "proxy/control/ui_endpoints.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <vector>

#include "proxy/config/control_config.h"
#include "proxy/control/ui_assets.h"
#include "proxy/exchange/runtime.h"
#include "tests/proxy/control/local_responder_support.h"

namespace arbiter {
namespace {

using nlohmann::json;
using ::arbiter::testing::RecordingResponder;

struct UiTestServices final : AdminServices {
  std::shared_ptr<const Runtime> current_runtime() const override { return runtime; }
  bool shutting_down() const override { return false; }
  ReloadOutcome reload_configuration() override { return {}; }
  std::shared_ptr<const Runtime> runtime;
};

class UiEndpointsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Config config = parse_config(
        "[upstream.u]\nservers = [\"127.0.0.1:1\"]\n"
        "[[route]]\nname = \"ui-test-orders\"\npath = \"/orders/{id}\"\nupstream = \"u\"\n[route.etag]\n"
        "[[route.limit]]\nname = \"per-client\"\nrate = \"5/s\"\n"
        "[[route]]\nname = \"ui-test-rest\"\npath = \"/*\"\nupstream = \"u\"\n",
        "ui.toml");
    services_.runtime = std::make_shared<const Runtime>(std::move(config), state_);
    add_ui_endpoints(registry_, services_);
  }

  RecordingResponder get(std::string_view path) {
    HeaderList headers;
    RecordingResponder responder;
    registry_.dispatch(LocalRequest{"GET", path, path, {}, headers, {}, "rid", "/_arbiter", {}}, responder);
    EXPECT_EQ(responder.answers, 1) << path;
    return responder;
  }

  RuntimeState state_;
  UiTestServices services_;
  HandlerRegistry registry_{"control"};
};

TEST_F(UiEndpointsTest, ServesTheEmbeddedFilesWithTheirTypesAndAStrictPolicy) {
  const std::pair<std::string_view, std::string_view> files[] = {
      {"/_arbiter/ui/", "index.html"}, {"/_arbiter/ui/app.js", "app.js"}, {"/_arbiter/ui/app.css", "app.css"}};
  const std::string_view types[] = {"text/html; charset=utf-8", "text/javascript; charset=utf-8",
                                    "text/css; charset=utf-8"};
  for (std::size_t i = 0; i < std::size(files); ++i) {
    RecordingResponder answer = get(files[i].first);
    ASSERT_EQ(answer.status, 200) << files[i].first << ": " << answer.body;
    EXPECT_EQ(answer.field("Content-Type"), types[i]);
    ASSERT_TRUE(ui_asset(files[i].second).has_value());
    EXPECT_EQ(answer.body, *ui_asset(files[i].second)) << "the bytes embedded from proxy/control/ui/";
    EXPECT_GT(answer.body.size(), 500u) << files[i].second << " is the real file, not a placeholder";
    std::string policy = answer.field("Content-Security-Policy");
    EXPECT_NE(policy.find("default-src 'none'"), std::string::npos) << policy;
    EXPECT_NE(policy.find("script-src 'self'"), std::string::npos) << policy;
    EXPECT_NE(policy.find("connect-src 'self'"), std::string::npos) << policy;
    EXPECT_EQ(policy.find("unsafe"), std::string::npos) << policy;
    EXPECT_EQ(answer.field("X-Content-Type-Options"), "nosniff");
  }
  EXPECT_FALSE(ui_asset("secret.txt").has_value());
}

// The policy forbids inline script and style: the page must not need them, or a browser would
// show it broken (script blocked) without any server-side error.
TEST_F(UiEndpointsTest, ThePageHasNoInlineScriptOrStyleAndLoadsOnlyItsOwnFiles) {
  std::string page(*ui_asset("index.html"));
  std::regex script_tag(R"(<script([^>]*)>([\s\S]*?)</script>)");
  int scripts = 0;
  for (auto it = std::sregex_iterator(page.begin(), page.end(), script_tag); it != std::sregex_iterator(); ++it) {
    ++scripts;
    EXPECT_NE((*it)[1].str().find("src=\"app.js\""), std::string::npos) << (*it)[0];
    EXPECT_TRUE((*it)[2].str().empty()) << "inline script: " << (*it)[0];
  }
  EXPECT_EQ(scripts, 1);
  EXPECT_EQ(page.find("<style"), std::string::npos);
  EXPECT_EQ(page.find(" style="), std::string::npos);
  EXPECT_FALSE(std::regex_search(page, std::regex(R"(\son[a-z]+=)"))) << "inline event handler";
  EXPECT_FALSE(std::regex_search(page, std::regex(R"((src|href)="(https?:)?//)"))) << "a file from elsewhere";
  EXPECT_NE(page.find("href=\"app.css\""), std::string::npos);
}

TEST_F(UiEndpointsTest, WithoutItsSlashRedirectsAndAnUnknownFileIsNotFound) {
  RecordingResponder redirect = get("/_arbiter/ui");
  EXPECT_EQ(redirect.status, 308);
  EXPECT_EQ(redirect.field("Location"), "/_arbiter/ui/");

  for (std::string_view path : {"/_arbiter/ui/secret.txt", "/_arbiter/ui/app.js/x", "/_arbiter/ui/index.html"}) {
    RecordingResponder missing = get(path);
    EXPECT_EQ(missing.status, 404) << path;
    EXPECT_EQ(missing.problem()["type"], "urn:arbiter:problem:not-found") << path;
  }
}

// The page's files open without a token (a navigation cannot carry one, and the page asks for
// it); the counters need the feed's scope, as the feed does.
TEST_F(UiEndpointsTest, TheCountersNeedTheFeedScopeAndThePageNone) {
  int checked = 0;
  for (const HandlerRegistry::Entry& entry : registry_.entries()) {
    if (entry.path == "/stats") {
      EXPECT_EQ(entry.scope, kScopeFeed);
      ++checked;
    } else {
      EXPECT_TRUE(entry.path.starts_with("/ui")) << entry.path;
      EXPECT_EQ(entry.scope, kScopePublic) << entry.path;
      ++checked;
    }
  }
  EXPECT_EQ(checked, 3);
}

TEST_F(UiEndpointsTest, StatsListEveryRouteOfTheRuntimeInOrder) {
  RecordingResponder stats = get("/_arbiter/stats");
  ASSERT_EQ(stats.status, 200) << stats.body;
  EXPECT_EQ(stats.field("Content-Type"), "application/json");
  json expected_route = {{"route", "ui-test-orders"}, {"writes", 0},       {"conflicts", 0},
                         {"merges", 0},               {"rate_limited", 0}, {"locks_held", 0}};
  json body = stats.body_json();
  ASSERT_EQ(body["routes"].size(), 2u) << stats.body;
  EXPECT_EQ(body["routes"][0], expected_route);
  EXPECT_EQ(body["routes"][1]["route"], "ui-test-rest");
  EXPECT_EQ(stats.body.find(R"({"routes":[{"route":"ui-test-orders","writes":0,)"), 0u)
      << "members in the documented order: " << stats.body;
}

MetricFamily family_of(std::string name, std::vector<std::pair<std::vector<MetricLabel>, double>> samples) {
  MetricFamily family{std::move(name), "help", MetricType::Counter, {}};
  for (auto& [labels, value] : samples) family.add(std::move(labels), value);
  return family;
}

TEST(RouteStatsTest, ReadsEachCounterFromItsMetricAndNothingElse) {
  MetricsSnapshot requests;
  RouteMetrics& orders = requests.routes["orders"];
  auto count = [&](MethodLabel method, int status, std::uint64_t n) {
    orders.requests[static_cast<std::size_t>(method)][status_class(status)] += n;
  };
  count(MethodLabel::Put, 200, 3);
  count(MethodLabel::Put, 409, 2);
  count(MethodLabel::Patch, 200, 1);
  count(MethodLabel::Delete, 500, 1);
  count(MethodLabel::Post, 429, 4);
  count(MethodLabel::Get, 200, 10);      // reads are not writes
  count(MethodLabel::Other, 200, 6);     // LOCK, UNLOCK, ...
  requests.routes["reads-only"].requests[0][1] = 5;

  std::vector<MetricFamily> families = {
      family_of("arbiter_etag_decisions_total",
                {{{{"route", "orders"}, {"decision", "conflict"}}, 2},
                 {{{"route", "orders"}, {"decision", "merge_conflict"}}, 1},
                 {{{"route", "orders"}, {"decision", "merged"}}, 4},
                 {{{"route", "orders"}, {"decision", "write_forwarded"}}, 9},
                 {{{"route", "gone"}, {"decision", "conflict"}}, 50}}),
      family_of("arbiter_rate_limit_decisions_total",
                {{{{"route", "orders"}, {"limit", "per-client"}, {"decision", "limited"}}, 3},
                 {{{"route", "orders"}, {"limit", "per-client"}, {"decision", "admitted"}}, 100},
                 {{{"route", "orders"}, {"limit", "global"}, {"decision", "limited"}}, 1}}),
      family_of("arbiter_rate_limit_overflow_total", {{{{"route", "orders"}, {"limit", "per-client"}}, 7}}),
      family_of("arbiter_locks_held", {{{{"route", "orders"}}, 2}, {{{"route", "reads-only"}}, 0}}),
      family_of("arbiter_lock_events_total", {{{{"route", "orders"}, {"event", "granted"}}, 8}}),
  };

  std::vector<RouteStats> stats = route_stats({"reads-only", "orders", "new"}, requests, families);
  ASSERT_EQ(stats.size(), 3u);
  EXPECT_EQ(stats[0].route, "reads-only");
  EXPECT_EQ(stats[0].writes, 0u);
  EXPECT_EQ(stats[0].locks_held, 0u);
  const RouteStats& o = stats[1];
  EXPECT_EQ(o.route, "orders");
  EXPECT_EQ(o.writes, 11u);       // 3 + 2 + 1 + 1 + 4: every write answered, whatever its status
  EXPECT_EQ(o.conflicts, 3u);     // conflict + merge_conflict
  EXPECT_EQ(o.merges, 4u);
  EXPECT_EQ(o.rate_limited, 4u);  // limited, summed over the limits
  EXPECT_EQ(o.locks_held, 2u);
  EXPECT_EQ(stats[2].route, "new");  // a route nothing has counted yet
  EXPECT_EQ(stats[2].writes + stats[2].conflicts + stats[2].merges + stats[2].rate_limited, 0u);

  json body = json::parse(route_stats_json(stats));
  EXPECT_EQ(body["routes"][1], json({{"route", "orders"},
                                     {"writes", 11},
                                     {"conflicts", 3},
                                     {"merges", 4},
                                     {"rate_limited", 4},
                                     {"locks_held", 2}}));
}

}  // namespace
}  // namespace arbiter
