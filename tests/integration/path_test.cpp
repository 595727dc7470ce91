// Issue #12 items 1-3 through the real binary: every spelling of a path meets one route and one
// resource (normalised once, before routing), and routes over one resource share its state.

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tests/support/proxy_fixture.h"

namespace {

using harness::ConfigOptions;
using harness::HttpResponse;
using nlohmann::json;

// /static/* behind a spent global limit, and a catch-all after it that an alias used to reach.
const std::string kStaticThenCatchAll =
    "\n[[route]]\nname = \"static\"\npath = \"/static/*\"\nupstream = \"legacy\"\n"
    "[[route.limit]]\nname = \"static-hourly\"\nrate = \"1/h\"\nburst = 1\nkey = \"global\"\n"
    "\n[[route]]\nname = \"everything\"\npath = \"/*\"\nupstream = \"legacy\"\n";

class PathTest : public harness::ProxyFixture {
 protected:
  // The targets the backend received since the last clear_backend_log().
  std::vector<std::string> backend_targets() {
    std::vector<std::string> targets;
    for (const auto& entry : backend_log()) targets.push_back(entry["target"]);
    return targets;
  }
  std::string etag_of(std::string_view target) {
    HttpResponse response = send("GET", target);
    EXPECT_EQ(response.status, 200) << target;
    return response.header("ETag").value_or("");
  }
  struct StaleWrite {
    std::string old_tag, new_tag;
    HttpResponse stale;
  };
  // PUT `create` (a new resource), read its tag through `read`, write with it as
  // `write_method write`, then PUT `stale` with the same, now stale, tag (the backend log is
  // cleared just before that last one).
  StaleWrite stale_write(std::string_view create, std::string_view read, std::string_view write_method,
                         std::string_view write, std::string_view stale) {
    StaleWrite out;
    int created = send("PUT", create, R"({"n":0})").status;
    EXPECT_TRUE(created == 200 || created == 201) << create << ": " << created;  // replaced or created
    out.old_tag = etag_of(read);
    HttpResponse written = send(write_method, write, R"({"n":1})", {{"If-Match", out.old_tag}});
    EXPECT_EQ(written.status, 200) << write_method << " " << write << ": " << written.body;
    out.new_tag = written.header("ETag").value_or("");
    clear_backend_log();
    out.stale = send("PUT", stale, R"({"n":2})", {{"If-Match", out.old_tag}});
    return out;
  }
};

TEST_F(PathTest, EveryAliasOfAPathMeetsItsRoutesLimit) {
  start(ConfigOptions{.routes = kStaticThenCatchAll});
  EXPECT_NE(send("GET", "/static/a").status, 429);  // spends the hour's one token
  clear_backend_log();
  for (const char* alias : {"/static/a", "/%73tatic/a", "/x/../static/a", "//static/a", "/./static/a",
                            "/x/%2e%2e/static/a", "/%53tatic/../static/a"}) {
    HttpResponse refused = send("GET", alias);
    EXPECT_EQ(refused.status, 429) << alias;
    EXPECT_EQ(refused.header("Content-Type").value_or(""), "application/problem+json") << alias;
    EXPECT_NE(refused.header("RateLimit-Policy").value_or("").find("static-hourly"), std::string::npos) << alias;
  }
  EXPECT_TRUE(backend_targets().empty()) << backend_log().dump();
}

TEST_F(PathTest, APathThatCannotBeNormalisedIs400AndNeverForwarded) {
  start(ConfigOptions{.routes = kStaticThenCatchAll});
  clear_backend_log();
  for (const char* bad : {"/..", "/static/../../etc/passwd", "/%2e%2e/x", "/static/a%00b", "/static/a%zz", "/a%4"}) {
    HttpResponse refused = send("GET", bad);
    EXPECT_EQ(refused.status, 400) << bad;
    EXPECT_EQ(refused.header("Content-Type").value_or(""), "application/problem+json") << bad;
    json problem = json::parse(refused.body);
    EXPECT_EQ(problem["type"], "urn:arbiter:problem:malformed-path") << bad;
    EXPECT_FALSE(problem["detail"].get<std::string>().empty()) << bad;
  }
  EXPECT_TRUE(backend_targets().empty()) << backend_log().dump();
}

TEST_F(PathTest, TheUpstreamGetsTheNormalisedPathAndTheQueryAsSent) {
  start(ConfigOptions{.routes = kStaticThenCatchAll});
  HttpResponse echo = send("GET", "//_test/./%65cho/../echo?q=%61%2f&p=/../x");
  ASSERT_EQ(echo.status, 200) << echo.body;
  EXPECT_EQ(json::parse(echo.body)["target"], "/_test/echo?q=%61%2f&p=/../x");
  clear_backend_log();
  send("GET", "/static/caf%c3%a9/a%2fb/");
  EXPECT_EQ(backend_targets(), std::vector<std::string>{"/static/caf%C3%A9/a%2Fb/"});
}

TEST_F(PathTest, ForwardRawPathSendsTheTargetAsReceivedButRoutesTheNormalisedPath) {
  start(ConfigOptions{.server = "forward_raw_path = true", .routes = kStaticThenCatchAll});
  clear_backend_log();
  EXPECT_NE(send("GET", "/x/../%73tatic/a?b=1").status, 429);
  EXPECT_EQ(backend_targets(), std::vector<std::string>{"/x/../%73tatic/a?b=1"});
  EXPECT_EQ(send("GET", "/static/a").status, 429);  // the alias spent the static route's token
}

TEST_F(PathTest, CaseInsensitivePathsRouteAndKeyEveryCaseAsOne) {
  std::string routes =
      "\n[[route]]\nname = \"accounts\"\npath = \"/Accounts/{id}\"\nupstream = \"legacy\"\n"
      "[route.etag]\nverify = \"cache\"\n";
  start(ConfigOptions{.server = "case_insensitive_paths = true", .routes = routes});
  // legacy-api itself is case-sensitive: the writes that reach it use its spelling.
  StaleWrite write = stale_write("/accounts/1", "/accounts/1", "PUT", "/accounts/1", "/ACCOUNTS/1");
  EXPECT_EQ(write.stale.status, 409) << write.stale.body;
  EXPECT_EQ(json::parse(write.stale.body)["resource"], "/accounts/1");
  EXPECT_TRUE(backend_targets().empty()) << backend_log().dump();
  // Forwarded with the client's case (a case-insensitive backend takes it as the same).
  send("GET", "/aCCounts/1");
  EXPECT_EQ(backend_targets(), std::vector<std::string>{"/aCCounts/1"});
}

// Item 2: one resource, one identity, whatever the spelling of its {param}.
TEST_F(PathTest, AStaleIfMatchThroughAnotherSpellingIs409) {
  std::string routes = "\n[[route]]\nname = \"counters\"\npath = \"/counters/{id}\"\nupstream = \"legacy\"\n"
                       "[route.etag]\nresource = \"counter:{id}\"\n"
                       "\n[[route]]\nname = \"accounts\"\npath = \"/accounts/{id}\"\nupstream = \"legacy\"\n"
                       "[route.etag]\nverify = \"cache\"\n";
  start(ConfigOptions{.routes = routes});
  StaleWrite counter = stale_write("/counters/1", "/counters/1", "PUT", "/counters/%31", "/counters/1");
  EXPECT_EQ(counter.stale.status, 409) << counter.stale.body;
  EXPECT_EQ(json::parse(counter.stale.body)["resource"], "counter:1");
  // The same with the path as the key, the table alone deciding (verify = "cache").
  StaleWrite account = stale_write("/accounts/7", "/accounts/%37", "PUT", "/accounts/7", "/accounts/%37");
  EXPECT_EQ(account.stale.status, 409) << account.stale.body;
  EXPECT_EQ(json::parse(account.stale.body)["resource"], "/accounts/7");
  EXPECT_TRUE(backend_targets().empty()) << backend_log().dump();
}

// Item 3: a PATCH through one route makes the tag another route handed out stale.
TEST_F(PathTest, RoutesOverOneResourceShareItsVersion) {
  std::string routes =
      "\n[[route]]\nname = \"accounts-rw\"\npath = \"/accounts/{id}\"\nmethods = [\"GET\", \"PUT\"]\n"
      "upstream = \"legacy\"\n[route.etag]\nverify = \"cache\"\n"
      "\n[[route]]\nname = \"accounts-patch\"\npath = \"/accounts/{id}\"\nmethods = [\"PATCH\"]\n"
      "upstream = \"legacy\"\n[route.etag]\nverify = \"cache\"\nmax_entries = 10\n";
  start(ConfigOptions{.routes = routes});
  StaleWrite write = stale_write("/accounts/1", "/accounts/1", "PATCH", "/accounts/1", "/accounts/1");
  EXPECT_NE(write.new_tag, write.old_tag);
  EXPECT_EQ(write.stale.status, 409) << write.stale.body;
  EXPECT_EQ(write.stale.header("ETag").value_or(""), write.new_tag);
  EXPECT_TRUE(backend_targets().empty()) << backend_log().dump();
  EXPECT_EQ(send("PUT", "/accounts/1", R"({"n":3})", {{"If-Match", write.new_tag}}).status, 200);
}

}  // namespace
