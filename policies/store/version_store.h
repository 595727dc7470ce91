#pragma once
// Where the ETag policy keeps what it knows of resources' current versions, shared by every
// worker: resource -> current ETag. A cache: bounded, lossy (an entry may be evicted or
// forgotten, and the policy then learns the version again from the backend), and replaceable
// by a reload. The write turns that serialize writes are resource state that must never be
// lost, and live apart, in the WriteTurnStore (policies/store/write_turn_store.h).
// An interface, so that a later store (Redis) can share the table among several Arbiter
// instances.
//
// Every call may complete later: see policies/store/store_call.h for the contract. The strings
// passed are read before a call returns.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "policies/store/store_call.h"

namespace arbiter {

class VersionStore {
 public:
  virtual ~VersionStore() = default;

  // The resource's current ETag as last learned; nullopt when unknown (never seen, evicted,
  // or forgotten after a write whose outcome is unknown).
  virtual StoreCall get(std::string_view resource, Completion<std::optional<std::string>> done) = 0;
  // A number that changes whenever put() or forget() changes the resource's entry; 0 when it
  // has none. Lets a read record what it saw without racing a write (see learn()).
  virtual StoreCall sequence(std::string_view resource, Completion<std::uint64_t> done) = 0;
  // What a write (holding the resource's turn) established.
  virtual StoreCall put(std::string_view resource, std::string_view etag, Completion<Done> done) = 0;
  // What a read saw: stored only if no put()/forget() happened since sequence() returned
  // seen_sequence, so a slow read never overwrites what a later write established. Completes
  // with whether it was stored.
  virtual StoreCall learn(std::string_view resource, std::string_view etag, std::uint64_t seen_sequence,
                          Completion<bool> done) = 0;
  virtual StoreCall forget(std::string_view resource, Completion<Done> done) = 0;
  // Entries held, as far as this process knows (a gauge for /metrics; never waits).
  virtual std::size_t size() const = 0;
};

}  // namespace arbiter
