#pragma once
// The process: binds the listening sockets, runs the workers, and turns signals into
// shutdown. SIGTERM/SIGINT: stop accepting, let requests in flight finish within
// drain_timeout, exit 0.

#include <atomic>
#include <memory>
#include <vector>

#include <uv.h>

#include "proxy/runtime.h"

namespace arbiter {

class Worker;

class Server {
 public:
  explicit Server(std::shared_ptr<const Runtime> runtime);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Blocks until shut down. Returns the process exit code.
  int run();

  std::shared_ptr<const Runtime> runtime() const { return std::atomic_load(&runtime_); }

  // max_connections accounting across all workers.
  bool admit_connection();
  void release_connection();

 private:
  static void on_signal(uv_signal_t* signal, int signum);
  static void on_drain_timeout(uv_timer_t* timer);
  static void on_check_workers(uv_timer_t* timer);
  void begin_shutdown();

  std::shared_ptr<const Runtime> runtime_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::atomic<std::size_t> open_connections_{0};
  std::atomic<unsigned> workers_running_{0};
  uv_loop_t loop_{};
  uv_signal_t sigterm_{}, sigint_{};
  uv_timer_t drain_timer_{};
  uv_timer_t check_timer_{};
  bool shutting_down_ = false;

  friend class Worker;
};

}  // namespace arbiter
