#pragma once
// Operational messages go to stderr as "arbiter: ..." lines (the journal adds time and
// unit); the access log goes to stdout, one line per request, as a JSON object or in the
// combined format web-log tools read.

#include <cstdint>
#include <string>
#include <string_view>

namespace arbiter {

void log_line(std::string_view message);  // thread-safe, one write(2) per line

// Appends `text` to `out` as a JSON string body (without the quotes).
void append_json_escaped(std::string& out, std::string_view text);

// [log] format.
enum class AccessLogFormat : std::uint8_t {
  Json,      // {"time":...,"request_id":...,...}
  // nginx's/Apache's "combined" line, then Arbiter's own fields as key=value:
  // CLIENT - - [TIME] "METHOD TARGET PROTOCOL" STATUS BYTES "REFERER" "USER-AGENT" rt= uht= route= decision= request_id=
  Combined,
};
std::string_view access_log_format_name(AccessLogFormat format) noexcept;  // "json", "combined"

struct AccessRecord {
  std::string_view request_id;
  std::string_view client;
  std::string_view method;
  std::string_view target;
  std::string_view protocol;    // "HTTP/1.1", "HTTP/1.0"
  std::string_view referer;     // empty: none sent (combined format only)
  std::string_view user_agent;  // empty: none sent (combined format only)
  std::string_view route;     // empty: no route matched
  int status = 0;
  std::uint64_t bytes_sent = 0;      // response body bytes
  double upstream_ms = -1;           // < 0: never reached the upstream
  double total_ms = 0;
  std::string_view decision;  // "forwarded", or who answered: "router", "proxy", a policy kind
};

// One per worker: lines are gathered and written once per loop iteration, so a busy worker
// makes one write(2) for many requests and an idle one flushes at once.
class AccessLog {
 public:
  explicit AccessLog(bool enabled) : enabled_(enabled) {}
  // format: the [log] format of the Runtime the request ran under, so that a reload changes the
  // format from the next request on.
  void record(const AccessRecord& record, AccessLogFormat format = AccessLogFormat::Json);
  void flush();
  bool enabled() const noexcept { return enabled_; }
  void set_enabled(bool enabled) noexcept { enabled_ = enabled; }

 private:
  void record_json(const AccessRecord& record);
  void record_combined(const AccessRecord& record);

  bool enabled_;
  std::string buffer_;
};

}  // namespace arbiter
