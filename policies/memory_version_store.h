#pragma once
// The VersionStore of one Arbiter process: an in-memory ETag table and write queues, shared
// by every worker thread.
//
// Thread-safety: every member may be called from any thread. The resources are spread over
// shards by the hash of their key, each shard with its own mutex, so workers writing to
// different resources rarely wait for one another.
//
// Memory: the table is bounded by max_entries, each shard a least-recently-used list of its
// share. An entry is keyed by the 128-bit XXH3 of the resource string (not the string), and a
// tag in Arbiter's minted form ('"' + 32 lowercase hex + '"') or of up to 16 characters is kept
// inline, so an entry costs one allocation: 91 bytes measured with a million entries on x86-64
// glibc 2.36, bucket array included (approximate_bytes_per_entry() computes it; the memory
// figure in bench/ is the measured one). Two resources whose keys collide in 128 bits would
// share an entry; that is left to chance.
//
// Lifetime: the store must outlive every WriteTurn it handed out (the ETag policy keeps it by
// shared_ptr for as long as any exchange of its route runs).

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "policies/version_store.h"

namespace arbiter {

class MemoryVersionStore final : public VersionStore {
 public:
  // max_entries: the most table entries kept (0 is taken as 1). shard_count: 0 chooses one
  // shard per kEntriesPerShard entries, between 1 and kMaxShards, so that a small table is a
  // single exact LRU; never more shards than entries.
  explicit MemoryVersionStore(std::size_t max_entries, std::size_t shard_count = 0);
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

  // The head of the queue holds the turn; granting the next writer wakes its waker (outside
  // the shard's lock). A resource's queue is removed once it is empty.
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
  class Turn;

  Shard& shard_for(std::uint64_t key_high) noexcept;
  // Adds count(shard) over every shard, each under its lock.
  template <typename Count>
  std::size_t sum_over_shards(Count count) const;
  std::uint64_t next_sequence() noexcept { return next_sequence_.fetch_add(1, std::memory_order_relaxed); }

  std::size_t max_entries_;
  std::size_t shard_count_;
  std::unique_ptr<Shard[]> shards_;
  // One counter for every shard, so that no two entries ever carry the same sequence.
  std::atomic<std::uint64_t> next_sequence_{1};
};

}  // namespace arbiter
