// Arbiter under systemd, with this test playing systemd: the unit files pass
// `systemd-analyze verify`, the real binary sends READY=1 / STOPPING=1 / WATCHDOG=1 to a test
// $NOTIFY_SOCKET, and serves on listening sockets passed as socket activation passes them.

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "tests/support/harness.h"
#include "tests/support/systemd_support.h"

namespace {

using harness::ArbiterProcess;
using harness::ChildEnvironment;
using harness::ChildProcess;
using harness::HttpClient;
using harness::NotifySocket;
using harness::require;
using harness::TempDirectory;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Upstream and route for a config; requests to other paths get Arbiter's own 404.
constexpr std::string_view kRoutes = R"(
[upstream.legacy]
servers = ["127.0.0.1:9"]

[[route]]
name = "items"
path = "/items/{id}"
upstream = "legacy"
)";

std::string config_listening_on(std::uint16_t port, std::optional<std::uint16_t> admin_port = std::nullopt) {
  std::string text = "[server]\nlisten = \"127.0.0.1:" + std::to_string(port) + "\"\nworkers = 2\n";
  if (admin_port) text += "[admin]\nlisten = \"127.0.0.1:" + std::to_string(*admin_port) + "\"\n";
  return text + std::string(kRoutes);
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string replace_all(std::string text, std::string_view from, std::string_view to) {
  for (std::size_t at = 0; (at = text.find(from, at)) != std::string::npos; at += to.size()) {
    text.replace(at, from.size(), to);
  }
  return text;
}

bool has_stderr_line_containing(const ChildProcess& process, std::string_view text) {
  for (const std::string& line : process.lines_stderr()) {
    if (line.find(text) != std::string::npos) return true;
  }
  return false;
}


std::string systemd_analyze() {
  for (const char* path : {"/usr/bin/systemd-analyze", "/bin/systemd-analyze"}) {
    if (::access(path, X_OK) == 0) return path;
  }
  return {};
}

// ---------------------------------------------------------------------------------------
// The unit files

class SystemdUnit : public ::testing::Test {
 protected:
  void SetUp() override {
    analyze_ = systemd_analyze();
    ASSERT_FALSE(analyze_.empty()) << "systemd-analyze not found (Debian package systemd; .ci/deps installs it)";
  }

  // The units as installed, but naming the binary just built and a config in a temp file:
  // verify checks that ExecStart's program exists.
  void write_units(const std::string& service_edit = {}) {
    const std::filesystem::path source = std::filesystem::path(harness::source_dir()) / "systemd";
    std::string service = read_file(source / "arbiter.service");
    service = replace_all(service, "/usr/local/bin/arbiter", harness::arbiter_binary());
    service = replace_all(service, "/etc/arbiter/config.toml", config_.path());
    service += service_edit;
    std::ofstream(directory_.path() / "arbiter.service") << service;
    std::ofstream(directory_.path() / "arbiter.socket") << read_file(source / "arbiter.socket");
  }

  // Output lines of `systemd-analyze verify` about these units (errors and warnings), with a
  // line for a failing exit status. Lines about other units (the system's) are not ours to fix.
  std::vector<std::string> verify_problems() {
    const std::string service = (directory_.path() / "arbiter.service").string();
    const std::string socket = (directory_.path() / "arbiter.socket").string();
    // --man=no: the units name no man pages; --recursive-errors=no: only these units count.
    auto result = harness::run_process(analyze_, {"verify", "--man=no", "--recursive-errors=no", service, socket}, 60s);
    std::vector<std::string> problems;
    std::istringstream output(result.stdout_text + result.stderr_text);
    for (std::string line; std::getline(output, line);) {
      if (line.find("arbiter.service") != std::string::npos || line.find("arbiter.socket") != std::string::npos ||
          line.find(directory_.path().string()) != std::string::npos) {
        problems.push_back(line);
      }
    }
    if (result.exit_code != std::optional<int>(0)) {
      problems.push_back("exit status " + (result.exit_code ? std::to_string(*result.exit_code) : "none (killed)") +
                         "; output:\n" + result.stdout_text + result.stderr_text);
    }
    return problems;
  }

  std::string analyze_;
  TempDirectory directory_;
  harness::TempFile config_{read_file(std::filesystem::path(harness::source_dir()) / "config.toml"), ".toml"};
};

TEST_F(SystemdUnit, VerifyPasses) {
  write_units();
  EXPECT_EQ(verify_problems(), std::vector<std::string>{});
}

// The check above would pass on output it fails to read: a known mistake must be caught.
TEST_F(SystemdUnit, VerifyCheckCatchesAMistake) {
  write_units("\n[Service]\nRestartSecs=1s\n");
  auto problems = verify_problems();
  ASSERT_FALSE(problems.empty());
  EXPECT_NE(problems.front().find("RestartSecs"), std::string::npos) << problems.front();
}

// systemd's own scoring of the sandbox (0 = fully locked down, 10 = unprotected; distribution
// units for network daemons reach about 2).
TEST_F(SystemdUnit, SecurityExposureStaysLow) {
  write_units();
  auto result = harness::run_process(
      analyze_, {"security", "--offline=yes", "--no-pager", "--threshold=20", (directory_.path() / "arbiter.service").string()},
      60s);
  EXPECT_EQ(result.exit_code, std::optional<int>(0)) << result.stdout_text << result.stderr_text;
  EXPECT_NE(result.stdout_text.find("Overall exposure level for arbiter.service"), std::string::npos)
      << result.stdout_text << result.stderr_text;
}

// What the units name must be what `cmake --install` and the example config provide.
TEST_F(SystemdUnit, MatchesTheInstallAndTheExampleConfig) {
  const std::filesystem::path source(harness::source_dir());
  const std::string service = read_file(source / "systemd" / "arbiter.service");
  const std::string socket = read_file(source / "systemd" / "arbiter.socket");
  const std::string config = read_file(source / "config.toml");
  EXPECT_NE(service.find("\nExecStart=/usr/local/bin/arbiter -c /etc/arbiter/config.toml\n"), std::string::npos);
  EXPECT_NE(service.find("\nExecStartPre=/usr/local/bin/arbiter --check -c /etc/arbiter/config.toml\n"),
            std::string::npos);

  // The drain must end before systemd gives up and kills it.
  std::smatch stop, drain;
  ASSERT_TRUE(std::regex_search(service, stop, std::regex(R"(\nTimeoutStopSec=(\d+)s\n)")));
  ASSERT_TRUE(std::regex_search(config, drain, std::regex(R"(\ndrain_timeout = "(\d+)s")")));
  EXPECT_GT(std::stoi(stop[1]), std::stoi(drain[1]));

  // Every socket the socket unit makes is one the config listens on (else Arbiter closes it).
  const std::regex listen_stream(R"(\nListenStream=(\S+))");
  int sockets = 0;
  for (std::sregex_iterator it(socket.begin(), socket.end(), listen_stream), end; it != end; ++it, ++sockets) {
    EXPECT_NE(config.find("\nlisten = \"" + (*it)[1].str() + "\""), std::string::npos) << (*it)[1];
  }
  EXPECT_EQ(sockets, 2);
}

// ---------------------------------------------------------------------------------------
// Notifications

std::optional<std::uint16_t> port_in_status(const std::string& message) {
  std::smatch match;
  const std::string status = NotifySocket::value_of(message, "STATUS").value_or("");
  if (!std::regex_search(status, match, std::regex(R"(listening on 127\.0\.0\.1:(\d+))"))) return std::nullopt;
  return static_cast<std::uint16_t>(std::stoul(match[1]));
}

TEST(SystemdNotify, ReadyOnceListeningAndStoppingOnSigterm) {
  NotifySocket notify;
  auto config = harness::write_temp_file(config_listening_on(0), ".toml");
  ChildProcess arbiter(harness::arbiter_binary(), {"-c", config.path()}, {.variables = {notify.variable()}});

  bool ready = false;
  auto messages = notify.receive_until("READY=1", 10s, ready);
  ASSERT_TRUE(ready) << arbiter.output_summary();
  EXPECT_EQ(messages.size(), 1u) << "READY=1 is the first message";
  const auto port = port_in_status(messages.back());
  ASSERT_TRUE(port.has_value()) << messages.back();
  // Ready means serving: a request made at once is answered. The listening line was written
  // before READY=1 was sent.
  HttpClient client(*port);
  EXPECT_EQ(require(client.request("GET", "/nowhere"), client).status, 404);
  EXPECT_TRUE(arbiter.wait_for_line(std::regex("arbiter: listening on 127\\.0\\.0\\.1:" + std::to_string(*port)), 2s));

  // Nothing more while it serves: no STOPPING=1, and no watchdog pings without WATCHDOG_USEC.
  EXPECT_EQ(notify.receive(300ms), std::nullopt);
  ASSERT_TRUE(arbiter.signal(SIGTERM));
  bool stopping = false;
  messages = notify.receive_until("STOPPING=1", 10s, stopping);
  EXPECT_TRUE(stopping) << arbiter.output_summary();
  EXPECT_EQ(arbiter.wait_exit(15s), std::optional<int>(0));
}

// WATCHDOG_PID is left out: the test cannot know the child's pid before it runs, and
// sd_watchdog_enabled accepts a missing one.
TEST(SystemdNotify, ReloadingThenReadyAroundAReloadEvenARefusedOne) {
  NotifySocket notify;
  auto config = harness::write_temp_file(config_listening_on(0), ".toml");
  ChildProcess arbiter(harness::arbiter_binary(), {"-c", config.path()}, {.variables = {notify.variable()}});
  bool ready = false;
  notify.receive_until("READY=1", 10s, ready);
  ASSERT_TRUE(ready) << arbiter.output_summary();

  ASSERT_TRUE(arbiter.signal(SIGHUP));
  bool reloading = false;
  auto messages = notify.receive_until("RELOADING=1", 10s, reloading);
  ASSERT_TRUE(reloading) << arbiter.output_summary();
  ready = false;
  notify.receive_until("READY=1", 10s, ready);
  EXPECT_TRUE(ready) << arbiter.output_summary();
  EXPECT_TRUE(arbiter.wait_for_line(std::regex("arbiter: reloaded "), 5s));

  config.replace("this is = = not toml");
  ASSERT_TRUE(arbiter.signal(SIGHUP));
  reloading = false;
  notify.receive_until("RELOADING=1", 10s, reloading);
  EXPECT_TRUE(reloading);
  ready = false;
  notify.receive_until("READY=1", 10s, ready);
  EXPECT_TRUE(ready) << "a refused reload leaves the service ready, on the old configuration";
  EXPECT_TRUE(arbiter.wait_for_line(std::regex("arbiter: reload refused: "), 5s));
}

TEST(SystemdNotify, WatchdogPingsAtHalfTheInterval) {
  NotifySocket notify;
  auto config = harness::write_temp_file(config_listening_on(0), ".toml");
  ChildProcess arbiter(harness::arbiter_binary(), {"-c", config.path()},
                       {.variables = {notify.variable(), "WATCHDOG_USEC=400000"}});
  bool ready = false;
  notify.receive_until("READY=1", 10s, ready);
  ASSERT_TRUE(ready) << arbiter.output_summary();

  std::vector<Clock::time_point> pings;
  const auto deadline = Clock::now() + 10s;
  while (pings.size() < 5 && Clock::now() < deadline) {
    auto message = notify.receive(1s);
    if (message && NotifySocket::has_line(*message, "WATCHDOG=1")) pings.push_back(Clock::now());
  }
  ASSERT_EQ(pings.size(), 5u) << arbiter.output_summary();
  const auto gap = std::chrono::duration_cast<std::chrono::milliseconds>(pings.back() - pings.front()) / 4;
  // 200 ms apart; well inside the 400 ms after which systemd would kill it.
  EXPECT_GE(gap, 120ms);
  EXPECT_LE(gap, 380ms);
}

TEST(SystemdNotify, NoWatchdogPingsWhenTheWatchdogIsForAnotherProcess) {
  NotifySocket notify;
  auto config = harness::write_temp_file(config_listening_on(0), ".toml");
  ChildProcess arbiter(harness::arbiter_binary(), {"-c", config.path()},
                       {.variables = {notify.variable(), "WATCHDOG_USEC=100000", "WATCHDOG_PID=1"}});
  bool ready = false;
  notify.receive_until("READY=1", 10s, ready);
  ASSERT_TRUE(ready) << arbiter.output_summary();
  EXPECT_EQ(notify.receive(500ms), std::nullopt);
}

// ---------------------------------------------------------------------------------------
// Socket activation: the test binds and listens, then passes the sockets as fds 3, 4, ...
// with LISTEN_FDS and LISTEN_PID (set in the child by the harness), as systemd does.

TEST(SystemdSocketActivation, ServesOnPassedSocketsAndClosesAnUnmatchedOne) {
  std::uint16_t web_port = 0, admin_port = 0, stray_port = 0;
  const int web = harness::listening_socket(AF_INET, "127.0.0.1", web_port);
  const int admin = harness::listening_socket(AF_INET, "127.0.0.1", admin_port);
  const int stray = harness::listening_socket(AF_INET, "127.0.0.1", stray_port);
  ASSERT_TRUE(web >= 0 && admin >= 0 && stray >= 0);
  ArbiterProcess arbiter(config_listening_on(web_port, admin_port), {}, 10s,
                         ChildEnvironment{.variables = {"LISTEN_FDNAMES=arbiter.socket:admin.socket:stray.socket"},
                                          .listen_fds = {web, admin, stray}});
  // From here on only Arbiter holds the sockets.
  ::close(web);
  ::close(admin);
  ::close(stray);

  // Had it tried to bind these ports itself it would have failed (they are taken, without
  // SO_REUSEPORT): it uses the sockets, and says so.
  EXPECT_EQ(arbiter.port(), web_port);
  EXPECT_EQ(arbiter.admin_port(), std::optional(admin_port));
  const std::string web_address = "127.0.0.1:" + std::to_string(web_port);
  const std::string admin_address = "127.0.0.1:" + std::to_string(admin_port);
  const std::string stray_address = "127.0.0.1:" + std::to_string(stray_port);
  ChildProcess& process = arbiter.process();
  EXPECT_TRUE(has_stderr_line_containing(process, "listening on " + web_address + " (socket from systemd: arbiter.socket)"))
      << process.output_summary();
  EXPECT_TRUE(has_stderr_line_containing(process, "admin listening on " + admin_address +
                                                      " (socket from systemd: admin.socket)"))
      << process.output_summary();
  EXPECT_TRUE(has_stderr_line_containing(process, "socket from systemd (stray.socket on " + stray_address +
                                                      ") matches no listen address"))
      << process.output_summary();

  // Both workers accept on the one socket; every connection is served.
  for (int i = 0; i < 8; ++i) {
    HttpClient client(web_port);
    EXPECT_EQ(require(client.request("GET", "/nowhere"), client).status, 404);
  }
  HttpClient health(admin_port);
  EXPECT_EQ(require(health.request("GET", "/healthz"), health).status, 200);
  // The unmatched socket was closed: nothing listens there any more.
  EXPECT_FALSE(HttpClient(stray_port, 1s).connect_ok());

  ASSERT_TRUE(process.signal(SIGTERM));
  EXPECT_EQ(process.wait_exit(15s), std::optional<int>(0));
}

// What arbiter.socket is for: the socket outlives the process, so a client that connects
// while Arbiter restarts waits in the backlog and is served by the next process.
TEST(SystemdSocketActivation, AConnectionMadeDuringARestartIsServedByTheNextProcess) {
  std::uint16_t port = 0;
  const int socket = harness::listening_socket(AF_INET, "127.0.0.1", port);
  ASSERT_GE(socket, 0);
  const std::string config = config_listening_on(port);
  {
    ArbiterProcess first(config, {}, 10s, ChildEnvironment{.listen_fds = {socket}});
    HttpClient client(port);
    EXPECT_EQ(require(client.request("GET", "/nowhere"), client).status, 404);
    client.close();
    ASSERT_TRUE(first.process().signal(SIGTERM));
    ASSERT_EQ(first.process().wait_exit(15s), std::optional<int>(0));
  }

  HttpClient waiting(port, 10s);
  ASSERT_TRUE(waiting.connect_ok()) << "refused while no Arbiter ran: " << waiting.last_error();
  ASSERT_TRUE(waiting.send_raw(harness::format_request("GET", "/during-restart", port)));

  ArbiterProcess second(config, {}, 10s, ChildEnvironment{.listen_fds = {socket}});
  auto response = waiting.read_response();
  ASSERT_TRUE(response.has_value()) << waiting.last_error() << "\n" << second.process().output_summary();
  EXPECT_EQ(response->status, 404);
  ::close(socket);
}

}  // namespace
