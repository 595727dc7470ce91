#include "policies/etag/etag_policy.h"

#include "policies/etag/etag_exchange.h"

#include <algorithm>
#include <stdexcept>
#include <utility>

#include "policies/etag/byte_range.h"
#include "policies/store/memory_conflict_feed.h"
#include "policies/store/memory_write_queues.h"
#include "proxy/http/path_normalization.h"
#include "proxy/http/forwarding.h"  // is_read_method, is_write_method
#include "policies/config_reader.h"  // single_quoted

namespace arbiter {

namespace {

constexpr std::string_view kEtag = "ETag";
constexpr std::string_view kIfModifiedSince = "If-Modified-Since";
constexpr std::string_view kIfUnmodifiedSince = "If-Unmodified-Since";
constexpr std::string_view kRange = "Range";
constexpr std::string_view kIfRange = "If-Range";

bool is_success(int status) noexcept { return status >= 200 && status <= 299; }
bool is_gone(int status) noexcept { return status == 404 || status == 410; }

// Answers a write could not be taken now, but may be in a moment.
Decision unavailable(Problem problem) { return Decision::reply(std::move(problem), HeaderList{{"Retry-After", "1"}}); }

Decision malformed_precondition(std::string_view field, const Precondition& precondition) {
  return Decision::reply(Problem::make("malformed-precondition", 400, "Malformed precondition",
                                       std::string(field) +
                                           " must be * or a list of entity-tags such as \"abc\" or W/\"abc\"; got: " +
                                           std::string(precondition.text())));
}

// 412 for a precondition on a representation too large to version (its tag unknown);
// `consequence` finishes the sentence with what the client can do instead.
Decision unverifiable(const std::string& resource, std::size_t max_body_bytes, std::string_view consequence) {
  auto problem = Problem::make("version-unverifiable", 412, "Version cannot be verified",
                               "The representation of " + single_quoted(resource) +
                                   " is larger than this route's max_body_bytes (" + std::to_string(max_body_bytes) +
                                   " bytes), so Arbiter cannot compute its version" + std::string(consequence));
  problem.extensions.emplace_back("resource", resource);
  problem.extensions.emplace_back("max_body_bytes", max_body_bytes);
  return Decision::reply(std::move(problem));
}

// The target of a 201's Location (or Content-Location) on this upstream: its path (in the
// normal form request paths get before routing, proxy/http/path_normalization.h) and query, the
// scheme and authority of an absolute URI dropped, a relative path resolved against the
// request's path. nullopt for what cannot be resolved (no path, a path that cannot be
// normalised).
std::optional<std::string> location_target(std::string_view location, std::string_view request_path) {
  location = without_ows(location);
  location = location.substr(0, location.find('#'));
  std::size_t scheme_end = location.find("://");
  if (scheme_end != std::string_view::npos && location.find_first_of("/?") > scheme_end) {
    location.remove_prefix(scheme_end + 1);  // leaves "//authority/path"
  }
  if (location.starts_with("//")) {
    std::size_t path = location.find('/', 2);
    if (path == std::string_view::npos) return std::nullopt;
    location.remove_prefix(path);
  }
  if (location.empty() || location.front() == '?') return std::nullopt;
  std::string joined;
  if (location.front() != '/') joined = std::string(request_path.substr(0, request_path.rfind('/') + 1));
  joined.append(location);
  std::size_t query = joined.find('?');
  std::string target, why;
  if (!normalize_path(std::string_view(joined).substr(0, query), target, why)) return std::nullopt;
  if (query != std::string::npos) target.append(joined, query);
  return target;
}

// Turns a held response into Arbiter's problem answer (the upstream's representation fields
// go: they described the body that is replaced).
void replace_with_problem(ResponseView& response, const Problem& problem, std::string_view request_id) {
  response.status = problem.status;
  for (std::string_view field : {"Content-Type", "Content-Encoding", "Content-Language", "Content-Location",
                                 "Content-Range", "Last-Modified", "ETag", "Cache-Control"}) {
    response.headers.remove(field);
  }
  response.headers.set("Content-Type", kProblemContentType);
  response.headers.set("Cache-Control", "no-store");
  if (response.body) *response.body = problem.to_json(request_id);
}

}  // namespace

std::string_view verify_name(EtagPolicyConfig::Verify verify) noexcept {
  return verify == EtagPolicyConfig::Verify::Cache ? "cache" : "upstream";
}

std::string source_name(const EtagPolicyConfig& config) {
  switch (config.source) {
    case EtagPolicyConfig::Source::Auto: return "auto";
    case EtagPolicyConfig::Source::Hash: return "hash";
    case EtagPolicyConfig::Source::JsonPointer: return "json:" + config.json_pointer;
  }
  return "auto";
}

namespace {

constexpr std::uint64_t kNoSequence = UINT64_MAX;


}  // namespace

EtagPolicy::EtagPolicy(std::string route_name, EtagPolicyConfig config, std::shared_ptr<VersionStore> store,
                       std::shared_ptr<WriteTurnStore> turns, std::shared_ptr<ConflictFeed> feed,
                       std::shared_ptr<HistoryStore> history)
    : route_name_(std::move(route_name)),
      config_(std::move(config)),
      store_(std::move(store)),
      turns_(turns ? std::move(turns) : std::make_shared<MemoryWriteQueues>()),
      feed_(feed ? std::move(feed) : std::make_shared<MemoryConflictFeed>()),
      history_(config_.history ? std::move(history) : nullptr) {
  if (config_.conflict_status != 409 && config_.conflict_status != 412) {
    throw std::invalid_argument("etag: conflict_status must be 409 or 412");
  }
  if (config_.source == EtagPolicyConfig::Source::JsonPointer && !is_valid_json_pointer(config_.json_pointer)) {
    throw std::invalid_argument("etag: invalid JSON pointer " + single_quoted(config_.json_pointer));
  }
  if (!template_param_names(config_.resource)) {
    throw std::invalid_argument("etag: malformed resource template " + single_quoted(config_.resource));
  }
  if (!store_) throw std::invalid_argument("etag: no version store");
  if (config_.history && !history_) throw std::invalid_argument("etag: [route.history] without a history store");
}

EtagCounters EtagPolicy::counters() const noexcept {
  auto read = [](const std::atomic<std::uint64_t>& counter) { return counter.load(std::memory_order_relaxed); };
  EtagCounters snapshot;
  snapshot.reads_tagged = read(counters_.reads_tagged);
  snapshot.not_modified = read(counters_.not_modified);
  snapshot.conflicts = read(counters_.conflicts);
  snapshot.precondition_required = read(counters_.precondition_required);
  snapshot.writes_forwarded = read(counters_.writes_forwarded);
  snapshot.queue_full = read(counters_.queue_full);
  snapshot.queue_timeouts = read(counters_.queue_timeouts);
  snapshot.verify_failures = read(counters_.verify_failures);
  snapshot.etag_unknown_after_write = read(counters_.etag_unknown_after_write);
  snapshot.merged = read(counters_.merged);
  snapshot.merge_conflicts = read(counters_.merge_conflicts);
  snapshot.patches_applied = read(counters_.patches_applied);
  snapshot.mementos = read(counters_.mementos);
  return snapshot;
}

FeedEvent EtagPolicy::feed_event(std::string_view type, const RequestView& request, const Exchange& exchange) const {
  FeedEvent event;
  event.type = std::string(type);
  event.time = wall_clock_();
  event.route = route_name_;
  event.resource = exchange.resource();
  event.request_id = std::string(request.request_id);
  event.client = config_.history ? request_key(request, config_.history->client_key, config_.history->client_header)
                                 : std::string(request.client_address);
  event.method = std::string(request.method);
  if (request.body != nullptr && !request.body->empty()) {
    event.your_body = *request.body;
    event.your_content_type = std::string(request.headers.find("Content-Type").value_or(std::string_view()));
  }
  return event;
}

std::string EtagPolicy::resource_key(const RequestView& request) const {
  return arbiter::resource_key(request, config_.resource);
}

EtagPolicy::Version EtagPolicy::version_of(const HeaderList& headers, const std::string* body) const {
  Version version{std::nullopt, std::nullopt, &headers, body};
  if (config_.source == EtagPolicyConfig::Source::Auto) {
    if (auto backend_etag = headers.find(kEtag)) {
      if (auto tag = parse_entity_tag(*backend_etag); tag && !tag->weak) version.etag = std::string(tag->opaque_tag);
    }
  }
  if (body != nullptr && body->size() <= config_.max_body_bytes) {
    version.raw = mint_etag(*body);
    if (!version.etag && config_.source == EtagPolicyConfig::Source::JsonPointer) {
      // A body that is not JSON, or has no value there, is still versioned: by its hash.
      version.etag = etag_from_json_pointer(*body, config_.json_pointer);
    }
    if (!version.etag) version.etag = version.raw;
  }
  return version;
}

VersionTags EtagPolicy::names_of(const Version& version) const {
  VersionTags names;
  if (version.raw) {  // the body was hashed: it is there and within max_body_bytes
    // The same content under another coding is the same version: its identity is the hash of
    // the content decoded (without a coding, the hash of the bytes themselves).
    if (identity_coded(*version.headers)) {
      names.identity = *version.raw;
    } else if (auto identity = content_identity(*version.body, *version.headers->find("Content-Encoding"),
                                                config_.max_body_bytes)) {
      names.identity = std::move(*identity);
    }
  }
  // The backend's tag and the hash of the bytes both name this version, so a client holding
  // either (a backend tag that turned from weak to strong) is current.
  for (const auto* tag : {&version.etag, &version.raw}) {
    if (*tag && **tag != names.identity && std::find(names.tags.begin(), names.tags.end(), **tag) == names.tags.end()) {
      names.tags.push_back(**tag);
    }
  }
  return names;
}

VersionTags EtagPolicy::joined_with_known(const std::optional<std::string>& known, VersionTags seen) {
  if (!known) return seen;
  VersionTags joined = decode_version_tags(*known);
  if (!joined.same_version(seen)) return seen;
  joined.merge(seen);
  return joined;
}

CurrentVersion EtagPolicy::current_version(bool exists, const std::optional<std::string>& shown,
                                           const VersionTags& names) {
  CurrentVersion current{exists, shown, {}};
  if (!exists) return current;
  for (std::string& tag : names.all()) {
    if (!shown || tag != *shown) current.also.push_back(std::move(tag));
  }
  if (!current.etag && !current.also.empty()) current.etag = names.primary();
  return current;
}

// ---- Request phase ----

Decision EtagPolicy::on_request(const RequestView& request, std::unique_ptr<ExchangeState>& state) {
  auto* exchange = static_cast<Exchange*>(state.get());
  if (exchange && exchange->wait.parked()) {  // resumed while a store call was outstanding
    if (!exchange->wait.resume(request.now)) return Decision::wait_until(exchange->wait.deadline());
    return resume(request, state, *exchange);
  }
  if (exchange && exchange->stage == Exchange::Stage::Queued) return wait_for_turn(request, *exchange);
  if (is_read_method(request.method)) return on_read_request(request, state);
  if (is_write_method(request.method)) return on_write_request(request, state);
  return Decision::forward();
}

// Goes on where the request stopped for a store call, now that it completed (or failed).
Decision EtagPolicy::resume(const RequestView& request, std::unique_ptr<ExchangeState>& state, Exchange& exchange) {
  switch (exchange.stage) {
    case Exchange::Stage::Sequencing:
      return read_sequenced(request, exchange);
    case Exchange::Stage::Acquiring:
      if (exchange.wait.failed()) {
        state.reset();  // gives up a place the store may have granted meanwhile
        return store_unavailable("the write-turn store");
      }
      return turn_acquired(request, state);
    case Exchange::Stage::Recalling:
      // Unknown to the store, or the store failed: the backend says which version is current.
      if (!exchange.wait.failed() && exchange.known) return recalled(request, exchange, *exchange.known);
      exchange.stage = Exchange::Stage::Verifying;
      return Decision::call({read_of(std::string(request.path), config_.max_body_bytes)});
    case Exchange::Stage::Joining:
      if (exchange.wait.failed()) return store_unavailable("the ETag store");
      return joined(request, exchange);
    case Exchange::Stage::Remembering:
      if (exchange.wait.failed()) return store_unavailable("the history store");
      return answer_memento(request, exchange);
    default:
      return Decision::forward();
  }
}

Decision EtagPolicy::on_read_request(const RequestView& request, std::unique_ptr<ExchangeState>& state) {
  if (history_ && request.headers.contains("Accept-Datetime")) return on_accept_datetime(request, state);
  Precondition if_match = parse_precondition(request.headers, kIfMatch);
  if (if_match.form == Precondition::Form::Malformed) return malformed_precondition(kIfMatch, if_match);
  auto* exchange = new Exchange(Exchange::Role::Read, resource_key(request));
  state.reset(exchange);
  exchange->if_match = if_match.form;
  // A read with a query may be a different representation (a projection, another format)
  // than the one a write re-reads: it is tagged, but the store does not learn its tag.
  exchange->remember = request.query.empty();
  exchange->stage = Exchange::Stage::Sequencing;
  if (StoreCall call = store_->sequence(exchange->resource(),
                                        Completion<std::uint64_t>::to<&Exchange::on_sequence>(*exchange))) {
    return exchange->wait.park(request, std::move(call));
  }
  return read_sequenced(request, *exchange);
}

Decision EtagPolicy::read_sequenced(const RequestView& request, Exchange& exchange) {
  exchange.stage = Exchange::Stage::Reading;
  // A read the store could not place (failed, or no answer in time) goes on unlearned.
  if (exchange.wait.failed()) exchange.remember = false;
  // The backend would judge tags it never made: Arbiter answers If-None-Match, If-Match and
  // If-Range itself, and the date conditions they override go too (RFC 9110 section 13.2.2:
  // If-Modified-Since is ignored beside If-None-Match, If-Unmodified-Since beside If-Match).
  // A Range is served by Arbiter from the whole representation, so that a 206 carries the
  // same validator as the 200.
  std::vector<std::string>& strip = exchange.strip;
  if (request.headers.contains(kIfNoneMatch)) strip.insert(strip.end(), {std::string(kIfNoneMatch), std::string(kIfModifiedSince)});
  if (exchange.if_match != Precondition::Form::Absent) strip.insert(strip.end(), {std::string(kIfMatch), std::string(kIfUnmodifiedSince)});
  if (request.headers.contains(kRange) || request.headers.contains(kIfRange)) {
    strip.insert(strip.end(), {std::string(kRange), std::string(kIfRange)});
  }
  if (exchange.if_match == Precondition::Form::Tags) {
    // Which version is current is known only from a read of it: read first, then decide.
    exchange.stage = Exchange::Stage::CheckingIfMatch;
    return Decision::call({read_of(std::string(request.target), config_.max_body_bytes)});
  }
  return strip.empty() ? Decision::forward() : Decision::forward_without(strip);
}

Decision EtagPolicy::on_read_if_match(const RequestView& request, const FetchedResponse& fetched,
                                      Exchange& exchange) {
  exchange.stage = Exchange::Stage::Reading;
  // A read that would not be a 2xx answers for itself: preconditions do not apply to it
  // (RFC 9110 section 13.2.1).
  if (!fetched.reached || !is_success(fetched.status)) return Decision::forward_without(exchange.strip);
  Version version = version_of(fetched.headers, fetched.body_complete ? &fetched.body : nullptr);
  CurrentVersion current = current_version(true, version.etag, names_of(version));
  Precondition if_match = parse_precondition(request.headers, kIfMatch);
  PreconditionOutcome outcome = evaluate_if_match(if_match, current);
  if (outcome == PreconditionOutcome::Passes) return Decision::forward_without(exchange.strip);
  if (outcome == PreconditionOutcome::Unverifiable) {
    return unverifiable(exchange.resource(), config_.max_body_bytes,
                        " to evaluate If-Match; read it without If-Match.");
  }
  auto problem = Problem::make("precondition-failed", 412, "Precondition failed",
                               "If-Match names a version of " + single_quoted(exchange.resource()) +
                                   " that is not the current one; GET it without If-Match for the current version.");
  problem.extensions.emplace_back("your_etag", if_match.text());
  problem.extensions.emplace_back("current_etag", *current.etag);
  problem.extensions.emplace_back("resource", exchange.resource());
  return Decision::reply(std::move(problem), HeaderList{{kEtag, *current.etag}});
}

Decision EtagPolicy::on_write_request(const RequestView& request, std::unique_ptr<ExchangeState>& state) {
  Precondition if_match = parse_precondition(request.headers, kIfMatch);
  if (if_match.form == Precondition::Form::Malformed) return malformed_precondition(kIfMatch, if_match);
  Precondition if_none_match = parse_precondition(request.headers, kIfNoneMatch);
  if (if_none_match.form == Precondition::Form::Malformed) return malformed_precondition(kIfNoneMatch, if_none_match);
  std::string resource = resource_key(request);
  if (config_.require_if_match && !if_match.present() && if_none_match.form != Precondition::Form::Any) {
    counters_.precondition_required.fetch_add(1, std::memory_order_relaxed);
    auto problem = Problem::make(
        "precondition-required", 428, "Precondition required",
        "Writes to " + single_quoted(resource) +
            " must say which version they change, so that a stale copy cannot overwrite a newer one: GET it, "
            "then resubmit the write with that response's ETag in If-Match (or with If-None-Match: * to create it).");
    problem.extensions.emplace_back("resource", resource);
    return Decision::reply(std::move(problem));
  }

  auto* exchange = new Exchange(Exchange::Role::Write, std::move(resource));
  state.reset(exchange);
  if (config_.patch == EtagPolicyConfig::Patch::Apply && request.method == "PATCH") {
    if (auto refused = prepare_patch(request, *exchange)) {
      state.reset();
      return std::move(*refused);
    }
  }
  // The current representation is read (and kept) for a patch applied here, and for a write
  // that may be merged.
  exchange->wants_document = exchange->patch != Exchange::PatchType::None ||
                             (config_.on_conflict == EtagPolicyConfig::OnConflict::Merge &&
                              if_match.form == Precondition::Form::Tags && request.method == "PUT");
  exchange->stage = Exchange::Stage::Acquiring;
  if (StoreCall call = turns_->acquire(exchange->resource(), config_.turn_lease, request.now, config_.max_queue,
                                       request.waker,
                                       Completion<std::unique_ptr<WriteTurn>>::to<&Exchange::on_turn>(*exchange))) {
    return exchange->wait.park(request, std::move(call));
  }
  if (exchange->wait.failed()) {
    state.reset();
    return store_unavailable("the write-turn store");
  }
  return turn_acquired(request, state);
}

Decision EtagPolicy::turn_acquired(const RequestView& request, std::unique_ptr<ExchangeState>& state) {
  auto& exchange = static_cast<Exchange&>(*state);
  exchange.stage = Exchange::Stage::Settled;
  if (!exchange.turn) {
    counters_.queue_full.fetch_add(1, std::memory_order_relaxed);
    std::string waiting = config_.max_queue == 0
                              ? "Another write to " + single_quoted(exchange.resource()) +
                                    " is in progress and this route lets no other wait for it"
                              : std::to_string(config_.max_queue) + " writes to " +
                                    single_quoted(exchange.resource()) + " are already waiting their turn";
    auto problem = Problem::make("write-queue-full", 503, "Too many writes waiting",
                                 waiting + "; nothing was written. Retry shortly.");
    problem.extensions.emplace_back("resource", exchange.resource());
    state.reset();
    return unavailable(std::move(problem));
  }
  if (!exchange.turn->held(request.now)) {
    exchange.stage = Exchange::Stage::Queued;
    exchange.queue_deadline = request.now + config_.queue_timeout;
    return Decision::wait_until(std::min(exchange.queue_deadline, exchange.turn->expires_at()));
  }
  return with_the_turn(request, exchange);
}

// A queued write, woken (its turn was handed to it), or at its deadline: its queue_timeout, or
// the moment the holder's lease ends and the turn may be taken over.
Decision EtagPolicy::wait_for_turn(const RequestView& request, Exchange& exchange) {
  if (exchange.turn->held(request.now)) return with_the_turn(request, exchange);
  if (request.now < exchange.queue_deadline) {
    return Decision::wait_until(std::min(exchange.queue_deadline, exchange.turn->expires_at()));
  }
  exchange.turn.reset();  // leaves the queue
  exchange.stage = Exchange::Stage::Settled;
  counters_.queue_timeouts.fetch_add(1, std::memory_order_relaxed);
  auto problem = Problem::make("write-queue-timeout", 503, "Write waited too long",
                               "Other writes to " + single_quoted(exchange.resource()) + " kept it waiting for " +
                                   std::to_string(config_.queue_timeout.count()) +
                                   " ms; nothing was written. Retry shortly.");
  problem.extensions.emplace_back("resource", exchange.resource());
  return unavailable(std::move(problem));
}

Decision EtagPolicy::with_the_turn(const RequestView& request, Exchange& exchange) {
  bool conditional = request.headers.contains(kIfMatch) || request.headers.contains(kIfNoneMatch);
  bool patching = exchange.patch != Exchange::PatchType::None;  // needs the current document, always read
  if (!conditional && !patching) return forward_write(request, exchange, false);
  if (config_.verify == EtagPolicyConfig::Verify::Cache && !patching) {
    exchange.stage = Exchange::Stage::Recalling;
    exchange.wait.start();
    if (StoreCall call = store_->get(exchange.resource(),
                                     Completion<std::optional<std::string>>::to<&Exchange::on_known>(exchange))) {
      return exchange.wait.park(request, std::move(call));
    }
    if (!exchange.wait.failed() && exchange.known) return recalled(request, exchange, *exchange.known);
  }
  exchange.stage = Exchange::Stage::Verifying;
  return Decision::call({read_of(std::string(request.path), config_.max_body_bytes)});
}

// verify = "cache", holding the turn: the store knows the version.
Decision EtagPolicy::recalled(const RequestView& request, Exchange& exchange, const std::string& known) {
  exchange.stage = Exchange::Stage::Settled;  // until forwarded: a refusal changes nothing
  VersionTags names = decode_version_tags(known);
  return check_preconditions(request, exchange, current_version(true, names.primary(), names));
}

Decision EtagPolicy::on_fetched(const RequestView& request, const FetchedResponse& fetched,
                                std::unique_ptr<ExchangeState>& state) {
  auto* exchange = static_cast<Exchange*>(state.get());
  if (exchange && exchange->stage == Exchange::Stage::CheckingIfMatch) return on_read_if_match(request, fetched, *exchange);
  if (!exchange || exchange->stage != Exchange::Stage::Verifying) return Decision::forward();
  exchange->stage = Exchange::Stage::Settled;  // until forwarded: a refusal changes nothing
  if (fetched.reached && is_success(fetched.status)) {
    Version version = version_of(fetched.headers, fetched.body_complete ? &fetched.body : nullptr);
    record_version(request, exchange->resource(), version, {});
    if (exchange->wants_document && fetched.body_complete) {
      exchange->document = fetched.body;
      exchange->have_document = true;
    }
    if (version.etag) {
      // The re-read is of the writer's variant; the table may know the version's other
      // representations (another client's gzip read), which If-Match may name as well.
      exchange->shown = version.etag;
      exchange->seen = names_of(version);
      exchange->stage = Exchange::Stage::Joining;
      exchange->wait.start();
      if (StoreCall call = store_->get(exchange->resource(),
                                       Completion<std::optional<std::string>>::to<&Exchange::on_known>(*exchange))) {
        return exchange->wait.park(request, std::move(call));
      }
      if (exchange->wait.failed()) return store_unavailable("the ETag store");
      return joined(request, *exchange);
    }
    // Too large to version.
    store_->forget(exchange->resource(), ignored<Done>());
    return check_preconditions(request, *exchange, current_version(true, std::nullopt, VersionTags{}));
  }
  if (!(fetched.reached && is_gone(fetched.status))) {
    counters_.verify_failures.fetch_add(1, std::memory_order_relaxed);
    std::string why = fetched.reached ? "it answered " + std::to_string(fetched.status) + " to GET " +
                                            std::string(request.path)
                                      : "no answer to GET " + std::string(request.path);
    auto problem = Problem::make("version-unavailable", 503, "Current version unknown",
                                 "Could not read the current version of " + single_quoted(exchange->resource()) +
                                     " from the backend (" + why + "), so the write was not forwarded. Retry shortly.");
    problem.extensions.emplace_back("resource", exchange->resource());
    return unavailable(std::move(problem));
  }
  store_->forget(exchange->resource(), ignored<Done>());  // gone
  exchange->document_gone = true;
  return check_preconditions(request, *exchange, CurrentVersion{});
}

// Holding the turn, the re-read's version joined with the names the store knows of it: what was
// just read is the current state, so it is put, not learned.
Decision EtagPolicy::joined(const RequestView& request, Exchange& exchange) {
  exchange.stage = Exchange::Stage::Settled;  // until forwarded: a refusal changes nothing
  VersionTags names = joined_with_known(exchange.known, std::move(exchange.seen));
  store_->put(exchange.resource(), encode_version_tags(names), ignored<Done>());
  return check_preconditions(request, exchange, current_version(true, exchange.shown, names));
}

Decision EtagPolicy::check_preconditions(const RequestView& request, Exchange& exchange,
                                         const CurrentVersion& current) {
  Precondition if_match = parse_precondition(request.headers, kIfMatch);
  Precondition if_none_match = parse_precondition(request.headers, kIfNoneMatch);
  PreconditionOutcome match = evaluate_if_match(if_match, current);
  PreconditionOutcome none_match = evaluate_if_none_match(if_none_match, current);
  if (match == PreconditionOutcome::Fails) {
    if (auto merged = try_merge(request, exchange, if_match, current)) return std::move(*merged);
    return conflict(request, exchange, kIfMatch, if_match, current);
  }
  if (none_match == PreconditionOutcome::Fails) {
    return conflict(request, exchange, kIfNoneMatch, if_none_match, current);
  }
  if (match == PreconditionOutcome::Unverifiable || none_match == PreconditionOutcome::Unverifiable) {
    return unverifiable(exchange.resource(), config_.max_body_bytes,
                        " and refuses conditional writes to it. If-Match: * and unconditional writes are still "
                        "accepted; raising max_body_bytes lets Arbiter version it.");
  }
  return forward_write(request, exchange, true);
}

Decision EtagPolicy::forward_write(const RequestView& request, Exchange& exchange, bool strip_preconditions) {
  if (exchange.patch != Exchange::PatchType::None) return apply_patch(exchange);
  exchange.stage = Exchange::Stage::Forwarded;
  counters_.writes_forwarded.fetch_add(1, std::memory_order_relaxed);
  std::vector<std::string> strip;
  if (strip_preconditions) strip = {std::string(kIfMatch), std::string(kIfNoneMatch)};
  if (request.headers.contains(kRestoreField)) strip.emplace_back(kRestoreField);
  return strip.empty() ? Decision::forward() : Decision::forward_without(std::move(strip));
}

Decision EtagPolicy::conflict(const RequestView& request, const Exchange& exchange, std::string_view failed_field,
                              const Precondition& failed, const CurrentVersion& current, const Overlap* overlap) {
  bool by_if_match = failed_field == kIfMatch;
  std::string detail;
  if (overlap != nullptr) {
    std::string where;
    for (const std::string& pointer : overlap->pointers) where += (where.empty() ? "" : ", ") + (pointer.empty() ? "the whole document" : pointer);
    detail = "The resource changed since your version, and those changes overlap yours at " + where +
             ", so they cannot be merged; nothing was written. GET it again and reapply your change.";
  } else if (!by_if_match && failed.form == Precondition::Form::Any) {
    detail = "The resource already exists; If-None-Match: * only creates it. GET it and send its ETag in If-Match "
             "to change it.";
  } else if (!by_if_match) {
    detail = "The resource's current version is one your If-None-Match excludes; GET it and send its ETag in "
             "If-Match to change it.";
  } else if (current.exists) {
    detail = "The resource changed since your version; GET it again and reapply your change.";
  } else {
    detail = "The resource does not exist (any more); GET it to see, and create it without If-Match.";
  }
  auto problem = Problem::make("edit-conflict", config_.conflict_status, "Edit conflict", std::move(detail));
  problem.extensions.emplace_back("resource", exchange.resource());
  problem.extensions.emplace_back("your_etag", by_if_match ? nlohmann::json(failed.text()) : nlohmann::json(nullptr));
  if (!by_if_match) problem.extensions.emplace_back("your_if_none_match", failed.text());
  problem.extensions.emplace_back("current_etag",
                                  current.etag ? nlohmann::json(*current.etag) : nlohmann::json(nullptr));
  if (overlap != nullptr) {
    problem.extensions.emplace_back("base_etag", overlap->base_etag);
    problem.extensions.emplace_back("conflicts", overlap->pointers);
  }
  HeaderList headers;
  if (current.etag) headers.set(kEtag, *current.etag);

  counters_.conflicts.fetch_add(1, std::memory_order_relaxed);
  FeedEvent event = feed_event(kFeedConflict, request, exchange);
  event.your_etag = std::string(failed.text());
  event.current_etag = current.exists ? current.etag : std::nullopt;
  if (overlap != nullptr) {
    event.base_etag = overlap->base_etag;
    event.conflicts = overlap->pointers;
  }
  event.details = nlohmann::json{{"status", config_.conflict_status}, {"precondition", failed_field}}.dump();
  if (auto id = publish_event(*feed_, std::move(event))) {
    // Where to see both sides, and settle it (proxy/control/conflict_endpoints.h).
    problem.extensions.emplace_back("conflict_id", *id);
    problem.extensions.emplace_back("conflict_record", config_.control_prefix + "/conflicts/" + std::to_string(*id));
  }
  return Decision::reply(std::move(problem), std::move(headers));
}

// ---- Response phase ----

ResponseStep EtagPolicy::on_response(const RequestView& request, ResponseView& response, ExchangeState* state) {
  auto* exchange = static_cast<Exchange*>(state);
  if (!exchange) return ResponseStep::proceed();
  if (history_) add_history_fields(request, response, *exchange);
  if (exchange->role() == Exchange::Role::Write) {
    if (exchange->stage != Exchange::Stage::Forwarded) return ResponseStep::proceed();
    if (!exchange->merged.empty()) response.headers.set("Arbiter-Merge", exchange->merged);
    return on_write_response(request, response, *exchange);
  }
  // A stream is relayed as it arrives (the proxy does not hold it) and has no single version.
  if (is_stream_response(response.headers)) {
    response.headers.remove(kEtag);
    return ResponseStep::proceed();
  }
  if (response.status == 304) {
    // The backend's own 304 (to If-Modified-Since): it carries the current ETag too
    // (RFC 9110 section 15.4.5), learned by a read of the representation when the backend's
    // own tag is not one Arbiter hands out.
    Version version = version_of(response.headers, nullptr);
    if (version.etag) {
      response.headers.set(kEtag, *version.etag);
      return ResponseStep::proceed();
    }
    response.headers.remove(kEtag);
    return ResponseStep::call({read_of(std::string(request.target), config_.max_body_bytes)});
  }
  // 206 carries a part of the representation; its hash would not be the whole one's.
  if (!is_success(response.status) || response.status == 206) return ResponseStep::proceed();
  if (response.body == nullptr && !response.body_withheld) {
    Version version = version_of(response.headers, nullptr);
    if (version.etag) {
      tag_read(request, response, *exchange, version);
      return ResponseStep::proceed();
    }
    // HEAD has no body to hash: GET it. A bodiless GET answer is an empty representation.
    if (request.method == "HEAD") return ResponseStep::call({read_of(std::string(request.path), config_.max_body_bytes)});
    static const std::string kEmpty;
    tag_read(request, response, *exchange, version_of(response.headers, &kEmpty));
    return ResponseStep::proceed();
  }
  tag_read(request, response, *exchange, version_of(response.headers, response.body));
  return ResponseStep::proceed();
}

void EtagPolicy::tag_read(const RequestView& request, ResponseView& response, Exchange& exchange,
                          const Version& version) {
  if (!version.etag) {
    // Too large to version: no tag at all rather than one If-Match would never accept.
    response.headers.remove(kEtag);
    return;
  }
  const std::string& etag = *version.etag;
  response.headers.set(kEtag, etag);
  counters_.reads_tagged.fetch_add(1, std::memory_order_relaxed);
  if (exchange.remember) {
    // Bytes the table already names (the steady state of a resource read again and again)
    // teach it nothing: only a new representation or version pays for its names (the content
    // identity may mean decoding gzip) and for a new entry.
    std::optional<std::string> known = known_at_once(exchange.resource());
    bool current = known && stored_version_names(*known, etag) &&
                   (!version.raw || stored_version_names(*known, *version.raw));
    if (!current) {
      std::string names = encode_version_tags(joined_with_known(known, names_of(version)));
      current = answered_at_once<bool>([&](Completion<bool> done) {
                  return store_->learn(exchange.resource(), names, exchange.seen_sequence, done);
                }).value_or(false);
    }
    // History records what is current: the table names these bytes, or learned them (no write
    // changed the resource since the read began; else a slow read would record an older
    // representation as the newest version).
    if (history_ && current && response.status == 200) record_version(request, exchange.resource(), version, {});
  }
  Precondition if_none_match = parse_precondition(request.headers, kIfNoneMatch);
  bool evaluable = if_none_match.form == Precondition::Form::Any || if_none_match.form == Precondition::Form::Tags;
  // The tags of these bytes: the one handed out, and the hash Arbiter gave them before a
  // backend's tag turned strong.
  CurrentVersion these_bytes{true, etag, {}};
  if (version.raw) these_bytes.also.push_back(*version.raw);
  if (evaluable && evaluate_if_none_match(if_none_match, these_bytes) == PreconditionOutcome::Fails) {
    response.status = 304;
    if (response.body) response.body->clear();
    counters_.not_modified.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  serve_range(request, response, version);
}

void EtagPolicy::serve_range(const RequestView& request, ResponseView& response, const Version& version) {
  auto range = request.headers.find(kRange);
  if (!range || request.method != "GET" || response.status != 200 || response.body == nullptr) return;
  if (auto if_range = request.headers.find(kIfRange)) {
    // RFC 9110 section 13.1.5: an entity-tag matches strongly the representation's tag; a date
    // matches only the exact Last-Modified. Otherwise the whole representation is sent.
    std::string_view validator = without_ows(*if_range);
    bool matches = false;
    if (validator.starts_with('"') || validator.starts_with("W/")) {
      auto tag = parse_entity_tag(validator);
      for (const auto* own : {&version.etag, &version.raw}) {
        auto own_tag = *own ? parse_entity_tag(**own) : std::nullopt;
        matches = matches || (tag && own_tag && strong_match(*tag, *own_tag));
      }
    } else {
      auto last_modified = response.headers.find("Last-Modified");
      matches = last_modified && without_ows(*last_modified) == validator;
    }
    if (!matches) return;
  }
  std::string& body = *response.body;
  ByteRange selected;
  switch (select_byte_range(*range, body.size(), selected)) {
    case RangeSelection::Ignore:
      return;
    case RangeSelection::Satisfiable: {
      std::uint64_t length = body.size();
      body = body.substr(selected.first, selected.last - selected.first + 1);
      response.status = 206;
      response.headers.set("Content-Range", content_range(selected, length));
      return;
    }
    case RangeSelection::Unsatisfiable: {
      std::uint64_t length = body.size();
      auto problem = Problem::make("range-not-satisfiable", 416, "Range not satisfiable",
                                   "The representation has " + std::to_string(length) + " bytes; Range " +
                                       std::string(*range) + " selects none of them.");
      problem.extensions.emplace_back("length", length);
      replace_with_problem(response, problem, request.request_id);
      response.headers.set("Content-Range", "bytes */" + std::to_string(length));
      return;
    }
  }
}

ResponseStep EtagPolicy::on_write_response(const RequestView& request, ResponseView& response,
                                           Exchange& exchange) {
  int status = response.status;
  if (status >= 400 && status <= 499) {
    exchange.stage = Exchange::Stage::Settled;  // refused by the backend: the old tag still holds
    return ResponseStep::proceed();
  }
  if (!is_success(status)) {
    settle_unknown(exchange);  // a 5xx may have written half, a 3xx or 1xx says nothing
    return ResponseStep::proceed();
  }
  if (!still_holds(exchange, response.now)) {
    settle_unknown(exchange);  // overtaken past its lease: another writer may have written since
    return ResponseStep::proceed();
  }
  if (request.method == "DELETE") {
    store_->forget(exchange.resource(), ignored<Done>());
    exchange.stage = Exchange::Stage::Settled;
    return ResponseStep::proceed();
  }
  if (status == 201) {
    if (auto step = on_created(request, response, exchange)) return std::move(*step);
  }
  if (carries_representation(request, response)) {
    Version version = version_of(response.headers, response.body);  // as a read of it would be
    if (version.etag) {
      settle_written(request, response, exchange, version);
      return ResponseStep::proceed();
    }
  }
  Version version = version_of(response.headers, nullptr);  // the backend's strong tag, if trusted
  if (version.etag && !history_) {  // with a history, the new representation is read to record it
    store_->put(exchange.resource(), *version.etag, ignored<Done>());
    exchange.stage = Exchange::Stage::Settled;
    return ResponseStep::proceed();
  }
  // A weak or untrusted backend tag would only mislead a client's next If-Match.
  response.headers.remove(kEtag);
  if (response.body == nullptr && response.body_withheld) {
    settle_unknown(exchange);  // the response streams on; no re-read can happen before it
    return ResponseStep::proceed();
  }
  exchange.stage = Exchange::Stage::Refreshing;
  return ResponseStep::call({read_of(std::string(request.path), config_.max_body_bytes)});
}

std::optional<ResponseStep> EtagPolicy::on_created(const RequestView& request, ResponseView& response,
                                                   Exchange& exchange) {
  // RFC 9110 section 15.3.2: validators on a 201 are those of the created resource, named by
  // Location (else Content-Location; a PUT without either created its target).
  auto location = response.headers.find("Location");
  if (!location) location = response.headers.find("Content-Location");
  std::optional<std::string> target = location ? location_target(*location, request.path) : std::nullopt;
  std::string created = target ? target->substr(0, target->find('?')) : std::string();
  if (keys_lower_case_paths(request)) {  // keyed as a request for it would be
    std::string lowered;
    lower_case_path(created, lowered);
    created = std::move(lowered);
  }
  // The created resource is the target: tagged as any write's answer.
  if (target ? created == exchange.resource() : !location && request.method == "PUT") return std::nullopt;
  // The target (a collection) changed too; its next conditional write re-reads it.
  store_->forget(exchange.resource(), ignored<Done>());
  exchange.stage = Exchange::Stage::Settled;
  if (!target) {
    response.headers.remove(kEtag);
    return ResponseStep::proceed();
  }
  Version version = version_of(response.headers, nullptr);  // the backend's strong tag, if trusted
  if (version.etag) {
    if (auto sequence = sequence_at_once(created)) store_->learn(created, *version.etag, *sequence, ignored<bool>());
    return ResponseStep::proceed();
  }
  response.headers.remove(kEtag);
  if (response.body == nullptr && response.body_withheld) return ResponseStep::proceed();
  exchange.created = std::move(created);
  // Unknown at once: a sequence no entry has, so that the created resource is not learned.
  exchange.created_sequence = sequence_at_once(exchange.created).value_or(kNoSequence);
  return ResponseStep::call({read_of(std::move(*target), config_.max_body_bytes)});
}

void EtagPolicy::on_response_fetched(const RequestView& request, ResponseView& response,
                                     const FetchedResponse& fetched, ExchangeState* state) {
  auto* exchange = static_cast<Exchange*>(state);
  if (!exchange) return;
  bool read_ok = fetched.reached && is_success(fetched.status);
  Version version;
  if (read_ok) version = version_of(fetched.headers, fetched.body_complete ? &fetched.body : nullptr);
  const std::optional<std::string>& etag = version.etag;
  if (exchange->role() == Exchange::Role::Read) {  // a HEAD or a backend's 304, tagged from the GET
    tag_read(request, response, *exchange, version);
    return;
  }
  if (!exchange->created.empty()) {  // a 201, tagged by the resource it created
    if (etag) {
      response.headers.set(kEtag, *etag);
      store_->learn(exchange->created, encode_version_tags(names_of(version)), exchange->created_sequence,
                    ignored<bool>());
    }
    return;
  }
  if (exchange->stage != Exchange::Stage::Refreshing) return;
  if (!still_holds(*exchange, response.now)) {
    settle_unknown(*exchange);  // overtaken past its lease: another writer may have written since
    return;
  }
  if (fetched.reached && is_gone(fetched.status)) {
    store_->forget(exchange->resource(), ignored<Done>());
    exchange->stage = Exchange::Stage::Settled;
    return;
  }
  if (!etag) {
    settle_unknown(*exchange);
    return;
  }
  settle_written(request, response, *exchange, version);
}

bool EtagPolicy::carries_representation(const RequestView& request, const ResponseView& response) const {
  // A 200's content is a representation of the target when its Content-Location names the
  // target (RFC 9110 sections 8.7 and 15.3.1), or when the operator says the backend answers
  // every PUT and PATCH with it (write_response = "representation"; a POST's answer may be about
  // anything). Only a whole, non-empty body.
  if (response.status != 200 || response.body == nullptr || response.body->empty()) return false;
  if (config_.write_response == EtagPolicyConfig::WriteResponse::Representation &&
      (request.method == "PUT" || request.method == "PATCH")) {
    return true;
  }
  auto location = response.headers.find("Content-Location");
  if (!location) return false;
  auto target = location_target(*location, request.path);
  return target && std::string_view(*target).substr(0, target->find('?')) == request.path;
}

void EtagPolicy::settle_written(const RequestView& request, ResponseView& response, Exchange& exchange,
                                const Version& version) {
  store_->put(exchange.resource(), encode_version_tags(names_of(version)), ignored<Done>());
  record_version(request, exchange.resource(), version,
                 exchange.patch != Exchange::PatchType::None ? std::string_view("PATCH") : request.method);
  response.headers.set(kEtag, *version.etag);
  exchange.stage = Exchange::Stage::Settled;
}

// ---- End of the exchange ----

ResponseStep EtagPolicy::on_end(const RequestView& request, const ExchangeOutcome& outcome, ExchangeState* state) {
  (void)request, (void)outcome;
  auto* exchange = static_cast<Exchange*>(state);
  if (!exchange) return ResponseStep::proceed();
  // Whichever way the exchange ended, a write that went upstream and was not settled left the
  // resource in an unknown state: a lost response may still have changed it.
  if (exchange->stage == Exchange::Stage::Forwarded || exchange->stage == Exchange::Stage::Refreshing) {
    settle_unknown(*exchange);
  }
  exchange->turn.reset();  // the next writer's turn, once the outcome is recorded
  return ResponseStep::proceed();
}

std::optional<std::string> EtagPolicy::known_at_once(std::string_view resource) {
  auto known = answered_at_once<std::optional<std::string>>(
      [&](Completion<std::optional<std::string>> done) { return store_->get(resource, done); });
  return known ? std::move(*known) : std::nullopt;
}

std::optional<std::uint64_t> EtagPolicy::sequence_at_once(std::string_view resource) {
  return answered_at_once<std::uint64_t>(
      [&](Completion<std::uint64_t> done) { return store_->sequence(resource, done); });
}

bool EtagPolicy::still_holds(Exchange& exchange, MonotonicTime now) {
  return !exchange.turn || exchange.turn->held(now);
}

void EtagPolicy::settle_unknown(Exchange& exchange) {
  store_->forget(exchange.resource(), ignored<Done>());
  counters_.etag_unknown_after_write.fetch_add(1, std::memory_order_relaxed);
  exchange.stage = Exchange::Stage::Settled;
}

}  // namespace arbiter

namespace arbiter {

std::size_t EtagPolicy::request_body_limit(const RequestView& request) const noexcept {
  return is_write_method(request.method) ? config_.max_body_bytes : 0;
}

std::string EtagPolicy::explain(const RequestView& request) const {
  std::string resource = resource_key(request);
  std::string conflict = std::to_string(config_.conflict_status);
  if (is_read_method(request.method)) {
    std::string text = "read of resource '" + resource + "': a 2xx answer leaves with a strong ETag (source " +
                       source_name(config_) + ", bodies up to " + std::to_string(config_.max_body_bytes) +
                       " bytes are hashed)";
    if (request.headers.contains(kIfNoneMatch)) text += "; If-None-Match matching it gets 304";
    if (request.headers.contains(kIfMatch)) text += "; If-Match is checked against a GET of it first (412 on a mismatch)";
    if (request.headers.contains(kRange)) text += "; Range is served by Arbiter from the whole representation";
    return text;
  }
  if (!is_write_method(request.method)) return "not a read or a write: passed through";
  std::string text = "write to resource '" + resource + "', serialized with every other write to it (at most " +
                     std::to_string(config_.max_queue) + " waiting, " +
                     std::to_string(config_.queue_timeout.count()) + " ms each; past that 503)";
  bool if_match = request.headers.contains(kIfMatch);
  bool if_none_match = request.headers.contains(kIfNoneMatch);
  if (!if_match && !if_none_match) {
    return text + (config_.require_if_match ? "; no If-Match: answered 428, nothing forwarded"
                                            : "; no If-Match: forwarded unconditionally, then the ETag is refreshed");
  }
  std::string verify = config_.verify == EtagPolicyConfig::Verify::Upstream
                           ? "re-reading GET " + std::string(request.path) + " first"
                           : "from the ETag table (re-read only when unknown)";
  if (if_match) {
    text += "; If-Match " + std::string(*request.headers.find(kIfMatch)) +
            " is compared strongly with the current version, learned " + verify + "; a mismatch answers " +
            conflict + " and forwards nothing";
  }
  if (if_none_match) {
    text += "; If-None-Match " + std::string(*request.headers.find(kIfNoneMatch)) +
            " refuses the write (" + conflict + ") when it matches the current version";
  }
  return text + "; a forwarded write goes without If-Match/If-None-Match, and its answer carries the new ETag";
}

}  // namespace arbiter
