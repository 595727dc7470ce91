#include "policies/rate_limit/rate_limit_policy.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <stdexcept>
#include <utility>

#include "policies/config_reader.h"  // single_quoted

namespace arbiter {

namespace {

constexpr std::string_view kRetryAfter = "Retry-After";
constexpr std::string_view kRateLimit = "RateLimit";
constexpr std::string_view kRateLimitPolicy = "RateLimit-Policy";

// A structured-field string (RFC 9651 section 3.3.3): quoted, with '"' and '\' escaped.
std::string sf_string(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  out += '"';
  return out;
}

// "'a'", "'a' and 'b'", "'a', 'b' and 'c'".
std::string names_in_prose(const std::vector<std::string_view>& names) {
  std::string out;
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out += i + 1 == names.size() ? " and " : ", ";
    out += single_quoted(names[i]);
  }
  return out;
}

// Methods are case-sensitive (RFC 9110 section 9.1); the loader upper-cases the configured ones.
bool applies(const RateLimitConfig& limit, std::string_view method) noexcept {
  return limit.methods.empty() || std::find(limit.methods.begin(), limit.methods.end(), method) != limit.methods.end();
}

}  // namespace

std::string default_limit_name(std::string_view route_name, std::size_t index) {
  return std::string(route_name) + "-limit-" + std::to_string(index);
}

std::uint64_t default_burst(std::uint64_t count, std::chrono::seconds per) noexcept {
  if (per.count() <= 0) return std::max<std::uint64_t>(1, count);
  auto seconds = static_cast<std::uint64_t>(per.count());
  return std::max<std::uint64_t>(1, count / seconds + (count % seconds != 0 ? 1 : 0));
}

std::string rate_text(std::uint64_t count, std::chrono::seconds per) {
  std::string out = std::to_string(count) + "/";
  switch (per.count()) {
    case 1: return out + "s";
    case 60: return out + "m";
    case 3600: return out + "h";
    default: return out + std::to_string(per.count()) + "s";
  }
}

bool is_valid_limit_name(std::string_view name) noexcept {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) { return c >= 0x20 && c <= 0x7E; });
}

// One request's decision: the outcomes of the limits asked so far (for the RateLimit fields of
// its response, once admitted), and the store call it waits for when the store did not answer
// at once. The completions land here, so the call is cancelled if the exchange ends first.
// Made for every limited request: the outcomes of a route with up to kInlineOutcomes limits live
// inside it, so that it is the request's only allocation.
class RateLimitPolicy::Exchange final : public ExchangeState {
 public:
  static constexpr std::size_t kInlineOutcomes = 4;

  Exchange(std::uint64_t now_ns, std::size_t limits) : now_ns(now_ns) {
    if (limits > kInlineOutcomes) spilled_.resize(limits);
  }

  void on_taken(StoreResult<TakeResult>&& result) {
    if (result.ok()) storage()[count_++] = Outcome{asking, result.value};
    wait.answered(result.ok());
  }
  void on_refunded(StoreResult<BucketStatus>&& result) {
    // A refund that failed leaves its outcome as taken: the fields then show one token fewer.
    if (result.ok()) storage()[asking].taken.status = result.value;
    wait.answered(true);
  }

  // In the order the limits were asked; at most one a limit.
  std::span<Outcome> outcomes() noexcept { return {storage(), count_}; }

  std::uint64_t now_ns;          // the decision's one instant, also when it resumes
  bool refunding = false;        // a limit refused: giving the others' tokens back
  std::size_t next = 0;          // taking: the next limit to ask; refunding: the next outcome
  std::size_t asking = 0;        // the limit (taking) or outcome (refunding) of the call made last

 private:
  Outcome* storage() noexcept { return spilled_.empty() ? inline_.data() : spilled_.data(); }

  std::array<Outcome, kInlineOutcomes> inline_;
  std::vector<Outcome> spilled_;  // a route with more limits than kInlineOutcomes: one a limit
  std::size_t count_ = 0;

 public:
  StoreWait wait;  // the store call made last (declared last: cancelled first)
};

RateLimitPolicy::RateLimitPolicy(std::string route_name, RateLimitPolicyConfig config,
                                 std::shared_ptr<BucketStore> store)
    : route_name_(std::move(route_name)), config_(std::move(config)), store_(std::move(store)) {
  if (!store_) throw std::invalid_argument("rate_limit: no bucket store");
  if (config_.limits.empty()) throw std::invalid_argument("rate_limit: no limits");
  for (std::size_t i = 0; i < config_.limits.size(); ++i) {
    RateLimitConfig& limit = config_.limits[i];
    if (limit.name.empty()) limit.name = default_limit_name(route_name_, i);
    if (!is_valid_limit_name(limit.name)) {
      throw std::invalid_argument("rate_limit: limit name " + single_quoted(limit.name) +
                                  " is not printable ASCII");
    }
    for (std::size_t j = 0; j < i; ++j) {
      if (config_.limits[j].name == limit.name) {
        throw std::invalid_argument("rate_limit: two limits named " + single_quoted(limit.name));
      }
    }
    if (limit.key_kind == KeyKind::Header && limit.header.empty()) {
      throw std::invalid_argument("rate_limit: limit " + single_quoted(limit.name) + " is keyed by no header");
    }
    auto shape = BucketShape::make(limit.count, limit.per, limit.burst, limit.max_keys);
    if (!shape) {
      throw std::invalid_argument("rate_limit: limit " + single_quoted(limit.name) + " has rate " +
                                  rate_text(limit.count, limit.per) + " and burst " + std::to_string(limit.burst) +
                                  ", which no bucket can hold");
    }
    auto& added = limits_.emplace_back(std::make_unique<Limit>(route_name_ + "/" + limit.name, *shape));
    added->quoted_name = sf_string(limit.name);
    added->policy_member = added->quoted_name + ";q=" + std::to_string(limit.burst) +
                           ";w=" + std::to_string(std::max<std::uint64_t>(1, seconds_rounded_up(shape->ns_to_fill())));
  }
}

std::vector<RateLimitCounters> RateLimitPolicy::counters() const {
  std::vector<RateLimitCounters> snapshot;
  for (std::size_t i = 0; i < limits_.size(); ++i) {
    snapshot.push_back({config_.limits[i].name, limits_[i]->admitted.load(std::memory_order_relaxed),
                        limits_[i]->limited.load(std::memory_order_relaxed),
                        limits_[i]->overflow.load(std::memory_order_relaxed)});
  }
  return snapshot;
}

Decision RateLimitPolicy::on_request(const RequestView& request, std::unique_ptr<ExchangeState>& state) {
  auto* exchange = static_cast<Exchange*>(state.get());
  if (exchange == nullptr) {
    exchange = new Exchange(monotonic_ns(request.now), limits_.size());
    state.reset(exchange);
  } else if (exchange->wait.parked() && !exchange->wait.resume(request.now)) {
    return Decision::wait_until(exchange->wait.deadline());
  }
  return decide(request, state, *exchange);
}

// Asks the store, limit after limit, and goes on at once while it answers at once; a call that
// completes later parks the request until it has (the completion wakes it).
Decision RateLimitPolicy::decide(const RequestView& request, std::unique_ptr<ExchangeState>& state,
                                 Exchange& exchange) {
  // A take that failed (or timed out) fails the request; a refund is given up (its outcome
  // stays as taken).
  bool failed = !exchange.refunding && exchange.wait.failed();
  while (!exchange.refunding && !failed && exchange.next < limits_.size()) {
    std::size_t i = exchange.next++;
    const RateLimitConfig& config = config_.limits[i];
    if (!applies(config, request.method)) continue;
    // Every limit that applies is asked, even after one refused, so that the answer names
    // every limit the client is over.
    std::string key = request_key(request, config.key_kind, config.header);
    exchange.asking = i;
    exchange.wait.start();
    if (StoreCall call = store_->take(limits_[i]->id, key, limits_[i]->shape, exchange.now_ns,
                                      Completion<TakeResult>::to<&Exchange::on_taken>(exchange))) {
      return exchange.wait.park(request, std::move(call));
    }
    failed = exchange.wait.failed();
  }
  if (failed) {
    state.reset();
    return store_unavailable("the rate-limit bucket store");
  }
  std::span<Outcome> outcomes = exchange.outcomes();
  if (outcomes.empty()) {
    state.reset();
    return Decision::forward();
  }
  bool refused = exchange.refunding;
  if (!refused) {  // counted once: a refund that parked comes back here
    for (const Outcome& outcome : outcomes) {
      if (outcome.taken.overflow) limits_[outcome.limit]->overflow.fetch_add(1, std::memory_order_relaxed);
      refused = refused || !outcome.taken.admitted;
    }
  }
  if (refused) {
    if (!exchange.refunding) {
      exchange.refunding = true;
      exchange.next = 0;
    }
    while (exchange.next < outcomes.size()) {
      std::size_t i = exchange.next++;
      if (!outcomes[i].taken.admitted) continue;
      // The key again rather than kept: refusals are the rare path, admissions the hot one.
      const Limit& limit = *limits_[outcomes[i].limit];
      const RateLimitConfig& config = config_.limits[outcomes[i].limit];
      std::string key = request_key(request, config.key_kind, config.header);
      exchange.asking = i;
      exchange.wait.start();
      if (StoreCall call = store_->refund(limit.id, key, limit.shape, exchange.now_ns,
                                          Completion<BucketStatus>::to<&Exchange::on_refunded>(exchange))) {
        return exchange.wait.park(request, std::move(call));
      }
    }
    for (const Outcome& outcome : outcomes) {
      if (!outcome.taken.admitted) limits_[outcome.limit]->limited.fetch_add(1, std::memory_order_relaxed);
    }
    Decision refusal = refuse(outcomes);
    state.reset();
    return refusal;
  }
  for (const Outcome& outcome : outcomes) limits_[outcome.limit]->admitted.fetch_add(1, std::memory_order_relaxed);
  if (!config_.send_headers) state.reset();
  return Decision::forward();
}

Decision RateLimitPolicy::refuse(std::span<const Outcome> outcomes) const {
  std::vector<std::string_view> violated;
  std::uint64_t retry_after = 1;
  for (const Outcome& outcome : outcomes) {
    if (outcome.taken.admitted) continue;
    const RateLimitConfig& config = config_.limits[outcome.limit];
    violated.push_back(config.name);
    retry_after = std::max(retry_after, retry_after_seconds(outcome.taken.status));
  }
  std::string detail = (violated.size() == 1 ? "Rate limit " : "Rate limits ");
  detail += names_in_prose(violated) + " of route " + single_quoted(route_name_) + " exceeded (";
  bool first = true;
  for (const Outcome& outcome : outcomes) {
    if (outcome.taken.admitted) continue;
    const RateLimitConfig& config = config_.limits[outcome.limit];
    if (!first) detail += "; ";
    first = false;
    detail += config.name + ": " + rate_text(config.count, config.per) + ", burst " + std::to_string(config.burst);
  }
  detail += "); nothing was forwarded. Retry in " + std::to_string(retry_after) +
            (retry_after == 1 ? " second." : " seconds.");

  Problem problem;
  problem.status = 429;
  problem.type = std::string(kQuotaExceededType);
  problem.title = "Too many requests";
  problem.detail = std::move(detail);
  problem.extensions.emplace_back("violated-policies", nlohmann::json(violated));
  HeaderList headers;
  headers.set(kRetryAfter, std::to_string(retry_after));
  add_fields(headers, outcomes);
  return Decision::reply(std::move(problem), std::move(headers));
}

void RateLimitPolicy::add_fields(HeaderList& headers, std::span<const Outcome> outcomes) const {
  std::string policy_field, limit_field;
  for (const Outcome& outcome : outcomes) {
    const Limit& limit = *limits_[outcome.limit];
    const BucketStatus& status = outcome.taken.status;
    std::uint64_t reset_ns = status.remaining == 0 ? status.ns_until_next : status.ns_until_full;
    if (!policy_field.empty()) {
      policy_field += ", ";
      limit_field += ", ";
    }
    policy_field += limit.policy_member;
    // Appended piece by piece: this runs on every admitted response.
    char digits[24];
    limit_field += limit.quoted_name;
    limit_field += ";r=";
    limit_field.append(digits, std::to_chars(digits, digits + sizeof digits, status.remaining).ptr);
    limit_field += ";t=";
    limit_field.append(digits, std::to_chars(digits, digits + sizeof digits, seconds_rounded_up(reset_ns)).ptr);
  }
  headers.set(kRateLimitPolicy, policy_field);
  headers.set(kRateLimit, limit_field);
}

ResponseStep RateLimitPolicy::on_response(const RequestView& request, ResponseView& response, ExchangeState* state) {
  (void)request;
  if (auto* exchange = static_cast<Exchange*>(state)) add_fields(response.headers, exchange->outcomes());
  return ResponseStep::proceed();
}

std::string RateLimitPolicy::explain(const RequestView& request) const {
  std::string text;
  for (const RateLimitConfig& limit : config_.limits) {
    if (!text.empty()) text += "; ";
    text += "limit '" + limit.name + "' (" + rate_text(limit.count, limit.per) + ", burst " +
            std::to_string(limit.burst) + ", per " + key_name(limit.key_kind, limit.header) + ")";
    if (!applies(limit, request.method)) {
      text += " does not apply to " + std::string(request.method);
      continue;
    }
    text += ": spends a token from bucket '" + request_key(request, limit.key_kind, limit.header) +
            "'; an empty bucket answers 429 with Retry-After";
  }
  return text.empty() ? std::string("no limits") : text;
}

}  // namespace arbiter
