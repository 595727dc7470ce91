#include "proxy/exchange/exchange.h"

#include <algorithm>
#include <cstdio>

#include "proxy/control/config_json.h"
#include "proxy/control/control_endpoints.h"
#include "proxy/exchange/local_answer.h"
#include "proxy/http/path_normalization.h"
#include "proxy/net/stream_write.h"
#include "proxy/observe/log.h"

namespace arbiter {

namespace {

// A request body up to this size is read and dropped after a local answer, to keep the
// connection; a larger one closes it.
constexpr std::uint64_t kMaxDrainedBody = 1u << 20;
// A body buffer larger than this is not kept for the connection's next exchange.
constexpr std::size_t kKeptBodyCapacity = 64u << 10;
constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
constexpr std::string_view kLastChunk = "0\r\n\r\n";  // without trailer fields

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

// "1a2b\r\n" into `text`; returns its length.
std::size_t chunk_size_line(char (&text)[24], std::size_t size) {
  return static_cast<std::size_t>(std::snprintf(text, sizeof text, "%zx\r\n", size));
}

double seconds(MonotonicClock::duration d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

Exchange::Exchange(ExchangeHost& host, ExchangeScratch& scratch, RequestHead& head, MonotonicTime started)
    : host_(host), scratch_(scratch), head_(head), runtime_(host.runtime()), started_(started) {
  scratch_.request_id.clear();
  scratch_.believed_client.clear();
  scratch_.params.clear();
  scratch_.policy_states.clear();
  scratch_.omit_fields.clear();
  scratch_.request_body.clear();
  scratch_.held_headers.clear();
  scratch_.held_body.clear();
  scratch_.last_chunk.clear();
}

Exchange::~Exchange() {
  if (auto stream = std::move(local_stream_)) stream->on_exchange_closed();
  drop_upstream();
  cancel_side_requests();
  scratch_.policy_states.clear();  // releases whatever the policies held for this request
  if (scratch_.request_body.capacity() > kKeptBodyCapacity) std::string().swap(scratch_.request_body);
}

// ---------------------------------------------------------------- the request

void Exchange::start() {
  client_keep_alive_ = head_.keep_alive;
  if (auto id = head_.headers.find("x-request-id"); id && acceptable_request_id(*id)) {
    scratch_.request_id.assign(*id);
  } else {
    host_.next_request_id(scratch_.request_id);
  }
  if (!validate_request_head()) return;
  if (const HandlerRegistry* handlers = host_.listener_handlers()) {
    // The admin listener: every path is the registry's, as received.
    std::string_view target(head_.target);
    std::size_t query = std::min(target.find('?'), target.size());
    answer_locally(*handlers, {}, target.substr(0, query), target.substr(std::min(query + 1, target.size())));
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
  if (!normalize_request_target()) return;
  std::string_view path = scratch_.target.path();
  if (const HandlerRegistry* control = host_.control_handlers();
      control != nullptr &&
      in_control_namespace(path, config.server.control_prefix, config.server.case_insensitive_paths)) {
    answer_locally(*control, config.server.control_prefix, path, scratch_.target.query());
    return;
  }
  route_request();
}

void Exchange::route_request() {
  const Config& config = runtime_->config();
  std::string_view path = scratch_.target.path();
  RouteMatch match;
  match.params.swap(scratch_.params);  // reuses the capacity of the last request's captures
  std::string allowed;
  switch (runtime_->router().match(head_.method, scratch_.target.routed(), match, &allowed)) {
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
  scratch_.params.swap(match.params);
  scratch_.policy_states.resize(route_->policies.size());
  std::string_view peer = host_.peer_address();
  for (const Cidr& cidr : config.server.trusted_proxies) peer_is_trusted_proxy_ = peer_is_trusted_proxy_ || cidr.contains(peer);
  if (peer_is_trusted_proxy_) {
    scratch_.believed_client = believed_client_address(peer, head_.headers, config.server.trusted_proxies);
  }
  if (!route_->policies.empty()) {  // a route without policies never shows its request to one
    const NormalTarget& target = scratch_.target;
    view_.emplace(RequestView{head_.method, target.target, target.path(), target.query(), head_.headers,
                              client_address(), route_->config->name, scratch_.params, scratch_.request_id,
                              host_.now(), host_.waker(), target.routed_path});
    if (head_.framing != BodyFraming::None && read_body_first()) return;
  }
  run_request_policies();
}

bool Exchange::validate_request_head() {
  if (std::optional<Problem> refused = check_request_head(head_)) {
    client_keep_alive_ = false;
    reply_problem(*refused, {}, "proxy");
    return false;
  }
  expect_continue_ = expects_continue(head_);
  return true;
}

bool Exchange::normalize_request_target() {
  std::string why;
  if (!normalize_target(head_.target, runtime_->config().server.case_insensitive_paths, scratch_.target, why)) {
    reply_problem(Problem::make("malformed-path", 400, "Malformed path", std::move(why)), {}, "proxy");
    return false;
  }
  return true;
}

bool Exchange::read_body_first() {
  RequestView& view = request_view();
  std::size_t limit = 0;
  std::string_view wanted_by;
  for (const auto& policy : route_->policies) {
    if (std::size_t wanted = policy->request_body_limit(view); wanted > limit) {
      limit = wanted;
      wanted_by = policy->kind();
    }
  }
  if (limit == 0) return false;
  begin_body_read(limit, wanted_by);
  return true;
}

void Exchange::begin_body_read(std::size_t limit, std::string_view wanted_by) {
  stage_ = Stage::ReadingBody;
  body_.limit = limit;
  body_.limit_policy = wanted_by;
  if (head_.framing == BodyFraming::ContentLength && head_.content_length > limit) {
    client_keep_alive_ = false;
    reply_problem(body_too_large(head_.content_length, true), {}, "proxy");
    return;
  }
  body_.reading = true;
  // Not reserved from Content-Length: memory grows only with bytes that actually arrive.
  scratch_.request_body.clear();
  send_continue();
  if (client_gone_) return;
  start_body_clock();
  host_.read_request_on();
}

Problem Exchange::body_too_large(std::uint64_t size, bool declared) const {
  std::string limit = std::to_string(body_.limit);
  std::string reached = std::string(declared ? "Content-Length " : "The request body reached ") + std::to_string(size) +
                        " bytes, over the " + limit + " bytes that ";
  Problem problem =
      route_ != nullptr
          ? Problem::make("content-too-large", 413, "Content too large",
                          reached + "route '" + route_->config->name + "' reads whole before a write takes its turn ([route." +
                              std::string(body_.limit_policy) + "] max_body_bytes); nothing was forwarded. Send at most " +
                              limit + " bytes.")
          : Problem::make("content-too-large", 413, "Content too large",
                          reached + std::string(local_call_.path) + " takes; nothing was done. Send at most " + limit +
                              " bytes.");
  problem.extensions.emplace_back("max_body_bytes", body_.limit);
  return problem;
}

bool Exchange::upgrade() const noexcept { return head_.upgrade && route_->config->websocket; }

void Exchange::send_continue() {
  if (!expect_continue_) return;
  expect_continue_ = false;
  std::string_view interim = kContinue;
  send({&interim, 1});
}

bool Exchange::on_request_body(std::string_view piece) {
  if (body_.reading) {
    if (scratch_.request_body.size() + piece.size() > body_.limit) {
      refuse(body_too_large(scratch_.request_body.size() + piece.size(), false));
      return false;
    }
    scratch_.request_body.append(piece);
    arm_body_timer();
    return true;
  }
  if (forwarding_ && upstream_ != nullptr) {
    arm_body_timer();
    forward_request_body(piece);  // a failure is told to the host, which stops the parse
  }
  return true;
}

void Exchange::on_request_complete() {
  if (body_.reading) host_.stop_timer();  // the chain runs at the pause that follows
  if (!forwarding_ || upstream_ == nullptr) return;
  host_.stop_timer();  // the body is all here
  if (head_.framing == BodyFraming::Chunked && !body_.in_memory) {
    std::string_view last = kLastChunk;
    std::string with_trailers;  // built only when the request has trailer fields
    if (!head_.trailers.empty()) {
      write_last_chunk(with_trailers, head_.trailers, scratch_.omit_fields);
      last = with_trailers;
    }
    if (!upstream_->send({&last, 1})) return;  // on_upstream_failed has run
  }
  upstream_->request_finished();
}

void Exchange::on_request_paused() {
  if (body_.reading && host_.request_complete()) {
    body_.reading = false;
    body_.in_memory = true;
    if (local_call_.with_body) {
      call_local_handler();
      return;
    }
    if (replace_body_after_read_) {
      // The client's body was read to be dropped: the policy's goes instead.
      replace_body_after_read_ = false;
      scratch_.request_body.swap(scratch_.held_body);
      scratch_.held_body.clear();
      ++policy_index_;
    }
    run_request_policies();
  } else if (host_.request_complete() && response_complete_) {
    finish();
  }
}

bool Exchange::streaming_request_body() const noexcept {
  return ((forwarding_ && upstream_ != nullptr) || body_.reading) && !host_.request_complete() &&
         !response_complete_ && stage_ != Stage::Parked && !client_gone_;
}

void Exchange::on_reading_changed(bool reading) {
  if (!streaming_request_body()) return;
  // body_timeout counts only while the client is the one awaited, not while the upstream
  // holds us back.
  if (reading) {
    arm_body_timer();
  } else {
    host_.stop_timer();
  }
}

void Exchange::arm_body_timer() {
  Duration timeout = runtime_->config().server.body_timeout;
  MonotonicTime now = host_.now();
  Duration left = std::chrono::ceil<Duration>(body_.deadline > now ? body_.deadline - now : MonotonicClock::duration(0));
  body_.timer_is_deadline = left <= timeout;
  host_.arm_timer(std::min(timeout, left));
}

void Exchange::start_body_clock() {
  if (body_.deadline == MonotonicTime{}) body_.deadline = host_.now() + runtime_->config().server.body_deadline;
  arm_body_timer();
}

std::size_t Exchange::upstream_backlog() const noexcept {
  return upstream_ != nullptr ? upstream_->queued_bytes() : 0;
}

void Exchange::on_client_drained() {
  if (upstream_ != nullptr && host_.client_backlog() < kLowWater) upstream_->resume_reading();
  if (auto stream = local_stream_) stream->on_write_done();
}

// ---------------------------------------------------------------- the request policies

RequestView& Exchange::request_view() {
  view_->now = host_.now();
  view_->body = body_.in_memory ? &scratch_.request_body : nullptr;
  return *view_;
}

void Exchange::run_request_policies() {
  stage_ = Stage::RequestPolicies;
  const auto& policies = route_->policies;
  if (policy_index_ < policies.size()) {
    RequestView& view = request_view();  // one per pass: its policies decide at one instant
    do {
      auto& state = scratch_.policy_states[policy_index_];
      Decision decision = hook_ == Hook::RequestBody
                              ? policies[policy_index_]->on_request_body(view, scratch_.request_body, state)
                              : policies[policy_index_]->on_request(view, state);
      if (!apply_request_decision(decision)) return;
      view.body = body_.in_memory ? &scratch_.request_body : nullptr;  // a policy may have set or read it
    } while (policy_index_ < policies.size());
  }
  connect_upstream(SIZE_MAX);
}

bool Exchange::apply_request_decision(Decision& decision) {
  switch (decision.kind()) {
    case Decision::Kind::Forward:
      for (const std::string& field : decision.strip_fields()) scratch_.omit_fields.push_back(field);
      for (const auto& [name, value] : decision.set_fields()) head_.headers.set(name, value);
      if (!decision.replaced_method().empty()) view_->method = head_.method = decision.replaced_method();
      if (decision.replaced_body()) {
        if (head_.framing != BodyFraming::None && !body_.in_memory) {
          // The client's body has not been read: it is read whole (and dropped) first.
          scratch_.held_body = std::move(*decision.replaced_body());
          replace_body_after_read_ = true;
          hook_ = Hook::Request;
          begin_body_read(runtime_->config().server.max_body_bytes, route_->policies[policy_index_]->kind());
          return false;
        }
        scratch_.request_body = std::move(*decision.replaced_body());
        body_.in_memory = true;
      }
      hook_ = Hook::Request;
      ++policy_index_;
      return true;
    case Decision::Kind::Reply:
      reply_decision(decision, route_->policies[policy_index_]->kind());
      return false;
    case Decision::Kind::Wait:
      park(hook_, decision.deadline());
      return false;
    case Decision::Kind::Call:
      start_side_requests(hook_, std::move(decision.side_requests()));
      return false;
    case Decision::Kind::ReadBody:
      hook_ = Hook::RequestBody;
      if (head_.framing == BodyFraming::None || body_.in_memory) {
        body_.in_memory = true;  // an empty body, or the one already read
        return true;             // on_request_body at once
      }
      begin_body_read(decision.body_limit(), route_->policies[policy_index_]->kind());
      return false;
  }
  return false;
}

void Exchange::park(Hook hook, MonotonicTime deadline) {
  stage_ = Stage::Parked;
  hook_ = hook;
  auto remaining = std::chrono::ceil<Duration>(deadline - host_.now());
  host_.arm_timer(std::max(remaining, Duration(0)));
}

void Exchange::on_woken() {
  if (stage_ != Stage::Parked) return;  // a late wake: the policy already went on
  host_.stop_timer();
  resume_parked();
}

void Exchange::resume_parked() {
  switch (hook_) {
    case Hook::Request:
    case Hook::RequestBody:
      run_request_policies();  // the waiting policy is asked again
      return;
    case Hook::Response:
      run_response_policies(true);
      return;
    case Hook::End:
      run_end_policies();
      return;
  }
}

void Exchange::start_side_requests(Hook hook, std::vector<SideRequestSpec> specs) {
  stage_ = Stage::SideRequest;
  hook_ = hook;
  for (SideRequestSpec& spec : specs) {
    if (spec.upstream.empty()) spec.upstream = route_->config->upstream;
    if (spec.body_limit == SideRequestSpec::kRouteBodyLimit) spec.body_limit = route_->response_body_limit;
  }
  host_.start_side_requests(*runtime_, std::move(specs),
                            SideRequestOrigin{head_.headers, host_.peer_address(), peer_is_trusted_proxy_,
                                              scratch_.request_id, scratch_.believed_client});
}

void Exchange::cancel_side_requests() {
  if (stage_ == Stage::SideRequest) host_.cancel_side_requests();
}

void Exchange::on_side_responses(std::vector<SideResponse> answers) {
  if (stage_ != Stage::SideRequest) return;
  const auto& policies = route_->policies;
  switch (hook_) {
    case Hook::Request:
    case Hook::RequestBody: {
      stage_ = Stage::RequestPolicies;
      RequestView& view = request_view();
      auto& state = scratch_.policy_states[policy_index_];
      Decision decision = policies[policy_index_]->on_side_responses(view, answers, state);
      if (!apply_request_decision(decision)) return;
      run_request_policies();
      return;
    }
    case Hook::Response: {
      std::size_t i = response_policy_index_ - 1;
      RequestView& view = request_view();
      ResponseView response = response_view(view.now);
      policies[i]->on_response_side_responses(view, response, answers, scratch_.policy_states[i].get());
      response_status_ = response.status;
      --response_policy_index_;
      run_response_policies(true);
      return;
    }
    case Hook::End: {
      std::size_t i = end_policy_index_ - 1;
      RequestView& view = request_view();
      policies[i]->on_end_side_responses(view, outcome(view.now), answers, scratch_.policy_states[i].get());
      --end_policy_index_;
      run_end_policies();
      return;
    }
  }
}

// ---------------------------------------------------------------- the upstream

void Exchange::connect_upstream(std::size_t avoid_server) {
  stage_ = Stage::Upstream;
  ++upstream_attempts_;
  forwarding_ = true;
  answer_ = Answer::Upstream;
  decided_by_ = "forwarded";
  upstream_started_ = host_.now();
  UpstreamChannel& channel = host_.open_upstream(*runtime_, route_->config->upstream, *this, avoid_server);
  upstream_ = &channel;
  last_server_ = channel.server_index();
  if (channel.ready()) on_upstream_connected(channel);
}

void Exchange::on_upstream_connected(UpstreamChannel& channel) {
  upstream_ = &channel;
  scratch_.head.clear();
  // A body read first goes with the head, framed by its length whatever the client's framing.
  bool body_in_memory = body_.in_memory;
  BodyFraming framing = body_in_memory ? BodyFraming::ContentLength : head_.framing;
  write_upstream_request_head(
      scratch_.head,
      UpstreamRequest{head_.method, runtime_->config().server.forward_raw_path ? head_.target : scratch_.target.target,
                      head_.headers, host_.peer_address(), peer_is_trusted_proxy_, scratch_.request_id,
                      channel.authority(), framing,
                      body_in_memory ? scratch_.request_body.size() : head_.content_length, scratch_.omit_fields,
                      scratch_.believed_client, upgrade()});
  // A body of known length with bytes of it already received: they are parsed as soon as
  // reading goes on (below), and the head leaves with the first of them (forward_request_body).
  upstream_head_pending_ = framing == BodyFraming::ContentLength && !body_in_memory && !host_.request_complete() &&
                           host_.buffered_request_bytes() > 0;
  if (!upstream_head_pending_) {
    std::string_view pieces[2] = {scratch_.head, scratch_.request_body};
    if (!channel.send({pieces, body_in_memory ? 2u : 1u})) return;  // on_upstream_failed has run
  }
  upstream_->expect_response(head_.method == "HEAD", upgrade());
  if (framing == BodyFraming::None || body_in_memory) upstream_->request_finished();
  if (host_.request_complete()) return;
  send_continue();
  if (client_gone_) return;
  start_body_clock();
  host_.read_request_on();  // the body streams on; pipelined requests wait
}

bool Exchange::send_upstream(std::span<const std::string_view> pieces) {
  if (!upstream_head_pending_) return upstream_->send(pieces);
  upstream_head_pending_ = false;
  std::string_view with_head[4] = {scratch_.head};
  std::size_t count = 1;
  for (std::string_view piece : pieces) with_head[count++] = piece;
  return upstream_->send({with_head, count});
}

void Exchange::forward_request_body(std::string_view data) {
  if (head_.framing == BodyFraming::Chunked) {
    char size_line[24];
    std::string_view pieces[3] = {{size_line, chunk_size_line(size_line, data.size())}, data, "\r\n"};
    send_upstream(pieces);
  } else {
    send_upstream({&data, 1});
  }
}

void Exchange::drop_upstream() {
  forwarding_ = false;
  upstream_head_pending_ = false;
  if (upstream_ == nullptr) return;
  UpstreamChannel* upstream = upstream_;
  upstream_ = nullptr;
  upstream->abandon();
}

void Exchange::on_upstream_failed(UpstreamFailure failure, bool connection_was_reused, int error) {
  upstream_ = nullptr;
  upstream_head_pending_ = false;
  upstream_time_ += host_.now() - upstream_started_;
  if (client_gone_) return;
  if (!response_head_sent_ && !buffering_body_ && host_.request_body_bytes() == 0) {
    RetryChoice retry = choose_retry(failure, connection_was_reused, is_idempotent(head_.method), upstream_attempts_,
                                     last_server_);
    if (retry.retry) {
      connect_upstream(retry.avoid_server);
      return;
    }
  }
  forwarding_ = false;
  if (response_head_sent_) {
    host_.abort_connection();  // the client has part of a response; only closing tells it so
    return;
  }
  if (!host_.request_complete()) client_keep_alive_ = false;
  buffering_body_ = false;
  holding_response_ = false;
  bool timeout = failure == UpstreamFailure::ResponseTimeout;
  std::string detail = describe(failure, error);
  detail += " (upstream '" + route_->config->upstream + "', route '" + route_->config->name + "').";
  reply_problem(timeout ? Problem::make("upstream-timeout", 504, "Upstream timed out", std::move(detail))
                        : Problem::make("upstream-unavailable", 502, "Upstream unavailable", std::move(detail)),
                {}, "proxy");
}

void Exchange::on_upstream_head(int status, HeaderList& headers, BodyFraming framing, std::uint64_t content_length) {
  response_status_ = status;
  upstream_answered_ = true;
  upstream_time_ += host_.now() - upstream_started_;
  if (status == 101) {
    scratch_.held_headers = headers;  // relayed by on_upstream_upgraded, which follows at once
    return;
  }
  if (route_->policies.empty()) {
    send_response_head(headers, framing, content_length);
    return;
  }
  // Held back for the response policies; copied, since the upstream's list is reused.
  scratch_.held_headers = headers;
  held_framing_ = framing;
  held_length_ = content_length;
  bool body_follows = framing != BodyFraming::None && head_.method != "HEAD";
  if (!body_follows) {
    holding_response_ = true;  // the policies run at on_upstream_complete, which follows at once
  } else if (route_->response_body_limit > 0 && !is_stream_response(headers)) {
    // A stream (server-sent events) may never end: it is relayed as it arrives, never held.
    holding_response_ = true;
    buffering_body_ = true;
    scratch_.held_body.clear();
  } else {
    release_held_head_withheld();
  }
}

void Exchange::on_upstream_body(std::string_view data) {
  if (client_gone_) return;
  if (buffering_body_) {
    if (scratch_.held_body.size() + data.size() <= route_->response_body_limit) {
      scratch_.held_body.append(data);
      return;
    }
    // Too large for the policies to see: they get the head only, and the body streams on.
    buffering_body_ = false;
    release_held_head_withheld();
    send_response_body(scratch_.held_body);
    scratch_.held_body.clear();
  }
  send_response_body(data);
}

void Exchange::on_upstream_trailers(const HeaderList& trailers) {
  // Only a chunked answer can carry them, and only to a client that said it takes them.
  if (response_framing_ == BodyFraming::Chunked && accepts_trailers(head_.headers)) {
    scratch_.last_chunk.clear();
    write_last_chunk(scratch_.last_chunk, trailers);
  }
}

void Exchange::on_upstream_complete() {
  upstream_ = nullptr;
  forwarding_ = false;
  if (client_gone_) return;
  if (holding_response_) {
    response_policy_index_ = route_->policies.size();
    run_response_policies(true);
    return;
  }
  if (response_framing_ == BodyFraming::Chunked) send_last_chunk();
  flush_pending_head();
  if (client_gone_) return;
  stage_ = Stage::Delivering;
  response_complete_ = true;
  if (response_framing_ == BodyFraming::UntilClose) response_keep_alive_ = false;
  if (host_.request_complete() || !response_keep_alive_) finish();
}

void Exchange::on_upstream_drained() { host_.update_reading(); }

void Exchange::on_upstream_read_end() { flush_pending_head(); }

void Exchange::on_upstream_upgraded(std::string_view early) {
  forwarding_ = false;
  upstream_ = nullptr;
  if (!route_->policies.empty()) {
    // The policies see the 101 head (a rate limit adds its fields); no body follows for them.
    body_withheld_ = false;
    response_policy_index_ = route_->policies.size();
    run_response_policies(false);
  }
  scratch_.held_headers.add("Via", "1.1 arbiter");
  scratch_.head.clear();
  write_client_response_head(scratch_.head, ClientResponse{response_status_, scratch_.held_headers, BodyFraming::None,
                                                           0, true, false, scratch_.request_id, true});
  response_head_sent_ = true;
  response_complete_ = true;  // the answer is the 101; the access log counts the tunnel's bytes
  std::string_view head = scratch_.head;
  send({&head, 1});
  if (client_gone_) return;
  stage_ = Stage::Tunnel;
  host_.start_tunnel(early);
}

// ---------------------------------------------------------------- the response policies

ResponseView Exchange::response_view(MonotonicTime now) {
  return ResponseView{response_status_, scratch_.held_headers, buffering_body_ ? &scratch_.held_body : nullptr,
                      body_withheld_, now};
}

void Exchange::release_held_head_withheld() {
  // The body streams: the policies see the head only and cannot call side requests, park or reply.
  holding_response_ = false;
  body_withheld_ = true;
  response_policy_index_ = route_->policies.size();
  run_response_policies(false);
  send_response_head(scratch_.held_headers, held_framing_, held_length_);
}

void Exchange::run_response_policies(bool held) {
  const auto& policies = route_->policies;
  if (held) stage_ = Stage::ResponsePolicies;
  if (response_policy_index_ > 0) {
    RequestView& view = request_view();  // one per pass: its policies see one instant
    ResponseView response = response_view(view.now);
    do {
      std::size_t i = response_policy_index_ - 1;
      ResponseStep step = policies[i]->on_response(view, response, scratch_.policy_states[i].get());
      response_status_ = response.status;
      if (held && !apply_response_step(step, i)) return;
      --response_policy_index_;
    } while (response_policy_index_ > 0);
  }
  if (held) deliver_held_response();
}

bool Exchange::apply_response_step(ResponseStep& step, std::size_t policy) {
  if (step.replacement) {
    // The policy answers instead of the upstream: the held response is dropped.
    holding_response_ = false;
    buffering_body_ = false;
    answer_ = Answer::Local;
    reply_decision(*step.replacement, route_->policies[policy]->kind());
    return false;
  }
  if (step.fetch_first) {
    start_side_requests(Hook::Response, std::move(step.side_requests));
    return false;
  }
  if (step.wait) {
    park(Hook::Response, step.deadline);
    return false;
  }
  return true;
}

void Exchange::deliver_held_response() {
  holding_response_ = false;
  stage_ = Stage::Delivering;
  if (buffering_body_) {
    buffering_body_ = false;
    send_response_head(scratch_.held_headers, BodyFraming::ContentLength, scratch_.held_body.size());
    send_response_body(scratch_.held_body);
  } else {
    send_response_head(scratch_.held_headers, held_framing_, held_length_);
  }
  flush_pending_head();
  if (client_gone_) return;
  response_complete_ = true;
  if (host_.request_complete() || !response_keep_alive_) finish();
}

// ---------------------------------------------------------------- to the client

void Exchange::send(std::span<const std::string_view> pieces) {
  if (client_gone_) return;
  host_.send_to_client(pieces);
}

void Exchange::send_response_head(HeaderList& headers, BodyFraming upstream_framing, std::uint64_t content_length) {
  bool no_body = head_.method == "HEAD" || status_has_no_body(response_status_);
  response_has_body_ = !no_body && upstream_framing != BodyFraming::None;
  // A request whose body is still arriving cannot be followed by another on this connection.
  response_keep_alive_ = client_keep_alive_ && host_.request_complete() && !host_.draining();
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
  tell_passed_on_answer(response_status_, headers);
  scratch_.head.clear();
  write_client_response_head(scratch_.head, ClientResponse{response_status_, headers, announced, content_length,
                                                           response_keep_alive_, head_.http10, scratch_.request_id});
  response_head_sent_ = true;
  // Held until the first body bytes or the end of this upstream read, so that a small
  // response leaves in one write (one TCP segment) instead of two.
  head_pending_ = true;
}

void Exchange::send_with_pending_head(std::string_view* pieces, std::size_t count) {
  if (!head_pending_) {
    send({pieces + 1, count - 1});
    return;
  }
  head_pending_ = false;
  pieces[0] = scratch_.head;
  send({pieces, count});
}

void Exchange::send_last_chunk() {
  std::string_view pieces[2] = {{}, scratch_.last_chunk.empty() ? kLastChunk : std::string_view(scratch_.last_chunk)};
  send_with_pending_head(pieces, 2);
}

void Exchange::flush_pending_head() {
  std::string_view head[1];
  if (head_pending_) send_with_pending_head(head, 1);
}

void Exchange::send_response_body(std::string_view data) {
  if (data.empty() || !response_has_body_) return;
  response_bytes_ += data.size();
  if (response_framing_ == BodyFraming::Chunked) {
    char size_line[24];
    std::string_view pieces[4] = {{}, {size_line, chunk_size_line(size_line, data.size())}, data, "\r\n"};
    send_with_pending_head(pieces, 4);
  } else {
    std::string_view pieces[2] = {{}, data};
    send_with_pending_head(pieces, 2);
  }
  if (upstream_ != nullptr && host_.client_backlog() > kHighWater) upstream_->pause_reading();
}

void Exchange::reply_decision(const Decision& answer, std::string_view decided_by) {
  if (!answer.logged_as().empty()) decided_by = answer.logged_as();
  if (answer.problem()) {
    reply_problem(*answer.problem(), answer.headers(), decided_by);
  } else {
    reply(answer.status(), answer.content_type(), answer.headers(), answer.body(), decided_by);
  }
}

void Exchange::reply_problem(const Problem& problem, const HeaderList& extra, std::string_view decided_by) {
  std::string body = problem.to_json(scratch_.request_id);
  reply(problem.status, kProblemContentType, extra, body, decided_by);
}

void Exchange::reply(int status, std::string_view content_type, const HeaderList& extra, std::string_view body,
                     std::string_view decided_by) {
  cancel_side_requests();
  stage_ = Stage::Delivering;
  answer_ = Answer::Local;
  decided_by_ = decided_by;
  response_status_ = status;
  // A body not yet read must be read and dropped before the next request can be parsed
  // (nginx's "discard body"). That is worth it for a small one, and for a client that is not
  // waiting for a 100 before sending it; otherwise the connection closes after the answer.
  bool request_complete = host_.request_complete();
  bool unread_body = !request_complete && head_.framing != BodyFraming::None;
  bool drain = unread_body && !expect_continue_ && !forwarding_ &&
               (head_.framing == BodyFraming::Chunked || head_.content_length <= kMaxDrainedBody);
  response_keep_alive_ = client_keep_alive_ && (!unread_body || drain) && !host_.draining();
  body_.reading = false;
  HeaderList headers = extra;
  if (!content_type.empty()) headers.add("Content-Type", content_type);
  headers.add("Cache-Control", "no-store");
  tell_passed_on_answer(status, headers);
  scratch_.head.clear();
  BodyFraming framing = status_has_no_body(status) ? BodyFraming::None : BodyFraming::ContentLength;
  write_client_response_head(scratch_.head, ClientResponse{status, headers, framing, body.size(), response_keep_alive_,
                                                           head_.http10, scratch_.request_id});
  response_head_sent_ = true;
  response_bytes_ = head_.method == "HEAD" ? 0 : body.size();
  std::string_view pieces[2] = {scratch_.head, body.substr(0, response_bytes_)};
  send(pieces);
  if (client_gone_) return;
  end_local_answer();
}

void Exchange::end_local_answer() {
  response_complete_ = true;
  if (response_keep_alive_ && !host_.request_complete()) {
    // The rest of the request is read (any body dropped); on_request_paused then finishes.
    host_.arm_timer(runtime_->config().server.idle_timeout);
    host_.read_request_on();
  } else {
    finish();
  }
}

// ---------------------------------------------------------------- timers, the end

void Exchange::on_timer() {
  if (stage_ == Stage::Parked) {
    resume_parked();  // past its deadline: the waiting policy decides
  } else if (response_complete_) {
    host_.abort_connection();  // the body being dropped after a local answer stopped coming
  } else if (streaming_request_body()) {
    refuse(body_.timer_is_deadline
               ? Problem::make("request-timeout", 408, "Request timeout",
                               "The request body did not arrive whole within body_deadline (" +
                                   duration_text(runtime_->config().server.body_deadline) + ").")
               : Problem::make("request-timeout", 408, "Request timeout",
                               "The request body stalled: nothing arrived within body_timeout."));
  }
}

void Exchange::refuse(const Problem& problem) {
  client_keep_alive_ = false;
  if (scratch_.request_id.empty()) host_.next_request_id(scratch_.request_id);
  if (response_head_sent_) {
    host_.abort_connection();  // part of an answer is out; only closing can tell the client
    return;
  }
  drop_upstream();  // the upstream has an incomplete request; it must never see the rest
  reply_problem(problem, {}, "proxy");
}

void Exchange::refuse_overloaded() {
  client_keep_alive_ = false;
  host_.next_request_id(scratch_.request_id);
  reply_problem(Problem::make("too-many-connections", 503, "Too many connections",
                              "Arbiter is at its max_connections limit; retry shortly."),
                HeaderList{{"Retry-After", "1"}}, "proxy");
}

ExchangeOutcome Exchange::outcome(MonotonicTime now) {
  return ExchangeOutcome{response_status_, upstream_answered_, response_complete_, client_gone_, now};
}

void Exchange::finish() {
  if (hook_ == Hook::End) return;  // the end hooks have begun
  hook_ = Hook::End;
  log_exchange();
  end_policy_index_ = route_ != nullptr ? route_->policies.size() : 0;
  run_end_policies();
}

void Exchange::run_end_policies() {
  stage_ = Stage::Ending;
  if (end_policy_index_ > 0) {
    RequestView& view = request_view();  // one per pass: its policies see one instant
    const ExchangeOutcome ended = outcome(view.now);
    do {
      std::size_t i = end_policy_index_ - 1;
      ResponseStep step = route_->policies[i]->on_end(view, ended, scratch_.policy_states[i].get());
      if (step.fetch_first) {
        start_side_requests(Hook::End, std::move(step.side_requests));
        return;
      }
      if (step.wait) {
        park(Hook::End, step.deadline);
        return;
      }
      --end_policy_index_;
    } while (end_policy_index_ > 0);
  }
  stage_ = Stage::Done;
  host_.exchange_done(response_keep_alive_ && !client_gone_ && !host_.draining());
}

void Exchange::on_client_gone() {
  if (stage_ == Stage::Done || client_gone_) return;
  client_gone_ = true;
  client_keep_alive_ = false;
  response_keep_alive_ = false;
  drop_upstream();
  if (auto stream = std::move(local_stream_)) stream->on_exchange_closed();  // the handler stops writing
  if (hook_ == Hook::End) return;  // the end hooks go on (parked or calling side requests) and finish
  cancel_side_requests();
  if (stage_ == Stage::Parked) host_.stop_timer();
  finish();
}

void Exchange::log_exchange() {
  if (answer_ == Answer::None) return;
  std::string_view route = route_ != nullptr ? std::string_view(route_->config->name) : std::string_view();
  int status = response_complete_ ? response_status_ : 499;  // nginx's "client closed request"
  // Timed only when the upstream's head arrived: a failed attempt is a 502/504 answered by
  // Arbiter, and a client gone first leaves nothing to time.
  bool upstream_timed = answer_ == Answer::Upstream && upstream_answered_;
  host_.record_metrics(route, head_.method, status, upstream_timed ? seconds(upstream_time_) : -1.0);
  AccessLog* log = host_.access_log();
  if (log == nullptr) return;
  AccessRecord record;
  record.request_id = scratch_.request_id;
  record.client = client_address();
  record.method = head_.method.empty() ? std::string_view("-") : head_.method;
  record.target = head_.target;
  record.protocol = head_.http10 ? "HTTP/1.0" : "HTTP/1.1";
  AccessLogFormat format = runtime_->config().log.format;
  if (format == AccessLogFormat::Combined) {
    record.referer = head_.headers.find("referer").value_or(std::string_view());
    record.user_agent = head_.headers.find("user-agent").value_or(std::string_view());
  }
  record.route = route;
  record.status = status;
  record.bytes_sent = response_bytes_;
  record.upstream_ms = answer_ == Answer::Upstream || upstream_time_.count() > 0 ? seconds(upstream_time_) * 1e3 : -1;
  record.total_ms = seconds(host_.now() - started_) * 1e3;
  record.decision = decided_by_;
  log->record(record, format);
}

std::string_view Exchange::client_address() const noexcept {
  return scratch_.believed_client.empty() ? host_.peer_address() : std::string_view(scratch_.believed_client);
}

}  // namespace arbiter
