#pragma once
// Local handlers: Arbiter's own endpoints (the admin listener's /metrics, /config, ..., and
// what lives under [server] control_prefix on the client listeners), registered by path in a
// HandlerRegistry (proxy/control/handler_registry.h) and answered without an upstream.
//
// A handler answers through a LocalResponder, either at once (reply) or by holding the response
// open and writing to it as events come (start_stream: a chunked body to an HTTP/1.1 client, a
// body ended by closing the connection to an HTTP/1.0 one), as the conflict feed's Server-Sent
// Events will.
//
// Threading: every call described here happens on the loop thread of the worker that accepted
// the connection: LocalHandler::handle, every LocalResponder and LocalStream member, and every
// StreamListener callback. A handler that learns of events on another thread must hand them to
// that loop before writing (the worker's loop is not thread-safe). A handler object is shared
// by the connections of one worker (each worker builds its own registries), so it needs no lock
// for state of its own, but must not block: the worker serves every other connection meanwhile.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "proxy/http/headers.h"
#include "proxy/http/problem.h"

namespace arbiter {

// The request as a handler sees it. Views into the connection's buffers, valid during
// LocalHandler::handle only: a handler that streams copies what it needs to keep.
struct LocalRequest {
  std::string_view method;      // as received, e.g. "GET"
  std::string_view target;      // the request target as received
  std::string_view path;        // without the query: normalised on a client listener, as received
                                // on the admin listener
  std::string_view query;       // after '?', without it; empty when there is none
  const HeaderList& headers;
  std::string_view body;        // the request body, read whole for an entry with a body_limit
                                // (HandlerRegistry::Entry); empty for the others
  std::string_view request_id;  // also carried by every problem Arbiter answers
  std::string_view mount;       // where the registry answers: [server] control_prefix on a client
                                // listener ("/_arbiter"), empty on the admin listener
  std::string_view principal;   // who is asking, for records such as a `resolved` event: the
                                // [control] token's name when one was presented, else the client's
                                // address (X-Forwarded-For from a trusted proxy, as elsewhere)
};

// StreamWrite::Full: the bound below is reached. Nothing was queued; the handler decides (drop
// the chunk, keep it and wait for StreamListener::on_stream_writable, or abort the stream).
enum class StreamWrite : std::uint8_t {
  Written,  // queued for the client (or taken by the kernel at once)
  Full,     // refused: kMaxStreamBuffered bytes are waiting for a slow reader
  Closed,   // refused: the stream has ended (client gone, finished, aborted, draining)
};

// Bytes a stream may have waiting for the client (accepted by Arbiter, not yet taken by the
// kernel, chunk framing included): a slow or stalled reader costs at most this much memory, and
// the framing of the last chunk (its size line and CRLF). A chunk that would go past it is
// refused with StreamWrite::Full, except into an empty buffer (one chunk of any size is always
// taken, so a chunk larger than the bound cannot wedge a stream; it is then all that waits).
inline constexpr std::size_t kMaxStreamBuffered = 256u << 10;

// Told what happens to a held-open response. Called on the worker's loop, never from inside a
// call the handler is making (a write that finds the client gone returns Closed instead).
class StreamListener {
 public:
  // The stream ended without the handler asking: the client went away (or a write to it failed),
  // or Arbiter is shutting down (draining: the response was ended cleanly first). Stop writing;
  // the stream is closed, and the listener is not called again.
  virtual void on_stream_closed() = 0;
  // After one or more writes were refused as Full: the client has read enough that at most half
  // of kMaxStreamBuffered is waiting. Called once for all the refusals since the last call, not
  // once per refusal.
  virtual void on_stream_writable() {}

 protected:
  ~StreamListener() = default;
};

// A held-open response. Shared by the handler and the connection: the object stays valid as long
// as the handler holds it, after the connection is gone too (every call then does nothing and
// write returns Closed).
class LocalStream {
 public:
  virtual ~LocalStream() = default;
  // Sends one piece of the body (for SSE, whole events: the framing is Arbiter's). An empty
  // chunk is Written and sends nothing.
  virtual StreamWrite write(std::string_view chunk) = 0;
  // Ends the response; the connection goes on to the client's next request. The listener is
  // not called any more.
  virtual void finish() = 0;
  // Ends it abnormally: the connection is closed, so the client sees an incomplete body (the
  // only way HTTP/1.1 can say "this stream failed"). The listener is not called any more.
  virtual void abort() = 0;
  // True once the stream has ended, whoever ended it.
  virtual bool closed() const = 0;
  // Bytes waiting for the client now (see kMaxStreamBuffered).
  virtual std::size_t buffered() const = 0;
};

// A request a handler hands on to the routes instead of answering it (LocalResponder::pass_on):
// an internal redirect, as nginx's, that changes the request on the way.
struct PassedOnRequest {
  std::string_view method;  // a string literal ("PUT"): kept as a view
  std::string target;       // origin-form: a path, and a query if any
  HeaderList fields;        // set on the request, replacing the client's fields of those names
  std::string body;         // the request body, framed by its length
  // Called once with the status and fields of the answer the client gets for it (the upstream's,
  // or one Arbiter made: a 409, a 423), just before its head is written; it may add fields. Not
  // called when no answer is sent (the client went away first). On the worker's loop; it is
  // destroyed with the exchange, so it owns (shares) what it uses.
  std::function<void(int status, HeaderList& fields)> on_answer;
};

// How a handler answers; valid during LocalHandler::handle only. A handler answers exactly once:
// reply, reply_problem, start_stream or pass_on (later calls are ignored). A handler that returns without
// answering gets a 500 problem sent for it. Answering may end the exchange and let the
// connection read its next request at once, so a handler reads nothing of its LocalRequest after
// it has answered (nor after LocalStream::finish).
class LocalResponder {
 public:
  // A complete response. `fields` carry Content-Type; Arbiter adds Cache-Control: no-store,
  // Content-Length, X-Request-Id, and leaves out the body for HEAD.
  virtual void reply(int status, const HeaderList& fields, std::string_view body) = 0;
  // An application/problem+json answer carrying the request id (proxy/http/problem.h).
  virtual void reply_problem(const Problem& problem, const HeaderList& fields = {}) = 0;
  // Sends the head now and holds the response open for LocalStream::write. `listener` must stay
  // valid until it is told on_stream_closed, or until the handler calls finish or abort. For a
  // HEAD request, or a status without a body (204, 304), only the head is sent and the returned
  // stream is closed already (the listener is never called). Arbiter adds Cache-Control:
  // no-store unless `fields` has a Cache-Control.
  virtual std::shared_ptr<LocalStream> start_stream(int status, const HeaderList& fields,
                                                    StreamListener& listener) = 0;
  // Answers by handing the request on, changed as `request` says, after handle() returns: it is
  // routed (never to a local handler again) and goes through its route's policies and upstream
  // as if the client had sent it so; the client's other fields, its address and the request id
  // stay. The client gets that request's answer. Only a request without a body of its own, or
  // one whose body the handler was given (Entry::body_limit), can be handed on (another with a
  // body is answered 400).
  virtual void pass_on(PassedOnRequest request) = 0;

 protected:
  ~LocalResponder() = default;
};

class LocalHandler {
 public:
  virtual ~LocalHandler() = default;
  // The registry calls this for a request whose path and method it matched.
  virtual void handle(const LocalRequest& request, LocalResponder& responder) = 0;
};

}  // namespace arbiter
