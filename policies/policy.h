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
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/http/headers.h"
#include "proxy/http/problem.h"
#include "proxy/http/side_request_spec.h"

namespace arbiter {

using MonotonicClock = std::chrono::steady_clock;
using MonotonicTime = MonotonicClock::time_point;

struct PathParam {
  std::string_view name;
  std::string_view value;
};

// A thread-safe handle on a waiting request. A policy that answers Decision::wait_until()
// keeps it (in a queue, say) and calls wake() from any thread when the request may go on;
// the proxy then calls on_request() again. Waking a request that has ended does nothing.
class Waker {
 public:
  virtual ~Waker() = default;
  virtual void wake() = 0;
};

struct RequestView {
  std::string_view method;      // as sent, e.g. "GET"
  std::string_view target;      // request-target: the normalised path, and the query as sent
  std::string_view path;        // target without the query (normalised: see proxy/http/path_normalization.h)
  std::string_view query;       // after '?', without it; empty when none
  const HeaderList& headers;    // as received, before any rewriting
  std::string_view client_address;  // the client, X-Forwarded-For believed only from trusted proxies
  std::string_view route_name;
  std::span<const PathParam> params;  // the route's {param} captures
  std::string_view request_id;
  MonotonicTime now;
  std::shared_ptr<Waker> waker;  // request phase only; null in the response phase
  // The path as routes and resource keys see it (lower-cased under the proxy's
  // case_insensitive_paths); empty: `path` itself.
  std::string_view resource_path = {};
};

struct ResponseView {
  int status;
  HeaderList& headers;       // hop-by-hop fields already removed; policies may change any
  // The body, when this route's policies asked for it (Policy::response_body_limit) and it was
  // no larger than that; nullptr otherwise (or when there is no body). Policies may replace it.
  std::string* body;
  bool body_withheld;        // true: there is a body, but too large to be shown (body == nullptr)
  MonotonicTime now;
};

// Side requests (proxy/http/side_request_spec.h): a hook answers Decision::call(specs) or
// ResponseStep::call(specs); the proxy sends them all at once, each to its upstream with its
// own timeout, and when every one has finished (answered, failed or timed out) calls the same
// policy's on_side_responses / on_response_side_responses once, with the answers in the order
// of the specs. The exchange waits meanwhile; if it ends first (client gone) the requests are
// cancelled and no hook is called. Decision::fetch(target) / ResponseStep::fetch(target) are a
// call of one SideRequestSpec::fetch(target), whose answer goes to on_fetched /
// on_response_fetched: a FetchedResponse is a SideResponse.
using FetchedResponse = SideResponse;

// What a request-phase hook decided.
class Decision {
 public:
  enum class Kind : std::uint8_t {
    Forward,  // on to the next policy, then the upstream
    Reply,    // answer the client with this; nothing is forwarded
    Wait,     // park the request until the waker is woken or the deadline passes, then call
              // on_request() again (with the same state)
    Call,     // make side_requests() first and call on_side_responses() with the answers
    Fetch = Call,  // Decision::fetch: a call of one GET (fetch_target()), answered to on_fetched()
  };

  static Decision forward() { return Decision(Kind::Forward); }
  // Forward, but without these request fields (e.g. a conditional the policy has already
  // evaluated and the backend would not understand).
  static Decision forward_without(std::vector<std::string> request_fields) {
    Decision d(Kind::Forward);
    d.strip_fields_ = std::move(request_fields);
    return d;
  }
  static Decision reply(Problem problem, HeaderList headers = {}) {
    Decision d(Kind::Reply);
    d.status_ = problem.status;
    d.problem_ = std::move(problem);
    d.headers_ = std::move(headers);
    return d;
  }
  // An answer that is not a problem, e.g. 304 Not Modified (body empty) .
  static Decision respond(int status, HeaderList headers, std::string body = {},
                          std::string content_type = {}) {
    Decision d(Kind::Reply);
    d.status_ = status;
    d.headers_ = std::move(headers);
    d.body_ = std::move(body);
    d.content_type_ = std::move(content_type);
    return d;
  }
  static Decision wait_until(MonotonicTime deadline) {
    Decision d(Kind::Wait);
    d.deadline_ = deadline;
    return d;
  }
  static Decision call(std::vector<SideRequestSpec> side_requests) {
    Decision d(Kind::Call);
    d.side_requests_ = std::move(side_requests);
    return d;
  }
  static Decision fetch(std::string target) { return call({SideRequestSpec::fetch(std::move(target))}); }

  Kind kind() const noexcept { return kind_; }
  bool forwards() const noexcept { return kind_ == Kind::Forward; }
  int status() const noexcept { return status_; }
  // Reply: a problem+json answer when set, else status/headers/body as given.
  const std::optional<Problem>& problem() const noexcept { return problem_; }
  const HeaderList& headers() const noexcept { return headers_; }
  const std::string& body() const noexcept { return body_; }
  const std::string& content_type() const noexcept { return content_type_; }
  const std::vector<std::string>& strip_fields() const noexcept { return strip_fields_; }
  MonotonicTime deadline() const noexcept { return deadline_; }
  const std::vector<SideRequestSpec>& side_requests() const noexcept { return side_requests_; }
  // Call: the first side request's target (a fetch's only one).
  const std::string& fetch_target() const noexcept {
    static const std::string kNone;
    return side_requests_.empty() ? kNone : side_requests_.front().target;
  }

 private:
  explicit Decision(Kind kind) : kind_(kind) {}
  Kind kind_;
  int status_ = 0;
  std::optional<Problem> problem_;
  HeaderList headers_;
  std::string body_;
  std::string content_type_;
  std::vector<std::string> strip_fields_;
  MonotonicTime deadline_{};
  std::vector<SideRequestSpec> side_requests_;
};

// What a response-phase hook decided: go on, or make side requests first (e.g. GET the
// resource to learn its new version after a write) and call on_response_side_responses()
// (a fetch: on_response_fetched()) with the answers. Honoured only while the response is still
// held back: when its body is buffered (response.body != nullptr) or it has none
// (body_withheld == false).
struct ResponseStep {
  static ResponseStep proceed() { return {}; }
  static ResponseStep call(std::vector<SideRequestSpec> requests) {
    ResponseStep step{true, requests.empty() ? std::string() : requests.front().target, {}};
    step.side_requests = std::move(requests);
    return step;
  }
  static ResponseStep fetch(std::string target) { return call({SideRequestSpec::fetch(std::move(target))}); }
  bool fetch_first = false;   // side_requests are made first (named when a fetch was the only kind)
  std::string fetch_target;   // the first side request's target
  std::vector<SideRequestSpec> side_requests;
};

// Per-request state a policy keeps between its hooks; destroyed when the exchange ends,
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

  // Request phase. May set `state` to carry something to later hooks. Called again after a
  // Wait, with the state it left.
  virtual Decision on_request(const RequestView& request, std::unique_ptr<ExchangeState>& state) = 0;

  // The answer to this policy's Decision::fetch.
  virtual Decision on_fetched(const RequestView& request, const FetchedResponse& fetched,
                              std::unique_ptr<ExchangeState>& state) {
    (void)request, (void)fetched, (void)state;
    return Decision::forward();
  }

  // The answers to this policy's Decision::call, responses[i] to its i-th request; the same
  // state as on_request. By default one answer goes to on_fetched (Decision::fetch's hook).
  virtual Decision on_side_responses(const RequestView& request, std::span<const SideResponse> responses,
                                     std::unique_ptr<ExchangeState>& state) {
    return responses.size() == 1 ? on_fetched(request, responses.front(), state) : Decision::forward();
  }

  // Response phase, in reverse policy order; state is what the request phase left (possibly
  // null). Not called when the upstream gave no response: the state's destructor is the
  // place to handle an unknown outcome.
  virtual ResponseStep on_response(const RequestView& request, ResponseView& response, ExchangeState* state) {
    (void)request, (void)response, (void)state;
    return ResponseStep::proceed();
  }

  // The answer to this policy's ResponseStep::fetch.
  virtual void on_response_fetched(const RequestView& request, ResponseView& response,
                                   const FetchedResponse& fetched, ExchangeState* state) {
    (void)request, (void)response, (void)fetched, (void)state;
  }

  // The answers to this policy's ResponseStep::call, as on_side_responses. By default one
  // answer goes to on_response_fetched.
  virtual void on_response_side_responses(const RequestView& request, ResponseView& response,
                                          std::span<const SideResponse> responses, ExchangeState* state) {
    if (responses.size() == 1) on_response_fetched(request, response, responses.front(), state);
  }

  // What this policy would check for this request, in a sentence or two, for
  // `arbiter explain` (request.now and request.waker are not meaningful there).
  virtual std::string explain(const RequestView& request) const { (void)request; return std::string(kind()); }

  // > 0: the proxy buffers response bodies (and fetched bodies) up to this many bytes and
  // hands them to the hooks; larger bodies stream through and the hooks see body == nullptr.
  virtual std::size_t response_body_limit() const noexcept { return 0; }

  // > 0: this request's body must be read whole, up to this many bytes, before the route's
  // first policy runs, and is then forwarded from memory; a larger body is refused with 413.
  // For a policy that makes requests wait their turn (the ETag policy's writes), so that a
  // client sending its body slowly never holds a turn: the turn lasts only while the upstream
  // works. Called once per request, with the head complete (request.now and request.waker are
  // not meaningful).
  virtual std::size_t request_body_limit(const RequestView& request) const noexcept {
    (void)request;
    return 0;
  }
};

}  // namespace arbiter
