#include "proxy/net/tunnel.h"

namespace arbiter {

namespace {

// Errors of a shutdown show up on the stream's reads and writes; its request is the owner's and
// may be cancelled after the tunnel is gone, so this must not touch either.
void on_shutdown_ignored(uv_shutdown_t*, int) {}

}  // namespace

Tunnel::Tunnel(TunnelEnd client, TunnelEnd upstream, TunnelObserver& observer) : observer_(observer) {
  sides_[0].end = client;
  sides_[1].end = upstream;
  last_activity_ms_ = uv_now(client.stream->loop);
}

void Tunnel::start(std::string_view early_from_client, std::string_view early_from_upstream) {
  for (Side& s : sides_) {
    // The owner may or may not be reading: start from a known state.
    uv_read_stop(s.end.stream);
    s.reading = false;
  }
  if (!early_from_client.empty()) relay(TunnelSide::Client, early_from_client);
  if (!closed_ && !early_from_upstream.empty()) relay(TunnelSide::Upstream, early_from_upstream);
  for (Side& s : sides_) {
    if (closed_) return;
    Side& peer = &s == &sides_[0] ? sides_[1] : sides_[0];
    if (peer.end.stream->write_queue_size <= kHighWater) set_reading(s, true);
  }
}

void Tunnel::on_read(TunnelSide from, ssize_t nread, const uv_buf_t* buf) {
  if (closed_ || nread == 0) return;
  if (nread == UV_EOF) {
    Side& source = side(from);
    Side& to = other(from);
    source.input_ended = true;
    set_reading(source, false);
    if (!to.shut) {
      to.shut = true;
      // Sent once what is queued for that side is written.
      uv_shutdown(to.end.shutdown, to.end.stream, on_shutdown_ignored);
    }
    bool drained = sides_[0].end.stream->write_queue_size == 0 && sides_[1].end.stream->write_queue_size == 0;
    if (sides_[0].input_ended && sides_[1].input_ended && drained) close();
    return;
  }
  if (nread < 0) {
    close();  // a reset or an error: nothing more can be relayed either way
    return;
  }
  relay(from, std::string_view(buf->base, static_cast<std::size_t>(nread)));
}

void Tunnel::on_write_done(TunnelSide to, int status) {
  if (closed_) return;
  if (status < 0) {
    close();
    return;
  }
  Side& target = side(to);
  Side& source = other(to);
  last_activity_ms_ = uv_now(target.end.stream->loop);
  std::size_t queued = target.end.stream->write_queue_size;
  if (!source.input_ended && !source.reading && queued < kLowWater) set_reading(source, true);
  bool drained = queued == 0 && source.end.stream->write_queue_size == 0;
  if (sides_[0].input_ended && sides_[1].input_ended && drained) close();
}

void Tunnel::relay(TunnelSide from, std::string_view bytes) {
  Side& to = other(from);
  last_activity_ms_ = uv_now(to.end.stream->loop);
  uv_buf_t buf = make_buf(bytes.data(), bytes.size());
  if (write_to_stream(to.end.stream, &buf, 1, to.end.listener) != 0) {
    close();
    return;
  }
  to.bytes_in += bytes.size();
  if (to.end.stream->write_queue_size > kHighWater) set_reading(side(from), false);
}

void Tunnel::set_reading(Side& s, bool reading) {
  if (s.reading == reading) return;
  s.reading = reading;
  if (reading) {
    uv_read_start(s.end.stream, s.end.on_alloc, s.end.on_read);
  } else {
    uv_read_stop(s.end.stream);
  }
}

void Tunnel::close() {
  if (closed_) return;
  closed_ = true;
  for (Side& s : sides_) set_reading(s, false);
  observer_.on_tunnel_closed();
}

}  // namespace arbiter
