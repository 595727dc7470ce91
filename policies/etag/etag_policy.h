#pragma once
// Optimistic concurrency for backends that have none: strong ETags on reads, and writes
// with a stale If-Match refused before they reach the backend.
//
// Reads (GET, HEAD) are forwarded; a 2xx (not 206) leaves with a strong ETag: the backend's
// own when strong and source = "auto", else minted from the body (or from the value at a JSON
// pointer; a body without a value there is hashed whole), replacing a weak backend tag. The
// store learns it, unless a write changed the resource since the read began (a read with a
// query is tagged but not learned: it may be another representation). If-None-Match matching
// it (weak comparison, or "*") turns the answer into a 304; Arbiter answers If-None-Match
// itself, so the backend does not see it. A HEAD is tagged from a GET of its path.
// If-Match on a read is judged by Arbiter against a GET of the target (412 on a mismatch),
// Range/If-Range are served by Arbiter from the whole 200 (so a 206 has the 200's tag), and
// If-Modified-Since / If-Unmodified-Since go only when no tag condition overrides them; a
// backend's own 304 gets the current tag. A stream (text/event-stream) is never tagged.
//
// Versions: the store keeps every tag naming the resource's current version (VersionTags:
// each representation's tag, the backend's beside the hash of the same bytes, and the content
// identity with gzip removed), so If-Match passes for any representation of that version and
// for no other version. A 201 is tagged by the resource its Location names.
//
// Writes (PUT, PATCH, DELETE, POST) take the resource's turn in the store's write queue, so
// that one write at a time, across every worker, goes from the check to the new ETag. Holding
// the turn, a conditional write learns the current version (re-read from the backend, or from
// the store with verify = "cache"), compares, and is refused with conflict_status before
// anything is forwarded, or forwarded without If-Match / If-None-Match, which the backend
// would judge against tags it never made. Its response then sets the new ETag: the backend's
// strong one, else a re-read. A 4xx keeps the old tag; a 5xx, a lost response or a failed
// re-read makes it unknown, so the next conditional write re-reads the resource.
//
// Stores: the ETag table (VersionStore, a lossy cache) and the write turns (WriteTurnStore,
// resource state: leases with fence numbers, config.turn_lease) are separate stores, and every
// call may complete later (policies/store/store_call.h). In the request phase the request then
// waits, parked, for the answer; a write whose turn store or table fails gets 503
// (urn:arbiter:problem:store-unavailable), a read whose sequence is unknown goes on and is not
// learned, and verify = "cache" with the table failing re-reads the backend. In the response and
// end phases the policy does not park: its mutations are sent without waiting (in order), and
// its reads count as unknown when they do not complete at once. A write whose turn was taken
// over past its lease does not record its outcome: the version becomes unknown (the policy asks
// WriteTurn::held() before recording; the fence number is not checked by anything yet).
//
// Large representations: a body over max_body_bytes is passed through unhashed and untagged.
// Such a resource has no version Arbiter can check, so a conditional write to it is refused
// with 412 (problem type urn:arbiter:problem:version-unverifiable) naming the limit; only
// If-Match: * (which needs existence, not a version) and unconditional writes go through.
//
// Threading: one EtagPolicy serves every worker; its counters and the conflict log are
// thread-safe and the rest is immutable. A request's state (its write turn) lives in its
// ExchangeState and holds the policy's stores' turns and calls, so the policy must outlive
// every exchange that used it (proxy/exchange/runtime.h keeps it so).

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policies/store/conflict_feed.h"
#include "policies/etag/etag.h"
#include "policies/policy.h"
#include "policies/request_key.h"
#include "policies/resource_key.h"
#include "policies/store/history_store.h"
#include "policies/store/version_store.h"
#include "policies/store/write_turn_store.h"

namespace arbiter {

// The lease of a write's turn behind an upstream with these timeouts: three upstream exchanges
// (the verify GET, the write, the re-read), each connect_timeout twice (a retry on the next
// server) plus response_timeout, and a second to spare.
constexpr std::chrono::milliseconds write_turn_lease(std::chrono::milliseconds connect_timeout,
                                                     std::chrono::milliseconds response_timeout) noexcept {
  return 3 * (2 * connect_timeout + response_timeout) + std::chrono::seconds(1);
}

// [route.history]: the versions the ETag policy records (policies/store/history_store.h).
struct HistoryConfig {
  HistoryLimits limits;
  KeyKind client_key = KeyKind::ClientAddress;  // who made a version: `client_key`, as [[route.limit]] key
  std::string client_header;                    // KeyKind::Header: the field
  // Not a key of its own, set by the loader: the lock policy's fence_header on the route ("" without
  // one).
  std::string fence_header;
  bool operator==(const HistoryConfig&) const = default;
};

struct EtagPolicyConfig {
  int conflict_status = 409;          // or 412
  bool require_if_match = false;      // a write without If-Match gets 428
  enum class Verify : std::uint8_t { Upstream, Cache };
  Verify verify = Verify::Upstream;   // re-read the resource before each conditional write
  enum class Source : std::uint8_t { Auto, Hash, JsonPointer };
  Source source = Source::Auto;
  std::string json_pointer;           // Source::JsonPointer: e.g. "/version"
  std::string resource;               // key template with {param}s; empty = the request path
  std::size_t max_entries = 1000000;  // of the ETag table
  std::size_t max_body_bytes = 1u << 20;  // larger representations are not hashed
  std::size_t max_queue = 64;         // writers waiting per resource; 0: a busy resource answers 503
  std::chrono::milliseconds queue_timeout{5000};
  // How long a write's turn is leased (policies/store/write_turn_store.h): not a key of its own,
  // set by the loader from the route's upstream (write_turn_lease()).
  std::chrono::milliseconds turn_lease{write_turn_lease(std::chrono::seconds(2), std::chrono::seconds(30))};
  // A write whose If-Match names an older version: refused (conflict_status), or merged into the
  // current version when that older one is in the history and the changes do not overlap.
  enum class OnConflict : std::uint8_t { Reject, Merge };
  OnConflict on_conflict = OnConflict::Reject;
  // Arrays merged element by element: the array's pointer -> the member naming its elements.
  std::map<std::string, std::string, std::less<>> merge_keys;
  // PATCH: forwarded as it is, or applied here (merge patch, JSON Patch) and sent as a PUT.
  enum class Patch : std::uint8_t { Forward, Apply };
  Patch patch = Patch::Forward;
  // What a 2xx answer to a write carries: its outcome only (the new version is learned by
  // reading the resource again, unless the answer has a strong ETag or a Content-Location naming
  // the target), or the resource's new representation, tagged as a read of it would be.
  enum class WriteResponse : std::uint8_t { Status, Representation };
  WriteResponse write_response = WriteResponse::Status;
  std::optional<HistoryConfig> history;  // nullopt: no [route.history]
  // Not a key of its own, set by the loader: [server] control_prefix, where the links in answers
  // point (the history, a refused write's conflict record).
  std::string control_prefix = "/_arbiter";

  bool operator==(const EtagPolicyConfig&) const = default;
};

// Marks a write that replaces the whole document on purpose: a version of the history restored,
// a conflict's resolution (Arbiter's restore and resolve endpoints set it). A stale If-Match is
// then refused, never merged. Never forwarded.
inline constexpr std::string_view kRestoreField = "Arbiter-Restore";

// "upstream", "cache"; "auto", "hash", "json:/pointer": as the configuration writes them.
std::string_view verify_name(EtagPolicyConfig::Verify verify) noexcept;
std::string source_name(const EtagPolicyConfig& config);

// What the policy has done since it was made; a snapshot of its counters.
struct EtagCounters {
  std::uint64_t reads_tagged = 0;             // 2xx reads sent with an ETag
  std::uint64_t not_modified = 0;             // 304s made for If-None-Match
  std::uint64_t conflicts = 0;                // writes refused with conflict_status
  std::uint64_t precondition_required = 0;    // 428s
  std::uint64_t writes_forwarded = 0;
  std::uint64_t queue_full = 0;               // 503: max_queue writers already waited
  std::uint64_t queue_timeouts = 0;           // 503: waited queue_timeout for the turn
  std::uint64_t verify_failures = 0;          // 503: the current version could not be read
  std::uint64_t etag_unknown_after_write = 0; // a write's outcome or new tag could not be learned
  std::uint64_t merged = 0;                   // stale writes merged into the current version
  std::uint64_t merge_conflicts = 0;          // stale writes whose changes overlapped: refused
  std::uint64_t patches_applied = 0;          // PATCHes applied here and sent as PUTs
  std::uint64_t mementos = 0;                 // reads answered from the history (Accept-Datetime)
};

class EtagPolicy final : public Policy {
 public:
  // Throws std::invalid_argument for a config the loader would have refused (a bad JSON
  // pointer, a conflict_status other than 409/412).
  // feed: where refused and merged writes are published (the conflict feed), shared with the
  // other routes (null: a MemoryConflictFeed of its own).
  // turns: the write-turn store shared with the other routes, which outlives this policy (null: a
  // MemoryWriteQueues of its own).
  // history: where the versions are recorded, shared with the other routes and Arbiter's
  // endpoints; required when config.history is set (std::invalid_argument otherwise).
  EtagPolicy(std::string route_name, EtagPolicyConfig config, std::shared_ptr<VersionStore> store,
             std::shared_ptr<WriteTurnStore> turns = nullptr, std::shared_ptr<ConflictFeed> feed = nullptr,
             std::shared_ptr<HistoryStore> history = nullptr);

  std::string_view kind() const noexcept override { return "etag"; }
  std::string explain(const RequestView& request) const override;
  // The key that reads and writes of one resource share (config.resource, or the path).
  std::string resource_key(const RequestView& request) const;
  Decision on_request(const RequestView& request, std::unique_ptr<ExchangeState>& state) override;
  Decision on_fetched(const RequestView& request, const FetchedResponse& fetched,
                      std::unique_ptr<ExchangeState>& state) override;
  ResponseStep on_response(const RequestView& request, ResponseView& response, ExchangeState* state) override;
  void on_response_fetched(const RequestView& request, ResponseView& response, const FetchedResponse& fetched,
                           ExchangeState* state) override;
  // A write forwarded and not settled (no response, or none learned from) makes the version
  // unknown; then the write's turn goes to the next writer.
  ResponseStep on_end(const RequestView& request, const ExchangeOutcome& outcome, ExchangeState* state) override;
  std::size_t response_body_limit() const noexcept override { return config_.max_body_bytes; }
  // Writes: max_body_bytes, so that the body is in before the write asks for its turn.
  std::size_t request_body_limit(const RequestView& request) const noexcept override;

  EtagCounters counters() const noexcept;
  // Defined in policies/etag/etag_kind.cpp, beside the families it fills.
  void write_metrics(std::string_view route, MetricsWriter& out) const override;
  const std::shared_ptr<ConflictFeed>& conflict_feed() const noexcept { return feed_; }
  const EtagPolicyConfig& config() const noexcept { return config_; }
  const VersionStore& store() const noexcept { return *store_; }
  const WriteTurnStore& turns() const noexcept { return *turns_; }
  const std::string& route_name() const noexcept { return route_name_; }
  // Null without [route.history].
  const HistoryStore* history() const noexcept { return history_.get(); }
  // The wall clock versions and feed events are stamped with (tests set a fake one). Before the
  // policy is shared.
  void set_wall_clock(WallTime (*clock)()) noexcept { wall_clock_ = clock; }

 private:
  class Exchange;

  struct AtomicCounters {
    std::atomic<std::uint64_t> reads_tagged{0}, not_modified{0}, conflicts{0}, precondition_required{0},
        writes_forwarded{0}, queue_full{0}, queue_timeouts{0}, verify_failures{0}, etag_unknown_after_write{0},
        merged{0}, merge_conflicts{0}, patches_applied{0}, mementos{0};
  };
  // The outcome of computing a representation's ETag.
  struct Version {
    std::optional<std::string> etag;  // the tag handed out; nullopt: the body was too large to hash
    std::optional<std::string> raw;   // minted from the bytes as sent (no body: nullopt)
    // The representation it was computed from, for names_of(); views valid while it is.
    const HeaderList* headers = nullptr;
    const std::string* body = nullptr;
  };

  Version version_of(const HeaderList& headers, const std::string* body) const;
  // Every tag naming the version, etag first, and its content identity: that may decode the
  // body (gzip), so it is computed only where the table has to learn or compare it.
  VersionTags names_of(const Version& version) const;
  // What the table knows of the resource's version (`known`, as stored) joined with what was
  // just seen, when both are of one version; else what was just seen.
  static VersionTags joined_with_known(const std::optional<std::string>& known, VersionTags seen);
  // The current version as a precondition sees it: `shown` first, then every other name.
  static CurrentVersion current_version(bool exists, const std::optional<std::string>& shown,
                                        const VersionTags& names);

  Decision resume(const RequestView& request, std::unique_ptr<ExchangeState>& state, Exchange& exchange);
  Decision on_read_request(const RequestView& request, std::unique_ptr<ExchangeState>& state);
  Decision read_sequenced(const RequestView& request, Exchange& exchange);
  Decision on_write_request(const RequestView& request, std::unique_ptr<ExchangeState>& state);
  Decision turn_acquired(const RequestView& request, std::unique_ptr<ExchangeState>& state);
  Decision wait_for_turn(const RequestView& request, Exchange& exchange);
  Decision with_the_turn(const RequestView& request, Exchange& exchange);
  Decision recalled(const RequestView& request, Exchange& exchange, const std::string& known);
  Decision joined(const RequestView& request, Exchange& exchange);
  Decision check_preconditions(const RequestView& request, Exchange& exchange, const CurrentVersion& current);
  Decision forward_write(const RequestView& request, Exchange& exchange, bool strip_preconditions);
  // A merge that found the changes overlapping: the version the client started from, and where.
  struct Overlap {
    std::string base_etag;
    std::vector<std::string> pointers;
  };
  Decision conflict(const RequestView& request, const Exchange& exchange, std::string_view failed_field,
                    const Precondition& failed, const CurrentVersion& current, const Overlap* overlap = nullptr);
  // A feed event of `type` about this exchange's write: route, resource, request id, client key,
  // method, the refused or merged body, and the wall time.
  FeedEvent feed_event(std::string_view type, const RequestView& request, const Exchange& exchange) const;

  Decision on_read_if_match(const RequestView& request, const FetchedResponse& fetched, Exchange& exchange);
  void tag_read(const RequestView& request, ResponseView& response, Exchange& exchange, const Version& version);
  void serve_range(const RequestView& request, ResponseView& response, const Version& version);
  // A 201 whose created resource is not the target; nullopt: it is, tag it as any write.
  std::optional<ResponseStep> on_created(const RequestView& request, ResponseView& response, Exchange& exchange);
  ResponseStep on_write_response(const RequestView& request, ResponseView& response, Exchange& exchange);
  void settle_unknown(Exchange& exchange);
  // Whether a write's 2xx answer is the resource's new representation (write_response, or a
  // Content-Location naming the target): then it is tagged, and the resource is not read again.
  bool carries_representation(const RequestView& request, const ResponseView& response) const;
  // The write made `version` current: the table and the history learn it, the answer carries it.
  void settle_written(const RequestView& request, ResponseView& response, Exchange& exchange, const Version& version);

  // History, merge and PATCH (etag_history.cpp).
  // Records `version` (its body and Content-Type) as the resource's newest, if the route keeps a
  // history and the representation is one: identity-coded, with its body. `made_by`: the method
  // of this request's write that made it (a PATCH applied here went as a PUT); "": only seen.
  void record_version(const RequestView& request, const std::string& resource, const Version& version,
                      std::string_view made_by);
  // The Link to the resource's history (and Vary: accept-datetime on reads) on a response.
  void add_history_fields(const RequestView& request, ResponseView& response, const Exchange& exchange) const;
  std::string history_link(std::string_view resource) const;
  // A read with Accept-Datetime: answered from the history, the backend not asked.
  Decision on_accept_datetime(const RequestView& request, std::unique_ptr<ExchangeState>& state);
  Decision answer_memento(const RequestView& request, Exchange& exchange);
  // A PATCH this route applies: its media type and body checked before the write takes a turn;
  // a refusal, or nullopt to go on (exchange.patch set).
  std::optional<Decision> prepare_patch(const RequestView& request, Exchange& exchange);
  // The current document applied the patch, forwarded as a PUT; or the patch's refusal.
  Decision apply_patch(Exchange& exchange);
  // A stale If-Match under on_conflict = "merge": the write merged and forwarded, or refused
  // with the overlapping pointers; nullopt: it cannot be merged (today's conflict answers).
  std::optional<Decision> try_merge(const RequestView& request, Exchange& exchange, const Precondition& if_match,
                                    const CurrentVersion& current);
  // Response-phase reads: the store's answer when it gives it at once, else nullopt.
  std::optional<std::string> known_at_once(std::string_view resource);
  std::optional<std::uint64_t> sequence_at_once(std::string_view resource);
  // A write still holds its turn (not overtaken past its lease); true for a read.
  static bool still_holds(Exchange& exchange, MonotonicTime now);

  std::string route_name_;
  EtagPolicyConfig config_;
  std::shared_ptr<VersionStore> store_;
  std::shared_ptr<WriteTurnStore> turns_;
  mutable AtomicCounters counters_;
  std::shared_ptr<ConflictFeed> feed_;
  std::shared_ptr<HistoryStore> history_;  // null without [route.history]
  WallTime (*wall_clock_)() = &std::chrono::system_clock::now;
};

}  // namespace arbiter
