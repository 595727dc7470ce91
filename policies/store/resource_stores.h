#pragma once
// The resource state of one Arbiter process that more than one policy kind, or Arbiter's own
// endpoints, use: made with the RuntimeState and kept for its life, so reloads keep it. Each
// store is keyed by resource identity (policies/resource_key.h), shared by every route and
// worker, and behind its interface, so that a store shared by several processes can serve it.
//
// Ownership: the RuntimeState owns this object; kinds' states (PolicyKind::make_state) keep a
// reference, policies and endpoints keep the stores they use by shared_ptr. Used by one thread at
// a time (the reload lock), except through the stores, which are thread-safe.

#include <memory>

#include "policies/store/conflict_feed.h"
#include "policies/store/history_store.h"
#include "policies/store/lock_store.h"
#include "policies/store/version_store.h"
#include "policies/store/write_turn_store.h"

namespace arbiter {

struct ResourceStores {
  ResourceStores();
  ~ResourceStores();

  std::shared_ptr<WriteTurnStore> write_turns;  // the ETag policy's write queues; never replaced
  std::shared_ptr<ConflictFeed> feed;           // the conflict feed's events ([control]); never replaced
  std::shared_ptr<LockStore> locks;             // the lock leases; never replaced
  std::shared_ptr<HistoryStore> history;        // the versions [route.history] records; never replaced
  // The ETag table: a lossy cache that the ETag kind sizes for its routes and replaces when that
  // size changes; null while no route has an ETag policy. Kinds after the ETag kind in the
  // registry see the table of the Runtime being built.
  std::shared_ptr<VersionStore> versions;
};

}  // namespace arbiter
