#pragma once
// The conflict feed's read endpoints (issue #16), as local handlers over the process's feed
// (ResourceStores::feed) and history store, under [server] control_prefix (P), scope "feed":
//   GET P/conflicts   with Accept: text/event-stream: a Server-Sent Events stream (served by the
//                     worker's FeedSubscribers, proxy/net/feed_subscribers.h): `retry:`, then
//                     each event as `id:`/`event:`/`data:`. With Last-Event-ID (or
//                     ?last_event_id=) it first replays what the ring holds after that id, with
//                     `event: reset` first when the ring no longer reaches it; without, it
//                     starts with the events published from then on (no history).
//                     Without text/event-stream: {"events": [...], "next": N, "reset": true?}
//                     for polling, ?since=<id> (default 0: the oldest held) &limit=<n> (default
//                     100, at most 1000); `next` is the since of the next poll.
//                     Both take the filters ?resource= (exact, or a prefix ending in '*'),
//                     ?route= and ?type= (a comma list; an unknown type is 400).
//   GET P/conflicts/{id}  the record: the event (feed_json.h) plus "yours" (the refused write's
//                     body, when kept), "current" and "base" (the versions, with their bodies,
//                     when the history has them) and "diff" (RFC 6902 patches
//                     base_to_current and base_to_yours, when those are JSON). 404 never
//                     published, 410 dropped from the ring. "base" is base_etag's version (a
//                     merge's), else your_etag's: the version a refused write was based on. A path below an id
//                     (P/conflicts/5/x) is 404 for GET: the prefix entry's POST is the resolve
//                     endpoint's, registered elsewhere.
// A body is shown as JSON when its Content-Type is JSON (application/json, or +json) and it
// parses; else as a string when it is UTF-8; else base64, with "encoding": "base64".

#include <memory>

#include "policies/store/conflict_feed.h"
#include "policies/store/history_store.h"
#include "proxy/control/handler_registry.h"
#include "proxy/net/feed_subscribers.h"

namespace arbiter {

// `subscribers` is the worker's, and outlives the registry's handlers.
void add_conflict_endpoints(HandlerRegistry& control, std::shared_ptr<ConflictFeed> feed,
                            std::shared_ptr<HistoryStore> history, FeedSubscribers& subscribers);

}  // namespace arbiter
