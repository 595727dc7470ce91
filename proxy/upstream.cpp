#include "proxy/upstream.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

#include "proxy/worker.h"

namespace arbiter {

std::string_view describe(UpstreamFailure failure) noexcept {
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

// A response head larger than this is refused as a bad response (502).
constexpr std::size_t kMaxResponseHeadBytes = 256u << 10;

UpstreamConnection* self_of(llhttp_t* parser) { return static_cast<UpstreamConnection*>(parser->data); }

}  // namespace

// ---- UpstreamConnection ----

UpstreamConnection::UpstreamConnection(UpstreamPool& pool, std::size_t server_index)
    : pool_(pool), server_index_(server_index) {}

const llhttp_settings_t& UpstreamConnection::parser_settings() {
  static const llhttp_settings_t settings = [] {
    llhttp_settings_t s = message_parser_settings(on_header_field, on_header_value, on_header_value_complete,
                                                  on_headers_complete, on_body, on_message_complete);
    s.on_status_complete = on_status_code;
    return s;
  }();
  return settings;
}

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
    // Reported from the timer so that the sink never sees a callback inside acquire().
    uv_timer_start(&timer_, on_timer, 0, 0);
  }
}

void UpstreamConnection::attach(UpstreamSink* sink) {
  sink_ = sink;
  headers_.clear();
  header_collector_.reset();
  awaiting_response_ = false;
  response_started_ = false;
  response_head_done_ = false;
  response_complete_ = false;
  request_finished_ = false;
  trailing_bytes_ = false;
  llhttp_init(&parser_, HTTP_RESPONSE, &parser_settings());
  parser_.data = this;
}

void UpstreamConnection::arm_timer(Duration timeout) {
  uv_timer_start(&timer_, on_timer, static_cast<std::uint64_t>(timeout.count()), 0);
}

void UpstreamConnection::on_connect(uv_connect_t* request, int status) {
  auto* self = static_cast<UpstreamConnection*>(request->data);
  if (self->state_ != State::Connecting) return;
  if (status != 0) {
    self->pool_.mark_failed(self->server_index_);
    self->fail(UpstreamFailure::ConnectFailed);
    return;
  }
  self->state_ = State::Active;
  uv_timer_stop(&self->timer_);
  self->start_reading();
  if (self->sink_ != nullptr) self->sink_->on_upstream_connected(*self);
}

bool UpstreamConnection::send(const uv_buf_t* bufs, unsigned count) {
  if (state_ != State::Active) return false;
  if (write_to_stream(reinterpret_cast<uv_stream_t*>(&tcp_), bufs, count, this) != 0) {
    fail(response_started_ ? UpstreamFailure::ClosedDuringResponse : UpstreamFailure::ClosedBeforeResponse);
    return false;
  }
  return true;
}

void UpstreamConnection::expect_response(bool head_request) {
  head_request_ = head_request;
  awaiting_response_ = true;
  arm_timer(pool_.config().response_timeout);
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
  close();
}

void UpstreamConnection::fail(UpstreamFailure failure) {
  UpstreamSink* sink = sink_;
  sink_ = nullptr;
  bool was_reused = reuse_count_ > 0;
  close();
  if (sink != nullptr) sink->on_upstream_failed(failure, was_reused);
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
  if (state_ != State::Active) return;
  if (status < 0) {
    fail(response_started_ ? UpstreamFailure::ClosedDuringResponse : UpstreamFailure::ClosedBeforeResponse);
    return;
  }
  if (sink_ != nullptr && tcp_.write_queue_size == 0) sink_->on_upstream_drained();
}

void UpstreamConnection::on_timer(uv_timer_t* timer) {
  auto* self = static_cast<UpstreamConnection*>(timer->data);
  switch (self->state_) {
    case State::Connecting:
      self->pool_.mark_failed(self->server_index_);
      self->fail(UpstreamFailure::ConnectTimeout);
      break;
    case State::Active:
      self->fail(UpstreamFailure::ResponseTimeout);
      break;
    case State::Idle:
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
  if (self->state_ == State::Idle) {
    // A pooled connection that speaks or closes is no longer fit for reuse.
    self->close();
    return;
  }
  if (self->state_ != State::Active) return;
  if (nread < 0) {
    if (self->response_head_done_ && llhttp_message_needs_eof(&self->parser_)) {
      if (llhttp_finish(&self->parser_) == HPE_OK && self->response_complete_) {
        self->finish_response();
        return;
      }
    }
    self->fail(self->response_started_ ? UpstreamFailure::ClosedDuringResponse
                                       : UpstreamFailure::ClosedBeforeResponse);
    return;
  }
  if (!self->awaiting_response_) {
    // Bytes before the request was sent: the server is not speaking HTTP to us.
    self->fail(UpstreamFailure::BadResponse);
    return;
  }
  self->response_started_ = true;
  if (self->response_head_done_) self->arm_timer(self->pool_.config().response_timeout);
  self->header_collector_.next_execution();
  llhttp_errno_t rc = llhttp_execute(&self->parser_, buf->base, static_cast<std::size_t>(nread));
  if (self->state_ != State::Active) return;  // the sink let go during a callback
  if (rc == HPE_PAUSED && self->response_complete_) {
    const char* stop = llhttp_get_error_pos(&self->parser_);
    // Bytes after the response: the connection is out of step and must not be reused.
    self->trailing_bytes_ = stop != nullptr && stop < buf->base + nread;
    self->finish_response();
    return;
  }
  if (rc != HPE_OK) {
    self->fail(self->response_head_done_ ? UpstreamFailure::ClosedDuringResponse : UpstreamFailure::BadResponse);
    return;
  }
  if (self->sink_ != nullptr) self->sink_->on_upstream_read_end();
}

void UpstreamConnection::finish_response() {
  uv_timer_stop(&timer_);
  bool reusable = request_finished_ && !trailing_bytes_ && llhttp_should_keep_alive(&parser_) != 0;
  UpstreamSink* sink = sink_;
  sink_ = nullptr;
  pool_.release(this, reusable);
  if (sink != nullptr) sink->on_upstream_complete();
}

int UpstreamConnection::on_status_code(llhttp_t* parser) {
  self_of(parser)->headers_.clear();
  return 0;
}

int UpstreamConnection::on_header_field(llhttp_t* parser, const char* at, std::size_t length) {
  UpstreamConnection* self = self_of(parser);
  self->header_collector_.add_name_piece({at, length});
  return self->headers_.byte_size() > kMaxResponseHeadBytes ? -1 : 0;
}

int UpstreamConnection::on_header_value(llhttp_t* parser, const char* at, std::size_t length) {
  UpstreamConnection* self = self_of(parser);
  if (!self->header_collector_.add_value_piece({at, length})) return -1;
  return self->headers_.byte_size() > kMaxResponseHeadBytes ? -1 : 0;
}

int UpstreamConnection::on_header_value_complete(llhttp_t* parser) {
  self_of(parser)->header_collector_.end_field();
  return 0;
}

int UpstreamConnection::on_headers_complete(llhttp_t* parser) {
  UpstreamConnection* self = self_of(parser);
  int status = parser->status_code;
  if (status >= 100 && status < 200) {
    // Interim answers (100, 103) are not relayed; 101 would mean a protocol switch we never asked for.
    return status == 101 ? -1 : 0;
  }
  self->response_head_done_ = true;
  BodyFraming framing = BodyFraming::UntilClose;
  std::uint64_t length = 0;
  if (parser->flags & F_CHUNKED) {
    framing = BodyFraming::Chunked;
  } else if (parser->flags & F_CONTENT_LENGTH) {
    framing = BodyFraming::ContentLength;
    length = parser->content_length;
  } else if (status_has_no_body(status) || self->head_request_) {
    framing = BodyFraming::None;
  }
  remove_hop_by_hop(self->headers_);
  if (self->sink_ != nullptr) self->sink_->on_upstream_head(status, self->headers_, framing, length);
  if (self->state_ != State::Active) return -1;
  return self->head_request_ ? 1 : 0;
}

int UpstreamConnection::on_body(llhttp_t* parser, const char* at, std::size_t length) {
  UpstreamConnection* self = self_of(parser);
  if (self->sink_ != nullptr) self->sink_->on_upstream_body({at, length});
  return self->state_ == State::Active ? 0 : -1;
}

int UpstreamConnection::on_message_complete(llhttp_t* parser) {
  UpstreamConnection* self = self_of(parser);
  if (!self->response_head_done_) {
    self->headers_.clear();
    self->header_collector_.reset();
    return 0;  // an interim 1xx answer ended; the real one follows
  }
  self->response_complete_ = true;
  return HPE_PAUSED;
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
