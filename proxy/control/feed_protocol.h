#pragma once
// What the conflict feed's endpoints (proxy/control/conflict_endpoints.h) read from a request and
// write to a Server-Sent Events stream: content negotiation, the filter and paging parameters,
// and the SSE framing (WHATWG HTML, "Server-sent events": `id:`, `event:`, `data:`, `retry:`,
// comment lines, an event ended by a blank line). No I/O: the framing is tested without sockets.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "policies/store/conflict_feed.h"
#include "proxy/http/headers.h"
#include "proxy/http/problem.h"

namespace arbiter {

// The event types a ?type= filter may name (the ones conflict_feed.h declares).
inline constexpr std::string_view kFeedEventTypes[] = {kFeedConflict,    kFeedMerged,      kFeedLocked,
                                                       kFeedLockExpired, kFeedLockBroken,  kFeedResolved};

// Polling (?limit=): the page size when none is asked for, and the largest one answered (a larger
// limit is answered with this many).
inline constexpr std::size_t kFeedPollDefaultLimit = 100;
inline constexpr std::size_t kFeedPollMaxLimit = 1000;

// True when one of the request's Accept fields lists text/event-stream (case-insensitive, with any
// parameters) with a q above 0 (RFC 9110 section 12.5.1). Wildcards (*/*, text/*) do not ask for
// a stream: a client that wants one names it, as EventSource does.
bool accepts_event_stream(const HeaderList& headers);

// A parameter that could not be read: the 400 problem to answer.
struct FeedParamError {
  Problem problem;
};

// ?resource= (percent-decoded: an exact resource key, or a prefix ending in '*'), ?route= and
// ?type= (a comma list of kFeedEventTypes; empty elements ignored). An unknown type is a 400
// problem whose `known` member lists the types.
struct FeedFilterParse {
  FeedFilter filter;
  std::optional<FeedParamError> error;
};
FeedFilterParse parse_feed_filter(std::string_view query);

// The polling form's ?since=<id> (default 0: from the oldest event held) and ?limit=<n> (default
// kFeedPollDefaultLimit, 1 or more, at most kFeedPollMaxLimit: more is answered with the maximum).
// Junk, a negative number or limit=0 is a 400 problem.
struct FeedPollParams {
  std::uint64_t since = 0;
  std::size_t limit = kFeedPollDefaultLimit;
  std::optional<FeedParamError> error;
};
FeedPollParams parse_feed_poll(std::string_view query);

// Where a stream resumes: the Last-Event-ID field, else ?last_event_id= (for EventSource clients
// that cannot set fields, on their first connection); nullopt when neither is present (the stream
// starts with new events). A value that is not a decimal id is a 400 problem.
struct FeedResumeParse {
  std::optional<std::uint64_t> after;
  std::optional<FeedParamError> error;
};
FeedResumeParse parse_feed_resume(const HeaderList& headers, std::string_view query);

// ---- SSE framing: each function returns whole lines, a frame ending in a blank line

// "retry: <ms>\n\n": how long an EventSource waits before reconnecting.
std::string sse_retry_frame(std::uint64_t milliseconds);
// "id: N\nevent: <type>\ndata: <feed_event_json on one line>\n\n". Bytes of the event's texts that
// are not UTF-8 are written as U+FFFD.
std::string sse_event_frame(const FeedEvent& event);
// "id: <resume_from>\nevent: reset\ndata: {...}\n\n": events after `asked` are no longer held (or
// `asked` is above the newest id: a restarted process), and the replay that follows starts after
// `resume_from`. The data is {"missed": true, "last_event_id": asked, "resume_from": resume_from,
// "detail": "..."}.
std::string sse_reset_frame(std::uint64_t asked, std::uint64_t resume_from);
// ": heartbeat\n\n": a comment, which clients ignore and intermediaries see as traffic.
std::string_view sse_heartbeat_frame();

}  // namespace arbiter
