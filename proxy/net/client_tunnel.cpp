// ClientConnection after a 101 Switching Protocols: the exchange becomes a Tunnel between the
// client and the upgraded upstream connection, until either side closes, the route's
// tunnel_idle_timeout passes with no byte either way, or a drain's drain_timeout ends it.
// The Exchange (its policy states, e.g. an in-flight slot, and its access-log line with status
// 101) lasts as long as the tunnel: it relays the 101 and hands over with start_tunnel.

#include "proxy/net/client_connection.h"
#include "proxy/net/worker.h"

namespace arbiter {

void ClientConnection::start_tunnel(std::string_view early) {
  UpstreamConnection* connection = upstream_link_.take_upgraded();
  tunnel_upstream_ = connection;
  tunnel_ = std::make_unique<Tunnel>(
      TunnelEnd{reinterpret_cast<uv_stream_t*>(&tcp_), this, on_alloc, on_read, &shutdown_request_},
      connection->tunnel_end(), *this);
  connection->attach_tunnel(tunnel_.get());
  arm_timer(exchange_->route()->config->tunnel_idle_timeout);
  // What the client sent after its request head (pipelined with it) is the new protocol's.
  std::string early_from_client = parser_.take_pending();
  tunnel_->start(early_from_client, early);
}

void ClientConnection::on_tunnel_closed() { close_now(); }

void ClientConnection::on_tunnel_timer() {
  Duration timeout = exchange_->route()->config->tunnel_idle_timeout;
  std::uint64_t idle = uv_now(worker_.loop()) - tunnel_->last_activity_ms();
  if (idle >= static_cast<std::uint64_t>(timeout.count())) {
    close_now();
    return;
  }
  arm_timer(timeout - Duration(idle));
}

void ClientConnection::end_tunnel() {
  if (tunnel_ != nullptr && exchange_) exchange_->set_tunnel_bytes(tunnel_->bytes_to_client());
  UpstreamConnection* upstream = tunnel_upstream_;
  tunnel_upstream_ = nullptr;
  upstream->abandon();
}

}  // namespace arbiter
