#pragma once
// Operational messages go to stderr as "arbiter: ..." lines (the journal adds time and
// unit); the access log goes to stdout or to a file ([log] access), one line per request, as a
// JSON object or in the combined format web-log tools read.

#include <cstdint>
#include <ctime>
#include <memory>
#include <string>
#include <string_view>

namespace arbiter {

void log_line(std::string_view message);  // thread-safe, one write(2) per line

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

// An open destination of access-log lines: stdout, or a file opened for appending (O_APPEND, so
// the workers' flushes, each whole lines in one write(2), never interleave within a line).
// Immutable; the descriptor is closed with the last reference (a worker's flush in progress may
// hold one after a reopen replaced it).
class AccessLogFile {
 public:
  static std::shared_ptr<const AccessLogFile> standard_output();
  // Opens (creating it 0644 if needed) `path` for appending; nullptr with `error` set if it
  // cannot be opened.
  static std::shared_ptr<const AccessLogFile> open(const std::string& path, std::string& error);
  ~AccessLogFile();
  AccessLogFile(const AccessLogFile&) = delete;
  AccessLogFile& operator=(const AccessLogFile&) = delete;

  const std::string& path() const noexcept { return path_; }  // empty: stdout
  void write(std::string_view bytes) const;  // whole, retrying short writes; errors are dropped

 private:
  AccessLogFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  int fd_;
  std::string path_;
};

// Where every worker's access log writes: one per process (the Server's), swapped whole on a
// reopen (SIGUSR1) or a reload that changes [log] access. Thread-safe.
class AccessLogTarget {
 public:
  AccessLogTarget() : file_(AccessLogFile::standard_output()) {}
  std::shared_ptr<const AccessLogFile> get() const { return std::atomic_load(&file_); }
  void set(std::shared_ptr<const AccessLogFile> file) { std::atomic_store(&file_, std::move(file)); }

 private:
  std::shared_ptr<const AccessLogFile> file_;
};

// One per worker, used on its loop thread only: lines are formatted into the worker's own
// buffer (no lock, no shared cache line) and written with one write(2) once it holds
// kFlushBytes, and by flush(), which the worker calls at least every kFlushInterval and when
// its loop ends (exit, drain). So a busy worker makes one write for hundreds of requests, and
// a line reaches the file within a second. A crash (SIGKILL) loses at most that second.
class AccessLog {
 public:
  static constexpr std::size_t kFlushBytes = 64u << 10;
  // The buffer's usual size: kFlushBytes and room for the line that crosses the mark. A longer
  // line grows it until the next flush.
  static constexpr std::size_t kBufferBytes = kFlushBytes + 4096;
  static constexpr std::uint64_t kFlushIntervalMs = 1000;

  // `target` outlives this log.
  AccessLog(bool enabled, const AccessLogTarget& target);
  // format: the [log] format of the Runtime the request ran under, so that a reload changes the
  // format from the next request on.
  void record(const AccessRecord& record, AccessLogFormat format = AccessLogFormat::Json);
  void flush();
  bool enabled() const noexcept { return enabled_; }
  void set_enabled(bool enabled) noexcept { enabled_ = enabled; }

 private:
  // Where to write a line of at most `line_bytes` bytes: the end of the buffer's lines, with
  // that much room after it.
  char* room(std::size_t line_bytes);
  // Each writes one line at `out`, into room() made for it, and returns its end.
  char* record_json(char* out, const AccessRecord& record);
  char* record_combined(char* out, const AccessRecord& record);
  // The current time as the format writes it; the text up to the seconds is formatted once a
  // second, not once a line.
  char* put_time(char* out, AccessLogFormat format);

  bool enabled_;
  const AccessLogTarget& target_;
  // Lines are formatted in place: buffer_ keeps its size (kBufferBytes, or more after a long
  // line) and its first used_ bytes are the lines not yet written.
  std::string buffer_;
  std::size_t used_ = 0;
  std::time_t cached_second_[2] = {-1, -1};  // by format
  std::string cached_time_[2];               // JSON: "2026-11-25T16:48:33."; combined: the whole time
};

}  // namespace arbiter
