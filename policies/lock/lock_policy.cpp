#include "policies/lock/lock_policy.h"

#include <algorithm>
#include <stdexcept>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "policies/config_reader.h"  // single_quoted, duration_text
#include "policies/resource_key.h"
#include "proxy/http/http_time.h"
#include "proxy/http/if_header.h"
#include "proxy/http/forwarding.h"  // is_read_method, is_write_method

namespace arbiter {

namespace {

// Whole seconds from now until `until`, at least 1 (a Retry-After or "seconds left").
std::int64_t seconds_until(MonotonicTime until, MonotonicTime now) {
  auto left = std::chrono::ceil<std::chrono::seconds>(until - now).count();
  return std::max<std::int64_t>(1, left);
}

// "Second-N" / "Infinite" (RFC 4918 section 10.7): the first usable entry of the list, capped.
// nullopt when the field is there but names no usable timeout.
std::optional<std::chrono::seconds> requested_timeout(const HeaderList& headers, const LockSettings& settings) {
  auto field = headers.find("Timeout");
  if (!field) return settings.default_timeout;
  std::optional<std::chrono::seconds> chosen;
  for_each_list_element(*field, [&](std::string_view element) {
    if (chosen) return;
    if (iequals(element, "Infinite")) {
      chosen = settings.max_timeout;
    } else if (element.size() > 7 && iequals(element.substr(0, 7), "Second-")) {
      std::string_view digits = element.substr(7);
      if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) return;
      // RFC 4918 section 10.7 bounds N at 2^32-1; any longer run of digits is as good as Infinite.
      if (digits.size() > 12) {
        chosen = settings.max_timeout;
        return;
      }
      auto seconds = std::chrono::seconds(std::stoll(std::string(digits)));
      chosen = std::clamp(seconds, std::chrono::seconds(1), settings.max_timeout);
    }
  });
  return chosen;
}

// The owner label of a LOCK body: JSON {"owner": "..."}, or the text of WebDAV's <owner> element
// (any namespace prefix, tags dropped). nullopt with `why` for a body that is neither.
std::optional<std::string> owner_of(std::string_view body, std::string& why) {
  std::string_view trimmed = without_ows(body);
  while (!trimmed.empty() && (trimmed.front() == '\r' || trimmed.front() == '\n')) trimmed.remove_prefix(1);
  if (trimmed.empty()) return std::string();
  if (trimmed.front() == '<') {
    // <D:lockinfo>...<D:owner>text or <D:href>text</D:href></D:owner>...
    std::size_t open = std::string_view::npos;
    for (std::size_t at = trimmed.find('<'); at != std::string_view::npos; at = trimmed.find('<', at + 1)) {
      std::size_t end = trimmed.find_first_of(" >/", at + 1);
      if (end == std::string_view::npos) break;
      std::string_view name = trimmed.substr(at + 1, end - at - 1);
      if (name == "owner" || name.ends_with(":owner")) {
        open = trimmed.find('>', at);
        break;
      }
    }
    if (open == std::string_view::npos || trimmed[open - 1] == '/') return std::string();
    std::size_t close = trimmed.find("owner>", open);
    std::string_view inside = trimmed.substr(open + 1, close == std::string_view::npos ? 0 : close - open - 1);
    if (std::size_t tag = inside.rfind("</"); tag != std::string_view::npos && inside.find('<', tag + 1) == std::string_view::npos) {
      inside = inside.substr(0, tag);  // the closing tag's "</D:" before "owner>"
    }
    std::string text;
    bool in_tag = false;
    for (std::size_t i = 0; i < inside.size(); ++i) {
      char c = inside[i];
      if (c == '<') {
        in_tag = true;
      } else if (c == '>') {
        in_tag = false;
      } else if (in_tag) {
      } else if (c == '&') {  // XML's predefined entities; others are kept as written
        static constexpr std::pair<std::string_view, char> kEntities[] = {
            {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
        auto entity = std::find_if(std::begin(kEntities), std::end(kEntities),
                                   [&](const auto& e) { return inside.substr(i).starts_with(e.first); });
        if (entity == std::end(kEntities)) {
          text.push_back(c);
        } else {
          text.push_back(entity->second);
          i += entity->first.size() - 1;
        }
      } else {
        text.push_back(c);
      }
    }
    std::string_view label = without_ows(text);
    while (!label.empty() && (label.front() == '\n' || label.front() == '\r')) label.remove_prefix(1);
    while (!label.empty() && (label.back() == '\n' || label.back() == '\r')) label.remove_suffix(1);
    return std::string(without_ows(label));
  }
  auto json = nlohmann::json::parse(trimmed, nullptr, false);
  if (json.is_discarded() || !json.is_object()) {
    why = "The LOCK body is neither a JSON object like {\"owner\": \"...\"} nor WebDAV's XML lockinfo.";
    return std::nullopt;
  }
  auto owner = json.find("owner");
  if (owner == json.end() || owner->is_null()) return std::string();
  if (!owner->is_string()) {
    why = "\"owner\" must be a string, a label for whoever holds the lock.";
    return std::nullopt;
  }
  return owner->get<std::string>();
}

// "has expired", "was released", ...: how a lock ended, for a problem's detail.
std::string how_it_ended(LockEnd end) {
  switch (end) {
    case LockEnd::Expired: return "has expired";
    case LockEnd::Released: return "was released";
    case LockEnd::Broken: return "was broken by an operator";
    case LockEnd::Dropped: return "was dropped when its route's [route.lock] was removed";
  }
  return "has ended";
}

// The lock tokens (urn:uuid) anywhere in the If field, as submitted (RFC 4918 section 10.4.1).
std::vector<LockToken> submitted_tokens(const std::vector<IfList>& lists) {
  std::vector<LockToken> tokens;
  for (const IfList& list : lists) {
    for (const IfCondition& condition : list.conditions) {
      if (condition.is_etag) continue;
      if (auto token = LockToken::parse(condition.value)) {
        if (std::find(tokens.begin(), tokens.end(), *token) == tokens.end()) tokens.push_back(*token);
      }
    }
  }
  return tokens;
}

// The lock a body-less LOCK refreshes (RFC 4918 section 9.10.2): the first token the If field
// asserts, not negates, in a list that applies to `path`; nullopt when it asserts none.
std::optional<LockToken> refresh_token(const std::vector<IfList>& lists, std::string_view path) {
  for (const IfList& list : lists) {
    if (!if_list_applies(list, path)) continue;
    for (const IfCondition& condition : list.conditions) {
      if (condition.is_etag || condition.negated) continue;
      if (auto token = LockToken::parse(condition.value)) return token;
    }
  }
  return std::nullopt;
}

// The list of the If field that holds for this resource as far as its lock tokens go (entity
// tags count as true here: see etags_to_check): nullptr when no list applies at all (the field
// then holds), nullopt when none holds.
std::optional<const IfList*> holding_list(const std::vector<IfList>& lists, std::string_view path,
                                          const std::vector<LockToken>& tokens,
                                          const std::vector<TokenState>& states) {
  auto current = [&](std::string_view uri) {
    auto token = LockToken::parse(uri);
    if (!token) return false;
    auto it = std::find(tokens.begin(), tokens.end(), *token);
    return it != tokens.end() && states[static_cast<std::size_t>(it - tokens.begin())] == TokenState::Current;
  };
  bool any_applies = false;
  for (const IfList& list : lists) {
    if (!if_list_applies(list, path)) continue;
    any_applies = true;
    bool holds = std::all_of(list.conditions.begin(), list.conditions.end(), [&](const IfCondition& condition) {
      return condition.is_etag || current(condition.value) != condition.negated;
    });
    if (holds) return &list;
  }
  if (!any_applies) return nullptr;
  return std::nullopt;
}

bool if_holds(const std::vector<IfList>& lists, std::string_view path, const std::vector<LockToken>& tokens,
              const std::vector<TokenState>& states) {
  return holding_list(lists, path, tokens, states).has_value();
}

// The entity tags the holding list asks for (`If: (<token> ["etag"])`), as an If-Match value for
// the route's ETag policy to check (or, without one, the backend); empty when it asks for none.
std::string etags_to_check(const std::optional<const IfList*>& holding) {
  std::string tags;
  if (!holding || *holding == nullptr) return tags;
  for (const IfCondition& condition : (*holding)->conditions) {
    if (!condition.is_etag || condition.negated) continue;
    if (!tags.empty()) tags += ", ";
    tags += condition.value;
  }
  return tags;
}

}  // namespace

// One request's dealings with the lock: the store call in progress, its place in the resource's
// queue, and what it submitted.
class LockPolicy::Exchange final : public ExchangeState {
 public:
  void on_answer(StoreResult<LockAnswer>&& result) {
    answer = std::move(result.value);
    wait.answered(result.ok());
  }
  void on_change(StoreResult<LockChange>&& result) {
    change = std::move(result.value);
    wait.answered(result.ok());
  }
  void on_etag(StoreResult<std::optional<std::string>>&& result) {
    if (result.ok()) etag = std::move(result.value);
  }

  enum class Step : std::uint8_t { Ask, Refresh, Unlock } step = Step::Ask;
  std::string resource;
  std::string client;
  std::string owner;
  std::chrono::seconds timeout{0};
  std::optional<std::vector<IfList>> if_lists;
  std::vector<LockToken> tokens;
  LockToken token;  // refresh, unlock
  LockAnswer answer;
  LockChange change;
  std::optional<std::string> etag;
  std::unique_ptr<LockPlace> place;  // while queued
  MonotonicTime queued_since{};
  MonotonicTime wait_deadline{};
  bool waiting = false;  // queued, until it goes on or gives up
  StoreWait wait;        // declared last: cancelled before the place goes
};

LockPolicy::LockPolicy(std::string route, LockSettings settings, std::shared_ptr<LockStore> store,
                       std::shared_ptr<VersionStore> versions, std::shared_ptr<ConflictFeed> feed)
    : route_(std::move(route)),
      settings_(std::move(settings)),
      store_(std::move(store)),
      versions_(std::move(versions)),
      feed_(std::move(feed)) {
  if (!store_) throw std::invalid_argument("lock: no lock store");
  if (settings_.max_timeout.count() <= 0 || settings_.default_timeout.count() <= 0 ||
      settings_.default_timeout > settings_.max_timeout) {
    throw std::invalid_argument("lock: timeouts must be positive, default_timeout at most max_timeout");
  }
  if (settings_.key == KeyKind::Header && settings_.header.empty()) throw std::invalid_argument("lock: keyed by no header");
}

LockCounters LockPolicy::counters() const noexcept {
  auto read = [](const std::atomic<std::uint64_t>& counter) { return counter.load(std::memory_order_relaxed); };
  return {read(counters_.granted), read(counters_.refreshed), read(counters_.released), read(counters_.refused),
          read(counters_.queued)};
}

std::array<std::uint64_t, LockPolicy::kWaitBuckets.size() + 1> LockPolicy::wait_histogram() const noexcept {
  std::array<std::uint64_t, kWaitBuckets.size() + 1> out{};
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = counters_.wait_buckets[i].load(std::memory_order_relaxed);
  return out;
}

double LockPolicy::wait_seconds_sum() const noexcept {
  return static_cast<double>(counters_.wait_micros.load(std::memory_order_relaxed)) / 1e6;
}

std::size_t LockPolicy::request_body_limit(const RequestView& request) const noexcept {
  return request.method == "LOCK" ? kMaxLockBody : 0;
}

Decision LockPolicy::on_request(const RequestView& request, std::unique_ptr<ExchangeState>& state) {
  if (auto* exchange = static_cast<Exchange*>(state.get())) {
    if (exchange->wait.parked()) {  // resumed while the store's answer was outstanding
      if (!exchange->wait.resume(request.now)) return Decision::wait_until(exchange->wait.deadline());
      return resumed(request, state, *exchange);
    }
    if (exchange->waiting) return guard(request, state, *exchange);  // woken, or its deadline
    return Decision::forward();
  }

  bool locking = request.method == "LOCK", unlocking = request.method == "UNLOCK";
  bool guarded = is_write_method(request.method) || (settings_.block_reads && is_read_method(request.method));
  if (!locking && !unlocking && !guarded) return Decision::forward();

  auto* exchange = new Exchange;
  state.reset(exchange);
  exchange->resource = resource_key(request, settings_.resource);
  if (auto field = request.headers.find("If")) {
    exchange->if_lists = parse_if_header(*field);
    if (!exchange->if_lists) {
      state.reset();
      return Decision::reply(Problem::make("malformed-if", 400, "Malformed If field",
                                           "The If field does not follow RFC 4918 section 10.4, e.g. "
                                           "If: (<urn:uuid:...>) or If: (<urn:uuid:...> [\"etag\"])."));
    }
    exchange->tokens = submitted_tokens(*exchange->if_lists);
  }
  if (unlocking) return unlock(request, state, *exchange);
  exchange->client = request_key(request, settings_.key, settings_.header);
  if (locking) {
    bool empty_body = request.body == nullptr || without_ows(*request.body).empty();
    if (!exchange->tokens.empty() && empty_body) {
      auto token = refresh_token(*exchange->if_lists, request.path);
      if (!token) {
        state.reset();
        return Decision::reply(Problem::make(
            "malformed-lock-refresh", 400, "No lock to refresh",
            "A LOCK without a body refreshes the lock whose token the If field names, as If: (<urn:uuid:...>) "
            "for this resource (RFC 4918 section 9.10.2); this one names none (a token under Not, or in a list "
            "tagged for another resource). Send the lock's token, or a lockinfo body for a new lock."));
      }
      exchange->step = Exchange::Step::Refresh;
      exchange->token = *token;
      auto timeout = requested_timeout(request.headers, settings_);
      if (!timeout) {
        state.reset();
        return malformed_timeout();
      }
      exchange->timeout = *timeout;
      return refresh(request, state, *exchange);
    }
    if (auto refused = lock_request(request, *exchange)) {
      state.reset();
      return std::move(*refused);
    }
  }
  return guard(request, state, *exchange);
}

std::optional<Decision> LockPolicy::lock_request(const RequestView& request, Exchange& exchange) const {
  auto timeout = requested_timeout(request.headers, settings_);
  if (!timeout) return malformed_timeout();
  exchange.timeout = *timeout;
  std::string why;
  auto owner = owner_of(request.body ? std::string_view(*request.body) : std::string_view(), why);
  if (!owner) return Decision::reply(Problem::make("malformed-lock-request", 400, "Malformed LOCK body", why));
  if (owner->size() > kMaxOwner) {
    return Decision::reply(Problem::make("malformed-lock-request", 400, "Owner label too long",
                                         "The owner label is " + std::to_string(owner->size()) + " bytes; at most " +
                                             std::to_string(kMaxOwner) + " are kept."));
  }
  exchange.owner = std::move(*owner);
  return std::nullopt;
}

Decision LockPolicy::malformed_timeout() const {
  return Decision::reply(Problem::make("malformed-timeout", 400, "Malformed Timeout field",
                                       "Timeout must be Second-N or Infinite (RFC 4918 section 10.7); "
                                       "leave it out for the route's default_timeout (" +
                                           std::to_string(settings_.default_timeout.count()) + " s)."));
}

// Asks the store whether the request may go on (a LOCK: be granted), first or again.
Decision LockPolicy::guard(const RequestView& request, std::unique_ptr<ExchangeState>& state, Exchange& exchange) {
  LockAsk ask;
  ask.kind = request.method == "LOCK" ? LockAsk::Kind::Lock : LockAsk::Kind::Write;
  ask.resource = exchange.resource;
  ask.route = route_;
  ask.client = exchange.client;
  ask.owner = exchange.owner;
  ask.tokens = exchange.tokens;
  ask.timeout = exchange.timeout;
  ask.now = request.now;
  ask.max_locks = settings_.max_locks;
  ask.max_locks_per_client = settings_.max_locks_per_client;
  ask.queue = settings_.wait.count() > 0;
  ask.max_waiters = settings_.max_waiters;
  ask.waker = request.waker;
  ask.place = exchange.place.get();
  exchange.step = Exchange::Step::Ask;
  exchange.wait.start();
  if (StoreCall call = store_->ask(ask, Completion<LockAnswer>::to<&Exchange::on_answer>(exchange))) {
    return exchange.wait.park(request, std::move(call));
  }
  return resumed(request, state, exchange);
}

// The store answered (at once, or after the request parked on it): the answer of the step, or
// 503 when the store failed or did not answer in time.
Decision LockPolicy::resumed(const RequestView& request, std::unique_ptr<ExchangeState>& state, Exchange& exchange) {
  if (exchange.wait.failed()) {
    stop_waiting(exchange, request.now);
    state.reset();
    return store_unavailable("the lock store");
  }
  switch (exchange.step) {
    case Exchange::Step::Ask:
      return answered(request, state, exchange);
    case Exchange::Step::Refresh:
      return refreshed(request, state, exchange);
    case Exchange::Step::Unlock:
      return unlocked(request, state, exchange);
  }
  return answered(request, state, exchange);
}

Decision LockPolicy::answered(const RequestView& request, std::unique_ptr<ExchangeState>& state, Exchange& exchange) {
  LockAnswer& answer = exchange.answer;
  bool locking = request.method == "LOCK";
  if (answer.place) exchange.place = std::move(answer.place);
  // A write whose If field is false for this resource (its lock token ended, say) goes nowhere.
  if (!locking && exchange.if_lists && !if_holds(*exchange.if_lists, request.path, exchange.tokens, answer.tokens)) {
    bool ended = std::find(answer.tokens.begin(), answer.tokens.end(), TokenState::Ended) != answer.tokens.end();
    LockEnd how = answer.ended;
    stop_waiting(exchange, request.now);
    state.reset();  // `exchange` and `answer` go with it
    std::string detail = ended ? "The lock of the submitted token " + how_it_ended(how) +
                                     "; nothing was forwarded. LOCK the resource again and retry with the new token."
                               : "No list of the If field holds for this resource (RFC 4918 section 10.4): a lock "
                                 "token that is not this resource's current one. Nothing was forwarded.";
    auto problem = Problem::make("lock-token-invalid", 412, "Precondition failed", detail);
    if (ended) problem.extensions.emplace_back("lock", std::string(lock_end_name(how)));
    return Decision::reply(std::move(problem));
  }
  switch (answer.outcome) {
    case LockAnswer::Outcome::Granted:
      stop_waiting(exchange, request.now);
      exchange.place.reset();
      counters_.granted.fetch_add(1, std::memory_order_relaxed);
      return granted(request, exchange);
    case LockAnswer::Outcome::Admitted: {
      stop_waiting(exchange, request.now);
      std::uint64_t fence = answer.fence;
      exchange.place.reset();
      if (settings_.require && fence == 0 && is_write_method(request.method)) {
        auto problem = Problem::make("lock-required", 428, "Lock required",
                                     "Route '" + route_ + "' takes writes only from the holder of the resource's lock: "
                                     "LOCK " + exchange.resource + " first, then send the write with If: (<lock token>).");
        state.reset();
        return Decision::reply(std::move(problem));
      }
      Decision forward = exchange.if_lists ? Decision::forward_without({"If"}) : Decision::forward();
      // If: (<token> ["etag"]) conditions the write on the ETag too: as If-Match, which the
      // route's ETag policy (after this one) checks, or else the backend.
      if (exchange.if_lists && !request.headers.contains("If-Match")) {
        std::string tags = etags_to_check(holding_list(*exchange.if_lists, request.path, exchange.tokens, answer.tokens));
        if (!tags.empty()) forward = std::move(forward).with_field("If-Match", std::move(tags));
      }
      if (fence != 0 && is_write_method(request.method) && !settings_.fence_header.empty()) {
        forward = std::move(forward).with_field(settings_.fence_header, std::to_string(fence));
      }
      return forward;
    }
    case LockAnswer::Outcome::Queued: {
      if (!exchange.waiting) {
        exchange.waiting = true;
        exchange.queued_since = request.now;
        exchange.wait_deadline = request.now + settings_.wait;
        counters_.queued.fetch_add(1, std::memory_order_relaxed);
      }
      if (request.now < exchange.wait_deadline) {
        MonotonicTime until = exchange.wait_deadline;
        if (answer.holder.fence != 0) until = std::min(until, answer.holder.expires);
        return Decision::wait_until(until);
      }
      stop_waiting(exchange, request.now);
      LockView holder = std::move(answer.holder);
      state.reset();  // leaves the queue
      return locked(request, holder, false);
    }
    case LockAnswer::Outcome::Locked:
    case LockAnswer::Outcome::QueueFull: {
      stop_waiting(exchange, request.now);
      LockView holder = std::move(answer.holder);
      bool full = answer.outcome == LockAnswer::Outcome::QueueFull;
      state.reset();
      return locked(request, holder, full);
    }
    case LockAnswer::Outcome::TableFull:
    case LockAnswer::Outcome::ClientFull: {
      bool table = answer.outcome == LockAnswer::Outcome::TableFull;
      state.reset();
      auto problem = table ? Problem::make("too-many-locks", 503, "Too many locks",
                                           "Arbiter holds " + std::to_string(settings_.max_locks) +
                                               " locks already (max_locks); retry when some are released or expire.")
                           : Problem::make("too-many-locks", 429, "Too many locks for this client",
                                           "This client holds " + std::to_string(settings_.max_locks_per_client) +
                                               " locks already (max_locks_per_client); UNLOCK one first.");
      return Decision::reply(std::move(problem), HeaderList{{"Retry-After", "1"}});
    }
  }
  return Decision::forward();
}

Decision LockPolicy::locked(const RequestView& request, const LockView& holder, bool queue_full) {
  counters_.refused.fetch_add(1, std::memory_order_relaxed);
  bool held = holder.fence != 0;
  std::int64_t left = held ? seconds_until(holder.expires, request.now) : 1;
  std::string who = holder.owner.empty() ? std::string("another client") : single_quoted(holder.owner);
  std::string detail;
  if (held) {
    detail = holder.resource + " is locked by " + who + " for " + std::to_string(left) + " more seconds. ";
  } else {
    detail = holder.resource + " is being handed to requests that queued for its lock first. ";
  }
  if (queue_full) {
    detail += std::to_string(settings_.max_waiters) + " requests wait for it already (max_waiters). ";
  } else if (settings_.wait.count() > 0) {
    detail += "Waited " + duration_text(settings_.wait) + " (wait) for it. ";
  }
  detail += request.method == "LOCK" ? "Retry the LOCK after Retry-After."
                                     : "Nothing was forwarded: retry after Retry-After, or LOCK it yourself and send "
                                       "the write with If: (<lock token>).";
  auto problem = Problem::make("locked", 423, "Locked", std::move(detail));
  problem.extensions.emplace_back("resource", holder.resource);
  if (held) {
    problem.extensions.emplace_back("owner", holder.owner);
    problem.extensions.emplace_back("seconds_left", left);
  }
  if (feed_) {
    FeedEvent event;
    event.type = std::string(kFeedLocked);
    event.time = std::chrono::system_clock::now();
    event.route = route_;
    event.resource = holder.resource;
    event.request_id = std::string(request.request_id);
    event.client = request_key(request, settings_.key, settings_.header);
    event.method = std::string(request.method);
    nlohmann::json details = {{"status", 423}, {"queue_full", queue_full}};
    if (held) details.update({{"owner", holder.owner}, {"fence", holder.fence}, {"seconds_left", left}});
    event.details = details.dump();
    publish_event(*feed_, std::move(event));
  }
  Decision refusal = Decision::reply(std::move(problem), HeaderList{{"Retry-After", std::to_string(left)}});
  return std::move(refusal).logged_as("locked");
}

Decision LockPolicy::granted(const RequestView& request, Exchange& exchange) {
  const LockAnswer& answer = exchange.answer;
  HeaderList headers;
  headers.add("Lock-Token", "<" + answer.token.text() + ">");
  headers.add("Timeout", "Second-" + std::to_string(answer.timeout.count()));
  if (versions_) {
    versions_->get(exchange.resource, Completion<std::optional<std::string>>::to<&Exchange::on_etag>(exchange));
    if (exchange.etag) headers.add("ETag", *exchange.etag);
  }
  nlohmann::ordered_json body = {{"resource", exchange.resource},
                                 {"token", answer.token.text()},
                                 {"owner", exchange.owner},
                                 {"timeout", answer.timeout.count()},
                                 {"expires", rfc3339_utc(wall_time_of(answer.expires, request.now))},
                                 {"fence", answer.fence}};
  return Decision::respond(200, std::move(headers), body.dump(), "application/json");
}

Decision LockPolicy::refresh(const RequestView& request, std::unique_ptr<ExchangeState>& state, Exchange& exchange) {
  exchange.step = Exchange::Step::Refresh;
  exchange.wait.start();
  if (StoreCall call = store_->refresh(exchange.resource, exchange.token, exchange.timeout, request.now,
                                       Completion<LockChange>::to<&Exchange::on_change>(exchange))) {
    return exchange.wait.park(request, std::move(call));
  }
  return resumed(request, state, exchange);
}

Decision LockPolicy::refreshed(const RequestView& request, std::unique_ptr<ExchangeState>& state, Exchange& exchange) {
  const LockChange& change = exchange.change;
  if (change.outcome != LockChange::Outcome::Done) {
    std::string how = change.outcome == LockChange::Outcome::Ended
                          ? how_it_ended(change.ended)
                          : "is not a lock of " + exchange.resource;
    auto problem = Problem::make("lock-token-invalid", 412, "Precondition failed",
                                 "The lock token to refresh " + how + "; LOCK the resource again for a new one.");
    state.reset();
    return Decision::reply(std::move(problem));
  }
  counters_.refreshed.fetch_add(1, std::memory_order_relaxed);
  exchange.answer.token = exchange.token;
  exchange.answer.fence = change.view.fence;
  exchange.answer.timeout = change.view.timeout;
  exchange.answer.expires = change.view.expires;
  exchange.owner = change.view.owner;
  return granted(request, exchange);
}

Decision LockPolicy::unlock(const RequestView& request, std::unique_ptr<ExchangeState>& state, Exchange& exchange) {
  auto field = request.headers.find("Lock-Token");
  std::string_view text = field ? without_ows(*field) : std::string_view();
  std::optional<LockToken> token;
  if (text.size() > 2 && text.front() == '<' && text.back() == '>') token = LockToken::parse(text.substr(1, text.size() - 2));
  if (!token) {
    state.reset();
    return Decision::reply(
        Problem::make("malformed-lock-token", 400, "Lock-Token missing or malformed",
                      field ? "Lock-Token must be the token a LOCK answered, in angle brackets: "
                              "Lock-Token: <urn:uuid:...> (RFC 4918 section 10.5)."
                            : "UNLOCK needs the lock's token: Lock-Token: <urn:uuid:...> (RFC 4918 section 9.11)."));
  }
  exchange.token = *token;
  exchange.step = Exchange::Step::Unlock;
  exchange.wait.start();
  if (StoreCall call = store_->unlock(exchange.resource, exchange.token, request.now,
                                      Completion<LockChange>::to<&Exchange::on_change>(exchange))) {
    return exchange.wait.park(request, std::move(call));
  }
  return resumed(request, state, exchange);
}

Decision LockPolicy::unlocked(const RequestView&, std::unique_ptr<ExchangeState>& state, Exchange& exchange) {
  LockChange change = std::move(exchange.change);
  std::string resource = exchange.resource;
  state.reset();
  switch (change.outcome) {
    case LockChange::Outcome::Done:
      counters_.released.fetch_add(1, std::memory_order_relaxed);
      return Decision::respond(204, HeaderList{{"Arbiter-Lock", "released"}});
    case LockChange::Outcome::Ended:
      return Decision::respond(204, HeaderList{{"Arbiter-Lock", "already-" + std::string(lock_end_name(change.ended))}});
    case LockChange::Outcome::Unknown:
      break;
  }
  auto problem = Problem::make("lock-token-unknown", 409, "Not a lock of this resource",
                               "The Lock-Token is not a token of any lock of " + resource +
                                   " (nor of one that ended recently); nothing was unlocked. UNLOCK the resource "
                                   "the token was granted for.");
  return Decision::reply(std::move(problem));
}

// Ends a queued request's wait: counted in the wait histogram once, however it ends.
void LockPolicy::stop_waiting(Exchange& exchange, MonotonicTime now) {
  if (!exchange.waiting) return;
  exchange.waiting = false;
  count_wait(exchange, now);
}

void LockPolicy::count_wait(const Exchange& exchange, MonotonicTime now) {
  double seconds = std::chrono::duration<double>(now - exchange.queued_since).count();
  std::size_t bucket = 0;
  while (bucket < kWaitBuckets.size() && seconds > kWaitBuckets[bucket]) ++bucket;
  counters_.wait_buckets[bucket].fetch_add(1, std::memory_order_relaxed);
  counters_.wait_micros.fetch_add(static_cast<std::uint64_t>(std::max(0.0, seconds) * 1e6), std::memory_order_relaxed);
}

bool LockPolicy::answers_itself(const RequestView& request) const {
  return request.method == "LOCK" || request.method == "UNLOCK";
}

std::string LockPolicy::explain(const RequestView& request) const {
  std::string resource = resource_key(request, settings_.resource);
  std::string text = "lock leases on " + resource + " (LOCK/UNLOCK answered here; timeout " +
                     std::to_string(settings_.default_timeout.count()) + " s, at most " +
                     std::to_string(settings_.max_timeout.count()) + " s); ";
  if (answers_itself(request)) {
    return text + std::string(request.method) + " is answered by Arbiter, nothing forwarded";
  }
  bool guarded = is_write_method(request.method) || (settings_.block_reads && is_read_method(request.method));
  if (!guarded) return text + "this method passes whether or not the resource is locked";
  text += "while locked, this request needs the lock's token in If (else 423";
  text += settings_.wait.count() > 0 ? ", after queueing up to " + duration_text(settings_.wait) + ")" : ")";
  if (settings_.require && is_write_method(request.method)) text += "; without the lock at all: 428";
  if (!settings_.fence_header.empty()) text += "; the holder's writes carry " + settings_.fence_header;
  return text;
}

}  // namespace arbiter
