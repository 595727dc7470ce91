#pragma once
// Stores for tests that answer when the test says so, as a store across the network would:
// each call is applied to a memory store when it is made (a remote store applies it when the
// request reaches it), and its completion is held back until complete_next(), complete_all() or
// fail_next(). A held call whose StoreCall is destroyed first is cancelled: its completion never
// runs and what it would have handed over (a turn, a slot claim) is given back, by destroying
// it. Single-threaded, as the contract (policies/store/store_call.h) has it: the test is the
// worker's loop. With delaying = false every call completes at once, as the memory stores do.

#include <cstddef>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "policies/store/bucket_store.h"
#include "policies/store/lock_store.h"
#include "policies/store/memory_bucket_store.h"
#include "policies/store/memory_lock_store.h"
#include "policies/store/memory_slot_table.h"
#include "policies/store/memory_version_store.h"
#include "policies/store/memory_write_queues.h"
#include "policies/store/slot_table.h"
#include "policies/store/version_store.h"
#include "policies/store/write_turn_store.h"

namespace arbiter {

class DelayedCalls {
 public:
  bool delaying = true;

  // Calls made and not completed (nor cancelled) yet.
  std::size_t pending() const { return calls_.size(); }
  // Calls made over the store's life, and calls cancelled before they completed.
  std::size_t made() const { return made_; }
  std::size_t cancelled() const { return cancelled_; }

  // Completes the oldest held call with its result (false: none was held).
  bool complete_next() { return deliver(false); }
  void complete_all() {
    while (deliver(false)) {
    }
  }
  // Completes the oldest held call with StoreError::Unavailable (its result is dropped).
  bool fail_next() { return deliver(true); }

  // The result of a call made now: completed at once, or held.
  template <typename T>
  StoreCall hold(StoreResult<T> result, Completion<T> done) {
    ++made_;
    if (!delaying) {
      done(std::move(result));
      return nullptr;
    }
    auto call = std::make_unique<Held<T>>(*this, done, std::move(result));
    calls_.push_back(call.get());
    return call;
  }

 private:
  class Call : public PendingStoreCall {
   public:
    explicit Call(DelayedCalls& owner) : owner_(owner) {}
    ~Call() override {
      if (!delivered_) owner_.cancel(this);
    }
    void deliver(bool fail) {
      delivered_ = true;
      complete(fail);
    }

   protected:
    virtual void complete(bool fail) = 0;

   private:
    DelayedCalls& owner_;
    bool delivered_ = false;
  };

  template <typename T>
  class Held final : public Call {
   public:
    Held(DelayedCalls& owner, Completion<T> done, StoreResult<T> result)
        : Call(owner), done_(done), result_(std::move(result)) {}

   private:
    void complete(bool fail) override {
      if (fail) {
        // What the store applied is undone only for what it handed over (destroyed here).
        result_ = StoreResult<T>{T{}, StoreError::Unavailable};
      }
      done_(std::move(result_));
    }
    Completion<T> done_;
    StoreResult<T> result_;  // destroyed with the call if never delivered: a turn or slot goes back
  };

  bool deliver(bool fail) {
    if (calls_.empty()) return false;
    Call* call = calls_.front();
    calls_.pop_front();
    call->deliver(fail);
    return true;
  }
  void cancel(Call* call) {
    for (auto it = calls_.begin(); it != calls_.end(); ++it) {
      if (*it == call) {
        calls_.erase(it);
        ++cancelled_;
        return;
      }
    }
  }

  std::deque<Call*> calls_;
  std::size_t made_ = 0;
  std::size_t cancelled_ = 0;
};

class DelayedBucketStore final : public BucketStore, public DelayedCalls {
 public:
  StoreCall take(std::string_view limit_id, std::string_view key, const BucketShape& shape, std::uint64_t now_ns,
                 Completion<TakeResult> done) override {
    return hold<TakeResult>({memory.take(limit_id, key, shape, now_ns)}, done);
  }
  StoreCall refund(std::string_view limit_id, std::string_view key, const BucketShape& shape, std::uint64_t now_ns,
                   Completion<BucketStatus> done) override {
    return hold<BucketStatus>({memory.refund(limit_id, key, shape, now_ns)}, done);
  }
  std::size_t size() const override { return memory.size(); }
  std::size_t size(std::string_view limit_id) const override { return memory.size(limit_id); }
  MemoryBucketStore memory;
};

class DelayedSlotTable final : public SlotTable, public DelayedCalls {
 public:
  explicit DelayedSlotTable(std::size_t max_keys) : memory(max_keys) {}
  StoreCall acquire(std::string_view key, std::size_t max_in_flight, std::size_t max_queue,
                    std::shared_ptr<Waker> waker, Completion<Claim> done) override {
    return hold<Claim>({memory.acquire(key, max_in_flight, max_queue, std::move(waker))}, done);
  }
  std::size_t in_flight() const override { return memory.in_flight(); }
  std::size_t waiting() const override { return memory.waiting(); }
  std::size_t size() const override { return memory.size(); }
  MemorySlotTable memory;
};

class DelayedVersionStore final : public VersionStore, public DelayedCalls {
 public:
  explicit DelayedVersionStore(std::size_t max_entries) : memory(max_entries) {}
  StoreCall get(std::string_view resource, Completion<std::optional<std::string>> done) override {
    return hold<std::optional<std::string>>({memory.get(resource)}, done);
  }
  StoreCall sequence(std::string_view resource, Completion<std::uint64_t> done) override {
    return hold<std::uint64_t>({memory.sequence(resource)}, done);
  }
  StoreCall put(std::string_view resource, std::string_view etag, Completion<Done> done) override {
    memory.put(resource, etag);
    return hold<Done>({}, done);
  }
  StoreCall learn(std::string_view resource, std::string_view etag, std::uint64_t seen_sequence,
                  Completion<bool> done) override {
    return hold<bool>({memory.learn(resource, etag, seen_sequence)}, done);
  }
  StoreCall forget(std::string_view resource, Completion<Done> done) override {
    memory.forget(resource);
    return hold<Done>({}, done);
  }
  std::size_t size() const override { return memory.size(); }
  MemoryVersionStore memory;
};

class DelayedWriteTurns final : public WriteTurnStore, public DelayedCalls {
 public:
  StoreCall acquire(std::string_view resource, std::chrono::nanoseconds lease, MonotonicTime now,
                    std::size_t max_queue, std::shared_ptr<Waker> waker,
                    Completion<std::unique_ptr<WriteTurn>> done) override {
    return hold<std::unique_ptr<WriteTurn>>({memory.queue_write(resource, std::move(waker), max_queue, now, lease)},
                                            done);
  }
  std::size_t queued_resources() const override { return memory.queued_resources(); }
  MemoryWriteQueues memory;
};

// A held ask that is cancelled destroys its answer: a place it queued leaves the queue (a lock
// it granted stays held until it expires, as a remote store's would).
class DelayedLockStore final : public LockStore, public DelayedCalls {
 public:
  StoreCall ask(const LockAsk& ask, Completion<LockAnswer> done) override {
    return hold<LockAnswer>({memory.ask_now(ask)}, done);
  }
  StoreCall refresh(std::string_view resource, const LockToken& token, std::chrono::seconds timeout,
                    MonotonicTime now, Completion<LockChange> done) override {
    return hold<LockChange>({memory.refresh_now(resource, token, timeout, now)}, done);
  }
  StoreCall unlock(std::string_view resource, const LockToken& token, MonotonicTime now,
                   Completion<LockChange> done) override {
    return hold<LockChange>({memory.unlock_now(resource, token, now)}, done);
  }
  StoreCall describe(std::string_view resource, MonotonicTime now,
                     Completion<std::optional<LockView>> done) override {
    return hold<std::optional<LockView>>({memory.describe_now(resource, now)}, done);
  }
  StoreCall list(std::string_view after, std::size_t limit, MonotonicTime now,
                 Completion<std::vector<LockView>> done) override {
    return hold<std::vector<LockView>>({memory.list_now(after, limit, now)}, done);
  }
  StoreCall break_lock(std::string_view resource, MonotonicTime now,
                       Completion<std::optional<LockView>> done) override {
    return hold<std::optional<LockView>>({memory.break_now(resource, now)}, done);
  }
  StoreCall keep_routes(std::span<const std::string> routes, MonotonicTime now,
                        Completion<std::size_t> done) override {
    return hold<std::size_t>({memory.keep_routes_now(routes, now)}, done);
  }
  StoreCall take_expired(MonotonicTime now, Completion<std::vector<LockView>> done) override {
    return hold<std::vector<LockView>>({memory.take_expired_now(now)}, done);
  }
  std::size_t held(std::string_view route, MonotonicTime now) const override { return memory.held(route, now); }
  std::uint64_t ended(std::string_view route, LockEnd how) const override { return memory.ended(route, how); }
  MemoryLockStore memory;
};

}  // namespace arbiter
