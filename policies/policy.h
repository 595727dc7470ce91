#pragma once
// The seam between the proxy and the decision logic.
//
// A route owns an ordered list of policies. For each request the proxy calls every policy's
// on_request() in order before a byte goes upstream; the first that answers ends the chain and
// its answer goes to the client. After the upstream's response head (and, if a policy asked,
// its body) has arrived, on_response() runs in reverse order, like Envoy's encoder filters.
//
// Policies see read-only views and `now`; they own no sockets, timers or threads. A Policy
// object is shared by every worker thread, so its shared state must be thread-safe; whatever
// one request needs to carry from the request to the response phase (a slot, a write lock)
// goes in its ExchangeState and is released by that state's destructor, so no path can
// leak it.

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "policies/headers.h"
#include "policies/problem.h"

namespace arbiter {

using MonotonicClock = std::chrono::steady_clock;
using MonotonicTime = MonotonicClock::time_point;

struct PathParam {
  std::string_view name;
  std::string_view value;
};

struct RequestView {
  std::string_view method;      // as sent, e.g. "GET"
  std::string_view target;      // request-target as sent, path and query
  std::string_view path;        // target without the query
  std::string_view query;       // after '?', without it; empty when none
  const HeaderList& headers;    // as received, before any rewriting
  std::string_view client_address;  // the client, X-Forwarded-For believed only from trusted proxies
  std::string_view route_name;
  std::span<const PathParam> params;  // the route's {param} captures
  std::string_view request_id;
  MonotonicTime now;
};

struct ResponseView {
  int status;
  HeaderList& headers;       // hop-by-hop fields already removed; policies may change any
  // The body, when this route's policies asked for it (Policy::response_body_limit) and it was
  // no larger than that; nullptr otherwise. Policies may replace it.
  std::string* body;
  MonotonicTime now;
};

// What a request-phase hook decided: forward, or answer with this.
class Decision {
 public:
  static Decision forward() { return Decision(); }
  static Decision reply(Problem problem, HeaderList headers = {}) {
    Decision d;
    d.problem_ = std::move(problem);
    d.headers_ = std::move(headers);
    return d;
  }
  bool forwards() const noexcept { return !problem_.has_value(); }
  const Problem& problem() const { return *problem_; }
  // Fields to send with the answer besides Content-Type (e.g. Retry-After).
  const HeaderList& headers() const noexcept { return headers_; }

 private:
  Decision() = default;
  std::optional<Problem> problem_;
  HeaderList headers_;
};

// Per-request state a policy keeps between its two hooks; destroyed when the exchange ends,
// whichever way it ends (answered, forwarded, client gone, upstream failed).
class ExchangeState {
 public:
  virtual ~ExchangeState() = default;
};

class Policy {
 public:
  virtual ~Policy() = default;

  // "etag", "rate_limit", ...: names the policy in the route table, logs and metrics.
  virtual std::string_view kind() const noexcept = 0;

  // Request phase. May set `state` to carry something to the response phase.
  virtual Decision on_request(const RequestView& request, std::unique_ptr<ExchangeState>& state) = 0;

  // Response phase; state is what on_request left (possibly null).
  virtual void on_response(const RequestView& request, ResponseView& response,
                           ExchangeState* state) {
    (void)request, (void)response, (void)state;
  }

  // > 0: the proxy buffers response bodies up to this many bytes and hands them to
  // on_response; larger bodies stream through and on_response sees body == nullptr.
  virtual std::size_t response_body_limit() const noexcept { return 0; }
};

}  // namespace arbiter
