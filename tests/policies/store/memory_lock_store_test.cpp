#include "policies/store/memory_lock_store.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "tests/policies/counting_waker.h"
#include "tests/policies/store/delayed_stores.h"

namespace arbiter::lock_store_test {

using namespace std::chrono_literals;
using Outcome = LockAnswer::Outcome;

const MonotonicTime kT0 = MonotonicTime{} + 1000s;

// A LOCK or write ask with the test's defaults (generous caps, no queueing).
struct Ask {
  LockAsk ask;
  std::vector<LockToken> tokens;
  explicit Ask(std::string_view resource, LockAsk::Kind kind = LockAsk::Kind::Lock, MonotonicTime now = kT0) {
    ask.kind = kind;
    ask.resource = resource;
    ask.route = "items";
    ask.client = "10.0.0.1";
    ask.owner = "alice";
    ask.timeout = 30s;
    ask.now = now;
    ask.max_locks = 1000;
    ask.max_locks_per_client = 100;
    ask.max_waiters = 8;
  }
  Ask& client(std::string_view key) { return ask.client = key, *this; }
  Ask& route(std::string_view name) { return ask.route = name, *this; }
  Ask& with(const LockToken& token) {
    tokens.push_back(token);
    ask.tokens = tokens;
    return *this;
  }
  Ask& queue(std::shared_ptr<Waker> waker, LockPlace* place = nullptr) {
    ask.queue = true;
    ask.waker = std::move(waker);
    ask.place = place;
    return *this;
  }
  Ask& caps(std::size_t max_locks, std::size_t per_client) {
    ask.max_locks = max_locks;
    ask.max_locks_per_client = per_client;
    return *this;
  }
  LockAnswer on(MemoryLockStore& store) {
    ask.tokens = tokens;
    return store.ask_now(ask);
  }
};

LockAnswer grant(MemoryLockStore& store, std::string_view resource, MonotonicTime now = kT0,
                 std::string_view client = "10.0.0.1") {
  LockAnswer answer = Ask(resource, LockAsk::Kind::Lock, now).client(client).on(store);
  EXPECT_EQ(answer.outcome, Outcome::Granted) << resource;
  return answer;
}


TEST(LockTokenTest, RandomIsVersionFourWithTheRfc9562Variant) {
  for (int i = 0; i < 64; ++i) {
    LockToken token = LockToken::random();
    EXPECT_EQ(token.bytes[6] >> 4, 4);
    EXPECT_EQ(token.bytes[8] & 0xc0, 0x80);
    std::string text = token.text();
    ASSERT_EQ(text.size(), 45u);
    EXPECT_EQ(text[23], '4');
    EXPECT_NE(std::string("89ab").find(text[28]), std::string::npos) << text;
  }
  EXPECT_NE(LockToken::random(), LockToken::random());
}

TEST(LockTokenTest, TextRoundTripsThroughParse) {
  for (int i = 0; i < 16; ++i) {
    LockToken token = LockToken::random();
    auto parsed = LockToken::parse(token.text());
    ASSERT_TRUE(parsed);
    EXPECT_EQ(*parsed, token);
  }
  auto fixed = LockToken::parse("urn:uuid:0123abcd-4567-489a-bcde-f0123456789a");
  ASSERT_TRUE(fixed);
  EXPECT_EQ(fixed->bytes[0], 0x01);
  EXPECT_EQ(fixed->bytes[15], 0x9a);
  EXPECT_EQ(fixed->text(), "urn:uuid:0123abcd-4567-489a-bcde-f0123456789a");
}

TEST(LockTokenTest, ParseAcceptsUpperCaseHexAndPrefix) {
  auto upper = LockToken::parse("URN:UUID:0123ABCD-4567-489A-BCDE-F0123456789A");
  ASSERT_TRUE(upper);
  EXPECT_EQ(upper->text(), "urn:uuid:0123abcd-4567-489a-bcde-f0123456789a");
}

TEST(LockTokenTest, ParseRefusesMalformedTokens) {
  for (std::string_view bad : {
           "",
           "urn:uuid:",
           "0123abcd-4567-489a-bcde-f0123456789a",            // no prefix
           "urn:uid:0123abcd-4567-489a-bcde-f0123456789a",    // wrong prefix
           "uri:uuid:0123abcd-4567-489a-bcde-f0123456789a",   // wrong prefix, same length
           "urn:uuid:0123abcd-4567-489a-bcde-f0123456789",    // short
           "urn:uuid:0123abcd-4567-489a-bcde-f0123456789ab",  // long
           "urn:uuid:0123abcd4567-489a-bcde-f0123456789ab",   // a dash missing
           "urn:uuid:0123abcd-4567-489a-bcde+f0123456789a",   // not a dash
           "urn:uuid:0123abcg-4567-489a-bcde-f0123456789a",   // not hex
           "urn:uuid:0123abcd-4567-489a-bcde-f0123456789 ",   // not hex at the end
           "<urn:uuid:0123abcd-4567-489a-bcde-f0123456789>",  // brackets are the If field's
       }) {
    EXPECT_FALSE(LockToken::parse(bad)) << bad;
  }
}

TEST(MemoryLockStoreTest, GrantsAFreeResource) {
  MemoryLockStore store;
  LockAnswer answer = grant(store, "/items/1");
  EXPECT_NE(answer.token, LockToken{});
  EXPECT_GT(answer.fence, 0u);
  EXPECT_EQ(answer.timeout, 30s);
  EXPECT_EQ(answer.expires, kT0 + 30s);
  EXPECT_EQ(answer.holder.owner, "alice");
  EXPECT_EQ(answer.holder.route, "items");
  EXPECT_EQ(answer.holder.client, "10.0.0.1");
  auto view = store.describe_now("/items/1", kT0);
  ASSERT_TRUE(view);
  EXPECT_EQ(view->fence, answer.fence);
  EXPECT_EQ(view->owner, "alice");
  EXPECT_EQ(view->expires, kT0 + 30s);
  EXPECT_EQ(view->timeout, 30s);
  EXPECT_EQ(store.size(kT0), 1u);
  EXPECT_EQ(store.held("items", kT0), 1u);
  EXPECT_EQ(store.held("other", kT0), 0u);
  EXPECT_FALSE(store.describe_now("/items/2", kT0));
}

TEST(MemoryLockStoreTest, TimeoutIsTakenAsGiven) {
  MemoryLockStore store;
  Ask ask("/items/1");
  ask.ask.timeout = 86400s;  // capping is the policy's job
  LockAnswer answer = ask.on(store);
  ASSERT_EQ(answer.outcome, Outcome::Granted);
  EXPECT_EQ(answer.timeout, 86400s);
  EXPECT_EQ(answer.expires, kT0 + 86400s);
  EXPECT_EQ(store.describe_now("/items/1", kT0)->timeout, 86400s);
}

TEST(MemoryLockStoreTest, ASecondLockIsRefusedWithTheHoldersView) {
  MemoryLockStore store;
  LockAnswer first = grant(store, "/items/1");
  LockAnswer second = Ask("/items/1", LockAsk::Kind::Lock, kT0 + 5s).client("10.0.0.2").on(store);
  EXPECT_EQ(second.outcome, Outcome::Locked);
  EXPECT_EQ(second.holder.owner, "alice");
  EXPECT_EQ(second.holder.fence, first.fence);
  EXPECT_EQ(second.holder.expires, kT0 + 30s);
  EXPECT_EQ(second.token, LockToken{});  // never revealed
  EXPECT_FALSE(second.place);
}

TEST(MemoryLockStoreTest, AWriteWithoutTheTokenIsLockedAndWithItAdmittedWithTheFence) {
  MemoryLockStore store;
  LockAnswer held = grant(store, "/items/1");
  EXPECT_EQ(Ask("/items/1", LockAsk::Kind::Write).on(store).outcome, Outcome::Locked);
  LockAnswer other = Ask("/items/1", LockAsk::Kind::Write).with(LockToken::random()).on(store);
  EXPECT_EQ(other.outcome, Outcome::Locked);
  ASSERT_EQ(other.tokens.size(), 1u);
  EXPECT_EQ(other.tokens[0], TokenState::Unknown);
  LockAnswer mine = Ask("/items/1", LockAsk::Kind::Write).with(held.token).on(store);
  EXPECT_EQ(mine.outcome, Outcome::Admitted);
  EXPECT_EQ(mine.fence, held.fence);
  ASSERT_EQ(mine.tokens.size(), 1u);
  EXPECT_EQ(mine.tokens[0], TokenState::Current);
  // A write to a free resource goes on, fence 0.
  LockAnswer free = Ask("/items/2", LockAsk::Kind::Write).on(store);
  EXPECT_EQ(free.outcome, Outcome::Admitted);
  EXPECT_EQ(free.fence, 0u);
}

TEST(MemoryLockStoreTest, RefreshExtendsTheLeaseAndKeepsTokenAndFence) {
  MemoryLockStore store;
  LockAnswer held = grant(store, "/items/1");
  LockChange refreshed = store.refresh_now("/items/1", held.token, 60s, kT0 + 20s);
  ASSERT_EQ(refreshed.outcome, LockChange::Outcome::Done);
  EXPECT_EQ(refreshed.view.expires, kT0 + 80s);
  EXPECT_EQ(refreshed.view.timeout, 60s);
  EXPECT_EQ(refreshed.view.fence, held.fence);
  // Still held past the first lease, with the same token.
  LockAnswer write = Ask("/items/1", LockAsk::Kind::Write, kT0 + 50s).with(held.token).on(store);
  EXPECT_EQ(write.outcome, Outcome::Admitted);
  EXPECT_EQ(write.fence, held.fence);
  EXPECT_EQ(store.describe_now("/items/1", kT0 + 79s)->expires, kT0 + 80s);
  EXPECT_FALSE(store.describe_now("/items/1", kT0 + 80s));
  // A refresh with another token changes nothing.
  EXPECT_EQ(store.refresh_now("/items/2", held.token, 60s, kT0).outcome, LockChange::Outcome::Unknown);
}

TEST(MemoryLockStoreTest, ReleaseFreesTheResource) {
  MemoryLockStore store;
  LockAnswer held = grant(store, "/items/1");
  LockChange released = store.unlock_now("/items/1", held.token, kT0 + 1s);
  EXPECT_EQ(released.outcome, LockChange::Outcome::Done);
  EXPECT_EQ(released.view.fence, held.fence);
  EXPECT_FALSE(store.describe_now("/items/1", kT0 + 1s));
  EXPECT_EQ(store.size(kT0 + 1s), 0u);
  EXPECT_EQ(store.ended("items", LockEnd::Released), 1u);
  grant(store, "/items/1", kT0 + 1s, "10.0.0.2");
}

TEST(MemoryLockStoreTest, ExpiresExactlyAtItsExpiryNotBefore) {
  MemoryLockStore store;
  LockAnswer held = grant(store, "/items/1");
  const MonotonicTime end = kT0 + 30s;
  EXPECT_EQ(Ask("/items/1", LockAsk::Kind::Lock, end - 1ns).client("b").on(store).outcome, Outcome::Locked);
  EXPECT_EQ(store.size(end - 1ns), 1u);
  EXPECT_EQ(store.held("items", end - 1ns), 1u);
  EXPECT_EQ(store.size(end), 0u);
  EXPECT_EQ(store.held("items", end), 0u);
  LockAnswer next = Ask("/items/1", LockAsk::Kind::Lock, end).client("b").on(store);
  EXPECT_EQ(next.outcome, Outcome::Granted);
  EXPECT_EQ(store.ended("items", LockEnd::Expired), 1u);
  EXPECT_EQ(store.unlock_now("/items/1", held.token, end).outcome, LockChange::Outcome::Ended);
}

TEST(MemoryLockStoreTest, TakeExpiredEndsDueLocksAndReportsEachExpiryOnce) {
  MemoryLockStore store;
  LockAnswer first = grant(store, "/items/1");
  grant(store, "/items/2", kT0 + 10s, "10.0.0.2");
  EXPECT_TRUE(store.take_expired_now(kT0 + 29s).empty());
  // Found expired by another call first (a new LOCK takes the resource over): reported all the same.
  ASSERT_EQ(Ask("/items/1", LockAsk::Kind::Lock, kT0 + 30s).client("b").on(store).outcome, Outcome::Granted);
  std::vector<LockView> expired = store.take_expired_now(kT0 + 30s);
  ASSERT_EQ(expired.size(), 1u);
  EXPECT_EQ(expired[0].resource, "/items/1");
  EXPECT_EQ(expired[0].fence, first.fence);
  EXPECT_EQ(expired[0].owner, "alice");
  EXPECT_EQ(expired[0].route, "items");
  EXPECT_EQ(expired[0].client, "10.0.0.1");
  // Ended by the call itself; a released lock is not an expiry.
  LockAnswer released = grant(store, "/items/3", kT0 + 30s);
  store.unlock_now("/items/3", released.token, kT0 + 31s);
  expired = store.take_expired_now(kT0 + 40s);
  ASSERT_EQ(expired.size(), 1u);
  EXPECT_EQ(expired[0].resource, "/items/2");
  EXPECT_TRUE(store.take_expired_now(kT0 + 40s).empty());
  EXPECT_EQ(store.held("items", kT0 + 40s), 1u);  // the takeover of /items/1
}

TEST(MemoryLockStoreTest, UnreportedExpiriesAreBounded) {
  MemoryLockStore store;
  const std::size_t locks = MemoryLockStore::kMaxUnreportedExpiries + 3;
  for (std::size_t i = 0; i < locks; ++i) {
    LockAnswer answer = Ask("/items/" + std::to_string(i), LockAsk::Kind::Lock, kT0).caps(locks, locks).on(store);
    ASSERT_EQ(answer.outcome, Outcome::Granted);
  }
  std::vector<LockView> expired = store.take_expired_now(kT0 + 30s);
  EXPECT_EQ(expired.size(), MemoryLockStore::kMaxUnreportedExpiries);
  EXPECT_EQ(store.ended("items", LockEnd::Expired), locks);
}

TEST(MemoryLockStoreTest, FencesStrictlyIncreaseAcrossGrantsAndResources) {
  MemoryLockStore store;
  std::uint64_t last = 0;
  MonotonicTime now = kT0;
  for (int i = 0; i < 20; ++i) {
    std::string resource = "/items/" + std::to_string(i % 3);
    LockAnswer held = grant(store, resource, now);
    EXPECT_GT(held.fence, last);
    last = held.fence;
    if (i % 2 == 0) {
      store.unlock_now(resource, held.token, now);
    } else {
      now += 30s;  // expires
    }
  }
}

TEST(MemoryLockStoreTest, ThreeQueuedLocksAreGrantedInArrivalOrder) {
  MemoryLockStore store;
  LockAnswer held = grant(store, "/items/1");
  std::vector<std::shared_ptr<CountingWaker>> wakers;
  std::vector<std::unique_ptr<LockPlace>> places;
  for (int i = 0; i < 3; ++i) {
    wakers.push_back(std::make_shared<CountingWaker>());
    LockAnswer queued = Ask("/items/1").client("c" + std::to_string(i)).queue(wakers.back()).on(store);
    ASSERT_EQ(queued.outcome, Outcome::Queued);
    EXPECT_EQ(queued.holder.fence, held.fence);
    EXPECT_EQ(queued.holder.waiters, static_cast<std::size_t>(i + 1));
    ASSERT_TRUE(queued.place);
    places.push_back(std::move(queued.place));
  }
  LockToken token = held.token;
  for (int i = 0; i < 3; ++i) {
    // Everyone behind the first is still queued before the release.
    for (int j = i; j < 3; ++j) {
      Ask again("/items/1");
      std::string client = "c" + std::to_string(j);
      EXPECT_EQ(again.client(client).queue(wakers[j], places[j].get()).on(store).outcome, Outcome::Queued);
    }
    ASSERT_EQ(store.unlock_now("/items/1", token, kT0).outcome, LockChange::Outcome::Done);
    EXPECT_EQ(wakers[i]->wakes, 1) << i;
    for (int j = i + 1; j < 3; ++j) EXPECT_EQ(wakers[j]->wakes, 0) << j;
    // Only the first may go on: the later ones ask again in vain.
    if (i + 1 < 3) {
      Ask later("/items/1");
      std::string client = "c" + std::to_string(i + 1);
      EXPECT_EQ(later.client(client).queue(wakers[i + 1], places[i + 1].get()).on(store).outcome, Outcome::Queued);
    }
    Ask mine("/items/1");
    std::string client = "c" + std::to_string(i);
    LockAnswer granted = mine.client(client).queue(wakers[i], places[i].get()).on(store);
    ASSERT_EQ(granted.outcome, Outcome::Granted) << i;
    EXPECT_EQ(granted.holder.client, client);
    EXPECT_EQ(granted.holder.waiters, static_cast<std::size_t>(2 - i));
    token = granted.token;
    places[i].reset();  // a place that went on leaves nothing behind
  }
  EXPECT_EQ(store.describe_now("/items/1", kT0)->waiters, 0u);
}

TEST(MemoryLockStoreTest, AQueuedWritePassesWhenFreeAndWakesTheNext) {
  MemoryLockStore store;
  LockAnswer held = grant(store, "/items/1");
  auto writer = std::make_shared<CountingWaker>();
  auto locker = std::make_shared<CountingWaker>();
  LockAnswer write = Ask("/items/1", LockAsk::Kind::Write).queue(writer).on(store);
  ASSERT_EQ(write.outcome, Outcome::Queued);
  LockAnswer lock = Ask("/items/1").client("b").queue(locker).on(store);
  ASSERT_EQ(lock.outcome, Outcome::Queued);
  store.unlock_now("/items/1", held.token, kT0);
  EXPECT_EQ(writer->wakes, 1);
  EXPECT_EQ(locker->wakes, 0);
  LockAnswer passed = Ask("/items/1", LockAsk::Kind::Write).queue(writer, write.place.get()).on(store);
  EXPECT_EQ(passed.outcome, Outcome::Admitted);
  EXPECT_EQ(passed.fence, 0u);
  EXPECT_EQ(locker->wakes, 1);  // a write holds nothing
  EXPECT_EQ(Ask("/items/1").client("b").queue(locker, lock.place.get()).on(store).outcome, Outcome::Granted);
}

TEST(MemoryLockStoreTest, APlaceDestroyedWhileQueuedLeavesAndLetsTheNextGoOn) {
  MemoryLockStore store;
  LockAnswer held = grant(store, "/items/1");
  auto a = std::make_shared<CountingWaker>();
  auto b = std::make_shared<CountingWaker>();
  auto c = std::make_shared<CountingWaker>();
  LockAnswer first = Ask("/items/1").client("a").queue(a).on(store);
  LockAnswer second = Ask("/items/1").client("b").queue(b).on(store);
  LockAnswer third = Ask("/items/1").client("c").queue(c).on(store);
  EXPECT_EQ(store.describe_now("/items/1", kT0)->waiters, 3u);
  second.place.reset();  // from the middle: nobody is woken
  EXPECT_EQ(store.describe_now("/items/1", kT0)->waiters, 2u);
  EXPECT_EQ(a->wakes + b->wakes + c->wakes, 0);
  first.place.reset();  // the first, while the lock is held: nobody may go on yet
  EXPECT_EQ(c->wakes, 0);
  store.unlock_now("/items/1", held.token, kT0);
  EXPECT_EQ(c->wakes, 1);
  EXPECT_EQ(a->wakes + b->wakes, 0);
  // The first, while the lock is free: the next is woken.
  auto d = std::make_shared<CountingWaker>();
  LockAnswer fourth = Ask("/items/1").client("d").queue(d).on(store);
  ASSERT_EQ(fourth.outcome, Outcome::Queued);  // behind c, though the lock is free
  third.place.reset();
  EXPECT_EQ(d->wakes, 1);
  EXPECT_EQ(Ask("/items/1").client("d").queue(d, fourth.place.get()).on(store).outcome, Outcome::Granted);
}

TEST(MemoryLockStoreTest, ANewcomerNeverOvertakesAQueue) {
  MemoryLockStore store;
  LockAnswer held = grant(store, "/items/1");
  auto waker = std::make_shared<CountingWaker>();
  LockAnswer queued = Ask("/items/1", LockAsk::Kind::Write).queue(waker).on(store);
  ASSERT_EQ(queued.outcome, Outcome::Queued);
  store.unlock_now("/items/1", held.token, kT0);
  // The lock is free but one waits: a newcomer LOCK or write is refused or queued behind.
  LockAnswer lock = Ask("/items/1").client("b").on(store);
  EXPECT_EQ(lock.outcome, Outcome::Locked);
  EXPECT_EQ(lock.holder.fence, 0u);
  EXPECT_EQ(lock.holder.waiters, 1u);
  EXPECT_EQ(Ask("/items/1", LockAsk::Kind::Write).on(store).outcome, Outcome::Locked);
  auto late = std::make_shared<CountingWaker>();
  LockAnswer behind = Ask("/items/1").client("b").queue(late).on(store);
  EXPECT_EQ(behind.outcome, Outcome::Queued);
  EXPECT_EQ(behind.holder.waiters, 2u);
}

TEST(MemoryLockStoreTest, QueueIsBoundedByMaxWaiters) {
  MemoryLockStore store;
  grant(store, "/items/1");
  auto waker = std::make_shared<CountingWaker>();
  std::vector<std::unique_ptr<LockPlace>> places;
  for (int i = 0; i < 2; ++i) {
    Ask ask("/items/1");
    ask.ask.max_waiters = 2;
    LockAnswer answer = ask.queue(waker).on(store);
    ASSERT_EQ(answer.outcome, Outcome::Queued);
    places.push_back(std::move(answer.place));
  }
  Ask third("/items/1");
  third.ask.max_waiters = 2;
  LockAnswer full = third.queue(waker).on(store);
  EXPECT_EQ(full.outcome, Outcome::QueueFull);
  EXPECT_FALSE(full.place);
  EXPECT_EQ(full.holder.owner, "alice");
}

// /items/1 held from kT0 for 30s, clients "a" then "b" queued for it.
struct TwoQueued {
  MemoryLockStore store;
  std::shared_ptr<CountingWaker> first = std::make_shared<CountingWaker>();
  std::shared_ptr<CountingWaker> second = std::make_shared<CountingWaker>();
  LockAnswer held = grant(store, "/items/1");
  LockAnswer a = Ask("/items/1").client("a").queue(first).on(store);
  LockAnswer b = Ask("/items/1").client("b").queue(second).on(store);

  LockAnswer ask_again(std::string_view client, MonotonicTime now) {
    const auto& [waker, place] = client == "a" ? std::pair{first, a.place.get()} : std::pair{second, b.place.get()};
    return Ask("/items/1", LockAsk::Kind::Lock, now).client(client).queue(waker, place).on(store);
  }
};

TEST(MemoryLockStoreTest, ExpiryWakesTheFirstWaiter) {
  TwoQueued queue;
  EXPECT_EQ(queue.a.holder.expires, kT0 + 30s);
  // The second parks until the holder's expiry and asks first: it ends the lock, wakes the first,
  // and stays queued behind it.
  EXPECT_EQ(queue.ask_again("b", kT0 + 30s).outcome, Outcome::Queued);
  EXPECT_EQ(queue.first->wakes, 1);
  EXPECT_EQ(queue.store.ended("items", LockEnd::Expired), 1u);
  EXPECT_EQ(queue.ask_again("a", kT0 + 30s).outcome, Outcome::Granted);
  EXPECT_EQ(queue.second->wakes, 0);
}

TEST(MemoryLockStoreTest, TheFirstWaiterEndingAnExpiredLockGoesOnWithoutWakingItself) {
  TwoQueued queue;
  EXPECT_EQ(queue.ask_again("a", kT0 + 30s - 1ns).outcome, Outcome::Queued);
  EXPECT_EQ(queue.ask_again("a", kT0 + 30s).outcome, Outcome::Granted);
  EXPECT_EQ(queue.first->wakes, 0);  // no stray wake of a request that already went on
  EXPECT_EQ(queue.second->wakes, 0);
}

TEST(MemoryLockStoreTest, APlaceOfAnotherResourceIsNotThisQueue) {
  MemoryLockStore store;
  grant(store, "/items/1");
  grant(store, "/items/2");
  auto waker = std::make_shared<CountingWaker>();
  LockAnswer on_one = Ask("/items/1").queue(waker).on(store);
  ASSERT_EQ(on_one.outcome, Outcome::Queued);
  // Handing /items/1's place to an ask about /items/2 must not unlink it from /items/2's queue.
  LockAnswer on_two = Ask("/items/2").queue(waker, on_one.place.get()).on(store);
  EXPECT_EQ(on_two.outcome, Outcome::Queued);
  EXPECT_TRUE(on_two.place);
  EXPECT_EQ(store.describe_now("/items/1", kT0)->waiters, 1u);
  EXPECT_EQ(store.describe_now("/items/2", kT0)->waiters, 1u);
}

TEST(MemoryLockStoreTest, MaxLocksCountsExpiredLocksOnlyUntilASweep) {
  MemoryLockStore store;
  Ask first("/items/1");
  ASSERT_EQ(first.caps(2, 0).on(store).outcome, Outcome::Granted);
  Ask second("/items/2");
  ASSERT_EQ(second.caps(2, 0).on(store).outcome, Outcome::Granted);
  Ask third("/items/3", LockAsk::Kind::Lock, kT0 + 10s);
  LockAnswer full = third.caps(2, 0).on(store);
  EXPECT_EQ(full.outcome, Outcome::TableFull);
  EXPECT_FALSE(store.describe_now("/items/3", kT0 + 10s));
  // At kT0 + 30s both have expired, unswept: they no longer count.
  Ask later("/items/3", LockAsk::Kind::Lock, kT0 + 30s);
  EXPECT_EQ(later.caps(2, 0).on(store).outcome, Outcome::Granted);
  Ask fourth("/items/4", LockAsk::Kind::Lock, kT0 + 30s);
  EXPECT_EQ(fourth.caps(2, 0).on(store).outcome, Outcome::Granted);
  Ask fifth("/items/5", LockAsk::Kind::Lock, kT0 + 30s);
  EXPECT_EQ(fifth.caps(2, 0).on(store).outcome, Outcome::TableFull);
  EXPECT_EQ(store.size(kT0 + 30s), 2u);
}

TEST(MemoryLockStoreTest, MaxLocksPerClientRefusesUntilOneIsReleasedOrExpires) {
  MemoryLockStore store;
  LockAnswer one = grant(store, "/items/1");  // at kT0, until kT0 + 30s
  Ask two_ask("/items/2", LockAsk::Kind::Lock, kT0 + 10s);
  LockAnswer two = two_ask.caps(100, 2).on(store);
  ASSERT_EQ(two.outcome, Outcome::Granted);
  Ask three("/items/3", LockAsk::Kind::Lock, kT0 + 10s);
  EXPECT_EQ(three.caps(100, 2).on(store).outcome, Outcome::ClientFull);
  Ask other("/items/3", LockAsk::Kind::Lock, kT0 + 10s);
  EXPECT_EQ(other.client("10.0.0.9").caps(100, 2).on(store).outcome, Outcome::Granted);  // others may
  store.unlock_now("/items/2", two.token, kT0 + 11s);
  Ask after_release("/items/4", LockAsk::Kind::Lock, kT0 + 11s);
  EXPECT_EQ(after_release.caps(100, 2).on(store).outcome, Outcome::Granted);
  Ask again("/items/5", LockAsk::Kind::Lock, kT0 + 11s);
  EXPECT_EQ(again.caps(100, 2).on(store).outcome, Outcome::ClientFull);
  // /items/1 expires at kT0 + 30s, unswept: the client's count frees anyway.
  Ask after_expiry("/items/5", LockAsk::Kind::Lock, kT0 + 30s);
  EXPECT_EQ(after_expiry.caps(100, 2).on(store).outcome, Outcome::Granted);
  (void)one;
}

TEST(MemoryLockStoreTest, UnlockTellsEndedTokensFromUnknownOnes) {
  MemoryLockStore store;
  LockAnswer released = grant(store, "/items/1");
  store.unlock_now("/items/1", released.token, kT0);
  LockAnswer expired = grant(store, "/items/2");
  LockAnswer broken = grant(store, "/items/3");
  ASSERT_TRUE(store.break_now("/items/3", kT0));
  LockAnswer dropped = Ask("/items/4").route("gone").on(store);
  ASSERT_EQ(dropped.outcome, Outcome::Granted);
  std::vector<std::string> keep = {"items"};
  EXPECT_EQ(store.keep_routes_now(keep, kT0), 1u);

  const MonotonicTime later = kT0 + 31s;
  LockChange change = store.unlock_now("/items/1", released.token, later);
  EXPECT_EQ(change.outcome, LockChange::Outcome::Ended);
  EXPECT_EQ(change.ended, LockEnd::Released);
  change = store.unlock_now("/items/2", expired.token, later);
  EXPECT_EQ(change.outcome, LockChange::Outcome::Ended);
  EXPECT_EQ(change.ended, LockEnd::Expired);
  change = store.unlock_now("/items/3", broken.token, later);
  EXPECT_EQ(change.outcome, LockChange::Outcome::Ended);
  EXPECT_EQ(change.ended, LockEnd::Broken);
  change = store.unlock_now("/items/4", dropped.token, later);
  EXPECT_EQ(change.outcome, LockChange::Outcome::Ended);
  EXPECT_EQ(change.ended, LockEnd::Dropped);
  // A token of another resource, and one never issued.
  EXPECT_EQ(store.unlock_now("/items/2", released.token, later).outcome, LockChange::Outcome::Unknown);
  EXPECT_EQ(store.unlock_now("/items/1", LockToken::random(), later).outcome, LockChange::Outcome::Unknown);
  // The same for a token of another resource that is held now.
  LockAnswer held = grant(store, "/items/5", later);
  EXPECT_EQ(store.unlock_now("/items/6", held.token, later).outcome, LockChange::Outcome::Unknown);
  EXPECT_TRUE(store.describe_now("/items/5", later));
}

TEST(MemoryLockStoreTest, AWriteAskReportsEachTokensState) {
  MemoryLockStore store;
  LockAnswer old_lock = grant(store, "/items/1");
  store.break_now("/items/1", kT0);
  LockAnswer current = grant(store, "/items/1");
  LockToken never = LockToken::random();
  LockAnswer write = Ask("/items/1", LockAsk::Kind::Write).with(never).with(old_lock.token).with(current.token).on(store);
  EXPECT_EQ(write.outcome, Outcome::Admitted);
  EXPECT_EQ(write.tokens, (std::vector<TokenState>{TokenState::Unknown, TokenState::Ended, TokenState::Current}));
  EXPECT_EQ(write.ended, LockEnd::Broken);
  // On a free resource, the ended token is still told apart (the policy answers 412).
  store.unlock_now("/items/1", current.token, kT0);
  LockAnswer late = Ask("/items/1", LockAsk::Kind::Write).with(current.token).on(store);
  EXPECT_EQ(late.outcome, Outcome::Admitted);
  EXPECT_EQ(late.tokens, std::vector<TokenState>{TokenState::Ended});
  EXPECT_EQ(late.ended, LockEnd::Released);
  // A token of another resource is unknown here.
  LockAnswer elsewhere = Ask("/items/2", LockAsk::Kind::Write).with(current.token).on(store);
  EXPECT_EQ(elsewhere.tokens, std::vector<TokenState>{TokenState::Unknown});
}

TEST(MemoryLockStoreTest, EndedTokensAreRememberedUpToTheRingsSize) {
  MemoryLockStore store;
  // Every end of one resource lands in one shard's ring, across its growth and wrap.
  LockAnswer oldest = grant(store, "/items/1");
  store.unlock_now("/items/1", oldest.token, kT0);
  LockToken second_oldest;
  for (std::size_t i = 1; i < MemoryLockStore::kEndedPerShard; ++i) {
    LockAnswer held = grant(store, "/items/1");
    if (i == 1) second_oldest = held.token;
    store.unlock_now("/items/1", held.token, kT0);
    if (i == MemoryLockStore::kEndedPerShard / 2) {
      EXPECT_EQ(store.unlock_now("/items/1", oldest.token, kT0).outcome, LockChange::Outcome::Ended);
    }
  }
  // kEndedPerShard ended: all remembered.
  EXPECT_EQ(store.unlock_now("/items/1", oldest.token, kT0).outcome, LockChange::Outcome::Ended);
  LockAnswer one_more = grant(store, "/items/1");
  store.unlock_now("/items/1", one_more.token, kT0);
  EXPECT_EQ(store.unlock_now("/items/1", oldest.token, kT0).outcome, LockChange::Outcome::Unknown);
  EXPECT_EQ(store.unlock_now("/items/1", second_oldest, kT0).outcome, LockChange::Outcome::Ended);
  EXPECT_EQ(store.unlock_now("/items/1", one_more.token, kT0).outcome, LockChange::Outcome::Ended);
}

TEST(MemoryLockStoreTest, KeepRoutesDropsOnlyLocksOfRoutesNotListed) {
  MemoryLockStore store;
  grant(store, "/items/1");
  Ask("/other/1").route("other").on(store);
  Ask("/gone/1").route("gone").on(store);
  Ask("/gone/2").route("gone").on(store);
  std::vector<std::string> keep = {"items", "other", "gone", "never-seen"};
  EXPECT_EQ(store.keep_routes_now(keep, kT0), 0u);
  keep = {"items", "other"};
  EXPECT_EQ(store.keep_routes_now(std::span<const std::string>(keep), kT0), 2u);
  EXPECT_EQ(store.ended("gone", LockEnd::Dropped), 2u);
  EXPECT_EQ(store.ended("items", LockEnd::Dropped), 0u);
  EXPECT_EQ(store.held("gone", kT0), 0u);
  EXPECT_EQ(store.held("items", kT0), 1u);
  EXPECT_EQ(store.held("other", kT0), 1u);
  EXPECT_TRUE(store.describe_now("/other/1", kT0));
  EXPECT_FALSE(store.describe_now("/gone/1", kT0));
}

TEST(MemoryLockStoreTest, BreakEndsTheLockAndWakesTheFirstWaiter) {
  MemoryLockStore store;
  LockAnswer held = grant(store, "/items/1");
  auto waker = std::make_shared<CountingWaker>();
  LockAnswer queued = Ask("/items/1").client("b").queue(waker).on(store);
  auto broken = store.break_now("/items/1", kT0 + 1s);
  ASSERT_TRUE(broken);
  EXPECT_EQ(broken->fence, held.fence);
  EXPECT_EQ(waker->wakes, 1);
  EXPECT_FALSE(store.break_now("/items/1", kT0 + 1s));
  EXPECT_FALSE(store.break_now("/items/none", kT0 + 1s));
  EXPECT_EQ(store.ended("items", LockEnd::Broken), 1u);
  LockAnswer write = Ask("/items/1", LockAsk::Kind::Write).with(held.token).on(store);
  EXPECT_EQ(write.tokens, std::vector<TokenState>{TokenState::Ended});
  EXPECT_EQ(write.ended, LockEnd::Broken);
}

TEST(MemoryLockStoreTest, ListPagesInResourceOrder) {
  MemoryLockStore store;
  for (std::string resource : {"/c", "/a", "/e", "/b", "/d"}) grant(store, resource);
  LockAnswer short_lease = Ask("/bb", LockAsk::Kind::Lock, kT0 - 20s).on(store);  // expires at kT0 + 10s
  ASSERT_EQ(short_lease.outcome, Outcome::Granted);
  auto names = [](const std::vector<LockView>& views) {
    std::vector<std::string> out;
    for (const auto& view : views) out.push_back(view.resource);
    return out;
  };
  EXPECT_EQ(names(store.list_now("", 3, kT0)), (std::vector<std::string>{"/a", "/b", "/bb"}));
  EXPECT_EQ(names(store.list_now("/bb", 3, kT0)), (std::vector<std::string>{"/c", "/d", "/e"}));
  EXPECT_EQ(names(store.list_now("/e", 3, kT0)), std::vector<std::string>{});
  EXPECT_EQ(names(store.list_now("/a", 2, kT0 + 10s)), (std::vector<std::string>{"/b", "/c"}));
  EXPECT_EQ(store.size(kT0 + 10s), 5u);
}

TEST(MemoryLockStoreTest, AWakerMayDropItsPlaceFromInsideTheWake) {
  // A waker that destroys the place of the request it wakes (a client gone at that moment):
  // the store must call it with no lock held.
  struct DroppingWaker final : Waker {
    std::unique_ptr<LockPlace> place;
    int wakes = 0;
    void wake() override {
      ++wakes;
      place.reset();
    }
  };
  MemoryLockStore store;
  LockAnswer held = grant(store, "/items/1");
  auto dropping = std::make_shared<DroppingWaker>();
  auto next = std::make_shared<CountingWaker>();
  LockAnswer first = Ask("/items/1").client("a").queue(dropping).on(store);
  dropping->place = std::move(first.place);
  LockAnswer second = Ask("/items/1").client("b").queue(next).on(store);
  store.unlock_now("/items/1", held.token, kT0);
  EXPECT_EQ(dropping->wakes, 1);
  EXPECT_EQ(next->wakes, 1);  // the first left while the lock was free: the next goes on
  EXPECT_EQ(Ask("/items/1").client("b").queue(next, second.place.get()).on(store).outcome, Outcome::Granted);
}

TEST(MemoryLockStoreTest, ThreadsLockAndUnlockConsistently) {
  MemoryLockStore store;
  constexpr int kThreads = 4;
  constexpr int kRounds = 2000;
  std::atomic<int> granted{0}, released{0}, refused{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::string own = "/own/" + std::to_string(t);
      std::string client = "client-" + std::to_string(t);
      for (int i = 0; i < kRounds; ++i) {
        std::string_view resource = i % 2 == 0 ? std::string_view(own) : std::string_view("/shared");
        LockAnswer answer = Ask(resource).client(client).on(store);
        if (answer.outcome == Outcome::Granted) {
          ++granted;
          if (store.unlock_now(resource, answer.token, kT0).outcome == LockChange::Outcome::Done) ++released;
        } else {
          EXPECT_EQ(answer.outcome, Outcome::Locked);
          EXPECT_EQ(resource, "/shared");
          ++refused;
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(granted, released);
  EXPECT_EQ(granted + refused, kThreads * kRounds);
  EXPECT_GE(granted, kThreads * kRounds / 2);  // every own resource is always free
  EXPECT_EQ(store.size(kT0), 0u);
  EXPECT_EQ(store.held("items", kT0), 0u);
  EXPECT_EQ(store.ended("items", LockEnd::Released), static_cast<std::uint64_t>(granted.load()));
  // The client counts went back to zero: each client may take its full quota again.
  for (int t = 0; t < kThreads; ++t) {
    std::string resource = "/after/" + std::to_string(t);
    Ask ask(resource);
    std::string client = "client-" + std::to_string(t);
    EXPECT_EQ(ask.client(client).caps(1000, 1).on(store).outcome, Outcome::Granted);
  }
}

TEST(DelayedLockStoreTest, ACancelledAskLeavesTheQueueItJoined) {
  DelayedLockStore store;
  LockAnswer held = grant(store.memory, "/items/1");
  auto waker = std::make_shared<CountingWaker>();
  Ask ask("/items/1");
  ask.client("b").queue(waker);
  ask.ask.tokens = ask.tokens;
  bool completed = false;
  auto done = [&](StoreResult<LockAnswer>&&) { completed = true; };
  StoreCall call = store.ask(ask.ask, done);
  ASSERT_TRUE(call);
  EXPECT_EQ(store.memory.describe_now("/items/1", kT0)->waiters, 1u);
  call.reset();
  EXPECT_FALSE(completed);
  EXPECT_EQ(store.cancelled(), 1u);
  EXPECT_EQ(store.memory.describe_now("/items/1", kT0)->waiters, 0u);
  // Completed, the answer (and its place) reaches the caller.
  std::unique_ptr<LockPlace> place;
  auto keep = [&](StoreResult<LockAnswer>&& result) { place = std::move(result.value.place); };
  StoreCall kept = store.ask(ask.ask, keep);
  EXPECT_TRUE(store.complete_next());
  EXPECT_TRUE(place);
  EXPECT_EQ(store.memory.describe_now("/items/1", kT0)->waiters, 1u);
  (void)held;
}

}  // namespace arbiter::lock_store_test
