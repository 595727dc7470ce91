#pragma once
// Where the ETag policy keeps what it knows about resources, shared by every worker:
// resource -> current ETag, and the per-resource queue that serializes writes.
// An interface, so that a later store (Redis) can share both among several Arbiter instances.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "policies/policy.h"

namespace arbiter {

// One writer's place in a resource's write queue. Destroying it gives the place up: a
// waiting writer leaves the queue, the writer holding the turn hands it to the next one
// (whose Waker is woken). Thread-safe.
class WriteTurn {
 public:
  virtual ~WriteTurn() = default;
  // This writer may write now (it holds the resource's turn).
  virtual bool granted() const = 0;
};

class VersionStore {
 public:
  virtual ~VersionStore() = default;

  // The resource's current ETag as last learned; nullopt when unknown (never seen, evicted,
  // or forgotten after a write whose outcome is unknown).
  virtual std::optional<std::string> get(std::string_view resource) = 0;
  // A number that changes whenever put() or forget() changes the resource's entry; 0 when it
  // has none. Lets a read record what it saw without racing a write (see learn()).
  virtual std::uint64_t sequence(std::string_view resource) = 0;
  // What a write (holding the resource's turn) established.
  virtual void put(std::string_view resource, std::string_view etag) = 0;
  // What a read saw: stored only if no put()/forget() happened since sequence() returned
  // seen_sequence, so a slow read never overwrites what a later write established.
  virtual bool learn(std::string_view resource, std::string_view etag, std::uint64_t seen_sequence) = 0;
  virtual void forget(std::string_view resource) = 0;
  virtual std::size_t size() const = 0;

  // Joins the resource's write queue. The turn is granted at once when nobody holds it;
  // otherwise `waker` is woken when it is. nullptr: max_queue writers already wait.
  virtual std::unique_ptr<WriteTurn> queue_write(std::string_view resource, std::shared_ptr<Waker> waker,
                                                 std::size_t max_queue) = 0;
};

}  // namespace arbiter
