#pragma once
// Lock leases ([route.lock]): WebDAV's LOCK and UNLOCK (RFC 4918 sections 9.10, 9.11) answered by
// Arbiter itself, and the writes of a locked resource refused with 423 Locked unless they carry
// the lock's token in an If field (section 10.4). Nothing of LOCK or UNLOCK is forwarded.
//
// - LOCK (optional Timeout: Second-N | Infinite, capped at max_timeout; optional JSON body
//   {"owner": "..."}, or WebDAV's XML lockinfo, whose <owner> text is taken) -> 200 with
//   Lock-Token, Timeout, the resource's ETag when the ETag table knows it, and a JSON body.
//   LOCK with If: (<token>) and no body refreshes that lock (200, same token and fence).
// - UNLOCK with Lock-Token: <token> -> 204; the Arbiter-Lock field says "released", or
//   "already-expired" / "already-released" / "already-broken" / "already-dropped" for a lock
//   that had ended; a token of no lock of this resource -> 409; none or malformed -> 400.
// - A write (PUT, PATCH, DELETE, POST), and a read when block_reads is set, goes on when the
//   resource is not locked or the request submits the lock's token; else 423 (or, with wait > 0,
//   it queues first come first served until the lock is released or expires, then goes on).
//   The holder's writes are forwarded with the fence header; the If field is not forwarded (the
//   backend knows nothing of these tokens). An If field whose lists are all false for this
//   resource (a lock token that expired or was released, say) -> 412, nothing forwarded. Entity
//   tags in the If field are left to the route's ETag policy.
// - require: a write of a resource the request does not hold the lock of -> 428.
//
// Threading: one LockPolicy serves every worker; its counters are atomics, the locks are in the
// (thread-safe) store, the rest is immutable. A queued request's place is in its ExchangeState,
// so a client that goes away leaves the queue.

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "policies/policy.h"
#include "policies/request_key.h"
#include "policies/store/conflict_feed.h"
#include "policies/store/lock_store.h"
#include "policies/store/version_store.h"

namespace arbiter {

struct LockSettings {
  std::chrono::seconds default_timeout{30};
  std::chrono::seconds max_timeout{300};
  std::chrono::milliseconds wait{0};  // how long a conflicting request queues; 0: 423 at once
  std::size_t max_waiters = 64;       // per resource
  bool require = false;               // a write without the lock: 428
  bool block_reads = false;           // a read without the token: 423 too
  std::string fence_header = "Arbiter-Fence";  // empty: none
  std::size_t max_locks = 100000;
  std::size_t max_locks_per_client = 100;
  KeyKind key = KeyKind::ClientAddress;
  std::string header;    // KeyKind::Header: the field name
  std::string resource;  // key template ("/items/{id}"); empty: the request path

  bool operator==(const LockSettings&) const = default;
};

// What the policy has done since it was made.
struct LockCounters {
  std::uint64_t granted = 0;
  std::uint64_t refreshed = 0;
  std::uint64_t released = 0;  // by UNLOCK
  std::uint64_t refused = 0;   // 423
  std::uint64_t queued = 0;
};

class LockPolicy final : public Policy {
 public:
  // versions: the ETag table, for the ETag of a LOCK's answer (null: none). feed: where 423s are
  // published as `locked` events (null: nowhere).
  LockPolicy(std::string route, LockSettings settings, std::shared_ptr<LockStore> store,
             std::shared_ptr<VersionStore> versions, std::shared_ptr<ConflictFeed> feed = nullptr);

  std::string_view kind() const noexcept override { return "lock"; }
  Decision on_request(const RequestView& request, std::unique_ptr<ExchangeState>& state) override;
  std::size_t request_body_limit(const RequestView& request) const noexcept override;
  std::string explain(const RequestView& request) const override;
  bool answers_itself(const RequestView& request) const override;
  // Defined in policies/lock/lock_kind.cpp, beside the families it fills.
  void write_metrics(std::string_view route, MetricsWriter& out) const override;

  const LockSettings& settings() const noexcept { return settings_; }
  const LockStore& store() const noexcept { return *store_; }
  const VersionStore* versions() const noexcept { return versions_.get(); }
  LockCounters counters() const noexcept;
  // Seconds spent queued by requests that waited, in the histogram's buckets (kWaitBuckets).
  static constexpr std::array<double, 8> kWaitBuckets = {0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60};
  std::array<std::uint64_t, kWaitBuckets.size() + 1> wait_histogram() const noexcept;
  double wait_seconds_sum() const noexcept;

  // The largest owner label a LOCK may give, in bytes.
  static constexpr std::size_t kMaxOwner = 256;
  // The largest LOCK body read for it.
  static constexpr std::size_t kMaxLockBody = 16 * 1024;

 private:
  class Exchange;
  // A LOCK's Timeout and body read into `exchange`; the refusal when they are malformed.
  std::optional<Decision> lock_request(const RequestView& request, Exchange& exchange) const;
  Decision malformed_timeout() const;
  // Each store call's step, and what its answer makes of the request (resumed() dispatches).
  Decision refresh(const RequestView& request, std::unique_ptr<ExchangeState>& state, Exchange& exchange);
  Decision refreshed(const RequestView& request, std::unique_ptr<ExchangeState>& state, Exchange& exchange);
  Decision unlock(const RequestView& request, std::unique_ptr<ExchangeState>& state, Exchange& exchange);
  Decision unlocked(const RequestView& request, std::unique_ptr<ExchangeState>& state, Exchange& exchange);
  Decision resumed(const RequestView& request, std::unique_ptr<ExchangeState>& state, Exchange& exchange);
  void stop_waiting(Exchange& exchange, MonotonicTime now);
  Decision guard(const RequestView& request, std::unique_ptr<ExchangeState>& state, Exchange& exchange);
  Decision answered(const RequestView& request, std::unique_ptr<ExchangeState>& state, Exchange& exchange);
  Decision granted(const RequestView& request, Exchange& exchange);
  Decision locked(const RequestView& request, const LockView& holder, bool queue_full);
  void count_wait(const Exchange& exchange, MonotonicTime now);

  std::string route_;
  LockSettings settings_;
  std::shared_ptr<LockStore> store_;
  std::shared_ptr<VersionStore> versions_;
  std::shared_ptr<ConflictFeed> feed_;
  struct Counters {
    std::atomic<std::uint64_t> granted{0}, refreshed{0}, released{0}, refused{0}, queued{0};
    std::array<std::atomic<std::uint64_t>, kWaitBuckets.size() + 1> wait_buckets{};
    std::atomic<std::uint64_t> wait_micros{0};
  };
  mutable Counters counters_;
};

}  // namespace arbiter
