#pragma once
// The HistoryStore of one Arbiter process, in memory (policies/store/history_store.h is the
// contract). Every call completes at once: the interface's calls answer through the direct ones
// below.
//
// Thread-safety: every member may be called from any thread. One mutex guards all resources,
// since a route's bounds (max_bytes, max_resources) evict across its resources, wherever they
// would hash. It is held for O(1) work per call plus at most O(keep) for a lookup (and the copy
// of a body answered, or of one version's block when a write annotates it); a new version's block
// (its body copied) is built and evicted blocks are freed outside it. A second,
// inner mutex guards the interned content types (taken inside the first, never the reverse).
//
// "Bytes", as counted against max_bytes and shown in HistoryStats::bytes: per version, the body
// kept (0 when recorded without it) plus the text lengths of its ETag, Content-Type, method,
// request id and client key. Allocator overhead is not counted: `build/table_memory_bench
// history` measures it, 83.6 heap bytes a version beyond its body (10,000 resources x 20 PUT
// versions, x86-64 glibc 2.36; the bound is 96).
//
// Memory: one allocation per version: a 32-byte header (record order, time in milliseconds,
// size, the interned Content-Type's index, the method's code, flags) followed by the strings
// back to back, each as a LEB128 length and its text, lowercase hex (a request id, an ETag
// '"' + hex + '"') packed two digits a byte, then the body. The versions of a resource are a
// singly linked list, oldest to newest; retained numbers are always a contiguous range, so a
// version's number is not stored.
//
// Choices where the contract is silent:
// - Times are kept in milliseconds (rounded down); at_time compares in milliseconds.
// - A version is charged to the route that owns its resource (the route that recorded the
//   resource's first version), and that route's latest limits bound it; a call's limits become
//   the calling route's and decide whether this call's body is kept.
// - A body is also recorded without its bytes when the version with it would exceed max_bytes
//   alone. The version just recorded is never evicted by max_bytes, so a route can exceed
//   max_bytes by that version's metadata.
// - A resource whose versions max_bytes dropped all is kept (it knows its numbers) and still
//   counts against max_resources, until evicted whole.
// - Limits that shrink apply to the whole route at that call (every resource trimmed to keep,
//   then max_resources, then max_bytes). keep and max_resources of 0 are taken as 1.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string_view>

#include "policies/store/history_store.h"

namespace arbiter {

class MemoryHistoryStore final : public HistoryStore {
 public:
  MemoryHistoryStore();
  ~MemoryHistoryStore() override;
  MemoryHistoryStore(const MemoryHistoryStore&) = delete;
  MemoryHistoryStore& operator=(const MemoryHistoryStore&) = delete;

  StoreCall record(const VersionInput& version, const HistoryLimits& limits, Completion<RecordOutcome> done) override {
    done(record(version, limits));
    return nullptr;
  }
  StoreCall list(std::string_view resource, Completion<HistoryListing> done) override {
    done(list(resource));
    return nullptr;
  }
  StoreCall version(std::string_view resource, std::uint64_t number, Completion<VersionLookup> done) override {
    done(version(resource, number));
    return nullptr;
  }
  StoreCall find_tag(std::string_view resource, std::string_view etag, Completion<VersionLookup> done) override {
    done(find_tag(resource, etag));
    return nullptr;
  }
  StoreCall at_time(std::string_view resource, WallTime time, Completion<VersionLookup> done) override {
    done(at_time(resource, time));
    return nullptr;
  }
  HistoryStats stats(std::string_view route) const override;

  // The same calls, answered directly (for tests, benchmarks and stores built on this one).
  RecordOutcome record(const VersionInput& version, const HistoryLimits& limits);
  HistoryListing list(std::string_view resource) const;
  VersionLookup version(std::string_view resource, std::uint64_t number) const;
  VersionLookup find_tag(std::string_view resource, std::string_view etag) const;
  VersionLookup at_time(std::string_view resource, WallTime time) const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace arbiter
