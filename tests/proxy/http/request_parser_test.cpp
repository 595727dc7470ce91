#include "proxy/http/request_parser.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <string_view>

namespace arbiter {
namespace {

// Feeds bytes to a RequestParser as ClientConnection does, resuming at every pause.
class ParsedRequest final : public RequestEvents {
 public:
  explicit ParsedRequest(std::string_view bytes) {
    parser_.set_limits({65536, 1 << 20});
    parser_.feed(bytes.data(), bytes.size());
    for (int i = 0; i < 8 && parser_.paused() && !parser_.message_complete(); ++i) parser_.resume();
  }

  void on_request_begin() override {}
  bool on_request_body(std::string_view piece) override {
    body_.append(piece);
    return true;
  }
  void on_request_complete() override {}
  void on_parse_paused() override {}
  void on_parse_error(llhttp_errno_t error) override { error_ = error; }
  bool takes_input() const override { return !error_.has_value(); }

  RequestParser& parser() { return parser_; }
  RequestHead& head() { return parser_.head(); }
  std::optional<int> refused_status() const {
    return error_ ? std::optional<int>(parser_.problem(*error_).status) : std::nullopt;
  }
  std::optional<Problem> problem() const { return error_ ? std::optional(parser_.problem(*error_)) : std::nullopt; }
  const std::string& body() const { return body_; }

 private:
  RequestParser parser_{*this};
  std::optional<llhttp_errno_t> error_;
  std::string body_;
};

TEST(RequestVersion, HigherMinorVersionIsServedAsHttp11) {
  ParsedRequest request("GET /a HTTP/1.2\r\nHost: a\r\n\r\n");
  EXPECT_FALSE(request.refused_status().has_value());
  ASSERT_TRUE(request.parser().message_complete());
  EXPECT_FALSE(request.head().http10);
  EXPECT_TRUE(request.head().keep_alive);
  ParsedRequest nine("GET /a HTTP/1.9\r\nHost: a\r\n\r\n");
  EXPECT_TRUE(nine.parser().message_complete());
}

TEST(RequestVersion, Http10And11AreAsBefore) {
  ParsedRequest old("GET /a HTTP/1.0\r\n\r\n");
  ASSERT_TRUE(old.parser().message_complete());
  EXPECT_TRUE(old.head().http10);
  EXPECT_FALSE(old.head().keep_alive);
  ParsedRequest current("GET /a HTTP/1.1\r\nHost: a\r\n\r\n");
  ASSERT_TRUE(current.parser().message_complete());
  EXPECT_FALSE(current.head().http10);
}

TEST(RequestVersion, AnotherMajorVersionIs505) {
  for (std::string_view line : {"GET /a HTTP/2.0\r\n", "GET /a HTTP/3.0\r\n", "PRI * HTTP/2.0\r\n"}) {
    ParsedRequest request(std::string(line) + "Host: a\r\n\r\n");
    ASSERT_TRUE(request.problem().has_value()) << line;
    EXPECT_EQ(request.problem()->status, 505) << line;
    EXPECT_EQ(request.problem()->type, "urn:arbiter:problem:http-version-not-supported");
  }
}

TEST(RequestVersion, Http0xIs400) {
  ParsedRequest request("GET /a HTTP/0.9\r\n\r\n");
  EXPECT_EQ(request.refused_status(), 400);
}

TEST(RequestTrailers, TrailerFieldsOfAChunkedBodyAreKeptApartFromTheHead) {
  ParsedRequest request(
      "POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3\r\nabc\r\n0\r\nX-Checksum: 900150983cd24fb0\r\nX-Other: 1\r\n\r\n");
  ASSERT_TRUE(request.parser().message_complete());
  EXPECT_EQ(request.body(), "abc");
  EXPECT_FALSE(request.head().headers.contains("x-checksum"));
  EXPECT_EQ(request.head().trailers.find("x-checksum").value_or(""), "900150983cd24fb0");
  EXPECT_EQ(request.head().trailers.size(), 2u);
  request.parser().next_request();
  EXPECT_TRUE(request.head().trailers.empty());
}

TEST(RequestTrailers, ObsFoldInATrailerIsRefused) {
  ParsedRequest request(
      "POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3\r\nabc\r\n0\r\nX-Folded: one\r\n two\r\n\r\n");
  EXPECT_EQ(request.refused_status(), 400);
}

RequestHead head_of(std::string target, HeaderList headers, bool http10 = false) {
  RequestHead head;
  head.method = "GET";
  head.target = std::move(target);
  head.headers = std::move(headers);
  head.http10 = http10;
  return head;
}

TEST(AbsoluteForm, TargetBecomesOriginFormAndItsAuthorityTheHost) {
  RequestHead head = head_of("http://api.example:8080/items/1?x=1", {{"Host", "other"}, {"Accept", "*/*"}});
  EXPECT_FALSE(check_request_head(head).has_value());
  EXPECT_EQ(head.target, "/items/1?x=1");
  EXPECT_EQ(head.headers.count("host"), 1u);
  EXPECT_EQ(head.headers.find("host").value_or(""), "api.example:8080");
  EXPECT_EQ(head.headers.find("accept").value_or(""), "*/*");
}

TEST(AbsoluteForm, EmptyPathIsTheRootAndHostMayBeAbsent) {
  RequestHead bare = head_of("http://api.example", {});
  EXPECT_FALSE(check_request_head(bare).has_value());
  EXPECT_EQ(bare.target, "/");
  EXPECT_EQ(bare.headers.find("host").value_or(""), "api.example");
  RequestHead query = head_of("HTTPS://[::1]:8443?a=b", {});
  EXPECT_FALSE(check_request_head(query).has_value());
  EXPECT_EQ(query.target, "/?a=b");
  EXPECT_EQ(query.headers.find("host").value_or(""), "[::1]:8443");
}

TEST(AbsoluteForm, OtherSchemesUserinfoAndBadAuthoritiesAre400) {
  for (std::string target : {"ftp://h/a", "h/a", "*", "http://user:pw@h/a", "http:///a", "http://:80/a",
                             "http://h^/a", "http://[::1/a", "http://[zz]/a", "http://h:8x/a"}) {
    RequestHead head = head_of(target, {{"Host", "h"}});
    std::optional<Problem> refused = check_request_head(head);
    ASSERT_TRUE(refused.has_value()) << target;
    EXPECT_EQ(refused->status, 400) << target;
  }
}

TEST(HostField, InvalidHostSyntaxIs400) {
  for (std::string host : {"a b", "a@b", "a:b", "a:80:90", "[::1", "[::1]x", "[g::1]", "a/b", "%4", "a\"b"}) {
    RequestHead head = head_of("/a", {{"Host", host}});
    std::optional<Problem> refused = check_request_head(head);
    ASSERT_TRUE(refused.has_value()) << host;
    EXPECT_EQ(refused->status, 400) << host;
  }
}

TEST(HostField, ValidHostsPass) {
  for (std::string host : {"example.com", "example.com:8080", "127.0.0.1:80", "[::1]:8080", "[2001:db8::1]",
                           "xn--bcher-kva.example", "%41pi.example", "a-b_c~d", "", "example.com:",
                           "[v1.fe80::a+en1]"}) {
    RequestHead head = head_of("/a", {{"Host", host}});
    EXPECT_FALSE(check_request_head(head).has_value()) << host;
  }
}

TEST(HostField, SeveralHostsOrNoneOnHttp11Are400) {
  RequestHead two = head_of("/a", {{"Host", "a"}, {"Host", "a"}});
  EXPECT_EQ(check_request_head(two).value_or(Problem{}).status, 400);
  RequestHead two_absolute = head_of("http://a/", {{"Host", "a"}, {"Host", "b"}});
  EXPECT_EQ(check_request_head(two_absolute).value_or(Problem{}).status, 400);
  RequestHead none = head_of("/a", {});
  EXPECT_EQ(check_request_head(none).value_or(Problem{}).status, 400);
  RequestHead none_http10 = head_of("/a", {}, /*http10=*/true);
  EXPECT_FALSE(check_request_head(none_http10).has_value());
}

}  // namespace
}  // namespace arbiter
