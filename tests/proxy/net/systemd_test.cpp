// proxy/net/systemd: the notification messages as systemd receives them (on a test socket), the
// watchdog interval from the environment, and matching passed sockets to listen addresses.
// The whole process (READY=1 from the real binary, socket activation) is tested in
// tests/integration/systemd_test.cpp.

#include "proxy/net/systemd.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <ctime>

#include "tests/support/systemd_support.h"

namespace {

using arbiter::SocketAddress;
using arbiter::systemd::InheritedSocket;
using harness::listening_socket;
using harness::NotifySocket;
using namespace std::chrono_literals;

// Sets environment variables for one test and restores what was there.
class ScopedEnvironment {
 public:
  void set(const char* name, const std::string& value) {
    remember(name);
    ::setenv(name, value.c_str(), 1);
  }
  void unset(const char* name) {
    remember(name);
    ::unsetenv(name);
  }
  ~ScopedEnvironment() {
    for (auto it = saved_.rbegin(); it != saved_.rend(); ++it) {
      if (it->second) {
        ::setenv(it->first.c_str(), it->second->c_str(), 1);
      } else {
        ::unsetenv(it->first.c_str());
      }
    }
  }

 private:
  void remember(const char* name) {
    const char* value = std::getenv(name);
    saved_.emplace_back(name, value ? std::optional<std::string>(value) : std::nullopt);
  }
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

std::uint64_t monotonic_usec() {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<std::uint64_t>(now.tv_sec) * 1000000u + static_cast<std::uint64_t>(now.tv_nsec) / 1000u;
}

class SystemdProtocol : public ::testing::Test {
 protected:
  void SetUp() override { environment_.set("NOTIFY_SOCKET", notify_.path()); }
  std::string next_message() { return notify_.receive(2s).value_or("(nothing received)"); }

  NotifySocket notify_;
  ScopedEnvironment environment_;
};

TEST_F(SystemdProtocol, ReadyCarriesAStatusAndARepeatKeepsIt) {
  EXPECT_TRUE(arbiter::systemd::notify_ready("listening on 127.0.0.1:8080"));
  EXPECT_EQ(next_message(), "READY=1\nSTATUS=listening on 127.0.0.1:8080");
  // As after a reload: READY=1 again, and the status says what runs, not "reloading".
  EXPECT_TRUE(arbiter::systemd::notify_reloading());
  next_message();
  EXPECT_TRUE(arbiter::systemd::notify_ready());
  EXPECT_EQ(next_message(), "READY=1\nSTATUS=listening on 127.0.0.1:8080");
}

TEST_F(SystemdProtocol, ReloadingCarriesTheMonotonicClock) {
  const std::uint64_t before = monotonic_usec();
  EXPECT_TRUE(arbiter::systemd::notify_reloading());
  const std::uint64_t after = monotonic_usec();
  const std::string message = next_message();
  EXPECT_TRUE(NotifySocket::has_line(message, "RELOADING=1")) << message;
  const auto stamp = NotifySocket::value_of(message, "MONOTONIC_USEC");
  ASSERT_TRUE(stamp.has_value()) << message;
  EXPECT_GE(std::stoull(*stamp), before);
  EXPECT_LE(std::stoull(*stamp), after);
}

TEST_F(SystemdProtocol, StoppingStatusAndWatchdog) {
  EXPECT_TRUE(arbiter::systemd::notify_stopping());
  EXPECT_TRUE(NotifySocket::has_line(next_message(), "STOPPING=1"));
  EXPECT_TRUE(arbiter::systemd::notify_watchdog());
  EXPECT_EQ(next_message(), "WATCHDOG=1");
  // A newline in a status would start another assignment (here a forged READY=1).
  EXPECT_TRUE(arbiter::systemd::notify_status("two\nREADY=1"));
  EXPECT_EQ(next_message(), "STATUS=two READY=1");
}

TEST(SystemdProtocolOff, NothingIsSentWithoutNotifySocket) {
  ScopedEnvironment environment;
  environment.unset("NOTIFY_SOCKET");
  EXPECT_FALSE(arbiter::systemd::notify_ready("x"));
  EXPECT_FALSE(arbiter::systemd::notify_stopping());
  EXPECT_FALSE(arbiter::systemd::notify_watchdog());
}

TEST(SystemdWatchdog, IntervalComesFromWatchdogUsecForThisProcess) {
  ScopedEnvironment environment;
  environment.unset("WATCHDOG_PID");
  environment.unset("WATCHDOG_USEC");
  EXPECT_EQ(arbiter::systemd::watchdog_interval(), std::nullopt);
  environment.set("WATCHDOG_USEC", "30000000");
  EXPECT_EQ(arbiter::systemd::watchdog_interval(), std::optional(std::chrono::milliseconds(30000)));
  environment.set("WATCHDOG_PID", std::to_string(::getpid()));
  EXPECT_EQ(arbiter::systemd::watchdog_interval(), std::optional(std::chrono::milliseconds(30000)));
  // Meant for another process (the one that forked this one, say): no watchdog here.
  environment.set("WATCHDOG_PID", std::to_string(::getpid() + 1));
  EXPECT_EQ(arbiter::systemd::watchdog_interval(), std::nullopt);
}

TEST(SystemdSockets, NoneWithoutListenFdsForThisProcess) {
  ScopedEnvironment environment;
  environment.set("LISTEN_FDS", "1");
  environment.set("LISTEN_PID", std::to_string(::getpid() + 1));
  EXPECT_TRUE(arbiter::systemd::inherited_listen_fds().empty());
}

TEST(SystemdSockets, MatchedByAddressAndPort) {
  std::uint16_t v4_port = 0, v6_port = 0;
  const int v4 = listening_socket(AF_INET, "127.0.0.1", v4_port);
  const int v6 = listening_socket(AF_INET6, "::1", v6_port);
  ASSERT_GE(v4, 0);
  std::vector<InheritedSocket> sockets{{v4, "web", "127.0.0.1:" + std::to_string(v4_port)}};
  if (v6 >= 0) sockets.push_back({v6, "web6", "[::1]:" + std::to_string(v6_port)});
  const std::size_t count = sockets.size();

  // Another port, another host, port 0: not these sockets.
  EXPECT_FALSE(arbiter::systemd::take_inherited_socket(sockets, SocketAddress{"127.0.0.1", std::uint16_t(v4_port + 1)}));
  EXPECT_FALSE(arbiter::systemd::take_inherited_socket(sockets, SocketAddress{"127.0.0.2", v4_port}));
  EXPECT_FALSE(arbiter::systemd::take_inherited_socket(sockets, SocketAddress{"127.0.0.1", 0}));
  EXPECT_EQ(sockets.size(), count);

  // localhost is 127.0.0.1, as when binding.
  auto taken = arbiter::systemd::take_inherited_socket(sockets, SocketAddress{"localhost", v4_port});
  ASSERT_TRUE(taken.has_value());
  EXPECT_EQ(taken->fd, v4);
  EXPECT_EQ(taken->name, "web");
  EXPECT_EQ(sockets.size(), count - 1);
  EXPECT_FALSE(arbiter::systemd::take_inherited_socket(sockets, SocketAddress{"127.0.0.1", v4_port}))
      << "a socket is taken once";

  if (v6 >= 0) {
    // The same IPv6 address written differently.
    auto taken6 = arbiter::systemd::take_inherited_socket(sockets, SocketAddress{"0:0::1", v6_port});
    ASSERT_TRUE(taken6.has_value());
    EXPECT_EQ(taken6->fd, v6);
    ::close(v6);
  }
  EXPECT_TRUE(sockets.empty());
  ::close(v4);
}

}  // namespace
