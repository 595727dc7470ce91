// Local handlers answered through the real Exchange over the fake host (no sockets): a request
// under [server] control_prefix goes to the control registry before routing, a handler's
// held-open response is written chunked through the exchange, and the host's events (client
// gone, drain) reach the stream's listener.

#include "proxy/exchange/local_answer.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "proxy/control/handler_registry.h"
#include "proxy/exchange/exchange.h"
#include "tests/support/fake_exchange_host.h"

namespace arbiter {
namespace {

using testing::FakeExchangeHost;

class Listener final : public StreamListener {
 public:
  void on_stream_closed() override { ++closed; }
  int closed = 0;
};

// GET /feed holds its response open; GET /now answers at once.
class FeedHandler final : public LocalHandler {
 public:
  void handle(const LocalRequest& request, LocalResponder& responder) override {
    seen_path = std::string(request.path);
    if (request.path.ends_with("/now")) {
      responder.reply(200, HeaderList{{"Content-Type", "text/plain"}}, "now");
      return;
    }
    stream = responder.start_stream(200, HeaderList{{"Content-Type", "text/event-stream"}}, listener);
  }
  std::string seen_path;
  std::shared_ptr<LocalStream> stream;
  Listener listener;
};

class LocalAnswerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Config config = parse_config(
        "[upstream.backend]\nservers = [\"127.0.0.1:9\"]\n"
        "[[route]]\nname = \"all\"\npath = \"/*\"\nupstream = \"backend\"\n",
        "local_answer_test.toml");
    host = std::make_unique<FakeExchangeHost>(std::make_shared<Runtime>(std::move(config), state));
    registry.add("/feed", PathMatch::Exact, {"GET"}, "a feed", handler);
    registry.add("/now", PathMatch::Exact, {"GET"}, "at once", handler);
    host->control_registry = &registry;
  }
  RuntimeState state;
  HandlerRegistry registry{"control"};
  std::shared_ptr<FeedHandler> handler = std::make_shared<FeedHandler>();
  std::unique_ptr<FakeExchangeHost> host;
};

TEST_F(LocalAnswerTest, ControlPrefixIsAnsweredBeforeRoutingAndTheNextRequestIsRouted) {
  host->feed("GET /_arbiter/now HTTP/1.1\r\nHost: a\r\n\r\nGET /items/1 HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_EQ(handler->seen_path, "/_arbiter/now");
  EXPECT_TRUE(host->to_client.starts_with("HTTP/1.1 200 OK\r\n")) << host->to_client;
  EXPECT_TRUE(host->to_client.ends_with("\r\n\r\nnow")) << host->to_client;
  EXPECT_EQ(host->exchanges_done, 1);
  EXPECT_EQ(host->upstream_opens, 1);  // the pipelined request went to the route's upstream
}

TEST_F(LocalAnswerTest, AStreamIsWrittenChunkedAndFinishingGoesOnToTheNextRequest) {
  host->feed("GET /_arbiter/feed HTTP/1.1\r\nHost: a\r\n\r\nGET /_arbiter/now HTTP/1.1\r\nHost: a\r\n\r\n");
  ASSERT_TRUE(handler->stream);
  ASSERT_TRUE(host->exchange);
  EXPECT_EQ(host->exchange->stage(), Exchange::Stage::Streaming);
  EXPECT_NE(host->to_client.find("Transfer-Encoding: chunked\r\n"), std::string::npos) << host->to_client;
  EXPECT_NE(host->to_client.find("Cache-Control: no-store\r\n"), std::string::npos) << host->to_client;
  EXPECT_EQ(handler->stream->write("data: 1\n\n"), StreamWrite::Written);
  EXPECT_TRUE(host->to_client.ends_with("\r\n\r\n9\r\ndata: 1\n\n\r\n")) << host->to_client;
  EXPECT_EQ(host->exchanges_done, 0);
  std::shared_ptr<LocalStream> stream = handler->stream;
  stream->finish();
  EXPECT_TRUE(stream->closed());
  EXPECT_EQ(stream->write("late"), StreamWrite::Closed);
  EXPECT_EQ(handler->listener.closed, 0);  // the handler ended it: not told
  EXPECT_EQ(host->exchanges_done, 2);      // the pipelined request was answered after it
  EXPECT_NE(host->to_client.find("0\r\n\r\nHTTP/1.1 200 OK\r\n"), std::string::npos) << host->to_client;
}

TEST_F(LocalAnswerTest, AClientGoneClosesTheStreamAndTellsTheListener) {
  host->feed("GET /_arbiter/feed HTTP/1.1\r\nHost: a\r\n\r\n");
  ASSERT_TRUE(handler->stream);
  host->client_gone();
  EXPECT_EQ(handler->listener.closed, 1);
  EXPECT_TRUE(handler->stream->closed());
  EXPECT_EQ(handler->stream->write("x"), StreamWrite::Closed);
  EXPECT_EQ(host->statuses, std::vector<int>{499});
}

TEST_F(LocalAnswerTest, ADrainEndsTheStreamCleanlyAndClosesTheConnection) {
  host->feed("GET /_arbiter/feed HTTP/1.1\r\nHost: a\r\n\r\n");
  ASSERT_TRUE(handler->stream);
  host->drain();
  EXPECT_EQ(handler->listener.closed, 1);
  EXPECT_TRUE(handler->stream->closed());
  EXPECT_TRUE(host->to_client.ends_with("0\r\n\r\n")) << host->to_client;
  EXPECT_EQ(host->statuses, std::vector<int>{200});
  EXPECT_TRUE(host->closed);  // no keep-alive after a drained stream
}

TEST_F(LocalAnswerTest, TheAdminListenerSendsEveryPathToItsRegistryAsReceived) {
  HandlerRegistry admin{"admin"};
  admin.add("/now", PathMatch::Exact, {"GET"}, "at once", handler);
  host->admin_registry = &admin;
  host->feed("GET /now?x=1 HTTP/1.1\r\nHost: a\r\n\r\nGET /items HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_EQ(handler->seen_path, "/now");
  EXPECT_NE(host->to_client.find("HTTP/1.1 404 "), std::string::npos) << host->to_client;  // not routed
  EXPECT_EQ(host->upstream_opens, 0);
}

}  // namespace
}  // namespace arbiter
