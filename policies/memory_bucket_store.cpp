#include "policies/memory_bucket_store.h"

#include <algorithm>
#include <atomic>
#include <limits>
#include <mutex>
#include <vector>

#include <xxhash.h>

#include "policies/sharding.h"

namespace arbiter {

namespace {

constexpr std::uint32_t kNone = std::numeric_limits<std::uint32_t>::max();
// Slots are numbered in 32 bits; kNone is not a slot.
constexpr std::size_t kMaxShardCapacity = std::numeric_limits<std::uint32_t>::max() - 1;
constexpr std::size_t kMinIndexSize = 16;

// One bucket. Slots never move (they live in fixed chunks), so the recency list links them by
// number, which costs 8 bytes a bucket instead of 16.
struct Slot {
  std::uint64_t hash = 0;
  BucketState bucket;
  std::uint32_t newer = kNone;
  std::uint32_t older = kNone;
};
static_assert(sizeof(Slot) == 32);

// alignas: shards sit side by side in one array; their mutexes should not share a cache line.
struct alignas(64) BucketShard {
  std::mutex mutex;
  std::uint32_t capacity = 1;
  std::uint32_t count = 0;  // slots 0..count-1 are in use
  std::uint32_t most_recent = kNone;
  std::uint32_t least_recent = kNone;
  std::vector<std::unique_ptr<Slot[]>> chunks;
  // Open addressing with linear probing: slot number + 1, or 0 for an empty place. Its size is
  // a power of two and it is at most three quarters full. Probing starts at the hash's low bits
  // (the shard was chosen by its high bits).
  std::vector<std::uint32_t> index;

  // All below: the caller holds `mutex`.

  Slot& slot(std::uint32_t i) noexcept {
    return chunks[i / MemoryBucketStore::kChunkSlots][i % MemoryBucketStore::kChunkSlots];
  }
  std::size_t home(std::uint64_t hash) const noexcept { return static_cast<std::size_t>(hash) & (index.size() - 1); }

  std::uint32_t find(std::uint64_t hash) noexcept {
    if (index.empty()) return kNone;
    for (std::size_t at = home(hash);; at = (at + 1) & (index.size() - 1)) {
      if (index[at] == 0) return kNone;
      if (slot(index[at] - 1).hash == hash) return index[at] - 1;
    }
  }

  void index_insert(std::uint32_t i) noexcept {
    std::size_t at = home(slot(i).hash);
    while (index[at] != 0) at = (at + 1) & (index.size() - 1);
    index[at] = i + 1;
  }

  // Makes room in the index for `entries`, re-indexing the `count` slots in use.
  void grow_index_for(std::size_t entries) {
    if (entries * 4 <= index.size() * 3) return;
    std::size_t size = std::max(kMinIndexSize, index.size());
    while (entries * 4 > size * 3) size *= 2;
    index.assign(size, 0);
    for (std::uint32_t i = 0; i < count; ++i) index_insert(i);
  }

  // Backward-shift deletion: later entries of the probe run move up into the gap, so that no
  // tombstones accumulate and lookups stay as short as the load allows.
  void index_erase(std::uint32_t i) noexcept {
    std::size_t mask = index.size() - 1;
    std::size_t gap = home(slot(i).hash);
    while (index[gap] != i + 1) gap = (gap + 1) & mask;
    for (std::size_t at = (gap + 1) & mask; index[at] != 0; at = (at + 1) & mask) {
      std::size_t wanted = home(slot(index[at] - 1).hash);
      // The entry at `at` may fill the gap unless its home lies cyclically in (gap, at].
      bool stays = gap <= at ? (gap < wanted && wanted <= at) : (gap < wanted || wanted <= at);
      if (stays) continue;
      index[gap] = index[at];
      gap = at;
    }
    index[gap] = 0;
  }

  void unlink(std::uint32_t i) noexcept {
    Slot& s = slot(i);
    (s.newer != kNone ? slot(s.newer).older : most_recent) = s.older;
    (s.older != kNone ? slot(s.older).newer : least_recent) = s.newer;
    s.newer = s.older = kNone;
  }

  void link_most_recent(std::uint32_t i) noexcept {
    Slot& s = slot(i);
    s.older = most_recent;
    s.newer = kNone;
    if (most_recent != kNone) slot(most_recent).newer = i;
    most_recent = i;
    if (least_recent == kNone) least_recent = i;
  }

  void touch(std::uint32_t i) noexcept {
    if (i == most_recent) return;
    unlink(i);
    link_most_recent(i);
  }

  // The bucket to forget for a new key: a full one among the least recently used, else the
  // least recently used.
  std::uint32_t victim(const BucketShape& shape, std::uint64_t now_ns) noexcept {
    std::uint32_t i = least_recent;
    for (std::size_t looked = 0; i != kNone && looked < MemoryBucketStore::kEvictionScan; ++looked) {
      if (is_full(slot(i).bucket, shape, now_ns)) return i;
      i = slot(i).newer;
    }
    return least_recent;
  }

  // A slot for a key the shard does not hold, most recent, with a full bucket.
  std::uint32_t insert(std::uint64_t hash, const BucketShape& shape, std::uint64_t now_ns) {
    std::uint32_t i;
    if (count < capacity) {
      grow_index_for(count + 1);  // before the new slot counts: it has no hash to index yet
      i = count;
      if (i % MemoryBucketStore::kChunkSlots == 0) {
        // The last chunk holds only what the capacity still allows, so a full table has no slack.
        std::size_t slots = std::min<std::size_t>(MemoryBucketStore::kChunkSlots, capacity - i);
        chunks.push_back(std::make_unique<Slot[]>(slots));
      }
      ++count;
    } else {
      i = victim(shape, now_ns);
      index_erase(i);
      unlink(i);
    }
    Slot& s = slot(i);
    s.hash = hash;
    s.bucket = full_bucket(shape, now_ns);
    index_insert(i);
    link_most_recent(i);
    return i;
  }
};

}  // namespace

class MemoryBucketStore::LimitTable {
 public:
  LimitTable(const BucketShape& shape, std::size_t shard_count, std::uint64_t seed)
      : shape_(shape), seed_(seed) {
    shard_count_ = shard_count_for(shape.max_keys(), shard_count, kKeysPerShard, kMaxShards);
    shards_ = std::make_unique<BucketShard[]>(shard_count_);
    for (std::size_t i = 0; i < shard_count_; ++i) {
      shards_[i].capacity =
          static_cast<std::uint32_t>(std::min(shard_share(shape.max_keys(), shard_count_, i), kMaxShardCapacity));
    }
  }

  const BucketShape& shape() const noexcept { return shape_; }

  TakeResult take(std::string_view key, std::uint64_t now_ns) {
    std::uint64_t hash = hash_of(key);
    BucketShard& shard = shard_for(hash);
    std::lock_guard lock(shard.mutex);
    std::uint32_t i = shard.find(hash);
    if (i == kNone) {
      i = shard.insert(hash, shape_, now_ns);
    } else {
      shard.touch(i);
    }
    return take_token(shard.slot(i).bucket, shape_, now_ns);
  }

  BucketStatus refund(std::string_view key, std::uint64_t now_ns) {
    std::uint64_t hash = hash_of(key);
    BucketShard& shard = shard_for(hash);
    std::lock_guard lock(shard.mutex);
    std::uint32_t i = shard.find(hash);
    if (i == kNone) return BucketStatus{shape_.burst(), 0, 0};
    return refund_token(shard.slot(i).bucket, shape_, now_ns);
  }

  std::size_t size() const {
    std::size_t total = 0;
    for (std::size_t i = 0; i < shard_count_; ++i) {
      std::lock_guard lock(shards_[i].mutex);
      total += shards_[i].count;
    }
    return total;
  }

 private:
  std::uint64_t hash_of(std::string_view key) const noexcept {
    return XXH3_64bits_withSeed(key.data(), key.size(), seed_);
  }
  BucketShard& shard_for(std::uint64_t hash) const noexcept { return shards_[(hash >> 32) % shard_count_]; }

  BucketShape shape_;
  std::uint64_t seed_;
  std::size_t shard_count_ = 1;
  std::unique_ptr<BucketShard[]> shards_;
};

MemoryBucketStore::MemoryBucketStore(std::size_t shards_per_limit)
    : shards_per_limit_(shards_per_limit),
      seed_(random_hash_seed()),
      stripes_(std::make_unique<LockStripe[]>(kLockStripes)) {}

MemoryBucketStore::~MemoryBucketStore() = default;

std::shared_mutex& MemoryBucketStore::reader_lock() const noexcept {
  // Threads are handed stripes in turn, so a pool of workers spreads evenly over them.
  static std::atomic<std::size_t> next_stripe{0};
  thread_local const std::size_t stripe = next_stripe.fetch_add(1, std::memory_order_relaxed) % kLockStripes;
  return stripes_[stripe].mutex;
}

namespace {

// Every stripe locked exclusively, in order (so two writers cannot deadlock), for as long as it
// lives.
class AllStripes {
 public:
  template <typename Stripe>
  AllStripes(Stripe* stripes, std::size_t count) {
    locks_.reserve(count);
    for (std::size_t i = 0; i < count; ++i) locks_.emplace_back(stripes[i].mutex);
  }

 private:
  std::vector<std::unique_lock<std::shared_mutex>> locks_;
};

}  // namespace

template <typename Fn>
auto MemoryBucketStore::with_table(std::string_view limit_id, const BucketShape& shape, Fn&& fn) {
  {
    std::shared_lock lock(reader_lock());
    auto it = tables_.find(limit_id);
    if (it != tables_.end() && it->second->shape() == shape) return fn(*it->second);
  }
  // First sight of this limit, or a new shape: rare, so the exclusive lock is held throughout.
  AllStripes lock(stripes_.get(), kLockStripes);
  auto it = tables_.find(limit_id);
  if (it == tables_.end()) {
    it = tables_.emplace(std::string(limit_id), nullptr).first;
  }
  if (!it->second || !(it->second->shape() == shape)) {
    it->second = std::make_unique<LimitTable>(shape, shards_per_limit_, seed_);
  }
  return fn(*it->second);
}

TakeResult MemoryBucketStore::take(std::string_view limit_id, std::string_view key, const BucketShape& shape,
                                   std::uint64_t now_ns) {
  return with_table(limit_id, shape, [&](LimitTable& table) { return table.take(key, now_ns); });
}

BucketStatus MemoryBucketStore::refund(std::string_view limit_id, std::string_view key, const BucketShape& shape,
                                       std::uint64_t now_ns) {
  return with_table(limit_id, shape, [&](LimitTable& table) { return table.refund(key, now_ns); });
}

std::size_t MemoryBucketStore::size() const {
  std::shared_lock lock(reader_lock());
  std::size_t total = 0;
  for (const auto& [id, table] : tables_) total += table->size();
  return total;
}

std::size_t MemoryBucketStore::size(std::string_view limit_id) const {
  std::shared_lock lock(reader_lock());
  auto it = tables_.find(limit_id);
  return it == tables_.end() ? 0 : it->second->size();
}

std::size_t MemoryBucketStore::limit_count() const {
  std::shared_lock lock(reader_lock());
  return tables_.size();
}

std::size_t MemoryBucketStore::approximate_bytes_per_entry() noexcept {
  // The index doubles when it would pass 3/4 full, so it is at least 3/8 full: at most 8/3
  // places of 4 bytes a bucket. Chunks are allocated whole, and a full table has no slack.
  constexpr std::size_t kIndexBytes = (8 * sizeof(std::uint32_t) + 2) / 3;
  return sizeof(Slot) + kIndexBytes;
}

}  // namespace arbiter
