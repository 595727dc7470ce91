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

void append_time(std::string& out) {
  auto now = std::chrono::system_clock::now();
  std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char text[64];  // room for any int the compiler cannot rule out
  std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900, utc.tm_mon + 1,
                utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, static_cast<int>(millis));
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

void AccessLog::record(const AccessRecord& r) {
  if (!enabled_) return;
  buffer_.append("{\"time\":\"");
  append_time(buffer_);
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
  if (buffer_.size() > (64u << 10)) flush();
}

void AccessLog::flush() {
  if (buffer_.empty()) return;
  write_all(1, buffer_.data(), buffer_.size());
  buffer_.clear();
}

}  // namespace arbiter
