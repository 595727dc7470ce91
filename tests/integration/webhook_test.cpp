// Webhooks through the real binary ([[control.webhook]], issue #16): a 409 through an ETag route
// reaches a loopback receiver as a signed event; a target answering 500 is retried (the backoff's
// fixed 1 s base makes that test take ~1.5-3 s); dead targets (a refused port, one that accepts
// and never answers) leave requests answered while their queues fill. The p99 comparison is
// bench/webhooks.

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "tests/support/proxy_fixture.h"
#include "tests/support/webhook_receiver.h"

namespace {

using harness::ConfigOptions;
using harness::HttpClient;
using harness::HttpResponse;
using nlohmann::json;
using webhook_test::WebhookReceiver;
using namespace std::chrono_literals;

constexpr std::string_view kWebhookAccountsRoute =
    "\n[[route]]\nname = \"accounts\"\npath = \"/accounts/{id}\"\nupstream = \"legacy\"\n[route.etag]\n";

std::string webhook_table(const std::string& url, std::string_view extra = {}) {
  return "\n[[control.webhook]]\nurl = \"" + url + "\"\nsecret = \"hook-secret\"\n" + std::string(extra) + "\n";
}

class WebhookTest : public harness::ProxyFixture {
 protected:
  void start_with(const std::string& webhooks) {
    start(ConfigOptions{.routes = std::string(kWebhookAccountsRoute) + webhooks});
  }
  // A PUT with an If-Match that matches no version: 409, a `conflict` event.
  void provoke_conflict() {
    HttpResponse stale = send("PUT", "/accounts/1", R"({"id":"1","balance":9})", {{"If-Match", "\"stale\""}});
    ASSERT_EQ(stale.status, 409) << stale.body;
  }
  // The value of the sample `name{url="<url>"}` in the admin /metrics; -1 when absent.
  double metric(const std::string& name, const std::string& url) {
    HttpClient client(*arbiter_->admin_port());
    HttpResponse response = harness::require(client.request("GET", "/metrics", {}, {}), client);
    std::string prefix = name + "{url=\"" + url + "\"} ";
    std::size_t at = response.body.find("\n" + prefix);
    return at == std::string::npos ? -1 : std::stod(response.body.substr(at + 1 + prefix.size()));
  }
};

TEST_F(WebhookTest, AConflictReachesTheReceiverSignedWithTheSecret) {
  WebhookReceiver receiver;
  start_with(webhook_table(receiver.url()));
  provoke_conflict();
  ASSERT_TRUE(receiver.wait_for(1));
  webhook_test::ReceivedRequest request = receiver.requests()[0];
  EXPECT_EQ(request.request_line, "POST /hooks HTTP/1.1");
  EXPECT_EQ(request.field("content-type"), "application/json");
  EXPECT_EQ(request.field("user-agent").rfind("arbiter/", 0), 0u);
  EXPECT_EQ(request.field("arbiter-event"), "conflict");
  // The receiver's check: HMAC-SHA256 of the raw body with the shared secret.
  EXPECT_EQ(request.field("arbiter-signature"), webhook_test::expected_signature("hook-secret", request.body));
  EXPECT_NE(request.field("arbiter-signature"), webhook_test::expected_signature("other-secret", request.body));
  json event = json::parse(request.body);
  EXPECT_EQ(event["type"], "conflict");
  EXPECT_EQ(event["route"], "accounts");
  EXPECT_EQ(event["resource"], "/accounts/1");
  EXPECT_EQ(event["your_etag"], "\"stale\"");
  EXPECT_EQ(request.field("arbiter-delivery"), std::to_string(event["id"].get<std::uint64_t>()));
  EXPECT_TRUE(harness::eventually([&] { return metric("arbiter_webhook_delivered_total", receiver.url()) == 1; }));
}

TEST_F(WebhookTest, ATargetAnswering500TwiceGetsTheEventOnTheThirdAttempt) {
  WebhookReceiver receiver([](std::size_t index) { return std::optional<int>(index < 2 ? 500 : 200); });
  start_with(webhook_table(receiver.url()));
  provoke_conflict();
  ASSERT_TRUE(receiver.wait_for(3));  // after 0.5-1 s and 1-2 s of backoff
  std::vector<webhook_test::ReceivedRequest> requests = receiver.requests();
  EXPECT_EQ(requests[2].body, requests[0].body);
  EXPECT_EQ(requests[2].field("arbiter-delivery"), requests[0].field("arbiter-delivery"));
  EXPECT_TRUE(harness::eventually([&] { return metric("arbiter_webhook_delivered_total", receiver.url()) == 1; }));
  EXPECT_EQ(metric("arbiter_webhook_retries_total", receiver.url()), 2);
  EXPECT_EQ(metric("arbiter_webhook_failed_total", receiver.url()), 0);
}

TEST_F(WebhookTest, DeadTargetsDoNotHoldRequestsBack) {
  WebhookReceiver silent([](std::size_t) { return std::nullopt; });  // accepts, reads, never answers
  const std::string refused = "http://127.0.0.1:" + std::to_string(webhook_test::refused_port()) + "/hooks";
  start_with(webhook_table(refused, "queue = 5\n") + webhook_table(silent.url(), "timeout = \"10m\"\n"));
  constexpr int kConflicts = 20;
  for (int i = 0; i < kConflicts; ++i) provoke_conflict();
  EXPECT_EQ(send("GET", "/accounts/1").status, 200);
  // Every event is either held (one in delivery and `queue` waiting) or dropped, none delivered.
  EXPECT_TRUE(harness::eventually([&] {
    return metric("arbiter_webhook_queued", refused) == 6 && metric("arbiter_webhook_dropped_total", refused) == kConflicts - 6;
  }));
  EXPECT_TRUE(harness::eventually([&] { return metric("arbiter_webhook_queued", silent.url()) == kConflicts; }));
  EXPECT_TRUE(silent.wait_for(1));
  EXPECT_EQ(metric("arbiter_webhook_delivered_total", refused), 0);
  EXPECT_EQ(metric("arbiter_webhook_delivered_total", silent.url()), 0);
}

}  // namespace
