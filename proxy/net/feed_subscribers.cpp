#include "proxy/net/feed_subscribers.h"

#include <algorithm>
#include <utility>

#include "proxy/control/feed_protocol.h"

namespace arbiter {

FeedStreamSettings feed_stream_settings(const ControlConfig& control) {
  return FeedStreamSettings{control.heartbeat, control.retry, control.max_subscribers, control.max_subscriber_buffer,
                            std::max<std::size_t>(control.feed.capacity, 1)};
}

FeedSubscriberCounters& feed_subscriber_counters() {
  static FeedSubscriberCounters counters;
  return counters;
}

std::vector<MetricFamily> feed_subscriber_metric_families(const FeedSubscriberCounters& counters) {
  auto family = [](std::string name, std::string help, MetricType type, double value) {
    MetricFamily metric{std::move(name), std::move(help), type, {}};
    metric.add({}, value);
    return metric;
  };
  auto read = [](const auto& counter) { return static_cast<double>(counter.load(std::memory_order_relaxed)); };
  return {family("arbiter_feed_subscribers", "Server-Sent Events streams of the conflict feed open now.",
                 MetricType::Gauge, read(counters.subscribers)),
          family("arbiter_feed_events_sent_total", "Conflict feed events written to SSE streams (replays included).",
                 MetricType::Counter, read(counters.events_sent)),
          family("arbiter_feed_subscribers_cut_off_total",
                 "SSE streams closed for lagging past [control] max_subscriber_buffer or the ring.",
                 MetricType::Counter, read(counters.cut_off)),
          family("arbiter_feed_subscribers_refused_total",
                 "SSE subscriptions answered 503 because [control] max_subscribers streams were open.",
                 MetricType::Counter, read(counters.refused))};
}

// One open stream. Owned by the hub's list; destroyed when it ends.
class FeedSubscribers::Subscriber final : public StreamListener {
 public:
  // Takes over one unit of counters.subscribers, given back when destroyed.
  Subscriber(FeedSubscribers& hub, FeedFilter filter, std::uint64_t after)
      : filter(std::move(filter)), after(after), hub_(hub) {}
  ~Subscriber() { hub_.counters_.subscribers.fetch_sub(1, std::memory_order_relaxed); }
  Subscriber(const Subscriber&) = delete;
  Subscriber& operator=(const Subscriber&) = delete;

  void on_stream_closed() override { hub_.end(*this); }  // may destroy this
  void on_stream_writable() override {
    waiting_for_room = false;
    hub_.resume(*this);  // may destroy this
  }

  const FeedFilter filter;
  std::uint64_t after;           // the last id examined: written, or not matching the filter
  std::string refused;           // frames the stream refused as Full; written first when there is room
  std::uint64_t refused_after = 0;  // `after` once `refused` is written
  std::size_t refused_events = 0;   // events among them
  bool waiting_for_room = false;  // refused as Full: nothing is written until on_stream_writable
  bool ended = false;             // removed at the next sweep
  std::shared_ptr<LocalStream> stream;

 private:
  FeedSubscribers& hub_;
};

FeedSubscribers::FeedSubscribers(uv_loop_t& loop, std::shared_ptr<ConflictFeed> feed, Settings settings,
                                 FeedSubscriberCounters& counters)
    : loop_(loop), feed_(std::move(feed)), settings_(std::move(settings)), counters_(counters) {
  uv_async_init(&loop_, &wakeup_, on_wakeup);
  wakeup_.data = this;
  uv_timer_init(&loop_, &heartbeat_);
  heartbeat_.data = this;
  uv_unref(reinterpret_cast<uv_handle_t*>(&wakeup_));
  uv_unref(reinterpret_cast<uv_handle_t*>(&heartbeat_));
  // The listener runs on a publisher's thread: an atomic and uv_async_send only.
  watch_ = feed_->watch([this](std::uint64_t newest_id) {
    newest_id_.store(newest_id, std::memory_order_relaxed);
    uv_async_send(&wakeup_);
  });
}

FeedSubscribers::~FeedSubscribers() {
  watch_.reset();  // close() did, unless it was never called; the handles are closed by then
}

void FeedSubscribers::close() {
  if (closed_) return;
  closed_ = true;
  watch_.reset();  // the listener is not running and will not run: wakeup_ may close
  for_each_subscriber([](Subscriber& subscriber) {
    subscriber.ended = true;
    subscriber.stream->finish();  // the listener is not called any more
  });
  uv_timer_stop(&heartbeat_);
  uv_close(reinterpret_cast<uv_handle_t*>(&wakeup_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&heartbeat_), nullptr);
}

void FeedSubscribers::subscribe(FeedSubscription subscription, LocalResponder& responder) {
  FeedStreamSettings settings = settings_();
  bool admitted = !closed_ && counters_.subscribers.fetch_add(1, std::memory_order_relaxed) < settings.max_subscribers;
  if (!admitted) {
    if (!closed_) counters_.subscribers.fetch_sub(1, std::memory_order_relaxed);
    counters_.refused.fetch_add(1, std::memory_order_relaxed);
    auto retry_seconds = std::max<long long>(1, (settings.retry.count() + 999) / 1000);
    Problem problem = Problem::make(
        "feed-subscribers-full", 503, "Too many feed subscribers",
        "Arbiter has " + std::to_string(settings.max_subscribers) +
            " conflict feed streams open ([control] max_subscribers). Reconnect later, or poll without "
            "Accept: text/event-stream.");
    responder.reply_problem(problem, HeaderList{{"Retry-After", std::to_string(retry_seconds)}});
    return;
  }
  std::uint64_t after = subscription.last_event_id ? *subscription.last_event_id : feed_->stats().last_id;
  auto owned = std::make_unique<Subscriber>(*this, std::move(subscription.filter), after);
  Subscriber& subscriber = *owned;
  subscriber.stream = responder.start_stream(
      200, HeaderList{{"Content-Type", "text/event-stream"}, {"Cache-Control", "no-store"}, {"X-Accel-Buffering", "no"}},
      subscriber);
  if (subscriber.stream->closed()) return;  // HEAD: the head only
  subscribers_.push_back(std::move(owned));
  arm_heartbeat(settings);
  delivering_ = true;
  if (write_frame(subscriber, sse_retry_frame(static_cast<std::uint64_t>(settings.retry.count())), after, 0,
                  settings)) {
    pump(subscriber, settings);
  }
  delivering_ = false;
  sweep();
}

template <typename Visit>
void FeedSubscribers::for_each_subscriber(Visit visit) {
  delivering_ = true;
  for (std::size_t i = 0; i < subscribers_.size(); ++i) {
    if (!subscribers_[i]->ended) visit(*subscribers_[i]);
  }
  delivering_ = false;
  sweep();
}

void FeedSubscribers::deliver() {
  if (closed_) return;
  FeedStreamSettings settings = settings_();
  for_each_subscriber([&](Subscriber& subscriber) {
    if (subscriber.waiting_for_room) {
      cut_off_if_lagging(subscriber, settings);
    } else {
      pump(subscriber, settings);
    }
  });
}

void FeedSubscribers::send_heartbeats() {
  if (closed_) return;
  FeedStreamSettings settings = settings_();
  for_each_subscriber([&](Subscriber& subscriber) {
    if (subscriber.waiting_for_room) return;
    switch (subscriber.stream->write(sse_heartbeat_frame())) {
      case StreamWrite::Written: break;
      case StreamWrite::Full:  // a comment can be dropped: nothing is kept
        subscriber.waiting_for_room = true;
        cut_off_if_lagging(subscriber, settings);
        break;
      case StreamWrite::Closed: end(subscriber); break;
    }
  });
  arm_heartbeat(settings);
}

void FeedSubscribers::resume(Subscriber& subscriber) {
  if (closed_) return;
  delivering_ = true;
  pump(subscriber, settings_());
  delivering_ = false;
  sweep();
}

bool FeedSubscribers::write_frame(Subscriber& subscriber, std::string frame, std::uint64_t after_written,
                                  std::size_t events, const FeedStreamSettings& settings) {
  switch (subscriber.stream->write(frame)) {
    case StreamWrite::Written:
      subscriber.after = after_written;
      if (events > 0) counters_.events_sent.fetch_add(events, std::memory_order_relaxed);
      return true;
    case StreamWrite::Full:
      subscriber.refused = std::move(frame);
      subscriber.refused_after = after_written;
      subscriber.refused_events = events;
      subscriber.waiting_for_room = true;
      cut_off_if_lagging(subscriber, settings);
      return false;
    case StreamWrite::Closed: break;
  }
  end(subscriber);
  return false;
}

void FeedSubscribers::pump(Subscriber& subscriber, const FeedStreamSettings& settings) {
  if (subscriber.ended || subscriber.waiting_for_room) return;
  if (!subscriber.refused.empty()) {
    std::string frame = std::move(subscriber.refused);
    subscriber.refused.clear();
    if (!write_frame(subscriber, std::move(frame), subscriber.refused_after, subscriber.refused_events, settings)) {
      return;
    }
  }
  for (;;) {
    std::optional<StoreResult<FeedPage>> result;
    auto keep = [&](StoreResult<FeedPage>&& page) { result = std::move(page); };
    {
      // A store that answers later is cancelled here: the subscriber reads again at the next wake-up.
      StoreCall call = feed_->read(subscriber.after, subscriber.filter, kFeedPageEvents, Completion<FeedPage>(keep));
    }
    if (!result || !result->ok()) return;
    FeedPage& page = result->value;
    // Frames leave together, up to kBatchBytes a write: one chunk and one system call for many
    // small events, while a large one still goes alone (a batch never grows a stream's buffer
    // much past what one frame would).
    std::string frames;
    std::uint64_t last = subscriber.after;
    std::size_t events = 0;
    if (page.reset) {
      last = page.events.empty() ? page.next : page.events.front().id - 1;
      frames = sse_reset_frame(subscriber.after, last);
    }
    for (const FeedEvent& event : page.events) {
      const std::string& frame = frame_of(event);
      if (!frames.empty() && frames.size() + frame.size() > kBatchBytes) {
        if (!write_frame(subscriber, std::move(frames), last, events, settings)) return;
        frames.clear();
        events = 0;
      }
      frames += frame;
      last = event.id;
      ++events;
    }
    if (!frames.empty() && !write_frame(subscriber, std::move(frames), last, events, settings)) return;
    subscriber.after = page.next;
    if (page.events.size() < kFeedPageEvents) return;
  }
}

const std::string& FeedSubscribers::frame_of(const FeedEvent& event) {
  // A conflict's frame changes once, when it is resolved: the two are kept apart.
  std::uint64_t key = event.id * 2 + (event.resolved ? 1 : 0);
  if (auto it = frames_.find(key); it != frames_.end()) return it->second;
  if (frames_.size() >= kCachedFrames) frames_.erase(frames_.begin());  // the oldest id
  return frames_.emplace(key, sse_event_frame(event)).first->second;
}

bool FeedSubscribers::cut_off_if_lagging(Subscriber& subscriber, const FeedStreamSettings& settings) {
  std::size_t waiting = subscriber.stream->buffered() + subscriber.refused.size();
  bool past_buffer = waiting > settings.max_subscriber_buffer;
  bool past_ring = newest_id_.load(std::memory_order_relaxed) > subscriber.after + settings.feed_buffer;
  if (!past_buffer && !past_ring) return false;
  counters_.cut_off.fetch_add(1, std::memory_order_relaxed);
  subscriber.stream->abort();  // the listener is not called any more
  end(subscriber);
  return true;
}

void FeedSubscribers::end(Subscriber& subscriber) {
  subscriber.ended = true;
  if (!delivering_) sweep();
}

void FeedSubscribers::sweep() {
  std::erase_if(subscribers_, [](const auto& subscriber) { return subscriber->ended; });
  if (subscribers_.empty() && heartbeat_every_.count() != 0) {
    uv_timer_stop(&heartbeat_);
    heartbeat_every_ = Duration(0);
  }
}

void FeedSubscribers::arm_heartbeat(const FeedStreamSettings& settings) {
  Duration every = subscribers_.empty() || closed_ ? Duration(0) : settings.heartbeat;
  if (every == heartbeat_every_) return;
  heartbeat_every_ = every;
  if (every.count() == 0) {
    uv_timer_stop(&heartbeat_);
    return;
  }
  auto ms = static_cast<std::uint64_t>(every.count());
  uv_timer_start(&heartbeat_, on_heartbeat, ms, ms);
}

void FeedSubscribers::on_wakeup(uv_async_t* async) { static_cast<FeedSubscribers*>(async->data)->deliver(); }

void FeedSubscribers::on_heartbeat(uv_timer_t* timer) {
  static_cast<FeedSubscribers*>(timer->data)->send_heartbeats();
}

}  // namespace arbiter
