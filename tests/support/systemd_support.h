#pragma once
// Playing systemd in tests: its notification socket, and listening sockets to pass as socket
// activation does. Header-only, so both the unit tests (sd_notify from the test process) and
// the integration tests (the real binary as a child) use it.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace harness {

// A listening TCP socket (FD_CLOEXEC) on numeric `host` with a kernel-chosen port, written to
// `port`; -1 if it cannot be made (no IPv6 on this machine, say).
inline int listening_socket(int family, const char* host, std::uint16_t& port) {
  const int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_storage storage{};
  socklen_t length = family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
  if (family == AF_INET) {
    auto* v4 = reinterpret_cast<sockaddr_in*>(&storage);
    v4->sin_family = AF_INET;
    ::inet_pton(AF_INET, host, &v4->sin_addr);
  } else {
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&storage);
    v6->sin6_family = AF_INET6;
    ::inet_pton(AF_INET6, host, &v6->sin6_addr);
  }
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&storage), length) != 0 || ::listen(fd, 64) != 0) {
    if (fd >= 0) ::close(fd);
    return -1;
  }
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&storage), &length);
  port = ntohs(family == AF_INET ? reinterpret_cast<sockaddr_in*>(&storage)->sin_port
                                 : reinterpret_cast<sockaddr_in6*>(&storage)->sin6_port);
  return fd;
}

// systemd's notification socket: an AF_UNIX datagram socket in a fresh directory under /tmp,
// whose path goes into $NOTIFY_SOCKET.
class NotifySocket {
 public:
  NotifySocket() {
    char directory[] = "/tmp/arbiter-notify-XXXXXX";
    if (::mkdtemp(directory) == nullptr) throw std::runtime_error("mkdtemp failed");
    directory_ = directory;
    path_ = directory_ + "/notify";
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    path_.copy(address.sun_path, sizeof address.sun_path - 1);
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
      throw std::runtime_error("cannot bind " + path_);
    }
  }
  ~NotifySocket() {
    ::close(fd_);
    ::unlink(path_.c_str());
    ::rmdir(directory_.c_str());
  }
  NotifySocket(const NotifySocket&) = delete;
  NotifySocket& operator=(const NotifySocket&) = delete;

  const std::string& path() const { return path_; }
  std::string variable() const { return "NOTIFY_SOCKET=" + path_; }

  // The next datagram, or nullopt if none arrives within `timeout`.
  std::optional<std::string> receive(std::chrono::milliseconds timeout) {
    pollfd ready{fd_, POLLIN, 0};
    if (::poll(&ready, 1, static_cast<int>(timeout.count())) <= 0) return std::nullopt;
    char buffer[4096];
    const ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
    if (n < 0) return std::nullopt;
    return std::string(buffer, static_cast<std::size_t>(n));
  }

  // Every datagram that arrives within `timeout`, up to and including the first with the line
  // `assignment` (e.g. "READY=1"); `found` says whether it came.
  std::vector<std::string> receive_until(std::string_view assignment, std::chrono::milliseconds timeout,
                                         bool& found) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::vector<std::string> messages;
    found = false;
    while (!found) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() < 0) break;
      std::optional<std::string> message = receive(left);
      if (!message) break;
      found = has_line(*message, assignment);
      messages.push_back(std::move(*message));
    }
    return messages;
  }

  // The assignments of a message, one per line ("READY=1", "STATUS=...").
  static std::vector<std::string_view> lines(std::string_view message) {
    std::vector<std::string_view> result;
    while (!message.empty()) {
      const std::size_t end = message.find('\n');
      result.push_back(message.substr(0, end));
      message.remove_prefix(end == std::string_view::npos ? message.size() : end + 1);
    }
    return result;
  }

  static bool has_line(std::string_view message, std::string_view assignment) {
    for (std::string_view line : lines(message)) {
      if (line == assignment) return true;
    }
    return false;
  }

  // The value of `name` in `message`, if it is assigned there.
  static std::optional<std::string> value_of(std::string_view message, std::string_view name) {
    for (std::string_view line : lines(message)) {
      if (line.size() > name.size() && line.starts_with(name) && line[name.size()] == '=') {
        return std::string(line.substr(name.size() + 1));
      }
    }
    return std::nullopt;
  }

 private:
  std::string directory_;
  std::string path_;
  int fd_ = -1;
};

}  // namespace harness
