#pragma once
// One worker's Server-Sent Events subscribers of the conflict feed (issue #16): the streams of
// GET {prefix}/conflicts with Accept: text/event-stream on that worker's connections.
//
// Delivery: the hub makes one ConflictFeed::watch() for the worker (not one per subscriber). Its
// listener runs on a publisher's thread and only records the newest id and calls uv_async_send;
// on the worker's loop, each subscriber then reads the ring from the last id it examined
// (ConflictFeed::read, in pages of kFeedPageEvents, filtered) and writes the events as SSE frames.
//
// Back-pressure: the ring is the buffer. A subscriber whose stream refuses a frame (Full) keeps
// that one frame, stops reading and waits for on_stream_writable; it lags by id, it never copies
// events. It is cut off (LocalStream::abort: the client reconnects with Last-Event-ID) when
//   - what waits for it passes [control] max_subscriber_buffer: the stream's buffered bytes plus
//     the refused frame (this bites when the bound is below kMaxStreamBuffered), or
//   - it lags by more than the ring holds ([control] feed_buffer): events it has not got were
//     dropped, so going on would hide the gap (it would get `event: reset` on reconnecting).
// Either way it is counted in FeedSubscriberCounters::cut_off.
//
// Heartbeat: one uv_timer for all the worker's streams writes a comment to each stream every
// [control] heartbeat (none to a stream waiting for room: it has bytes in flight anyway).
//
// Threading and lifetime: loop thread only, except the watch listener (above). Owned by the
// Worker, which calls close() before its loop's last run; the handles are closed there, so the
// object may be freed once the loop has run their close callbacks. The streams end by the
// worker's drain (ExchangeStream::on_drain tells each subscriber on_stream_closed) or by close()
// (finished cleanly). Neither handle keeps the loop alive.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <uv.h>

#include "policies/config_reader.h"
#include "policies/store/conflict_feed.h"
#include "proxy/config/control_config.h"
#include "proxy/control/local_handler.h"
#include "proxy/observe/metrics.h"

namespace arbiter {

// Events a subscriber reads from the ring at a time: a long replay is written page by page, never
// built as one string.
inline constexpr std::size_t kFeedPageEvents = 256;

// What the hub needs of [control], read again at each subscription and heartbeat (a reload may
// change them).
struct FeedStreamSettings {
  Duration heartbeat = std::chrono::seconds(15);
  Duration retry = std::chrono::seconds(3);
  std::size_t max_subscribers = 1000;
  std::size_t max_subscriber_buffer = 1u << 20;
  std::size_t feed_buffer = 10000;  // the ring's capacity: a subscriber lagging more is cut off
};
FeedStreamSettings feed_stream_settings(const ControlConfig& control);

// Counters shared by every worker's hub: `subscribers` is what max_subscribers bounds. Any thread.
struct FeedSubscriberCounters {
  std::atomic<std::size_t> subscribers{0};    // open SSE streams now
  std::atomic<std::uint64_t> events_sent{0};  // event frames written (replays included)
  std::atomic<std::uint64_t> cut_off{0};      // streams closed for lagging past the bounds above
  std::atomic<std::uint64_t> refused{0};      // subscriptions answered 503: max_subscribers reached
};
// The process's counters (what the workers' hubs use and /metrics shows).
FeedSubscriberCounters& feed_subscriber_counters();
// arbiter_feed_subscribers (gauge), arbiter_feed_events_sent_total,
// arbiter_feed_subscribers_cut_off_total, arbiter_feed_subscribers_refused_total.
std::vector<MetricFamily> feed_subscriber_metric_families(const FeedSubscriberCounters& counters);

// What a subscription asks for.
struct FeedSubscription {
  FeedFilter filter;
  // Replay what the ring holds after this id (with `event: reset` first when it no longer reaches
  // it); nullopt: only events published from now on.
  std::optional<std::uint64_t> last_event_id;
};

class FeedSubscribers {
 public:
  using Settings = std::function<FeedStreamSettings()>;

  // Watches `feed` at once. `settings` is called on the loop thread; `counters` outlives this.
  FeedSubscribers(uv_loop_t& loop, std::shared_ptr<ConflictFeed> feed, Settings settings,
                  FeedSubscriberCounters& counters);
  ~FeedSubscribers();
  FeedSubscribers(const FeedSubscribers&) = delete;
  FeedSubscribers& operator=(const FeedSubscribers&) = delete;

  // Answers `responder`: an SSE stream (Content-Type: text/event-stream, Cache-Control:
  // no-store, X-Accel-Buffering: no) that starts with `retry:`, then the replay, then new events;
  // or 503 (feed-subscribers-full, Retry-After) when the process has max_subscribers streams.
  void subscribe(FeedSubscription subscription, LocalResponder& responder);

  // Ends every stream cleanly, stops watching and closes the handles (before the loop's last
  // run). Later subscriptions are answered 503.
  void close();

  // Streams open on this worker.
  std::size_t size() const noexcept { return subscribers_.size(); }

  // What the async wake-up and the heartbeat timer do, callable by tests.
  void deliver();
  void send_heartbeats();

 private:
  class Subscriber;

  static void on_wakeup(uv_async_t* async);
  static void on_heartbeat(uv_timer_t* timer);
  // on_stream_writable: writes what `subscriber` has not got.
  void resume(Subscriber& subscriber);
  // Writes what `subscriber` has not got, until it is up to date, refused (Full) or ended.
  void pump(Subscriber& subscriber, const FeedStreamSettings& settings);
  // Writes `frame`; on success the subscriber has examined up to `after_written`. False when it
  // can take no more now: the frame was refused and kept (Full), or the subscriber ended.
  bool write_frame(Subscriber& subscriber, std::string frame, std::uint64_t after_written, std::size_t events,
                   const FeedStreamSettings& settings);
  // The SSE frame of `event` as the ring holds it now, made once for all of this worker's
  // subscribers (they read the same new events at each wake-up): kept for the newest
  // kCachedFrames ids seen, by id and whether it is resolved.
  const std::string& frame_of(const FeedEvent& event);
  static constexpr std::size_t kCachedFrames = 1024;
  static constexpr std::size_t kBatchBytes = 16u << 10;  // frames written together, at most
  std::map<std::uint64_t, std::string> frames_;
  // Cuts `subscriber` off (abort, counted) if it lags past the bounds at the top of this file.
  bool cut_off_if_lagging(Subscriber& subscriber, const FeedStreamSettings& settings);
  // Marks it ended; it is destroyed at once, or by the sweep after the loop over subscribers_.
  void end(Subscriber& subscriber);
  void sweep();
  // Calls visit(subscriber) for each one not ended, then sweeps the ended ones.
  template <typename Visit>
  void for_each_subscriber(Visit visit);
  // Runs the heartbeat timer every settings.heartbeat while there are subscribers (0: never).
  void arm_heartbeat(const FeedStreamSettings& settings);

  uv_loop_t& loop_;
  std::shared_ptr<ConflictFeed> feed_;
  Settings settings_;
  FeedSubscriberCounters& counters_;
  uv_async_t wakeup_{};
  uv_timer_t heartbeat_{};
  Duration heartbeat_every_{0};  // the timer's period while it runs; 0: stopped
  FeedWatchHandle watch_;
  std::atomic<std::uint64_t> newest_id_{0};  // set by the watch listener (any thread)
  std::vector<std::unique_ptr<Subscriber>> subscribers_;
  bool delivering_ = false;  // inside a loop over subscribers_ (or a pump): ended ones are swept after it
  bool closed_ = false;
};

}  // namespace arbiter
