#include "policies/store/memory_bucket_store.h"

#include <algorithm>
#include <atomic>
#include <limits>
#include <mutex>
#include <vector>

#include <xxhash.h>

#include "policies/store/sharding.h"

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

  // The bucket to forget for a new key: a full one among the kEvictionScan least recently used,
  // or kNone when they all still hold spent tokens (none of them may be forgotten).
  std::uint32_t victim(const BucketShape& shape, std::uint64_t now_ns) noexcept {
    std::uint32_t i = least_recent;
    for (std::size_t looked = 0; i != kNone && looked < MemoryBucketStore::kEvictionScan; ++looked) {
      if (is_full(slot(i).bucket, shape, now_ns)) return i;
      i = slot(i).newer;
    }
    return kNone;
  }

  // A slot not in use yet, neither indexed nor linked. The caller checks count < capacity.
  std::uint32_t unused_slot() {
    grow_index_for(count + 1);  // before the new slot counts: it has no hash to index yet
    std::uint32_t i = count;
    if (i % MemoryBucketStore::kChunkSlots == 0) {
      // The last chunk holds only what the capacity still allows, so a full table has no slack.
      std::size_t slots = std::min<std::size_t>(MemoryBucketStore::kChunkSlots, capacity - i);
      chunks.push_back(std::make_unique<Slot[]>(slots));
    }
    ++count;
    return i;
  }

  // Slot i holds the key's bucket from now on, as the most recently used.
  void place(std::uint32_t i, std::uint64_t hash, const BucketState& bucket) noexcept {
    Slot& s = slot(i);
    s.hash = hash;
    s.bucket = bucket;
    index_insert(i);
    link_most_recent(i);
  }

  // A slot for a key the shard does not hold, most recent, with a full bucket; kNone when the
  // shard is full and no bucket may be forgotten (the key then shares the overflow bucket).
  std::uint32_t insert(std::uint64_t hash, const BucketShape& shape, std::uint64_t now_ns) {
    std::uint32_t i;
    if (count < capacity) {
      i = unused_slot();
    } else {
      i = victim(shape, now_ns);
      if (i == kNone) return kNone;
      index_erase(i);
      unlink(i);
    }
    place(i, hash, full_bucket(shape, now_ns));
    return i;
  }

  // A bucket carried over from the table of another shape, as the most recently used so far;
  // the caller has made sure there is room (count < capacity) and that the key is new here.
  void adopt(std::uint64_t hash, const BucketState& bucket) { place(unused_slot(), hash, bucket); }

  // fn(slot) for every bucket held, least recently used first.
  template <typename Fn>
  void for_each_least_recent_first(Fn&& fn) {
    for (std::uint32_t i = least_recent; i != kNone; i = slot(i).newer) fn(slot(i));
  }
};

// A bucket on its way from one shape's table to the next.
struct MovedBucket {
  std::uint64_t hash = 0;
  std::uint64_t last_used_ns = 0;  // its update time under the old shape: orders the shards' merged recency
  BucketState bucket;              // converted to the new shape
  bool dropped = false;
};

// Which of one new shard's buckets (least recently used first) to leave behind when there are
// more than its capacity: full ones first (a new bucket starts full, so forgetting them loses
// nothing), least recently used first among them; then the least recently used.
void drop_beyond_capacity(std::vector<MovedBucket>& moved, std::size_t capacity, const BucketShape& shape) {
  if (moved.size() <= capacity) return;
  std::size_t excess = moved.size() - capacity;
  for (MovedBucket& m : moved) {
    if (excess == 0) return;
    if (m.bucket.units >= shape.capacity_units()) {
      m.dropped = true;
      --excess;
    }
  }
  for (MovedBucket& m : moved) {
    if (excess == 0) return;
    if (!m.dropped) {
      m.dropped = true;
      --excess;
    }
  }
}

}  // namespace

class MemoryBucketStore::LimitTable {
 public:
  LimitTable(const BucketShape& shape, std::size_t shard_count, std::uint64_t seed, std::uint64_t now_ns)
      : shape_(shape), seed_(seed), overflow_(full_bucket(shape, now_ns)) {
    shard_count_ = shard_count_for(shape.max_keys(), shard_count, kKeysPerShard, kMaxShards);
    shards_ = std::make_unique<BucketShard[]>(shard_count_);
    for (std::size_t i = 0; i < shard_count_; ++i) {
      shards_[i].capacity =
          static_cast<std::uint32_t>(std::min(shard_share(shape.max_keys(), shard_count_, i), kMaxShardCapacity));
    }
  }

  const BucketShape& shape() const noexcept { return shape_; }

  // Fills this new table (of the limit's new shape) with the buckets of `old`, each brought up
  // to now_ns under the old shape and converted (reshape_bucket()), under the same keys and in
  // the same order of recency; drop_beyond_capacity() picks what a smaller max_keys leaves out.
  // The caller keeps every other thread out of both tables.
  void take_over(LimitTable& old, std::uint64_t now_ns) {
    {
      std::lock_guard lock(old.overflow_mutex_);
      overflow_ = reshape_bucket(old.overflow_, old.shape_, shape_, now_ns);
    }
    std::vector<std::vector<MovedBucket>> moved(shard_count_);
    for (std::size_t o = 0; o < old.shard_count_; ++o) {
      BucketShard& from = old.shards_[o];
      std::lock_guard lock(from.mutex);
      from.for_each_least_recent_first([&](const Slot& s) {
        moved[shard_index(s.hash)].push_back(
            MovedBucket{s.hash, s.bucket.updated_ns, reshape_bucket(s.bucket, old.shape_, shape_, now_ns)});
      });
    }
    for (std::size_t n = 0; n < shard_count_; ++n) {
      std::vector<MovedBucket>& into = moved[n];
      // Buckets from several old shards: their update times tell which was used last.
      std::stable_sort(into.begin(), into.end(), [](const MovedBucket& a, const MovedBucket& b) {
        return a.last_used_ns < b.last_used_ns;
      });
      BucketShard& shard = shards_[n];
      drop_beyond_capacity(into, shard.capacity, shape_);
      std::lock_guard lock(shard.mutex);
      for (const MovedBucket& m : into) {
        if (!m.dropped) shard.adopt(m.hash, m.bucket);
      }
    }
  }

  TakeResult take(std::string_view key, std::uint64_t now_ns) {
    std::uint64_t hash = hash_of(key);
    BucketShard& shard = shard_for(hash);
    {
      std::lock_guard lock(shard.mutex);
      std::uint32_t i = shard.find(hash);
      if (i == kNone) {
        i = shard.insert(hash, shape_, now_ns);
      } else {
        shard.touch(i);
      }
      if (i != kNone) return take_token(shard.slot(i).bucket, shape_, now_ns);
    }
    std::lock_guard lock(overflow_mutex_);
    TakeResult taken = take_token(overflow_, shape_, now_ns);
    taken.overflow = true;
    return taken;
  }

  // A key the table does not hold took its token from the overflow bucket (or from a full
  // bucket forgotten since, which gives nothing back anyway): the overflow bucket gets it.
  BucketStatus refund(std::string_view key, std::uint64_t now_ns) {
    std::uint64_t hash = hash_of(key);
    BucketShard& shard = shard_for(hash);
    {
      std::lock_guard lock(shard.mutex);
      std::uint32_t i = shard.find(hash);
      if (i != kNone) return refund_token(shard.slot(i).bucket, shape_, now_ns);
    }
    std::lock_guard lock(overflow_mutex_);
    return refund_token(overflow_, shape_, now_ns);
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
  std::size_t shard_index(std::uint64_t hash) const noexcept { return (hash >> 32) % shard_count_; }
  BucketShard& shard_for(std::uint64_t hash) const noexcept { return shards_[shard_index(hash)]; }

  BucketShape shape_;
  std::uint64_t seed_;
  std::size_t shard_count_ = 1;
  std::unique_ptr<BucketShard[]> shards_;
  // Shared by every new key that finds its shard full of buckets still holding spent tokens.
  std::mutex overflow_mutex_;
  BucketState overflow_;  // guarded by overflow_mutex_
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
auto MemoryBucketStore::with_table(std::string_view limit_id, const BucketShape& shape, std::uint64_t now_ns,
                                   Fn&& fn) {
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
  if (!it->second) {
    it->second = std::make_unique<LimitTable>(shape, shards_per_limit_, seed_, now_ns);
  } else if (!(it->second->shape() == shape)) {
    // A reload changed the limit: its buckets carry over, converted, so spent tokens stay spent.
    auto table = std::make_unique<LimitTable>(shape, shards_per_limit_, seed_, now_ns);
    table->take_over(*it->second, now_ns);
    it->second = std::move(table);
  }
  return fn(*it->second);
}

TakeResult MemoryBucketStore::take(std::string_view limit_id, std::string_view key, const BucketShape& shape,
                                   std::uint64_t now_ns) {
  return with_table(limit_id, shape, now_ns, [&](LimitTable& table) { return table.take(key, now_ns); });
}

BucketStatus MemoryBucketStore::refund(std::string_view limit_id, std::string_view key, const BucketShape& shape,
                                       std::uint64_t now_ns) {
  return with_table(limit_id, shape, now_ns, [&](LimitTable& table) { return table.refund(key, now_ns); });
}

StoreCall MemoryBucketStore::take(std::string_view limit_id, std::string_view key, const BucketShape& shape,
                                  std::uint64_t now_ns, Completion<TakeResult> done) {
  done(with_table(limit_id, shape, now_ns, [&](LimitTable& table) { return table.take(key, now_ns); }));
  return nullptr;
}

StoreCall MemoryBucketStore::refund(std::string_view limit_id, std::string_view key, const BucketShape& shape,
                                    std::uint64_t now_ns, Completion<BucketStatus> done) {
  done(refund(limit_id, key, shape, now_ns));
  return nullptr;
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
