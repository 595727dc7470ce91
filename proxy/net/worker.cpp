#include "proxy/net/worker.h"

#include <algorithm>
#include <cstdlib>
#include <cstdio>

#include "proxy/control/conflict_endpoints.h"
#include "proxy/control/control_endpoints.h"
#include "proxy/control/history_endpoints.h"
#include "proxy/control/resolve_endpoint.h"
#include "proxy/control/lock_endpoints.h"
#include "proxy/control/ui_endpoints.h"
#include "proxy/net/client_connection.h"
#include "proxy/observe/metrics.h"
#include "proxy/net/server.h"

namespace arbiter {

namespace {
constexpr std::size_t kReadBufferSize = 64u << 10;
}

Worker::Worker(Server& server)
    : server_(server),
      runtime_(server.runtime()),
      read_buffer_(kReadBufferSize, '\0'),
      access_log_(runtime_->config().log.access, server.access_log_target()),
      random_(std::random_device{}()) {
  uv_loop_init(&loop_);
  uv_async_init(&loop_, &wakeup_, on_async);
  wakeup_.data = this;
  uv_prepare_init(&loop_, &prepare_);
  prepare_.data = this;
  uv_prepare_start(&prepare_, on_prepare);
  uv_timer_init(&loop_, &flush_timer_);
  flush_timer_.data = this;
  uv_timer_start(
      &flush_timer_, [](uv_timer_t* timer) { static_cast<Worker*>(timer->data)->access_log_.flush(); },
      AccessLog::kFlushIntervalMs, AccessLog::kFlushIntervalMs);
  // None keeps the loop alive: it ends when the listeners and connections are gone.
  uv_unref(reinterpret_cast<uv_handle_t*>(&wakeup_));
  uv_unref(reinterpret_cast<uv_handle_t*>(&prepare_));
  uv_unref(reinterpret_cast<uv_handle_t*>(&flush_timer_));
  feed_subscribers_ = std::make_unique<FeedSubscribers>(
      loop_, server.conflict_feed(), [this] { return feed_stream_settings(runtime_->config().control); },
      feed_subscriber_counters());
  for (const UpstreamConfig& upstream : runtime_->config().upstreams) {
    pools_.push_back(std::make_unique<UpstreamPool>(*this, upstream));
  }
  add_admin_endpoints(admin_handlers_, *this);
  add_control_endpoints(control_handlers_);
  add_lock_endpoints(control_handlers_, admin_handlers_, server.lock_store(), server.conflict_feed());
  add_history_endpoints(control_handlers_, server.history_store());
  add_conflict_endpoints(control_handlers_, server.conflict_feed(), server.history_store(), *feed_subscribers_);
  add_resolve_endpoint(control_handlers_, server.conflict_feed());
  add_ui_endpoints(control_handlers_, *this);
  for (const HandlerSetup& setup : server.handler_setups()) setup(admin_handlers_, control_handlers_);
}

std::shared_ptr<const Runtime> Worker::current_runtime() const { return server_.runtime(); }

ReloadOutcome Worker::reload_configuration() { return server_.reload(); }

Worker::~Worker() {
  // Runs after join(): no other thread touches wakeup_ any more. The pools go after the loop
  // has run the close callbacks of their connections, which let go of them.
  for (auto& pool : pools_) pool->close_idle();
  feed_subscribers_->close();
  uv_close(reinterpret_cast<uv_handle_t*>(&wakeup_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&prepare_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&flush_timer_), nullptr);
  for (auto& listener : listeners_) {
    if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(&listener->tcp))) {
      uv_close(reinterpret_cast<uv_handle_t*>(&listener->tcp), nullptr);
    }
  }
  uv_run(&loop_, UV_RUN_DEFAULT);
  pools_.clear();
  process_metrics().retired_upstream_pools.fetch_sub(retired_pools_.size(), std::memory_order_relaxed);
  retired_pools_.clear();
  uv_loop_close(&loop_);
}

void Worker::add_listener(int fd, bool admin) {
  auto listener = std::make_unique<Listener>();
  listener->worker = this;
  listener->admin = admin;
  uv_tcp_init(&loop_, &listener->tcp);
  listener->tcp.data = listener.get();
  uv_tcp_open(&listener->tcp, fd);
  listeners_.push_back(std::move(listener));
}

void Worker::start() {
  for (auto& listener : listeners_) {
    int rc = uv_listen(reinterpret_cast<uv_stream_t*>(&listener->tcp), kListenBacklog, on_connection);
    if (rc != 0) log_line(std::string("worker cannot listen: ") + uv_strerror(rc));
  }
  thread_ = std::thread([this] { run(); });
}

void Worker::join() {
  if (thread_.joinable()) thread_.join();
}

void Worker::run() {
  uv_run(&loop_, UV_RUN_DEFAULT);
  access_log_.flush();
  server_.workers_running_.fetch_sub(1);
}

void Worker::request_shutdown(bool force) {
  int wanted = force ? 2 : 1;
  int current = shutdown_request_.load();
  while (current < wanted && !shutdown_request_.compare_exchange_weak(current, wanted)) {
  }
  uv_async_send(&wakeup_);
}

void ExchangeWaker::wake() {
  if (!queued_.exchange(true)) worker_.post_wake(shared_from_this());
}

void Worker::post_wake(std::shared_ptr<ExchangeWaker> waker) {
  {
    std::lock_guard<std::mutex> lock(wake_mutex_);
    woken_.push_back(std::move(waker));
  }
  uv_async_send(&wakeup_);
}

void Worker::runtime_changed() {
  runtime_changed_.store(true);
  uv_async_send(&wakeup_);
}

namespace {

bool same_upstream(const UpstreamConfig& a, const UpstreamConfig& b) {
  if (a.servers.size() != b.servers.size()) return false;
  for (std::size_t i = 0; i < a.servers.size(); ++i) {
    if (a.servers[i].text() != b.servers[i].text()) return false;
  }
  return a.connect_timeout == b.connect_timeout && a.response_timeout == b.response_timeout &&
         a.fail_timeout == b.fail_timeout && a.keepalive == b.keepalive;
}

}  // namespace

void Worker::adopt_runtime() {
  runtime_ = server_.runtime();
  access_log_.set_enabled(runtime_->config().log.access);
  std::vector<std::unique_ptr<UpstreamPool>> pools;
  for (const UpstreamConfig& upstream : runtime_->config().upstreams) {
    auto kept = std::find_if(pools_.begin(), pools_.end(), [&](const auto& pool) {
      return pool != nullptr && pool->config().name == upstream.name && same_upstream(pool->config(), upstream);
    });
    if (kept != pools_.end()) {
      pools.push_back(std::move(*kept));
    } else {
      pools.push_back(std::make_unique<UpstreamPool>(*this, upstream));
    }
  }
  for (auto& old : pools_) {
    if (old != nullptr) keep_retired(std::move(old));
  }
  pools_ = std::move(pools);
  free_unused_pools();
}

void Worker::free_unused_pools() {
  retired_pool_unused_ = false;
  std::size_t before = retired_pools_.size();
  std::erase_if(retired_pools_, [](const auto& pool) { return !pool->in_use(); });
  process_metrics().retired_upstream_pools.fetch_sub(before - retired_pools_.size(), std::memory_order_relaxed);
}

UpstreamPool& Worker::pool(const Runtime& runtime, std::string_view upstream_name) {
  for (auto& pool : pools_) {
    if (pool->config().name == upstream_name) return *pool;
  }
  for (auto it = retired_pools_.rbegin(); it != retired_pools_.rend(); ++it) {
    if ((*it)->config().name == upstream_name) return **it;
  }
  // Freed since: a request of an older Runtime retries, or fetches, after its last connection
  // to that upstream closed. A retired pool of its own serves it and is freed after it.
  const auto& upstreams = runtime.config().upstreams;
  auto config = std::find_if(upstreams.begin(), upstreams.end(),
                             [&](const UpstreamConfig& upstream) { return upstream.name == upstream_name; });
  // A Runtime's routes name only its own upstreams (checked when the configuration loads).
  if (config == upstreams.end()) std::abort();
  return keep_retired(std::make_unique<UpstreamPool>(*this, *config));
}

UpstreamPool& Worker::keep_retired(std::unique_ptr<UpstreamPool> pool) {
  pool->retire();
  retired_pools_.push_back(std::move(pool));
  process_metrics().retired_upstream_pools.fetch_add(1, std::memory_order_relaxed);
  return *retired_pools_.back();
}

void Worker::on_async(uv_async_t* async) {
  auto* self = static_cast<Worker*>(async->data);
  if (self->runtime_changed_.exchange(false)) self->adopt_runtime();
  std::vector<std::shared_ptr<ExchangeWaker>> woken;
  {
    std::lock_guard<std::mutex> lock(self->wake_mutex_);
    woken.swap(self->woken_);
  }
  for (const auto& waker : woken) {
    waker->queued_.store(false);
    if (ClientConnection* connection = waker->connection_.load()) connection->on_woken();
  }
  int request = self->shutdown_request_.load();
  if (request > 0) self->begin_drain(request == 2);
}

void Worker::begin_drain(bool force) {
  if (!draining_) {
    draining_ = true;
    for (auto& listener : listeners_) uv_close(reinterpret_cast<uv_handle_t*>(&listener->tcp), nullptr);
  }
  // Copy: closing a connection removes it from connections_ (in its close callback, later,
  // but stay safe against any synchronous path).
  std::vector<ClientConnection*> connections = connections_;
  for (ClientConnection* connection : connections) {
    if (force) {
      connection->close_now();
    } else {
      connection->close_when_idle();
    }
  }
  for (auto& pool : pools_) pool->close_idle();
  access_log_.flush();  // what was logged before the drain, at once (the rest when the loop ends)
  maybe_finish();
}

void Worker::maybe_finish() {
  if (!draining_ || finished_ || !connections_.empty()) return;
  finished_ = true;
  for (auto& pool : pools_) pool->close_idle();
}

void Worker::connection_closed(ClientConnection* connection) {
  auto it = std::find(connections_.begin(), connections_.end(), connection);
  if (it != connections_.end()) {
    *it = connections_.back();
    connections_.pop_back();
  }
  if (!connection->admin()) server_.release_connection();
  maybe_finish();
}

void Worker::on_connection(uv_stream_t* stream, int status) {
  auto* listener = static_cast<Listener*>(stream->data);
  Worker* self = listener->worker;
  if (status < 0 || self->draining_) return;
  auto* connection = new ClientConnection(*self, listener->admin);
  self->connections_.push_back(connection);
  // max_connections counts client connections only (as arbiter_open_connections does): a
  // scraper's keep-alive connection to the admin listener must not take a client's slot. A
  // refused client connection is counted too, until it closes.
  bool admitted = listener->admin || self->server_.admit_connection();
  if (uv_accept(stream, reinterpret_cast<uv_stream_t*>(connection->tcp())) != 0) {
    connection->close_now();
    return;
  }
  connection->start();
  if (!admitted) connection->refuse_overloaded();
}

void Worker::on_prepare(uv_prepare_t* prepare) {
  auto* self = static_cast<Worker*>(prepare->data);
  if (self->retired_pool_unused_) self->free_unused_pools();
}

void Worker::next_request_id(std::string& out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.resize(32);  // the exchange's string keeps its capacity: no allocation per request
  for (int half = 0; half < 2; ++half) {
    std::uint64_t bits = random_();
    for (int i = 0; i < 16; ++i) out[static_cast<std::size_t>(half * 16 + i)] = kHex[(bits >> (60 - 4 * i)) & 15];
  }
}

}  // namespace arbiter
