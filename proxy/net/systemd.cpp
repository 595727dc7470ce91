#include "proxy/net/systemd.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <mutex>

#include "proxy/observe/log.h"

namespace arbiter::systemd {

namespace {

// One line of the notification protocol: a newline in `text` would start another assignment.
std::string field(std::string_view name, std::string_view text) {
  std::string line(name);
  line.push_back('=');
  for (char c : text) line.push_back(c == '\n' || c == '\r' ? ' ' : c);
  return line;
}

bool send(const std::string& state) {
  // unset_environment=0: the socket stays known for later notifications (watchdog, reload).
  int rc = sd_notify(0, state.c_str());
  if (rc >= 0) return rc > 0;
  // Reported once: a supervisor that went away must not flood the log with every ping.
  static std::atomic<bool> reported{false};
  if (!reported.exchange(true)) log_line(std::string("cannot notify systemd: ") + std::strerror(-rc));
  return false;
}

std::mutex status_mutex;
std::string ready_status = "ready";  // guarded by status_mutex

std::optional<SocketAddress> bound_address(int fd) {
  sockaddr_storage storage{};
  socklen_t length = sizeof storage;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&storage), &length) != 0) return std::nullopt;
  char host[INET6_ADDRSTRLEN] = {};
  SocketAddress address;
  if (storage.ss_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&storage);
    ::inet_ntop(AF_INET, &v4->sin_addr, host, sizeof host);
    address.port = ntohs(v4->sin_port);
  } else if (storage.ss_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&storage);
    ::inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof host);
    address.port = ntohs(v6->sin6_port);
  } else {
    return std::nullopt;
  }
  address.host = host;
  return address;
}

// Compares binary addresses, so "::1" and "0:0::1" are the same host.
bool same_address(const SocketAddress& bound, const SocketAddress& configured) {
  if (configured.port == 0 || bound.port != configured.port) return false;
  const std::string host = configured.host == "localhost" ? std::string("127.0.0.1") : configured.host;
  for (int family : {AF_INET, AF_INET6}) {
    unsigned char want[sizeof(in6_addr)] = {}, have[sizeof(in6_addr)] = {};
    if (::inet_pton(family, host.c_str(), want) == 1 && ::inet_pton(family, bound.host.c_str(), have) == 1) {
      return std::memcmp(want, have, sizeof want) == 0;
    }
  }
  return false;
}

}  // namespace

bool notify_ready(std::string_view status) {
  std::string message = "READY=1\n";
  {
    std::lock_guard<std::mutex> lock(status_mutex);
    if (!status.empty()) ready_status = std::string(status);
    message += field("STATUS", ready_status);
  }
  return send(message);
}

bool notify_reloading() {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  const auto usec = static_cast<unsigned long long>(now.tv_sec) * 1000000ull +
                    static_cast<unsigned long long>(now.tv_nsec) / 1000ull;
  return send("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec) + "\nSTATUS=reloading the configuration");
}

bool notify_stopping() { return send("STOPPING=1\nSTATUS=draining requests in flight"); }

bool notify_status(std::string_view text) { return send(field("STATUS", text)); }

bool notify_watchdog() { return send("WATCHDOG=1"); }

std::optional<std::chrono::milliseconds> watchdog_interval() {
  std::uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return std::nullopt;
  return std::max(std::chrono::milliseconds(1),
                  std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::microseconds(usec)));
}

std::vector<InheritedSocket> inherited_listen_fds() {
  char** names = nullptr;
  // unset_environment=1: LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES are consumed here. The fds
  // get FD_CLOEXEC.
  const int count = sd_listen_fds_with_names(1, &names);
  std::vector<InheritedSocket> sockets;
  for (int i = 0; i < std::max(count, 0); ++i) {
    InheritedSocket socket;
    socket.fd = SD_LISTEN_FDS_START + i;
    socket.name = names && names[i] ? names[i] : "unknown";
    if (sd_is_socket_inet(socket.fd, AF_UNSPEC, SOCK_STREAM, -1, 0) > 0) {
      if (auto address = bound_address(socket.fd)) socket.address = address->text();
    }
    sockets.push_back(std::move(socket));
  }
  if (names) {
    for (char** name = names; *name; ++name) std::free(*name);
    std::free(names);
  }
  return sockets;
}

std::optional<InheritedSocket> take_inherited_socket(std::vector<InheritedSocket>& sockets,
                                                     const SocketAddress& address) {
  for (auto it = sockets.begin(); it != sockets.end(); ++it) {
    if (sd_is_socket_inet(it->fd, AF_UNSPEC, SOCK_STREAM, -1, 0) <= 0) continue;
    std::optional<SocketAddress> bound = bound_address(it->fd);
    if (!bound || !same_address(*bound, address)) continue;
    InheritedSocket taken = std::move(*it);
    sockets.erase(it);
    return taken;
  }
  return std::nullopt;
}

}  // namespace arbiter::systemd
