// Rate and in-flight limits through the real binary: refused requests never reach the backend.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <nlohmann/json.hpp>
#include <thread>

#include "tests/support/proxy_fixture.h"

namespace {

using harness::ConfigOptions;
using harness::HttpClient;
using harness::HttpResponse;
using harness::eventually;
using nlohmann::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::string limited_accounts(std::string_view limits) {
  return "\n[[route]]\nname = \"accounts\"\npath = \"/accounts/{id}\"\nupstream = \"legacy\"\n" + std::string(limits);
}

// A route in front of the backend's /_test/delay, for slow requests.
std::string slow_route(std::string_view concurrency) {
  return "\n[[route]]\nname = \"slow\"\npath = \"/_test/delay\"\nupstream = \"legacy\"\n[route.concurrency]\n" +
         std::string(concurrency) + "\n";
}

class RateLimitTest : public harness::ProxyFixture {
 protected:
  std::size_t backend_requests_for(std::string_view target) {
    std::size_t n = 0;
    for (const auto& entry : backend_log()) n += entry["target"] == target;
    return n;
  }

  // The value of the gauge `FAMILY{route="ROUTE"}` on /metrics; -1 if the line is missing.
  double gauge(std::string_view family, std::string_view route) {
    HttpClient admin(*arbiter_->admin_port());
    std::string text = harness::require(admin.request("GET", "/metrics"), admin).body;
    std::string prefix = std::string(family) + "{route=\"" + std::string(route) + "\"} ";
    auto at = text.find("\n" + prefix);
    return at == std::string::npos ? -1 : std::stod(text.substr(at + 1 + prefix.size()));
  }
  double queued_on(std::string_view route) { return gauge("arbiter_queued", route); }

  bool backend_received(std::string_view target) {
    for (const auto& entry : backend_log()) {
      if (entry["target"] == target) return true;
    }
    return false;
  }

  // A connection whose request to /_test/delay holds the route's only in-flight slot: the
  // backend answers only after a minute, and the test closes the connection when done, which
  // gives the slot back at once. Returns once the request has reached the backend, so the
  // steps after it wait for the state they need, never for a fixed pause.
  HttpClient hold_the_only_slot() {
    HttpClient holder(arbiter_->port(), 70s);
    EXPECT_TRUE(holder.send_raw(harness::format_request("GET", "/_test/delay?ms=60000", arbiter_->port())));
    EXPECT_TRUE(eventually([&] { return backend_received("/_test/delay?ms=60000"); }))
        << "the holder never reached the backend";
    return holder;
  }
};

TEST_F(RateLimitTest, ABlastAdmitsBurstPlusRateTimesElapsedAndOnlyThoseReachTheBackend) {
  start(ConfigOptions{.routes = limited_accounts(
                          "[[route.limit]]\nname = \"per-client\"\nrate = \"20/s\"\nburst = 10\nkey = \"ip\"\n")});
  clear_backend_log();
  std::atomic<int> admitted{0}, limited{0}, other{0};
  // The bounds come from measured times, not from the blast's nominal length, so a slow
  // round trip (a loaded, sanitized machine) moves them instead of breaking them: every
  // decision falls between `began` and `ended`; the bucket was created at the first decision,
  // before any response came back, and the last decision came after the last request left.
  constexpr int kBlasters = 3;
  std::vector<Clock::time_point> first_answered(kBlasters, Clock::time_point::max());
  std::vector<Clock::time_point> last_sent(kBlasters, Clock::time_point::min());
  auto began = Clock::now();
  auto until = began + 2s;
  std::vector<std::thread> blasters;
  for (int c = 0; c < kBlasters; ++c) {
    blasters.emplace_back([&, c] {
      HttpClient client(arbiter_->port());
      while (Clock::now() < until) {
        last_sent[c] = Clock::now();
        auto response = client.request("GET", "/accounts/1");
        if (!response) {
          ++other;
          return;
        }
        first_answered[c] = std::min(first_answered[c], Clock::now());
        if (response->status == 200) {
          ++admitted;
        } else if (response->status == 429) {
          ++limited;
        } else {
          ++other;
        }
      }
    });
  }
  for (auto& blaster : blasters) blaster.join();
  auto ended = Clock::now();
  auto seconds = [](Clock::duration d) { return std::chrono::duration<double>(d).count(); };
  double longest = seconds(ended - began);
  double shortest =
      seconds(*std::max_element(last_sent.begin(), last_sent.end()) -
              *std::min_element(first_answered.begin(), first_answered.end()));
  EXPECT_EQ(other.load(), 0);
  EXPECT_GT(limited.load(), 0);
  // One token of slack each way: a fraction of a token left over, a refill tick's rounding.
  EXPECT_LE(admitted.load(), 10 + 20 * longest + 1) << "decisions within " << longest << " s";
  EXPECT_GE(admitted.load(), 10 + 20 * shortest - 1) << "decisions spanning at least " << shortest << " s";
  EXPECT_EQ(backend_requests_for("/accounts/1"), static_cast<std::size_t>(admitted.load()));
}

// 3/h: one token every 20 minutes, so however slow the machine, none comes back during the
// test and every field's value is exact (the seconds are rounded up).
TEST_F(RateLimitTest, TheRefusalIsA429ProblemWithStandardFields) {
  start(ConfigOptions{.routes = limited_accounts(
                          "[[route.limit]]\nname = \"per-client\"\nrate = \"3/h\"\nburst = 3\n")});
  HttpClient client(arbiter_->port());
  // t: until the bucket is full again while tokens remain; once none does, until the next one.
  const std::string expected_t[] = {"1200", "2400", "1200"};
  for (int i = 0; i < 3; ++i) {
    auto admitted = client.request("GET", "/accounts/1");
    ASSERT_TRUE(admitted) << client.last_error();
    EXPECT_EQ(admitted->status, 200);
    EXPECT_EQ(admitted->header("RateLimit").value_or(""),
              "\"per-client\";r=" + std::to_string(2 - i) + ";t=" + expected_t[i]);
  }
  auto refused = client.request("GET", "/accounts/1");
  ASSERT_TRUE(refused) << client.last_error();
  EXPECT_EQ(refused->status, 429);
  EXPECT_EQ(refused->header("Content-Type").value_or(""), "application/problem+json");
  EXPECT_EQ(refused->header("Retry-After").value_or(""), "1200");
  EXPECT_EQ(refused->header("RateLimit-Policy").value_or(""), "\"per-client\";q=3;w=3600");
  EXPECT_EQ(refused->header("RateLimit").value_or(""), "\"per-client\";r=0;t=1200");
  json problem = json::parse(refused->body);
  EXPECT_EQ(problem["type"], "https://iana.org/assignments/http-problem-types#quota-exceeded");
  EXPECT_EQ(problem["status"], 429);
  EXPECT_EQ(problem["violated-policies"], json::array({"per-client"}));
  EXPECT_TRUE(refused->keep_alive);
}

TEST_F(RateLimitTest, AClientThatWaitsRetryAfterIsAdmitted) {
  start(ConfigOptions{.routes = limited_accounts("[[route.limit]]\nname = \"slowly\"\nrate = \"1/s\"\nburst = 1\n")});
  EXPECT_EQ(send("GET", "/accounts/1").status, 200);
  HttpResponse refused = send("GET", "/accounts/1");
  ASSERT_EQ(refused.status, 429);
  int retry_after = std::stoi(refused.header("Retry-After").value_or("0"));
  ASSERT_GE(retry_after, 1);
  std::this_thread::sleep_for(std::chrono::seconds(retry_after));
  EXPECT_EQ(send("GET", "/accounts/1").status, 200);
}

TEST_F(RateLimitTest, TwoApiKeysHaveSeparateBuckets) {
  start(ConfigOptions{.routes = limited_accounts(
                          "[[route.limit]]\nname = \"per-key\"\nrate = \"1/m\"\nburst = 2\nkey = \"header:X-Api-Key\"\n")});
  EXPECT_EQ(send("GET", "/accounts/1", {}, {{"X-Api-Key", "alpha"}}).status, 200);
  EXPECT_EQ(send("GET", "/accounts/1", {}, {{"X-Api-Key", "alpha"}}).status, 200);
  EXPECT_EQ(send("GET", "/accounts/1", {}, {{"X-Api-Key", "alpha"}}).status, 429);
  EXPECT_EQ(send("GET", "/accounts/1", {}, {{"X-Api-Key", "beta"}}).status, 200);
}

// Issue #12 item 6: with max_keys reached, a client rotating X-Api-Key values neither resets
// another client's spent bucket nor gets a fresh burst per key: the new keys share one
// overflow bucket of the limit, counted on /metrics.
TEST_F(RateLimitTest, RotatingKeysNeitherResetAVictimsBucketNorEscapeTheLimit) {
  // 1/h: nothing refills while the test runs, however slow the machine.
  start(ConfigOptions{.routes = limited_accounts("[[route.limit]]\nname = \"per-key\"\nrate = \"1/h\"\nburst = 5\n"
                                                 "key = \"header:X-Api-Key\"\nmax_keys = 20\n")});
  clear_backend_log();
  HttpClient victim(arbiter_->port());
  for (int i = 0; i < 5; ++i) {
    auto response = victim.request("GET", "/accounts/1", {{"X-Api-Key", "victim"}});
    ASSERT_TRUE(response) << victim.last_error();
    ASSERT_EQ(response->status, 200);
  }
  auto spent = victim.request("GET", "/accounts/1", {{"X-Api-Key", "victim"}});
  ASSERT_TRUE(spent) << victim.last_error();
  ASSERT_EQ(spent->status, 429);

  HttpClient attacker(arbiter_->port());
  int admitted = 0;
  for (int i = 0; i < 200; ++i) {
    auto response = attacker.request("GET", "/accounts/1", {{"X-Api-Key", "rotated-" + std::to_string(i)}});
    ASSERT_TRUE(response) << attacker.last_error();
    ASSERT_TRUE(response->status == 200 || response->status == 429) << response->status;
    admitted += response->status == 200;
  }
  auto after = victim.request("GET", "/accounts/1", {{"X-Api-Key", "victim"}});
  ASSERT_TRUE(after) << victim.last_error();
  EXPECT_EQ(after->status, 429) << "the victim's spent bucket came back full";
  // 19 keys found a place of their own (5 tokens each, one spent); the other 181 shared one
  // bucket of burst 5.
  EXPECT_EQ(admitted, 19 + 5);
  EXPECT_EQ(backend_requests_for("/accounts/1"), static_cast<std::size_t>(5 + admitted));
  HttpClient admin(*arbiter_->admin_port());
  std::string text = harness::require(admin.request("GET", "/metrics"), admin).body;
  EXPECT_NE(text.find("arbiter_rate_limit_overflow_total{route=\"accounts\",limit=\"per-key\"} 181\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("arbiter_rate_limit_buckets{route=\"accounts\",limit=\"per-key\"} 20\n"), std::string::npos)
      << text;
}

TEST_F(RateLimitTest, MethodFilterSpendsTokensOnlyForThoseMethods) {
  start(ConfigOptions{.routes = limited_accounts(
                          "[[route.limit]]\nname = \"writes\"\nrate = \"1/m\"\nburst = 1\nmethods = [\"PUT\"]\n")});
  for (int i = 0; i < 5; ++i) EXPECT_EQ(send("GET", "/accounts/1").status, 200);
  EXPECT_EQ(send("PUT", "/accounts/1", R"({"balance":1})").status, 200);
  clear_backend_log();
  EXPECT_EQ(send("PUT", "/accounts/1", R"({"balance":2})").status, 429);
  EXPECT_EQ(backend_log().size(), 0u);
}

// Four slow requests (each answered after `delay_ms`) at once against max_in_flight = 2.
std::vector<int> four_slow_requests(std::uint16_t port, int delay_ms = 600) {
  std::vector<int> statuses(4, 0);
  std::vector<std::thread> clients;
  for (int i = 0; i < 4; ++i) {
    clients.emplace_back([&, i] {
      HttpClient client(port, 30s);
      auto response = client.request("GET", "/_test/delay?ms=" + std::to_string(delay_ms));
      statuses[i] = response ? response->status : -1;
    });
  }
  for (auto& client : clients) client.join();
  std::sort(statuses.begin(), statuses.end());
  return statuses;
}

TEST_F(RateLimitTest, MaxInFlightWithoutQueueRefusesTheExcess) {
  start(ConfigOptions{.leading_routes = slow_route("max_in_flight = 2\nmax_queue = 0\n")});
  // The first two are held long enough for the other two to arrive however slowly the
  // clients start on a loaded machine.
  EXPECT_EQ(four_slow_requests(arbiter_->port(), 5000), (std::vector<int>{200, 200, 503, 503}));
}

TEST_F(RateLimitTest, MaxInFlightWithAQueueServesEveryoneInTwoWaves) {
  start(ConfigOptions{.leading_routes = slow_route("max_in_flight = 2\nmax_queue = 2\nqueue_timeout = \"5s\"\n")});
  auto began = Clock::now();
  EXPECT_EQ(four_slow_requests(arbiter_->port()), (std::vector<int>{200, 200, 200, 200}));
  EXPECT_GE(Clock::now() - began, 1200ms) << "more than two were at the backend at once";
}

TEST_F(RateLimitTest, QueueTimeoutIs503WithRetryAfter) {
  start(ConfigOptions{.leading_routes = slow_route("max_in_flight = 1\nmax_queue = 1\nqueue_timeout = \"200ms\"\n")});
  HttpClient holder = hold_the_only_slot();
  HttpResponse waited = send("GET", "/_test/delay?ms=10");
  EXPECT_EQ(waited.status, 503);
  EXPECT_TRUE(waited.header("Retry-After").has_value());
  EXPECT_EQ(waited.header("Content-Type").value_or(""), "application/problem+json");
  // Refused after waiting, not at once for a full queue (max_queue = 1 leaves it room).
  EXPECT_NE(json::parse(waited.body)["detail"].get<std::string>().find("(queue_timeout)"), std::string::npos)
      << waited.body;
}

TEST_F(RateLimitTest, AQueuedClientThatDisconnectsGivesItsPlaceBack) {
  start(ConfigOptions{.leading_routes = slow_route("max_in_flight = 1\nmax_queue = 1\nqueue_timeout = \"60s\"\n")});
  HttpClient holder = hold_the_only_slot();
  {
    HttpClient quitter(arbiter_->port());
    ASSERT_TRUE(quitter.send_raw(harness::format_request("GET", "/_test/delay?ms=10", arbiter_->port())));
    ASSERT_TRUE(eventually([&] { return queued_on("slow") == 1; })) << "the quitter was never queued";
  }  // disconnects while queued
  ASSERT_TRUE(eventually([&] { return queued_on("slow") == 0; })) << "the quitter kept its place in the queue";
  // The queue has room again: this one waits for the holder instead of being refused.
  HttpClient waiter(arbiter_->port(), 30s);
  ASSERT_TRUE(waiter.send_raw(harness::format_request("GET", "/_test/delay?ms=10", arbiter_->port())));
  ASSERT_TRUE(eventually([&] { return queued_on("slow") == 1; })) << "the waiter was not queued";
  holder.close();  // gives the slot to the waiter
  auto response = waiter.read_response();
  ASSERT_TRUE(response) << waiter.last_error();
  EXPECT_EQ(response->status, 200);
}

TEST_F(RateLimitTest, AClientThatDisconnectsInFlightGivesItsSlotBackAtOnce) {
  start(ConfigOptions{.leading_routes = slow_route("max_in_flight = 1\nmax_queue = 0\n")});
  // The backend would answer after a minute; the slot must come back as soon as the client goes.
  hold_the_only_slot().close();
  EXPECT_TRUE(eventually([&] { return gauge("arbiter_in_flight", "slow") == 0; }))
      << "the slot stayed taken after its client disconnected";
  EXPECT_EQ(send("GET", "/_test/delay?ms=10").status, 200);
}

}  // namespace
