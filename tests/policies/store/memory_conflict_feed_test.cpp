#include "policies/store/memory_conflict_feed.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace arbiter::feed_test {

using Ids = std::vector<std::uint64_t>;

// Wall-clock times as seconds after a fixed instant (the store is given its times; no clock).
WallTime at_second(int second) { return WallTime(std::chrono::seconds(1'700'000'000 + second)); }

FeedEvent event_of(std::string_view type, std::string_view resource, std::string_view route = "items",
                   int second = 0) {
  FeedEvent event;
  event.type = type;
  event.resource = resource;
  event.route = route;
  event.time = at_second(second);
  event.request_id = "req-" + std::string(resource);
  event.client = "10.0.0.1";
  event.method = "PUT";
  return event;
}

FeedEvent conflict_with_body(std::string_view resource, std::string body) {
  FeedEvent event = event_of(kFeedConflict, resource);
  event.your_etag = "\"a\"";
  event.current_etag = "\"b\"";
  event.your_body = std::move(body);
  event.your_content_type = "application/json";
  return event;
}

FeedLimits limits_of(std::size_t capacity, std::size_t keep_body_bytes = 1024, std::size_t max_body_bytes = 1u << 20) {
  FeedLimits limits;
  limits.capacity = capacity;
  limits.keep_body_bytes = keep_body_bytes;
  limits.max_body_bytes = max_body_bytes;
  return limits;
}

Ids ids_of(const FeedPage& page) {
  Ids ids;
  for (const FeedEvent& event : page.events) ids.push_back(event.id);
  return ids;
}

// Publishes `count` conflicts on /items/1, /items/2, ...; returns their ids.
Ids publish_conflicts(MemoryConflictFeed& feed, int count) {
  Ids ids;
  for (int i = 1; i <= count; ++i) ids.push_back(feed.publish(event_of(kFeedConflict, "/items/" + std::to_string(i))));
  return ids;
}

FeedResolution resolution_by(std::string_view who, std::string_view choice, int second = 50) {
  FeedResolution resolution;
  resolution.by = who;
  resolution.choice = choice;
  resolution.new_etag = "\"c\"";
  resolution.time = at_second(second);
  return resolution;
}

TEST(MemoryConflictFeedTest, IdsIncreaseFromOneAndAreNeverReusedAfterDrops) {
  MemoryConflictFeed feed(limits_of(3));
  EXPECT_EQ(feed.last_id(), 0u);
  EXPECT_EQ(publish_conflicts(feed, 5), (Ids{1, 2, 3, 4, 5}));
  EXPECT_EQ(feed.size(), 3u);
  EXPECT_EQ(feed.last_id(), 5u);
  feed.set_limits(limits_of(10));
  EXPECT_EQ(feed.publish(event_of(kFeedMerged, "/items/6")), 6u);
  EXPECT_EQ(ids_of(feed.read(0, {}, 100)), (Ids{3, 4, 5, 6}));
}

TEST(MemoryConflictFeedTest, RingIsBoundedAndTheOldestGo) {
  MemoryConflictFeed feed(limits_of(4));
  publish_conflicts(feed, 10);
  FeedPage page = feed.read(0, {}, 100);
  EXPECT_FALSE(page.reset);
  EXPECT_EQ(ids_of(page), (Ids{7, 8, 9, 10}));
  EXPECT_EQ(page.events.front().resource, "/items/7");
  FeedStats stats = feed.stats();
  EXPECT_EQ(stats.held, 4u);
  EXPECT_EQ(stats.dropped, 6u);
  EXPECT_EQ(stats.last_id, 10u);
}

TEST(MemoryConflictFeedTest, ReplayAfterAnIdReturnsExactlyTheMissedEventsInOrder) {
  MemoryConflictFeed feed(limits_of(100));
  publish_conflicts(feed, 4);
  FeedPage seen = feed.read(0, {}, 100);
  EXPECT_EQ(seen.next, 4u);
  feed.publish(event_of(kFeedMerged, "/items/5"));
  feed.publish(event_of(kFeedLocked, "/items/6"));
  FeedPage missed = feed.read(seen.next, {}, 100);
  EXPECT_FALSE(missed.reset);
  EXPECT_EQ(ids_of(missed), (Ids{5, 6}));
  EXPECT_EQ(missed.events[0].type, kFeedMerged);
  EXPECT_EQ(missed.events[1].type, kFeedLocked);
  EXPECT_EQ(missed.events[1].resource, "/items/6");
  EXPECT_EQ(missed.events[1].time, at_second(0));
  EXPECT_EQ(missed.next, 6u);
  EXPECT_EQ(missed.last_id, 6u);
  FeedPage nothing_new = feed.read(missed.next, {}, 100);
  EXPECT_TRUE(nothing_new.events.empty());
  EXPECT_FALSE(nothing_new.reset);
  EXPECT_EQ(nothing_new.next, 6u);
}

TEST(MemoryConflictFeedTest, ResetWhenTheIdIsOlderThanTheRingOrNewerThanAnyPublished) {
  MemoryConflictFeed feed(limits_of(3));
  publish_conflicts(feed, 6);  // holds 4, 5, 6
  FeedPage stale = feed.read(2, {}, 100);
  EXPECT_TRUE(stale.reset);
  EXPECT_EQ(ids_of(stale), (Ids{4, 5, 6}));
  FeedPage just_reached = feed.read(3, {}, 100);  // 4 is the next it needs, still held
  EXPECT_FALSE(just_reached.reset);
  EXPECT_EQ(ids_of(just_reached), (Ids{4, 5, 6}));
  FeedPage from_the_oldest = feed.read(0, {}, 100);
  EXPECT_FALSE(from_the_oldest.reset);
  FeedPage from_another_process = feed.read(60, {}, 100);
  EXPECT_TRUE(from_another_process.reset);
  EXPECT_EQ(ids_of(from_another_process), (Ids{4, 5, 6}));
}

TEST(MemoryConflictFeedTest, FiltersByExactResourcePrefixRouteAndTypes) {
  MemoryConflictFeed feed(limits_of(100));
  feed.publish(event_of(kFeedConflict, "/items/1", "items"));         // 1
  feed.publish(event_of(kFeedMerged, "/items/1/notes", "items"));     // 2
  feed.publish(event_of(kFeedLocked, "/items/10", "items"));          // 3
  feed.publish(event_of(kFeedConflict, "/orders/1", "orders"));       // 4
  feed.publish(event_of(kFeedLockBroken, "/items/1", "admin"));       // 5
  auto matching = [&](FeedFilter filter) { return ids_of(feed.read(0, filter, 100)); };
  EXPECT_EQ(matching({}), (Ids{1, 2, 3, 4, 5}));
  EXPECT_EQ(matching({.resource = "/items/1"}), (Ids{1, 5}));
  EXPECT_EQ(matching({.resource = "/items/1*"}), (Ids{1, 2, 3, 5}));
  EXPECT_EQ(matching({.resource = "/items/1/*"}), (Ids{2}));
  EXPECT_EQ(matching({.resource = "*"}), (Ids{1, 2, 3, 4, 5}));
  EXPECT_EQ(matching({.route = "orders"}), (Ids{4}));
  EXPECT_EQ(matching({.route = "item"}), Ids{});
  EXPECT_EQ(matching({.types = {"conflict"}}), (Ids{1, 4}));
  EXPECT_EQ(matching({.types = {"locked", "lock-broken"}}), (Ids{3, 5}));
  EXPECT_EQ(matching({.resource = "/items/*", .route = "items", .types = {"conflict", "locked"}}), (Ids{1, 3}));
  EXPECT_EQ(matching({.resource = "/items/1", .route = "admin", .types = {"conflict"}}), Ids{});
}

TEST(MemoryConflictFeedTest, LimitAndNextPageThroughWithoutRepeatingOrSkipping) {
  MemoryConflictFeed feed(limits_of(100));
  for (int i = 1; i <= 7; ++i) feed.publish(event_of(i % 2 ? kFeedConflict : kFeedMerged, "/items/" + std::to_string(i)));
  FeedFilter conflicts{.types = {"conflict"}};  // 1, 3, 5, 7
  FeedPage first = feed.read(0, conflicts, 2);
  EXPECT_EQ(ids_of(first), (Ids{1, 3}));
  EXPECT_EQ(first.next, 3u);
  FeedPage second = feed.read(first.next, conflicts, 2);
  EXPECT_EQ(ids_of(second), (Ids{5, 7}));
  EXPECT_EQ(second.next, 7u);
  feed.publish(event_of(kFeedMerged, "/items/8"));
  FeedPage skipped = feed.read(second.next, conflicts, 2);  // examined 8, matched nothing
  EXPECT_TRUE(skipped.events.empty());
  EXPECT_EQ(skipped.next, 8u);
  FeedPage none_asked = feed.read(2, {}, 0);
  EXPECT_TRUE(none_asked.events.empty());
  EXPECT_EQ(none_asked.next, 2u);
  EXPECT_EQ(none_asked.last_id, 8u);
}

TEST(MemoryConflictFeedTest, GetTellsFoundFromDroppedFromUnknown) {
  MemoryConflictFeed feed(limits_of(2));
  FeedEvent conflict = conflict_with_body("/items/1", R"({"a":1})");
  conflict.base_etag = "\"base\"";
  conflict.conflicts = {"/a", "/b/0"};
  conflict.details = R"({"precondition":"If-Match"})";
  feed.publish(std::move(conflict));
  FeedLookup found = feed.get(1);
  ASSERT_EQ(found.find, FeedFind::Found);
  EXPECT_EQ(found.event.id, 1u);
  EXPECT_EQ(found.event.your_etag, "\"a\"");
  EXPECT_EQ(found.event.current_etag, "\"b\"");
  EXPECT_EQ(found.event.base_etag, "\"base\"");
  EXPECT_EQ(found.event.conflicts, (std::vector<std::string>{"/a", "/b/0"}));
  EXPECT_EQ(found.event.details, R"({"precondition":"If-Match"})");
  EXPECT_EQ(found.event.request_id, "req-/items/1");
  publish_conflicts(feed, 2);  // 2, 3: 1 goes
  EXPECT_EQ(feed.get(1).find, FeedFind::Dropped);
  EXPECT_EQ(feed.get(2).find, FeedFind::Found);
  EXPECT_EQ(feed.get(3).find, FeedFind::Found);
  EXPECT_EQ(feed.get(4).find, FeedFind::Unknown);
  EXPECT_EQ(feed.get(0).find, FeedFind::Unknown);
}

TEST(MemoryConflictFeedTest, TextsOfAnyLengthAndAbsentEtagsComeBackAsPublished) {
  MemoryConflictFeed feed(limits_of(10));
  FeedEvent event = event_of(kFeedMerged, "/items/" + std::string(300, 'r'), std::string(254, 'o'), 7);
  event.your_etag = "";  // sent empty: present, unlike current_etag
  event.base_etag = "\"base\"";
  event.details = std::string(70000, 'd');
  event.conflicts = {"/" + std::string(255, 'p'), "", "/x"};
  FeedEvent published = event;
  feed.publish(std::move(event));
  FeedEvent stored = feed.get(1).event;
  EXPECT_EQ(stored.type, published.type);
  EXPECT_EQ(stored.route, published.route);
  EXPECT_EQ(stored.resource, published.resource);
  EXPECT_EQ(stored.time, at_second(7));
  EXPECT_EQ(stored.request_id, published.request_id);
  EXPECT_EQ(stored.client, "10.0.0.1");
  EXPECT_EQ(stored.method, "PUT");
  EXPECT_EQ(stored.your_etag, std::optional<std::string>(""));
  EXPECT_EQ(stored.current_etag, std::nullopt);
  EXPECT_EQ(stored.base_etag, "\"base\"");
  EXPECT_EQ(stored.details, published.details);
  EXPECT_EQ(stored.conflicts, published.conflicts);
  EXPECT_EQ(stored.body, FeedBody::None);
  EXPECT_EQ(ids_of(feed.read(0, {.resource = "/items/r*", .route = std::string(254, 'o')}, 10)), (Ids{1}));
}

TEST(MemoryConflictFeedTest, BodiesAreKeptForGetNotCopiedByRead) {
  MemoryConflictFeed feed(limits_of(10, 16));
  feed.publish(conflict_with_body("/items/1", R"({"name":"x"})"));  // 12 bytes
  FeedLookup record = feed.get(1);
  EXPECT_EQ(record.event.body, FeedBody::Kept);
  EXPECT_EQ(record.event.your_body, R"({"name":"x"})");
  EXPECT_EQ(record.event.your_body_size, 12u);
  EXPECT_EQ(record.event.your_content_type, "application/json");
  FeedPage page = feed.read(0, {}, 10);
  EXPECT_EQ(page.events[0].body, FeedBody::Kept);
  EXPECT_TRUE(page.events[0].your_body.empty());
  feed.publish(event_of(kFeedMerged, "/items/2"));
  EXPECT_EQ(feed.get(2).event.body, FeedBody::None);
}

TEST(MemoryConflictFeedTest, BodyOverKeepBodyBytesOrPartialIsOmittedAndFlagged) {
  MemoryConflictFeed feed(limits_of(10, 16));
  feed.publish(conflict_with_body("/items/1", std::string(17, 'x')));
  FeedEvent partial = conflict_with_body("/items/2", std::string(8, 'y'));
  partial.your_body_size = 1000;  // the caller had only the first bytes
  feed.publish(std::move(partial));
  feed.publish(conflict_with_body("/items/3", std::string(16, 'z')));
  FeedLookup too_large = feed.get(1);
  EXPECT_EQ(too_large.event.body, FeedBody::TooLarge);
  EXPECT_TRUE(too_large.event.your_body.empty());
  EXPECT_EQ(too_large.event.your_body_size, 17u);
  EXPECT_EQ(feed.get(2).event.body, FeedBody::TooLarge);
  EXPECT_EQ(feed.get(2).event.your_body_size, 1000u);
  EXPECT_EQ(feed.get(3).event.body, FeedBody::Kept);
  FeedStats stats = feed.stats();
  EXPECT_EQ(stats.bodies_too_large, 2u);
  EXPECT_EQ(stats.bodies_kept, 1u);
  EXPECT_EQ(stats.body_bytes, 16u);
}

TEST(MemoryConflictFeedTest, BodyBudgetDropsTheBodiesOfTheOldestEventsFirst) {
  MemoryConflictFeed feed(limits_of(100, 100, 250));
  feed.publish(conflict_with_body("/items/1", std::string(100, 'a')));
  feed.publish(event_of(kFeedMerged, "/items/2"));
  feed.publish(conflict_with_body("/items/3", std::string(100, 'c')));
  EXPECT_EQ(feed.stats().body_bytes, 200u);
  feed.publish(conflict_with_body("/items/4", std::string(100, 'd')));  // 300 > 250: 1's body goes
  EXPECT_EQ(feed.get(1).event.body, FeedBody::Evicted);
  EXPECT_TRUE(feed.get(1).event.your_body.empty());
  EXPECT_EQ(feed.get(1).event.your_body_size, 100u);
  EXPECT_EQ(feed.get(3).event.your_body, std::string(100, 'c'));
  EXPECT_EQ(feed.get(4).event.your_body, std::string(100, 'd'));
  feed.publish(conflict_with_body("/items/5", std::string(60, 'e')));  // 260 > 250: 3's body goes
  EXPECT_EQ(feed.get(3).event.body, FeedBody::Evicted);
  EXPECT_EQ(feed.get(4).event.body, FeedBody::Kept);
  EXPECT_EQ(feed.get(5).event.body, FeedBody::Kept);
  FeedStats stats = feed.stats();
  EXPECT_EQ(stats.body_bytes, 160u);
  EXPECT_EQ(stats.bodies_kept, 2u);
  EXPECT_EQ(stats.bodies_evicted, 2u);
  feed.set_limits(limits_of(100, 100, 100));  // a smaller budget applies at once
  EXPECT_EQ(feed.get(4).event.body, FeedBody::Evicted);
  EXPECT_EQ(feed.stats().body_bytes, 60u);
  feed.set_limits(limits_of(1, 100, 100));  // dropped events give their bodies back
  EXPECT_EQ(feed.stats().body_bytes, 60u);
  feed.publish(event_of(kFeedMerged, "/items/6"));
  EXPECT_EQ(feed.stats().body_bytes, 0u);
  EXPECT_EQ(feed.stats().bodies_kept, 0u);
}

TEST(MemoryConflictFeedTest, ResolveOnceThenAlreadyResolvedSaysByWhom) {
  MemoryConflictFeed feed(limits_of(100));
  feed.publish(conflict_with_body("/items/1", "{}"));
  FeedEvent resolved = event_of("ignored", "/elsewhere", "ignored", 50);
  resolved.details = R"({"conflict":1,"by":"ops","choice":"yours"})";
  ResolveOutcome first = feed.resolve(1, resolution_by("ops", "yours"), resolved);
  ASSERT_EQ(first.result, ResolveResult::Resolved);
  EXPECT_EQ(first.resolution.event_id, 2u);
  FeedLookup published = feed.get(2);
  EXPECT_EQ(published.event.type, kFeedResolved);
  EXPECT_EQ(published.event.route, "items");
  EXPECT_EQ(published.event.resource, "/items/1");
  EXPECT_EQ(published.event.details, resolved.details);
  FeedLookup conflict = feed.get(1);
  ASSERT_TRUE(conflict.event.resolved.has_value());
  EXPECT_EQ(conflict.event.resolved->by, "ops");
  EXPECT_EQ(conflict.event.resolved->choice, "yours");
  EXPECT_EQ(conflict.event.resolved->new_etag, "\"c\"");
  EXPECT_EQ(conflict.event.resolved->time, at_second(50));
  EXPECT_EQ(conflict.event.resolved->event_id, 2u);

  ResolveOutcome second = feed.resolve(1, resolution_by("alice", "theirs", 60), event_of("x", "/items/1"));
  EXPECT_EQ(second.result, ResolveResult::AlreadyResolved);
  EXPECT_EQ(second.resolution.by, "ops");
  EXPECT_EQ(second.resolution.choice, "yours");
  EXPECT_EQ(second.resolution.time, at_second(50));
  EXPECT_EQ(feed.last_id(), 2u);  // a refused resolve publishes nothing
  EXPECT_EQ(feed.stats().resolved, 1u);
}

TEST(MemoryConflictFeedTest, ResolveRefusesOtherTypesDroppedAndUnknownIds) {
  MemoryConflictFeed feed(limits_of(2));
  feed.publish(event_of(kFeedConflict, "/items/1"));
  feed.publish(event_of(kFeedMerged, "/items/2"));
  feed.publish(event_of(kFeedLocked, "/items/3"));  // 1 goes
  EXPECT_EQ(feed.resolve(1, resolution_by("ops", "yours"), {}).result, ResolveResult::Dropped);
  EXPECT_EQ(feed.resolve(2, resolution_by("ops", "yours"), {}).result, ResolveResult::NotAConflict);
  EXPECT_EQ(feed.resolve(3, resolution_by("ops", "yours"), {}).result, ResolveResult::NotAConflict);
  EXPECT_EQ(feed.resolve(9, resolution_by("ops", "yours"), {}).result, ResolveResult::Unknown);
  EXPECT_EQ(feed.last_id(), 3u);
  EXPECT_EQ(feed.stats().resolved, 0u);
}

TEST(MemoryConflictFeedTest, ConcurrentResolvesOfOneConflictHaveExactlyOneWinner) {
  constexpr int kConflicts = 200;
  constexpr int kThreads = 4;
  MemoryConflictFeed feed(limits_of(kConflicts * 2));
  publish_conflicts(feed, kConflicts);
  std::atomic<int> wins[kThreads] = {};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (std::uint64_t id = 1; id <= kConflicts; ++id) {
        if (feed.resolve(id, resolution_by("thread-" + std::to_string(t), "theirs"), {}).result == ResolveResult::Resolved)
          wins[t].fetch_add(1);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  int total = 0;
  for (auto& win : wins) total += win.load();
  EXPECT_EQ(total, kConflicts);
  EXPECT_EQ(feed.last_id(), 2u * kConflicts);  // one `resolved` event a conflict
  EXPECT_EQ(ids_of(feed.read(kConflicts, {.types = {"resolved"}}, 1000)).size(), static_cast<std::size_t>(kConflicts));
}

TEST(MemoryConflictFeedTest, WatchersAreToldTheNewestIdUntilUnsubscribed) {
  MemoryConflictFeed feed(limits_of(10));
  Ids first_heard;
  Ids second_heard;
  std::size_t held_when_told = 0;
  FeedWatchHandle first = feed.watch([&](std::uint64_t id) {
    first_heard.push_back(id);
    held_when_told = feed.size();  // outside the store's lock: may call the store
  });
  FeedWatchHandle second = feed.watch([&](std::uint64_t id) { second_heard.push_back(id); });
  feed.publish(event_of(kFeedConflict, "/items/1"));
  feed.publish(event_of(kFeedConflict, "/items/2"));
  EXPECT_EQ(held_when_told, 2u);
  second.reset();
  feed.resolve(1, resolution_by("ops", "theirs"), {});
  feed.resolve(1, resolution_by("ops", "theirs"), {});  // refused: publishes nothing, tells no one
  first.reset();
  feed.publish(event_of(kFeedConflict, "/items/4"));
  EXPECT_EQ(first_heard, (Ids{1, 2, 3}));
  EXPECT_EQ(second_heard, (Ids{1, 2}));
}

TEST(MemoryConflictFeedTest, AHandleMayOutliveItsStore) {
  std::vector<std::uint64_t> heard;
  FeedWatchHandle handle;
  {
    MemoryConflictFeed feed(limits_of(10));
    handle = feed.watch([&](std::uint64_t id) { heard.push_back(id); });
    feed.publish(event_of(kFeedConflict, "/items/1"));
  }
  handle.reset();
  EXPECT_EQ(heard, (Ids{1}));
}

TEST(MemoryConflictFeedTest, ConcurrentPublishesGetDenseIdsAndLoseNothingWithinCapacity) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 2000;
  MemoryConflictFeed feed(limits_of(kThreads * kPerThread));
  std::atomic<bool> in_listener{false};
  std::atomic<bool> overlapped{false};
  std::atomic<std::uint64_t> newest_heard{0};
  std::atomic<bool> went_back{false};
  FeedWatchHandle watch = feed.watch([&](std::uint64_t id) {
    if (in_listener.exchange(true)) overlapped = true;
    if (id <= newest_heard.load()) went_back = true;
    newest_heard = id;
    in_listener = false;
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        FeedEvent event = event_of(kFeedConflict, "/t" + std::to_string(t));
        event.request_id = std::to_string(i);
        feed.publish(std::move(event));
      }
    });
  }
  for (auto& thread : threads) thread.join();
  FeedPage page = feed.read(0, {}, kThreads * kPerThread + 1);
  ASSERT_EQ(page.events.size(), static_cast<std::size_t>(kThreads * kPerThread));
  std::vector<int> next_of_thread(kThreads, 0);
  for (std::size_t i = 0; i < page.events.size(); ++i) {
    const FeedEvent& event = page.events[i];
    EXPECT_EQ(event.id, i + 1);
    int thread = std::stoi(event.resource.substr(2));
    EXPECT_EQ(event.request_id, std::to_string(next_of_thread[thread]++));  // each thread's, in its order
  }
  for (int published : next_of_thread) EXPECT_EQ(published, kPerThread);
  EXPECT_EQ(newest_heard.load(), static_cast<std::uint64_t>(kThreads * kPerThread));
  EXPECT_FALSE(overlapped.load());
  EXPECT_FALSE(went_back.load());
  FeedStats stats = feed.stats();
  EXPECT_EQ(stats.dropped, 0u);
  ASSERT_EQ(stats.published.size(), 1u);
  EXPECT_EQ(stats.published[0], (std::pair<std::string, std::uint64_t>{"conflict", kThreads * kPerThread}));
}

TEST(MemoryConflictFeedTest, CountsPublishedPerTypeSortedByType) {
  MemoryConflictFeed feed(limits_of(2));
  feed.publish(event_of(kFeedMerged, "/a"));
  feed.publish(event_of(kFeedConflict, "/a"));
  feed.publish(event_of(kFeedMerged, "/a"));
  feed.resolve(2, resolution_by("ops", "theirs"), {});
  using Count = std::pair<std::string, std::uint64_t>;
  EXPECT_EQ(feed.stats().published, (std::vector<Count>{{"conflict", 1}, {"merged", 2}, {"resolved", 1}}));
  EXPECT_EQ(feed.stats().dropped, 2u);
}

TEST(MemoryConflictFeedTest, InterfaceCallsCompleteAtOnce) {
  MemoryConflictFeed feed(limits_of(10));
  ConflictFeed& store = feed;
  std::uint64_t published = 0;
  auto on_published = [&](StoreResult<std::uint64_t>&& result) { published = result.value; };
  EXPECT_EQ(store.publish(conflict_with_body("/items/1", "{}"), on_published), nullptr);
  EXPECT_EQ(published, 1u);
  FeedPage page;
  auto on_page = [&](StoreResult<FeedPage>&& result) { page = std::move(result.value); };
  EXPECT_EQ(store.read(0, {}, 10, on_page), nullptr);
  EXPECT_EQ(ids_of(page), (Ids{1}));
  FeedLookup lookup;
  auto on_lookup = [&](StoreResult<FeedLookup>&& result) { lookup = std::move(result.value); };
  EXPECT_EQ(store.get(1, on_lookup), nullptr);
  EXPECT_EQ(lookup.event.your_body, "{}");
  ResolveOutcome outcome;
  auto on_resolved = [&](StoreResult<ResolveOutcome>&& result) { outcome = std::move(result.value); };
  EXPECT_EQ(store.resolve(1, resolution_by("ops", "yours"), {}, on_resolved), nullptr);
  EXPECT_EQ(outcome.result, ResolveResult::Resolved);
}

}  // namespace arbiter::feed_test
