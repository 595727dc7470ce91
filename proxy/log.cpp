#include "proxy/log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>

namespace arbiter {

namespace {

void write_all(int fd, const char* data, std::size_t length) {
  while (length > 0) {
    ssize_t n = ::write(fd, data, length);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return;  // a log that cannot be written must not stop the proxy
    data += n;
    length -= static_cast<std::size_t>(n);
  }
}

// Integers and fixed-point numbers without printf's format parsing: these run on every line.
void append_integer(std::string& out, std::uint64_t value) {
  char text[24];
  auto result = std::to_chars(text, text + sizeof text, value);
  out.append(text, result.ptr);
}

void append_fixed(std::string& out, double value, int decimals) {
  char text[64];
  auto result = std::to_chars(text, text + sizeof text, value, std::chars_format::fixed, decimals);
  if (result.ec != std::errc()) {
    out.push_back('0');
    return;
  }
  out.append(text, result.ptr);
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

void append_seconds(std::string& out, double milliseconds) { append_fixed(out, milliseconds / 1000, 3); }

void append_string_member(std::string& out, std::string_view name, std::string_view value) {
  out.append(",\"");
  out.append(name);
  out.append("\":\"");
  append_json_escaped(out, value);
  out.push_back('"');
}

void append_integer_member(std::string& out, std::string_view name, std::uint64_t value) {
  out.append(",\"");
  out.append(name);
  out.append("\":");
  append_integer(out, value);
}

void append_milliseconds_member(std::string& out, std::string_view name, double value) {
  out.append(",\"");
  out.append(name);
  out.append("\":");
  append_fixed(out, value, 3);
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
  // Runs of bytes that need no escape (nearly all of a log line) are appended whole.
  std::size_t plain = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    auto u = static_cast<unsigned char>(text[i]);
    bool quoted = u == '"' || u == '\\';
    // Request targets are not trusted to be UTF-8: bytes >= 0x80 are escaped too, which keeps
    // every line valid JSON.
    bool control = u < 0x20 || u >= 0x7f;
    if (!quoted && !control) continue;
    out.append(text.data() + plain, i - plain);
    plain = i + 1;
    if (quoted) {
      out.push_back('\\');
      out.push_back(static_cast<char>(u));
    } else {
      out.append("\\u00");
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 15]);
    }
  }
  out.append(text.data() + plain, text.size() - plain);
}

std::string_view access_log_format_name(AccessLogFormat format) noexcept {
  return format == AccessLogFormat::Combined ? "combined" : "json";
}

std::shared_ptr<const AccessLogFile> AccessLogFile::standard_output() {
  static const std::shared_ptr<const AccessLogFile> kStdout(new AccessLogFile(1, std::string()));
  return kStdout;
}

std::shared_ptr<const AccessLogFile> AccessLogFile::open(const std::string& path, std::string& error) {
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    error = std::strerror(errno);
    return nullptr;
  }
  return std::shared_ptr<const AccessLogFile>(new AccessLogFile(fd, path));
}

AccessLogFile::~AccessLogFile() {
  if (!path_.empty()) ::close(fd_);
}

void AccessLogFile::write(std::string_view bytes) const { write_all(fd_, bytes.data(), bytes.size()); }

AccessLog::AccessLog(bool enabled, const AccessLogTarget& target) : enabled_(enabled), target_(target) {
  buffer_.reserve(kFlushBytes + 4096);  // a full buffer plus the line that crosses the mark
}

// ISO 8601 with milliseconds for JSON; the combined format's own "25/Nov/2026:16:48:33 +0000".
void AccessLog::append_time(AccessLogFormat format) {
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  auto now = std::chrono::system_clock::now();
  std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::size_t which = format == AccessLogFormat::Combined ? 1 : 0;
  if (cached_second_[which] != seconds) {
    std::tm utc{};
    gmtime_r(&seconds, &utc);
    char text[64];  // room for any int the compiler cannot rule out
    if (format == AccessLogFormat::Combined) {
      std::snprintf(text, sizeof text, "%02d/%s/%04d:%02d:%02d:%02d +0000", utc.tm_mday, kMonths[utc.tm_mon % 12],
                    utc.tm_year + 1900, utc.tm_hour, utc.tm_min, utc.tm_sec);
    } else {
      std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.", utc.tm_year + 1900, utc.tm_mon + 1,
                    utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec);
    }
    cached_time_[which] = text;
    cached_second_[which] = seconds;
  }
  buffer_.append(cached_time_[which]);
  if (format == AccessLogFormat::Json) {
    auto m = static_cast<int>(millis < 0 ? 0 : millis);
    buffer_.push_back(static_cast<char>('0' + m / 100));
    buffer_.push_back(static_cast<char>('0' + m / 10 % 10));
    buffer_.push_back(static_cast<char>('0' + m % 10));
    buffer_.push_back('Z');
  }
}

void AccessLog::record(const AccessRecord& r, AccessLogFormat format) {
  if (!enabled_) return;
  if (format == AccessLogFormat::Combined) {
    record_combined(r);
  } else {
    record_json(r);
  }
  if (buffer_.size() >= kFlushBytes) flush();
}

void AccessLog::record_json(const AccessRecord& r) {
  buffer_.append("{\"time\":\"");
  append_time(AccessLogFormat::Json);
  buffer_.push_back('"');
  append_string_member(buffer_, "request_id", r.request_id);
  append_string_member(buffer_, "client", r.client);
  append_string_member(buffer_, "method", r.method);
  append_string_member(buffer_, "path", r.target);
  append_string_member(buffer_, "route", r.route);
  append_integer_member(buffer_, "status", static_cast<std::uint64_t>(r.status < 0 ? 0 : r.status));
  append_integer_member(buffer_, "bytes", r.bytes_sent);
  if (r.upstream_ms >= 0) append_milliseconds_member(buffer_, "upstream_ms", r.upstream_ms);
  append_milliseconds_member(buffer_, "total_ms", r.total_ms);
  append_string_member(buffer_, "decision", r.decision);
  buffer_.append("}\n");
}

void AccessLog::record_combined(const AccessRecord& r) {
  append_log_escaped(buffer_, r.client, true);
  buffer_.append(" - - [");
  append_time(AccessLogFormat::Combined);
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
  append_integer(buffer_, static_cast<std::uint64_t>(r.status < 0 ? 0 : r.status));
  buffer_.push_back(' ');
  append_integer(buffer_, r.bytes_sent);
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
  target_.get()->write(buffer_);
  buffer_.clear();
}

}  // namespace arbiter
