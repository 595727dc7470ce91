#pragma once
// The conflict feed's events (policies/store/conflict_feed.h) as JSON: one schema for the SSE
// stream's `data:`, the polling form, the conflict records and the webhooks' bodies.
//
//   {"id": 12, "type": "conflict", "time": "2026-12-01T18:02:37.123Z", "route": "orders",
//    "resource": "/orders/1", "request_id": "…", "client": "127.0.0.1", "method": "PUT",
//    "your_etag": "\"a\"", "current_etag": "\"b\"", "base_etag": "\"a\"",
//    "conflicts": ["/status"], "body": "kept", "your_body_size": 27, ...details,
//    "resolved": {"by": "ops", "choice": "yours", "etag": "\"c\"", "time": "…", "event_id": 13}}
//
// Optional members are left out when the event has none: your_etag, current_etag (null when the
// resource does not exist, on a refused write), base_etag, conflicts, body ("kept", "too-large",
// "evicted"; absent: no body), your_body_size, resolved. The members of `details` (a JSON object
// in text) are merged in at the top level; they never replace the members above.

#include <string>

#include <nlohmann/json.hpp>

#include "policies/store/conflict_feed.h"

namespace arbiter {

// RFC 3339 in UTC, to the millisecond: "2026-12-01T18:02:37.123Z".
std::string rfc3339_utc_ms(WallTime at);

// Without the body's bytes (a conflict record adds them itself).
nlohmann::json feed_event_json(const FeedEvent& event);

// A conflict's resolution, as feed_event_json writes its `resolved` member:
// {"by", "choice", "time", "event_id", "etag" (null when nothing was written)}.
nlohmann::json feed_resolution_json(const FeedResolution& resolution);

}  // namespace arbiter
