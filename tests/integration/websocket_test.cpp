// Upgrade / WebSocket tunnels through the real binary (issue #12, item 13), against a real
// WebSocket backend (tests/support/websocket.h): the 101 reaches the client with the backend's
// Sec-WebSocket-Accept, bytes flow both ways (also pipelined with the handshake, and more than
// the socket buffers hold), a close on either side closes the other, an idle tunnel is closed
// after tunnel_idle_timeout and a draining one after drain_timeout, the handshake passes the
// route's rate limit, `websocket = false` serves it as plain HTTP, and a non-101 answer is
// relayed with the connection staying usable.

#include <gtest/gtest.h>

#include <csignal>
#include <regex>
#include <thread>

#include "tests/support/harness.h"
#include "tests/support/websocket.h"

namespace {

using harness::BlockingSocket;
using harness::eventually;
using harness::WebSocketBackend;
using harness::WebSocketClient;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

struct PlainResponse {
  int status = 0;
  std::string head;
  std::string body;
};

// A response with a Content-Length body, read off a raw socket.
std::optional<PlainResponse> read_plain_response(BlockingSocket& socket) {
  auto head = socket.read_head(10s);
  if (!head) return std::nullopt;
  PlainResponse response;
  response.head = *head;
  response.status = std::atoi(head->c_str() + head->find(' ') + 1);
  std::smatch length;
  static const std::regex content_length(R"(\r\n[Cc]ontent-[Ll]ength: *(\d+)\r\n)");
  if (std::regex_search(*head, length, content_length)) {
    if (!socket.read_exact(std::stoul(length[1]), response.body, 10s)) return std::nullopt;
  }
  return response;
}

std::string plain_get(std::string_view target, std::uint16_t port) {
  return "GET " + std::string(target) + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) + "\r\n\r\n";
}

bool contains_token(const std::optional<std::string>& value, std::string_view token) {
  if (!value) return false;
  std::string lower;
  for (char c : *value) lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  return lower.find(token) != std::string::npos;
}

class WebSocketTest : public ::testing::Test {
 protected:
  void start(std::string_view server_keys = {}) {
    std::string config = "[server]\nlisten = \"127.0.0.1:0\"\nworkers = 1\n" + std::string(server_keys) +
                         "\n[admin]\nlisten = \"127.0.0.1:0\"\n"
                         "\n[upstream.ws]\nservers = [\"127.0.0.1:" + std::to_string(backend_.port()) + "\"]\n"
                         "\n[[route]]\nname = \"limited\"\npath = \"/ws/limited\"\nupstream = \"ws\"\n"
                         "[[route.limit]]\nrate = \"1/h\"\nburst = 1\nkey = \"global\"\n"
                         "\n[[route]]\nname = \"plain\"\npath = \"/ws/plain\"\nupstream = \"ws\"\nwebsocket = false\n"
                         "\n[[route]]\nname = \"idle\"\npath = \"/ws/idle\"\nupstream = \"ws\"\n"
                         "tunnel_idle_timeout = \"2s\"\n"
                         "\n[[route]]\nname = \"ws\"\npath = \"/*\"\nupstream = \"ws\"\n";
    arbiter_ = std::make_unique<harness::ArbiterProcess>(config);
  }

  std::uint16_t port() const { return arbiter_->port(); }

  // A text message goes through the tunnel and comes back.
  static void expect_echo(WebSocketClient& client, const std::string& text) {
    ASSERT_TRUE(client.send_text(text));
    auto echo = client.receive();
    ASSERT_TRUE(echo) << "no echo of " << text;
    EXPECT_EQ(echo->opcode, 1);
    EXPECT_EQ(echo->payload, text);
  }

  WebSocketBackend backend_;
  std::unique_ptr<harness::ArbiterProcess> arbiter_;
};

// The backend and the client check Sec-WebSocket-Accept with the same harness function: pin it
// to RFC 6455 section 1.3's example so that a wrong SHA-1 cannot agree with itself.
TEST(WebSocketHarness, AcceptKeyIsTheRfc6455Example) {
  EXPECT_EQ(harness::websocket_accept("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST_F(WebSocketTest, HandshakeIsRelayedAndMessagesFlowBothWays) {
  start();
  WebSocketClient client(port());
  ASSERT_EQ(client.handshake("/ws"), 101) << client.head();
  EXPECT_EQ(client.header("Sec-WebSocket-Accept"), harness::websocket_accept(client.key())) << client.head();
  EXPECT_TRUE(contains_token(client.header("Upgrade"), "websocket")) << client.head();
  EXPECT_TRUE(contains_token(client.header("Connection"), "upgrade")) << client.head();
  EXPECT_TRUE(client.header("X-Request-Id")) << client.head();
  EXPECT_FALSE(client.header("Content-Length")) << client.head();
  EXPECT_FALSE(client.header("Transfer-Encoding")) << client.head();

  // Several messages in a row, then their echoes in order.
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(client.send_text("message " + std::to_string(i)));
  for (int i = 0; i < 20; ++i) {
    auto echo = client.receive();
    ASSERT_TRUE(echo) << i;
    EXPECT_EQ(echo->payload, "message " + std::to_string(i));
  }
  // One message far larger than the socket buffers on the way, each way.
  const std::string large = harness::pattern_bytes(8u << 20);
  ASSERT_TRUE(client.send_binary(large));
  auto echo = client.receive(60s);
  ASSERT_TRUE(echo);
  EXPECT_EQ(echo->opcode, 2);
  EXPECT_EQ(echo->payload.size(), large.size());
  EXPECT_TRUE(echo->payload == large);
  expect_echo(client, "after the large one");
  EXPECT_EQ(backend_.handshakes(), 1);
}

TEST_F(WebSocketTest, BytesSentWithTheHandshakeOrTheSwitchAreNotLost) {
  start();
  // The client's first frame in the same write as its handshake.
  WebSocketClient client(port());
  ASSERT_EQ(client.handshake("/ws", harness::encode_frame(1, "early bird", true)), 101) << client.head();
  auto early = client.receive();
  ASSERT_TRUE(early);
  EXPECT_EQ(early->payload, "early bird");
  expect_echo(client, "next");

  // The backend's first frame in the same write as its 101.
  WebSocketClient greeted(port());
  ASSERT_EQ(greeted.handshake("/ws/greet"), 101) << greeted.head();
  auto welcome = greeted.receive();
  ASSERT_TRUE(welcome);
  EXPECT_EQ(welcome->payload, "welcome");
  expect_echo(greeted, "hello");
}

TEST_F(WebSocketTest, ClientClosingClosesTheBackendSide) {
  start();
  WebSocketClient client(port());
  ASSERT_EQ(client.handshake("/ws"), 101);
  expect_echo(client, "before closing");
  client.socket().close();
  EXPECT_TRUE(eventually([&] { return backend_.peer_closes() == 1; })) << backend_.peer_closes();
  // The proxy goes on serving.
  WebSocketClient next(port());
  ASSERT_EQ(next.handshake("/ws"), 101);
  expect_echo(next, "still there");
}

TEST_F(WebSocketTest, BackendClosingClosesTheClient) {
  start();
  WebSocketClient client(port());
  ASSERT_EQ(client.handshake("/ws"), 101);
  ASSERT_TRUE(client.send_text("server-close"));  // the backend closes its socket at once
  EXPECT_TRUE(client.socket().closed_by_peer(10s));

  // A WebSocket closing handshake: the close frame is relayed each way, then both close.
  WebSocketClient polite(port());
  ASSERT_EQ(polite.handshake("/ws"), 101);
  ASSERT_TRUE(polite.socket().write_all(harness::encode_frame(8, "\x03\xe8", true)));
  auto close = polite.receive();
  ASSERT_TRUE(close);
  EXPECT_EQ(close->opcode, 8);
  EXPECT_TRUE(polite.socket().closed_by_peer(10s));
}

TEST_F(WebSocketTest, HalfCloseLetsTheOtherDirectionFinish) {
  start();
  WebSocketClient client(port());
  ASSERT_EQ(client.handshake("/ws"), 101);
  // The client sends a message and shuts its sending side: the message still reaches the
  // backend and its echo still comes back before the backend sees the end.
  ASSERT_TRUE(client.send_text("last words"));
  client.socket().shutdown_write();
  auto echo = client.receive();
  ASSERT_TRUE(echo);
  EXPECT_EQ(echo->payload, "last words");
  EXPECT_TRUE(eventually([&] { return backend_.peer_closes() == 1; }));
  EXPECT_TRUE(client.socket().closed_by_peer(10s));
}

TEST_F(WebSocketTest, IdleTunnelIsClosedAfterTunnelIdleTimeout) {
  start();
  WebSocketClient client(port());
  ASSERT_EQ(client.handshake("/ws/idle"), 101);  // tunnel_idle_timeout = "2s"
  // Traffic paced by its own progress keeps the tunnel open well past the timeout.
  const auto busy_until = Clock::now() + 5s;
  int exchanged = 0;
  while (Clock::now() < busy_until) {
    expect_echo(client, "ping " + std::to_string(exchanged++));
    if (HasFatalFailure()) return;
  }
  EXPECT_GT(exchanged, 1);
  // Then silence: closed on both sides, not before the timeout.
  const auto quiet_since = Clock::now();
  EXPECT_TRUE(client.socket().closed_by_peer(20s));
  EXPECT_GE(Clock::now() - quiet_since, 1500ms);
  EXPECT_TRUE(eventually([&] { return backend_.peer_closes() == 1; }));
}

TEST_F(WebSocketTest, RateLimitedRouteRefusesTheHandshakeWith429) {
  start();
  WebSocketClient first(port());
  ASSERT_EQ(first.handshake("/ws/limited"), 101);  // rate "1/h", burst 1: the one token
  expect_echo(first, "admitted");
  WebSocketClient second(port());
  EXPECT_EQ(second.handshake("/ws/limited"), 429) << second.head();
  EXPECT_TRUE(contains_token(second.header("Content-Type"), "application/problem+json")) << second.head();
  EXPECT_TRUE(second.header("Retry-After")) << second.head();
  EXPECT_EQ(backend_.handshakes(), 1);  // the refused handshake never reached the backend
}

TEST_F(WebSocketTest, WebsocketFalseServesTheRequestAsPlainHttp) {
  start();
  WebSocketClient client(port());
  ASSERT_EQ(client.handshake("/ws/plain"), 200) << client.head();
  std::string body;
  std::smatch length;
  ASSERT_TRUE(std::regex_search(client.head(), length, std::regex(R"(Content-Length: (\d+))"))) << client.head();
  ASSERT_TRUE(client.socket().read_exact(std::stoul(length[1]), body, 10s));
  // The backend saw neither Upgrade nor Connection: upgrade.
  EXPECT_NE(body.find("\"upgrade\":null"), std::string::npos) << body;
  EXPECT_EQ(body.find("pgrade\""), body.find("pgrade\":null")) << body;
  EXPECT_NE(body.find("\"connection\":null"), std::string::npos) << body;
  EXPECT_EQ(backend_.handshakes(), 0);
  // The connection goes on speaking HTTP.
  ASSERT_TRUE(client.socket().write_all(plain_get("/ws/plain?again", port())));
  auto again = read_plain_response(client.socket());
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 200) << again->head;
}

TEST_F(WebSocketTest, NonSwitchingAnswerIsRelayedAndTheConnectionStaysUsable) {
  start();
  WebSocketClient client(port());
  ASSERT_EQ(client.handshake("/ws/refuse"), 403) << client.head();
  std::string body;
  ASSERT_TRUE(client.socket().read_exact(16, body, 10s));
  EXPECT_EQ(body, R"({"refused":true})");
  ASSERT_TRUE(client.socket().write_all(plain_get("/next", port())));
  auto next = read_plain_response(client.socket());
  ASSERT_TRUE(next);
  EXPECT_EQ(next->status, 200) << next->head;
  EXPECT_NE(next->body.find("\"target\":\"/next\""), std::string::npos) << next->body;
}

TEST_F(WebSocketTest, TunnelIsLoggedAndCountedWithStatus101) {
  start();
  WebSocketClient client(port());
  ASSERT_EQ(client.handshake("/ws"), 101);
  expect_echo(client, "0123456789");
  client.socket().close();
  auto line = arbiter_->process().wait_for_line(std::regex(R"("status":101)"), 10s);
  ASSERT_TRUE(line) << arbiter_->process().output_summary();
  EXPECT_NE(line->line.find("\"route\":\"ws\""), std::string::npos) << line->line;
  EXPECT_NE(line->line.find("\"bytes\":12,"), std::string::npos) << line->line;  // the echo frame
  harness::HttpClient admin(*arbiter_->admin_port());
  auto metrics = harness::require(admin.request("GET", "/metrics"), admin);
  EXPECT_NE(metrics.body.find(R"(arbiter_requests_total{route="ws",method="GET",status_class="1xx"} 1)"),
            std::string::npos)
      << metrics.body;
}

TEST_F(WebSocketTest, DrainClosesTunnelsAfterDrainTimeout) {
  start("drain_timeout = \"3s\"\n");
  WebSocketClient client(port());
  ASSERT_EQ(client.handshake("/ws"), 101);
  ASSERT_TRUE(arbiter_->process().signal(SIGTERM));
  expect_echo(client, "during the drain");  // a tunnel is in flight: it keeps working meanwhile
  EXPECT_TRUE(client.socket().closed_by_peer(20s));
  EXPECT_EQ(arbiter_->process().wait_exit(20s), std::optional<int>(0));
}

}  // namespace
