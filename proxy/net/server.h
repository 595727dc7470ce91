#pragma once
// The process: binds the listening sockets, runs the workers, and turns signals into
// shutdown and reloads. SIGTERM/SIGINT: stop accepting, let requests in flight finish within
// drain_timeout, exit 0. SIGHUP (or POST /reload on the admin listener): re-read the
// configuration; a valid one applies to new requests at once, an invalid one changes nothing.
// SIGUSR1: reopen the access log file (after logrotate renamed it).

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <uv.h>

#include "proxy/control/admin_endpoints.h"
#include "proxy/control/handler_registry.h"
#include "proxy/observe/log.h"
#include "proxy/exchange/runtime.h"

namespace arbiter {

class Worker;

// How often the locks whose lease ran out are looked for and announced (`lock-expired`): an
// expiry is published at most this long after it happened.
inline constexpr std::uint64_t kLockExpiryPeriodMs = 1000;

class Server {
 public:
  // `config` was loaded from config.file, which reloads read again.
  explicit Server(Config config);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Blocks until shut down. Returns the process exit code.
  int run();

  // Before run(): `setup` adds handlers to every worker's registries as the worker is built (a
  // test binary registers test-only handlers so; the product's are in proxy/control/).
  void add_handlers(HandlerSetup setup) { handler_setups_.push_back(std::move(setup)); }
  const std::vector<HandlerSetup>& handler_setups() const noexcept { return handler_setups_; }

  std::shared_ptr<const Runtime> runtime() const { return std::atomic_load(&runtime_); }
  // The process's lock store: made with the RuntimeState and never replaced, so any thread may
  // read it without the reload lock.
  std::shared_ptr<LockStore> lock_store() const { return lock_store_; }
  std::shared_ptr<HistoryStore> history_store() const { return history_store_; }
  std::shared_ptr<ConflictFeed> conflict_feed() const { return conflict_feed_; }

  // Any thread; reloads are serialized. Parses and validates the whole file before anything
  // changes; on success new requests use the new Runtime at once.
  ReloadOutcome reload();

  // Where the workers' access logs write; lives as long as the Server.
  const AccessLogTarget& access_log_target() const noexcept { return access_log_target_; }

  // max_connections accounting across all workers.
  bool admit_connection();
  void release_connection();

 private:
  static void on_signal(uv_signal_t* signal, int signum);
  static void on_drain_timeout(uv_timer_t* timer);
  static void on_check_workers(uv_timer_t* timer);
  // Publishes the locks whose lease ran out as `lock-expired` feed events (LockStore::take_expired).
  static void on_lock_expiry(uv_timer_t* timer);
  void begin_shutdown();
  // Points the access log at `config`'s [log] access: the file opened anew (a reopen), or stdout.
  // On failure logs why (naming the path), keeps the previous destination and returns false.
  bool open_access_log(const LogConfig& config, std::string_view why);
  ReloadOutcome reload_locked();  // reload() under reload_mutex_

  std::mutex reload_mutex_;
  RuntimeState state_;  // guarded by reload_mutex_ (and used by the constructor)
  std::shared_ptr<LockStore> lock_store_ = state_.stores().locks;
  std::shared_ptr<HistoryStore> history_store_ = state_.stores().history;
  std::shared_ptr<ConflictFeed> conflict_feed_ = state_.stores().feed;
  std::shared_ptr<const Runtime> runtime_;  // atomic_load / atomic_store
  AccessLogTarget access_log_target_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<HandlerSetup> handler_setups_;
  std::atomic<std::size_t> open_connections_{0};
  std::atomic<unsigned> workers_running_{0};
  uv_loop_t loop_{};
  uv_signal_t sigterm_{}, sigint_{}, sighup_{}, sigusr1_{};
  uv_timer_t drain_timer_{};
  uv_timer_t check_timer_{};
  uv_timer_t lock_expiry_timer_{};  // every kLockExpiryPeriod
  uv_timer_t watchdog_timer_{};  // WATCHDOG=1 at half of WatchdogSec, when systemd asks for it
  bool shutting_down_ = false;

  friend class Worker;
};

}  // namespace arbiter
