#pragma once
// One request and its answer: constructed when a request head is complete (or when the
// connection must answer before there is one: a bad head, a head timeout, max_connections), and
// destroyed when the exchange ends, so nothing about a request outlives it.
//
// route (or a local handler: the admin listener, [server] control_prefix) -> (body read whole, when a policy wants it) -> request policies -> upstream (request
// body streamed as it arrives) -> response policies (the response held back while they may
// still call side requests or park) -> client -> end policies. Any policy hook may park the
// exchange (until its Waker fires or its deadline passes) or call side requests; the stage
// says where the exchange is.
//
// It owns no socket, timer or thread: everything outside goes through its ExchangeHost, which
// feeds it the request's body and end, the upstream's events, timer expiries and wake-ups.
//
// Lifetime: the host destroys it in ExchangeHost::exchange_done, which the exchange calls as its
// very last action (nothing of it is touched afterwards), or after on_client_gone has brought it
// to Stage::Done. Retries, chunk framing, the response held for the policies and the access-log
// line are its business.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policies/policy.h"
#include "proxy/control/local_handler.h"
#include "proxy/exchange/exchange_host.h"
#include "proxy/exchange/runtime.h"

namespace arbiter {

class HandlerRegistry;
class ExchangeStream;

class Exchange final : public UpstreamEvents {
 public:
  enum class Stage : std::uint8_t {
    Routing,           // head checks, path normalisation, route match
    ReadingBody,       // the request body is read whole before a policy sees it
    RequestPolicies,   // on_request / on_request_body / on_side_responses running
    Parked,            // a policy waits for its waker or deadline (hook() says which hook)
    SideRequest,       // a policy's side requests are outstanding (hook() says which hook)
    Upstream,          // forwarded: the request goes out, the response comes back
    ResponsePolicies,  // on_response / on_response_side_responses running over the held response
    Delivering,        // the answer is (being) written; waiting for the rest of the request
    Streaming,         // a local handler holds the response open (an ExchangeStream writes it)
    Tunnel,            // a 101 was relayed; the host tunnels the connection
    Ending,            // on_end / on_end_side_responses running
    Done,
  };
  // The hook a parked exchange (or one waiting for side requests) returns to.
  enum class Hook : std::uint8_t { Request, RequestBody, Response, End };

  // `head` (the parser's) stays valid and unchanged until the exchange is destroyed, except for
  // the request fields policies set. `started`: when the request's first byte arrived.
  Exchange(ExchangeHost& host, ExchangeScratch& scratch, RequestHead& head, MonotonicTime started);
  ~Exchange();
  Exchange(const Exchange&) = delete;
  Exchange& operator=(const Exchange&) = delete;

  // The head is complete: answer or forward it.
  void start();
  // The request cannot go on (bad input, a timeout, a stalled body): answer `problem` and
  // close, or only close once part of an answer is out. The upstream never sees the rest.
  void refuse(const Problem& problem);
  // max_connections reached: 503 and close, without reading a request.
  void refuse_overloaded();

  // --- from the host: the request's bytes
  // False: stop parsing (the exchange refused the request).
  bool on_request_body(std::string_view piece);
  void on_request_complete();
  // The parser paused after the end of the request.
  void on_request_paused();
  // Reading from the client started (true) or stopped.
  void on_reading_changed(bool reading);
  // What is queued towards the upstream (the host stops reading the client above a mark).
  std::size_t upstream_backlog() const noexcept;
  // The client's queued bytes were written.
  void on_client_drained();
  // The connection is closing (the client went, a write failed, a drain ended): no more bytes
  // in or out. Ends the exchange without an answer (runs the end hooks, which may still park).
  void on_client_gone();
  // A graceful shutdown began: a held-open local response is ended cleanly (its handler told).
  void on_drain();
  // After a tunnel: the bytes relayed to the client, for the access log.
  void set_tunnel_bytes(std::uint64_t bytes) noexcept { response_bytes_ = bytes; }

  // --- from the host: timers, wake-ups, side requests
  void on_timer();
  void on_woken();
  // The answers to the side requests the exchange started, answers[i] to its i-th spec.
  void on_side_responses(std::vector<SideResponse> answers);

  // --- answers made here (also the local handlers', through an ExchangeResponder)
  void reply_problem(const Problem& problem, const HeaderList& extra, std::string_view decided_by);
  void reply(int status, std::string_view content_type, const HeaderList& extra, std::string_view body,
             std::string_view decided_by);

  Stage stage() const noexcept { return stage_; }
  Hook hook() const noexcept { return hook_; }
  const std::string& request_id() const noexcept { return scratch_.request_id; }
  const RouteRuntime* route() const noexcept { return route_; }
  // The request fields the policies took out (Decision::forward_without): never sent upstream.
  const std::vector<std::string>& omitted_fields() const noexcept { return scratch_.omit_fields; }

  // UpstreamEvents
  void on_upstream_connected(UpstreamChannel& channel) override;
  void on_upstream_failed(UpstreamFailure failure, bool connection_was_reused, int error) override;
  void on_upstream_head(int status, HeaderList& headers, BodyFraming framing, std::uint64_t content_length) override;
  void on_upstream_body(std::string_view data) override;
  void on_upstream_trailers(const HeaderList& trailers) override;
  void on_upstream_complete() override;
  void on_upstream_drained() override;
  void on_upstream_read_end() override;
  void on_upstream_upgraded(std::string_view early) override;

 private:
  // Who answered, for the access log.
  enum class Answer : std::uint8_t { None, Upstream, Local };
  struct RequestBody {
    bool reading = false;              // being read whole into scratch_.request_body
    bool in_memory = false;            // all of it is in scratch_.request_body, sent from there
    std::size_t limit = 0;             // read whole: at most this many bytes (else 413)
    std::string_view limit_policy;     // the kind() of the policy that set `limit`
    bool for_policy = false;           // read for Decision::read_body: on_request_body follows
    MonotonicTime deadline{};          // by when the body must be in; epoch: not begun
    bool timer_is_deadline = false;    // the timer was armed for body_deadline, not body_timeout
  };

  // Routes the (normalised) request and runs its route's policies, or answers 404/405.
  void route_request();
  bool validate_request_head();
  bool normalize_request_target();
  bool read_body_first();
  void begin_body_read(std::size_t limit, std::string_view wanted_by);
  Problem body_too_large(std::uint64_t size, bool declared) const;
  bool upgrade() const noexcept;
  bool streaming_request_body() const noexcept;
  void arm_body_timer();
  void start_body_clock();
  void send_continue();

  // local handlers (proxy/exchange/local_answer.cpp): `registry`'s handler for `path` (under
  // `mount`: [server] control_prefix, or "" on the admin listener) answers at once or holds the
  // response open (local_stream_).
  friend class ExchangeResponder;
  friend class ExchangeStream;
  void answer_locally(const HandlerRegistry& registry, std::string_view mount, std::string_view path,
                      std::string_view query);
  std::shared_ptr<LocalStream> start_stream(int status, const HeaderList& fields, StreamListener& listener,
                                            std::string_view decided_by);
  // A handler's pass_on: the request, changed, goes to route_request.
  void pass_on(PassedOnRequest request);
  // Calls the registry's handler for the request, with the body read for it (scratch_.request_body)
  // when its entry takes one.
  void call_local_handler();
  // The local call waiting for its request body (answer_locally's arguments): registry is null
  // when none waits.
  struct LocalCall {
    const HandlerRegistry* registry = nullptr;
    std::string_view mount, path, query;  // views into the config and the request target, which outlive it
    bool with_body = false;
    std::string principal;  // who asks ([control]: the token's name, or the client's address)
  };
  LocalCall local_call_;
  // PassedOnRequest::on_answer of the request handed on; called (and cleared) as its head goes.
  std::function<void(int, HeaderList&)> on_passed_on_answer_;
  void tell_passed_on_answer(int status, HeaderList& fields);
  // The local answer is complete: read the rest of the request (dropping any body) and end, or
  // end at once. May destroy the exchange (its caller's last action).
  void end_local_answer();

  // A policy's Decision::reply (a problem or a plain answer); `decided_by`: the policy's kind().
  void reply_decision(const Decision& answer, std::string_view decided_by);

  // the hooks
  // The request as the route's policies see it: made once, when the request is routed; each pass
  // of hooks gets it with the current time and body.
  RequestView& request_view();
  ResponseView response_view(MonotonicTime now);
  void run_request_policies();  // from policy_index_ on
  bool apply_request_decision(Decision& decision);
  void park(Hook hook, MonotonicTime deadline);
  void resume_parked();
  // The last thing the caller does: the answers may come (and the exchange end) before it returns.
  void start_side_requests(Hook hook, std::vector<SideRequestSpec> specs);
  void cancel_side_requests();
  void run_response_policies(bool held);  // from response_policy_index_ down
  bool apply_response_step(ResponseStep& step, std::size_t policy);
  void release_held_head_withheld();
  void deliver_held_response();
  ExchangeOutcome outcome(MonotonicTime now);
  void run_end_policies();  // from end_policy_index_ down

  // the upstream
  void connect_upstream(std::size_t avoid_server);
  void forward_request_body(std::string_view data);
  // Body bytes to the upstream, after the head if it is still pending (at most three pieces).
  bool send_upstream(std::span<const std::string_view> pieces);
  void drop_upstream();

  // the client
  void send_response_head(HeaderList& headers, BodyFraming upstream_framing, std::uint64_t content_length);
  void send_response_body(std::string_view data);
  // pieces[0] is left free for the pending response head; sent with it if one is pending.
  void send_with_pending_head(std::string_view* pieces, std::size_t count);
  void flush_pending_head();
  // The last chunk of a chunked answer, with the upstream's trailer fields if any were kept.
  void send_last_chunk();
  void send(std::span<const std::string_view> pieces);

  // the end: logs the exchange (once) and runs the end hooks, unless they have begun
  void finish();
  void log_exchange();
  std::string_view client_address() const noexcept;

  ExchangeHost& host_;
  ExchangeScratch& scratch_;
  RequestHead& head_;
  std::shared_ptr<const Runtime> runtime_;  // policies in force when the request began
  MonotonicTime started_;
  Stage stage_ = Stage::Routing;
  Hook hook_ = Hook::Request;  // Hook::End from the moment the end hooks begin (finish()), never before
  bool client_keep_alive_ = true;
  bool expect_continue_ = false;
  bool peer_is_trusted_proxy_ = false;
  bool client_gone_ = false;
  bool replace_body_after_read_ = false;   // a policy's body (in scratch_.held_body) replaces the client's
  const RouteRuntime* route_ = nullptr;
  std::optional<RequestView> view_;         // once routed: see request_view()
  std::size_t policy_index_ = 0;           // the request-phase policy being asked
  std::size_t response_policy_index_ = 0;  // response policies [0, index) are still to run
  std::size_t end_policy_index_ = 0;       // end hooks [0, index) are still to run
  RequestBody body_;

  // upstream
  UpstreamChannel* upstream_ = nullptr;
  unsigned upstream_attempts_ = 0;
  std::size_t last_server_ = SIZE_MAX;
  MonotonicTime upstream_started_{};
  MonotonicClock::duration upstream_time_{};
  bool forwarding_ = false;
  // The upstream request's head is in scratch_.head, waiting to leave with the first bytes of
  // the body the client has already sent (one write instead of two); see send_upstream.
  bool upstream_head_pending_ = false;

  // the response
  Answer answer_ = Answer::None;
  std::string_view decided_by_;
  int response_status_ = 0;
  bool upstream_answered_ = false;
  bool response_head_sent_ = false;  // committed; see head_pending_
  bool head_pending_ = false;        // the head is in scratch_.head, not yet written
  bool response_complete_ = false;
  bool response_keep_alive_ = true;
  BodyFraming response_framing_ = BodyFraming::None;
  bool response_has_body_ = false;
  std::uint64_t response_bytes_ = 0;
  // The response as the policies see it, held back until they are done.
  bool holding_response_ = false;
  bool buffering_body_ = false;  // the body is gathered (in scratch_.held_body) for the policies
  bool body_withheld_ = false;   // there is a body the policies cannot see
  BodyFraming held_framing_ = BodyFraming::None;
  std::uint64_t held_length_ = 0;
  // A local handler's held-open response (shared with the handler); null when there is none.
  std::shared_ptr<ExchangeStream> local_stream_;
};

}  // namespace arbiter
