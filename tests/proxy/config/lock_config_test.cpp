// [route.lock] read through parse_config: defaults, every key, positioned errors, the resource it
// shares with [route.etag], /config JSON, the route table, and LOCK/UNLOCK added to the methods.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "policies/lock/lock_config.h"
#include "proxy/config/config.h"
#include "proxy/control/config_json.h"
#include "tests/proxy/config/config_test_support.h"

namespace arbiter {
namespace {

using namespace std::chrono_literals;

// Routes start on line 4; [route.lock] is on line 8 and `keys` from line 9.
std::string lock_config_with(const std::string& keys, const std::string& extra = "",
                             const std::string& methods = "") {
  return "[upstream.legacy]\nservers = [\"127.0.0.1:8081\"]\n\n[[route]]\nname = \"items\"\npath = "
         "\"/items/{id}\"\nupstream = \"legacy\"" +
         (methods.empty() ? std::string() : " # methods follow\nmethods = " + methods) + "\n[route.lock]\n" + keys +
         "\n" + extra;
}

const LockSettings* lock_of(const RouteConfig& route) { return settings_of<LockSettings>(route.policies); }

std::vector<std::string> lock_config_errors(const std::string& toml) {
  std::vector<std::string> texts = testing::config_errors(toml);
  if (texts.empty()) ADD_FAILURE() << "parse_config accepted:\n" << toml;
  return texts;
}

std::string sole_lock_error(const std::string& keys, const std::string& extra = "") {
  auto found = lock_config_errors(lock_config_with(keys, extra));
  if (found.size() != 1) {
    ADD_FAILURE() << keys << ": " << found.size() << " errors";
    for (const auto& text : found) ADD_FAILURE() << text;
    return {};
  }
  return found[0];
}

TEST(LockConfigTest, NoTableNoPolicy) {
  Config config = parse_config(
      "[upstream.legacy]\nservers = [\"127.0.0.1:8081\"]\n[[route]]\nname = \"a\"\npath = \"/a\"\nupstream = \"legacy\"\n",
      "f");
  EXPECT_EQ(lock_of(config.routes.at(0)), nullptr);
}

TEST(LockConfigTest, Defaults) {
  Config config = parse_config(lock_config_with(""), "arbiter.toml");
  const LockSettings* lock = lock_of(config.routes.at(0));
  ASSERT_NE(lock, nullptr);
  EXPECT_EQ(lock->default_timeout, 30s);
  EXPECT_EQ(lock->max_timeout, 300s);
  EXPECT_EQ(lock->wait, 0ms);
  EXPECT_EQ(lock->max_waiters, 64u);
  EXPECT_FALSE(lock->require);
  EXPECT_FALSE(lock->block_reads);
  EXPECT_EQ(lock->fence_header, "Arbiter-Fence");
  EXPECT_EQ(lock->max_locks, 100000u);
  EXPECT_EQ(lock->max_locks_per_client, 100u);
  EXPECT_EQ(lock->key, KeyKind::ClientAddress);
  EXPECT_EQ(lock->resource, "");
}

TEST(LockConfigTest, EveryKeyIsRead) {
  Config config = parse_config(lock_config_with(R"(default_timeout = "1m"
max_timeout = "2h"
wait = "1500ms"
max_waiters = 3
require = true
block_reads = true
fence_header = "X-Fence"
max_locks = 10
max_locks_per_client = 2
key = "header:X-User"
resource = "/things/{id}")"),
                               "arbiter.toml");
  LockSettings expected;
  expected.default_timeout = 60s;
  expected.max_timeout = 7200s;
  expected.wait = 1500ms;
  expected.max_waiters = 3;
  expected.require = true;
  expected.block_reads = true;
  expected.fence_header = "X-Fence";
  expected.max_locks = 10;
  expected.max_locks_per_client = 2;
  expected.key = KeyKind::Header;
  expected.header = "X-User";
  expected.resource = "/things/{id}";
  ASSERT_NE(lock_of(config.routes.at(0)), nullptr);
  EXPECT_EQ(*lock_of(config.routes.at(0)), expected);
  EXPECT_EQ(lock_of(parse_config(lock_config_with("fence_header = \"\""), "f").routes.at(0))->fence_header, "");
  EXPECT_EQ(lock_of(parse_config(lock_config_with("key = \"global\""), "f").routes.at(0))->key, KeyKind::Global);
}

TEST(LockConfigTest, ErrorsArePositionedWithTheKey) {
  EXPECT_EQ(sole_lock_error("max_timout = \"1m\""),
            "arbiter.toml:9:1: route[0].lock.max_timout: route 'items': unknown key; did you mean 'max_timeout'?");
  EXPECT_EQ(sole_lock_error("default_timeout = \"10m\""),
            "arbiter.toml:9:19: route[0].lock.default_timeout: route 'items': default_timeout (600s) is longer than "
            "max_timeout (300s)");
  EXPECT_EQ(sole_lock_error("max_timeout = \"10s\""),
            "arbiter.toml:9:15: route[0].lock.max_timeout: route 'items': default_timeout (30s) is longer than "
            "max_timeout (10s)");
  EXPECT_EQ(sole_lock_error("max_timeout = \"1500ms\"\ndefault_timeout = \"1s\""),
            "arbiter.toml:9:15: route[0].lock.max_timeout: route 'items': a whole number of seconds (Timeout: "
            "Second-N counts seconds)");
  EXPECT_EQ(sole_lock_error("max_timeout = \"25h\""),
            "arbiter.toml:9:15: route[0].lock.max_timeout: route 'items': at most 24h: a lock is a lease that must end");
  EXPECT_EQ(sole_lock_error("fence_header = \"X Fence\""),
            "arbiter.toml:9:16: route[0].lock.fence_header: route 'items': not a field name (RFC 9110 section 5.1); "
            "\"\" sends no fence");
  EXPECT_NE(sole_lock_error("resource = \"/x/{nope}\"").find("arbiter.toml:9:12: route[0].lock.resource: route "
                                                             "'items': unknown parameter {nope}"),
            std::string::npos);
  EXPECT_NE(sole_lock_error("resource = \"/x/{id\"").find("arbiter.toml:9:12: route[0].lock.resource: route 'items': "
                                                          "malformed template"),
            std::string::npos);
  EXPECT_NE(sole_lock_error("max_waiters = -1").find("arbiter.toml:9:15: route[0].lock.max_waiters:"),
            std::string::npos);
  EXPECT_NE(sole_lock_error("key = \"cookie\"").find("arbiter.toml:9:7: route[0].lock.key:"), std::string::npos);
}

TEST(LockConfigTest, ResourceIsTheEtagPolicys) {
  Config same = parse_config(lock_config_with("", "[route.etag]\nresource = \"/things/{id}\"\n"), "arbiter.toml");
  EXPECT_EQ(lock_of(same.routes.at(0))->resource, "/things/{id}");
  Config both = parse_config(
      lock_config_with("resource = \"/things/{id}\"", "[route.etag]\nresource = \"/things/{id}\"\n"), "arbiter.toml");
  EXPECT_EQ(lock_of(both.routes.at(0))->resource, "/things/{id}");
  EXPECT_EQ(sole_lock_error("resource = \"/other/{id}\"", "[route.etag]\nresource = \"/things/{id}\"\n"),
            "arbiter.toml:9:12: route[0].lock.resource: route 'items': differs from [route.etag] resource "
            "\"/things/{id}\": locks and versions must key the same resource; leave one out");
}

TEST(LockConfigTest, ConfigJsonAndRouteTable) {
  Config config = parse_config(lock_config_with("wait = \"2s\"\nrequire = true"), "arbiter.toml");
  auto json = nlohmann::json::parse(config_to_json(config));
  auto lock = json["route"][0]["lock"];
  EXPECT_EQ(lock["default_timeout"], "30s");
  EXPECT_EQ(lock["max_timeout"], "300s");
  EXPECT_EQ(lock["wait"], "2s");
  EXPECT_EQ(lock["max_waiters"], 64);
  EXPECT_EQ(lock["require"], true);
  EXPECT_EQ(lock["block_reads"], false);
  EXPECT_EQ(lock["fence_header"], "Arbiter-Fence");
  EXPECT_EQ(lock["max_locks"], 100000);
  EXPECT_EQ(lock["max_locks_per_client"], 100);
  EXPECT_EQ(lock["key"], "ip");
  EXPECT_TRUE(lock["resource"].is_null());
  std::string table = format_route_table(config);
  EXPECT_NE(table.find("lock(30s, wait 2s, required)"), std::string::npos) << table;
  EXPECT_NE(format_route_table(parse_config(lock_config_with(""), "f")).find("lock(30s)"), std::string::npos);
}

TEST(LockConfigTest, LockAndUnlockJoinTheRoutesMethods) {
  Config config = parse_config(lock_config_with("", "", "[\"GET\", \"PUT\"]"), "arbiter.toml");
  EXPECT_EQ(config.routes.at(0).methods, (std::vector<std::string>{"GET", "PUT", "LOCK", "UNLOCK"}));
  Config any = parse_config(lock_config_with(""), "arbiter.toml");
  EXPECT_TRUE(any.routes.at(0).methods.empty());  // every method already
}

}  // namespace
}  // namespace arbiter
