// Request bodies on routes whose writes take turns (issue #12 item 5): the body of a write on
// a [route.etag] route is read whole before the write joins its resource's queue, so a slow
// uploader never holds the turn; etag.max_body_bytes bounds it (413); [server] body_deadline
// bounds the whole upload of any body (408).

#include <gtest/gtest.h>

#include <atomic>
#include <cctype>
#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "tests/support/proxy_fixture.h"

namespace {

using harness::ConfigOptions;
using harness::HttpClient;
using harness::HttpResponse;
using nlohmann::json;
using namespace std::chrono_literals;

// /accounts/{id} with [route.etag]; and PUT/POST to the backend's echo hook through an ETag
// route, to see what reaches the backend.
std::string etag_routes(std::string_view etag_keys) {
  return "\n[[route]]\nname = \"echo-writes\"\npath = \"/_test/echo\"\nmethods = [\"PUT\", \"POST\"]\n"
         "upstream = \"legacy\"\n[route.etag]\nverify = \"cache\"\n" +
         std::string(etag_keys) +
         "\n\n[[route]]\nname = \"accounts\"\npath = \"/accounts/{id}\"\nupstream = \"legacy\"\n[route.etag]\n"
         "verify = \"cache\"\n" +
         std::string(etag_keys) + "\n";
}

class RequestBodyTest : public harness::ProxyFixture {
 protected:
  void start_with(std::string_view etag_keys, std::string server = {}) {
    start(ConfigOptions{.server = std::move(server), .leading_routes = etag_routes(etag_keys)});
  }
  std::size_t backend_requests(std::string_view method, std::string_view target) {
    std::size_t n = 0;
    for (const auto& entry : backend_log()) n += entry["method"] == method && entry["target"] == target;
    return n;
  }
  // Sends the body a byte at a time, `pause` apart, until the proxy answers or closes (or 100
  // bytes went): for bodies that a deadline must cut short.
  static std::optional<HttpResponse> trickle_until_answered(HttpClient& client, std::string_view head,
                                                            std::chrono::milliseconds pause) {
    if (!client.send_raw(head)) return std::nullopt;
    for (int i = 0; i < 100; ++i) {
      if (!client.send_raw("x")) break;
      if (client.is_closed_by_peer(pause)) break;
    }
    return client.read_response();
  }
};

// The issue's reproduction: a writer trickling its body must not hold the resource's write
// turn. Three normal writers to the same resource are all answered while the slow one is still
// uploading: its last byte is sent only after they are done (so the order is proven, not
// timed), and under the old behaviour they would wait for its turn until queue_timeout (503).
TEST_F(RequestBodyTest, ASlowUploaderDoesNotHoldTheWriteTurn) {
  start_with("queue_timeout = \"2s\"");
  ASSERT_EQ(send("PUT", "/accounts/5", R"({"balance":0})").status, 201);

  const std::string slow_body = R"({"balance":12345678})";  // 20 bytes
  ASSERT_EQ(slow_body.size(), 20u);
  std::mutex mutex;
  std::condition_variable changed;
  std::size_t slow_sent = 0;
  bool others_done = false;
  std::optional<HttpResponse> slow_response;
  std::string slow_error;

  std::thread slow([&] {
    HttpClient client(arbiter_->port(), 30s);
    if (!client.send_raw("PUT /accounts/5 HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
                         "Content-Length: 20\r\n\r\n")) {
      slow_error = client.last_error();
      return;
    }
    for (std::size_t i = 0; i < slow_body.size(); ++i) {
      if (i + 1 == slow_body.size()) {
        // The last byte waits for the three others (bounded: well under body_timeout).
        std::unique_lock lock(mutex);
        changed.wait_for(lock, 20s, [&] { return others_done; });
      } else {
        std::this_thread::sleep_for(50ms);
      }
      if (!client.send_raw(slow_body.substr(i, 1))) {
        slow_error = client.last_error();
        return;
      }
      std::lock_guard lock(mutex);
      slow_sent = i + 1;
      changed.notify_all();
    }
    slow_response = client.read_response();
    if (!slow_response) slow_error = client.last_error();
  });

  {
    // The slow writer's head (and a few bytes) are in before the others begin.
    std::unique_lock lock(mutex);
    changed.wait_for(lock, 20s, [&] { return slow_sent >= 4; });
  }
  std::vector<int> statuses;
  for (int i = 1; i <= 3; ++i) {
    HttpResponse response = send("PUT", "/accounts/5", R"({"balance":)" + std::to_string(i) + "}");
    statuses.push_back(response.status);
    EXPECT_EQ(response.status, 200) << response.body;
  }
  std::size_t sent_when_others_done;
  {
    std::lock_guard lock(mutex);
    sent_when_others_done = slow_sent;
    others_done = true;
    changed.notify_all();
  }
  slow.join();
  ASSERT_TRUE(slow_response) << slow_error;
  EXPECT_EQ(slow_response->status, 200) << slow_response->body;
  EXPECT_LT(sent_when_others_done, slow_body.size()) << "the slow writer had finished before the others";
  // The slow write was the last to reach the backend.
  EXPECT_EQ(json::parse(send_to_backend("GET", "/accounts/5").body)["balance"], 12345678);
}

// A body read whole goes upstream with a Content-Length, whatever the client's framing, and is
// the same bytes.
TEST_F(RequestBodyTest, AChunkedWriteIsForwardedWithItsLength) {
  start_with("");
  HttpClient client(arbiter_->port());
  std::string body = harness::pattern_bytes(3000);
  ASSERT_TRUE(client.send_raw("PUT /_test/echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" +
                              harness::chunked_encoding({body.substr(0, 1000), body.substr(1000)})));
  auto response = client.read_response();
  ASSERT_TRUE(response) << client.last_error();
  ASSERT_EQ(response->status, 200) << response->body;
  json echoed = json::parse(response->body);
  EXPECT_EQ(echoed["body_length"], 3000);
  EXPECT_EQ(echoed["body_xxh3"], harness::xxh3_hex(body));
  bool has_length = false, has_chunked = false;
  for (const auto& header : echoed["headers"]) {
    std::string name = header[0];
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    has_length = has_length || (name == "content-length" && header[1] == "3000");
    has_chunked = has_chunked || name == "transfer-encoding";
  }
  EXPECT_TRUE(has_length) << echoed["headers"].dump();
  EXPECT_FALSE(has_chunked) << echoed["headers"].dump();
}

// Over etag.max_body_bytes: a declared length is refused at once (no 100 Continue, nothing
// read), a chunked body when it grows past it; either way 413 naming the limit, and the backend
// never sees the write. A body of exactly the limit is accepted.
TEST_F(RequestBodyTest, AWriteOverTheEtagBodyLimitIs413AndNeverForwarded) {
  start_with("max_body_bytes = 100");
  clear_backend_log();
  {
    HttpClient client(arbiter_->port());
    ASSERT_TRUE(client.send_raw("PUT /_test/echo HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
                                "Content-Length: 101\r\n\r\n"));
    auto response = client.read_response();
    ASSERT_TRUE(response) << client.last_error();
    EXPECT_EQ(response->status, 413);
    EXPECT_EQ(response->header("Content-Type").value_or(""), "application/problem+json");
    json problem = json::parse(response->body);
    EXPECT_EQ(problem["max_body_bytes"], 100);
    EXPECT_NE(problem["detail"].get<std::string>().find("[route.etag] max_body_bytes"), std::string::npos)
        << problem["detail"];
    EXPECT_TRUE(client.is_closed_by_peer(2s));
  }
  {
    HttpClient client(arbiter_->port());
    ASSERT_TRUE(client.send_raw("POST /_test/echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" +
                                harness::chunked_encoding({std::string(60, 'a'), std::string(60, 'b')})));
    auto response = client.read_response();
    ASSERT_TRUE(response) << client.last_error();
    EXPECT_EQ(response->status, 413);
    EXPECT_EQ(json::parse(response->body)["max_body_bytes"], 100);
    EXPECT_TRUE(client.is_closed_by_peer(2s));
  }
  EXPECT_EQ(backend_requests("PUT", "/_test/echo") + backend_requests("POST", "/_test/echo"), 0u);
  HttpResponse at_limit = send("PUT", "/_test/echo", std::string(100, 'c'));
  EXPECT_EQ(at_limit.status, 200) << at_limit.body;
  EXPECT_EQ(json::parse(at_limit.body)["body_length"], 100);
  // Reads on the route are not bounded by it.
  EXPECT_EQ(send("GET", "/accounts/1").status, 200);
}

// Expect: 100-continue on an ETag route: the 100 comes before the body is read, the write then
// goes through; a stale one is refused after its body, and the connection stays usable.
TEST_F(RequestBodyTest, ExpectContinueStillWorksOnAnEtagRoute) {
  start_with("");
  HttpResponse read = send("GET", "/accounts/1");
  ASSERT_EQ(read.status, 200);
  std::string etag = read.header("ETag").value_or("");
  HttpClient client(arbiter_->port());
  const std::string body = R"({"balance":42})";
  ASSERT_TRUE(client.send_raw("PUT /accounts/1 HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nIf-Match: " + etag +
                              "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n"));
  auto interim = client.read_response();
  ASSERT_TRUE(interim) << client.last_error();
  EXPECT_EQ(interim->status, 100);
  ASSERT_TRUE(client.send_raw(body));
  auto written = client.read_response();
  ASSERT_TRUE(written) << client.last_error();
  EXPECT_EQ(written->status, 200) << written->body;
  EXPECT_NE(written->header("ETag").value_or(etag), etag);

  ASSERT_TRUE(client.send_raw("PUT /accounts/1 HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nIf-Match: " + etag +
                              "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n"));
  interim = client.read_response();
  ASSERT_TRUE(interim) << client.last_error();
  EXPECT_EQ(interim->status, 100);
  ASSERT_TRUE(client.send_raw(body));
  auto stale = client.read_response();
  ASSERT_TRUE(stale) << client.last_error();
  EXPECT_EQ(stale->status, 409);
  auto after = client.request("GET", "/accounts/1");
  ASSERT_TRUE(after) << client.last_error();
  EXPECT_EQ(after->status, 200);
  EXPECT_EQ(json::parse(after->body)["balance"], 42);
}

// Pipelined writes, each with its body read first, are answered in order.
TEST_F(RequestBodyTest, PipelinedWritesAreAnsweredInOrder) {
  start_with("");
  HttpClient client(arbiter_->port());
  std::string pipeline;
  for (int i = 1; i <= 3; ++i) {
    std::string body = R"({"balance":)" + std::to_string(i) + "}";
    pipeline += "PUT /accounts/" + std::to_string(20 + i) + " HTTP/1.1\r\nHost: a\r\nContent-Length: " +
                std::to_string(body.size()) + "\r\n\r\n" + body;
  }
  pipeline += "GET /accounts/22 HTTP/1.1\r\nHost: a\r\n\r\n";
  ASSERT_TRUE(client.send_raw(pipeline));
  for (int i = 1; i <= 3; ++i) {
    auto response = client.read_response();
    ASSERT_TRUE(response) << client.last_error();
    EXPECT_EQ(response->status, 201) << i << ": " << response->body;
  }
  auto read = client.read_response();
  ASSERT_TRUE(read) << client.last_error();
  EXPECT_EQ(read->status, 200);
  EXPECT_EQ(json::parse(read->body)["balance"], 2);
}

// body_deadline bounds the whole upload, even when every pause is well within body_timeout:
// for a body read first (ETag write) and for one streamed to the backend. 408, close, and the
// backend never gets the complete request.
TEST_F(RequestBodyTest, BodyDeadlineCutsASteadyTrickleWith408) {
  start_with("", "body_deadline = \"400ms\"\nbody_timeout = \"10s\"\n");
  clear_backend_log();
  for (std::string_view target : {"/accounts/7", "/_test/anything"}) {
    HttpClient client(arbiter_->port(), 10s);
    auto response = trickle_until_answered(
        client, "PUT " + std::string(target) + " HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n", 50ms);
    ASSERT_TRUE(response) << target << ": " << client.last_error();
    EXPECT_EQ(response->status, 408) << target;
    EXPECT_EQ(response->header("Content-Type").value_or(""), "application/problem+json");
    EXPECT_EQ(json::parse(response->body)["detail"],
              "The request body did not arrive whole within body_deadline (400ms).")
        << target;
    EXPECT_TRUE(client.is_closed_by_peer(2s)) << target;
  }
  EXPECT_EQ(backend_requests("PUT", "/accounts/7") + backend_requests("PUT", "/_test/anything"), 0u);
  // A body that arrives in time is unaffected.
  EXPECT_EQ(send("PUT", "/accounts/7", R"({"balance":1})").status, 201);
}

}  // namespace
