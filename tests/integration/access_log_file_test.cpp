// Issue #12 item 24: [log] access = "/path/file" — lines reach the file within the flush
// interval, SIGUSR1 reopens it after a rename (the logrotate convention), SIGTERM loses nothing,
// and a file that cannot be opened stops the start (or, on a reopen, keeps the old one).

#include <gtest/gtest.h>

#include <stdlib.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <thread>

#include "tests/support/proxy_fixture.h"

namespace {

using namespace harness;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::size_t count_of(const std::string& text, const std::string& needle) {
  std::size_t count = 0;
  for (std::size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + needle.size())) {
    ++count;
  }
  return count;
}

// Polls `path` (bounded; the flush interval is 1 s) until it holds `needle`; returns its text.
std::string wait_for_text(const std::string& path, const std::string& needle, Milliseconds timeout = 10s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string text = read_file(path);
  while (text.find(needle) == std::string::npos && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
    text = read_file(path);
  }
  return text;
}

std::string request_id_field(const std::string& id) { return "\"request_id\":\"" + id + "\""; }

class AccessLogFileTest : public ProxyFixture {
 protected:
  void start_logging_to(const std::string& access, int workers = 2) {
    ConfigOptions options;
    options.workers = workers;
    options.routes = "\n[log]\naccess = \"" + access + "\"\n";
    arbiter_ = std::make_unique<ArbiterProcess>(make_config(backend_.port(), options));
  }
  int get(const std::string& request_id) {
    return send("GET", "/items/1", {}, {{"X-Request-Id", request_id}}).status;
  }
  // Sends `signal` and waits for the stderr line that says it was handled.
  void signal_and_wait(int signal, const std::string& expected) {
    LinePosition before = arbiter_->process().position();
    ASSERT_TRUE(arbiter_->process().signal(signal));
    ASSERT_TRUE(arbiter_->process().wait_for_line(std::regex(expected), 10s, before))
        << arbiter_->process().output_summary();
  }

  TempDirectory directory_;
  std::string dir_ = directory_.path().string();
};

TEST_F(AccessLogFileTest, LinesReachTheFileWithinTheFlushInterval) {
  std::string path = dir_ + "/access.log";
  start_logging_to(path);
  ASSERT_EQ(get("to-file-1"), 200);
  std::string text = wait_for_text(path, request_id_field("to-file-1"));
  EXPECT_NE(text.find(request_id_field("to-file-1")), std::string::npos) << text;
  EXPECT_NE(text.find("\"status\":200"), std::string::npos) << text;
  for (const std::string& line : arbiter_->process().lines_stdout()) {
    EXPECT_EQ(line.find("to-file-1"), std::string::npos) << "also on stdout: " << line;
  }
}

TEST_F(AccessLogFileTest, UsrOneAfterARenameWritesANewFile) {
  std::string path = dir_ + "/access.log";
  std::string rotated = path + ".1";
  start_logging_to(path);
  ASSERT_EQ(get("before-rotation"), 200);
  ASSERT_NE(wait_for_text(path, request_id_field("before-rotation")).find("before-rotation"), std::string::npos);
  ASSERT_EQ(::rename(path.c_str(), rotated.c_str()), 0);
  signal_and_wait(SIGUSR1, "arbiter: received SIGUSR1: reopened the access log " + path);
  ASSERT_TRUE(std::filesystem::exists(path)) << "the reopen creates the file anew";
  for (int i = 0; i < 5; ++i) ASSERT_EQ(get("after-rotation-" + std::to_string(i)), 200);
  // Each worker flushes its own buffer on its own interval: wait for every line, not the last.
  std::string fresh;
  for (int i = 0; i < 5; ++i) {
    std::string id = request_id_field("after-rotation-" + std::to_string(i));
    fresh = wait_for_text(path, id);
    EXPECT_NE(fresh.find(id), std::string::npos) << fresh;
  }
  EXPECT_EQ(fresh.find("before-rotation"), std::string::npos) << fresh;
  std::string old = read_file(rotated);
  EXPECT_NE(old.find(request_id_field("before-rotation")), std::string::npos) << old;
  EXPECT_EQ(old.find("after-rotation"), std::string::npos) << old;
}

TEST_F(AccessLogFileTest, NothingIsLostOnSigterm) {
  std::string path = dir_ + "/access.log";
  start_logging_to(path);
  constexpr int kRequests = 300;
  {
    HttpClient client(arbiter_->port());  // keep-alive: the lines pile up in a worker's buffer
    for (int i = 0; i < kRequests; ++i) {
      auto response = client.request("GET", "/items/1", {{"X-Request-Id", "term-" + std::to_string(i)}});
      ASSERT_TRUE(response) << client.last_error();
      ASSERT_EQ(response->status, 200);
    }
  }
  ASSERT_TRUE(arbiter_->process().signal(SIGTERM));
  ASSERT_EQ(arbiter_->process().wait_exit(20s), std::optional<int>(0)) << arbiter_->process().output_summary();
  std::string text = read_file(path);
  for (int i = 0; i < kRequests; ++i) {
    EXPECT_EQ(count_of(text, request_id_field("term-" + std::to_string(i))), 1u) << "term-" << i;
  }
}

TEST_F(AccessLogFileTest, AFileThatCannotBeOpenedStopsTheStart) {
  std::string path = dir_ + "/no-such-directory/access.log";
  ConfigOptions options;
  options.routes = "\n[log]\naccess = \"" + path + "\"\n";
  TempFile config = write_temp_file(make_config(backend_.port(), options), ".toml");
  RunResult result = run_arbiter({"-c", config.path()});
  EXPECT_EQ(result.exit_code, std::optional<int>(1)) << result.stderr_text;
  EXPECT_NE(result.stderr_text.find("cannot open the access log " + path + ": No such file or directory"),
            std::string::npos)
      << result.stderr_text;
}

TEST_F(AccessLogFileTest, AFailedReopenKeepsTheOldFile) {
  std::string directory = dir_ + "/logs";
  std::filesystem::create_directory(directory);
  std::string path = directory + "/access.log";
  start_logging_to(path);
  ASSERT_EQ(get("before-move"), 200);
  ASSERT_NE(wait_for_text(path, request_id_field("before-move")).find("before-move"), std::string::npos);
  // The directory is gone from under the path: the reopen cannot create the file.
  std::string moved = dir_ + "/moved";
  ASSERT_EQ(::rename(directory.c_str(), moved.c_str()), 0);
  signal_and_wait(SIGUSR1, "arbiter: cannot reopen the access log " + path +
                               ": No such file or directory; still writing to the file opened before");
  ASSERT_EQ(get("after-failed-reopen"), 200);
  std::string text = wait_for_text(moved + "/access.log", request_id_field("after-failed-reopen"));
  EXPECT_NE(text.find(request_id_field("after-failed-reopen")), std::string::npos) << text;
  EXPECT_EQ(send("GET", "/items/1").status, 200) << "still serving";
}

// A reload naming a file that cannot be opened keeps the running target, and the path in force
// stays the running one: a later SIGUSR1 reopens that file, not the one that failed.
TEST_F(AccessLogFileTest, AReloadThatCannotOpenItsFileKeepsReopeningTheOldOne) {
  std::string path = dir_ + "/access.log";
  std::string unopenable = dir_ + "/no-such-directory/access.log";
  start_logging_to(path);
  ConfigOptions options;
  options.workers = 2;
  options.routes = "\n[log]\naccess = \"" + unopenable + "\"\n";
  arbiter_->config_file().replace(make_config(backend_.port(), options));
  signal_and_wait(SIGHUP, "arbiter: reloaded .*");
  ASSERT_EQ(::rename(path.c_str(), (path + ".1").c_str()), 0);
  signal_and_wait(SIGUSR1, "arbiter: received SIGUSR1: reopened the access log " + path);
  ASSERT_EQ(get("after-failed-reload"), 200);
  std::string text = wait_for_text(path, request_id_field("after-failed-reload"));
  EXPECT_NE(text.find(request_id_field("after-failed-reload")), std::string::npos) << text;
  EXPECT_FALSE(std::filesystem::exists(unopenable));
}

// What logrotate does with `postrotate kill -USR1` (.ci/deps installs logrotate).
TEST_F(AccessLogFileTest, LogrotateWithPostrotateUsrOne) {
  const char* logrotate = nullptr;
  for (const char* candidate : {"/usr/sbin/logrotate", "/usr/bin/logrotate"}) {
    if (::access(candidate, X_OK) == 0) logrotate = candidate;
  }
  ASSERT_NE(logrotate, nullptr) << "logrotate is not installed (Debian package logrotate; bash .ci/deps installs it)";
  std::string path = dir_ + "/access.log";
  start_logging_to(path, 1);
  ASSERT_EQ(get("rotate-1"), 200);
  ASSERT_NE(wait_for_text(path, request_id_field("rotate-1")).find("rotate-1"), std::string::npos);
  std::string conf = dir_ + "/logrotate.conf";
  std::ofstream(conf) << path << " {\n  rotate 2\n  missingok\n  nocompress\n  postrotate\n    kill -USR1 "
                      << arbiter_->process().pid() << "\n  endscript\n}\n";
  LinePosition before = arbiter_->process().position();
  RunResult rotated = run_process(logrotate, {"--force", "--state", dir_ + "/state", conf}, 20s);
  ASSERT_EQ(rotated.exit_code, std::optional<int>(0)) << rotated.stderr_text << rotated.stdout_text;
  ASSERT_TRUE(arbiter_->process().wait_for_line(std::regex("reopened the access log"), 10s, before));
  ASSERT_EQ(get("rotate-2"), 200);
  std::string fresh = wait_for_text(path, request_id_field("rotate-2"));
  EXPECT_NE(fresh.find("rotate-2"), std::string::npos) << fresh;
  EXPECT_EQ(fresh.find("rotate-1"), std::string::npos) << fresh;
  EXPECT_NE(read_file(path + ".1").find("rotate-1"), std::string::npos);
}

}  // namespace
