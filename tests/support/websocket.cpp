#include "tests/support/websocket.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace harness {

namespace {

using Clock = std::chrono::steady_clock;

std::uint32_t rotl(std::uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

bool iequal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

// The fields of a head (after its first line), in order.
HeaderPairs parse_fields(std::string_view head) {
  HeaderPairs fields;
  std::size_t line_end = head.find("\r\n");
  while (line_end != std::string_view::npos) {
    std::size_t start = line_end + 2;
    line_end = head.find("\r\n", start);
    if (line_end == std::string_view::npos || line_end == start) break;
    std::string_view line = head.substr(start, line_end - start);
    std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    fields.emplace_back(std::string(trim(line.substr(0, colon))), std::string(trim(line.substr(colon + 1))));
  }
  return fields;
}

std::optional<std::string> field(const HeaderPairs& fields, std::string_view name) {
  for (const auto& [n, v] : fields) {
    if (iequal(n, name)) return v;
  }
  return std::nullopt;
}

std::string json_string_or_null(const std::optional<std::string>& value) {
  if (!value) return "null";
  std::string out = "\"";
  for (char c : *value) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out + "\"";
}


// FIPS 180-4 SHA-1 (20 raw bytes), for the handshake only: no library the project links offers
// one (OpenSSL is not a dependency, and a test helper is no reason to add it).
std::string sha1(std::string_view data) {
  std::uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
  std::string message(data);
  std::uint64_t bit_length = static_cast<std::uint64_t>(data.size()) * 8;
  message.push_back(static_cast<char>(0x80));
  while (message.size() % 64 != 56) message.push_back('\0');
  for (int i = 7; i >= 0; --i) message.push_back(static_cast<char>((bit_length >> (8 * i)) & 0xff));
  for (std::size_t block = 0; block < message.size(); block += 64) {
    std::uint32_t w[80];
    for (int i = 0; i < 16; ++i) {
      const auto* p = reinterpret_cast<const unsigned char*>(message.data() + block + 4 * i);
      w[i] = (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | p[3];
    }
    for (int i = 16; i < 80; ++i) w[i] = rotl(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    std::uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; ++i) {
      std::uint32_t f, k;
      if (i < 20) {
        f = (b & c) | (~b & d), k = 0x5A827999;
      } else if (i < 40) {
        f = b ^ c ^ d, k = 0x6ED9EBA1;
      } else if (i < 60) {
        f = (b & c) | (b & d) | (c & d), k = 0x8F1BBCDC;
      } else {
        f = b ^ c ^ d, k = 0xCA62C1D6;
      }
      std::uint32_t t = rotl(a, 5) + f + e + k + w[i];
      e = d, d = c, c = rotl(b, 30), b = a, a = t;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
  }
  std::string digest;
  for (std::uint32_t word : h) {
    for (int i = 3; i >= 0; --i) digest.push_back(static_cast<char>((word >> (8 * i)) & 0xff));
  }
  return digest;
}

// RFC 4648 base64 (with padding).
std::string base64(std::string_view data) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (std::size_t i = 0; i < data.size(); i += 3) {
    std::uint32_t n = static_cast<unsigned char>(data[i]) << 16;
    if (i + 1 < data.size()) n |= static_cast<unsigned char>(data[i + 1]) << 8;
    if (i + 2 < data.size()) n |= static_cast<unsigned char>(data[i + 2]);
    out.push_back(kAlphabet[(n >> 18) & 63]);
    out.push_back(kAlphabet[(n >> 12) & 63]);
    out.push_back(i + 1 < data.size() ? kAlphabet[(n >> 6) & 63] : '=');
    out.push_back(i + 2 < data.size() ? kAlphabet[n & 63] : '=');
  }
  return out;
}

}  // namespace

std::string websocket_accept(std::string_view key) {
  return base64(sha1(std::string(key) + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"));
}

std::string encode_frame(int opcode, std::string_view payload, bool masked) {
  std::string frame;
  frame.push_back(static_cast<char>(0x80 | opcode));
  unsigned char mask_bit = masked ? 0x80 : 0;
  if (payload.size() < 126) {
    frame.push_back(static_cast<char>(mask_bit | payload.size()));
  } else if (payload.size() <= 0xffff) {
    frame.push_back(static_cast<char>(mask_bit | 126));
    frame.push_back(static_cast<char>(payload.size() >> 8));
    frame.push_back(static_cast<char>(payload.size() & 0xff));
  } else {
    frame.push_back(static_cast<char>(mask_bit | 127));
    for (int i = 7; i >= 0; --i) frame.push_back(static_cast<char>((std::uint64_t{payload.size()} >> (8 * i)) & 0xff));
  }
  if (!masked) return frame.append(payload);
  const char mask[4] = {0x12, 0x34, 0x56, 0x78};
  frame.append(mask, 4);
  std::size_t start = frame.size();
  frame.append(payload);
  for (std::size_t i = 0; i < payload.size(); ++i) frame[start + i] = static_cast<char>(frame[start + i] ^ mask[i % 4]);
  return frame;
}

// ---- BlockingSocket

BlockingSocket::~BlockingSocket() { close(); }

void BlockingSocket::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void BlockingSocket::shutdown_write() {
  if (fd_ >= 0) ::shutdown(fd_, SHUT_WR);
}

bool BlockingSocket::write_all(std::string_view bytes, Milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (!bytes.empty()) {
    ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      bytes.remove_prefix(static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return false;
    auto left = std::chrono::duration_cast<Milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    pollfd ready{fd_, POLLOUT, 0};
    ::poll(&ready, 1, static_cast<int>(std::min<long long>(left, 50)));
  }
  return true;
}

bool BlockingSocket::fill(Clock::time_point deadline) {
  while (true) {
    auto left = std::chrono::duration_cast<Milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    pollfd ready{fd_, POLLIN, 0};
    int rc = ::poll(&ready, 1, static_cast<int>(std::min<long long>(left, 50)));
    if (rc <= 0) continue;
    char chunk[65536];
    ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n > 0) {
      buffer_.append(chunk, static_cast<std::size_t>(n));
      return true;
    }
    if (n == 0) return false;
    if (errno != EINTR && errno != EAGAIN) return false;
  }
}

std::optional<std::string> BlockingSocket::read_head(Milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (true) {
    std::size_t end = buffer_.find("\r\n\r\n");
    if (end != std::string::npos) {
      std::string head = buffer_.substr(0, end + 4);
      buffer_.erase(0, end + 4);
      return head;
    }
    if (buffer_.size() > (1u << 20) || !fill(deadline)) return std::nullopt;
  }
}

bool BlockingSocket::read_exact(std::size_t count, std::string& out, Milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (buffer_.size() < count) {
    if (!fill(deadline)) return false;
  }
  out.assign(buffer_, 0, count);
  buffer_.erase(0, count);
  return true;
}

std::optional<WebSocketFrame> BlockingSocket::read_frame(Milliseconds timeout) {
  std::string bytes;
  if (!read_exact(2, bytes, timeout)) return std::nullopt;
  WebSocketFrame frame;
  frame.opcode = static_cast<unsigned char>(bytes[0]) & 0x0f;
  bool masked = (static_cast<unsigned char>(bytes[1]) & 0x80) != 0;
  std::uint64_t length = static_cast<unsigned char>(bytes[1]) & 0x7f;
  if (length >= 126) {
    std::size_t size = length == 126 ? 2 : 8;
    if (!read_exact(size, bytes, timeout)) return std::nullopt;
    length = 0;
    for (char c : bytes) length = (length << 8) | static_cast<unsigned char>(c);
  }
  std::string mask;
  if (masked && !read_exact(4, mask, timeout)) return std::nullopt;
  if (!read_exact(static_cast<std::size_t>(length), frame.payload, timeout)) return std::nullopt;
  if (masked) {
    for (std::size_t i = 0; i < frame.payload.size(); ++i) frame.payload[i] = static_cast<char>(frame.payload[i] ^ mask[i % 4]);
  }
  return frame;
}

bool BlockingSocket::readable(Milliseconds timeout) {
  if (!buffer_.empty()) return true;
  pollfd ready{fd_, POLLIN, 0};
  return ::poll(&ready, 1, static_cast<int>(timeout.count())) > 0;
}

bool BlockingSocket::closed_by_peer(Milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    pollfd ready{fd_, POLLIN, 0};
    if (::poll(&ready, 1, 50) <= 0) continue;
    char chunk[65536];
    ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) return true;
  }
  return false;
}

int connect_loopback(std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    ::close(fd);
    throw std::runtime_error("cannot connect to 127.0.0.1:" + std::to_string(port));
  }
  return fd;
}

// ---- WebSocketClient

WebSocketClient::WebSocketClient(std::uint16_t port) : port_(port), socket_(connect_loopback(port)) {
  static std::atomic<unsigned> counter{0};
  key_ = base64("arbiter-test-" + std::to_string(counter.fetch_add(1) % 1000));
}

int WebSocketClient::handshake(std::string_view target, std::string_view extra, const HeaderPairs& fields) {
  std::string request = "GET " + std::string(target) + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port_) +
                        "\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                        "Sec-WebSocket-Key: " + key_ + "\r\n";
  for (const auto& [name, value] : fields) request += name + ": " + value + "\r\n";
  request += "\r\n";
  request.append(extra);
  if (!socket_.write_all(request)) return 0;
  auto head = socket_.read_head(10s);
  if (!head) return 0;
  head_ = *head;
  headers_ = parse_fields(head_);
  std::size_t space = head_.find(' ');
  return space == std::string::npos ? 0 : std::atoi(head_.c_str() + space + 1);
}

std::optional<std::string> WebSocketClient::header(std::string_view name) const { return field(headers_, name); }

// ---- WebSocketBackend

WebSocketBackend::WebSocketBackend() {
  listener_ = listen_on_loopback(port_, "WebSocketBackend");
  acceptor_ = std::thread([this] { accept_loop(); });
}

WebSocketBackend::~WebSocketBackend() {
  stop_ = true;
  acceptor_.join();
  std::vector<std::thread> connections;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    connections.swap(connections_);
  }
  for (std::thread& connection : connections) connection.join();
  ::close(listener_);
}

void WebSocketBackend::accept_loop() {
  while (!stop_.load()) {
    pollfd ready{listener_, POLLIN, 0};
    if (::poll(&ready, 1, 20) <= 0) continue;
    int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    std::lock_guard<std::mutex> lock(mutex_);
    connections_.emplace_back([this, fd] { serve(fd); });
  }
}

void WebSocketBackend::serve(int fd) {
  BlockingSocket socket(fd);
  // Short waits, so that the destructor's stop_ is seen promptly.
  constexpr Milliseconds kPoll = 100ms;
  std::optional<std::string> head;
  while (!stop_.load()) {
    if (!socket.readable(kPoll)) continue;
    head = socket.read_head(10s);
    if (!head) return;  // closed, or not HTTP
    ++requests_;
    HeaderPairs fields = parse_fields(*head);
    std::size_t first_space = head->find(' ');
    std::string target = head->substr(first_space + 1, head->find(' ', first_space + 1) - first_space - 1);
    auto upgrade = field(fields, "upgrade");
    auto key = field(fields, "sec-websocket-key");
    if (target == "/ws/refuse") {
      std::string body = R"({"refused":true})";
      socket.write_all("HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nContent-Length: " +
                       std::to_string(body.size()) + "\r\n\r\n" + body);
      continue;
    }
    if (target.starts_with("/ws") && upgrade && iequal(*upgrade, "websocket") && key) {
      break;  // the handshake
    }
    std::string body = "{\"target\":" + json_string_or_null(target) + ",\"upgrade\":" + json_string_or_null(upgrade) +
                       ",\"connection\":" + json_string_or_null(field(fields, "connection")) + "}";
    socket.write_all("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
                     std::to_string(body.size()) + "\r\n\r\n" + body);
  }
  if (stop_.load()) return;
  std::string target = head->substr(head->find(' ') + 1);
  target = target.substr(0, target.find(' '));
  std::string answer = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                       "Sec-WebSocket-Accept: " + websocket_accept(*field(parse_fields(*head), "sec-websocket-key")) +
                       "\r\n\r\n";
  if (target == "/ws/greet") answer += encode_frame(1, "welcome", false);
  ++handshakes_;
  if (!socket.write_all(answer)) return;
  while (!stop_.load()) {
    if (!socket.readable(kPoll)) continue;
    // A frame's bytes are awaited generously once its first byte is here.
    std::optional<WebSocketFrame> frame = socket.read_frame(30s);
    if (!frame) {
      ++peer_closes_;  // EOF: Arbiter closed or shut down its side
      return;
    }
    if (frame->opcode == 8) {
      socket.write_all(encode_frame(8, frame->payload, false));
      return;
    }
    if (frame->payload == "server-close") return;
    if (!socket.write_all(encode_frame(frame->opcode, frame->payload, false), 30s)) return;
  }
}

}  // namespace harness
