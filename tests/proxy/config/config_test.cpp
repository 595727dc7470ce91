#include "proxy/config/config.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <cstdio>
#include <fstream>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "policies/concurrency/concurrency_policy.h"
#include "policies/etag/etag_policy.h"
#include "policies/rate_limit/rate_limit_policy.h"
#include "proxy/control/config_json.h"

#include <unistd.h>

namespace arbiter {
namespace {

using namespace std::chrono_literals;

// A valid upstream, for the tests of [server], [admin], [log] and [[route]]. Those put the part
// under test first, so that its line numbers do not depend on this.
const std::string kUpstream = "[upstream.legacy]\nservers = [\"127.0.0.1:8081\"]\n";
const std::string kRoute = "[[route]]\nname = \"items\"\npath = \"/items/{id}\"\nupstream = \"legacy\"\n";

// The section under test, then a valid upstream and route.
std::string with_rest(const std::string& section) { return section + "\n" + kUpstream + "\n" + kRoute; }
// Routes start on line 4.
std::string upstream_then(const std::string& routes) { return kUpstream + "\n" + routes; }

std::string joined(const std::vector<ConfigDiagnostic>& diagnostics) {
  std::string out;
  for (const ConfigDiagnostic& d : diagnostics) out += d.text() + "\n";
  return out;
}

std::vector<ConfigDiagnostic> errors_in(const std::string& toml) {
  try {
    parse_config(toml, "arbiter.toml");
  } catch (const ConfigError& e) {
    return e.diagnostics();
  }
  ADD_FAILURE() << "parse_config accepted:\n" << toml;
  return {};
}

std::vector<std::string> error_texts(const std::string& toml) {
  std::vector<std::string> texts;
  for (const ConfigDiagnostic& d : errors_in(toml)) texts.push_back(d.text());
  return texts;
}

// The text of the one problem in `toml`; fails the test if there are none or several.
std::string sole_error(const std::string& toml) {
  auto diagnostics = errors_in(toml);
  if (diagnostics.size() != 1) {
    ADD_FAILURE() << "expected one diagnostic, got " << diagnostics.size() << ":\n" << joined(diagnostics);
    return {};
  }
  return diagnostics[0].text();
}

// A route's settings of one policy kind; nullptr when the route does not use it.
const EtagPolicyConfig* etag_of(const RouteConfig& route) { return settings_of<EtagPolicyConfig>(route.policies); }
const RateLimitPolicyConfig* rate_limit_of(const RouteConfig& route) {
  return settings_of<RateLimitPolicyConfig>(route.policies);
}
const ConcurrencyConfig* concurrency_of(const RouteConfig& route) {
  return settings_of<ConcurrencyConfig>(route.policies);
}

unsigned expected_default_workers() { return std::max(1u, std::thread::hardware_concurrency()); }

// ---- Valid files ----

TEST(ConfigTest, MinimalFileTakesEveryDefault) {
  Config config = parse_config(kUpstream + kRoute, "arbiter.toml");

  EXPECT_EQ(config.file, "arbiter.toml");
  ASSERT_EQ(config.server.listen.size(), 1u);
  EXPECT_EQ(config.server.listen[0].host, "127.0.0.1");
  EXPECT_EQ(config.server.listen[0].port, 8080);
  EXPECT_EQ(config.server.workers, expected_default_workers());
  EXPECT_EQ(config.server.header_timeout, 10s);
  EXPECT_EQ(config.server.body_timeout, 60s);
  EXPECT_EQ(config.server.idle_timeout, 60s);
  EXPECT_EQ(config.server.drain_timeout, 10s);
  EXPECT_EQ(config.server.max_header_bytes, 65536u);
  EXPECT_EQ(config.server.max_body_bytes, 16u * 1024 * 1024);
  EXPECT_EQ(config.server.max_connections, 10000u);
  EXPECT_TRUE(config.server.trusted_proxies.empty());
  EXPECT_FALSE(config.admin.listen.has_value());
  EXPECT_TRUE(config.log.access);
  EXPECT_EQ(config.log.format, AccessLogFormat::Json);

  ASSERT_EQ(config.upstreams.size(), 1u);
  const UpstreamConfig& upstream = config.upstreams[0];
  EXPECT_EQ(upstream.name, "legacy");
  ASSERT_EQ(upstream.servers.size(), 1u);
  EXPECT_EQ(upstream.servers[0].text(), "127.0.0.1:8081");
  EXPECT_EQ(upstream.connect_timeout, 2s);
  EXPECT_EQ(upstream.response_timeout, 30s);
  EXPECT_EQ(upstream.fail_timeout, 10s);
  EXPECT_EQ(upstream.keepalive, 64u);
  EXPECT_EQ(upstream.line, 1);

  ASSERT_EQ(config.routes.size(), 1u);
  const RouteConfig& route = config.routes[0];
  EXPECT_EQ(route.name, "items");
  EXPECT_EQ(route.path, "/items/{id}");
  EXPECT_TRUE(route.methods.empty());
  EXPECT_EQ(route.upstream, "legacy");
  EXPECT_EQ(route.line, 3);
  EXPECT_EQ(route.column, 1);
}

TEST(ConfigTest, ReadsEveryKey) {
  Config config = parse_config(R"([server]
listen = ["127.0.0.1:8080", "[::1]:8443"]
workers = 4
header_timeout = "5s"
body_timeout = "45s"
idle_timeout = "2m"
drain_timeout = "0s"
max_header_bytes = "32KiB"
max_body_bytes = 1048576
max_connections = 500
trusted_proxies = ["10.0.0.0/8", "::1"]

[admin]
listen = "127.0.0.1:9901"

[log]
access = "off"

[upstream.legacy]
servers = ["127.0.0.1:8081", "localhost:8082"]
connect_timeout = "250ms"
response_timeout = "1.5s"
fail_timeout = "0s"
keepalive = 0

[[route]]
name = "items"
path = "/items/{id}"
methods = ["get", "Put", "GET", "M-SEARCH"]
upstream = "legacy"
)",
                               "full.toml");

  ASSERT_EQ(config.server.listen.size(), 2u);
  EXPECT_EQ(config.server.listen[0].text(), "127.0.0.1:8080");
  EXPECT_EQ(config.server.listen[1].host, "::1");
  EXPECT_EQ(config.server.listen[1].port, 8443);
  EXPECT_EQ(config.server.workers, 4u);
  EXPECT_EQ(config.server.header_timeout, 5s);
  EXPECT_EQ(config.server.body_timeout, 45s);
  EXPECT_EQ(config.server.idle_timeout, 120s);
  EXPECT_EQ(config.server.drain_timeout, 0ms);
  EXPECT_EQ(config.server.max_header_bytes, 32768u);
  EXPECT_EQ(config.server.max_body_bytes, 1048576u);
  EXPECT_EQ(config.server.max_connections, 500u);
  ASSERT_EQ(config.server.trusted_proxies.size(), 2u);
  EXPECT_EQ(config.server.trusted_proxies[0].text, "10.0.0.0/8");
  EXPECT_EQ(config.server.trusted_proxies[0].prefix_length, 8u);
  EXPECT_TRUE(config.server.trusted_proxies[1].ipv6);
  EXPECT_EQ(config.server.trusted_proxies[1].prefix_length, 128u);
  ASSERT_TRUE(config.admin.listen.has_value());
  EXPECT_EQ(config.admin.listen->text(), "127.0.0.1:9901");
  EXPECT_FALSE(config.log.access);

  const UpstreamConfig& upstream = config.upstreams.at(0);
  ASSERT_EQ(upstream.servers.size(), 2u);
  EXPECT_EQ(upstream.servers[1].host, "localhost");
  EXPECT_EQ(upstream.servers[1].port, 8082);
  EXPECT_EQ(upstream.connect_timeout, 250ms);
  EXPECT_EQ(upstream.response_timeout, 1500ms);
  EXPECT_EQ(upstream.fail_timeout, 0ms);
  EXPECT_EQ(upstream.keepalive, 0u);
  EXPECT_EQ(upstream.line, 19);

  // Upper-cased, duplicates dropped, any token allowed.
  EXPECT_EQ(config.routes.at(0).methods, (std::vector<std::string>{"GET", "PUT", "M-SEARCH"}));
  EXPECT_EQ(config.routes.at(0).line, 26);
}

TEST(ConfigTest, AccessLogFormat) {
  EXPECT_EQ(parse_config(with_rest("[log]\nformat = \"combined\""), "arbiter.toml").log.format,
            AccessLogFormat::Combined);
  EXPECT_EQ(parse_config(with_rest("[log]\nformat = \"json\""), "arbiter.toml").log.format, AccessLogFormat::Json);
  Config both = parse_config(with_rest("[log]\naccess = \"off\"\nformat = \"combined\""), "arbiter.toml");
  EXPECT_FALSE(both.log.access);
  EXPECT_EQ(both.log.format, AccessLogFormat::Combined);
}

TEST(ConfigTest, ListenMayBeOneString) {
  Config config = parse_config(with_rest("[server]\nlisten = \"0.0.0.0:0\""), "arbiter.toml");
  ASSERT_EQ(config.server.listen.size(), 1u);
  EXPECT_EQ(config.server.listen[0].host, "0.0.0.0");
  EXPECT_EQ(config.server.listen[0].port, 0);  // the kernel picks one
}

TEST(ConfigTest, ZeroWorkersMeansOnePerCore) {
  Config config = parse_config(with_rest("[server]\nworkers = 0"), "arbiter.toml");
  EXPECT_EQ(config.server.workers, expected_default_workers());
}

TEST(ConfigTest, EmptyTrustedProxiesIsAllowed) {
  Config config = parse_config(with_rest("[server]\ntrusted_proxies = []"), "arbiter.toml");
  EXPECT_TRUE(config.server.trusted_proxies.empty());
}

TEST(ConfigTest, UpstreamsKeepFileOrder) {
  Config config = parse_config(R"([upstream.zeta]
servers = ["127.0.0.1:8081"]

[upstream.alpha]
servers = ["127.0.0.1:8082"]

[[route]]
name = "a"
path = "/a"
upstream = "alpha"

[[route]]
name = "z"
path = "/z"
upstream = "zeta"
)",
                               "arbiter.toml");
  ASSERT_EQ(config.upstreams.size(), 2u);
  EXPECT_EQ(config.upstreams[0].name, "zeta");
  EXPECT_EQ(config.upstreams[0].line, 1);
  EXPECT_EQ(config.upstreams[1].name, "alpha");
  EXPECT_EQ(config.upstreams[1].line, 4);
  ASSERT_EQ(config.routes.size(), 2u);
  EXPECT_EQ(config.routes[0].name, "a");
  EXPECT_EQ(config.routes[1].name, "z");
  EXPECT_EQ(config.routes[1].line, 12);
}

TEST(ConfigTest, UpstreamsOnOneLineKeepFileOrder) {
  Config config = parse_config(
      "upstream = { zeta = { servers = [\"127.0.0.1:8081\"] }, alpha = { servers = [\"127.0.0.1:8082\"] } }\n" +
          kRoute.substr(0, kRoute.find("legacy")) + "zeta\"\n",
      "arbiter.toml");
  ASSERT_EQ(config.upstreams.size(), 2u);
  EXPECT_EQ(config.upstreams[0].name, "zeta");
  EXPECT_EQ(config.upstreams[1].name, "alpha");
  EXPECT_EQ(config.upstreams[1].servers.at(0).port, 8082);
}

TEST(ConfigTest, FindUpstream) {
  Config config;
  config.upstreams.resize(2);
  config.upstreams[0].name = "legacy";
  config.upstreams[1].name = "search";
  EXPECT_EQ(config.find_upstream("search"), &config.upstreams[1]);
  EXPECT_EQ(config.find_upstream("legacy"), &config.upstreams[0]);
  EXPECT_EQ(config.find_upstream("Search"), nullptr);
  EXPECT_EQ(config.find_upstream(""), nullptr);
}

// ---- Diagnostics ----

TEST(ConfigDiagnosticTest, TextWithPositionAndKey) {
  ConfigDiagnostic d{"a.toml", 3, 7, "server.workers", "expected an integer"};
  EXPECT_EQ(d.text(), "a.toml:3:7: server.workers: expected an integer");
}

TEST(ConfigDiagnosticTest, TextWithoutPosition) {
  EXPECT_EQ((ConfigDiagnostic{"a.toml", 0, 0, "upstream", "none"}).text(), "a.toml: upstream: none");
  EXPECT_EQ((ConfigDiagnostic{"a.toml", 0, 0, "", "cannot read"}).text(), "a.toml: cannot read");
  EXPECT_EQ((ConfigDiagnostic{"a.toml", 2, 5, "", "syntax"}).text(), "a.toml:2:5: syntax");
}

TEST(ConfigErrorTest, WhatJoinsEveryDiagnostic) {
  ConfigError error({{"a.toml", 1, 2, "k", "first"}, {"a.toml", 0, 0, "", "second"}});
  EXPECT_STREQ(error.what(), "a.toml:1:2: k: first\na.toml: second");
  ASSERT_EQ(error.diagnostics().size(), 2u);
  EXPECT_EQ(error.diagnostics()[1].message, "second");
}

TEST(ConfigErrorsTest, SyntaxErrorHasItsPosition) {
  auto diagnostics = errors_in("[server]\nworkers = = 2\n");
  ASSERT_EQ(diagnostics.size(), 1u) << joined(diagnostics);
  EXPECT_EQ(diagnostics[0].file, "arbiter.toml");
  EXPECT_EQ(diagnostics[0].line, 2);
  EXPECT_EQ(diagnostics[0].column, 11);
  EXPECT_EQ(diagnostics[0].key, "");
  EXPECT_TRUE(diagnostics[0].message.starts_with("syntax error: ")) << diagnostics[0].message;
  EXPECT_GT(diagnostics[0].message.size(), std::string("syntax error: ").size());
}

TEST(ConfigErrorsTest, RedefinedTableIsASyntaxError) {
  auto diagnostics = errors_in("[server]\nworkers = 1\n[server]\nworkers = 2\n");
  ASSERT_EQ(diagnostics.size(), 1u) << joined(diagnostics);
  EXPECT_EQ(diagnostics[0].line, 3);
  EXPECT_EQ(diagnostics[0].column, 1);
}

TEST(ConfigErrorsTest, UnknownKeySuggestsTheNearest) {
  EXPECT_EQ(sole_error(with_rest("[server]\nlistne = \"127.0.0.1:8080\"")),
            "arbiter.toml:2:1: server.listne: unknown key; did you mean 'listen'?");
  EXPECT_EQ(sole_error(with_rest("[server]\nworker = 2")),
            "arbiter.toml:2:1: server.worker: unknown key; did you mean 'workers'?");
}

TEST(ConfigTest, BodyDeadlineDefaultsToFiveMinutesAndIsCheckedLikeTheOtherTimeouts) {
  EXPECT_EQ(parse_config(kUpstream + kRoute, "arbiter.toml").server.body_deadline, 5min);
  EXPECT_EQ(parse_config("[server]\nbody_deadline = \"90s\"\n" + kUpstream + kRoute, "arbiter.toml")
                .server.body_deadline,
            90s);
  EXPECT_EQ(sole_error(with_rest("[server]\nbody_dedline = \"1m\"")),
            "arbiter.toml:2:1: server.body_dedline: unknown key; did you mean 'body_deadline'?");
  EXPECT_EQ(sole_error(with_rest("[server]\nbody_deadline = \"0s\"")),
            "arbiter.toml:2:17: server.body_deadline: must be at least 1ms");
}

TEST(ConfigTest, PathKeysDefaultOffAndRead) {
  Config defaults = parse_config(with_rest(""), "arbiter.toml");
  EXPECT_FALSE(defaults.server.forward_raw_path);
  EXPECT_FALSE(defaults.server.case_insensitive_paths);
  Config set = parse_config(with_rest("[server]\nforward_raw_path = true\ncase_insensitive_paths = true"), "arbiter.toml");
  EXPECT_TRUE(set.server.forward_raw_path);
  EXPECT_TRUE(set.server.case_insensitive_paths);
}

TEST(ConfigErrorsTest, PathKeysArePositionedAndSuggested) {
  EXPECT_EQ(sole_error(with_rest("[server]\nforward_raw_paths = true")),
            "arbiter.toml:2:1: server.forward_raw_paths: unknown key; did you mean 'forward_raw_path'?");
  EXPECT_EQ(sole_error(with_rest("[server]\ncase_insensitive_path = true")),
            "arbiter.toml:2:1: server.case_insensitive_path: unknown key; did you mean 'case_insensitive_paths'?");
  EXPECT_EQ(sole_error(with_rest("[server]\ncase_insensitive_paths = \"yes\"")),
            "arbiter.toml:2:26: server.case_insensitive_paths: expected a boolean (true or false), got a string");
  EXPECT_EQ(sole_error(with_rest("[server]\nforward_raw_path = 1")),
            "arbiter.toml:2:20: server.forward_raw_path: expected a boolean (true or false), got an integer");
}

// Under case_insensitive_paths, routes that differ only in case are one route: the later is
// unreachable.
TEST(ConfigErrorsTest, CaseInsensitivePathsMakeRoutesDifferingInCaseUnreachable) {
  std::string routes = "[[route]]\nname = \"a\"\npath = \"/Items/*\"\nupstream = \"legacy\"\n"
                       "[[route]]\nname = \"b\"\npath = \"/items/{id}\"\nupstream = \"legacy\"\n";
  EXPECT_NO_THROW(parse_config(upstream_then(routes), "arbiter.toml"));
  std::string error = sole_error("[server]\ncase_insensitive_paths = true\n" + upstream_then(routes));
  EXPECT_NE(error.find("route 'b': unreachable: route 'a'"), std::string::npos) << error;
}

TEST(ConfigErrorsTest, UnknownTopLevelTable) {
  EXPECT_EQ(sole_error(with_rest("[sever]\nlisten = \"127.0.0.1:8080\"")),
            "arbiter.toml:1:2: sever: unknown key; did you mean 'server'?");
}

TEST(ConfigErrorsTest, UnknownKeyWithNothingNearListsTheKnownOnes) {
  EXPECT_EQ(sole_error(with_rest("[log]\ncolour = \"yes\"")),
            "arbiter.toml:2:1: log.colour: unknown key; expected one of: access, format");
}

TEST(ConfigErrorsTest, UnknownKeyInUpstream) {
  EXPECT_EQ(sole_error("[upstream.legacy]\nservers = [\"127.0.0.1:8081\"]\nkeep_alive = 3\n\n" + kRoute),
            "arbiter.toml:3:1: upstream.legacy.keep_alive: unknown key; did you mean 'keepalive'?");
}

TEST(ConfigErrorsTest, UnknownKeyInRouteNamesTheRoute) {
  EXPECT_EQ(error_texts(upstream_then("[[route]]\nname = \"items\"\npth = \"/items\"\nupstream = \"legacy\"\n")),
            (std::vector<std::string>{
                "arbiter.toml:4:1: route[0].path: route 'items': missing required key 'path'",
                "arbiter.toml:6:1: route[0].pth: route 'items': unknown key; did you mean 'path'?",
            }));
}

TEST(ConfigErrorsTest, WrongType) {
  EXPECT_EQ(sole_error(with_rest("[server]\nworkers = \"two\"")),
            "arbiter.toml:2:11: server.workers: expected an integer, got a string");
  EXPECT_EQ(sole_error(with_rest("[server]\nlisten = 8080")),
            "arbiter.toml:2:10: server.listen: expected a string or an array of addresses, got an integer");
  EXPECT_EQ(sole_error(with_rest("[log]\naccess = false")),
            "arbiter.toml:2:10: log.access: expected a string, got a boolean");
  EXPECT_EQ(sole_error(with_rest("server = 5")), "arbiter.toml:1:10: server: expected a table, got an integer");
}

TEST(ConfigErrorsTest, BadDurations) {
  EXPECT_EQ(sole_error(with_rest("[server]\nheader_timeout = \"10 seconds\"")),
            "arbiter.toml:2:18: server.header_timeout: invalid duration \"10 seconds\"; write a number and a "
            "unit (ms, s, m or h), e.g. \"250ms\", \"1.5s\", \"2m\"");
  EXPECT_EQ(sole_error(with_rest("[server]\ndrain_timeout = \"-1s\"")),
            "arbiter.toml:2:17: server.drain_timeout: a duration cannot be negative");
  EXPECT_EQ(sole_error(with_rest("[server]\nidle_timeout = \"abc\"")),
            "arbiter.toml:2:16: server.idle_timeout: invalid duration \"abc\"; write a number and a unit "
            "(ms, s, m or h), e.g. \"250ms\", \"1.5s\", \"2m\"");
  EXPECT_EQ(sole_error(with_rest("[server]\nidle_timeout = 1.5")),
            "arbiter.toml:2:16: server.idle_timeout: expected a duration string such as \"10s\", got a float");
}

TEST(ConfigErrorsTest, IntegerDurationAsksForAUnit) {
  EXPECT_EQ(sole_error(with_rest("[server]\nidle_timeout = 60")),
            "arbiter.toml:2:16: server.idle_timeout: expected a duration string; write a unit, e.g. \"60s\"");
}

TEST(ConfigErrorsTest, ZeroTimeoutThatCouldNeverBeMet) {
  EXPECT_EQ(sole_error(with_rest("[server]\nheader_timeout = \"0s\"")),
            "arbiter.toml:2:18: server.header_timeout: must be at least 1ms");
  EXPECT_EQ(sole_error("[upstream.legacy]\nservers = [\"127.0.0.1:8081\"]\nconnect_timeout = \"0ms\"\n\n" + kRoute),
            "arbiter.toml:3:19: upstream.legacy.connect_timeout: must be at least 1ms");
}

TEST(ConfigErrorsTest, BadSizes) {
  EXPECT_EQ(sole_error(with_rest("[server]\nmax_body_bytes = \"16 MB\"")),
            "arbiter.toml:2:18: server.max_body_bytes: invalid size \"16 MB\"; write bytes or a number and a "
            "unit (B, KB, MB, GB, KiB, MiB, GiB), e.g. \"16MiB\"");
  EXPECT_EQ(sole_error(with_rest("[server]\nmax_body_bytes = -5")),
            "arbiter.toml:2:18: server.max_body_bytes: a size cannot be negative");
  EXPECT_EQ(sole_error(with_rest("[server]\nmax_body_bytes = true")),
            "arbiter.toml:2:18: server.max_body_bytes: expected an integer or a size string such as "
            "\"16MiB\", got a boolean");
}

TEST(ConfigErrorsTest, SizesOutOfRange) {
  EXPECT_EQ(sole_error(with_rest("[server]\nmax_header_bytes = 0")),
            "arbiter.toml:2:20: server.max_header_bytes: out of range: must be between 1 and 16777216 bytes, got 0");
  EXPECT_EQ(sole_error(with_rest("[server]\nmax_header_bytes = \"17MiB\"")),
            "arbiter.toml:2:20: server.max_header_bytes: out of range: must be between 1 and 16777216 bytes, "
            "got 17825792");
  EXPECT_EQ(sole_error(with_rest("[server]\nmax_body_bytes = \"0B\"")),
            "arbiter.toml:2:18: server.max_body_bytes: out of range: must be between 1 and 18446744073709551615 "
            "bytes, got 0");
}

TEST(ConfigErrorsTest, IntegersOutOfRange) {
  EXPECT_EQ(sole_error(with_rest("[server]\nworkers = 1025")),
            "arbiter.toml:2:11: server.workers: out of range: must be between 0 and 1024, got 1025");
  EXPECT_EQ(sole_error(with_rest("[server]\nmax_connections = 0")),
            "arbiter.toml:2:19: server.max_connections: out of range: must be between 1 and 10000000, got 0");
  EXPECT_EQ(sole_error("[upstream.legacy]\nservers = [\"127.0.0.1:8081\"]\nkeepalive = -1\n\n" + kRoute),
            "arbiter.toml:3:13: upstream.legacy.keepalive: out of range: must be between 0 and 65535, got -1");
}

TEST(ConfigErrorsTest, BadListenAddresses) {
  const std::string expected_advice =
      "; write IPV4:PORT, [IPV6]:PORT or localhost:PORT (other host names are not resolved)";
  EXPECT_EQ(sole_error(with_rest("[server]\nlisten = \"127.0.0.1\"")),
            "arbiter.toml:2:10: server.listen: invalid address \"127.0.0.1\"" + expected_advice);
  EXPECT_EQ(sole_error(with_rest("[server]\nlisten = [\"127.0.0.1:8080\", \"::1:8080\"]")),
            "arbiter.toml:2:29: server.listen[1]: invalid address \"::1:8080\"" + expected_advice);
  EXPECT_EQ(sole_error(with_rest("[admin]\nlisten = \"localhost\"")),
            "arbiter.toml:2:10: admin.listen: invalid address \"localhost\"" + expected_advice);
}

TEST(ConfigErrorsTest, ListenAddressTwice) {
  EXPECT_EQ(sole_error(with_rest("[server]\nlisten = [\"127.0.0.1:8080\", \"127.0.0.1:8080\"]")),
            "arbiter.toml:2:29: server.listen[1]: 127.0.0.1:8080 is listed twice");
}

TEST(ConfigErrorsTest, EmptyListenList) {
  EXPECT_EQ(sole_error(with_rest("[server]\nlisten = []")),
            "arbiter.toml:2:10: server.listen: no addresses; give at least one, e.g. \"127.0.0.1:8081\"");
}

TEST(ConfigErrorsTest, BadUpstreamServers) {
  EXPECT_EQ(sole_error("[upstream.legacy]\nservers = [\"127.0.0.1:8081\", \"127.0.0.1:0\"]\n\n" + kRoute),
            "arbiter.toml:2:30: upstream.legacy.servers[1]: port 0 cannot be connected to; give the port the "
            "server listens on");
  EXPECT_EQ(sole_error("[upstream.legacy]\nservers = []\n\n" + kRoute),
            "arbiter.toml:2:11: upstream.legacy.servers: no addresses; give at least one, e.g. \"127.0.0.1:8081\"");
  EXPECT_EQ(sole_error("[upstream.legacy]\nservers = \"127.0.0.1:8081\"\n\n" + kRoute),
            "arbiter.toml:2:11: upstream.legacy.servers: expected an array of addresses, got a string");
  EXPECT_EQ(sole_error("[upstream.legacy]\nservers = [\"127.0.0.1:8081\", 8082]\n\n" + kRoute),
            "arbiter.toml:2:30: upstream.legacy.servers[1]: expected a string, got an integer");
}

TEST(ConfigErrorsTest, UpstreamWithoutServers) {
  EXPECT_EQ(sole_error("[upstream.legacy]\nkeepalive = 8\n\n" + kRoute),
            "arbiter.toml:1:1: upstream.legacy.servers: missing required key 'servers'");
}

TEST(ConfigErrorsTest, UpstreamThatIsNotATable) {
  EXPECT_EQ(sole_error("[upstream]\nservers = [\"127.0.0.1:8081\"]\n\n" + kRoute),
            "arbiter.toml:2:11: upstream.servers: expected a table, got an array; write each upstream as "
            "[upstream.NAME]");
}

TEST(ConfigErrorsTest, BadCidr) {
  const std::string advice =
      "; write an address or ADDRESS/PREFIX with no bits set after the prefix, e.g. \"10.0.0.0/8\", \"::1/128\"";
  EXPECT_EQ(sole_error(with_rest("[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"10.0.0.1/8\"]")),
            "arbiter.toml:2:34: server.trusted_proxies[1]: invalid CIDR \"10.0.0.1/8\"" + advice);
  EXPECT_EQ(sole_error(with_rest("[server]\ntrusted_proxies = [\"10.0.0.0/33\"]")),
            "arbiter.toml:2:20: server.trusted_proxies[0]: invalid CIDR \"10.0.0.0/33\"" + advice);
  EXPECT_EQ(sole_error(with_rest("[server]\ntrusted_proxies = \"10.0.0.0/8\"")),
            "arbiter.toml:2:19: server.trusted_proxies: expected an array of CIDRs, got a string");
}

TEST(ConfigErrorsTest, BadAccessLogSetting) {
  EXPECT_EQ(sole_error(with_rest("[log]\naccess = \"file\"")),
            "arbiter.toml:2:10: log.access: expected \"stdout\", \"off\" or a file path with a '/' "
            "(\"/var/log/arbiter/access.log\", \"./access.log\"), got \"file\"");
  EXPECT_EQ(sole_error(with_rest("[log]\naccess = \"/var/log/\"")),
            "arbiter.toml:2:10: log.access: expected \"stdout\", \"off\" or a file path with a '/' "
            "(\"/var/log/arbiter/access.log\", \"./access.log\"), got \"/var/log/\"");
}

TEST(ConfigTest, AccessLogToAFile) {
  Config config = parse_config(with_rest("[log]\naccess = \"/var/log/arbiter/access.log\""), "arbiter.toml");
  EXPECT_TRUE(config.log.access);
  EXPECT_EQ(config.log.access_path, "/var/log/arbiter/access.log");
  EXPECT_EQ(nlohmann::json::parse(config_to_json(config))["log"]["access"], "/var/log/arbiter/access.log");
  EXPECT_EQ(parse_config(with_rest("[log]\naccess = \"./access.log\""), "arbiter.toml").log.access_path,
            "./access.log");
  EXPECT_EQ(parse_config(with_rest("[log]\naccess = \"stdout\""), "arbiter.toml").log.access_path, "");
}

TEST(ConfigErrorsTest, BadAccessLogFormat) {
  EXPECT_EQ(sole_error(with_rest("[log]\nformat = \"common\"")),
            "arbiter.toml:2:10: log.format: expected \"json\" or \"combined\", got \"common\"");
  EXPECT_EQ(sole_error(with_rest("[log]\nformat = 1")),
            "arbiter.toml:2:10: log.format: expected a string, got an integer");
  EXPECT_EQ(sole_error(with_rest("[log]\nfromat = \"json\"")),
            "arbiter.toml:2:1: log.fromat: unknown key; did you mean 'format'?");
  // Both keys are checked: a bad access value does not hide a bad format.
  EXPECT_EQ(error_texts(with_rest("[log]\naccess = \"file\"\nformat = \"xml\"")),
            (std::vector<std::string>{
                "arbiter.toml:2:10: log.access: expected \"stdout\", \"off\" or a file path with a '/' "
                "(\"/var/log/arbiter/access.log\", \"./access.log\"), got \"file\"",
                "arbiter.toml:3:10: log.format: expected \"json\" or \"combined\", got \"xml\"",
            }));
}

TEST(ConfigErrorsTest, NoUpstreamAndNoRoute) {
  auto diagnostics = errors_in("[server]\nworkers = 2\n");
  ASSERT_EQ(diagnostics.size(), 2u) << joined(diagnostics);
  EXPECT_EQ(diagnostics[0].line, 0);
  EXPECT_EQ(diagnostics[0].column, 0);
  EXPECT_EQ(diagnostics[0].text(),
            "arbiter.toml: upstream: no upstream defined; add one, e.g. [upstream.backend] with "
            "servers = [\"127.0.0.1:8081\"]");
  EXPECT_EQ(diagnostics[1].text(),
            "arbiter.toml: route: no route defined; add at least one [[route]] with name, path and upstream");
}

TEST(ConfigErrorsTest, RouteWrittenAsOneTable) {
  EXPECT_EQ(sole_error(upstream_then("[route]\nname = \"items\"\npath = \"/\"\nupstream = \"legacy\"\n")),
            "arbiter.toml:4:1: route: write [[route]] (an array of tables), not [route]");
}

TEST(ConfigErrorsTest, RouteMissingRequiredKeys) {
  EXPECT_EQ(error_texts(upstream_then("[[route]]\nname = \"items\"\n")),
            (std::vector<std::string>{
                "arbiter.toml:4:1: route[0].path: route 'items': missing required key 'path'",
                "arbiter.toml:4:1: route[0].upstream: route 'items': missing required key 'upstream'",
            }));
  EXPECT_EQ(sole_error(upstream_then("[[route]]\npath = \"/\"\nupstream = \"legacy\"\n")),
            "arbiter.toml:4:1: route[0].name: missing required key 'name'");
}

TEST(ConfigErrorsTest, EmptyRouteName) {
  EXPECT_EQ(sole_error(upstream_then("[[route]]\nname = \"\"\npath = \"/\"\nupstream = \"legacy\"\n")),
            "arbiter.toml:5:8: route[0].name: a route name cannot be empty");
}

TEST(ConfigErrorsTest, DuplicateRouteNamePointsAtTheSecond) {
  EXPECT_EQ(sole_error(upstream_then(kRoute + "\n[[route]]\nname = \"items\"\npath = \"/other\"\nupstream = \"legacy\"\n")),
            "arbiter.toml:10:8: route[1].name: duplicate route name 'items'; route[0] at line 4 already has it");
}

TEST(ConfigErrorsTest, RouteNamingAnUnknownUpstream) {
  EXPECT_EQ(sole_error(upstream_then("[[route]]\nname = \"items\"\npath = \"/items\"\nupstream = \"legcy\"\n")),
            "arbiter.toml:7:12: route[0].upstream: route 'items': unknown upstream 'legcy'; did you mean "
            "'legacy'? (defined: legacy)");
  const std::string two_upstreams = kUpstream + "[upstream.search]\nservers = [\"127.0.0.1:9200\"]\n\n";
  EXPECT_EQ(sole_error(two_upstreams + "[[route]]\nname = \"items\"\npath = \"/items\"\nupstream = \"billing\"\n"),
            "arbiter.toml:9:12: route[0].upstream: route 'items': unknown upstream 'billing' (defined: legacy, "
            "search)");
}

TEST(ConfigErrorsTest, MalformedPathPattern) {
  EXPECT_EQ(sole_error(upstream_then("[[route]]\nname = \"items\"\npath = \"/items/{id\"\nupstream = \"legacy\"\n")),
            "arbiter.toml:6:8: route[0].path: route 'items': path pattern \"/items/{id\": segment \"{id\": '{', "
            "'}' and '*' may only stand for a whole segment, as {name} or *");
  EXPECT_EQ(sole_error(upstream_then("[[route]]\nname = \"items\"\npath = \"items\"\nupstream = \"legacy\"\n")),
            "arbiter.toml:6:8: route[0].path: route 'items': path pattern \"items\": must start with '/'");
}

TEST(ConfigErrorsTest, BadMethodNames) {
  EXPECT_EQ(error_texts(upstream_then(
                "[[route]]\nname = \"items\"\npath = \"/items\"\nmethods = [\"GET\", \"P UT\", \"\"]\n"
                "upstream = \"legacy\"\n")),
            (std::vector<std::string>{
                "arbiter.toml:7:19: route[0].methods[1]: route 'items': invalid method name \"P UT\"; a method is "
                "a token of letters, digits and !#$%&'*+-.^_`|~",
                "arbiter.toml:7:27: route[0].methods[2]: route 'items': empty method name",
            }));
  EXPECT_EQ(sole_error(upstream_then(
                "[[route]]\nname = \"items\"\npath = \"/items\"\nmethods = [\"GET\", 5]\nupstream = \"legacy\"\n")),
            "arbiter.toml:7:19: route[0].methods[1]: route 'items': expected a string, got an integer");
}

TEST(ConfigErrorsTest, EmptyMethodList) {
  EXPECT_EQ(sole_error(upstream_then(
                "[[route]]\nname = \"items\"\npath = \"/items\"\nmethods = []\nupstream = \"legacy\"\n")),
            "arbiter.toml:7:11: route[0].methods: route 'items': no methods; leave out 'methods' to take every "
            "method");
}

TEST(ConfigErrorsTest, UnreachableRoute) {
  EXPECT_EQ(sole_error(upstream_then("[[route]]\nname = \"all\"\npath = \"/*\"\nupstream = \"legacy\"\n\n" + kRoute)),
            "arbiter.toml:11:8: route[1].path: route 'items': unreachable: route 'all' (line 4) already matches "
            "every request this route takes");
}

TEST(ConfigErrorsTest, ParamRouteBeforeLiteralMakesItUnreachable) {
  EXPECT_EQ(sole_error(upstream_then(kRoute + "\n[[route]]\nname = \"new\"\npath = \"/items/new\"\n"
                                              "upstream = \"legacy\"\n")),
            "arbiter.toml:11:8: route[1].path: route 'new': unreachable: route 'items' (line 4) already matches "
            "every request this route takes");
}

TEST(ConfigErrorsTest, RoutesThatOnlyOverlapAreReachable) {
  // The literal comes first, so both are reachable; and a GET-only catch-all leaves POST through.
  Config config = parse_config(upstream_then(R"([[route]]
name = "new"
path = "/items/new"
upstream = "legacy"

[[route]]
name = "items"
path = "/items/{id}"
upstream = "legacy"

[[route]]
name = "reads"
path = "/*"
methods = ["GET"]
upstream = "legacy"

[[route]]
name = "writes"
path = "/orders/*"
methods = ["GET", "POST"]
upstream = "legacy"
)"),
                               "arbiter.toml");
  EXPECT_EQ(config.routes.size(), 4u);
}

TEST(ConfigErrorsTest, ARouteWithBadMethodsIsLeftOutOfTheReachabilityCheck) {
  // With its bad method dropped, "all" would take every method and falsely shadow "items".
  EXPECT_EQ(error_texts(upstream_then("[[route]]\nname = \"all\"\npath = \"/*\"\nmethods = [\"G ET\"]\n"
                                      "upstream = \"legacy\"\n\n" + kRoute)),
            (std::vector<std::string>{
                "arbiter.toml:7:12: route[0].methods[0]: route 'all': invalid method name \"G ET\"; a method is "
                "a token of letters, digits and !#$%&'*+-.^_`|~",
            }));
}

TEST(ConfigErrorsTest, EveryProblemIsReportedInFileOrder) {
  const std::string toml = R"([server]
listne = "127.0.0.1:8080"
workers = "two"
header_timeout = "10 seconds"

[upstream.legacy]
servers = ["127.0.0.1:8081", "example.com:80"]
keepalive = -1

[[route]]
name = "all"
path = "/*"
upstream = "legacy"

[[route]]
name = "items"
path = "/items/{id}"
upstream = "legcy"

[[route]]
name = "all"
path = "/x"
upstream = "legacy"
)";
  EXPECT_EQ(error_texts(toml),
            (std::vector<std::string>{
                "arbiter.toml:2:1: server.listne: unknown key; did you mean 'listen'?",
                "arbiter.toml:3:11: server.workers: expected an integer, got a string",
                "arbiter.toml:4:18: server.header_timeout: invalid duration \"10 seconds\"; write a number and a "
                "unit (ms, s, m or h), e.g. \"250ms\", \"1.5s\", \"2m\"",
                "arbiter.toml:7:30: upstream.legacy.servers[1]: invalid address \"example.com:80\"; write "
                "IPV4:PORT, [IPV6]:PORT or localhost:PORT (other host names are not resolved)",
                "arbiter.toml:8:13: upstream.legacy.keepalive: out of range: must be between 0 and 65535, got -1",
                "arbiter.toml:17:8: route[1].path: route 'items': unreachable: route 'all' (line 10) already "
                "matches every request this route takes",
                "arbiter.toml:18:12: route[1].upstream: route 'items': unknown upstream 'legcy'; did you mean "
                "'legacy'? (defined: legacy)",
                "arbiter.toml:21:8: route[2].name: duplicate route name 'all'; route[0] at line 10 already has it",
                "arbiter.toml:22:8: route[2].path: route 'all': unreachable: route 'all' (line 10) already "
                "matches every request this route takes",
            }));
}

TEST(ConfigErrorsTest, ErrorNamesTheFileItWasGiven) {
  try {
    parse_config("[server]\nworkers = -1\n" + kUpstream + kRoute, "/etc/arbiter/arbiter.toml");
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(),
                 "/etc/arbiter/arbiter.toml:2:11: server.workers: out of range: must be between 0 and 1024, got -1");
  }
}

// ---- Files ----

TEST(LoadConfigFileTest, MissingFileHasNoPosition) {
  const std::string path = ::testing::TempDir() + "arbiter_no_such_config.toml";
  std::remove(path.c_str());
  try {
    load_config_file(path);
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    ASSERT_EQ(e.diagnostics().size(), 1u);
    const ConfigDiagnostic& d = e.diagnostics()[0];
    EXPECT_EQ(d.file, path);
    EXPECT_EQ(d.line, 0);
    EXPECT_EQ(d.column, 0);
    EXPECT_EQ(d.key, "");
    EXPECT_EQ(d.text(), path + ": cannot read the file: No such file or directory");
  }
}

TEST(LoadConfigFileTest, DirectoryIsNotAFile) {
  const std::string path = ::testing::TempDir();
  try {
    load_config_file(path);
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    ASSERT_EQ(e.diagnostics().size(), 1u);
    EXPECT_EQ(e.diagnostics()[0].text(), path + ": cannot read the file: Is a directory");
  }
}

TEST(LoadConfigFileTest, ReadsAFileAndNamesItInErrors) {
  const std::string path = ::testing::TempDir() + "arbiter_config_test." + std::to_string(getpid()) + ".toml";
  {
    std::ofstream out(path);
    out << kUpstream << kRoute;
  }
  Config config = load_config_file(path);
  EXPECT_EQ(config.file, path);
  EXPECT_EQ(config.routes.at(0).name, "items");

  {
    std::ofstream out(path);
    out << "[server]\nworkers = \"two\"\n" << kUpstream << kRoute;
  }
  try {
    load_config_file(path);
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(), (path + ":2:11: server.workers: expected an integer, got a string").c_str());
  }
  std::remove(path.c_str());
}

// ---- Values ----

TEST(ParseDurationTest, Accepts) {
  const std::pair<const char*, Duration> cases[] = {
      {"250ms", 250ms},      {"2s", 2s},         {"1m", 1min},        {"1h", 1h},
      {"1.5s", 1500ms},      {"0s", 0ms},        {"0ms", 0ms},        {"0.5m", 30s},
      {"1.25h", 75min},      {"10.000s", 10s},   {"0.001s", 1ms},     {"90m", 90min},
      {"9223372036854775807ms", Duration(std::numeric_limits<Duration::rep>::max())},
  };
  for (const auto& [text, expected] : cases) {
    auto parsed = parse_duration(text);
    ASSERT_TRUE(parsed.has_value()) << text;
    EXPECT_EQ(*parsed, expected) << text;
  }
}

TEST(ParseDurationTest, Rejects) {
  const char* cases[] = {
      "",        "10",     "s",          "10 seconds", "10 s",    " 10s",  "10s ",
      "-1s",     "+1s",    "1.s",        ".5s",        "abc",     "1d",    "1S",
      "1.5.s",   "0.1ms",  "1.0001s",    "1e3ms",      "9223372036854775808ms",
      "99999999999999999999s",           "3000000000000000h",
  };
  for (const char* text : cases) EXPECT_FALSE(parse_duration(text).has_value()) << text;
}

TEST(ParseSizeTest, Accepts) {
  const std::pair<const char*, std::uint64_t> cases[] = {
      {"100", 100},
      {"0", 0},
      {"100B", 100},
      {"100KB", 100'000},
      {"100kB", 100'000},
      {"3MB", 3'000'000},
      {"2GB", 2'000'000'000},
      {"512KiB", 524'288},
      {"16MiB", 16'777'216},
      {"1GiB", 1'073'741'824},
      {"1.5KiB", 1536},
      {"0.5MiB", 524'288},
      {"18446744073709551615", std::numeric_limits<std::uint64_t>::max()},
  };
  for (const auto& [text, expected] : cases) {
    auto parsed = parse_size(text);
    ASSERT_TRUE(parsed.has_value()) << text;
    EXPECT_EQ(*parsed, expected) << text;
  }
}

TEST(ParseSizeTest, Rejects) {
  const char* cases[] = {
      "",      "MiB",  "16 MiB", "16mib", "-1",   "1.5B",  "1.5",    "18446744073709551616",
      "17179869184GiB", "1.2.3KB", "16TiB", "0x10", "16M", "1,000",
  };
  for (const char* text : cases) EXPECT_FALSE(parse_size(text).has_value()) << text;
}

TEST(ParseSocketAddressTest, Accepts) {
  struct Case {
    const char* text;
    const char* host;
    std::uint16_t port;
  };
  const Case cases[] = {
      {"127.0.0.1:8080", "127.0.0.1", 8080},
      {"[::1]:8080", "::1", 8080},
      {"localhost:80", "localhost", 80},
      {"0.0.0.0:0", "0.0.0.0", 0},
      {"[2001:db8::1]:65535", "2001:db8::1", 65535},
      {"[::ffff:10.0.0.1]:443", "::ffff:10.0.0.1", 443},
  };
  for (const Case& c : cases) {
    auto parsed = parse_socket_address(c.text);
    ASSERT_TRUE(parsed.has_value()) << c.text;
    EXPECT_EQ(parsed->host, c.host) << c.text;
    EXPECT_EQ(parsed->port, c.port) << c.text;
  }
}

TEST(ParseSocketAddressTest, Rejects) {
  const char* cases[] = {
      "",           "127.0.0.1",      "127.0.0.1:",     "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:80x",
      "::1:8080",   "[::1]8080",      "[::1]",          "[::1:80",         "[127.0.0.1]:80", "example.com:80",
      "256.0.0.1:80", ":80",          "localhost",      "127.0.0.1:123456",
  };
  for (const char* text : cases) EXPECT_FALSE(parse_socket_address(text).has_value()) << text;
}

TEST(SocketAddressTest, TextBracketsIpv6) {
  EXPECT_EQ((SocketAddress{"127.0.0.1", 8080}).text(), "127.0.0.1:8080");
  EXPECT_EQ((SocketAddress{"::1", 8080}).text(), "[::1]:8080");
  EXPECT_EQ((SocketAddress{"localhost", 0}).text(), "localhost:0");
}

TEST(ParseCidrTest, Accepts) {
  auto v4 = parse_cidr("10.0.0.0/8");
  ASSERT_TRUE(v4.has_value());
  EXPECT_FALSE(v4->ipv6);
  EXPECT_EQ(v4->prefix_length, 8u);
  EXPECT_EQ(v4->bytes[0], 10);
  EXPECT_EQ(v4->text, "10.0.0.0/8");

  auto host = parse_cidr("192.168.1.7");
  ASSERT_TRUE(host.has_value());
  EXPECT_EQ(host->prefix_length, 32u);
  EXPECT_EQ(host->bytes[3], 7);

  auto v6 = parse_cidr("2001:db8::/32");
  ASSERT_TRUE(v6.has_value());
  EXPECT_TRUE(v6->ipv6);
  EXPECT_EQ(v6->prefix_length, 32u);
  EXPECT_EQ(v6->bytes[0], 0x20);
  EXPECT_EQ(v6->bytes[1], 0x01);

  auto loopback = parse_cidr("::1");
  ASSERT_TRUE(loopback.has_value());
  EXPECT_EQ(loopback->prefix_length, 128u);
  EXPECT_EQ(loopback->bytes[15], 1);

  EXPECT_TRUE(parse_cidr("0.0.0.0/0").has_value());
  EXPECT_TRUE(parse_cidr("::/0").has_value());
}

TEST(ParseCidrTest, Rejects) {
  const char* cases[] = {
      "",          "/8",          "10.0.0.1/8", "10.0.0.0/33", "::/129",      "10.0.0.0/",
      "10.0.0.0/x", "10.0.0/8",   "fe80::1%eth0/64", "10.0.0.0/8/8", "::1/-1", "10.0.0.0/0008",
  };
  for (const char* text : cases) EXPECT_FALSE(parse_cidr(text).has_value()) << text;
}

TEST(CidrTest, Contains) {
  struct Case {
    const char* cidr;
    const char* address;
    bool expected;
  };
  const Case cases[] = {
      {"10.0.0.0/8", "10.1.2.3", true},
      {"10.0.0.0/8", "11.0.0.1", false},
      {"10.0.0.0/8", "::ffff:10.1.2.3", true},  // as a dual-stack socket reports an IPv4 client
      {"10.0.0.0/8", "::ffff:11.1.2.3", false},
      {"10.0.0.0/8", "::10.1.2.3", false},         // only the ::ffff:0:0/96 form is an IPv4 client
      {"10.0.0.0/8", "2001:db8::a01:203", false},  // ends in the bytes 10.1.2.3
      {"10.0.0.0/8", "::1", false},
      {"10.0.0.0/8", "not an address", false},
      {"10.0.0.0/8", "10.1.2.3:80", false},
      {"10.0.0.0/8", "", false},
      {"192.168.1.0/25", "192.168.1.127", true},
      {"192.168.1.0/25", "192.168.1.128", false},
      {"192.168.1.7", "192.168.1.7", true},
      {"192.168.1.7", "192.168.1.8", false},
      {"0.0.0.0/0", "203.0.113.9", true},
      {"2001:db8::/32", "2001:db8:1::5", true},
      {"2001:db8::/32", "2001:db9::1", false},
      {"2001:db8::/32", "10.0.0.1", false},
      {"::1", "::1", true},
      {"::1", "::2", false},
  };
  for (const Case& c : cases) {
    auto cidr = parse_cidr(c.cidr);
    ASSERT_TRUE(cidr.has_value()) << c.cidr;
    EXPECT_EQ(cidr->contains(c.address), c.expected) << c.cidr << " contains " << c.address;
  }
}

// ---- [route.etag] ----

// kRoute with a [route.etag] table holding `keys`: [[route]] is on line 4, [route.etag] on line
// 8 and its first key on line 9.
std::string with_etag(const std::string& keys, const std::string& path = "/items/{id}") {
  return upstream_then("[[route]]\nname = \"items\"\npath = \"" + path + "\"\nupstream = \"legacy\"\n[route.etag]\n" +
                       keys + "\n");
}

TEST(EtagConfigTest, AbsentTableMeansNoPolicy) {
  Config config = parse_config(kUpstream + kRoute, "arbiter.toml");
  EXPECT_EQ(etag_of(config.routes.at(0)), nullptr);
}

TEST(EtagConfigTest, EmptyTableEnablesItWithEveryDefault) {
  Config config = parse_config(with_etag(""), "arbiter.toml");
  ASSERT_NE(etag_of(config.routes.at(0)), nullptr);
  const EtagPolicyConfig& etag = *etag_of(config.routes.at(0));
  EXPECT_EQ(etag.conflict_status, 409);
  EXPECT_FALSE(etag.require_if_match);
  EXPECT_EQ(etag.verify, EtagPolicyConfig::Verify::Upstream);
  EXPECT_EQ(etag.source, EtagPolicyConfig::Source::Auto);
  EXPECT_EQ(etag.json_pointer, "");
  EXPECT_EQ(etag.resource, "");
  EXPECT_EQ(etag.max_entries, 1000000u);
  EXPECT_EQ(etag.max_body_bytes, 1048576u);
  EXPECT_EQ(etag.max_queue, 64u);
  EXPECT_EQ(etag.queue_timeout, 5s);
  EXPECT_EQ(etag.turn_lease, 103s);  // 3 x (2 x 2 s + 30 s) + 1 s, the upstream's defaults
  EXPECT_EQ(etag.write_response, EtagPolicyConfig::WriteResponse::Status);
}

TEST(EtagConfigTest, AWriteTurnIsLeasedForTheRoutesUpstreamTimeouts) {
  Config config = parse_config(R"([upstream.legacy]
servers = ["127.0.0.1:8081"]
connect_timeout = "500ms"
response_timeout = "10s"
[[route]]
name = "items"
path = "/items/{id}"
upstream = "legacy"
[route.etag]
)",
                               "arbiter.toml");
  ASSERT_NE(etag_of(config.routes.at(0)), nullptr);
  EXPECT_EQ(etag_of(config.routes.at(0))->turn_lease, 34s);  // 3 x (2 x 0.5 s + 10 s) + 1 s
}

TEST(EtagConfigTest, ReadsEveryKey) {
  Config config = parse_config(with_etag(R"(conflict_status = 412
require_if_match = true
verify = "cache"
source = "json:/meta/version"
resource = "/things/{id}"
max_entries = 5000
max_body_bytes = "64KiB"
max_queue = 0
queue_timeout = "750ms"
write_response = "representation")"),
                               "arbiter.toml");
  EXPECT_EQ(*etag_of(config.routes.at(0)), (EtagPolicyConfig{.conflict_status = 412,
                                                         .require_if_match = true,
                                                         .verify = EtagPolicyConfig::Verify::Cache,
                                                         .source = EtagPolicyConfig::Source::JsonPointer,
                                                         .json_pointer = "/meta/version",
                                                         .resource = "/things/{id}",
                                                         .max_entries = 5000,
                                                         .max_body_bytes = 65536,
                                                         .max_queue = 0,
                                                         .queue_timeout = 750ms,
                                                         .write_response =
                                                             EtagPolicyConfig::WriteResponse::Representation}));
}

TEST(EtagConfigTest, SourceHashAndAuto) {
  EXPECT_EQ(etag_of(parse_config(with_etag("source = \"hash\""), "a.toml").routes[0])->source,
            EtagPolicyConfig::Source::Hash);
  EXPECT_EQ(etag_of(parse_config(with_etag("source = \"auto\""), "a.toml").routes[0])->source,
            EtagPolicyConfig::Source::Auto);
  EXPECT_EQ(etag_of(parse_config(with_etag("source = \"json:/a~1b\""), "a.toml").routes[0])->json_pointer, "/a~1b");
}

TEST(EtagConfigTest, OnlyTheRouteThatHasTheTable) {
  Config config = parse_config(upstream_then(kRoute + "[route.etag]\n\n[[route]]\nname = \"other\"\npath = "
                                                      "\"/other\"\nupstream = \"legacy\"\n"),
                               "arbiter.toml");
  EXPECT_NE(etag_of(config.routes.at(0)), nullptr);
  EXPECT_EQ(etag_of(config.routes.at(1)), nullptr);
}

TEST(EtagConfigErrorsTest, EtagThatIsNotATable) {
  EXPECT_EQ(sole_error(upstream_then("[[route]]\nname = \"items\"\npath = \"/items\"\nupstream = \"legacy\"\n"
                                     "etag = true\n")),
            "arbiter.toml:8:8: route[0].etag: route 'items': expected a table, got a boolean");
}

// One bad key of [route.etag] (on line 9) and the one diagnostic it gets, from the column on.
struct EtagKeyError {
  std::string key_line;
  std::string expected;
};

void expect_etag_key_errors(const std::vector<EtagKeyError>& cases) {
  for (const EtagKeyError& bad : cases) {
    EXPECT_EQ(sole_error(with_etag(bad.key_line)), "arbiter.toml:9:" + bad.expected) << bad.key_line;
  }
}

TEST(EtagConfigErrorsTest, UnknownKeySuggestsTheNearest) {
  expect_etag_key_errors({
      {"verfy = \"cache\"", "1: route[0].etag.verfy: route 'items': unknown key; did you mean 'verify'?"},
      {"max_entrys = 5", "1: route[0].etag.max_entrys: route 'items': unknown key; did you mean 'max_entries'?"},
  });
}

TEST(EtagConfigErrorsTest, ConflictStatusRequireIfMatchAndVerify) {
  expect_etag_key_errors({
      {"conflict_status = 400",
       "19: route[0].etag.conflict_status: route 'items': must be 409 (Conflict) or 412 (Precondition Failed), "
       "got 400"},
      {"conflict_status = 410",
       "19: route[0].etag.conflict_status: route 'items': must be 409 (Conflict) or 412 (Precondition Failed), "
       "got 410"},
      {"conflict_status = \"409\"",
       "19: route[0].etag.conflict_status: route 'items': expected an integer, got a string"},
      {"require_if_match = \"yes\"",
       "20: route[0].etag.require_if_match: route 'items': expected a boolean (true or false), got a string"},
      {"verify = \"always\"",
       "10: route[0].etag.verify: route 'items': expected \"upstream\" or \"cache\", got \"always\""},
      {"verify = 1", "10: route[0].etag.verify: route 'items': expected a string, got an integer"},
      {"write_response = \"body\"",
       "18: route[0].etag.write_response: route 'items': expected \"status\" or \"representation\", got \"body\""},
  });
}

TEST(EtagConfigErrorsTest, Source) {
  const std::string bad_pointer =
      "\"; write '/' before each key, ~0 for '~' and ~1 for '/', e.g. \"json:/meta/version\"";
  expect_etag_key_errors({
      {"source = \"sha1\"",
       "10: route[0].etag.source: route 'items': expected \"auto\", \"hash\" or \"json:/POINTER\", got \"sha1\""},
      {"source = \"json:\"",
       "10: route[0].etag.source: route 'items': no JSON pointer after \"json:\"; name the version field, e.g. "
       "\"json:/version\""},
      {"source = \"json:version\"",
       "10: route[0].etag.source: route 'items': invalid JSON pointer \"version" + bad_pointer},
      {"source = \"json:/a~2\"", "10: route[0].etag.source: route 'items': invalid JSON pointer \"/a~2" + bad_pointer},
      {"source = \"json:/a~\"", "10: route[0].etag.source: route 'items': invalid JSON pointer \"/a~" + bad_pointer},
  });
}

TEST(EtagConfigErrorsTest, MalformedOrEmptyResource) {
  expect_etag_key_errors({
      {"resource = \"/accounts/{account}\"",
       "12: route[0].etag.resource: route 'items': unknown parameter {account}: the route's path '/items/{id}' "
       "captures {id}"},
      {"resource = \"/items/{id\"",
       "12: route[0].etag.resource: route 'items': malformed template \"/items/{id\": every '{' needs a '}' and a "
       "name between them"},
      {"resource = \"/items/{}\"",
       "12: route[0].etag.resource: route 'items': malformed template \"/items/{}\": every '{' needs a '}' and a "
       "name between them"},
      {"resource = \"\"",
       "12: route[0].etag.resource: route 'items': an empty resource key; leave out 'resource' to key each "
       "resource by its request path"},
  });
}

TEST(EtagConfigErrorsTest, ResourceMayOnlyUseTheRoutesParams) {
  EXPECT_EQ(error_texts(with_etag("resource = \"/a/{x}/{id}/{y}\"", "/items/{id}/{part}")),
            (std::vector<std::string>{
                "arbiter.toml:9:12: route[0].etag.resource: route 'items': unknown parameter {x}: the route's path "
                "'/items/{id}/{part}' captures {id}, {part}",
                "arbiter.toml:9:12: route[0].etag.resource: route 'items': unknown parameter {y}: the route's path "
                "'/items/{id}/{part}' captures {id}, {part}",
            }));
  EXPECT_EQ(sole_error(with_etag("resource = \"/items/{id}\"", "/items")),
            "arbiter.toml:9:12: route[0].etag.resource: route 'items': unknown parameter {id}: the route's path "
            "'/items' captures none");
  // A template without params, or with the route's own, is fine.
  EXPECT_EQ(etag_of(parse_config(with_etag("resource = \"/singleton\"", "/items"), "a.toml").routes[0])->resource,
            "/singleton");
  EXPECT_EQ(etag_of(parse_config(with_etag("resource = \"/i/{id}\""), "a.toml").routes[0])->resource, "/i/{id}");
}

TEST(EtagConfigErrorsTest, ResourceIsNotCheckedAgainstAnInvalidPath) {
  // Only the path is reported: its params are unknown, so the template cannot be judged.
  EXPECT_EQ(sole_error(with_etag("resource = \"/items/{id}\"", "items/{id}")),
            "arbiter.toml:6:8: route[0].path: route 'items': path pattern \"items/{id}\": must start with '/'");
}

TEST(EtagConfigErrorsTest, NumbersSizesAndDurations) {
  expect_etag_key_errors({
      {"max_entries = 0",
       "15: route[0].etag.max_entries: route 'items': out of range: must be between 1 and 1000000000, got 0"},
      {"max_queue = -1",
       "13: route[0].etag.max_queue: route 'items': out of range: must be between 0 and 1000000, got -1"},
      {"max_body_bytes = 0",
       "18: route[0].etag.max_body_bytes: route 'items': out of range: must be between 1 and 1073741824 bytes, got 0"},
      {"max_body_bytes = \"2GiB\"",
       "18: route[0].etag.max_body_bytes: route 'items': out of range: must be between 1 and 1073741824 bytes, got "
       "2147483648"},
      {"max_body_bytes = \"lots\"",
       "18: route[0].etag.max_body_bytes: route 'items': invalid size \"lots\"; write bytes or a number and a unit "
       "(B, KB, MB, GB, KiB, MiB, GiB), e.g. \"16MiB\""},
      {"queue_timeout = \"0s\"", "17: route[0].etag.queue_timeout: route 'items': must be at least 1ms"},
      {"queue_timeout = 5",
       "17: route[0].etag.queue_timeout: route 'items': expected a duration string; write a unit, e.g. \"5s\""},
  });
}

TEST(EtagConfigErrorsTest, EveryBadKeyIsReported) {
  EXPECT_EQ(errors_in(with_etag("conflict_status = 1\nverify = \"x\"\nsource = \"x\"\nmax_entries = 0\n"
                                "max_queue = -5\nqueue_timeout = \"-1s\""))
                .size(),
            6u);
}

// ---- [[route.limit]] ----

// kRoute with a [[route.limit]] table holding `keys`: [[route]] is on line 4, [[route.limit]] on
// line 8 (after `route_keys`, which add lines), its keys from line 9.
std::string with_limit(const std::string& keys, const std::string& route_keys = "") {
  return upstream_then("[[route]]\nname = \"items\"\npath = \"/items/{id}\"\nupstream = \"legacy\"\n" + route_keys +
                       "[[route.limit]]\n" + keys + "\n");
}

TEST(RateLimitConfigTest, NoLimitTableMeansNoPolicy) {
  Config config = parse_config(kUpstream + kRoute, "arbiter.toml");
  EXPECT_EQ(rate_limit_of(config.routes.at(0)), nullptr);
  EXPECT_EQ(concurrency_of(config.routes.at(0)), nullptr);
}

TEST(RateLimitConfigTest, ARateAloneTakesEveryDefault) {
  Config config = parse_config(with_limit("rate = \"20/s\""), "arbiter.toml");
  ASSERT_NE(rate_limit_of(config.routes.at(0)), nullptr);
  const RateLimitPolicyConfig& policy = *rate_limit_of(config.routes[0]);
  EXPECT_TRUE(policy.send_headers);
  ASSERT_EQ(policy.limits.size(), 1u);
  const RateLimitConfig& limit = policy.limits[0];
  EXPECT_EQ(limit.name, "items-limit-0");
  EXPECT_EQ(limit.count, 20u);
  EXPECT_EQ(limit.per, 1s);
  EXPECT_EQ(limit.burst, 20u);
  EXPECT_EQ(limit.key_kind, KeyKind::ClientAddress);
  EXPECT_EQ(limit.header, "");
  EXPECT_TRUE(limit.methods.empty());
  EXPECT_EQ(limit.max_keys, 100000u);
}

TEST(RateLimitConfigTest, ReadsEveryKey) {
  Config config = parse_config(with_limit(R"(name = "per-key"
rate = "100/m"
burst = 40
key = "header:X-Api-Key"
methods = ["post", "PUT", "POST"]
max_keys = 5000)"),
                               "arbiter.toml");
  RateLimitConfig expected;
  expected.name = "per-key";
  expected.count = 100;
  expected.per = 60s;
  expected.burst = 40;
  expected.key_kind = KeyKind::Header;
  expected.header = "X-Api-Key";
  expected.methods = {"POST", "PUT"};
  expected.max_keys = 5000;
  EXPECT_EQ(*rate_limit_of(config.routes.at(0)), (RateLimitPolicyConfig{{expected}, true}));
}

TEST(RateLimitConfigTest, DefaultBurstIsOneSecondOfRateAtLeastOne) {
  auto burst_of = [](const std::string& rate) {
    return rate_limit_of(parse_config(with_limit("rate = \"" + rate + "\""), "a.toml").routes[0])->limits[0].burst;
  };
  EXPECT_EQ(burst_of("30/s"), 30u);
  EXPECT_EQ(burst_of("100/m"), 2u);
  EXPECT_EQ(burst_of("60/m"), 1u);
  EXPECT_EQ(burst_of("1000/h"), 1u);
}

TEST(RateLimitConfigTest, KeysAndSeveralLimits) {
  Config config = parse_config(with_limit("name = \"per-client\"\nrate = \"20/s\"\nburst = 40\n\n[[route.limit]]\n"
                                          "rate = \"1000/h\"\nkey = \"global\"\n\n[[route.limit]]\nrate = \"5/s\"\n"
                                          "key = \"ip\"",
                                          "rate_limit_headers = false\n"),
                               "arbiter.toml");
  const RateLimitPolicyConfig& policy = *rate_limit_of(config.routes.at(0));
  EXPECT_FALSE(policy.send_headers);
  ASSERT_EQ(policy.limits.size(), 3u);
  EXPECT_EQ(policy.limits[0].name, "per-client");
  EXPECT_EQ(policy.limits[1].name, "items-limit-1");
  EXPECT_EQ(policy.limits[1].key_kind, KeyKind::Global);
  EXPECT_EQ(policy.limits[1].per, 3600s);
  EXPECT_EQ(policy.limits[2].name, "items-limit-2");
  EXPECT_EQ(policy.limits[2].key_kind, KeyKind::ClientAddress);
}

TEST(RateLimitConfigTest, RateLimitHeadersWithoutLimitsIsHarmless) {
  Config config = parse_config(upstream_then(kRoute + "rate_limit_headers = false\n"), "arbiter.toml");
  EXPECT_EQ(rate_limit_of(config.routes.at(0)), nullptr);
}

TEST(RateLimitConfigTest, MethodsWithinTheRoutes) {
  Config config = parse_config(with_limit("rate = \"1/s\"\nmethods = [\"put\"]", "methods = [\"GET\", \"PUT\"]\n"),
                               "arbiter.toml");
  EXPECT_EQ(rate_limit_of(config.routes.at(0))->limits[0].methods, std::vector<std::string>{"PUT"});
}

TEST(ParseRateTest, AcceptsAndRejects) {
  EXPECT_EQ(parse_rate("20/s"), (Rate{20, 1s}));
  EXPECT_EQ(parse_rate("100/m"), (Rate{100, 60s}));
  EXPECT_EQ(parse_rate("1000/h"), (Rate{1000, 3600s}));
  EXPECT_EQ(parse_rate("0/s"), (Rate{0, 1s}));  // for the caller to refuse in its own words
  for (std::string_view bad : {"", "20", "/s", "20/", "20/d", "20/S", "20 /s", "-1/s", "+1/s", "1.5/s", "20/sec",
                               "99999999999999999999/s", "20/s/s"}) {
    EXPECT_FALSE(parse_rate(bad).has_value()) << bad;
  }
}

TEST(RateLimitConfigErrorsTest, LimitMustBeAnArrayOfTables) {
  EXPECT_EQ(sole_error(upstream_then(kRoute + "[route.limit]\nrate = \"1/s\"\n")),
            "arbiter.toml:8:1: route[0].limit: route 'items': write [[route.limit]] (an array of tables), not "
            "[route.limit]");
  EXPECT_EQ(sole_error(upstream_then(kRoute + "limit = \"20/s\"\n")),
            "arbiter.toml:8:9: route[0].limit: route 'items': expected an array of [[route.limit]] tables, got a "
            "string");
  EXPECT_EQ(sole_error(upstream_then(kRoute + "limit = []\n")),
            "arbiter.toml:8:9: route[0].limit: route 'items': no limits; leave out 'limit' or add [[route.limit]] "
            "tables");
  EXPECT_EQ(sole_error(upstream_then(kRoute + "limit = [1]\n")),
            "arbiter.toml:8:10: route[0].limit[0]: route 'items': expected a table, got an integer");
}

TEST(RateLimitConfigErrorsTest, RateIsRequired) {
  EXPECT_EQ(sole_error(with_limit("burst = 5")),
            "arbiter.toml:8:1: route[0].limit[0].rate: route 'items': missing required key 'rate'");
}

// One bad key of [[route.limit]] (on line 9) and the one diagnostic it gets, from the column on.
struct LimitKeyError {
  std::string key_line;
  std::string expected;
};

void expect_limit_key_errors(const std::vector<LimitKeyError>& cases, const std::string& route_keys = "") {
  for (const LimitKeyError& bad : cases) {
    std::string keys = bad.key_line.starts_with("rate") ? bad.key_line : bad.key_line + "\nrate = \"1/s\"";
    EXPECT_EQ(sole_error(with_limit(keys, route_keys)),
              "arbiter.toml:" + std::to_string(9 + (route_keys.empty() ? 0 : 1)) + ":" + bad.expected)
        << bad.key_line;
  }
}

TEST(RateLimitConfigErrorsTest, Rate) {
  const std::string must_look = "8: route[0].limit[0].rate: route 'items': rate must look like \"20/s\", \"100/m\" or "
                                "\"1000/h\", got ";
  expect_limit_key_errors({
      {"rate = \"20\"", must_look + "\"20\""},
      {"rate = \"20/d\"", must_look + "\"20/d\""},
      {"rate = \"-1/s\"", must_look + "\"-1/s\""},
      {"rate = \"0/s\"", "8: route[0].limit[0].rate: route 'items': a rate must allow at least 1 request, got \"0/s\""},
      {"rate = \"1000000001/s\"",
       "8: route[0].limit[0].rate: route 'items': at most 1000000000 requests a period, got \"1000000001/s\""},
      {"rate = 20",
       "8: route[0].limit[0].rate: route 'items': expected a rate string; write the period too, e.g. \"20/s\""},
      {"rate = 1.5", "8: route[0].limit[0].rate: route 'items': expected a rate string such as \"20/s\", got a float"},
  });
}

TEST(RateLimitConfigErrorsTest, Burst) {
  expect_limit_key_errors({
      {"burst = 0", "9: route[0].limit[0].burst: route 'items': out of range: must be between 1 and 1000000000, got 0"},
      {"burst = \"5\"", "9: route[0].limit[0].burst: route 'items': expected an integer, got a string"},
  });
  // The largest bucket a slow rate can count in nanoseconds of refill.
  EXPECT_EQ(sole_error(with_limit("rate = \"7/h\"\nburst = 6000000")),
            "arbiter.toml:10:9: route[0].limit[0].burst: route 'items': out of range: must be between 1 and 5124094, "
            "got 6000000");
}

TEST(RateLimitConfigErrorsTest, Key) {
  expect_limit_key_errors({
      {"key = \"client\"",
       "7: route[0].limit[0].key: route 'items': expected \"ip\", \"global\" or \"header:NAME\", got \"client\""},
      {"key = \"header:\"",
       "7: route[0].limit[0].key: route 'items': no field name after \"header:\"; name the request field, e.g. "
       "\"header:X-Api-Key\""},
      {"key = \"header:X Api\"",
       "7: route[0].limit[0].key: route 'items': invalid field name \"X Api\"; a field name is a token of letters, "
       "digits and !#$%&'*+-.^_`|~"},
      {"key = 1", "7: route[0].limit[0].key: route 'items': expected a string, got an integer"},
  });
}

TEST(RateLimitConfigErrorsTest, Methods) {
  expect_limit_key_errors({
      {"methods = [\"GET\", \"BAD METHOD\"]",
       "19: route[0].limit[0].methods[1]: route 'items': invalid method name \"BAD METHOD\"; a method is a token of "
       "letters, digits and !#$%&'*+-.^_`|~"},
      {"methods = []",
       "11: route[0].limit[0].methods: route 'items': no methods; leave out 'methods' to take every method"},
  });
  expect_limit_key_errors({{"methods = [\"DELETE\"]",
                            "11: route[0].limit[0].methods: route 'items': the route takes no DELETE requests (only "
                            "GET, PUT), so this limit would never apply to them"}},
                          "methods = [\"GET\", \"PUT\"]\n");
}

TEST(RateLimitConfigErrorsTest, NamesAndMaxKeys) {
  expect_limit_key_errors({
      {"name = \"\"",
       "8: route[0].limit[0].name: route 'items': a limit name cannot be empty; leave out 'name' for the default"},
      {"name = \"caf\xC3\xA9\"",
       "8: route[0].limit[0].name: route 'items': a limit name must be printable ASCII: clients receive it in the "
       "RateLimit fields"},
      {"max_keys = 0",
       "12: route[0].limit[0].max_keys: route 'items': out of range: must be between 1 and 1000000000, got 0"},
      {"brust = 4", "1: route[0].limit[0].brust: route 'items': unknown key; did you mean 'burst'?"},
  });
}

TEST(RateLimitConfigErrorsTest, DuplicateNamesWithinARoute) {
  EXPECT_EQ(sole_error(with_limit("name = \"a\"\nrate = \"1/s\"\n[[route.limit]]\nname = \"a\"\nrate = \"2/s\"")),
            "arbiter.toml:12:8: route[0].limit[1].name: route 'items': duplicate limit name 'a'; the limit at line 9 "
            "already has it");
  // A derived name counts too.
  EXPECT_EQ(sole_error(with_limit("rate = \"1/s\"\n[[route.limit]]\nname = \"items-limit-0\"\nrate = \"2/s\"")),
            "arbiter.toml:11:8: route[0].limit[1].name: route 'items': duplicate limit name 'items-limit-0'; the "
            "limit at line 8 already has it");
  // Two routes may use one name: their limits never share buckets.
  EXPECT_NO_THROW(parse_config(upstream_then(kRoute + "[[route.limit]]\nname = \"a\"\nrate = \"1/s\"\n\n[[route]]\n"
                                                      "name = \"other\"\npath = \"/other\"\nupstream = \"legacy\"\n"
                                                      "[[route.limit]]\nname = \"a\"\nrate = \"1/s\"\n"),
                               "arbiter.toml"));
}

TEST(RateLimitConfigErrorsTest, RateLimitHeadersIsABoolean) {
  EXPECT_EQ(sole_error(with_limit("rate = \"1/s\"", "rate_limit_headers = \"no\"\n")),
            "arbiter.toml:8:22: route[0].rate_limit_headers: route 'items': expected a boolean (true or false), got a "
            "string");
}

TEST(RateLimitConfigErrorsTest, EveryBadKeyIsReported) {
  EXPECT_EQ(errors_in(with_limit("name = \"\"\nrate = \"x\"\nburst = 0\nkey = \"k\"\nmethods = [1]\nmax_keys = 0\n"
                                 "[[route.limit]]\nbogus = 1"))
                .size(),
            8u);
}

// ---- [route.concurrency] ----

// kRoute with a [route.concurrency] table holding `keys`, on line 8; its keys from line 9.
std::string with_concurrency(const std::string& keys) {
  return upstream_then(kRoute + "[route.concurrency]\n" + keys + "\n");
}

TEST(ConcurrencyConfigTest, MaxInFlightAloneTakesEveryDefault) {
  Config config = parse_config(with_concurrency("max_in_flight = 64"), "arbiter.toml");
  ASSERT_NE(concurrency_of(config.routes.at(0)), nullptr);
  const ConcurrencyConfig& concurrency = *concurrency_of(config.routes[0]);
  EXPECT_EQ(concurrency.max_in_flight, 64u);
  EXPECT_EQ(concurrency.max_queue, 128u);
  EXPECT_EQ(concurrency.queue_timeout, 2s);
  EXPECT_EQ(concurrency.key, KeyKind::Global);
  EXPECT_EQ(concurrency.header, "");
  EXPECT_EQ(concurrency.max_keys, 100000u);
  EXPECT_EQ(rate_limit_of(config.routes[0]), nullptr);
}

TEST(ConcurrencyConfigTest, ReadsEveryKey) {
  Config config = parse_config(with_concurrency("max_in_flight = 2\nmax_queue = 0\nqueue_timeout = \"250ms\"\n"
                                                "key = \"header:X-Api-Key\"\nmax_keys = 10"),
                               "arbiter.toml");
  ConcurrencyConfig expected;
  expected.max_in_flight = 2;
  expected.max_queue = 0;
  expected.queue_timeout = 250ms;
  expected.key = KeyKind::Header;
  expected.header = "X-Api-Key";
  expected.max_keys = 10;
  EXPECT_EQ(*concurrency_of(config.routes.at(0)), expected);
  EXPECT_EQ(concurrency_of(parse_config(with_concurrency("max_in_flight = 1\nkey = \"ip\""), "a.toml").routes[0])->key,
            KeyKind::ClientAddress);
}

TEST(ConcurrencyConfigErrorsTest, BadKeys) {
  EXPECT_EQ(sole_error(with_concurrency("max_queue = 3")),
            "arbiter.toml:8:1: route[0].concurrency.max_in_flight: route 'items': missing required key "
            "'max_in_flight'");
  EXPECT_EQ(sole_error(upstream_then(kRoute + "concurrency = 64\n")),
            "arbiter.toml:8:15: route[0].concurrency: route 'items': expected a table, got an integer");
  struct Case {
    std::string key_line;
    std::string expected;
  };
  for (const Case& bad : std::vector<Case>{
           {"max_in_flight = 0",
            "17: route[0].concurrency.max_in_flight: route 'items': out of range: must be between 1 and 1000000, got "
            "0"},
           {"max_queue = -1",
            "13: route[0].concurrency.max_queue: route 'items': out of range: must be between 0 and 1000000, got -1"},
           {"queue_timeout = \"0s\"", "17: route[0].concurrency.queue_timeout: route 'items': must be at least 1ms"},
           {"key = \"everyone\"",
            "7: route[0].concurrency.key: route 'items': expected \"ip\", \"global\" or \"header:NAME\", got "
            "\"everyone\""},
           {"max_keys = 0",
            "12: route[0].concurrency.max_keys: route 'items': out of range: must be between 1 and 1000000000, got 0"},
           {"max_inflight = 2",
            "1: route[0].concurrency.max_inflight: route 'items': unknown key; did you mean 'max_in_flight'?"},
       }) {
    bool alone = bad.key_line.starts_with("max_in_flight =");
    std::string keys = alone ? bad.key_line : "max_in_flight = 4\n" + bad.key_line;
    std::string line = alone ? "9" : "10";
    EXPECT_EQ(sole_error(with_concurrency(keys)), "arbiter.toml:" + line + ":" + bad.expected);
  }
}

// ---- The route table ----

TEST(FormatRouteTableTest, AlignsColumns) {
  Config config = parse_config(R"([upstream.catalog]
servers = ["127.0.0.1:8081", "[::1]:8082"]

[upstream.search]
servers = ["127.0.0.1:9200"]

[[route]]
name = "products"
path = "/products/{sku}"
methods = ["GET", "PUT"]
upstream = "catalog"

[[route]]
name = "all"
path = "/*"
upstream = "search"
)",
                               "arbiter.toml");
  EXPECT_EQ(format_route_table(config),
            "ROUTE     PATH             METHODS   UPSTREAM                              POLICIES\n"
            "products  /products/{sku}  GET, PUT  catalog (127.0.0.1:8081, [::1]:8082)  -\n"
            "all       /*               *         search (127.0.0.1:9200)               -\n");
}

TEST(FormatRouteTableTest, ShowsTheEtagPolicyAndHowItVerifies) {
  Config config = parse_config(upstream_then(kRoute + "[route.etag]\n\n[[route]]\nname = \"cached\"\npath = "
                                                      "\"/cached/{id}\"\nupstream = \"legacy\"\n[route.etag]\n"
                                                      "verify = \"cache\"\n\n[[route]]\nname = \"plain\"\npath = "
                                                      "\"/plain\"\nupstream = \"legacy\"\n"),
                               "arbiter.toml");
  EXPECT_EQ(format_route_table(config),
            "ROUTE   PATH          METHODS  UPSTREAM                 POLICIES\n"
            "items   /items/{id}   *        legacy (127.0.0.1:8081)  etag(verify=upstream)\n"
            "cached  /cached/{id}  *        legacy (127.0.0.1:8081)  etag(verify=cache)\n"
            "plain   /plain        *        legacy (127.0.0.1:8081)  -\n");
}

TEST(FormatRouteTableTest, ShowsRateLimitsAndConcurrency) {
  Config config = parse_config(
      upstream_then(kRoute + "[[route.limit]]\nname = \"per-client\"\nrate = \"20/s\"\nburst = 40\n"
                             "[route.concurrency]\nmax_in_flight = 64\n\n[[route]]\nname = \"api\"\npath = \"/api\"\n"
                             "upstream = \"legacy\"\n[[route.limit]]\nrate = \"100/m\"\nkey = \"header:X-Api-Key\"\n"
                             "[[route.limit]]\nname = \"all\"\nrate = \"1000/h\"\nburst = 50\n[route.concurrency]\n"
                             "max_in_flight = 2\nmax_queue = 0\nkey = \"ip\"\n[route.etag]\n"),
      "arbiter.toml");
  EXPECT_EQ(format_route_table(config),
            "ROUTE  PATH         METHODS  UPSTREAM                 POLICIES\n"
            "items  /items/{id}  *        legacy (127.0.0.1:8081)  rate_limit(per-client 20/s burst 40), "
            "concurrency(64, queue 128)\n"
            "api    /api         *        legacy (127.0.0.1:8081)  rate_limit(api-limit-0 100/m burst 2; all 1000/h "
            "burst 50), concurrency(2 per ip, queue 0), etag(verify=upstream)\n");
}

TEST(FormatRouteTableTest, UpstreamNotInTheConfigShowsItsNameOnly) {
  Config config;
  RouteConfig route;
  route.name = "r";
  route.path = "/";
  route.methods = {"DELETE"};
  route.upstream = "gone";
  config.routes.push_back(route);
  EXPECT_EQ(format_route_table(config),
            "ROUTE  PATH  METHODS  UPSTREAM  POLICIES\n"
            "r      /     DELETE   gone      -\n");
}

// ---- The effective configuration as JSON (GET /config) ----

TEST(ConfigJsonTest, DurationsAsTheFileWritesThem) {
  EXPECT_EQ(duration_text(10s), "10s");
  EXPECT_EQ(duration_text(250ms), "250ms");
  EXPECT_EQ(duration_text(1500ms), "1500ms");
  EXPECT_EQ(duration_text(0ms), "0s");
  EXPECT_EQ(duration_text(2min), "120s");
  for (Duration d : {Duration(0), Duration(1), Duration(999), Duration(1000), Duration(86'400'000)}) {
    EXPECT_EQ(parse_duration(duration_text(d)), d) << duration_text(d);
  }
}

TEST(ConfigJsonTest, EverySectionWithDefaultsFilledIn) {
  Config config = parse_config(kUpstream + kRoute, "arbiter.toml");
  auto json = nlohmann::json::parse(config_to_json(config));
  EXPECT_EQ(json["file"], "arbiter.toml");
  EXPECT_EQ(json["server"]["listen"], nlohmann::json::array({"127.0.0.1:8080"}));
  EXPECT_EQ(json["server"]["workers"], expected_default_workers());  // 0 resolved
  EXPECT_EQ(json["server"]["header_timeout"], "10s");
  EXPECT_EQ(json["server"]["idle_timeout"], "60s");
  EXPECT_EQ(json["server"]["drain_timeout"], "10s");
  EXPECT_EQ(json["server"]["max_header_bytes"], 65536);
  EXPECT_EQ(json["server"]["max_body_bytes"], 16u << 20);
  EXPECT_EQ(json["server"]["max_connections"], 10000);
  EXPECT_EQ(json["server"]["trusted_proxies"], nlohmann::json::array());
  EXPECT_TRUE(json["admin"]["listen"].is_null());
  EXPECT_EQ(json["log"], (nlohmann::json{{"access", "stdout"}, {"format", "json"}}));
  EXPECT_EQ(json["upstream"]["legacy"],
            (nlohmann::json{{"servers", {"127.0.0.1:8081"}},
                            {"connect_timeout", "2s"},
                            {"response_timeout", "30s"},
                            {"fail_timeout", "10s"},
                            {"keepalive", 64}}));
  ASSERT_EQ(json["route"].size(), 1u);
  EXPECT_EQ(json["route"][0], (nlohmann::json{{"name", "items"},
                                              {"path", "/items/{id}"},
                                              {"methods", nullptr},
                                              {"upstream", "legacy"},
                                              {"websocket", true},
                                              {"tunnel_idle_timeout", "3600s"}}));
}

TEST(ConfigJsonTest, RoutesWithTheirPolicies) {
  Config config = parse_config(R"([server]
trusted_proxies = ["10.0.0.0/8"]
[admin]
listen = "127.0.0.1:9901"
[log]
access = "off"
format = "combined"
[upstream.b]
servers = ["127.0.0.1:8082"]
connect_timeout = "250ms"
[upstream.a]
servers = ["127.0.0.1:8081", "[::1]:8081"]
[[route]]
name = "accounts"
path = "/accounts/{id}"
methods = ["GET", "PUT"]
upstream = "a"
rate_limit_headers = false
[route.etag]
conflict_status = 412
verify = "cache"
source = "json:/version"
resource = "/accounts/{id}"
queue_timeout = "1.5s"
[[route.limit]]
rate = "20/m"
burst = 5
key = "header:X-Api-Key"
methods = ["PUT"]
[route.concurrency]
max_in_flight = 2
max_queue = 0
key = "ip"
[[route]]
name = "rest"
path = "/*"
upstream = "b"
)",
                               "arbiter.toml");
  auto json = nlohmann::json::parse(config_to_json(config));
  EXPECT_EQ(json["server"]["trusted_proxies"], nlohmann::json::array({"10.0.0.0/8"}));
  EXPECT_EQ(json["admin"]["listen"], "127.0.0.1:9901");
  EXPECT_EQ(json["log"], (nlohmann::json{{"access", "off"}, {"format", "combined"}}));
  // Upstreams in file order, as the file has them (ordered_json keeps the order of the text).
  auto in_order = nlohmann::ordered_json::parse(config_to_json(config));
  std::vector<std::string> upstreams;
  for (const auto& [name, value] : in_order["upstream"].items()) upstreams.push_back(name);
  EXPECT_EQ(upstreams, (std::vector<std::string>{"b", "a"}));
  EXPECT_EQ(json["upstream"]["b"]["connect_timeout"], "250ms");
  EXPECT_EQ(json["upstream"]["a"]["servers"], nlohmann::json::array({"127.0.0.1:8081", "[::1]:8081"}));

  ASSERT_EQ(json["route"].size(), 2u);
  const auto& accounts = json["route"][0];
  EXPECT_EQ(accounts["methods"], nlohmann::json::array({"GET", "PUT"}));
  EXPECT_EQ(accounts["etag"], (nlohmann::json{{"conflict_status", 412},
                                              {"require_if_match", false},
                                              {"verify", "cache"},
                                              {"source", "json:/version"},
                                              {"resource", "/accounts/{id}"},
                                              {"max_entries", 1000000},
                                              {"max_body_bytes", 1u << 20},
                                              {"max_queue", 64},
                                              {"queue_timeout", "1500ms"},
                                              {"on_conflict", "reject"},
                                              {"merge_keys", nlohmann::json::object()},
                                              {"patch", "forward"},
                                              {"write_response", "status"}}));
  EXPECT_FALSE(accounts.contains("history"));
  EXPECT_EQ(accounts["rate_limit_headers"], false);
  EXPECT_EQ(accounts["limit"], nlohmann::json::array({nlohmann::json{{"name", "accounts-limit-0"},
                                                                     {"rate", "20/m"},
                                                                     {"burst", 5},
                                                                     {"key", "header:X-Api-Key"},
                                                                     {"methods", {"PUT"}},
                                                                     {"max_keys", 100000}}}));
  EXPECT_EQ(accounts["concurrency"], (nlohmann::json{{"max_in_flight", 2},
                                                     {"max_queue", 0},
                                                     {"queue_timeout", "2s"},
                                                     {"key", "ip"},
                                                     {"max_keys", 100000}}));
  const auto& rest = json["route"][1];
  EXPECT_EQ(rest["name"], "rest");
  EXPECT_FALSE(rest.contains("etag"));
  EXPECT_FALSE(rest.contains("limit"));
  EXPECT_FALSE(rest.contains("rate_limit_headers"));
  EXPECT_FALSE(rest.contains("concurrency"));
}

TEST(ConfigTest, WebsocketTunnelsByDefaultWithAnHourOfIdleTimeout) {
  Config config = parse_config(upstream_then(kRoute), "arbiter.toml");
  EXPECT_TRUE(config.routes[0].websocket);
  EXPECT_EQ(config.routes[0].tunnel_idle_timeout, std::chrono::hours(1));
  config = parse_config(upstream_then(kRoute + "websocket = false\ntunnel_idle_timeout = \"90s\"\n"), "arbiter.toml");
  EXPECT_FALSE(config.routes[0].websocket);
  EXPECT_EQ(config.routes[0].tunnel_idle_timeout, std::chrono::seconds(90));
  auto json = nlohmann::json::parse(config_to_json(config));
  EXPECT_EQ(json["route"][0]["websocket"], false);
  EXPECT_EQ(json["route"][0]["tunnel_idle_timeout"], "90s");
}

TEST(ConfigErrorsTest, WebsocketKeysArePositionedAndSuggested) {
  EXPECT_EQ(sole_error(upstream_then(kRoute + "websocket = \"yes\"\n")),
            "arbiter.toml:8:13: route[0].websocket: route 'items': expected a boolean (true or false), got a string");
  EXPECT_EQ(sole_error(upstream_then(kRoute + "websockets = false\n")),
            "arbiter.toml:8:1: route[0].websockets: route 'items': unknown key; did you mean 'websocket'?");
  EXPECT_EQ(sole_error(upstream_then(kRoute + "tunnel_idle_timeout = 30\n")),
            "arbiter.toml:8:23: route[0].tunnel_idle_timeout: route 'items': expected a duration string; write a "
            "unit, e.g. \"30s\"");
  EXPECT_EQ(sole_error(upstream_then(kRoute + "tunnel_idle_timeout = \"0s\"\n")),
            "arbiter.toml:8:23: route[0].tunnel_idle_timeout: route 'items': must be at least 1ms");
  EXPECT_EQ(sole_error(upstream_then(kRoute + "tunnel_idle_timout = \"1m\"\n")),
            "arbiter.toml:8:1: route[0].tunnel_idle_timout: route 'items': unknown key; did you mean "
            "'tunnel_idle_timeout'?");
}

}  // namespace
}  // namespace arbiter
