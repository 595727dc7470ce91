#pragma once
// The pooled UpstreamConnection of one exchange, seen through the socket-free UpstreamChannel /
// UpstreamEvents pair the Exchange speaks (proxy/exchange/exchange_host.h). One per client
// connection, reused by its exchanges; it holds the connection from acquire until the response
// completes, fails, or is abandoned, and after a 101 hands the upgraded connection to the tunnel.

#include <span>
#include <string_view>

#include "proxy/exchange/exchange_host.h"
#include "proxy/net/upstream.h"

namespace arbiter {

class UpstreamLink final : public UpstreamSink, public UpstreamChannel {
 public:
  // Acquires a connection of `pool` for `events` (see UpstreamPool::acquire).
  UpstreamChannel& open(UpstreamPool& pool, UpstreamEvents& events, std::size_t avoid_server) {
    events_ = &events;
    connection_ = pool.acquire(*this, avoid_server);
    return *this;
  }
  // After on_upstream_upgraded: the connection, now the tunnel's (abandon() it when done).
  UpstreamConnection* take_upgraded() noexcept { return std::exchange(upgraded_, nullptr); }

  // UpstreamChannel
  bool send(std::span<const std::string_view> pieces) override {
    uv_buf_t bufs[4];
    unsigned count = 0;
    for (std::string_view piece : pieces) bufs[count++] = make_buf(piece.data(), piece.size());
    return connection_->send(bufs, count);
  }
  void expect_response(bool head_request, bool upgrade) override { connection_->expect_response(head_request, upgrade); }
  void request_finished() override { connection_->request_finished(); }
  std::size_t queued_bytes() const noexcept override { return connection_ != nullptr ? connection_->queued_bytes() : 0; }
  void pause_reading() override { connection_->pause_reading(); }
  void resume_reading() override { connection_->resume_reading(); }
  void abandon() override {
    if (UpstreamConnection* connection = std::exchange(connection_, nullptr)) connection->abandon();
  }
  std::size_t server_index() const noexcept override { return connection_->server_index(); }
  std::string_view authority() const noexcept override { return connection_->authority(); }
  bool ready() const noexcept override { return connection_ != nullptr && connection_->ready(); }

  // UpstreamSink: relayed to the exchange (the connection is forgotten first where it ends).
  void on_upstream_connected(UpstreamConnection& connection) override {
    connection_ = &connection;
    events_->on_upstream_connected(*this);
  }
  void on_upstream_failed(UpstreamFailure failure, bool connection_was_reused, int error) override {
    connection_ = nullptr;
    events_->on_upstream_failed(failure, connection_was_reused, error);
  }
  void on_upstream_head(int status, HeaderList& headers, BodyFraming framing, std::uint64_t content_length) override {
    events_->on_upstream_head(status, headers, framing, content_length);
  }
  void on_upstream_body(std::string_view data) override { events_->on_upstream_body(data); }
  void on_upstream_trailers(const HeaderList& trailers) override { events_->on_upstream_trailers(trailers); }
  void on_upstream_complete() override {
    connection_ = nullptr;
    events_->on_upstream_complete();
  }
  void on_upstream_drained() override { events_->on_upstream_drained(); }
  void on_upstream_read_end() override { events_->on_upstream_read_end(); }
  void on_upstream_upgraded(UpstreamConnection& connection, std::string_view early) override {
    connection_ = nullptr;
    upgraded_ = &connection;
    events_->on_upstream_upgraded(early);
  }

 private:
  UpstreamEvents* events_ = nullptr;
  UpstreamConnection* connection_ = nullptr;
  UpstreamConnection* upgraded_ = nullptr;
};

}  // namespace arbiter
