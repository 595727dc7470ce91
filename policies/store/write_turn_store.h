#pragma once
// Where the ETag policy serializes writes: per resource, one writer at a time holds the turn,
// the others wait in arrival order. Resource state that must never be lost (unlike the ETag
// cache beside it, policies/store/version_store.h): one store lives as long as the process's
// RuntimeState, so writes under an old configuration serialize with writes under every later
// one, whatever route they came through.
//
// Turns are leases with fence numbers, so that a store shared by several processes can recover
// a turn whose holder died (a destructor cannot run in a dead process):
// - a turn is granted for a lease duration, from the moment its holder first sees it granted;
// - each grant carries a fence number larger than that of every earlier grant of the store, so
//   that a store shared by several processes can tell a holder's writes from those of a holder
//   that came after it. Nothing checks fences yet: the VersionStore takes none, and the ETag
//   policy relies on held() before it records (enough in one process, where a holder's record
//   follows its check on one thread; a shared store needs the fence on put());
// - when a holder's lease has expired, the first waiter takes the turn over (with a new fence)
//   the next time a waiter asks (WriteTurn::held). The old holder has then lost it: held() says
//   so, and it must not record what its write established (it forgets the version instead,
//   which is always safe: the next conditional write reads it again).
// The ETag policy leases a turn for three upstream exchanges (the verify GET, the write, the
// re-read), each its connect_timeout twice (a retry on the next server) and its
// response_timeout, plus a second (EtagPolicyConfig::turn_lease): a live holder is done well
// before; only a holder stuck past every timeout of its upstream loses its turn.
//
// acquire() may complete later: see policies/store/store_call.h for the contract.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "policies/policy.h"
#include "policies/store/store_call.h"

namespace arbiter {

// One writer's place in a resource's queue. Destroying it gives the place up: a waiting writer
// leaves the queue, the writer holding the turn hands it to the next one (whose Waker is
// woken). Thread-safe.
class WriteTurn {
 public:
  virtual ~WriteTurn() = default;
  // This writer holds the turn at `now`: it was granted, and has not been taken over since its
  // lease expired. A waiter that asks when the holder's lease has expired makes the first
  // waiter the holder (waking it, when that is another writer).
  virtual bool held(MonotonicTime now) = 0;
  // Once granted: this grant's fence number (> 0, larger than every earlier grant's). 0 before.
  virtual std::uint64_t fence() const = 0;
  // Holding: when the lease ends (MonotonicTime::max() until held() first saw it granted).
  // Waiting: when the lease of the writer holding the turn ends, the moment to ask held()
  // again besides the waker (max() when not known yet).
  virtual MonotonicTime expires_at() const = 0;
};

class WriteTurnStore {
 public:
  virtual ~WriteTurnStore() = default;

  // Joins the resource's write queue with a lease of `lease` (now: the caller's clock). The
  // completion gets the writer's place: holding the turn at once when nobody held it, else
  // waiting (`waker` is woken when the turn is handed to it); or null when max_queue writers
  // already wait. A call cancelled before it completed gives its place up.
  virtual StoreCall acquire(std::string_view resource, std::chrono::nanoseconds lease, MonotonicTime now,
                            std::size_t max_queue, std::shared_ptr<Waker> waker,
                            Completion<std::unique_ptr<WriteTurn>> done) = 0;
  // Resources that have a write queue (someone holds or waits for their turn), as far as this
  // process knows.
  virtual std::size_t queued_resources() const = 0;
};

}  // namespace arbiter
