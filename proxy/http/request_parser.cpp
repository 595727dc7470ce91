#include "proxy/http/request_parser.h"

#include <arpa/inet.h>

#include "proxy/http/address.h"

namespace arbiter {

namespace {

RequestParser& request_parser_of(llhttp_t* parser) { return *static_cast<RequestParser*>(parser->data); }

bool is_hex_digit(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// RFC 3986 section 2.3 unreserved and 2.2 sub-delims.
bool is_unreserved_or_sub_delim(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         std::string_view("-._~!$&'()*+,;=").find(c) != std::string_view::npos;
}

// reg-name (RFC 3986 section 3.2.2): unreserved, pct-encoded and sub-delims; IPv4 addresses
// are reg-names too.
bool is_reg_name(std::string_view text) {
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%') {
      if (i + 2 >= text.size() || !is_hex_digit(text[i + 1]) || !is_hex_digit(text[i + 2])) return false;
      i += 2;
    } else if (!is_unreserved_or_sub_delim(text[i])) {
      return false;
    }
  }
  return true;
}

// IP-literal (RFC 3986 section 3.2.2) without its brackets: an IPv6 address or IPvFuture.
bool is_ip_literal(std::string_view inside) {
  if (!inside.empty() && (inside.front() == 'v' || inside.front() == 'V')) {
    std::size_t dot = inside.find('.');
    if (dot == std::string_view::npos || dot < 2 || dot + 1 == inside.size()) return false;
    for (char c : inside.substr(1, dot - 1)) {
      if (!is_hex_digit(c)) return false;
    }
    for (char c : inside.substr(dot + 1)) {
      if (!is_unreserved_or_sub_delim(c) && c != ':') return false;
    }
    return true;
  }
  in6_addr parsed{};
  return parse_ip_address(inside, AF_INET6, &parsed);
}

// `host [":" port]` as Host (RFC 9110 section 7.2) and an http(s) URI's authority without
// userinfo take it: uri-host is IP-literal / IPv4address / reg-name, port is digits.
bool is_host_and_port(std::string_view text) {
  std::string_view host = text;
  std::string_view rest;
  if (!text.empty() && text.front() == '[') {
    std::size_t close = text.find(']');
    if (close == std::string_view::npos || !is_ip_literal(text.substr(1, close - 1))) return false;
    host = {};
    rest = text.substr(close + 1);
  } else if (std::size_t colon = text.find(':'); colon != std::string_view::npos) {
    host = text.substr(0, colon);
    rest = text.substr(colon);
  }
  if (!is_reg_name(host)) return false;
  if (rest.empty()) return true;
  if (rest.front() != ':') return false;
  for (char c : rest.substr(1)) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

Problem malformed(std::string detail) {
  return Problem::make("malformed-request", 400, "Malformed request", std::move(detail));
}

// An http or https absolute-form target (RFC 9112 section 3.2.2) becomes origin-form, its
// authority the Host (replacing any Host field, as the section requires of a server). Returns
// the 400 when the target is neither form or its authority is not a valid host.
std::optional<Problem> adopt_absolute_form(RequestHead& head) {
  std::string_view target(head.target);
  std::size_t scheme_end = target.find("://");
  std::string_view scheme = scheme_end == std::string_view::npos ? std::string_view() : target.substr(0, scheme_end);
  if (!iequals(scheme, "http") && !iequals(scheme, "https")) {
    return malformed("The request target must be a path beginning with '/' (origin-form) or an http:// URI "
                     "(absolute-form).");
  }
  std::string_view rest = target.substr(scheme_end + 3);
  std::size_t authority_end = rest.find_first_of("/?#");
  if (authority_end == std::string_view::npos) authority_end = rest.size();
  std::string_view authority = rest.substr(0, authority_end);
  if (authority.find('@') != std::string_view::npos) {
    // RFC 9110 section 4.2.4: userinfo in an http(s) URI is to be treated as an error.
    return malformed("The absolute-form target carries userinfo ('user@'), which HTTP does not allow.");
  }
  if (authority.empty() || authority.front() == ':' || !is_host_and_port(authority)) {
    return malformed("The absolute-form target's authority '" + std::string(authority) + "' is not a valid host.");
  }
  head.headers.set("Host", authority);  // copies it: `authority` views the target, rewritten next
  head.target.erase(0, scheme_end + 3 + authority_end);
  if (head.target.empty() || head.target.front() != '/') head.target.insert(0, 1, '/');
  return std::nullopt;
}

}  // namespace

RequestParser::RequestParser(RequestEvents& events) : events_(events) {
  llhttp_init(&parser_, HTTP_REQUEST, &settings());
  // Every HTTP/x.y gets as far as on_version_complete, which decides (llhttp alone would refuse
  // HTTP/1.2 with 400, where RFC 9110 section 2.5 says to serve it as 1.1).
  parser_.lenient_flags |= LENIENT_VERSION;
  parser_.data = this;
}

const llhttp_settings_t& RequestParser::settings() {
  static const llhttp_settings_t settings = [] {
    llhttp_settings_t s = message_parser_settings(on_header_field, on_header_value, on_header_value_complete,
                                                  on_headers_complete, on_body, on_message_complete);
    s.on_message_begin = on_message_begin;
    s.on_url = on_url;
    s.on_version_complete = on_version_complete;
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
  head_.trailers.clear();
  head_.http10 = false;
  head_.keep_alive = true;
  head_.framing = BodyFraming::None;
  head_.content_length = 0;
  head_.upgrade = false;
  collector_.reset();
  collector_.collect_into(head_.headers);
  head_complete_ = false;
  message_complete_ = false;
  body_bytes_ = 0;
  limit_status_ = 0;
}

Problem RequestParser::problem(llhttp_errno_t error) const {
  switch (limit_status_) {
    case 505:
      return Problem::make("http-version-not-supported", 505, "HTTP version not supported",
                          "Arbiter speaks HTTP/1.1 and HTTP/1.0; send the request as HTTP/1.1.");
    case 400:
      return malformed("Malformed HTTP request: HTTP/0.x is not a version of HTTP/1 messages.");
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
  if (head_.headers.byte_size() + head_.trailers.byte_size() + head_.target.size() > limits_.max_header_bytes) {
    limit_status_ = 431;
    return HPE_USER;
  }
  return 0;
}

int RequestParser::on_message_begin(llhttp_t* parser) {
  request_parser_of(parser).events_.on_request_begin();
  return 0;
}

int RequestParser::on_url(llhttp_t* parser, const char* at, std::size_t length) {
  RequestParser& self = request_parser_of(parser);
  self.head_.target.append(at, length);
  if (self.head_.target.size() > self.limits_.max_header_bytes) {
    self.limit_status_ = 414;
    return HPE_USER;
  }
  return 0;
}

int RequestParser::on_version_complete(llhttp_t* parser) {
  // RFC 9110 section 2.5: a higher minor version is served as the highest one supported (1.1);
  // another major version is not HTTP/1 (RFC 9110 section 15.6.6).
  if (parser->http_major == 1) return 0;
  request_parser_of(parser).limit_status_ = parser->http_major == 0 ? 400 : 505;
  return HPE_USER;
}

int RequestParser::on_header_field(llhttp_t* parser, const char* at, std::size_t length) {
  RequestParser& self = request_parser_of(parser);
  self.collector_.add_name_piece({at, length});
  return self.check_head_size();
}

int RequestParser::on_header_value(llhttp_t* parser, const char* at, std::size_t length) {
  RequestParser& self = request_parser_of(parser);
  if (!self.collector_.add_value_piece({at, length})) {
    llhttp_set_error_reason(parser, "obsolete line folding (obs-fold) in a header field");
    return HPE_USER;
  }
  return self.check_head_size();
}

int RequestParser::on_header_value_complete(llhttp_t* parser) {
  request_parser_of(parser).collector_.end_field();
  return 0;
}

int RequestParser::on_headers_complete(llhttp_t* parser) {
  RequestParser& self = request_parser_of(parser);
  RequestHead& head = self.head_;
  self.head_complete_ = true;
  self.collector_.collect_into(head.trailers);  // what follows a chunked body
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
  RequestParser& self = request_parser_of(parser);
  self.body_bytes_ += length;
  if (self.body_bytes_ > self.limits_.max_body_bytes) {
    self.limit_status_ = 413;
    return HPE_USER;
  }
  return self.events_.on_request_body({at, length}) ? 0 : HPE_USER;
}

int RequestParser::on_message_complete(llhttp_t* parser) {
  RequestParser& self = request_parser_of(parser);
  self.message_complete_ = true;
  self.events_.on_request_complete();
  return HPE_PAUSED;  // a pipelined request waits until this one is answered
}

std::optional<Problem> check_request_head(RequestHead& head) {
  std::size_t hosts = head.headers.count("host");
  if (hosts > 1) return malformed("More than one Host field.");
  if (auto host = head.headers.find("host");
      host && !without_ows(*host).empty() && !is_host_and_port(without_ows(*host))) {
    return malformed("The Host field '" + std::string(*host) + "' is not a valid host[:port] (RFC 9110 section 7.2).");
  }
  if (head.target.empty() || head.target.front() != '/') {
    if (std::optional<Problem> refused = adopt_absolute_form(head)) return refused;
  } else if (hosts == 0 && !head.http10) {
    return malformed("HTTP/1.1 requests must carry a Host field.");
  }
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
