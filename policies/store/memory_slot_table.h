#pragma once
// The concurrency policy's slot table in memory, shared by every worker thread.
//
// Threading: thread-safe; keys are spread over shards that each have a mutex, and a Waker is
// only ever called after the shard's lock is released (a waker may take locks of its own).
// The gauges are atomics, read without a lock.
//
// Bounds: an entry exists only while its key has a slot held or a request waiting, so it is
// removed when the last of them ends, and the table tracks at most max_keys keys (one count
// across the shards; set_max_keys changes the bound in place). A new key beyond that is refused
// (Refusal::TooManyKeys) rather than let through uncounted: the bound then holds both the
// memory and the backend's load.
//
// Reloads: a new policy given the same table finds the slots held and the requests queued
// through the old one. A key's cap is the max_in_flight of the latest acquire() for it (the
// interface asks every call for one key to pass the same one, except across a reload): a lower
// cap lets nobody new in until enough held slots are released, a higher one grants the freed
// room to the queue's head at once (woken outside the lock), before the caller. max_queue is
// the caller's on every call.
//
// Keys are kept as their 64-bit XXH3 hash, seeded at random per table; two keys colliding by
// chance would share one cap.
//
// Lifetime: the table must outlive every SlotTicket it handed out (the policy keeps it by
// shared_ptr, and each ticket is held by an exchange of that policy).

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>

#include "policies/store/slot_table.h"

namespace arbiter {

class MemorySlotTable final : public SlotTable {
 public:
  // max_keys: 0 is taken as 1. shard_count: 0 chooses one shard per kKeysPerShard keys,
  // between 1 and kMaxShards; never more shards than keys.
  explicit MemorySlotTable(std::size_t max_keys, std::size_t shard_count = 0);
  ~MemorySlotTable() override;
  MemorySlotTable(const MemorySlotTable&) = delete;
  MemorySlotTable& operator=(const MemorySlotTable&) = delete;

  // Completes at once with acquire() below.
  StoreCall acquire(std::string_view key, std::size_t max_in_flight, std::size_t max_queue,
                    std::shared_ptr<Waker> waker, Completion<Claim> done) override {
    done(acquire(key, max_in_flight, max_queue, std::move(waker)));
    return nullptr;
  }
  // The same call, answered directly.
  Claim acquire(std::string_view key, std::size_t max_in_flight, std::size_t max_queue,
                std::shared_ptr<Waker> waker);
  std::size_t in_flight() const override { return in_flight_.load(std::memory_order_relaxed); }
  std::size_t waiting() const override { return waiting_.load(std::memory_order_relaxed); }
  // Keys tracked; read without a lock (a new key being refused counts for a moment).
  std::size_t size() const override;

  std::size_t max_keys() const noexcept { return max_keys_.load(std::memory_order_relaxed); }
  // A reload's new bound: keys already tracked stay (a lower bound refuses new keys until
  // enough of them end); the shard count stays the one chosen at construction.
  void set_max_keys(std::size_t max_keys) noexcept;
  std::size_t shard_count() const noexcept { return shard_count_; }

  static constexpr std::size_t kMaxShards = 32;
  static constexpr std::size_t kKeysPerShard = 256;

 private:
  struct Shard;
  class Ticket;

  std::atomic<std::size_t> max_keys_;
  std::size_t shard_count_;
  std::atomic<std::size_t> keys_{0};  // the shards' entries added up, counted before each is made
  std::uint64_t seed_;
  std::unique_ptr<Shard[]> shards_;
  std::atomic<std::size_t> in_flight_{0};
  std::atomic<std::size_t> waiting_{0};
};

}  // namespace arbiter
