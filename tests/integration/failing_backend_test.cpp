// Failing backends against the real binary (issue #8): a backend that dies, refuses, resets,
// answers garbage, a short body, an oversized head or nothing at all. The client gets 502 or
// 504 (or, once a response head is out, a closed connection), the broken upstream connection
// is never pooled again, other routes are served meanwhile, and a write behind an ETag policy
// whose outcome is unknown loses no update.
// Complements proxy_test.cpp (DeadUpstreamIs502, SlowUpstreamIs504,
// UpstreamMisbehaviourIs502AndTheProxyKeepsServing).

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <functional>
#include <nlohmann/json.hpp>
#include <regex>
#include <thread>

#include "tests/support/proxy_fixture.h"

namespace {

using harness::ConfigOptions;
using harness::HttpClient;
using harness::HttpResponse;
using nlohmann::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using harness::eventually;

// A TCP listener on a loopback port that accepts every connection and drops it at once, before
// reading anything: with a reset (SO_LINGER 0) or with a FIN.
class RefusingServer {
 public:
  explicit RefusingServer(bool reset) : reset_(reset) {
    listener_ = harness::listen_on_loopback(port_, "RefusingServer");
    thread_ = std::thread([this] { serve(); });
  }
  ~RefusingServer() {
    stop_ = true;
    thread_.join();
    ::close(listener_);
  }
  RefusingServer(const RefusingServer&) = delete;
  RefusingServer& operator=(const RefusingServer&) = delete;

  std::uint16_t port() const { return port_; }
  int accepted() const { return accepted_.load(); }

 private:
  void serve() {
    while (!stop_.load()) {
      pollfd ready{listener_, POLLIN, 0};
      if (::poll(&ready, 1, 20) <= 0) continue;
      int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      ++accepted_;
      if (reset_) {
        linger abort{1, 0};
        ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &abort, sizeof abort);
      }
      ::close(fd);
    }
  }

  bool reset_;
  int listener_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::thread thread_;
};

// A route and an upstream of its own, sent to `port`, for /accounts/* (which the legacy API
// serves): the fixture's routes stay on the healthy upstream "legacy".
std::string accounts_upstream(const std::string& name, std::uint16_t port, std::string_view keys = {}) {
  return "\n[[route]]\nname = \"" + name + "\"\npath = \"/accounts/*\"\nupstream = \"" + name + "\"\n" +
         "\n[upstream." + name + "]\nservers = [\"127.0.0.1:" + std::to_string(port) + "\"]\n" + std::string(keys) + "\n";
}

class FailingBackendTest : public harness::ProxyFixture {
 protected:
  // One worker, so that a connection put back in the pool is the one the next request gets.
  void start_one_worker(std::string upstream_keys = "response_timeout = \"3s\"\n", std::string routes = {}) {
    start(ConfigOptions{.upstream = std::move(upstream_keys), .routes = std::move(routes), .workers = 1});
    stats_ = std::make_unique<HttpClient>(backend_.port());
  }

  // Whether the backend still has this connection open (from its side: the proxy has not
  // closed it).
  bool backend_connection_open(std::uint64_t connection) {
    auto answer = stats_->request("GET", "/_test/connections");
    if (!answer || answer->status != 200) throw std::runtime_error("GET /_test/connections failed");
    const json counts = json::parse(answer->body);
    for (const auto& id : counts["open_ids"]) {
      if (id == connection) return true;
    }
    return false;
  }

  // The backend connection that carried the last logged request with this target.
  std::uint64_t connection_of(std::string_view target) {
    std::uint64_t connection = 0;
    for (const auto& entry : backend_log()) {
      if (entry["target"] == target) connection = entry["connection"];
    }
    return connection;
  }

  // A request through the proxy that must be answered 200 within a second.
  void expect_served_promptly(std::string_view target) {
    auto began = Clock::now();
    HttpResponse response = send("GET", target);
    EXPECT_EQ(response.status, 200) << target;
    EXPECT_LT(Clock::now() - began, 1s) << target;
  }

  // After a failed exchange: the connection that carried it was closed by the proxy, and the
  // next request to the backend goes over a new connection.
  void expect_connection_dropped(std::string_view failed_target) {
    std::uint64_t failed = connection_of(failed_target);
    ASSERT_NE(failed, 0u) << failed_target << " never reached the backend";
    EXPECT_TRUE(eventually([&] { return !backend_connection_open(failed); }))
        << "the proxy kept the connection of " << failed_target << " open";
    HttpResponse next = send("GET", "/_test/echo?after=1");
    ASSERT_EQ(next.status, 200);
    EXPECT_EQ(json::parse(next.body)["target"], "/_test/echo?after=1");
    EXPECT_NE(connection_of("/_test/echo?after=1"), failed) << "the broken connection was reused";
  }

  std::unique_ptr<HttpClient> stats_;
};

// The pool is reused when nothing went wrong: what makes the "not reused" checks meaningful.
TEST_F(FailingBackendTest, HealthyExchangesReuseThePooledConnection) {
  start_one_worker();
  ASSERT_EQ(send("GET", "/_test/echo?n=1").status, 200);
  ASSERT_EQ(send("GET", "/_test/echo?n=2").status, 200);
  EXPECT_EQ(connection_of("/_test/echo?n=1"), connection_of("/_test/echo?n=2"));
}

// The backend dies while the pool holds a connection to it: 502 (the pooled connection is dead
// and a new one is refused), other routes keep being served, and once the backend is back on
// its port the route recovers by itself.
TEST_F(FailingBackendTest, BackendThatDiesIs502ThenRecoversWhenItIsBack) {
  auto second = std::make_unique<harness::LegacyApi>();
  const std::uint16_t port = second->port();
  start_one_worker("", accounts_upstream("second", port, "fail_timeout = \"300ms\"\nresponse_timeout = \"3s\"\n"));
  ASSERT_EQ(send("GET", "/accounts/1").status, 200);

  second->process().signal(SIGKILL);
  ASSERT_TRUE(second->process().wait_exit(5s));
  auto began = Clock::now();
  HttpResponse down = send("GET", "/accounts/1");
  EXPECT_EQ(down.status, 502);
  EXPECT_EQ(json::parse(down.body)["type"], "urn:arbiter:problem:upstream-unavailable");
  EXPECT_LT(Clock::now() - began, 2s);
  expect_served_promptly("/items/1");
  EXPECT_EQ(send("GET", "/accounts/1").status, 502);

  harness::ChildProcess restarted(harness::legacy_api_binary(), {"--listen", "127.0.0.1:" + std::to_string(port)});
  ASSERT_TRUE(restarted.wait_for_line(std::regex("legacy-api listening on"), 5s)) << restarted.output_summary();
  EXPECT_TRUE(eventually([&] { return send("GET", "/accounts/1").status == 200; }))
      << "the route did not recover after the backend came back";
  expect_served_promptly("/items/1");
}

// A backend that accepts and drops every connection before reading (a reset, or a FIN): 502
// at once, not a wait for response_timeout.
TEST_F(FailingBackendTest, RefusingBackendIs502AtOnceAndOtherRoutesAreServed) {
  RefusingServer resetting(true);
  RefusingServer closing(false);
  start_one_worker("", accounts_upstream("resetting", resetting.port(), "response_timeout = \"10s\"\n") +
                           "\n[[route]]\nname = \"closing\"\npath = \"/closing/*\"\nupstream = \"closing\"\n"
                           "[upstream.closing]\nservers = [\"127.0.0.1:" +
                           std::to_string(closing.port()) + "\"]\nresponse_timeout = \"10s\"\n");
  for (std::string_view target : {"/accounts/1", "/closing/1", "/accounts/2", "/closing/2"}) {
    SCOPED_TRACE(target);
    auto began = Clock::now();
    HttpResponse response = send("GET", target);
    EXPECT_EQ(response.status, 502);
    EXPECT_EQ(json::parse(response.body)["type"], "urn:arbiter:problem:upstream-unavailable");
    EXPECT_LT(Clock::now() - began, 2s);
    expect_served_promptly("/items/1");
  }
  EXPECT_GE(resetting.accepted(), 2);
  EXPECT_GE(closing.accepted(), 2);
}

// Reset before the response head is complete: 502. Reset after the head was relayed: the
// client's connection is closed with the response incomplete. Either way the proxy serves on.
TEST_F(FailingBackendTest, ResetMidResponseIs502OrACutConnection) {
  start_one_worker();
  HttpResponse half = send("GET", "/_test/half-head?then=reset");
  EXPECT_EQ(half.status, 502);
  EXPECT_EQ(json::parse(half.body)["type"], "urn:arbiter:problem:upstream-unavailable");

  HttpClient client(arbiter_->port());
  ASSERT_TRUE(client.send_raw(harness::format_request("GET", "/_test/partial?then=reset", arbiter_->port())));
  auto cut = client.read_response();
  EXPECT_FALSE(cut.has_value()) << "an incomplete body was passed off as a complete response";
  EXPECT_TRUE(client.is_closed_by_peer(2s));
  expect_served_promptly("/_test/echo");
}

// Garbage on a connection the backend keeps open: 502 at once, and the connection is dropped.
TEST_F(FailingBackendTest, GarbageAnswerIs502AndTheConnectionIsDropped) {
  start_one_worker();
  ASSERT_EQ(send("GET", "/_test/echo").status, 200);
  auto began = Clock::now();
  HttpResponse response = send("GET", "/_test/garbage?then=hang");
  EXPECT_EQ(response.status, 502);
  EXPECT_LT(Clock::now() - began, 2s);
  expect_connection_dropped("/_test/garbage?then=hang");
}

// Failed exchanges do not cost the client its connection: requests pipelined behind a 502 and
// a 504 are answered, in order, on the same connection.
TEST_F(FailingBackendTest, RequestsPipelinedBehindFailedExchangesAreStillAnswered) {
  start_one_worker("response_timeout = \"500ms\"\n");
  HttpClient client(arbiter_->port());
  std::string batch;
  for (std::string_view target : {"/_test/garbage?then=hang", "/_test/echo?n=1", "/_test/hang", "/_test/echo?n=2"}) {
    batch += harness::format_request("GET", target, arbiter_->port());
  }
  ASSERT_TRUE(client.send_raw(batch));
  for (int expected : {502, 200, 504, 200}) {
    auto response = client.read_response();
    ASSERT_TRUE(response) << "expected " << expected << ": " << client.last_error();
    EXPECT_EQ(response->status, expected);
  }
  auto last = client.request("GET", "/items/1");
  ASSERT_TRUE(last) << client.last_error();
  EXPECT_EQ(last->status, 200);
}

// A client that goes away while its request is at the backend (before the answer, or in the
// middle of a large one it does not read): the upstream connection is closed, not pooled with
// a response still coming on it.
TEST_F(FailingBackendTest, ClientThatLeavesMidExchangeLeavesNoConnectionToReuse) {
  start_one_worker();
  for (std::string target : {"/_test/delay?ms=400", "/_test/bytes?n=33554432"}) {
    SCOPED_TRACE(target);
    {
      HttpClient client(arbiter_->port());
      ASSERT_TRUE(client.send_raw(harness::format_request("GET", target, arbiter_->port())));
      ASSERT_TRUE(eventually([&] { return connection_of(target) != 0; }));
    }
    expect_connection_dropped(target);
  }
}

// A response head over the proxy's limit (256 KiB) from a backend that otherwise behaves, and
// would serve the next request on that connection: 502, and the connection is not reused. One
// well under the limit passes with every field.
TEST_F(FailingBackendTest, OversizedResponseHeadIs502AndTheConnectionIsDropped) {
  start_one_worker();
  HttpResponse fits = send("GET", "/_test/big-head?bytes=100000");
  EXPECT_EQ(fits.status, 200);
  EXPECT_EQ(fits.header_count("X-Filler-00099"), 1u);

  HttpResponse oversized = send("GET", "/_test/big-head?bytes=1000000");
  EXPECT_EQ(oversized.status, 502);
  EXPECT_EQ(json::parse(oversized.body)["type"], "urn:arbiter:problem:upstream-unavailable");
  expect_connection_dropped("/_test/big-head?bytes=1000000");
}

// Short bodies: Content-Length not met or the last chunk missing, the backend closing or
// falling silent. The client's response is never completed (no terminating chunk is made up),
// its connection is closed, and the upstream connection is not reused.
TEST_F(FailingBackendTest, ShortBodyIsNeverPassedOffAsComplete) {
  start_one_worker("response_timeout = \"500ms\"\n");
  ASSERT_EQ(send("GET", "/_test/echo").status, 200);
  for (std::string target : {"/_test/short-chunked?then=close", "/_test/short-chunked?then=hang",
                             "/_test/partial?then=hang"}) {
    SCOPED_TRACE(target);
      HttpClient client(arbiter_->port());
    ASSERT_TRUE(client.send_raw(harness::format_request("GET", target, arbiter_->port())));
    auto response = client.read_response();
    EXPECT_FALSE(response.has_value()) << "a short body was passed off as complete";
    EXPECT_TRUE(client.is_closed_by_peer(3s));
    expect_connection_dropped(target);
  }
}

// A backend that sends a second, unrequested response right behind the first: the client gets
// the first; the next request gets its own answer, never the leftover one, because the
// connection with bytes to spare is not reused.
TEST_F(FailingBackendTest, UnrequestedExtraResponseNeverReachesTheNextClient) {
  start_one_worker();
  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE(round);
    clear_backend_log();
      HttpResponse first = send("GET", "/_test/extra-response");
    ASSERT_EQ(first.status, 200);
    EXPECT_EQ(json::parse(first.body), (json{{"extra", 0}}));
    expect_connection_dropped("/_test/extra-response");
  }
}

// A backend that never answers: 504 after response_timeout, the hanging connection closed,
// and while several such requests hang, other routes are served at their usual pace. A head
// cut short and then silence is a 504 too.
TEST_F(FailingBackendTest, HangingBackendIs504WhileOtherRoutesAreServed) {
  start_one_worker("response_timeout = \"700ms\"\n");
  ASSERT_EQ(send("GET", "/_test/echo").status, 200);

  constexpr int kHanging = 6;
  std::vector<std::thread> hanging;
  std::vector<int> statuses(kHanging, 0);
  std::vector<Clock::duration> waited(kHanging);
  for (int i = 0; i < kHanging; ++i) {
    hanging.emplace_back([&, i] {
      const std::string target = i % 2 == 0 ? "/_test/hang?i=" + std::to_string(i)
                                            : "/_test/half-head?then=hang&i=" + std::to_string(i);
      auto began = Clock::now();
      HttpClient client(arbiter_->port());
      auto response = client.request("GET", target);
      waited[i] = Clock::now() - began;
      statuses[i] = response ? response->status : -1;
    });
  }
  // Meanwhile, on the same worker: requests to the healthy backend, and local answers.
  EXPECT_TRUE(eventually([&] { return backend_log().size() >= 1 + kHanging; })) << "the hanging requests never arrived";
  for (int i = 0; i < 5; ++i) {
    expect_served_promptly("/items/1");
    EXPECT_EQ(send("GET", "/nowhere").status, 404);
  }
  for (auto& thread : hanging) thread.join();
  for (int i = 0; i < kHanging; ++i) {
    EXPECT_EQ(statuses[i], 504) << "request " << i;
    EXPECT_GE(waited[i], 600ms) << "request " << i;
    EXPECT_LT(waited[i], 3s) << "request " << i;
  }
  for (const auto& entry : backend_log()) {
    if (entry["target"].get<std::string>().find("i=") == std::string::npos) continue;  // not a hanging one
    EXPECT_TRUE(eventually([&] { return !backend_connection_open(entry["connection"]); }))
        << "the upstream connection of " << entry["target"] << " was kept open";
  }
}

// ---------------------------------------------------------------------------------------
// Responses the proxy must not relay, from a backend that then keeps the connection open and
// would serve the next request on it (/_test/raw writes the request body back as the answer):
// 502 (504 for one that never ends its head), and the connection is not reused.

struct MalformedResponse {
  const char* name;
  std::string bytes;
  int status;  // what the client gets; 0: no complete response (the head may have been relayed)
};
// gtest prints a parameter by this in test listings (the name, not the object's bytes).
void PrintTo(const MalformedResponse& response, std::ostream* out) { *out << response.name; }

class MalformedResponseTest : public FailingBackendTest, public ::testing::WithParamInterface<MalformedResponse> {};

TEST_P(MalformedResponseTest, IsNotRelayedAndTheConnectionIsDropped) {
  start_one_worker("response_timeout = \"500ms\"\n");
  ASSERT_EQ(send("GET", "/_test/echo").status, 200);
  const MalformedResponse& bad = GetParam();
  HttpClient client(arbiter_->port());
  auto response = client.request("POST", "/_test/raw?then=serve", {}, bad.bytes);
  if (bad.status == 0) {
    EXPECT_TRUE(!response || response->status == 502) << "relayed as a complete " << response->status;
  } else {
    ASSERT_TRUE(response) << client.last_error();
    EXPECT_EQ(response->status, bad.status) << response->body;
  }
  expect_connection_dropped("/_test/raw?then=serve");
  expect_served_promptly("/items/1");
}

INSTANTIATE_TEST_SUITE_P(
    Responses, MalformedResponseTest,
    ::testing::Values(
        MalformedResponse{"ContentLengthAndChunked",
                          "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 502},
        MalformedResponse{"TwoContentLengths", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc", 502},
        MalformedResponse{"NegativeContentLength", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", 502},
        MalformedResponse{"SpaceBeforeTheColon", "HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok", 502},
        MalformedResponse{"FourDigitStatus", "HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n", 502},
        MalformedResponse{"NotHttp1", "HTTP/2 200\r\ncontent-length: 0\r\n\r\n", 502},
        MalformedResponse{"ObsFold", "HTTP/1.1 200 OK\r\nX-Folded: 1\r\n 2\r\nContent-Length: 0\r\n\r\n", 502},
        MalformedResponse{"NulInAField", std::string("HTTP/1.1 200 OK\r\nX-Nul: a\0b\r\nContent-Length: 0\r\n\r\n", 50), 502},
        MalformedResponse{"UnaskedSwitchingProtocols",
                          "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", 502},
        MalformedResponse{"InterimAnswerThenSilence", "HTTP/1.1 100 Continue\r\n\r\n", 504},
        MalformedResponse{"BadChunkSize", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", 0}),
    [](const ::testing::TestParamInfo<MalformedResponse>& info) { return info.param.name; });

// ---------------------------------------------------------------------------------------
// An unknown outcome behind [route.etag] with verify = "cache" (where Arbiter normally trusts
// the ETag it remembers and reads nothing): a conditional write whose answer is lost (reset or
// timeout after the request was sent) leaves the resource's ETag unknown, so the next
// conditional write with the old tag is checked against a fresh read of the resource.

class EtagUnknownOutcomeTest : public FailingBackendTest {
 protected:
  void start_with_etag() {
    start_one_worker("response_timeout = \"500ms\"\n",
                     "\n[[route]]\nname = \"accounts\"\npath = \"/accounts/{id}\"\nupstream = \"legacy\"\n"
                     "[route.etag]\nverify = \"cache\"\n");
    HttpResponse read = send("GET", "/accounts/1");
    ASSERT_EQ(read.status, 200);
    old_etag_ = read.header("ETag").value_or("");
    ASSERT_FALSE(old_etag_.empty());
  }

  // Arms the backend: the next PUT /accounts/1 gets `action`, after being applied or not.
  void arm_fault(std::string_view action, bool apply) {
    HttpClient client(backend_.port());
    auto armed = client.request("POST", "/_test/fault?path=/accounts/1&method=PUT&action=" + std::string(action) +
                                            (apply ? "&apply=1" : ""));
    ASSERT_TRUE(armed) << client.last_error();
    ASSERT_EQ(armed->status, 204);
  }

  HttpResponse put_balance(int balance, const std::string& if_match) {
    return send("PUT", "/accounts/1", json{{"balance", balance}}.dump(), {{"If-Match", if_match}});
  }

  int backend_balance() { return json::parse(send_to_backend("GET", "/accounts/1").body)["balance"]; }

  std::vector<std::string> logged_requests() {
    std::vector<std::string> requests;
    for (const auto& entry : backend_log()) requests.push_back(entry["method"].get<std::string>() + " " + entry["target"].get<std::string>());
    return requests;
  }

  long unknown_after_write_count() {
    HttpClient admin(*arbiter_->admin_port());
    auto metrics = admin.request("GET", "/metrics");
    if (!metrics) return -1;
    static const std::regex counter(
        R"re(arbiter_etag_decisions_total\{route="accounts",decision="unknown_after_write"\} (\d+))re");
    std::smatch match;
    return std::regex_search(metrics->body, match, counter) ? std::stol(match[1]) : 0;
  }

  std::string old_etag_;
};

// The write reached the backend and was applied, then the connection was reset: 502. The next
// write with the tag from before must not overwrite it: Arbiter re-reads, sees the change, 409.
TEST_F(EtagUnknownOutcomeTest, AppliedWriteWhoseAnswerIsResetMakesTheOldTagStale) {
  start_with_etag();
  arm_fault("reset", /*apply=*/true);
  EXPECT_EQ(put_balance(250, old_etag_).status, 502);
  ASSERT_EQ(backend_balance(), 250);
  EXPECT_EQ(unknown_after_write_count(), 1);

  clear_backend_log();
  HttpResponse stale = put_balance(5, old_etag_);
  EXPECT_EQ(stale.status, 409);
  EXPECT_EQ(logged_requests(), (std::vector<std::string>{"GET /accounts/1"})) << "no re-read, or the write went through";
  EXPECT_EQ(backend_balance(), 250) << "lost update";
  ASSERT_TRUE(stale.header("ETag"));

  // Known again: the next write with the current tag goes straight to the backend (the GET
  // after it is how Arbiter learns the new tag of a backend that sends none).
  clear_backend_log();
  HttpResponse fresh = put_balance(251, *stale.header("ETag"));
  EXPECT_EQ(fresh.status, 200);
  EXPECT_EQ(logged_requests(), (std::vector<std::string>{"PUT /accounts/1", "GET /accounts/1"}));
}

// The write was reset before the backend applied it: the old tag is still the current one, and
// the re-read shows it, so the retried write goes through.
TEST_F(EtagUnknownOutcomeTest, UnappliedWriteWhoseConnectionIsResetLetsTheRetryThrough) {
  start_with_etag();
  arm_fault("reset", /*apply=*/false);
  EXPECT_EQ(put_balance(250, old_etag_).status, 502);
  ASSERT_EQ(backend_balance(), 100) << "the write was applied after all (100 is the seeded balance)";

  clear_backend_log();
  HttpResponse retried = put_balance(250, old_etag_);
  EXPECT_EQ(retried.status, 200);
  // The re-read first; the GET after the PUT learns the new tag.
  EXPECT_EQ(logged_requests(), (std::vector<std::string>{"GET /accounts/1", "PUT /accounts/1", "GET /accounts/1"}));
  EXPECT_EQ(backend_balance(), 250);
}

// The write was applied and the backend then fell silent: 504 after response_timeout. The next
// write with the old tag is refused after a re-read; the applied write is not overwritten.
TEST_F(EtagUnknownOutcomeTest, AppliedWriteThatTimesOutMakesTheOldTagStale) {
  start_with_etag();
  arm_fault("hang", /*apply=*/true);
  EXPECT_EQ(put_balance(250, old_etag_).status, 504);
  ASSERT_EQ(backend_balance(), 250);

  clear_backend_log();
  HttpResponse stale = put_balance(5, old_etag_);
  EXPECT_EQ(stale.status, 409);
  EXPECT_EQ(logged_requests(), (std::vector<std::string>{"GET /accounts/1"}));
  EXPECT_EQ(backend_balance(), 250) << "lost update";
}

// A writer holding the same old tag waits for its turn behind a write that was applied and then
// hung; after that write's 504 it is checked against a re-read and refused, not let through.
TEST_F(EtagUnknownOutcomeTest, WriterQueuedBehindAnAppliedWriteThatTimesOutIsRefused) {
  start_with_etag();
  arm_fault("hang", /*apply=*/true);
  clear_backend_log();
  std::atomic<int> first_status{0};
  std::thread first([&] {
    HttpClient client(arbiter_->port());
    auto response = client.request("PUT", "/accounts/1", {{"If-Match", old_etag_}}, R"({"balance":250})");
    first_status = response ? response->status : -1;
  });
  ASSERT_TRUE(eventually([&] { return logged_requests() == std::vector<std::string>{"PUT /accounts/1"}; }))
      << "the first write never reached the backend";
  HttpResponse second = put_balance(5, old_etag_);
  first.join();
  EXPECT_EQ(first_status.load(), 504);
  EXPECT_EQ(second.status, 409);
  EXPECT_EQ(logged_requests(), (std::vector<std::string>{"PUT /accounts/1", "GET /accounts/1"}));
  EXPECT_EQ(backend_balance(), 250) << "lost update";
}

}  // namespace
