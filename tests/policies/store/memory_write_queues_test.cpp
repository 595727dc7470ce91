#include "policies/store/memory_write_queues.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "policies/store/memory_version_store.h"
#include "tests/policies/blocking_waker.h"
#include "tests/policies/counting_waker.h"

namespace arbiter {
namespace {

using namespace std::chrono_literals;

const MonotonicTime kNow = MonotonicTime{} + 1000s;


TEST(MemoryWriteQueuesTest, FirstWriterHoldsTheTurnAtOnce) {
  MemoryWriteQueues store;
  auto waker = std::make_shared<CountingWaker>();
  auto turn = store.queue_write("/items/1", waker, 8);
  ASSERT_NE(turn, nullptr);
  EXPECT_TRUE(turn->held(kNow));
  EXPECT_EQ(waker->wakes, 0);
  EXPECT_EQ(store.queued_resources(), 1u);
  turn.reset();
  EXPECT_EQ(store.queued_resources(), 0u);  // an empty queue is removed
}

TEST(MemoryWriteQueuesTest, TurnsPassInArrivalOrderAndWakeTheNext) {
  MemoryWriteQueues store;
  std::vector<std::shared_ptr<CountingWaker>> wakers;
  std::vector<std::unique_ptr<WriteTurn>> turns;
  for (int i = 0; i < 4; ++i) {
    wakers.push_back(std::make_shared<CountingWaker>());
    turns.push_back(store.queue_write("/items/1", wakers.back(), 8));
    ASSERT_NE(turns.back(), nullptr);
  }
  EXPECT_TRUE(turns[0]->held(kNow));
  for (int i = 1; i < 4; ++i) EXPECT_FALSE(turns[i]->held(kNow)) << i;

  for (int holder = 0; holder < 3; ++holder) {
    turns[holder].reset();
    int next = holder + 1;
    EXPECT_TRUE(turns[next]->held(kNow)) << next;
    EXPECT_EQ(wakers[next]->wakes, 1) << next;
    for (int later = next + 1; later < 4; ++later) {
      EXPECT_FALSE(turns[later]->held(kNow)) << later;
      EXPECT_EQ(wakers[later]->wakes, 0) << later;
    }
  }
  EXPECT_EQ(wakers[0]->wakes, 0);
  turns[3].reset();
  EXPECT_EQ(store.queued_resources(), 0u);
}

TEST(MemoryWriteQueuesTest, AWaiterThatLeavesIsSkippedAndNotWoken) {
  MemoryWriteQueues store;
  auto holder_waker = std::make_shared<CountingWaker>();
  auto leaving_waker = std::make_shared<CountingWaker>();
  auto last_waker = std::make_shared<CountingWaker>();
  auto holder = store.queue_write("/items/1", holder_waker, 8);
  auto leaving = store.queue_write("/items/1", leaving_waker, 8);
  auto last = store.queue_write("/items/1", last_waker, 8);

  leaving.reset();  // e.g. its client disconnected while it waited
  EXPECT_TRUE(holder->held(kNow));
  EXPECT_FALSE(last->held(kNow));
  EXPECT_EQ(holder_waker->wakes + leaving_waker->wakes + last_waker->wakes, 0);

  holder.reset();
  EXPECT_TRUE(last->held(kNow));
  EXPECT_EQ(last_waker->wakes, 1);
  EXPECT_EQ(leaving_waker->wakes, 0);
}

TEST(MemoryWriteQueuesTest, MaxQueueCountsTheWaitersNotTheHolder) {
  MemoryWriteQueues store;
  auto holder = store.queue_write("/items/1", nullptr, 2);
  auto first = store.queue_write("/items/1", nullptr, 2);
  auto second = store.queue_write("/items/1", nullptr, 2);
  ASSERT_NE(holder, nullptr);
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  EXPECT_EQ(store.queue_write("/items/1", nullptr, 2), nullptr);
  // Another resource has its own queue.
  auto other = store.queue_write("/items/2", nullptr, 2);
  ASSERT_NE(other, nullptr);
  EXPECT_TRUE(other->held(kNow));
  // Once one leaves there is room again.
  first.reset();
  EXPECT_NE(store.queue_write("/items/1", nullptr, 2), nullptr);
}

TEST(MemoryWriteQueuesTest, MaxQueueZeroMeansNoWaiting) {
  MemoryWriteQueues store;
  auto holder = store.queue_write("/items/1", nullptr, 0);
  ASSERT_NE(holder, nullptr);
  EXPECT_TRUE(holder->held(kNow));
  EXPECT_EQ(store.queue_write("/items/1", nullptr, 0), nullptr);
  holder.reset();
  auto next = store.queue_write("/items/1", nullptr, 0);
  ASSERT_NE(next, nullptr);
  EXPECT_TRUE(next->held(kNow));
}

// A waker that calls back into the store: it must not be called under a shard's lock.
class ReentrantWaker final : public Waker {
 public:
  explicit ReentrantWaker(MemoryWriteQueues& store) : store_(store) {}
  void wake() override {
    sizes_seen = store_.queued_resources();
    auto other = store_.queue_write("/items/2", nullptr, 8);
    other_held = other->held(kNow);
  }
  std::size_t sizes_seen = 99;
  bool other_held = false;

 private:
  MemoryWriteQueues& store_;
};

TEST(MemoryWriteQueuesTest, WakeIsCalledOutsideTheLock) {
  MemoryWriteQueues store;
  auto waker = std::make_shared<ReentrantWaker>(store);
  auto holder = store.queue_write("/items/1", nullptr, 8);
  auto waiter = store.queue_write("/items/1", waker, 8);
  holder.reset();  // deadlocks here if wake() ran under the shard's mutex
  EXPECT_EQ(waker->sizes_seen, 1u);
  EXPECT_TRUE(waker->other_held);
  EXPECT_TRUE(waiter->held(kNow));
}

TEST(MemoryWriteQueuesTest, ConcurrentWritersNeverHoldOneResourceTogether) {
  MemoryWriteQueues turns;
  MemoryVersionStore store(1000);
  constexpr int kThreads = 8;
  constexpr int kRounds = 300;
  constexpr int kResources = 3;
  std::atomic<int> holders[kResources] = {};
  std::atomic<int> overlaps{0};
  std::atomic<int> lost_wakes{0};
  long long unguarded_counts[kResources] = {};  // only ever touched while holding the turn

  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < kRounds; ++round) {
        int r = (t + round) % kResources;
        std::string resource = "/items/" + std::to_string(r);
        auto waker = std::make_shared<BlockingWaker>();
        auto turn = turns.queue_write(resource, waker, kThreads);
        if (!turn) {
          ++overlaps;  // max_queue is the thread count: never full
          continue;
        }
        if (!turn->held(kNow) && !waker->wait_for(10s)) ++lost_wakes;
        if (!turn->held(kNow)) ++lost_wakes;
        if (holders[r].fetch_add(1) != 0) ++overlaps;
        long long before = unguarded_counts[r];
        std::this_thread::yield();
        unguarded_counts[r] = before + 1;
        store.put(resource, "\"" + std::to_string(before + 1) + "\"");
        holders[r].fetch_sub(1);
      }
    });
  }
  for (auto& thread : threads) thread.join();

  EXPECT_EQ(overlaps, 0);
  EXPECT_EQ(lost_wakes, 0);
  long long total = 0;
  for (int r = 0; r < kResources; ++r) {
    total += unguarded_counts[r];
    EXPECT_EQ(store.get("/items/" + std::to_string(r)), "\"" + std::to_string(unguarded_counts[r]) + "\"");
  }
  EXPECT_EQ(total, static_cast<long long>(kThreads) * kRounds);
  EXPECT_EQ(turns.queued_resources(), 0u);
}

// ---- Leases and fences ----

TEST(MemoryWriteQueuesLeaseTest, EachGrantCarriesALargerFence) {
  MemoryWriteQueues store;
  auto holder = store.queue_write("/items/1", nullptr, 8, kNow, 10s);
  auto waiter = store.queue_write("/items/1", nullptr, 8, kNow, 10s);
  auto elsewhere = store.queue_write("/items/2", nullptr, 8, kNow, 10s);
  EXPECT_GT(holder->fence(), 0u);
  EXPECT_EQ(waiter->fence(), 0u);  // not granted yet
  EXPECT_GT(elsewhere->fence(), holder->fence());
  std::uint64_t before = elsewhere->fence();
  holder.reset();
  EXPECT_TRUE(waiter->held(kNow));
  EXPECT_GT(waiter->fence(), before);
}

TEST(MemoryWriteQueuesLeaseTest, AWaiterTakesOverAnExpiredLeaseWithANewFence) {
  MemoryWriteQueues store;
  auto holder_waker = std::make_shared<CountingWaker>();
  auto waiter_waker = std::make_shared<CountingWaker>();
  auto holder = store.queue_write("/items/1", holder_waker, 8, kNow, 10s);
  auto waiter = store.queue_write("/items/1", waiter_waker, 8, kNow + 1s, 10s);
  EXPECT_EQ(holder->expires_at(), kNow + 10s);
  EXPECT_EQ(waiter->expires_at(), kNow + 10s);  // when to ask again: the holder's lease ends
  EXPECT_FALSE(waiter->held(kNow + 9s));
  EXPECT_TRUE(holder->held(kNow + 9s));

  // The holder died (or hangs) past its lease: the waiter asking then takes the turn over.
  EXPECT_TRUE(waiter->held(kNow + 10s));
  EXPECT_GT(waiter->fence(), holder->fence());
  EXPECT_EQ(waiter->expires_at(), kNow + 20s);
  EXPECT_FALSE(holder->held(kNow + 10s));  // the old holder knows it lost the turn
  EXPECT_EQ(holder_waker->wakes + waiter_waker->wakes, 0);

  // The old holder letting go late changes nothing for the new one.
  holder.reset();
  EXPECT_TRUE(waiter->held(kNow + 11s));
  EXPECT_EQ(store.queued_resources(), 1u);
  waiter.reset();
  EXPECT_EQ(store.queued_resources(), 0u);
}

TEST(MemoryWriteQueuesLeaseTest, ALaterWaiterAskingRecoversTheTurnForTheFirstAndWakesIt) {
  MemoryWriteQueues store;
  auto first_waker = std::make_shared<CountingWaker>();
  auto holder = store.queue_write("/items/1", nullptr, 8, kNow, 10s);
  auto first = store.queue_write("/items/1", first_waker, 8, kNow, 10s);
  auto second = store.queue_write("/items/1", nullptr, 8, kNow, 10s);
  EXPECT_FALSE(second->held(kNow + 10s));  // its turn comes after the first waiter's
  EXPECT_EQ(first_waker->wakes, 1);
  EXPECT_TRUE(first->held(kNow + 10s));
  EXPECT_FALSE(holder->held(kNow + 10s));
  EXPECT_EQ(second->expires_at(), kNow + 20s);
  first.reset();
  EXPECT_TRUE(second->held(kNow + 12s));
}

TEST(MemoryWriteQueuesLeaseTest, AHandedOverLeaseRunsFromWhenItIsFirstSeen) {
  MemoryWriteQueues store;
  auto holder = store.queue_write("/items/1", nullptr, 8, kNow, 10s);
  auto next = store.queue_write("/items/1", nullptr, 8, kNow, 10s);
  auto last = store.queue_write("/items/1", nullptr, 8, kNow, 10s);
  holder.reset();  // handed over without a clock
  EXPECT_EQ(next->expires_at(), MonotonicTime::max());
  // Long after, the last waiter asks first: the lease starts now, and has not expired.
  EXPECT_FALSE(last->held(kNow + 100s));
  EXPECT_EQ(last->expires_at(), kNow + 110s);
  EXPECT_TRUE(next->held(kNow + 105s));
  EXPECT_TRUE(last->held(kNow + 110s));  // then it has
  EXPECT_FALSE(next->held(kNow + 110s));
}

TEST(MemoryWriteQueuesLeaseTest, AHolderPastItsLeaseKeepsTheTurnWhileNobodyWaits) {
  MemoryWriteQueues store;
  auto holder = store.queue_write("/items/1", nullptr, 8, kNow, 10s);
  EXPECT_TRUE(holder->held(kNow + 1h));
  auto waiter = store.queue_write("/items/1", nullptr, 8, kNow + 1h, 10s);
  EXPECT_TRUE(waiter->held(kNow + 1h));  // the first waiter asking recovers it at once
  EXPECT_FALSE(holder->held(kNow + 1h));
}

TEST(MemoryWriteQueuesLeaseTest, AcquireCompletesAtOnceThroughTheStoreInterface) {
  MemoryWriteQueues memory;
  WriteTurnStore& store = memory;
  std::unique_ptr<WriteTurn> turn;
  int completions = 0;
  auto done = [&](StoreResult<std::unique_ptr<WriteTurn>>&& result) {
    ++completions;
    ASSERT_TRUE(result.ok());
    turn = std::move(result.value);
  };
  StoreCall call = store.acquire("/items/1", 10s, kNow, 8, nullptr, Completion<std::unique_ptr<WriteTurn>>(done));
  EXPECT_EQ(call, nullptr);  // completed before returning
  EXPECT_EQ(completions, 1);
  ASSERT_NE(turn, nullptr);
  EXPECT_TRUE(turn->held(kNow));
  EXPECT_EQ(turn->expires_at(), kNow + 10s);
}

}  // namespace
}  // namespace arbiter
