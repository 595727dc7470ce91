#pragma once
// A webhook target for tests: a blocking loopback HTTP server on a thread of its own that
// records every request (head fields and body) and answers each as a script says; and the
// signature a receiver expects, computed with OpenSSL directly (not with Arbiter's code).
// Waits are bounded by what arrives, with a guard timeout against a hang, never a guess at speed.

#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace webhook_test {

// "sha256=" + hex HMAC-SHA256(secret, body), as a receiver computes it to verify Arbiter-Signature.
inline std::string expected_signature(const std::string& secret, const std::string& body) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(body.data()), body.size(), digest, &length);
  std::string hex = "sha256=";
  static constexpr char kDigits[] = "0123456789abcdef";
  for (unsigned i = 0; i < length; ++i) {
    hex += kDigits[digest[i] >> 4];
    hex += kDigits[digest[i] & 0xf];
  }
  return hex;
}

struct ReceivedRequest {
  std::string request_line;
  std::map<std::string, std::string> fields;  // names in lower case
  std::string body;
  std::string field(const std::string& name) const {
    auto found = fields.find(name);
    return found == fields.end() ? std::string() : found->second;
  }
};

// A TCP socket bound to a kernel-chosen loopback port (`port` out); -1 on failure.
inline int bind_loopback_socket(std::uint16_t& port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    if (fd >= 0) ::close(fd);
    return -1;
  }
  socklen_t length = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  port = ntohs(address.sin_port);
  return fd;
}

// A loopback port that refuses connections (bound, then closed).
inline std::uint16_t refused_port() {
  std::uint16_t port = 0;
  int fd = bind_loopback_socket(port);
  if (fd >= 0) ::close(fd);
  return port;
}

class WebhookReceiver {
 public:
  // The status to answer the n-th request (0-based) with; nullopt: accept, read, never answer
  // (the connection is held until the client closes it or the receiver stops).
  using Script = std::function<std::optional<int>(std::size_t index)>;

  explicit WebhookReceiver(Script script = [](std::size_t) { return std::optional<int>(200); })
      : script_(std::move(script)) {
    listen_fd_ = bind_loopback_socket(port_);
    if (listen_fd_ < 0 || ::listen(listen_fd_, 64) != 0) throw std::runtime_error("webhook receiver: cannot listen on loopback");
    thread_ = std::thread([this] { serve(); });
  }
  ~WebhookReceiver() {
    stop_ = true;
    thread_.join();
    ::close(listen_fd_);
  }
  WebhookReceiver(const WebhookReceiver&) = delete;
  WebhookReceiver& operator=(const WebhookReceiver&) = delete;

  std::uint16_t port() const { return port_; }
  std::string url(const std::string& path = "/hooks") const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }

  std::vector<ReceivedRequest> requests() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return requests_;
  }
  // Waits until `count` requests have arrived; false after `guard` (a hang, not a pace).
  bool wait_for(std::size_t count, std::chrono::seconds guard = std::chrono::seconds(20)) const {
    std::unique_lock<std::mutex> lock(mutex_);
    return arrived_.wait_for(lock, guard, [&] { return requests_.size() >= count; });
  }

 private:
  bool readable(int fd) {
    while (!stop_) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 10) > 0) return true;
    }
    return false;
  }

  static std::string lower(std::string text) {
    std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return std::tolower(c); });
    return text;
  }

  void serve() {
    while (readable(listen_fd_)) {
      int fd = ::accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) continue;
      std::string data;
      std::size_t wanted = std::string::npos;
      std::size_t head_end = std::string::npos;
      char buffer[4096];
      while (data.size() != wanted && readable(fd)) {
        ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
        if (n <= 0) break;
        data.append(buffer, static_cast<std::size_t>(n));
        if (head_end == std::string::npos && (head_end = data.find("\r\n\r\n")) != std::string::npos) {
          std::string head = lower(data.substr(0, head_end));
          std::size_t at = head.find("\r\ncontent-length:");
          wanted = head_end + 4 + (at == std::string::npos ? 0 : std::stoul(head.substr(at + 17)));
        }
      }
      if (head_end == std::string::npos) {
        ::close(fd);
        continue;
      }
      ReceivedRequest request;
      std::size_t line_end = data.find("\r\n");
      request.request_line = data.substr(0, line_end);
      for (std::size_t at = line_end + 2; at < head_end;) {
        std::size_t end = data.find("\r\n", at);
        if (end == std::string::npos || end > head_end) end = head_end;
        std::string line = data.substr(at, end - at);
        std::size_t colon = line.find(':');
        if (colon != std::string::npos) {
          std::size_t value = line.find_first_not_of(' ', colon + 1);
          request.fields[lower(line.substr(0, colon))] = value == std::string::npos ? "" : line.substr(value);
        }
        at = end + 2;
      }
      request.body = data.substr(head_end + 4);
      std::size_t index = 0;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        index = requests_.size();
        requests_.push_back(std::move(request));
      }
      arrived_.notify_all();
      if (std::optional<int> status = script_(index)) {
        std::string answer = "HTTP/1.1 " + std::to_string(*status) + " X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        ::send(fd, answer.data(), answer.size(), MSG_NOSIGNAL);
      } else {
        while (readable(fd) && ::recv(fd, buffer, sizeof buffer, 0) > 0) {
        }
      }
      ::close(fd);
    }
  }

  Script script_;
  int listen_fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  mutable std::mutex mutex_;
  mutable std::condition_variable arrived_;
  std::vector<ReceivedRequest> requests_;  // guarded by mutex_
  std::thread thread_;
};

}  // namespace webhook_test
