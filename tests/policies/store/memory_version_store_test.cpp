#include "policies/store/memory_version_store.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "policies/etag/etag.h"

namespace arbiter {
namespace {

using namespace std::chrono_literals;

// ---- The ETag table ----

TEST(MemoryVersionStoreTest, UnknownResource) {
  MemoryVersionStore store(100);
  EXPECT_FALSE(store.get("/items/1").has_value());
  EXPECT_EQ(store.sequence("/items/1"), 0u);
  EXPECT_EQ(store.size(), 0u);
}

TEST(MemoryVersionStoreTest, PutThenGet) {
  MemoryVersionStore store(100);
  store.put("/items/1", "\"v1\"");
  EXPECT_EQ(store.get("/items/1"), "\"v1\"");
  EXPECT_FALSE(store.get("/items/2").has_value());
  std::uint64_t first = store.sequence("/items/1");
  EXPECT_NE(first, 0u);

  store.put("/items/1", "\"v2\"");
  EXPECT_EQ(store.get("/items/1"), "\"v2\"");
  EXPECT_NE(store.sequence("/items/1"), first);
  EXPECT_EQ(store.size(), 1u);
}

TEST(MemoryVersionStoreTest, KeepsEveryFormOfTagExactly) {
  MemoryVersionStore store(100);
  std::string minted = mint_etag("body");
  std::string sixteen = "\"" + std::string(14, 'x') + "\"";
  std::string long_tag = "\"" + std::string(200, 'y') + "\"";
  std::string minted_looking_upper = "\"" + std::string(32, 'A') + "\"";
  const std::vector<std::string> tags = {minted, "\"7\"", "\"\"", sixteen, long_tag, minted_looking_upper};
  for (std::size_t i = 0; i < tags.size(); ++i) store.put("/r/" + std::to_string(i), tags[i]);
  for (std::size_t i = 0; i < tags.size(); ++i) EXPECT_EQ(store.get("/r/" + std::to_string(i)), tags[i]);
  // Replacing one form with another (heap -> minted -> inline) keeps only the new one.
  store.put("/r/4", minted);
  EXPECT_EQ(store.get("/r/4"), minted);
  store.put("/r/4", "\"short\"");
  EXPECT_EQ(store.get("/r/4"), "\"short\"");
}

TEST(MemoryVersionStoreTest, SequencesAreUniqueAcrossResources) {
  MemoryVersionStore store(100);
  store.put("/a", "\"1\"");
  store.put("/b", "\"1\"");
  store.forget("/c");
  EXPECT_NE(store.sequence("/a"), store.sequence("/b"));
  EXPECT_NE(store.sequence("/b"), store.sequence("/c"));
  EXPECT_NE(store.sequence("/a"), store.sequence("/c"));
}

TEST(MemoryVersionStoreTest, LearnStoresWhatAReadSawWhenNothingChangedSince) {
  MemoryVersionStore store(100);
  std::uint64_t seen = store.sequence("/items/1");
  EXPECT_TRUE(store.learn("/items/1", "\"read1\"", seen));
  EXPECT_EQ(store.get("/items/1"), "\"read1\"");

  // A read confirms; it does not change the sequence, so another read of the same moment may too.
  std::uint64_t after_learn = store.sequence("/items/1");
  EXPECT_NE(after_learn, 0u);
  EXPECT_TRUE(store.learn("/items/1", "\"read2\"", after_learn));
  EXPECT_EQ(store.sequence("/items/1"), after_learn);
  EXPECT_EQ(store.get("/items/1"), "\"read2\"");
}

TEST(MemoryVersionStoreTest, ASlowReadNeverOverwritesWhatALaterWriteEstablished) {
  MemoryVersionStore store(100);
  store.put("/items/1", "\"old\"");
  std::uint64_t seen_by_read = store.sequence("/items/1");
  store.put("/items/1", "\"written\"");  // a write finished while the read was in flight
  EXPECT_FALSE(store.learn("/items/1", "\"old\"", seen_by_read));
  EXPECT_EQ(store.get("/items/1"), "\"written\"");
}

TEST(MemoryVersionStoreTest, ASlowReadOfANewResourceLosesToAWrite) {
  MemoryVersionStore store(100);
  std::uint64_t seen_by_read = store.sequence("/items/9");
  ASSERT_EQ(seen_by_read, 0u);
  store.put("/items/9", "\"created\"");
  EXPECT_FALSE(store.learn("/items/9", "\"none-yet\"", seen_by_read));
  EXPECT_EQ(store.get("/items/9"), "\"created\"");
}

TEST(MemoryVersionStoreTest, ForgetMakesTheTagUnknownAndBlocksOlderReads) {
  MemoryVersionStore store(100);
  store.put("/items/1", "\"v1\"");
  std::uint64_t before = store.sequence("/items/1");
  store.forget("/items/1");
  EXPECT_FALSE(store.get("/items/1").has_value());
  std::uint64_t tombstone = store.sequence("/items/1");
  EXPECT_NE(tombstone, 0u);
  EXPECT_NE(tombstone, before);
  EXPECT_FALSE(store.learn("/items/1", "\"v1\"", before));
  EXPECT_FALSE(store.get("/items/1").has_value());
  // A read that began after the forget may fill it in again.
  EXPECT_TRUE(store.learn("/items/1", "\"v2\"", tombstone));
  EXPECT_EQ(store.get("/items/1"), "\"v2\"");
}

TEST(MemoryVersionStoreTest, ForgettingAnUnknownResourceStillBlocksAReadThatBeganBefore) {
  MemoryVersionStore store(100);
  std::uint64_t seen_by_read = store.sequence("/items/1");  // 0: never seen
  store.forget("/items/1");                                  // a write with an unknown outcome
  EXPECT_FALSE(store.learn("/items/1", "\"stale\"", seen_by_read));
  EXPECT_FALSE(store.get("/items/1").has_value());
}

TEST(MemoryVersionStoreTest, EvictsTheLeastRecentlyUsedAtMaxEntries) {
  MemoryVersionStore store(3);
  ASSERT_EQ(store.shard_count(), 1u);
  store.put("/a", "\"a\"");
  store.put("/b", "\"b\"");
  store.put("/c", "\"c\"");
  EXPECT_EQ(store.get("/a"), "\"a\"");  // /a is now the most recently used; /b the least
  store.put("/d", "\"d\"");
  EXPECT_EQ(store.size(), 3u);
  EXPECT_FALSE(store.get("/b").has_value());
  EXPECT_EQ(store.sequence("/b"), 0u);
  EXPECT_EQ(store.get("/a"), "\"a\"");
  EXPECT_EQ(store.get("/c"), "\"c\"");
  EXPECT_EQ(store.get("/d"), "\"d\"");

  // learn() and put() on an existing entry count as use too.
  EXPECT_TRUE(store.learn("/a", "\"a2\"", store.sequence("/a")));  // order now: c, d, a
  store.put("/c", "\"c2\"");                                         // order now: d, a, c
  store.put("/e", "\"e\"");
  EXPECT_FALSE(store.get("/d").has_value());
  EXPECT_EQ(store.get("/a"), "\"a2\"");
  EXPECT_EQ(store.get("/c"), "\"c2\"");
  EXPECT_EQ(store.size(), 3u);
}

TEST(MemoryVersionStoreTest, ShardedTableHoldsExactlyMaxEntries) {
  MemoryVersionStore store(10000);
  EXPECT_GT(store.shard_count(), 1u);
  for (int i = 0; i < 30000; ++i) store.put("/items/" + std::to_string(i), mint_etag(std::to_string(i)));
  EXPECT_EQ(store.size(), 10000u);
  // The most recent ones are all still there.
  for (int i = 29900; i < 30000; ++i) {
    EXPECT_EQ(store.get("/items/" + std::to_string(i)), mint_etag(std::to_string(i))) << i;
  }
  EXPECT_FALSE(store.get("/items/0").has_value());
}

TEST(MemoryVersionStoreTest, ShardCount) {
  EXPECT_EQ(MemoryVersionStore(1).shard_count(), 1u);
  EXPECT_EQ(MemoryVersionStore(0).max_entries(), 1u);
  EXPECT_EQ(MemoryVersionStore(300).shard_count(), 1u);
  EXPECT_EQ(MemoryVersionStore(1000).shard_count(), 3u);
  EXPECT_EQ(MemoryVersionStore(1000000).shard_count(), MemoryVersionStore::kMaxShards);
  EXPECT_EQ(MemoryVersionStore(4, 16).shard_count(), 4u);  // never more shards than entries
  MemoryVersionStore four(4, 4);
  for (int i = 0; i < 100; ++i) four.put("/" + std::to_string(i), "\"x\"");
  EXPECT_EQ(four.size(), 4u);
}

TEST(MemoryVersionStoreTest, EntriesStayUnder128Bytes) {
  EXPECT_LT(MemoryVersionStore::approximate_bytes_per_entry(), 128u);
#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  // Measured: what the allocator hands out for 100000 entries with minted tags.
  constexpr int kEntries = 100000;
  std::vector<std::string> resources, tags;
  for (int i = 0; i < kEntries; ++i) {
    resources.push_back("/accounts/" + std::to_string(i));
    tags.push_back(mint_etag(resources.back()));
  }
  std::size_t before = mallinfo2().uordblks;
  {
    MemoryVersionStore store(kEntries, 1);
    for (int i = 0; i < kEntries; ++i) store.put(resources[i], tags[i]);
    ASSERT_EQ(store.size(), static_cast<std::size_t>(kEntries));
    std::size_t used = mallinfo2().uordblks - before;
    EXPECT_LT(used / kEntries, 128u) << used / kEntries << " bytes an entry";
    EXPECT_LE(used / kEntries, MemoryVersionStore::approximate_bytes_per_entry() + 16);
  }
#endif
}

}  // namespace
}  // namespace arbiter
