#pragma once
// Talking to systemd (libsystemd's sd-daemon): readiness and state notifications for
// Type=notify units, watchdog pings, and sockets passed by socket activation (arbiter.socket).
// Everything here is a no-op when Arbiter was not started that way: without $NOTIFY_SOCKET the
// notify_* functions send nothing, without $WATCHDOG_USEC there is no watchdog, without
// $LISTEN_FDS/$LISTEN_PID there are no inherited sockets. All functions are thread-safe.

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/config/config.h"

namespace arbiter::systemd {

// Each notify_* returns true if a message was delivered, false if there is no $NOTIFY_SOCKET
// or it could not be sent (which is only logged: a service must run without a supervisor).

// "READY=1" and "STATUS=<status>": every listener accepts. An empty `status` repeats the last
// one given, so the READY=1 that ends a reload restores the running state's description.
bool notify_ready(std::string_view status = {});
// "RELOADING=1" plus "MONOTONIC_USEC=<now>", which systemd >= 253 requires for
// Type=notify-reload (older versions ignore it). Follow with notify_ready() once the reload
// is done, whether it applied or was refused.
bool notify_reloading();
// "STOPPING=1": shutdown (the drain) has begun.
bool notify_stopping();
// "STATUS=<text>": the one-line state `systemctl status` shows.
bool notify_status(std::string_view text);
// "WATCHDOG=1".
bool notify_watchdog();

// WatchdogSec= of the unit ($WATCHDOG_USEC, for this process if $WATCHDOG_PID is set);
// nullopt when there is no watchdog. Ping with notify_watchdog() at half this interval.
std::optional<std::chrono::milliseconds> watchdog_interval();

// A listening socket passed by systemd, owned by whoever holds this (close `fd` when unused).
struct InheritedSocket {
  int fd = -1;
  std::string name;     // FileDescriptorName= of the socket unit ("arbiter.socket" by default)
  std::string address;  // where it is bound, e.g. "127.0.0.1:8080" (empty if not TCP/IP)
};

// The sockets of $LISTEN_FDS (fds 3, 4, ...) when $LISTEN_PID is this process; empty otherwise.
// Takes them: the variables are removed, so a second call returns nothing and no child
// process could mistake the sockets for its own.
std::vector<InheritedSocket> inherited_listen_fds();

// Removes from `sockets` and returns the stream socket bound to exactly `address` (the same
// IP and port; "localhost" is 127.0.0.1), or nullopt if none is. A port 0 address matches
// nothing: it asks the kernel for a port, which no socket made in advance can answer.
std::optional<InheritedSocket> take_inherited_socket(std::vector<InheritedSocket>& sockets,
                                                     const SocketAddress& address);

}  // namespace arbiter::systemd
