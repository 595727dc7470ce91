// The real Exchange driven through a fake host (tests/support/fake_exchange_host.h): no socket,
// no loop, a fake clock. A test policy parks in each phase and is resumed by its waker or by
// its deadline; side requests, a failing upstream, a client that leaves while its request is
// parked, and a policy that rewrites the request before it is forwarded.

#include "proxy/exchange/exchange.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "tests/support/fake_exchange_host.h"

// Every operator new of this test binary is counted while `g_counting` is set (on the thread
// that set it), so a test can assert what one request allocates.
namespace {
thread_local bool g_counting = false;
thread_local std::size_t g_allocations = 0;
}  // namespace

void* operator new(std::size_t size) {
  if (g_counting) ++g_allocations;
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t size) { return ::operator new(size); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
// The nothrow forms too: left to the runtime (AddressSanitizer's, say), their memory would be
// released by the free() above, an allocation/deallocation mismatch.
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  if (g_counting) ++g_allocations;
  return std::malloc(size == 0 ? 1 : size);
}
void* operator new[](std::size_t size, const std::nothrow_t& tag) noexcept {
  return ::operator new(size, tag);
}
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }

namespace arbiter {
namespace {

using testing::FakeExchangeHost;
using Stage = Exchange::Stage;
using Hook = Exchange::Hook;

constexpr auto kParkFor = std::chrono::seconds(5);

// A policy whose every hook does what the test sets: park once (until woken, or its deadline),
// call side requests, read and rewrite the request body. Counts its calls and its states' lifetimes.
class StepPolicy final : public Policy {
 public:
  struct State final : ExchangeState {
    explicit State(StepPolicy& policy) : policy(policy) { ++policy.states_made; }
    ~State() override { ++policy.states_destroyed; }
    StepPolicy& policy;
  };

  bool park_request = false, park_response = false, park_end = false;
  // Side requests each phase calls once (Decision::call / ResponseStep::call); none: no call.
  std::vector<SideRequestSpec> call_request, call_response, call_end;
  std::size_t read_body = 0;               // request phase: Decision::read_body(this)
  std::string replace_body;                // request body hook: the body becomes this
  std::string add_field;                   // forward with this field set to "yes"
  std::string forward_body;                // request phase: forward with this body instead
  std::size_t body_limit = 0;              // response_body_limit

  int request_calls = 0, body_calls = 0, response_calls = 0, end_calls = 0;
  int states_made = 0, states_destroyed = 0;
  std::string seen_body;
  // The answers each phase's *_side_responses hook got.
  std::vector<SideResponse> seen_request_answers, seen_response_answers, seen_end_answers;
  int side_response_calls = 0;
  ExchangeOutcome last_outcome;

  std::string_view kind() const noexcept override { return "step"; }
  std::size_t response_body_limit() const noexcept override { return body_limit; }

  Decision on_request(const RequestView& request, std::unique_ptr<ExchangeState>& state) override {
    ++request_calls;
    if (!state) state = std::make_unique<State>(*this);
    if (park_request && request_calls == 1) return Decision::wait_until(request.now + kParkFor);
    if (!call_request.empty() && side_response_calls == 0) return Decision::call(call_request);
    if (read_body > 0) return Decision::read_body(read_body);
    if (!forward_body.empty()) return forward().with_body(forward_body);
    return forward();
  }
  Decision on_side_responses(const RequestView&, std::span<const SideResponse> answers,
                             std::unique_ptr<ExchangeState>&) override {
    ++side_response_calls;
    seen_request_answers.assign(answers.begin(), answers.end());
    return forward();
  }
  void on_response_side_responses(const RequestView&, ResponseView& response, std::span<const SideResponse> answers,
                                  ExchangeState*) override {
    seen_response_answers.assign(answers.begin(), answers.end());
    response.headers.set("X-Side", std::to_string(answers.size()));
  }
  void on_end_side_responses(const RequestView&, const ExchangeOutcome&, std::span<const SideResponse> answers,
                             ExchangeState*) override {
    seen_end_answers.assign(answers.begin(), answers.end());
  }
  Decision on_request_body(const RequestView& request, std::string& body, std::unique_ptr<ExchangeState>&) override {
    ++body_calls;
    seen_body = body;
    EXPECT_EQ(request.body, &body);
    if (!replace_body.empty()) body = replace_body;
    return forward();
  }
  ResponseStep on_response(const RequestView& request, ResponseView&, ExchangeState*) override {
    ++response_calls;
    if (park_response && response_calls == 1) return ResponseStep::wait_until(request.now + kParkFor);
    if (!call_response.empty() && response_calls == 1) return ResponseStep::call(call_response);
    return ResponseStep::proceed();
  }
  ResponseStep on_end(const RequestView& request, const ExchangeOutcome& outcome, ExchangeState*) override {
    ++end_calls;
    last_outcome = outcome;
    if (park_end && end_calls == 1) return ResponseStep::wait_until(request.now + kParkFor);
    if (!call_end.empty() && end_calls == 1) return ResponseStep::call(call_end);
    return ResponseStep::proceed();
  }

 private:
  Decision forward() const {
    if (add_field.empty()) return Decision::forward();
    return Decision::forward().with_field(add_field, "yes");
  }
};

std::shared_ptr<const Runtime> runtime_with(std::shared_ptr<Policy> policy) {
  static RuntimeState state;
  Config config = parse_config(
      "[upstream.backend]\nservers = [\"127.0.0.1:9\"]\n"
      "[[route]]\nname = \"items\"\npath = \"/items/{id}\"\nupstream = \"backend\"\n",
      "exchange_test.toml");
  auto runtime = std::make_shared<Runtime>(std::move(config), state);
  runtime->append_policy(0, std::move(policy));
  return runtime;
}

class ExchangeTest : public ::testing::Test {
 protected:
  std::shared_ptr<StepPolicy> policy = std::make_shared<StepPolicy>();
  std::unique_ptr<FakeExchangeHost> host;

  void start(std::string_view request) {
    host = std::make_unique<FakeExchangeHost>(runtime_with(policy));
    host->feed(request);
  }
  // The way the test resumes a parked exchange: its waker, or its deadline passing.
  void resume(bool by_waker) {
    ASSERT_TRUE(host->timer_armed());  // a parked exchange always has its deadline armed
    if (by_waker) {
      host->deliver_wake();
    } else {
      host->advance(std::chrono::duration_cast<Duration>(kParkFor));
    }
  }
};

constexpr std::string_view kGet = "GET /items/1 HTTP/1.1\r\nHost: a\r\n\r\n";

class ExchangeParkTest : public ExchangeTest, public ::testing::WithParamInterface<bool> {};

TEST_P(ExchangeParkTest, ParksInTheRequestResponseAndEndPhasesAndResumes) {
  bool by_waker = GetParam();
  policy->park_request = policy->park_response = policy->park_end = true;
  start(kGet);

  ASSERT_TRUE(host->exchange);
  EXPECT_EQ(host->exchange->stage(), Stage::Parked);
  EXPECT_EQ(host->exchange->hook(), Hook::Request);
  EXPECT_EQ(host->upstream_opens, 0);
  resume(by_waker);
  EXPECT_EQ(policy->request_calls, 2);
  EXPECT_EQ(host->upstream_opens, 1);
  EXPECT_NE(host->upstream.received.find("GET /items/1 HTTP/1.1\r\n"), std::string::npos);

  host->respond(200, HeaderList{{"Content-Type", "text/plain"}}, "");
  EXPECT_EQ(host->exchange->stage(), Stage::Parked);
  EXPECT_EQ(host->exchange->hook(), Hook::Response);
  EXPECT_TRUE(host->to_client.empty());  // held while the response policy is parked
  resume(by_waker);
  EXPECT_EQ(policy->response_calls, 2);
  EXPECT_TRUE(host->to_client.starts_with("HTTP/1.1 200 OK\r\n")) << host->to_client;

  ASSERT_TRUE(host->exchange);
  EXPECT_EQ(host->exchange->stage(), Stage::Parked);
  EXPECT_EQ(host->exchange->hook(), Hook::End);
  EXPECT_EQ(policy->states_destroyed, 0);  // the state lives until the end hooks are done
  EXPECT_EQ(host->exchanges_done, 0);
  resume(by_waker);
  EXPECT_EQ(policy->end_calls, 2);
  EXPECT_TRUE(policy->last_outcome.response_complete);
  EXPECT_EQ(policy->last_outcome.status, 200);
  EXPECT_EQ(host->exchanges_done, 1);
  EXPECT_FALSE(host->exchange);
  EXPECT_EQ(policy->states_destroyed, 1);
  EXPECT_EQ(host->statuses, std::vector<int>{200});
}

INSTANTIATE_TEST_SUITE_P(ByWakerOrDeadline, ExchangeParkTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "Waker" : "Deadline"; });

TEST_F(ExchangeTest, APipelinedRequestWaitsForTheEndHooksOfTheOneBefore) {
  policy->park_end = true;
  start(std::string(kGet) + std::string(kGet));
  host->respond(204, {}, "");
  EXPECT_EQ(host->exchange->hook(), Hook::End);
  EXPECT_EQ(host->upstream_opens, 1);
  host->deliver_wake();
  // The second request began once the first was over.
  EXPECT_EQ(host->upstream_opens, 2);
  EXPECT_EQ(host->exchanges_done, 1);
}

SideResponse answer(int status, std::string body = {}) {
  SideResponse response;
  response.reached = true;
  response.status = status;
  response.body = std::move(body);
  response.body_complete = true;
  return response;
}

TEST_F(ExchangeTest, TwoSideRequestsAtOnce) {
  SideRequestSpec audit;
  audit.method = "POST";
  audit.target = "/audit";
  audit.upstream = "backend";
  audit.body = "{}";
  audit.timeout = std::chrono::milliseconds(250);
  audit.body_limit = 64;
  policy->body_limit = 4096;
  policy->call_request = {SideRequestSpec::fetch("/items/1"), audit};
  start(kGet);
  ASSERT_EQ(host->side_calls.size(), 2u);  // both outstanding before either is answered
  EXPECT_EQ(host->side_request_calls, 1);  // as one call
  const SideRequestSpec& fetch = host->side_calls[0].spec;
  EXPECT_EQ(fetch.method, "GET");
  EXPECT_EQ(fetch.target, "/items/1");
  EXPECT_EQ(fetch.upstream, "backend");  // the route's, named by the exchange
  EXPECT_EQ(fetch.body_limit, 4096u);    // the route's
  EXPECT_TRUE(fetch.client_fields);
  const SideRequestSpec& post = host->side_calls[1].spec;
  EXPECT_EQ(post.method, "POST");
  EXPECT_EQ(post.target, "/audit");
  EXPECT_EQ(post.body, "{}");
  EXPECT_EQ(post.timeout, std::chrono::milliseconds(250));
  EXPECT_EQ(post.body_limit, 64u);
  EXPECT_EQ(host->exchange->stage(), Stage::SideRequest);

  host->answer_side_request(1, answer(404));  // answers may come in any order
  EXPECT_EQ(host->exchange->stage(), Stage::SideRequest);
  EXPECT_EQ(policy->side_response_calls, 0);  // the policy hears them together
  host->answer_side_request(0, answer(200, "one"));

  EXPECT_EQ(policy->side_response_calls, 1);
  ASSERT_EQ(policy->seen_request_answers.size(), 2u);  // in the order of the specs
  EXPECT_EQ(policy->seen_request_answers[0].status, 200);
  EXPECT_EQ(policy->seen_request_answers[0].body, "one");
  EXPECT_EQ(policy->seen_request_answers[1].status, 404);
  EXPECT_EQ(host->upstream_opens, 1);  // then forwarded
}

TEST_F(ExchangeTest, SideRequestsInTheResponseAndEndPhases) {
  policy->call_response = {SideRequestSpec::fetch("/items/1"), SideRequestSpec::fetch("/items/2")};
  policy->call_end = {SideRequestSpec::fetch("/items/3")};
  start(kGet);
  host->respond(200, HeaderList{{"Content-Type", "text/plain"}}, "");
  ASSERT_EQ(host->side_calls.size(), 2u);
  EXPECT_EQ(host->exchange->stage(), Stage::SideRequest);
  EXPECT_EQ(host->exchange->hook(), Hook::Response);
  EXPECT_TRUE(host->to_client.empty());  // held while the response policy waits for its answers
  host->answer_side_request(1, answer(204));
  host->answer_side_request(0, answer(200));
  ASSERT_EQ(policy->seen_response_answers.size(), 2u);
  EXPECT_EQ(policy->seen_response_answers[0].status, 200);
  EXPECT_EQ(policy->seen_response_answers[1].status, 204);
  EXPECT_NE(host->to_client.find("X-Side: 2\r\n"), std::string::npos) << host->to_client;

  ASSERT_EQ(host->side_calls.size(), 3u);
  EXPECT_EQ(host->side_calls[2].spec.target, "/items/3");
  EXPECT_EQ(host->exchange->hook(), Hook::End);
  EXPECT_EQ(host->exchanges_done, 0);
  host->answer_side_request(2, answer(200, "three"));
  ASSERT_EQ(policy->seen_end_answers.size(), 1u);
  EXPECT_EQ(policy->seen_end_answers[0].body, "three");
  EXPECT_EQ(host->exchanges_done, 1);
  EXPECT_EQ(host->side_cancels, 0);
}

TEST_F(ExchangeTest, ClientGoingAwayCancelsTheSideRequests) {
  policy->call_request = {SideRequestSpec::fetch("/items/1"), SideRequestSpec::fetch("/items/2")};
  start(kGet);
  ASSERT_EQ(host->side_calls.size(), 2u);
  host->client_gone();
  EXPECT_EQ(host->side_cancels, 1);
  EXPECT_EQ(host->exchange->stage(), Stage::Done);
  host->answer_side_request(0, answer(200));  // too late: dropped
  host->answer_side_request(1, answer(200));
  EXPECT_EQ(policy->side_response_calls, 0);
  EXPECT_EQ(host->upstream_opens, 0);
}

TEST_F(ExchangeTest, UpstreamFailingMidBodyClosesTheClientConnection) {
  start(kGet);
  host->respond(200, HeaderList{{"Content-Type", "text/plain"}}, "", false);
  host->upstream_body("partial");
  host->fail_upstream(UpstreamFailure::ClosedDuringResponse);
  // Part of the answer is out: only closing can tell the client; nothing is made up.
  EXPECT_TRUE(host->aborted);
  EXPECT_TRUE(host->to_client.starts_with("HTTP/1.1 200 OK\r\n"));
  EXPECT_EQ(host->to_client.find("502"), std::string::npos);
  EXPECT_EQ(host->statuses, std::vector<int>{499});
  EXPECT_EQ(policy->end_calls, 1);
  EXPECT_TRUE(policy->last_outcome.client_gone);
  EXPECT_EQ(host->exchange->stage(), Stage::Done);
}

TEST_F(ExchangeTest, UpstreamFailingBeforeItsHeadGets502) {
  start(kGet);
  host->fail_upstream(UpstreamFailure::ClosedBeforeResponse);
  EXPECT_TRUE(host->to_client.starts_with("HTTP/1.1 502 "));
  EXPECT_EQ(host->statuses, std::vector<int>{502});
  EXPECT_EQ(policy->end_calls, 1);
  EXPECT_FALSE(policy->last_outcome.upstream_answered);
}

TEST_F(ExchangeTest, ClientGoingAwayWhileParkedEndsTheExchange) {
  policy->park_request = true;
  start(kGet);
  ASSERT_EQ(host->exchange->stage(), Stage::Parked);
  host->client_gone();
  EXPECT_EQ(host->exchange->stage(), Stage::Done);
  EXPECT_FALSE(host->timer_armed());
  EXPECT_EQ(policy->end_calls, 1);
  EXPECT_TRUE(policy->last_outcome.client_gone);
  // A late wake and the old deadline find nothing to resume.
  host->deliver_wake();
  host->advance(std::chrono::seconds(60));
  EXPECT_EQ(policy->request_calls, 1);
  EXPECT_EQ(host->upstream_opens, 0);
  host.reset();  // the host destroys the exchange, which releases the policy's state
  EXPECT_EQ(policy->states_destroyed, 1);
}

TEST_F(ExchangeTest, ClientGoingAwayWhileTheEndHookIsParkedLetsItFinish) {
  policy->park_end = true;
  start(kGet);
  host->respond(200, {}, "");
  ASSERT_EQ(host->exchange->hook(), Hook::End);
  host->client_gone();
  EXPECT_EQ(host->exchange->stage(), Stage::Parked);  // the end hook still gets its turn
  host->advance(std::chrono::duration_cast<Duration>(kParkFor));
  EXPECT_EQ(policy->end_calls, 2);
  EXPECT_EQ(host->exchange->stage(), Stage::Done);
  EXPECT_EQ(host->exchanges_done, 1);   // told once, after the end hook
  EXPECT_EQ(policy->states_destroyed, 0);  // kept until the host frees the exchange
  host.reset();  // as ClientConnection frees it when its last handle closes
  EXPECT_EQ(policy->states_destroyed, 1);
}

TEST_F(ExchangeTest, PolicyReplacesTheRequestBodyAndSetsAField) {
  policy->read_body = 1024;
  policy->replace_body = R"({"merged":true})";
  policy->add_field = "X-Merged";
  start("PUT /items/1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
  EXPECT_EQ(policy->body_calls, 1);
  EXPECT_EQ(policy->seen_body, "hello");
  const std::string& sent = host->upstream.received;
  EXPECT_NE(sent.find("X-Merged: yes\r\n"), std::string::npos) << sent;
  EXPECT_NE(sent.find("Content-Length: 15\r\n"), std::string::npos) << sent;
  EXPECT_EQ(sent.find("chunked"), std::string::npos) << sent;
  EXPECT_TRUE(sent.ends_with("\r\n\r\n{\"merged\":true}")) << sent;
  EXPECT_TRUE(host->upstream.finished);
}

TEST_F(ExchangeTest, ABodyReplacedBeforeItWasReadIsReadAndDropped) {
  policy->forward_body = "new";
  start("POST /items/1 HTTP/1.1\r\nHost: a\r\nContent-Length: 8\r\n\r\nold-");
  EXPECT_EQ(host->upstream_opens, 0);  // the client's body is still coming
  host->feed("body");
  ASSERT_EQ(host->upstream_opens, 1);
  const std::string& sent = host->upstream.received;
  EXPECT_NE(sent.find("Content-Length: 3\r\n"), std::string::npos) << sent;
  EXPECT_TRUE(sent.ends_with("\r\n\r\nnew")) << sent;
  EXPECT_EQ(sent.find("old-"), std::string::npos) << sent;
  EXPECT_EQ(policy->request_calls, 1);
}

TEST_F(ExchangeTest, ReadBodyOverItsLimitIs413) {
  policy->read_body = 4;
  start("PUT /items/1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello");
  EXPECT_TRUE(host->to_client.starts_with("HTTP/1.1 413 ")) << host->to_client;
  EXPECT_EQ(host->upstream_opens, 0);
}

std::shared_ptr<Runtime> pass_through_runtime() {
  static RuntimeState state;
  Config config = parse_config(
      "[upstream.backend]\nservers = [\"127.0.0.1:9\"]\n"
      "[[route]]\nname = \"items\"\npath = \"/items/{id}\"\nupstream = \"backend\"\n",
      "exchange_test.toml");
  return std::make_shared<Runtime>(std::move(config), state);
}

// A request body that streams through: what the client sent with the head leaves with it, in
// one write to the upstream (not the head, then the body); what comes later follows.
TEST(ExchangeUpstreamWriteTest, TheBodyBytesThatCameWithTheHeadLeaveWithItInOneWrite) {
  constexpr std::string_view kHead = "PUT /items/1 HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n";
  struct Arrival {
    std::string_view with_head;  // of the body
    std::string_view later;
  };
  for (const Arrival& arrival : {Arrival{R"({"n":123456})", ""}, Arrival{R"({"n":)", "123456}"},
                                 Arrival{"", R"({"n":123456})"}}) {
    SCOPED_TRACE(std::string(arrival.with_head) + " | " + std::string(arrival.later));
    FakeExchangeHost host(pass_through_runtime());
    host.feed(std::string(kHead) + std::string(arrival.with_head));
    ASSERT_EQ(host.upstream_opens, 1);
    EXPECT_EQ(host.upstream.sends, 1);  // the head, with what came of the body
    EXPECT_TRUE(host.upstream.received.ends_with(std::string("\r\n\r\n") + std::string(arrival.with_head)))
        << host.upstream.received;
    EXPECT_EQ(host.upstream.finished, arrival.later.empty());
    if (!arrival.later.empty()) {
      host.feed(arrival.later);
      EXPECT_EQ(host.upstream.sends, 2);
      EXPECT_TRUE(host.upstream.finished);
    }
    EXPECT_TRUE(host.upstream.received.starts_with("PUT /items/1 HTTP/1.1\r\n"));
    EXPECT_TRUE(host.upstream.received.ends_with("\r\n\r\n{\"n\":123456}")) << host.upstream.received;
    EXPECT_NE(host.upstream.received.find("Content-Length: 12\r\n"), std::string::npos);
    host.respond(204, {}, "");
    EXPECT_EQ(host.statuses, std::vector<int>{204});
  }
}

// ExchangeScratch's promise (proxy/exchange/exchange_host.h): once a connection is warm, a
// pass-through request (no policies) and its response cost the Exchange no allocation.
// Operator news in the warm ones of 50 pass-through exchanges of `request`, each answered 200
// with a small JSON body; every request must reach the upstream in one write. The fake host
// keeps its own buffers' capacity and the upstream's answers are built before counting, with
// the capacity the response parser's reused list has.
std::size_t allocations_in_warm_exchanges(std::string_view request) {
  FakeExchangeHost host(pass_through_runtime());
  constexpr int kRequests = 50;
  host.to_client.reserve(64u << 10);
  host.statuses.reserve(kRequests);
  host.head_requests.reserve(kRequests);
  host.upstream.received.reserve(4096);
  // As the response parser's reused list: with room for the fields the exchange adds (Via).
  std::vector<HeaderList> answers(kRequests);
  for (HeaderList& answer : answers) {
    answer = HeaderList{{"Content-Type", "application/json"}, {"ETag", "\"v1\""}, {"Room-For", "Via: 1.1 arbiter"}};
    answer.clear();
    answer.add("Content-Type", "application/json");
    answer.add("ETag", "\"v1\"");
  }
  constexpr std::string_view kBody = R"({"id":1,"name":"widget"})";
  std::size_t counted = 0;
  for (int i = 0; i < kRequests; ++i) {
    bool warm = i >= 2;  // the first requests grow the buffers the later ones reuse
    g_allocations = 0;
    g_counting = warm;
    host.feed(request);
    host.respond(200, std::move(answers[i]), kBody);
    g_counting = false;
    if (warm) counted += g_allocations;
    EXPECT_FALSE(host.exchange);
    EXPECT_EQ(host.upstream.sends, 1);
  }
  EXPECT_EQ(host.statuses, std::vector<int>(kRequests, 200));
  return counted;
}

TEST(ExchangeAllocationTest, AWarmPassThroughRequestAllocatesNothing) {
  EXPECT_EQ(allocations_in_warm_exchanges(
                "GET /items/1?x=1 HTTP/1.1\r\nHost: a\r\nUser-Agent: test\r\nAccept: */*\r\n\r\n"),
            0u);
}

// The same for a write whose small body came with its head.
TEST(ExchangeAllocationTest, AWarmPassThroughWriteAllocatesNothing) {
  EXPECT_EQ(allocations_in_warm_exchanges("PUT /items/1 HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
                                          "Content-Length: 24\r\n\r\n{\"id\":1,\"name\":\"widget\"}"),
            0u);
}

}  // namespace
}  // namespace arbiter
