#pragma once
// Webhooks ([[control.webhook]], issue #16): every event the conflict feed publishes that a
// target's `events` names is POSTed to it as JSON (feed_event_json), signed with the target's
// secret, retried with backoff for `max_retry`, from a bounded queue per target.
//
// One WebhookSender per process, owned by the Server. It runs on a thread of its own with a uv
// loop of its own: connecting to a dead target, waiting for a silent one, backing off and
// retrying never touch a worker's loop. The only thing a worker (or any publisher) does for it
// is the feed listener's uv_async_send.
//
// A delivery (one HTTP/1.1 request on a connection of its own, `Connection: close`):
//   POST <path> HTTP/1.1
//   Host: <host:port>
//   User-Agent: arbiter/<version>
//   Content-Type: application/json
//   Arbiter-Event: <type>
//   Arbiter-Delivery: <event id>            (the same on every retry of that event)
//   Arbiter-Signature: sha256=<hex>         (HMAC-SHA256(secret, body); absent without a secret)
// 2xx delivers it; any other status, a connect error or no answer head within `timeout` is a
// failed attempt. Per target one delivery at a time, in the feed's order.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <uv.h>

#include "policies/store/conflict_feed.h"
#include "proxy/config/control_config.h"
#include "proxy/observe/metrics.h"

namespace arbiter {

// ---- The parts without I/O ----

// A target's url: http://host[:port][/path] (no TLS, no user info). host is a name or a numeric
// address (IPv6 in brackets).
struct WebhookUrl {
  std::string host;         // without brackets
  std::uint16_t port = 80;
  std::string target = "/";  // origin-form: the path and query
  std::string authority;    // the Host field: host[:port] as written
};
// nullopt with `error` set when `url` is not one.
std::optional<WebhookUrl> parse_webhook_url(std::string_view url, std::string& error);

// "sha256=" and the lower-case hex of HMAC-SHA256(key = secret, message = body).
std::string webhook_signature(std::string_view secret, std::string_view body);

// The wait before the next attempt after `failures` failed attempts (1: after the first):
// base * 2^(failures-1), at most cap, then spread over [d/2, d] by `jitter` in [0, 1) so that
// targets failing together do not retry together ("equal jitter").
struct WebhookBackoff {
  Duration base = std::chrono::seconds(1);
  Duration cap = std::chrono::seconds(60);
  Duration delay(unsigned failures, double jitter) const;
};

// An event waiting to be sent, shared by every target's queue. Rendered when a delivery first
// needs it, so that events a full queue drops are never rendered. The sender's thread only.
struct WebhookPayload {
  FeedEvent event;                    // as read from the feed (without the refused body's bytes)
  mutable std::string rendered_body;  // "" until body() ran
  // feed_event_json(event).dump()
  const std::string& body() const;
};
using WebhookPayloadRef = std::shared_ptr<const WebhookPayload>;

// The events waiting for one target, oldest first. Bounded: a push into a full queue drops the
// oldest waiting event first and counts it. Not thread-safe (the sender's thread owns it).
class WebhookQueue {
 public:
  explicit WebhookQueue(std::size_t capacity) : capacity_(capacity < 1 ? 1 : capacity) {}
  // Returns how many events were dropped to make room (0 or 1).
  std::size_t push(WebhookPayloadRef payload);
  // The oldest waiting event, taken out; null when empty.
  WebhookPayloadRef pop();
  // A smaller capacity drops the oldest beyond it at once (counted); returns how many.
  std::size_t set_capacity(std::size_t capacity);
  std::size_t size() const noexcept { return events_.size(); }
  bool empty() const noexcept { return events_.empty(); }
  std::uint64_t dropped() const noexcept { return dropped_; }

 private:
  std::size_t capacity_;
  std::deque<WebhookPayloadRef> events_;
  std::uint64_t dropped_ = 0;
};

// One target's counters since it was configured (a reload that keeps its url and secret keeps
// them).
struct WebhookTargetStats {
  std::string url;
  std::uint64_t delivered = 0;  // answered 2xx
  std::uint64_t failed = 0;     // given up after max_retry
  std::uint64_t dropped = 0;    // pushed out of a full queue
  std::uint64_t retries = 0;    // attempts after an event's first
  std::uint64_t queued = 0;     // waiting now, the one being delivered included
};

// arbiter_webhook_{delivered,failed,dropped,retries}_total and arbiter_webhook_queued, labelled
// url, appended to `families`.
void add_webhook_metric_families(const std::vector<WebhookTargetStats>& stats, std::vector<MetricFamily>& families);

// ---- The sender ----

struct WebhookSenderOptions {
  WebhookBackoff backoff;
  // Events read from the feed at once; more are read after them at once.
  std::size_t read_batch = 256;
};

class WebhookTarget;

class WebhookSender {
 public:
  // `feed` is watched from start() to stop().
  explicit WebhookSender(std::shared_ptr<ConflictFeed> feed, WebhookSenderOptions options = {});
  ~WebhookSender();  // stop()
  WebhookSender(const WebhookSender&) = delete;
  WebhookSender& operator=(const WebhookSender&) = delete;

  // Starts the thread with `targets` (from the newest event published: earlier ones are not
  // sent) and adds its metrics to every /metrics scrape. Once.
  void start(std::vector<WebhookConfig> targets);
  // Any thread (a reload), but not while stop() runs: the targets from now on. A target whose url and secret are unchanged
  // keeps its queue, the delivery in progress and its counters, and takes the new events,
  // max_retry, queue and timeout; a new one gets the events published from now on; a removed
  // one is dropped with what it held. Before start(): replaces start()'s targets.
  void reconfigure(std::vector<WebhookConfig> targets);
  // Any thread but the sender's: closes every connection and timer without waiting for retries
  // or answers, and joins the thread. Idempotent.
  void stop();

  // Any thread: the current targets' counters, in configuration order.
  std::vector<WebhookTargetStats> stats() const;

 private:
  static void on_wake(uv_async_t* async);
  void wake();             // on the sender's thread: apply a new config, read what was published
  void apply(std::vector<WebhookConfig> configs);
  void read_feed();
  void on_feed_page(StoreResult<FeedPage>&& result);
  void close_all();

  std::shared_ptr<ConflictFeed> feed_;
  WebhookSenderOptions options_;
  std::thread thread_;
  bool started_ = false;  // start() and stop() are called by one owner, not concurrently

  // Shared with other threads.
  mutable std::mutex mutex_;
  std::optional<std::vector<WebhookConfig>> pending_;  // guarded by mutex_: reconfigure() for the loop to apply
  struct Counted;                                       // a target's url and its live counters
  std::vector<Counted> counted_;                        // guarded by mutex_: the targets, in order
  std::atomic<bool> stopping_{false};
  std::uint64_t metric_source_ = 0;

  // The sender's thread only (and start() before the thread runs).
  uv_loop_t loop_{};
  uv_async_t wake_{};  // the feed's listener, reconfigure() and stop() send it
  FeedWatchHandle watch_;
  std::vector<WebhookTarget*> targets_;  // each freed in its timer's close callback
  std::uint64_t last_id_ = 0;            // the newest event read from the feed
  StoreCall read_call_;                  // a read that completes later; null when none
  bool read_in_flight_ = false;
  std::minstd_rand jitter_random_{std::random_device{}()};

  friend class WebhookTarget;
};

}  // namespace arbiter
