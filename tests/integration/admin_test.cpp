// The admin listener's observability endpoints (/metrics, /config) and the combined access-log
// format, through the real binary.

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/proxy_fixture.h"

namespace {

using harness::ConfigOptions;
using harness::HttpClient;
using harness::HttpResponse;
using nlohmann::json;
using namespace std::chrono_literals;

constexpr std::string_view kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

// "tight" takes GET /items/1 ahead of the fixture's "items" route, with a limit of two requests
// an hour; "accounts" has the ETag policy.
const std::string kTightRoute =
    "\n[[route]]\nname = \"tight\"\npath = \"/items/1\"\nmethods = [\"GET\"]\nupstream = \"legacy\"\n"
    "[[route.limit]]\nname = \"two-an-hour\"\nrate = \"1/h\"\nburst = 2\n";
const std::string kAccountsRoute =
    "\n[[route]]\nname = \"accounts\"\npath = \"/accounts/{id}\"\nupstream = \"legacy\"\n[route.etag]\n"
    "conflict_status = 409\nqueue_timeout = \"750ms\"\n";

// Series text as rendered (name{labels}) -> value. Fails the test on a line that is neither a
// comment nor "SERIES VALUE".
std::map<std::string, double> parse_metrics(const std::string& text) {
  std::map<std::string, double> series;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty() || line.starts_with('#')) continue;
    std::size_t space = line.rfind(' ');
    if (space == std::string::npos) {
      ADD_FAILURE() << "not a sample line: " << line;
      continue;
    }
    std::string value = line.substr(space + 1);
    series[line.substr(0, space)] = value == "NaN" ? std::nan("") : std::stod(value);
  }
  return series;
}

std::optional<std::string> find_on_path(const std::string& program) {
  const char* path = std::getenv("PATH");
  if (path == nullptr) return std::nullopt;
  std::istringstream directories(path);
  std::string directory;
  while (std::getline(directories, directory, ':')) {
    std::string candidate = (directory.empty() ? "." : directory) + "/" + program;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return std::nullopt;
}

class AdminTest : public harness::ProxyFixture {
 protected:
  void start_with(std::string extra_after_routes = {}) {
    start(ConfigOptions{.leading_routes = kTightRoute, .routes = kAccountsRoute + extra_after_routes});
  }
  HttpResponse admin_get(std::string_view target, std::string_view method = "GET") {
    HttpClient client(*arbiter_->admin_port());
    return harness::require(client.request(method, target), client);
  }
  std::map<std::string, double> scrape() {
    HttpResponse response = admin_get("/metrics");
    EXPECT_EQ(response.status, 200);
    return parse_metrics(response.body);
  }
  // An exchange is counted when it ends, just after its last bytes were written, so a client
  // can have its answer a moment before the worker counts it: scrape until `requests` are.
  // Fails the test when they are not counted by a generous deadline (it returns as soon as they are).
  std::map<std::string, double> scrape_after(double requests) {
    std::map<std::string, double> metrics;
    double counted = 0;
    bool all = harness::eventually([&] {
      metrics = scrape();
      counted = 0;
      for (const auto& [series, value] : metrics) counted += series.starts_with("arbiter_requests_total{") ? value : 0;
      return counted >= requests;
    });
    if (!all) ADD_FAILURE() << "arbiter_requests_total counts " << counted << " requests of " << requests;
    return metrics;
  }
  // The access log's lines so far, once at least `count` of them match `pattern`.
  std::vector<std::string> log_lines_once(const std::regex& pattern, std::size_t count) {
    auto deadline = std::chrono::steady_clock::now() + 20s;
    while (true) {
      std::vector<std::string> lines = arbiter_->process().lines_stdout();
      std::size_t matching = 0;
      for (const std::string& line : lines) matching += std::regex_search(line, pattern);
      if (matching >= count || std::chrono::steady_clock::now() > deadline) return lines;
      std::this_thread::sleep_for(10ms);
    }
  }
  // The traffic the metrics test expects to see counted: kTrafficRequests requests.
  static constexpr int kTrafficRequests = 7;
  void send_traffic() {
    EXPECT_EQ(send("GET", "/items/1").status, 200);
    EXPECT_EQ(send("GET", "/items/1").status, 200);
    EXPECT_EQ(send("GET", "/items/1").status, 429);
    HttpResponse read = send("GET", "/accounts/1");
    ASSERT_EQ(read.status, 200);
    std::string etag = read.header("ETag").value_or("");
    EXPECT_EQ(send("PUT", "/accounts/1", R"({"balance":1})", {{"If-Match", etag}}).status, 200);
    EXPECT_EQ(send("PUT", "/accounts/1", R"({"balance":2})", {{"If-Match", etag}}).status, 409);  // now stale
    EXPECT_EQ(send("GET", "/no-such-route").status, 404);
  }
};

TEST_F(AdminTest, MetricsCountRequestsByRouteMethodAndStatusClassAndEveryPolicyDecision) {
  start_with();
  send_traffic();
  auto metrics = scrape_after(kTrafficRequests);
  auto value = [&](const std::string& series) {
    auto it = metrics.find(series);
    if (it == metrics.end()) {
      ADD_FAILURE() << "no series " << series;
      return -1.0;
    }
    return it->second;
  };

  EXPECT_EQ(value(R"(arbiter_requests_total{route="tight",method="GET",status_class="2xx"})"), 2);
  EXPECT_EQ(value(R"(arbiter_requests_total{route="tight",method="GET",status_class="4xx"})"), 1);  // the 429
  EXPECT_EQ(value(R"(arbiter_requests_total{route="accounts",method="GET",status_class="2xx"})"), 1);
  EXPECT_EQ(value(R"(arbiter_requests_total{route="accounts",method="PUT",status_class="2xx"})"), 1);
  EXPECT_EQ(value(R"(arbiter_requests_total{route="accounts",method="PUT",status_class="4xx"})"), 1);  // the 409
  EXPECT_EQ(value(R"(arbiter_requests_total{route="",method="GET",status_class="4xx"})"), 1);  // no route

  EXPECT_EQ(value(R"(arbiter_rate_limit_decisions_total{route="tight",limit="two-an-hour",decision="admitted"})"), 2);
  EXPECT_EQ(value(R"(arbiter_rate_limit_decisions_total{route="tight",limit="two-an-hour",decision="limited"})"), 1);
  EXPECT_EQ(value(R"(arbiter_etag_decisions_total{route="accounts",decision="conflict"})"), 1);
  EXPECT_EQ(value(R"(arbiter_etag_decisions_total{route="accounts",decision="write_forwarded"})"), 1);
  EXPECT_EQ(value(R"(arbiter_etag_decisions_total{route="accounts",decision="read_tagged"})"), 1);
  EXPECT_EQ(value(R"(arbiter_etag_decisions_total{route="accounts",decision="precondition_required"})"), 0);
  EXPECT_EQ(value(R"(arbiter_etag_hit_ratio{route="accounts"})"), 0);  // one tagged read, no 304
  EXPECT_EQ(value(R"(arbiter_reloads_total{result="success"})"), 0);
  EXPECT_EQ(value(R"(arbiter_reloads_total{result="failure"})"), 0);
  EXPECT_EQ(value(R"(arbiter_etag_entries{route="accounts"})"), 1);  // /accounts/1
  EXPECT_EQ(value(R"(arbiter_rate_limit_buckets{route="tight",limit="two-an-hour"})"), 1);  // one client

  // The histogram counts the requests the upstream answered: 2 on "tight" (not the 429), 2 on
  // "accounts" (the GET and the forwarded PUT; not the 409, nor the ETag policy's re-read).
  for (auto [route, forwarded] : {std::pair{"tight", 2}, std::pair{"accounts", 2}}) {
    std::string labels = "{route=\"" + std::string(route) + "\"";
    EXPECT_EQ(value("arbiter_upstream_response_seconds_count" + labels + "}"), forwarded) << route;
    EXPECT_EQ(value("arbiter_upstream_response_seconds_bucket" + labels + ",le=\"+Inf\"}"), forwarded) << route;
    EXPECT_GT(value("arbiter_upstream_response_seconds_sum" + labels + "}"), 0) << route;
    // Cumulative: every bucket holds at least what the one below it holds.
    double previous = 0;
    for (const char* le : {"0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5",
                           "5", "10", "+Inf"}) {
      double bucket = value("arbiter_upstream_response_seconds_bucket" + labels + ",le=\"" + le + "\"}");
      EXPECT_GE(bucket, previous) << route << " le=" << le;
      previous = bucket;
    }
  }
  // The same count as the access log's "forwarded" lines.
  std::size_t forwarded_lines = 0;
  for (const std::string& line : log_lines_once(std::regex(R"("route":"accounts".*"decision":"forwarded")"), 2)) {
    json record = json::parse(line, nullptr, false);
    if (record.is_object() && record["decision"] == "forwarded" && record["route"] == "accounts") ++forwarded_lines;
  }
  EXPECT_EQ(forwarded_lines, 2u);
}

TEST_F(AdminTest, ReloadsAreCountedByOutcome) {
  start_with();
  EXPECT_EQ(admin_get("/reload", "POST").status, 200);
  arbiter_->config_file().replace("[server]\nlisten = 7\n");
  EXPECT_EQ(admin_get("/reload", "POST").status, 422);
  auto metrics = scrape();
  EXPECT_EQ(metrics[R"(arbiter_reloads_total{result="success"})"], 1);
  EXPECT_EQ(metrics[R"(arbiter_reloads_total{result="failure"})"], 1);
}

TEST_F(AdminTest, MetricsIsTheTextFormatWithItsContentType) {
  start_with();
  // Before any request the request families have no series, and are left out as a whole.
  EXPECT_EQ(admin_get("/metrics").body.find("arbiter_requests_total"), std::string::npos);
  ASSERT_EQ(send("GET", "/items/2").status, 404);  // forwarded; the backend has no item 2
  scrape_after(1);
  HttpResponse response = admin_get("/metrics");
  ASSERT_EQ(response.status, 200);
  EXPECT_EQ(response.header("Content-Type").value_or(""), kMetricsContentType);
  EXPECT_NE(response.body.find("# TYPE arbiter_requests_total counter\n"), std::string::npos);
  EXPECT_NE(response.body.find("# TYPE arbiter_upstream_response_seconds histogram\n"), std::string::npos);
  EXPECT_NE(response.body.find("# TYPE arbiter_open_connections gauge\n"), std::string::npos);
  HttpResponse head = [&] {
    HttpClient client(*arbiter_->admin_port());
    return harness::require(client.request("HEAD", "/metrics"), client);
  }();
  EXPECT_EQ(head.status, 200);
  EXPECT_TRUE(head.body.empty());
}

// promtool (format and naming lint of the exposition) comes unpacked from Debian's prometheus
// package into build/tools, which `bash .ci/test` puts on PATH; installing the package would
// also set up a Prometheus server.
TEST_F(AdminTest, PromtoolAcceptsTheMetrics) {
  auto promtool = find_on_path("promtool");
  ASSERT_TRUE(promtool) << "promtool is not on PATH: `bash .ci/test` unpacks it into build/tools";
  start_with();
  send_traffic();
  scrape_after(kTrafficRequests);
  HttpResponse response = admin_get("/metrics");
  ASSERT_EQ(response.status, 200);
  harness::TempFile scraped(response.body, ".prom");
  // promtool reads the metrics from stdin, which run_process leaves at /dev/null.
  auto result = harness::run_process("/bin/sh", {"-c", "\"$0\" check metrics < \"$1\"", *promtool, scraped.path()});
  EXPECT_EQ(result.exit_code, std::optional<int>(0))
      << "stdout:\n" << result.stdout_text << "\nstderr:\n" << result.stderr_text << "\nmetrics:\n" << response.body;
}

TEST_F(AdminTest, OpenConnectionsGaugeFollowsClientConnections) {
  start_with();
  auto open_connections = [&] { return scrape()["arbiter_open_connections"]; };
  HttpClient first(arbiter_->port());
  HttpClient second(arbiter_->port());
  // A request on each, so both are accepted before the scrape; keep-alive keeps them open.
  ASSERT_TRUE(first.request("GET", "/items/2")) << first.last_error();
  ASSERT_TRUE(second.request("GET", "/items/2")) << second.last_error();
  EXPECT_EQ(open_connections(), 2);  // the admin listener's own connection is not counted
  first.close();
  second.close();
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (open_connections() != 0 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(20ms);
  EXPECT_EQ(open_connections(), 0);
}

TEST_F(AdminTest, ConfigIsTheEffectiveConfigurationAsJson) {
  start_with();
  HttpResponse response = admin_get("/config");
  ASSERT_EQ(response.status, 200);
  EXPECT_EQ(response.header("Content-Type").value_or(""), "application/json");
  json config = json::parse(response.body);
  EXPECT_EQ(config["file"], arbiter_->config_file().path());
  std::vector<std::string> names;
  for (const auto& route : config["route"]) names.push_back(route["name"]);
  EXPECT_EQ(names, (std::vector<std::string>{"tight", "test-hooks", "items", "items-collection", "accounts"}));
  EXPECT_EQ(config["server"]["workers"], 2);
  EXPECT_EQ(config["server"]["listen"], json::array({"127.0.0.1:0"}));  // as configured
  EXPECT_EQ(config["route"][0]["methods"], json::array({"GET"}));
  EXPECT_EQ(config["route"][0]["limit"][0]["name"], "two-an-hour");
  EXPECT_EQ(config["route"][0]["limit"][0]["rate"], "1/h");
  EXPECT_EQ(config["route"][0]["limit"][0]["burst"], 2);
  EXPECT_EQ(config["route"][4]["etag"]["queue_timeout"], "750ms");
  EXPECT_EQ(config["route"][4]["etag"]["verify"], "upstream");  // a default, filled in
  EXPECT_EQ(config["log"]["format"], "json");
}

TEST_F(AdminTest, UnknownAdminPathsListTheEndpoints) {
  start_with();
  HttpResponse response = admin_get("/metricz");
  EXPECT_EQ(response.status, 404);
  EXPECT_NE(response.body.find("/metrics"), std::string::npos) << response.body;
  EXPECT_NE(response.body.find("/config"), std::string::npos) << response.body;
  EXPECT_EQ(admin_get("/healthz").status, 200);
  EXPECT_EQ(admin_get("/readyz").status, 200);
  EXPECT_EQ(admin_get("/metrics", "DELETE").status, 405);
}

TEST_F(AdminTest, CombinedAccessLogFormat) {
  start_with("\n[log]\nformat = \"combined\"\n");  // after the routes: a table of its own
  ASSERT_EQ(send("GET", "/items/1?x=1", {},
                 {{"User-Agent", "admin-test/1.0"}, {"Referer", "http://example.test/a"}, {"X-Request-Id", "comb-1"}})
                .status,
            200);
  auto line = arbiter_->process().wait_for_line(std::regex("request_id=comb-1$"), 3s);
  ASSERT_TRUE(line) << arbiter_->process().output_summary();
  EXPECT_EQ(line->stream, harness::Stream::Stdout);
  EXPECT_TRUE(std::regex_match(
      line->line,
      std::regex(R"(127\.0\.0\.1 - - \[\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} \+0000\] )"
                 R"("GET /items/1\?x=1 HTTP/1\.1" 200 \d+ "http://example\.test/a" "admin-test/1\.0" )"
                 R"(rt=\d+\.\d{3} uht=\d+\.\d{3} route=tight decision=forwarded request_id=comb-1)")))
      << line->line;

  // Answered by Arbiter: no upstream time, no route; a quote in a field cannot end it.
  ASSERT_EQ(send("GET", "/nope", {}, {{"User-Agent", "say \"hi\""}, {"X-Request-Id", "comb-2"}}).status, 404);
  line = arbiter_->process().wait_for_line(std::regex("request_id=comb-2$"), 3s);
  ASSERT_TRUE(line) << arbiter_->process().output_summary();
  EXPECT_TRUE(std::regex_search(line->line, std::regex(R"("GET /nope HTTP/1\.1" 404 \d+ "-" "say \\x22hi\\x22" )"
                                                       R"(rt=\d+\.\d{3} uht=- route=- decision=router )")))
      << line->line;
}

}  // namespace
