// Issue #12 item 4: a listen address that another process already holds stops Arbiter with
// exit 1 and a message naming the address — a second Arbiter, or any program — instead of
// Arbiter sharing the port through SO_REUSEPORT and taking part of the traffic.

#include <gtest/gtest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "tests/support/proxy_fixture.h"

namespace {

using namespace harness;

// A second Arbiter's configuration: the legacy API upstream, listening on `port`.
std::string config_listening_on(std::uint16_t port, std::uint16_t upstream_port) {
  return "[server]\nlisten = \"127.0.0.1:" + std::to_string(port) + "\"\nworkers = 2\n" +
         "\n[upstream.legacy]\nservers = [\"127.0.0.1:" + std::to_string(upstream_port) + "\"]\n" +
         "\n[[route]]\nname = \"all\"\npath = \"/*\"\nupstream = \"legacy\"\n";
}

// Runs arbiter with that configuration to its end (it must not start), and checks what it said.
void expect_refused_with_address(std::uint16_t port, std::uint16_t upstream_port) {
  TempFile config = write_temp_file(config_listening_on(port, upstream_port), ".toml");
  RunResult result = run_arbiter({"-c", config.path()}, 10s);
  EXPECT_EQ(result.exit_code, std::optional<int>(1)) << result.stderr_text;
  std::string address = "127.0.0.1:" + std::to_string(port);
  EXPECT_NE(result.stderr_text.find("cannot listen on " + address + ": Address already in use"), std::string::npos)
      << result.stderr_text;
  EXPECT_EQ(result.stderr_text.find("started"), std::string::npos) << result.stderr_text;
}

// A plain TCP socket listening on 127.0.0.1, kernel-chosen port; closed with the object.
class PlainListener {
 public:
  explicit PlainListener(bool reuse_port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int on = 1;
    if (reuse_port) ::setsockopt(fd_, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&address), length) != 0 || ::listen(fd_, 16) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
      throw std::runtime_error("PlainListener: cannot listen on 127.0.0.1");
    }
    port_ = ntohs(address.sin_port);
  }
  ~PlainListener() { ::close(fd_); }
  PlainListener(const PlainListener&) = delete;
  PlainListener& operator=(const PlainListener&) = delete;
  std::uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
};

TEST(ListenTest, SecondArbiterOnTheSamePortExitsOneAndTheFirstKeepsServing) {
  LegacyApi backend;
  ArbiterProcess first(make_config(backend.port()));  // two workers, both accepting
  expect_refused_with_address(first.port(), backend.port());
  // Every connection still reaches the first one: 20 new connections, each answered by it.
  for (int i = 0; i < 20; ++i) {
    HttpClient client(first.port());
    EXPECT_EQ(require(client.request("GET", "/items/1"), client).status, 200);
  }
  ASSERT_TRUE(first.process().running()) << first.process().output_summary();
}

TEST(ListenTest, PortHeldByAPlainSocketExitsOne) {
  LegacyApi backend;
  PlainListener plain(false);
  expect_refused_with_address(plain.port(), backend.port());
}

// A same-user socket with SO_REUSEPORT is what an SO_REUSEPORT Arbiter silently joined.
TEST(ListenTest, PortHeldByAReusePortSocketExitsOne) {
  LegacyApi backend;
  PlainListener plain(true);
  expect_refused_with_address(plain.port(), backend.port());
}

// The workers share the one socket: with several workers on port 0 every connection is served.
TEST(ListenTest, WorkersShareOneSocket) {
  LegacyApi backend;
  ConfigOptions options;
  options.workers = 4;
  ArbiterProcess arbiter(make_config(backend.port(), options));
  for (int i = 0; i < 40; ++i) {
    HttpClient client(arbiter.port());
    EXPECT_EQ(require(client.request("GET", "/items/1"), client).status, 200);
  }
}

}  // namespace
