#pragma once
// One client connection and the exchanges on it, one at a time (pipelined requests wait in
// the input buffer and are answered in order).
//
// accept -> parse head (llhttp, paused at the end of the head) -> route -> request policies
// -> upstream (request body streamed as it arrives) -> response policies -> client. When a
// policy asks for it (Policy::request_body_limit), the body is read whole between route and
// request policies, and sent upstream from memory.
//
// Lifetime: owned by its Worker; freed only in the close callback of its last handle, so every
// libuv callback that can still arrive finds it alive. It never moves (libuv holds pointers to
// its handles).

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <llhttp.h>
#include <uv.h>

#include "policies/policy.h"
#include "proxy/http/forwarding.h"
#include "proxy/http/request_parser.h"
#include "proxy/exchange/runtime.h"
#include "proxy/net/stream_write.h"
#include "proxy/net/side_request.h"
#include "proxy/net/tunnel.h"
#include "proxy/net/upstream.h"

namespace arbiter {

class Worker;
class ExchangeWaker;
class MetricsShard;

class ClientConnection final : public RequestEvents,
                               public UpstreamSink,
                               public WriteListener,
                               public SideRequestsOwner,
                               public TunnelObserver {
 public:
  ClientConnection(Worker& worker, bool admin);
  ClientConnection(const ClientConnection&) = delete;
  ClientConnection& operator=(const ClientConnection&) = delete;

  uv_tcp_t* tcp() noexcept { return &tcp_; }
  bool admin() const noexcept { return admin_; }
  // After uv_accept: start reading the first request.
  void start();
  // max_connections reached: answer 503 and close without reading a request.
  void refuse_overloaded();
  // Draining: close now if between requests; otherwise after the current response.
  void close_when_idle();
  // Close at once, abandoning any exchange in flight.
  void close_now();

  // RequestEvents
  void on_request_begin() override;
  bool on_request_body(std::string_view piece) override;
  void on_request_complete() override;
  void on_parse_paused() override;
  bool takes_input() const override;
  // UpstreamSink
  void on_upstream_connected(UpstreamConnection& connection) override;
  void on_upstream_failed(UpstreamFailure failure, bool connection_was_reused, int error) override;
  void on_upstream_head(int status, HeaderList& headers, BodyFraming framing,
                        std::uint64_t content_length) override;
  void on_upstream_body(std::string_view data) override;
  void on_upstream_trailers(const HeaderList& trailers) override;
  void on_upstream_complete() override;
  void on_upstream_drained() override;
  void on_upstream_read_end() override;
  void on_upstream_upgraded(UpstreamConnection& connection, std::string_view early) override;
  // TunnelObserver
  void on_tunnel_closed() override;
  // WriteListener
  void on_write_done(int status) override;
  // SideRequestsOwner: the answers to the policy that asked (request or response phase)
  void on_side_responses(std::vector<SideResponse> responses) override;
  // A policy woke the exchange it parked (called on this connection's loop).
  void on_woken();

 private:
  enum class Phase : std::uint8_t {
    Idle,         // between requests (keep-alive)
    ReadingHead,  // a request has begun; its head is not complete
    Exchange,     // head complete: answering or forwarding
    Lingering,    // answer written, write side shut: discarding input until EOF or timeout
    Closed,
  };
  // Who answered the current exchange, for the access log.
  enum class Answer : std::uint8_t { None, Upstream, Local };

  // input
  void on_input(const char* data, std::size_t length);
  void resume_parser();
  void update_reading();
  // A request body is on its way from the client, to the upstream or into request_body_
  // (body_timeout and body_deadline apply).
  bool streaming_request_body() const noexcept;
  // Arms timer_ for the next body bytes: body_timeout, or less when body_deadline comes first.
  void arm_body_timer();
  // The body begins to arrive: body_deadline runs from now (once a request).
  void start_body_clock();
  void on_parse_error(llhttp_errno_t error) override;
  // The request cannot go on (bad input, a stalled body): answer `problem` and close, or only
  // close once part of an answer is out. The upstream never sees the rest of the request.
  void refuse_request(const Problem& problem);

  // exchange
  void begin_exchange();
  bool validate_request_head();
  // When a policy of the route wants the body first (Policy::request_body_limit): starts
  // reading it into request_body_ (the chain runs once it is in) or refuses it with 413; true
  // in both cases, false when nobody wants it.
  bool read_body_first();
  // 413 for a body of `size` bytes over body_.limit (`declared`: its Content-Length).
  Problem body_too_large(std::uint64_t size, bool declared) const;
  // Sets target_, path_length_ and routed_path_; false when it answered 400 instead.
  bool normalize_target();
  // The request asks to switch protocols and its route tunnels them (once routed).
  bool upgrade() const noexcept { return head_.upgrade && route_->config->websocket; }
  void run_request_policies();  // from policy_index_ on
  // Acts on a request-phase decision; true when the chain goes on to the next policy.
  bool apply_request_decision(const Decision& decision);
  // A policy's Decision::call / ResponseStep::call: each spec to its upstream's pool of this
  // worker (the route's when it names none), its body limit resolved.
  void start_side_requests(const std::vector<SideRequestSpec>& specs);
  void answer_admin();
  void answer_reload();  // POST /reload on the admin listener
  void connect_upstream(std::size_t avoid_server);
  void forward_request_body(const char* data, std::size_t length);
  void send_response_head(HeaderList& headers, BodyFraming upstream_framing, std::uint64_t content_length);
  void send_response_body(std::string_view data);
  // bufs[0] is left free for the pending response head; sent with it if one is pending.
  void send_with_pending_head(uv_buf_t* bufs, unsigned count);
  void flush_pending_head();
  // From response_policy_index_ down; may_fetch: the response is held back (buffered or
  // bodiless), so a policy may fetch first, and it is delivered when the chain is done.
  void run_response_policies(bool may_fetch);
  void release_held_head_withheld();
  void deliver_held_response();
  ResponseView response_view(MonotonicTime now);
  void finish_exchange();
  void reset_exchange();

  // answers made here
  void reply_problem(const Problem& problem, const HeaderList& extra, std::string_view decided_by);
  void reply(int status, std::string_view content_type, const HeaderList& extra, std::string_view body,
             std::string_view decided_by);
  void send_to_client(const uv_buf_t* bufs, unsigned count);

  void close_gracefully();
  void arm_timer(Duration timeout);
  // The tunnel after a 101 (proxy/net/client_tunnel.cpp): its idle timeout on timer_, and its end
  // (the upstream connection abandoned, the bytes relayed to the client counted for the log).
  void on_tunnel_timer();
  void end_tunnel();
  // At the end of an exchange: the access log line and the request metrics.
  void log_exchange();
  std::string_view client_address() const noexcept;
  RequestView request_view() const;  // of the current request, with `now`

  static void on_alloc(uv_handle_t* handle, std::size_t suggested, uv_buf_t* buf);
  static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
  static void on_timer(uv_timer_t* timer);
  static void on_shutdown(uv_shutdown_t* request, int status);
  static void on_closed(uv_handle_t* handle);

  Worker& worker_;
  const bool admin_;
  MetricsShard& metrics_;  // this worker's; the admin listener's exchanges are not counted
  uv_tcp_t tcp_{};
  uv_timer_t timer_{};
  uv_shutdown_t shutdown_request_{};
  int handles_open_ = 0;
  Phase phase_ = Phase::Idle;
  bool reading_ = false;
  std::string peer_address_;

  // parser and input
  RequestParser parser_{*this};
  RequestHead& head_{parser_.head()};  // the current request's

  // the current request
  std::shared_ptr<const Runtime> runtime_;  // policies in force when the request began
  bool client_keep_alive_ = true;
  bool expect_continue_ = false;
  std::string request_id_;
  std::string believed_client_;  // empty: the peer address
  bool peer_is_trusted_proxy_ = false;
  std::uint64_t started_ns_ = 0;
  const RouteRuntime* route_ = nullptr;
  // The target with its path normalised (the query as sent), and its path's length; the path
  // lower-cased under case_insensitive_paths (else empty). params_ point into one of them.
  std::string target_;
  std::size_t path_length_ = 0;
  std::string routed_path_;
  std::vector<PathParam> params_;
  std::vector<std::unique_ptr<ExchangeState>> policy_states_;
  std::size_t policy_index_ = 0;           // the request-phase policy being asked
  std::shared_ptr<ExchangeWaker> waker_;   // for policies that park the request
  bool waiting_ = false;                   // parked by a policy (timer_ holds its deadline)
  std::vector<std::string> omit_fields_;   // request fields the policies took out
  SideRequests side_requests_;  // a policy's call in progress, if any
  // The request body's state for this exchange; reset whole by reset_exchange.
  enum class BodyFirst : std::uint8_t {
    No,        // streamed to the upstream as it arrives (or there is none)
    Reading,   // read whole before the policies run (read_body_first): on its way into request_body_
    InMemory,  // all of it is in request_body_, sent upstream from there
  };
  struct RequestBody {
    BodyFirst first = BodyFirst::No;
    std::size_t limit = 0;             // read whole: at most this many bytes (else 413)
    std::string_view limit_policy;     // the kind() of the policy that set `limit`
    std::uint64_t deadline_ns = 0;     // uv_hrtime() by which the body must be in; 0: not begun
    bool timer_is_deadline = false;    // timer_ was armed for body_deadline, not body_timeout
  };
  RequestBody body_;
  std::string request_body_;  // BodyFirst::Reading/InMemory; its capacity outlives the exchange

  // upstream
  UpstreamConnection* upstream_ = nullptr;
  unsigned upstream_attempts_ = 0;
  std::size_t last_server_ = SIZE_MAX;
  std::uint64_t upstream_started_ns_ = 0;
  std::uint64_t upstream_ns_ = 0;
  bool forwarding_ = false;
  // After a 101: the upgraded upstream connection (ours until abandoned) and the tunnel, which
  // lives as long as this connection, since the streams' owners route their events to it.
  UpstreamConnection* tunnel_upstream_ = nullptr;
  std::unique_ptr<Tunnel> tunnel_;

  // the response
  Answer answer_ = Answer::None;
  std::string_view decided_by_;
  int response_status_ = 0;
  bool response_head_sent_ = false;  // committed; see head_pending_
  bool head_pending_ = false;        // the head is in head_scratch_, not yet written
  bool response_complete_ = false;
  bool response_keep_alive_ = true;
  BodyFraming response_framing_ = BodyFraming::None;
  bool response_has_body_ = false;
  std::uint64_t response_bytes_ = 0;
  HeaderList response_trailers_;  // relayed in the last chunk (the client sent TE: trailers)
  // The response as the policies see it, held back until they are done.
  bool holding_response_ = false;
  bool response_pending_ = false;          // the response phase has begun
  std::size_t response_policy_index_ = 0;  // policies [0, index) are still to run
  bool buffering_body_ = false;            // the body is gathered for the policies
  bool body_withheld_ = false;             // there is a body the policies cannot see
  HeaderList held_headers_;
  BodyFraming held_framing_ = BodyFraming::None;
  std::uint64_t held_length_ = 0;
  std::string buffered_body_;
  std::string head_scratch_;
};

}  // namespace arbiter
