#include "proxy/net/server.h"

#include "proxy/control/lock_endpoints.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <string>

#include "proxy/control/lock_endpoints.h"
#include "proxy/observe/log.h"
#include "proxy/observe/metrics.h"
#include "proxy/net/systemd.h"
#include "proxy/net/worker.h"

namespace arbiter {

namespace {

// Binds and listens on a non-blocking TCP socket, without SO_REUSEPORT: an address that
// another process holds (another Arbiter, or any program, whatever its options) fails here with
// EADDRINUSE instead of silently sharing the port. Listening at once closes the window in which a
// second process could bind it too (SO_REUSEADDR allows that until one of them listens).
// `bound_port` in: the configured port; out: the one bound (port 0: the kernel's choice).
// Returns the fd, or -1 with `error` set.
int bind_socket(const SocketAddress& address, std::uint16_t& bound_port, std::string& error) {
  std::string host = address.host == "localhost" ? std::string("127.0.0.1") : address.host;
  sockaddr_storage storage{};
  socklen_t length = 0;
  if (uv_ip4_addr(host.c_str(), bound_port, reinterpret_cast<sockaddr_in*>(&storage)) == 0) {
    length = sizeof(sockaddr_in);
  } else if (uv_ip6_addr(host.c_str(), bound_port, reinterpret_cast<sockaddr_in6*>(&storage)) == 0) {
    length = sizeof(sockaddr_in6);
  } else {
    error = "not a numeric address: " + address.host;
    return -1;
  }
  int fd = ::socket(storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    error = std::strerror(errno);
    return -1;
  }
  int on = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);  // connections in TIME_WAIT do not block a restart
  if (::bind(fd, reinterpret_cast<sockaddr*>(&storage), length) != 0 || ::listen(fd, Worker::kListenBacklog) != 0) {
    const int bind_error = errno;
    error = std::strerror(bind_error);
    if (bind_error == EADDRINUSE) error += " (another process is listening on it)";
    ::close(fd);
    return -1;
  }
  sockaddr_storage bound{};
  socklen_t bound_length = sizeof bound;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &bound_length);
  bound_port = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                                 : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  return fd;
}

std::string with_port(const SocketAddress& address, std::uint16_t port) {
  SocketAddress copy = address;
  copy.port = port;
  return copy.text();
}

// One listening socket per address, bound by Arbiter or passed by systemd, and every worker
// accepts on a dup() of it (each is woken for a connection, one wins the accept), as nginx's
// workers share theirs. Not SO_REUSEPORT: that would let a second process of the same user join
// the port and take part of the traffic with its own ETags and buckets. The last worker gets
// `fd` itself. Returns -1 with `error` set if no descriptor is left.
int share_listening_socket(int fd, bool last_worker, std::string& error) {
  if (last_worker) return fd;
  int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) error = std::strerror(errno);
  return copy;
}

std::string from_systemd(const std::optional<systemd::InheritedSocket>& socket) {
  return socket ? " (socket from systemd: " + socket->name + ")" : std::string();
}

}  // namespace

Server::Server(Config config) : runtime_(std::make_shared<const Runtime>(std::move(config), state_)) {}

Server::~Server() = default;

bool Server::admit_connection() {
  return open_connections_.fetch_add(1) < runtime()->config().server.max_connections;
}

void Server::release_connection() { open_connections_.fetch_sub(1); }

bool Server::open_access_log(const LogConfig& config, std::string_view why) {
  if (!config.access || config.access_path.empty()) {
    access_log_target_.set(AccessLogFile::standard_output());
    return true;
  }
  std::string error;
  std::shared_ptr<const AccessLogFile> file = AccessLogFile::open(config.access_path, error);
  if (file == nullptr) {
    std::shared_ptr<const AccessLogFile> previous = access_log_target_.get();
    log_line("cannot " + std::string(why) + " the access log " + config.access_path + ": " + error +
             (previous->path().empty() ? std::string()
                                       : "; still writing to the file opened before (" + previous->path() + ")"));
    return false;
  }
  access_log_target_.set(std::move(file));
  return true;
}

int Server::run() {
  const Config& config = runtime_->config();
  if (!open_access_log(config.log, "open")) return 1;
  unsigned worker_count = std::max(1u, config.server.workers);
  for (unsigned i = 0; i < worker_count; ++i) workers_.push_back(std::make_unique<Worker>(*this));

  // Sockets passed by systemd (arbiter.socket) stand in for binding the addresses they match.
  std::vector<systemd::InheritedSocket> inherited = systemd::inherited_listen_fds();
  std::vector<std::string> announcements;
  for (const SocketAddress& address : config.server.listen) {
    std::uint16_t port = address.port;
    std::optional<systemd::InheritedSocket> socket = systemd::take_inherited_socket(inherited, address);
    std::string error;
    int listening = socket ? socket->fd : bind_socket(address, port, error);
    for (unsigned i = 0; i < worker_count && listening >= 0; ++i) {
      int fd = share_listening_socket(listening, i + 1 == worker_count, error);
      if (fd < 0) {
        ::close(listening);
        listening = -1;
        break;
      }
      workers_[i]->add_listener(fd, false);
    }
    if (listening < 0) {
      log_line("cannot listen on " + address.text() + ": " + error);
      return 1;
    }
    announcements.push_back("listening on " + with_port(address, port) + from_systemd(socket));
  }
  if (config.admin.listen) {
    std::uint16_t port = config.admin.listen->port;
    std::string error;
    std::optional<systemd::InheritedSocket> socket = systemd::take_inherited_socket(inherited, *config.admin.listen);
    int fd = socket ? socket->fd : bind_socket(*config.admin.listen, port, error);
    if (fd < 0) {
      log_line("cannot listen on " + config.admin.listen->text() + " (admin): " + error);
      return 1;
    }
    workers_[0]->add_listener(fd, true);
    announcements.push_back("admin listening on " + with_port(*config.admin.listen, port) + from_systemd(socket));
  }
  for (const systemd::InheritedSocket& socket : inherited) {
    log_line("socket from systemd (" + socket.name + (socket.address.empty() ? "" : " on " + socket.address) +
             ") matches no listen address in " + config.file + "; closing it");
    ::close(socket.fd);
  }

  uv_loop_init(&loop_);
  uv_signal_init(&loop_, &sigterm_);
  uv_signal_init(&loop_, &sigint_);
  uv_signal_init(&loop_, &sighup_);
  uv_signal_init(&loop_, &sigusr1_);
  sigterm_.data = sigint_.data = sighup_.data = sigusr1_.data = this;
  uv_signal_start(&sigterm_, on_signal, SIGTERM);
  uv_signal_start(&sigint_, on_signal, SIGINT);
  uv_signal_start(&sighup_, on_signal, SIGHUP);
  uv_signal_start(&sigusr1_, on_signal, SIGUSR1);
  uv_timer_init(&loop_, &drain_timer_);
  uv_timer_init(&loop_, &check_timer_);
  drain_timer_.data = check_timer_.data = this;
  uv_timer_init(&loop_, &watchdog_timer_);
  uv_timer_init(&loop_, &lock_expiry_timer_);
  lock_expiry_timer_.data = this;
  uv_timer_start(&lock_expiry_timer_, on_lock_expiry, kLockExpiryPeriodMs, kLockExpiryPeriodMs);

  workers_running_ = worker_count;
  for (auto& worker : workers_) worker->start();
  for (const std::string& line : announcements) log_line(line);
  log_line("started " + std::to_string(worker_count) + " worker(s) with " + config.file);
  std::string status;
  for (const std::string& line : announcements) status += line + "; ";
  systemd::notify_ready(status + std::to_string(worker_count) + " worker(s)");
  // Pinged from the main loop, which also runs signals and the drain: a wedged main loop stops
  // the pings and systemd restarts Arbiter.
  if (auto interval = systemd::watchdog_interval()) {
    auto period = static_cast<std::uint64_t>(std::max<std::int64_t>(1, interval->count() / 2));
    uv_timer_start(&watchdog_timer_, [](uv_timer_t*) { systemd::notify_watchdog(); }, period, period);
  }

  uv_run(&loop_, UV_RUN_DEFAULT);
  for (auto& worker : workers_) worker->join();
  uv_close(reinterpret_cast<uv_handle_t*>(&sigterm_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&sigint_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&sighup_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&sigusr1_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&drain_timer_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&check_timer_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&watchdog_timer_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&lock_expiry_timer_), nullptr);
  uv_run(&loop_, UV_RUN_DEFAULT);
  uv_loop_close(&loop_);
  workers_.clear();
  log_line("stopped");
  return 0;
}

void Server::on_signal(uv_signal_t* signal, int signum) {
  auto* self = static_cast<Server*>(signal->data);
  if (signum == SIGHUP) {
    log_line("received SIGHUP: reloading " + self->runtime()->config().file);
    self->reload();
    return;
  }
  if (signum == SIGUSR1) {
    // Under the reload lock: a reload changing [log] access must not cross a reopen.
    std::lock_guard<std::mutex> lock(self->reload_mutex_);
    const LogConfig& log = self->runtime()->config().log;
    if (!log.access || log.access_path.empty()) {
      log_line("received SIGUSR1: the access log is not written to a file; nothing to reopen");
    } else if (self->open_access_log(log, "reopen")) {
      log_line("received SIGUSR1: reopened the access log " + log.access_path);
    }
    return;
  }
  if (self->shutting_down_) {
    log_line("second signal: closing all connections now");
    for (auto& worker : self->workers_) worker->request_shutdown(true);
    return;
  }
  log_line(std::string("received ") + (signum == SIGTERM ? "SIGTERM" : "SIGINT") +
           ": draining requests in flight");
  self->begin_shutdown();
}

namespace {

// What a reload cannot change without a restart: the sockets and threads already running.
std::vector<std::string> listener_changes(const Config& running, const Config& next) {
  std::vector<std::string> changes;
  auto addresses = [](const std::vector<SocketAddress>& list) {
    std::string text;
    for (const SocketAddress& address : list) text += (text.empty() ? "" : ", ") + address.text();
    return text;
  };
  if (addresses(running.server.listen) != addresses(next.server.listen)) {
    changes.push_back("server.listen (" + addresses(running.server.listen) + " -> " +
                      addresses(next.server.listen) + ")");
  }
  auto admin = [](const Config& c) { return c.admin.listen ? c.admin.listen->text() : std::string("none"); };
  if (admin(running) != admin(next)) changes.push_back("admin.listen (" + admin(running) + " -> " + admin(next) + ")");
  if (running.server.workers != next.server.workers) {
    changes.push_back("server.workers (" + std::to_string(running.server.workers) + " -> " +
                      std::to_string(next.server.workers) + ")");
  }
  return changes;
}

}  // namespace

ReloadOutcome Server::reload() {
  std::lock_guard<std::mutex> lock(reload_mutex_);
  systemd::notify_reloading();
  ReloadOutcome outcome = reload_locked();
  (outcome.applied ? process_metrics().reloads_succeeded : process_metrics().reloads_failed)
      .fetch_add(1, std::memory_order_relaxed);
  systemd::notify_ready();  // applied or refused, the service is serving again
  return outcome;
}

ReloadOutcome Server::reload_locked() {
  ReloadOutcome outcome;
  std::shared_ptr<const Runtime> running = runtime();
  const std::string& file = running->config().file;
  Config next;
  try {
    next = load_config_file(file, running->config().policy_kinds);  // the kinds it was started with
  } catch (const ConfigError& error) {
    outcome.errors = error.diagnostics();
    for (const ConfigDiagnostic& diagnostic : outcome.errors) log_line("reload refused: " + diagnostic.text());
    log_line("reload refused: still serving with the previous configuration");
    return outcome;
  }
  for (const std::string& change : listener_changes(running->config(), next)) {
    outcome.notes.push_back(change + " needs a restart; the running listeners are kept");
    log_line("reload: " + outcome.notes.back());
  }
  const LogConfig& running_log = running->config().log;
  if (next.log.access != running_log.access || next.log.access_path != running_log.access_path) {
    if (!open_access_log(next.log, "open")) {
      outcome.notes.push_back("log.access: cannot open " + next.log.access_path + "; the access log keeps going where it went");
      // What is in force is the running target, so a later SIGUSR1 reopens that one.
      next.log.access = running_log.access;
      next.log.access_path = running_log.access_path;
    }
  }
  auto replacement = std::make_shared<const Runtime>(std::move(next), state_);
  std::atomic_store(&runtime_, std::shared_ptr<const Runtime>(replacement));
  for (auto& worker : workers_) worker->runtime_changed();
  outcome.applied = true;
  log_line("reloaded " + file + ": " + std::to_string(replacement->route_count()) + " route(s)");
  return outcome;
}

void Server::begin_shutdown() {
  shutting_down_ = true;
  systemd::notify_stopping();
  for (auto& worker : workers_) worker->request_shutdown(false);
  auto drain = static_cast<std::uint64_t>(runtime()->config().server.drain_timeout.count());
  uv_timer_start(&drain_timer_, on_drain_timeout, drain, 0);
  uv_timer_start(&check_timer_, on_check_workers, 10, 10);
}

void Server::on_drain_timeout(uv_timer_t* timer) {
  auto* self = static_cast<Server*>(timer->data);
  log_line("drain_timeout reached: closing remaining connections");
  for (auto& worker : self->workers_) worker->request_shutdown(true);
}

void Server::on_lock_expiry(uv_timer_t* timer) {
  auto* self = static_cast<Server*>(timer->data);
  auto publish = [self](StoreResult<std::vector<LockView>>&& expired) {
    if (!expired.ok()) return;
    for (const LockView& lock : expired.value) publish_lock_ended(*self->conflict_feed_, kFeedLockExpired, lock, "");
  };
  // A store that answers later is asked again at the next tick; this one's answer is dropped.
  StoreCall pending = self->lock_store_->take_expired(MonotonicClock::now(), Completion<std::vector<LockView>>(publish));
}

void Server::on_check_workers(uv_timer_t* timer) {
  auto* self = static_cast<Server*>(timer->data);
  if (self->workers_running_.load() == 0) uv_stop(&self->loop_);
}

}  // namespace arbiter
