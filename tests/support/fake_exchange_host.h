#pragma once
// An ExchangeHost with no sockets, for tests and fuzzers that drive the real Exchange
// (proxy/exchange/exchange.h): client bytes go through the real RequestParser; what the
// exchange sends the client is kept in `to_client`; the upstream is a FakeUpstream the caller
// answers (respond(), fail_upstream()); side requests are recorded and answered one by one, in
// any order, with answer_side_request(), and the exchange hears a call's answers together, in
// spec order, once the last is in (as SideRequests delivers them); the clock is fake (advance()
// fires the timer when it is due).
//
// Like ClientConnection it keeps one Exchange at a time in an optional, destroys it in
// exchange_done and begins the next pipelined request after it.

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/exchange/exchange.h"
#include "proxy/exchange/runtime.h"
#include "proxy/http/request_parser.h"

namespace arbiter::testing {

// An upstream connection that records what it is sent.
class FakeUpstream final : public UpstreamChannel {
 public:
  bool send(std::span<const std::string_view> pieces) override {
    for (std::string_view piece : pieces) received.append(piece);
    ++sends;
    return true;
  }
  void expect_response(bool, bool) override { awaiting = true; }
  void request_finished() override { finished = true; }
  std::size_t queued_bytes() const noexcept override { return 0; }
  void pause_reading() override {}
  void resume_reading() override {}
  void abandon() override { abandoned = true; }
  std::size_t server_index() const noexcept override { return 0; }
  std::string_view authority() const noexcept override { return "backend:80"; }
  bool ready() const noexcept override { return true; }

  // A new request on it: what the last one recorded is forgotten (`received` keeps its capacity).
  void reopen() {
    received.clear();
    sends = 0;
    awaiting = finished = abandoned = false;
  }

  std::string received;  // the request bytes, head and body, as the upstream got them
  int sends = 0;          // calls to send(): writes to the connection
  bool awaiting = false;
  bool finished = false;
  bool abandoned = false;
};

class FakeWaker final : public Waker {
 public:
  void wake() override { ++wakes; }
  int wakes = 0;
};

class FakeExchangeHost final : public ExchangeHost, public RequestEvents {
 public:
  // One side request the exchange asked for.
  struct SideCall {
    int call = 0;            // which start_side_requests it came with (1, 2, ...)
    std::size_t index = 0;   // its place in that call's specs
    SideRequestSpec spec;    // as the exchange resolved it (upstream named, body limit set)
    bool answered = false;
  };

  explicit FakeExchangeHost(std::shared_ptr<const Runtime> runtime, std::string peer = "127.0.0.1")
      : runtime_(std::move(runtime)), peer_(std::move(peer)) {
    const Config& config = runtime_->config();
    parser_.set_limits({config.server.max_header_bytes, config.server.max_body_bytes});
  }
  ~FakeExchangeHost() { exchange.reset(); }

  // --- what a test drives
  // Bytes from the client, parsed as ClientConnection parses them.
  void feed(std::string_view bytes) {
    if (closed) return;
    parser_.feed(bytes.data(), bytes.size());
  }
  // The upstream's answer to the request in flight (and its end, unless `complete` is false).
  void respond(int status, HeaderList headers, std::string_view body, bool complete = true) {
    if (!exchange || !upstream_events_) return;
    UpstreamEvents* events = upstream_events_;
    BodyFraming framing = !complete           ? BodyFraming::Chunked
                          : body.empty()        ? BodyFraming::None
                                                : BodyFraming::ContentLength;
    events->on_upstream_head(status, headers, framing, body.size());
    if (!exchange) return;
    if (!body.empty()) events->on_upstream_body(body);
    if (!exchange || !complete) return;
    upstream_events_ = nullptr;
    events->on_upstream_complete();
  }
  void upstream_body(std::string_view data) {
    if (exchange && upstream_events_) upstream_events_->on_upstream_body(data);
  }
  void fail_upstream(UpstreamFailure failure) {
    if (!exchange || !upstream_events_) return;
    UpstreamEvents* events = std::exchange(upstream_events_, nullptr);
    events->on_upstream_failed(failure, false, 0);
  }
  // Answers side_calls[n]. An answer to a call that is over (cancelled, or the exchange gone) is
  // dropped.
  void answer_side_request(std::size_t n, SideResponse response) {
    SideCall& side = side_calls.at(n);
    side.answered = true;
    if (side.call != side_request_calls || side_answers_.empty()) return;
    side_answers_[side.index] = std::move(response);
    if (--side_unanswered_ == 0) deliver_side_responses();
  }
  // The fake clock moves; a timer that comes due fires.
  void advance(Duration by) {
    clock_ += by;
    if (timer_due_ && *timer_due_ <= clock_) {
      timer_due_.reset();
      if (exchange) exchange->on_timer();
    }
  }
  // The waker fired: ClientConnection hears it on its loop and tells the exchange.
  void deliver_wake() {
    if (exchange) exchange->on_woken();
  }
  // Arbiter begins a graceful shutdown (ClientConnection::close_when_idle).
  void drain() {
    if (exchange) exchange->on_drain();
  }
  // The client goes away.
  void client_gone() {
    closed = true;
    if (exchange) exchange->on_client_gone();
  }
  // The exchange's upstream events, while it has an upstream request open (else nullptr).
  UpstreamEvents* upstream_events() const noexcept { return exchange ? upstream_events_ : nullptr; }
  void upstream_ended() noexcept { upstream_events_ = nullptr; }
  bool timer_armed() const noexcept { return timer_due_.has_value(); }
  const std::optional<MonotonicTime>& timer_due() const noexcept { return timer_due_; }
  MonotonicTime clock() const noexcept { return clock_; }

  // --- ExchangeHost
  void send_to_client(std::span<const std::string_view> pieces) override {
    if (closed) return;
    for (std::string_view piece : pieces) to_client.append(piece);
  }
  std::size_t client_backlog() const noexcept override { return 0; }
  void read_request_on() override {
    if (parser_.paused() && !closed) parser_.resume();
  }
  void update_reading() override {}
  bool request_complete() const noexcept override { return parser_.message_complete(); }
  std::uint64_t request_body_bytes() const noexcept override { return parser_.body_bytes(); }
  std::size_t buffered_request_bytes() const noexcept override { return parser_.pending_bytes(); }
  void exchange_done(bool keep_alive) override {
    ++exchanges_done;
    if (closed) return;  // destroyed with the host
    exchange.reset();
    upstream_events_ = nullptr;
    parser_.next_request();
    if (!keep_alive) {
      closed = true;
      return;
    }
    if (parser_.paused()) parser_.resume();
  }
  void abort_connection() override {
    aborted = true;
    client_gone();
  }
  std::string_view peer_address() const noexcept override { return peer_; }
  bool draining() const noexcept override { return false; }
  const HandlerRegistry* listener_handlers() const noexcept override { return admin_registry; }
  const HandlerRegistry* control_handlers() const noexcept override { return control_registry; }
  UpstreamChannel& open_upstream(const Runtime&, const std::string&, UpstreamEvents& events, std::size_t) override {
    ++upstream_opens;
    upstream.reopen();
    upstream_events_ = &events;
    return upstream;
  }
  void start_tunnel(std::string_view) override { tunnelled = true; }
  void start_side_requests(const Runtime&, std::vector<SideRequestSpec> specs, const SideRequestOrigin&) override {
    ++side_request_calls;
    for (std::size_t i = 0; i < specs.size(); ++i) side_calls.push_back({side_request_calls, i, std::move(specs[i])});
    side_answers_.assign(specs.size(), SideResponse{});
    side_unanswered_ = specs.size();
    if (specs.empty()) deliver_side_responses();
  }
  void cancel_side_requests() override {
    ++side_cancels;
    side_answers_.clear();
    side_unanswered_ = 0;
  }
  void arm_timer(Duration timeout) override { timer_due_ = clock_ + timeout; }
  void stop_timer() override { timer_due_.reset(); }
  MonotonicTime now() const noexcept override { return clock_; }
  std::shared_ptr<Waker> waker() override { return waker_; }
  std::shared_ptr<const Runtime> runtime() const override { return runtime_; }
  void next_request_id(std::string& out) override { out = "req-" + std::to_string(++request_ids_); }
  void record_metrics(std::string_view, std::string_view, int status, double) override { statuses.push_back(status); }
  AccessLog* access_log() noexcept override { return nullptr; }

  // --- RequestEvents (ClientConnection's parser feed, without a socket)
  void on_request_begin() override { started_ = clock_; }
  bool on_request_body(std::string_view piece) override {
    if (!exchange) return false;
    exchange->on_request_body(piece);
    return exchange.has_value() && !closed;
  }
  void on_request_complete() override {
    if (exchange) exchange->on_request_complete();
  }
  void on_parse_paused() override {
    if (parser_.head_complete() && !exchange) {
      head_requests.push_back(parser_.head().method == "HEAD");
      exchange.emplace(*this, scratch_, parser_.head(), started_).start();
    } else if (exchange) {
      exchange->on_request_paused();
    }
  }
  void on_parse_error(llhttp_errno_t error) override {
    Problem problem = parser_.problem(error);
    if (!exchange) {
      head_requests.push_back(false);
      exchange.emplace(*this, scratch_, parser_.head(), started_);
    }
    exchange->refuse(problem);
  }
  bool takes_input() const override { return !closed; }

  // --- what a test reads
  std::optional<Exchange> exchange;
  FakeUpstream upstream;
  std::string to_client;
  std::vector<SideCall> side_calls;
  std::vector<int> statuses;  // one per exchange recorded
  std::vector<bool> head_requests;  // one per exchange begun: was it a HEAD request
  std::shared_ptr<FakeWaker> waker_ = std::make_shared<FakeWaker>();
  int upstream_opens = 0;
  int side_request_calls = 0;  // start_side_requests calls so far
  int side_cancels = 0;
  int exchanges_done = 0;
  bool closed = false;
  bool aborted = false;
  bool tunnelled = false;
  // Local handlers: every request on an admin listener, or those under control_prefix.
  const HandlerRegistry* admin_registry = nullptr;
  const HandlerRegistry* control_registry = nullptr;

 private:
  std::shared_ptr<const Runtime> runtime_;
  std::string peer_;
  MonotonicTime clock_{std::chrono::seconds(1000)};
  MonotonicTime started_{};
  std::optional<MonotonicTime> timer_due_;
  RequestParser parser_{*this};
  ExchangeScratch scratch_;
  UpstreamEvents* upstream_events_ = nullptr;
  int request_ids_ = 0;
  std::vector<SideResponse> side_answers_;  // the latest call's, by spec index
  std::size_t side_unanswered_ = 0;

  void deliver_side_responses() {
    std::vector<SideResponse> answers = std::move(side_answers_);
    side_answers_.clear();
    if (exchange) exchange->on_side_responses(std::move(answers));
  }
};

}  // namespace arbiter::testing
