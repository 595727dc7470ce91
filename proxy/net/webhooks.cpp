#include "proxy/net/webhooks.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <utility>

#include "proxy/control/feed_json.h"
#include "proxy/http/hex.h"
#include "proxy/http/response_parser.h"
#include "proxy/observe/log.h"

namespace arbiter {

// ---- The parts without I/O ----

std::optional<WebhookUrl> parse_webhook_url(std::string_view url, std::string& error) {
  constexpr std::string_view kScheme = "http://";
  if (url.size() < kScheme.size() || !std::equal(kScheme.begin(), kScheme.end(), url.begin(), [](char a, char b) {
        return a == static_cast<char>(std::tolower(static_cast<unsigned char>(b)));
      })) {
    error = "a webhook url starts with http:// (https is not supported)";
    return std::nullopt;
  }
  std::string_view rest = url.substr(kScheme.size());
  std::size_t path_at = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, path_at);
  std::string_view path = path_at == std::string_view::npos ? std::string_view("/") : rest.substr(path_at);
  if (std::size_t fragment = path.find('#'); fragment != std::string_view::npos) path = path.substr(0, fragment);
  WebhookUrl parsed;
  parsed.authority = std::string(authority);
  parsed.target = path.empty() || path.front() != '/' ? "/" + std::string(path) : std::string(path);
  if (authority.find('@') != std::string_view::npos) {
    error = "a webhook url has no user info (the secret signs the body)";
    return std::nullopt;
  }
  std::string_view port_text;
  if (!authority.empty() && authority.front() == '[') {
    std::size_t close = authority.find(']');
    if (close == std::string_view::npos) {
      error = "an IPv6 host lacks its closing ]";
      return std::nullopt;
    }
    parsed.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty() && after.front() != ':') {
      error = "expected :port after ]";
      return std::nullopt;
    }
    if (!after.empty()) port_text = after.substr(1);
  } else {
    std::size_t colon = authority.rfind(':');
    parsed.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port_text = authority.substr(colon + 1);
  }
  if (parsed.host.empty()) {
    error = "a webhook url names a host";
    return std::nullopt;
  }
  if (!port_text.empty()) {
    unsigned port = 0;
    auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (ec != std::errc() || end != port_text.data() + port_text.size() || port == 0 || port > 65535) {
      error = "not a port: " + std::string(port_text);
      return std::nullopt;
    }
    parsed.port = static_cast<std::uint16_t>(port);
  }
  return parsed;
}

std::string webhook_signature(std::string_view secret, std::string_view body) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  // A null message pointer is fine for an empty body with OpenSSL, but not with every sanitizer.
  static constexpr unsigned char kNothing = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       body.empty() ? &kNothing : reinterpret_cast<const unsigned char*>(body.data()), body.size(), digest, &length);
  return "sha256=" + lower_hex(digest, length);
}

Duration WebhookBackoff::delay(unsigned failures, double jitter) const {
  Duration full = base;
  for (unsigned i = 1; i < failures && full < cap; ++i) full *= 2;
  full = std::min(full, cap);
  jitter = std::clamp(jitter, 0.0, 1.0);
  auto half = full.count() / 2;
  return Duration(full.count() - half + static_cast<Duration::rep>(static_cast<double>(half) * jitter));
}

const std::string& WebhookPayload::body() const {
  if (rendered_body.empty()) rendered_body = feed_event_json(event).dump();
  return rendered_body;
}

std::size_t WebhookQueue::push(WebhookPayloadRef payload) {
  std::size_t dropped = 0;
  while (events_.size() >= capacity_) {
    events_.pop_front();
    ++dropped;
  }
  events_.push_back(std::move(payload));
  dropped_ += dropped;
  return dropped;
}

WebhookPayloadRef WebhookQueue::pop() {
  if (events_.empty()) return nullptr;
  WebhookPayloadRef front = std::move(events_.front());
  events_.pop_front();
  return front;
}

std::size_t WebhookQueue::set_capacity(std::size_t capacity) {
  capacity_ = std::max<std::size_t>(1, capacity);
  std::size_t dropped = 0;
  while (events_.size() > capacity_) {
    events_.pop_front();
    ++dropped;
  }
  dropped_ += dropped;
  return dropped;
}

void add_webhook_metric_families(const std::vector<WebhookTargetStats>& stats, std::vector<MetricFamily>& families) {
  struct Column {
    const char* name;
    const char* help;
    MetricType type;
    std::uint64_t WebhookTargetStats::*value;
  };
  static constexpr Column kColumns[] = {
      {"arbiter_webhook_delivered_total", "Events a webhook target answered with 2xx", MetricType::Counter,
       &WebhookTargetStats::delivered},
      {"arbiter_webhook_failed_total", "Events given up after max_retry of failed attempts", MetricType::Counter,
       &WebhookTargetStats::failed},
      {"arbiter_webhook_dropped_total", "Events dropped from a full webhook queue (the oldest first)",
       MetricType::Counter, &WebhookTargetStats::dropped},
      {"arbiter_webhook_retries_total", "Delivery attempts after an event's first", MetricType::Counter,
       &WebhookTargetStats::retries},
      {"arbiter_webhook_queued", "Events waiting for a webhook target, the one in delivery included",
       MetricType::Gauge, &WebhookTargetStats::queued},
  };
  if (stats.empty()) return;
  for (const Column& column : kColumns) {
    MetricFamily family{column.name, column.help, column.type, {}};
    for (const WebhookTargetStats& target : stats) {
      family.add({{"url", target.url}}, static_cast<double>(target.*column.value));
    }
    families.push_back(std::move(family));
  }
}

// ---- The sender ----

namespace {

// What a target counts; written on the sender's thread, read by stats() on any.
struct WebhookCounters {
  std::atomic<std::uint64_t> delivered{0};
  std::atomic<std::uint64_t> failed{0};
  std::atomic<std::uint64_t> dropped{0};
  std::atomic<std::uint64_t> retries{0};
  std::atomic<std::uint64_t> queued{0};

  static void add(std::atomic<std::uint64_t>& counter, std::uint64_t n = 1) {
    counter.fetch_add(n, std::memory_order_relaxed);
  }
};

}  // namespace

struct WebhookSender::Counted {
  std::string url;
  std::shared_ptr<WebhookCounters> counters;
};

class WebhookConnection;

// One [[control.webhook]] on the sender's loop: its queue, the event being delivered, the timer
// that bounds an attempt or waits out a backoff. Allocated by the sender and freed in its timer's
// close callback (close()); a connection or a name lookup still running then is told to forget it.
class WebhookTarget {
 public:
  WebhookTarget(WebhookSender& sender, WebhookConfig config)
      : sender_(sender), config_(std::move(config)), queue_(config_.queue), counters_(std::make_shared<WebhookCounters>()) {
    uv_timer_init(&sender_.loop_, &timer_);
    timer_.data = this;
    std::string error;
    url_ = parse_webhook_url(config_.url, error);
    if (!url_) log_line("webhook " + config_.url + ": " + error + "; nothing is sent to it");
  }
  WebhookTarget(const WebhookTarget&) = delete;
  WebhookTarget& operator=(const WebhookTarget&) = delete;

  const WebhookConfig& config() const noexcept { return config_; }
  const std::shared_ptr<WebhookCounters>& counters() const noexcept { return counters_; }

  // A reload kept it (same url and secret): the rest of the settings apply from the next attempt.
  void update(WebhookConfig config) {
    config_ = std::move(config);
    WebhookCounters::add(counters_->dropped, queue_.set_capacity(config_.queue));
    publish_queued();
  }

  bool wants(std::string_view type) const {
    return config_.events.empty() ||
           std::find(config_.events.begin(), config_.events.end(), type) != config_.events.end();
  }

  void enqueue(WebhookPayloadRef payload) {
    if (!url_) return;
    WebhookCounters::add(counters_->dropped, queue_.push(std::move(payload)));
    publish_queued();
    if (stage_ == Stage::Idle) next();
  }

  // Stops whatever it does (no answer awaited, no retry) and frees it once its timer closed.
  void close();

  // From the connection: the answer's status (0: no answer; `detail` says why).
  void attempt_finished(int status, std::string detail);
  // From the name lookup.
  void resolved(int status, const addrinfo* result);

 private:
  enum class Stage : std::uint8_t { Idle, Resolving, Attempt, Backoff };

  static void on_timer(uv_timer_t* timer);

  // Takes the next event when none is being delivered, and makes an attempt.
  void next() {
    if (current_ == nullptr) {
      current_ = queue_.pop();
      if (current_ == nullptr) {
        stage_ = Stage::Idle;
        return;
      }
      failures_ = 0;
      first_attempt_ = uv_now(&sender_.loop_);
    }
    attempt();
  }
  void attempt();
  void give_up(const std::string& why);
  void publish_queued() {
    counters_->queued.store(queue_.size() + (current_ ? 1 : 0), std::memory_order_relaxed);
  }
  std::string request_for(const WebhookPayload& payload) const;

  WebhookSender& sender_;
  WebhookConfig config_;
  std::optional<WebhookUrl> url_;  // nullopt: malformed, nothing is sent
  WebhookQueue queue_;
  std::shared_ptr<WebhookCounters> counters_;
  uv_timer_t timer_{};
  Stage stage_ = Stage::Idle;
  WebhookPayloadRef current_;          // the event being delivered (out of the queue)
  unsigned failures_ = 0;              // of current_'s attempts
  std::uint64_t first_attempt_ = 0;    // uv_now of current_'s first attempt
  std::optional<sockaddr_storage> address_;  // url_'s host, resolved once (again after a connect error)
  WebhookConnection* connection_ = nullptr;  // the attempt's
  struct Lookup;
  Lookup* lookup_ = nullptr;           // a name lookup in progress
};

// One attempt: connect, write the request, read the answer's status line. Allocated by the target
// and freed in its handle's close callback; release() makes it forget the target.
class WebhookConnection final : private ResponseEvents {
 public:
  WebhookConnection(uv_loop_t* loop, WebhookTarget* target, std::string request)
      : target_(target), request_(std::move(request)), parser_(*this) {
    uv_tcp_init(loop, &tcp_);
    tcp_.data = this;
    connect_.data = this;
    write_.data = this;
    parser_.next_response();
  }
  // May report to the target before returning (a connect that fails at once).
  void start(const sockaddr* address) {
    int rc = uv_tcp_connect(&connect_, &tcp_, address, on_connect);
    if (rc < 0) finish(0, std::string("connect: ") + uv_strerror(rc));
  }
  WebhookConnection(const WebhookConnection&) = delete;
  WebhookConnection& operator=(const WebhookConnection&) = delete;

  // The target gives up on this attempt (timeout, shutdown): nothing is reported.
  void release() {
    target_ = nullptr;
    close();
  }

 private:
  static void on_connect(uv_connect_t* request, int status) {
    auto* self = static_cast<WebhookConnection*>(request->data);
    if (status < 0) {
      self->finish(0, std::string("connect: ") + uv_strerror(status));
      return;
    }
    if (self->closing_) return;
    uv_buf_t buffer = uv_buf_init(self->request_.data(), static_cast<unsigned>(self->request_.size()));
    int rc = uv_write(&self->write_, reinterpret_cast<uv_stream_t*>(&self->tcp_), &buffer, 1, on_write);
    if (rc >= 0) rc = uv_read_start(reinterpret_cast<uv_stream_t*>(&self->tcp_), on_alloc, on_read);
    if (rc < 0) self->finish(0, std::string("send: ") + uv_strerror(rc));
  }
  static void on_write(uv_write_t* request, int status) {
    auto* self = static_cast<WebhookConnection*>(request->data);
    if (status < 0 && status != UV_ECANCELED) self->finish(0, std::string("send: ") + uv_strerror(status));
  }
  static void on_alloc(uv_handle_t* handle, std::size_t, uv_buf_t* buffer) {
    auto* self = static_cast<WebhookConnection*>(handle->data);
    *buffer = uv_buf_init(self->buffer_, sizeof self->buffer_);
  }
  static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buffer) {
    auto* self = static_cast<WebhookConnection*>(stream->data);
    if (nread < 0) {
      self->finish(0, nread == UV_EOF ? "closed before answering" : std::string("read: ") + uv_strerror(static_cast<int>(nread)));
      return;
    }
    std::size_t consumed = 0;
    llhttp_errno_t rc = self->parser_.execute(buffer->base, static_cast<std::size_t>(nread), consumed);
    if (self->status_ != 0) {
      self->finish(self->status_, {});
    } else if (rc != HPE_OK) {
      self->finish(0, "not an HTTP response");
    }
  }
  static void on_close(uv_handle_t* handle) { delete static_cast<WebhookConnection*>(handle->data); }

  bool on_response_head(int status, HeaderList&, BodyFraming, std::uint64_t) override {
    status_ = status;
    return false;  // the status is all a delivery needs
  }
  bool on_response_body(std::string_view) override { return false; }

  void finish(int status, std::string detail) {
    if (closing_) return;
    WebhookTarget* target = std::exchange(target_, nullptr);
    close();
    if (target != nullptr) target->attempt_finished(status, std::move(detail));
  }
  void close() {
    if (closing_) return;
    closing_ = true;
    uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), on_close);
  }

  WebhookTarget* target_;
  std::string request_;
  ResponseParser parser_;
  uv_tcp_t tcp_{};
  uv_connect_t connect_{};
  uv_write_t write_{};
  char buffer_[4096];
  int status_ = 0;
  bool closing_ = false;
};

// A uv_getaddrinfo in progress; it outlives a target closed meanwhile (target becomes null).
struct WebhookTarget::Lookup {
  uv_getaddrinfo_t request{};
  WebhookTarget* target = nullptr;

  static void on_resolved(uv_getaddrinfo_t* request, int status, addrinfo* result) {
    auto* lookup = static_cast<Lookup*>(request->data);
    if (lookup->target != nullptr) {
      lookup->target->lookup_ = nullptr;
      lookup->target->resolved(status, result);
    }
    uv_freeaddrinfo(result);
    delete lookup;
  }
};

void WebhookTarget::close() {
  if (connection_ != nullptr) std::exchange(connection_, nullptr)->release();
  if (lookup_ != nullptr) {
    lookup_->target = nullptr;
    uv_cancel(reinterpret_cast<uv_req_t*>(&std::exchange(lookup_, nullptr)->request));
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), [](uv_handle_t* handle) {
    delete static_cast<WebhookTarget*>(handle->data);
  });
}

std::string WebhookTarget::request_for(const WebhookPayload& payload) const {
  const std::string& body = payload.body();
  std::string request = "POST " + url_->target + " HTTP/1.1\r\nHost: " + url_->authority +
                        "\r\nUser-Agent: arbiter/" ARBITER_VERSION "\r\nContent-Type: application/json\r\nContent-Length: " +
                        std::to_string(body.size()) + "\r\nArbiter-Event: " + payload.event.type +
                        "\r\nArbiter-Delivery: " + std::to_string(payload.event.id) + "\r\n";
  if (!config_.secret.empty()) request += "Arbiter-Signature: " + webhook_signature(config_.secret, body) + "\r\n";
  request += "Connection: close\r\n\r\n";
  request += body;
  return request;
}

void WebhookTarget::attempt() {
  if (!address_) {
    sockaddr_storage numeric{};
    if (uv_ip4_addr(url_->host.c_str(), url_->port, reinterpret_cast<sockaddr_in*>(&numeric)) == 0 ||
        uv_ip6_addr(url_->host.c_str(), url_->port, reinterpret_cast<sockaddr_in6*>(&numeric)) == 0) {
      address_ = numeric;
    } else {
      stage_ = Stage::Resolving;
      lookup_ = new Lookup;
      lookup_->target = this;
      lookup_->request.data = lookup_;
      addrinfo hints{};
      hints.ai_family = AF_UNSPEC;
      hints.ai_socktype = SOCK_STREAM;
      std::string port = std::to_string(url_->port);
      int rc = uv_getaddrinfo(&sender_.loop_, &lookup_->request, Lookup::on_resolved, url_->host.c_str(), port.c_str(), &hints);
      if (rc < 0) {
        delete std::exchange(lookup_, nullptr);
        attempt_finished(0, std::string("resolve ") + url_->host + ": " + uv_strerror(rc));
      }
      return;
    }
  }
  stage_ = Stage::Attempt;
  publish_queued();
  uv_timer_start(&timer_, on_timer, static_cast<std::uint64_t>(std::max<Duration::rep>(1, config_.timeout.count())), 0);
  connection_ = new WebhookConnection(&sender_.loop_, this, request_for(*current_));
  connection_->start(reinterpret_cast<const sockaddr*>(&*address_));
}

void WebhookTarget::resolved(int status, const addrinfo* result) {
  if (status < 0 || result == nullptr) {
    attempt_finished(0, std::string("resolve ") + url_->host + ": " + uv_strerror(status));
    return;
  }
  sockaddr_storage address{};
  std::memcpy(&address, result->ai_addr, std::min<std::size_t>(result->ai_addrlen, sizeof address));
  address_ = address;
  attempt();
}

void WebhookTarget::attempt_finished(int status, std::string detail) {
  connection_ = nullptr;
  uv_timer_stop(&timer_);
  if (status >= 200 && status < 300) {
    current_.reset();
    publish_queued();
    WebhookCounters::add(counters_->delivered);
    next();
    return;
  }
  // A name may move: it is looked up again before the next attempt (a numeric host parses again).
  if (status == 0) address_.reset();
  ++failures_;
  Duration wait = sender_.options_.backoff.delay(
      failures_, std::uniform_real_distribution<double>(0.0, 1.0)(sender_.jitter_random_));
  std::uint64_t elapsed = uv_now(&sender_.loop_) - first_attempt_;
  if (elapsed + static_cast<std::uint64_t>(wait.count()) > static_cast<std::uint64_t>(config_.max_retry.count())) {
    give_up(status != 0 ? "answered " + std::to_string(status) : detail);
    return;
  }
  stage_ = Stage::Backoff;
  uv_timer_start(&timer_, on_timer, static_cast<std::uint64_t>(wait.count()), 0);
}

void WebhookTarget::give_up(const std::string& why) {
  log_line("webhook " + config_.url + ": gave up event " + std::to_string(current_->event.id) + " after " +
           std::to_string(failures_) + " attempt(s) over max_retry; last: " + why);
  current_.reset();
  publish_queued();
  WebhookCounters::add(counters_->failed);
  next();
}

void WebhookTarget::on_timer(uv_timer_t* timer) {
  auto* self = static_cast<WebhookTarget*>(timer->data);
  if (self->stage_ == Stage::Attempt) {
    if (self->connection_ != nullptr) std::exchange(self->connection_, nullptr)->release();
    self->attempt_finished(0, "no answer within timeout");
    return;
  }
  if (self->stage_ == Stage::Backoff) {
    WebhookCounters::add(self->counters_->retries);
    self->attempt();
  }
}

WebhookSender::WebhookSender(std::shared_ptr<ConflictFeed> feed, WebhookSenderOptions options)
    : feed_(std::move(feed)), options_(options) {}

WebhookSender::~WebhookSender() { stop(); }

void WebhookSender::start(std::vector<WebhookConfig> targets) {
  if (started_) return;
  started_ = true;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!pending_) pending_ = std::move(targets);
  }
  uv_loop_init(&loop_);
  uv_async_init(&loop_, &wake_, on_wake);
  wake_.data = this;
  last_id_ = feed_->stats().last_id;
  // Runs on a publisher's thread; uv_async_send is the one libuv call safe from any thread.
  watch_ = feed_->watch([this](std::uint64_t) { uv_async_send(&wake_); });
  metric_source_ = add_metric_source([this](std::vector<MetricFamily>& families) {
    add_webhook_metric_families(stats(), families);
  });
  uv_async_send(&wake_);  // applies the targets on the loop
  thread_ = std::thread([this] {
    uv_run(&loop_, UV_RUN_DEFAULT);
    uv_loop_close(&loop_);
  });
}

void WebhookSender::reconfigure(std::vector<WebhookConfig> targets) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    pending_ = std::move(targets);
  }
  if (started_ && !stopping_) uv_async_send(&wake_);
}

void WebhookSender::stop() {
  if (!started_ || stopping_.exchange(true)) return;
  remove_metric_source(metric_source_);
  uv_async_send(&wake_);
  thread_.join();
}

std::vector<WebhookTargetStats> WebhookSender::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<WebhookTargetStats> stats;
  stats.reserve(counted_.size());
  for (const Counted& target : counted_) {
    const WebhookCounters& c = *target.counters;
    stats.push_back({target.url, c.delivered.load(std::memory_order_relaxed), c.failed.load(std::memory_order_relaxed),
                     c.dropped.load(std::memory_order_relaxed), c.retries.load(std::memory_order_relaxed),
                     c.queued.load(std::memory_order_relaxed)});
  }
  return stats;
}

void WebhookSender::on_wake(uv_async_t* async) { static_cast<WebhookSender*>(async->data)->wake(); }

void WebhookSender::wake() {
  if (stopping_) {
    close_all();
    return;
  }
  std::optional<std::vector<WebhookConfig>> configs;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    configs.swap(pending_);
  }
  if (configs) apply(std::move(*configs));
  read_feed();
}

void WebhookSender::apply(std::vector<WebhookConfig> configs) {
  std::vector<WebhookTarget*> kept;
  std::vector<Counted> counted;
  for (WebhookConfig& config : configs) {
    auto same = std::find_if(targets_.begin(), targets_.end(), [&](const WebhookTarget* target) {
      return target != nullptr && target->config().url == config.url && target->config().secret == config.secret;
    });
    WebhookTarget* target = nullptr;
    if (same != targets_.end()) {
      target = std::exchange(*same, nullptr);
      target->update(std::move(config));
    } else {
      target = new WebhookTarget(*this, std::move(config));
    }
    kept.push_back(target);
    counted.push_back({target->config().url, target->counters()});
  }
  for (WebhookTarget* removed : targets_) {
    if (removed != nullptr) removed->close();
  }
  targets_ = std::move(kept);
  std::lock_guard<std::mutex> lock(mutex_);
  counted_ = std::move(counted);
}

void WebhookSender::read_feed() {
  if (read_in_flight_) return;  // its completion reads on
  read_call_.reset();
  if (targets_.empty()) {
    last_id_ = std::max(last_id_, feed_->stats().last_id);  // nothing to send them to
    return;
  }
  FeedFilter filter;
  for (const WebhookTarget* target : targets_) {
    if (target->config().events.empty()) {
      filter.types.clear();
      break;
    }
    filter.types.insert(filter.types.end(), target->config().events.begin(), target->config().events.end());
  }
  read_in_flight_ = true;
  StoreCall call =
      feed_->read(last_id_, filter, options_.read_batch, Completion<FeedPage>::to<&WebhookSender::on_feed_page>(*this));
  if (read_in_flight_) read_call_ = std::move(call);
}

void WebhookSender::on_feed_page(StoreResult<FeedPage>&& result) {
  read_in_flight_ = false;
  if (!result.ok()) return;  // the next publish wakes the sender again
  FeedPage& page = result.value;
  if (page.reset && last_id_ != 0) {
    log_line("webhooks: the conflict feed dropped events after id " + std::to_string(last_id_) +
             " before they were read; they are not sent");
  }
  for (FeedEvent& event : page.events) {
    WebhookPayloadRef payload;
    for (WebhookTarget* target : targets_) {
      if (!target->wants(payload ? payload->event.type : event.type)) continue;  // event is moved into the first
      if (payload == nullptr) payload = std::make_shared<const WebhookPayload>(WebhookPayload{std::move(event), {}});
      target->enqueue(payload);
    }
  }
  last_id_ = std::max(last_id_, page.next);
  if (page.next < page.last_id) uv_async_send(&wake_);  // more than one batch: read on from the loop
}

void WebhookSender::close_all() {
  watch_.reset();  // waits for a listener call in progress; none after it
  read_call_.reset();
  read_in_flight_ = false;
  for (WebhookTarget* target : targets_) target->close();
  targets_.clear();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    counted_.clear();
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&wake_), nullptr);
}

}  // namespace arbiter
