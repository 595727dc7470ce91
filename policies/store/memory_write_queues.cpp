#include "policies/store/memory_write_queues.h"

#include <atomic>
#include <list>
#include <mutex>
#include <unordered_map>
#include <utility>

#include "policies/store/resource_hash.h"
#include "policies/store/sharding.h"

namespace arbiter {

namespace {

struct Waiter {
  explicit Waiter(std::shared_ptr<Waker> w) : waker(std::move(w)) {}
  std::shared_ptr<Waker> waker;  // may be null (nobody to wake)
  // Set under the shard's lock, read by WriteTurn::granted() without it.
  std::atomic<bool> granted{false};
};

// The front writer holds the turn; the others wait in arrival order. A list, so that each
// turn keeps an iterator to its own place whatever the others do.
using WriteQueue = std::list<Waiter>;

}  // namespace

// alignas: shards sit side by side in one array; their mutexes should not share a cache line.
struct alignas(64) MemoryWriteQueues::Shard {
  mutable std::mutex mutex;
  std::unordered_map<ResourceHash, WriteQueue, ResourceHashHasher> queues;
};

class MemoryWriteQueues::Turn final : public WriteTurn {
 public:
  Turn(Shard& shard, const ResourceHash& key, WriteQueue::iterator place) : shard_(shard), key_(key), place_(place) {}

  ~Turn() override {
    std::shared_ptr<Waker> next_writer;
    {
      std::lock_guard lock(shard_.mutex);
      auto queue = shard_.queues.find(key_);
      WriteQueue& writers = queue->second;
      bool held_the_turn = place_ == writers.begin();
      writers.erase(place_);
      if (writers.empty()) {
        shard_.queues.erase(queue);
      } else if (held_the_turn) {
        Waiter& next = writers.front();
        next.granted.store(true, std::memory_order_release);
        next_writer = next.waker;
      }
    }
    // Outside the lock: a waker may take locks of its own (the worker's wake queue).
    if (next_writer) next_writer->wake();
  }

  bool granted() const override { return place_->granted.load(std::memory_order_acquire); }

 private:
  Shard& shard_;
  ResourceHash key_;
  WriteQueue::iterator place_;  // valid while this turn lives: only it erases its waiter
};

MemoryWriteQueues::MemoryWriteQueues() : seed_(random_hash_seed()), shards_(std::make_unique<Shard[]>(kShards)) {}

MemoryWriteQueues::~MemoryWriteQueues() = default;

std::unique_ptr<WriteTurn> MemoryWriteQueues::queue_write(std::string_view resource, std::shared_ptr<Waker> waker,
                                                          std::size_t max_queue) {
  ResourceHash key = resource_hash(resource, seed_);
  Shard& shard = shards_[key.high % kShards];
  std::lock_guard lock(shard.mutex);
  WriteQueue& writers = shard.queues[key];
  // writers.size() - 1 wait behind the holder; an empty queue is never full.
  if (!writers.empty() && writers.size() - 1 >= max_queue) return nullptr;
  writers.emplace_back(std::move(waker));
  auto place = std::prev(writers.end());
  if (writers.size() == 1) place->granted.store(true, std::memory_order_release);
  return std::make_unique<Turn>(shard, key, place);
}

std::size_t MemoryWriteQueues::queued_resources() const {
  return sum_over_shards(shards_.get(), kShards, [](const Shard& shard) { return shard.queues.size(); });
}

}  // namespace arbiter
