#pragma once
// One client connection: its socket, the request parser it feeds, the order of pipelined
// requests (one Exchange at a time; the next request waits in the parser's input), its timer
// and, after a 101, the tunnel. What happens to a request is the Exchange's
// (proxy/exchange/exchange.h); this class is its ExchangeHost.
//
// Lifetime: owned by its Worker; freed only in the close callback of its last handle, so every
// libuv callback that can still arrive finds it alive. It never moves (libuv holds pointers to
// its handles).

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <llhttp.h>
#include <uv.h>

#include "proxy/exchange/exchange.h"
#include "proxy/http/request_parser.h"
#include "proxy/net/stream_write.h"
#include "proxy/net/side_request.h"
#include "proxy/net/tunnel.h"
#include "proxy/net/upstream_link.h"

namespace arbiter {

class Worker;
class ExchangeWaker;
class MetricsShard;

class ClientConnection final : public RequestEvents,
                               public WriteListener,
                               public TunnelObserver,
                               public SideRequestsOwner,
                               public ExchangeHost {
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
  // Draining: close now if between requests; otherwise after the current response (a held-open
  // local response ends now).
  void close_when_idle();
  // Close at once, abandoning any exchange in flight.
  void close_now();
  // A policy woke the exchange it parked (called on this connection's loop).
  void on_woken();

  // RequestEvents
  void on_request_begin() override;
  bool on_request_body(std::string_view piece) override;
  void on_request_complete() override;
  void on_parse_paused() override;
  void on_parse_error(llhttp_errno_t error) override;
  bool takes_input() const override;
  // TunnelObserver
  void on_tunnel_closed() override;
  // WriteListener
  void on_write_done(int status) override;
  // SideRequestsOwner: the answers go to the exchange that asked
  void on_side_responses(std::vector<SideResponse> responses) override;

  // ExchangeHost
  void send_to_client(std::span<const std::string_view> pieces) override;
  std::size_t client_backlog() const noexcept override { return tcp_.write_queue_size; }
  void read_request_on() override;
  void update_reading() override;
  bool request_complete() const noexcept override { return parser_.message_complete(); }
  std::uint64_t request_body_bytes() const noexcept override { return parser_.body_bytes(); }
  std::size_t buffered_request_bytes() const noexcept override { return parser_.pending_bytes(); }
  void exchange_done(bool keep_alive) override;
  void abort_connection() override { close_now(); }
  std::string_view peer_address() const noexcept override { return peer_address_; }
  bool draining() const noexcept override;
  const HandlerRegistry* listener_handlers() const noexcept override;
  const HandlerRegistry* control_handlers() const noexcept override;
  UpstreamChannel& open_upstream(const Runtime& runtime, const std::string& upstream, UpstreamEvents& events,
                                 std::size_t avoid_server) override;
  void start_tunnel(std::string_view early) override;  // proxy/net/client_tunnel.cpp
  void start_side_requests(const Runtime& runtime, std::vector<SideRequestSpec> specs,
                           const SideRequestOrigin& origin) override;
  void cancel_side_requests() override;
  void arm_timer(Duration timeout) override;
  void stop_timer() override { uv_timer_stop(&timer_); }
  MonotonicTime now() const noexcept override { return MonotonicClock::now(); }
  std::shared_ptr<Waker> waker() override;
  std::shared_ptr<const Runtime> runtime() const override;
  void next_request_id(std::string& out) override;
  void record_metrics(std::string_view route, std::string_view method, int status, double upstream_seconds) override;
  AccessLog* access_log() noexcept override;

 private:
  enum class Phase : std::uint8_t {
    Idle,         // between requests (keep-alive)
    ReadingHead,  // a request has begun; its head is not complete
    Exchange,     // exchange_ is answering or forwarding it
    Lingering,    // answer written, write side shut: discarding input until EOF or timeout
    Closed,
  };

  void on_input(const char* data, std::size_t length);
  void resume_parser();
  // An exchange for a request that has no complete head (or none at all).
  Exchange& begin_exchange();
  void close_gracefully();
  void close_timer();
  void on_tunnel_timer();  // the tunnel's idle timeout on timer_ (proxy/net/client_tunnel.cpp)
  void end_tunnel();       // the upgraded upstream connection abandoned

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
  bool timer_closed_ = false;
  Phase phase_ = Phase::Idle;
  bool reading_ = false;
  std::string peer_address_;
  MonotonicTime request_started_{};  // the current request's first byte

  RequestParser parser_{*this};
  ExchangeScratch scratch_;          // the exchanges' buffers, kept warm across requests
  UpstreamLink upstream_link_;
  SideRequests side_requests_;       // the exchange's call in progress, if any
  std::shared_ptr<ExchangeWaker> waker_;  // for policies that park; made on first use
  std::optional<Exchange> exchange_;     // the current request's, in Phase::Exchange

  // After a 101: the upgraded upstream connection (ours until abandoned) and the tunnel, which
  // lives as long as this connection, since the streams' owners route their events to it.
  UpstreamConnection* tunnel_upstream_ = nullptr;
  std::unique_ptr<Tunnel> tunnel_;
};

}  // namespace arbiter
