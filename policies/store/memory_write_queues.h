#pragma once
// The WriteTurnStore of one Arbiter process, in memory: per-resource write queues, resource
// state kept apart from the ETag cache beside it (a bounded, lossy table that a reload may
// replace). One instance lives as long as the process's RuntimeState, so a write holding a
// turn under an old Runtime still serializes with writes under every later one, whatever
// route they came through.
//
// Leases: as the interface says, a holder's lease runs from the first time anyone sees its
// grant (acquire() at once, or held() after a hand-over), and a waiter asking held() past it
// takes the turn over for the first waiter, with a new fence. In one process a holder is never
// dead (its ExchangeState gives the turn back however the exchange ends), so only a holder
// stuck past its lease is overtaken. Fences are one counter for the whole store.
//
// Thread-safety: every member may be called from any thread; resources are spread over shards
// by the hash of their key, each with its own mutex; a Waker is only ever called after the
// shard's lock is released. Memory: a resource has a queue only while someone holds or waits
// for its turn (an overtaken holder keeps its place apart until it lets go).
//
// Lifetime: must outlive every WriteTurn it handed out (holders keep it by shared_ptr).

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <utility>

#include "policies/store/write_turn_store.h"

namespace arbiter {

class MemoryWriteQueues final : public WriteTurnStore {
 public:
  MemoryWriteQueues();
  ~MemoryWriteQueues() override;
  MemoryWriteQueues(const MemoryWriteQueues&) = delete;
  MemoryWriteQueues& operator=(const MemoryWriteQueues&) = delete;

  // Completes at once with queue_write() below.
  StoreCall acquire(std::string_view resource, std::chrono::nanoseconds lease, MonotonicTime now,
                    std::size_t max_queue, std::shared_ptr<Waker> waker,
                    Completion<std::unique_ptr<WriteTurn>> done) override {
    done(queue_write(resource, std::move(waker), max_queue, now, lease));
    return nullptr;
  }
  // The same call, answered directly: the head of the queue holds the turn; granting the next
  // writer wakes its waker (outside the shard's lock). nullptr: max_queue writers already wait.
  std::unique_ptr<WriteTurn> queue_write(std::string_view resource, std::shared_ptr<Waker> waker,
                                         std::size_t max_queue, MonotonicTime now = {},
                                         std::chrono::nanoseconds lease = kUnlimitedLease);
  std::size_t queued_resources() const override;

  static constexpr std::size_t kShards = 32;
  // A lease that never expires in practice (about 290 years).
  static constexpr std::chrono::nanoseconds kUnlimitedLease = std::chrono::hours(24 * 365 * 290);

 private:
  struct Shard;
  class Turn;
  std::uint64_t next_fence() noexcept { return next_fence_.fetch_add(1, std::memory_order_relaxed); }

  std::uint64_t seed_;  // of resource_hash
  std::unique_ptr<Shard[]> shards_;
  std::atomic<std::uint64_t> next_fence_{1};
};

}  // namespace arbiter
