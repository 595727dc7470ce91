#include "policies/concurrency/concurrency_policy.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "policies/store/memory_slot_table.h"
#include "tests/policies/blocking_waker.h"
#include "tests/policies/counting_waker.h"
#include "tests/policies/policy_test_support.h"

namespace arbiter {
namespace {

using namespace std::chrono_literals;

using testing::FakeClock;
using testing::problem_body;

// One request through the policy as the proxy drives it: it owns the view's data and the
// ExchangeState, and end() (or the destructor) ends the exchange, whichever way it ends.
class Request {
 public:
  Request(ConcurrencyPolicy& policy, FakeClock& clock, std::string client = "10.0.0.1", HeaderList headers = {})
      : policy_(policy),
        clock_(clock),
        client_(std::move(client)),
        headers_(std::move(headers)),
        waker_(std::make_shared<CountingWaker>()) {}

  Decision call() {
    RequestView view{"GET", "/orders/1", "/orders/1", "", headers_, client_, "orders", {}, "req-1", clock_.now, waker_};
    return policy_.on_request(view, state_);
  }
  void end() { state_.reset(); }

  int wakes() const { return waker_->wakes.load(); }
  bool has_state() const { return state_ != nullptr; }

 private:
  ConcurrencyPolicy& policy_;
  FakeClock& clock_;
  std::string client_;
  HeaderList headers_;
  std::shared_ptr<CountingWaker> waker_;
  std::unique_ptr<ExchangeState> state_;
};

ConcurrencyConfig config_of(std::size_t max_in_flight, std::size_t max_queue,
                            std::chrono::milliseconds queue_timeout = 2000ms, KeyKind key = KeyKind::Global,
                            std::string header = {}) {
  ConcurrencyConfig config;
  config.max_in_flight = max_in_flight;
  config.max_queue = max_queue;
  config.queue_timeout = queue_timeout;
  config.key = key;
  config.header = std::move(header);
  return config;
}

bool is_wait(const Decision& decision) { return decision.kind() == Decision::Kind::Wait; }

TEST(ConcurrencyPolicyTest, AtMostMaxInFlightHoldASlot) {
  FakeClock clock;
  ConcurrencyPolicy policy("orders", config_of(2, 0));
  EXPECT_EQ(policy.kind(), "concurrency");
  Request a(policy, clock), b(policy, clock), c(policy, clock);
  EXPECT_TRUE(a.call().forwards());
  EXPECT_TRUE(b.call().forwards());
  EXPECT_EQ(policy.in_flight(), 2u);
  Decision refused = c.call();
  ASSERT_EQ(refused.kind(), Decision::Kind::Reply);
  EXPECT_EQ(refused.status(), 503);
  EXPECT_FALSE(c.has_state());
  a.end();
  EXPECT_EQ(policy.in_flight(), 1u);
  EXPECT_TRUE(c.call().forwards());
  EXPECT_EQ(policy.in_flight(), 2u);
}

TEST(ConcurrencyPolicyTest, TheRefusalSaysHowManyAreInFlight) {
  FakeClock clock;
  ConcurrencyPolicy policy("orders", config_of(2, 0));
  Request a(policy, clock), b(policy, clock), c(policy, clock);
  a.call();
  b.call();
  Decision refused = c.call();
  EXPECT_EQ(refused.headers().find("Retry-After"), "1");
  nlohmann::json body = problem_body(refused);
  EXPECT_EQ(body["type"], "urn:arbiter:problem:too-busy");
  EXPECT_EQ(body["title"], "Too busy");
  EXPECT_EQ(body["status"], 503);
  EXPECT_EQ(body["detail"],
            "All 2 slots of route 'orders' (max_in_flight) are taken by requests at the backend and none may wait "
            "(max_queue = 0); nothing was forwarded. Retry in 1 second.");
  EXPECT_EQ(body["max_in_flight"], 2);
  EXPECT_EQ(body["max_queue"], 0);
}

TEST(ConcurrencyPolicyTest, MoreWaitInArrivalOrder) {
  FakeClock clock;
  ConcurrencyPolicy policy("orders", config_of(2, 8));
  Request a(policy, clock), b(policy, clock);
  std::vector<std::unique_ptr<Request>> waiting;
  ASSERT_TRUE(a.call().forwards());
  ASSERT_TRUE(b.call().forwards());
  for (int i = 0; i < 4; ++i) {
    waiting.push_back(std::make_unique<Request>(policy, clock));
    Decision decision = waiting.back()->call();
    ASSERT_TRUE(is_wait(decision)) << i;
    EXPECT_EQ(decision.deadline(), clock.now + 2s);
  }
  EXPECT_EQ(policy.waiting(), 4u);

  // A spurious call before its turn waits on.
  EXPECT_TRUE(is_wait(waiting[1]->call()));

  a.end();  // the first waiter, and only it, is woken and goes
  EXPECT_EQ(waiting[0]->wakes(), 1);
  for (int i = 1; i < 4; ++i) EXPECT_EQ(waiting[i]->wakes(), 0) << i;
  EXPECT_TRUE(waiting[0]->call().forwards());
  EXPECT_EQ(policy.in_flight(), 2u);
  EXPECT_EQ(policy.waiting(), 3u);

  b.end();
  EXPECT_EQ(waiting[1]->wakes(), 1);
  EXPECT_TRUE(waiting[1]->call().forwards());
  waiting[0]->end();
  EXPECT_EQ(waiting[2]->wakes(), 1);
  EXPECT_EQ(waiting[3]->wakes(), 0);
  EXPECT_TRUE(waiting[2]->call().forwards());

  ConcurrencyCounters counters = policy.counters();
  EXPECT_EQ(counters.admitted, 5u);
  EXPECT_EQ(counters.queued, 4u);
  EXPECT_EQ(counters.in_flight, 2u);
  EXPECT_EQ(counters.waiting, 1u);
}

TEST(ConcurrencyPolicyTest, ANewcomerDoesNotOvertakeTheQueue) {
  FakeClock clock;
  ConcurrencyPolicy policy("orders", config_of(1, 8));
  Request holder(policy, clock), waiter(policy, clock), newcomer(policy, clock);
  holder.call();
  ASSERT_TRUE(is_wait(waiter.call()));
  holder.end();  // the slot is the waiter's now, before it has been called again
  EXPECT_TRUE(is_wait(newcomer.call()));
  EXPECT_TRUE(waiter.call().forwards());
}

TEST(ConcurrencyPolicyTest, AFullQueueIsRefused) {
  FakeClock clock;
  ConcurrencyPolicy policy("orders", config_of(1, 2));
  Request holder(policy, clock), first(policy, clock), second(policy, clock), third(policy, clock);
  holder.call();
  ASSERT_TRUE(is_wait(first.call()));
  ASSERT_TRUE(is_wait(second.call()));
  Decision refused = third.call();
  ASSERT_EQ(refused.status(), 503);
  EXPECT_EQ(problem_body(refused)["detail"],
            "The one slot of route 'orders' (max_in_flight) is taken by requests at the backend and 2 requests wait "
            "already (max_queue); nothing was forwarded. Retry in 1 second.");
  EXPECT_EQ(policy.counters().rejected, 1u);
  first.end();  // room again
  EXPECT_TRUE(is_wait(third.call()));
}

TEST(ConcurrencyPolicyTest, AWaiterTimesOutWith503AndLeavesTheQueue) {
  FakeClock clock;
  ConcurrencyPolicy policy("orders", config_of(1, 8, 2000ms));
  Request holder(policy, clock), late(policy, clock), behind(policy, clock);
  holder.call();
  Decision wait = late.call();
  ASSERT_TRUE(is_wait(wait));
  clock.now += 1s;
  ASSERT_TRUE(is_wait(behind.call()));
  clock.now += 999ms;
  EXPECT_TRUE(is_wait(late.call()));  // 1 ms to go
  clock.now += 1ms;
  Decision timed_out = late.call();
  ASSERT_EQ(timed_out.status(), 503);
  EXPECT_EQ(timed_out.headers().find("Retry-After"), "1");
  EXPECT_EQ(problem_body(timed_out)["detail"],
            "Waited 2000 ms (queue_timeout) while the one slot of route 'orders' (max_in_flight) stayed taken by "
            "requests at the backend; nothing was forwarded. Retry in 1 second.");
  EXPECT_FALSE(late.has_state());
  EXPECT_EQ(policy.waiting(), 1u);
  // The slot passes over it to the one behind.
  holder.end();
  EXPECT_EQ(late.wakes(), 0);
  EXPECT_EQ(behind.wakes(), 1);
  EXPECT_TRUE(behind.call().forwards());
  ConcurrencyCounters counters = policy.counters();
  EXPECT_EQ(counters.timed_out, 1u);
  EXPECT_EQ(counters.queued, 2u);
  EXPECT_EQ(counters.admitted, 2u);
}

TEST(ConcurrencyPolicyTest, ASlotGrantedAtTheDeadlineIsTaken) {
  FakeClock clock;
  ConcurrencyPolicy policy("orders", config_of(1, 8, 2000ms));
  Request holder(policy, clock), waiter(policy, clock);
  holder.call();
  waiter.call();
  clock.now += 5s;
  holder.end();  // granted before the late call: it holds the slot, so it goes
  EXPECT_TRUE(waiter.call().forwards());
  EXPECT_EQ(policy.counters().timed_out, 0u);
}

TEST(ConcurrencyPolicyTest, DisconnectingWhileQueuedLeavesTheQueue) {
  FakeClock clock;
  ConcurrencyPolicy policy("orders", config_of(1, 8));
  Request holder(policy, clock), gone(policy, clock), next(policy, clock);
  holder.call();
  gone.call();
  next.call();
  gone.end();  // the client went away while it waited
  EXPECT_EQ(policy.waiting(), 1u);
  EXPECT_EQ(policy.in_flight(), 1u);
  holder.end();
  EXPECT_EQ(gone.wakes(), 0);
  EXPECT_EQ(next.wakes(), 1);
  EXPECT_TRUE(next.call().forwards());
}

TEST(ConcurrencyPolicyTest, DisconnectingWhileInFlightFreesTheSlotAtOnce) {
  FakeClock clock;
  auto table = std::make_shared<MemorySlotTable>(100);
  ConcurrencyPolicy policy("orders", config_of(1, 8), table);
  auto holder = std::make_unique<Request>(policy, clock);
  Request next(policy, clock);
  holder->call();
  next.call();
  holder.reset();  // the exchange ends without a response: client gone, upstream failed, ...
  EXPECT_EQ(next.wakes(), 1);
  EXPECT_TRUE(next.call().forwards());
  next.end();
  EXPECT_EQ(policy.in_flight(), 0u);
  EXPECT_EQ(policy.waiting(), 0u);
  EXPECT_EQ(table->size(), 0u);  // nothing kept for a key with no one in flight
}

TEST(ConcurrencyPolicyTest, EveryWayOutGivesTheSlotBack) {
  FakeClock clock;
  auto table = std::make_shared<MemorySlotTable>(100);
  ConcurrencyPolicy policy("orders", config_of(2, 3, 100ms), table);
  {
    std::vector<std::unique_ptr<Request>> requests;
    for (int i = 0; i < 7; ++i) {
      requests.push_back(std::make_unique<Request>(policy, clock));
      requests.back()->call();  // 2 forwarded, 3 waiting, 2 refused
    }
    EXPECT_EQ(policy.in_flight(), 2u);
    EXPECT_EQ(policy.waiting(), 3u);
    requests[2]->end();  // a waiter disconnects
    clock.now += 100ms;
    EXPECT_EQ(requests[3]->call().status(), 503);  // one times out
    requests[0]->end();                             // one finishes: requests[4] is granted
    EXPECT_TRUE(requests[4]->call().forwards());
    // The rest end as the proxy drops them: in flight, granted, refused.
  }
  EXPECT_EQ(policy.in_flight(), 0u);
  EXPECT_EQ(policy.waiting(), 0u);
  EXPECT_EQ(table->size(), 0u);
  ConcurrencyCounters counters = policy.counters();
  EXPECT_EQ(counters.admitted, 3u);
  EXPECT_EQ(counters.queued, 3u);
  EXPECT_EQ(counters.timed_out, 1u);
  EXPECT_EQ(counters.rejected, 2u);
}

TEST(ConcurrencyPolicyTest, PerClientCaps) {
  FakeClock clock;
  ConcurrencyPolicy policy("orders", config_of(1, 0, 2000ms, KeyKind::ClientAddress));
  Request a1(policy, clock, "10.0.0.1"), a2(policy, clock, "10.0.0.1"), b1(policy, clock, "10.0.0.2");
  EXPECT_TRUE(a1.call().forwards());
  Decision refused = a2.call();
  ASSERT_EQ(refused.status(), 503);
  EXPECT_EQ(problem_body(refused)["detail"],
            "The one slot of route 'orders' for this client (ip) (max_in_flight) is taken by requests at the "
            "backend and none may wait (max_queue = 0); nothing was forwarded. Retry in 1 second.");
  EXPECT_TRUE(b1.call().forwards());
  EXPECT_EQ(policy.in_flight(), 2u);
}

TEST(ConcurrencyPolicyTest, PerHeaderCapsFallBackToTheAddress) {
  FakeClock clock;
  ConcurrencyPolicy policy("orders", config_of(1, 0, 2000ms, KeyKind::Header, "X-Api-Key"));
  Request alpha(policy, clock, "10.0.0.1", {{"X-Api-Key", "alpha"}});
  Request alpha_elsewhere(policy, clock, "10.0.0.2", {{"X-Api-Key", "alpha"}});
  Request beta(policy, clock, "10.0.0.1", {{"X-Api-Key", "beta"}});
  Request keyless(policy, clock, "10.0.0.1");
  Request keyless_again(policy, clock, "10.0.0.1");
  EXPECT_TRUE(alpha.call().forwards());
  EXPECT_EQ(alpha_elsewhere.call().status(), 503);
  EXPECT_TRUE(beta.call().forwards());
  EXPECT_TRUE(keyless.call().forwards());
  EXPECT_EQ(keyless_again.call().status(), 503);
}

TEST(ConcurrencyPolicyTest, TheTableTracksAtMostMaxKeys) {
  FakeClock clock;
  ConcurrencyConfig config = config_of(1, 4, 2000ms, KeyKind::ClientAddress);
  config.max_keys = 2;
  ConcurrencyPolicy policy("orders", config);
  Request a(policy, clock, "a"), b(policy, clock, "b"), c(policy, clock, "c"), a2(policy, clock, "a");
  EXPECT_TRUE(a.call().forwards());
  EXPECT_TRUE(b.call().forwards());
  Decision refused = c.call();
  ASSERT_EQ(refused.status(), 503);
  EXPECT_EQ(problem_body(refused)["detail"],
            "Route 'orders' is tracking requests at the backend for 2 other clients already (max_keys); nothing was "
            "forwarded. Retry in 1 second.");
  EXPECT_TRUE(is_wait(a2.call()));  // a key it tracks may still queue
  b.end();
  EXPECT_TRUE(c.call().forwards());
}

TEST(ConcurrencyPolicyTest, RefusesAConfigTheLoaderWould) {
  EXPECT_THROW(ConcurrencyPolicy("r", config_of(0, 0)), std::invalid_argument);
  EXPECT_THROW(ConcurrencyPolicy("r", config_of(1, 0, 1s, KeyKind::Header)), std::invalid_argument);
  EXPECT_THROW(ConcurrencyPolicy("r", config_of(1, 5, 0ms)), std::invalid_argument);
  EXPECT_NO_THROW(ConcurrencyPolicy("r", config_of(1, 0, 0ms)));
}

// ---- A reload: a new policy on the same table ----

// The policies a route gets from successive configs, all on the route's one table.
class ConcurrencyReloadTest : public ::testing::Test {
 protected:
  ConcurrencyPolicy& policy(std::size_t max_in_flight, std::size_t max_queue,
                            std::chrono::milliseconds queue_timeout = 2000ms) {
    policies_.push_back(
        std::make_unique<ConcurrencyPolicy>("orders", config_of(max_in_flight, max_queue, queue_timeout), table_));
    return *policies_.back();
  }

  FakeClock clock_;
  std::shared_ptr<MemorySlotTable> table_ = std::make_shared<MemorySlotTable>(100);
  std::vector<std::unique_ptr<ConcurrencyPolicy>> policies_;
};

TEST_F(ConcurrencyReloadTest, ANewPolicyOnTheSameTableSeesTheSlotsHeldThroughTheOldOne) {
  ConcurrencyPolicy& old_policy = policy(2, 8);
  Request a(old_policy, clock_), b(old_policy, clock_);
  ASSERT_TRUE(a.call().forwards());
  ASSERT_TRUE(b.call().forwards());

  ConcurrencyPolicy& new_policy = policy(2, 4, 500ms);  // another queue, the same cap
  EXPECT_EQ(new_policy.in_flight(), 2u);
  Request c(new_policy, clock_), d(new_policy, clock_);
  Decision wait = c.call();
  ASSERT_TRUE(is_wait(wait));
  EXPECT_EQ(wait.deadline(), clock_.now + 500ms);  // the new policy's queue_timeout
  ASSERT_TRUE(is_wait(d.call()));
  EXPECT_EQ(new_policy.waiting(), 2u);

  a.end();  // an old-policy slot released: the first new-policy waiter, and only it, goes
  EXPECT_EQ(c.wakes(), 1);
  EXPECT_EQ(d.wakes(), 0);
  EXPECT_TRUE(c.call().forwards());
  b.end();
  EXPECT_EQ(d.wakes(), 1);
  EXPECT_TRUE(d.call().forwards());
  c.end();
  d.end();
  EXPECT_EQ(table_->in_flight(), 0u);
  EXPECT_EQ(table_->size(), 0u);
}

TEST_F(ConcurrencyReloadTest, AWaiterQueuedThroughTheOldPolicyKeepsItsPlace) {
  ConcurrencyPolicy& old_policy = policy(1, 8);
  Request holder(old_policy, clock_), old_waiter(old_policy, clock_);
  holder.call();
  ASSERT_TRUE(is_wait(old_waiter.call()));
  Request new_waiter(policy(1, 8), clock_);
  ASSERT_TRUE(is_wait(new_waiter.call()));
  holder.end();
  EXPECT_EQ(old_waiter.wakes(), 1);
  EXPECT_EQ(new_waiter.wakes(), 0);
  EXPECT_TRUE(old_waiter.call().forwards());
  old_waiter.end();
  EXPECT_EQ(new_waiter.wakes(), 1);
  EXPECT_TRUE(new_waiter.call().forwards());
}

TEST_F(ConcurrencyReloadTest, ARaisedCapLetsTheQueueGoFirst) {
  ConcurrencyPolicy& old_policy = policy(1, 8);
  Request holder(old_policy, clock_), old_waiter(old_policy, clock_);
  holder.call();
  ASSERT_TRUE(is_wait(old_waiter.call()));

  ConcurrencyPolicy& new_policy = policy(3, 8);
  Request first(new_policy, clock_), second(new_policy, clock_);
  // The cap is 3 now: the waiter is granted before the newcomer, and the newcomer goes too.
  EXPECT_TRUE(first.call().forwards());
  EXPECT_EQ(old_waiter.wakes(), 1);
  EXPECT_TRUE(old_waiter.call().forwards());
  EXPECT_EQ(table_->in_flight(), 3u);
  EXPECT_TRUE(is_wait(second.call()));
  holder.end();  // an old slot released under the new cap
  EXPECT_EQ(second.wakes(), 1);
  EXPECT_TRUE(second.call().forwards());
}

TEST_F(ConcurrencyReloadTest, ALoweredCapLetsNobodyInUntilEnoughAreReleased) {
  ConcurrencyPolicy& old_policy = policy(3, 8);
  Request a(old_policy, clock_), b(old_policy, clock_), c(old_policy, clock_);
  for (Request* r : {&a, &b, &c}) ASSERT_TRUE(r->call().forwards());

  Request waiter(policy(1, 8), clock_);
  ASSERT_TRUE(is_wait(waiter.call()));
  a.end();
  b.end();
  EXPECT_EQ(waiter.wakes(), 0);  // 1 still in flight: the new cap
  EXPECT_TRUE(is_wait(waiter.call()));
  c.end();
  EXPECT_EQ(waiter.wakes(), 1);
  EXPECT_TRUE(waiter.call().forwards());
  EXPECT_EQ(table_->in_flight(), 1u);
}

TEST(ConcurrencyConfigTest, EqualityTellsAChangedConfigFromAnUnchangedOne) {
  EXPECT_EQ(ConcurrencyConfig{}, ConcurrencyConfig{});
  EXPECT_EQ(config_of(2, 8, 100ms, KeyKind::Header, "X-Api-Key"), config_of(2, 8, 100ms, KeyKind::Header, "X-Api-Key"));
  EXPECT_NE(config_of(2, 8), config_of(3, 8));
  EXPECT_NE(config_of(2, 8), config_of(2, 9));
  EXPECT_NE(config_of(2, 8, 100ms), config_of(2, 8, 101ms));
  EXPECT_NE(config_of(2, 8, 100ms, KeyKind::Global), config_of(2, 8, 100ms, KeyKind::ClientAddress));
  EXPECT_NE(config_of(2, 8, 100ms, KeyKind::Header, "A"), config_of(2, 8, 100ms, KeyKind::Header, "B"));
  ConcurrencyConfig fewer_keys;
  fewer_keys.max_keys = 10;
  EXPECT_NE(fewer_keys, ConcurrencyConfig{});
}

// ---- The table ----

// A waker that calls back into the table: it must not be called under a shard's lock.
class ReentrantWaker final : public Waker {
 public:
  explicit ReentrantWaker(MemorySlotTable& table) : table_(table) {}
  void wake() override { size_seen = table_.size(); }
  std::size_t size_seen = 99;

 private:
  MemorySlotTable& table_;
};

TEST(MemorySlotTableTest, WakeIsCalledOutsideTheLock) {
  MemorySlotTable table(100, 1);
  auto waker = std::make_shared<ReentrantWaker>(table);
  auto holder = table.acquire("k", 1, 8, nullptr);
  auto waiter = table.acquire("k", 1, 8, waker);
  ASSERT_TRUE(holder.ticket && waiter.ticket);
  EXPECT_FALSE(waiter.ticket->granted());
  holder.ticket.reset();  // deadlocks here if wake() ran under the shard's mutex
  EXPECT_EQ(waker->size_seen, 1u);
  EXPECT_TRUE(waiter.ticket->granted());
}

TEST(MemorySlotTableTest, RefusalsSayWhy) {
  MemorySlotTable table(1);
  auto holder = table.acquire("k", 1, 0, nullptr);
  ASSERT_TRUE(holder.ticket);
  auto same_key = table.acquire("k", 1, 0, nullptr);
  EXPECT_FALSE(same_key.ticket);
  EXPECT_EQ(same_key.refusal, SlotTable::Refusal::QueueFull);
  auto other_key = table.acquire("other", 1, 0, nullptr);
  EXPECT_FALSE(other_key.ticket);
  EXPECT_EQ(other_key.refusal, SlotTable::Refusal::TooManyKeys);
  EXPECT_EQ(table.size(), 1u);
}

TEST(MemorySlotTableTest, ShardCount) {
  EXPECT_EQ(MemorySlotTable(1).shard_count(), 1u);
  EXPECT_EQ(MemorySlotTable(0).max_keys(), 1u);
  EXPECT_EQ(MemorySlotTable(1000).shard_count(), 3u);
  EXPECT_EQ(MemorySlotTable(100000).shard_count(), MemorySlotTable::kMaxShards);
  EXPECT_EQ(MemorySlotTable(4, 16).shard_count(), 4u);
}

TEST(ConcurrencyPolicyStressTest, ManyThreadsNeverExceedMaxInFlight) {
  constexpr std::size_t kMaxInFlight = 3;
  constexpr int kThreads = 12;
  constexpr int kRounds = 300;
  auto table = std::make_shared<MemorySlotTable>(1000);
  // A long timeout and a queue that holds everyone: every request must get through in the end.
  ConcurrencyPolicy policy("orders", config_of(kMaxInFlight, kThreads, 60000ms), table);
  std::atomic<int> at_backend{0};
  std::atomic<int> most_at_backend{0};
  std::atomic<int> refused{0};
  std::atomic<int> forwarded{0};

  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < kRounds; ++round) {
        auto waker = std::make_shared<BlockingWaker>();
        std::unique_ptr<ExchangeState> state;
        HeaderList headers;
        Decision decision = Decision::forward();
        for (;;) {
          RequestView view{"GET", "/", "/", "", headers, "10.0.0.1", "orders", {}, "r", MonotonicClock::now(), waker};
          decision = policy.on_request(view, state);
          if (decision.kind() != Decision::Kind::Wait) break;
          waker->wait_for(10ms);  // woken, or look again (as a timer would)
        }
        if (!decision.forwards()) {
          ++refused;
          continue;
        }
        int now_at_backend = ++at_backend;
        int most = most_at_backend.load();
        while (now_at_backend > most && !most_at_backend.compare_exchange_weak(most, now_at_backend)) {
        }
        if ((round + t) % 3 == 0) std::this_thread::yield();
        --at_backend;
        ++forwarded;
        // Every third exchange ends "abnormally" on another thread, as a disconnect might.
        if (round % 3 == 0) {
          std::thread([moved = std::move(state)]() mutable { moved.reset(); }).join();
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();

  EXPECT_LE(most_at_backend.load(), static_cast<int>(kMaxInFlight));
  EXPECT_EQ(refused.load(), 0);
  EXPECT_EQ(forwarded.load(), kThreads * kRounds);
  EXPECT_EQ(policy.in_flight(), 0u);
  EXPECT_EQ(policy.waiting(), 0u);
  EXPECT_EQ(table->size(), 0u);
  EXPECT_EQ(policy.counters().admitted, static_cast<std::uint64_t>(kThreads * kRounds));
}

}  // namespace
}  // namespace arbiter
