// The control namespace ([server] control_prefix) and local handlers, through the real binary:
// GET {prefix}/ lists the control endpoints, the prefix is answered before routing (a catch-all
// route keeps every other path), a route inside the prefix is refused with its position, and
// held-open responses (test-only handlers of tests/support/control_server/, built into
// arbiter-test-handlers, never into arbiter) stream as they are written, end cleanly, tell the
// handler when the client goes away and bound what a slow reader can hold.

#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>

#include "tests/support/proxy_fixture.h"
#include "tests/support/websocket.h"

namespace {

using harness::ConfigOptions;
using harness::HttpClient;
using harness::HttpResponse;
using nlohmann::json;
using namespace std::chrono_literals;

constexpr std::string_view kProblemType = "application/problem+json";
// proxy/control/local_handler.h: kMaxStreamBuffered.
constexpr std::size_t kMaxStreamBuffered = 256u << 10;

const std::string kCatchAllRoute = "\n[[route]]\nname = \"everything-else\"\npath = \"/*\"\nupstream = \"legacy\"\n";

// One chunk of a chunked body as it appears on the wire.
std::string chunk(std::string_view data) {
  char size[24];
  std::snprintf(size, sizeof size, "%zx\r\n", data.size());
  return size + std::string(data) + "\r\n";
}

class ControlTest : public harness::ProxyFixture {};

TEST_F(ControlTest, IndexListsTheControlEndpointsAndTheRestOfThePrefixIsAProblem) {
  start(ConfigOptions{.routes = kCatchAllRoute});
  clear_backend_log();

  HttpResponse index = send("GET", "/_arbiter/");
  ASSERT_EQ(index.status, 200) << index.body;
  EXPECT_EQ(index.header("Content-Type").value_or(""), "application/json");
  EXPECT_EQ(index.header("Cache-Control").value_or(""), "no-store");
  json listed = json::parse(index.body);
  // The index, the locks (issue #14), the history and its restore (issue #15), the conflict feed,
  // its records and their resolution, the conflicts page and its counters (issue #16).
  ASSERT_EQ(listed["endpoints"].size(), 10u) << index.body;
  EXPECT_EQ(listed["endpoints"][0]["path"], "/_arbiter/");
  EXPECT_EQ(listed["endpoints"][0]["methods"], json::array({"GET", "HEAD"}));
  EXPECT_EQ(listed["endpoints"][1]["path"], "/_arbiter/locks");
  EXPECT_EQ(listed["endpoints"][1]["methods"], json::array({"GET", "HEAD"}));
  EXPECT_EQ(listed["endpoints"][2]["path"], "/_arbiter/history");
  EXPECT_EQ(listed["endpoints"][2]["methods"], json::array({"GET", "HEAD"}));
  EXPECT_EQ(listed["endpoints"][3]["path"], "/_arbiter/history/restore");
  EXPECT_EQ(listed["endpoints"][3]["methods"], json::array({"POST"}));
  EXPECT_EQ(listed["endpoints"][4]["path"], "/_arbiter/conflicts");
  EXPECT_EQ(listed["endpoints"][5]["path"], "/_arbiter/conflicts/*");
  EXPECT_EQ(listed["endpoints"][5]["methods"], json::array({"GET", "HEAD"}));
  EXPECT_EQ(listed["endpoints"][6]["path"], "/_arbiter/conflicts/*");
  EXPECT_EQ(listed["endpoints"][6]["methods"], json::array({"POST"}));
  EXPECT_EQ(listed["endpoints"][7]["path"], "/_arbiter/ui");
  EXPECT_EQ(listed["endpoints"][8]["path"], "/_arbiter/ui/*");
  EXPECT_EQ(listed["endpoints"][9]["path"], "/_arbiter/stats");

  HttpClient client(arbiter_->port());
  HttpResponse head = harness::require(client.request("HEAD", "/_arbiter/"), client);
  EXPECT_EQ(head.status, 200);
  EXPECT_TRUE(head.body.empty());

  for (std::string_view path : {"/_arbiter/nope", "/_arbiter", "/_arbiter/items/1?x=1", "/_arbiter/../_arbiter/x",
                                "//_arbiter//x"}) {
    HttpResponse missing = send("GET", path);
    EXPECT_EQ(missing.status, 404) << path << ": " << missing.body;
    EXPECT_EQ(missing.header("Content-Type").value_or(""), kProblemType) << path;
    EXPECT_EQ(json::parse(missing.body)["type"], "urn:arbiter:problem:not-found") << path;
    EXPECT_NE(missing.body.find("/_arbiter/"), std::string::npos) << "lists the endpoints: " << missing.body;
  }
  HttpResponse post = send("POST", "/_arbiter/", "{}");
  EXPECT_EQ(post.status, 405);
  EXPECT_EQ(post.header("Allow").value_or(""), "GET, HEAD");
  EXPECT_EQ(post.header("Content-Type").value_or(""), kProblemType);

  // Answered before routing: the catch-all route never saw any of them, and serves the rest.
  EXPECT_TRUE(backend_log().empty()) << backend_log().dump();
  EXPECT_EQ(send("GET", "/items/1").status, 200);
  EXPECT_EQ(send("GET", "/_arbiterx/1").status, 404);  // the backend's own 404: not the prefix
  EXPECT_EQ(backend_log().size(), 2u) << backend_log().dump();
}

TEST_F(ControlTest, AnotherPrefixMovesTheNamespace) {
  start(ConfigOptions{.server = "control_prefix = \"/ops/%61rbiter/\"\n", .routes = kCatchAllRoute});
  clear_backend_log();
  HttpResponse index = send("GET", "/ops/arbiter/");
  ASSERT_EQ(index.status, 200) << index.body;
  EXPECT_EQ(json::parse(index.body)["endpoints"][0]["path"], "/ops/arbiter/");
  EXPECT_EQ(send("GET", "/ops/arbiter/x").status, 404);
  EXPECT_TRUE(backend_log().empty()) << backend_log().dump();
  // /_arbiter is an ordinary path now: the catch-all forwards it.
  send("GET", "/_arbiter/");
  EXPECT_EQ(backend_log().size(), 1u) << backend_log().dump();

  HttpClient admin(*arbiter_->admin_port());
  json config = json::parse(harness::require(admin.request("GET", "/config"), admin).body);
  EXPECT_EQ(config["server"]["control_prefix"], "/ops/arbiter");
}

TEST_F(ControlTest, RouteInsideThePrefixIsRefusedAtLoadWithItsPosition) {
  std::string inside =
      "\n[[route]]\nname = \"inside\"\npath = \"/_arbiter/*\"\nupstream = \"legacy\"\n";  // path on line +4
  std::string config = harness::make_config(backend_.port(), ConfigOptions{.routes = inside});
  auto file = harness::write_temp_file(config, ".toml");
  std::size_t at = config.find("path = \"/_arbiter/*\"");
  ASSERT_NE(at, std::string::npos);
  int path_line = 1 + static_cast<int>(std::count(config.begin(), config.begin() + static_cast<long>(at), '\n'));
  for (const std::vector<std::string>& arguments :
       {std::vector<std::string>{"--check", "-c", file.path()}, std::vector<std::string>{"-c", file.path()}}) {
    auto result = harness::run_arbiter(arguments, 10s);
    EXPECT_EQ(result.exit_code, std::optional<int>(1)) << result.stderr_text;
    EXPECT_NE(result.stderr_text.find(file.path() + ":" + std::to_string(path_line) +
                                      ":8: route[3].path: route 'inside': path '/_arbiter/*' lies inside [server] "
                                      "control_prefix '/_arbiter' (the default)"),
              std::string::npos)
        << result.stderr_text;
  }

  // A reload to such a file is refused the same way, and the running configuration kept.
  start(ConfigOptions{.routes = kCatchAllRoute});
  std::string ops_route = "\n[[route]]\nname = \"ops\"\npath = \"/ops/x/{id}\"\nupstream = \"legacy\"\n";
  arbiter_->config_file().replace(harness::make_config(
      backend_.port(), ConfigOptions{.server = "control_prefix = \"/ops\"\n", .routes = ops_route}));
  HttpClient admin(*arbiter_->admin_port());
  HttpResponse refused = harness::require(admin.request("POST", "/reload"), admin);
  EXPECT_EQ(refused.status, 422);
  EXPECT_NE(refused.body.find("lies inside [server] control_prefix '/ops' (line 4)"), std::string::npos)
      << refused.body;
  EXPECT_EQ(send("GET", "/_arbiter/").status, 200);
}

TEST_F(ControlTest, ExplainSaysThePrefixIsAnsweredBeforeRouting) {
  auto file = harness::write_temp_file(harness::make_config(backend_.port(), ConfigOptions{.routes = kCatchAllRoute}),
                                       ".toml");
  auto inside = harness::run_arbiter({"explain", "-c", file.path(), "GET", "/x/../_arbiter/feed"});
  EXPECT_EQ(inside.exit_code, std::optional<int>(0)) << inside.stderr_text;
  EXPECT_NE(inside.stdout_text.find("route:     none: the path lies under [server] control_prefix /_arbiter"),
            std::string::npos)
      << inside.stdout_text;
  auto outside = harness::run_arbiter({"explain", "-c", file.path(), "GET", "/_arbiterx"});
  EXPECT_NE(outside.stdout_text.find("route:     everything-else"), std::string::npos) << outside.stdout_text;
}

TEST_F(ControlTest, AdminEndpointsAreNotUnderThePrefix) {
  start();
  HttpClient admin(*arbiter_->admin_port());
  EXPECT_EQ(harness::require(admin.request("GET", "/_arbiter/"), admin).status, 404);
  EXPECT_EQ(harness::require(admin.request("GET", "/healthz"), admin).status, 200);
}

// ---- held-open responses, with the test-only stream hub (one worker: one hub)

class StreamTest : public harness::ProxyFixture {
 protected:
  void SetUp() override {
    arbiter_ = std::make_unique<harness::ArbiterProcess>(
        harness::make_config(backend_.port(), ConfigOptions{.server = "drain_timeout = \"60s\"\n", .workers = 1}),
        std::vector<std::string>{}, 10s, harness::ChildEnvironment{}, harness::arbiter_test_handlers_binary());
  }
  // Opens a stream on a connection of its own; returns the socket past the response head.
  std::unique_ptr<harness::BlockingSocket> open_stream(std::string_view version = "HTTP/1.1") {
    auto socket = std::make_unique<harness::BlockingSocket>(harness::connect_loopback(arbiter_->port()));
    EXPECT_TRUE(socket->write_all("GET /_arbiter/test/stream " + std::string(version) + "\r\nHost: t\r\n\r\n"));
    auto head = socket->read_head(5s);
    EXPECT_TRUE(head) << "no response head";
    if (head) {
      EXPECT_EQ(head->rfind(std::string(version) + " 200 OK\r\n", 0), 0u) << *head;
      EXPECT_NE(head->find("Content-Type: text/event-stream\r\n"), std::string::npos) << *head;
      EXPECT_NE(head->find("Cache-Control: no-store\r\n"), std::string::npos) << *head;
      bool chunked = head->find("Transfer-Encoding: chunked\r\n") != std::string::npos;
      EXPECT_EQ(chunked, version == "HTTP/1.1") << *head;
    }
    return socket;
  }
  json control(std::string_view method, std::string_view target) {
    return json::parse(send(method, std::string("/_arbiter/test/") + std::string(target)).body);
  }
  // The hub's state once `done` holds for it, or the last one seen after harness::eventually's
  // deadline.
  template <typename Done>
  json state_once(Done done) {
    json state;
    harness::eventually([&] {
      state = control("GET", "state");
      return done(state);
    });
    return state;
  }
};

TEST_F(StreamTest, ChunksReachTheClientAsTheyAreWrittenAndFinishEndsTheResponse) {
  auto socket = open_stream();
  for (int i = 1; i <= 5; ++i) {
    json emitted = control("POST", "emit?data=" + std::to_string(i));
    EXPECT_EQ(emitted["streams"], 1);
    EXPECT_EQ(emitted["written"], 1);
    // Each one arrives before the next is written: nothing waits for the end of the response.
    std::string expected = chunk("data: " + std::to_string(i) + "\n\n"), got;
    ASSERT_TRUE(socket->read_exact(expected.size(), got, 5s)) << "event " << i;
    EXPECT_EQ(got, expected);
  }
  EXPECT_EQ(control("POST", "finish")["finished"], 1);
  std::string last;
  ASSERT_TRUE(socket->read_exact(5, last, 5s));
  EXPECT_EQ(last, "0\r\n\r\n");
  // The connection goes on to its next request.
  ASSERT_TRUE(socket->write_all("GET /_arbiter/ HTTP/1.1\r\nHost: t\r\n\r\n"));
  auto head = socket->read_head(5s);
  ASSERT_TRUE(head);
  EXPECT_EQ(head->rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << *head;
  json state = control("GET", "state");
  EXPECT_EQ(state["open"], 0);
  EXPECT_EQ(state["alive"], 0);
  EXPECT_EQ(state["closed_told"], 0);  // finished by the handler: not told
}

TEST_F(StreamTest, HandlerIsToldWhenTheClientGoesAwayAndLetsGoOfTheStream) {
  auto socket = open_stream();
  auto other = open_stream();
  EXPECT_EQ(control("GET", "state")["open"], 2);
  socket->close();
  json state = state_once([](const json& s) { return s["closed_told"] == 1; });
  EXPECT_EQ(state["closed_told"], 1);
  EXPECT_EQ(state["open"], 1);
  EXPECT_EQ(state["alive"], 1);  // the hub dropped the gone client's stream object
  // The other stream is unaffected.
  EXPECT_EQ(control("POST", "emit?data=still")["written"], 1);
  std::string expected = chunk("data: still\n\n"), got;
  ASSERT_TRUE(other->read_exact(expected.size(), got, 5s));
  EXPECT_EQ(got, expected);
  other->close();
  state = state_once([](const json& s) { return s["closed_told"] == 2; });
  EXPECT_EQ(state["open"], 0);
  EXPECT_EQ(state["alive"], 0);
  EXPECT_EQ(control("POST", "emit?data=nobody")["streams"], 0);
  // The gone clients' exchanges are logged as 499, as any answer the client did not wait for.
  auto line = arbiter_->process().wait_for_line(std::regex(R"("path":"/_arbiter/test/stream".*"status":499)"), 5s);
  EXPECT_TRUE(line) << arbiter_->process().output_summary();
}

TEST_F(StreamTest, ASlowReaderHoldsAtMostTheBoundAndTheHandlerHearsWhenThereIsRoom) {
  auto socket = open_stream();
  // The client reads nothing: the kernel's buffers fill, then Arbiter's, up to the bound.
  constexpr std::size_t kChunk = 64u << 10;
  json emitted = control("POST", "emit?bytes=" + std::to_string(kChunk) + "&repeat=1000");
  EXPECT_GT(emitted["full"].get<std::size_t>(), 0u) << emitted.dump();
  EXPECT_EQ(emitted["closed"], 0) << emitted.dump();
  // Every write past the bound was refused, not only the first.
  EXPECT_GT(emitted["full"].get<std::size_t>(), 1u) << emitted.dump();
  // At most the bound, and the framing of the last chunk (its size line and CRLF).
  const std::size_t framing = chunk(std::string(kChunk, 'x')).size() - kChunk;
  EXPECT_LE(emitted["max_buffered"].get<std::size_t>(), kMaxStreamBuffered + framing) << emitted.dump();
  EXPECT_EQ(control("GET", "state")["writable_told"], 0);

  // Reading it all makes room: the handler is told, once.
  std::size_t written = emitted["written"].get<std::size_t>();
  std::string expected_chunk = chunk(std::string(kChunk, 'x')), got;
  for (std::size_t i = 0; i < written; ++i) {
    ASSERT_TRUE(socket->read_exact(expected_chunk.size(), got, 10s)) << "chunk " << i << " of " << written;
    ASSERT_EQ(got, expected_chunk) << "chunk " << i;
  }
  json state = state_once([](const json& s) { return s["writable_told"] == 1; });
  EXPECT_EQ(state["writable_told"], 1);
  EXPECT_EQ(control("POST", "emit?data=again")["written"], 1);
  EXPECT_EQ(control("POST", "finish")["finished"], 1);
  std::string tail = chunk("data: again\n\n") + "0\r\n\r\n";
  ASSERT_TRUE(socket->read_exact(tail.size(), got, 5s));
  EXPECT_EQ(got, tail);
  // Told once for all the refusals, not once per refusal.
  EXPECT_EQ(control("GET", "state")["writable_told"], 1);
}

// A chunk larger than the bound is taken into an empty buffer (a stream with such chunks is not
// wedged), and is then all that waits: the next write is refused until the client reads.
TEST_F(StreamTest, OneChunkLargerThanTheBoundIsTakenIntoAnEmptyBuffer) {
  auto socket = open_stream();
  // Far more than the loopback socket's buffers take from a client that reads nothing.
  constexpr std::size_t kChunk = 16u << 20;
  json emitted = control("POST", "emit?bytes=" + std::to_string(kChunk) + "&repeat=2");
  EXPECT_EQ(emitted["written"], 1) << emitted.dump();
  EXPECT_EQ(emitted["full"], 1) << emitted.dump();
  EXPECT_GT(emitted["max_buffered"].get<std::size_t>(), kMaxStreamBuffered) << emitted.dump();
  std::string expected = chunk(std::string(kChunk, 'x')), got;
  ASSERT_TRUE(socket->read_exact(expected.size(), got, 20s));
  EXPECT_TRUE(got == expected) << "the chunk arrived changed";
  json state = state_once([](const json& s) { return s["writable_told"] == 1; });
  EXPECT_EQ(state["writable_told"], 1);
  EXPECT_EQ(control("POST", "finish")["finished"], 1);
}

TEST_F(StreamTest, AbortClosesTheConnectionWithoutTheLastChunkAndTheHandlerIsNotCalledBack) {
  auto socket = open_stream();
  EXPECT_EQ(control("POST", "emit?data=1")["written"], 1);
  EXPECT_EQ(control("POST", "abort")["aborted"], 1);
  std::string expected = chunk("data: 1\n\n"), got;
  ASSERT_TRUE(socket->read_exact(expected.size(), got, 5s));
  EXPECT_EQ(got, expected);
  EXPECT_FALSE(socket->read_exact(1, got, 5s)) << "after the abort: " << got;  // no last chunk: the end
  EXPECT_TRUE(socket->closed_by_peer(5s));
  json state = control("GET", "state");
  EXPECT_EQ(state["alive"], 0);
  EXPECT_EQ(state["closed_told"], 0);
}

TEST_F(StreamTest, AHandlerThatDoesNotAnswerGetsA500ProblemSentForIt) {
  HttpClient client(arbiter_->port());
  HttpResponse response = harness::require(client.request("GET", "/_arbiter/test/silent"), client);
  EXPECT_EQ(response.status, 500);
  EXPECT_EQ(response.header("Content-Type").value_or(""), kProblemType);
  EXPECT_EQ(json::parse(response.body)["detail"], "The control endpoint /_arbiter/test/silent gave no answer.");
  EXPECT_EQ(harness::require(client.request("GET", "/_arbiter/"), client).status, 200);  // the connection goes on
}

TEST_F(StreamTest, HeadGetsTheHeadOnlyAndNoStreamIsHeld) {
  HttpClient client(arbiter_->port());
  HttpResponse head = harness::require(client.request("HEAD", "/_arbiter/test/stream"), client);
  EXPECT_EQ(head.status, 200);
  EXPECT_TRUE(head.body.empty());
  EXPECT_EQ(harness::require(client.request("GET", "/_arbiter/"), client).status, 200);  // still usable
  json state = control("GET", "state");
  EXPECT_EQ(state["open"], 0);
  EXPECT_EQ(state["alive"], 0);
}

TEST_F(StreamTest, AnHttp10StreamEndsByClosing) {
  auto socket = open_stream("HTTP/1.0");
  EXPECT_EQ(control("POST", "emit?data=old")["written"], 1);
  std::string got;
  ASSERT_TRUE(socket->read_exact(11, got, 5s));
  EXPECT_EQ(got, "data: old\n\n");  // no chunk framing
  EXPECT_EQ(control("POST", "finish")["finished"], 1);
  EXPECT_TRUE(socket->closed_by_peer(5s));
}

TEST_F(StreamTest, AGracefulStopEndsOpenStreamsCleanlyWithoutWaitingForTheDrainTimeout) {
  auto socket = open_stream();
  ASSERT_TRUE(arbiter_->process().signal(SIGTERM));
  std::string last;
  ASSERT_TRUE(socket->read_exact(5, last, 10s));
  EXPECT_EQ(last, "0\r\n\r\n");
  EXPECT_TRUE(socket->closed_by_peer(10s));
  socket->close();  // Arbiter lingers for the client's close after shutting its side
  // drain_timeout is 60s: the stream did not hold the stop back.
  EXPECT_EQ(arbiter_->process().wait_exit(20s), std::optional<int>(0)) << arbiter_->process().output_summary();
}

}  // namespace
