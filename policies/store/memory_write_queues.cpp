#include "policies/store/memory_write_queues.h"

#include <list>
#include <mutex>
#include <unordered_map>
#include <utility>

#include "policies/store/resource_hash.h"
#include "policies/store/sharding.h"

namespace arbiter {

namespace {

constexpr MonotonicTime kNotStarted = MonotonicTime::max();

MonotonicTime lease_end(MonotonicTime now, std::chrono::nanoseconds lease) noexcept {
  // Saturates rather than overflows for an unlimited lease.
  if (lease >= MonotonicTime::max() - now) return MonotonicTime::max() - std::chrono::nanoseconds(1);
  return now + std::chrono::duration_cast<MonotonicClock::duration>(lease);
}

struct TurnWaiter {
  TurnWaiter(std::shared_ptr<Waker> w, std::chrono::nanoseconds l) : waker(std::move(w)), lease(l) {}
  std::shared_ptr<Waker> waker;  // may be null (nobody to wake)
  std::chrono::nanoseconds lease;
  // Set under the shard's lock; fence is read by WriteTurn::fence() without it.
  std::atomic<std::uint64_t> fence{0};   // 0: not granted
  MonotonicTime expires_at = kNotStarted;  // granted: when its lease ends (kNotStarted: not seen yet)
  bool overtaken = false;                // its lease expired and the next writer took the turn
};

// The front writer holds the turn; the others wait in arrival order. A list, so that each
// turn keeps an iterator to its own place whatever the others do (an overtaken holder's node
// is spliced to the shard's `overtaken` list, which keeps the iterator valid).
using WriteQueue = std::list<TurnWaiter>;

// Makes `writer` the holder; returns its waker. The caller holds the shard's lock.
const std::shared_ptr<Waker>& grant(TurnWaiter& writer, MonotonicTime expires_at, std::uint64_t fence) noexcept {
  writer.expires_at = expires_at;
  writer.fence.store(fence, std::memory_order_release);
  return writer.waker;
}

}  // namespace

// alignas: shards sit side by side in one array; their mutexes should not share a cache line.
struct alignas(64) MemoryWriteQueues::Shard {
  mutable std::mutex mutex;
  std::unordered_map<ResourceHash, WriteQueue, ResourceHashHasher> queues;
  WriteQueue overtaken;  // holders whose turn was taken over, until they let go
};

class MemoryWriteQueues::Turn final : public WriteTurn {
 public:
  Turn(MemoryWriteQueues& store, Shard& shard, const ResourceHash& key, WriteQueue::iterator place)
      : store_(store), shard_(shard), key_(key), place_(place) {}

  ~Turn() override {
    std::shared_ptr<Waker> next_writer;
    {
      std::lock_guard lock(shard_.mutex);
      if (place_->overtaken) {
        shard_.overtaken.erase(place_);
        return;
      }
      auto queue = shard_.queues.find(key_);
      WriteQueue& writers = queue->second;
      bool held_the_turn = place_ == writers.begin();
      writers.erase(place_);
      if (writers.empty()) {
        shard_.queues.erase(queue);
      } else if (held_the_turn) {
        next_writer = grant(writers.front(), kNotStarted, store_.next_fence());
      }
    }
    // Outside the lock: a waker may take locks of its own (the worker's wake queue).
    if (next_writer) next_writer->wake();
  }

  bool held(MonotonicTime now) override {
    std::shared_ptr<Waker> next_writer;
    bool holds = false;
    {
      std::lock_guard lock(shard_.mutex);
      if (place_->overtaken) return false;
      WriteQueue& writers = shard_.queues.find(key_)->second;
      TurnWaiter& holder = writers.front();
      // The lease runs from the first time anyone sees the grant.
      if (holder.expires_at == kNotStarted) holder.expires_at = lease_end(now, holder.lease);
      if (place_ != writers.begin() && now >= holder.expires_at) {
        holder.overtaken = true;
        shard_.overtaken.splice(shard_.overtaken.end(), writers, writers.begin());
        TurnWaiter& next = writers.front();
        std::shared_ptr<Waker> waker = grant(next, lease_end(now, next.lease), store_.next_fence());
        if (&next != &*place_) next_writer = std::move(waker);
      }
      holds = place_ == writers.begin();
    }
    if (next_writer) next_writer->wake();
    return holds;
  }

  std::uint64_t fence() const override { return place_->fence.load(std::memory_order_acquire); }

  MonotonicTime expires_at() const override {
    std::lock_guard lock(shard_.mutex);
    if (place_->overtaken) return place_->expires_at;
    return shard_.queues.find(key_)->second.front().expires_at;
  }

 private:
  MemoryWriteQueues& store_;
  Shard& shard_;
  ResourceHash key_;
  WriteQueue::iterator place_;  // valid while this turn lives: only it erases its waiter
};

MemoryWriteQueues::MemoryWriteQueues() : seed_(random_hash_seed()), shards_(std::make_unique<Shard[]>(kShards)) {}

MemoryWriteQueues::~MemoryWriteQueues() = default;

std::unique_ptr<WriteTurn> MemoryWriteQueues::queue_write(std::string_view resource, std::shared_ptr<Waker> waker,
                                                          std::size_t max_queue, MonotonicTime now,
                                                          std::chrono::nanoseconds lease) {
  ResourceHash key = resource_hash(resource, seed_);
  Shard& shard = shards_[key.high % kShards];
  std::lock_guard lock(shard.mutex);
  WriteQueue& writers = shard.queues[key];
  // writers.size() - 1 wait behind the holder; an empty queue is never full.
  if (!writers.empty() && writers.size() - 1 >= max_queue) return nullptr;
  writers.emplace_back(std::move(waker), lease);
  auto place = std::prev(writers.end());
  if (writers.size() == 1) grant(*place, lease_end(now, lease), next_fence());
  return std::make_unique<Turn>(*this, shard, key, place);
}

std::size_t MemoryWriteQueues::queued_resources() const {
  return sum_over_shards(shards_.get(), kShards, [](const Shard& shard) { return shard.queues.size(); });
}

}  // namespace arbiter
