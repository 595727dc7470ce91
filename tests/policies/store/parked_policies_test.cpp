// Each policy on a store that answers later (tests/policies/store/delayed_stores.h): it parks
// with Decision::wait_until, its completion wakes the request, and on_request() finds the answer
// and goes on exactly as with a memory store; an exchange that ends first cancels the call and
// leaks nothing; a store that fails or never answers gets 503 store-unavailable.

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "policies/concurrency/concurrency_policy.h"
#include "policies/etag/etag.h"
#include "policies/etag/etag_policy.h"
#include "policies/rate_limit/rate_limit_policy.h"
#include "tests/policies/counting_waker.h"
#include "tests/policies/store/delayed_stores.h"

namespace arbiter {
namespace {

using namespace std::chrono_literals;

// One request through one policy, hook by hook, as the proxy drives it, on a clock moved by hand.
class Request {
 public:
  Request(Policy& policy, MonotonicTime& now, std::string method, std::string target, HeaderList headers = {})
      : policy_(policy), now_(now), method_(std::move(method)), target_(std::move(target)), headers_(std::move(headers)) {}

  Decision request() { return policy_.on_request(view(true), state_); }
  Decision fetched(const FetchedResponse& fetched) { return policy_.on_fetched(view(true), fetched, state_); }
  ResponseStep respond(int status, std::optional<std::string> body = std::nullopt) {
    response_body_ = body.value_or("");
    response_.emplace(ResponseView{status, response_headers_, body ? &response_body_ : nullptr, false, now_});
    return policy_.on_response(view(false), *response_, state_.get());
  }
  // The end of the exchange, as the proxy ends every one: on_end, then the state goes.
  void end() {
    bool answered = response_.has_value();
    policy_.on_end(view(false), ExchangeOutcome{answered ? response_->status : 0, answered, answered, false, now_},
                   state_.get());
    state_.reset();
  }

  int wakes() const { return waker_->wakes.load(); }
  bool has_state() const { return state_ != nullptr; }
  const HeaderList& response_headers() const { return response_headers_; }

 private:
  RequestView view(bool with_waker) const {
    return RequestView{method_, target_, target_, "", headers_, "10.0.0.1", "route", {}, "req-1", now_,
                       with_waker ? waker_ : nullptr};
  }

  Policy& policy_;
  MonotonicTime& now_;
  std::string method_, target_;
  HeaderList headers_;
  std::shared_ptr<CountingWaker> waker_ = std::make_shared<CountingWaker>();
  std::unique_ptr<ExchangeState> state_;
  HeaderList response_headers_;
  std::string response_body_;
  std::optional<ResponseView> response_;
};

std::string problem_type(const Decision& decision) {
  if (!decision.problem()) return "(not a problem)";
  return decision.problem()->type;
}

const std::string kStoreUnavailable = "urn:arbiter:problem:store-unavailable";

FetchedResponse fetched_ok(std::string body) {
  FetchedResponse fetched;
  fetched.reached = true;
  fetched.status = 200;
  fetched.body = std::move(body);
  fetched.body_complete = true;
  return fetched;
}

// ---- Rate limits: take and refund ----

RateLimitConfig limit(std::string name, std::uint64_t burst) {
  RateLimitConfig config;
  config.name = std::move(name);
  config.count = 1;
  config.per = 60s;
  config.burst = burst;
  return config;
}

class ParkedRateLimitTest : public ::testing::Test {
 protected:
  void make_policy(std::vector<RateLimitConfig> limits) {
    policy_ = std::make_unique<RateLimitPolicy>("route", RateLimitPolicyConfig{std::move(limits), true}, store_);
  }
  Request request() { return Request(*policy_, now_, "GET", "/items/1"); }

  MonotonicTime now_ = MonotonicTime{} + 1000s;
  std::shared_ptr<DelayedBucketStore> store_ = std::make_shared<DelayedBucketStore>();
  std::unique_ptr<RateLimitPolicy> policy_;
};

TEST_F(ParkedRateLimitTest, ATakeAnsweredLaterParksTheRequestAndResumesIt) {
  make_policy({limit("per-client", 1)});
  Request first = request();
  Decision parked = first.request();
  ASSERT_EQ(parked.kind(), Decision::Kind::Wait);
  EXPECT_EQ(parked.deadline(), now_ + kStoreCallTimeout);
  EXPECT_EQ(store_->pending(), 1u);
  EXPECT_EQ(first.wakes(), 0);
  ASSERT_TRUE(store_->complete_next());
  EXPECT_EQ(first.wakes(), 1);  // the completion woke it
  EXPECT_TRUE(first.request().forwards());
  first.respond(200);
  EXPECT_EQ(first.response_headers().find("RateLimit").value_or(""), "\"per-client\";r=0;t=60");

  Request second = request();
  ASSERT_EQ(second.request().kind(), Decision::Kind::Wait);
  store_->complete_next();
  Decision refused = second.request();
  ASSERT_EQ(refused.kind(), Decision::Kind::Reply);
  EXPECT_EQ(refused.status(), 429);
  EXPECT_EQ(policy_->counters()[0].admitted, 1u);
  EXPECT_EQ(policy_->counters()[0].limited, 1u);
}

TEST_F(ParkedRateLimitTest, LimitsAreAskedOneAfterAnotherAndARefusalRefundsTheOthersLater) {
  make_policy({limit("wide", 10), limit("narrow", 1)});
  ASSERT_TRUE([&] {
    Request spend = request();
    spend.request();
    store_->complete_all();
    spend.request();
    store_->complete_all();
    return spend.request().forwards();
  }());
  Request refused = request();
  ASSERT_EQ(refused.request().kind(), Decision::Kind::Wait);  // take from "wide"
  EXPECT_EQ(store_->pending(), 1u);
  store_->complete_next();
  ASSERT_EQ(refused.request().kind(), Decision::Kind::Wait);  // take from "narrow": refused
  store_->complete_next();
  ASSERT_EQ(refused.request().kind(), Decision::Kind::Wait);  // "wide" gets its token back
  store_->complete_next();
  Decision answer = refused.request();
  ASSERT_EQ(answer.kind(), Decision::Kind::Reply);
  EXPECT_EQ(answer.status(), 429);
  // The refund landed: "wide" spent one token (the first request's), not two.
  EXPECT_EQ(answer.headers().find("RateLimit").value_or(""), "\"wide\";r=9;t=60, \"narrow\";r=0;t=60");
}

TEST_F(ParkedRateLimitTest, AFailingStoreAnswers503AndForwardsNothing) {
  make_policy({limit("per-client", 5)});
  Request req = request();
  ASSERT_EQ(req.request().kind(), Decision::Kind::Wait);
  store_->fail_next();
  Decision answer = req.request();
  ASSERT_EQ(answer.kind(), Decision::Kind::Reply);
  EXPECT_EQ(answer.status(), 503);
  EXPECT_EQ(problem_type(answer), kStoreUnavailable);
  EXPECT_EQ(answer.headers().find("Retry-After").value_or(""), "1");
  EXPECT_FALSE(req.has_state());
}

TEST_F(ParkedRateLimitTest, AStoreThatNeverAnswersIsGivenUpAtTheDeadline) {
  make_policy({limit("per-client", 5)});
  Request req = request();
  ASSERT_EQ(req.request().kind(), Decision::Kind::Wait);
  now_ += kStoreCallTimeout - 1ms;
  EXPECT_EQ(req.request().kind(), Decision::Kind::Wait);  // woken early (say): waits on
  now_ += 1ms;
  Decision answer = req.request();
  EXPECT_EQ(answer.status(), 503);
  EXPECT_EQ(problem_type(answer), kStoreUnavailable);
  EXPECT_EQ(store_->pending(), 0u);  // the call was cancelled
  EXPECT_EQ(store_->cancelled(), 1u);
}

TEST_F(ParkedRateLimitTest, AnExchangeThatEndsFirstCancelsTheCall) {
  make_policy({limit("per-client", 5)});
  Request req = request();
  ASSERT_EQ(req.request().kind(), Decision::Kind::Wait);
  req.end();  // the client went away
  EXPECT_EQ(store_->pending(), 0u);
  EXPECT_EQ(store_->cancelled(), 1u);
  EXPECT_FALSE(store_->complete_next());  // nothing left to complete into a dead exchange
  EXPECT_EQ(req.wakes(), 0);
}

TEST_F(ParkedRateLimitTest, AStoreAnsweringAtOnceNeverParks) {
  make_policy({limit("wide", 10), limit("narrow", 1)});
  store_->delaying = false;
  Request first = request();
  EXPECT_TRUE(first.request().forwards());
  Request second = request();
  EXPECT_EQ(second.request().status(), 429);
  EXPECT_EQ(first.wakes() + second.wakes(), 0);
}

// ---- In-flight slots: acquire ----

class ParkedConcurrencyTest : public ::testing::Test {
 protected:
  ParkedConcurrencyTest() {
    ConcurrencyConfig config;
    config.max_in_flight = 1;
    config.max_queue = 4;
    policy_ = std::make_unique<ConcurrencyPolicy>("route", config, table_);
  }
  Request request() { return Request(*policy_, now_, "GET", "/items/1"); }

  MonotonicTime now_ = MonotonicTime{} + 1000s;
  std::shared_ptr<DelayedSlotTable> table_ = std::make_shared<DelayedSlotTable>(100);
  std::unique_ptr<ConcurrencyPolicy> policy_;
};

TEST_F(ParkedConcurrencyTest, AnAcquireAnsweredLaterParksAndResumes) {
  Request holder = request();
  ASSERT_EQ(holder.request().kind(), Decision::Kind::Wait);
  table_->complete_next();
  EXPECT_EQ(holder.wakes(), 1);
  EXPECT_TRUE(holder.request().forwards());
  EXPECT_EQ(table_->in_flight(), 1u);

  // The next one's answer is a place in the queue: it then waits for the slot, as ever.
  Request waiter = request();
  ASSERT_EQ(waiter.request().kind(), Decision::Kind::Wait);
  table_->complete_next();
  Decision queued = waiter.request();
  ASSERT_EQ(queued.kind(), Decision::Kind::Wait);
  EXPECT_EQ(queued.deadline(), now_ + policy_->config().queue_timeout);
  holder.end();
  EXPECT_EQ(waiter.wakes(), 2);  // the completion, then the slot
  EXPECT_TRUE(waiter.request().forwards());
  waiter.end();
  EXPECT_EQ(table_->in_flight(), 0u);
  EXPECT_EQ(policy_->counters().admitted, 2u);
}

TEST_F(ParkedConcurrencyTest, AnExchangeThatEndsBeforeTheAnswerLeaksNoSlot) {
  Request gone = request();
  ASSERT_EQ(gone.request().kind(), Decision::Kind::Wait);
  EXPECT_EQ(table_->in_flight(), 1u);  // the table granted it; the answer is on its way
  gone.end();
  EXPECT_EQ(table_->in_flight(), 0u);  // cancelling gave it back
  EXPECT_EQ(table_->size(), 0u);
  table_->delaying = false;
  Request next = request();
  EXPECT_TRUE(next.request().forwards());
}

TEST_F(ParkedConcurrencyTest, AFailingTableAnswers503) {
  Request req = request();
  ASSERT_EQ(req.request().kind(), Decision::Kind::Wait);
  table_->fail_next();
  EXPECT_EQ(table_->in_flight(), 0u);  // what it would have granted went back
  Decision answer = req.request();
  EXPECT_EQ(answer.status(), 503);
  EXPECT_EQ(problem_type(answer), kStoreUnavailable);
}

// ---- ETags: sequence, write turns, get ----

const std::string kBody1 = R"({"id":1,"balance":10})";
const std::string kBody2 = R"({"id":1,"balance":20})";

class ParkedEtagTest : public ::testing::Test {
 protected:
  void make_policy(EtagPolicyConfig config) {
    config.turn_lease = 10s;
    config.queue_timeout = 30s;
    policy_ = std::make_unique<EtagPolicy>("accounts", config, versions_, turns_);
  }
  void SetUp() override { make_policy(EtagPolicyConfig{}); }
  Request request(std::string method, HeaderList headers = {}) {
    return Request(*policy_, now_, std::move(method), "/accounts/1", std::move(headers));
  }
  std::optional<std::string> known() {
    auto stored = versions_->memory.get("/accounts/1");
    return stored ? std::optional<std::string>(decode_version_tags(*stored).primary()) : std::nullopt;
  }

  MonotonicTime now_ = MonotonicTime{} + 1000s;
  std::shared_ptr<DelayedVersionStore> versions_ = std::make_shared<DelayedVersionStore>(100);
  std::shared_ptr<DelayedWriteTurns> turns_ = std::make_shared<DelayedWriteTurns>();
  std::unique_ptr<EtagPolicy> policy_;
};

TEST_F(ParkedEtagTest, AReadParksOnTheSequenceAndIsLearned) {
  Request read = request("GET");
  ASSERT_EQ(read.request().kind(), Decision::Kind::Wait);
  versions_->complete_next();
  EXPECT_EQ(read.wakes(), 1);
  EXPECT_TRUE(read.request().forwards());
  // The response phase does not wait: its get counts as unknown, its learn is sent anyway.
  read.respond(200, kBody1);
  EXPECT_EQ(read.response_headers().find("ETag").value_or(""), mint_etag(kBody1));
  EXPECT_EQ(known(), mint_etag(kBody1));
  read.end();
  EXPECT_EQ(versions_->pending(), 0u);  // the response phase's calls went with the exchange
}

TEST_F(ParkedEtagTest, AWriteParksOnItsTurnAndOnTheTableAndLosesNoUpdate) {
  versions_->memory.put("/accounts/1", mint_etag(kBody1));
  Request write = request("PUT", {{"If-Match", mint_etag(kBody1)}});
  ASSERT_EQ(write.request().kind(), Decision::Kind::Wait);  // the turn store
  EXPECT_EQ(turns_->pending(), 1u);
  turns_->complete_next();
  EXPECT_EQ(write.wakes(), 1);
  ASSERT_EQ(write.request().kind(), Decision::Kind::Fetch);  // holding the turn: verify
  ASSERT_EQ(write.fetched(fetched_ok(kBody1)).kind(), Decision::Kind::Wait);  // the table's names
  versions_->complete_next();
  EXPECT_EQ(write.wakes(), 2);
  Decision forwarded = write.request();
  ASSERT_TRUE(forwarded.forwards());
  EXPECT_EQ(forwarded.strip_fields(), (std::vector<std::string>{"If-Match", "If-None-Match"}));

  // A second writer with the same (now stale once the first lands) tag waits for the turn.
  Request stale = request("PUT", {{"If-Match", mint_etag(kBody1)}});
  ASSERT_EQ(stale.request().kind(), Decision::Kind::Wait);
  turns_->complete_next();
  ASSERT_EQ(stale.request().kind(), Decision::Kind::Wait);  // queued behind the first

  write.respond(200, kBody2);  // no strong backend tag: re-read
  write.end();                 // (the re-read lost: unknown) the turn passes on
  EXPECT_EQ(stale.wakes(), 2);
  ASSERT_EQ(stale.request().kind(), Decision::Kind::Fetch);
  ASSERT_EQ(stale.fetched(fetched_ok(kBody2)).kind(), Decision::Kind::Wait);
  versions_->complete_next();
  Decision refused = stale.request();
  ASSERT_EQ(refused.kind(), Decision::Kind::Reply);
  EXPECT_EQ(refused.status(), 409);
  stale.end();
  EXPECT_EQ(turns_->queued_resources(), 0u);
}

TEST_F(ParkedEtagTest, AWriteThatEndsBeforeItsTurnArrivesLeaksNoTurn) {
  Request gone = request("PUT");
  ASSERT_EQ(gone.request().kind(), Decision::Kind::Wait);
  EXPECT_EQ(turns_->queued_resources(), 1u);  // the store granted it; the answer is on its way
  gone.end();
  EXPECT_EQ(turns_->queued_resources(), 0u);
  EXPECT_EQ(turns_->cancelled(), 1u);
  turns_->delaying = false;
  Request next = request("PUT");
  EXPECT_TRUE(next.request().forwards());  // the turn is free at once
}

TEST_F(ParkedEtagTest, AFailingTurnStoreAnswers503AndWritesNothing) {
  Request write = request("PUT");
  ASSERT_EQ(write.request().kind(), Decision::Kind::Wait);
  turns_->fail_next();
  EXPECT_EQ(turns_->queued_resources(), 0u);
  Decision answer = write.request();
  EXPECT_EQ(answer.status(), 503);
  EXPECT_EQ(problem_type(answer), kStoreUnavailable);
  EXPECT_FALSE(write.has_state());
}

TEST_F(ParkedEtagTest, VerifyCacheParksOnTheTableAndReReadsWhenItFails) {
  EtagPolicyConfig config;
  config.verify = EtagPolicyConfig::Verify::Cache;
  make_policy(config);
  turns_->delaying = false;
  versions_->memory.put("/accounts/1", mint_etag(kBody1));
  Request known_write = request("PUT", {{"If-Match", "\"stale\""}});
  ASSERT_EQ(known_write.request().kind(), Decision::Kind::Wait);
  versions_->complete_next();
  EXPECT_EQ(known_write.request().status(), 409);  // judged against the table's version
  known_write.end();

  Request failed = request("PUT", {{"If-Match", mint_etag(kBody1)}});
  ASSERT_EQ(failed.request().kind(), Decision::Kind::Wait);
  versions_->fail_next();
  EXPECT_EQ(failed.request().kind(), Decision::Kind::Fetch);  // the backend says instead
}

TEST_F(ParkedEtagTest, AQueuedWriteTakesOverATurnWhoseLeaseExpired) {
  versions_->delaying = false;
  turns_->delaying = false;
  Request stuck = request("PUT");
  ASSERT_TRUE(stuck.request().forwards());  // holds the turn, leased for 10 s
  Request next = request("PUT");
  Decision queued = next.request();
  ASSERT_EQ(queued.kind(), Decision::Kind::Wait);
  EXPECT_EQ(queued.deadline(), now_ + 10s);  // the lease's end, before the 30 s queue_timeout
  now_ += 10s;
  ASSERT_TRUE(next.request().forwards());  // recovered, with a new fence
  // The overtaken writer's answer arrives late: it records nothing (the version is unknown).
  versions_->memory.put("/accounts/1", mint_etag(kBody1));
  stuck.respond(200, kBody2);
  EXPECT_EQ(known(), std::nullopt);
  EXPECT_EQ(policy_->counters().etag_unknown_after_write, 1u);
}

}  // namespace
}  // namespace arbiter
