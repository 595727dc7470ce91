#pragma once
// In-flight limits: at most max_in_flight of a route's requests (per key: the route, a client
// address or a header's value) are at the backend at once.
//
// A request that finds every slot held waits, first come first served, while fewer than
// max_queue wait (0: nobody waits), for at most queue_timeout; refused or timed out, it gets
// 503 application/problem+json (type urn:arbiter:problem:too-busy) with Retry-After: 1. One
// second, because how fast the queue drains depends on a backend Arbiter does not time: it is a
// short back-off that still spreads the retries of a crowd over their own round trips.
//
// The slot is the request's ExchangeState: whichever way the exchange ends (response sent,
// upstream failure or timeout, client gone while waiting or while its request is at the
// backend) its destructor gives the slot to the first waiter, or takes the request out of the
// queue, so no path can leak one. The slot is held until the exchange ends, i.e. also while the
// response streams to the client: until then the backend may still be sending it.
//
// The table's acquire may complete later (policies/store/store_call.h): the request waits for it,
// parked; a table that fails or does not answer within kStoreCallTimeout gets it a 503
// problem+json (urn:arbiter:problem:store-unavailable). An exchange that ends first cancels the
// call, and the table gives back what it would have granted.
//
// Counting: admitted (given a slot, at once or after waiting), queued (had to wait), timed_out
// (waited queue_timeout), rejected (the queue was full, or the table already tracked max_keys
// other keys); in_flight and waiting are gauges.
//
// Threading: one ConcurrencyPolicy serves every worker; its counters are atomics, the slots are
// in the (thread-safe) table, the rest is immutable. A request's state holds a ticket of the
// policy's table, so the policy must outlive every exchange that used it (proxy/exchange/runtime.h keeps
// it so).

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "policies/policy.h"
#include "policies/request_key.h"
#include "policies/store/slot_table.h"

namespace arbiter {

struct ConcurrencyConfig {
  using KeyKind = arbiter::KeyKind;

  std::size_t max_in_flight = 1;                 // requests at the backend at once, per key
  std::size_t max_queue = 128;                   // waiting beyond that, per key; 0 = refuse at once
  std::chrono::milliseconds queue_timeout{2000};  // waited longer: refused
  KeyKind key = KeyKind::Global;
  std::string header;                            // KeyKind::Header: the field name
  std::size_t max_keys = 100000;                 // keys tracked at once (with a slot held or a waiter)

  bool operator==(const ConcurrencyConfig&) const = default;
};

// What the policy has done since it was made, and where it stands.
struct ConcurrencyCounters {
  std::uint64_t admitted = 0;
  std::uint64_t queued = 0;
  std::uint64_t timed_out = 0;
  std::uint64_t rejected = 0;
  std::size_t in_flight = 0;  // gauge: slots held now
  std::size_t waiting = 0;    // gauge: requests in the queue now
};

class ConcurrencyPolicy final : public Policy {
 public:
  // table: null makes a MemorySlotTable of config.max_keys. Throws std::invalid_argument for a
  // config the loader would have refused: max_in_flight 0, a header key without a field name,
  // or a queue with a queue_timeout that is not positive.
  ConcurrencyPolicy(std::string route_name, ConcurrencyConfig config, std::shared_ptr<SlotTable> table = nullptr);

  std::string_view kind() const noexcept override { return "concurrency"; }
  std::string explain(const RequestView& request) const override;
  Decision on_request(const RequestView& request, std::unique_ptr<ExchangeState>& state) override;

  ConcurrencyCounters counters() const noexcept;
  // Defined in policies/concurrency/concurrency_kind.cpp, beside the families it fills.
  void write_metrics(std::string_view route, MetricsWriter& out) const override;
  std::size_t in_flight() const { return table_->in_flight(); }
  std::size_t waiting() const { return table_->waiting(); }
  const ConcurrencyConfig& config() const noexcept { return config_; }
  const std::string& route_name() const noexcept { return route_name_; }

 private:
  class Exchange;

  struct AtomicCounters {
    std::atomic<std::uint64_t> admitted{0}, queued{0}, timed_out{0}, rejected{0};
  };

  Decision claimed(const RequestView& request, std::unique_ptr<ExchangeState>& state, Exchange& exchange);
  Decision too_busy(std::string detail) const;
  // "all 64 slots of route 'orders'", "the one slot of route 'orders' for this client (ip)".
  std::string slots() const;

  std::string route_name_;
  ConcurrencyConfig config_;
  std::shared_ptr<SlotTable> table_;
  mutable AtomicCounters counters_;
};

}  // namespace arbiter
