// The conflicts page's endpoints through the real binary (proxy/control/ui_endpoints.h): the page
// and its files under the control prefix, and GET {prefix}/stats counting a route's writes,
// conflicts and 429s as /metrics does. The page itself runs in a browser in
// tests/browser/conflicts_page_test.py.

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "tests/support/proxy_fixture.h"

namespace {

using harness::ConfigOptions;
using harness::HttpResponse;
using nlohmann::json;

class ConflictsPageTest : public harness::ProxyFixture {};

const std::string kStatsRoutes =
    "\n[[route]]\nname = \"accounts\"\npath = \"/accounts/{id}\"\nupstream = \"legacy\"\n[route.etag]\n"
    "[[route.limit]]\nname = \"tight\"\nrate = \"1/m\"\nburst = 3\n";

TEST_F(ConflictsPageTest, ThePageAndItsFilesAreServedUnderThePrefix) {
  start();
  HttpResponse redirect = send("GET", "/_arbiter/ui");
  EXPECT_EQ(redirect.status, 308);
  EXPECT_EQ(redirect.header("Location").value_or(""), "/_arbiter/ui/");

  HttpResponse page = send("GET", "/_arbiter/ui/");
  ASSERT_EQ(page.status, 200) << page.body;
  EXPECT_EQ(page.header("Content-Type").value_or(""), "text/html; charset=utf-8");
  EXPECT_EQ(page.header("Cache-Control").value_or(""), "no-store");
  EXPECT_NE(page.header("Content-Security-Policy").value_or("").find("script-src 'self'"), std::string::npos);
  EXPECT_NE(page.body.find("<script src=\"app.js\" defer></script>"), std::string::npos) << page.body;

  HttpResponse script = send("GET", "/_arbiter/ui/app.js");
  ASSERT_EQ(script.status, 200);
  EXPECT_EQ(script.header("Content-Type").value_or(""), "text/javascript; charset=utf-8");
  EXPECT_NE(script.body.find("text/event-stream"), std::string::npos);
  EXPECT_EQ(send("GET", "/_arbiter/ui/app.css").header("Content-Type").value_or(""), "text/css; charset=utf-8");
  EXPECT_EQ(send("GET", "/_arbiter/ui/missing.js").status, 404);
  EXPECT_EQ(send("POST", "/_arbiter/ui/", "{}").status, 405);
}

TEST_F(ConflictsPageTest, StatsCountWritesConflictsAndRateLimitsPerRoute) {
  start(ConfigOptions{.routes = kStatsRoutes});
  HttpResponse read = send("GET", "/accounts/1");
  ASSERT_EQ(read.status, 200);
  std::string stale = read.header("ETag").value_or("");
  ASSERT_EQ(send("PUT", "/accounts/1", R"({"balance":1})", {{"If-Match", stale}}).status, 200);
  ASSERT_EQ(send("PUT", "/accounts/1", R"({"balance":2})", {{"If-Match", stale}}).status, 409);
  ASSERT_EQ(send("PUT", "/accounts/1", R"({"balance":3})", {{"If-Match", stale}}).status, 429);  // the 4th of a burst of 3
  ASSERT_EQ(send("PUT", "/items/1", R"({"name":"x"})").status, 200);

  // A worker counts an exchange in the request metrics as it ends, which may be just after the
  // client has its answer: the last write is counted soon, not necessarily at once.
  HttpResponse stats;
  json accounts, items;
  EXPECT_TRUE(harness::eventually([&] {
    stats = send("GET", "/_arbiter/stats");
    if (stats.status != 200) return false;
    json body = json::parse(stats.body);
    for (const json& route : body["routes"]) {
      if (route["route"] == "accounts") accounts = route;
      if (route["route"] == "items") items = route;
    }
    return accounts["writes"] == 3 && items["writes"] == 1;
  })) << stats.body;
  EXPECT_EQ(stats.header("Content-Type").value_or(""), "application/json");
  EXPECT_EQ(accounts, json({{"route", "accounts"},
                            {"writes", 3},
                            {"conflicts", 1},
                            {"merges", 0},
                            {"rate_limited", 1},
                            {"locks_held", 0}}))
      << stats.body;
  EXPECT_EQ(items["writes"], 1) << stats.body;
  EXPECT_EQ(items["conflicts"], 0) << stats.body;
}

}  // namespace
