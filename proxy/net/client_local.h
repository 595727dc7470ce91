#pragma once
// A ClientConnection's side of local handlers (proxy/control/local_handler.h): the responder a
// handler answers through, over the connection's own reply and body-sending functions, and the
// held-open response it may start. Loop thread only, as the connection.

#include <memory>
#include <string_view>

#include "proxy/control/local_handler.h"

namespace arbiter {

class ClientConnection;

// Lives on the stack of ClientConnection::answer_locally, for one handle() call.
class ConnectionResponder final : public LocalResponder {
 public:
  ConnectionResponder(ClientConnection& connection, std::string_view decided_by)
      : connection_(connection), decided_by_(decided_by) {}

  void reply(int status, const HeaderList& fields, std::string_view body) override;
  void reply_problem(const Problem& problem, const HeaderList& fields = {}) override;
  std::shared_ptr<LocalStream> start_stream(int status, const HeaderList& fields, StreamListener& listener) override;
  bool answered() const noexcept { return answered_; }

 private:
  ClientConnection& connection_;
  std::string_view decided_by_;  // the access log's "decision"
  bool answered_ = false;
};

// Shared by the handler and the connection (its local_stream_) while the response is open;
// detached from the connection when it ends, whoever ends it.
class ConnectionStream final : public LocalStream {
 public:
  // connection == nullptr: a stream closed from the start (HEAD, a status without a body).
  ConnectionStream(ClientConnection* connection, StreamListener& listener)
      : connection_(connection), listener_(connection != nullptr ? &listener : nullptr) {}

  StreamWrite write(std::string_view chunk) override;
  void finish() override;
  void abort() override;
  bool closed() const override { return connection_ == nullptr; }
  std::size_t buffered() const override;

  // ---- for the connection ----
  // It is closing (client gone, a failed write, a forced shutdown): the listener is told, unless
  // this happens inside a call of the handler's (which then learns it from what it returns).
  void on_connection_closed();
  // A queued write to the client finished: a listener refused for want of room hears of it.
  void on_write_done();
  // A graceful shutdown began: the response is ended cleanly, then the listener is told.
  void on_drain();

 private:
  // Ends the response body (the last chunk), then lets the connection go on.
  void end_response(ClientConnection& connection);

  ClientConnection* connection_;
  StreamListener* listener_;
  bool waiting_for_room_ = false;  // a write was refused as Full
  bool in_call_ = false;           // inside write(): a close must not call the listener back
};

}  // namespace arbiter
