#pragma once
// A Server-Sent Events client for the integration tests: one loopback connection that sends
// GET target with Accept: text/event-stream and reads the chunked body as SSE blocks. Every wait
// is bounded.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "tests/support/harness.h"
#include "tests/support/sse_events.h"
#include "tests/support/websocket.h"

namespace harness {

class SseStream {
 public:
  // Connects and sends the request (HTTP/1.1, with `fields` added); reads the response head.
  // receive_buffer > 0: SO_RCVBUF of the socket (a client that will not read holds little).
  SseStream(std::uint16_t port, std::string_view target, const HeaderPairs& fields = {}, Milliseconds timeout = 5s,
            int receive_buffer = 0);

  // 0 when no head arrived.
  int status() const { return status_; }
  const std::string& head() const { return head_; }
  // The first field of that name in the head (case-insensitive), without surrounding spaces.
  std::optional<std::string> header(std::string_view name) const;

  // The next block (an event, or comments or a retry only); nullopt on timeout, end or error.
  std::optional<SseEvent> next(Milliseconds timeout);
  // The next block that carries data (an event), skipping comments and retry.
  std::optional<SseEvent> next_event(Milliseconds timeout);
  // True when the server ends the body (last chunk) or closes the connection within `timeout`;
  // blocks arriving meanwhile are dropped.
  bool ends_within(Milliseconds timeout);

  BlockingSocket& socket() { return socket_; }

 private:
  // Appends the next chunk's data to text_; false on timeout, error or the last chunk.
  bool read_chunk(std::chrono::steady_clock::time_point deadline);

  BlockingSocket socket_;
  int status_ = 0;
  std::string head_;
  std::string text_;  // de-chunked body not yet parsed into blocks
  bool ended_ = false;
};

}  // namespace harness
