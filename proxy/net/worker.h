#pragma once
// One event-loop thread. Workers share nothing on the data path: each has its own loop,
// its own handles on the listening sockets (dups of the one socket per address), its own upstream pools and
// read buffer. Cross-thread requests (shutdown) arrive through a uv_async_t.

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <uv.h>

#include "proxy/control/admin_endpoints.h"
#include "proxy/control/handler_registry.h"
#include "proxy/observe/log.h"
#include "proxy/exchange/runtime.h"
#include "proxy/net/feed_subscribers.h"
#include "proxy/net/upstream.h"

namespace arbiter {

class ClientConnection;
class Server;
class Worker;

// Lets a policy wake a parked exchange from any thread: the exchange's worker picks the wake
// up on its own loop. Detached when the exchange ends, after which waking does nothing.
class ExchangeWaker final : public Waker, public std::enable_shared_from_this<ExchangeWaker> {
 public:
  ExchangeWaker(Worker& worker, ClientConnection* connection) : worker_(worker), connection_(connection) {}
  void wake() override;
  void detach() noexcept { connection_.store(nullptr); }

 private:
  friend class Worker;
  Worker& worker_;
  std::atomic<ClientConnection*> connection_;
  std::atomic<bool> queued_{false};
};

class Worker final : private AdminServices {
 public:
  // The listen(2) backlog of every listening socket (the Server's bind and the workers' listen).
  static constexpr int kListenBacklog = 1024;

  explicit Worker(Server& server);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Takes ownership of listening socket fds (already bound); `admin` marks the operator port.
  void add_listener(int fd, bool admin);
  void start();
  void join();

  // Thread-safe: stop accepting, finish in-flight requests, close idle connections, and let
  // the thread end once nothing is left. force=true closes everything at once.
  void request_shutdown(bool force);
  // Thread-safe: the server has a new Runtime; new requests on this worker use it from the
  // next loop iteration on.
  void runtime_changed();

  // ---- for the connections of this worker (loop thread only) ----
  uv_loop_t* loop() noexcept { return &loop_; }
  Server& server() noexcept { return server_; }
  const std::shared_ptr<const Runtime>& runtime() const noexcept { return runtime_; }
  // The pool of the upstream of that name in the current Runtime; for a request that began
  // under `runtime` before a reload removed that upstream, a retired one (made again from
  // `runtime`'s configuration if the old one was freed meanwhile). The reference is valid until
  // the loop next runs its prepare phase, unless a connection of the pool or a hold() keeps it.
  UpstreamPool& pool(const Runtime& runtime, std::string_view upstream_name);
  // Loop thread: a retired pool's last user went away; it is freed before the next poll.
  void retired_pool_unused() noexcept { retired_pool_unused_ = true; }
  std::string& read_buffer() noexcept { return read_buffer_; }
  AccessLog& access_log() noexcept { return access_log_; }
  bool draining() const noexcept { return draining_; }
  // 32 hex digits of a fresh random 128-bit id, written into `out`.
  void next_request_id(std::string& out);
  void connection_closed(ClientConnection* connection);
  // The local handlers of the admin listener (at the root) and of [server] control_prefix on
  // the client listeners; built with the worker, used on its loop only.
  const HandlerRegistry& admin_handlers() const noexcept { return admin_handlers_; }
  const HandlerRegistry& control_handlers() const noexcept { return control_handlers_; }
  // Any thread.
  void post_wake(std::shared_ptr<ExchangeWaker> waker);

 private:
  struct Listener {
    uv_tcp_t tcp{};
    Worker* worker = nullptr;
    bool admin = false;
  };

  // AdminServices, for the admin endpoints (on this worker's loop)
  std::shared_ptr<const Runtime> current_runtime() const override;
  bool shutting_down() const override { return draining_; }
  ReloadOutcome reload_configuration() override;

  void run();
  void adopt_runtime();
  // Retires `pool` and keeps it until free_unused_pools() finds it unused; counted in
  // ProcessMetrics::retired_upstream_pools until then.
  UpstreamPool& keep_retired(std::unique_ptr<UpstreamPool> pool);
  void free_unused_pools();
  void begin_drain(bool force);
  void maybe_finish();
  static void on_connection(uv_stream_t* server, int status);
  static void on_async(uv_async_t* async);
  static void on_prepare(uv_prepare_t* prepare);

  Server& server_;
  uv_loop_t loop_{};
  uv_async_t wakeup_{};
  uv_prepare_t prepare_{};      // before each poll: frees retired pools no longer in use
  uv_timer_t flush_timer_{};    // writes the access log's buffer every AccessLog::kFlushIntervalMs
  std::thread thread_;
  std::vector<std::unique_ptr<Listener>> listeners_;
  std::shared_ptr<const Runtime> runtime_;
  std::vector<std::unique_ptr<UpstreamPool>> pools_;
  // Pools of upstreams a reload changed or removed: kept while in use (UpstreamPool::in_use),
  // freed by free_unused_pools().
  std::vector<std::unique_ptr<UpstreamPool>> retired_pools_;
  bool retired_pool_unused_ = false;
  std::atomic<bool> runtime_changed_{false};
  std::vector<ClientConnection*> connections_;
  std::string read_buffer_;
  AccessLog access_log_;
  std::mt19937_64 random_;
  std::atomic<int> shutdown_request_{0};  // 0 none, 1 drain, 2 force
  std::mutex wake_mutex_;
  std::vector<std::shared_ptr<ExchangeWaker>> woken_;  // guarded by wake_mutex_
  bool draining_ = false;
  bool finished_ = false;
  // The conflict feed's SSE streams on this worker; closed in ~Worker before the loop's last run,
  // freed after the registries' handlers that refer to it.
  std::unique_ptr<FeedSubscribers> feed_subscribers_;
  HandlerRegistry admin_handlers_{"admin"};
  HandlerRegistry control_handlers_{"control"};
};

}  // namespace arbiter
