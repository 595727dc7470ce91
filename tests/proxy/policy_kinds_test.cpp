// A policy kind registered by a test (tests/policies/probe_kind.*) goes through the normal
// loader, the route table, /config JSON, the Runtime and its reloads, /metrics and `explain`
// with no edit to proxy/: what "a kind is its own files plus one registration line" promises.

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "policies/policy_registry.h"
#include "proxy/config/config.h"
#include "proxy/control/config_json.h"
#include "proxy/control/explain.h"
#include "proxy/exchange/runtime.h"
#include "proxy/observe/metrics.h"
#include "tests/policies/probe_kind.h"

namespace arbiter {
namespace {

using testing::ProbePolicy;
using testing::ProbeSettings;
using testing::probe_kind;

// [[route]] on line 4; [route.probe] on line 11, its keys from line 12.
std::string probe_config(const std::string& probe_keys) {
  return "[upstream.legacy]\nservers = [\"127.0.0.1:9\"]\n\n"
         "[[route]]\nname = \"items\"\npath = \"/items/{id}\"\nupstream = \"legacy\"\n"
         "[[route.limit]]\nname = \"all\"\nrate = \"5/s\"\n"
         "[route.probe]\n" + probe_keys + "\n"
         "[route.concurrency]\nmax_in_flight = 2\n"
         "\n[[route]]\nname = \"plain\"\npath = \"/*\"\nupstream = \"legacy\"\n";
}

std::string errors_of(const std::string& toml, const PolicyRegistry& registry) {
  try {
    parse_config(toml, "probe.toml", registry);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(accepted)";
}

// One request through the route's chain, in order, as the proxy's request phase runs it.
Decision run_request_phase(const RouteRuntime& route) {
  HeaderList headers;
  RequestView view{"GET",   "/items/1", "/items/1", {}, headers, "127.0.0.1", route.config->name, {},
                   "req-1", MonotonicClock::now(), nullptr};
  for (const auto& policy : route.policies) {
    std::unique_ptr<ExchangeState> state;
    Decision decision = policy->on_request(view, state);
    if (!decision.forwards()) return decision;
  }
  return Decision::forward();
}

TEST(PolicyKindsTest, ATestKindIsReadByTheNormalLoader) {
  Config config = parse_config(probe_config("greeting = \"hello\"\nmax_hits = 3\npause = \"250ms\""), "probe.toml",
                               testing::with_probe());
  const ProbeSettings* probe = settings_of<ProbeSettings>(config.routes.at(0).policies);
  ASSERT_NE(probe, nullptr);
  EXPECT_EQ(*probe, (ProbeSettings{"hello", 3, std::chrono::milliseconds(250)}));
  EXPECT_EQ(settings_of<ProbeSettings>(config.routes.at(1).policies), nullptr);
  // The route table lists it in chain order, between the rate limit and the in-flight limit.
  std::string table = format_route_table(config);
  EXPECT_NE(table.find("rate_limit(all 5/s burst 5), probe(hello), concurrency(2, queue 128)"), std::string::npos)
      << table;
}

TEST(PolicyKindsTest, ATestKindsErrorsArePositionedAndSuggestedLikeTheProductsOwn) {
  EXPECT_EQ(errors_of(probe_config("greting = \"hello\""), testing::with_probe()),
            "probe.toml:11:1: route[0].probe.greeting: route 'items': missing required key 'greeting'\n"
            "probe.toml:12:1: route[0].probe.greting: route 'items': unknown key; did you mean 'greeting'?");
  EXPECT_EQ(errors_of(probe_config("greeting = \"hello\"\nmax_hits = 0\npause = 5"), testing::with_probe()),
            "probe.toml:13:12: route[0].probe.max_hits: route 'items': out of range: must be between 1 and 100, got 0\n"
            "probe.toml:14:9: route[0].probe.pause: route 'items': expected a duration string; write a unit, e.g. "
            "\"5s\"");
  // Unregistered, [route.probe] is a key no kind reads.
  EXPECT_EQ(errors_of(probe_config("greeting = \"hello\""), product_policy_registry()),
            "probe.toml:11:8: route[0].probe: route 'items': unknown key; expected one of: name, path, methods, "
            "upstream, etag, limit, concurrency, lock, history, rate_limit_headers, websocket, tunnel_idle_timeout");
}

TEST(PolicyKindsTest, ATestKindWritesItsOwnConfigJson) {
  Config config = parse_config(probe_config("greeting = \"hello\""), "probe.toml", testing::with_probe());
  nlohmann::json json = nlohmann::json::parse(config_to_json(config));
  const nlohmann::json& route = json["route"][0];
  EXPECT_EQ(route["probe"], (nlohmann::json{{"greeting", "hello"}, {"max_hits", 2}, {"pause", "0s"}}));
  EXPECT_EQ(route["limit"][0]["name"], "all");
  EXPECT_FALSE(json["route"][1].contains("probe"));
}

TEST(PolicyKindsTest, ATestKindRunsInItsChainPositionAndKeepsItsPolicyAcrossAnUnchangedReload) {
  PolicyRegistry registry = testing::with_probe();
  RuntimeState state;
  auto before = std::make_unique<Runtime>(parse_config(probe_config("greeting = \"hi\""), "probe.toml", registry),
                                          state);
  const RouteRuntime& items = before->route(0);
  ASSERT_EQ(items.policies.size(), 3u);
  EXPECT_EQ(items.policies[0]->kind(), "rate_limit");
  EXPECT_EQ(items.policies[1]->kind(), "probe");
  EXPECT_EQ(items.policies[2]->kind(), "concurrency");
  EXPECT_TRUE(before->route(1).policies.empty());
  std::shared_ptr<Policy> probe = items.policies[1];

  Runtime same(parse_config(probe_config("greeting = \"hi\""), "probe.toml", registry), state);
  EXPECT_EQ(same.route(0).policies[1], probe);  // the very same object: its counters go on
  Runtime changed(parse_config(probe_config("greeting = \"hi\"\nmax_hits = 5"), "probe.toml", registry), state);
  EXPECT_NE(changed.route(0).policies[1], probe);
  EXPECT_EQ(dynamic_cast<const ProbePolicy&>(*changed.route(0).policies[1]).settings().max_hits, 5u);
}

TEST(PolicyKindsTest, ATestKindsCountersAppearInTheMetrics) {
  RuntimeState state;
  Runtime runtime(
      parse_config(probe_config("greeting = \"hi\"\nmax_hits = 1"), "probe.toml", testing::with_probe()), state);
  EXPECT_TRUE(run_request_phase(runtime.route(0)).forwards());
  Decision refused = run_request_phase(runtime.route(0));
  ASSERT_FALSE(refused.forwards());
  EXPECT_EQ(refused.status(), 429);
  std::string text = render_exposition(policy_metric_families(runtime));
  for (std::string_view line : {
           "# HELP arbiter_probe_requests_total Probe decisions by route: forwarded or refused.\n"
           "# TYPE arbiter_probe_requests_total counter\n"
           "arbiter_probe_requests_total{route=\"items\",decision=\"forwarded\"} 1\n"
           "arbiter_probe_requests_total{route=\"items\",decision=\"refused\"} 1\n",
           "arbiter_rate_limit_decisions_total{route=\"items\",limit=\"all\",decision=\"admitted\"} 2\n",
           "arbiter_in_flight{route=\"items\"} 0\n",
       }) {
    EXPECT_NE(text.find(line), std::string::npos) << line << " missing from:\n" << text;
  }
  // Its families come after the product kinds' (registration order).
  EXPECT_LT(text.find("arbiter_queued"), text.find("arbiter_probe_requests_total")) << text;
}

TEST(PolicyKindsTest, ATestKindExplainsItself) {
  Config config =
      parse_config(probe_config("greeting = \"hi\"\npause = \"1.5s\""), "probe.toml", testing::with_probe());
  std::string out = explain_request(config, "PUT", "/items/1", HeaderList{});
  EXPECT_NE(out.find("  2. probe: says hi to PUT requests, 2 of them, pausing 1500ms\n"), std::string::npos) << out;
}

}  // namespace
}  // namespace arbiter
