// Webhooks: the signature, the backoff schedule and the queue bound as pure functions; the
// sender on its own thread against a MemoryConflictFeed and loopback receivers. Waits are bounded
// by progress (a request arrived, a counter moved) with a guard against a hang.

#include "proxy/net/webhooks.h"

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "policies/store/memory_conflict_feed.h"
#include "tests/proxy/control/feed_test_support.h"
#include "tests/support/webhook_receiver.h"

namespace arbiter {
namespace {

using namespace std::chrono_literals;
using webhook_test::WebhookReceiver;

TEST(WebhookSignature, Rfc4231TestCase2) {
  // RFC 4231 section 4.3: key "Jefe", data "what do ya want for nothing?".
  EXPECT_EQ(webhook_signature("Jefe", "what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(WebhookSignature, OfAJsonBody) {
  // printf '%s' '{"id":1,"type":"conflict"}' | openssl dgst -sha256 -hmac s3cret
  EXPECT_EQ(webhook_signature("s3cret", R"({"id":1,"type":"conflict"})"),
            "sha256=e8ca0a30d2aa49fa20d5f998fe12adab39b92fe09a31f05d6dd9f557ed668d0b");
  EXPECT_NE(webhook_signature("s3cret", R"({"id":1,"type":"conflict"} )"),
            webhook_signature("s3cret", R"({"id":1,"type":"conflict"})"));
}

TEST(WebhookBackoff, DoublesFromOneSecondUpToSixtyWithJitterInTheUpperHalf) {
  WebhookBackoff backoff;
  const std::vector<long> full = {1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000};
  for (unsigned failures = 1; failures <= full.size(); ++failures) {
    SCOPED_TRACE(failures);
    EXPECT_EQ(backoff.delay(failures, 1.0).count(), full[failures - 1]);
    EXPECT_EQ(backoff.delay(failures, 0.0).count(), full[failures - 1] / 2);
    EXPECT_EQ(backoff.delay(failures, 0.5).count(), full[failures - 1] * 3 / 4);
  }
  EXPECT_EQ(backoff.delay(1000, 1.0).count(), 60000);  // no overflow far out
  WebhookBackoff small{10ms, 40ms};
  EXPECT_EQ(small.delay(1, 1.0), 10ms);
  EXPECT_EQ(small.delay(3, 1.0), 40ms);
  EXPECT_EQ(small.delay(4, 1.0), 40ms);
}

WebhookPayloadRef payload_with_id(std::uint64_t id) {
  FeedEvent event;
  event.id = id;
  event.type = "conflict";
  return std::make_shared<const WebhookPayload>(WebhookPayload{std::move(event), {}});
}

TEST(WebhookQueue, DropsTheOldestWhenFullAndCountsIt) {
  WebhookQueue queue(3);
  for (std::uint64_t id = 1; id <= 3; ++id) EXPECT_EQ(queue.push(payload_with_id(id)), 0u);
  EXPECT_EQ(queue.push(payload_with_id(4)), 1u);
  EXPECT_EQ(queue.push(payload_with_id(5)), 1u);
  EXPECT_EQ(queue.dropped(), 2u);
  EXPECT_EQ(queue.size(), 3u);
  EXPECT_EQ(queue.pop()->event.id, 3u);
  EXPECT_EQ(queue.set_capacity(1), 1u);  // 4 goes
  EXPECT_EQ(queue.dropped(), 3u);
  EXPECT_EQ(queue.pop()->event.id, 5u);
  EXPECT_EQ(queue.pop(), nullptr);
  EXPECT_TRUE(queue.empty());
}

TEST(WebhookUrl, ParsesHostPortAndTarget) {
  std::string error;
  auto url = parse_webhook_url("http://127.0.0.1:9000/hooks?x=1", error);
  ASSERT_TRUE(url) << error;
  EXPECT_EQ(url->host, "127.0.0.1");
  EXPECT_EQ(url->port, 9000);
  EXPECT_EQ(url->target, "/hooks?x=1");
  EXPECT_EQ(url->authority, "127.0.0.1:9000");
  url = parse_webhook_url("HTTP://hooks.example", error);
  ASSERT_TRUE(url) << error;
  EXPECT_EQ(url->host, "hooks.example");
  EXPECT_EQ(url->port, 80);
  EXPECT_EQ(url->target, "/");
  url = parse_webhook_url("http://[::1]:81/h", error);
  ASSERT_TRUE(url) << error;
  EXPECT_EQ(url->host, "::1");
  EXPECT_EQ(url->port, 81);
  for (std::string_view bad : {"https://a/", "ftp://a/", "http://:80/", "http://a:0/", "http://a:99999/",
                               "http://u:p@a/", "http://[::1/", "http://a:x/"}) {
    EXPECT_FALSE(parse_webhook_url(bad, error)) << bad;
  }
}

TEST(WebhookMetrics, OneSeriesPerTargetAndCounter) {
  std::vector<MetricFamily> families;
  add_webhook_metric_families({{"http://a/", 3, 1, 2, 4, 5}}, families);
  std::string text = render_exposition(families);
  EXPECT_NE(text.find("arbiter_webhook_delivered_total{url=\"http://a/\"} 3"), std::string::npos) << text;
  EXPECT_NE(text.find("arbiter_webhook_failed_total{url=\"http://a/\"} 1"), std::string::npos);
  EXPECT_NE(text.find("arbiter_webhook_dropped_total{url=\"http://a/\"} 2"), std::string::npos);
  EXPECT_NE(text.find("arbiter_webhook_retries_total{url=\"http://a/\"} 4"), std::string::npos);
  EXPECT_NE(text.find("# TYPE arbiter_webhook_queued gauge"), std::string::npos);
  EXPECT_NE(text.find("arbiter_webhook_queued{url=\"http://a/\"} 5"), std::string::npos);
}

// ---- The sender ----

class WebhookSenderTest : public ::testing::Test {
 protected:
  std::uint64_t publish(std::string type = "conflict", std::string resource = "/items/1") {
    std::uint64_t id = 0;
    auto done = [&](StoreResult<std::uint64_t>&& result) { id = result.value; };
    feed_->publish(feed_testing::sample_conflict(std::move(resource), std::move(type)), Completion<std::uint64_t>(done));
    return id;
  }
  static WebhookConfig target(const std::string& url, std::string secret = "s3cret") {
    WebhookConfig config;
    config.url = url;
    config.secret = std::move(secret);
    return config;
  }
  // Waits until `done` holds of the sender's first target's counters; false after 20 s.
  bool wait_for_stats(const std::function<bool(const WebhookTargetStats&)>& done, std::size_t index = 0) {
    auto guard = std::chrono::steady_clock::now() + 20s;
    while (std::chrono::steady_clock::now() < guard) {
      std::vector<WebhookTargetStats> stats = sender_->stats();
      if (stats.size() > index && done(stats[index])) return true;
      std::this_thread::sleep_for(2ms);
    }
    return false;
  }
  void make_sender(WebhookBackoff backoff = {10ms, 40ms}) {
    sender_ = std::make_unique<WebhookSender>(feed_, WebhookSenderOptions{backoff, 256});
  }

  std::shared_ptr<MemoryConflictFeed> feed_ = std::make_shared<MemoryConflictFeed>();
  std::unique_ptr<WebhookSender> sender_;
};

TEST_F(WebhookSenderTest, PostsEachEventSignedWithItsHeadersInOrder) {
  WebhookReceiver receiver;
  make_sender();
  sender_->start({target(receiver.url())});
  std::uint64_t first = publish("conflict", "/items/1");
  std::uint64_t second = publish("merged", "/items/2");
  ASSERT_TRUE(receiver.wait_for(2));
  std::vector<webhook_test::ReceivedRequest> requests = receiver.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].request_line, "POST /hooks HTTP/1.1");
  EXPECT_EQ(requests[0].field("content-type"), "application/json");
  EXPECT_EQ(requests[0].field("user-agent"), "arbiter/" ARBITER_VERSION);
  EXPECT_EQ(requests[0].field("host"), "127.0.0.1:" + std::to_string(receiver.port()));
  EXPECT_EQ(requests[0].field("arbiter-event"), "conflict");
  EXPECT_EQ(requests[0].field("arbiter-delivery"), std::to_string(first));
  EXPECT_EQ(requests[1].field("arbiter-event"), "merged");
  EXPECT_EQ(requests[1].field("arbiter-delivery"), std::to_string(second));
  for (const auto& request : requests) {
    EXPECT_EQ(request.field("arbiter-signature"), webhook_test::expected_signature("s3cret", request.body));
  }
  nlohmann::json body = nlohmann::json::parse(requests[0].body);
  EXPECT_EQ(body["id"], first);
  EXPECT_EQ(body["type"], "conflict");
  EXPECT_EQ(body["resource"], "/items/1");
  EXPECT_EQ(body["current_etag"], "\"b\"");
  ASSERT_TRUE(wait_for_stats([](const WebhookTargetStats& s) { return s.delivered == 2 && s.queued == 0; }));
  EXPECT_EQ(sender_->stats()[0].retries, 0u);
}

TEST_F(WebhookSenderTest, SendsOnlyTheEventTypesATargetNamesAndNoSignatureWithoutASecret) {
  WebhookReceiver receiver;
  make_sender();
  WebhookConfig config = target(receiver.url(), "");
  config.events = {"locked"};
  sender_->start({config});
  publish("conflict");
  std::uint64_t locked = publish("locked");
  publish("merged");
  std::uint64_t last = publish("locked");
  ASSERT_TRUE(receiver.wait_for(2));
  ASSERT_TRUE(wait_for_stats([](const WebhookTargetStats& s) { return s.delivered == 2; }));
  std::vector<webhook_test::ReceivedRequest> requests = receiver.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].field("arbiter-delivery"), std::to_string(locked));
  EXPECT_EQ(requests[1].field("arbiter-delivery"), std::to_string(last));
  EXPECT_EQ(requests[0].fields.count("arbiter-signature"), 0u);
}

TEST_F(WebhookSenderTest, RetriesAfterFailuresUntilA2xxWithTheSameDelivery) {
  WebhookReceiver receiver([](std::size_t index) { return std::optional<int>(index < 2 ? 500 : 200); });
  make_sender();
  sender_->start({target(receiver.url())});
  std::uint64_t id = publish();
  ASSERT_TRUE(wait_for_stats([](const WebhookTargetStats& s) { return s.delivered == 1 && s.queued == 0; }));
  std::vector<webhook_test::ReceivedRequest> requests = receiver.requests();
  ASSERT_EQ(requests.size(), 3u);
  for (const auto& request : requests) EXPECT_EQ(request.field("arbiter-delivery"), std::to_string(id));
  WebhookTargetStats stats = sender_->stats()[0];
  EXPECT_EQ(stats.retries, 2u);
  EXPECT_EQ(stats.failed, 0u);
}

TEST_F(WebhookSenderTest, GivesUpAfterMaxRetryOnARefusedPortAndGoesOn) {
  make_sender();
  WebhookConfig config = target("http://127.0.0.1:" + std::to_string(webhook_test::refused_port()) + "/h");
  config.max_retry = 100ms;
  sender_->start({config});
  publish();
  publish();
  ASSERT_TRUE(wait_for_stats([](const WebhookTargetStats& s) { return s.failed == 2 && s.queued == 0; }));
  WebhookTargetStats stats = sender_->stats()[0];
  EXPECT_GE(stats.retries, 2u);  // at least one retry each: 10 ms + 20 ms fit in 100 ms
  EXPECT_EQ(stats.delivered, 0u);
}

TEST_F(WebhookSenderTest, AnAttemptWithoutAnswerTimesOutAndIsRetried) {
  WebhookReceiver receiver([](std::size_t index) { return index == 0 ? std::nullopt : std::optional<int>(204); });
  make_sender();
  WebhookConfig config = target(receiver.url());
  config.timeout = 50ms;
  sender_->start({config});
  publish();
  ASSERT_TRUE(wait_for_stats([](const WebhookTargetStats& s) { return s.delivered == 1; }));
  // The first was held past the timeout; a slow machine may time a later one out too.
  std::size_t attempts = receiver.requests().size();
  EXPECT_GE(attempts, 2u);
  EXPECT_EQ(sender_->stats()[0].retries, attempts - 1);
}

TEST_F(WebhookSenderTest, AFullQueueDropsTheOldestWhileATargetHangs) {
  WebhookReceiver receiver([](std::size_t) { return std::nullopt; });
  make_sender();
  WebhookConfig config = target(receiver.url());
  config.queue = 2;
  config.timeout = 60s;
  sender_->start({config});
  for (int i = 0; i < 5; ++i) publish();
  // The first is being delivered (the receiver holds it), two wait, two were pushed out.
  ASSERT_TRUE(wait_for_stats([](const WebhookTargetStats& s) { return s.dropped == 2; }));
  EXPECT_EQ(sender_->stats()[0].queued, 3u);
  ASSERT_TRUE(receiver.wait_for(1));
  // Stopping does not wait for the silent target's answer or its 60 s timeout.
  sender_->stop();
  EXPECT_TRUE(sender_->stats().empty());
}

TEST_F(WebhookSenderTest, StopDoesNotWaitForABackoff) {
  make_sender(WebhookBackoff{std::chrono::minutes(10), std::chrono::minutes(10)});
  sender_->start({target("http://127.0.0.1:" + std::to_string(webhook_test::refused_port()) + "/h")});
  publish();
  ASSERT_TRUE(wait_for_stats([](const WebhookTargetStats& s) { return s.queued == 1; }));
  sender_->stop();  // a 5..10 minute backoff is pending: the test's own timeout would catch a wait
}

TEST_F(WebhookSenderTest, ReconfigureKeepsATargetsQueueAndStartsANewOneFromNow) {
  WebhookReceiver kept_receiver([](std::size_t) { return std::nullopt; });  // holds the first
  WebhookReceiver new_receiver;
  make_sender();
  WebhookConfig kept = target(kept_receiver.url());
  kept.timeout = 60s;
  sender_->start({kept});
  publish();
  publish();
  ASSERT_TRUE(wait_for_stats([](const WebhookTargetStats& s) { return s.queued == 2; }));
  kept.events = {"conflict"};
  sender_->reconfigure({target(new_receiver.url()), kept});
  std::uint64_t after = publish();
  ASSERT_TRUE(new_receiver.wait_for(1));
  ASSERT_TRUE(wait_for_stats([](const WebhookTargetStats& s) { return s.queued == 3; }, 1));
  std::vector<WebhookTargetStats> stats = sender_->stats();
  ASSERT_EQ(stats.size(), 2u);
  EXPECT_EQ(stats[0].url, new_receiver.url());
  EXPECT_EQ(stats[1].url, kept_receiver.url());
  ASSERT_TRUE(wait_for_stats([](const WebhookTargetStats& s) { return s.delivered == 1; }, 0));
  EXPECT_EQ(new_receiver.requests()[0].field("arbiter-delivery"), std::to_string(after));
  // Removed: its counters go with it.
  sender_->reconfigure({target(new_receiver.url())});
  ASSERT_TRUE(wait_for_stats([&](const WebhookTargetStats&) { return sender_->stats().size() == 1; }));
}

}  // namespace
}  // namespace arbiter
