#pragma once
// What an Exchange needs from the connection that carries it, and nothing more: the client
// side (bytes out, the request's remaining bytes in), its listener's local handlers, one
// upstream exchange at a time, side requests, one timer, the time, the access log and metrics. ClientConnection (proxy/net/)
// is the real host; tests and fuzzers drive an Exchange through a fake one, with no sockets.
//
// Threading: every call, in both directions, happens on the host's (the worker's) loop thread.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "policies/policy.h"
#include "proxy/config/config.h"
#include "proxy/http/headers.h"
#include "proxy/http/path_normalization.h"
#include "proxy/http/request_parser.h"
#include "proxy/http/side_request_spec.h"
#include "proxy/net/side_request.h"
#include "proxy/net/upstream.h"

namespace arbiter {

class AccessLog;
class Exchange;
class HandlerRegistry;
class Runtime;
struct RouteRuntime;

// One upstream connection lent to an exchange, from open_upstream until its response completes,
// it fails, or the exchange abandons it.
class UpstreamChannel {
 public:
  // Sends bytes of the request in order. False: the connection failed (on_upstream_failed has
  // already been delivered).
  virtual bool send(std::span<const std::string_view> pieces) = 0;
  // Call once the request head has been sent (see UpstreamConnection::expect_response).
  virtual void expect_response(bool head_request, bool upgrade) = 0;
  // The request body is complete.
  virtual void request_finished() = 0;
  virtual std::size_t queued_bytes() const noexcept = 0;
  virtual void pause_reading() = 0;
  virtual void resume_reading() = 0;
  // The exchange no longer wants it: closed, never reused. No event follows.
  virtual void abandon() = 0;
  virtual std::size_t server_index() const noexcept = 0;
  virtual std::string_view authority() const noexcept = 0;
  // False while still connecting (on_upstream_connected follows).
  virtual bool ready() const noexcept = 0;

 protected:
  ~UpstreamChannel() = default;
};

// The upstream's events, as UpstreamSink (proxy/net/upstream.h) has them, for the exchange that
// opened the channel. After on_upstream_failed, _complete or _upgraded the channel is gone.
class UpstreamEvents {
 public:
  virtual void on_upstream_connected(UpstreamChannel& channel) = 0;
  virtual void on_upstream_failed(UpstreamFailure failure, bool connection_was_reused, int error) = 0;
  virtual void on_upstream_head(int status, HeaderList& headers, BodyFraming framing, std::uint64_t content_length) = 0;
  virtual void on_upstream_body(std::string_view data) = 0;
  virtual void on_upstream_trailers(const HeaderList& trailers) = 0;
  virtual void on_upstream_complete() = 0;
  virtual void on_upstream_drained() = 0;
  virtual void on_upstream_read_end() = 0;
  // A 101: the connection now carries another protocol; the host takes it over with
  // ExchangeHost::start_tunnel. `early`: what the upstream sent after the head.
  virtual void on_upstream_upgraded(std::string_view early) = 0;

 protected:
  ~UpstreamEvents() = default;
};

// Containers an exchange fills and the next exchange on the connection reuses, so that the
// exchange itself allocates nothing once a connection is warm: a pass-through request costs no
// allocation (tests/proxy/exchange/exchange_test.cpp checks it); what policies allocate (their
// ExchangeState, the fields they build) is theirs. Owned by the host; an Exchange clears what it
// uses when it is constructed.
struct ExchangeScratch {
  std::string request_id;
  std::string believed_client;
  NormalTarget target;      // the request target as the proxy routes and forwards it
  std::vector<PathParam> params;
  std::vector<std::unique_ptr<ExchangeState>> policy_states;
  std::vector<std::string> omit_fields;
  std::string request_body;  // a body read whole (or replaced by a policy)
  std::string head;          // a head being written
  HeaderList held_headers;   // the response as the policies see it
  std::string held_body;
  std::string last_chunk;    // the answer's last chunk with the upstream's trailers; empty: none
};

class ExchangeHost {
 public:
  // --- the client
  // Bytes to the client, in order. May close the connection (a write error), in which case
  // the exchange has been told (Exchange::on_client_gone) before this returns.
  virtual void send_to_client(std::span<const std::string_view> pieces) = 0;
  // Bytes queued towards the client not yet taken by the kernel (for back-pressure).
  virtual std::size_t client_backlog() const noexcept = 0;
  // Let the rest of the request (its body, then the end of the message) come in: events
  // arrive as Exchange::on_request_body / on_request_complete.
  virtual void read_request_on() = 0;
  // Reading may need to start or stop (the upstream's backlog changed).
  virtual void update_reading() = 0;
  virtual bool request_complete() const noexcept = 0;
  virtual std::uint64_t request_body_bytes() const noexcept = 0;
  // Bytes of this request (or after it) received from the client and not yet parsed: what
  // read_request_on() will hand over at once.
  virtual std::size_t buffered_request_bytes() const noexcept = 0;
  // The client sent, before its body, a request that must be answered: it has been. The
  // exchange is over; the host destroys it (the caller returns at once, touching nothing).
  // keep_alive: the connection may carry another request.
  virtual void exchange_done(bool keep_alive) = 0;
  // Part of an answer is out and the exchange cannot finish it: only closing tells the client.
  virtual void abort_connection() = 0;
  virtual std::string_view peer_address() const noexcept = 0;
  virtual bool draining() const noexcept = 0;

  // --- Arbiter's own answers: local handlers (proxy/control/local_handler.h), which the
  // exchange calls and answers for (see Exchange::answer_locally). Both registries live as long
  // as the host.
  // The registry that answers every request on this listener (the admin listener's, at the
  // root); nullptr on a client listener.
  virtual const HandlerRegistry* listener_handlers() const noexcept = 0;
  // On a client listener: the registry for paths under [server] control_prefix; nullptr: none.
  virtual const HandlerRegistry* control_handlers() const noexcept = 0;

  // --- the upstream, and protocols switched to after a 101
  // Lends a connection of `upstream` (a name of runtime's upstreams) to `events`; when it is not
  // ready() yet, events.on_upstream_connected (or _failed) follows.
  virtual UpstreamChannel& open_upstream(const Runtime& runtime, const std::string& upstream, UpstreamEvents& events,
                                         std::size_t avoid_server) = 0;
  virtual void start_tunnel(std::string_view early) = 0;

  // --- side requests (proxy/net/side_request.h): one call of several at a time
  // Sends every spec at once. The exchange has resolved each spec: `upstream` is a name (which
  // `runtime`, the exchange's configuration, may not have: that one fails UnknownUpstream) and
  // `body_limit` a number. The answers come back together, answers[i] to specs[i], through
  // Exchange::on_side_responses once the last has finished, possibly before this returns (all
  // failed at once). `origin` is read during the call only.
  virtual void start_side_requests(const Runtime& runtime, std::vector<SideRequestSpec> specs,
                                   const SideRequestOrigin& origin) = 0;
  // Drops the call outstanding, if any: no answer comes.
  virtual void cancel_side_requests() = 0;

  // --- time: one timer per exchange; it fires Exchange::on_timer.
  virtual void arm_timer(Duration timeout) = 0;
  virtual void stop_timer() = 0;
  virtual MonotonicTime now() const noexcept = 0;
  // For policies that park: calls Exchange::on_woken on this loop when woken.
  virtual std::shared_ptr<Waker> waker() = 0;

  // --- identity and observation
  virtual std::shared_ptr<const Runtime> runtime() const = 0;
  virtual void next_request_id(std::string& out) = 0;
  // The exchange's end, counted in the request metrics (upstream_seconds < 0: not timed).
  virtual void record_metrics(std::string_view route, std::string_view method, int status,
                              double upstream_seconds) = 0;
  // Where the exchange's access-log line goes; nullptr: nowhere.
  virtual AccessLog* access_log() noexcept = 0;

 protected:
  ~ExchangeHost() = default;
};

}  // namespace arbiter
