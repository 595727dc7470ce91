#pragma once
// The seam between the proxy and the decision logic.
//
// A route owns an ordered list of policies. For each request the proxy calls every policy's
// on_request() in order before a byte goes upstream; the first that answers ends the chain and
// its answer goes to the client. After the upstream's response head (and, if a policy asked,
// its body) has arrived, on_response() runs in reverse order, like Envoy's encoder filters.
// When the exchange is over (answered, failed, or the client gone), on_end() runs in reverse
// order: the place for I/O about the outcome (not a destructor).
//
// Every hook answers with a step of one vocabulary (Decision in the request phase, ResponseStep
// in the response and end phases): go on; reply; park until the Waker fires or a deadline
// passes (the hook is then called again); call side requests (call, or fetch for one GET) and
// get the answers in the matching *_side_responses hook (*_fetched for a fetch); in the request
// phase also ask for the request body (Decision::read_body, then on_request_body) and forward
// with request fields set, a body or the method replaced (Decision::with_field, with_body,
// with_method).
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

class MetricsWriter;  // policies/metrics_writer.h

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
  std::shared_ptr<Waker> waker;  // every phase (null only in `arbiter explain`)
  // The path as routes and resource keys see it (lower-cased under the proxy's
  // case_insensitive_paths); empty: `path` itself.
  std::string_view resource_path = {};
  // The request body, once read whole (Policy::request_body_limit, Decision::read_body), as
  // it will be forwarded (a policy may have replaced it); nullptr while not read.
  const std::string* body = nullptr;
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

// Side requests (proxy/http/side_request_spec.h): a hook answers Decision::call(specs) (request
// phase) or ResponseStep::call(specs) (response and end phases); the proxy sends them all at
// once, each to its upstream with its own timeout, and when every one has finished (answered,
// failed or timed out) calls the same policy's on_side_responses / on_response_side_responses /
// on_end_side_responses once, with the answers in the order of the specs. The exchange waits
// meanwhile; if the client goes away first in the request or response phase, the requests are
// cancelled and no hook is called (the end phase's go on).
//
// One mechanism, one shorthand. The mechanism is call(specs), side_requests and the
// *_side_responses hooks. The shorthand, for a policy that reads one resource: fetch(target) is
// call({SideRequestSpec::fetch(target)}), and on_fetched / on_response_fetched / on_end_fetched
// are where the default *_side_responses hooks pass exactly one answer. A policy overrides one
// or the other per phase, not both. These names are the same things again, kept for the callers
// that use them (the ETag policy, its tests, the fuzzers); new code uses the names they stand
// for: Decision::Kind::Fetch is Kind::Call, FetchedResponse is SideResponse,
// ResponseStep::fetch_first is "side_requests are to be made" (true exactly for a step made by
// call or fetch), ResponseStep::fetch_target and Decision::fetch_target() are
// side_requests.front().target.
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
    Fetch = Call,  // Kind::Call under an older name (see "One mechanism, one shorthand")
    ReadBody, // read the request body whole, up to body_limit() bytes (else 413), then call
              // on_request_body() with it
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
  // Honoured only before anything went upstream (the request phase): a body already read is
  // handed over at once.
  static Decision read_body(std::size_t limit) {
    Decision d(Kind::ReadBody);
    d.body_limit_ = limit;
    return d;
  }
  // Forward edits (Kind::Forward): set a request field (replacing any of that name) before
  // forwarding; later policies see it in RequestView::headers.
  Decision with_field(std::string name, std::string value) && {
    set_fields_.emplace_back(std::move(name), std::move(value));
    return std::move(*this);
  }
  // Forward edits: forward this body instead of the client's (framed by its length). The
  // client's body, if not read yet, is read whole first (up to the proxy's max_body_bytes).
  Decision with_body(std::string body) && {
    replaced_body_ = std::move(body);
    return std::move(*this);
  }
  // Forward edits: forward with this method instead of the client's (a PATCH applied here goes
  // as a PUT). A string literal: kept as a view.
  Decision with_method(std::string_view method) && {
    method_ = method;
    return std::move(*this);
  }
  // Reply: the access log's `decision` for this answer instead of the policy's kind (the lock
  // policy's 423 is "locked"). A string literal: kept as a view.
  Decision logged_as(std::string_view decision) && {
    logged_as_ = decision;
    return std::move(*this);
  }

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
  std::vector<SideRequestSpec>& side_requests() noexcept { return side_requests_; }
  // Call: the first side request's target (a fetch's only one); "" otherwise.
  const std::string& fetch_target() const noexcept {
    static const std::string kNone;
    return side_requests_.empty() ? kNone : side_requests_.front().target;
  }
  std::size_t body_limit() const noexcept { return body_limit_; }
  const std::vector<std::pair<std::string, std::string>>& set_fields() const noexcept { return set_fields_; }
  const std::optional<std::string>& replaced_body() const noexcept { return replaced_body_; }
  std::string_view logged_as() const noexcept { return logged_as_; }
  std::string_view replaced_method() const noexcept { return method_; }
  std::optional<std::string>& replaced_body() noexcept { return replaced_body_; }

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
  std::size_t body_limit_ = 0;
  std::vector<std::pair<std::string, std::string>> set_fields_;
  std::optional<std::string> replaced_body_;
  std::string_view logged_as_;
  std::string_view method_;
};

// What a response-phase or end-phase hook decided: go on; make side requests first (e.g. GET
// the resource to learn its new version after a write) and get the answers in
// on_response_side_responses() / on_end_side_responses() (a fetch: on_response_fetched() /
// on_end_fetched()); park until the waker fires or the deadline passes, then be called again;
// or (response phase) answer the client with this instead of the upstream's response. In the
// response phase a call, a park and a reply are honoured only while the response is still held
// back: when its body is buffered (response.body != nullptr) or it has none
// (body_withheld == false).
struct ResponseStep {
  static ResponseStep proceed() { return {}; }
  static ResponseStep call(std::vector<SideRequestSpec> requests) {
    ResponseStep step;
    step.fetch_first = true;
    if (!requests.empty()) step.fetch_target = requests.front().target;
    step.side_requests = std::move(requests);
    return step;
  }
  static ResponseStep fetch(std::string target) { return call({SideRequestSpec::fetch(std::move(target))}); }
  static ResponseStep wait_until(MonotonicTime until) {
    ResponseStep step;
    step.wait = true;
    step.deadline = until;
    return step;
  }
  static ResponseStep reply(Problem problem, HeaderList headers = {}) {
    ResponseStep step;
    step.replacement = std::make_shared<Decision>(Decision::reply(std::move(problem), std::move(headers)));
    return step;
  }
  static ResponseStep respond(int status, HeaderList headers, std::string body = {}, std::string content_type = {}) {
    ResponseStep step;
    step.replacement = std::make_shared<Decision>(
        Decision::respond(status, std::move(headers), std::move(body), std::move(content_type)));
    return step;
  }
  // Set by call and fetch only: side_requests are made before the exchange goes on (even
  // none). fetch_target is a copy of the first one's target, for tests.
  bool fetch_first = false;
  std::string fetch_target;
  std::vector<SideRequestSpec> side_requests;
  bool wait = false;
  MonotonicTime deadline{};
  std::shared_ptr<Decision> replacement;  // a reply (Decision::Kind::Reply) instead of the response
};

// How an exchange ended, for Policy::on_end.
struct ExchangeOutcome {
  int status = 0;                  // what the client got (0: nothing)
  bool upstream_answered = false;  // the upstream's response head arrived
  bool response_complete = false;  // the client got its whole answer
  bool client_gone = false;        // the client went away (or the connection failed) first
  MonotonicTime now;
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

  // The request body, after this policy's Decision::read_body: it may read and replace it
  // (what is forwarded is `body` as the hook leaves it). Called again after a Wait.
  virtual Decision on_request_body(const RequestView& request, std::string& body,
                                   std::unique_ptr<ExchangeState>& state) {
    (void)request, (void)body, (void)state;
    return Decision::forward();
  }

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
  // null). Not called when the upstream gave no response: on_end, which every exchange reaches,
  // is the place to handle an unknown outcome (as the ETag policy settles an unsettled write).
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

  // End of the exchange, in reverse policy order, whichever way it ended; state is the
  // request phase's (possibly null) and is destroyed after every on_end has returned proceed.
  // May call side requests (then on_end_side_responses) or park; the client's answer is
  // already final.
  virtual ResponseStep on_end(const RequestView& request, const ExchangeOutcome& outcome, ExchangeState* state) {
    (void)request, (void)outcome, (void)state;
    return ResponseStep::proceed();
  }

  // The answer to this policy's ResponseStep::fetch in the end phase.
  virtual void on_end_fetched(const RequestView& request, const ExchangeOutcome& outcome,
                              const FetchedResponse& fetched, ExchangeState* state) {
    (void)request, (void)outcome, (void)fetched, (void)state;
  }

  // The answers to this policy's ResponseStep::call in the end phase, as on_side_responses. By
  // default one answer goes to on_end_fetched.
  virtual void on_end_side_responses(const RequestView& request, const ExchangeOutcome& outcome,
                                     std::span<const SideResponse> responses, ExchangeState* state) {
    if (responses.size() == 1) on_end_fetched(request, outcome, responses.front(), state);
  }

  // What this policy would check for this request, in a sentence or two, for
  // `arbiter explain` (request.now and request.waker are not meaningful there).
  virtual std::string explain(const RequestView& request) const { (void)request; return std::string(kind()); }

  // True when this policy answers every such request itself (the lock policy's LOCK and
  // UNLOCK): it never reaches the upstream, nor the policies after this one. For `explain`.
  virtual bool answers_itself(const RequestView& request) const { (void)request; return false; }

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

  // Its counters and gauges for /metrics, as samples of the families its kind declared
  // (PolicyKind::declare_metrics), labelled with `route` among others. Called by a scrape, on
  // any thread, while workers use the policy.
  virtual void write_metrics(std::string_view route, MetricsWriter& out) const { (void)route, (void)out; }
};

}  // namespace arbiter
