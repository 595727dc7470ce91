#pragma once
// A WebSocket-speaking backend and client for the integration tests (RFC 6455, just what the
// tests need): blocking loopback sockets, every wait bounded.

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "tests/support/harness.h"

namespace harness {

// RFC 6455 section 4.2.2: base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")).
std::string websocket_accept(std::string_view key);

struct WebSocketFrame {
  int opcode = 0;  // 1 text, 2 binary, 8 close
  std::string payload;
};
// One final frame; masked as a client must send it (RFC 6455 section 5.3), or not as a server.
std::string encode_frame(int opcode, std::string_view payload, bool masked);

// A connected TCP socket to 127.0.0.1:port (the caller owns it); throws std::runtime_error.
int connect_loopback(std::uint16_t port);

// A blocking socket with a read buffer; every read waits at most until its deadline.
class BlockingSocket {
 public:
  explicit BlockingSocket(int fd) : fd_(fd) {}
  ~BlockingSocket();
  BlockingSocket(const BlockingSocket&) = delete;
  BlockingSocket& operator=(const BlockingSocket&) = delete;

  int fd() const { return fd_; }
  bool write_all(std::string_view bytes, Milliseconds timeout = 60s);
  // Through "\r\n\r\n" (included); nullopt on EOF, error or timeout.
  std::optional<std::string> read_head(Milliseconds timeout);
  bool read_exact(std::size_t count, std::string& out, Milliseconds timeout);
  std::optional<WebSocketFrame> read_frame(Milliseconds timeout);
  // Buffered bytes, or the socket becomes readable (data or EOF) within `timeout`.
  bool readable(Milliseconds timeout);
  // True if the peer closes (EOF or reset) within `timeout`; bytes arriving meanwhile are dropped.
  bool closed_by_peer(Milliseconds timeout);
  void shutdown_write();
  void close();

 private:
  // Appends what arrives before the deadline; false on EOF, error or timeout.
  bool fill(std::chrono::steady_clock::time_point deadline);

  int fd_ = -1;
  std::string buffer_;
};

// A client connection to 127.0.0.1:port that performs a WebSocket handshake.
class WebSocketClient {
 public:
  explicit WebSocketClient(std::uint16_t port);
  // Sends the handshake for `target` (plus `extra` bytes in the same write) and reads the
  // response head: its status, and its fields in `headers`.
  int handshake(std::string_view target, std::string_view extra = {}, const HeaderPairs& fields = {});
  const std::string& key() const { return key_; }
  std::optional<std::string> header(std::string_view name) const;
  const std::string& head() const { return head_; }
  BlockingSocket& socket() { return socket_; }
  bool send_text(std::string_view text) { return socket_.write_all(encode_frame(1, text, true)); }
  bool send_binary(std::string_view bytes) { return socket_.write_all(encode_frame(2, bytes, true)); }
  std::optional<WebSocketFrame> receive(Milliseconds timeout = 10s) { return socket_.read_frame(timeout); }

 private:
  std::uint16_t port_;
  BlockingSocket socket_;
  std::string key_;
  std::string head_;
  HeaderPairs headers_;
};

// The WebSocket echo backend on a kernel-chosen loopback port, one thread per connection.
// For a request head:
// - GET /ws... with `Upgrade: websocket` and Sec-WebSocket-Key: 101 with Sec-WebSocket-Accept,
//   then every text or binary frame is echoed; "server-close" closes the connection at once, a
//   close frame is answered with one and closes. /ws/greet sends a text frame "welcome" in the
//   same write as the 101 head.
// - /ws/refuse: 403 with a small JSON body, keep-alive.
// - anything else: 200 with a JSON body {"target", "upgrade", "connection"} (null when absent),
//   keep-alive, so a test sees which fields reached the backend.
class WebSocketBackend {
 public:
  WebSocketBackend();
  ~WebSocketBackend();
  WebSocketBackend(const WebSocketBackend&) = delete;
  WebSocketBackend& operator=(const WebSocketBackend&) = delete;

  std::uint16_t port() const { return port_; }
  int handshakes() const { return handshakes_.load(); }
  // Tunnelled connections whose peer (Arbiter) closed or shut down its side.
  int peer_closes() const { return peer_closes_.load(); }
  int requests() const { return requests_.load(); }

 private:
  void accept_loop();
  void serve(int fd);

  int listener_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> handshakes_{0};
  std::atomic<int> peer_closes_{0};
  std::atomic<int> requests_{0};
  std::mutex mutex_;
  std::vector<std::thread> connections_;  // guarded by mutex_
  std::thread acceptor_;
};

}  // namespace harness
