#pragma once
// The VersionStore of one Arbiter process: an in-memory ETag table, shared by every worker
// thread, and the write queues (policies/store/memory_write_queues.h), which it may share with the
// tables that come after it (a reload that changes max_entries replaces the table, never the
// queues).
//
// Thread-safety: every member may be called from any thread. The resources are spread over
// shards by the hash of their key, each shard with its own mutex, so workers writing to
// different resources rarely wait for one another.
//
// Memory: the table is bounded by max_entries, each shard a least-recently-used list of its
// share. An entry is keyed by the seeded 128-bit XXH3 of the resource string (not the string;
// policies/store/resource_hash.h), and a tag in Arbiter's minted form ('"' + 32 lowercase hex + '"')
// or of up to 16 characters is kept inline, so an entry costs one allocation: 91 bytes
// measured with a million entries on x86-64 glibc 2.36, bucket array included
// (approximate_bytes_per_entry() computes it; the memory figure in bench/ is the measured one).
// Two resources whose keys collide in 128 bits would share an entry; that is left to chance.
//
// Lifetime: the write queues must outlive every WriteTurn they handed out (the store keeps them
// by shared_ptr, and the ETag policy keeps the store for as long as any exchange of it runs).

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "policies/store/version_store.h"

namespace arbiter {

class MemoryWriteQueues;

class MemoryVersionStore final : public VersionStore {
 public:
  // max_entries: the most table entries kept (0 is taken as 1). shard_count: 0 chooses one
  // shard per kEntriesPerShard entries, between 1 and kMaxShards, so that a small table is a
  // single exact LRU; never more shards than entries. write_queues: shared with other stores
  // (null: a set of its own).
  explicit MemoryVersionStore(std::size_t max_entries, std::size_t shard_count = 0,
                              std::shared_ptr<MemoryWriteQueues> write_queues = nullptr);
  ~MemoryVersionStore() override;
  MemoryVersionStore(const MemoryVersionStore&) = delete;
  MemoryVersionStore& operator=(const MemoryVersionStore&) = delete;

  std::optional<std::string> get(std::string_view resource) override;
  std::uint64_t sequence(std::string_view resource) override;
  void put(std::string_view resource, std::string_view etag) override;
  // Does not change the sequence of an existing entry: a read only confirms what the last
  // write or forget left. On a missing entry it creates one with a new sequence.
  // Known gap: if an entry put() by a write is evicted before a read that began earlier (and
  // saw no entry, sequence 0) calls learn(), that read's older tag is stored. It takes
  // max_entries/shard_count other resources touched in between; verify = "upstream" is immune.
  bool learn(std::string_view resource, std::string_view etag, std::uint64_t seen_sequence) override;
  // Keeps a tombstone (unknown tag, new sequence) rather than dropping the entry, so that a
  // read that began before the forget cannot learn() what it saw; get() then returns nullopt.
  void forget(std::string_view resource) override;
  std::size_t size() const override;  // table entries, tombstones included

  // Joins the write queues' queue for the resource (see MemoryWriteQueues::queue_write).
  std::unique_ptr<WriteTurn> queue_write(std::string_view resource, std::shared_ptr<Waker> waker,
                                         std::size_t max_queue) override;

  std::size_t max_entries() const noexcept { return max_entries_; }
  std::size_t shard_count() const noexcept { return shard_count_; }
  // Resources that have a write queue (someone holds or waits for their turn).
  std::size_t queued_resources() const;

  // What one table entry costs on the heap with this standard library: its hash node rounded
  // up to the allocator's chunk size, plus its share of the bucket array. Tags that are neither
  // minted nor up to 16 characters add their text.
  static std::size_t approximate_bytes_per_entry() noexcept;

  static constexpr std::size_t kMaxShards = 32;
  static constexpr std::size_t kEntriesPerShard = 256;

 private:
  struct Shard;

  Shard& shard_for(std::uint64_t key_high) noexcept;
  std::uint64_t next_sequence() noexcept { return next_sequence_.fetch_add(1, std::memory_order_relaxed); }

  std::size_t max_entries_;
  std::size_t shard_count_;
  std::uint64_t seed_;  // of resource_hash
  std::unique_ptr<Shard[]> shards_;
  std::shared_ptr<MemoryWriteQueues> write_queues_;
  // One counter for every shard, so that no two entries ever carry the same sequence.
  std::atomic<std::uint64_t> next_sequence_{1};
};

}  // namespace arbiter
