#include "proxy/http/response_parser.h"

namespace arbiter {

namespace {

ResponseParser& response_parser_of(llhttp_t* parser) { return *static_cast<ResponseParser*>(parser->data); }

}  // namespace

ResponseParser::ResponseParser(ResponseEvents& events) : events_(events) { next_response(); }

const llhttp_settings_t& ResponseParser::settings() {
  static const llhttp_settings_t settings = [] {
    llhttp_settings_t s = message_parser_settings(on_header_field, on_header_value, on_header_value_complete,
                                                  on_headers_complete, on_body, on_message_complete);
    s.on_status_complete = on_status_complete;
    return s;
  }();
  return settings;
}

void ResponseParser::next_response() {
  headers_.clear();
  trailers_.clear();
  collector_.reset();
  collector_.collect_into(headers_);
  head_request_ = false;
  upgrade_request_ = false;
  head_done_ = false;
  complete_ = false;
  llhttp_init(&parser_, HTTP_RESPONSE, &settings());
  parser_.data = this;
}

llhttp_errno_t ResponseParser::execute(const char* data, std::size_t length, std::size_t& consumed) {
  return execute_message_parser(parser_, collector_, data, length, consumed);
}

bool ResponseParser::finish_at_eof() {
  if (!head_done_ || !llhttp_message_needs_eof(&parser_)) return false;
  // llhttp_finish runs on_message_complete, whose HPE_PAUSED it hands back.
  llhttp_errno_t rc = llhttp_finish(&parser_);
  return (rc == HPE_OK || rc == HPE_PAUSED) && complete_;
}

int ResponseParser::on_status_complete(llhttp_t* parser) {
  response_parser_of(parser).headers_.clear();
  return 0;
}

int ResponseParser::on_header_field(llhttp_t* parser, const char* at, std::size_t length) {
  ResponseParser& self = response_parser_of(parser);
  self.collector_.add_name_piece({at, length});
  return self.headers_.byte_size() + self.trailers_.byte_size() > kMaxHeadBytes ? -1 : 0;
}

int ResponseParser::on_header_value(llhttp_t* parser, const char* at, std::size_t length) {
  ResponseParser& self = response_parser_of(parser);
  if (!self.collector_.add_value_piece({at, length})) return -1;
  return self.headers_.byte_size() + self.trailers_.byte_size() > kMaxHeadBytes ? -1 : 0;
}

int ResponseParser::on_header_value_complete(llhttp_t* parser) {
  response_parser_of(parser).collector_.end_field();
  return 0;
}

int ResponseParser::on_headers_complete(llhttp_t* parser) {
  ResponseParser& self = response_parser_of(parser);
  int status = parser->status_code;
  if (status == 101 && self.upgrade_request_) {
    // The switch the client asked for: the head goes to the client with its Upgrade field,
    // and what follows it is the new protocol (2: llhttp stops as after an upgrade).
    self.head_done_ = true;
    remove_hop_by_hop(self.headers_, true);
    if (!self.events_.on_response_head(status, self.headers_, BodyFraming::None, 0)) return -1;
    return 2;
  }
  if (status >= 100 && status < 200) {
    // Interim answers (100, 103) are not relayed; this 101 is a protocol switch nobody asked for.
    // An interim answer ends at its empty line whatever framing fields it carries (RFC 9112
    // section 6.3), so 1: no body follows, the next answer starts there.
    return status == 101 ? -1 : 1;
  }
  self.head_done_ = true;
  self.collector_.collect_into(self.trailers_);  // fields after a chunked body
  BodyFraming framing = BodyFraming::UntilClose;
  std::uint64_t length = 0;
  if (parser->flags & F_CHUNKED) {
    framing = BodyFraming::Chunked;
  } else if (parser->flags & F_CONTENT_LENGTH) {
    framing = BodyFraming::ContentLength;
    length = parser->content_length;
  } else if (status_has_no_body(status) || self.head_request_) {
    framing = BodyFraming::None;
  }
  remove_hop_by_hop(self.headers_);
  if (!self.events_.on_response_head(status, self.headers_, framing, length)) return -1;
  return self.head_request_ ? 1 : 0;  // 1: no body follows
}

int ResponseParser::on_body(llhttp_t* parser, const char* at, std::size_t length) {
  return response_parser_of(parser).events_.on_response_body({at, length}) ? 0 : -1;
}

int ResponseParser::on_message_complete(llhttp_t* parser) {
  ResponseParser& self = response_parser_of(parser);
  if (!self.head_done_) {
    self.headers_.clear();
    self.collector_.reset();
    return 0;  // an interim 1xx answer ended; the real one follows
  }
  self.complete_ = true;
  if (!self.trailers_.empty() && !self.events_.on_response_trailers(self.trailers_)) return -1;
  return HPE_PAUSED;
}

}  // namespace arbiter
