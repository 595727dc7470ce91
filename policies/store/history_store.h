#pragma once
// Where version history lives (issue #15, [route.history]): per resource, the representations
// Arbiter has seen, numbered from 1 in the order they were first recorded, each with its ETag,
// body, Content-Type, the wall-clock time it was recorded and, for a version a write through
// Arbiter made, who made it. Resource state keyed by the resource identity the ETag policy uses
// (policies/resource_key.h), shared by every route and worker; one store lives as long as the
// process's RuntimeState (policies/store/resource_stores.h), so history survives reloads.
//
// Bounded, per route (the route whose policy recorded a resource's first version owns it):
// at most `keep` versions per resource, `max_bytes` of bodies and metadata for the route's
// whole history, `max_resources` resources; the oldest versions go first (a resource over
// `keep` drops its own oldest; a route over max_bytes drops the oldest version among its
// resources; a route over max_resources drops the resource whose newest version is oldest,
// whole). A body larger than max_version_bytes is recorded without its bytes (body_kept false).
// Version numbers never go back: a resource whose versions were dropped remembers its next
// number and how many it dropped, so a dropped version is told apart from one never recorded
// (except for a resource dropped whole, which is forgotten: its versions are then unknown).
//
// Every call may complete later: see policies/store/store_call.h for the contract. The views
// passed are read before a call returns.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policies/store/store_call.h"

namespace arbiter {

using WallTime = std::chrono::system_clock::time_point;

struct HistoryLimits {
  std::size_t keep = 20;                     // versions per resource (>= 1)
  std::size_t max_bytes = 64u << 20;         // the route's whole history
  std::size_t max_version_bytes = 1u << 20;  // larger bodies are recorded without their bytes
  std::size_t max_resources = 100000;        // per route
  bool operator==(const HistoryLimits&) const = default;
};

// Who made a version, when a write through Arbiter made it.
struct VersionAuthor {
  std::string_view method;      // "PUT", "PATCH", "DELETE", "POST"
  std::string_view request_id;
  std::string_view client;      // the client key ([route.history] client_key)
  std::optional<std::uint64_t> fence;  // the lock fence the write carried, when the lock policy is on
};

// A representation to record.
struct VersionInput {
  std::string_view route;
  std::string_view resource;
  std::string_view etag;           // the strong tag Arbiter hands out for it
  std::string_view body;           // the representation's bytes (as sent, any content coding)
  std::string_view content_type;   // its Content-Type, as sent ("" when none)
  WallTime time;
  std::optional<VersionAuthor> author;  // nullopt: observed (a read, a verify fetch)
};

// What anyone may know of a recorded version, without its body.
struct VersionMeta {
  std::uint64_t number = 0;        // per resource, from 1
  std::string etag;
  WallTime time{};
  std::size_t size = 0;            // the body's length, kept or not
  bool body_kept = true;           // false: larger than max_version_bytes, recorded without it
  std::string content_type;
  // Empty (and fence nullopt) for a version only observed, not made by a write through Arbiter.
  std::string method;
  std::string request_id;
  std::string client;
  std::optional<std::uint64_t> fence;
};

struct VersionRecord {
  VersionMeta meta;
  std::string body;  // empty when !meta.body_kept
};

struct HistoryListing {
  std::vector<VersionMeta> versions;  // retained versions, newest first
  std::uint64_t dropped = 0;          // this resource's versions dropped by retention
  bool known = false;                 // false: nothing was ever recorded (or it was forgotten whole)
};

enum class VersionFind : std::uint8_t {
  Found,
  Dropped,  // it was recorded, and retention has dropped it
  Unknown,  // never recorded (or before the first version, for at_time)
};

struct VersionLookup {
  VersionFind find = VersionFind::Unknown;
  VersionRecord version;  // when Found
};

// What record() did.
struct RecordOutcome {
  std::uint64_t number = 0;  // the version's number; 0: not recorded (the tag is the last one's)
  bool annotated = false;    // the tag was the last one's, which gained this write's author
};

// Counters of one route's history, for /metrics (never waits).
struct HistoryStats {
  std::uint64_t resources = 0;         // held now
  std::uint64_t versions = 0;          // held now
  std::uint64_t bytes = 0;             // held now, as counted against max_bytes
  std::uint64_t recorded = 0;          // since the process started
  std::uint64_t dropped_keep = 0;      // versions dropped: over `keep`
  std::uint64_t dropped_bytes = 0;     // versions dropped: the route over max_bytes
  std::uint64_t dropped_resources = 0; // resources dropped whole: the route over max_resources
  std::uint64_t bodies_omitted = 0;    // versions recorded without their body (max_version_bytes)
};

class HistoryStore {
 public:
  virtual ~HistoryStore() = default;

  // Records `version` as the resource's newest, unless its tag is the newest recorded one's:
  // then nothing is recorded, except that a version with an author gives its author to a newest
  // version that has none (a read saw the write's result before the write's own re-read did).
  // `limits` are the route's (the latest call's limits apply to the route's whole history).
  virtual StoreCall record(const VersionInput& version, const HistoryLimits& limits,
                           Completion<RecordOutcome> done) = 0;
  // The resource's retained versions, newest first.
  virtual StoreCall list(std::string_view resource, Completion<HistoryListing> done) = 0;
  // Version `number` of the resource, with its body.
  virtual StoreCall version(std::string_view resource, std::uint64_t number, Completion<VersionLookup> done) = 0;
  // The newest retained version whose tag is `etag` (the base of a merge): Found or Unknown.
  virtual StoreCall find_tag(std::string_view resource, std::string_view etag, Completion<VersionLookup> done) = 0;
  // The version that was current at `time`: the newest recorded at or before it. Unknown when
  // `time` is before the first version ever recorded; Dropped when that version was dropped.
  virtual StoreCall at_time(std::string_view resource, WallTime time, Completion<VersionLookup> done) = 0;
  // The route's counters as far as this process knows.
  virtual HistoryStats stats(std::string_view route) const = 0;
};

}  // namespace arbiter
