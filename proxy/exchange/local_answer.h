#pragma once
// An Exchange's side of local handlers (proxy/control/local_handler.h): the responder a handler
// answers through, over the exchange's own replies, and the held-open response it may start,
// written through the exchange to its host. Socket-free, like the exchange: the host tells the
// exchange of drained writes, a client gone and a drain, and the exchange tells its stream.
// Loop thread only, as the exchange.

#include <memory>
#include <optional>
#include <string_view>

#include "proxy/control/local_handler.h"

namespace arbiter {

class Exchange;

// Lives on the stack of Exchange::answer_locally, for one handle() call. Once it has answered,
// it touches the exchange no more (answering may have ended and destroyed it).
class ExchangeResponder final : public LocalResponder {
 public:
  ExchangeResponder(Exchange& exchange, std::string_view decided_by) : exchange_(exchange), decided_by_(decided_by) {}

  void reply(int status, const HeaderList& fields, std::string_view body) override;
  void reply_problem(const Problem& problem, const HeaderList& fields = {}) override;
  std::shared_ptr<LocalStream> start_stream(int status, const HeaderList& fields, StreamListener& listener) override;
  void pass_on(PassedOnRequest request) override;
  bool answered() const noexcept { return answered_; }
  // The request a handler handed on (pass_on), for the exchange to route once handle() returned.
  std::optional<PassedOnRequest>& passed_on() noexcept { return passed_on_; }

 private:
  Exchange& exchange_;
  std::string_view decided_by_;  // the access log's "decision"
  bool answered_ = false;
  std::optional<PassedOnRequest> passed_on_;
};

// Shared by the handler and the exchange (its local_stream_) while the response is open;
// detached from the exchange when it ends, whoever ends it.
class ExchangeStream final : public LocalStream {
 public:
  // exchange == nullptr: a stream closed from the start (HEAD, a status without a body).
  ExchangeStream(Exchange* exchange, StreamListener& listener)
      : exchange_(exchange), listener_(exchange != nullptr ? &listener : nullptr) {}

  StreamWrite write(std::string_view chunk) override;
  void finish() override;
  void abort() override;
  bool closed() const override { return exchange_ == nullptr; }
  std::size_t buffered() const override;

  // ---- for the exchange ----
  // The client is gone (or a write to it failed, or the exchange is destroyed): the listener is
  // told, unless this happens inside a call of the handler's (which then learns it from what it
  // returns).
  void on_exchange_closed();
  // A queued write to the client finished: a listener refused for want of room hears of it.
  void on_write_done();
  // A graceful shutdown began: the response is ended cleanly, then the listener is told.
  void on_drain();

 private:
  // Detaches from the exchange, then ends the response body (the last chunk) and lets the
  // exchange end (which may destroy it).
  void end_response();

  Exchange* exchange_;
  StreamListener* listener_;
  bool waiting_for_room_ = false;  // a write was refused as Full
  bool in_call_ = false;           // inside write(): a close must not call the listener back
};

}  // namespace arbiter
