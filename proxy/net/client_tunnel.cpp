// ClientConnection after a 101 Switching Protocols: the exchange becomes a Tunnel between the
// client and the upgraded upstream connection, until either side closes, the route's
// tunnel_idle_timeout passes with no byte either way, or a drain's drain_timeout ends it.
// The exchange (its policy states, e.g. an in-flight slot, and its access-log line with status
// 101) lasts as long as the tunnel.

#include "proxy/net/client_connection.h"
#include "proxy/net/worker.h"

namespace arbiter {

void ClientConnection::on_upstream_upgraded(UpstreamConnection& connection, std::string_view early) {
  upstream_ = nullptr;
  forwarding_ = false;
  tunnel_upstream_ = &connection;
  if (!route_->policies.empty()) {
    // The policies see the 101 head (a rate limit adds its fields); no body follows for them.
    body_withheld_ = false;
    response_policy_index_ = route_->policies.size();
    run_response_policies(false);
  }
  held_headers_.add("Via", "1.1 arbiter");
  head_scratch_.clear();
  write_client_response_head(head_scratch_, ClientResponse{response_status_, held_headers_, BodyFraming::None, 0,
                                                           true, false, request_id_, true});
  response_head_sent_ = true;
  response_complete_ = true;  // the answer is the 101; the access log counts the tunnel's bytes
  uv_buf_t head = make_buf(head_scratch_.data(), head_scratch_.size());
  send_to_client(&head, 1);
  if (phase_ == Phase::Closed) return;
  tunnel_ = std::make_unique<Tunnel>(
      TunnelEnd{reinterpret_cast<uv_stream_t*>(&tcp_), this, on_alloc, on_read, &shutdown_request_},
      connection.tunnel_end(), *this);
  connection.attach_tunnel(tunnel_.get());
  arm_timer(route_->config->tunnel_idle_timeout);
  // What the client sent after its request head (pipelined with it) is the new protocol's.
  std::string early_from_client = parser_.take_pending();
  tunnel_->start(early_from_client, early);
}

void ClientConnection::on_tunnel_closed() { close_now(); }

void ClientConnection::on_tunnel_timer() {
  Duration timeout = route_->config->tunnel_idle_timeout;
  std::uint64_t idle = uv_now(worker_.loop()) - tunnel_->last_activity_ms();
  if (idle >= static_cast<std::uint64_t>(timeout.count())) {
    close_now();
    return;
  }
  arm_timer(timeout - Duration(idle));
}

void ClientConnection::end_tunnel() {
  if (tunnel_ != nullptr) response_bytes_ = tunnel_->bytes_to_client();
  UpstreamConnection* upstream = tunnel_upstream_;
  tunnel_upstream_ = nullptr;
  upstream->abandon();
}

}  // namespace arbiter
