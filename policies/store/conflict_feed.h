#pragma once
// Where the conflict feed's events live (issue #16): one bounded ring of events for the whole
// process (later: for every process sharing a Redis), numbered by the store, read by the SSE and
// polling endpoints, the conflict records and the webhooks. Like the other stores it belongs to
// the process's RuntimeState, so it survives reloads.
//
// Every call that takes a Completion may complete later: see policies/store/store_call.h for the
// contract. The events and views passed are read (or moved from) before a call returns.
//
// Ids: a store numbers events 1, 2, 3, ... in the order it publishes them; an id is never reused
// and the events it holds always carry a contiguous range of ids (the oldest go first), so an id
// below that range was dropped (410) and one above the newest never existed (404).

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "policies/store/store_call.h"

namespace arbiter {

using WallTime = std::chrono::system_clock::time_point;  // as in policies/store/history_store.h

// The event types the issue names (FeedEvent::type is a string: later issues add their own).
inline constexpr std::string_view kFeedConflict = "conflict";          // a 409/412 for a stale precondition
inline constexpr std::string_view kFeedMerged = "merged";              // a write merged instead of refused
inline constexpr std::string_view kFeedLocked = "locked";              // a 423
inline constexpr std::string_view kFeedLockExpired = "lock-expired";
inline constexpr std::string_view kFeedLockBroken = "lock-broken";
inline constexpr std::string_view kFeedResolved = "resolved";          // published by ConflictFeed::resolve

// What became of a refused write's body in the event.
enum class FeedBody : std::uint8_t {
  None,      // the event carries no body (not a refused write, or the write had none)
  Kept,      // your_body holds it
  TooLarge,  // over FeedLimits::keep_body_bytes: never kept (your_body_size still says how large)
  Evicted,   // kept once, then dropped by FeedLimits::max_body_bytes to make room for newer bodies
};

// How a conflict was settled (POST .../conflicts/{id}/resolve).
struct FeedResolution {
  std::string by;                       // who: the token's name, or the client key
  std::string choice;                   // "yours", "theirs" or "document"
  std::optional<std::string> new_etag;  // the resolving write's ETag; nullopt when nothing was written
  WallTime time{};
  std::uint64_t event_id = 0;           // the `resolved` event published for it (set by the store)
};

struct FeedEvent {
  std::uint64_t id = 0;  // set by the store on publish; ignored in what is published
  std::string type;      // kFeedConflict, ...
  WallTime time{};
  std::string route;
  std::string resource;
  std::string request_id;
  std::string client;    // the client key
  std::string method;
  std::optional<std::string> your_etag;     // the precondition as sent
  std::optional<std::string> current_etag;  // nullopt: the resource does not exist (or not known)
  std::optional<std::string> base_etag;     // a merge's base
  std::vector<std::string> conflicts;       // JSON Pointers: a merge's changes, or the overlap that refused it
  std::string details;                      // "" or a small JSON object (text) of type-specific fields
  // A refused write's body. On publish: your_body holds the bytes the caller has, and
  // your_body_size the body's whole length (0: your_body.size()); the store keeps the bytes when
  // they are the whole body and fit the limits, and sets `body`.
  std::string your_body;
  std::string your_content_type;
  std::size_t your_body_size = 0;
  FeedBody body = FeedBody::None;           // set by the store
  std::optional<FeedResolution> resolved;   // set by the store (conflict events only)
};

struct FeedLimits {
  std::size_t capacity = 10000;             // events held ([control] feed_buffer; >= 1)
  std::size_t keep_body_bytes = 64u << 10;  // larger bodies are never kept ([control] keep_body_bytes)
  std::size_t max_body_bytes = 64u << 20;   // all kept bodies together ([control] keep_bodies_total); the oldest go first
  bool operator==(const FeedLimits&) const = default;
};

// Which events a reader wants. Every part that is set must match.
struct FeedFilter {
  std::string resource;            // "": any; "/a/b": exactly; "/a/*": every resource starting "/a/"
  std::string route;               // "": any; else exactly
  std::vector<std::string> types;  // empty: any; else one of them
  bool matches(const FeedEvent& event) const { return matches(event.type, event.route, event.resource); }
  bool matches(std::string_view type, std::string_view route, std::string_view resource) const;
};

// What read() answers.
struct FeedPage {
  std::vector<FeedEvent> events;  // matching events after the asked id, oldest first, without bodies
  std::uint64_t next = 0;         // the after_id for the next read: the last event examined
  bool reset = false;             // the asked id is not in what the ring holds: events were missed
  std::uint64_t last_id = 0;      // the newest id published when read (0: none yet)
};

enum class FeedFind : std::uint8_t {
  Found,
  Dropped,  // published, and the ring has dropped it since (410)
  Unknown,  // never published (404)
};

struct FeedLookup {
  FeedFind find = FeedFind::Unknown;
  FeedEvent event;  // when Found, with its body when kept
};

enum class ResolveResult : std::uint8_t {
  Resolved,         // this call settled it; `resolution` is what was recorded, with its event's id
  AlreadyResolved,  // an earlier call did: `resolution` is that one (who, when, which choice)
  Dropped,
  Unknown,
  NotAConflict,     // only events of type kFeedConflict are resolved
};

struct ResolveOutcome {
  ResolveResult result = ResolveResult::Unknown;
  FeedResolution resolution;  // Resolved and AlreadyResolved
};

// Counters for /metrics (never waits; as far as this process knows).
struct FeedStats {
  std::uint64_t last_id = 0;          // the newest id published
  std::uint64_t held = 0;             // events in the ring now
  std::uint64_t dropped = 0;          // events dropped from the ring (capacity)
  std::vector<std::pair<std::string, std::uint64_t>> published;  // per type, sorted by type
  std::uint64_t bodies_kept = 0;      // held events whose body is kept now
  std::uint64_t body_bytes = 0;       // their bytes, as counted against max_body_bytes
  std::uint64_t bodies_too_large = 0; // since start: bodies over keep_body_bytes
  std::uint64_t bodies_evicted = 0;   // since start: bodies dropped by max_body_bytes
  std::uint64_t resolved = 0;         // since start: successful resolve() calls
};

// A subscription made by ConflictFeed::watch(); destroying it unsubscribes.
class FeedWatch {
 public:
  virtual ~FeedWatch() = default;
};
using FeedWatchHandle = std::unique_ptr<FeedWatch>;

// Told the newest id when events were published. See ConflictFeed::watch for when it runs.
using FeedListener = std::function<void(std::uint64_t newest_id)>;

class ConflictFeed {
 public:
  virtual ~ConflictFeed() = default;

  // Publishes `event` (its id, body state and resolution are the store's) and completes with its
  // id. The oldest event goes when the ring is full.
  virtual StoreCall publish(FeedEvent event, Completion<std::uint64_t> done) = 0;
  // Up to `limit` events after `after_id` that match `filter`, oldest first, without their bodies
  // (your_body empty; `body` says what get() would find). after_id 0 reads from the oldest held
  // (never a reset). An after_id the ring no longer reaches (events after it were dropped), or
  // above the newest id (a client that saw another process's ids), answers reset and reads from
  // the oldest held.
  virtual StoreCall read(std::uint64_t after_id, const FeedFilter& filter, std::size_t limit,
                         Completion<FeedPage> done) = 0;
  // Event `id`, with its body when kept.
  virtual StoreCall get(std::uint64_t id, Completion<FeedLookup> done) = 0;
  // Marks conflict `id` resolved by `resolution` and publishes `resolved_event` for it, as one
  // step: of two calls for one conflict exactly one answers Resolved, and only it publishes. The
  // store sets the published event's type (kFeedResolved), route and resource (the conflict's),
  // and resolution.event_id; the caller gives the rest (details should name the conflict's id).
  // Any other answer publishes nothing.
  virtual StoreCall resolve(std::uint64_t id, const FeedResolution& resolution, FeedEvent resolved_event,
                            Completion<ResolveOutcome> done) = 0;

  // Calls `listener` with the newest id whenever events were published, until the handle is
  // destroyed. Meant for one listener a worker (which turns it into a uv_async wake-up), not one
  // a subscriber: every publish calls every listener.
  // - It runs on the thread that learned of the publish (the publishing thread in memory), after
  //   the store's lock is released: it may read the store, but must not publish or resolve (that
  //   would wait for its own call to end). It must be cheap and must not block: a publisher
  //   waits while another thread's call of the same listener runs.
  // - Calls of one listener never overlap, and the ids it is given only increase: a call may
  //   stand for several publishes (it is given the newest), and a publish whose id the listener
  //   was already given (or passed) calls nothing. When publish() has returned, the listener has
  //   been given that id or a newer one.
  // - When the handle's destructor returns, the listener is not running and will not run again
  //   (the destructor waits for a call in progress: never destroy it from inside its listener).
  //   The handle may outlive the store.
  virtual FeedWatchHandle watch(FeedListener listener) = 0;

  // Applies new limits to what is held at once (a reload that changed [control] feed_buffer).
  virtual void set_limits(const FeedLimits& limits) = 0;
  virtual FeedStats stats() const = 0;
};

// Publishes `event` for a caller that does not wait for the outcome (a policy refusing a write):
// the event's id when the store answered at once, else nullopt (it is published all the same,
// in order; a failed store loses it).
std::optional<std::uint64_t> publish_event(ConflictFeed& feed, FeedEvent event);

// The listeners of one store, for its implementations: watch() adds one, notify() calls them all
// as ConflictFeed::watch describes. Thread-safe.
class FeedWatchers {
 public:
  FeedWatchers();
  ~FeedWatchers();
  FeedWatchers(const FeedWatchers&) = delete;
  FeedWatchers& operator=(const FeedWatchers&) = delete;

  FeedWatchHandle watch(FeedListener listener);
  // Calls every listener with `newest_id` (outside any lock of the caller's).
  void notify(std::uint64_t newest_id) const;
  std::size_t count() const;

  struct Registry;  // shared with the handles, which may outlive this

 private:
  std::shared_ptr<Registry> registry_;
};

}  // namespace arbiter
