// One worker's SSE subscribers of the conflict feed (proxy/net/feed_subscribers.h), over the
// memory feed, a real uv loop and fake streams: delivery on the watch's wake-up, replay and
// reset, filters, paging, back-pressure (the ring as the buffer), the cut-off bounds, the
// process-wide subscriber bound, heartbeats and the streams' ends.

#include "proxy/net/feed_subscribers.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "policies/store/memory_conflict_feed.h"
#include "tests/proxy/control/feed_test_support.h"

namespace arbiter {
namespace {

using feed_testing::FakeFeedResponder;
using feed_testing::parse_sse;
using feed_testing::SseEvent;
using feed_testing::sample_conflict;

// The ids of the event frames (not retry, reset or comments) in what a stream was sent.
std::vector<std::uint64_t> event_ids(const std::string& written) {
  std::vector<std::uint64_t> ids;
  for (const SseEvent& event : parse_sse(written)) {
    if (!event.data.empty() && event.event != "reset") ids.push_back(std::stoull(event.id));
  }
  return ids;
}

std::vector<std::uint64_t> id_range(std::uint64_t first, std::uint64_t last) {
  std::vector<std::uint64_t> ids;
  for (std::uint64_t id = first; id <= last; ++id) ids.push_back(id);
  return ids;
}

class FeedSubscribersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    uv_loop_init(&loop_);
    // The hub's handles keep no loop alive (as in a worker, whose listeners do): this timer does.
    uv_timer_init(&loop_, &keep_alive_);
    uv_timer_start(&keep_alive_, [](uv_timer_t*) {}, 600'000, 0);
    make_hub(FeedLimits{});
  }
  void TearDown() override {
    hub_->close();
    uv_close(reinterpret_cast<uv_handle_t*>(&keep_alive_), nullptr);
    uv_run(&loop_, UV_RUN_DEFAULT);
    hub_.reset();
    EXPECT_EQ(uv_loop_close(&loop_), 0);
    EXPECT_EQ(counters_.subscribers.load(), 0u) << "every subscriber gave its slot back";
  }

  void make_hub(const FeedLimits& limits) {
    if (hub_) {
      hub_->close();
      uv_run(&loop_, UV_RUN_NOWAIT);
    }
    feed_ = std::make_shared<MemoryConflictFeed>(limits);
    settings_.feed_buffer = limits.capacity;
    hub_ = std::make_unique<FeedSubscribers>(loop_, feed_, [this] { return settings_; }, counters_);
  }

  std::unique_ptr<FakeFeedResponder> subscribe(FeedFilter filter = {}, std::optional<std::uint64_t> after = {},
                                               std::size_t room = SIZE_MAX) {
    auto responder = std::make_unique<FakeFeedResponder>();
    hub_->subscribe(FeedSubscription{std::move(filter), after}, *responder);
    EXPECT_EQ(responder->answers, 1);
    if (responder->stream) responder->stream->room = room;
    return responder;
  }

  std::uint64_t publish(std::string resource = "/orders/1", std::string type = std::string(kFeedConflict)) {
    return feed_->publish(sample_conflict(std::move(resource), std::move(type)));
  }
  // Runs the loop once without waiting: the watch's wake-up is delivered.
  void run_loop() { uv_run(&loop_, UV_RUN_NOWAIT); }

  uv_loop_t loop_{};
  uv_timer_t keep_alive_{};
  FeedStreamSettings settings_;
  FeedSubscriberCounters counters_;
  std::shared_ptr<MemoryConflictFeed> feed_;
  std::unique_ptr<FeedSubscribers> hub_;
};

TEST_F(FeedSubscribersTest, AStreamStartsWithRetryAndThenOnlyNewEventsArriveOnTheWakeUp) {
  settings_.retry = std::chrono::milliseconds(2500);
  publish();
  publish();
  auto subscriber = subscribe();
  ASSERT_EQ(subscriber->status, 200);
  EXPECT_EQ(subscriber->fields.find("Content-Type").value_or(""), "text/event-stream");
  EXPECT_EQ(subscriber->fields.find("Cache-Control").value_or(""), "no-store");
  EXPECT_EQ(subscriber->fields.find("X-Accel-Buffering").value_or(""), "no");
  EXPECT_EQ(subscriber->stream->written, "retry: 2500\n\n");
  EXPECT_EQ(hub_->size(), 1u);
  EXPECT_EQ(counters_.subscribers.load(), 1u);

  std::uint64_t third = publish("/orders/3");
  EXPECT_EQ(event_ids(subscriber->stream->written), std::vector<std::uint64_t>{}) << "written on the loop, not the publisher's thread";
  run_loop();
  auto events = parse_sse(subscriber->stream->written);
  ASSERT_EQ(events.size(), 2u) << subscriber->stream->written;
  EXPECT_EQ(events[1].id, std::to_string(third));
  EXPECT_EQ(events[1].event, "conflict");
  EXPECT_EQ(nlohmann::json::parse(events[1].data)["resource"], "/orders/3");
  EXPECT_EQ(counters_.events_sent.load(), 1u);
}

TEST_F(FeedSubscribersTest, LastEventIdReplaysExactlyWhatCameAfterIt) {
  for (int i = 0; i < 5; ++i) publish();
  auto subscriber = subscribe({}, 2);
  EXPECT_EQ(event_ids(subscriber->stream->written), id_range(3, 5));
  publish();
  run_loop();
  EXPECT_EQ(event_ids(subscriber->stream->written), id_range(3, 6));
  auto caught_up = subscribe({}, 6);
  EXPECT_EQ(event_ids(caught_up->stream->written), std::vector<std::uint64_t>{});
}

TEST_F(FeedSubscribersTest, AReplayAfterAResolutionShowsItThoughTheFrameWasMadeBefore) {
  auto live = subscribe();
  std::uint64_t conflict = publish();
  run_loop();  // the frame of the unresolved conflict is made (and kept) for `live`
  ASSERT_EQ(event_ids(live->stream->written), std::vector<std::uint64_t>{conflict});
  ResolveOutcome outcome = feed_->resolve(conflict, FeedResolution{"ops", "yours", "\"n\"", {}, 0}, FeedEvent{});
  ASSERT_EQ(outcome.result, ResolveResult::Resolved);
  run_loop();
  auto replay = subscribe({}, 0);
  auto events = parse_sse(replay->stream->written);
  ASSERT_EQ(events.size(), 3u) << replay->stream->written;  // retry, the conflict, `resolved`
  EXPECT_EQ(nlohmann::json::parse(events[1].data)["resolved"]["by"], "ops");
  EXPECT_FALSE(nlohmann::json::parse(parse_sse(live->stream->written)[1].data).contains("resolved"));
}

TEST_F(FeedSubscribersTest, AnIdOlderThanTheRingGetsResetFirst) {
  make_hub(FeedLimits{.capacity = 3});
  for (int i = 0; i < 6; ++i) publish();  // the ring holds 4..6
  auto subscriber = subscribe({}, 1);
  auto events = parse_sse(subscriber->stream->written);
  ASSERT_EQ(events.size(), 5u) << subscriber->stream->written;
  EXPECT_EQ(events[1].event, "reset");
  EXPECT_EQ(events[1].id, "3");
  nlohmann::json reset = nlohmann::json::parse(events[1].data);
  EXPECT_EQ(reset["last_event_id"], 1);
  EXPECT_EQ(reset["resume_from"], 3);
  EXPECT_EQ(event_ids(subscriber->stream->written), id_range(4, 6));

  // An id above the newest (another process's, or before a restart) is a reset too.
  auto ahead = subscribe({}, 99);
  auto ahead_events = parse_sse(ahead->stream->written);
  ASSERT_GE(ahead_events.size(), 2u);
  EXPECT_EQ(ahead_events[1].event, "reset");
  EXPECT_EQ(event_ids(ahead->stream->written), id_range(4, 6));
}

TEST_F(FeedSubscribersTest, FiltersChooseTheEventsAndTheStreamStillAdvances) {
  FeedFilter filter;
  filter.resource = "/orders/*";
  filter.types = {"merged"};
  auto subscriber = subscribe(filter);
  auto everything = subscribe();
  publish("/orders/1", "conflict");
  std::uint64_t wanted = publish("/orders/2", "merged");
  publish("/other/2", "merged");
  run_loop();
  EXPECT_EQ(event_ids(subscriber->stream->written), std::vector<std::uint64_t>{wanted});
  EXPECT_EQ(event_ids(everything->stream->written), id_range(1, 3));
  std::uint64_t next = publish("/orders/9", "merged");
  run_loop();
  EXPECT_EQ(event_ids(subscriber->stream->written), (std::vector<std::uint64_t>{wanted, next}));
}

TEST_F(FeedSubscribersTest, ALongReplayIsWrittenWholeInOrder) {
  constexpr std::uint64_t kEvents = 3 * kFeedPageEvents + 17;
  for (std::uint64_t i = 0; i < kEvents; ++i) publish();
  auto subscriber = subscribe({}, 0);
  EXPECT_EQ(event_ids(subscriber->stream->written), id_range(1, kEvents));
  EXPECT_EQ(counters_.events_sent.load(), kEvents);
}

TEST_F(FeedSubscribersTest, AFullStreamStopsReadingAndResumesWhereItStoppedWhenWritable) {
  auto slow = subscribe({}, {}, 2000);  // about four frames of room
  auto fast = subscribe();
  for (int i = 0; i < 40; ++i) publish();
  run_loop();
  std::vector<std::uint64_t> got = event_ids(slow->stream->written);
  ASSERT_LT(got.size(), 40u) << "the fake stream refused some";
  EXPECT_EQ(got, id_range(1, got.size()));
  EXPECT_EQ(event_ids(fast->stream->written), id_range(1, 40)) << "a slow subscriber does not hold the others";

  // Nothing is written while it waits for room, whatever is published.
  std::string before = slow->stream->written;
  publish();
  run_loop();
  hub_->send_heartbeats();
  EXPECT_EQ(slow->stream->written, before);

  // The client reads; each time the stream says it is writable, the subscriber goes on from its id.
  for (int round = 0; round < 100 && event_ids(slow->stream->written).size() < 41; ++round) {
    slow->stream->take();
    slow->listener->on_stream_writable();
  }
  EXPECT_EQ(event_ids(slow->stream->written), id_range(1, 41)) << "no gap, no repeat";
  EXPECT_EQ(counters_.cut_off.load(), 0u);
  EXPECT_FALSE(slow->stream->aborted);
}

TEST_F(FeedSubscribersTest, PastMaxSubscriberBufferAStreamIsCutOffAndCounted) {
  settings_.max_subscriber_buffer = 1500;
  auto slow = subscribe({}, {}, 1400);
  auto fast = subscribe();
  for (int i = 0; i < 10; ++i) publish();
  run_loop();
  EXPECT_TRUE(slow->stream->aborted) << "what waits (buffered + the refused frame) passed 1500 bytes";
  EXPECT_EQ(counters_.cut_off.load(), 1u);
  EXPECT_EQ(hub_->size(), 1u);
  EXPECT_EQ(counters_.subscribers.load(), 1u);
  publish();
  run_loop();
  EXPECT_EQ(event_ids(fast->stream->written), id_range(1, 11));
}

TEST_F(FeedSubscribersTest, ASubscriberLaggingMoreThanTheRingIsCutOff) {
  make_hub(FeedLimits{.capacity = 20});
  auto slow = subscribe({}, {}, 1200);  // within max_subscriber_buffer, but stalled
  for (int i = 0; i < 10; ++i) publish();
  run_loop();
  std::size_t got = event_ids(slow->stream->written).size();
  ASSERT_LT(got, 10u);
  EXPECT_FALSE(slow->stream->aborted);
  // The ring goes on; once it has dropped events the stalled subscriber has not got, it is cut off.
  for (std::size_t i = 0; i < got + 20; ++i) publish();
  run_loop();
  EXPECT_TRUE(slow->stream->aborted);
  EXPECT_EQ(counters_.cut_off.load(), 1u);
  EXPECT_EQ(hub_->size(), 0u);
}

TEST_F(FeedSubscribersTest, MaxSubscribersIsProcessWideAndAnsweredWith503) {
  settings_.max_subscribers = 2;
  settings_.retry = std::chrono::milliseconds(2500);
  auto first = subscribe();
  // Another worker's hub shares the counters.
  FeedSubscribers other(loop_, feed_, [this] { return settings_; }, counters_);
  auto second = std::make_unique<FakeFeedResponder>();
  other.subscribe({}, *second);
  EXPECT_EQ(second->status, 200);

  auto refused = subscribe();
  EXPECT_EQ(refused->status, 503);
  EXPECT_EQ(refused->fields.find("Retry-After").value_or(""), "3");
  EXPECT_EQ(refused->json()["type"], "urn:arbiter:problem:feed-subscribers-full");
  EXPECT_EQ(counters_.refused.load(), 1u);
  EXPECT_EQ(counters_.subscribers.load(), 2u);

  first->listener->on_stream_closed();  // the client went away: its slot is free
  EXPECT_EQ(hub_->size(), 0u);
  EXPECT_EQ(subscribe()->status, 200);
  other.close();
  uv_run(&loop_, UV_RUN_NOWAIT);  // its handles' close callbacks, before it goes
}

TEST_F(FeedSubscribersTest, HeartbeatsReachEveryStreamAndAClosedStreamIsDropped) {
  auto one = subscribe();
  auto two = subscribe();
  hub_->send_heartbeats();
  EXPECT_EQ(one->stream->written, "retry: 3000\n\n: heartbeat\n\n");
  EXPECT_EQ(two->stream->written, "retry: 3000\n\n: heartbeat\n\n");
  two->stream->ended = true;  // closed under the hub (a write would answer Closed)
  hub_->send_heartbeats();
  EXPECT_EQ(hub_->size(), 1u);
  EXPECT_EQ(counters_.subscribers.load(), 1u);
}

TEST_F(FeedSubscribersTest, TheHeartbeatTimerRunsOnTheLoop) {
  settings_.heartbeat = std::chrono::milliseconds(1);
  auto subscriber = subscribe();
  for (int i = 0; i < 1000 && subscriber->stream->written.find(": heartbeat") == std::string::npos; ++i) {
    uv_run(&loop_, UV_RUN_ONCE);  // waits for the timer (the keep-alive timer keeps the loop alive)
  }
  EXPECT_NE(subscriber->stream->written.find(": heartbeat\n\n"), std::string::npos);
}

TEST_F(FeedSubscribersTest, CloseFinishesEveryStreamAndRefusesLaterOnes) {
  auto subscriber = subscribe();
  hub_->close();
  EXPECT_TRUE(subscriber->stream->finished);
  EXPECT_EQ(hub_->size(), 0u);
  EXPECT_EQ(subscribe()->status, 503);
  publish();
  run_loop();  // no wake-up reaches a closed hub
}

TEST_F(FeedSubscribersTest, AHeadRequestGetsTheHeadOnly) {
  FakeFeedResponder head;
  head.head_only = true;
  hub_->subscribe({}, head);
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(hub_->size(), 0u);
  EXPECT_EQ(counters_.subscribers.load(), 0u);
}

TEST(FeedSubscriberMetricsTest, TheCountersAreFourFamilies) {
  FeedSubscriberCounters counters;
  counters.subscribers = 3;
  counters.events_sent = 10;
  counters.cut_off = 1;
  counters.refused = 2;
  std::string text = render_exposition(feed_subscriber_metric_families(counters));
  EXPECT_NE(text.find("# TYPE arbiter_feed_subscribers gauge\narbiter_feed_subscribers 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find("arbiter_feed_events_sent_total 10\n"), std::string::npos) << text;
  EXPECT_NE(text.find("arbiter_feed_subscribers_cut_off_total 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("arbiter_feed_subscribers_refused_total 2\n"), std::string::npos) << text;
}

}  // namespace
}  // namespace arbiter
