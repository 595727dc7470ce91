#pragma once
// The token buckets of one Arbiter process, in memory, shared by every worker thread.
//
// Threading: every member function is thread-safe. Each limit id has its own table, split
// into shards that each have a mutex, so that workers taking tokens for different keys rarely
// wait for one another. The map from limit id to table changes only when a limit is first seen
// or its shape changes; it is guarded by kLockStripes reader-writer locks, a reader taking the
// one its thread was given and a writer all of them, so that the workers' reads, one a request,
// do not all write to one lock's cache line.
//
// Bounds: each limit keeps at most shape.max_keys() buckets (the config's per-limit max_keys),
// so a flood of new client addresses on one limit never pushes another limit's buckets out.
// When a shard is full, a new key takes the place of a bucket that has refilled to its burst
// (forgetting it loses nothing: a new bucket starts full). A bucket that is not full is never
// forgotten, since its key would come back to a fresh burst: a client rotating keys could
// otherwise reset another client's spent bucket. When none of the kEvictionScan least recently
// used buckets of the shard is full, the new key gets no bucket of its own and takes from the
// limit's one overflow bucket (same rate and burst), shared by every key in that situation, so
// a flood of new keys is held to one bucket's worth together (TakeResult::overflow tells the
// caller). Within one limit every bucket that has sat idle for the time an empty bucket takes
// to fill is full, and those are the least recently used, so the first bucket looked at is full
// whenever such a bucket exists; a more recently used bucket that happens to have refilled is
// found only among the kEvictionScan least recently used (missing it sends a new key to the
// overflow bucket, never admits more).
//
// A limit whose shape changes (a reload gave it a new rate, period, burst or max_keys under the
// same id) keeps its buckets: the first call with the new shape converts the limit's table
// under the exclusive lock, each bucket brought up to that call's now_ns under the old shape and
// its level carried over into the new units, clamped to the new burst (reshape_bucket()), under
// the same keys and recency. Spent tokens stay spent: a reload is never a way around a limit.
// When the new max_keys is smaller, the buckets left out are full ones first, then the least
// recently used. The table is rebuilt whole, O(buckets held), once a change; while old and new
// policies overlap in a reload, each change of shape (also back) converts again, and a
// conversion never adds tokens, so the back-and-forth costs time but admits nothing extra. The
// hot path is unchanged: a call with the table's shape only compares it.
//
// Memory: a bucket is a 32-byte slot (the key's 64-bit hash, its level, its last update and two
// 32-bit links of the recency list) in chunks of kChunkSlots, plus 5.3 to 10.7 bytes of open-
// addressing index: at most 43 bytes (approximate_bytes_per_entry()). Keys are hashed with XXH3
// seeded at random per store, so that a client cannot choose keys that collide on purpose; two
// keys whose 64-bit hashes collide by chance would share a bucket.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "policies/store/bucket_store.h"

namespace arbiter {

class MemoryBucketStore final : public BucketStore {
 public:
  // shards_per_limit: 0 chooses one shard per kKeysPerShard of a limit's max_keys, between 1
  // and kMaxShards, so that a small limit is a single exact LRU; never more than max_keys.
  explicit MemoryBucketStore(std::size_t shards_per_limit = 0);
  ~MemoryBucketStore() override;
  MemoryBucketStore(const MemoryBucketStore&) = delete;
  MemoryBucketStore& operator=(const MemoryBucketStore&) = delete;

  // Complete at once, with the results of the synchronous calls below.
  StoreCall take(std::string_view limit_id, std::string_view key, const BucketShape& shape, std::uint64_t now_ns,
                 Completion<TakeResult> done) override;
  StoreCall refund(std::string_view limit_id, std::string_view key, const BucketShape& shape, std::uint64_t now_ns,
                   Completion<BucketStatus> done) override;

  // The same calls, answered directly (for tests, benchmarks and stores built on this one).
  TakeResult take(std::string_view limit_id, std::string_view key, const BucketShape& shape, std::uint64_t now_ns);
  // A bucket the store no longer holds is full already: nothing to give back.
  BucketStatus refund(std::string_view limit_id, std::string_view key, const BucketShape& shape,
                      std::uint64_t now_ns);
  std::size_t size() const override;
  std::size_t size(std::string_view limit_id) const override;
  std::size_t limit_count() const;

  // At most what one bucket costs on the heap once a limit's table holds max_keys of them: its
  // slot, and its share of the index at the lowest load the index grows down to.
  static std::size_t approximate_bytes_per_entry() noexcept;

  static constexpr std::size_t kMaxShards = 32;
  static constexpr std::size_t kKeysPerShard = 256;
  static constexpr std::size_t kChunkSlots = 1024;
  static constexpr std::size_t kEvictionScan = 16;
  static constexpr std::size_t kLockStripes = 16;

 private:
  class LimitTable;
  // Finds a table by a string_view without making a string.
  struct NameHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view name) const noexcept { return std::hash<std::string_view>{}(name); }
  };

  // Runs fn(table) with the limit's table for this shape, making it if need be, or converting
  // the limit's table of another shape at now_ns.
  template <typename Fn>
  auto with_table(std::string_view limit_id, const BucketShape& shape, std::uint64_t now_ns, Fn&& fn);

  // alignas: each stripe on its own cache line.
  struct alignas(64) LockStripe {
    std::shared_mutex mutex;
  };
  // The stripe this thread reads under.
  std::shared_mutex& reader_lock() const noexcept;

  std::size_t shards_per_limit_;
  std::uint64_t seed_;
  mutable std::unique_ptr<LockStripe[]> stripes_;  // a writer locks them all, in order
  std::unordered_map<std::string, std::unique_ptr<LimitTable>, NameHash, std::equal_to<>> tables_;
};

}  // namespace arbiter
