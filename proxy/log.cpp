#include "proxy/log.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>

namespace arbiter {

namespace {

void write_all(int fd, const char* data, std::size_t length) {
  while (length > 0) {
    ssize_t n = ::write(fd, data, length);
    if (n < 0) return;  // a log that cannot be written must not stop the proxy
    data += n;
    length -= static_cast<std::size_t>(n);
  }
}

// ISO 8601 with milliseconds for JSON; the combined format's own "25/Nov/2026:16:48:33 +0000".
void append_time(std::string& out, AccessLogFormat format) {
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  auto now = std::chrono::system_clock::now();
  std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char text[64];  // room for any int the compiler cannot rule out
  if (format == AccessLogFormat::Combined) {
    std::snprintf(text, sizeof text, "%02d/%s/%04d:%02d:%02d:%02d +0000", utc.tm_mday, kMonths[utc.tm_mon % 12],
                  utc.tm_year + 1900, utc.tm_hour, utc.tm_min, utc.tm_sec);
  } else {
    std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900, utc.tm_mon + 1,
                  utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, static_cast<int>(millis));
  }
  out.append(text);
}

// As nginx escapes variables in its log lines: the double quote, the backslash, control bytes
// and bytes >= 0x7f as \xHH, so that a client cannot end a quoted field or a line. Spaces too
// when the value is not quoted (key=value fields), so that every field stays one word. An
// empty value is "-".
void append_log_escaped(std::string& out, std::string_view text, bool escape_space) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  if (text.empty()) {
    out.push_back('-');
    return;
  }
  for (char c : text) {
    auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\' || u < 0x20 || u >= 0x7f || (escape_space && c == ' ')) {
      out.append("\\x");
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 15]);
    } else {
      out.push_back(c);
    }
  }
}

void append_seconds(std::string& out, double milliseconds) {
  char text[48];
  std::snprintf(text, sizeof text, "%.3f", milliseconds / 1000);
  out.append(text);
}

void append_string_member(std::string& out, std::string_view name, std::string_view value) {
  out.append(",\"");
  out.append(name);
  out.append("\":\"");
  append_json_escaped(out, value);
  out.push_back('"');
}

void append_number_member(std::string& out, std::string_view name, double value, int decimals) {
  char text[48];
  std::snprintf(text, sizeof text, "%.*f", decimals, value);
  out.append(",\"");
  out.append(name);
  out.append("\":");
  out.append(text);
}

}  // namespace

void log_line(std::string_view message) {
  std::string line = "arbiter: ";
  line.append(message);
  line.push_back('\n');
  write_all(2, line.data(), line.size());
}

void append_json_escaped(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (char c : text) {
    auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (u < 0x20 || u == 0x7f) {
      out.append("\\u00");
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 15]);
    } else if (u >= 0x80) {
      // Request targets are not trusted to be UTF-8; escaping bytes keeps every line valid JSON.
      out.append("\\u00");
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 15]);
    } else {
      out.push_back(c);
    }
  }
}

std::string_view access_log_format_name(AccessLogFormat format) noexcept {
  return format == AccessLogFormat::Combined ? "combined" : "json";
}

void AccessLog::record(const AccessRecord& r, AccessLogFormat format) {
  if (!enabled_) return;
  if (format == AccessLogFormat::Combined) {
    record_combined(r);
  } else {
    record_json(r);
  }
  if (buffer_.size() > (64u << 10)) flush();
}

void AccessLog::record_json(const AccessRecord& r) {
  buffer_.append("{\"time\":\"");
  append_time(buffer_, AccessLogFormat::Json);
  buffer_.push_back('"');
  append_string_member(buffer_, "request_id", r.request_id);
  append_string_member(buffer_, "client", r.client);
  append_string_member(buffer_, "method", r.method);
  append_string_member(buffer_, "path", r.target);
  append_string_member(buffer_, "route", r.route);
  append_number_member(buffer_, "status", r.status, 0);
  append_number_member(buffer_, "bytes", static_cast<double>(r.bytes_sent), 0);
  if (r.upstream_ms >= 0) append_number_member(buffer_, "upstream_ms", r.upstream_ms, 3);
  append_number_member(buffer_, "total_ms", r.total_ms, 3);
  append_string_member(buffer_, "decision", r.decision);
  buffer_.append("}\n");
}

void AccessLog::record_combined(const AccessRecord& r) {
  append_log_escaped(buffer_, r.client, true);
  buffer_.append(" - - [");
  append_time(buffer_, AccessLogFormat::Combined);
  buffer_.append("] \"");
  if (r.method.empty() || r.method == "-") {
    buffer_.push_back('-');  // nothing parsable arrived (a timeout or a malformed head), as nginx writes it
  } else {
    append_log_escaped(buffer_, r.method, false);
    buffer_.push_back(' ');
    append_log_escaped(buffer_, r.target, false);
    buffer_.push_back(' ');
    append_log_escaped(buffer_, r.protocol, false);
  }
  buffer_.append("\" ");
  buffer_.append(std::to_string(r.status));
  buffer_.push_back(' ');
  buffer_.append(std::to_string(r.bytes_sent));
  buffer_.append(" \"");
  append_log_escaped(buffer_, r.referer, false);
  buffer_.append("\" \"");
  append_log_escaped(buffer_, r.user_agent, false);
  buffer_.append("\" rt=");
  append_seconds(buffer_, r.total_ms);
  buffer_.append(" uht=");
  if (r.upstream_ms >= 0) {
    append_seconds(buffer_, r.upstream_ms);
  } else {
    buffer_.push_back('-');
  }
  buffer_.append(" route=");
  append_log_escaped(buffer_, r.route, true);
  buffer_.append(" decision=");
  append_log_escaped(buffer_, r.decision, true);
  buffer_.append(" request_id=");
  append_log_escaped(buffer_, r.request_id, true);
  buffer_.push_back('\n');
}

void AccessLog::flush() {
  if (buffer_.empty()) return;
  write_all(1, buffer_.data(), buffer_.size());
  buffer_.clear();
}

}  // namespace arbiter
