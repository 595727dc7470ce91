// An Exchange's local answers: the admin endpoints and [server] control_prefix, answered by a
// handler of the host's registries (proxy/control/handler_registry.h) instead of an upstream,
// at once or as a held-open response.

#include "proxy/exchange/local_answer.h"

#include "proxy/control/control_access.h"
#include "proxy/control/handler_registry.h"
#include "proxy/exchange/exchange.h"

namespace arbiter {

void Exchange::answer_locally(const HandlerRegistry& registry, std::string_view mount, std::string_view path,
                              std::string_view query) {
  ControlAccess access;  // [control] decides on the control prefix; the admin listener has no mount
  if (!mount.empty()) {
    access = check_control_access(runtime_->config(), registry, head_.method, path.substr(mount.size()), head_.headers,
                                  host_.peer_address());
  }
  if (!access.granted()) {
    reply_problem(*access.refusal, access.fields, "control-access");
    return;
  }
  local_call_ = LocalCall{&registry, mount, path, query, false, std::move(access.principal)};
  HandlerRegistry::Lookup found = registry.find(head_.method, path.substr(mount.size()));
  if (found.outcome == HandlerRegistry::Outcome::Found && found.entry->body_limit > 0 &&
      head_.framing != BodyFraming::None) {
    local_call_.with_body = true;
    begin_body_read(found.entry->body_limit, registry.name());  // call_local_handler follows
    return;
  }
  call_local_handler();
}

void Exchange::call_local_handler() {
  const HandlerRegistry& registry = *local_call_.registry;
  std::string_view body = local_call_.with_body ? std::string_view(scratch_.request_body) : std::string_view();
  ExchangeResponder responder(*this, registry.name());
  LocalRequest request{head_.method, head_.target, local_call_.path, local_call_.query, head_.headers, body,
                       scratch_.request_id, local_call_.mount, local_call_.principal};
  registry.dispatch(request, responder);
  if (responder.passed_on()) {
    pass_on(std::move(*responder.passed_on()));
    return;
  }
  if (!responder.answered()) {
    reply_problem(Problem::make("internal-error", 500, "Internal error",
                                "The " + registry.name() + " endpoint " + std::string(local_call_.path) +
                                    " gave no answer."),
                  {}, registry.name());
  }
}

std::shared_ptr<LocalStream> Exchange::start_stream(int status, const HeaderList& fields, StreamListener& listener,
                                                    std::string_view decided_by) {
  stage_ = Stage::Streaming;
  answer_ = Answer::Local;
  decided_by_ = decided_by;
  response_status_ = status;
  // A stream has no end the client could wait for before sending a body, so an unread request
  // body is not drained: the connection closes after the stream instead. An HTTP/1.0 client's
  // stream ends by closing.
  bool unread_body = !host_.request_complete() && head_.framing != BodyFraming::None;
  response_keep_alive_ = client_keep_alive_ && !unread_body && !head_.http10 && !host_.draining();
  bool head_only = head_.method == "HEAD" || status_has_no_body(status);
  BodyFraming framing = status_has_no_body(status) ? BodyFraming::None
                        : head_.http10             ? BodyFraming::UntilClose
                                                   : BodyFraming::Chunked;
  HeaderList headers = fields;
  if (!headers.contains("cache-control")) headers.add("Cache-Control", "no-store");
  scratch_.head.clear();
  write_client_response_head(scratch_.head, ClientResponse{status, headers, framing, 0, response_keep_alive_,
                                                           head_.http10, scratch_.request_id});
  response_head_sent_ = true;
  response_has_body_ = !head_only;
  response_framing_ = head_only ? BodyFraming::None : framing;
  head_pending_ = true;
  flush_pending_head();
  auto closed = std::make_shared<ExchangeStream>(nullptr, listener);
  if (client_gone_) return closed;
  if (head_only) {
    end_local_answer();  // may destroy this exchange
    return closed;
  }
  local_stream_ = std::make_shared<ExchangeStream>(this, listener);
  return local_stream_;
}

void Exchange::on_drain() {
  if (auto stream = local_stream_) stream->on_drain();
}

void Exchange::pass_on(PassedOnRequest request) {
  bool bodiless = head_.framing == BodyFraming::None || local_call_.with_body ||
                  (head_.framing == BodyFraming::ContentLength && head_.content_length == 0);
  local_call_ = {};
  if (!bodiless) {
    reply_problem(Problem::make("unexpected-body", 400, "Unexpected body",
                                std::string(head_.method) + " " + std::string(scratch_.target.path()) +
                                    " takes no body: its parameters are in the query. Send it without one."),
                  {}, "control");
    return;
  }
  head_.method = request.method;
  head_.target = std::move(request.target);
  hand_on_credentials(runtime_->config().control, head_.headers);
  head_.framing = BodyFraming::None;
  head_.content_length = 0;
  for (const auto& [name, value] : request.fields) head_.headers.set(name, value);
  if (!normalize_request_target()) return;
  scratch_.request_body = std::move(request.body);
  body_.in_memory = true;
  on_passed_on_answer_ = std::move(request.on_answer);
  route_request();
}

void Exchange::tell_passed_on_answer(int status, HeaderList& fields) {
  if (!on_passed_on_answer_) return;
  auto observer = std::move(on_passed_on_answer_);
  on_passed_on_answer_ = nullptr;
  observer(status, fields);
}

// ---------------------------------------------------------------- ExchangeResponder

void ExchangeResponder::reply(int status, const HeaderList& fields, std::string_view body) {
  if (answered_) return;
  answered_ = true;
  exchange_.reply(status, {}, fields, body, decided_by_);
}

void ExchangeResponder::reply_problem(const Problem& problem, const HeaderList& fields) {
  if (answered_) return;
  answered_ = true;
  exchange_.reply_problem(problem, fields, decided_by_);
}

std::shared_ptr<LocalStream> ExchangeResponder::start_stream(int status, const HeaderList& fields,
                                                             StreamListener& listener) {
  if (answered_) return std::make_shared<ExchangeStream>(nullptr, listener);
  answered_ = true;
  return exchange_.start_stream(status, fields, listener, decided_by_);
}

void ExchangeResponder::pass_on(PassedOnRequest request) {
  if (answered_) return;
  answered_ = true;
  passed_on_ = std::move(request);
}

// ---------------------------------------------------------------- ExchangeStream

StreamWrite ExchangeStream::write(std::string_view chunk) {
  if (exchange_ == nullptr) return StreamWrite::Closed;
  if (chunk.empty()) return StreamWrite::Written;
  std::size_t waiting = buffered();
  if (waiting > 0 && waiting + chunk.size() > kMaxStreamBuffered) {
    waiting_for_room_ = true;
    return StreamWrite::Full;
  }
  in_call_ = true;  // a failed write detaches us (on_exchange_closed) without calling the listener
  exchange_->send_response_body(chunk);
  in_call_ = false;
  return exchange_ != nullptr ? StreamWrite::Written : StreamWrite::Closed;
}

std::size_t ExchangeStream::buffered() const { return exchange_ != nullptr ? exchange_->host_.client_backlog() : 0; }

void ExchangeStream::end_response() {
  Exchange& exchange = *exchange_;
  exchange_ = nullptr;
  listener_ = nullptr;
  std::shared_ptr<ExchangeStream> self = std::move(exchange.local_stream_);
  if (exchange.response_framing_ == BodyFraming::Chunked) {
    exchange.send_last_chunk();
    if (exchange.client_gone_) return;
  }
  exchange.end_local_answer();  // may destroy the exchange
}

void ExchangeStream::finish() {
  if (exchange_ == nullptr) return;
  end_response();
}

void ExchangeStream::abort() {
  if (exchange_ == nullptr) return;
  Exchange& exchange = *exchange_;
  exchange_ = nullptr;
  listener_ = nullptr;
  std::shared_ptr<ExchangeStream> self = std::move(exchange.local_stream_);
  exchange.host_.abort_connection();
}

void ExchangeStream::on_exchange_closed() {
  StreamListener* listener = in_call_ ? nullptr : listener_;
  exchange_ = nullptr;
  listener_ = nullptr;
  if (listener != nullptr) listener->on_stream_closed();
}

void ExchangeStream::on_write_done() {
  if (exchange_ == nullptr || !waiting_for_room_ || buffered() > kMaxStreamBuffered / 2) return;
  waiting_for_room_ = false;
  listener_->on_stream_writable();
}

void ExchangeStream::on_drain() {
  if (exchange_ == nullptr) return;
  StreamListener* listener = listener_;
  exchange_->response_keep_alive_ = false;
  end_response();
  if (listener != nullptr) listener->on_stream_closed();
}

}  // namespace arbiter
