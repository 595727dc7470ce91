// The real arbiter binary in front of the real legacy API, over loopback sockets.

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "tests/support/proxy_fixture.h"

namespace {

using harness::ArbiterProcess;
using harness::HttpClient;
using harness::HttpResponse;
using harness::ConfigOptions;
using harness::require;
using nlohmann::json;
using namespace std::chrono_literals;

// A loopback port nothing listens on: bound, then closed.
std::uint16_t dead_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
  socklen_t length = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(fd);
  return ntohs(address.sin_port);
}

using harness::peak_rss_kb;

// A backend that answers every request on a connection with `answer` and then closes it, as an
// HTTP/1.0 server ending its body by closing does. Serves until destroyed.
class ClosingBackend {
 public:
  explicit ClosingBackend(std::string answer) : answer_(std::move(answer)) {
    listen_fd_ = harness::listen_on_loopback(port_, "ClosingBackend");
    thread_ = std::thread([this] { serve(); });
  }
  ~ClosingBackend() {
    ::shutdown(listen_fd_, SHUT_RDWR);  // wakes accept()
    thread_.join();
    ::close(listen_fd_);
  }
  std::uint16_t port() const { return port_; }

 private:
  void serve() {
    for (;;) {
      int fd = ::accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) return;
      timeval timeout{2, 0};
      ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
      std::string request;
      char buffer[4096];
      while (request.find("\r\n\r\n") == std::string::npos) {
        ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
        if (n <= 0) break;
        request.append(buffer, static_cast<std::size_t>(n));
      }
      ::send(fd, answer_.data(), answer_.size(), MSG_NOSIGNAL);
      ::close(fd);
    }
  }

  std::string answer_;
  int listen_fd_ = -1;
  std::uint16_t port_ = 0;
  std::thread thread_;
};

class ProxyTest : public harness::ProxyFixture {
 protected:
  // Sends `head`, then each of `pieces` after `pause`; the answer that follows.
  static std::optional<HttpResponse> trickle(HttpClient& client, std::string_view head,
                                             std::initializer_list<std::string_view> pieces,
                                             std::chrono::milliseconds pause) {
    if (!client.send_raw(head)) return std::nullopt;
    for (std::string_view piece : pieces) {
      std::this_thread::sleep_for(pause);
      if (!client.send_raw(piece)) return std::nullopt;
    }
    return client.read_response();
  }

  // Sends raw bytes; expects 400 problem+json, the connection closed, and nothing forwarded.
  void expect_refused_unforwarded(std::string_view raw) {
    clear_backend_log();
    HttpClient client(arbiter_->port());
    ASSERT_TRUE(client.send_raw(raw));
    auto response = client.read_response();
    ASSERT_TRUE(response.has_value()) << client.last_error();
    EXPECT_EQ(response->status, 400) << raw;
    EXPECT_EQ(response->header("Content-Type").value_or(""), "application/problem+json");
    EXPECT_TRUE(client.is_closed_by_peer(2s)) << raw;
    EXPECT_EQ(backend_log().size(), 0u) << "the backend received part of: " << raw;
  }
};

TEST_F(ProxyTest, CrudRoundTripThroughTheProxy) {
  start();
  EXPECT_EQ(send("GET", "/items/1").status, 200);
  HttpResponse created = send("POST", "/items", R"({"name":"gear"})", {{"Content-Type", "application/json"}});
  ASSERT_EQ(created.status, 201);
  std::string id = json::parse(created.body)["id"].get<std::string>();
  EXPECT_EQ(send("PUT", "/items/" + id, R"({"name":"cog"})").status, 200);
  EXPECT_EQ(json::parse(send("GET", "/items/" + id).body)["name"], "cog");
  EXPECT_EQ(send("PATCH", "/items/" + id, R"({"count":3})").status, 200);
  EXPECT_EQ(json::parse(send("GET", "/items/" + id).body)["count"], 3);
  EXPECT_EQ(send("DELETE", "/items/" + id).status, 204);
  EXPECT_EQ(send("GET", "/items/" + id).status, 404);
}

TEST_F(ProxyTest, UnknownRouteIsProblemJsonWithRequestId) {
  start();
  HttpResponse response = send("GET", "/nowhere/else");
  EXPECT_EQ(response.status, 404);
  EXPECT_EQ(response.header("Content-Type").value_or(""), "application/problem+json");
  json problem = json::parse(response.body);
  EXPECT_EQ(problem["type"], "urn:arbiter:problem:route-not-found");
  EXPECT_EQ(problem["status"], 404);
  EXPECT_NE(problem["detail"].get<std::string>().find("/nowhere/else"), std::string::npos);
  EXPECT_EQ(problem["request-id"], response.header("X-Request-Id").value_or("missing"));
}

TEST_F(ProxyTest, MethodOutsideTheRouteIs405WithAllow) {
  start();
  clear_backend_log();
  HttpResponse response = send("POST", "/items/1", "{}");
  EXPECT_EQ(response.status, 405);
  EXPECT_EQ(response.header("Allow").value_or(""), "DELETE, GET, HEAD, PATCH, PUT");
  EXPECT_EQ(backend_log().size(), 0u);
}

TEST_F(ProxyTest, LocalAnswerToARequestWithABodyKeepsTheConnection) {
  start();
  HttpClient client(arbiter_->port());
  auto refused = client.request("POST", "/items/1", {}, std::string(5000, 'x'));
  ASSERT_TRUE(refused) << client.last_error();
  EXPECT_EQ(refused->status, 405);
  EXPECT_TRUE(refused->keep_alive);
  auto next = client.request("GET", "/items/1");
  ASSERT_TRUE(next) << client.last_error();
  EXPECT_EQ(next->status, 200);
}

TEST_F(ProxyTest, KeepAliveServesManyRequestsOnOneConnection) {
  start();
  HttpClient client(arbiter_->port());
  for (int i = 0; i < 20; ++i) {
    auto response = client.request("GET", "/items/1");
    ASSERT_TRUE(response.has_value()) << "request " << i << ": " << client.last_error();
    EXPECT_EQ(response->status, 200);
    EXPECT_TRUE(response->keep_alive);
  }
}

TEST_F(ProxyTest, PipelinedRequestsAreAnsweredInOrder) {
  start();
  HttpClient client(arbiter_->port());
  std::string batch;
  // The slow one first: answers must still come back in request order.
  batch += harness::format_request("GET", "/_test/delay?ms=150", arbiter_->port());
  batch += harness::format_request("GET", "/_test/echo?n=2", arbiter_->port());
  batch += harness::format_request("GET", "/items/1", arbiter_->port());
  ASSERT_TRUE(client.send_raw(batch));
  auto first = client.read_response();
  auto second = client.read_response();
  auto third = client.read_response();
  ASSERT_TRUE(first && second && third) << client.last_error();
  EXPECT_EQ(json::parse(first->body)["delayed_ms"], 150);
  EXPECT_EQ(json::parse(second->body)["target"], "/_test/echo?n=2");
  EXPECT_EQ(json::parse(third->body)["name"], "widget");
}

TEST_F(ProxyTest, ForwardingFieldsAreAddedAndHopByHopRemoved) {
  start();
  HttpResponse response = send("GET", "/_test/echo", {},
                               {{"Connection", "X-Private"}, {"X-Private", "secret"}, {"Keep-Alive", "timeout=5"},
                                {"X-Forwarded-For", "6.6.6.6"}, {"X-Request-Id", "trace-123"}, {"Accept", "*/*"}});
  ASSERT_EQ(response.status, 200);
  json echo = json::parse(response.body);
  std::map<std::string, std::string> seen;
  for (const auto& field : echo["headers"]) {
    std::string name = field[0];
    std::transform(name.begin(), name.end(), name.begin(), ::tolower);
    seen[name] = field[1];
  }
  EXPECT_EQ(seen.count("x-private"), 0u);
  EXPECT_EQ(seen.count("keep-alive"), 0u);
  EXPECT_EQ(seen.count("connection"), 0u);
  EXPECT_EQ(seen["x-forwarded-for"], "127.0.0.1");  // the peer is not a trusted proxy
  EXPECT_EQ(seen["x-forwarded-proto"], "http");
  EXPECT_EQ(seen["x-forwarded-host"], "127.0.0.1:" + std::to_string(arbiter_->port()));
  EXPECT_EQ(seen["via"], "1.1 arbiter");
  EXPECT_EQ(seen["x-request-id"], "trace-123");
  EXPECT_EQ(seen["accept"], "*/*");
  EXPECT_EQ(response.header("X-Request-Id").value_or(""), "trace-123");
  EXPECT_EQ(response.header("Via").value_or(""), "1.1 arbiter");
}

TEST_F(ProxyTest, TrustedProxyChainIsBelieved) {
  start({.server = "trusted_proxies = [\"127.0.0.0/8\"]\n"});
  HttpResponse response = send("GET", "/_test/echo", {}, {{"X-Forwarded-For", "203.0.113.9"}});
  json echo = json::parse(response.body);
  bool found = false;
  for (const auto& field : echo["headers"]) {
    if (field[0] == "X-Forwarded-For") {
      EXPECT_EQ(field[1], "203.0.113.9, 127.0.0.1");
      found = true;
    }
  }
  EXPECT_TRUE(found);
}

TEST_F(ProxyTest, ChunkedUploadIsStreamedIntact) {
  start();
  std::vector<std::string> chunks{std::string(1000, 'x'), std::string(70000, 'y'), "z"};
  std::string body = chunks[0] + chunks[1] + chunks[2];
  HttpClient client(arbiter_->port());
  ASSERT_TRUE(client.send_raw("POST /_test/echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" +
                              harness::chunked_encoding(chunks)));
  auto response = client.read_response();
  ASSERT_TRUE(response) << client.last_error();
  json echo = json::parse(response->body);
  EXPECT_EQ(echo["body_length"], body.size());
  EXPECT_EQ(echo["body_xxh3"], harness::xxh3_hex(body));
}

TEST_F(ProxyTest, EightMebibyteUploadAndDownloadUseBoundedMemory) {
  start();
  HttpClient warmup(arbiter_->port());
  ASSERT_TRUE(warmup.request("GET", "/items/1"));
  long before = peak_rss_kb(arbiter_->process().pid());
  ASSERT_GT(before, 0);

  std::string body = harness::pattern_bytes(8u << 20);
  HttpClient client(arbiter_->port(), 20s);
  auto upload = client.request("PUT", "/_test/echo", {}, body);
  ASSERT_TRUE(upload) << client.last_error();
  json echo = json::parse(upload->body);
  EXPECT_EQ(echo["body_length"], body.size());
  EXPECT_EQ(echo["body_xxh3"], harness::xxh3_hex(body));

  // A client that does not read for a while: the proxy must hold back, not buffer 8 MiB.
  ASSERT_TRUE(client.send_raw(harness::format_request("GET", "/_test/bytes?n=8388608", arbiter_->port())));
  std::this_thread::sleep_for(500ms);
  auto download = client.read_response();
  ASSERT_TRUE(download) << client.last_error();
  EXPECT_EQ(download->body.size(), 8u << 20);
  EXPECT_EQ(download->body, body);

  long after = peak_rss_kb(arbiter_->process().pid());
  EXPECT_LT(after - before, 4 * 1024) << "peak RSS grew by " << (after - before) << " kB";
}

TEST_F(ProxyTest, ChunkedDownloadReachesHttp11AndHttp10Clients) {
  start();
  HttpResponse chunked = send("GET", "/_test/bytes?n=100000&chunked=1");
  EXPECT_EQ(chunked.status, 200);
  EXPECT_EQ(chunked.header("Transfer-Encoding").value_or(""), "chunked");
  EXPECT_EQ(chunked.body, harness::pattern_bytes(100000));

  HttpClient client(arbiter_->port());
  ASSERT_TRUE(client.send_raw("GET /_test/bytes?n=5000&chunked=1 HTTP/1.0\r\n\r\n"));
  auto old = client.read_response();
  ASSERT_TRUE(old) << client.last_error();
  EXPECT_EQ(old->http_minor, 0);
  EXPECT_FALSE(old->header("Transfer-Encoding").has_value());
  EXPECT_EQ(old->body, harness::pattern_bytes(5000));
  EXPECT_TRUE(client.is_closed_by_peer(2s));
}

TEST_F(ProxyTest, HeadAndNoContentHaveNoBody) {
  start();
  HttpClient client(arbiter_->port());
  ASSERT_TRUE(client.send_raw(harness::format_request("HEAD", "/_test/bytes?n=300", arbiter_->port())));
  auto head = client.read_response(/*head_request=*/true);
  ASSERT_TRUE(head) << client.last_error();
  EXPECT_EQ(head->status, 200);
  EXPECT_EQ(head->header("Content-Length").value_or(""), "300");
  EXPECT_TRUE(head->body.empty());
  auto no_content = client.request("GET", "/_test/status?code=204");
  ASSERT_TRUE(no_content) << client.last_error();
  EXPECT_EQ(no_content->status, 204);
  EXPECT_TRUE(no_content->body.empty());
  // The connection is still in step: another request works.
  auto after = client.request("GET", "/items/1");
  ASSERT_TRUE(after) << client.last_error();
  EXPECT_EQ(after->status, 200);
}

TEST_F(ProxyTest, ExpectContinueIsAnsweredBeforeTheBody) {
  start();
  HttpClient client(arbiter_->port());
  ASSERT_TRUE(client.send_raw("PUT /_test/echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"));
  auto interim = client.read_response();
  ASSERT_TRUE(interim) << client.last_error();
  EXPECT_EQ(interim->status, 100);
  ASSERT_TRUE(client.send_raw("hello"));
  auto final_response = client.read_response();
  ASSERT_TRUE(final_response) << client.last_error();
  EXPECT_EQ(final_response->status, 200);
  json echo = json::parse(final_response->body);
  EXPECT_EQ(echo["body_length"], 5);
  for (const auto& field : echo["headers"]) EXPECT_NE(field[0], "Expect");
}

TEST_F(ProxyTest, UnsupportedExpectationIs417) {
  start();
  clear_backend_log();
  HttpResponse response = send("PUT", "/_test/echo", "x", {{"Expect", "teapot"}});
  EXPECT_EQ(response.status, 417);
  EXPECT_EQ(backend_log().size(), 0u);
}

TEST_F(ProxyTest, Http10ClientGetsHttp10AnswerAndClose) {
  start();
  HttpClient client(arbiter_->port());
  ASSERT_TRUE(client.send_raw("GET /items/1 HTTP/1.0\r\n\r\n"));
  auto response = client.read_response();
  ASSERT_TRUE(response) << client.last_error();
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->http_minor, 0);
  EXPECT_TRUE(client.is_closed_by_peer(2s));
}

// A body framed by the connection's close (no Content-Length, no chunking) is complete at
// EOF: the client gets all of it, re-framed, and a policy reading it sees it whole.
TEST_F(ProxyTest, BodyEndedByTheUpstreamClosingIsComplete) {
  ClosingBackend http10("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello until close");
  start({.servers = "[\"127.0.0.1:" + std::to_string(http10.port()) + "\"]",
         .routes = "\n[[route]]\nname = \"tagged\"\npath = \"/tagged/{id}\"\nupstream = \"legacy\"\n"
                   "[route.etag]\nverify = \"cache\"\n"});
  HttpClient client(arbiter_->port());
  auto plain = client.request("GET", "/items/1");
  ASSERT_TRUE(plain) << client.last_error();
  EXPECT_EQ(plain->status, 200);
  EXPECT_EQ(plain->body, "hello until close");
  auto again = client.request("GET", "/items/2");  // and the client's connection goes on
  ASSERT_TRUE(again) << client.last_error();
  EXPECT_EQ(again->body, "hello until close");

  HttpResponse tagged = send("GET", "/tagged/1");
  EXPECT_EQ(tagged.status, 200) << tagged.body;
  EXPECT_EQ(tagged.body, "hello until close");
  EXPECT_TRUE(tagged.header("ETag").has_value());
}

TEST_F(ProxyTest, DeadUpstreamIs502) {
  backend_.process().signal(SIGKILL);
  start({.servers = "[\"127.0.0.1:" + std::to_string(dead_port()) + "\"]"});
  HttpResponse response = send("GET", "/items/1");
  EXPECT_EQ(response.status, 502);
  json problem = json::parse(response.body);
  EXPECT_EQ(problem["type"], "urn:arbiter:problem:upstream-unavailable");
  EXPECT_NE(problem["detail"].get<std::string>().find("legacy"), std::string::npos);
}

TEST_F(ProxyTest, ConnectFailureIsRetriedOnTheNextServer) {
  start({.servers = "[\"127.0.0.1:" + std::to_string(dead_port()) + "\", \"127.0.0.1:" +
                    std::to_string(backend_.port()) + "\"]"});
  for (int i = 0; i < 4; ++i) {
    HttpResponse response = send("GET", "/items/1");
    EXPECT_EQ(response.status, 200) << "request " << i;
  }
}

TEST_F(ProxyTest, SlowUpstreamIs504) {
  start({.upstream = "response_timeout = \"300ms\"\n"});
  // The backend would answer after a minute: a 504 well before that came from the timeout,
  // however slow this machine is.
  auto began = std::chrono::steady_clock::now();
  HttpClient client(arbiter_->port(), 50s);
  HttpResponse response = harness::require(client.request("GET", "/_test/delay?ms=60000"), client);
  EXPECT_EQ(response.status, 504);
  EXPECT_EQ(json::parse(response.body)["type"], "urn:arbiter:problem:upstream-timeout");
  EXPECT_LT(std::chrono::steady_clock::now() - began, 50s);
}

TEST_F(ProxyTest, UpstreamMisbehaviourIs502AndTheProxyKeepsServing) {
  start();
  EXPECT_EQ(send("GET", "/_test/reset").status, 502);
  EXPECT_EQ(send("GET", "/_test/close").status, 502);
  EXPECT_EQ(send("GET", "/_test/garbage").status, 502);
  {
    // Head already relayed, body cut short: only closing tells the client.
    HttpClient client(arbiter_->port());
    ASSERT_TRUE(client.send_raw(harness::format_request("GET", "/_test/partial", arbiter_->port())));
    auto response = client.read_response();
    EXPECT_FALSE(response.has_value());
    EXPECT_TRUE(client.is_closed_by_peer(2s));
  }
  EXPECT_EQ(send("GET", "/items/1").status, 200);
}

TEST_F(ProxyTest, SmugglingAttemptsAreRefusedAndNeverForwarded) {
  start({.routes = "[[route]]\nname = \"all\"\npath = \"/*\"\nupstream = \"legacy\"\n"});
  const std::vector<std::string> attempts = {
      // CL.TE and TE.CL
      "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
      "POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n",
      "POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
      "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\nhello",
      "POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      "POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
      "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
      "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: +44\r\n\r\nhello",
      "GET /a HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n two\r\n\r\n",
      "POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
      "GET /a HTTP/1.1\r\nHost: a\rX-Bare: cr\r\n\r\n",
      std::string("GET /a HTTP/1.1\r\nHost: a\r\nX-Nul: a\0b\r\n\r\n", 40),
      "GET /a\r\n\r\n",
      "GET /a HTTP/1.1\r\n\r\n",  // no Host
      "GET ftp://evil.example/a HTTP/1.1\r\nHost: a\r\n\r\n",  // absolute-form is http(s) only
      "GET /a HTTP/1.1\r\nHost: a b\r\n\r\n",  // not a host
  };
  for (const std::string& attempt : attempts) {
    SCOPED_TRACE(attempt);
    expect_refused_unforwarded(attempt);
  }
}

TEST_F(ProxyTest, OversizedHeadIs431AndLongTargetIs414) {
  start({.server = "max_header_bytes = 4096\n"});
  clear_backend_log();
  HttpResponse big = send("GET", "/items/1", {}, {{"X-Big", std::string(5000, 'b')}});
  EXPECT_EQ(big.status, 431);
  HttpResponse long_target = send("GET", "/items/" + std::string(5000, '1'));
  EXPECT_EQ(long_target.status, 414);
  EXPECT_EQ(backend_log().size(), 0u);
}

TEST_F(ProxyTest, BodyOverLimitIs413WithoutForwarding) {
  start({.server = "max_body_bytes = 1000\n"});
  clear_backend_log();
  HttpResponse declared = send("PUT", "/_test/echo", std::string(1001, 'x'));
  EXPECT_EQ(declared.status, 413);
  EXPECT_EQ(backend_log().size(), 0u);

  HttpClient client(arbiter_->port());
  ASSERT_TRUE(client.send_raw("PUT /_test/echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" +
                              harness::chunked_encoding({std::string(600, 'a'), std::string(600, 'b')})));
  auto chunked = client.read_response();
  ASSERT_TRUE(chunked) << client.last_error();
  EXPECT_EQ(chunked->status, 413);
  EXPECT_TRUE(client.is_closed_by_peer(2s));
}

TEST_F(ProxyTest, SlowHeadIs408ThenClosed) {
  start({.server = "header_timeout = \"300ms\"\n"});
  HttpClient client(arbiter_->port());
  ASSERT_TRUE(client.send_raw("GET /items/1 HTTP/1.1\r\nHost: a\r\n"));
  auto response = client.read_response();
  ASSERT_TRUE(response) << client.last_error();
  EXPECT_EQ(response->status, 408);
  EXPECT_TRUE(client.is_closed_by_peer(2s));
}

// A body that stops coming is cut at body_timeout (408, close), and the backend never sees a
// complete request; one that keeps trickling within it goes through.
TEST_F(ProxyTest, StalledBodyIs408AndNeverCompletesUpstream) {
  start({.server = "body_timeout = \"500ms\"\n"});
  clear_backend_log();
  HttpClient stalled(arbiter_->port());
  ASSERT_TRUE(stalled.send_raw("POST /_test/echo HTTP/1.1\r\nHost: a\r\nContent-Length: 20\r\n\r\nten bytes."));
  auto response = stalled.read_response();
  ASSERT_TRUE(response) << stalled.last_error();
  EXPECT_EQ(response->status, 408);
  EXPECT_EQ(json::parse(response->body)["detail"],
            "The request body stalled: nothing arrived within body_timeout.");
  EXPECT_TRUE(stalled.is_closed_by_peer(2s));
  EXPECT_EQ(backend_log().size(), 0u);

  HttpClient trickling(arbiter_->port());
  // Each pause well within body_timeout, their sum not.
  auto echoed = trickle(trickling, "POST /_test/echo HTTP/1.1\r\nHost: a\r\nContent-Length: 8\r\n\r\n",
                        {"ab", "cd", "ef", "gh"}, 200ms);
  ASSERT_TRUE(echoed) << trickling.last_error();
  EXPECT_EQ(echoed->status, 200);
  EXPECT_EQ(json::parse(echoed->body)["body_length"], 8);
  EXPECT_EQ(json::parse(echoed->body)["body_xxh3"], harness::xxh3_hex("abcdefgh"));
}

// response_timeout measures the upstream from the end of the request on: an upload that takes
// longer than it, while the client keeps sending, is not cut short.
TEST_F(ProxyTest, SteadyUploadLongerThanResponseTimeoutGoesThrough) {
  start({.server = "body_timeout = \"2s\"\n", .upstream = "response_timeout = \"300ms\"\n"});
  HttpClient client(arbiter_->port());
  // 600 ms in all: twice response_timeout.
  auto response = trickle(client, "PUT /_test/echo HTTP/1.1\r\nHost: a\r\nContent-Length: 16\r\n\r\n",
                          {"0123", "4567", "89ab", "cdef"}, 150ms);
  ASSERT_TRUE(response) << client.last_error();
  EXPECT_EQ(response->status, 200) << response->body;
  EXPECT_EQ(json::parse(response->body)["body_length"], 16);
}

TEST_F(ProxyTest, GarbageGets400AndTheProxyStaysUp) {
  start();
  {
    HttpClient client(arbiter_->port());
    ASSERT_TRUE(client.send_raw(std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n", 22)));
    auto response = client.read_response();
    ASSERT_TRUE(response) << client.last_error();
    EXPECT_EQ(response->status, 400);
    EXPECT_TRUE(client.is_closed_by_peer(2s));
  }
  EXPECT_EQ(send("GET", "/items/1").status, 200);
}

TEST_F(ProxyTest, MaxConnectionsRefusesNewOnesCleanly) {
  start({.server = "max_connections = 2\n", .workers = 1});
  HttpClient first(arbiter_->port());
  HttpClient second(arbiter_->port());
  ASSERT_TRUE(first.request("GET", "/items/1"));
  ASSERT_TRUE(second.request("GET", "/items/1"));
  HttpClient third(arbiter_->port());
  auto refused = third.read_response();
  ASSERT_TRUE(refused) << third.last_error();
  EXPECT_EQ(refused->status, 503);
  EXPECT_TRUE(refused->header("Retry-After").has_value());
  EXPECT_TRUE(third.is_closed_by_peer(2s));
  auto still = first.request("GET", "/items/1");
  ASSERT_TRUE(still) << first.last_error();
  EXPECT_EQ(still->status, 200);
}

// max_connections counts client connections only: a scraper's keep-alive connection to the
// admin listener must not make the proxy refuse clients.
TEST_F(ProxyTest, AnIdleAdminConnectionDoesNotTakeAClientSlot) {
  start({.server = "max_connections = 1\n", .workers = 1});
  HttpClient admin(*arbiter_->admin_port());
  ASSERT_EQ(harness::require(admin.request("GET", "/healthz"), admin).status, 200);  // stays open
  HttpClient client(arbiter_->port());
  auto response = client.request("GET", "/items/1");
  ASSERT_TRUE(response) << client.last_error();
  EXPECT_EQ(response->status, 200) << response->body;
  HttpClient second(arbiter_->port());  // the one client slot is taken now
  auto refused = second.read_response();
  ASSERT_TRUE(refused) << second.last_error();
  EXPECT_EQ(refused->status, 503);
}

TEST_F(ProxyTest, SigtermLetsTheRequestInFlightFinishThenExitsZero) {
  start();
  HttpClient client(arbiter_->port());
  ASSERT_TRUE(client.send_raw(harness::format_request("GET", "/_test/delay?ms=600", arbiter_->port())));
  std::this_thread::sleep_for(150ms);
  ASSERT_TRUE(arbiter_->process().signal(SIGTERM));
  auto response = client.read_response();
  ASSERT_TRUE(response) << client.last_error();
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(arbiter_->process().wait_exit(5s), std::optional<int>(0));
  HttpClient late(arbiter_->port());
  EXPECT_FALSE(late.connect_ok());
}

TEST_F(ProxyTest, AccessLogHasOneJsonLinePerRequest) {
  start();
  HttpResponse response = send("GET", "/items/1", {}, {{"X-Request-Id", "log-me-1"}});
  ASSERT_EQ(response.status, 200);
  auto line = arbiter_->process().wait_for_line(std::regex("\"request_id\":\"log-me-1\""), 3s);
  ASSERT_TRUE(line) << arbiter_->process().output_summary();
  EXPECT_EQ(line->stream, harness::Stream::Stdout);
  json record = json::parse(line->line);
  EXPECT_EQ(record["method"], "GET");
  EXPECT_EQ(record["path"], "/items/1");
  EXPECT_EQ(record["route"], "items");
  EXPECT_EQ(record["status"], 200);
  EXPECT_EQ(record["client"], "127.0.0.1");
  EXPECT_EQ(record["decision"], "forwarded");
  EXPECT_TRUE(record.contains("upstream_ms"));
  EXPECT_TRUE(record.contains("total_ms"));
}

TEST_F(ProxyTest, AdminListenerAnswersHealth) {
  start();
  ASSERT_TRUE(arbiter_->admin_port());
  HttpClient client(*arbiter_->admin_port());
  auto health = client.request("GET", "/healthz");
  ASSERT_TRUE(health) << client.last_error();
  EXPECT_EQ(health->status, 200);
  EXPECT_EQ(json::parse(health->body)["status"], "ok");
  auto ready = client.request("GET", "/readyz");
  ASSERT_TRUE(ready) << client.last_error();
  EXPECT_EQ(ready->status, 200);
}

}  // namespace
