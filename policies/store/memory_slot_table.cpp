#include "policies/store/memory_slot_table.h"

#include <algorithm>
#include <list>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

#include <xxhash.h>

#include "policies/store/sharding.h"

namespace arbiter {

namespace {

struct Waiter {
  std::atomic<bool>* granted;    // the waiting ticket's flag, set under the shard's lock
  std::shared_ptr<Waker> waker;  // may be null (nobody to wake)
};

// A key's slots. A list, so that each waiting ticket keeps an iterator to its own place
// whatever the others do.
struct Entry {
  std::size_t in_flight = 0;
  std::size_t max_in_flight = 1;
  std::list<Waiter> waiters;  // in arrival order
};

// While the entry has a free slot, grants it to the first waiter; their wakers go to to_wake,
// to be called once the shard's lock is released. The caller holds the shard's lock.
void grant_free_slots(Entry& entry, std::atomic<std::size_t>& in_flight, std::atomic<std::size_t>& waiting,
                      std::vector<std::shared_ptr<Waker>>& to_wake) {
  while (entry.in_flight < entry.max_in_flight && !entry.waiters.empty()) {
    Waiter next = std::move(entry.waiters.front());
    entry.waiters.pop_front();
    ++entry.in_flight;
    waiting.fetch_sub(1, std::memory_order_relaxed);
    in_flight.fetch_add(1, std::memory_order_relaxed);
    next.granted->store(true, std::memory_order_release);
    if (next.waker) to_wake.push_back(std::move(next.waker));
  }
}

// The key is a hash already.
struct KeyHash {
  std::size_t operator()(std::uint64_t key) const noexcept { return static_cast<std::size_t>(key); }
};

}  // namespace

// alignas: shards sit side by side in one array; their mutexes should not share a cache line.
struct alignas(64) MemorySlotTable::Shard {
  std::mutex mutex;
  std::unordered_map<std::uint64_t, Entry, KeyHash> entries;
};

class MemorySlotTable::Ticket final : public SlotTicket {
 public:
  Ticket(MemorySlotTable& table, Shard& shard, std::uint64_t key, bool granted)
      : granted_(granted), table_(table), shard_(shard), key_(key) {}

  ~Ticket() override {
    std::vector<std::shared_ptr<Waker>> to_wake;
    {
      std::lock_guard lock(shard_.mutex);
      auto it = shard_.entries.find(key_);
      Entry& entry = it->second;
      if (granted_.load(std::memory_order_relaxed)) {  // only ever changed under this lock
        --entry.in_flight;
        table_.in_flight_.fetch_sub(1, std::memory_order_relaxed);
        grant_free_slots(entry, table_.in_flight_, table_.waiting_, to_wake);
      } else {
        entry.waiters.erase(place_);
        table_.waiting_.fetch_sub(1, std::memory_order_relaxed);
      }
      if (entry.in_flight == 0 && entry.waiters.empty()) {
        shard_.entries.erase(it);
        table_.keys_.fetch_sub(1, std::memory_order_relaxed);
      }
    }
    // Outside the lock: a waker may take locks of its own (the worker's wake queue).
    for (const auto& waker : to_wake) waker->wake();
  }

  bool granted() const override { return granted_.load(std::memory_order_acquire); }

  // Set under the shard's lock, read by granted() without it.
  std::atomic<bool> granted_;
  std::list<Waiter>::iterator place_;  // while waiting: its place in the queue

 private:
  MemorySlotTable& table_;
  Shard& shard_;
  std::uint64_t key_;
};

MemorySlotTable::MemorySlotTable(std::size_t max_keys, std::size_t shard_count)
    : max_keys_(std::max<std::size_t>(1, max_keys)),
      shard_count_(shard_count_for(max_keys_.load(), shard_count, kKeysPerShard, kMaxShards)),
      seed_(random_hash_seed()),
      shards_(std::make_unique<Shard[]>(shard_count_)) {}

void MemorySlotTable::set_max_keys(std::size_t max_keys) noexcept {
  max_keys_.store(std::max<std::size_t>(1, max_keys), std::memory_order_relaxed);
}

MemorySlotTable::~MemorySlotTable() = default;

SlotTable::Claim MemorySlotTable::acquire(std::string_view key, std::size_t max_in_flight, std::size_t max_queue,
                                          std::shared_ptr<Waker> waker) {
  std::uint64_t hash = XXH3_64bits_withSeed(key.data(), key.size(), seed_);
  Shard& shard = shards_[(hash >> 32) % shard_count_];
  std::vector<std::shared_ptr<Waker>> to_wake;  // stays empty (no allocation) unless the cap was raised
  Claim claim = [&]() -> Claim {
    std::lock_guard lock(shard.mutex);
    auto it = shard.entries.find(hash);
    if (it == shard.entries.end()) {
      // Counted before the entry is made, so that workers adding keys at once cannot pass the bound.
      if (keys_.fetch_add(1, std::memory_order_relaxed) >= max_keys_.load(std::memory_order_relaxed)) {
        keys_.fetch_sub(1, std::memory_order_relaxed);
        return {nullptr, Refusal::TooManyKeys};
      }
      it = shard.entries.try_emplace(hash).first;
    }
    Entry& entry = it->second;
    // The cap of the latest call: after a reload, the new policy's, on the slots held and the
    // requests queued through the old one. Raised, it lets the head of the queue go first.
    entry.max_in_flight = std::max<std::size_t>(1, max_in_flight);
    grant_free_slots(entry, in_flight_, waiting_, to_wake);
    // Nobody overtakes a waiter: a free slot with a queue is about to be granted to its head.
    if (entry.in_flight < entry.max_in_flight && entry.waiters.empty()) {
      ++entry.in_flight;
      in_flight_.fetch_add(1, std::memory_order_relaxed);
      return {std::make_unique<Ticket>(*this, shard, hash, true)};
    }
    // The entry has a slot held here, so a refusal leaves nothing to clean up.
    if (entry.waiters.size() >= max_queue) return {nullptr, Refusal::QueueFull};
    auto ticket = std::make_unique<Ticket>(*this, shard, hash, false);
    ticket->place_ = entry.waiters.insert(entry.waiters.end(), Waiter{&ticket->granted_, std::move(waker)});
    waiting_.fetch_add(1, std::memory_order_relaxed);
    return {std::move(ticket)};
  }();
  // Outside the lock, as in ~Ticket.
  for (const auto& woken : to_wake) woken->wake();
  return claim;
}

std::size_t MemorySlotTable::size() const { return keys_.load(std::memory_order_relaxed); }

}  // namespace arbiter
