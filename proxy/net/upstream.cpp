#include "proxy/net/upstream.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

#include "proxy/net/worker.h"

namespace arbiter {

namespace {

std::string_view failure_text(UpstreamFailure failure) noexcept {
  switch (failure) {
    case UpstreamFailure::ConnectFailed: return "could not connect to the upstream";
    case UpstreamFailure::ConnectTimeout: return "connecting to the upstream timed out";
    case UpstreamFailure::ClosedBeforeResponse: return "the upstream closed the connection before answering";
    case UpstreamFailure::ResponseTimeout: return "the upstream did not answer in time";
    case UpstreamFailure::BadResponse: return "the upstream sent an invalid HTTP response";
    case UpstreamFailure::ClosedDuringResponse: return "the upstream closed the connection during the response";
  }
  return "upstream failure";
}

}  // namespace

std::string describe(UpstreamFailure failure, int error) {
  std::string text(failure_text(failure));
  if (error != 0) {
    text += ": ";
    text += uv_err_name(error);
    text += ", ";
    text += uv_strerror(error);
  }
  return text;
}

RetryChoice choose_retry(UpstreamFailure failure, bool connection_was_reused, bool resendable, unsigned attempts,
                         std::size_t failed_server) noexcept {
  bool nothing_sent = failure == UpstreamFailure::ConnectFailed || failure == UpstreamFailure::ConnectTimeout;
  if (nothing_sent && attempts < 2) return {true, failed_server};
  bool stale_pooled = connection_was_reused && failure == UpstreamFailure::ClosedBeforeResponse;
  if (stale_pooled && resendable && attempts < 3) return {true, SIZE_MAX};
  return {};
}

namespace {

bool resolve(const SocketAddress& address, sockaddr_storage& out) {
  std::memset(&out, 0, sizeof out);
  std::string host = address.host == "localhost" ? std::string("127.0.0.1") : address.host;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&out);
  if (uv_ip4_addr(host.c_str(), address.port, v4) == 0) return true;
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&out);
  return uv_ip6_addr(host.c_str(), address.port, v6) == 0;
}

}  // namespace

void UpstreamSink::on_upstream_upgraded(UpstreamConnection& connection, std::string_view) { connection.abandon(); }

// ---- UpstreamConnection ----

UpstreamConnection::UpstreamConnection(UpstreamPool& pool, std::size_t server_index)
    : pool_(pool), server_index_(server_index) {
  pool_.hold();
}

UpstreamConnection::~UpstreamConnection() { pool_.let_go(); }

std::string_view UpstreamConnection::authority() const noexcept {
  return pool_.servers_[server_index_].authority;
}

void UpstreamConnection::connect(const sockaddr* address) {
  uv_loop_t* loop = pool_.worker().loop();
  uv_tcp_init(loop, &tcp_);
  tcp_.data = this;
  uv_timer_init(loop, &timer_);
  timer_.data = this;
  handles_open_ = 2;
  uv_tcp_nodelay(&tcp_, 1);
  connect_request_.data = this;
  arm_timer(pool_.config().connect_timeout);
  int rc = uv_tcp_connect(&connect_request_, &tcp_, address, on_connect);
  if (rc != 0) {
    // Refused at once (an unroutable or unusable address): reported from the timer so that the
    // sink never sees a callback inside acquire(), as a connect failure, not a timeout.
    connect_error_ = rc;
    uv_timer_start(&timer_, on_timer, 0, 0);
  }
}

void UpstreamConnection::attach(UpstreamSink* sink) {
  sink_ = sink;
  parser_.next_response();
  awaiting_response_ = false;
  response_started_ = false;
  request_finished_ = false;
  trailing_bytes_ = false;
}

void UpstreamConnection::arm_timer(Duration timeout) {
  uv_timer_start(&timer_, on_timer, static_cast<std::uint64_t>(timeout.count()), 0);
}

void UpstreamConnection::on_connect(uv_connect_t* request, int status) {
  auto* self = static_cast<UpstreamConnection*>(request->data);
  if (self->state_ != State::Connecting) return;
  if (status != 0) {
    self->pool_.mark_failed(self->server_index_);
    self->fail(UpstreamFailure::ConnectFailed, status);
    return;
  }
  self->state_ = State::Active;
  uv_timer_stop(&self->timer_);
  self->start_reading();
  if (self->sink_ != nullptr) self->sink_->on_upstream_connected(*self);
}

bool UpstreamConnection::send(const uv_buf_t* bufs, unsigned count) {
  if (state_ != State::Active) return false;
  if (int rc = write_to_stream(reinterpret_cast<uv_stream_t*>(&tcp_), bufs, count, this); rc != 0) {
    fail(response_started_ ? UpstreamFailure::ClosedDuringResponse : UpstreamFailure::ClosedBeforeResponse, rc);
    return false;
  }
  if (awaiting_response_ && !request_finished_ && !response_started_ && tcp_.write_queue_size > 0) {
    arm_timer(pool_.config().response_timeout);  // the upstream is not taking the body
  }
  return true;
}

// response_timeout measures the upstream, not the client: while a request body streams, it
// runs only when bytes wait for the upstream to take them (a client pausing its upload is
// body_timeout's business), and from the end of the request on for the response itself.
void UpstreamConnection::expect_response(bool head_request, bool upgrade) {
  parser_.set_head_request(head_request);
  parser_.set_upgrade_request(upgrade);
  awaiting_response_ = true;
}

void UpstreamConnection::request_finished() {
  request_finished_ = true;
  if (awaiting_response_) arm_timer(pool_.config().response_timeout);
}

std::size_t UpstreamConnection::queued_bytes() const noexcept {
  return state_ == State::Closing ? 0 : tcp_.write_queue_size;
}

void UpstreamConnection::start_reading() {
  if (reading_) return;
  reading_ = true;
  uv_read_start(reinterpret_cast<uv_stream_t*>(&tcp_), on_alloc, on_read);
}

void UpstreamConnection::pause_reading() {
  if (state_ != State::Active || !reading_) return;
  reading_ = false;
  reading_paused_ = true;
  uv_read_stop(reinterpret_cast<uv_stream_t*>(&tcp_));
}

void UpstreamConnection::resume_reading() {
  if (state_ == State::Closing || !reading_paused_) return;
  reading_paused_ = false;
  start_reading();
}

void UpstreamConnection::abandon() {
  sink_ = nullptr;
  tunnel_ = nullptr;
  close();
}

TunnelEnd UpstreamConnection::tunnel_end() noexcept {
  return TunnelEnd{reinterpret_cast<uv_stream_t*>(&tcp_), this, on_alloc, on_read, &shutdown_request_};
}

void UpstreamConnection::begin_tunnel(std::string_view early) {
  uv_timer_stop(&timer_);  // the tunnel's idle timeout is the client connection's
  state_ = State::Tunnel;
  UpstreamSink* sink = sink_;
  sink_ = nullptr;
  if (sink == nullptr) {
    close();
    return;
  }
  sink->on_upstream_upgraded(*this, early);
}

void UpstreamConnection::fail(UpstreamFailure failure, int error) {
  UpstreamSink* sink = sink_;
  sink_ = nullptr;
  bool was_reused = reuse_count_ > 0;
  close();
  if (sink != nullptr) sink->on_upstream_failed(failure, was_reused, error);
}

void UpstreamConnection::close() {
  if (state_ == State::Closing) return;
  state_ = State::Closing;
  pool_.forget(this);
  uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), on_closed);
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), on_closed);
}

void UpstreamConnection::on_closed(uv_handle_t* handle) {
  auto* self = static_cast<UpstreamConnection*>(handle->data);
  if (--self->handles_open_ == 0) delete self;
}

void UpstreamConnection::on_write_done(int status) {
  if (state_ == State::Tunnel) {
    if (tunnel_ != nullptr) tunnel_->on_write_done(TunnelSide::Upstream, status);
    return;
  }
  if (state_ != State::Active) return;
  if (status < 0) {
    fail(response_started_ ? UpstreamFailure::ClosedDuringResponse : UpstreamFailure::ClosedBeforeResponse, status);
    return;
  }
  if (!request_finished_ && !response_started_) {
    if (tcp_.write_queue_size > 0) {
      arm_timer(pool_.config().response_timeout);  // the upstream took some: it is alive
    } else {
      uv_timer_stop(&timer_);  // all taken: waiting on the client now
    }
  }
  if (sink_ != nullptr && tcp_.write_queue_size == 0) sink_->on_upstream_drained();
}

void UpstreamConnection::on_timer(uv_timer_t* timer) {
  auto* self = static_cast<UpstreamConnection*>(timer->data);
  switch (self->state_) {
    case State::Connecting:
      self->pool_.mark_failed(self->server_index_);
      if (self->connect_error_ != 0) {
        self->fail(UpstreamFailure::ConnectFailed, self->connect_error_);
      } else {
        self->fail(UpstreamFailure::ConnectTimeout);
      }
      break;
    case State::Active:
      self->fail(UpstreamFailure::ResponseTimeout);
      break;
    case State::Idle:
    case State::Tunnel:
    case State::Closing:
      break;
  }
}

void UpstreamConnection::on_alloc(uv_handle_t* handle, std::size_t, uv_buf_t* buf) {
  auto* self = static_cast<UpstreamConnection*>(handle->data);
  std::string& buffer = self->pool_.worker().read_buffer();
  *buf = uv_buf_init(buffer.data(), static_cast<unsigned>(buffer.size()));
}

void UpstreamConnection::on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  auto* self = static_cast<UpstreamConnection*>(stream->data);
  if (nread == 0) return;
  if (self->state_ == State::Tunnel) {
    if (self->tunnel_ != nullptr) self->tunnel_->on_read(TunnelSide::Upstream, nread, buf);
    return;
  }
  if (self->state_ == State::Idle) {
    // A pooled connection that speaks or closes is no longer fit for reuse.
    self->close();
    return;
  }
  if (self->state_ != State::Active) return;
  if (nread < 0) {
    if (self->parser_.finish_at_eof()) {
      self->finish_response();
      return;
    }
    self->fail(self->response_started_ ? UpstreamFailure::ClosedDuringResponse : UpstreamFailure::ClosedBeforeResponse,
               nread == UV_EOF ? 0 : static_cast<int>(nread));
    return;
  }
  if (!self->awaiting_response_) {
    // Bytes before the request was sent: the server is not speaking HTTP to us.
    self->fail(UpstreamFailure::BadResponse);
    return;
  }
  self->response_started_ = true;
  if (self->parser_.head_done()) self->arm_timer(self->pool_.config().response_timeout);
  std::size_t consumed = 0;
  llhttp_errno_t rc = self->parser_.execute(buf->base, static_cast<std::size_t>(nread), consumed);
  if (self->state_ != State::Active) return;  // the sink let go during a callback
  if (rc == HPE_PAUSED && self->parser_.complete() && self->parser_.upgraded()) {
    self->begin_tunnel(std::string_view(buf->base + consumed, static_cast<std::size_t>(nread) - consumed));
    return;
  }
  if (rc == HPE_PAUSED && self->parser_.complete()) {
    // Bytes after the response: the connection is out of step and must not be reused.
    self->trailing_bytes_ = consumed < static_cast<std::size_t>(nread);
    self->finish_response();
    return;
  }
  if (rc != HPE_OK) {
    self->fail(self->parser_.head_done() ? UpstreamFailure::ClosedDuringResponse : UpstreamFailure::BadResponse);
    return;
  }
  if (self->sink_ != nullptr) self->sink_->on_upstream_read_end();
}

void UpstreamConnection::finish_response() {
  uv_timer_stop(&timer_);
  bool reusable = request_finished_ && !trailing_bytes_ && parser_.keep_alive();
  UpstreamSink* sink = sink_;
  sink_ = nullptr;
  pool_.release(this, reusable);
  if (sink != nullptr) sink->on_upstream_complete();
}

bool UpstreamConnection::on_response_head(int status, HeaderList& headers, BodyFraming framing,
                                          std::uint64_t content_length) {
  if (sink_ != nullptr) sink_->on_upstream_head(status, headers, framing, content_length);
  return state_ == State::Active;
}

bool UpstreamConnection::on_response_body(std::string_view piece) {
  if (sink_ != nullptr) sink_->on_upstream_body(piece);
  return state_ == State::Active;
}

bool UpstreamConnection::on_response_trailers(const HeaderList& trailers) {
  if (sink_ != nullptr) sink_->on_upstream_trailers(trailers);
  return state_ == State::Active;
}

// ---- UpstreamPool ----

UpstreamPool::UpstreamPool(Worker& worker, UpstreamConfig config) : worker_(worker), config_(std::move(config)) {
  for (const SocketAddress& address : config_.servers) {
    Server server;
    resolve(address, server.address);
    server.authority = address.text();
    servers_.push_back(std::move(server));
  }
}

UpstreamPool::~UpstreamPool() { close_idle(); }

void UpstreamPool::close_idle() {
  std::vector<UpstreamConnection*> idle;
  idle.swap(idle_);
  for (UpstreamConnection* connection : idle) connection->close();
}

std::size_t UpstreamPool::pick_server(std::size_t avoid) {
  std::uint64_t now = uv_now(worker_.loop());
  std::size_t count = servers_.size();
  for (std::size_t attempt = 0; attempt < count; ++attempt) {
    std::size_t i = next_server_++ % count;
    if (i == avoid && count > 1) continue;
    if (servers_[i].down_until_ms <= now) return i;
  }
  // Every server is marked down: try the next anyway rather than refuse (as nginx does).
  std::size_t i = next_server_++ % count;
  if (i == avoid && count > 1) i = next_server_++ % count;
  return i;
}

void UpstreamPool::mark_failed(std::size_t server) {
  servers_[server].down_until_ms = uv_now(worker_.loop()) + static_cast<std::uint64_t>(config_.fail_timeout.count());
}

UpstreamConnection* UpstreamPool::acquire(UpstreamSink& sink, std::size_t avoid_server) {
  if (!idle_.empty() && avoid_server == SIZE_MAX) {
    UpstreamConnection* connection = idle_.back();
    idle_.pop_back();
    connection->state_ = UpstreamConnection::State::Active;
    connection->attach(&sink);
    return connection;
  }
  std::size_t server = pick_server(avoid_server);
  auto* connection = new UpstreamConnection(*this, server);
  connection->attach(&sink);
  connection->connect(reinterpret_cast<const sockaddr*>(&servers_[server].address));
  return connection;
}

void UpstreamPool::retire() {
  retired_ = true;
  close_idle();
}

void UpstreamPool::let_go() noexcept {
  if (--users_ == 0 && retired_) worker_.retired_pool_unused();
}

void UpstreamPool::release(UpstreamConnection* connection, bool reusable) {
  if (!reusable || retired_ || worker_.draining() || idle_.size() >= config_.keepalive) {
    connection->close();
    return;
  }
  connection->state_ = UpstreamConnection::State::Idle;
  connection->reuse_count_++;
  connection->awaiting_response_ = false;
  uv_timer_stop(&connection->timer_);
  connection->resume_reading();
  connection->start_reading();
  idle_.push_back(connection);
}

void UpstreamPool::forget(UpstreamConnection* connection) {
  auto it = std::find(idle_.begin(), idle_.end(), connection);
  if (it != idle_.end()) idle_.erase(it);
}

}  // namespace arbiter
