#pragma once
// Settling a conflict of the feed (issue #16), as a local handler under [server] control_prefix
// (P), scope "resolve":
//
//   POST P/conflicts/{id}/resolve   If-Match: <the resource's current ETag>
//        {"take": "yours"}           the refused write again (its method and body), now against the
//                                    current version
//        {"take": "document", "document": <JSON>}   a PUT of that document
//        {"take": "theirs"}          nothing is written (no If-Match needed): the current version stands
//
// A write is handed on to the resource's route (LocalResponder::pass_on) and goes through its
// whole policy chain (rate limit, lock, the ETag policy's turn and If-Match check) with the
// caller's other fields (Authorization included); the caller gets that write's answer, its status
// and new ETag. A 2xx marks the conflict resolved and publishes `resolved` (who, which choice,
// the new ETag); a stale If-Match is refused 409 by the ETag policy, a new conflict of its own.
// Problems: 404 no such conflict, 410 dropped from the feed, 409 already resolved (by whom,
// when, how), 400 a malformed body or an event that is not a conflict, 428 no If-Match, 409 a
// `yours` whose body the feed did not keep (too large, or evicted: resolve with a document).

#include <cstddef>
#include <memory>

#include "policies/store/conflict_feed.h"
#include "proxy/control/handler_registry.h"

namespace arbiter {

// The largest resolve body read (the document chosen).
inline constexpr std::size_t kMaxResolveBody = 1u << 20;

// Registers POST P/conflicts/{id}/resolve (a Prefix entry on "/conflicts/").
void add_resolve_endpoint(HandlerRegistry& control, std::shared_ptr<ConflictFeed> feed);

}  // namespace arbiter
