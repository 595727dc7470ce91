#include "policies/store/memory_history_store.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "policies/etag/etag.h"

namespace arbiter {
namespace {

// Wall-clock times as seconds after a fixed instant (the store is given its times; no clock).
WallTime history_second(int second) {
  return WallTime(std::chrono::seconds(1'700'000'000) + std::chrono::seconds(second));
}

VersionInput observed_version(std::string_view resource, std::string_view etag, std::string_view body,
                              int second = 0, std::string_view route = "items") {
  VersionInput input;
  input.route = route;
  input.resource = resource;
  input.etag = etag;
  input.body = body;
  input.content_type = "application/json";
  input.time = history_second(second);
  return input;
}

std::vector<std::uint64_t> listed_numbers(const HistoryListing& listing) {
  std::vector<std::uint64_t> numbers;
  for (const VersionMeta& meta : listing.versions) numbers.push_back(meta.number);
  return numbers;
}

HistoryLimits history_limits(std::size_t keep, std::size_t max_bytes = 1u << 20, std::size_t max_version_bytes = 1u << 20,
                             std::size_t max_resources = 1000) {
  HistoryLimits limits;
  limits.keep = keep;
  limits.max_bytes = max_bytes;
  limits.max_version_bytes = max_version_bytes;
  limits.max_resources = max_resources;
  return limits;
}

using Numbers = std::vector<std::uint64_t>;

TEST(MemoryHistoryStoreTest, NumbersFromOnePerResourceAndListsNewestFirst) {
  MemoryHistoryStore store;
  HistoryLimits limits;
  EXPECT_EQ(store.record(observed_version("/items/1", "\"a\"", "{\"v\":1}", 1), limits).number, 1u);
  EXPECT_EQ(store.record(observed_version("/items/1", "\"b\"", "{\"v\":22}", 2), limits).number, 2u);
  EXPECT_EQ(store.record(observed_version("/items/2", "\"a\"", "{}", 3), limits).number, 1u);

  HistoryListing listing = store.list("/items/1");
  EXPECT_TRUE(listing.known);
  EXPECT_EQ(listing.dropped, 0u);
  ASSERT_EQ(listed_numbers(listing), (Numbers{2, 1}));
  const VersionMeta& newest = listing.versions[0];
  EXPECT_EQ(newest.etag, "\"b\"");
  EXPECT_EQ(newest.time, history_second(2));
  EXPECT_EQ(newest.size, 8u);
  EXPECT_TRUE(newest.body_kept);
  EXPECT_EQ(newest.content_type, "application/json");
  EXPECT_EQ(newest.method, "");
  EXPECT_EQ(newest.request_id, "");
  EXPECT_EQ(newest.client, "");
  EXPECT_FALSE(newest.fence.has_value());

  EXPECT_FALSE(store.list("/items/3").known);
  EXPECT_TRUE(store.list("/items/3").versions.empty());
}

TEST(MemoryHistoryStoreTest, AnswersThroughTheInterfaceAtOnce) {
  MemoryHistoryStore store;
  HistoryStore& history = store;
  StoreResult<RecordOutcome> recorded;
  auto on_record = [&](StoreResult<RecordOutcome>&& result) { recorded = std::move(result); };
  EXPECT_EQ(history.record(observed_version("/items/1", "\"a\"", "x"), HistoryLimits{}, on_record), nullptr);
  EXPECT_TRUE(recorded.ok());
  EXPECT_EQ(recorded.value.number, 1u);

  StoreResult<VersionLookup> looked_up;
  auto on_lookup = [&](StoreResult<VersionLookup>&& result) { looked_up = std::move(result); };
  EXPECT_EQ(history.version("/items/1", 1, on_lookup), nullptr);
  EXPECT_EQ(looked_up.value.find, VersionFind::Found);
  EXPECT_EQ(looked_up.value.version.body, "x");
  looked_up = {};
  EXPECT_EQ(history.find_tag("/items/1", "\"a\"", on_lookup), nullptr);
  EXPECT_EQ(looked_up.value.version.meta.number, 1u);
  looked_up = {};
  EXPECT_EQ(history.at_time("/items/1", history_second(5), on_lookup), nullptr);
  EXPECT_EQ(looked_up.value.version.meta.number, 1u);

  StoreResult<HistoryListing> listed;
  auto on_list = [&](StoreResult<HistoryListing>&& result) { listed = std::move(result); };
  EXPECT_EQ(history.list("/items/1", on_list), nullptr);
  EXPECT_EQ(listed.value.versions.size(), 1u);
}

TEST(MemoryHistoryStoreTest, RecordsOnlyWhenTheTagDiffersFromTheNewest) {
  MemoryHistoryStore store;
  HistoryLimits limits;
  EXPECT_EQ(store.record(observed_version("/items/1", "\"a\"", "1"), limits).number, 1u);
  RecordOutcome again = store.record(observed_version("/items/1", "\"a\"", "1"), limits);
  EXPECT_EQ(again.number, 0u);
  EXPECT_FALSE(again.annotated);
  EXPECT_EQ(store.record(observed_version("/items/1", "\"b\"", "2"), limits).number, 2u);
  // Only the newest is compared: going back to an older tag is a new version.
  EXPECT_EQ(store.record(observed_version("/items/1", "\"a\"", "1"), limits).number, 3u);
  EXPECT_EQ(listed_numbers(store.list("/items/1")), (Numbers{3, 2, 1}));
  EXPECT_EQ(store.stats("items").recorded, 3u);
}

TEST(MemoryHistoryStoreTest, AWriteGivesItsAuthorToTheNewestObservedVersion) {
  MemoryHistoryStore store;
  HistoryLimits limits;
  ASSERT_EQ(store.record(observed_version("/items/1", "\"a\"", "{}", 1), limits).number, 1u);

  VersionInput write = observed_version("/items/1", "\"a\"", "{}", 2);
  write.author = VersionAuthor{"PUT", "0123456789abcdef0123456789abcdef", "127.0.0.1", 42};
  RecordOutcome outcome = store.record(write, limits);
  EXPECT_EQ(outcome.number, 0u);
  EXPECT_TRUE(outcome.annotated);

  VersionLookup lookup = store.version("/items/1", 1);
  ASSERT_EQ(lookup.find, VersionFind::Found);
  EXPECT_EQ(lookup.version.meta.method, "PUT");
  EXPECT_EQ(lookup.version.meta.request_id, "0123456789abcdef0123456789abcdef");
  EXPECT_EQ(lookup.version.meta.client, "127.0.0.1");
  EXPECT_EQ(lookup.version.meta.fence, std::optional<std::uint64_t>(42));
  EXPECT_EQ(lookup.version.meta.time, history_second(1));  // the version's own time stays
  EXPECT_EQ(lookup.version.body, "{}");
  EXPECT_EQ(store.stats("items").bytes, 2u + 3 + 16 + 3 + 32 + 9);

  // A version that has an author keeps it.
  VersionInput other = write;
  other.author = VersionAuthor{"PATCH", "r2", "10.0.0.2", std::nullopt};
  outcome = store.record(other, limits);
  EXPECT_EQ(outcome.number, 0u);
  EXPECT_FALSE(outcome.annotated);
  EXPECT_EQ(store.version("/items/1", 1).version.meta.method, "PUT");
}

TEST(MemoryHistoryStoreTest, KeepsEveryFieldExactly) {
  MemoryHistoryStore store;
  HistoryLimits limits;
  const std::string minted = mint_etag("body");
  const std::string upper = "\"ABCDEF0123\"";
  const std::string long_tag = "W/\"" + std::string(300, 'q') + "\"";
  const std::string binary_body("a\0b\xff", 4);
  const std::vector<std::string> tags = {minted, upper, long_tag, "\"\"", "\"0\"", "abcd", "\"abc\""};
  for (std::size_t i = 0; i < tags.size(); ++i) {
    VersionInput input = observed_version("/r", tags[i], binary_body, static_cast<int>(i));
    std::string long_type = "application/vnd." + std::string(120, 'v') + "+json";
    input.content_type = i % 2 ? "" : i == 4 ? std::string_view(long_type) : "text/plain; charset=utf-8";
    std::string request_id = i % 2 ? "0123456789ABCDEF" : std::string(200, 'f');
    std::string client = "client-" + std::to_string(i);
    if (i >= 2) input.author = VersionAuthor{i == 2 ? "MKCOL" : "DELETE", request_id, client, std::nullopt};
    ASSERT_EQ(store.record(input, limits).number, i + 1);
    VersionLookup lookup = store.version("/r", i + 1);
    ASSERT_EQ(lookup.find, VersionFind::Found);
    EXPECT_EQ(lookup.version.meta.etag, tags[i]);
    EXPECT_EQ(lookup.version.meta.content_type, input.content_type);
    EXPECT_EQ(lookup.version.body, binary_body);
    EXPECT_EQ(lookup.version.meta.size, 4u);
    if (input.author) {
      EXPECT_EQ(lookup.version.meta.method, input.author->method);
      EXPECT_EQ(lookup.version.meta.request_id, request_id);
      EXPECT_EQ(lookup.version.meta.client, input.author->client);
    }
  }
  EXPECT_EQ(store.find_tag("/r", upper).version.meta.number, 2u);
  EXPECT_EQ(store.find_tag("/r", "\"abcdef0123\"").find, VersionFind::Unknown);  // tags compare exactly
}

// Past 65,535 distinct Content-Types the store keeps them in the version itself (as it keeps
// long ones: KeepsEveryFieldExactly).
TEST(MemoryHistoryStoreTest, KeepsContentTypesBeyondTheInternedOnes) {
  MemoryHistoryStore store;
  HistoryLimits limits = history_limits(1);
  constexpr int kTypes = 65540;
  for (int i = 0; i < kTypes; ++i) {
    std::string type = "application/x-" + std::to_string(i);
    std::string tag = "\"" + std::to_string(i) + "\"";
    VersionInput input = observed_version("/a", tag, "x", i);
    input.content_type = type;
    ASSERT_EQ(store.record(input, limits).number, static_cast<std::uint64_t>(i + 1));
    if (i % 16381 == 0 || i >= kTypes - 3) {
      EXPECT_EQ(store.version("/a", i + 1).version.meta.content_type, type);
      EXPECT_EQ(store.stats("items").bytes, 1 + tag.size() + type.size());
    }
  }
  EXPECT_EQ(store.stats("items").dropped_keep, static_cast<std::uint64_t>(kTypes - 1));
}

TEST(MemoryHistoryStoreTest, KeepDropsTheResourcesOldestAndCountsThem) {
  MemoryHistoryStore store;
  HistoryLimits limits = history_limits(3);
  for (int i = 1; i <= 5; ++i)
    store.record(observed_version("/items/1", "\"" + std::to_string(i) + "\"", "body" + std::to_string(i), i), limits);
  HistoryListing listing = store.list("/items/1");
  EXPECT_EQ(listed_numbers(listing), (Numbers{5, 4, 3}));
  EXPECT_EQ(listing.dropped, 2u);

  EXPECT_EQ(store.version("/items/1", 1).find, VersionFind::Dropped);
  EXPECT_EQ(store.version("/items/1", 2).find, VersionFind::Dropped);
  VersionLookup third = store.version("/items/1", 3);
  ASSERT_EQ(third.find, VersionFind::Found);
  EXPECT_EQ(third.version.body, "body3");
  EXPECT_EQ(third.version.meta.etag, "\"3\"");
  EXPECT_EQ(store.version("/items/1", 6).find, VersionFind::Unknown);
  EXPECT_EQ(store.version("/items/1", 0).find, VersionFind::Unknown);
  EXPECT_EQ(store.version("/items/2", 1).find, VersionFind::Unknown);

  HistoryStats stats = store.stats("items");
  EXPECT_EQ(stats.recorded, 5u);
  EXPECT_EQ(stats.versions, 3u);
  EXPECT_EQ(stats.dropped_keep, 2u);
  EXPECT_EQ(stats.resources, 1u);
  EXPECT_EQ(stats.bytes, 3u * (5 + 3 + 16));  // body, tag, "application/json"
}

TEST(MemoryHistoryStoreTest, MaxBytesDropsTheRoutesOldestVersionAcrossResources) {
  MemoryHistoryStore store;
  // Each version: 10 body bytes + a 4-character tag + 16 of Content-Type = 30.
  HistoryLimits limits = history_limits(20, 90);
  store.record(observed_version("/a", "\"a1\"", "aaaaaaaaa1", 1), limits);
  store.record(observed_version("/b", "\"b1\"", "bbbbbbbbb1", 2), limits);
  store.record(observed_version("/a", "\"a2\"", "aaaaaaaaa2", 3), limits);
  EXPECT_EQ(store.stats("items").bytes, 90u);
  store.record(observed_version("/c", "\"c1\"", "ccccccccc1", 4), limits);  // a1 goes
  EXPECT_EQ(store.version("/a", 1).find, VersionFind::Dropped);
  EXPECT_EQ(store.version("/b", 1).find, VersionFind::Found);
  store.record(observed_version("/a", "\"a3\"", "aaaaaaaaa3", 5), limits);  // b1 goes, not a2
  EXPECT_EQ(store.version("/b", 1).find, VersionFind::Dropped);
  EXPECT_EQ(store.version("/a", 2).find, VersionFind::Found);
  store.record(observed_version("/b", "\"b2\"", "bbbbbbbbb2", 6), limits);  // a2 goes
  EXPECT_EQ(listed_numbers(store.list("/a")), (Numbers{3}));
  EXPECT_EQ(listed_numbers(store.list("/b")), (Numbers{2}));
  EXPECT_EQ(listed_numbers(store.list("/c")), (Numbers{1}));

  HistoryStats stats = store.stats("items");
  EXPECT_EQ(stats.dropped_bytes, 3u);
  EXPECT_EQ(stats.versions, 3u);
  EXPECT_EQ(stats.bytes, 90u);
  EXPECT_EQ(stats.resources, 3u);
}

TEST(MemoryHistoryStoreTest, AResourceEmptiedByMaxBytesKeepsItsNumbers) {
  MemoryHistoryStore store;
  HistoryLimits limits = history_limits(20, 40);
  store.record(observed_version("/a", "\"a1\"", "aaaaaaaaa1", 1), limits);
  store.record(observed_version("/b", "\"b1\"", "bbbbbbbbb1", 2), limits);
  HistoryListing a = store.list("/a");
  EXPECT_TRUE(a.known);
  EXPECT_TRUE(a.versions.empty());
  EXPECT_EQ(a.dropped, 1u);
  EXPECT_EQ(store.version("/a", 1).find, VersionFind::Dropped);
  EXPECT_EQ(store.at_time("/a", history_second(5)).find, VersionFind::Dropped);
  EXPECT_EQ(store.find_tag("/a", "\"a1\"").find, VersionFind::Unknown);
  EXPECT_EQ(store.record(observed_version("/a", "\"a1\"", "aaaaaaaaa1", 3), limits).number, 2u);
}

TEST(MemoryHistoryStoreTest, MaxResourcesDropsTheResourceWhoseNewestIsOldestWhole) {
  MemoryHistoryStore store;
  HistoryLimits limits = history_limits(20, 1u << 20, 1u << 20, 2);
  store.record(observed_version("/a", "\"a1\"", "x", 1), limits);
  store.record(observed_version("/b", "\"b1\"", "x", 2), limits);
  store.record(observed_version("/a", "\"a2\"", "x", 3), limits);
  store.record(observed_version("/c", "\"c1\"", "x", 4), limits);  // /b goes: its newest is oldest

  EXPECT_FALSE(store.list("/b").known);
  EXPECT_EQ(store.version("/b", 1).find, VersionFind::Unknown);
  EXPECT_EQ(listed_numbers(store.list("/a")), (Numbers{2, 1}));
  EXPECT_TRUE(store.list("/c").known);
  HistoryStats stats = store.stats("items");
  EXPECT_EQ(stats.resources, 2u);
  EXPECT_EQ(stats.versions, 3u);
  EXPECT_EQ(stats.dropped_resources, 1u);
  EXPECT_EQ(stats.bytes, 3u * (1 + 4 + 16));

  // Forgotten whole: numbering starts again; /a (older newest than /c) goes now.
  EXPECT_EQ(store.record(observed_version("/b", "\"b9\"", "x", 5), limits).number, 1u);
  EXPECT_FALSE(store.list("/a").known);
  EXPECT_TRUE(store.list("/c").known);
}

TEST(MemoryHistoryStoreTest, BodiesOverMaxVersionBytesAreRecordedWithoutThem) {
  MemoryHistoryStore store;
  HistoryLimits limits = history_limits(20, 1u << 20, 5);
  store.record(observed_version("/a", "\"a1\"", "0123456789", 1), limits);
  store.record(observed_version("/a", "\"a2\"", "01234", 2), limits);
  VersionLookup big = store.version("/a", 1);
  ASSERT_EQ(big.find, VersionFind::Found);
  EXPECT_FALSE(big.version.meta.body_kept);
  EXPECT_EQ(big.version.meta.size, 10u);
  EXPECT_EQ(big.version.body, "");
  VersionLookup small = store.version("/a", 2);
  EXPECT_TRUE(small.version.meta.body_kept);
  EXPECT_EQ(small.version.body, "01234");
  HistoryStats stats = store.stats("items");
  EXPECT_EQ(stats.bodies_omitted, 1u);
  EXPECT_EQ(stats.bytes, (4u + 16) + (5 + 4 + 16));
}

TEST(MemoryHistoryStoreTest, FindTagAnswersTheNewestRetainedVersionWithThatTag) {
  MemoryHistoryStore store;
  HistoryLimits limits = history_limits(3);
  store.record(observed_version("/a", "\"x\"", "1", 1), limits);
  store.record(observed_version("/a", "\"y\"", "2", 2), limits);
  store.record(observed_version("/a", "\"x\"", "3", 3), limits);
  VersionLookup x = store.find_tag("/a", "\"x\"");
  ASSERT_EQ(x.find, VersionFind::Found);
  EXPECT_EQ(x.version.meta.number, 3u);
  EXPECT_EQ(x.version.body, "3");
  EXPECT_EQ(store.find_tag("/a", "\"y\"").version.meta.number, 2u);
  EXPECT_EQ(store.find_tag("/a", "\"z\"").find, VersionFind::Unknown);
  EXPECT_EQ(store.find_tag("/b", "\"x\"").find, VersionFind::Unknown);
  store.record(observed_version("/a", "\"z\"", "4", 4), limits);
  store.record(observed_version("/a", "\"w\"", "5", 5), limits);  // y (2) is dropped
  EXPECT_EQ(store.find_tag("/a", "\"y\"").find, VersionFind::Unknown);
}

TEST(MemoryHistoryStoreTest, AtTimeAnswersTheVersionCurrentThen) {
  MemoryHistoryStore store;
  HistoryLimits limits = history_limits(2);
  store.record(observed_version("/a", "\"1\"", "one", 10), limits);
  store.record(observed_version("/a", "\"2\"", "two", 20), limits);
  EXPECT_EQ(store.at_time("/a", history_second(9)).find, VersionFind::Unknown);
  EXPECT_EQ(store.at_time("/a", history_second(10)).version.meta.number, 1u);
  VersionLookup between = store.at_time("/a", history_second(15));
  ASSERT_EQ(between.find, VersionFind::Found);
  EXPECT_EQ(between.version.meta.number, 1u);
  EXPECT_EQ(between.version.body, "one");
  EXPECT_EQ(store.at_time("/a", history_second(20)).version.meta.number, 2u);
  EXPECT_EQ(store.at_time("/a", history_second(20) - std::chrono::milliseconds(1)).version.meta.number, 1u);
  EXPECT_EQ(store.at_time("/a", history_second(1000)).version.meta.number, 2u);
  EXPECT_EQ(store.at_time("/b", history_second(1000)).find, VersionFind::Unknown);

  store.record(observed_version("/a", "\"3\"", "three", 30), limits);  // 1 is dropped
  EXPECT_EQ(store.at_time("/a", history_second(15)).find, VersionFind::Dropped);
  EXPECT_EQ(store.at_time("/a", history_second(9)).find, VersionFind::Unknown);
  EXPECT_EQ(store.at_time("/a", history_second(25)).version.meta.number, 2u);
  EXPECT_EQ(store.at_time("/a", history_second(30)).version.meta.number, 3u);
}

TEST(MemoryHistoryStoreTest, CountsPerRouteAndChargesTheOwningRoute) {
  MemoryHistoryStore store;
  HistoryLimits limits;
  store.record(observed_version("/a", "\"1\"", "x", 1, "one"), limits);
  store.record(observed_version("/b", "\"1\"", "x", 1, "two"), limits);
  store.record(observed_version("/a", "\"2\"", "x", 2, "two"), limits);  // /a belongs to "one"
  EXPECT_EQ(store.stats("one").versions, 2u);
  EXPECT_EQ(store.stats("one").resources, 1u);
  EXPECT_EQ(store.stats("two").versions, 1u);
  EXPECT_EQ(store.stats("two").recorded, 1u);
  EXPECT_EQ(store.stats("three").recorded, 0u);
}

TEST(MemoryHistoryStoreTest, ShrunkLimitsApplyToTheWholeRoute) {
  MemoryHistoryStore store;
  HistoryLimits wide = history_limits(10);
  for (int i = 1; i <= 4; ++i) {
    store.record(observed_version("/a", "\"a" + std::to_string(i) + "\"", "x", i), wide);
    store.record(observed_version("/b", "\"b" + std::to_string(i) + "\"", "x", i), wide);
  }
  store.record(observed_version("/c", "\"c1\"", "x", 9), history_limits(2));
  EXPECT_EQ(listed_numbers(store.list("/a")), (Numbers{4, 3}));
  EXPECT_EQ(listed_numbers(store.list("/b")), (Numbers{4, 3}));
  EXPECT_EQ(store.stats("items").dropped_keep, 4u);
  EXPECT_EQ(store.stats("items").versions, 5u);
}

// Threads record to one shared resource and to one of their own each. Whatever the
// interleaving, the shared resource's numbers are 1..N dense, each handed out once, each
// thread's increasing, and each number names the version its recorder sent.
TEST(MemoryHistoryStoreTest, ConcurrentRecordsNumberDenselyAndConsistently) {
  constexpr int kThreads = 4;
  constexpr int kVersions = 300;
  MemoryHistoryStore store;
  HistoryLimits limits = history_limits(kThreads * kVersions);
  std::vector<std::vector<std::pair<std::uint64_t, std::string>>> shared_numbers(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&store, &limits, &shared_numbers, t] {
      std::string own = "/own/" + std::to_string(t);
      for (int i = 0; i < kVersions; ++i) {
        std::string tag = "\"" + std::to_string(t) + "-" + std::to_string(i) + "\"";
        RecordOutcome shared = store.record(observed_version("/shared", tag, tag, i), limits);
        shared_numbers[t].emplace_back(shared.number, tag);
        RecordOutcome mine = store.record(observed_version(own, tag, tag, i), limits);
        EXPECT_EQ(mine.number, static_cast<std::uint64_t>(i + 1));
      }
    });
  }
  for (std::thread& thread : threads) thread.join();

  std::vector<std::uint64_t> all;
  for (const auto& numbers : shared_numbers) {
    for (std::size_t i = 1; i < numbers.size(); ++i) EXPECT_LT(numbers[i - 1].first, numbers[i].first);
    for (const auto& [number, tag] : numbers) {
      all.push_back(number);
      VersionLookup lookup = store.version("/shared", number);
      ASSERT_EQ(lookup.find, VersionFind::Found);
      EXPECT_EQ(lookup.version.meta.etag, tag);
      EXPECT_EQ(lookup.version.body, tag);
    }
  }
  std::sort(all.begin(), all.end());
  ASSERT_EQ(all.size(), static_cast<std::size_t>(kThreads * kVersions));
  for (std::size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i], i + 1);
  HistoryListing listing = store.list("/shared");
  ASSERT_EQ(listing.versions.size(), all.size());
  EXPECT_EQ(listing.versions.front().number, all.size());
  EXPECT_EQ(store.stats("items").recorded, static_cast<std::uint64_t>(2 * kThreads * kVersions));
  EXPECT_EQ(store.stats("items").resources, static_cast<std::uint64_t>(kThreads + 1));
}

// The bound: at most 96 bytes of heap a version beyond its body, with realistic
// metadata (bench/table_memory.cpp `history` measures the same at scale).
TEST(MemoryHistoryStoreTest, AVersionCostsAtMost96BytesBeyondItsBody) {
#if defined(__GLIBC__) && !defined(ARBITER_SANITIZED)
  constexpr int kResources = 500;
  constexpr int kVersions = 20;
  const std::string body(100, 'b');
  std::vector<std::string> resources;
  std::vector<std::string> tags;
  for (int r = 0; r < kResources; ++r) resources.push_back("/items/" + std::to_string(r));
  for (int v = 0; v < kResources * kVersions; ++v) {
    char tag[19];
    std::snprintf(tag, sizeof tag, "\"%016x\"", static_cast<unsigned>(v * 2654435761u));
    tags.emplace_back(tag);
  }
  const std::string request_id = "0123456789abcdef0123456789abcdef";
  MemoryHistoryStore store;
  HistoryLimits limits;
  store.record(observed_version("/warm", "\"w\"", body), limits);  // the route and its interned type
  std::size_t before = mallinfo2().uordblks;
  for (int v = 0; v < kVersions; ++v) {
    for (int r = 0; r < kResources; ++r) {
      VersionInput input = observed_version(resources[r], tags[v * kResources + r], body, v);
      input.author = VersionAuthor{"PUT", request_id, "127.0.0.1", std::nullopt};
      ASSERT_EQ(store.record(input, limits).number, static_cast<std::uint64_t>(v + 1));
    }
  }
  std::size_t used = mallinfo2().uordblks - before;
  double per_version = static_cast<double>(used) / (kResources * kVersions) - static_cast<double>(body.size());
  EXPECT_LE(per_version, 96.0) << per_version << " bytes a version beyond its body";
#endif
}

}  // namespace
}  // namespace arbiter
