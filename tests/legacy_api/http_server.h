#pragma once
// The HTTP/1.1 side of the legacy API: a single-threaded libuv listener whose connections
// parse requests with llhttp and answer them strictly in order. The application only sees
// whole requests (body included) and answers each with a Reply; everything about framing,
// keep-alive, pipelining, HEAD, HTTP/1.0 and closing lives here.

#include <uv.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace legacy {

using HeaderPairs = std::vector<std::pair<std::string, std::string>>;

bool iequals(std::string_view a, std::string_view b) noexcept;

struct Request {
  std::string method;  // as llhttp names it, e.g. "GET"
  std::string target;  // request-target as received
  std::string path;    // target up to '?'
  std::string query;   // after '?', without it
  int http_major = 1;
  int http_minor = 1;
  HeaderPairs headers;  // in received order, names as received
  std::string body;     // de-chunked
  std::uint64_t connection = 0;  // serial number of the connection it came on (1, 2, ...)

  std::optional<std::string_view> header(std::string_view name) const;
  // The raw (not percent-decoded) value of `name=value` in the query string.
  std::optional<std::string_view> query_parameter(std::string_view name) const;
};

struct Response {
  int status = 200;
  HeaderPairs headers;  // Content-Length, Transfer-Encoding and Connection are added by the server
  std::string body;
  // Send the body with Transfer-Encoding: chunked (16 KiB chunks) where the client
  // understands it; HTTP/1.0 clients get a Content-Length instead.
  bool chunked = false;
};

// What the connection does with a request.
struct Reply {
  enum class Kind {
    Respond,  // send `response` (after `delay`, without blocking the loop)
    Close,    // close the connection without answering
    Reset,    // abort the connection with a TCP RST
    RawBytes  // write `raw_bytes` as they are, then do what `after` says
  };
  // What a connection does once raw bytes are written.
  enum class After {
    Close,        // FIN after the bytes
    Reset,        // RST, 50 ms after the bytes (so the peer has read them)
    Hang,         // nothing more: no answer, no further request served; the connection is
                  // closed only when the peer closes it
    KeepServing   // go on with the next request, as after a normal response
  };
  Kind kind = Kind::Respond;
  Response response;
  std::chrono::milliseconds delay{0};
  std::string raw_bytes;
  After after = After::Close;

  static Reply respond(Response response) { return Reply{Kind::Respond, std::move(response), {}, {}}; }
  static Reply json(int status, std::string body);
  static Reply close() { return Reply{Kind::Close, {}, {}, {}}; }
  static Reply reset() { return Reply{Kind::Reset, {}, {}, {}}; }
  static Reply raw(std::string bytes, After after) { return Reply{Kind::RawBytes, {}, {}, std::move(bytes), after}; }
  static Reply raw_then_close(std::string bytes) { return raw(std::move(bytes), After::Close); }
  static Reply hang() { return raw({}, After::Hang); }
};

// {"error": message}, the message defaulting to the reason phrase.
Reply error_reply(int status, std::string_view message = {});

using RequestHandler = std::function<Reply(const Request&)>;

struct ServerLimits {
  std::uint64_t max_body_bytes = 64ull << 20;   // larger bodies get 413
  std::size_t max_head_bytes = 64u << 10;       // larger request heads get 431
};

// Connections since start, and the serial numbers of those open now (an open one may be closing).
struct ConnectionCounts {
  std::uint64_t accepted = 0;
  std::set<std::uint64_t> open;
};

class HttpServer {
 public:
  HttpServer(uv_loop_t* loop, RequestHandler handler, ServerLimits limits = {});
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and listens; returns the bound "host:port" text, or throws std::runtime_error.
  std::string listen(const std::string& host, std::uint16_t port);

  const RequestHandler& handler() const { return handler_; }
  const ServerLimits& limits() const { return limits_; }
  uv_loop_t* loop() const { return loop_; }
  ConnectionCounts& counts() { return counts_; }

 private:
  static void on_connection(uv_stream_t* listener, int status);

  uv_loop_t* loop_;
  RequestHandler handler_;
  ServerLimits limits_;
  ConnectionCounts counts_;
  uv_tcp_t listener_{};
};

const char* reason_phrase(int status) noexcept;

}  // namespace legacy
