#pragma once
// Connections to one upstream, owned by one worker: a keep-alive pool of idle connections,
// round-robin over the servers, and a failed server skipped for fail_timeout.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <llhttp.h>
#include <uv.h>

#include "proxy/http/headers.h"
#include "proxy/config/config.h"
#include "proxy/http/forwarding.h"
#include "proxy/http/response_parser.h"
#include "proxy/net/stream_write.h"
#include "proxy/net/tunnel.h"

namespace arbiter {

class UpstreamConnection;

enum class UpstreamFailure : std::uint8_t {
  ConnectFailed,     // nothing was sent
  ConnectTimeout,    // nothing was sent
  ClosedBeforeResponse,  // sent (part of) the request; no response byte came back
  ResponseTimeout,
  BadResponse,       // not HTTP, or framing we refuse
  ClosedDuringResponse,
};

// What went wrong, for the detail of a 502 or 504. `error` is the libuv error code the system
// gave (0: none), named with its text, e.g. "could not connect to the upstream: ENETUNREACH,
// network is unreachable".
std::string describe(UpstreamFailure failure, int error = 0);

// Whether a failed attempt is tried again, and which server to avoid (SIZE_MAX: none).
// Nothing was sent after a connect failure, so any request goes once more, to the next server.
// A pooled connection that the server had closed meanwhile is replaced by a new one, twice at
// most, when the request may be resent (`resendable`: idempotent, no body consumed).
struct RetryChoice {
  bool retry = false;
  std::size_t avoid_server = SIZE_MAX;
};
RetryChoice choose_retry(UpstreamFailure failure, bool connection_was_reused, bool resendable, unsigned attempts,
                         std::size_t failed_server) noexcept;

// The side that uses an upstream connection for one exchange (the client connection).
class UpstreamSink {
 public:
  virtual void on_upstream_connected(UpstreamConnection& connection) = 0;
  // The connection is gone (already detached from the sink) when this is called. error: the
  // libuv error code behind it, 0 if there was none (a timeout, a bad response, an EOF).
  virtual void on_upstream_failed(UpstreamFailure failure, bool connection_was_reused, int error) = 0;
  // headers: hop-by-hop fields already removed. framing/content_length: as the upstream sent
  // them (for a HEAD answer, the length it announced, with no body following).
  virtual void on_upstream_head(int status, HeaderList& headers, BodyFraming framing,
                                std::uint64_t content_length) = 0;
  virtual void on_upstream_body(std::string_view data) = 0;
  // The trailer fields of a chunked response, unfiltered, before on_upstream_complete.
  virtual void on_upstream_trailers(const HeaderList& trailers) { static_cast<void>(trailers); }
  // The response is complete; the connection is already back in the pool or closed.
  virtual void on_upstream_complete() = 0;
  // The request bytes queued towards the upstream have been written.
  virtual void on_upstream_drained() = 0;
  // One read from the upstream has been handled (a moment to flush what was gathered).
  virtual void on_upstream_read_end() {}
  // The upstream answered 101 to an upgrade request (after on_upstream_head with 101): the
  // connection now carries the new protocol and is the sink's, never pooled again, until it
  // abandon()s it; `early` (valid during the call only) is what the upstream sent after the
  // head. The sink is detached; it calls attach_tunnel to receive the stream's events. By
  // default (a sink that never asks for an upgrade) the connection is abandoned at once, so it
  // can never outlive its sink and keep its pool in use.
  virtual void on_upstream_upgraded(UpstreamConnection& connection, std::string_view early);

 protected:
  ~UpstreamSink() = default;
};

class Worker;
class UpstreamPool;

class UpstreamConnection final : public WriteListener, public ResponseEvents {
 public:
  // Counts as a user of `pool` (see UpstreamPool::in_use) until destroyed.
  UpstreamConnection(UpstreamPool& pool, std::size_t server_index);
  ~UpstreamConnection();
  UpstreamConnection(const UpstreamConnection&) = delete;
  UpstreamConnection& operator=(const UpstreamConnection&) = delete;

  // Sends bytes of the request. Returns false if the connection failed (the sink is told).
  bool send(const uv_buf_t* bufs, unsigned count);
  // Begins waiting for the response: call once the request head has been sent. upgrade: the
  // request asks to switch protocols, so a 101 ends the exchange with on_upstream_upgraded.
  void expect_response(bool head_request, bool upgrade = false);
  // After on_upstream_upgraded: this stream's reads and write completions go to `tunnel`.
  void attach_tunnel(Tunnel* tunnel) noexcept { tunnel_ = tunnel; }
  TunnelEnd tunnel_end() noexcept;
  // The request body is complete (all of it handed to send()).
  void request_finished();
  std::size_t queued_bytes() const noexcept;
  void pause_reading();
  void resume_reading();
  // The sink no longer wants this exchange (client gone): close, never reuse.
  void abandon();
  std::size_t server_index() const noexcept { return server_index_; }
  // False while a new connection is still connecting (on_upstream_connected follows).
  bool ready() const noexcept { return state_ == State::Active; }
  std::string_view authority() const noexcept;

  void on_write_done(int status) override;
  // ResponseEvents
  bool on_response_head(int status, HeaderList& headers, BodyFraming framing, std::uint64_t content_length) override;
  bool on_response_body(std::string_view piece) override;
  bool on_response_trailers(const HeaderList& trailers) override;

 private:
  friend class UpstreamPool;
  enum class State : std::uint8_t { Connecting, Idle, Active, Tunnel, Closing };

  void connect(const sockaddr* address);
  void attach(UpstreamSink* sink);
  void fail(UpstreamFailure failure, int error = 0);
  void close();
  void finish_response();
  void begin_tunnel(std::string_view early);
  void start_reading();
  void arm_timer(Duration timeout);

  static void on_connect(uv_connect_t* request, int status);
  static void on_alloc(uv_handle_t* handle, std::size_t suggested, uv_buf_t* buf);
  static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
  static void on_timer(uv_timer_t* timer);
  static void on_closed(uv_handle_t* handle);

  UpstreamPool& pool_;
  std::size_t server_index_;
  State state_ = State::Connecting;
  UpstreamSink* sink_ = nullptr;
  uv_tcp_t tcp_{};
  uv_timer_t timer_{};
  uv_connect_t connect_request_{};
  uv_shutdown_t shutdown_request_{};  // a tunnel's half-close
  int handles_open_ = 0;
  int connect_error_ = 0;  // uv_tcp_connect refused at once; reported from the timer
  Tunnel* tunnel_ = nullptr;  // in State::Tunnel, until abandon()
  ResponseParser parser_{*this};
  bool awaiting_response_ = false;
  bool response_started_ = false;  // a byte of the response arrived
  bool request_finished_ = false;
  bool trailing_bytes_ = false;
  bool reading_ = false;
  bool reading_paused_ = false;
  unsigned reuse_count_ = 0;
};

class UpstreamPool {
 public:
  UpstreamPool(Worker& worker, UpstreamConfig config);
  ~UpstreamPool();
  UpstreamPool(const UpstreamPool&) = delete;
  UpstreamPool& operator=(const UpstreamPool&) = delete;

  // Hands the sink a connection: a pooled idle one at once, or a new one once connected
  // (on_upstream_connected), or on_upstream_failed. `avoid_server` (or SIZE_MAX) names a server
  // that just failed, for a retry to go elsewhere.
  UpstreamConnection* acquire(UpstreamSink& sink, std::size_t avoid_server = SIZE_MAX);
  const UpstreamConfig& config() const noexcept { return config_; }
  Worker& worker() noexcept { return worker_; }
  void close_idle();
  // A reload replaced this upstream: idle connections close, busy ones close when done. The
  // worker frees a retired pool once it is no longer in use.
  void retire();
  // Something still refers to this pool: a connection of it exists (busy, idle or closing), or
  // a holder counted with hold() has not let go.
  bool in_use() const noexcept { return users_ > 0; }
  // For objects that keep a reference to the pool beyond one call (a SideRequest, which may
  // acquire again for a retry): counted by in_use() until the matching let_go().
  void hold() noexcept { ++users_; }
  void let_go() noexcept;

 private:
  friend class UpstreamConnection;
  struct Server {
    sockaddr_storage address{};
    std::string authority;
    std::uint64_t down_until_ms = 0;  // uv_now() before which it is skipped
  };
  std::size_t pick_server(std::size_t avoid);
  void mark_failed(std::size_t server);
  void release(UpstreamConnection* connection, bool reusable);
  void forget(UpstreamConnection* connection);

  Worker& worker_;
  UpstreamConfig config_;
  std::vector<Server> servers_;
  std::size_t next_server_ = 0;
  std::vector<UpstreamConnection*> idle_;
  std::size_t users_ = 0;  // connections alive + holders; see in_use()
  bool retired_ = false;
};

}  // namespace arbiter
