#include "proxy/net/client_connection.h"

#include <algorithm>
#include <charconv>
#include <cstdio>

#include "proxy/control/config_json.h"
#include "proxy/observe/metrics.h"
#include "proxy/http/path_normalization.h"
#include "proxy/net/server.h"
#include "proxy/net/side_request.h"
#include "proxy/net/worker.h"

namespace arbiter {

namespace {

// Stop reading a side when this much is queued towards the other; resume below the low mark.
constexpr std::size_t kHighWater = 256u << 10;
constexpr std::size_t kLowWater = 64u << 10;
// Pipelined input held while an exchange runs; beyond it the socket is not read.
constexpr std::size_t kMaxPendingInput = 64u << 10;
constexpr Duration kLingerTimeout = std::chrono::seconds(2);
// A request body up to this size is read and dropped after a local answer, to keep the
// connection; a larger one closes it.
constexpr std::uint64_t kMaxDrainedBody = 1u << 20;
constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

bool is_idempotent(std::string_view method) {
  return method == "GET" || method == "HEAD" || method == "PUT" || method == "DELETE" || method == "OPTIONS" ||
         method == "TRACE";
}

// A client-supplied X-Request-Id is kept only if it is short and plain, since it is echoed
// into logs and problem bodies.
bool acceptable_request_id(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' || c == '_' ||
              c == '.' || c == ':';
    if (!ok) return false;
  }
  return true;
}

std::string chunk_size_line(std::size_t size) {
  char text[24];
  int n = std::snprintf(text, sizeof text, "%zx\r\n", size);
  return std::string(text, static_cast<std::size_t>(n));
}

double elapsed_ms(std::uint64_t from_ns, std::uint64_t to_ns) { return static_cast<double>(to_ns - from_ns) / 1e6; }

}  // namespace

ClientConnection::ClientConnection(Worker& worker, bool admin)
    : worker_(worker), admin_(admin), metrics_(thread_metrics()), side_requests_(worker.loop(), *this) {
  if (!admin_) metrics_.connection_opened();
  uv_tcp_init(worker_.loop(), &tcp_);
  tcp_.data = this;
  uv_timer_init(worker_.loop(), &timer_);
  timer_.data = this;
  handles_open_ = 2;
}

void ClientConnection::start() {
  uv_tcp_nodelay(&tcp_, 1);
  sockaddr_storage peer{};
  int length = sizeof peer;
  if (uv_tcp_getpeername(&tcp_, reinterpret_cast<sockaddr*>(&peer), &length) == 0) {
    char text[64] = {};
    if (peer.ss_family == AF_INET6) {
      uv_ip6_name(reinterpret_cast<sockaddr_in6*>(&peer), text, sizeof text);
    } else {
      uv_ip4_name(reinterpret_cast<sockaddr_in*>(&peer), text, sizeof text);
    }
    peer_address_ = text;
  }
  arm_timer(worker_.runtime()->config().server.header_timeout);
  update_reading();
}

void ClientConnection::refuse_overloaded() {
  client_keep_alive_ = false;
  phase_ = Phase::Exchange;
  started_ns_ = uv_hrtime();
  worker_.next_request_id(request_id_);
  reply_problem(Problem::make("too-many-connections", 503, "Too many connections",
                              "Arbiter is at its max_connections limit; retry shortly."),
                HeaderList{{"Retry-After", "1"}}, "proxy");
}

void ClientConnection::close_when_idle() {
  if (phase_ == Phase::Idle) close_now();
}

// ---------------------------------------------------------------- input

void ClientConnection::on_alloc(uv_handle_t* handle, std::size_t, uv_buf_t* buf) {
  auto* self = static_cast<ClientConnection*>(handle->data);
  std::string& buffer = self->worker_.read_buffer();
  *buf = uv_buf_init(buffer.data(), static_cast<unsigned>(buffer.size()));
}

void ClientConnection::on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  auto* self = static_cast<ClientConnection*>(stream->data);
  if (nread == 0 || self->phase_ == Phase::Closed) return;
  if (self->tunnel_ != nullptr) {
    self->tunnel_->on_read(TunnelSide::Client, nread, buf);
    return;
  }
  if (nread < 0) {
    // EOF or error: the client is gone (or done); nothing more can be answered.
    self->close_now();
    return;
  }
  if (self->phase_ == Phase::Lingering) return;  // discarded
  self->on_input(buf->base, static_cast<std::size_t>(nread));
}

void ClientConnection::on_input(const char* data, std::size_t length) {
  const Config& config = worker_.runtime()->config();
  parser_.set_limits({config.server.max_header_bytes, config.server.max_body_bytes});
  parser_.feed(data, length);
  update_reading();
}

bool ClientConnection::takes_input() const { return phase_ != Phase::Closed && phase_ != Phase::Lingering; }

void ClientConnection::on_parse_paused() {
  if (parser_.head_complete() && phase_ == Phase::ReadingHead) {
    begin_exchange();
  } else if (body_.first == BodyFirst::Reading && parser_.message_complete()) {
    body_.first = BodyFirst::InMemory;
    run_request_policies();
  } else if (parser_.message_complete() && response_complete_) {
    finish_exchange();
  }
}

void ClientConnection::resume_parser() {
  if (!parser_.paused() || phase_ == Phase::Closed) return;
  parser_.resume();
  update_reading();
}

void ClientConnection::update_reading() {
  if (phase_ == Phase::Closed) return;
  bool want = phase_ == Phase::Lingering ||
              (parser_.pending_bytes() < kMaxPendingInput && (upstream_ == nullptr || upstream_->queued_bytes() < kHighWater));
  if (want == reading_) return;
  reading_ = want;
  auto* stream = reinterpret_cast<uv_stream_t*>(&tcp_);
  if (want) {
    uv_read_start(stream, on_alloc, on_read);
  } else {
    uv_read_stop(stream);
  }
  if (streaming_request_body()) {
    // body_timeout counts only while the client is the one awaited, not while the upstream
    // holds us back.
    if (want) {
      arm_body_timer();
    } else {
      uv_timer_stop(&timer_);
    }
  }
}

bool ClientConnection::streaming_request_body() const noexcept {
  return phase_ == Phase::Exchange && ((forwarding_ && upstream_ != nullptr) || body_.first == BodyFirst::Reading) &&
         !parser_.message_complete() && !response_complete_ && !waiting_;
}

void ClientConnection::arm_body_timer() {
  Duration timeout = runtime_->config().server.body_timeout;
  std::uint64_t now = uv_hrtime();
  Duration left = std::chrono::ceil<Duration>(
      std::chrono::nanoseconds(body_.deadline_ns > now ? body_.deadline_ns - now : 0));
  body_.timer_is_deadline = left <= timeout;
  arm_timer(std::min(timeout, left));
}

void ClientConnection::start_body_clock() {
  if (body_.deadline_ns == 0) {
    body_.deadline_ns =
        uv_hrtime() + static_cast<std::uint64_t>(
                          std::chrono::nanoseconds(runtime_->config().server.body_deadline).count());
  }
  arm_body_timer();
}

void ClientConnection::on_parse_error(llhttp_errno_t error) {
  client_keep_alive_ = false;
  if (phase_ != Phase::Exchange) {
    phase_ = Phase::Exchange;
    started_ns_ = uv_hrtime();
  }
  if (request_id_.empty()) worker_.next_request_id(request_id_);
  refuse_request(parser_.problem(error));
}

void ClientConnection::refuse_request(const Problem& problem) {
  client_keep_alive_ = false;
  if (response_head_sent_) {
    close_now();  // part of an answer is out; only closing can tell the client
    return;
  }
  if (upstream_ != nullptr) {
    // The upstream has an incomplete request; it must never see the rest.
    UpstreamConnection* upstream = upstream_;
    upstream_ = nullptr;
    forwarding_ = false;
    upstream->abandon();
  }
  reply_problem(problem, {}, "proxy");
}

// ---------------------------------------------------------------- request events

void ClientConnection::on_request_begin() {
  phase_ = Phase::ReadingHead;
  started_ns_ = uv_hrtime();
  // The whole head must arrive within header_timeout of its first byte.
  arm_timer(worker_.runtime()->config().server.header_timeout);
}

bool ClientConnection::on_request_body(std::string_view piece) {
  if (body_.first == BodyFirst::Reading) {
    if (request_body_.size() + piece.size() > body_.limit) {
      refuse_request(body_too_large(request_body_.size() + piece.size(), false));
      return false;
    }
    request_body_.append(piece);
    arm_body_timer();
  } else if (forwarding_ && upstream_ != nullptr) {
    arm_body_timer();
    forward_request_body(piece.data(), piece.size());
  }
  return phase_ != Phase::Closed;
}

void ClientConnection::on_request_complete() {
  if (body_.first == BodyFirst::Reading) uv_timer_stop(&timer_);  // the chain runs at the pause that follows
  if (forwarding_ && upstream_ != nullptr) {
    uv_timer_stop(&timer_);  // the body is all here
    if (head_.framing == BodyFraming::Chunked) {
      std::string last_chunk;  // with the request's trailer fields
      write_last_chunk(last_chunk, head_.trailers, omit_fields_);
      uv_buf_t last = make_buf(last_chunk.data(), last_chunk.size());
      upstream_->send(&last, 1);
    }
    if (upstream_ != nullptr) upstream_->request_finished();
  }
}

// ---------------------------------------------------------------- the exchange

void ClientConnection::begin_exchange() {
  phase_ = Phase::Exchange;
  client_keep_alive_ = head_.keep_alive;
  uv_timer_stop(&timer_);
  runtime_ = worker_.runtime();
  if (auto id = head_.headers.find("x-request-id"); id && acceptable_request_id(*id)) {
    request_id_.assign(*id);
  } else {
    worker_.next_request_id(request_id_);
  }
  if (!validate_request_head()) return;
  if (admin_) {
    answer_admin();
    return;
  }
  const Config& config = runtime_->config();
  if (head_.framing == BodyFraming::ContentLength && head_.content_length > config.server.max_body_bytes) {
    client_keep_alive_ = false;
    reply_problem(Problem::make("content-too-large", 413, "Content too large",
                                "Content-Length " + std::to_string(head_.content_length) +
                                    " exceeds max_body_bytes (" + std::to_string(config.server.max_body_bytes) + ")."),
                  {}, "proxy");
    return;
  }
  if (!normalize_target()) return;
  std::string_view path = std::string_view(target_).substr(0, path_length_);
  RouteMatch match;
  match.params.swap(params_);  // reuses the capacity of the last request's captures
  std::string allowed;
  std::string_view routed = routed_path_.empty() ? path : std::string_view(routed_path_);
  switch (runtime_->router().match(head_.method, routed, match, &allowed)) {
    case Router::Outcome::NotFound:
      reply_problem(Problem::make("route-not-found", 404, "No route",
                                  "No route matches " + std::string(head_.method) + " " + std::string(path) + "."),
                    {}, "router");
      return;
    case Router::Outcome::MethodNotAllowed:
      reply_problem(Problem::make("method-not-allowed", 405, "Method not allowed",
                                  "The routes for " + std::string(path) + " take " + allowed + ", not " +
                                      std::string(head_.method) + "."),
                    HeaderList{{"Allow", allowed}}, "router");
      return;
    case Router::Outcome::Matched:
      break;
  }
  route_ = &runtime_->route(match.route_index);
  params_.swap(match.params);
  policy_states_.resize(route_->policies.size());
  peer_is_trusted_proxy_ = false;
  for (const Cidr& cidr : config.server.trusted_proxies) peer_is_trusted_proxy_ = peer_is_trusted_proxy_ || cidr.contains(peer_address_);
  if (peer_is_trusted_proxy_) {
    believed_client_ = believed_client_address(peer_address_, head_.headers, config.server.trusted_proxies);
  }
  if (head_.framing != BodyFraming::None && read_body_first()) return;
  run_request_policies();
}

bool ClientConnection::read_body_first() {
  RequestView view = request_view();
  std::size_t limit = 0;
  std::string_view wanted_by;
  for (const auto& policy : route_->policies) {
    if (std::size_t wanted = policy->request_body_limit(view); wanted > limit) {
      limit = wanted;
      wanted_by = policy->kind();
    }
  }
  if (limit == 0) return false;
  body_.limit = limit;
  body_.limit_policy = wanted_by;
  if (head_.framing == BodyFraming::ContentLength && head_.content_length > limit) {
    client_keep_alive_ = false;
    reply_problem(body_too_large(head_.content_length, true), {}, "proxy");
    return true;
  }
  body_.first = BodyFirst::Reading;
  // Not reserved from Content-Length: memory grows only with bytes that actually arrive.
  request_body_.clear();
  if (expect_continue_) {
    expect_continue_ = false;
    uv_buf_t interim = make_buf(kContinue.data(), kContinue.size());
    send_to_client(&interim, 1);
  }
  start_body_clock();
  resume_parser();
  return true;
}

Problem ClientConnection::body_too_large(std::uint64_t size, bool declared) const {
  std::string limit = std::to_string(body_.limit);
  Problem problem = Problem::make(
      "content-too-large", 413, "Content too large",
      std::string(declared ? "Content-Length " : "The request body reached ") + std::to_string(size) +
          " bytes, over the " + limit + " bytes that route '" + route_->config->name +
          "' reads whole before a write takes its turn ([route." + std::string(body_.limit_policy) +
          "] max_body_bytes); nothing was forwarded. Send at most " + limit + " bytes.");
  problem.extensions.emplace_back("max_body_bytes", body_.limit);
  return problem;
}

bool ClientConnection::validate_request_head() {
  if (std::optional<Problem> refused = check_request_head(head_)) {
    client_keep_alive_ = false;
    reply_problem(*refused, {}, "proxy");
    return false;
  }
  expect_continue_ = expects_continue(head_);
  return true;
}

bool ClientConnection::normalize_target() {
  std::string_view target(head_.target);
  std::size_t query = std::min(target.find('?'), target.size());
  std::string why;
  if (!normalize_path(target.substr(0, query), target_, why)) {
    reply_problem(Problem::make("malformed-path", 400, "Malformed path", std::move(why)), {}, "proxy");
    return false;
  }
  path_length_ = target_.size();
  target_.append(target.substr(query));
  routed_path_.clear();
  if (runtime_->config().server.case_insensitive_paths) {
    lower_case_path(std::string_view(target_).substr(0, path_length_), routed_path_);
  }
  return true;
}

void ClientConnection::run_request_policies() {
  const auto& policies = route_->policies;
  if (!policies.empty() && waker_ == nullptr) waker_ = std::make_shared<ExchangeWaker>(worker_, this);
  while (policy_index_ < policies.size()) {
    RequestView view = request_view();
    view.waker = waker_;
    Decision decision = policies[policy_index_]->on_request(view, policy_states_[policy_index_]);
    if (!apply_request_decision(decision)) return;
    ++policy_index_;
  }
  connect_upstream(SIZE_MAX);
}

bool ClientConnection::apply_request_decision(const Decision& decision) {
  switch (decision.kind()) {
    case Decision::Kind::Forward:
      for (const std::string& field : decision.strip_fields()) omit_fields_.push_back(field);
      return true;
    case Decision::Kind::Reply: {
      std::string_view decided_by = route_->policies[policy_index_]->kind();
      if (decision.problem()) {
        reply_problem(*decision.problem(), decision.headers(), decided_by);
      } else {
        reply(decision.status(), decision.content_type(), decision.headers(), decision.body(), decided_by);
      }
      return false;
    }
    case Decision::Kind::Wait: {
      waiting_ = true;
      auto remaining = std::chrono::ceil<Duration>(decision.deadline() - MonotonicClock::now());
      arm_timer(std::max(remaining, Duration(0)));
      return false;
    }
    case Decision::Kind::Call:
      start_side_requests(decision.side_requests());
      return false;
  }
  return false;
}

void ClientConnection::on_woken() {
  if (!waiting_ || phase_ != Phase::Exchange) return;
  waiting_ = false;
  uv_timer_stop(&timer_);
  run_request_policies();  // the waiting policy is asked again
}

void ClientConnection::start_side_requests(const std::vector<SideRequestSpec>& specs) {
  std::vector<SideRequestSpec> resolved = specs;
  std::vector<UpstreamPool*> pools;
  pools.reserve(resolved.size());
  const auto& upstreams = runtime_->config().upstreams;
  for (SideRequestSpec& spec : resolved) {
    std::string_view name = spec.upstream.empty() ? std::string_view(route_->config->upstream) : spec.upstream;
    bool known = std::any_of(upstreams.begin(), upstreams.end(),
                             [&](const UpstreamConfig& upstream) { return upstream.name == name; });
    pools.push_back(known ? &worker_.pool(*runtime_, name) : nullptr);
    if (spec.body_limit == SideRequestSpec::kRouteBodyLimit) spec.body_limit = route_->response_body_limit;
  }
  side_requests_.start(std::move(resolved), pools,
                       SideRequestOrigin{head_.headers, peer_address_, peer_is_trusted_proxy_, request_id_,
                                         believed_client_});
}

void ClientConnection::on_side_responses(std::vector<SideResponse> responses) {
  if (phase_ != Phase::Exchange) return;
  const auto& policies = route_->policies;
  if (!response_pending_) {
    RequestView view = request_view();
    view.waker = waker_;
    Decision decision = policies[policy_index_]->on_side_responses(view, responses, policy_states_[policy_index_]);
    if (!apply_request_decision(decision)) return;
    ++policy_index_;
    run_request_policies();
    return;
  }
  std::size_t i = response_policy_index_ - 1;
  RequestView view = request_view();
  ResponseView response = response_view(view.now);
  policies[i]->on_response_side_responses(view, response, responses, policy_states_[i].get());
  response_status_ = response.status;
  --response_policy_index_;
  run_response_policies(true);
}

void ClientConnection::answer_admin() {
  std::string_view path = std::string_view(head_.target).substr(0, head_.target.find('?'));
  if (path == "/reload") {
    answer_reload();
    return;
  }
  if (head_.method != "GET" && head_.method != "HEAD") {
    reply_problem(Problem::make("method-not-allowed", 405, "Method not allowed", "The admin endpoints take GET."),
                  HeaderList{{"Allow", "GET, HEAD"}}, "admin");
  } else if (path == "/metrics") {
    // The server's current Runtime: the policies a reload just put in place, not this worker's
    // copy, which it adopts on its next loop iteration.
    reply(200, kMetricsContentType, {}, render_metrics(*worker_.server().runtime()), "admin");
  } else if (path == "/config") {
    reply(200, "application/json", {}, config_to_json(worker_.server().runtime()->config()), "admin");
  } else if (path == "/healthz") {
    reply(200, "application/json", {}, R"({"status":"ok"})", "admin");
  } else if (path == "/readyz") {
    if (worker_.draining()) {
      reply(503, "application/json", {}, R"({"status":"draining"})", "admin");
    } else {
      reply(200, "application/json", {}, R"({"status":"ready"})", "admin");
    }
  } else {
    reply_problem(Problem::make("not-found", 404, "Not found",
                                "No admin endpoint " + std::string(path) +
                                    "; there are /healthz, /readyz, /metrics, /config and POST /reload."),
                  {}, "admin");
  }
}

void ClientConnection::answer_reload() {
  if (head_.method != "POST") {
    reply_problem(Problem::make("method-not-allowed", 405, "Method not allowed", "Reload with POST /reload."),
                  HeaderList{{"Allow", "POST"}}, "admin");
    return;
  }
  // Parsing a configuration file takes this worker's loop for a moment; reloads are rare.
  ReloadOutcome outcome = worker_.server().reload();
  if (!outcome.applied) {
    Problem problem = Problem::make("invalid-configuration", 422, "Configuration refused",
                                    "The new configuration has errors; Arbiter keeps serving with the previous one.");
    nlohmann::json errors = nlohmann::json::array();
    for (const ConfigDiagnostic& diagnostic : outcome.errors) {
      errors.push_back({{"file", diagnostic.file},
                        {"line", diagnostic.line},
                        {"column", diagnostic.column},
                        {"key", diagnostic.key},
                        {"message", diagnostic.message},
                        {"text", diagnostic.text()}});
    }
    problem.extensions.emplace_back("errors", std::move(errors));
    reply_problem(problem, {}, "admin");
    return;
  }
  nlohmann::json body = {{"status", "reloaded"},
                         {"file", worker_.server().runtime()->config().file},
                         {"restart_needed_for", outcome.notes}};
  reply(200, "application/json", {}, body.dump(), "admin");
}

void ClientConnection::connect_upstream(std::size_t avoid_server) {
  ++upstream_attempts_;
  forwarding_ = true;
  answer_ = Answer::Upstream;
  decided_by_ = "forwarded";
  upstream_started_ns_ = uv_hrtime();
  UpstreamConnection* connection = worker_.pool(*runtime_, route_->config->upstream).acquire(*this, avoid_server);
  upstream_ = connection;
  last_server_ = connection->server_index();
  if (connection->ready()) on_upstream_connected(*connection);
}

void ClientConnection::on_upstream_connected(UpstreamConnection& connection) {
  upstream_ = &connection;
  head_scratch_.clear();
  // A body read first goes with the head, framed by its length whatever the client's framing.
  bool body_in_memory = body_.first == BodyFirst::InMemory;
  BodyFraming framing = body_in_memory ? BodyFraming::ContentLength : head_.framing;
  write_upstream_request_head(
      head_scratch_, UpstreamRequest{head_.method,
                                     runtime_->config().server.forward_raw_path ? head_.target : target_,
                                     head_.headers, peer_address_,
                                     peer_is_trusted_proxy_,
                                     request_id_, connection.authority(), framing,
                                     body_in_memory ? request_body_.size() : head_.content_length, omit_fields_,
                                     believed_client_, upgrade()});
  uv_buf_t bufs[2] = {make_buf(head_scratch_.data(), head_scratch_.size()),
                      make_buf(request_body_.data(), request_body_.size())};
  if (!connection.send(bufs, body_in_memory ? 2 : 1)) return;  // on_upstream_failed has run
  upstream_->expect_response(head_.method == "HEAD", upgrade());
  if (framing == BodyFraming::None || body_in_memory) upstream_->request_finished();
  if (expect_continue_ && !parser_.message_complete()) {
    expect_continue_ = false;
    uv_buf_t interim = make_buf(kContinue.data(), kContinue.size());
    send_to_client(&interim, 1);
  }
  if (!parser_.message_complete()) {
    start_body_clock();
    resume_parser();  // the body streams on; pipelined requests wait
  }
}

void ClientConnection::forward_request_body(const char* data, std::size_t length) {
  if (head_.framing == BodyFraming::Chunked) {
    std::string size_line = chunk_size_line(length);
    uv_buf_t bufs[3] = {make_buf(size_line.data(), size_line.size()), make_buf(data, length), make_buf("\r\n", 2)};
    upstream_->send(bufs, 3);
  } else {
    uv_buf_t buf = make_buf(data, length);
    upstream_->send(&buf, 1);
  }
}

void ClientConnection::on_upstream_failed(UpstreamFailure failure, bool connection_was_reused, int error) {
  upstream_ = nullptr;
  upstream_ns_ += uv_hrtime() - upstream_started_ns_;
  if (phase_ == Phase::Closed) return;
  if (!response_head_sent_ && !buffering_body_ && parser_.body_bytes() == 0) {
    RetryChoice retry = choose_retry(failure, connection_was_reused, is_idempotent(head_.method), upstream_attempts_,
                                     last_server_);
    if (retry.retry) {
      connect_upstream(retry.avoid_server);
      return;
    }
  }
  forwarding_ = false;
  if (response_head_sent_) {
    close_now();  // the client has part of a response; only closing tells it so
    return;
  }
  if (!parser_.message_complete()) client_keep_alive_ = false;
  buffering_body_ = false;
  holding_response_ = false;
  bool timeout = failure == UpstreamFailure::ResponseTimeout;
  std::string detail = describe(failure, error);
  detail += " (upstream '" + route_->config->upstream + "', route '" + route_->config->name + "').";
  reply_problem(timeout ? Problem::make("upstream-timeout", 504, "Upstream timed out", std::move(detail))
                        : Problem::make("upstream-unavailable", 502, "Upstream unavailable", std::move(detail)),
                {}, "proxy");
}

void ClientConnection::on_upstream_head(int status, HeaderList& headers, BodyFraming framing,
                                        std::uint64_t content_length) {
  response_status_ = status;
  upstream_ns_ += uv_hrtime() - upstream_started_ns_;
  if (status == 101) {
    held_headers_ = headers;  // relayed by on_upstream_upgraded, which follows at once
    return;
  }
  if (route_->policies.empty()) {
    send_response_head(headers, framing, content_length);
    return;
  }
  // Held back for the response policies; copied, since the upstream's list is reused.
  held_headers_ = headers;
  held_framing_ = framing;
  held_length_ = content_length;
  bool body_follows = framing != BodyFraming::None && head_.method != "HEAD";
  if (!body_follows) {
    holding_response_ = true;  // the policies run at on_upstream_complete, which follows at once
  } else if (route_->response_body_limit > 0 && !is_stream_response(headers)) {
    // A stream (server-sent events) may never end: it is relayed as it arrives, never held.
    holding_response_ = true;
    buffering_body_ = true;
    buffered_body_.clear();
  } else {
    release_held_head_withheld();
  }
}

void ClientConnection::release_held_head_withheld() {
  // The body streams: the policies see the head only and cannot fetch first.
  holding_response_ = false;
  body_withheld_ = true;
  response_policy_index_ = route_->policies.size();
  run_response_policies(false);
  send_response_head(held_headers_, held_framing_, held_length_);
}

ResponseView ClientConnection::response_view(MonotonicTime now) {
  return ResponseView{response_status_, held_headers_, buffering_body_ ? &buffered_body_ : nullptr, body_withheld_,
                      now};
}

void ClientConnection::run_response_policies(bool may_fetch) {
  const auto& policies = route_->policies;
  response_pending_ = true;
  while (response_policy_index_ > 0) {
    std::size_t i = response_policy_index_ - 1;
    RequestView view = request_view();
    ResponseView response = response_view(view.now);
    ResponseStep step = policies[i]->on_response(view, response, policy_states_[i].get());
    response_status_ = response.status;
    if (step.fetch_first && may_fetch) {
      start_side_requests(step.side_requests);
      return;
    }
    --response_policy_index_;
  }
  if (may_fetch) deliver_held_response();
}

void ClientConnection::deliver_held_response() {
  holding_response_ = false;
  if (buffering_body_) {
    buffering_body_ = false;
    send_response_head(held_headers_, BodyFraming::ContentLength, buffered_body_.size());
    send_response_body(buffered_body_);
  } else {
    send_response_head(held_headers_, held_framing_, held_length_);
  }
  flush_pending_head();
  response_complete_ = true;
  if (parser_.message_complete() || !response_keep_alive_) finish_exchange();
}

void ClientConnection::send_response_head(HeaderList& headers, BodyFraming upstream_framing,
                                          std::uint64_t content_length) {
  bool no_body = head_.method == "HEAD" || status_has_no_body(response_status_);
  response_has_body_ = !no_body && upstream_framing != BodyFraming::None;
  // A request whose body is still arriving cannot be followed by another on this connection.
  response_keep_alive_ = client_keep_alive_ && parser_.message_complete() && !worker_.draining();
  BodyFraming announced = upstream_framing;
  if (no_body) {
    // HEAD keeps the length the GET would have; 304 and the others announce none.
    announced = upstream_framing == BodyFraming::ContentLength && head_.method == "HEAD" ? BodyFraming::ContentLength
                                                                                   : BodyFraming::None;
  } else if (upstream_framing == BodyFraming::Chunked || upstream_framing == BodyFraming::UntilClose) {
    announced = head_.http10 ? BodyFraming::UntilClose : BodyFraming::Chunked;
    if (head_.http10) response_keep_alive_ = false;
  }
  response_framing_ = no_body ? BodyFraming::None : announced;
  headers.add("Via", "1.1 arbiter");
  head_scratch_.clear();
  write_client_response_head(head_scratch_, ClientResponse{response_status_, headers, announced, content_length,
                                                           response_keep_alive_, head_.http10, request_id_});
  response_head_sent_ = true;
  // Held until the first body bytes or the end of this upstream read, so that a small
  // response leaves in one write (one TCP segment) instead of two.
  head_pending_ = true;
}

void ClientConnection::send_with_pending_head(uv_buf_t* bufs, unsigned count) {
  if (!head_pending_) {
    send_to_client(bufs + 1, count - 1);
    return;
  }
  head_pending_ = false;
  bufs[0] = make_buf(head_scratch_.data(), head_scratch_.size());
  send_to_client(bufs, count);
}

void ClientConnection::flush_pending_head() {
  uv_buf_t head[1];
  if (head_pending_) send_with_pending_head(head, 1);
}

void ClientConnection::send_response_body(std::string_view data) {
  if (data.empty() || !response_has_body_) return;
  response_bytes_ += data.size();
  if (response_framing_ == BodyFraming::Chunked) {
    std::string size_line = chunk_size_line(data.size());
    uv_buf_t bufs[4] = {{}, make_buf(size_line.data(), size_line.size()), make_buf(data.data(), data.size()),
                        make_buf("\r\n", 2)};
    send_with_pending_head(bufs, 4);
  } else {
    uv_buf_t bufs[2] = {{}, make_buf(data.data(), data.size())};
    send_with_pending_head(bufs, 2);
  }
  if (upstream_ != nullptr && tcp_.write_queue_size > kHighWater) upstream_->pause_reading();
}

void ClientConnection::on_upstream_read_end() { flush_pending_head(); }

void ClientConnection::on_upstream_body(std::string_view data) {
  if (phase_ == Phase::Closed) return;
  if (buffering_body_) {
    if (buffered_body_.size() + data.size() <= route_->response_body_limit) {
      buffered_body_.append(data);
      return;
    }
    // Too large for the policies to see: they get the head only, and the body streams on.
    buffering_body_ = false;
    release_held_head_withheld();
    send_response_body(buffered_body_);
    buffered_body_.clear();
  }
  send_response_body(data);
}

void ClientConnection::on_upstream_trailers(const HeaderList& trailers) {
  // Only a chunked answer can carry them, and only to a client that said it takes them.
  if (response_framing_ == BodyFraming::Chunked && accepts_trailers(head_.headers)) response_trailers_ = trailers;
}

void ClientConnection::on_upstream_complete() {
  upstream_ = nullptr;
  forwarding_ = false;
  if (phase_ == Phase::Closed) return;
  if (holding_response_) {
    response_policy_index_ = route_->policies.size();
    run_response_policies(true);
    return;
  }
  if (response_framing_ == BodyFraming::Chunked) {
    std::string last_chunk;
    write_last_chunk(last_chunk, response_trailers_);
    uv_buf_t bufs[2] = {{}, make_buf(last_chunk.data(), last_chunk.size())};
    send_with_pending_head(bufs, 2);
  }
  flush_pending_head();
  response_complete_ = true;
  if (response_framing_ == BodyFraming::UntilClose) response_keep_alive_ = false;
  if (parser_.message_complete() || !response_keep_alive_) finish_exchange();
}

void ClientConnection::on_upstream_drained() { update_reading(); }

void ClientConnection::on_write_done(int status) {
  if (phase_ == Phase::Closed) return;
  if (tunnel_ != nullptr) {
    tunnel_->on_write_done(TunnelSide::Client, status);
    return;
  }
  if (status < 0) {
    close_now();
    return;
  }
  if (upstream_ != nullptr && tcp_.write_queue_size < kLowWater) upstream_->resume_reading();
}

// ---------------------------------------------------------------- answers made here

void ClientConnection::reply_problem(const Problem& problem, const HeaderList& extra, std::string_view decided_by) {
  std::string body = problem.to_json(request_id_);
  reply(problem.status, kProblemContentType, extra, body, decided_by);
}

void ClientConnection::reply(int status, std::string_view content_type, const HeaderList& extra,
                             std::string_view body, std::string_view decided_by) {
  answer_ = Answer::Local;
  decided_by_ = decided_by;
  response_status_ = status;
  // A body not yet read must be read and dropped before the next request can be parsed
  // (nginx's "discard body"). That is worth it for a small one, and for a client that is not
  // waiting for a 100 before sending it; otherwise the connection closes after the answer.
  bool unread_body = !parser_.message_complete() && head_.framing != BodyFraming::None;
  bool drain = unread_body && !expect_continue_ && forwarding_ == false &&
               (head_.framing == BodyFraming::Chunked || head_.content_length <= kMaxDrainedBody);
  response_keep_alive_ = client_keep_alive_ && (!unread_body || drain) && !worker_.draining() && parser_.head_complete();
  HeaderList headers = extra;
  if (!content_type.empty()) headers.add("Content-Type", content_type);
  headers.add("Cache-Control", "no-store");
  head_scratch_.clear();
  BodyFraming framing = status_has_no_body(status) ? BodyFraming::None : BodyFraming::ContentLength;
  write_client_response_head(head_scratch_, ClientResponse{status, headers, framing, body.size(),
                                                           response_keep_alive_, head_.http10, request_id_});
  response_head_sent_ = true;
  response_bytes_ = head_.method == "HEAD" ? 0 : body.size();
  uv_buf_t bufs[2] = {make_buf(head_scratch_.data(), head_scratch_.size()), make_buf(body.data(), response_bytes_)};
  send_to_client(bufs, 2);
  response_complete_ = true;
  if (response_keep_alive_ && !parser_.message_complete()) {
    // The parser reads the rest of the request (dropping any body), then finish_exchange runs.
    arm_timer(worker_.runtime()->config().server.idle_timeout);
    resume_parser();
  } else {
    finish_exchange();
  }
}

void ClientConnection::send_to_client(const uv_buf_t* bufs, unsigned count) {
  if (phase_ == Phase::Closed || phase_ == Phase::Lingering) return;
  if (write_to_stream(reinterpret_cast<uv_stream_t*>(&tcp_), bufs, count, this) != 0) close_now();
}

// ---------------------------------------------------------------- end of an exchange

void ClientConnection::finish_exchange() {
  if (phase_ == Phase::Closed) return;
  log_exchange();
  bool keep_alive = response_keep_alive_ && !worker_.draining();
  reset_exchange();
  if (!keep_alive) {
    close_gracefully();
    return;
  }
  phase_ = Phase::Idle;
  arm_timer(worker_.runtime()->config().server.idle_timeout);
  resume_parser();
}

void ClientConnection::reset_exchange() {
  side_requests_.cancel();
  // The waker stays for the connection's next exchanges: a late wake meant for this one finds
  // waiting_ false, or makes a waiting policy check again, which it tolerates.
  waiting_ = false;
  policy_index_ = 0;
  omit_fields_.clear();
  policy_states_.clear();  // releases whatever the policies held for this request
  runtime_.reset();
  route_ = nullptr;
  params_.clear();
  parser_.next_request();
  expect_continue_ = false;
  request_id_.clear();
  believed_client_.clear();
  body_ = {};
  if (request_body_.capacity() > kLowWater) {
    std::string().swap(request_body_);  // an idle connection keeps no large buffer
  } else {
    request_body_.clear();
  }
  upstream_attempts_ = 0;
  upstream_ns_ = 0;
  forwarding_ = false;
  answer_ = Answer::None;
  decided_by_ = {};
  response_status_ = 0;
  response_head_sent_ = false;
  head_pending_ = false;
  response_complete_ = false;
  response_has_body_ = false;
  response_framing_ = BodyFraming::None;
  response_bytes_ = 0;
  response_trailers_.clear();
  buffering_body_ = false;
  holding_response_ = false;
  response_pending_ = false;
  response_policy_index_ = 0;
  body_withheld_ = false;
  held_headers_.clear();
  buffered_body_.clear();
}

void ClientConnection::log_exchange() {
  if (answer_ == Answer::None) return;
  std::string_view route = route_ != nullptr ? std::string_view(route_->config->name) : std::string_view();
  int status = response_complete_ ? response_status_ : 499;  // nginx's "client closed request"
  if (!admin_) {
    // Timed only when the upstream's head arrived (response_status_ is set from it): a failed
    // attempt is a 502/504 answered by Arbiter, and a client gone first leaves nothing to time.
    bool upstream_answered = answer_ == Answer::Upstream && response_status_ != 0;
    metrics_.record_exchange(route, head_.method, status,
                             upstream_answered ? static_cast<double>(upstream_ns_) / 1e9 : -1.0);
  }
  AccessLog& log = worker_.access_log();
  if (!log.enabled()) return;
  // The format of the Runtime the request ran under (runtime_ is gone for a request that never
  // got that far: a timeout or a malformed head).
  AccessLogFormat format = runtime_ != nullptr ? runtime_->config().log.format
                                               : worker_.runtime()->config().log.format;
  std::uint64_t now = uv_hrtime();
  AccessRecord record;
  record.request_id = request_id_;
  record.client = client_address();
  record.method = head_.method.empty() ? std::string_view("-") : head_.method;
  record.target = head_.target;
  record.protocol = head_.http10 ? "HTTP/1.0" : "HTTP/1.1";
  if (format == AccessLogFormat::Combined) {
    record.referer = head_.headers.find("referer").value_or(std::string_view());
    record.user_agent = head_.headers.find("user-agent").value_or(std::string_view());
  }
  record.route = route;
  record.status = status;
  record.bytes_sent = response_bytes_;
  record.upstream_ms = answer_ == Answer::Upstream || upstream_ns_ > 0 ? static_cast<double>(upstream_ns_) / 1e6 : -1;
  record.total_ms = elapsed_ms(started_ns_, now);
  record.decision = decided_by_;
  log.record(record, format);
}

RequestView ClientConnection::request_view() const {
  std::string_view target(target_);
  std::string_view query = target.substr(path_length_);
  return RequestView{head_.method,
                     target,
                     target.substr(0, path_length_),
                     query.empty() ? query : query.substr(1),
                     head_.headers,
                     client_address(),
                     route_->config->name,
                     params_,
                     request_id_,
                     MonotonicClock::now(),
                     nullptr,
                     routed_path_};
}

std::string_view ClientConnection::client_address() const noexcept {
  return believed_client_.empty() ? std::string_view(peer_address_) : std::string_view(believed_client_);
}

void ClientConnection::arm_timer(Duration timeout) {
  uv_timer_start(&timer_, on_timer, static_cast<std::uint64_t>(timeout.count()), 0);
}

void ClientConnection::on_timer(uv_timer_t* timer) {
  auto* self = static_cast<ClientConnection*>(timer->data);
  if (self->tunnel_ != nullptr) {
    self->on_tunnel_timer();
    return;
  }
  switch (self->phase_) {
    case Phase::ReadingHead:
      self->client_keep_alive_ = false;
      self->phase_ = Phase::Exchange;
      self->worker_.next_request_id(self->request_id_);
      self->reply_problem(Problem::make("request-timeout", 408, "Request timeout",
                                        "The request head did not arrive within header_timeout."),
                          {}, "proxy");
      break;
    case Phase::Idle:
    case Phase::Lingering:
      self->close_now();
      break;
    case Phase::Exchange:
      if (self->waiting_) {
        self->waiting_ = false;
        self->run_request_policies();  // past its deadline: the waiting policy decides
      } else if (self->response_complete_) {
        self->close_now();  // the body being dropped after a local answer stopped coming
      } else if (self->streaming_request_body()) {
        self->refuse_request(
            self->body_.timer_is_deadline
                ? Problem::make("request-timeout", 408, "Request timeout",
                                "The request body did not arrive whole within body_deadline (" +
                                    duration_text(self->runtime_->config().server.body_deadline) + ").")
                : Problem::make("request-timeout", 408, "Request timeout",
                                "The request body stalled: nothing arrived within body_timeout."));
      }
      break;
    case Phase::Closed:
      break;
  }
}

void ClientConnection::close_gracefully() {
  if (phase_ == Phase::Closed || phase_ == Phase::Lingering) return;
  phase_ = Phase::Lingering;
  // Shut the write side once queued writes are out, then drain what the client still sends:
  // closing with unread input would reset the connection and could destroy the answer.
  shutdown_request_.data = this;
  if (uv_shutdown(&shutdown_request_, reinterpret_cast<uv_stream_t*>(&tcp_), on_shutdown) != 0) {
    close_now();
    return;
  }
  arm_timer(kLingerTimeout);
  update_reading();
}

void ClientConnection::on_shutdown(uv_shutdown_t* request, int status) {
  auto* self = static_cast<ClientConnection*>(request->data);
  if (status < 0 && self->phase_ != Phase::Closed) self->close_now();
}

void ClientConnection::close_now() {
  if (phase_ == Phase::Closed) return;
  if (tunnel_upstream_ != nullptr) end_tunnel();
  if (answer_ != Answer::None) log_exchange();
  phase_ = Phase::Closed;
  if (upstream_ != nullptr) {
    UpstreamConnection* upstream = upstream_;
    upstream_ = nullptr;
    upstream->abandon();
  }
  side_requests_.cancel();
  if (waker_ != nullptr) waker_->detach();
  policy_states_.clear();
  uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), on_closed);
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), on_closed);
}

void ClientConnection::on_closed(uv_handle_t* handle) {
  auto* self = static_cast<ClientConnection*>(handle->data);
  if (--self->handles_open_ == 0) {
    if (!self->admin_) self->metrics_.connection_closed();
    self->worker_.connection_closed(self);
    delete self;
  }
}

}  // namespace arbiter
