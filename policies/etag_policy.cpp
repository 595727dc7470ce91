#include "policies/etag_policy.h"

#include <algorithm>
#include <stdexcept>
#include <utility>

namespace arbiter {

namespace {

constexpr std::string_view kIfMatch = "If-Match";
constexpr std::string_view kIfNoneMatch = "If-None-Match";
constexpr std::string_view kEtag = "ETag";

bool is_read(std::string_view method) noexcept { return method == "GET" || method == "HEAD"; }

bool is_write(std::string_view method) noexcept {
  return method == "PUT" || method == "PATCH" || method == "DELETE" || method == "POST";
}

bool is_success(int status) noexcept { return status >= 200 && status <= 299; }
bool is_gone(int status) noexcept { return status == 404 || status == 410; }

std::string single_quoted(std::string_view text) { return "'" + std::string(text) + "'"; }

// Answers a write could not be taken now, but may be in a moment.
Decision unavailable(Problem problem) { return Decision::reply(std::move(problem), HeaderList{{"Retry-After", "1"}}); }

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

std::optional<std::vector<std::string_view>> template_param_names(std::string_view pattern) {
  std::vector<std::string_view> names;
  std::size_t i = 0;
  while (i < pattern.size()) {
    if (pattern[i] == '}') return std::nullopt;
    if (pattern[i] != '{') {
      ++i;
      continue;
    }
    std::size_t close = pattern.find_first_of("{}", i + 1);
    if (close == std::string_view::npos || pattern[close] != '}' || close == i + 1) return std::nullopt;
    names.push_back(pattern.substr(i + 1, close - i - 1));
    i = close + 1;
  }
  return names;
}

// What one request carries from hook to hook: for a read, the store's sequence when it began;
// for a write, its place in the resource's write queue and how far it got. Destroyed at the
// end of the exchange, which releases the turn.
class EtagPolicy::Exchange final : public ExchangeState {
 public:
  enum class Role : std::uint8_t { Read, Write };
  enum class Stage : std::uint8_t {
    Reading,     // a read, forwarded
    Queued,      // a write waiting for its turn
    Verifying,   // holding the turn, re-reading the current version
    Forwarded,   // the write went upstream; its outcome is not known yet
    Refreshing,  // the write succeeded; re-reading its new version
    Settled,     // the store holds what is known (or the write never went upstream)
  };

  Exchange(EtagPolicy& policy, Role role, std::string resource)
      : stage(role == Role::Read ? Stage::Reading : Stage::Settled),
        policy_(policy),
        role_(role),
        resource_(std::move(resource)) {}

  // Whichever way the exchange ended, a write that went upstream and was not settled left the
  // resource in an unknown state: a lost response may still have changed it.
  ~Exchange() override {
    if (stage == Stage::Forwarded || stage == Stage::Refreshing) policy_.settle_unknown(*this);
  }

  Role role() const noexcept { return role_; }
  const std::string& resource() const noexcept { return resource_; }

  Stage stage;
  std::uint64_t seen_sequence = 0;  // reads: store sequence() when the read began
  bool remember = true;             // reads: may the store learn the tag (see on_read_request)
  MonotonicTime queue_deadline{};
  std::unique_ptr<WriteTurn> turn;  // writes: released with the exchange, or on a queue timeout

 private:
  EtagPolicy& policy_;
  Role role_;
  std::string resource_;
};

EtagPolicy::EtagPolicy(std::string route_name, EtagPolicyConfig config, std::shared_ptr<VersionStore> store,
                       std::shared_ptr<ConflictLog> conflicts)
    : route_name_(std::move(route_name)),
      config_(std::move(config)),
      store_(std::move(store)),
      conflicts_(conflicts ? std::move(conflicts) : std::make_shared<ConflictLog>()) {
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
  return snapshot;
}

std::vector<ConflictRecord> EtagPolicy::recent_conflicts() const { return conflicts_->recent(); }

std::string EtagPolicy::resource_key(const RequestView& request) const {
  // The path and the {param}s are normalised already (one spelling per resource).
  if (config_.resource.empty()) return std::string(request.resource_path.empty() ? request.path : request.resource_path);
  std::string key;
  std::string_view pattern = config_.resource;
  std::size_t i = 0;
  while (i < pattern.size()) {
    std::size_t open = pattern.find('{', i);
    if (open == std::string_view::npos) break;
    std::size_t close = pattern.find('}', open);  // balanced: checked by the constructor
    key.append(pattern.substr(i, open - i));
    std::string_view name = pattern.substr(open + 1, close - open - 1);
    auto param = std::find_if(request.params.begin(), request.params.end(),
                              [&](const PathParam& p) { return p.name == name; });
    // The loader refuses names the route's path does not capture; keep the text if one slips by.
    key.append(param != request.params.end() ? param->value : pattern.substr(open, close - open + 1));
    i = close + 1;
  }
  key.append(pattern.substr(std::min(i, pattern.size())));
  return key;
}

EtagPolicy::Version EtagPolicy::version_of(const HeaderList& headers, const std::string* body) const {
  if (config_.source == EtagPolicyConfig::Source::Auto) {
    if (auto backend_etag = headers.find(kEtag)) {
      if (auto tag = parse_entity_tag(*backend_etag); tag && !tag->weak) return {std::string(tag->opaque_tag)};
    }
  }
  if (body == nullptr || body->size() > config_.max_body_bytes) return {std::nullopt};
  if (config_.source == EtagPolicyConfig::Source::JsonPointer) {
    // A body that is not JSON, or has no value there, is still versioned: by its hash.
    if (auto etag = etag_from_json_pointer(*body, config_.json_pointer)) return {std::move(etag)};
  }
  return {mint_etag(*body)};
}

// ---- Request phase ----

Decision EtagPolicy::on_request(const RequestView& request, std::unique_ptr<ExchangeState>& state) {
  if (auto* exchange = static_cast<Exchange*>(state.get()); exchange && exchange->stage == Exchange::Stage::Queued) {
    if (exchange->turn->granted()) return with_the_turn(request, *exchange);
    if (request.now < exchange->queue_deadline) return Decision::wait_until(exchange->queue_deadline);
    exchange->turn.reset();  // leaves the queue
    exchange->stage = Exchange::Stage::Settled;
    counters_.queue_timeouts.fetch_add(1, std::memory_order_relaxed);
    auto problem = Problem::make("write-queue-timeout", 503, "Write waited too long",
                                 "Other writes to " + single_quoted(exchange->resource()) + " kept it waiting for " +
                                     std::to_string(config_.queue_timeout.count()) +
                                     " ms; nothing was written. Retry shortly.");
    problem.extensions.emplace_back("resource", exchange->resource());
    return unavailable(std::move(problem));
  }
  if (is_read(request.method)) return on_read_request(request, state);
  if (is_write(request.method)) return on_write_request(request, state);
  return Decision::forward();
}

Decision EtagPolicy::on_read_request(const RequestView& request, std::unique_ptr<ExchangeState>& state) {
  auto exchange = std::make_unique<Exchange>(*this, Exchange::Role::Read, resource_key(request));
  exchange->seen_sequence = store_->sequence(exchange->resource());
  // A read with a query may be a different representation (a projection, another format)
  // than the one a write re-reads: it is tagged, but the store does not learn its tag.
  exchange->remember = request.query.empty();
  state = std::move(exchange);
  // The backend would judge If-None-Match against tags it never made; Arbiter answers it.
  if (request.headers.contains(kIfNoneMatch)) return Decision::forward_without({std::string(kIfNoneMatch)});
  return Decision::forward();
}

Decision EtagPolicy::on_write_request(const RequestView& request, std::unique_ptr<ExchangeState>& state) {
  for (std::string_view field : {kIfMatch, kIfNoneMatch}) {
    Precondition precondition = parse_precondition(request.headers, field);
    if (precondition.form != Precondition::Form::Malformed) continue;
    return Decision::reply(Problem::make("malformed-precondition", 400, "Malformed precondition",
                                         std::string(field) +
                                             " must be * or a list of entity-tags such as \"abc\" or W/\"abc\"; got: " +
                                             precondition.text));
  }
  std::string resource = resource_key(request);
  Precondition if_match = parse_precondition(request.headers, kIfMatch);
  Precondition if_none_match = parse_precondition(request.headers, kIfNoneMatch);
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

  auto exchange = std::make_unique<Exchange>(*this, Exchange::Role::Write, std::move(resource));
  exchange->turn = store_->queue_write(exchange->resource(), request.waker, config_.max_queue);
  if (!exchange->turn) {
    counters_.queue_full.fetch_add(1, std::memory_order_relaxed);
    std::string waiting = config_.max_queue == 0
                              ? "Another write to " + single_quoted(exchange->resource()) +
                                    " is in progress and this route lets no other wait for it"
                              : std::to_string(config_.max_queue) + " writes to " +
                                    single_quoted(exchange->resource()) + " are already waiting their turn";
    auto problem = Problem::make("write-queue-full", 503, "Too many writes waiting",
                                 waiting + "; nothing was written. Retry shortly.");
    problem.extensions.emplace_back("resource", exchange->resource());
    return unavailable(std::move(problem));
  }
  Exchange& placed = *exchange;
  state = std::move(exchange);
  if (!placed.turn->granted()) {
    placed.stage = Exchange::Stage::Queued;
    placed.queue_deadline = request.now + config_.queue_timeout;
    return Decision::wait_until(placed.queue_deadline);
  }
  return with_the_turn(request, placed);
}

Decision EtagPolicy::with_the_turn(const RequestView& request, Exchange& exchange) {
  bool conditional = request.headers.contains(kIfMatch) || request.headers.contains(kIfNoneMatch);
  if (!conditional) return forward_write(exchange, false);
  if (config_.verify == EtagPolicyConfig::Verify::Cache) {
    if (auto known = store_->get(exchange.resource())) {
      return check_preconditions(request, exchange, CurrentVersion{true, std::move(known)});
    }
  }
  exchange.stage = Exchange::Stage::Verifying;
  return Decision::fetch(std::string(request.path));
}

Decision EtagPolicy::on_fetched(const RequestView& request, const FetchedResponse& fetched,
                                std::unique_ptr<ExchangeState>& state) {
  auto* exchange = static_cast<Exchange*>(state.get());
  if (!exchange || exchange->stage != Exchange::Stage::Verifying) return Decision::forward();
  exchange->stage = Exchange::Stage::Settled;  // until forwarded: a refusal changes nothing
  CurrentVersion current;
  if (fetched.reached && is_success(fetched.status)) {
    current.exists = true;
    current.etag = version_of(fetched.headers, fetched.body_complete ? &fetched.body : nullptr).etag;
  } else if (!(fetched.reached && is_gone(fetched.status))) {
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
  // Holding the turn, what was just read is the current state: put, not learn.
  if (current.etag) {
    store_->put(exchange->resource(), *current.etag);
  } else {
    store_->forget(exchange->resource());  // gone, or too large to version
  }
  return check_preconditions(request, *exchange, current);
}

Decision EtagPolicy::check_preconditions(const RequestView& request, Exchange& exchange,
                                         const CurrentVersion& current) {
  Precondition if_match = parse_precondition(request.headers, kIfMatch);
  Precondition if_none_match = parse_precondition(request.headers, kIfNoneMatch);
  PreconditionOutcome match = evaluate_if_match(if_match, current);
  PreconditionOutcome none_match = evaluate_if_none_match(if_none_match, current);
  if (match == PreconditionOutcome::Fails) return conflict(request, exchange, kIfMatch, if_match, current);
  if (none_match == PreconditionOutcome::Fails) {
    return conflict(request, exchange, kIfNoneMatch, if_none_match, current);
  }
  if (match == PreconditionOutcome::Unverifiable || none_match == PreconditionOutcome::Unverifiable) {
    auto problem = Problem::make(
        "version-unverifiable", 412, "Version cannot be verified",
        "The representation of " + single_quoted(exchange.resource()) +
            " is larger than this route's max_body_bytes (" +
            std::to_string(config_.max_body_bytes) +
            " bytes), so Arbiter cannot compute its version and refuses conditional writes to it. If-Match: * and "
            "unconditional writes are still accepted; raising max_body_bytes lets Arbiter version it.");
    problem.extensions.emplace_back("resource", exchange.resource());
    problem.extensions.emplace_back("max_body_bytes", config_.max_body_bytes);
    return Decision::reply(std::move(problem));
  }
  return forward_write(exchange, true);
}

Decision EtagPolicy::forward_write(Exchange& exchange, bool strip_preconditions) {
  exchange.stage = Exchange::Stage::Forwarded;
  counters_.writes_forwarded.fetch_add(1, std::memory_order_relaxed);
  if (!strip_preconditions) return Decision::forward();
  return Decision::forward_without({std::string(kIfMatch), std::string(kIfNoneMatch)});
}

Decision EtagPolicy::conflict(const RequestView& request, const Exchange& exchange, std::string_view failed_field,
                              const Precondition& failed, const CurrentVersion& current) {
  bool by_if_match = failed_field == kIfMatch;
  std::string detail;
  if (!by_if_match && failed.form == Precondition::Form::Any) {
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
  problem.extensions.emplace_back("your_etag", by_if_match ? nlohmann::json(failed.text) : nlohmann::json(nullptr));
  if (!by_if_match) problem.extensions.emplace_back("your_if_none_match", failed.text);
  problem.extensions.emplace_back("current_etag",
                                  current.etag ? nlohmann::json(*current.etag) : nlohmann::json(nullptr));
  HeaderList headers;
  if (current.etag) headers.set(kEtag, *current.etag);

  counters_.conflicts.fetch_add(1, std::memory_order_relaxed);
  conflicts_->record(ConflictRecord{request.now,
                                    route_name_,
                                    exchange.resource(),
                                    std::string(request.method),
                                    std::string(failed_field),
                                    failed.text,
                                    current.exists ? current.etag : std::nullopt,
                                    std::string(request.request_id)});
  return Decision::reply(std::move(problem), std::move(headers));
}

// ---- Response phase ----

ResponseStep EtagPolicy::on_response(const RequestView& request, ResponseView& response, ExchangeState* state) {
  auto* exchange = static_cast<Exchange*>(state);
  if (!exchange) return ResponseStep::proceed();
  if (exchange->role() == Exchange::Role::Write) {
    if (exchange->stage != Exchange::Stage::Forwarded) return ResponseStep::proceed();
    return on_write_response(request, response, *exchange);
  }
  // 206 carries a part of the representation; its hash would not be the whole one's.
  if (!is_success(response.status) || response.status == 206) return ResponseStep::proceed();
  if (response.body == nullptr && !response.body_withheld) {
    Version version = version_of(response.headers, nullptr);
    if (version.etag) {
      tag_read(request, response, *exchange, version.etag);
      return ResponseStep::proceed();
    }
    // HEAD has no body to hash: GET it. A bodiless GET answer is an empty representation.
    if (request.method == "HEAD") return ResponseStep::fetch(std::string(request.path));
    static const std::string kEmpty;
    tag_read(request, response, *exchange, version_of(response.headers, &kEmpty).etag);
    return ResponseStep::proceed();
  }
  tag_read(request, response, *exchange, version_of(response.headers, response.body).etag);
  return ResponseStep::proceed();
}

void EtagPolicy::tag_read(const RequestView& request, ResponseView& response, Exchange& exchange,
                          const std::optional<std::string>& etag) {
  if (!etag) {
    // Too large to version: no tag at all rather than one If-Match would never accept.
    response.headers.remove(kEtag);
    return;
  }
  response.headers.set(kEtag, *etag);
  counters_.reads_tagged.fetch_add(1, std::memory_order_relaxed);
  if (exchange.remember) store_->learn(exchange.resource(), *etag, exchange.seen_sequence);
  Precondition if_none_match = parse_precondition(request.headers, kIfNoneMatch);
  bool evaluable = if_none_match.form == Precondition::Form::Any || if_none_match.form == Precondition::Form::Tags;
  if (evaluable && evaluate_if_none_match(if_none_match, CurrentVersion{true, etag}) == PreconditionOutcome::Fails) {
    response.status = 304;
    if (response.body) response.body->clear();
    counters_.not_modified.fetch_add(1, std::memory_order_relaxed);
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
  if (request.method == "DELETE") {
    store_->forget(exchange.resource());
    exchange.stage = Exchange::Stage::Settled;
    return ResponseStep::proceed();
  }
  Version version = version_of(response.headers, nullptr);  // the backend's strong tag, if trusted
  if (version.etag) {
    store_->put(exchange.resource(), *version.etag);
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
  return ResponseStep::fetch(std::string(request.path));
}

void EtagPolicy::on_response_fetched(const RequestView& request, ResponseView& response,
                                     const FetchedResponse& fetched, ExchangeState* state) {
  auto* exchange = static_cast<Exchange*>(state);
  if (!exchange) return;
  bool read_ok = fetched.reached && is_success(fetched.status);
  std::optional<std::string> etag;
  if (read_ok) etag = version_of(fetched.headers, fetched.body_complete ? &fetched.body : nullptr).etag;
  if (exchange->role() == Exchange::Role::Read) {  // a HEAD, tagged from the GET
    tag_read(request, response, *exchange, etag);
    return;
  }
  if (exchange->stage != Exchange::Stage::Refreshing) return;
  if (fetched.reached && is_gone(fetched.status)) {
    store_->forget(exchange->resource());
    exchange->stage = Exchange::Stage::Settled;
    return;
  }
  if (!etag) {
    settle_unknown(*exchange);
    return;
  }
  store_->put(exchange->resource(), *etag);
  response.headers.set(kEtag, *etag);
  exchange->stage = Exchange::Stage::Settled;
}

void EtagPolicy::settle_unknown(Exchange& exchange) {
  store_->forget(exchange.resource());
  counters_.etag_unknown_after_write.fetch_add(1, std::memory_order_relaxed);
  exchange.stage = Exchange::Stage::Settled;
}

}  // namespace arbiter

namespace arbiter {

std::string EtagPolicy::explain(const RequestView& request) const {
  std::string resource = resource_key(request);
  std::string conflict = std::to_string(config_.conflict_status);
  if (is_read(request.method)) {
    std::string text = "read of resource '" + resource + "': a 2xx answer leaves with a strong ETag (source " +
                       source_name(config_) + ", bodies up to " + std::to_string(config_.max_body_bytes) +
                       " bytes are hashed)";
    if (request.headers.contains(kIfNoneMatch)) text += "; If-None-Match matching it gets 304";
    return text;
  }
  if (!is_write(request.method)) return "not a read or a write: passed through";
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
