#include "proxy/observe/log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cmath>
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

// A line is formatted straight into the buffer through a char pointer: the caller has made room
// for the most the line can take (kMax* below), so nothing checks or grows a string per field.

// Which bytes the log escapes: kAlways in every field (as nginx escapes variables: the double
// quote, the backslash, control bytes and bytes >= 0x7f, so that a client cannot end a quoted
// field or a line, and every JSON line stays valid whatever bytes a request target holds);
// kBare also in the combined format's key=value fields, so that each stays one word.
constexpr std::uint8_t kAlways = 1;
constexpr std::uint8_t kBare = 2;
struct EscapeTable {
  std::uint8_t bits[256] = {};
  constexpr EscapeTable() {
    for (int u = 0; u < 256; ++u) {
      if (u == '"' || u == '\\' || u < 0x20 || u >= 0x7f) bits[u] = kAlways | kBare;
    }
    bits[static_cast<unsigned char>(' ')] = kBare;
  }
};
constexpr EscapeTable kEscape;

constexpr std::size_t kMaxJsonEscaped = 6;  // bytes a byte can become: \u00XX
constexpr std::size_t kMaxLogEscaped = 4;   // \xHH
constexpr std::size_t kMaxNumber = 64;      // an integer, or a number of put_thousandths
// The rest of a line: names, punctuation, the time, "-" for empty fields and four numbers of
// at most kMaxNumber bytes (under 350 bytes in either format).
constexpr std::size_t kMaxFixed = 512;

// An empty view may have a null data(), which memcpy must not be given even for 0 bytes.
char* put(char* out, std::string_view text) {
  if (text.empty()) return out;
  std::memcpy(out, text.data(), text.size());
  return out + text.size();
}

// `text` escaped as `mask` says, runs of bytes that need no escape copied whole; at most
// kMaxJsonEscaped (json) or kMaxLogEscaped bytes a byte.
char* put_escaped(char* out, std::string_view text, std::uint8_t mask, bool json) {
  const char* run = text.data();
  const char* end = run + text.size();
  for (const char* c = run; c != end; ++c) {
    auto u = static_cast<unsigned char>(*c);
    if ((kEscape.bits[u] & mask) == 0) continue;
    out = put(out, std::string_view(run, static_cast<std::size_t>(c - run)));
    run = c + 1;
    if (json && (u == '"' || u == '\\')) {
      *out++ = '\\';
      *out++ = *c;
    } else {
      static constexpr char kLowerHex[] = "0123456789abcdef";
      static constexpr char kUpperHex[] = "0123456789ABCDEF";
      const char* hex = json ? kLowerHex : kUpperHex;
      out = put(out, json ? std::string_view("\\u00") : std::string_view("\\x"));
      *out++ = hex[u >> 4];
      *out++ = hex[u & 15];
    }
  }
  return put(out, std::string_view(run, static_cast<std::size_t>(end - run)));
}

// As nginx writes a variable: escaped, and "-" for an empty value.
char* put_log_escaped(char* out, std::string_view text, bool escape_space) {
  if (text.empty()) {
    *out++ = '-';
    return out;
  }
  return put_escaped(out, text, escape_space ? kAlways | kBare : kAlways, false);
}

char* put_integer(char* out, std::uint64_t value) { return std::to_chars(out, out + kMaxNumber, value).ptr; }

// `value` to the nearest thousandth, with three decimals ("%.3f"); "0" for what does not fit
// kMaxNumber.
char* put_thousandths(char* out, double value) {
  if (value >= 0 && value < 1e12) {  // thousandths well within a double's exact integers
    auto thousandths = static_cast<std::uint64_t>(std::llround(value * 1000));
    out = put_integer(out, thousandths / 1000);
    auto fraction = static_cast<unsigned>(thousandths % 1000);
    out[0] = '.';
    out[1] = static_cast<char>('0' + fraction / 100);
    out[2] = static_cast<char>('0' + fraction / 10 % 10);
    out[3] = static_cast<char>('0' + fraction % 10);
    return out + 4;
  }
  auto result = std::to_chars(out, out + kMaxNumber, value, std::chars_format::fixed, 3);
  if (result.ec == std::errc()) return result.ptr;
  *out++ = '0';
  return out;
}

}  // namespace

void log_line(std::string_view message) {
  std::string line = "arbiter: ";
  line.append(message);
  line.push_back('\n');
  write_all(2, line.data(), line.size());
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
  buffer_.resize(kBufferBytes);
}

char* AccessLog::room(std::size_t line_bytes) {
  if (buffer_.size() - used_ < line_bytes) buffer_.resize(used_ + line_bytes);
  return buffer_.data() + used_;
}

// ISO 8601 with milliseconds for JSON; the combined format's own "25/Nov/2026:16:48:33 +0000".
char* AccessLog::put_time(char* out, AccessLogFormat format) {
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
  out = put(out, cached_time_[which]);
  if (format == AccessLogFormat::Json) {
    auto m = static_cast<int>(millis < 0 ? 0 : millis);
    out[0] = static_cast<char>('0' + m / 100);
    out[1] = static_cast<char>('0' + m / 10 % 10);
    out[2] = static_cast<char>('0' + m % 10);
    out[3] = 'Z';
    out += 4;
  }
  return out;
}

void AccessLog::record(const AccessRecord& r, AccessLogFormat format) {
  if (!enabled_) return;
  std::size_t text_bytes = r.request_id.size() + r.client.size() + r.method.size() + r.target.size() +
                           r.route.size() + r.decision.size();
  char* out;
  if (format == AccessLogFormat::Combined) {
    text_bytes += r.protocol.size() + r.referer.size() + r.user_agent.size();
    out = record_combined(room(kMaxFixed + kMaxLogEscaped * text_bytes), r);
  } else {
    out = record_json(room(kMaxFixed + kMaxJsonEscaped * text_bytes), r);
  }
  used_ = static_cast<std::size_t>(out - buffer_.data());
  if (used_ >= kFlushBytes) flush();
}

char* AccessLog::record_json(char* out, const AccessRecord& r) {
  // Each string member: its name and the quotes around its value, then the escaped value.
  auto string_member = [&out](std::string_view name_and_quotes, std::string_view value) {
    out = put(out, name_and_quotes);
    out = put_escaped(out, value, kAlways, true);
  };
  out = put(out, "{\"time\":\"");
  out = put_time(out, AccessLogFormat::Json);
  string_member("\",\"request_id\":\"", r.request_id);
  string_member("\",\"client\":\"", r.client);
  string_member("\",\"method\":\"", r.method);
  string_member("\",\"path\":\"", r.target);
  string_member("\",\"route\":\"", r.route);
  out = put(out, "\",\"status\":");
  out = put_integer(out, static_cast<std::uint64_t>(r.status < 0 ? 0 : r.status));
  out = put(out, ",\"bytes\":");
  out = put_integer(out, r.bytes_sent);
  if (r.upstream_ms >= 0) {
    out = put(out, ",\"upstream_ms\":");
    out = put_thousandths(out, r.upstream_ms);
  }
  out = put(out, ",\"total_ms\":");
  out = put_thousandths(out, r.total_ms);
  string_member(",\"decision\":\"", r.decision);
  return put(out, "\"}\n");
}

char* AccessLog::record_combined(char* out, const AccessRecord& r) {
  out = put_log_escaped(out, r.client, true);
  out = put(out, " - - [");
  out = put_time(out, AccessLogFormat::Combined);
  out = put(out, "] \"");
  if (r.method.empty() || r.method == "-") {
    *out++ = '-';  // nothing parsable arrived (a timeout or a malformed head), as nginx writes it
  } else {
    out = put_log_escaped(out, r.method, false);
    *out++ = ' ';
    out = put_log_escaped(out, r.target, false);
    *out++ = ' ';
    out = put_log_escaped(out, r.protocol, false);
  }
  out = put(out, "\" ");
  out = put_integer(out, static_cast<std::uint64_t>(r.status < 0 ? 0 : r.status));
  *out++ = ' ';
  out = put_integer(out, r.bytes_sent);
  out = put(out, " \"");
  out = put_log_escaped(out, r.referer, false);
  out = put(out, "\" \"");
  out = put_log_escaped(out, r.user_agent, false);
  out = put(out, "\" rt=");
  out = put_thousandths(out, r.total_ms / 1000);
  out = put(out, " uht=");
  if (r.upstream_ms >= 0) {
    out = put_thousandths(out, r.upstream_ms / 1000);
  } else {
    *out++ = '-';
  }
  out = put(out, " route=");
  out = put_log_escaped(out, r.route, true);
  out = put(out, " decision=");
  out = put_log_escaped(out, r.decision, true);
  out = put(out, " request_id=");
  out = put_log_escaped(out, r.request_id, true);
  *out++ = '\n';
  return out;
}

void AccessLog::flush() {
  if (used_ == 0) return;
  target_.get()->write(std::string_view(buffer_.data(), used_));
  used_ = 0;
  if (buffer_.size() > kBufferBytes) {  // grown for a long line: back to its usual size
    buffer_.resize(kBufferBytes);
    buffer_.shrink_to_fit();
  }
}

}  // namespace arbiter
