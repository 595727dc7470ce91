// Protocol completeness through the real arbiter binary in front of the real legacy API:
// request-target forms and Host (RFC 9112 section 3.2), HTTP versions (RFC 9110 section 2.5),
// trailer fields (RFC 9110 section 6.5), Forwarded and X-Real-IP (RFC 7239), and how a failed
// connect to the upstream is reported.

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/support/proxy_fixture.h"

namespace {

using harness::HttpClient;
using harness::HttpResponse;
using nlohmann::json;
using namespace std::chrono_literals;

// The values of every field named `name` (case-insensitive) in a /_test/echo answer.
std::vector<std::string> echoed(const json& echo, std::string_view name) {
  std::vector<std::string> values;
  for (const auto& field : echo["headers"]) {
    std::string field_name = field[0];
    if (field_name.size() != name.size()) continue;
    bool same = true;
    for (std::size_t i = 0; i < name.size(); ++i) same = same && std::tolower(field_name[i]) == std::tolower(name[i]);
    if (same) values.push_back(field[1]);
  }
  return values;
}

class ProtocolTest : public harness::ProxyFixture {
 protected:
  // One raw request on a new connection; its answer.
  HttpResponse raw(std::string_view bytes, bool* closed_after = nullptr) {
    HttpClient client(arbiter_->port());
    EXPECT_TRUE(client.send_raw(bytes)) << client.last_error();
    HttpResponse response = harness::require(client.read_response(), client);
    if (closed_after != nullptr) *closed_after = client.is_closed_by_peer(3s);
    return response;
  }

  // 400 problem+json, then the connection closed, and nothing reached the backend.
  void expect_refused(std::string_view bytes, int status = 400) {
    SCOPED_TRACE(std::string(bytes));
    clear_backend_log();
    bool closed = false;
    HttpResponse response = raw(bytes, &closed);
    EXPECT_EQ(response.status, status) << response.body;
    EXPECT_EQ(response.header("Content-Type").value_or(""), "application/problem+json");
    EXPECT_TRUE(closed) << "the connection stayed open";
    EXPECT_EQ(backend_log().size(), 0u) << "the backend received: " << backend_log().dump();
  }
};

// RFC 9112 section 3.2.2: a server MUST accept absolute-form; the target's authority replaces
// Host, and the request is routed and forwarded on its path.
TEST_F(ProtocolTest, AbsoluteFormIsRoutedOnItsPathWithItsAuthorityAsHost) {
  start();
  HttpResponse echo_response =
      raw("GET http://api.example:8080/_test/echo?x=1 HTTP/1.1\r\nHost: ignored.example\r\n\r\n");
  ASSERT_EQ(echo_response.status, 200) << echo_response.body;
  json echo = json::parse(echo_response.body);
  EXPECT_EQ(echo["target"], "/_test/echo?x=1");
  EXPECT_EQ(echoed(echo, "host"), std::vector<std::string>{"api.example:8080"});
  EXPECT_EQ(echoed(echo, "x-forwarded-host"), std::vector<std::string>{"api.example:8080"});

  // Routed like its path: route 'items' answers with the document.
  HttpResponse item = raw("GET HTTP://api.example/items/1 HTTP/1.1\r\n\r\n");
  EXPECT_EQ(item.status, 200) << item.body;
  EXPECT_EQ(item.body, send("GET", "/items/1").body);
  HttpResponse missing = raw("GET http://api.example/no/such/route HTTP/1.1\r\n\r\n");
  EXPECT_EQ(missing.status, 404);
  EXPECT_NE(json::parse(missing.body)["detail"].get<std::string>().find("/no/such/route"), std::string::npos);

  // Not http(s), or with userinfo: refused, nothing forwarded.
  expect_refused("GET http://user@api.example/_test/echo HTTP/1.1\r\nHost: a\r\n\r\n");
  expect_refused("GET http:///_test/echo HTTP/1.1\r\nHost: a\r\n\r\n");
}

// RFC 9112 section 3.2: a Host with an invalid value, several Host fields, or none on HTTP/1.1
// are 400.
TEST_F(ProtocolTest, InvalidDuplicateOrMissingHostIs400) {
  start();
  expect_refused("GET /_test/echo HTTP/1.1\r\nHost: a b\r\n\r\n");
  expect_refused("GET /_test/echo HTTP/1.1\r\nHost: user@a\r\n\r\n");
  expect_refused("GET /_test/echo HTTP/1.1\r\nHost: a:http\r\n\r\n");
  expect_refused("GET /_test/echo HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n");
  expect_refused("GET /_test/echo HTTP/1.1\r\n\r\n");
  HttpResponse bracketed = raw("GET /_test/echo HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n");
  EXPECT_EQ(bracketed.status, 200) << bracketed.body;
}

// RFC 9110 section 2.5: a higher minor version is served as the highest supported one.
TEST_F(ProtocolTest, Http12IsServedAsHttp11WithKeepAlive) {
  start();
  HttpClient client(arbiter_->port());
  ASSERT_TRUE(client.send_raw("GET /_test/echo HTTP/1.2\r\nHost: a\r\n\r\n"));
  HttpResponse first = harness::require(client.read_response(), client);
  ASSERT_EQ(first.status, 200) << first.body;
  EXPECT_EQ(first.http_major, 1);
  EXPECT_EQ(first.http_minor, 1);
  EXPECT_TRUE(first.keep_alive);
  EXPECT_EQ(json::parse(first.body)["version"], "1.1");  // what the backend was sent
  // The connection goes on, as for HTTP/1.1.
  HttpResponse second = harness::require(client.request("GET", "/items/1"), client);
  EXPECT_EQ(second.status, 200);
}

// An HTTP/1 request line naming HTTP/2 or later: 505 problem+json (RFC 9110 section 15.6.6).
TEST_F(ProtocolTest, Http2RequestLineIs505) {
  start();
  expect_refused("GET /_test/echo HTTP/2.0\r\nHost: a\r\n\r\n", 505);
  clear_backend_log();
  HttpResponse response = raw("GET /_test/echo HTTP/3.0\r\nHost: a\r\n\r\n");
  EXPECT_EQ(response.status, 505);
  EXPECT_EQ(json::parse(response.body)["type"], "urn:arbiter:problem:http-version-not-supported");
  EXPECT_EQ(response.http_minor, 1);
}

// RFC 9110 section 6.5: trailer fields of a chunked response reach a client that sent
// `TE: trailers` (as HAProxy relays them), and only such a client.
TEST_F(ProtocolTest, ResponseTrailersReachAClientThatAcceptsThem) {
  start();
  // /_test/raw answers with the request's body: a chunked response with trailer fields.
  const std::string answer =
      "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n"
      "5\r\nhello\r\n6\r\n world\r\n0\r\nX-Checksum: 5eb63bbbe01eeed0\r\nContent-Length: 999\r\n"
      "X-Forwarded-For: 6.6.6.6\r\n\r\n";
  HttpClient client(arbiter_->port());
  HttpResponse with = harness::require(
      client.request("POST", "/_test/raw?then=serve", {{"TE", "trailers"}}, answer), client);
  ASSERT_EQ(with.status, 200) << with.body;
  EXPECT_EQ(with.body, "hello world");
  EXPECT_EQ(with.header("Transfer-Encoding").value_or(""), "chunked");
  EXPECT_EQ(with.header("X-Checksum").value_or(""), "5eb63bbbe01eeed0");
  // Framing and forwarding fields never cross as trailers.
  EXPECT_FALSE(with.header("Content-Length").has_value());
  EXPECT_FALSE(with.header("X-Forwarded-For").has_value());
  // The same connection goes on.
  EXPECT_EQ(harness::require(client.request("GET", "/items/1"), client).status, 200);

  HttpResponse without = send("POST", "/_test/raw?then=serve", answer);
  ASSERT_EQ(without.status, 200) << without.body;
  EXPECT_EQ(without.body, "hello world");
  EXPECT_FALSE(without.header("X-Checksum").has_value());
}

// Trailer fields of a chunked request body are forwarded in the re-chunked body to the upstream
// (every HTTP/1.1 recipient can parse them), except fields Arbiter owns.
TEST_F(ProtocolTest, RequestTrailersAreForwardedToTheUpstream) {
  start();
  HttpClient client(arbiter_->port());
  ASSERT_TRUE(client.send_raw(
      "POST /_test/echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n0\r\nX-Checksum: 2cf24dba\r\nX-Forwarded-For: 6.6.6.6\r\nHost: evil\r\n\r\n"));
  HttpResponse response = harness::require(client.read_response(), client);
  ASSERT_EQ(response.status, 200) << response.body;
  json echo = json::parse(response.body);
  EXPECT_EQ(echo["body_length"], 5);
  EXPECT_EQ(echoed(echo, "x-checksum"), std::vector<std::string>{"2cf24dba"});
  EXPECT_EQ(echoed(echo, "x-forwarded-for"), std::vector<std::string>{"127.0.0.1"});
  EXPECT_EQ(echoed(echo, "host"), std::vector<std::string>{"a"});
}

// RFC 7239: from an untrusted peer, Forwarded and X-Real-IP are replaced with what Arbiter saw.
TEST_F(ProtocolTest, ForwardedAndXRealIpFromAnUntrustedPeerAreReplaced) {
  start();
  HttpResponse response = send("GET", "/_test/echo", {},
                               {{"Forwarded", "for=6.6.6.6;proto=https;host=evil.example"},
                                {"X-Real-IP", "6.6.6.6"}});
  ASSERT_EQ(response.status, 200);
  json echo = json::parse(response.body);
  std::string host = "127.0.0.1:" + std::to_string(arbiter_->port());
  EXPECT_EQ(echoed(echo, "forwarded"), std::vector<std::string>{"for=127.0.0.1;proto=http;host=\"" + host + "\""});
  EXPECT_EQ(echoed(echo, "x-real-ip"), std::vector<std::string>{"127.0.0.1"});
  EXPECT_EQ(response.body.find("6.6.6.6"), std::string::npos) << response.body;
}

// From a trusted proxy, Forwarded gets a new element and X-Real-IP is the believed client.
TEST_F(ProtocolTest, ForwardedFromATrustedProxyIsAppendedTo) {
  start({.server = "trusted_proxies = [\"127.0.0.0/8\"]\n"});
  HttpResponse response = send("GET", "/_test/echo", {},
                               {{"Host", "public.example"},
                                {"Forwarded", "for=203.0.113.9;proto=https"},
                                {"X-Forwarded-For", "203.0.113.9"},
                                {"X-Real-IP", "6.6.6.6"}});
  ASSERT_EQ(response.status, 200);
  json echo = json::parse(response.body);
  EXPECT_EQ(echoed(echo, "forwarded"),
            std::vector<std::string>{"for=203.0.113.9;proto=https, for=127.0.0.1;proto=http;host=public.example"});
  EXPECT_EQ(echoed(echo, "x-real-ip"), std::vector<std::string>{"203.0.113.9"});
}

// uv_tcp_connect refusing at once (here ENETUNREACH: the kernel does not open TCP to a
// multicast address, so no packet leaves the machine) is a connect failure naming the error,
// not a timeout.
TEST_F(ProtocolTest, SynchronousConnectFailureIs502NamingTheError) {
  start({.upstream = "connect_timeout = \"30s\"\n", .servers = "[\"224.0.0.1:9\"]"});
  HttpResponse response = send("GET", "/items/1");
  EXPECT_EQ(response.status, 502);
  json problem = json::parse(response.body);
  EXPECT_EQ(problem["type"], "urn:arbiter:problem:upstream-unavailable");
  std::string detail = problem["detail"];
  EXPECT_NE(detail.find("could not connect to the upstream"), std::string::npos) << detail;
  EXPECT_NE(detail.find(": ENETUNREACH, "), std::string::npos) << detail;
  EXPECT_EQ(detail.find("timed out"), std::string::npos) << detail;
}

}  // namespace
