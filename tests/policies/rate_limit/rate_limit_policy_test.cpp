#include "policies/rate_limit/rate_limit_policy.h"

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "policies/store/memory_bucket_store.h"
#include "tests/policies/policy_test_support.h"

namespace arbiter {
namespace {

using namespace std::chrono_literals;

// The proxy's clock, moved by hand.
using testing::FakeClock;
using testing::problem_body;

// What one request through the policy came to, as the proxy would see it.
struct Outcome {
  Decision decision;
  HeaderList response_headers;  // after on_response, when the request was forwarded
  bool had_state = false;
};

RateLimitConfig limit(std::string name, std::uint64_t count, std::chrono::seconds per, std::uint64_t burst,
                      KeyKind key = KeyKind::ClientAddress, std::string header = {},
                      std::vector<std::string> methods = {}) {
  RateLimitConfig config;
  config.name = std::move(name);
  config.count = count;
  config.per = per;
  config.burst = burst;
  config.key_kind = key;
  config.header = std::move(header);
  config.methods = std::move(methods);
  return config;
}

class RateLimitPolicyTest : public ::testing::Test {
 protected:
  void make_policy(std::vector<RateLimitConfig> limits, bool send_headers = true, std::string route = "orders") {
    policy_ = std::make_unique<RateLimitPolicy>(std::move(route),
                                                RateLimitPolicyConfig{std::move(limits), send_headers}, store_);
  }

  // One request, and for a forwarded one the upstream's 200 through the response phase.
  Outcome send(std::string method = "GET", std::string client = "10.0.0.1", HeaderList headers = {},
               RateLimitPolicy* policy = nullptr) {
    policy = policy ? policy : policy_.get();
    std::unique_ptr<ExchangeState> state;
    RequestView request{method, "/orders/1", "/orders/1", "", headers, client, "orders", {}, "req-1", clock_.now,
                        nullptr};
    Outcome outcome{policy->on_request(request, state), {}, state != nullptr};
    if (outcome.decision.forwards()) {
      outcome.response_headers.add("Content-Type", "application/json");
      ResponseView response{200, outcome.response_headers, nullptr, false, clock_.now};
      RequestView response_request = request;
      policy->on_response(response_request, response, state.get());
    }
    return outcome;
  }

  // Sends until one is refused; how many were admitted.
  int admitted_until_refused(std::string method = "GET", std::string client = "10.0.0.1", HeaderList headers = {}) {
    for (int admitted = 0; admitted < 100000; ++admitted) {
      if (!send(method, client, headers).decision.forwards()) return admitted;
    }
    ADD_FAILURE() << "never refused";
    return -1;
  }

  std::shared_ptr<MemoryBucketStore> store_ = std::make_shared<MemoryBucketStore>();
  std::unique_ptr<RateLimitPolicy> policy_;
  FakeClock clock_;
};

std::string field(const HeaderList& headers, std::string_view name) {
  auto value = headers.find(name);
  return value ? std::string(*value) : "(none)";
}

// ---- One limit ----

TEST_F(RateLimitPolicyTest, AdmitsTheBurstThenRefusesWith429) {
  make_policy({limit("per-client", 20, 1s, 40)});
  EXPECT_EQ(admitted_until_refused(), 40);

  Outcome refused = send();
  ASSERT_EQ(refused.decision.kind(), Decision::Kind::Reply);
  EXPECT_EQ(refused.decision.status(), 429);
  EXPECT_FALSE(refused.had_state);
  const HeaderList& headers = refused.decision.headers();
  EXPECT_EQ(field(headers, "Retry-After"), "1");
  EXPECT_EQ(field(headers, "RateLimit-Policy"), "\"per-client\";q=40;w=2");
  EXPECT_EQ(field(headers, "RateLimit"), "\"per-client\";r=0;t=1");
}

TEST_F(RateLimitPolicyTest, TheProblemNamesTheQuotaAndTheViolatedLimit) {
  make_policy({limit("per-client", 20, 1s, 40)});
  admitted_until_refused();
  Outcome refused = send();
  const Problem& problem = *refused.decision.problem();
  EXPECT_EQ(problem.type, "https://iana.org/assignments/http-problem-types#quota-exceeded");
  nlohmann::json body = problem_body(refused.decision);
  EXPECT_EQ(body["type"], "https://iana.org/assignments/http-problem-types#quota-exceeded");
  EXPECT_EQ(body["title"], "Too many requests");
  EXPECT_EQ(body["status"], 429);
  EXPECT_EQ(body["violated-policies"], nlohmann::json::array({"per-client"}));
  EXPECT_EQ(body["detail"],
            "Rate limit 'per-client' of route 'orders' exceeded (per-client: 20/s, burst 40); nothing was "
            "forwarded. Retry in 1 second.");
}

TEST_F(RateLimitPolicyTest, AdmittedResponsesCarryTheFieldsAsOfTheirAdmission) {
  make_policy({limit("per-client", 20, 1s, 40)});
  Outcome first = send();
  ASSERT_TRUE(first.decision.forwards());
  EXPECT_EQ(field(first.response_headers, "RateLimit-Policy"), "\"per-client\";q=40;w=2");
  // 39 left; full again in 50 ms, which rounds up to 1 s.
  EXPECT_EQ(field(first.response_headers, "RateLimit"), "\"per-client\";r=39;t=1");
  EXPECT_EQ(field(first.response_headers, "Content-Type"), "application/json");  // the rest untouched

  make_policy({limit("slow", 1, 1min, 5)}, true, "slow-route");
  EXPECT_EQ(field(send().response_headers, "RateLimit"), "\"slow\";r=4;t=60");
  EXPECT_EQ(field(send().response_headers, "RateLimit-Policy"), "\"slow\";q=5;w=300");
  for (int i = 0; i < 2; ++i) send();
  // The last token: none left, and the next is a minute away.
  EXPECT_EQ(field(send().response_headers, "RateLimit"), "\"slow\";r=0;t=60");
  clock_.now += 59s;
  EXPECT_EQ(field(send().decision.headers(), "RateLimit"), "\"slow\";r=0;t=1");
}

TEST_F(RateLimitPolicyTest, TheFieldsReplaceTheBackends) {
  make_policy({limit("per-client", 20, 1s, 40)});
  std::unique_ptr<ExchangeState> state;
  HeaderList headers;
  RequestView request{"GET", "/o", "/o", "", headers, "10.0.0.1", "orders", {}, "r", clock_.now, nullptr};
  ASSERT_TRUE(policy_->on_request(request, state).forwards());
  HeaderList response_headers{{"RateLimit", "\"backend\";r=5;t=9"}, {"RateLimit-Policy", "\"backend\";q=10;w=9"}};
  ResponseView response{200, response_headers, nullptr, false, clock_.now};
  policy_->on_response(request, response, state.get());
  EXPECT_EQ(response_headers.count("RateLimit"), 1u);
  EXPECT_EQ(field(response_headers, "RateLimit"), "\"per-client\";r=39;t=1");
  EXPECT_EQ(field(response_headers, "RateLimit-Policy"), "\"per-client\";q=40;w=2");
}

TEST_F(RateLimitPolicyTest, SendHeadersFalseLeavesAdmittedResponsesAlone) {
  make_policy({limit("per-client", 1, 1min, 2)}, false);
  Outcome admitted = send();
  ASSERT_TRUE(admitted.decision.forwards());
  EXPECT_FALSE(admitted.had_state);
  EXPECT_FALSE(admitted.response_headers.contains("RateLimit"));
  EXPECT_FALSE(admitted.response_headers.contains("RateLimit-Policy"));
  send();
  // A 429 always says why.
  Outcome refused = send();
  ASSERT_EQ(refused.decision.status(), 429);
  EXPECT_EQ(field(refused.decision.headers(), "RateLimit"), "\"per-client\";r=0;t=60");
  EXPECT_EQ(field(refused.decision.headers(), "RateLimit-Policy"), "\"per-client\";q=2;w=120");
}

TEST_F(RateLimitPolicyTest, RetryAfterIsRoundedUpAndWaitingItIsEnough) {
  make_policy({limit("per-minute", 1, 1min, 1)});
  ASSERT_TRUE(send().decision.forwards());
  EXPECT_EQ(field(send().decision.headers(), "Retry-After"), "60");
  clock_.now += 30'200ms;  // 29.8 s to go
  Outcome refused = send();
  EXPECT_EQ(field(refused.decision.headers(), "Retry-After"), "30");
  EXPECT_EQ(problem_body(refused.decision)["detail"],
            "Rate limit 'per-minute' of route 'orders' exceeded (per-minute: 1/m, burst 1); nothing was forwarded. "
            "Retry in 30 seconds.");
  clock_.now += 29s;  // 0.8 s to go
  EXPECT_EQ(field(send().decision.headers(), "Retry-After"), "1");
  clock_.now += 1s;  // waited what it was told
  EXPECT_TRUE(send().decision.forwards());
}

TEST_F(RateLimitPolicyTest, ASteadyClientAtTheRateIsNeverRefused) {
  make_policy({limit("per-client", 20, 1s, 1)});
  for (int i = 0; i < 5000; ++i) {
    ASSERT_TRUE(send().decision.forwards()) << i;
    clock_.now += 50ms;
  }
}

TEST_F(RateLimitPolicyTest, NamesAreStructuredFieldStrings) {
  make_policy({limit("say \"hi\" \\ 2", 1, 1s, 1)});
  Outcome admitted = send();
  EXPECT_EQ(field(admitted.response_headers, "RateLimit"), R"("say \"hi\" \\ 2";r=0;t=1)");
}

// ---- Several limits ----

TEST_F(RateLimitPolicyTest, ARequestMustPassEveryLimitAndARefusalGivesTheOthersTokensBack) {
  make_policy({limit("per-client", 1, 1min, 2), limit("global", 1, 1min, 3, KeyKind::Global)});
  EXPECT_TRUE(send("GET", "a").decision.forwards());  // per-client a: 1, global: 2
  Outcome second = send("GET", "a");                  // per-client a: 0, global: 1
  ASSERT_TRUE(second.decision.forwards());
  EXPECT_EQ(field(second.response_headers, "RateLimit"), "\"per-client\";r=0;t=60, \"global\";r=1;t=120");
  EXPECT_EQ(field(second.response_headers, "RateLimit-Policy"), "\"per-client\";q=2;w=120, \"global\";q=3;w=180");

  // a is over its own limit; the global token it took is given back ...
  Outcome refused = send("GET", "a");
  ASSERT_EQ(refused.decision.status(), 429);
  EXPECT_EQ(problem_body(refused.decision)["violated-policies"], nlohmann::json::array({"per-client"}));
  EXPECT_EQ(field(refused.decision.headers(), "RateLimit"), "\"per-client\";r=0;t=60, \"global\";r=1;t=120");
  // ... so b still finds it.
  EXPECT_TRUE(send("GET", "b").decision.forwards());  // per-client b: 1, global: 0

  // Now the global limit refuses b, and b's own token goes back: b keeps 1 for later.
  Outcome global_refused = send("GET", "b");
  ASSERT_EQ(global_refused.decision.status(), 429);
  EXPECT_EQ(problem_body(global_refused.decision)["violated-policies"], nlohmann::json::array({"global"}));
  EXPECT_EQ(field(global_refused.decision.headers(), "RateLimit"), "\"per-client\";r=1;t=60, \"global\";r=0;t=60");

  auto counters = policy_->counters();
  ASSERT_EQ(counters.size(), 2u);
  EXPECT_EQ(counters[0].name, "per-client");
  EXPECT_EQ(counters[0].admitted, 3u);
  EXPECT_EQ(counters[0].limited, 1u);
  EXPECT_EQ(counters[1].name, "global");
  EXPECT_EQ(counters[1].admitted, 3u);
  EXPECT_EQ(counters[1].limited, 1u);
}

TEST_F(RateLimitPolicyTest, EveryViolatedLimitIsNamedAndRetryAfterWaitsForTheSlowest) {
  make_policy({limit("per-second", 1, 1s, 1), limit("per-minute", 1, 1min, 1), limit("per-hour", 100, 1h, 50)});
  ASSERT_TRUE(send().decision.forwards());
  Outcome refused = send();
  ASSERT_EQ(refused.decision.status(), 429);
  nlohmann::json body = problem_body(refused.decision);
  EXPECT_EQ(body["violated-policies"], nlohmann::json::array({"per-second", "per-minute"}));
  EXPECT_EQ(body["detail"],
            "Rate limits 'per-second' and 'per-minute' of route 'orders' exceeded (per-second: 1/s, burst 1; "
            "per-minute: 1/m, burst 1); nothing was forwarded. Retry in 60 seconds.");
  EXPECT_EQ(field(refused.decision.headers(), "Retry-After"), "60");
  // per-hour admitted and gave its token back: 49 left, full in 36 s.
  EXPECT_EQ(field(refused.decision.headers(), "RateLimit"),
            "\"per-second\";r=0;t=1, \"per-minute\";r=0;t=60, \"per-hour\";r=49;t=36");
  EXPECT_EQ(field(refused.decision.headers(), "RateLimit-Policy"),
            "\"per-second\";q=1;w=1, \"per-minute\";q=1;w=60, \"per-hour\";q=50;w=1800");
  auto counters = policy_->counters();
  EXPECT_EQ(counters[0].limited, 1u);
  EXPECT_EQ(counters[1].limited, 1u);
  EXPECT_EQ(counters[2].limited, 0u);
  EXPECT_EQ(counters[2].admitted, 1u);
}

// More limits than a request's state keeps inline (4): the outcomes of all six are kept, in order.
TEST_F(RateLimitPolicyTest, ARouteWithManyLimitsKeepsEveryOutcome) {
  std::vector<RateLimitConfig> limits;
  for (int i = 1; i <= 6; ++i) limits.push_back(limit("l" + std::to_string(i), 1, 1min, i == 6 ? 1 : 10));
  make_policy(limits);
  Outcome admitted = send();
  ASSERT_TRUE(admitted.decision.forwards());
  EXPECT_EQ(field(admitted.response_headers, "RateLimit"),
            "\"l1\";r=9;t=60, \"l2\";r=9;t=60, \"l3\";r=9;t=60, \"l4\";r=9;t=60, \"l5\";r=9;t=60, "
            "\"l6\";r=0;t=60");
  Outcome refused = send();  // l6 is empty: the five others give their tokens back
  ASSERT_EQ(refused.decision.status(), 429);
  EXPECT_EQ(problem_body(refused.decision)["violated-policies"], nlohmann::json::array({"l6"}));
  EXPECT_EQ(field(refused.decision.headers(), "RateLimit"),
            "\"l1\";r=9;t=60, \"l2\";r=9;t=60, \"l3\";r=9;t=60, \"l4\";r=9;t=60, \"l5\";r=9;t=60, "
            "\"l6\";r=0;t=60");
}

// ---- Keys ----

TEST_F(RateLimitPolicyTest, EachClientAddressHasItsOwnBucket) {
  make_policy({limit("per-client", 1, 1min, 2)});
  EXPECT_EQ(admitted_until_refused("GET", "10.0.0.1"), 2);
  EXPECT_EQ(admitted_until_refused("GET", "10.0.0.2"), 2);
  EXPECT_EQ(admitted_until_refused("GET", "::1"), 2);
}

TEST_F(RateLimitPolicyTest, AHeaderKeyGivesEachValueItsOwnBucketWhateverTheAddress) {
  make_policy({limit("per-key", 1, 1min, 2, KeyKind::Header, "X-Api-Key")});
  EXPECT_EQ(admitted_until_refused("GET", "10.0.0.1", {{"X-Api-Key", "alpha"}}), 2);
  EXPECT_FALSE(send("GET", "10.0.0.2", {{"x-api-key", "alpha"}}).decision.forwards());  // same key, other address
  EXPECT_EQ(admitted_until_refused("GET", "10.0.0.1", {{"X-Api-Key", "beta"}}), 2);
}

TEST_F(RateLimitPolicyTest, WithoutTheHeaderTheClientAddressIsTheKey) {
  make_policy({limit("per-key", 1, 1min, 2, KeyKind::Header, "X-Api-Key")});
  EXPECT_EQ(admitted_until_refused("GET", "10.0.0.1"), 2);
  EXPECT_FALSE(send("GET", "10.0.0.1", {{"X-Api-Key", ""}}).decision.forwards());  // empty: as if absent
  EXPECT_EQ(admitted_until_refused("GET", "10.0.0.2"), 2);
  // Sending another client's address as the key does not spend that client's tokens.
  EXPECT_EQ(admitted_until_refused("GET", "10.0.0.9", {{"X-Api-Key", "10.0.0.3"}}), 2);
  EXPECT_EQ(admitted_until_refused("GET", "10.0.0.3"), 2);
}

// Issue #12 item 6: with max_keys reached, a client rotating X-Api-Key values must not get a
// spent victim's bucket forgotten (and so refilled), nor a fresh burst for every key.
TEST_F(RateLimitPolicyTest, RotatingKeysNeitherResetAVictimNorEscapeTheLimit) {
  RateLimitConfig per_key = limit("per-key", 20, 1s, 40, KeyKind::Header, "X-Api-Key");
  per_key.max_keys = 10;
  make_policy({per_key});
  EXPECT_EQ(admitted_until_refused("GET", "10.0.0.1", {{"X-Api-Key", "victim"}}), 40);
  int attacker_admitted = 0;
  for (int i = 0; i < 1000; ++i) {
    if (send("GET", "10.0.0.66", {{"X-Api-Key", "rotated-" + std::to_string(i)}}).decision.forwards()) {
      ++attacker_admitted;
    }
  }
  EXPECT_FALSE(send("GET", "10.0.0.1", {{"X-Api-Key", "victim"}}).decision.forwards())
      << "the victim's spent bucket came back full";
  // Nine keys found room of their own; the other 991 shared the overflow bucket's burst.
  EXPECT_EQ(attacker_admitted, 9 + 40);
  RateLimitCounters counters = policy_->counters().at(0);
  EXPECT_EQ(counters.overflow, 991u);
  // A second later every bucket has refilled 20 tokens: the victim gets its 20, not a fresh 40,
  // and the attacker's one-token buckets are full again, so new keys get buckets of their own.
  clock_.now += 1s;
  EXPECT_EQ(admitted_until_refused("GET", "10.0.0.1", {{"X-Api-Key", "victim"}}), 20);
  EXPECT_TRUE(send("GET", "10.0.0.66", {{"X-Api-Key", "later"}}).decision.forwards());
  EXPECT_EQ(policy_->counters().at(0).overflow, 991u);
}

TEST_F(RateLimitPolicyTest, AGlobalLimitIsOneBucketForEveryone) {
  make_policy({limit("global", 1, 1min, 3, KeyKind::Global)});
  EXPECT_TRUE(send("GET", "a").decision.forwards());
  EXPECT_TRUE(send("GET", "b", {{"X-Api-Key", "k"}}).decision.forwards());
  EXPECT_TRUE(send("GET", "c").decision.forwards());
  EXPECT_FALSE(send("GET", "d").decision.forwards());
}

TEST_F(RateLimitPolicyTest, TwoRoutesNeverShareBuckets) {
  make_policy({limit("global", 1, 1min, 1, KeyKind::Global)}, true, "orders");
  RateLimitPolicy other("users", RateLimitPolicyConfig{{limit("global", 1, 1min, 1, KeyKind::Global)}, true}, store_);
  EXPECT_EQ(policy_->limit_id(0), "orders/global");
  EXPECT_EQ(other.limit_id(0), "users/global");
  EXPECT_TRUE(send().decision.forwards());
  EXPECT_FALSE(send().decision.forwards());
  EXPECT_TRUE(send("GET", "10.0.0.1", {}, &other).decision.forwards());
}

TEST_F(RateLimitPolicyTest, APolicyMadeAgainFindsItsBucketsWhereTheyWere) {
  make_policy({limit("per-client", 1, 1min, 2)});
  EXPECT_EQ(admitted_until_refused(), 2);
  make_policy({limit("per-client", 1, 1min, 2)});  // the route configured again, unchanged
  EXPECT_FALSE(send().decision.forwards());
}

TEST_F(RateLimitPolicyTest, APolicyMadeAgainWithAChangedLimitKeepsTheSpentTokens) {
  make_policy({limit("per-client", 1, 1min, 5)});
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(send().decision.forwards());
  make_policy({limit("per-client", 1, 1min, 10)});  // a reload raised the burst: 2 left, not 10
  Outcome first = send();
  ASSERT_TRUE(first.decision.forwards());
  EXPECT_EQ(field(first.response_headers, "RateLimit"), "\"per-client\";r=1;t=540");
  EXPECT_EQ(admitted_until_refused(), 1);
  make_policy({limit("per-client", 60, 1h, 1)});  // and another: still nothing left
  EXPECT_FALSE(send().decision.forwards());
  EXPECT_TRUE(send("GET", "10.0.0.2").decision.forwards());  // a client never seen has its burst
}

TEST(RateLimitConfigTest, EqualityTellsAChangedLimitFromAnUnchangedOne) {
  EXPECT_EQ(RateLimitConfig{}, RateLimitConfig{});
  RateLimitConfig base = limit("a", 10, 1s, 20, KeyKind::Header, "X-Api-Key", {"POST"});
  EXPECT_EQ(base, limit("a", 10, 1s, 20, KeyKind::Header, "X-Api-Key", {"POST"}));
  EXPECT_NE(base, limit("b", 10, 1s, 20, KeyKind::Header, "X-Api-Key", {"POST"}));
  EXPECT_NE(base, limit("a", 11, 1s, 20, KeyKind::Header, "X-Api-Key", {"POST"}));
  EXPECT_NE(base, limit("a", 10, 1min, 20, KeyKind::Header, "X-Api-Key", {"POST"}));
  EXPECT_NE(base, limit("a", 10, 1s, 21, KeyKind::Header, "X-Api-Key", {"POST"}));
  EXPECT_NE(base, limit("a", 10, 1s, 20, KeyKind::ClientAddress, "X-Api-Key", {"POST"}));
  EXPECT_NE(base, limit("a", 10, 1s, 20, KeyKind::Header, "X-Other", {"POST"}));
  EXPECT_NE(base, limit("a", 10, 1s, 20, KeyKind::Header, "X-Api-Key", {"POST", "PUT"}));
  RateLimitConfig fewer_keys = base;
  fewer_keys.max_keys = 10;
  EXPECT_NE(base, fewer_keys);
}

TEST(RateLimitConfigTest, PolicyConfigEqualityLooksAtEveryLimitAndTheHeaders) {
  RateLimitPolicyConfig config{{limit("a", 1, 1s, 1), limit("b", 2, 1s, 2)}, true};
  EXPECT_EQ(config, (RateLimitPolicyConfig{{limit("a", 1, 1s, 1), limit("b", 2, 1s, 2)}, true}));
  EXPECT_NE(config, (RateLimitPolicyConfig{{limit("a", 1, 1s, 1), limit("b", 2, 1s, 2)}, false}));
  EXPECT_NE(config, (RateLimitPolicyConfig{{limit("a", 1, 1s, 1), limit("b", 2, 1s, 3)}, true}));
  EXPECT_NE(config, (RateLimitPolicyConfig{{limit("b", 2, 1s, 2), limit("a", 1, 1s, 1)}, true}));  // order counts
  EXPECT_NE(config, (RateLimitPolicyConfig{{limit("a", 1, 1s, 1)}, true}));
}

// ---- Methods ----

TEST_F(RateLimitPolicyTest, OnlyTheListedMethodsSpendTokens) {
  make_policy({limit("writes", 1, 1min, 1, KeyKind::ClientAddress, {}, {"POST", "PUT"})});
  for (int i = 0; i < 10; ++i) {
    Outcome read = send("GET");
    ASSERT_TRUE(read.decision.forwards());
    EXPECT_FALSE(read.had_state);
    EXPECT_FALSE(read.response_headers.contains("RateLimit"));  // no limit applied to it
  }
  Outcome write = send("POST");
  ASSERT_TRUE(write.decision.forwards());
  EXPECT_EQ(field(write.response_headers, "RateLimit"), "\"writes\";r=0;t=60");
  EXPECT_EQ(send("PUT").decision.status(), 429);
  EXPECT_TRUE(send("DELETE").decision.forwards());
  EXPECT_TRUE(send("post").decision.forwards());  // methods are case-sensitive
}

TEST_F(RateLimitPolicyTest, HeadIsNotImpliedByGet) {
  make_policy({limit("reads", 1, 1min, 1, KeyKind::ClientAddress, {}, {"GET"})});
  EXPECT_TRUE(send("GET").decision.forwards());
  EXPECT_FALSE(send("GET").decision.forwards());
  EXPECT_TRUE(send("HEAD").decision.forwards());
}

TEST_F(RateLimitPolicyTest, EachLimitHasItsOwnMethods) {
  make_policy({limit("writes", 1, 1min, 1, KeyKind::ClientAddress, {}, {"POST"}),
               limit("all", 1, 1min, 3)});
  Outcome read = send("GET");
  EXPECT_EQ(field(read.response_headers, "RateLimit"), "\"all\";r=2;t=60");  // only the limit that applied
  Outcome write = send("POST");
  EXPECT_EQ(field(write.response_headers, "RateLimit"), "\"writes\";r=0;t=60, \"all\";r=1;t=120");
  Outcome refused = send("POST");
  EXPECT_EQ(problem_body(refused.decision)["violated-policies"], nlohmann::json::array({"writes"}));
  EXPECT_TRUE(send("GET").decision.forwards());  // "all" got its token back from the refused POST
  EXPECT_FALSE(send("GET").decision.forwards());
}

// ---- Configuration ----

TEST_F(RateLimitPolicyTest, UnnamedLimitsGetNamesFromTheRouteAndTheirPlace) {
  make_policy({limit("", 1, 1s, 1), limit("named", 1, 1s, 1), limit("", 1, 1s, 1)});
  ASSERT_EQ(policy_->config().limits.size(), 3u);
  EXPECT_EQ(policy_->config().limits[0].name, "orders-limit-0");
  EXPECT_EQ(policy_->config().limits[1].name, "named");
  EXPECT_EQ(policy_->config().limits[2].name, "orders-limit-2");
  EXPECT_EQ(policy_->limit_id(2), "orders/orders-limit-2");
  EXPECT_EQ(default_limit_name("r", 4), "r-limit-4");
}

TEST(RateLimitHelpersTest, DefaultBurstIsOneSecondOfRateRoundedUp) {
  EXPECT_EQ(default_burst(20, 1s), 20u);
  EXPECT_EQ(default_burst(100, 1min), 2u);
  EXPECT_EQ(default_burst(120, 1min), 2u);
  EXPECT_EQ(default_burst(121, 1min), 3u);
  EXPECT_EQ(default_burst(1000, 1h), 1u);
  EXPECT_EQ(default_burst(1, 1h), 1u);
}

TEST(RateLimitHelpersTest, RateText) {
  EXPECT_EQ(rate_text(20, 1s), "20/s");
  EXPECT_EQ(rate_text(100, 1min), "100/m");
  EXPECT_EQ(rate_text(1000, 1h), "1000/h");
  EXPECT_EQ(rate_text(5, 30s), "5/30s");
}

TEST(RateLimitHelpersTest, LimitNamesArePrintableAscii) {
  EXPECT_TRUE(is_valid_limit_name("per-client"));
  EXPECT_TRUE(is_valid_limit_name("a b \"c\""));
  EXPECT_FALSE(is_valid_limit_name(""));
  EXPECT_FALSE(is_valid_limit_name("tab\there"));
  EXPECT_FALSE(is_valid_limit_name("caf\xC3\xA9"));
}

TEST(RateLimitPolicyConstructionTest, RefusesWhatTheLoaderWouldHave) {
  auto store = std::make_shared<MemoryBucketStore>();
  auto make = [&](std::vector<RateLimitConfig> limits) {
    RateLimitPolicy policy("r", RateLimitPolicyConfig{std::move(limits), true}, store);
  };
  EXPECT_THROW(make({}), std::invalid_argument);
  EXPECT_THROW(make({limit("a", 0, 1s, 1)}), std::invalid_argument);
  EXPECT_THROW(make({limit("a", 1, 0s, 1)}), std::invalid_argument);
  EXPECT_THROW(make({limit("a", 1, 1s, 0)}), std::invalid_argument);
  EXPECT_THROW(make({limit("a", 7, 1h, 6'000'000)}), std::invalid_argument);
  EXPECT_THROW(make({limit("a", 1, 1s, 1, KeyKind::Header)}), std::invalid_argument);
  EXPECT_THROW(make({limit("a", 1, 1s, 1), limit("a", 2, 1s, 1)}), std::invalid_argument);
  EXPECT_THROW(make({limit("r-limit-1", 1, 1s, 1), limit("", 2, 1s, 1)}), std::invalid_argument);
  EXPECT_THROW(make({limit("new\nline", 1, 1s, 1)}), std::invalid_argument);
  EXPECT_THROW(RateLimitPolicy("r", RateLimitPolicyConfig{{limit("a", 1, 1s, 1)}, true}, nullptr),
               std::invalid_argument);
  EXPECT_NO_THROW(make({limit("a", 1, 1s, 1, KeyKind::Header, "X-Api-Key")}));
}

TEST_F(RateLimitPolicyTest, KindAndCounters) {
  make_policy({limit("per-client", 1, 1min, 2)});
  EXPECT_EQ(policy_->kind(), "rate_limit");
  admitted_until_refused();
  send();
  auto counters = policy_->counters();
  ASSERT_EQ(counters.size(), 1u);
  EXPECT_EQ(counters[0].admitted, 2u);
  EXPECT_EQ(counters[0].limited, 2u);
}

}  // namespace
}  // namespace arbiter
