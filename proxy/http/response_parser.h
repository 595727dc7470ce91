#pragma once
// The upstream side's response parser: llhttp with what Arbiter adds (interim 1xx answers
// skipped, 101 refused unless the request asked for an upgrade, a 256 KiB limit on head and
// trailers, obs-fold refused, hop-by-hop fields removed, the body framing read off the head,
// trailer fields handed on apart). It has no socket or timer, so the fuzzer in tests/fuzz
// drives the very code UpstreamConnection runs.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include <llhttp.h>

#include "proxy/http/headers.h"
#include "proxy/http/forwarding.h"
#include "proxy/http/header_collector.h"

namespace arbiter {

// What the owner of a ResponseParser hears. Either returns false to stop the parse (the
// exchange let go of the connection meanwhile).
class ResponseEvents {
 public:
  // headers: hop-by-hop fields removed. framing/content_length: as the upstream sent them (for
  // a HEAD answer, the length it announced, with no body following).
  virtual bool on_response_head(int status, HeaderList& headers, BodyFraming framing,
                                std::uint64_t content_length) = 0;
  virtual bool on_response_body(std::string_view piece) = 0;
  // The trailer section of a chunked response, just before it completes (only when it has
  // fields). Unfiltered: the relaying side decides what crosses (see write_last_chunk).
  virtual bool on_response_trailers(const HeaderList& trailers) {
    static_cast<void>(trailers);
    return true;
  }

 protected:
  ~ResponseEvents() = default;
};

class ResponseParser {
 public:
  // A response head larger than this is refused as a bad response (502).
  static constexpr std::size_t kMaxHeadBytes = 256u << 10;

  explicit ResponseParser(ResponseEvents& events);
  ResponseParser(const ResponseParser&) = delete;  // llhttp keeps a pointer to it
  ResponseParser& operator=(const ResponseParser&) = delete;

  // Ready for the response to the next request on the connection.
  void next_response();
  // The answer to a HEAD request has no body, whatever its head announces.
  void set_head_request(bool head_request) noexcept { head_request_ = head_request; }
  // The request asked to switch protocols: a 101 is its answer (reported as a head with no
  // body, then complete() with upgraded(); the bytes after it belong to the new protocol).
  void set_upgrade_request(bool upgrade_request) noexcept { upgrade_request_ = upgrade_request; }

  // HPE_OK: all of data was parsed and the response is not complete yet. HPE_PAUSED with
  // complete(): the response ended after `consumed` bytes. Anything else: a bad response.
  llhttp_errno_t execute(const char* data, std::size_t length, std::size_t& consumed);
  // At EOF from the upstream: true if that ends a response framed by the connection's close.
  bool finish_at_eof();

  bool head_done() const noexcept { return head_done_; }
  bool complete() const noexcept { return complete_; }
  // After complete(): the response was a 101 to an upgrade request.
  bool upgraded() const noexcept { return complete_ && upgrade_request_ && parser_.status_code == 101; }
  // After complete(): whether the upstream lets the connection carry another request.
  bool keep_alive() const noexcept { return llhttp_should_keep_alive(&parser_) != 0; }

 private:
  static const llhttp_settings_t& settings();
  static int on_status_complete(llhttp_t* parser);
  static int on_header_field(llhttp_t* parser, const char* at, std::size_t length);
  static int on_header_value(llhttp_t* parser, const char* at, std::size_t length);
  static int on_header_value_complete(llhttp_t* parser);
  static int on_headers_complete(llhttp_t* parser);
  static int on_body(llhttp_t* parser, const char* at, std::size_t length);
  static int on_message_complete(llhttp_t* parser);

  ResponseEvents& events_;
  llhttp_t parser_{};
  HeaderList headers_;
  HeaderList trailers_;
  HeaderCollector collector_{headers_};
  bool head_request_ = false;
  bool upgrade_request_ = false;
  bool head_done_ = false;
  bool complete_ = false;
};

}  // namespace arbiter
