// How the parsers see a protocol upgrade (issue #12, item 13): the request's upgrade flag, the
// bytes after its head kept for a tunnel, HTTP parsing going on when no switch happened; a 101
// accepted only as the answer to an upgrade request, with the bytes after it left unparsed.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "proxy/http/request_parser.h"
#include "proxy/http/response_parser.h"

namespace arbiter {
namespace {

class Events final : public RequestEvents {
 public:
  void on_request_begin() override { ++begun; }
  bool on_request_body(std::string_view) override { return true; }
  void on_request_complete() override { ++completed; }
  void on_parse_paused() override { ++paused; }
  void on_parse_error(llhttp_errno_t error) override { errors.push_back(error); }
  bool takes_input() const override { return errors.empty(); }

  int begun = 0;
  int completed = 0;
  int paused = 0;
  std::vector<llhttp_errno_t> errors;
};

constexpr std::string_view kHandshake =
    "GET /chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

TEST(UpgradeRequest, IsFlaggedAndTheBytesAfterItsHeadAreKept) {
  Events events;
  RequestParser parser(events);
  parser.set_limits({65536, 1 << 20});
  std::string input(kHandshake);
  input += "\x81\x05hello";  // a frame pipelined with the handshake
  parser.feed(input.data(), input.size());
  ASSERT_TRUE(events.errors.empty());
  EXPECT_EQ(events.completed, 1);
  EXPECT_TRUE(parser.head().upgrade);
  EXPECT_EQ(parser.take_pending(), "\x81\x05hello");
}

TEST(UpgradeRequest, AnsweredWithoutASwitchTheConnectionGoesOnSpeakingHttp) {
  Events events;
  RequestParser parser(events);
  parser.set_limits({65536, 1 << 20});
  parser.feed(kHandshake.data(), kHandshake.size());
  ASSERT_TRUE(parser.head().upgrade);
  parser.next_request();
  parser.resume();
  std::string next = "GET /next HTTP/1.1\r\nHost: a\r\n\r\n";
  parser.feed(next.data(), next.size());
  ASSERT_TRUE(events.errors.empty()) << llhttp_errno_name(events.errors.front());
  EXPECT_EQ(events.completed, 2);
  EXPECT_EQ(parser.head().target, "/next");
  EXPECT_FALSE(parser.head().upgrade);
}

TEST(UpgradeRequest, NotFlaggedWithABodyOrOverHttp10OrWithoutConnectionUpgrade) {
  for (std::string_view request :
       {std::string_view("POST /chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                         "Content-Length: 2\r\n\r\nhi"),
        std::string_view("GET /chat HTTP/1.0\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"),
        std::string_view("GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n")}) {
    Events events;
    RequestParser parser(events);
    parser.set_limits({65536, 1 << 20});
    parser.feed(request.data(), request.size());
    if (!parser.message_complete()) parser.resume();
    ASSERT_TRUE(events.errors.empty()) << request;
    EXPECT_TRUE(parser.message_complete()) << request;
    EXPECT_FALSE(parser.head().upgrade) << request;
  }
}

class ResponseSink final : public ResponseEvents {
 public:
  bool on_response_head(int status, HeaderList& headers, BodyFraming framing, std::uint64_t) override {
    statuses.push_back(status);
    head_headers = headers;
    head_framing = framing;
    return true;
  }
  bool on_response_body(std::string_view piece) override {
    body.append(piece);
    return true;
  }
  std::vector<int> statuses;
  HeaderList head_headers;
  BodyFraming head_framing = BodyFraming::ContentLength;
  std::string body;
};

constexpr std::string_view kSwitch =
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

TEST(UpgradeResponse, A101ToAnUpgradeRequestEndsTheHeadAndLeavesTheRestUnparsed) {
  ResponseSink sink;
  ResponseParser parser(sink);
  parser.set_upgrade_request(true);
  std::string input(kSwitch);
  input += "\x81\x07welcome";
  std::size_t consumed = 0;
  EXPECT_EQ(parser.execute(input.data(), input.size(), consumed), HPE_PAUSED);
  EXPECT_TRUE(parser.complete());
  EXPECT_TRUE(parser.upgraded());
  EXPECT_EQ(consumed, kSwitch.size());
  EXPECT_EQ(sink.statuses, std::vector<int>{101});
  EXPECT_EQ(sink.head_framing, BodyFraming::None);
  EXPECT_EQ(sink.head_headers.find("upgrade"), std::optional<std::string_view>("websocket"));
  EXPECT_FALSE(sink.head_headers.find("connection"));
  EXPECT_EQ(sink.head_headers.find("sec-websocket-accept"),
            std::optional<std::string_view>("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
  EXPECT_TRUE(sink.body.empty());
}

TEST(UpgradeResponse, A101NobodyAskedForIsABadResponse) {
  ResponseSink sink;
  ResponseParser parser(sink);
  std::size_t consumed = 0;
  EXPECT_NE(parser.execute(kSwitch.data(), kSwitch.size(), consumed), HPE_PAUSED);
  EXPECT_FALSE(parser.upgraded());
  EXPECT_TRUE(sink.statuses.empty());
}

TEST(UpgradeResponse, AnotherAnswerToAnUpgradeRequestIsAnOrdinaryResponse) {
  ResponseSink sink;
  ResponseParser parser(sink);
  parser.set_upgrade_request(true);
  std::string input = "HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno";
  std::size_t consumed = 0;
  EXPECT_EQ(parser.execute(input.data(), input.size(), consumed), HPE_PAUSED);
  EXPECT_TRUE(parser.complete());
  EXPECT_FALSE(parser.upgraded());
  EXPECT_TRUE(parser.keep_alive());
  EXPECT_EQ(sink.body, "no");
}

// Found by the response fuzzer: a 103 claiming a body (Content-Length: 2) must not pass those
// bytes on as the body of the real answer that follows. An interim answer has no body (RFC 9112
// section 6.3), so the bytes after its empty line are where the next answer must start: "{}"
// there is a bad response, refused before any head or body is passed on.
TEST(InterimResponse, ABodyOnAnInterimAnswerIsNotPassedOn) {
  ResponseSink sink;
  ResponseParser parser(sink);
  std::string input = "HTTP/1.1 103 Early Hints\r\nContent-Length: 2\r\n\r\n{}"
                      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  std::size_t consumed = 0;
  EXPECT_NE(parser.execute(input.data(), input.size(), consumed), HPE_PAUSED);
  EXPECT_FALSE(parser.complete());
  EXPECT_TRUE(sink.statuses.empty());
  EXPECT_TRUE(sink.body.empty());
}

// RFC 9112 section 6.3: an interim answer ends at the empty line after its fields, whatever
// framing fields it carries, so the real answer starts right there.
TEST(InterimResponse, FramingFieldsOnAnInterimAnswerDoNotSwallowTheRealAnswer) {
  for (std::string_view framing : {"Content-Length: 2\r\n", "Transfer-Encoding: chunked\r\n",
                                   "Transfer-Encoding: gzip\r\n"}) {
    ResponseSink sink;
    ResponseParser parser(sink);
    std::string input = "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n" + std::string(framing) +
                        "\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    std::size_t consumed = 0;
    EXPECT_EQ(parser.execute(input.data(), input.size(), consumed), HPE_PAUSED) << framing;
    EXPECT_TRUE(parser.complete()) << framing;
    EXPECT_EQ(sink.statuses, std::vector<int>{200}) << framing;
    EXPECT_EQ(sink.body, "ok") << framing;
  }
}

}  // namespace
}  // namespace arbiter
