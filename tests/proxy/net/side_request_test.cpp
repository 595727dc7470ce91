// SideRequests against real loopback upstreams: a Worker's loop and pools driven from the test
// thread, small blocking servers on threads of their own. Every wait is bounded by progress (a
// request seen, an answer delivered) or a guard timer, never by a guess at the machine's speed.

#include "proxy/net/side_request.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "proxy/net/server.h"
#include "proxy/net/worker.h"

namespace arbiter {
namespace {

using namespace std::chrono_literals;

int listen_loopback(std::uint16_t& port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 || ::listen(fd, 16) != 0) {
    throw std::runtime_error("cannot listen on loopback");
  }
  socklen_t length = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  port = ntohs(address.sin_port);
  return fd;
}

// A port nothing listens on (bound, then closed): connecting is refused.
std::uint16_t closed_port() {
  std::uint16_t port = 0;
  ::close(listen_loopback(port));
  return port;
}

// An upstream on its own thread: one request per connection, read whole (head and
// Content-Length body), then answered with what `answer` returns and closed. `answer` returning
// nullopt: the upstream hangs, holding the connection until the client closes it (counted in
// closed_by_client) or the server stops.
class LoopbackUpstream {
 public:
  using Answer = std::function<std::optional<std::string>(const std::string& request)>;

  explicit LoopbackUpstream(Answer answer) : answer_(std::move(answer)) {
    listen_fd_ = listen_loopback(port_);
    thread_ = std::thread([this] { serve(); });
  }
  ~LoopbackUpstream() {
    stop_ = true;
    thread_.join();
    ::close(listen_fd_);
  }

  std::uint16_t port() const { return port_; }
  std::vector<std::string> requests() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return requests_;
  }
  int closed_by_client() const { return closed_by_client_.load(); }

  static std::string ok(int status, std::string_view body) {
    return "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\nX-Upstream: loopback\r\nConnection: close\r\n\r\n" + std::string(body);
  }

 private:
  // Waits for `fd` to be readable, giving up when the server stops.
  bool readable(int fd) {
    while (!stop_) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 10) > 0) return true;
    }
    return false;
  }

  void serve() {
    while (readable(listen_fd_)) {
      int fd = ::accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) continue;
      std::string request;
      std::size_t wanted = std::string::npos;
      char buffer[4096];
      while (request.size() != wanted && readable(fd)) {
        ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
        if (n <= 0) break;
        request.append(buffer, static_cast<std::size_t>(n));
        std::size_t end = request.find("\r\n\r\n");
        if (end != std::string::npos && wanted == std::string::npos) {
          std::size_t length = 0;
          std::size_t at = request.find("Content-Length: ");
          if (at != std::string::npos && at < end) length = std::stoul(request.substr(at + 16));
          wanted = end + 4 + length;
        }
      }
      {
        std::lock_guard<std::mutex> lock(mutex_);
        requests_.push_back(request);
      }
      if (std::optional<std::string> answer = answer_(request)) {
        ::send(fd, answer->data(), answer->size(), MSG_NOSIGNAL);
      } else if (readable(fd) && ::recv(fd, buffer, sizeof buffer, 0) <= 0) {
        ++closed_by_client_;
      }
      ::close(fd);
    }
  }

  Answer answer_;
  int listen_fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> closed_by_client_{0};
  mutable std::mutex mutex_;
  std::vector<std::string> requests_;
  std::thread thread_;
};

struct Collector final : SideRequestsOwner {
  void on_side_responses(std::vector<SideResponse> delivered) override {
    ++calls;
    responses = std::move(delivered);
  }
  int calls = 0;
  std::vector<SideResponse> responses;
};

// Upstreams "a" and "b" on the given ports, and a Worker whose loop the test runs.
class SideRequestTest : public ::testing::Test {
 protected:
  void start(std::uint16_t port_a, std::uint16_t port_b = 0) {
    if (port_b == 0) port_b = port_a;
    std::string config = "[log]\naccess = \"off\"\n[upstream.a]\nservers = [\"127.0.0.1:" + std::to_string(port_a) +
                         "\"]\n[upstream.b]\nservers = [\"127.0.0.1:" + std::to_string(port_b) +
                         "\"]\n[[route]]\nname = \"r\"\npath = \"/*\"\nupstream = \"a\"\n";
    server_ = std::make_unique<Server>(parse_config(config, "side_request_test.toml"));
    worker_ = std::make_unique<Worker>(*server_);
    batch_ = std::make_unique<SideRequests>(worker_->loop(), collector_);
  }
  void TearDown() override {
    batch_.reset();
    worker_.reset();  // runs the loop until every handle has closed
  }

  UpstreamPool& pool(std::string_view name) { return worker_->pool(*server_->runtime(), name); }

  // Runs the loop until `done` holds; false after 20 s (a guard against a hang, not a pace).
  // A 10 ms tick wakes the loop to look at conditions another thread changes (the servers').
  bool run_until(const std::function<bool()>& done) {
    uv_timer_t guard, tick;
    uv_timer_init(worker_->loop(), &guard);
    uv_timer_init(worker_->loop(), &tick);
    bool expired = false;
    guard.data = &expired;
    uv_timer_start(&guard, [](uv_timer_t* t) { *static_cast<bool*>(t->data) = true; }, 20000, 0);
    uv_timer_start(&tick, [](uv_timer_t*) {}, 10, 10);
    while (!done() && !expired) uv_run(worker_->loop(), UV_RUN_ONCE);
    uv_close(reinterpret_cast<uv_handle_t*>(&guard), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&tick), nullptr);
    uv_run(worker_->loop(), UV_RUN_NOWAIT);
    return done();
  }

  // Runs the loop for `duration` of its own clock.
  void run_for(std::chrono::milliseconds duration) {
    uv_timer_t timer;
    uv_timer_init(worker_->loop(), &timer);
    bool done = false;
    timer.data = &done;
    uv_timer_start(&timer, [](uv_timer_t* t) { *static_cast<bool*>(t->data) = true; },
                   static_cast<std::uint64_t>(duration.count()), 0);
    run_until([&] { return done; });
    uv_close(reinterpret_cast<uv_handle_t*>(&timer), nullptr);
    uv_run(worker_->loop(), UV_RUN_NOWAIT);
  }

  void send(std::vector<SideRequestSpec> specs, std::vector<UpstreamPool*> pools) {
    batch_->start(std::move(specs), pools,
                  SideRequestOrigin{client_headers_, "192.0.2.7", false, "req-42", {}});
  }

  static SideRequestSpec get(std::string target, std::string upstream = {}) {
    SideRequestSpec spec;
    spec.target = std::move(target);
    spec.upstream = std::move(upstream);
    spec.body_limit = 1 << 20;
    return spec;
  }

  HeaderList client_headers_{{"Host", "client.example"}, {"Accept", "application/json"},
                             {"If-Match", "\"v1\""}, {"Authorization", "Bearer secret"}};
  std::unique_ptr<Server> server_;
  std::unique_ptr<Worker> worker_;
  Collector collector_;
  std::unique_ptr<SideRequests> batch_;
};

TEST_F(SideRequestTest, TwoAtOnceToTwoUpstreamsAnswerTogetherInSpecOrder) {
  // Each upstream answers only once both requests have arrived: proof that they are
  // outstanding at the same time.
  std::mutex mutex;
  std::condition_variable arrived_cv;
  int arrived = 0;
  auto both_arrived = [&] {
    std::unique_lock<std::mutex> lock(mutex);
    ++arrived;
    arrived_cv.notify_all();
    return arrived_cv.wait_for(lock, 20s, [&] { return arrived == 2; });
  };
  LoopbackUpstream a([&](const std::string&) -> std::optional<std::string> {
    return both_arrived() ? LoopbackUpstream::ok(200, "from a") : LoopbackUpstream::ok(500, "alone");
  });
  LoopbackUpstream b([&](const std::string&) -> std::optional<std::string> {
    return both_arrived() ? LoopbackUpstream::ok(201, "from b") : LoopbackUpstream::ok(500, "alone");
  });
  start(a.port(), b.port());
  send({get("/one", "a"), get("/two", "b")}, {&pool("a"), &pool("b")});
  ASSERT_TRUE(run_until([&] { return collector_.calls > 0; }));
  EXPECT_EQ(collector_.calls, 1);
  ASSERT_EQ(collector_.responses.size(), 2u);
  EXPECT_TRUE(collector_.responses[0].reached);
  EXPECT_EQ(collector_.responses[0].status, 200);
  EXPECT_EQ(collector_.responses[0].body, "from a");
  EXPECT_TRUE(collector_.responses[0].body_complete);
  EXPECT_EQ(collector_.responses[0].failure, SideFailure::None);
  EXPECT_EQ(collector_.responses[1].status, 201);
  EXPECT_EQ(collector_.responses[1].body, "from b");
  ASSERT_EQ(a.requests().size(), 1u);
  ASSERT_EQ(b.requests().size(), 1u);
  EXPECT_EQ(a.requests()[0].rfind("GET /one HTTP/1.1\r\n", 0), 0u) << a.requests()[0];
  EXPECT_EQ(b.requests()[0].rfind("GET /two HTTP/1.1\r\n", 0), 0u) << b.requests()[0];
  EXPECT_FALSE(batch_->outstanding());
}

TEST_F(SideRequestTest, PostSendsItsMethodTargetFieldsAndBodyExactly) {
  LoopbackUpstream upstream([](const std::string&) { return LoopbackUpstream::ok(202, "taken"); });
  start(upstream.port());
  SideRequestSpec post = get("/batch?dry=1");
  post.method = "POST";
  post.fields.add("Content-Type", "application/merge-patch+json");
  post.fields.add("X-Step", "one");
  post.fields.add("X-Step", "two");
  post.fields.add("Connection", "close");  // hop-by-hop: Arbiter's, not sent
  post.fields.add("Content-Length", "999");  // framing: Arbiter's, from the body
  post.body = R"({"name":"first"})";
  send({post}, {&pool("a")});
  ASSERT_TRUE(run_until([&] { return collector_.calls > 0; }));
  ASSERT_EQ(collector_.responses.size(), 1u);
  EXPECT_EQ(collector_.responses[0].status, 202);
  EXPECT_EQ(collector_.responses[0].body, "taken");

  ASSERT_EQ(upstream.requests().size(), 1u);
  const std::string seen = upstream.requests()[0];
  std::size_t end = seen.find("\r\n\r\n");
  ASSERT_NE(end, std::string::npos) << seen;
  std::string head = seen.substr(0, end + 2);
  EXPECT_EQ(seen.substr(end + 4), R"({"name":"first"})");
  EXPECT_EQ(head.rfind("POST /batch?dry=1 HTTP/1.1\r\n", 0), 0u) << head;
  EXPECT_NE(head.find("\r\nContent-Type: application/merge-patch+json\r\n"), std::string::npos) << head;
  EXPECT_NE(head.find("\r\nX-Step: one\r\nX-Step: two\r\n"), std::string::npos) << head;
  EXPECT_NE(head.find("\r\nContent-Length: 16\r\n"), std::string::npos) << head;
  EXPECT_EQ(head.find("999"), std::string::npos) << head;
  EXPECT_EQ(head.find("Connection"), std::string::npos) << head;
  EXPECT_NE(head.find("\r\nHost: 127.0.0.1:" + std::to_string(upstream.port()) + "\r\n"), std::string::npos) << head;
  EXPECT_NE(head.find("\r\nX-Request-Id: req-42\r\n"), std::string::npos) << head;
  EXPECT_NE(head.find("\r\nX-Forwarded-For: 192.0.2.7\r\n"), std::string::npos) << head;
  // Without client_fields, nothing of the client's request goes along.
  EXPECT_EQ(head.find("Authorization"), std::string::npos) << head;
  EXPECT_EQ(head.find("client.example"), std::string::npos) << head;
}

TEST_F(SideRequestTest, FetchSendsTheClientsFieldsWithoutConditionals) {
  LoopbackUpstream upstream([](const std::string&) { return LoopbackUpstream::ok(200, "{}"); });
  start(upstream.port());
  SideRequestSpec fetch = SideRequestSpec::fetch("/items/1");
  fetch.body_limit = 100;
  fetch.fields.add("Accept", "text/plain");  // replaces the client's
  fetch.fields.add("X-Trace", "side");       // named by the client's Connection, but the spec's own
  // The rest of what a client may send with a conditional write: none of it goes along.
  for (auto [name, value] : {std::pair{"If-None-Match", "*"}, std::pair{"If-Modified-Since", "Tue, 01 Dec 2026"},
                             std::pair{"If-Unmodified-Since", "Tue, 01 Dec 2026"}, std::pair{"If-Range", "\"v1\""},
                             std::pair{"Range", "bytes=0-1"}, std::pair{"Content-Type", "text/csv"},
                             std::pair{"Content-Encoding", "gzip"}, std::pair{"Content-Length", "12"},
                             std::pair{"Transfer-Encoding", "chunked"}, std::pair{"Expect", "100-continue"},
                             std::pair{"Connection", "X-Hop, X-Trace"}, std::pair{"X-Hop", "client-hop-only"},
                             std::pair{"X-Trace", "client"}}) {
    client_headers_.add(name, value);
  }
  send({fetch}, {&pool("a")});
  ASSERT_TRUE(run_until([&] { return collector_.calls > 0; }));
  ASSERT_EQ(upstream.requests().size(), 1u);
  const std::string head = upstream.requests()[0];
  EXPECT_EQ(head.rfind("GET /items/1 HTTP/1.1\r\n", 0), 0u) << head;
  EXPECT_NE(head.find("\r\nHost: client.example\r\n"), std::string::npos) << head;
  EXPECT_NE(head.find("\r\nAuthorization: Bearer secret\r\n"), std::string::npos) << head;
  EXPECT_NE(head.find("\r\nAccept: text/plain\r\n"), std::string::npos) << head;
  EXPECT_EQ(head.find("application/json"), std::string::npos) << head;
  EXPECT_EQ(head.find("If-Match"), std::string::npos) << head;
  EXPECT_EQ(head.find("Content-Length"), std::string::npos) << head;
  for (std::string_view absent : {"If-None-Match", "If-Modified-Since", "If-Unmodified-Since", "If-Range", "Range",
                                  "Content-Type", "Content-Encoding", "Transfer-Encoding", "Expect", "Connection",
                                  "X-Hop", "client-hop-only", "X-Trace: client"}) {
    EXPECT_EQ(head.find(absent), std::string::npos) << absent << " in\n" << head;
  }
  EXPECT_NE(head.find("\r\nX-Trace: side\r\n"), std::string::npos) << head;
}

TEST_F(SideRequestTest, ATimeoutEndsAHangingRequestWhileTheOtherCompletes) {
  LoopbackUpstream hanging([](const std::string&) { return std::nullopt; });
  LoopbackUpstream answering([](const std::string&) { return LoopbackUpstream::ok(200, "here"); });
  start(hanging.port(), answering.port());
  SideRequestSpec slow = get("/slow", "a");
  slow.timeout = 200ms;
  send({slow, get("/fast", "b")}, {&pool("a"), &pool("b")});
  ASSERT_TRUE(run_until([&] { return collector_.calls > 0; }));
  ASSERT_EQ(collector_.responses.size(), 2u);
  EXPECT_FALSE(collector_.responses[0].reached);
  EXPECT_EQ(collector_.responses[0].failure, SideFailure::Timeout);
  EXPECT_NE(collector_.responses[0].detail.find("200ms"), std::string::npos) << collector_.responses[0].detail;
  EXPECT_TRUE(collector_.responses[1].reached);
  EXPECT_EQ(collector_.responses[1].status, 200);
  EXPECT_EQ(collector_.responses[1].body, "here");
  // The hanging upstream's connection was dropped, not left open.
  EXPECT_TRUE(run_until([&] { return hanging.closed_by_client() >= 1; }));
}

TEST_F(SideRequestTest, AConnectFailureIsReportedAsSuch) {
  start(closed_port());
  send({get("/x")}, {&pool("a")});
  ASSERT_TRUE(run_until([&] { return collector_.calls > 0; }));
  ASSERT_EQ(collector_.responses.size(), 1u);
  EXPECT_FALSE(collector_.responses[0].reached);
  EXPECT_FALSE(collector_.responses[0].body_complete);
  EXPECT_EQ(collector_.responses[0].failure, SideFailure::ConnectFailed);
  EXPECT_NE(collector_.responses[0].detail.find("ECONNREFUSED"), std::string::npos) << collector_.responses[0].detail;
}

TEST_F(SideRequestTest, AnUnknownUpstreamFailsFromTheLoopWithNothingSent) {
  LoopbackUpstream upstream([](const std::string&) { return LoopbackUpstream::ok(200, "ok"); });
  start(upstream.port());
  send({get("/x", "nowhere"), get("/y", "a")}, {nullptr, &pool("a")});
  EXPECT_EQ(collector_.calls, 0);  // never from inside start()
  ASSERT_TRUE(run_until([&] { return collector_.calls > 0; }));
  ASSERT_EQ(collector_.responses.size(), 2u);
  EXPECT_EQ(collector_.responses[0].failure, SideFailure::UnknownUpstream);
  EXPECT_NE(collector_.responses[0].detail.find("'nowhere'"), std::string::npos);
  EXPECT_EQ(collector_.responses[1].status, 200);
  EXPECT_EQ(upstream.requests().size(), 1u);
}

TEST_F(SideRequestTest, CancellingWhileOutstandingDropsTheConnectionsAndCallsNobody) {
  LoopbackUpstream hanging([](const std::string&) { return std::nullopt; });
  start(hanging.port());
  SideRequestSpec first = get("/a");
  first.timeout = 100ms;  // must never fire once cancelled
  send({first, get("/b")}, {&pool("a"), &pool("a")});
  // The server takes one connection at a time: the first request is in, the second connected.
  ASSERT_TRUE(run_until([&] { return hanging.requests().size() == 1; }));
  EXPECT_TRUE(batch_->outstanding());
  batch_.reset();  // the exchange ended (client gone): the batch goes with it
  ASSERT_TRUE(run_until([&] { return hanging.closed_by_client() >= 1 && !pool("a").in_use(); }));
  // Past the cancelled request's timeout, by the loop's own clock: still nothing delivered.
  run_for(150ms);
  EXPECT_EQ(collector_.calls, 0);
}

TEST_F(SideRequestTest, ABodyOverTheLimitIsReportedTooLargeWithItsHead) {
  std::string big(1000, 'x');
  LoopbackUpstream upstream([&](const std::string&) { return LoopbackUpstream::ok(200, big); });
  start(upstream.port());
  SideRequestSpec limited = get("/big");
  limited.body_limit = 100;
  send({limited}, {&pool("a")});
  ASSERT_TRUE(run_until([&] { return collector_.calls > 0; }));
  ASSERT_EQ(collector_.responses.size(), 1u);
  const SideResponse& response = collector_.responses[0];
  EXPECT_TRUE(response.reached);
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.headers.find("X-Upstream"), std::optional<std::string_view>("loopback"));
  EXPECT_FALSE(response.body_complete);
  EXPECT_TRUE(response.body.empty());
  EXPECT_EQ(response.failure, SideFailure::TooLarge);
}

TEST_F(SideRequestTest, AnEmptyCallAnswersAtOnceAndABatchRunsCallsOneAfterAnother) {
  LoopbackUpstream upstream([](const std::string& request) {
    return LoopbackUpstream::ok(200, request.substr(4, request.find(' ', 4) - 4));
  });
  start(upstream.port());
  send({}, {});
  EXPECT_EQ(collector_.calls, 1);
  EXPECT_TRUE(collector_.responses.empty());
  send({get("/first")}, {&pool("a")});
  ASSERT_TRUE(run_until([&] { return collector_.calls == 2; }));
  send({get("/second")}, {&pool("a")});
  ASSERT_TRUE(run_until([&] { return collector_.calls == 3; }));
  ASSERT_EQ(collector_.responses.size(), 1u);
  EXPECT_EQ(collector_.responses[0].body, "/second");
}

}  // namespace
}  // namespace arbiter
