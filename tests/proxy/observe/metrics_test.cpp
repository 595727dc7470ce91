#include "proxy/observe/metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "proxy/config/config.h"
#include "proxy/exchange/runtime.h"

namespace arbiter {
namespace {

// The request families of a registry, rendered, with the reload counter left at zero.
std::string render_requests(const MetricsRegistry& registry) {
  return render_exposition(request_metric_families(registry.snapshot(), ProcessCounts{}));
}

TEST(MethodLabelTest, FixedSetAndOther) {
  EXPECT_EQ(method_label("GET"), MethodLabel::Get);
  EXPECT_EQ(method_label("HEAD"), MethodLabel::Head);
  EXPECT_EQ(method_label("POST"), MethodLabel::Post);
  EXPECT_EQ(method_label("PUT"), MethodLabel::Put);
  EXPECT_EQ(method_label("PATCH"), MethodLabel::Patch);
  EXPECT_EQ(method_label("DELETE"), MethodLabel::Delete);
  EXPECT_EQ(method_label("OPTIONS"), MethodLabel::Options);
  EXPECT_EQ(method_label("MKCOL"), MethodLabel::Other);
  EXPECT_EQ(method_label("get"), MethodLabel::Other);  // llhttp hands methods over upper-case
  EXPECT_EQ(method_label(""), MethodLabel::Other);     // nothing parsable arrived
  EXPECT_EQ(method_label_name(MethodLabel::Other), "other");
  EXPECT_EQ(method_label_name(MethodLabel::Options), "OPTIONS");
}

TEST(StatusClassTest, FiveClassesWithOutliersInTheNearest) {
  EXPECT_EQ(status_class_name(status_class(100)), "1xx");
  EXPECT_EQ(status_class_name(status_class(204)), "2xx");
  EXPECT_EQ(status_class_name(status_class(304)), "3xx");
  EXPECT_EQ(status_class_name(status_class(499)), "4xx");
  EXPECT_EQ(status_class_name(status_class(503)), "5xx");
  EXPECT_EQ(status_class_name(status_class(42)), "1xx");
  EXPECT_EQ(status_class_name(status_class(999)), "5xx");
}

TEST(MetricsRenderTest, ExactTextForASmallRegistry) {
  MetricsRegistry registry;
  MetricsShard& first = registry.add_shard();
  MetricsShard& second = registry.add_shard();
  // Bounds are inclusive: 0.5 falls in le="0.5"; 20 only in +Inf.
  first.record_exchange("items", "GET", 200, 0.5);
  second.record_exchange("items", "GET", 200, 0.25);
  second.record_exchange("items", "GET", 201, 20);
  first.record_exchange("items", "PUT", 409, -1);  // refused by a policy: not timed
  first.record_exchange("", "BREW", 404, -1);
  first.connection_opened();
  first.connection_opened();
  second.connection_opened();
  first.connection_closed();

  EXPECT_EQ(render_requests(registry),
            "# HELP arbiter_requests_total Requests answered on the proxy listeners, by route (empty: no route "
            "matched), method (GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, other) and status class; 499 (the "
            "client went away) counts as 4xx.\n"
            "# TYPE arbiter_requests_total counter\n"
            "arbiter_requests_total{route=\"\",method=\"other\",status_class=\"4xx\"} 1\n"
            "arbiter_requests_total{route=\"items\",method=\"GET\",status_class=\"2xx\"} 3\n"
            "arbiter_requests_total{route=\"items\",method=\"PUT\",status_class=\"4xx\"} 1\n"
            "# HELP arbiter_upstream_response_seconds Time from the first connection attempt to the upstream "
            "until its response head arrived, for requests the upstream answered (access log decision "
            "\"forwarded\"), by route.\n"
            "# TYPE arbiter_upstream_response_seconds histogram\n"
            "arbiter_upstream_response_seconds_bucket{route=\"items\",le=\"0.001\"} 0\n"
            "arbiter_upstream_response_seconds_bucket{route=\"items\",le=\"0.0025\"} 0\n"
            "arbiter_upstream_response_seconds_bucket{route=\"items\",le=\"0.005\"} 0\n"
            "arbiter_upstream_response_seconds_bucket{route=\"items\",le=\"0.01\"} 0\n"
            "arbiter_upstream_response_seconds_bucket{route=\"items\",le=\"0.025\"} 0\n"
            "arbiter_upstream_response_seconds_bucket{route=\"items\",le=\"0.05\"} 0\n"
            "arbiter_upstream_response_seconds_bucket{route=\"items\",le=\"0.1\"} 0\n"
            "arbiter_upstream_response_seconds_bucket{route=\"items\",le=\"0.25\"} 1\n"
            "arbiter_upstream_response_seconds_bucket{route=\"items\",le=\"0.5\"} 2\n"
            "arbiter_upstream_response_seconds_bucket{route=\"items\",le=\"1\"} 2\n"
            "arbiter_upstream_response_seconds_bucket{route=\"items\",le=\"2.5\"} 2\n"
            "arbiter_upstream_response_seconds_bucket{route=\"items\",le=\"5\"} 2\n"
            "arbiter_upstream_response_seconds_bucket{route=\"items\",le=\"10\"} 2\n"
            "arbiter_upstream_response_seconds_bucket{route=\"items\",le=\"+Inf\"} 3\n"
            "arbiter_upstream_response_seconds_sum{route=\"items\"} 20.75\n"
            "arbiter_upstream_response_seconds_count{route=\"items\"} 3\n"
            "# HELP arbiter_open_connections Client connections open on the proxy listeners (the admin "
            "listener's are not counted).\n"
            "# TYPE arbiter_open_connections gauge\n"
            "arbiter_open_connections 2\n"
            "# HELP arbiter_reloads_total Configuration reloads, by result: success or failure.\n"
            "# TYPE arbiter_reloads_total counter\n"
            "arbiter_reloads_total{result=\"success\"} 0\n"
            "arbiter_reloads_total{result=\"failure\"} 0\n"
            "# HELP arbiter_retired_upstream_pools Upstream connection pools a reload replaced that connections "
            "still use (one per worker and upstream); each is freed when its last connection has closed.\n"
            "# TYPE arbiter_retired_upstream_pools gauge\n"
            "arbiter_retired_upstream_pools 0\n");
}

TEST(MetricsRenderTest, ReloadCountsComeFromTheProcessCounts) {
  std::string text = render_exposition(request_metric_families(MetricsSnapshot{}, ProcessCounts{3, 1, 2}));
  EXPECT_NE(text.find("arbiter_retired_upstream_pools 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("arbiter_reloads_total{result=\"success\"} 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find("arbiter_reloads_total{result=\"failure\"} 1\n"), std::string::npos) << text;
  // No requests yet: those families have no series and are left out entirely.
  EXPECT_EQ(text.find("arbiter_requests_total"), std::string::npos) << text;
  EXPECT_EQ(text.find("arbiter_upstream_response_seconds"), std::string::npos) << text;
}

TEST(MetricsRenderTest, LabelValuesAndHelpAreEscaped) {
  MetricFamily family{"test_total", "Back\\slash and\nnewline; \"quotes\" stay.", MetricType::Counter, {}};
  family.add({{"route", "a\"b\\c\nd"}, {"plain", "x y"}}, 1);
  EXPECT_EQ(render_exposition({family}),
            "# HELP test_total Back\\\\slash and\\nnewline; \"quotes\" stay.\n"
            "# TYPE test_total counter\n"
            "test_total{route=\"a\\\"b\\\\c\\nd\",plain=\"x y\"} 1\n");
}

TEST(MetricsRenderTest, ValuesInTheirShortestExactForm) {
  MetricFamily family{"test_value", "Values.", MetricType::Gauge, {}};
  for (double value : {0.0, 3.0, 0.1, 1e20, -2.5}) family.add({}, value);
  family.add({}, std::numeric_limits<double>::quiet_NaN());
  family.add({}, std::numeric_limits<double>::infinity());
  family.add({}, -std::numeric_limits<double>::infinity());
  EXPECT_EQ(render_exposition({family}),
            "# HELP test_value Values.\n# TYPE test_value gauge\n"
            "test_value 0\ntest_value 3\ntest_value 0.1\ntest_value 1e+20\ntest_value -2.5\n"
            "test_value NaN\ntest_value +Inf\ntest_value -Inf\n");
}

TEST(MetricsRenderTest, HistogramBucketsAreCumulative) {
  MetricFamily family{"test_seconds", "A histogram.", MetricType::Histogram, {}};
  const double bounds[] = {0.1, 1, 10};
  const std::uint64_t per_bucket[] = {2, 0, 3, 4};  // the last one: above every bound
  family.add_histogram({{"route", "r"}}, bounds, per_bucket, 55.5);
  EXPECT_EQ(render_exposition({family}),
            "# HELP test_seconds A histogram.\n# TYPE test_seconds histogram\n"
            "test_seconds_bucket{route=\"r\",le=\"0.1\"} 2\n"
            "test_seconds_bucket{route=\"r\",le=\"1\"} 2\n"
            "test_seconds_bucket{route=\"r\",le=\"10\"} 5\n"
            "test_seconds_bucket{route=\"r\",le=\"+Inf\"} 9\n"
            "test_seconds_sum{route=\"r\"} 55.5\n"
            "test_seconds_count{route=\"r\"} 9\n");
}

TEST(MetricsShardTest, EachThreadRecordsIntoItsOwnShardAndTheSnapshotSumsThem) {
  // A route name no other test uses: the process registry is shared by the whole test binary.
  constexpr std::string_view kRoute = "metrics-test-threads";
  auto before = metrics_registry().snapshot();
  std::uint64_t gets_before = 0;
  if (auto it = before.routes.find(kRoute); it != before.routes.end()) {
    gets_before = it->second.requests[static_cast<std::size_t>(MethodLabel::Get)][1];
  }
  MetricsShard* shards[2] = {};
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      shards[t] = &thread_metrics();
      EXPECT_EQ(&thread_metrics(), shards[t]);  // the same shard for the thread's every call
      for (int i = 0; i < 1000; ++i) thread_metrics().record_exchange(kRoute, "GET", 200, 0.002);
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_NE(shards[0], shards[1]);
  // Recorded by threads that have ended: still counted.
  auto after = metrics_registry().snapshot();
  const RouteMetrics& route = after.routes.at(std::string(kRoute));
  EXPECT_EQ(route.requests[static_cast<std::size_t>(MethodLabel::Get)][1] - gets_before, 2000u);
  EXPECT_EQ(route.latency_buckets[1], route.latency_count);  // 2ms: the le="0.0025" bucket
}

TEST(PolicyMetricsTest, EveryPolicyOfTheRuntimeHasItsFamilies) {
  Config config = parse_config(R"(
[upstream.legacy]
servers = ["127.0.0.1:8081"]
[[route]]
name = "items"
path = "/items/{id}"
upstream = "legacy"
[route.etag]
[[route.limit]]
name = "per-client"
rate = "5/s"
[route.concurrency]
max_in_flight = 4
[[route]]
name = "plain"
path = "/*"
upstream = "legacy"
)",
                               "arbiter.toml");
  RuntimeState state;
  Runtime runtime(std::move(config), state);
  std::string text = render_exposition(policy_metric_families(runtime));
  for (std::string_view line : {
           "# TYPE arbiter_etag_decisions_total counter\n",
           "arbiter_etag_decisions_total{route=\"items\",decision=\"conflict\"} 0\n",
           "arbiter_etag_decisions_total{route=\"items\",decision=\"precondition_required\"} 0\n",
           "arbiter_etag_decisions_total{route=\"items\",decision=\"not_modified\"} 0\n",
           "arbiter_etag_decisions_total{route=\"items\",decision=\"queue_timeout\"} 0\n",
           "# TYPE arbiter_etag_hit_ratio gauge\n",
           "arbiter_etag_hit_ratio{route=\"items\"} NaN\n",  // no tagged read yet
           "# TYPE arbiter_etag_entries gauge\n",
           "arbiter_etag_entries{route=\"items\"} 0\n",
           "arbiter_rate_limit_decisions_total{route=\"items\",limit=\"per-client\",decision=\"admitted\"} 0\n",
           "arbiter_rate_limit_decisions_total{route=\"items\",limit=\"per-client\",decision=\"limited\"} 0\n",
           "# TYPE arbiter_rate_limit_buckets gauge\n",
           "arbiter_rate_limit_buckets{route=\"items\",limit=\"per-client\"} 0\n",
           "# TYPE arbiter_rate_limit_overflow_total counter\n",
           "arbiter_rate_limit_overflow_total{route=\"items\",limit=\"per-client\"} 0\n",
           "arbiter_concurrency_decisions_total{route=\"items\",decision=\"timed_out\"} 0\n",
           "arbiter_in_flight{route=\"items\"} 0\n",
           "arbiter_queued{route=\"items\"} 0\n",
       }) {
    EXPECT_NE(text.find(line), std::string::npos) << line << " missing from:\n" << text;
  }
  EXPECT_EQ(text.find("route=\"plain\""), std::string::npos) << "a route without policies has no policy series";
  // The families in the order /metrics has always shown them: the kinds' registration order, each
  // kind's families in the order it declares them.
  std::size_t previous = 0;
  for (std::string_view family :
       {"arbiter_etag_decisions_total", "arbiter_etag_hit_ratio", "arbiter_etag_entries",
        "arbiter_rate_limit_decisions_total", "arbiter_rate_limit_buckets", "arbiter_rate_limit_overflow_total",
        "arbiter_concurrency_decisions_total", "arbiter_in_flight", "arbiter_queued"}) {
    std::size_t at = text.find("# HELP " + std::string(family) + " ");
    ASSERT_NE(at, std::string::npos) << family << " missing from:\n" << text;
    EXPECT_GE(at, previous) << family << " out of order in:\n" << text;
    previous = at;
  }
}

}  // namespace
}  // namespace arbiter
