#pragma once
// Integration-test harness: runs the real binaries as child processes and talks to them
// over real loopback sockets (127.0.0.1 only). Every wait is bounded, so a broken binary
// fails a test instead of hanging it.

#include <stdlib.h>
#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <regex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace harness {

using namespace std::chrono_literals;
using Milliseconds = std::chrono::milliseconds;

// Polls `condition` every 10 ms until it holds or `timeout` has passed; returns its last value.
inline bool eventually(const std::function<bool()>& condition, Milliseconds timeout = 20s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

// ---------------------------------------------------------------------------------------
// Files

// A file under /tmp (mkstemps), removed when this object goes away.
class TempFile {
 public:
  explicit TempFile(std::string_view contents, std::string_view suffix = "");
  ~TempFile();
  TempFile(TempFile&& other) noexcept;
  TempFile& operator=(TempFile&& other) noexcept;
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  const std::string& path() const { return path_; }
  // Replaces the contents atomically (write aside, then rename), as an editor or a
  // deployment tool would, so a process reloading the file never sees half of it.
  void replace(std::string_view contents) const;

 private:
  std::string path_;
};

TempFile write_temp_file(std::string_view contents, std::string_view suffix = "");

// A fresh directory under /tmp (mkdtemp), removed with its contents when this object goes away.
class TempDirectory {
 public:
  TempDirectory() {
    char path[] = "/tmp/arbiter-test-XXXXXX";
    if (::mkdtemp(path) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = path;
  }
  ~TempDirectory() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDirectory(const TempDirectory&) = delete;
  TempDirectory& operator=(const TempDirectory&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// ---------------------------------------------------------------------------------------
// Processes

enum class Stream { Stdout, Stderr };
const char* stream_name(Stream stream);

struct LineMatch {
  Stream stream = Stream::Stdout;
  std::string line;
  std::vector<std::string> groups;  // groups[0] is the whole match, then the captures
};

// How many lines each stream had at some moment; wait_for_line can start from there.
struct LinePosition {
  std::size_t stdout_lines = 0;
  std::size_t stderr_lines = 0;
};

// What a child gets besides its arguments; by default, what the test process has.
struct ChildEnvironment {
  // "NAME=value" entries set in the child's environment (replacing the inherited value).
  std::vector<std::string> variables;
  // Sockets handed over as systemd's socket activation does: they become fds 3, 4, ... of the
  // child, with LISTEN_FDS=<count> and LISTEN_PID=<the child's pid>, written in the child after
  // fork (sd_listen_fds ignores sockets meant for another pid). The caller keeps its own fds.
  std::vector<int> listen_fds;
};

// A child process whose stdout and stderr are collected line by line by a background
// thread. stdin is /dev/null. The child is killed (SIGKILL) if the thread that started it
// dies (PR_SET_PDEATHSIG), so a crashed test run leaves no servers behind; start children
// from the test's own thread.
class ChildProcess {
 public:
  // Throws std::runtime_error if the executable cannot be started.
  ChildProcess(std::string executable, std::vector<std::string> arguments, ChildEnvironment environment = {});
  // Stops the child if still running and reaps it. The project's own binaries (arbiter,
  // legacy-api) are stopped as an operator would, with SIGTERM (a second one after
  // kGracefulStopWait, arbiter's "close all connections now"), so that they return from main,
  // where LeakSanitizer checks a sanitized build; one still running kForcedStopWait later, and
  // any other program, gets SIGKILL. Then the current test fails (gtest ADD_FAILURE), with the
  // child's output, if its stderr holds a sanitizer report (see sanitizer_report), or if a
  // project binary did not exit with status 0 after the SIGTERM, or needed the SIGKILL.
  ~ChildProcess();
  static constexpr Milliseconds kGracefulStopWait = 2s;
  static constexpr Milliseconds kForcedStopWait = 15s;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  const std::string& executable() const { return executable_; }

  // The first line (of either stream, from `since` on) with a match for `pattern`
  // (std::regex_search); nullopt if none arrives within `timeout` or both streams end.
  std::optional<LineMatch> wait_for_line(const std::regex& pattern, Milliseconds timeout,
                                         LinePosition since = {});
  LinePosition position() const;
  std::vector<std::string> lines_stdout() const;
  std::vector<std::string> lines_stderr() const;
  // Both streams, for failure messages.
  std::string output_summary() const;
  // What AddressSanitizer, LeakSanitizer or UndefinedBehaviorSanitizer printed on stderr: the
  // lines from the first "ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
  // "ERROR: UndefinedBehaviorSanitizer" or "runtime error:" on (at most 200); nullopt if none.
  std::optional<std::string> sanitizer_report() const;

  // True once both streams have ended (the child and anything it started closed them).
  bool wait_for_output_end(Milliseconds timeout);

  bool signal(int signal_number) const;
  // The exit code, or 128 + signal number if the child was killed by a signal;
  // nullopt if it is still running after `timeout`.
  std::optional<int> wait_exit(Milliseconds timeout);
  bool running();

 private:
  void read_output();
  void kill_and_reap();
  // The destructor's stop; a description of what went wrong, empty if nothing did.
  std::string stop_for_destruction();

  std::string executable_;
  bool stops_gracefully_ = false;  // a project binary: stopped with SIGTERM, see ~ChildProcess
  pid_t pid_ = -1;
  std::optional<int> exit_status_;
  int stdout_fd_ = -1;
  int stderr_fd_ = -1;
  int wake_fd_ = -1;  // eventfd that stops the reader thread

  mutable std::mutex mutex_;
  std::condition_variable lines_changed_;
  std::vector<std::string> stdout_lines_;
  std::vector<std::string> stderr_lines_;
  bool output_ended_ = false;
  std::thread reader_;
};

struct RunResult {
  std::optional<int> exit_code;  // as ChildProcess::wait_exit; nullopt: killed after the timeout
  std::string stdout_text;
  std::string stderr_text;
};

// Runs a program to completion (killing it after `timeout`) and collects its output.
RunResult run_process(const std::string& executable, const std::vector<std::string>& arguments,
                      Milliseconds timeout = 10s);
// One-shot `arbiter ARGS`, e.g. {"--check", "-c", file} or {"--version"}.
RunResult run_arbiter(const std::vector<std::string>& arguments, Milliseconds timeout = 10s);

// The most resident memory process `pid` has had (VmHWM in /proc/PID/status), in KiB; -1 when
// unknown.
long peak_rss_kb(pid_t pid);

std::string arbiter_binary();
// arbiter with test-only local handlers (tests/support/control_server/), same command line.
std::string arbiter_test_handlers_binary();
std::string legacy_api_binary();
// Whether the binaries under test were built with the sanitizers: this build's own
// (ARBITER_SANITIZED), or those named by ARBITER_TEST_BIN_DIR when ARBITER_TEST_SANITIZED=1.
// A sanitized binary is several times slower: tests may scale their work down.
bool binaries_sanitized();
std::string source_dir();

// The legacy API on a kernel-chosen port.
class LegacyApi {
 public:
  explicit LegacyApi(Milliseconds startup_timeout = 10s);
  std::uint16_t port() const { return port_; }
  ChildProcess& process() { return *process_; }

 private:
  std::unique_ptr<ChildProcess> process_;
  std::uint16_t port_ = 0;
};

// Arbiter running with the given configuration text (which should listen on
// "127.0.0.1:0"). Startup waits for `arbiter: listening on 127.0.0.1:PORT` on stderr and,
// when the configuration has an [admin] table, for `arbiter: admin listening on ...`.
// Throws std::runtime_error, with the process output, if that does not happen in time.
class ArbiterProcess {
 public:
  // `binary`: arbiter_binary() when empty (or arbiter_test_handlers_binary()).
  explicit ArbiterProcess(std::string_view config_toml, std::vector<std::string> extra_arguments = {},
                          Milliseconds startup_timeout = 10s, ChildEnvironment environment = {},
                          std::string binary = {});
  std::uint16_t port() const { return port_; }
  std::optional<std::uint16_t> admin_port() const { return admin_port_; }
  ChildProcess& process() { return *process_; }
  const TempFile& config_file() const { return config_file_; }

 private:
  TempFile config_file_;
  std::unique_ptr<ChildProcess> process_;
  std::uint16_t port_ = 0;
  std::optional<std::uint16_t> admin_port_;
};

// ---------------------------------------------------------------------------------------
// HTTP

using HeaderPairs = std::vector<std::pair<std::string, std::string>>;

struct HttpResponse {
  int status = 0;
  std::string reason;
  int http_major = 1;
  int http_minor = 1;
  HeaderPairs headers;  // in received order
  std::string body;     // de-chunked
  bool keep_alive = false;  // llhttp_should_keep_alive after this response

  // The first field with that name, compared case-insensitively.
  std::optional<std::string> header(std::string_view name) const;
  std::size_t header_count(std::string_view name) const;
};

// A blocking HTTP/1.1 client on one TCP connection to 127.0.0.1:port. Every operation is
// bounded by the timeout; a failed one returns nullopt/false and explains in last_error().
class HttpClient {
 public:
  explicit HttpClient(std::uint16_t port, Milliseconds timeout = 5s);
  ~HttpClient();
  HttpClient(HttpClient&& other) noexcept;
  HttpClient& operator=(HttpClient&&) = delete;
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  bool connect_ok() const { return fd_ >= 0; }
  std::uint16_t port() const { return port_; }
  const std::string& last_error() const { return last_error_; }

  bool send_raw(std::string_view bytes);
  // The next response on the connection; an interim 1xx response is returned on its own.
  // `head_request` says the request was HEAD, so the response has no body whatever its
  // Content-Length. Responses delimited by the server closing are handled.
  std::optional<HttpResponse> read_response(bool head_request = false);
  // Sends `METHOD target HTTP/1.1` with Host and Content-Length added (unless given in
  // `headers`, or Transfer-Encoding is), then returns the final response (1xx skipped).
  std::optional<HttpResponse> request(std::string_view method, std::string_view target,
                                      const HeaderPairs& headers = {}, std::string_view body = {});
  // True if the server closes (EOF) or resets the connection within `timeout`. Bytes that
  // arrive meanwhile are kept for read_response.
  bool is_closed_by_peer(Milliseconds timeout = 2s);
  void close();

 private:
  // Appends what arrives before the deadline to unparsed_; 0 on EOF, -1 on error/timeout.
  long receive_some(std::chrono::steady_clock::time_point deadline);

  std::uint16_t port_;
  Milliseconds timeout_;
  int fd_ = -1;
  bool peer_closed_ = false;
  bool peer_reset_ = false;
  std::string unparsed_;  // received bytes not yet returned as a response
  std::string last_error_;
};

// The response, or a std::runtime_error carrying client.last_error(): in a gtest body
// the exception fails the test with that explanation, which ASSERT cannot do from a
// function that returns a value.
HttpResponse require(std::optional<HttpResponse> response, const HttpClient& client);

// A listening TCP socket (backlog 64) on 127.0.0.1 at a kernel-chosen port, written to `port`;
// the caller owns the fd. Throws std::runtime_error naming `owner` if it cannot listen.
int listen_on_loopback(std::uint16_t& port, std::string_view owner);

// "GET / HTTP/1.1\r\nHost: 127.0.0.1:PORT\r\n...": the bytes HttpClient::request sends.
std::string format_request(std::string_view method, std::string_view target, std::uint16_t port,
                           const HeaderPairs& headers = {}, std::string_view body = {});

// ---------------------------------------------------------------------------------------
// Payloads

// 'a'..'z' repeating: what legacy-api's /_test/bytes sends, so any byte is known by offset.
std::string pattern_bytes(std::size_t length);
// Lower-case hex of XXH3_64bits, as legacy-api's /_test/echo reports "body_xxh3".
std::string xxh3_hex(std::string_view bytes);
// The chunks in chunked transfer coding, with the final empty chunk.
std::string chunked_encoding(const std::vector<std::string>& chunks);

}  // namespace harness
