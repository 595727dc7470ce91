#pragma once
// The VersionStore of one Arbiter process: an in-memory ETag table, shared by every worker
// thread. Every call completes at once (the interface's calls answer through the synchronous
// ones below). The write turns are not here: they are resource state that must outlive the
// table (a reload that changes max_entries replaces the table), kept in a WriteTurnStore
// (policies/store/memory_write_queues.h).
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

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "policies/store/version_store.h"

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

  StoreCall get(std::string_view resource, Completion<std::optional<std::string>> done) override {
    done(get(resource));
    return nullptr;
  }
  StoreCall sequence(std::string_view resource, Completion<std::uint64_t> done) override {
    done(sequence(resource));
    return nullptr;
  }
  StoreCall put(std::string_view resource, std::string_view etag, Completion<Done> done) override {
    put(resource, etag);
    done(Done{});
    return nullptr;
  }
  StoreCall learn(std::string_view resource, std::string_view etag, std::uint64_t seen_sequence,
                  Completion<bool> done) override {
    done(learn(resource, etag, seen_sequence));
    return nullptr;
  }
  StoreCall forget(std::string_view resource, Completion<Done> done) override {
    forget(resource);
    done(Done{});
    return nullptr;
  }
  std::size_t size() const override;  // table entries, tombstones included

  // The same calls, answered directly (for tests, benchmarks and stores built on this one).
  std::optional<std::string> get(std::string_view resource);
  std::uint64_t sequence(std::string_view resource);
  void put(std::string_view resource, std::string_view etag);
  // Does not change the sequence of an existing entry: a read only confirms what the last
  // write or forget left. On a missing entry it creates one with a new sequence.
  // Known gap: if an entry put() by a write is evicted before a read that began earlier (and
  // saw no entry, sequence 0) calls learn(), that read's older tag is stored. It takes
  // max_entries/shard_count other resources touched in between; verify = "upstream" is immune.
  bool learn(std::string_view resource, std::string_view etag, std::uint64_t seen_sequence);
  // Keeps a tombstone (unknown tag, new sequence) rather than dropping the entry, so that a
  // read that began before the forget cannot learn() what it saw; get() then returns nullopt.
  void forget(std::string_view resource);

  std::size_t max_entries() const noexcept { return max_entries_; }
  std::size_t shard_count() const noexcept { return shard_count_; }

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
  // One counter for every shard, so that no two entries ever carry the same sequence.
  std::atomic<std::uint64_t> next_sequence_{1};
};

}  // namespace arbiter
