#include "proxy/net/client_connection.h"

#include <algorithm>

#include "proxy/observe/log.h"
#include "proxy/observe/metrics.h"
#include "proxy/net/server.h"
#include "proxy/net/worker.h"

namespace arbiter {

namespace {

// Pipelined input held while an exchange runs; beyond it the socket is not read.
constexpr std::size_t kMaxPendingInput = 64u << 10;
constexpr Duration kLingerTimeout = std::chrono::seconds(2);

}  // namespace

ClientConnection::ClientConnection(Worker& worker, bool admin)
    : worker_(worker), admin_(admin), metrics_(thread_metrics()), side_requests_(worker.loop(), *this) {
  if (!admin_) metrics_.connection_opened();
  uv_tcp_init(worker_.loop(), &tcp_);
  tcp_.data = this;
  uv_timer_init(worker_.loop(), &timer_);
  timer_.data = this;
  handles_open_ = 2;
}

void ClientConnection::start() {
  uv_tcp_nodelay(&tcp_, 1);
  sockaddr_storage peer{};
  int length = sizeof peer;
  if (uv_tcp_getpeername(&tcp_, reinterpret_cast<sockaddr*>(&peer), &length) == 0) {
    char text[64] = {};
    if (peer.ss_family == AF_INET6) {
      uv_ip6_name(reinterpret_cast<sockaddr_in6*>(&peer), text, sizeof text);
    } else {
      uv_ip4_name(reinterpret_cast<sockaddr_in*>(&peer), text, sizeof text);
    }
    peer_address_ = text;
  }
  arm_timer(worker_.runtime()->config().server.header_timeout);
  update_reading();
}

void ClientConnection::refuse_overloaded() {
  request_started_ = now();
  begin_exchange().refuse_overloaded();
}

void ClientConnection::close_when_idle() {
  if (phase_ == Phase::Idle) {
    close_now();
  } else if (exchange_ && phase_ == Phase::Exchange) {
    exchange_->on_drain();
  }
}

Exchange& ClientConnection::begin_exchange() {
  phase_ = Phase::Exchange;
  uv_timer_stop(&timer_);
  return exchange_.emplace(*this, scratch_, parser_.head(), request_started_);
}

// ---------------------------------------------------------------- input

void ClientConnection::on_alloc(uv_handle_t* handle, std::size_t, uv_buf_t* buf) {
  auto* self = static_cast<ClientConnection*>(handle->data);
  std::string& buffer = self->worker_.read_buffer();
  *buf = uv_buf_init(buffer.data(), static_cast<unsigned>(buffer.size()));
}

void ClientConnection::on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  auto* self = static_cast<ClientConnection*>(stream->data);
  if (nread == 0 || self->phase_ == Phase::Closed) return;
  if (self->tunnel_ != nullptr) {
    self->tunnel_->on_read(TunnelSide::Client, nread, buf);
    return;
  }
  if (nread < 0) {
    // EOF or error: the client is gone (or done); nothing more can be answered.
    self->close_now();
    return;
  }
  if (self->phase_ == Phase::Lingering) return;  // discarded
  self->on_input(buf->base, static_cast<std::size_t>(nread));
}

void ClientConnection::on_input(const char* data, std::size_t length) {
  const Config& config = worker_.runtime()->config();
  parser_.set_limits({config.server.max_header_bytes, config.server.max_body_bytes});
  parser_.feed(data, length);
  update_reading();
}

bool ClientConnection::takes_input() const { return phase_ != Phase::Closed && phase_ != Phase::Lingering; }

void ClientConnection::on_request_begin() {
  phase_ = Phase::ReadingHead;
  request_started_ = now();
  // The whole head must arrive within header_timeout of its first byte.
  arm_timer(worker_.runtime()->config().server.header_timeout);
}

bool ClientConnection::on_request_body(std::string_view piece) {
  if (!exchange_) return false;
  bool go_on = exchange_->on_request_body(piece);
  return go_on && exchange_.has_value() && phase_ == Phase::Exchange;
}

void ClientConnection::on_request_complete() {
  if (exchange_) exchange_->on_request_complete();
}

void ClientConnection::on_parse_paused() {
  if (parser_.head_complete() && phase_ == Phase::ReadingHead) {
    begin_exchange().start();
  } else if (exchange_ && phase_ == Phase::Exchange) {
    exchange_->on_request_paused();
  }
}

void ClientConnection::on_parse_error(llhttp_errno_t error) {
  Problem problem = parser_.problem(error);
  if (!exchange_) {
    begin_exchange().refuse(problem);
  } else {
    exchange_->refuse(problem);
  }
}

void ClientConnection::read_request_on() { resume_parser(); }

void ClientConnection::resume_parser() {
  if (!parser_.paused() || phase_ == Phase::Closed) return;
  parser_.resume();
  update_reading();
}

void ClientConnection::update_reading() {
  if (phase_ == Phase::Closed) return;
  bool want = phase_ == Phase::Lingering ||
              (parser_.pending_bytes() < kMaxPendingInput && (!exchange_ || exchange_->upstream_backlog() < kHighWater));
  if (want == reading_) return;
  reading_ = want;
  auto* stream = reinterpret_cast<uv_stream_t*>(&tcp_);
  if (want) {
    uv_read_start(stream, on_alloc, on_read);
  } else {
    uv_read_stop(stream);
  }
  if (exchange_ && phase_ == Phase::Exchange) exchange_->on_reading_changed(want);
}

// ---------------------------------------------------------------- the exchange's host

void ClientConnection::send_to_client(std::span<const std::string_view> pieces) {
  if (phase_ == Phase::Closed || phase_ == Phase::Lingering) return;
  uv_buf_t bufs[4];
  unsigned count = 0;
  for (std::string_view piece : pieces) bufs[count++] = make_buf(piece.data(), piece.size());
  if (write_to_stream(reinterpret_cast<uv_stream_t*>(&tcp_), bufs, count, this) != 0) close_now();
}

void ClientConnection::on_write_done(int status) {
  if (phase_ == Phase::Closed) return;
  if (tunnel_ != nullptr) {
    tunnel_->on_write_done(TunnelSide::Client, status);
    return;
  }
  if (status < 0) {
    close_now();
    return;
  }
  if (exchange_) exchange_->on_client_drained();
}

void ClientConnection::exchange_done(bool keep_alive) {
  if (phase_ == Phase::Closed) {
    close_timer();  // the exchange outlived the socket (its end hooks); it goes with the connection
    return;
  }
  exchange_.reset();
  parser_.next_request();
  if (!keep_alive) {
    close_gracefully();
    return;
  }
  phase_ = Phase::Idle;
  arm_timer(worker_.runtime()->config().server.idle_timeout);
  resume_parser();
}

bool ClientConnection::draining() const noexcept { return worker_.draining(); }

const HandlerRegistry* ClientConnection::listener_handlers() const noexcept {
  return admin_ ? &worker_.admin_handlers() : nullptr;
}

const HandlerRegistry* ClientConnection::control_handlers() const noexcept {
  return admin_ ? nullptr : &worker_.control_handlers();
}

UpstreamChannel& ClientConnection::open_upstream(const Runtime& runtime, const std::string& upstream,
                                                 UpstreamEvents& events, std::size_t avoid_server) {
  return upstream_link_.open(worker_.pool(runtime, upstream), events, avoid_server);
}

void ClientConnection::start_side_requests(const Runtime& runtime, std::vector<SideRequestSpec> specs,
                                           const SideRequestOrigin& origin) {
  std::vector<UpstreamPool*> pools;
  pools.reserve(specs.size());
  const auto& upstreams = runtime.config().upstreams;
  for (const SideRequestSpec& spec : specs) {
    bool known = std::any_of(upstreams.begin(), upstreams.end(),
                             [&](const UpstreamConfig& upstream) { return upstream.name == spec.upstream; });
    pools.push_back(known ? &worker_.pool(runtime, spec.upstream) : nullptr);
  }
  side_requests_.start(std::move(specs), pools, origin);
}

void ClientConnection::cancel_side_requests() { side_requests_.cancel(); }

void ClientConnection::on_side_responses(std::vector<SideResponse> responses) {
  if (exchange_) exchange_->on_side_responses(std::move(responses));
}

std::shared_ptr<Waker> ClientConnection::waker() {
  if (waker_ == nullptr) waker_ = std::make_shared<ExchangeWaker>(worker_, this);
  return waker_;
}

void ClientConnection::on_woken() {
  // A late wake meant for an exchange that has ended finds the next one not parked, or makes a
  // parked policy check again, which it tolerates.
  if (exchange_) exchange_->on_woken();
}

std::shared_ptr<const Runtime> ClientConnection::runtime() const { return worker_.runtime(); }

void ClientConnection::next_request_id(std::string& out) { worker_.next_request_id(out); }

void ClientConnection::record_metrics(std::string_view route, std::string_view method, int status,
                                      double upstream_seconds) {
  if (!admin_) metrics_.record_exchange(route, method, status, upstream_seconds);
}

AccessLog* ClientConnection::access_log() noexcept {
  AccessLog& log = worker_.access_log();
  return log.enabled() ? &log : nullptr;
}

// ---------------------------------------------------------------- timers and closing

void ClientConnection::arm_timer(Duration timeout) {
  uv_timer_start(&timer_, on_timer, static_cast<std::uint64_t>(timeout.count()), 0);
}

void ClientConnection::on_timer(uv_timer_t* timer) {
  auto* self = static_cast<ClientConnection*>(timer->data);
  if (self->tunnel_ != nullptr) {
    self->on_tunnel_timer();
    return;
  }
  switch (self->phase_) {
    case Phase::ReadingHead:
      self->begin_exchange().refuse(Problem::make("request-timeout", 408, "Request timeout",
                                                  "The request head did not arrive within header_timeout."));
      break;
    case Phase::Idle:
    case Phase::Lingering:
      self->close_now();
      break;
    case Phase::Exchange:
    case Phase::Closed:  // an exchange's end hooks may outlive the socket
      if (self->exchange_) self->exchange_->on_timer();
      break;
  }
}

void ClientConnection::close_gracefully() {
  if (phase_ == Phase::Closed || phase_ == Phase::Lingering) return;
  phase_ = Phase::Lingering;
  // Shut the write side once queued writes are out, then drain what the client still sends:
  // closing with unread input would reset the connection and could destroy the answer.
  shutdown_request_.data = this;
  if (uv_shutdown(&shutdown_request_, reinterpret_cast<uv_stream_t*>(&tcp_), on_shutdown) != 0) {
    close_now();
    return;
  }
  arm_timer(kLingerTimeout);
  update_reading();
}

void ClientConnection::on_shutdown(uv_shutdown_t* request, int status) {
  auto* self = static_cast<ClientConnection*>(request->data);
  if (status < 0 && self->phase_ != Phase::Closed) self->close_now();
}

void ClientConnection::close_now() {
  if (phase_ == Phase::Closed) return;
  if (tunnel_upstream_ != nullptr) end_tunnel();
  phase_ = Phase::Closed;
  uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), on_closed);
  // The exchange ends without its answer; its end hooks may still park, on timer_ (closed by
  // exchange_done, then).
  if (exchange_) exchange_->on_client_gone();
  if (!exchange_ || exchange_->stage() == Exchange::Stage::Done) close_timer();
}

void ClientConnection::close_timer() {
  if (timer_closed_) return;
  timer_closed_ = true;
  if (waker_ != nullptr) waker_->detach();
  cancel_side_requests();
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), on_closed);
}

void ClientConnection::on_closed(uv_handle_t* handle) {
  auto* self = static_cast<ClientConnection*>(handle->data);
  if (--self->handles_open_ == 0) {
    self->exchange_.reset();
    if (!self->admin_) self->metrics_.connection_closed();
    self->worker_.connection_closed(self);
    delete self;
  }
}

}  // namespace arbiter
