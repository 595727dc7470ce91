#include "proxy/request_parser.h"

namespace arbiter {

namespace {

RequestParser& self_of(llhttp_t* parser) { return *static_cast<RequestParser*>(parser->data); }

}  // namespace

RequestParser::RequestParser(RequestEvents& events) : events_(events) {
  llhttp_init(&parser_, HTTP_REQUEST, &settings());
  parser_.data = this;
}

const llhttp_settings_t& RequestParser::settings() {
  static const llhttp_settings_t settings = [] {
    llhttp_settings_t s = message_parser_settings(on_header_field, on_header_value, on_header_value_complete,
                                                  on_headers_complete, on_body, on_message_complete);
    s.on_message_begin = on_message_begin;
    s.on_url = on_url;
    return s;
  }();
  return settings;
}

void RequestParser::feed(const char* data, std::size_t length) {
  if (pending_.empty() && !paused_ && !driving_) {
    // Fast path: parse straight from the caller's buffer.
    driving_ = true;
    execute(data, length);
    driving_ = false;
  } else {
    pending_.append(data, length);
  }
  drive();
}

void RequestParser::resume() {
  if (!paused_) return;
  paused_ = false;
  llhttp_resume(&parser_);
  drive();
}

void RequestParser::drive() {
  if (driving_) {
    drive_again_ = true;
    return;
  }
  driving_ = true;
  do {
    drive_again_ = false;
    while (events_.takes_input() && !paused_ && !pending_.empty()) {
      scratch_.clear();
      scratch_.swap(pending_);
      execute(scratch_.data(), scratch_.size());
    }
  } while (drive_again_ && events_.takes_input());
  driving_ = false;
}

void RequestParser::execute(const char* data, std::size_t length) {
  std::size_t consumed = 0;
  llhttp_errno_t rc = execute_message_parser(parser_, collector_, data, length, consumed);
  if (!events_.takes_input() || rc == HPE_OK) return;
  if (rc == HPE_PAUSED) {
    pending_.insert(0, data + consumed, length - consumed);
    paused_ = true;
    events_.on_parse_paused();
    return;
  }
  events_.on_parse_error(rc);
}

void RequestParser::next_request() {
  // After an upgrade request llhttp would stop at the next message (HPE_PAUSED_UPGRADE); one
  // that was answered without a switch leaves the connection speaking HTTP/1.1, so parsing
  // starts afresh (the input kept meanwhile stays in pending_).
  if (llhttp_get_upgrade(&parser_) != 0) llhttp_reset(&parser_);
  head_.method = {};
  head_.target.clear();
  head_.headers.clear();
  head_.http10 = false;
  head_.keep_alive = true;
  head_.framing = BodyFraming::None;
  head_.content_length = 0;
  head_.upgrade = false;
  collector_.reset();
  head_complete_ = false;
  message_complete_ = false;
  body_bytes_ = 0;
  limit_status_ = 0;
}

Problem RequestParser::problem(llhttp_errno_t error) const {
  switch (limit_status_) {
    case 431:
      return Problem::make("header-fields-too-large", 431, "Request header fields too large",
                           "The request head exceeds max_header_bytes.");
    case 414:
      return Problem::make("uri-too-long", 414, "URI too long", "The request target exceeds max_header_bytes.");
    case 413:
      return Problem::make("content-too-large", 413, "Content too large", "The request body exceeds max_body_bytes.");
    default:
      break;
  }
  const char* reason = llhttp_get_error_reason(&parser_);
  std::string detail = "Malformed HTTP request: ";
  detail += reason != nullptr ? reason : llhttp_errno_name(error);
  return Problem::make("malformed-request", 400, "Malformed request", std::move(detail));
}

int RequestParser::check_head_size() {
  if (head_.headers.byte_size() + head_.target.size() > limits_.max_header_bytes) {
    limit_status_ = 431;
    return HPE_USER;
  }
  return 0;
}

int RequestParser::on_message_begin(llhttp_t* parser) {
  self_of(parser).events_.on_request_begin();
  return 0;
}

int RequestParser::on_url(llhttp_t* parser, const char* at, std::size_t length) {
  RequestParser& self = self_of(parser);
  self.head_.target.append(at, length);
  if (self.head_.target.size() > self.limits_.max_header_bytes) {
    self.limit_status_ = 414;
    return HPE_USER;
  }
  return 0;
}

int RequestParser::on_header_field(llhttp_t* parser, const char* at, std::size_t length) {
  RequestParser& self = self_of(parser);
  self.collector_.add_name_piece({at, length});
  return self.check_head_size();
}

int RequestParser::on_header_value(llhttp_t* parser, const char* at, std::size_t length) {
  RequestParser& self = self_of(parser);
  if (!self.collector_.add_value_piece({at, length})) {
    llhttp_set_error_reason(parser, "obsolete line folding (obs-fold) in a header field");
    return HPE_USER;
  }
  return self.check_head_size();
}

int RequestParser::on_header_value_complete(llhttp_t* parser) {
  self_of(parser).collector_.end_field();
  return 0;
}

int RequestParser::on_headers_complete(llhttp_t* parser) {
  RequestParser& self = self_of(parser);
  RequestHead& head = self.head_;
  self.head_complete_ = true;
  head.method = llhttp_method_name(static_cast<llhttp_method_t>(parser->method));
  head.http10 = parser->http_major == 1 && parser->http_minor == 0;
  head.keep_alive = llhttp_should_keep_alive(parser) != 0;
  if (parser->flags & F_CHUNKED) {
    head.framing = BodyFraming::Chunked;
  } else if ((parser->flags & F_CONTENT_LENGTH) && parser->content_length > 0) {
    head.framing = BodyFraming::ContentLength;
    head.content_length = parser->content_length;
  } else {
    head.framing = BodyFraming::None;
  }
  // HTTP/1.0 has no Upgrade (RFC 9110 section 7.8); a request with a body is served as plain
  // HTTP, since its body would have to be relayed before the switch.
  head.upgrade = parser->upgrade != 0 && parser->method != HTTP_CONNECT && !head.http10 &&
                 head.framing == BodyFraming::None;
  // A head with a body pauses here, its body waiting for the upstream; one without runs on to
  // on_message_complete, which pauses.
  return head.framing == BodyFraming::None ? 0 : HPE_PAUSED;
}

int RequestParser::on_body(llhttp_t* parser, const char* at, std::size_t length) {
  RequestParser& self = self_of(parser);
  self.body_bytes_ += length;
  if (self.body_bytes_ > self.limits_.max_body_bytes) {
    self.limit_status_ = 413;
    return HPE_USER;
  }
  return self.events_.on_request_body({at, length}) ? 0 : HPE_USER;
}

int RequestParser::on_message_complete(llhttp_t* parser) {
  RequestParser& self = self_of(parser);
  self.message_complete_ = true;
  self.events_.on_request_complete();
  return HPE_PAUSED;  // a pipelined request waits until this one is answered
}

std::optional<Problem> check_request_head(const RequestHead& head) {
  auto malformed = [](std::string detail) {
    return Problem::make("malformed-request", 400, "Malformed request", std::move(detail));
  };
  if (head.target.empty() || head.target.front() != '/') {
    return malformed("The request target must be a path beginning with '/' (origin-form).");
  }
  std::size_t hosts = head.headers.count("host");
  if (hosts > 1) return malformed("More than one Host field.");
  if (hosts == 0 && !head.http10) return malformed("HTTP/1.1 requests must carry a Host field.");
  // llhttp already refuses Transfer-Encoding that does not end in chunked; a second field or a
  // coding besides chunked is refused here too.
  if (std::size_t te = head.headers.count("transfer-encoding"); te > 0) {
    if (te > 1 || !iequals(*head.headers.find("transfer-encoding"), "chunked")) {
      return malformed("Transfer-Encoding other than a single 'chunked' is not accepted.");
    }
  }
  if (auto expect = head.headers.find("expect"); expect && !iequals(*expect, "100-continue")) {
    return Problem::make("expectation-failed", 417, "Expectation failed", "Only 'Expect: 100-continue' is supported.");
  }
  return std::nullopt;
}

bool expects_continue(const RequestHead& head) {
  auto expect = head.headers.find("expect");
  // HTTP/1.0 clients must not be sent a 100 (RFC 9110 section 10.1.1).
  return expect && iequals(*expect, "100-continue") && head.framing != BodyFraming::None && !head.http10;
}

}  // namespace arbiter
