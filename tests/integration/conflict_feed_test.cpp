// The conflict feed's endpoints (issue #16) through the real binary: refused writes provoked on a
// route with [route.etag] appear on subscribed Server-Sent Events streams, a reconnect with
// Last-Event-ID replays exactly what was missed (or says `event: reset` when the ring moved on),
// filters, heartbeats, the subscriber bounds (max_subscribers, a slow reader cut off while the
// others go on), the polling form and the conflict records.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include <sys/socket.h>

#include "tests/support/proxy_fixture.h"
#include "tests/support/sse_stream.h"

namespace conflict_feed_it {

using harness::ConfigOptions;
using harness::HttpClient;
using harness::HttpResponse;
using harness::SseEvent;
using harness::SseStream;
using nlohmann::json;
using namespace std::chrono_literals;

constexpr std::string_view kFeed = "/_arbiter/conflicts";

// Route "accounts" with [route.etag] (a stale If-Match is refused 409) and `history_keys` as
// [route.history] when given; `control` is the [control] table's keys.
ConfigOptions feed_options(const std::string& control = "", const std::string& history_keys = "") {
  std::string route = "\n[[route]]\nname = \"accounts\"\npath = \"/accounts/{id}\"\nupstream = \"legacy\"\n[route.etag]\n";
  if (!history_keys.empty()) route += "[route.history]\n" + history_keys + "\n";
  if (!control.empty()) route += "\n[control]\n" + control + "\n";
  return ConfigOptions{.leading_routes = route};
}

class ConflictFeedTest : public harness::ProxyFixture {
 protected:
  // A writer of `resource` that keeps the ETag it started from: every write after its first is
  // refused 409 (one conflict event each).
  struct StaleWriter {
    HttpClient client;
    std::string resource;
    std::string stale_etag;
  };
  StaleWriter stale_writer(const std::string& resource) {
    EXPECT_EQ(send_to_backend("PUT", resource, R"({"balance": 0})").status / 100, 2);  // created, or replaced
    StaleWriter writer{HttpClient(arbiter_->port()), resource, {}};
    HttpResponse read = harness::require(writer.client.request("GET", resource), writer.client);
    EXPECT_EQ(read.status, 200);
    writer.stale_etag = read.header("ETag").value_or("");
    HttpResponse first = harness::require(
        writer.client.request("PUT", resource, {{"If-Match", writer.stale_etag}}, R"({"balance": 1})"), writer.client);
    EXPECT_EQ(first.status, 200) << first.body;
    return writer;
  }
  // One refused write; returns the 409's body.
  json conflict(StaleWriter& writer, std::string_view body = R"({"balance": 999})") {
    HttpResponse refused = harness::require(
        writer.client.request("PUT", writer.resource,
                              {{"If-Match", writer.stale_etag}, {"Content-Type", "application/json"}}, body),
        writer.client);
    EXPECT_EQ(refused.status, 409) << refused.body;
    return json::parse(refused.body, nullptr, false);
  }

  std::unique_ptr<SseStream> subscribe(std::string_view query = {}, const harness::HeaderPairs& fields = {}) {
    auto stream = std::make_unique<SseStream>(arbiter_->port(), std::string(kFeed) + std::string(query), fields);
    EXPECT_EQ(stream->status(), 200) << stream->head();
    auto retry = stream->next(5s);  // the first block
    EXPECT_TRUE(retry && !retry->retry.empty()) << "a stream starts with retry:";
    return stream;
  }

  static json data_of(const SseEvent& event) { return json::parse(event.data); }

  double metric(std::string_view name) {
    HttpClient admin(*arbiter_->admin_port());
    std::string text = harness::require(admin.request("GET", "/metrics"), admin).body;
    std::size_t at = text.find("\n" + std::string(name) + " ");
    return at == std::string::npos ? -1 : std::stod(text.substr(at + name.size() + 2));
  }
};

TEST_F(ConflictFeedTest, AConflictReachesASubscribedStreamWithItsFields) {
  start(feed_options());
  auto stream = subscribe();
  EXPECT_EQ(stream->header("Content-Type").value_or(""), "text/event-stream");
  EXPECT_EQ(stream->header("Cache-Control").value_or(""), "no-store");
  EXPECT_EQ(stream->header("X-Accel-Buffering").value_or(""), "no");

  StaleWriter writer = stale_writer("/accounts/1");
  auto sent = std::chrono::steady_clock::now();
  json refused = conflict(writer);
  auto event = stream->next_event(10s);
  auto delay = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - sent).count();
  ASSERT_TRUE(event) << "no event on the stream";
  // The bound is the issue's 100 ms, shown here and in bench/, not asserted: tests do not depend on
  // the machine's speed.
  std::printf("[ conflict feed ] 409 sent to event read on the SSE stream: %.2f ms\n", delay);
  EXPECT_EQ(event->event, "conflict");
  json data = data_of(*event);
  EXPECT_EQ(event->id, std::to_string(data["id"].get<std::uint64_t>()));
  EXPECT_EQ(data["type"], "conflict");
  EXPECT_EQ(data["route"], "accounts");
  EXPECT_EQ(data["resource"], "/accounts/1");
  EXPECT_EQ(data["method"], "PUT");
  EXPECT_EQ(data["your_etag"], writer.stale_etag);
  EXPECT_EQ(data["current_etag"], refused["current_etag"]);
  EXPECT_EQ(data["request_id"], refused["request-id"]);
  EXPECT_EQ(data["id"], refused["conflict_id"]);
  EXPECT_FALSE(data["client"].get<std::string>().empty());
  EXPECT_EQ(data["time"].get<std::string>().size(), 24u) << data["time"];  // 2026-12-01T18:02:37.123Z
}

TEST_F(ConflictFeedTest, AReconnectWithLastEventIdReplaysExactlyTheMissedEvents) {
  start(feed_options());
  StaleWriter writer = stale_writer("/accounts/1");
  auto stream = subscribe();
  conflict(writer);
  auto seen = stream->next_event(10s);
  ASSERT_TRUE(seen);
  std::uint64_t last = std::stoull(seen->id);
  stream.reset();  // the client goes away

  for (int i = 0; i < 3; ++i) conflict(writer);
  auto again = subscribe("", {{"Last-Event-ID", std::to_string(last)}});
  for (std::uint64_t id = last + 1; id <= last + 3; ++id) {
    auto replayed = again->next_event(10s);
    ASSERT_TRUE(replayed) << "event " << id;
    EXPECT_EQ(replayed->id, std::to_string(id));
  }
  conflict(writer);  // then live events, with nothing repeated in between
  auto live = again->next_event(10s);
  ASSERT_TRUE(live);
  EXPECT_EQ(live->id, std::to_string(last + 4));

  // Without Last-Event-ID a stream starts with new events only.
  auto fresh = subscribe();
  conflict(writer);
  auto only_new = fresh->next_event(10s);
  ASSERT_TRUE(only_new);
  EXPECT_EQ(only_new->id, std::to_string(last + 5));
}

TEST_F(ConflictFeedTest, AnIdTheRingNoLongerHoldsGetsResetFirst) {
  start(feed_options("feed_buffer = 3\n"));
  StaleWriter writer = stale_writer("/accounts/1");
  std::vector<std::uint64_t> ids;
  {
    auto stream = subscribe();
    for (int i = 0; i < 6; ++i) {
      conflict(writer);
      auto event = stream->next_event(10s);
      ASSERT_TRUE(event);
      ids.push_back(std::stoull(event->id));
    }
  }
  auto resumed = subscribe("", {{"Last-Event-ID", std::to_string(ids[0])}});
  auto reset = resumed->next_event(10s);
  ASSERT_TRUE(reset);
  EXPECT_EQ(reset->event, "reset");
  json data = data_of(*reset);
  EXPECT_EQ(data["missed"], true);
  EXPECT_EQ(data["last_event_id"], ids[0]);
  EXPECT_EQ(data["resume_from"], ids[2]);
  for (std::size_t i = 3; i < 6; ++i) {
    auto event = resumed->next_event(10s);
    ASSERT_TRUE(event);
    EXPECT_EQ(event->id, std::to_string(ids[i]));
  }
  // The record of a dropped event is gone (410); one never published is 404.
  EXPECT_EQ(send("GET", std::string(kFeed) + "/" + std::to_string(ids[0])).status, 410);
  EXPECT_EQ(send("GET", std::string(kFeed) + "/" + std::to_string(ids[5] + 100)).status, 404);
}

TEST_F(ConflictFeedTest, FiltersByResourceAndType) {
  start(feed_options());
  StaleWriter one = stale_writer("/accounts/1");
  StaleWriter two = stale_writer("/accounts/2");
  auto only_two = subscribe("?resource=%2Faccounts%2F2");
  auto prefix = subscribe("?resource=/accounts/*&type=conflict,merged");
  auto merged_only = subscribe("?type=merged");
  conflict(one);
  conflict(two);
  auto event = only_two->next_event(10s);
  ASSERT_TRUE(event);
  EXPECT_EQ(data_of(*event)["resource"], "/accounts/2");
  for (std::string_view resource : {"/accounts/1", "/accounts/2"}) {
    auto next = prefix->next_event(10s);
    ASSERT_TRUE(next);
    EXPECT_EQ(data_of(*next)["resource"], resource);
  }
  EXPECT_FALSE(merged_only->next_event(300ms)) << "no merge happened";

  HttpResponse unknown = send("GET", std::string(kFeed) + "?type=conflicts", {}, {{"Accept", "text/event-stream"}});
  EXPECT_EQ(unknown.status, 400);
  EXPECT_EQ(json::parse(unknown.body)["known"].size(), 6u) << unknown.body;
}

TEST_F(ConflictFeedTest, AHeartbeatCommentArrivesOnAnIdleStream) {
  start(feed_options("heartbeat = \"200ms\"\n"));
  auto stream = subscribe();
  auto block = stream->next(10s);
  ASSERT_TRUE(block);
  EXPECT_EQ(block->comments, std::vector<std::string>{"heartbeat"});
  EXPECT_TRUE(block->data.empty());
}

TEST_F(ConflictFeedTest, MaxSubscribersIsAnsweredWith503) {
  start(feed_options("max_subscribers = 2\n"));
  auto first = subscribe();
  auto second = subscribe();
  HttpResponse refused = send("GET", std::string(kFeed), {}, {{"Accept", "text/event-stream"}});
  EXPECT_EQ(refused.status, 503) << refused.body;
  EXPECT_FALSE(refused.header("Retry-After").value_or("").empty());
  EXPECT_EQ(json::parse(refused.body)["type"], "urn:arbiter:problem:feed-subscribers-full");
  // Polling is not a subscriber.
  EXPECT_EQ(send("GET", std::string(kFeed)).status, 200);
  EXPECT_EQ(metric("arbiter_feed_subscribers"), 2);
  EXPECT_EQ(metric("arbiter_feed_subscribers_refused_total"), 1);

  first.reset();  // a slot comes back when the client goes
  EXPECT_TRUE(harness::eventually([&] { return metric("arbiter_feed_subscribers") == 1; }));
  auto third = subscribe();
  EXPECT_EQ(third->status(), 200);
}

TEST_F(ConflictFeedTest, ASlowSubscriberIsCutOffWhileTheOthersKeepReceiving) {
  start(feed_options("feed_buffer = 200\nmax_subscriber_buffer = 65536\n"));
  // A long resource name makes each event a few KiB.
  std::string resource = "/accounts/" + std::string(3000, 'x');
  StaleWriter writer = stale_writer(resource);
  SseStream slow(arbiter_->port(), std::string(kFeed), {}, 5s, 4096);  // never read after its head
  ASSERT_EQ(slow.status(), 200);
  auto fast = subscribe();
  std::atomic<bool> stop{false};
  std::vector<std::uint64_t> fast_ids;
  std::thread reader([&] {
    while (!stop) {
      if (auto event = fast->next_event(200ms)) fast_ids.push_back(std::stoull(event->id));
    }
    while (auto event = fast->next_event(1s)) fast_ids.push_back(std::stoull(event->id));
  });
  conflict(writer);  // the writer's connection is open from here on
  const double connections = metric("arbiter_open_connections");
  int conflicts = 1;
  for (; conflicts < 3000 && metric("arbiter_feed_subscribers_cut_off_total") < 1; conflicts += 50) {
    for (int i = 0; i < 50; ++i) conflict(writer);
  }
  stop = true;
  reader.join();
  std::printf("[ conflict feed ] slow subscriber cut off after %d conflicts of ~%zu bytes\n", conflicts,
              resource.size() + 400);
  EXPECT_EQ(metric("arbiter_feed_subscribers_cut_off_total"), 1);
  // Arbiter closed the slow subscriber's connection. (The client learns it only once it has read
  // what the kernel still holds for it, through a window it shrank to 4 KiB: how long that takes
  // is the kernel's zero-window probing, not Arbiter's.)
  EXPECT_TRUE(harness::eventually([&] { return metric("arbiter_open_connections") == connections - 1; }))
      << "the slow subscriber's connection is closed: " << metric("arbiter_open_connections") << " open, "
      << connections << " before";
  ASSERT_EQ(fast_ids.size(), static_cast<std::size_t>(conflicts)) << "the fast subscriber got every event";
  for (std::size_t i = 1; i < fast_ids.size(); ++i) EXPECT_EQ(fast_ids[i], fast_ids[i - 1] + 1);
  EXPECT_EQ(metric("arbiter_feed_subscribers"), 1);
}

TEST_F(ConflictFeedTest, PollingWithSinceAndLimit) {
  start(feed_options());
  json empty = json::parse(send("GET", std::string(kFeed)).body);
  EXPECT_TRUE(empty["events"].empty());
  EXPECT_EQ(empty["next"], 0);

  StaleWriter writer = stale_writer("/accounts/1");
  for (int i = 0; i < 3; ++i) conflict(writer);
  HttpResponse first = send("GET", std::string(kFeed) + "?limit=2");
  ASSERT_EQ(first.status, 200);
  EXPECT_EQ(first.header("Content-Type").value_or(""), "application/json");
  json page = json::parse(first.body);
  ASSERT_EQ(page["events"].size(), 2u);
  EXPECT_EQ(page["events"][0]["type"], "conflict");
  std::uint64_t next = page["next"];
  EXPECT_EQ(next, page["events"][1]["id"]);
  json rest = json::parse(send("GET", std::string(kFeed) + "?since=" + std::to_string(next)).body);
  ASSERT_EQ(rest["events"].size(), 1u);
  EXPECT_EQ(rest["events"][0]["id"], next + 1);
  EXPECT_EQ(send("GET", std::string(kFeed) + "?limit=x").status, 400);
}

// [control] keep_bodies_total bounds the kept bodies together: a conflict whose body does not
// fit beside the others takes the oldest one's place; that event stays, without its body.
TEST_F(ConflictFeedTest, KeptBodiesTogetherStayWithinKeepBodiesTotal) {
  start(feed_options("keep_body_bytes = \"40B\"\nkeep_bodies_total = \"50B\""));
  StaleWriter writer = stale_writer("/accounts/3");
  const std::string body = R"({"id": "3", "balance": 1000001})";  // 31 bytes
  conflict(writer, body);
  conflict(writer, body);
  conflict(writer, R"({"id": "3", "balance": 1000001, "note": "way over forty bytes"})");
  json page = json::parse(send("GET", std::string(kFeed)).body);
  ASSERT_EQ(page["events"].size(), 3u) << page.dump();
  EXPECT_EQ(page["events"][0]["body"], "evicted") << page.dump();
  EXPECT_EQ(page["events"][1]["body"], "kept") << page.dump();
  EXPECT_EQ(page["events"][2]["body"], "too-large") << page.dump();
  EXPECT_EQ(page["events"][0]["your_body_size"], body.size()) << page.dump();
  HttpClient admin(*arbiter_->admin_port());
  json config = json::parse(harness::require(admin.request("GET", "/config"), admin).body);
  EXPECT_EQ(config["control"]["keep_bodies_total"], 50) << config["control"].dump();
}

TEST_F(ConflictFeedTest, TheRecordShowsYourBodyAndTheCurrentOne) {
  start(feed_options("", "keep = 10\n"));
  StaleWriter writer = stale_writer("/accounts/7");
  json refused = conflict(writer, R"({"id": "7", "balance": 42})");
  ASSERT_TRUE(refused.contains("conflict_id")) << refused.dump();
  std::uint64_t id = refused["conflict_id"];
  EXPECT_EQ(refused["conflict_record"], std::string(kFeed) + "/" + std::to_string(id));
  HttpResponse response = send("GET", std::string(kFeed) + "/" + std::to_string(id));
  ASSERT_EQ(response.status, 200) << response.body;
  json record = json::parse(response.body);
  EXPECT_EQ(record["id"], id);
  EXPECT_EQ(record["type"], "conflict");
  EXPECT_EQ(record["resource"], "/accounts/7");
  EXPECT_EQ(record["yours"]["body"], json::parse(R"({"id": "7", "balance": 42})")) << record.dump();
  EXPECT_EQ(record["current"]["etag"], refused["current_etag"]) << record.dump();
  EXPECT_EQ(record["current"]["body"]["balance"], 1) << record.dump();
  EXPECT_EQ(record["base"]["etag"], writer.stale_etag) << record.dump();
  EXPECT_EQ(record["base"]["body"]["balance"], 0) << record.dump();
  EXPECT_EQ(record["diff"]["base_to_current"], json::parse(R"([{"op": "replace", "path": "/balance", "value": 1}])"))
      << record.dump();
  EXPECT_EQ(record["diff"]["base_to_yours"], json::parse(R"([{"op": "replace", "path": "/balance", "value": 42}])"))
      << record.dump();
  EXPECT_EQ(send("GET", std::string(kFeed) + "/" + std::to_string(id) + "/x").status, 404);
}

}  // namespace conflict_feed_it
