#pragma once
// The per-resource write queues of one Arbiter process: resource state that must never be
// lost, kept apart from the ETag table beside it (a bounded, lossy cache that a reload may
// replace). One instance lives as long as the process's RuntimeState, so a write holding a
// turn under an old Runtime still serializes with writes under every later one, whatever
// route they came through.
//
// Thread-safety: every member may be called from any thread; resources are spread over
// shards by the hash of their key, each with its own mutex. Memory: a resource has a queue
// only while someone holds or waits for its turn.
//
// Lifetime: must outlive every WriteTurn it handed out (holders keep it by shared_ptr).

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "policies/store/version_store.h"

namespace arbiter {

class MemoryWriteQueues {
 public:
  MemoryWriteQueues();
  ~MemoryWriteQueues();
  MemoryWriteQueues(const MemoryWriteQueues&) = delete;
  MemoryWriteQueues& operator=(const MemoryWriteQueues&) = delete;

  // As VersionStore::queue_write: the head of the queue holds the turn; granting the next
  // writer wakes its waker (outside the shard's lock). nullptr: max_queue writers already wait.
  std::unique_ptr<WriteTurn> queue_write(std::string_view resource, std::shared_ptr<Waker> waker,
                                         std::size_t max_queue);
  // Resources that have a write queue (someone holds or waits for their turn).
  std::size_t queued_resources() const;

  static constexpr std::size_t kShards = 32;

 private:
  struct Shard;
  class Turn;
  std::uint64_t seed_;  // of resource_hash
  std::unique_ptr<Shard[]> shards_;
};

}  // namespace arbiter
