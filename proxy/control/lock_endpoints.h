#pragma once
// The lock leases' endpoints (policies/lock/lock_policy.h), as local handlers over the process's
// lock store (ResourceStores::locks). None reveals a lock's token.
//
// Under [server] control_prefix (P), for clients:
//   GET P/locks?resource=/items/1   the lock held on that resource (owner, expires, seconds_left,
//                                   fence, waiters, route) or 404 problem; no resource: 400
// On the admin listener, for operators:
//   GET /locks?after=R&limit=N      held locks in resource order after R, N a page (default 100,
//                                   at most 1000): {"locks": [...], "next": "<last resource>"|null}
//   DELETE /locks?resource=R        breaks the lock on R (its holder's next write gets 412): 200
//                                   with the lock that was broken, or 404 problem; logged, and
//                                   published to the conflict feed as `lock-broken`
// `resource` and `after` are percent-decoded resource keys: the request path, or the key the
// route's `resource` template makes.

#include <memory>

#include "policies/store/conflict_feed.h"
#include "policies/store/lock_store.h"
#include "proxy/control/handler_registry.h"

namespace arbiter {

void add_lock_endpoints(HandlerRegistry& control, HandlerRegistry& admin, std::shared_ptr<LockStore> locks,
                        std::shared_ptr<ConflictFeed> feed);

// Publishes the end of `lock` as a feed event of `type` (kFeedLockBroken, kFeedLockExpired): its
// route, resource, client key, owner, fence and lease; `by` who ended it ("" for an expiry).
void publish_lock_ended(ConflictFeed& feed, std::string_view type, const LockView& lock, std::string_view by);

}  // namespace arbiter
