#pragma once
// Gathers header fields from llhttp's piecewise callbacks into a HeaderList. A name or value
// may arrive in several pieces when it straddles two reads; a field ends at
// on_header_value_complete.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include <llhttp.h>

#include "proxy/http/headers.h"

namespace arbiter {

class HeaderCollector {
 public:
  explicit HeaderCollector(HeaderList& headers) : headers_(&headers) {}

  // Fields from now on go to `headers` (a message's trailer section after its head); the list
  // must outlive the collector's use of it.
  void collect_into(HeaderList& headers) noexcept { headers_ = &headers; }

  void reset() noexcept {
    field_open_ = false;
    value_started_ = false;
  }
  // Call once at the start of every llhttp_execute: pieces of one value delivered within one
  // call are not a read boundary but a folded line.
  void next_execution() noexcept { ++execution_; }

  void add_name_piece(std::string_view piece) {
    if (!field_open_) {
      headers_->begin_field();
      field_open_ = true;
      value_started_ = false;
    }
    headers_->append_name(piece);
  }
  // False for obs-fold (RFC 9112 section 5.2): llhttp accepts it and passes the continuation
  // line as a second piece of the same value within one execute() call.
  bool add_value_piece(std::string_view piece) {
    if (value_started_ && value_execution_ == execution_) return false;
    value_started_ = true;
    value_execution_ = execution_;
    headers_->append_value(piece);
    return true;
  }
  void end_field() noexcept {
    field_open_ = false;
    value_started_ = false;
  }

 private:
  HeaderList* headers_;
  bool field_open_ = false;
  bool value_started_ = false;
  std::uint64_t execution_ = 0;
  std::uint64_t value_execution_ = 0;
};

// The llhttp callbacks every message parser here shares (the header ones feed a
// HeaderCollector); each parser adds its own for the start line.
inline llhttp_settings_t message_parser_settings(llhttp_data_cb on_header_field, llhttp_data_cb on_header_value,
                                                 llhttp_cb on_header_value_complete, llhttp_cb on_headers_complete,
                                                 llhttp_data_cb on_body, llhttp_cb on_message_complete) {
  llhttp_settings_t settings;
  llhttp_settings_init(&settings);
  settings.on_header_field = on_header_field;
  settings.on_header_value = on_header_value;
  settings.on_header_value_complete = on_header_value_complete;
  settings.on_headers_complete = on_headers_complete;
  settings.on_body = on_body;
  settings.on_message_complete = on_message_complete;
  return settings;
}

// One llhttp_execute over data for a parser whose fields go to `collector`. consumed: how far
// it got (all of data unless it paused).
inline llhttp_errno_t execute_message_parser(llhttp_t& parser, HeaderCollector& collector, const char* data,
                                             std::size_t length, std::size_t& consumed) {
  collector.next_execution();
  llhttp_errno_t rc = llhttp_execute(&parser, data, length);
  consumed = length;
  if (rc == HPE_PAUSED) {
    const char* stop = llhttp_get_error_pos(&parser);
    if (stop != nullptr) consumed = static_cast<std::size_t>(stop - data);
  }
  return rc;
}

}  // namespace arbiter
