// ClientConnection's local answers: the admin endpoints and [server] control_prefix, answered by
// a handler of the worker's registries (proxy/control/handler_registry.h) instead of an upstream.

#include "proxy/net/client_local.h"

#include "proxy/control/handler_registry.h"
#include "proxy/net/client_connection.h"
#include "proxy/net/worker.h"

namespace arbiter {

void ClientConnection::answer_locally(const HandlerRegistry& registry, std::string_view mount, std::string_view path,
                                      std::string_view query, std::string_view decided_by) {
  ConnectionResponder responder(*this, decided_by);
  LocalRequest request{head_.method, head_.target, path, query, head_.headers, {}, request_id_, mount};
  registry.dispatch(request, responder);
  if (!responder.answered() && phase_ == Phase::Exchange) {
    reply_problem(Problem::make("internal-error", 500, "Internal error",
                                "The " + registry.name() + " endpoint " + std::string(path) + " gave no answer."),
                  {}, decided_by);
  }
}

void ClientConnection::end_local_answer() {
  response_complete_ = true;
  if (response_keep_alive_ && !parser_.message_complete()) {
    // The parser reads the rest of the request (dropping any body), then finish_exchange runs.
    arm_timer(worker_.runtime()->config().server.idle_timeout);
    resume_parser();
  } else {
    finish_exchange();
  }
}

// ---------------------------------------------------------------- ConnectionResponder

void ConnectionResponder::reply(int status, const HeaderList& fields, std::string_view body) {
  if (answered_) return;
  answered_ = true;
  connection_.reply(status, {}, fields, body, decided_by_);
}

void ConnectionResponder::reply_problem(const Problem& problem, const HeaderList& fields) {
  if (answered_) return;
  answered_ = true;
  connection_.reply_problem(problem, fields, decided_by_);
}

std::shared_ptr<LocalStream> ConnectionResponder::start_stream(int status, const HeaderList& fields,
                                                               StreamListener& listener) {
  if (answered_) return std::make_shared<ConnectionStream>(nullptr, listener);
  answered_ = true;
  ClientConnection& c = connection_;
  c.answer_ = ClientConnection::Answer::Local;
  c.decided_by_ = decided_by_;
  c.response_status_ = status;
  // A stream has no end the client could wait for before sending a body, so an unread request
  // body is not drained: the connection closes after the stream instead. An HTTP/1.0 client's
  // stream ends by closing.
  bool unread_body = !c.parser_.message_complete() && c.head_.framing != BodyFraming::None;
  c.response_keep_alive_ = c.client_keep_alive_ && !unread_body && !c.head_.http10 && !c.worker_.draining();
  bool head_only = c.head_.method == "HEAD" || status_has_no_body(status);
  BodyFraming framing = status_has_no_body(status) ? BodyFraming::None
                        : c.head_.http10          ? BodyFraming::UntilClose
                                                  : BodyFraming::Chunked;
  HeaderList headers = fields;
  if (!headers.contains("cache-control")) headers.add("Cache-Control", "no-store");
  c.head_scratch_.clear();
  write_client_response_head(c.head_scratch_, ClientResponse{status, headers, framing, 0, c.response_keep_alive_,
                                                             c.head_.http10, c.request_id_});
  c.response_head_sent_ = true;
  c.response_has_body_ = !head_only;
  c.response_framing_ = head_only ? BodyFraming::None : framing;
  c.head_pending_ = true;
  c.flush_pending_head();
  if (head_only || c.phase_ != ClientConnection::Phase::Exchange) {
    if (c.phase_ == ClientConnection::Phase::Exchange) c.end_local_answer();
    return std::make_shared<ConnectionStream>(nullptr, listener);
  }
  auto stream = std::make_shared<ConnectionStream>(&c, listener);
  c.local_stream_ = stream;
  return stream;
}

// ---------------------------------------------------------------- ConnectionStream

StreamWrite ConnectionStream::write(std::string_view chunk) {
  if (connection_ == nullptr) return StreamWrite::Closed;
  if (chunk.empty()) return StreamWrite::Written;
  std::size_t waiting = buffered();
  if (waiting > 0 && waiting + chunk.size() > kMaxStreamBuffered) {
    waiting_for_room_ = true;
    return StreamWrite::Full;
  }
  in_call_ = true;
  connection_->send_response_body(chunk);  // a failed write closes the connection, detaching us
  in_call_ = false;
  return connection_ != nullptr ? StreamWrite::Written : StreamWrite::Closed;
}

std::size_t ConnectionStream::buffered() const {
  return connection_ != nullptr ? connection_->tcp_.write_queue_size : 0;
}

void ConnectionStream::end_response(ClientConnection& c) {
  if (c.response_framing_ == BodyFraming::Chunked) {
    std::string last_chunk;
    write_last_chunk(last_chunk, HeaderList{});
    uv_buf_t bufs[2] = {{}, make_buf(last_chunk.data(), last_chunk.size())};
    c.send_with_pending_head(bufs, 2);
  }
  if (c.phase_ == ClientConnection::Phase::Exchange) c.end_local_answer();
}

void ConnectionStream::finish() {
  if (connection_ == nullptr) return;
  ClientConnection& c = *connection_;
  connection_ = nullptr;
  listener_ = nullptr;
  std::shared_ptr<ConnectionStream> self = std::move(c.local_stream_);
  end_response(c);
}

void ConnectionStream::abort() {
  if (connection_ == nullptr) return;
  ClientConnection& c = *connection_;
  connection_ = nullptr;
  listener_ = nullptr;
  std::shared_ptr<ConnectionStream> self = std::move(c.local_stream_);
  c.close_now();
}

void ConnectionStream::on_connection_closed() {
  StreamListener* listener = in_call_ ? nullptr : listener_;
  connection_ = nullptr;
  listener_ = nullptr;
  if (listener != nullptr) listener->on_stream_closed();
}

void ConnectionStream::on_write_done() {
  if (connection_ == nullptr || !waiting_for_room_ || buffered() > kMaxStreamBuffered / 2) return;
  waiting_for_room_ = false;
  listener_->on_stream_writable();
}

void ConnectionStream::on_drain() {
  if (connection_ == nullptr) return;
  ClientConnection& c = *connection_;
  StreamListener* listener = listener_;
  connection_ = nullptr;
  listener_ = nullptr;
  std::shared_ptr<ConnectionStream> self = std::move(c.local_stream_);
  c.response_keep_alive_ = false;
  end_response(c);
  if (listener != nullptr) listener->on_stream_closed();
}

}  // namespace arbiter
