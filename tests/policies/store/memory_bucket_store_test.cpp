#include "policies/store/memory_bucket_store.h"
#include "tests/policies/rate_limit/bucket_test_support.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <list>
#include <random>
#include <string>
#include <thread>
#include <vector>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace arbiter {
namespace {

using namespace std::chrono_literals;

using testing::kSecond;
using testing::kStart;

// The store's tests hold at most 1000 keys a limit unless they say otherwise.
BucketShape store_shape(std::uint64_t count, std::chrono::seconds per, std::uint64_t burst,
                        std::size_t max_keys = 1000) {
  return testing::shape_of(count, per, burst, max_keys);
}

// Takes until refused; how many were admitted.
int drain(MemoryBucketStore& store, std::string_view limit, std::string_view key, const BucketShape& shape,
          std::uint64_t now) {
  int admitted = 0;
  while (store.take(limit, key, shape, now).admitted) ++admitted;
  return admitted;
}

TEST(MemoryBucketStoreTest, ANewKeyHasAFullBucket) {
  MemoryBucketStore store;
  BucketShape shape = store_shape(1, 1min, 3);
  EXPECT_EQ(store.size(), 0u);
  TakeResult first = store.take("orders/per-client", "10.0.0.1", shape, kStart);
  EXPECT_TRUE(first.admitted);
  EXPECT_EQ(first.status.remaining, 2u);
  EXPECT_EQ(drain(store, "orders/per-client", "10.0.0.1", shape, kStart), 2);
  EXPECT_EQ(store.size(), 1u);
  EXPECT_EQ(store.size("orders/per-client"), 1u);
  EXPECT_EQ(store.size("orders/other"), 0u);
}

TEST(MemoryBucketStoreTest, KeysAndLimitsHaveTheirOwnBuckets) {
  MemoryBucketStore store;
  BucketShape shape = store_shape(1, 1min, 2);
  EXPECT_EQ(drain(store, "orders/per-client", "10.0.0.1", shape, kStart), 2);
  EXPECT_EQ(drain(store, "orders/per-client", "10.0.0.2", shape, kStart), 2);
  EXPECT_EQ(drain(store, "orders/per-client", "", shape, kStart), 2);
  // The same key under another limit (another route's, say) is another bucket.
  EXPECT_EQ(drain(store, "users/per-client", "10.0.0.1", shape, kStart), 2);
  EXPECT_EQ(store.size(), 4u);
  EXPECT_EQ(store.limit_count(), 2u);
}

TEST(MemoryBucketStoreTest, BucketsRefillOnTheCallersClock) {
  MemoryBucketStore store;
  BucketShape shape = store_shape(2, 1s, 2);
  EXPECT_EQ(drain(store, "l", "k", shape, kStart), 2);
  EXPECT_FALSE(store.take("l", "k", shape, kStart + kSecond / 2 - 1).admitted);
  EXPECT_TRUE(store.take("l", "k", shape, kStart + kSecond / 2).admitted);
  EXPECT_EQ(drain(store, "l", "k", shape, kStart + 10 * kSecond), 2);
}

TEST(MemoryBucketStoreTest, RefundGivesTheTokenBack) {
  MemoryBucketStore store;
  BucketShape shape = store_shape(1, 1min, 2);
  EXPECT_EQ(drain(store, "l", "k", shape, kStart), 2);
  BucketStatus status = store.refund("l", "k", shape, kStart);
  EXPECT_EQ(status.remaining, 1u);
  EXPECT_TRUE(store.take("l", "k", shape, kStart).admitted);
  EXPECT_FALSE(store.take("l", "k", shape, kStart).admitted);
  // Never beyond the burst.
  store.refund("l", "k", shape, kStart);
  store.refund("l", "k", shape, kStart);
  EXPECT_EQ(store.refund("l", "k", shape, kStart).remaining, 2u);
  EXPECT_EQ(drain(store, "l", "k", shape, kStart), 2);
}

TEST(MemoryBucketStoreTest, RefundForABucketItDoesNotHoldReportsItFull) {
  MemoryBucketStore store;
  BucketShape shape = store_shape(1, 1min, 4);
  BucketStatus status = store.refund("l", "never-seen", shape, kStart);
  EXPECT_EQ(status.remaining, 4u);
  EXPECT_EQ(status.ns_until_full, 0u);
  EXPECT_EQ(store.size(), 0u);
}

// ---- A limit's shape changes (a reload) ----

TEST(MemoryBucketStoreReshapeTest, ANewShapeKeepsTheSpentTokens) {
  MemoryBucketStore store;
  BucketShape five = store_shape(1, 1min, 5);
  BucketShape ten = store_shape(1, 1min, 10);
  BucketShape two = store_shape(1, 1min, 2);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(store.take("l", "k", five, kStart).admitted);
  // 2 left; a larger burst gives nothing back: min(2, 10), then one taken.
  TakeResult taken = store.take("l", "k", ten, kStart);
  EXPECT_TRUE(taken.admitted);
  EXPECT_EQ(taken.status.remaining, 1u);
  EXPECT_EQ(taken.status.ns_until_full, 9 * 60 * kSecond);
  EXPECT_EQ(drain(store, "l", "k", ten, kStart), 1);
  // A drained bucket stays drained under any shape.
  EXPECT_FALSE(store.take("l", "k", two, kStart).admitted);
  EXPECT_FALSE(store.take("l", "k", store_shape(1000, 1s, 1000), kStart).admitted);
  EXPECT_EQ(store.size(), 1u);
  EXPECT_EQ(store.limit_count(), 1u);
}

TEST(MemoryBucketStoreReshapeTest, ASmallerBurstClampsTheLevel) {
  MemoryBucketStore store;
  BucketShape ten = store_shape(1, 1min, 10);
  BucketShape four = store_shape(1, 1min, 4);
  ASSERT_TRUE(store.take("l", "a", ten, kStart).admitted);  // 9 left
  for (int i = 0; i < 8; ++i) ASSERT_TRUE(store.take("l", "b", ten, kStart).admitted);  // 2 left
  TakeResult a = store.take("l", "a", four, kStart);  // min(9, 4), then one taken
  EXPECT_TRUE(a.admitted);
  EXPECT_EQ(a.status.remaining, 3u);
  TakeResult b = store.take("l", "b", four, kStart);  // min(2, 4), then one taken
  EXPECT_TRUE(b.admitted);
  EXPECT_EQ(b.status.remaining, 1u);
}

TEST(MemoryBucketStoreReshapeTest, ChangingBackConvertsAgain) {
  MemoryBucketStore store;
  BucketShape wide = store_shape(1, 1min, 10);
  BucketShape narrow = store_shape(2, 1min, 3);
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(store.take("l", "k", wide, kStart).admitted);  // 6 left
  TakeResult reloaded = store.take("l", "k", narrow, kStart);  // min(6, 3), then one taken
  EXPECT_TRUE(reloaded.admitted);
  EXPECT_EQ(reloaded.status.remaining, 2u);
  // Back to the first shape 15 s later: 2 + 0.5 tokens at 2/min, kept as 2.5 at 1/min, not
  // the 6 the bucket held before, nor a fresh 10.
  std::uint64_t later = kStart + 15 * kSecond;
  TakeResult back = store.take("l", "k", wide, later);
  EXPECT_TRUE(back.admitted);
  EXPECT_EQ(back.status.remaining, 1u);
  TakeResult last = store.take("l", "k", wide, later);
  EXPECT_TRUE(last.admitted);
  EXPECT_EQ(last.status.ns_until_next, 30 * kSecond);  // the half token left, at 1/min
  EXPECT_FALSE(store.take("l", "k", wide, later).admitted);
  // A refund under a changed shape converts too, and never beyond the burst.
  EXPECT_EQ(store.refund("l", "k", narrow, later).remaining, 1u);
  EXPECT_EQ(store.size(), 1u);
}

TEST(MemoryBucketStoreReshapeTest, EveryKeyKeepsItsLevelAcrossShardCounts) {
  // 3000 keys in 23 shards, then in 32 (room to spare in each, so none was evicted): every
  // key's bucket follows it to its new shard.
  MemoryBucketStore store;
  BucketShape before = store_shape(1, 1h, 2, 6000);
  BucketShape after = store_shape(1, 1h, 3, 20000);
  for (int i = 0; i < 3000; ++i) ASSERT_TRUE(store.take("l", "k" + std::to_string(i), before, kStart).admitted);
  for (int i = 0; i < 3000; ++i) {
    TakeResult taken = store.take("l", "k" + std::to_string(i), after, kStart);
    ASSERT_TRUE(taken.admitted) << i;
    ASSERT_EQ(taken.status.remaining, 0u) << i;  // 1 left, taken: not the fresh 3
  }
  EXPECT_EQ(store.size("l"), 3000u);
}

TEST(MemoryBucketStoreReshapeTest, FewerMaxKeysDropFullBucketsThenTheLeastRecentlyUsed) {
  MemoryBucketStore store(1);
  BucketShape four_keys = store_shape(1, 1h, 2, 4);
  BucketShape two_keys = store_shape(1, 1h, 2, 2);
  // Least recently used first: a (drained), b (full again: its token refunded), c, d (drained).
  EXPECT_EQ(drain(store, "l", "a", four_keys, kStart), 2);
  store.take("l", "b", four_keys, kStart + 1);
  store.refund("l", "b", four_keys, kStart + 1);
  EXPECT_EQ(drain(store, "l", "c", four_keys, kStart + 2), 2);
  EXPECT_EQ(drain(store, "l", "d", four_keys, kStart + 3), 2);
  ASSERT_EQ(store.size("l"), 4u);
  // b goes (full), then a (least recently used); c and d stay drained.
  EXPECT_FALSE(store.take("l", "c", two_keys, kStart + 4).admitted);
  EXPECT_EQ(store.size("l"), 2u);
  EXPECT_FALSE(store.take("l", "d", two_keys, kStart + 4).admitted);
  // a was forgotten, so it gets a fresh bucket (and c, now least recently used, makes room).
  EXPECT_EQ(drain(store, "l", "a", two_keys, kStart + 5), 2);
  EXPECT_FALSE(store.take("l", "d", two_keys, kStart + 5).admitted);
}

TEST(MemoryBucketStoreReshapeTest, RecencySurvivesTheConversion) {
  MemoryBucketStore store(1);
  BucketShape before = store_shape(1, 1h, 2, 3);
  BucketShape after = store_shape(2, 1h, 2, 3);
  store.take("l", "a", before, kStart);
  store.take("l", "b", before, kStart + 1);
  store.take("l", "c", before, kStart + 2);
  std::uint64_t later = kStart + 2 * 3600 * kSecond;  // all three full again
  // a is the most recently used now, and well short of full (it had gathered almost a third
  // token meanwhile, hence two takes).
  store.take("l", "a", before, later);
  store.take("l", "a", before, later);
  store.take("l", "d", after, later + 1);   // converts, then b (the least recently used full one) goes
  EXPECT_FALSE(store.take("l", "c", after, later + 2).overflow);  // c kept its place
  // b had been forgotten, and with no full bucket left it finds no place of its own.
  EXPECT_TRUE(store.take("l", "b", after, later + 3).overflow);
}

TEST(MemoryBucketStoreReshapeTest, TakersOnBothSidesOfAReloadNeverGainTokens) {
  // Old and new policies overlap in a reload: threads take with either shape, so the table is
  // converted back and forth, and not one token more than the first burst is ever handed out.
  MemoryBucketStore store;
  BucketShape old_shape = store_shape(1, 1h, 10, 100);
  BucketShape new_shape = store_shape(2, 1h, 50, 200);
  ASSERT_TRUE(store.take("l", "k", old_shape, kStart).admitted);  // 9 left
  constexpr int kThreads = 8;
  std::atomic<int> admitted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        const BucketShape& shape = (i + t) % 2 == 0 ? old_shape : new_shape;
        if (store.take("l", "k", shape, kStart).admitted) ++admitted;
        store.take("l", "other-" + std::to_string(t), shape, kStart);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(admitted.load(), 9);  // the 9 left, whatever the new burst; no time passed to refill any
  EXPECT_EQ(store.size("l"), 1u + kThreads);
}

// ---- Bounds and eviction ----

TEST(MemoryBucketStoreEvictionTest, EachLimitKeepsAtMostMaxKeys) {
  MemoryBucketStore store;
  BucketShape small = store_shape(1, 1min, 1, 3);
  BucketShape large = store_shape(1, 1min, 1, 10);
  for (int i = 0; i < 20; ++i) {
    store.take("a", std::to_string(i), small, kStart);
    store.take("b", std::to_string(i), large, kStart);
  }
  EXPECT_EQ(store.size("a"), 3u);
  EXPECT_EQ(store.size("b"), 10u);  // a's flood of keys did not push b's out
  EXPECT_EQ(store.size(), 13u);
}

TEST(MemoryBucketStoreEvictionTest, AFullBucketGoesBeforeTheLeastRecentlyUsed) {
  MemoryBucketStore store;
  BucketShape shape = store_shape(1, 1s, 2, 3);  // one shard of 3
  // a: drained, least recently used. b: one token spent, refilled a second later. c: drained.
  EXPECT_EQ(drain(store, "l", "a", shape, kStart), 2);
  EXPECT_TRUE(store.take("l", "b", shape, kStart).admitted);
  std::uint64_t later = kStart + kSecond;
  EXPECT_EQ(drain(store, "l", "c", shape, later), 2);
  // a has refilled one token by now, not two; b is full again.
  store.take("l", "d", shape, later);
  EXPECT_EQ(store.size("l"), 3u);
  // a kept its level (one token, not a fresh two) ...
  EXPECT_TRUE(store.take("l", "a", shape, later).admitted);
  EXPECT_FALSE(store.take("l", "a", shape, later).admitted);
  // ... and c too; so b was the one forgotten.
  EXPECT_FALSE(store.take("l", "c", shape, later).admitted);
}

TEST(MemoryBucketStoreEvictionTest, IdleFullBucketsAreTheLeastRecentlyUsed) {
  MemoryBucketStore store;
  BucketShape shape = store_shape(1, 1s, 1, 3);
  store.take("l", "old", shape, kStart);               // full again from kStart + 1 s
  store.take("l", "recent-1", shape, kStart + 5 * kSecond);
  store.take("l", "recent-2", shape, kStart + 5 * kSecond);
  store.take("l", "new", shape, kStart + 5 * kSecond);
  EXPECT_FALSE(store.take("l", "recent-1", shape, kStart + 5 * kSecond).admitted);
  EXPECT_FALSE(store.take("l", "recent-2", shape, kStart + 5 * kSecond).admitted);
  EXPECT_FALSE(store.take("l", "new", shape, kStart + 5 * kSecond).admitted);
  EXPECT_EQ(store.size("l"), 3u);
}

TEST(MemoryBucketStoreEvictionTest, WithNoFullBucketNewKeysShareTheOverflowBucket) {
  MemoryBucketStore store;
  BucketShape shape = store_shape(1, 1h, 1, 3);  // nothing refills during the test
  store.take("l", "a", shape, kStart);
  store.take("l", "b", shape, kStart + 1);
  store.take("l", "c", shape, kStart + 2);
  // Every bucket is spent: none may go. d takes the overflow bucket's one token, e finds it spent.
  TakeResult d = store.take("l", "d", shape, kStart + 3);
  EXPECT_TRUE(d.admitted);
  EXPECT_TRUE(d.overflow);
  TakeResult e = store.take("l", "e", shape, kStart + 4);
  EXPECT_FALSE(e.admitted);
  EXPECT_TRUE(e.overflow);
  EXPECT_EQ(store.size("l"), 3u);
  for (const char* held : {"a", "b", "c"}) {
    TakeResult again = store.take("l", held, shape, kStart + 5);
    EXPECT_FALSE(again.admitted) << held << " kept its spent bucket";
    EXPECT_FALSE(again.overflow) << held;
  }
}

TEST(MemoryBucketStoreEvictionTest, AVictimsSpentBucketStaysSpentWhileAnotherClientRotatesKeys) {
  MemoryBucketStore store;
  BucketShape shape = store_shape(20, 1s, 40, 100);  // the 20/s, burst 40, a small table
  EXPECT_EQ(drain(store, "l", "victim", shape, kStart), 40);
  // The attacker spends one token under each of 1000 keys, at once (nothing refills).
  int attacker_admitted = 0;
  for (int i = 0; i < 1000; ++i) {
    if (store.take("l", "rotated-" + std::to_string(i), shape, kStart).admitted) ++attacker_admitted;
  }
  EXPECT_FALSE(store.take("l", "victim", shape, kStart).admitted) << "the victim's bucket came back full";
  EXPECT_EQ(store.size("l"), 100u);
  // 99 keys got buckets of their own before the table was full, the rest shared one burst.
  EXPECT_EQ(attacker_admitted, 99 + 40);
}

TEST(MemoryBucketStoreEvictionTest, RotatingKeysShareTheOverflowBucketsBurstAndRefill) {
  MemoryBucketStore store;
  BucketShape shape = store_shape(2, 1s, 4, 2);
  drain(store, "l", "x", shape, kStart);
  drain(store, "l", "y", shape, kStart);
  // 10 s with a new key every 100 ms: at most the burst plus 2/s of refill (+1 for rounding).
  int admitted = 0;
  for (int i = 0; i < 100; ++i) {
    std::uint64_t now = kStart + static_cast<std::uint64_t>(i) * (kSecond / 10);
    // x and y keep their buckets spent, so they are never full when a new key comes.
    store.take("l", "x", shape, now);
    store.take("l", "y", shape, now);
    TakeResult taken = store.take("l", "k" + std::to_string(i), shape, now);
    EXPECT_TRUE(taken.overflow) << i;
    if (taken.admitted) ++admitted;
  }
  EXPECT_LE(admitted, 4 + 2 * 10 + 1);
  EXPECT_GE(admitted, 4 + 2 * 9);
}

TEST(MemoryBucketStoreEvictionTest, AFullBucketCanStillBeEvicted) {
  MemoryBucketStore store;
  BucketShape shape = store_shape(1, 1s, 2, 2);
  store.take("l", "refilled", shape, kStart);  // one token spent, full again a second later
  drain(store, "l", "spent", shape, kStart + 10 * kSecond);  // the most recently used
  TakeResult fresh = store.take("l", "new", shape, kStart + 10 * kSecond);
  EXPECT_TRUE(fresh.admitted);
  EXPECT_FALSE(fresh.overflow) << "the full bucket made room";
  EXPECT_EQ(store.size("l"), 2u);
  EXPECT_FALSE(store.take("l", "spent", shape, kStart + 10 * kSecond).admitted);
  EXPECT_FALSE(store.take("l", "new", shape, kStart + 10 * kSecond).overflow);
}

TEST(MemoryBucketStoreEvictionTest, ARefundForAKeyWithoutABucketGoesToTheOverflowBucket) {
  MemoryBucketStore store;
  BucketShape shape = store_shape(1, 1h, 1, 1);
  store.take("l", "held", shape, kStart);
  EXPECT_TRUE(store.take("l", "a", shape, kStart).admitted);  // the overflow bucket's token
  EXPECT_FALSE(store.take("l", "b", shape, kStart).admitted);
  store.refund("l", "a", shape, kStart);
  EXPECT_TRUE(store.take("l", "b", shape, kStart).admitted);
}

TEST(MemoryBucketStoreEvictionTest, AFullBucketIsLookedForOnlyNearTheLeastRecentlyUsedEnd) {
  constexpr std::size_t kKeys = MemoryBucketStore::kEvictionScan + 4;
  MemoryBucketStore store;
  BucketShape shape = store_shape(1, 1min, 2, kKeys);
  // The most recently used bucket is the only full one, beyond the scan: nothing is forgotten,
  // the new key shares the overflow bucket.
  for (std::size_t i = 0; i + 1 < kKeys; ++i) drain(store, "l", "k" + std::to_string(i), shape, kStart);
  store.take("l", "most-recent", shape, kStart);
  store.refund("l", "most-recent", shape, kStart);  // full again
  EXPECT_TRUE(store.take("l", "new", shape, kStart).overflow);
  EXPECT_EQ(store.size("l"), kKeys);
  EXPECT_FALSE(store.take("l", "k0", shape, kStart).admitted);  // kept, still spent
}

// A reference model of what the store must hold, against which many random operations check
// the index (growth, insertions, backward-shift deletions), the chunks and the recency list, at
// sizes from one slot to more than a chunk. Burst 1 at 1/h; the clock jumps an hour now and
// then, which fills every bucket: a bucket is full when it was last taken before the latest
// jump. A new key in a full table replaces the least recently used bucket when that one is full
// (among the least recently used, it is the first full one, if any is within the scan) and
// otherwise takes from the overflow bucket.
TEST(MemoryBucketStoreEvictionTest, MatchesAReferenceModelUnderRandomUse) {
  std::mt19937 random(99);
  for (std::size_t capacity : {1, 2, 7, 50, 300, 1500}) {
    MemoryBucketStore store(1);
    BucketShape shape = store_shape(1, 1h, 1, capacity);
    struct Held {
      int key;
      int epoch;  // when last taken
    };
    std::list<Held> reference;  // most recent first
    int epoch = 0;
    int overflow_epoch = -1;
    std::uint64_t now = kStart;
    int keys = static_cast<int>(capacity * 5 / 2 + 1);
    for (int step = 0; step < 40000; ++step) {
      // The clock moves only by whole tokens, so that a bucket taken from in this epoch (below
      // one token) stays below it until the next jump, whatever fraction it had gathered.
      if (random() % 200 == 0) {
        ++epoch;
        now += 3600 * kSecond;
      }
      // Keys from a range that grows, so the table first fills (growing its index) and then churns.
      int key = static_cast<int>(random() % static_cast<unsigned>(std::min(keys, step / 4 + 1)));
      auto it = std::find_if(reference.begin(), reference.end(), [&](const Held& h) { return h.key == key; });
      bool expect_admitted;
      bool expect_overflow = false;
      if (it != reference.end()) {
        expect_admitted = it->epoch < epoch;
        reference.erase(it);
        reference.push_front({key, epoch});
      } else if (reference.size() < capacity) {
        expect_admitted = true;
        reference.push_front({key, epoch});
      } else {
        auto victim = reference.end();
        std::size_t looked = 0;
        for (auto r = reference.rbegin(); r != reference.rend() && looked < MemoryBucketStore::kEvictionScan;
             ++r, ++looked) {
          if (r->epoch < epoch) {
            victim = std::prev(r.base());
            break;
          }
        }
        if (victim != reference.end()) {
          reference.erase(victim);
          reference.push_front({key, epoch});
          expect_admitted = true;
        } else {
          expect_overflow = true;
          expect_admitted = overflow_epoch < epoch;
          overflow_epoch = epoch;
        }
      }
      TakeResult taken = store.take("l", std::to_string(key), shape, now);
      ASSERT_EQ(taken.admitted, expect_admitted) << "capacity " << capacity << ", step " << step << ", key " << key;
      ASSERT_EQ(taken.overflow, expect_overflow) << "capacity " << capacity << ", step " << step << ", key " << key;
    }
    EXPECT_EQ(store.size("l"), capacity);
  }
}

TEST(MemoryBucketStoreEvictionTest, AShardedTableHoldsExactlyMaxKeys) {
  MemoryBucketStore store;
  BucketShape shape = store_shape(1, 1h, 1, 10000);
  for (int i = 0; i < 30000; ++i) store.take("l", "client-" + std::to_string(i), shape, kStart);
  EXPECT_EQ(store.size("l"), 10000u);
  // Spent buckets are never forgotten: the first keys still hold theirs.
  int kept = 0;
  for (int i = 0; i < 30000; ++i) {
    TakeResult taken = store.take("l", "client-" + std::to_string(i), shape, kStart);
    if (!taken.overflow) {
      ++kept;
      EXPECT_FALSE(taken.admitted) << i;
    }
  }
  EXPECT_EQ(kept, 10000);
}

TEST(MemoryBucketStoreTest, ConcurrentTakersShareOneBucketExactly) {
  MemoryBucketStore store;
  BucketShape shape = store_shape(1000, 1s, 500);
  constexpr int kThreads = 8;
  constexpr int kTakes = 5000;
  std::atomic<int> admitted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kTakes; ++i) {
        // Each thread's clock runs over the same second, in its own order.
        std::uint64_t now = kStart + static_cast<std::uint64_t>(i) * (kSecond / kTakes) + static_cast<std::uint64_t>(t);
        if (store.take("orders/global", "", shape, now).admitted) ++admitted;
        store.take("orders/per-client", "client-" + std::to_string(t), shape, now);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  // 500 of burst plus 1000 a second over (at most) one second, from 40000 attempts.
  EXPECT_LE(admitted.load(), 1500 + 1);
  EXPECT_GE(admitted.load(), 1400);
  EXPECT_EQ(store.size(), 1u + kThreads);
}

TEST(MemoryBucketStoreTest, BucketsStayUnder64Bytes) {
  EXPECT_LT(MemoryBucketStore::approximate_bytes_per_entry(), 64u);
#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  // Measured: what the allocator hands out for 100000 buckets of one limit. One shard, so that
  // the table is exactly full (shards fill unevenly, each evicting once its share is reached).
  constexpr int kKeys = 100000;
  std::vector<std::string> keys;
  for (int i = 0; i < kKeys; ++i) {
    keys.push_back("10." + std::to_string(i / 65536) + "." + std::to_string(i / 256 % 256) + "." +
                   std::to_string(i % 256));
  }
  BucketShape shape = store_shape(20, 1s, 40, kKeys);
  std::size_t before = mallinfo2().uordblks;
  {
    MemoryBucketStore store(1);
    for (const std::string& key : keys) store.take("orders/per-client", key, shape, kStart);
    ASSERT_EQ(store.size(), static_cast<std::size_t>(kKeys));
    std::size_t used = mallinfo2().uordblks - before;
    EXPECT_LT(used / kKeys, 64u) << used / kKeys << " bytes a bucket";
    EXPECT_LE(used / kKeys, MemoryBucketStore::approximate_bytes_per_entry()) << used / kKeys << " bytes a bucket";
    std::printf("[ measured ] %.1f bytes a bucket at %d buckets\n", static_cast<double>(used) / kKeys, kKeys);
  }
#endif
}

}  // namespace
}  // namespace arbiter
