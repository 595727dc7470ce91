// The legacy API on its own, through the integration harness: the backend's behaviour that
// the proxy tests take for granted, and the harness itself (processes, HTTP client).

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <csignal>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tests/support/harness.h"

namespace {

using harness::HttpClient;
using harness::HttpResponse;
using harness::chunked_encoding;
using harness::pattern_bytes;
using harness::require;
using harness::xxh3_hex;
using nlohmann::json;
using namespace std::chrono_literals;

json body_json(const HttpResponse& response) { return json::parse(response.body); }

class LegacyApiTest : public ::testing::Test {
 protected:
  HttpClient connect() {
    HttpClient client(api_.port());
    if (!client.connect_ok()) throw std::runtime_error(client.last_error());
    return client;
  }
  HttpResponse send(HttpClient& client, std::string_view method, std::string_view target, std::string_view body = {},
                    const harness::HeaderPairs& headers = {}) {
    return require(client.request(method, target, headers, body), client);
  }
  HttpResponse send(std::string_view method, std::string_view target, std::string_view body = {},
                    const harness::HeaderPairs& headers = {}) {
    HttpClient client = connect();
    return send(client, method, target, body, headers);
  }

  harness::LegacyApi api_;
};

TEST_F(LegacyApiTest, ServesTheSeededDocumentsWithoutValidators) {
  const HttpResponse item = send("GET", "/items/1");
  EXPECT_EQ(item.status, 200);
  EXPECT_EQ(item.header("Content-Type"), "application/json");
  EXPECT_EQ(body_json(item), (json{{"id", "1"}, {"name", "widget"}, {"count", 0}}));
  EXPECT_EQ(item.header("Content-Length"), std::to_string(item.body.size()));
  EXPECT_FALSE(item.header("ETag"));
  EXPECT_FALSE(item.header("Last-Modified"));

  EXPECT_EQ(body_json(send("GET", "/accounts/1")), (json{{"id", "1"}, {"balance", 100}}));
  const json index = body_json(send("GET", "/"));
  EXPECT_TRUE(index["collections"].contains("items")) << index;
  EXPECT_TRUE(index["collections"].contains("accounts")) << index;
}

TEST_F(LegacyApiTest, CreateReadReplaceListAndDeleteRoundTrip) {
  HttpClient client = connect();
  const HttpResponse created = send(client, "POST", "/items", R"({"name":"gadget","id":"ignored"})");
  EXPECT_EQ(created.status, 201);
  EXPECT_EQ(created.header("Location"), "/items/2");
  EXPECT_EQ(body_json(created), (json{{"id", "2"}, {"name", "gadget"}}));
  EXPECT_EQ(body_json(send(client, "GET", "/items/2")), body_json(created));

  const HttpResponse replaced = send(client, "PUT", "/items/2", R"({"name":"gizmo"})");
  EXPECT_EQ(replaced.status, 200);
  EXPECT_EQ(body_json(replaced), (json{{"id", "2"}, {"name", "gizmo"}}));
  const HttpResponse put_new = send(client, "PUT", "/items/10", R"({"name":"bolt"})");
  EXPECT_EQ(put_new.status, 201);
  EXPECT_EQ(put_new.header("Location"), "/items/10");

  const json listed = body_json(send(client, "GET", "/items"));
  ASSERT_TRUE(listed.is_array());
  std::vector<std::string> ids;
  for (const auto& document : listed) ids.push_back(document["id"]);
  EXPECT_EQ(ids, (std::vector<std::string>{"1", "2", "10"}));  // numeric order, not "10" < "2"

  const HttpResponse deleted = send(client, "DELETE", "/items/2");
  EXPECT_EQ(deleted.status, 204);
  EXPECT_TRUE(deleted.body.empty());
  EXPECT_FALSE(deleted.header("Content-Length"));
  EXPECT_EQ(send(client, "GET", "/items/2").status, 404);
  EXPECT_EQ(send(client, "DELETE", "/items/2").status, 404);
  // Ids are never reused, and follow the highest one ever stored.
  EXPECT_EQ(send(client, "POST", "/items", R"({"name":"nut"})").header("Location"), "/items/11");
  EXPECT_EQ(body_json(send(client, "GET", "/empty-collection")), json::array());
}

TEST_F(LegacyApiTest, PatchAppliesAJsonMergePatch) {
  const HttpResponse patched = send("PATCH", "/items/1", R"({"count":5,"name":null,"tags":["a"],"id":"9"})",
                                    {{"Content-Type", "application/merge-patch+json"}});
  EXPECT_EQ(patched.status, 200);
  const json expected = {{"id", "1"}, {"count", 5}, {"tags", {"a"}}};
  EXPECT_EQ(body_json(patched), expected);
  EXPECT_EQ(body_json(send("GET", "/items/1")), expected);
  EXPECT_EQ(send("PATCH", "/items/99", R"({"count":1})").status, 404);
}

TEST_F(LegacyApiTest, RejectsInvalidJsonBodiesButKeepsTheConnection) {
  HttpClient client = connect();
  for (const char* method : {"POST", "PUT", "PATCH"}) {
    const std::string target = std::string(method) == "POST" ? "/items" : "/items/1";
    const HttpResponse response = send(client, method, target, "{not json");
    EXPECT_EQ(response.status, 400) << method;
    EXPECT_TRUE(body_json(response).contains("error")) << method;
    EXPECT_TRUE(response.keep_alive) << method;
  }
  EXPECT_EQ(body_json(send(client, "GET", "/items/1"))["name"], "widget");
}

TEST_F(LegacyApiTest, UnknownPathsAre404AndUnsupportedMethods405) {
  EXPECT_EQ(send("GET", "/items/1/extra").status, 404);
  EXPECT_EQ(send("GET", "/nothing/1").status, 404);
  EXPECT_EQ(send("GET", "//1").status, 404);
  EXPECT_EQ(send("GET", "/_test/no-such-hook").status, 404);
  const HttpResponse not_allowed = send("DELETE", "/items");
  EXPECT_EQ(not_allowed.status, 405);
  EXPECT_EQ(not_allowed.header("Allow"), "GET, HEAD, POST");
}

TEST_F(LegacyApiTest, KeepsTheConnectionAliveUntilTheClientAsksToClose) {
  HttpClient client = connect();
  for (int i = 0; i < 5; ++i) {
    const HttpResponse response = send(client, "GET", "/items/1");
    EXPECT_EQ(response.status, 200);
    EXPECT_TRUE(response.keep_alive);
    EXPECT_FALSE(response.header("Connection"));
  }
  const HttpResponse last = send(client, "GET", "/items/1", {}, {{"Connection", "close"}});
  EXPECT_EQ(last.status, 200);
  EXPECT_EQ(last.header("Connection"), "close");
  EXPECT_FALSE(last.keep_alive);
  EXPECT_TRUE(client.is_closed_by_peer());
}

TEST_F(LegacyApiTest, AnswersPipelinedRequestsInOrderEvenWhenTheFirstIsSlow) {
  HttpClient client = connect();
  const std::uint16_t port = api_.port();
  ASSERT_TRUE(client.send_raw(harness::format_request("GET", "/_test/delay?ms=200", port) +
                              harness::format_request("GET", "/items/1", port) +
                              harness::format_request("POST", "/_test/echo", port, {}, "hello")))
      << client.last_error();
  EXPECT_EQ(body_json(require(client.read_response(), client)), (json{{"delayed_ms", 200}}));
  EXPECT_EQ(body_json(require(client.read_response(), client))["name"], "widget");
  const json echo = body_json(require(client.read_response(), client));
  EXPECT_EQ(echo["target"], "/_test/echo");
  EXPECT_EQ(echo["body_length"], 5);
}

TEST_F(LegacyApiTest, AcceptsChunkedRequestBodies) {
  HttpClient client = connect();
  const std::vector<std::string> chunks = {"hello ", std::string(20000, 'x'), "!"};
  const std::string body = chunks[0] + chunks[1] + chunks[2];
  const std::string head = "POST /_test/echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n";
  ASSERT_TRUE(client.send_raw(head + chunked_encoding(chunks)));
  const json echo = body_json(require(client.read_response(), client));
  EXPECT_EQ(echo["body_length"], body.size());
  EXPECT_EQ(echo["body_xxh3"], xxh3_hex(body));

  const std::string document_head = "POST /items HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n";
  ASSERT_TRUE(client.send_raw(document_head + chunked_encoding({R"({"name":)", R"("chunky"})"})));
  const HttpResponse created = require(client.read_response(), client);
  EXPECT_EQ(created.status, 201);
  EXPECT_EQ(body_json(created)["name"], "chunky");
}

TEST_F(LegacyApiTest, TakesAnEightMebibyteUpload) {
  const std::string body = pattern_bytes(8u << 20);
  HttpClient client(api_.port(), 20s);
  const json echo = body_json(require(client.request("PUT", "/_test/echo", {}, body), client));
  EXPECT_EQ(echo["body_length"], body.size());
  EXPECT_EQ(echo["body_xxh3"], xxh3_hex(body));
}

TEST_F(LegacyApiTest, RefusesBodiesOverSixtyFourMebibytesWith413AndCloses) {
  HttpClient client = connect();
  ASSERT_TRUE(client.send_raw("POST /_test/echo HTTP/1.1\r\nHost: test\r\nContent-Length: 67108865\r\n\r\n"));
  const HttpResponse response = require(client.read_response(), client);
  EXPECT_EQ(response.status, 413);
  EXPECT_EQ(response.header("Connection"), "close");
  EXPECT_TRUE(client.is_closed_by_peer());
}

TEST_F(LegacyApiTest, HeadSendsTheHeadersOfGetWithoutTheBody) {
  HttpClient client = connect();
  const HttpResponse get = send(client, "GET", "/items/1");
  // A body sent after the HEAD answer would be read as the start of the next response.
  const HttpResponse head = send(client, "HEAD", "/items/1");
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.header("Content-Length"), get.header("Content-Length"));
  EXPECT_TRUE(head.body.empty());
  EXPECT_EQ(send(client, "GET", "/items/1").body, get.body);

  const HttpResponse chunked_head = send(client, "HEAD", "/_test/bytes?n=50000&chunked=1");
  EXPECT_EQ(chunked_head.header("Transfer-Encoding"), "chunked");
  EXPECT_TRUE(chunked_head.body.empty());
  EXPECT_EQ(send(client, "GET", "/items/1").body, get.body);
}

TEST_F(LegacyApiTest, ServesHttp10ClientsAndClosesUnlessAskedToKeepAlive) {
  HttpClient client = connect();
  ASSERT_TRUE(client.send_raw("GET /_test/bytes?n=30&chunked=1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
  const HttpResponse kept = require(client.read_response(), client);
  EXPECT_EQ(kept.body, pattern_bytes(30));
  // No chunked encoding for a client that cannot decode it.
  EXPECT_EQ(kept.header("Content-Length"), "30");
  EXPECT_EQ(kept.header("Connection"), "keep-alive");

  ASSERT_TRUE(client.send_raw("GET /_test/echo HTTP/1.0\r\n\r\n"));
  const HttpResponse last = require(client.read_response(), client);
  EXPECT_EQ(body_json(last)["version"], "1.0");
  EXPECT_EQ(last.header("Connection"), "close");
  EXPECT_TRUE(client.is_closed_by_peer());
}

TEST_F(LegacyApiTest, EchoReportsTheRequestAsReceived) {
  const HttpResponse response = send("POST", "/_test/echo?x=1", "some body",
                                     {{"X-Mixed-Case", "One"}, {"x-lower", "two"}, {"X-Mixed-Case", "three"}});
  const json echo = body_json(response);
  EXPECT_EQ(echo["method"], "POST");
  EXPECT_EQ(echo["target"], "/_test/echo?x=1");
  EXPECT_EQ(echo["version"], "1.1");
  EXPECT_EQ(echo["body_length"], 9);
  EXPECT_EQ(echo["body_xxh3"], xxh3_hex("some body"));
  const json expected_headers = json::array({{"Host", "127.0.0.1:" + std::to_string(api_.port())},
                                             {"X-Mixed-Case", "One"},
                                             {"x-lower", "two"},
                                             {"X-Mixed-Case", "three"},
                                             {"Content-Length", "9"}});
  EXPECT_EQ(echo["headers"], expected_headers);
}

TEST_F(LegacyApiTest, AnswersExpect100ContinueBeforeTheBody) {
  HttpClient client = connect();
  ASSERT_TRUE(client.send_raw("PUT /_test/echo HTTP/1.1\r\nHost: test\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"));
  const HttpResponse interim = require(client.read_response(), client);
  EXPECT_EQ(interim.status, 100);
  ASSERT_TRUE(client.send_raw("12345"));
  const HttpResponse final_response = require(client.read_response(), client);
  EXPECT_EQ(final_response.status, 200);
  EXPECT_EQ(body_json(final_response)["body_length"], 5);
}

TEST_F(LegacyApiTest, LogsWhatItReceivedUntilCleared) {
  HttpClient client = connect();
  send(client, "GET", "/items/1", {}, {{"X-Trace", "first"}});
  EXPECT_EQ(send(client, "DELETE", "/_test/log").status, 204);
  send(client, "GET", "/items/1", {}, {{"X-Trace", "second"}});
  send(client, "POST", "/_test/echo", "12345");

  const json log = body_json(send(client, "GET", "/_test/log"));
  ASSERT_EQ(log.size(), 2u) << log;
  EXPECT_EQ(log[0]["method"], "GET");
  EXPECT_EQ(log[0]["target"], "/items/1");
  EXPECT_EQ(log[0]["body_length"], 0);
  EXPECT_NE(std::find(log[0]["headers"].begin(), log[0]["headers"].end(), json::array({"X-Trace", "second"})),
            log[0]["headers"].end())
      << log[0];
  EXPECT_EQ(log[1]["method"], "POST");
  EXPECT_EQ(log[1]["target"], "/_test/echo");
  EXPECT_EQ(log[1]["body_length"], 5);

  EXPECT_EQ(send(client, "DELETE", "/_test/log").status, 204);
  EXPECT_EQ(body_json(send(client, "GET", "/_test/log")), json::array());
}

TEST_F(LegacyApiTest, DelayAnswersLaterWithoutHoldingUpOtherConnections) {
  HttpClient slow = connect();
  const auto started = std::chrono::steady_clock::now();
  ASSERT_TRUE(slow.send_raw(harness::format_request("GET", "/_test/delay?ms=3000", api_.port())));

  // Answered before the delay ran out, so not behind it; bounded by the delay itself rather
  // than by a guess at how fast a round trip is on this machine.
  EXPECT_EQ(send("GET", "/items/1").status, 200);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 3000ms);

  const HttpResponse delayed = require(slow.read_response(), slow);
  // libuv's clock counts whole milliseconds, so the timer may end a fraction of one early.
  EXPECT_GE(std::chrono::steady_clock::now() - started, 2999ms);
  EXPECT_EQ(body_json(delayed), (json{{"delayed_ms", 3000}}));
}

TEST_F(LegacyApiTest, BytesHookSendsThePatternWithContentLengthOrChunked) {
  const HttpResponse sized = send("GET", "/_test/bytes?n=100000");
  EXPECT_EQ(sized.status, 200);
  EXPECT_EQ(sized.header("Content-Length"), "100000");
  EXPECT_FALSE(sized.header("Transfer-Encoding"));
  EXPECT_EQ(sized.body, pattern_bytes(100000));

  const HttpResponse chunked = send("GET", "/_test/bytes?n=100000&chunked=1");
  EXPECT_EQ(chunked.header("Transfer-Encoding"), "chunked");
  EXPECT_FALSE(chunked.header("Content-Length"));
  EXPECT_EQ(chunked.body, sized.body);

  EXPECT_EQ(send("GET", "/_test/bytes?n=0").body, "");
  EXPECT_EQ(send("GET", "/_test/bytes?n=0&chunked=1").body, "");
  EXPECT_EQ(send("GET", "/_test/bytes?n=-1").status, 400);
}

TEST_F(LegacyApiTest, StatusHookAnswersWithTheRequestedStatus) {
  const HttpResponse unavailable = send("GET", "/_test/status?code=503");
  EXPECT_EQ(unavailable.status, 503);
  EXPECT_EQ(body_json(unavailable), (json{{"status", 503}}));
  const HttpResponse no_content = send("GET", "/_test/status?code=204");
  EXPECT_EQ(no_content.status, 204);
  EXPECT_TRUE(no_content.body.empty());
  EXPECT_EQ(send("GET", "/_test/status?code=100").status, 400);
}

TEST_F(LegacyApiTest, MalformedRequestsGet400AndAClosedConnection) {
  for (const std::string request : {"GET / HTTP/1.1\r\nBad Header Line\r\n\r\n", "NOT A REQUEST\r\n\r\n",
                                    "POST /items HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"}) {
    HttpClient client = connect();
    ASSERT_TRUE(client.send_raw(request));
    const HttpResponse response = require(client.read_response(), client);
    EXPECT_EQ(response.status, 400) << request;
    EXPECT_EQ(response.header("Connection"), "close") << request;
    EXPECT_TRUE(client.is_closed_by_peer()) << request;
  }
}

TEST_F(LegacyApiTest, ConnectionBreakingHooksEndTheConnectionAsDocumented) {
  HttpClient closed = connect();
  EXPECT_FALSE(closed.request("GET", "/_test/close"));
  EXPECT_EQ(closed.last_error(), "connection closed before a response");

  HttpClient reset = connect();
  EXPECT_FALSE(reset.request("GET", "/_test/reset"));
  EXPECT_EQ(reset.last_error(), "connection reset by peer");

  HttpClient garbage = connect();
  EXPECT_FALSE(garbage.request("GET", "/_test/garbage"));
  EXPECT_NE(garbage.last_error().find("malformed response"), std::string::npos) << garbage.last_error();

  HttpClient partial = connect();
  EXPECT_FALSE(partial.request("GET", "/_test/partial"));
  EXPECT_EQ(partial.last_error(), "connection closed in the middle of a response");
}

TEST_F(LegacyApiTest, AnnouncesOnceAndExitsCleanlyOnSigterm) {
  EXPECT_EQ(api_.process().lines_stdout(),
            std::vector<std::string>{"legacy-api listening on 127.0.0.1:" + std::to_string(api_.port())});
  ASSERT_TRUE(api_.process().signal(SIGTERM));
  EXPECT_EQ(api_.process().wait_exit(5s), 0);
  EXPECT_FALSE(HttpClient(api_.port()).connect_ok());
}

// The harness's process handling, shown on the legacy-api binary's command line.

TEST(LegacyApiCommandLine, ExitsZeroOnSigint) {
  harness::LegacyApi api;
  ASSERT_TRUE(api.process().signal(SIGINT));
  EXPECT_EQ(api.process().wait_exit(5s), 0);
}

TEST(LegacyApiCommandLine, RejectsUnknownArgumentsWithStatus2) {
  const harness::RunResult result = harness::run_process(harness::legacy_api_binary(), {"--bogus"});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.stderr_text.find("unexpected argument: --bogus"), std::string::npos) << result.stderr_text;
  EXPECT_EQ(result.stdout_text, "");
}

TEST(LegacyApiCommandLine, FailsWhenThePortIsTaken) {
  harness::LegacyApi first;
  harness::ChildProcess second(harness::legacy_api_binary(),
                               {"--listen", "127.0.0.1:" + std::to_string(first.port())});
  const auto line = second.wait_for_line(std::regex("cannot listen on 127\\.0\\.0\\.1:(\\d+)"), 5s);
  ASSERT_TRUE(line) << second.output_summary();
  EXPECT_EQ(line->stream, harness::Stream::Stderr);
  EXPECT_EQ(line->groups.at(1), std::to_string(first.port()));
  EXPECT_EQ(second.wait_exit(5s), 1);
}

TEST(LegacyApiHarness, ReportsADeathBySignalAndTimesOutWaits) {
  harness::LegacyApi api;
  EXPECT_FALSE(api.process().wait_exit(100ms));
  const auto position = api.process().position();
  EXPECT_FALSE(api.process().wait_for_line(std::regex("listening"), 100ms, position));
  ASSERT_TRUE(api.process().signal(SIGKILL));
  EXPECT_EQ(api.process().wait_exit(5s), 128 + SIGKILL);
  EXPECT_FALSE(api.process().running());
}

TEST(LegacyApiHarness, RunProcessKillsWhatOutlivesItsTimeout) {
  const auto started = std::chrono::steady_clock::now();
  const harness::RunResult result = harness::run_process("/bin/sleep", {"30"}, 200ms);
  EXPECT_FALSE(result.exit_code);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
  EXPECT_THROW(harness::ChildProcess("/nonexistent/program", {}), std::runtime_error);
}

TEST(LegacyApiHarness, TempFileIsReplacedWholeAndRemoved) {
  std::string path;
  {
    harness::TempFile file = harness::write_temp_file("first", ".toml");
    path = file.path();
    EXPECT_TRUE(path.starts_with("/tmp/") && path.ends_with(".toml")) << path;
    file.replace("second");
    std::ifstream in(path);
    std::stringstream contents;
    contents << in.rdbuf();
    EXPECT_EQ(contents.str(), "second");
  }
  struct stat info {};
  EXPECT_NE(::stat(path.c_str(), &info), 0);
}

}  // namespace
