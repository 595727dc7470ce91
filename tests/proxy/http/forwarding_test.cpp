#include "proxy/http/forwarding.h"

#include <gtest/gtest.h>

#include <string>

namespace arbiter {
namespace {

Cidr cidr(std::string_view text) {
  auto parsed = parse_cidr(text);
  EXPECT_TRUE(parsed.has_value()) << text;
  return *parsed;
}

std::string upstream_head(const HeaderList& headers, bool trusted_peer = false,
                          BodyFraming framing = BodyFraming::None, std::uint64_t length = 0,
                          std::string_view peer = "10.0.0.7", std::string_view believed_client = {}) {
  std::string out;
  write_upstream_request_head(out, UpstreamRequest{"PUT", "/items/1?x=1", headers, peer, trusted_peer, "rid-1",
                                                   "127.0.0.1:8081", framing, length, {}, believed_client});
  return out;
}

TEST(RemoveHopByHop, RemovesFixedFieldsAndThoseNamedByConnection) {
  HeaderList headers{{"Connection", "keep-alive, X-Secret"}, {"Keep-Alive", "timeout=5"},
                     {"Proxy-Connection", "keep-alive"}, {"TE", "trailers"},
                     {"Trailer", "Expires"}, {"Transfer-Encoding", "chunked"},
                     {"Upgrade", "websocket"}, {"x-secret", "1"},
                     {"Content-Length", "5"}, {"Content-Type", "text/plain"}};
  remove_hop_by_hop(headers);
  ASSERT_EQ(headers.size(), 1u);
  EXPECT_EQ(headers.at(0).name, "Content-Type");
}

TEST(UpstreamHead, KeepsEndToEndFieldsAndDropsHopByHop) {
  HeaderList headers{{"Host", "api.example"}, {"Connection", "close, X-Drop"}, {"X-Drop", "1"},
                     {"Upgrade", "h2c"}, {"TE", "gzip"}, {"Accept", "application/json"}};
  std::string head = upstream_head(headers);
  EXPECT_EQ(head.rfind("PUT /items/1?x=1 HTTP/1.1\r\n", 0), 0u);
  EXPECT_NE(head.find("Host: api.example\r\n"), std::string::npos);
  EXPECT_NE(head.find("Accept: application/json\r\n"), std::string::npos);
  EXPECT_EQ(head.find("X-Drop"), std::string::npos);
  EXPECT_EQ(head.find("Upgrade"), std::string::npos);
  EXPECT_EQ(head.find("TE:"), std::string::npos);
  EXPECT_EQ(head.find("Connection"), std::string::npos);
  EXPECT_EQ(head.substr(head.size() - 4), "\r\n\r\n");
}

TEST(UpstreamHead, TunnelledUpgradeKeepsUpgradeAndSaysConnectionUpgrade) {
  HeaderList headers{{"Host", "api.example"}, {"Connection", "keep-alive, Upgrade, X-Drop"}, {"X-Drop", "1"},
                     {"Upgrade", "websocket"}, {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="},
                     {"Sec-WebSocket-Version", "13"}};
  std::string head;
  write_upstream_request_head(head, UpstreamRequest{"GET", "/chat", headers, "10.0.0.7", false, "rid-1",
                                                    "127.0.0.1:8081", BodyFraming::None, 0, {}, {}, true});
  EXPECT_NE(head.find("\r\nUpgrade: websocket\r\n"), std::string::npos) << head;
  EXPECT_NE(head.find("\r\nConnection: upgrade\r\n"), std::string::npos) << head;
  EXPECT_NE(head.find("\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"), std::string::npos) << head;
  EXPECT_NE(head.find("\r\nSec-WebSocket-Version: 13\r\n"), std::string::npos) << head;
  EXPECT_EQ(head.find("X-Drop"), std::string::npos) << head;
  EXPECT_EQ(head.find("keep-alive"), std::string::npos) << head;
}

TEST(RemoveHopByHop, KeepUpgradeLeavesOnlyTheUpgradeField) {
  HeaderList headers{{"Connection", "Upgrade"}, {"Upgrade", "websocket"}, {"Sec-WebSocket-Accept", "x"}};
  remove_hop_by_hop(headers, true);
  ASSERT_EQ(headers.size(), 2u);
  EXPECT_EQ(headers.at(0).name, "Upgrade");
  EXPECT_EQ(headers.at(1).name, "Sec-WebSocket-Accept");
}

TEST(ClientHead, SwitchingProtocolsSaysConnectionUpgrade) {
  HeaderList headers{{"Upgrade", "websocket"}};
  std::string head;
  write_client_response_head(head, ClientResponse{101, headers, BodyFraming::None, 0, true, false, "r1", true});
  EXPECT_EQ(head,
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nX-Request-Id: r1\r\n"
            "Connection: upgrade\r\n\r\n");
}

TEST(UpstreamHead, UntrustedPeerCannotForgeForwardedFields) {
  HeaderList headers{{"Host", "a"}, {"X-Forwarded-For", "1.2.3.4"}, {"X-Forwarded-Proto", "https"},
                     {"X-Forwarded-Host", "evil"}};
  std::string head = upstream_head(headers, /*trusted_peer=*/false);
  EXPECT_NE(head.find("X-Forwarded-For: 10.0.0.7\r\n"), std::string::npos);
  EXPECT_EQ(head.find("1.2.3.4"), std::string::npos);
  EXPECT_NE(head.find("X-Forwarded-Proto: http\r\n"), std::string::npos);
  EXPECT_NE(head.find("X-Forwarded-Host: a\r\n"), std::string::npos);
  EXPECT_EQ(head.find("evil"), std::string::npos);
}

TEST(UpstreamHead, TrustedPeerChainIsAppendedTo) {
  HeaderList headers{{"Host", "a"}, {"X-Forwarded-For", "1.2.3.4, 5.6.7.8"}, {"X-Forwarded-For", "9.9.9.9"},
                     {"X-Forwarded-Proto", "https"}, {"X-Forwarded-Host", "public.example"}};
  std::string head = upstream_head(headers, /*trusted_peer=*/true);
  EXPECT_NE(head.find("X-Forwarded-For: 1.2.3.4, 5.6.7.8, 9.9.9.9, 10.0.0.7\r\n"), std::string::npos);
  EXPECT_NE(head.find("X-Forwarded-Proto: https\r\n"), std::string::npos);
  EXPECT_NE(head.find("X-Forwarded-Host: public.example\r\n"), std::string::npos);
}

TEST(UpstreamHead, UntrustedPeerCannotForgeForwardedOrXRealIp) {
  HeaderList headers{{"Host", "a"}, {"Forwarded", "for=1.2.3.4;proto=https"}, {"X-Real-IP", "1.2.3.4"},
                     {"forwarded", "for=5.6.7.8"}};
  std::string head = upstream_head(headers, /*trusted_peer=*/false);
  EXPECT_NE(head.find("Forwarded: for=10.0.0.7;proto=http;host=a\r\n"), std::string::npos) << head;
  EXPECT_NE(head.find("X-Real-IP: 10.0.0.7\r\n"), std::string::npos) << head;
  EXPECT_EQ(head.find("1.2.3.4"), std::string::npos) << head;
  EXPECT_EQ(head.find("5.6.7.8"), std::string::npos) << head;
  EXPECT_EQ(head.find("https"), std::string::npos) << head;
}

TEST(UpstreamHead, TrustedPeerForwardedIsAppendedToAndXRealIpIsTheBelievedClient) {
  HeaderList headers{{"Host", "public.example:8443"}, {"Forwarded", "for=198.51.100.17;proto=https"},
                     {"Forwarded", "for=\"[2001:db8::1]\""}, {"X-Real-IP", "6.6.6.6"},
                     {"X-Forwarded-For", "198.51.100.17"}};
  std::string head = upstream_head(headers, /*trusted_peer=*/true, BodyFraming::None, 0, "10.0.0.7", "198.51.100.17");
  EXPECT_NE(head.find("Forwarded: for=198.51.100.17;proto=https, for=\"[2001:db8::1]\", "
                      "for=10.0.0.7;proto=http;host=\"public.example:8443\"\r\n"),
            std::string::npos)
      << head;
  EXPECT_NE(head.find("X-Real-IP: 198.51.100.17\r\n"), std::string::npos) << head;
  EXPECT_EQ(head.find("6.6.6.6"), std::string::npos) << head;
}

TEST(UpstreamHead, ForwardedForAnIpv6PeerIsBracketedAndQuoted) {
  HeaderList headers{{"Host", "a"}};
  std::string head = upstream_head(headers, false, BodyFraming::None, 0, "::1");
  EXPECT_NE(head.find("Forwarded: for=\"[::1]\";proto=http;host=a\r\n"), std::string::npos) << head;
  EXPECT_NE(head.find("X-Real-IP: ::1\r\n"), std::string::npos) << head;
}

std::string forwarded_element(std::string_view for_address, bool has_host, std::string_view host) {
  std::string out;
  append_forwarded_element(out, for_address, has_host, host);
  return out;
}

TEST(ForwardedElement, QuotesWhatIsNotAToken) {
  EXPECT_EQ(forwarded_element("192.0.2.60", true, "example.com"), "for=192.0.2.60;proto=http;host=example.com");
  EXPECT_EQ(forwarded_element("2001:db8:cafe::17", true, "[::1]:80"),
            "for=\"[2001:db8:cafe::17]\";proto=http;host=\"[::1]:80\"");
  EXPECT_EQ(forwarded_element("192.0.2.60", false, ""), "for=192.0.2.60;proto=http");
  EXPECT_EQ(forwarded_element("", true, ""), "for=unknown;proto=http;host=\"\"");
}

TEST(UpstreamHead, TeTrailersIsAskedOfTheUpstreamOnlyWhenTheClientTakesTrailers) {
  std::string with = upstream_head(HeaderList{{"Host", "a"}, {"TE", "deflate;q=0.5, trailers"}});
  EXPECT_NE(with.find("TE: trailers\r\n"), std::string::npos) << with;
  EXPECT_NE(with.find("Connection: TE\r\n"), std::string::npos) << with;
  EXPECT_EQ(with.find("deflate"), std::string::npos) << with;
  std::string without = upstream_head(HeaderList{{"Host", "a"}, {"TE", "gzip"}});
  EXPECT_EQ(without.find("TE:"), std::string::npos) << without;
  EXPECT_EQ(without.find("Connection"), std::string::npos) << without;
}

TEST(UpstreamHead, TrailersAndUpgradeShareOneConnectionField) {
  HeaderList headers{{"Host", "a"}, {"Connection", "Upgrade, TE"}, {"Upgrade", "websocket"}, {"TE", "trailers"}};
  std::string head;
  write_upstream_request_head(head, UpstreamRequest{"GET", "/chat", headers, "10.0.0.7", false, "rid-1",
                                                    "127.0.0.1:8081", BodyFraming::None, 0, {}, {}, true});
  EXPECT_NE(head.find("\r\nConnection: TE, upgrade\r\n"), std::string::npos) << head;
  EXPECT_EQ(head.find("Connection"), head.rfind("Connection")) << head;
  EXPECT_NE(head.find("\r\nTE: trailers\r\n"), std::string::npos) << head;
  EXPECT_NE(head.find("\r\nUpgrade: websocket\r\n"), std::string::npos) << head;
}

TEST(UpstreamHead, ForwardingFieldsNamedByConnectionAreNotBelieved) {
  HeaderList headers{{"Host", "a"}, {"Connection", "X-Forwarded-For, Forwarded"}, {"X-Forwarded-For", "1.2.3.4"},
                     {"Forwarded", "for=1.2.3.4"}, {"Via", "1.0 edge"}};
  std::string head = upstream_head(headers, /*trusted_peer=*/true);
  EXPECT_NE(head.find("X-Forwarded-For: 10.0.0.7\r\n"), std::string::npos) << head;
  EXPECT_NE(head.find("Forwarded: for=10.0.0.7;proto=http;host=a\r\n"), std::string::npos) << head;
  EXPECT_NE(head.find("Via: 1.0 edge, 1.1 arbiter\r\n"), std::string::npos) << head;
  EXPECT_EQ(head.find("1.2.3.4"), std::string::npos) << head;
}

TEST(AcceptsTrailers, ReadsTheTeList) {
  EXPECT_TRUE(accepts_trailers(HeaderList{{"TE", "trailers"}}));
  EXPECT_TRUE(accepts_trailers(HeaderList{{"te", "gzip, Trailers"}}));
  EXPECT_TRUE(accepts_trailers(HeaderList{{"TE", "gzip"}, {"TE", "trailers"}}));
  EXPECT_FALSE(accepts_trailers(HeaderList{{"TE", "gzip"}}));
  EXPECT_FALSE(accepts_trailers(HeaderList{{"X-TE", "trailers"}}));
  EXPECT_FALSE(accepts_trailers(HeaderList{}));
}

TEST(LastChunk, CarriesEndToEndTrailersOnly) {
  std::string plain;
  write_last_chunk(plain, HeaderList{});
  EXPECT_EQ(plain, "0\r\n\r\n");
  HeaderList trailers{{"X-Checksum", "abc"}, {"Content-Length", "5"}, {"Transfer-Encoding", "chunked"},
                      {"X-Forwarded-For", "6.6.6.6"}, {"Forwarded", "for=6.6.6.6"}, {"Host", "evil"},
                      {"If-Match", "\"x\""}, {"Server-Timing", "db;dur=53"}};
  std::vector<std::string> omit{"If-Match"};
  std::string out;
  write_last_chunk(out, trailers, omit);
  EXPECT_EQ(out, "0\r\nX-Checksum: abc\r\nServer-Timing: db;dur=53\r\n\r\n");
}

TEST(UpstreamHead, ViaIsAppendedAndRequestIdReplaced) {
  HeaderList headers{{"Host", "a"}, {"Via", "1.0 edge"}, {"X-Request-Id", "client-chosen"}};
  std::string head = upstream_head(headers);
  EXPECT_NE(head.find("Via: 1.0 edge, 1.1 arbiter\r\n"), std::string::npos);
  EXPECT_NE(head.find("X-Request-Id: rid-1\r\n"), std::string::npos);
  EXPECT_EQ(head.find("client-chosen"), std::string::npos);
}

TEST(UpstreamHead, HostFromUpstreamWhenClientSentNone) {
  HeaderList headers{{"Accept", "*/*"}};
  std::string head = upstream_head(headers);
  EXPECT_NE(head.find("Host: 127.0.0.1:8081\r\n"), std::string::npos);
  EXPECT_EQ(head.find("X-Forwarded-Host"), std::string::npos);
}

TEST(UpstreamHead, FramingComesFromTheParsedLengthNotTheClientsField) {
  HeaderList headers{{"Host", "a"}, {"Content-Length", "999"}, {"Expect", "100-continue"}};
  std::string with_length = upstream_head(headers, false, BodyFraming::ContentLength, 12);
  EXPECT_NE(with_length.find("Content-Length: 12\r\n"), std::string::npos);
  EXPECT_EQ(with_length.find("999"), std::string::npos);
  EXPECT_EQ(with_length.find("Expect"), std::string::npos);
  std::string chunked = upstream_head(headers, false, BodyFraming::Chunked);
  EXPECT_NE(chunked.find("Transfer-Encoding: chunked\r\n"), std::string::npos);
  EXPECT_EQ(chunked.find("Content-Length"), std::string::npos);
}

TEST(BelievedClient, PeerUnlessTrusted) {
  HeaderList headers{{"X-Forwarded-For", "1.2.3.4"}};
  std::vector<Cidr> trusted{cidr("10.0.0.0/8")};
  EXPECT_EQ(believed_client_address("192.168.1.1", headers, trusted), "192.168.1.1");
  EXPECT_EQ(believed_client_address("10.1.1.1", headers, trusted), "1.2.3.4");
  EXPECT_EQ(believed_client_address("10.1.1.1", headers, {}), "10.1.1.1");
}

TEST(BelievedClient, SkipsTrustedHopsFromTheRight) {
  HeaderList headers{{"X-Forwarded-For", "6.6.6.6, 1.2.3.4, 10.0.0.2"}};
  std::vector<Cidr> trusted{cidr("10.0.0.0/8")};
  // 6.6.6.6 was written by 1.2.3.4, whom nobody trusts: the client is 1.2.3.4.
  EXPECT_EQ(believed_client_address("10.0.0.1", headers, trusted), "1.2.3.4");
}

TEST(ClientHead, StatusLineFramingAndConnection) {
  HeaderList headers{{"Content-Type", "application/json"}};
  std::string head;
  write_client_response_head(head, ClientResponse{201, headers, BodyFraming::ContentLength, 7, true, false, "r1"});
  EXPECT_EQ(head,
            "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nX-Request-Id: r1\r\n"
            "Content-Length: 7\r\n\r\n");
  head.clear();
  write_client_response_head(head, ClientResponse{200, headers, BodyFraming::Chunked, 0, false, false, "r1"});
  EXPECT_NE(head.find("Transfer-Encoding: chunked\r\n"), std::string::npos);
  EXPECT_NE(head.find("Connection: close\r\n"), std::string::npos);
  head.clear();
  write_client_response_head(head, ClientResponse{200, headers, BodyFraming::ContentLength, 1, true, true, "r1"});
  EXPECT_EQ(head.rfind("HTTP/1.0 200 OK\r\n", 0), 0u);
  EXPECT_NE(head.find("Connection: keep-alive\r\n"), std::string::npos);
}

TEST(ClientHead, UpstreamRequestIdIsNotDuplicated) {
  HeaderList headers{{"X-Request-Id", "from-backend"}};
  std::string head;
  write_client_response_head(head, ClientResponse{200, headers, BodyFraming::None, 0, true, false, "r1"});
  EXPECT_NE(head.find("X-Request-Id: from-backend\r\n"), std::string::npos);
  EXPECT_EQ(head.find("r1"), std::string::npos);
}

TEST(StatusHasNoBody, InterimNoContentNotModified) {
  EXPECT_TRUE(status_has_no_body(100));
  EXPECT_TRUE(status_has_no_body(204));
  EXPECT_TRUE(status_has_no_body(304));
  EXPECT_FALSE(status_has_no_body(200));
  EXPECT_FALSE(status_has_no_body(404));
}

}  // namespace
}  // namespace arbiter
