#pragma once
// The client side's request parser: llhttp with the limits and the field checks Arbiter adds
// (max_header_bytes, max_body_bytes, obs-fold, Host, Transfer-Encoding, Expect, the HTTP
// version: 1.x served as 1.1 or 1.0, 2 and later 505). It has no
// socket or timer, so the fuzzer in tests/fuzz drives the very code ClientConnection runs.
//
// Parsing pauses at the end of a head that has a body (the body waits for an upstream) and at
// the end of every message (a pipelined request waits for the current answer); input that
// arrives meanwhile is kept until resume().

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <llhttp.h>

#include "proxy/http/headers.h"
#include "proxy/http/problem.h"
#include "proxy/http/forwarding.h"
#include "proxy/http/header_collector.h"

namespace arbiter {

struct RequestHead {
  std::string_view method;  // llhttp's name for it (static storage)
  std::string target;  // origin-form once check_request_head has passed it
  HeaderList headers;
  HeaderList trailers;  // the trailer section of a chunked body, complete at on_request_complete
  bool http10 = false;
  bool keep_alive = true;  // as the client asked (Connection, version)
  BodyFraming framing = BodyFraming::None;
  std::uint64_t content_length = 0;  // with BodyFraming::ContentLength
  // An HTTP/1.1 request without a body asking to switch protocols (`Connection: upgrade` and
  // `Upgrade`, as llhttp reads them); the input after its head belongs to the new protocol
  // if the upstream answers 101 (see RequestParser::take_pending).
  bool upgrade = false;
};

// What the owner of a RequestParser hears while it parses.
class RequestEvents {
 public:
  virtual void on_request_begin() = 0;
  // A piece of the request body; false stops the parse (the exchange was torn down).
  virtual bool on_request_body(std::string_view piece) = 0;
  virtual void on_request_complete() = 0;
  // Parsing paused (see head_complete() and message_complete() for where); resume() goes on.
  virtual void on_parse_paused() = 0;
  // The request is refused (problem() says how); nothing more is parsed.
  virtual void on_parse_error(llhttp_errno_t error) = 0;
  // False once the owner stops taking input (the connection is closing): what is left is dropped.
  virtual bool takes_input() const = 0;

 protected:
  ~RequestEvents() = default;
};

struct RequestLimits {
  std::size_t max_header_bytes = 0;  // the target, and the names and values of the fields
  std::uint64_t max_body_bytes = 0;
};

class RequestParser {
 public:
  explicit RequestParser(RequestEvents& events);
  RequestParser(const RequestParser&) = delete;  // llhttp keeps a pointer to it
  RequestParser& operator=(const RequestParser&) = delete;

  // Read when a limit is checked, so a reload's new limits apply from the next byte on.
  void set_limits(RequestLimits limits) noexcept { limits_ = limits; }

  // Bytes from the client: parsed now, or kept while parsing is paused or already under way (a
  // callback that leads to more input is not re-entered; the outer call goes on with it).
  void feed(const char* data, std::size_t length);
  // After on_parse_paused: parses on, starting with the input kept meanwhile.
  void resume();
  bool paused() const noexcept { return paused_; }
  std::size_t pending_bytes() const noexcept { return pending_.size(); }
  // The input kept after the current message, handed over when the connection stops speaking
  // HTTP (a tunnel after 101); the parser is not resumed afterwards.
  std::string take_pending() { return std::exchange(pending_, std::string()); }
  // Forgets the finished request, ready for the next one on the connection.
  void next_request();

  RequestHead& head() noexcept { return head_; }
  const RequestHead& head() const noexcept { return head_; }
  bool head_complete() const noexcept { return head_complete_; }
  bool message_complete() const noexcept { return message_complete_; }
  std::uint64_t body_bytes() const noexcept { return body_bytes_; }

  // The answer to a parse that failed with `error`: 413, 414 or 431 when a limit stopped it,
  // else 400 naming llhttp's reason.
  Problem problem(llhttp_errno_t error) const;

 private:
  int check_head_size();
  void drive();
  void execute(const char* data, std::size_t length);

  static const llhttp_settings_t& settings();
  static int on_message_begin(llhttp_t* parser);
  static int on_url(llhttp_t* parser, const char* at, std::size_t length);
  static int on_version_complete(llhttp_t* parser);
  static int on_header_field(llhttp_t* parser, const char* at, std::size_t length);
  static int on_header_value(llhttp_t* parser, const char* at, std::size_t length);
  static int on_header_value_complete(llhttp_t* parser);
  static int on_headers_complete(llhttp_t* parser);
  static int on_body(llhttp_t* parser, const char* at, std::size_t length);
  static int on_message_complete(llhttp_t* parser);

  RequestEvents& events_;
  RequestLimits limits_;
  llhttp_t parser_{};
  RequestHead head_;
  HeaderCollector collector_{head_.headers};
  bool head_complete_ = false;
  bool message_complete_ = false;
  std::uint64_t body_bytes_ = 0;
  int limit_status_ = 0;  // 413, 414, 431 or 505 (400: HTTP/0.x) chosen inside a callback
  std::string pending_;  // received, not yet parsed
  std::string scratch_;
  bool paused_ = false;
  bool driving_ = false;
  bool drive_again_ = false;
};

// What Arbiter refuses in a complete head that llhttp accepts, because a backend might read it
// differently (RFC 9112 sections 3.2, 6.1): a 400 or 417 problem, or none. Several Host fields,
// a Host that is not `host[:port]` (RFC 9110 section 7.2) and a missing Host on HTTP/1.1 are
// 400s. An absolute-form target (`http://host/path`, RFC 9112 section 3.2.2) is accepted and
// rewritten here: the target becomes its origin-form (`/path`) and its authority the Host.
std::optional<Problem> check_request_head(RequestHead& head);
// Whether the client waits for "100 Continue" before it sends its body.
bool expects_continue(const RequestHead& head);

}  // namespace arbiter
