#include "policies/concurrency/concurrency_policy.h"

#include <stdexcept>
#include <utility>

#include "policies/config_reader.h"  // single_quoted
#include "policies/store/memory_slot_table.h"

namespace arbiter {

namespace {

std::string requests(std::size_t n) { return std::to_string(n) + (n == 1 ? " request" : " requests"); }

constexpr std::string_view kRetryLater = "; nothing was forwarded. Retry in 1 second.";

}  // namespace

// A request's claim on a slot, held or waiting; released with the exchange. While the table has
// not answered the acquire, the call in progress: cancelled with the exchange, which gives up
// whatever the table would have granted.
class ConcurrencyPolicy::Exchange final : public ExchangeState {
 public:
  void on_claimed(StoreResult<SlotTable::Claim>&& result) {
    claim = std::move(result.value);
    wait.answered(result.ok());
  }

  SlotTable::Claim claim;
  bool waiting = false;  // in the queue, until granted or timed out
  MonotonicTime deadline{};
  StoreWait wait;  // the acquire (declared last: cancelled before the claim goes)
};

ConcurrencyPolicy::ConcurrencyPolicy(std::string route_name, ConcurrencyConfig config,
                                     std::shared_ptr<SlotTable> table)
    : route_name_(std::move(route_name)), config_(std::move(config)), table_(std::move(table)) {
  if (config_.max_in_flight == 0) throw std::invalid_argument("concurrency: max_in_flight must be at least 1");
  if (config_.key == KeyKind::Header && config_.header.empty()) {
    throw std::invalid_argument("concurrency: keyed by no header");
  }
  if (config_.max_queue > 0 && config_.queue_timeout.count() <= 0) {
    throw std::invalid_argument("concurrency: a queue needs a positive queue_timeout");
  }
  if (!table_) table_ = std::make_shared<MemorySlotTable>(config_.max_keys);
}

ConcurrencyCounters ConcurrencyPolicy::counters() const noexcept {
  auto read = [](const std::atomic<std::uint64_t>& counter) { return counter.load(std::memory_order_relaxed); };
  ConcurrencyCounters snapshot;
  snapshot.admitted = read(counters_.admitted);
  snapshot.queued = read(counters_.queued);
  snapshot.timed_out = read(counters_.timed_out);
  snapshot.rejected = read(counters_.rejected);
  snapshot.in_flight = table_->in_flight();
  snapshot.waiting = table_->waiting();
  return snapshot;
}

std::string ConcurrencyPolicy::slots() const {
  std::string out = config_.max_in_flight == 1 ? "the one slot"
                                               : "all " + std::to_string(config_.max_in_flight) + " slots";
  out += " of route " + single_quoted(route_name_);
  if (config_.key != KeyKind::Global) out += " for this client (" + key_name(config_.key, config_.header) + ")";
  return out;
}

Decision ConcurrencyPolicy::too_busy(std::string detail) const {
  auto problem = Problem::make("too-busy", 503, "Too busy", std::move(detail));
  problem.extensions.emplace_back("max_in_flight", config_.max_in_flight);
  problem.extensions.emplace_back("max_queue", config_.max_queue);
  return Decision::reply(std::move(problem), HeaderList{{"Retry-After", "1"}});
}

Decision ConcurrencyPolicy::on_request(const RequestView& request, std::unique_ptr<ExchangeState>& state) {
  if (auto* exchange = static_cast<Exchange*>(state.get())) {
    if (exchange->wait.parked()) {  // resumed while the table's answer was outstanding
      if (!exchange->wait.resume(request.now)) return Decision::wait_until(exchange->wait.deadline());
      return claimed(request, state, *exchange);
    }
    if (!exchange->waiting) return Decision::forward();  // holds its slot already
    if (exchange->claim.ticket->granted()) {
      exchange->waiting = false;
      counters_.admitted.fetch_add(1, std::memory_order_relaxed);
      return Decision::forward();
    }
    if (request.now < exchange->deadline) return Decision::wait_until(exchange->deadline);
    state.reset();  // leaves the queue
    counters_.timed_out.fetch_add(1, std::memory_order_relaxed);
    return too_busy("Waited " + std::to_string(config_.queue_timeout.count()) + " ms (queue_timeout) while " +
                    slots() + " (max_in_flight) stayed taken by requests at the backend" + std::string(kRetryLater));
  }

  auto* exchange = new Exchange;
  state.reset(exchange);
  if (StoreCall call = table_->acquire(request_key(request, config_.key, config_.header), config_.max_in_flight,
                                       config_.max_queue, request.waker,
                                       Completion<SlotTable::Claim>::to<&Exchange::on_claimed>(*exchange))) {
    return exchange->wait.park(request, std::move(call));
  }
  return claimed(request, state, *exchange);
}

// What the table answered: a slot, a place in the queue, a refusal or a failure.
Decision ConcurrencyPolicy::claimed(const RequestView& request, std::unique_ptr<ExchangeState>& state,
                                    Exchange& exchange) {
  if (exchange.wait.failed()) {
    state.reset();
    return store_unavailable("the in-flight slot table");
  }
  if (!exchange.claim.ticket) {
    SlotTable::Refusal refusal = exchange.claim.refusal;
    state.reset();
    counters_.rejected.fetch_add(1, std::memory_order_relaxed);
    if (refusal == SlotTable::Refusal::TooManyKeys) {
      return too_busy("Route " + single_quoted(route_name_) + " is tracking requests at the backend for " +
                      std::to_string(config_.max_keys) + " other clients already (max_keys)" +
                      std::string(kRetryLater));
    }
    std::string waiting = config_.max_queue == 0
                              ? "none may wait (max_queue = 0)"
                              : requests(config_.max_queue) + " wait already (max_queue)";
    std::string taken = slots();
    taken[0] = static_cast<char>(taken[0] - 'a' + 'A');
    return too_busy(taken + (config_.max_in_flight == 1 ? " (max_in_flight) is" : " (max_in_flight) are") +
                    " taken by requests at the backend and " + waiting +
                    std::string(kRetryLater));
  }
  if (exchange.claim.ticket->granted()) {
    counters_.admitted.fetch_add(1, std::memory_order_relaxed);
    return Decision::forward();
  }
  counters_.queued.fetch_add(1, std::memory_order_relaxed);
  exchange.waiting = true;
  exchange.deadline = request.now + config_.queue_timeout;
  return Decision::wait_until(exchange.deadline);
}

}  // namespace arbiter

namespace arbiter {

std::string ConcurrencyPolicy::explain(const RequestView& request) const {
  std::string scope = config_.key == KeyKind::Global
                          ? std::string("for the whole route")
                          : "per " + key_name(config_.key, config_.header) + ", here '" +
                                request_key(request, config_.key, config_.header) + "'";
  std::string text = "takes one of " + std::to_string(config_.max_in_flight) + " in-flight slots (" + scope +
                     ") until its exchange ends; ";
  if (config_.max_queue == 0) return text + "when all are taken: 503 at once";
  return text + "when all are taken it waits, first in first out, behind at most " +
         std::to_string(config_.max_queue) + " others for up to " + std::to_string(config_.queue_timeout.count()) +
         " ms; then 503 with Retry-After";
}

}  // namespace arbiter
