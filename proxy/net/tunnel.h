#pragma once
// The bytes of an upgraded connection (a 101 Switching Protocols, e.g. WebSocket), copied both
// ways between the client and the upstream until both sides have closed, one fails, or the
// owner ends it (idle timeout, drain).
//
// The streams stay their owners' (ClientConnection, UpstreamConnection): the owners route the
// read and write events of their stream here while the tunnel runs, and close the streams when
// it ends. The tunnel writes with the owner as the write listener, so a write still queued when
// a stream closes never calls into a freed tunnel.
//
// Back-pressure: reading one side stops while more than kHighWater bytes wait to be written to
// the other, and resumes below kLowWater (proxy/net/stream_write.h). Half-close: the end of one side's input shuts the
// other side's write direction once what is queued for it is written (uv_shutdown), and the
// other direction goes on until it ends too.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include <uv.h>

#include "proxy/net/stream_write.h"

namespace arbiter {

enum class TunnelSide : std::uint8_t { Client, Upstream };

// One side's stream and its owner's callbacks (used to pause and resume its reading).
struct TunnelEnd {
  uv_stream_t* stream = nullptr;
  WriteListener* listener = nullptr;  // the stream's owner; forwards on_write_done here
  uv_alloc_cb on_alloc = nullptr;
  uv_read_cb on_read = nullptr;
  uv_shutdown_t* shutdown = nullptr;  // owned by the stream's owner (outlives a pending shutdown)
};

class TunnelObserver {
 public:
  // The tunnel is over (both directions ended, or a read or write failed): close both streams.
  // Called at most once, possibly from inside Tunnel::start.
  virtual void on_tunnel_closed() = 0;

 protected:
  ~TunnelObserver() = default;
};

class Tunnel {
 public:
  Tunnel(TunnelEnd client, TunnelEnd upstream, TunnelObserver& observer);
  Tunnel(const Tunnel&) = delete;
  Tunnel& operator=(const Tunnel&) = delete;

  // Starts reading both sides, first relaying what each sent before the switch: the client's
  // bytes after its request head, the upstream's after the 101 head.
  void start(std::string_view early_from_client, std::string_view early_from_upstream);
  // The owners' events: a read of `from`'s stream, a queued write to `to`'s stream finished.
  void on_read(TunnelSide from, ssize_t nread, const uv_buf_t* buf);
  void on_write_done(TunnelSide to, int status);

  // Milliseconds of uv_now (of the client's loop) at the last byte that crossed either way.
  std::uint64_t last_activity_ms() const noexcept { return last_activity_ms_; }
  // Bytes relayed to the client (the access log's response bytes).
  std::uint64_t bytes_to_client() const noexcept { return sides_[0].bytes_in; }

 private:
  struct Side {
    TunnelEnd end;
    bool reading = false;
    bool input_ended = false;  // EOF read from this side
    bool shut = false;         // this side's write direction has been shut down
    std::uint64_t bytes_in = 0;  // written to this side
  };
  Side& side(TunnelSide which) noexcept { return sides_[which == TunnelSide::Client ? 0 : 1]; }
  Side& other(TunnelSide which) noexcept { return sides_[which == TunnelSide::Client ? 1 : 0]; }
  void relay(TunnelSide from, std::string_view bytes);
  void set_reading(Side& s, bool reading);
  void close();

  Side sides_[2];  // [0] the client, [1] the upstream
  TunnelObserver& observer_;
  std::uint64_t last_activity_ms_ = 0;
  bool closed_ = false;
};

}  // namespace arbiter
