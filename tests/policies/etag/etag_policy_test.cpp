#include "policies/etag/etag_policy.h"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <zlib.h>

#include "policies/etag/etag.h"
#include "policies/store/memory_version_store.h"
#include "policies/store/memory_write_queues.h"
#include "proxy/http/path_normalization.h"
#include "tests/policies/counting_waker.h"
#include "tests/policies/etag/etag_test_support.h"
#include "tests/policies/policy_test_support.h"

namespace arbiter {
namespace {

using namespace etag_testing;

using namespace std::chrono_literals;

// The proxy's clock, moved by hand.
using testing::FakeClock;
using testing::problem_body;

std::vector<std::string> stripped(const Decision& decision) { return decision.strip_fields(); }
const std::vector<std::string> kPreconditionFields = {"If-Match", "If-None-Match"};

const std::string kBody1 = R"({"id":1,"balance":10})";
const std::string kBody2 = R"({"id":1,"balance":20})";

class EtagPolicyTest : public ::testing::Test {
 protected:
  void make_policy(EtagPolicyConfig config) {
    store_ = std::make_shared<MemoryVersionStore>(config.max_entries);
    policy_ = std::make_unique<EtagPolicy>("accounts", std::move(config), store_, turns_);
  }
  void SetUp() override { make_policy(EtagPolicyConfig{}); }

  // The tag the table shows for a resource (the newest of its current version's names).
  std::optional<std::string> known(std::string_view resource) {
    auto stored = store_->get(resource);
    if (!stored) return std::nullopt;
    return decode_version_tags(*stored).primary();
  }

  EtagExchange exchange(std::string method, std::string target, HeaderList headers = {}) {
    return EtagExchange(*policy_, clock_, std::move(method), std::move(target), std::move(headers));
  }

  // The ETag a GET of /accounts/1 leaves with when the backend answers 200 with these fields and
  // body ("" and a test failure when it leaves without one).
  std::string read_tag(HeaderList request_headers, HeaderList response_headers, std::string body) {
    EtagExchange read = exchange("GET", "/accounts/1", std::move(request_headers));
    read.request();
    read.respond(200, std::move(response_headers), std::move(body));
    std::optional<std::string> tag = read.response_etag();
    if (!tag) ADD_FAILURE() << "the read left without an ETag";
    return tag.value_or("");
  }

  // A write with If-Match the tag of kBody1, checked against a backend that still holds kBody1
  // (verify = upstream) and forwarded; what the store knows is then that tag.
  EtagExchange forwarded_write(std::string method = "PUT") {
    EtagExchange write = exchange(std::move(method), "/accounts/1", {{"If-Match", mint_etag(kBody1)}});
    EXPECT_EQ(write.request().kind(), Decision::Kind::Fetch);
    EXPECT_TRUE(write.fetched(fetched_ok(kBody1)).forwards());
    EXPECT_EQ(known("/accounts/1"), mint_etag(kBody1));
    return write;
  }

  FakeClock clock_;
  std::shared_ptr<MemoryVersionStore> store_;
  std::shared_ptr<MemoryWriteQueues> turns_ = std::make_shared<MemoryWriteQueues>();
  std::unique_ptr<EtagPolicy> policy_;
};

// ---- Reads ----

TEST_F(EtagPolicyTest, ReadLeavesWithAMintedEtagAndTheStoreLearnsIt) {
  EtagExchange get = exchange("GET", "/accounts/1");
  Decision decision = get.request();
  EXPECT_TRUE(decision.forwards());
  EXPECT_TRUE(decision.strip_fields().empty());
  ResponseStep step = get.respond(200, {{"Content-Type", "application/json"}}, kBody1);
  EXPECT_FALSE(step.fetch_first);
  EXPECT_EQ(get.status(), 200);
  EXPECT_EQ(get.response_etag(), mint_etag(kBody1));
  EXPECT_EQ(get.response_body(), kBody1);
  EXPECT_EQ(known("/accounts/1"), mint_etag(kBody1));
  EXPECT_EQ(policy_->counters().reads_tagged, 1u);
  EXPECT_EQ(policy_->kind(), "etag");
  EXPECT_EQ(policy_->response_body_limit(), EtagPolicyConfig{}.max_body_bytes);
}

TEST_F(EtagPolicyTest, WeakBackendEtagIsReplaced) {
  EtagExchange get = exchange("GET", "/accounts/1");
  get.request();
  get.respond(200, {{"ETag", "W/\"backend-7\""}}, kBody1);
  EXPECT_EQ(get.response_etag(), mint_etag(kBody1));
}

TEST_F(EtagPolicyTest, StrongBackendEtagIsKeptWithSourceAutoAndReplacedWithHash) {
  EtagExchange get = exchange("GET", "/accounts/1");
  get.request();
  get.respond(200, {{"ETag", "\"backend-7\""}}, kBody1);
  EXPECT_EQ(get.response_etag(), "\"backend-7\"");
  EXPECT_EQ(known("/accounts/1"), "\"backend-7\"");

  EtagPolicyConfig config;
  config.source = EtagPolicyConfig::Source::Hash;
  make_policy(config);
  EtagExchange hashed = exchange("GET", "/accounts/1");
  hashed.request();
  hashed.respond(200, {{"ETag", "\"backend-7\""}}, kBody1);
  EXPECT_EQ(hashed.response_etag(), mint_etag(kBody1));
  EXPECT_EQ(known("/accounts/1"), mint_etag(kBody1));
}

TEST_F(EtagPolicyTest, JsonPointerSourceTagsByTheVersionField) {
  EtagPolicyConfig config;
  config.source = EtagPolicyConfig::Source::JsonPointer;
  config.json_pointer = "/version";
  make_policy(config);
  EtagExchange get = exchange("GET", "/accounts/1");
  get.request();
  get.respond(200, {{"ETag", "\"backend\""}}, R"({"id":1,"version":7,"balance":10})");
  EXPECT_EQ(get.response_etag(), "\"7\"");
  EXPECT_EQ(known("/accounts/1"), "\"7\"");

  // A body without that field is still versioned, by its hash.
  EtagExchange other = exchange("GET", "/accounts/2");
  other.request();
  other.respond(200, {}, R"({"id":2})");
  EXPECT_EQ(other.response_etag(), mint_etag(R"({"id":2})"));
}

TEST_F(EtagPolicyTest, IfNoneMatchMatchingAnswers304WithoutABody) {
  for (std::string if_none_match : {mint_etag(kBody1), "W/" + mint_etag(kBody1), "\"other\", " + mint_etag(kBody1),
                                    std::string("*")}) {
    EtagExchange get = exchange("GET", "/accounts/1", {{"If-None-Match", if_none_match}});
    Decision decision = get.request();
    EXPECT_TRUE(decision.forwards());
    // Arbiter answers it, and If-Modified-Since is ignored beside it (RFC 9110 section 13.1.3).
    EXPECT_EQ(stripped(decision), (std::vector<std::string>{"If-None-Match", "If-Modified-Since"}));
    get.respond(200, {{"Content-Type", "application/json"}}, kBody1);
    EXPECT_EQ(get.status(), 304) << if_none_match;
    EXPECT_EQ(get.response_body(), "");
    EXPECT_EQ(get.response_etag(), mint_etag(kBody1));
  }
  EXPECT_EQ(policy_->counters().not_modified, 4u);
}

TEST_F(EtagPolicyTest, IfNoneMatchNotMatchingGetsTheFullResponse) {
  EtagExchange get = exchange("GET", "/accounts/1", {{"If-None-Match", mint_etag(kBody2)}});
  get.request();
  get.respond(200, {}, kBody1);
  EXPECT_EQ(get.status(), 200);
  EXPECT_EQ(get.response_body(), kBody1);
  EXPECT_EQ(get.response_etag(), mint_etag(kBody1));
  EXPECT_EQ(policy_->counters().not_modified, 0u);
}

TEST_F(EtagPolicyTest, MalformedIfNoneMatchOnAReadIsIgnored) {
  EtagExchange get = exchange("GET", "/accounts/1", {{"If-None-Match", "junk"}});
  get.request();
  get.respond(200, {}, kBody1);
  EXPECT_EQ(get.status(), 200);
  EXPECT_EQ(get.response_etag(), mint_etag(kBody1));
}

TEST_F(EtagPolicyTest, HeadIsTaggedFromAGetOfThePath) {
  EtagExchange head = exchange("HEAD", "/accounts/1", {{"If-None-Match", mint_etag(kBody1)}});
  head.request();
  ResponseStep step = head.respond(200, {{"Content-Type", "application/json"}}, std::nullopt);
  ASSERT_TRUE(step.fetch_first);
  EXPECT_EQ(step.fetch_target, "/accounts/1");
  head.response_fetched(fetched_ok(kBody1));
  EXPECT_EQ(head.response_etag(), mint_etag(kBody1));
  EXPECT_EQ(head.status(), 304);
  EXPECT_EQ(known("/accounts/1"), mint_etag(kBody1));
}

TEST_F(EtagPolicyTest, HeadWithAStrongBackendTagNeedsNoGet) {
  EtagExchange head = exchange("HEAD", "/accounts/1");
  head.request();
  ResponseStep step = head.respond(200, {{"ETag", "\"b1\""}}, std::nullopt);
  EXPECT_FALSE(step.fetch_first);
  EXPECT_EQ(head.response_etag(), "\"b1\"");
}

TEST_F(EtagPolicyTest, TooLargeReadIsSentWithoutEtagAndForgetsNothing) {
  store_->put("/accounts/1", "\"known\"");
  EtagExchange get = exchange("GET", "/accounts/1");
  get.request();
  get.respond(200, {{"ETag", "W/\"weak\""}}, std::string(10, 'x'), /*withheld=*/true);
  EXPECT_FALSE(get.response_etag().has_value());
  EXPECT_EQ(known("/accounts/1"), "\"known\"");
  EXPECT_EQ(policy_->counters().reads_tagged, 0u);
}

TEST_F(EtagPolicyTest, BodyOverMaxBodyBytesIsNotHashedEvenIfShown) {
  EtagPolicyConfig config;
  config.max_body_bytes = 8;  // another policy of the route may buffer more than this one wants
  make_policy(config);
  EtagExchange get = exchange("GET", "/accounts/1");
  get.request();
  get.respond(200, {}, kBody1);
  EXPECT_FALSE(get.response_etag().has_value());
  EXPECT_EQ(store_->size(), 0u);
}

TEST_F(EtagPolicyTest, NonSuccessAndPartialReadsAreLeftAlone) {
  for (int status : {206, 301, 404, 500}) {
    EtagExchange get = exchange("GET", "/accounts/1");
    get.request();
    get.respond(status, {{"ETag", "W/\"w\""}}, "body");
    EXPECT_EQ(get.response_etag(), "W/\"w\"") << status;
    EXPECT_EQ(get.status(), status);
  }
  EXPECT_EQ(store_->size(), 0u);
}

TEST_F(EtagPolicyTest, ReadWithAQueryIsTaggedButNotRemembered) {
  EtagExchange get = exchange("GET", "/accounts/1?fields=balance");
  get.request();
  get.respond(200, {}, R"({"balance":10})");
  EXPECT_EQ(get.response_etag(), mint_etag(R"({"balance":10})"));
  EXPECT_FALSE(known("/accounts/1").has_value());
}

TEST_F(EtagPolicyTest, ASlowReadDoesNotOverwriteWhatAWriteEstablished) {
  EtagExchange get = exchange("GET", "/accounts/1");
  get.request();  // the read starts

  EtagExchange put = exchange("PUT", "/accounts/1");
  ASSERT_TRUE(put.request().forwards());
  put.respond(200, {{"ETag", "\"after-write\""}}, "");
  put.end();

  get.respond(200, {}, kBody1);  // what the backend held before the write
  EXPECT_EQ(get.response_etag(), mint_etag(kBody1));
  EXPECT_EQ(known("/accounts/1"), "\"after-write\"");
}

TEST_F(EtagPolicyTest, OtherMethodsPassUntouched) {
  EtagExchange options = exchange("OPTIONS", "/accounts/1", {{"If-Match", "junk"}});
  Decision decision = options.request();
  EXPECT_TRUE(decision.forwards());
  EXPECT_TRUE(decision.strip_fields().empty());
  EXPECT_FALSE(options.has_state());
}

// ---- Writes: what they must carry ----

TEST_F(EtagPolicyTest, WriteWithoutIfMatchGets428WhenRequired) {
  EtagPolicyConfig config;
  config.require_if_match = true;
  make_policy(config);
  for (std::string method : {"PUT", "PATCH", "DELETE", "POST"}) {
    EtagExchange write = exchange(method, "/accounts/1");
    Decision decision = write.request();
    ASSERT_EQ(decision.kind(), Decision::Kind::Reply) << method;
    EXPECT_EQ(decision.status(), 428);
    nlohmann::json body = problem_body(decision);
    EXPECT_EQ(body["type"], "urn:arbiter:problem:precondition-required");
    EXPECT_EQ(body["title"], "Precondition required");
    EXPECT_EQ(body["status"], 428);
    EXPECT_EQ(body["resource"], "/accounts/1");
    std::string detail = body["detail"];
    EXPECT_NE(detail.find("GET it"), std::string::npos) << detail;
    EXPECT_NE(detail.find("If-Match"), std::string::npos) << detail;
    EXPECT_FALSE(write.has_state());
  }
  EXPECT_EQ(policy_->counters().precondition_required, 4u);
  EXPECT_EQ(turns_->queued_resources(), 0u);
}

TEST_F(EtagPolicyTest, IfNoneMatchStarSatisfiesRequireIfMatchAndCreates) {
  EtagPolicyConfig config;
  config.require_if_match = true;
  make_policy(config);
  EtagExchange put = exchange("PUT", "/accounts/9", {{"If-None-Match", "*"}});
  ASSERT_EQ(put.request().kind(), Decision::Kind::Fetch);
  Decision decision = put.fetched(fetched_status(404));
  EXPECT_TRUE(decision.forwards());
  EXPECT_EQ(stripped(decision), kPreconditionFields);
}

TEST_F(EtagPolicyTest, UnconditionalWriteIsForwardedAndItsResponseRefreshesTheEtag) {
  store_->put("/accounts/1", mint_etag(kBody1));
  EtagExchange put = exchange("PUT", "/accounts/1");
  Decision decision = put.request();
  EXPECT_EQ(decision.kind(), Decision::Kind::Forward);
  EXPECT_TRUE(decision.strip_fields().empty());
  ResponseStep step = put.respond(200, {{"ETag", "W/\"weak\""}}, R"({"ok":true})");
  ASSERT_TRUE(step.fetch_first);
  EXPECT_EQ(step.fetch_target, "/accounts/1");
  EXPECT_FALSE(put.response_etag().has_value());  // the weak one is gone
  put.response_fetched(fetched_ok(kBody2));
  EXPECT_EQ(put.response_etag(), mint_etag(kBody2));
  EXPECT_EQ(known("/accounts/1"), mint_etag(kBody2));
  EXPECT_EQ(policy_->counters().writes_forwarded, 1u);
}

TEST_F(EtagPolicyTest, MalformedIfMatchGets400) {
  for (std::string value : {"abc", "W/abc", "*, \"a\"", "\"unterminated"}) {
    EtagExchange put = exchange("PUT", "/accounts/1", {{"If-Match", value}});
    Decision decision = put.request();
    ASSERT_EQ(decision.kind(), Decision::Kind::Reply) << value;
    EXPECT_EQ(decision.status(), 400);
    nlohmann::json body = problem_body(decision);
    EXPECT_EQ(body["type"], "urn:arbiter:problem:malformed-precondition");
    EXPECT_NE(std::string(body["detail"]).find(value), std::string::npos);
  }
  EtagExchange put = exchange("PUT", "/accounts/1", {{"If-None-Match", "W/"}});
  EXPECT_EQ(put.request().status(), 400);
  EXPECT_EQ(turns_->queued_resources(), 0u);
}

// ---- Writes: the check ----

TEST_F(EtagPolicyTest, StaleIfMatchGets409WithTheCurrentEtag) {
  std::string yours = mint_etag(kBody1);
  std::string current = mint_etag(kBody2);
  EtagExchange put = exchange("PUT", "/accounts/1", {{"If-Match", yours}});
  Decision fetch = put.request();
  ASSERT_EQ(fetch.kind(), Decision::Kind::Fetch);
  EXPECT_EQ(fetch.fetch_target(), "/accounts/1");
  Decision decision = put.fetched(fetched_ok(kBody2));

  ASSERT_EQ(decision.kind(), Decision::Kind::Reply);
  EXPECT_EQ(decision.status(), 409);
  EXPECT_EQ(decision.headers().find("ETag"), current);
  nlohmann::json body = problem_body(decision);
  EXPECT_EQ(body["type"], "urn:arbiter:problem:edit-conflict");
  EXPECT_EQ(body["title"], "Edit conflict");
  EXPECT_EQ(body["status"], 409);
  EXPECT_EQ(body["detail"], "The resource changed since your version; GET it again and reapply your change.");
  EXPECT_EQ(body["resource"], "/accounts/1");
  EXPECT_EQ(body["your_etag"], yours);
  EXPECT_EQ(body["current_etag"], current);

  EtagCounters counters = policy_->counters();
  EXPECT_EQ(counters.conflicts, 1u);
  EXPECT_EQ(counters.writes_forwarded, 0u);
  auto conflicts = published_events(*policy_);
  ASSERT_EQ(conflicts.size(), 1u);
  EXPECT_EQ(conflicts[0].type, "conflict");
  EXPECT_EQ(conflicts[0].route, "accounts");
  EXPECT_EQ(conflicts[0].resource, "/accounts/1");
  EXPECT_EQ(conflicts[0].method, "PUT");
  EXPECT_EQ(nlohmann::json::parse(conflicts[0].details)["precondition"], "If-Match");
  EXPECT_EQ(nlohmann::json::parse(conflicts[0].details)["status"], 409);
  EXPECT_EQ(conflicts[0].your_etag, yours);
  EXPECT_EQ(conflicts[0].current_etag, current);
  EXPECT_EQ(conflicts[0].request_id, "req-7");
  // The problem names the conflict's record, where both sides are and it can be settled.
  EXPECT_EQ(body["conflict_id"], conflicts[0].id);
  EXPECT_EQ(body["conflict_record"], "/_arbiter/conflicts/" + std::to_string(conflicts[0].id));
  // What the check read is now the known version.
  EXPECT_EQ(known("/accounts/1"), current);
}

TEST_F(EtagPolicyTest, ConflictStatus412) {
  EtagPolicyConfig config;
  config.conflict_status = 412;
  make_policy(config);
  EtagExchange put = exchange("PATCH", "/accounts/1", {{"If-Match", "\"old\", \"older\""}});
  put.request();
  Decision decision = put.fetched(fetched_ok(kBody2));
  EXPECT_EQ(decision.status(), 412);
  nlohmann::json body = problem_body(decision);
  EXPECT_EQ(body["status"], 412);
  EXPECT_EQ(body["type"], "urn:arbiter:problem:edit-conflict");
  EXPECT_EQ(body["your_etag"], "\"old\", \"older\"");  // as sent
  EXPECT_EQ(body["current_etag"], mint_etag(kBody2));
  EXPECT_EQ(decision.headers().find("ETag"), mint_etag(kBody2));
}

TEST_F(EtagPolicyTest, MatchingIfMatchIsForwardedWithoutThePreconditions) {
  EtagExchange put = exchange("PUT", "/accounts/1", {{"If-Match", mint_etag(kBody1)}});
  ASSERT_EQ(put.request().kind(), Decision::Kind::Fetch);
  Decision decision = put.fetched(fetched_ok(kBody1));
  EXPECT_EQ(decision.kind(), Decision::Kind::Forward);
  EXPECT_EQ(stripped(decision), kPreconditionFields);
  EXPECT_EQ(policy_->counters().writes_forwarded, 1u);
  EXPECT_EQ(policy_->counters().conflicts, 0u);
}

TEST_F(EtagPolicyTest, AListMatchesIfAnyTagDoes) {
  EtagExchange put = exchange("PUT", "/accounts/1", {{"If-Match", "\"nope\""}, {"If-Match", mint_etag(kBody1)}});
  put.request();
  EXPECT_TRUE(put.fetched(fetched_ok(kBody1)).forwards());
}

TEST_F(EtagPolicyTest, AWeakIfMatchNeverMatches) {
  EtagExchange put = exchange("PUT", "/accounts/1", {{"If-Match", "W/" + mint_etag(kBody1)}});
  put.request();
  Decision decision = put.fetched(fetched_ok(kBody1));
  EXPECT_EQ(decision.status(), 409);
  EXPECT_EQ(problem_body(decision)["current_etag"], mint_etag(kBody1));
}

TEST_F(EtagPolicyTest, IfMatchStarNeedsTheResourceToExist) {
  EtagExchange exists = exchange("PUT", "/accounts/1", {{"If-Match", "*"}});
  exists.request();
  EXPECT_TRUE(exists.fetched(fetched_ok(kBody1)).forwards());
  exists.end();

  EtagExchange missing = exchange("PUT", "/accounts/2", {{"If-Match", "*"}});
  missing.request();
  Decision decision = missing.fetched(fetched_status(404));
  EXPECT_EQ(decision.status(), 409);
  EXPECT_FALSE(decision.headers().contains("ETag"));
  nlohmann::json body = problem_body(decision);
  EXPECT_EQ(body["your_etag"], "*");
  EXPECT_TRUE(body["current_etag"].is_null());
  EXPECT_FALSE(last_published(*policy_).current_etag.has_value());
}

TEST_F(EtagPolicyTest, IfNoneMatchStarRefusesToOverwrite) {
  EtagExchange put = exchange("PUT", "/accounts/1", {{"If-None-Match", "*"}});
  put.request();
  Decision decision = put.fetched(fetched_ok(kBody1));
  EXPECT_EQ(decision.status(), 409);
  EXPECT_EQ(decision.headers().find("ETag"), mint_etag(kBody1));
  nlohmann::json body = problem_body(decision);
  EXPECT_EQ(body["type"], "urn:arbiter:problem:edit-conflict");
  EXPECT_TRUE(body["your_etag"].is_null());
  EXPECT_EQ(body["your_if_none_match"], "*");
  EXPECT_EQ(body["current_etag"], mint_etag(kBody1));
  EXPECT_EQ(nlohmann::json::parse(last_published(*policy_).details)["precondition"], "If-None-Match");
}

TEST_F(EtagPolicyTest, IfNoneMatchListOnAWriteUsesWeakComparison) {
  EtagExchange excluded = exchange("PUT", "/accounts/1", {{"If-None-Match", "W/" + mint_etag(kBody1)}});
  excluded.request();
  Decision decision = excluded.fetched(fetched_ok(kBody1));
  EXPECT_EQ(decision.status(), 409);
  EXPECT_EQ(problem_body(decision)["your_if_none_match"], "W/" + mint_etag(kBody1));
  excluded.end();

  EtagExchange allowed = exchange("PUT", "/accounts/1", {{"If-None-Match", "W/" + mint_etag(kBody1)}});
  allowed.request();
  EXPECT_TRUE(allowed.fetched(fetched_ok(kBody2)).forwards());
}

TEST_F(EtagPolicyTest, VerifyCacheWithAKnownTagDecidesWithoutFetching) {
  EtagPolicyConfig config;
  config.verify = EtagPolicyConfig::Verify::Cache;
  make_policy(config);
  store_->put("/accounts/1", mint_etag(kBody1));

  EtagExchange fresh = exchange("PUT", "/accounts/1", {{"If-Match", mint_etag(kBody1)}});
  Decision decision = fresh.request();
  EXPECT_EQ(decision.kind(), Decision::Kind::Forward);
  EXPECT_EQ(stripped(decision), kPreconditionFields);
  fresh.end();  // no response seen: the tag becomes unknown
  store_->put("/accounts/1", mint_etag(kBody1));

  EtagExchange stale = exchange("PUT", "/accounts/1", {{"If-Match", mint_etag(kBody2)}});
  decision = stale.request();
  EXPECT_EQ(decision.kind(), Decision::Kind::Reply);
  EXPECT_EQ(decision.status(), 409);
  EXPECT_EQ(decision.headers().find("ETag"), mint_etag(kBody1));
}

TEST_F(EtagPolicyTest, VerifyCacheWithAnUnknownTagFetches) {
  EtagPolicyConfig config;
  config.verify = EtagPolicyConfig::Verify::Cache;
  make_policy(config);
  EtagExchange put = exchange("PUT", "/accounts/1", {{"If-Match", mint_etag(kBody1)}});
  Decision decision = put.request();
  ASSERT_EQ(decision.kind(), Decision::Kind::Fetch);
  EXPECT_TRUE(put.fetched(fetched_ok(kBody1)).forwards());
}

TEST_F(EtagPolicyTest, VerifyUpstreamFetchesEvenWhenTheTagIsKnown) {
  store_->put("/accounts/1", mint_etag(kBody1));
  EtagExchange put = exchange("PUT", "/accounts/1?dry_run=false", {{"If-Match", mint_etag(kBody1)}});
  Decision decision = put.request();
  ASSERT_EQ(decision.kind(), Decision::Kind::Fetch);
  EXPECT_EQ(decision.fetch_target(), "/accounts/1");  // the resource, not the write's query
}

TEST_F(EtagPolicyTest, VerifyUpstreamCatchesAWriteMadeBehindArbitersBack) {
  EtagExchange get = exchange("GET", "/accounts/1");
  get.request();
  get.respond(200, {}, kBody1);
  get.end();
  // Someone changes the record directly at the backend; the client still holds the old tag.
  EtagExchange put = exchange("PUT", "/accounts/1", {{"If-Match", mint_etag(kBody1)}});
  put.request();
  Decision decision = put.fetched(fetched_ok(kBody2));
  EXPECT_EQ(decision.status(), 409);
  EXPECT_EQ(problem_body(decision)["current_etag"], mint_etag(kBody2));
}

TEST_F(EtagPolicyTest, AFailedReReadAnswers503AndForwardsNothing) {
  for (const FetchedResponse& failure : {unreachable(), fetched_status(500), fetched_status(503),
                                         fetched_status(401)}) {
    EtagExchange put = exchange("PUT", "/accounts/1", {{"If-Match", mint_etag(kBody1)}});
    put.request();
    Decision decision = put.fetched(failure);
    ASSERT_EQ(decision.kind(), Decision::Kind::Reply);
    EXPECT_EQ(decision.status(), 503);
    EXPECT_EQ(decision.headers().find("Retry-After"), "1");
    nlohmann::json body = problem_body(decision);
    EXPECT_EQ(body["type"], "urn:arbiter:problem:version-unavailable");
    EXPECT_NE(std::string(body["detail"]).find("Could not read the current version"), std::string::npos)
        << body["detail"];
    put.end();
    EXPECT_EQ(turns_->queued_resources(), 0u);
  }
  EXPECT_EQ(policy_->counters().verify_failures, 4u);
  EXPECT_EQ(policy_->counters().writes_forwarded, 0u);
  EXPECT_EQ(policy_->counters().etag_unknown_after_write, 0u);
}

TEST_F(EtagPolicyTest, ATooLargeResourceCannotBeVersioned) {
  store_->put("/accounts/1", "\"stale\"");
  EtagExchange put = exchange("PUT", "/accounts/1", {{"If-Match", "\"whatever\""}});
  put.request();
  Decision decision = put.fetched(fetched_too_large());
  ASSERT_EQ(decision.kind(), Decision::Kind::Reply);
  EXPECT_EQ(decision.status(), 412);
  nlohmann::json body = problem_body(decision);
  EXPECT_EQ(body["type"], "urn:arbiter:problem:version-unverifiable");
  EXPECT_EQ(body["max_body_bytes"], EtagPolicyConfig{}.max_body_bytes);
  EXPECT_NE(std::string(body["detail"]).find("max_body_bytes"), std::string::npos);
  EXPECT_FALSE(known("/accounts/1").has_value());  // what it was is not known any more
  put.end();

  // If-Match: * needs existence only.
  EtagExchange star = exchange("PUT", "/accounts/1", {{"If-Match", "*"}});
  star.request();
  EXPECT_TRUE(star.fetched(fetched_too_large()).forwards());
}

TEST_F(EtagPolicyTest, ResourceTemplateKeysByTheRouteParams) {
  EtagPolicyConfig config;
  config.resource = "/accounts/{id}";
  make_policy(config);
  std::vector<PathParam> params = {{"id", "5"}, {"part", "profile"}};
  EtagExchange get(*policy_, clock_, "GET", "/accounts/5/profile", {}, params);
  get.request();
  get.respond(200, {}, kBody1);
  EXPECT_EQ(known("/accounts/5"), mint_etag(kBody1));
  EXPECT_FALSE(known("/accounts/5/profile").has_value());

  EtagExchange put(*policy_, clock_, "PUT", "/accounts/5/profile", {{"If-Match", "\"old\""}}, params);
  put.request();
  Decision decision = put.fetched(fetched_ok(kBody2));
  EXPECT_EQ(problem_body(decision)["resource"], "/accounts/5");
}

// ---- Writes: the new version ----

TEST_F(EtagPolicyTest, AStrongBackendTagOnTheWriteResponseIsTheNewVersion) {
  EtagExchange put = forwarded_write();
  ResponseStep step = put.respond(200, {{"ETag", "\"v2\""}}, std::nullopt);
  EXPECT_FALSE(step.fetch_first);
  EXPECT_EQ(put.response_etag(), "\"v2\"");
  EXPECT_EQ(known("/accounts/1"), "\"v2\"");
  put.end();
  EXPECT_EQ(known("/accounts/1"), "\"v2\"");  // settled: ending changes nothing
  EXPECT_EQ(policy_->counters().etag_unknown_after_write, 0u);
}

TEST_F(EtagPolicyTest, WithoutAStrongTagTheWriteIsFollowedByAReRead) {
  EtagExchange put = forwarded_write("PATCH");
  ResponseStep step = put.respond(204, {{"ETag", "W/\"2\""}}, std::nullopt);
  ASSERT_TRUE(step.fetch_first);
  EXPECT_EQ(step.fetch_target, "/accounts/1");
  put.response_fetched(fetched_ok(kBody2));
  EXPECT_EQ(put.status(), 204);
  EXPECT_EQ(put.response_etag(), mint_etag(kBody2));
  EXPECT_EQ(known("/accounts/1"), mint_etag(kBody2));
  put.end();
  EXPECT_EQ(known("/accounts/1"), mint_etag(kBody2));

  // A GET that follows serves the same tag.
  EtagExchange get = exchange("GET", "/accounts/1");
  get.request();
  get.respond(200, {}, kBody2);
  EXPECT_EQ(get.response_etag(), put.response_etag());
}

// RFC 9110 sections 8.7 and 15.3.1: a 200 whose Content-Location names the target carries its
// representation, which is tagged as a read of it would be; no re-read.
TEST_F(EtagPolicyTest, AnAnswerWhoseContentLocationIsTheTargetIsTheNewVersion) {
  for (std::string location : {"/accounts/1", "1", "http://backend.example/accounts/1", "/accounts/./1?view=full"}) {
    SCOPED_TRACE(location);
    make_policy(EtagPolicyConfig{});
    EtagExchange put = forwarded_write();
    ResponseStep step = put.respond(200, {{"Content-Location", location}}, kBody2);
    EXPECT_FALSE(step.fetch_first);
    EXPECT_EQ(put.response_etag(), mint_etag(kBody2));
    EXPECT_EQ(known("/accounts/1"), mint_etag(kBody2));
    put.end();
    EXPECT_EQ(known("/accounts/1"), mint_etag(kBody2));
    EXPECT_EQ(policy_->counters().etag_unknown_after_write, 0u);
    EXPECT_EQ(read_tag({}, {}, kBody2), put.response_etag());  // a GET that follows serves the same tag
  }
  // Another resource's location, or no content: the target is read again.
  for (std::string location : {"/accounts/2", "/accounts/1/history/7", "/accounts"}) {
    SCOPED_TRACE(location);
    make_policy(EtagPolicyConfig{});
    EtagExchange put = forwarded_write();
    EXPECT_TRUE(put.respond(200, {{"Content-Location", location}}, kBody2).fetch_first);
  }
  EtagExchange empty = forwarded_write();
  EXPECT_TRUE(empty.respond(200, {{"Content-Location", "/accounts/1"}}, "").fetch_first);
}

// write_response = "representation": the backend answers every PUT and PATCH with the resource as
// it now is, so that answer is the new version; other answers are re-read as before.
TEST_F(EtagPolicyTest, WithWriteResponseRepresentationAPutOrPatchAnswerIsTheNewVersion) {
  EtagPolicyConfig config;
  config.write_response = EtagPolicyConfig::WriteResponse::Representation;
  for (std::string method : {"PUT", "PATCH"}) {
    SCOPED_TRACE(method);
    make_policy(config);
    EtagExchange write = forwarded_write(method);
    ResponseStep step = write.respond(200, {{"Content-Type", "application/json"}}, kBody2);
    EXPECT_FALSE(step.fetch_first);
    EXPECT_EQ(write.response_etag(), mint_etag(kBody2));
    write.end();
    EXPECT_EQ(known("/accounts/1"), mint_etag(kBody2));
    EXPECT_EQ(policy_->counters().etag_unknown_after_write, 0u);
    EXPECT_EQ(turns_->queued_resources(), 0u);
  }
  // A POST's answer may be about anything; a 204 or an empty 200 has no representation.
  struct Answer {
    std::string method;
    int status;
    std::optional<std::string> body;
  };
  for (const Answer& answer : {Answer{"POST", 200, kBody2}, Answer{"PUT", 204, std::nullopt}, Answer{"PUT", 200, ""}}) {
    SCOPED_TRACE(answer.method + " " + std::to_string(answer.status));
    make_policy(config);
    EtagExchange write = forwarded_write(answer.method);
    ASSERT_TRUE(write.respond(answer.status, {}, answer.body).fetch_first);
    write.response_fetched(fetched_ok(kBody2));
    EXPECT_EQ(write.response_etag(), mint_etag(kBody2));
  }
  // By default the answer is not trusted to be the representation: read again.
  make_policy(EtagPolicyConfig{});
  EXPECT_TRUE(forwarded_write().respond(200, {{"Content-Type", "application/json"}}, kBody2).fetch_first);
}

// Write responses the store is settled by at once, without a re-read.
struct SettledWrite {
  std::string method;
  int status;
  std::optional<std::string> body;
  bool withheld;
  std::optional<std::string> tag_after;  // what the store knows afterwards
  std::uint64_t unknown_after_write;
};

TEST_F(EtagPolicyTest, WriteResponsesThatSettleTheTagWithoutAReRead) {
  const std::vector<SettledWrite> cases = {
      // Refused by the backend: nothing changed, the old tag still holds.
      {"PUT", 422, R"({"error":"negative balance"})", false, mint_etag(kBody1), 0},
      {"PUT", 409, "", false, mint_etag(kBody1), 0},
      // A 5xx may have written half of it; a 3xx says nothing.
      {"PUT", 502, "bad gateway", false, std::nullopt, 1},
      {"PATCH", 500, std::nullopt, false, std::nullopt, 1},
      {"PUT", 302, std::nullopt, false, std::nullopt, 1},
      // Streaming on: the proxy cannot re-read before it.
      {"PUT", 200, std::string(100, 'x'), true, std::nullopt, 1},
      // Gone, and known to be.
      {"DELETE", 204, std::nullopt, false, std::nullopt, 0},
  };
  for (const SettledWrite& write : cases) {
    SCOPED_TRACE(write.method + " " + std::to_string(write.status));
    make_policy(EtagPolicyConfig{});
    EtagExchange exchange = forwarded_write(write.method);
    ResponseStep step = exchange.respond(write.status, {}, write.body, write.withheld);
    EXPECT_FALSE(step.fetch_first);
    EXPECT_EQ(known("/accounts/1"), write.tag_after);
    exchange.end();
    EXPECT_EQ(known("/accounts/1"), write.tag_after);  // settled: the end changes nothing
    EXPECT_EQ(policy_->counters().etag_unknown_after_write, write.unknown_after_write);
    EXPECT_EQ(turns_->queued_resources(), 0u);
  }
}

TEST_F(EtagPolicyTest, AWriteThatEndsWithoutAResponseMakesTheTagUnknown) {
  EtagExchange put = forwarded_write();
  EXPECT_EQ(turns_->queued_resources(), 1u);
  put.end();  // upstream reset, timeout or client gone: on_response never came
  EXPECT_FALSE(known("/accounts/1").has_value());
  EXPECT_EQ(policy_->counters().etag_unknown_after_write, 1u);
  EXPECT_EQ(turns_->queued_resources(), 0u);  // and the turn was released
}

TEST_F(EtagPolicyTest, AWriteThatEndsDuringItsReReadMakesTheTagUnknown) {
  EtagExchange put = forwarded_write();
  ASSERT_TRUE(put.respond(200, {}, "").fetch_first);
  put.end();
  EXPECT_FALSE(known("/accounts/1").has_value());
  EXPECT_EQ(policy_->counters().etag_unknown_after_write, 1u);
}

TEST_F(EtagPolicyTest, AFailedReReadAfterTheWriteMakesTheTagUnknown) {
  for (const FetchedResponse& failure : {unreachable(), fetched_status(500), fetched_too_large()}) {
    EtagExchange put = forwarded_write();
    ASSERT_TRUE(put.respond(200, {}, "").fetch_first);
    put.response_fetched(failure);
    EXPECT_FALSE(put.response_etag().has_value());
    EXPECT_FALSE(known("/accounts/1").has_value());
    put.end();
  }
  EXPECT_EQ(policy_->counters().etag_unknown_after_write, 3u);  // once each, not again at the end
}

TEST_F(EtagPolicyTest, AResourceGoneAfterTheWriteIsForgotten) {
  EtagExchange post = forwarded_write("POST");
  ASSERT_TRUE(post.respond(200, {}, "{}").fetch_first);
  post.response_fetched(fetched_status(404));
  EXPECT_FALSE(post.response_etag().has_value());
  EXPECT_FALSE(known("/accounts/1").has_value());
}

// ---- Writes: the queue ----

TEST_F(EtagPolicyTest, ASecondWriterWaitsAndIsWokenWhenTheFirstEnds) {
  EtagExchange first = exchange("PUT", "/accounts/1");
  ASSERT_TRUE(first.request().forwards());

  EtagExchange second = exchange("PUT", "/accounts/1");
  Decision decision = second.request();
  ASSERT_EQ(decision.kind(), Decision::Kind::Wait);
  EXPECT_EQ(decision.deadline(), clock_.now + EtagPolicyConfig{}.queue_timeout);

  // Asked again before its turn (a spurious wake): it goes on waiting for the same deadline.
  clock_.advance(100ms);
  Decision again = second.request();
  EXPECT_EQ(again.kind(), Decision::Kind::Wait);
  EXPECT_EQ(again.deadline(), decision.deadline());

  first.respond(200, {{"ETag", "\"v2\""}}, std::nullopt);
  EXPECT_EQ(second.waker().wakes, 0);
  first.end();
  EXPECT_EQ(second.waker().wakes, 1);
  EXPECT_TRUE(second.request().forwards());
  EXPECT_EQ(policy_->counters().writes_forwarded, 2u);
}

TEST_F(EtagPolicyTest, AWriterThatWaitsPastTheTimeoutGets503AndLeavesTheQueue) {
  EtagExchange first = exchange("PUT", "/accounts/1");
  first.request();
  EtagExchange second = exchange("PUT", "/accounts/1");
  Decision decision = second.request();
  ASSERT_EQ(decision.kind(), Decision::Kind::Wait);

  clock_.now = decision.deadline();
  Decision timeout = second.request();
  ASSERT_EQ(timeout.kind(), Decision::Kind::Reply);
  EXPECT_EQ(timeout.status(), 503);
  EXPECT_EQ(timeout.headers().find("Retry-After"), "1");
  EXPECT_EQ(problem_body(timeout)["type"], "urn:arbiter:problem:write-queue-timeout");
  EXPECT_EQ(policy_->counters().queue_timeouts, 1u);

  // Its place is given up at once, before its exchange ends.
  EtagExchange third = exchange("PUT", "/accounts/1");
  ASSERT_EQ(third.request().kind(), Decision::Kind::Wait);
  first.respond(200, {{"ETag", "\"v2\""}}, std::nullopt);
  first.end();
  EXPECT_EQ(second.waker().wakes, 0);
  EXPECT_EQ(third.waker().wakes, 1);
  EXPECT_TRUE(third.request().forwards());
  second.end();
  EXPECT_EQ(policy_->counters().etag_unknown_after_write, 0u);  // the timed-out one never wrote
}

TEST_F(EtagPolicyTest, AFullQueueAnswers503AtOnce) {
  EtagPolicyConfig config;
  config.max_queue = 1;
  make_policy(config);
  EtagExchange holder = exchange("PUT", "/accounts/1");
  holder.request();
  EtagExchange waiter = exchange("PUT", "/accounts/1");
  ASSERT_EQ(waiter.request().kind(), Decision::Kind::Wait);
  EtagExchange refused = exchange("PUT", "/accounts/1");
  Decision decision = refused.request();
  ASSERT_EQ(decision.kind(), Decision::Kind::Reply);
  EXPECT_EQ(decision.status(), 503);
  EXPECT_EQ(decision.headers().find("Retry-After"), "1");
  nlohmann::json body = problem_body(decision);
  EXPECT_EQ(body["type"], "urn:arbiter:problem:write-queue-full");
  EXPECT_EQ(body["resource"], "/accounts/1");
  EXPECT_EQ(policy_->counters().queue_full, 1u);
  // Writes to another resource are not held up.
  EtagExchange elsewhere = exchange("PUT", "/accounts/2");
  EXPECT_TRUE(elsewhere.request().forwards());
}

TEST_F(EtagPolicyTest, MaxQueueZeroLetsNoWriterWait) {
  EtagPolicyConfig config;
  config.max_queue = 0;
  make_policy(config);
  EtagExchange holder = exchange("PUT", "/accounts/1");
  ASSERT_TRUE(holder.request().forwards());
  EtagExchange refused = exchange("PUT", "/accounts/1");
  Decision decision = refused.request();
  EXPECT_EQ(decision.status(), 503);
  EXPECT_NE(std::string(problem_body(decision)["detail"]).find("lets no other wait"), std::string::npos);
  holder.respond(204, {{"ETag", "\"v2\""}}, std::nullopt);
  holder.end();
  EtagExchange later = exchange("PUT", "/accounts/1");
  EXPECT_TRUE(later.request().forwards());
}

TEST_F(EtagPolicyTest, AClientThatLeavesWhileWaitingFreesItsPlace) {
  EtagExchange holder = exchange("PUT", "/accounts/1");
  holder.request();
  EtagExchange leaving = exchange("PUT", "/accounts/1", {{"If-Match", mint_etag(kBody1)}});
  ASSERT_EQ(leaving.request().kind(), Decision::Kind::Wait);
  EtagExchange next = exchange("PUT", "/accounts/1");
  ASSERT_EQ(next.request().kind(), Decision::Kind::Wait);
  leaving.end();  // client gone
  holder.respond(200, {{"ETag", "\"v2\""}}, std::nullopt);
  holder.end();
  EXPECT_EQ(next.waker().wakes, 1);
  EXPECT_TRUE(next.request().forwards());
  EXPECT_EQ(known("/accounts/1"), "\"v2\"");  // the one that left forgot nothing
}

// Two clients read the same version and both write: the second, checked after the first's write
// changed the resource, is refused.
class TwoWritersTest : public EtagPolicyTest, public ::testing::WithParamInterface<EtagPolicyConfig::Verify> {};

TEST_P(TwoWritersTest, TheSecondWriterWithTheSameTagGets409) {
  EtagPolicyConfig config;
  config.verify = GetParam();
  make_policy(config);
  bool upstream = GetParam() == EtagPolicyConfig::Verify::Upstream;

  EtagExchange read = exchange("GET", "/accounts/1");
  read.request();
  read.respond(200, {}, kBody1);
  std::string tag = *read.response_etag();
  read.end();

  EtagExchange alice = exchange("PUT", "/accounts/1", {{"If-Match", tag}});
  EtagExchange bob = exchange("PUT", "/accounts/1", {{"If-Match", tag}});
  Decision alice_decision = alice.request();
  ASSERT_EQ(bob.request().kind(), Decision::Kind::Wait);
  if (upstream) {
    ASSERT_EQ(alice_decision.kind(), Decision::Kind::Fetch);
    alice_decision = alice.fetched(fetched_ok(kBody1));
  }
  ASSERT_TRUE(alice_decision.forwards());
  ASSERT_TRUE(alice.respond(200, {}, "").fetch_first);
  alice.response_fetched(fetched_ok(kBody2));
  std::string new_tag = *alice.response_etag();
  EXPECT_NE(new_tag, tag);
  alice.end();

  ASSERT_EQ(bob.waker().wakes, 1);
  Decision bob_decision = bob.request();
  if (upstream) {
    ASSERT_EQ(bob_decision.kind(), Decision::Kind::Fetch);
    bob_decision = bob.fetched(fetched_ok(kBody2));
  }
  ASSERT_EQ(bob_decision.kind(), Decision::Kind::Reply);
  EXPECT_EQ(bob_decision.status(), 409);
  EXPECT_EQ(bob_decision.headers().find("ETag"), new_tag);
  nlohmann::json body = problem_body(bob_decision);
  EXPECT_EQ(body["your_etag"], tag);
  EXPECT_EQ(body["current_etag"], new_tag);
  EXPECT_EQ(policy_->counters().writes_forwarded, 1u);
  EXPECT_EQ(policy_->counters().conflicts, 1u);
}

INSTANTIATE_TEST_SUITE_P(Verify, TwoWritersTest,
                         ::testing::Values(EtagPolicyConfig::Verify::Upstream, EtagPolicyConfig::Verify::Cache),
                         [](const auto& info) { return std::string(verify_name(info.param)); });

// ---- A reload: a new policy on the same store ----

TEST_F(EtagPolicyTest, ANewPolicyOnTheSameStoreKeepsTheTableAndTheWriteQueues) {
  EtagExchange read = exchange("GET", "/accounts/1");
  read.request();
  read.respond(200, {}, kBody1);
  read.end();
  // The old policy's writer holds the resource's turn.
  EtagExchange old_writer = exchange("PUT", "/accounts/1");
  ASSERT_TRUE(old_writer.request().forwards());

  EtagPolicyConfig changed;
  changed.verify = EtagPolicyConfig::Verify::Cache;
  changed.max_queue = 4;
  EtagPolicy reloaded("accounts", changed, store_, turns_);
  // A writer through the new policy waits for the old one's turn ...
  EtagExchange new_writer(reloaded, clock_, "PUT", "/accounts/1", {{"If-Match", mint_etag(kBody1)}});
  ASSERT_EQ(new_writer.request().kind(), Decision::Kind::Wait);
  EtagExchange stale(reloaded, clock_, "PUT", "/accounts/1", {{"If-Match", "\"stale\""}});
  ASSERT_EQ(stale.request().kind(), Decision::Kind::Wait);
  EXPECT_EQ(turns_->queued_resources(), 1u);
  clock_.advance(100ms);
  EXPECT_EQ(new_writer.request().kind(), Decision::Kind::Wait);
  EXPECT_EQ(new_writer.waker().wakes, 0);
  // ... and is woken when it ends, the old write's tag then known to the new policy.
  old_writer.respond(200, {{"ETag", "\"v2\""}}, std::nullopt);
  old_writer.end();
  EXPECT_EQ(new_writer.waker().wakes, 1);
  EXPECT_EQ(stale.waker().wakes, 0);
  Decision conflict = new_writer.request();  // verify = cache: decided from the shared table
  ASSERT_EQ(conflict.kind(), Decision::Kind::Reply);
  EXPECT_EQ(conflict.status(), 409);
  EXPECT_EQ(conflict.headers().find("ETag"), "\"v2\"");
  new_writer.end();
  EXPECT_EQ(stale.waker().wakes, 1);
  EXPECT_EQ(stale.request().status(), 409);
  EXPECT_EQ(reloaded.counters().conflicts, 2u);
  EXPECT_EQ(policy_->counters().writes_forwarded, 1u);
}

TEST_F(EtagPolicyTest, ATagLearnedThroughTheOldPolicyDecidesForTheNewOne) {
  EtagExchange read = exchange("GET", "/accounts/1");
  read.request();
  read.respond(200, {}, kBody1);
  read.end();
  EtagPolicyConfig changed;
  changed.verify = EtagPolicyConfig::Verify::Cache;
  EtagPolicy reloaded("accounts", changed, store_, turns_);
  EtagExchange write(reloaded, clock_, "PUT", "/accounts/1", {{"If-Match", mint_etag(kBody1)}});
  Decision decision = write.request();  // known, so no re-read
  EXPECT_TRUE(decision.forwards());
  EXPECT_EQ(decision.strip_fields(), kPreconditionFields);
}

TEST(EtagPolicyConfigTest, EqualityTellsAChangedConfigFromAnUnchangedOne) {
  EXPECT_EQ(EtagPolicyConfig{}, EtagPolicyConfig{});
  EtagPolicyConfig changed;
  changed.conflict_status = 412;
  EXPECT_NE(changed, EtagPolicyConfig{});
  changed = {};
  changed.json_pointer = "/version";
  EXPECT_NE(changed, EtagPolicyConfig{});
  changed = {};
  changed.queue_timeout = 1ms;
  EXPECT_NE(changed, EtagPolicyConfig{});
}

// ---- Bookkeeping ----

TEST_F(EtagPolicyTest, ARefusedWriteIsPublishedWithItsBody) {
  EtagPolicyConfig config;
  config.verify = EtagPolicyConfig::Verify::Cache;
  make_policy(config);
  store_->put("/accounts/1", "\"current\"");
  EtagExchange put = exchange("PUT", "/accounts/1", {{"If-Match", "\"stale\""}, {"Content-Type", "application/json"}});
  put.set_body(R"({"balance":5})");
  ASSERT_EQ(put.request().status(), 409);
  FeedEvent event = last_published(*policy_);
  EXPECT_EQ(event.type, "conflict");
  EXPECT_EQ(event.your_etag, "\"stale\"");
  EXPECT_EQ(event.current_etag, "\"current\"");
  EXPECT_EQ(event.body, FeedBody::Kept);
  EXPECT_EQ(event.your_body, R"({"balance":5})");
  EXPECT_EQ(event.your_content_type, "application/json");
  EXPECT_EQ(event.client, "127.0.0.1");
  put.end();
  // A write that goes through publishes nothing.
  EtagExchange current = exchange("PUT", "/accounts/1", {{"If-Match", "\"current\""}});
  EXPECT_TRUE(current.request().forwards());
  EXPECT_EQ(published_events(*policy_).size(), 1u);
}

TEST(EtagPolicyConstructionTest, RefusesAConfigTheLoaderWouldRefuse) {
  auto store = std::make_shared<MemoryVersionStore>(10);
  EtagPolicyConfig bad_status;
  bad_status.conflict_status = 400;
  EXPECT_THROW(EtagPolicy("r", bad_status, store), std::invalid_argument);
  EtagPolicyConfig bad_pointer;
  bad_pointer.source = EtagPolicyConfig::Source::JsonPointer;
  bad_pointer.json_pointer = "version";
  EXPECT_THROW(EtagPolicy("r", bad_pointer, store), std::invalid_argument);
  EtagPolicyConfig bad_template;
  bad_template.resource = "/a/{id";
  EXPECT_THROW(EtagPolicy("r", bad_template, store), std::invalid_argument);
  EXPECT_THROW(EtagPolicy("r", EtagPolicyConfig{}, nullptr), std::invalid_argument);
}

TEST(TemplateParamNamesTest, NamesAndMalformedTemplates) {
  EXPECT_EQ(template_param_names("/accounts/{id}/x/{part}"), (std::vector<std::string_view>{"id", "part"}));
  EXPECT_EQ(template_param_names("/static"), std::vector<std::string_view>{});
  EXPECT_FALSE(template_param_names("/a/{id").has_value());
  EXPECT_FALSE(template_param_names("/a/id}").has_value());
  EXPECT_FALSE(template_param_names("/a/{}").has_value());
  EXPECT_FALSE(template_param_names("/a/{{id}}").has_value());
}

// ---- Conditional requests: issue #12 items 7-12 ----

// The gzip coding of `text`, as a backend that varies on Accept-Encoding sends it.
std::string gzip(std::string_view text) {
  z_stream stream{};
  EXPECT_EQ(deflateInit2(&stream, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
  std::string out(deflateBound(&stream, text.size()) + 32, '\0');
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
  stream.avail_in = static_cast<uInt>(text.size());
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&stream, Z_FINISH), Z_STREAM_END);
  out.resize(stream.total_out);
  deflateEnd(&stream);
  return out;
}

TEST(ContentIdentity, IsTheHashOfTheDecodedContent) {
  EXPECT_EQ(content_identity(kBody1, "", 1000), mint_etag(kBody1));
  EXPECT_EQ(content_identity(kBody1, "identity", 1000), mint_etag(kBody1));
  EXPECT_EQ(content_identity(gzip(kBody1), "gzip", 1000), mint_etag(kBody1));
  EXPECT_EQ(content_identity(gzip(kBody1), "x-gzip", 1000), mint_etag(kBody1));
  EXPECT_FALSE(content_identity(gzip(kBody1), "gzip", 5).has_value());  // decodes to more than allowed
  EXPECT_FALSE(content_identity(gzip(kBody1).substr(0, 10), "gzip", 1000).has_value());  // truncated
  EXPECT_FALSE(content_identity(kBody1, "br", 1000).has_value());  // a coding Arbiter does not decode
}

TEST(VersionTagsCodec, OneNameIsStoredAsThatTagAndMoreRoundTrip) {
  VersionTags single{mint_etag(kBody1), {}};
  EXPECT_EQ(encode_version_tags(single), mint_etag(kBody1));  // the table keeps it inline
  VersionTags several{mint_etag(kBody1), {"\"b\"", "\"c\""}};
  VersionTags decoded = decode_version_tags(encode_version_tags(several));
  EXPECT_EQ(decoded.identity, several.identity);
  EXPECT_EQ(decoded.tags, several.tags);
  EXPECT_TRUE(decoded.names("\"c\""));
  EXPECT_FALSE(decoded.names("\"d\""));
  EXPECT_EQ(decode_version_tags("\"plain\"").primary(), "\"plain\"");

  // The allocation-free lookup answers as the decoded form does.
  for (const VersionTags& version : {single, several}) {
    std::string stored = encode_version_tags(version);
    for (const std::string& tag : {mint_etag(kBody1), std::string("\"b\""), std::string("\"c\""),
                                   std::string("\"d\""), std::string("\"\"")}) {
      EXPECT_EQ(stored_version_names(stored, tag), version.names(tag)) << stored << " " << tag;
    }
  }
  EXPECT_FALSE(stored_version_names("#", ""));
  EXPECT_FALSE(stored_version_names("#\"a\" \"b\"", "\"a\" \"b\""));
}

TEST_F(EtagPolicyTest, IfNoneMatchStripsIfModifiedSinceAndABackendsOwn304CarriesTheCurrentEtag) {
  EtagExchange both = exchange("GET", "/accounts/1", {{"If-None-Match", "\"stale\""},
                                                  {"If-Modified-Since", "Tue, 01 Dec 2026 00:00:00 GMT"}});
  EXPECT_EQ(stripped(both.request()), (std::vector<std::string>{"If-None-Match", "If-Modified-Since"}));

  // If-Modified-Since alone is the backend's to answer; its 304 gets Arbiter's current tag.
  EtagExchange dated = exchange("GET", "/accounts/1", {{"If-Modified-Since", "Tue, 01 Dec 2026 00:00:00 GMT"}});
  Decision decision = dated.request();
  EXPECT_TRUE(decision.forwards());
  EXPECT_TRUE(stripped(decision).empty());
  ResponseStep step = dated.respond(304, {{"ETag", "W/\"backend\""}}, std::nullopt);
  ASSERT_TRUE(step.fetch_first);
  EXPECT_EQ(step.fetch_target, "/accounts/1");
  dated.response_fetched(fetched_ok(kBody1));
  EXPECT_EQ(dated.status(), 304);
  EXPECT_EQ(dated.response_etag(), mint_etag(kBody1));

  // A strong backend tag on its 304 is the one Arbiter hands out (source = "auto").
  EtagExchange strong = exchange("GET", "/accounts/1", {{"If-Modified-Since", "Tue, 01 Dec 2026 00:00:00 GMT"}});
  strong.request();
  EXPECT_FALSE(strong.respond(304, {{"ETag", "\"b7\""}}, std::nullopt).fetch_first);
  EXPECT_EQ(strong.response_etag(), "\"b7\"");
}

TEST_F(EtagPolicyTest, ReadIfMatchIsEvaluatedAgainstArbitersTagsAndNeverForwarded) {
  EtagExchange current = exchange("GET", "/accounts/1", {{"If-Match", mint_etag(kBody1)},
                                                     {"If-Unmodified-Since", "Tue, 01 Dec 2026 00:00:00 GMT"}});
  Decision fetch = current.request();
  ASSERT_EQ(fetch.kind(), Decision::Kind::Fetch);
  EXPECT_EQ(fetch.fetch_target(), "/accounts/1");
  Decision decision = current.fetched(fetched_ok(kBody1));
  EXPECT_TRUE(decision.forwards());
  EXPECT_EQ(stripped(decision), (std::vector<std::string>{"If-Match", "If-Unmodified-Since"}));
  current.respond(200, {}, kBody1);
  EXPECT_EQ(current.status(), 200);
  EXPECT_EQ(current.response_etag(), mint_etag(kBody1));

  EtagExchange stale = exchange("GET", "/accounts/1", {{"If-Match", mint_etag(kBody1)}});
  stale.request();
  Decision refused = stale.fetched(fetched_ok(kBody2));
  ASSERT_EQ(refused.kind(), Decision::Kind::Reply);
  EXPECT_EQ(refused.status(), 412);
  EXPECT_EQ(refused.headers().find("ETag"), mint_etag(kBody2));
  nlohmann::json body = problem_body(refused);
  EXPECT_EQ(body["type"], "urn:arbiter:problem:precondition-failed");
  EXPECT_EQ(body["current_etag"], mint_etag(kBody2));

  // A resource that is not there answers for itself (404), and If-Match: * needs no read.
  EtagExchange gone = exchange("GET", "/accounts/1", {{"If-Match", mint_etag(kBody1)}});
  gone.request();
  EXPECT_TRUE(gone.fetched(fetched_status(404)).forwards());
  EtagExchange any = exchange("GET", "/accounts/1", {{"If-Match", "*"}});
  EXPECT_TRUE(any.request().forwards());

  // A representation too large to hash has no version to compare with.
  EtagExchange large = exchange("GET", "/accounts/1", {{"If-Match", mint_etag(kBody1)}});
  large.request();
  Decision unverifiable = large.fetched(fetched_too_large());
  EXPECT_EQ(unverifiable.status(), 412);
  EXPECT_FALSE(unverifiable.headers().contains("ETag"));
  nlohmann::json unverifiable_body = problem_body(unverifiable);
  EXPECT_EQ(unverifiable_body["type"], "urn:arbiter:problem:version-unverifiable");
  EXPECT_EQ(unverifiable_body["max_body_bytes"], EtagPolicyConfig{}.max_body_bytes);
  EXPECT_EQ(unverifiable_body["resource"], "/accounts/1");

  EtagExchange malformed = exchange("GET", "/accounts/1", {{"If-Match", "junk"}});
  EXPECT_EQ(malformed.request().status(), 400);
}

TEST_F(EtagPolicyTest, RangeIsServedFromTheWholeRepresentationUnderTheSameTag) {
  EtagExchange range = exchange("GET", "/accounts/1", {{"Range", "bytes=0-4"}});
  EXPECT_EQ(stripped(range.request()), (std::vector<std::string>{"Range", "If-Range"}));
  range.respond(200, {{"Content-Type", "application/json"}}, kBody1);
  EXPECT_EQ(range.status(), 206);
  EXPECT_EQ(range.response_body(), kBody1.substr(0, 5));
  EXPECT_EQ(range.response_etag(), mint_etag(kBody1));  // the 200's validator
  EXPECT_EQ(range.response_headers().find("Content-Range"), "bytes 0-4/" + std::to_string(kBody1.size()));

  EtagExchange matching = exchange("GET", "/accounts/1", {{"Range", "bytes=-3"}, {"If-Range", mint_etag(kBody1)}});
  matching.request();
  matching.respond(200, {}, kBody1);
  EXPECT_EQ(matching.status(), 206);
  EXPECT_EQ(matching.response_body(), kBody1.substr(kBody1.size() - 3));

  EtagExchange changed = exchange("GET", "/accounts/1", {{"Range", "bytes=0-4"}, {"If-Range", mint_etag(kBody2)}});
  changed.request();
  changed.respond(200, {}, kBody1);
  EXPECT_EQ(changed.status(), 200);
  EXPECT_EQ(changed.response_body(), kBody1);

  EtagExchange past_the_end = exchange("GET", "/accounts/1", {{"Range", "bytes=500-"}});
  past_the_end.request();
  past_the_end.respond(200, {{"Content-Type", "application/json"}}, kBody1);
  EXPECT_EQ(past_the_end.status(), 416);
  EXPECT_EQ(past_the_end.response_headers().find("Content-Type"), "application/problem+json");
  EXPECT_EQ(past_the_end.response_headers().find("Content-Range"), "bytes */" + std::to_string(kBody1.size()));
}

TEST_F(EtagPolicyTest, EitherRepresentationOfTheCurrentVersionPassesIfMatchFromTheCache) {
  EtagPolicyConfig config;
  config.verify = EtagPolicyConfig::Verify::Cache;
  make_policy(config);
  std::string gzip_tag = read_tag({{"Accept-Encoding", "gzip"}},
                                  {{"Content-Encoding", "gzip"}, {"Vary", "Accept-Encoding"}}, gzip(kBody1));
  std::string identity_tag = read_tag({}, {{"Vary", "Accept-Encoding"}}, kBody1);
  ASSERT_NE(gzip_tag, identity_tag);  // two representations, two strong tags

  EtagExchange put = exchange("PUT", "/accounts/1", {{"If-Match", gzip_tag}});
  EXPECT_TRUE(put.request().forwards());  // no false 409
  ASSERT_TRUE(put.respond(200, {}, "").fetch_first);
  put.response_fetched(fetched_ok(kBody2));
  put.end();

  // Tags of the version before the write never match.
  for (const std::string& old : {gzip_tag, identity_tag}) {
    EtagExchange stale = exchange("PUT", "/accounts/1", {{"If-Match", old}});
    EXPECT_EQ(stale.request().status(), 409);
  }
}

TEST_F(EtagPolicyTest, ARepresentationOfAnotherVersionReplacesWhatTheCacheKnew) {
  EtagPolicyConfig config;
  config.verify = EtagPolicyConfig::Verify::Cache;
  make_policy(config);
  std::string old_gzip_tag = read_tag({{"Accept-Encoding", "gzip"}}, {{"Content-Encoding", "gzip"}}, gzip(kBody1));
  // The backend changed behind Arbiter's back; an identity read sees the new content.
  read_tag({}, {}, kBody2);
  EtagExchange stale = exchange("PUT", "/accounts/1", {{"If-Match", old_gzip_tag}});
  EXPECT_EQ(stale.request().status(), 409);
}

TEST_F(EtagPolicyTest, UpstreamVerifyDoesNotDependOnTheVariantTheWriterNegotiated) {
  std::string gzip_tag = read_tag({{"Accept-Encoding", "gzip"}}, {{"Content-Encoding", "gzip"}}, gzip(kBody1));
  read_tag({}, {}, kBody1);

  // The writer's request asks for identity; its re-read is the identity representation.
  EtagExchange put = exchange("PUT", "/accounts/1", {{"If-Match", gzip_tag}});
  ASSERT_EQ(put.request().kind(), Decision::Kind::Fetch);
  EXPECT_TRUE(put.fetched(fetched_ok(kBody1)).forwards());
  put.end();

  // The same, for a version that is not the current one.
  EtagExchange stale = exchange("PUT", "/accounts/1", {{"If-Match", gzip_tag}});
  ASSERT_EQ(stale.request().kind(), Decision::Kind::Fetch);
  EXPECT_EQ(stale.fetched(fetched_ok(kBody2)).status(), 409);
}

TEST_F(EtagPolicyTest, ABackendTagTurningStrongKeepsTheVersion) {
  for (auto verify : {EtagPolicyConfig::Verify::Upstream, EtagPolicyConfig::Verify::Cache}) {
    EtagPolicyConfig config;
    config.verify = verify;
    make_policy(config);
    // Apache: a weak tag for a second after the write, then a strong one for the same bytes.
    std::string minted = read_tag({}, {{"ETag", "W/\"5-abc\""}}, kBody1);
    EXPECT_EQ(minted, mint_etag(kBody1));
    EXPECT_EQ(read_tag({}, {{"ETag", "\"5-abc\""}}, kBody1), "\"5-abc\"");

    for (const std::string& held : {minted, std::string("\"5-abc\"")}) {
      EtagExchange put = exchange("PUT", "/accounts/1", {{"If-Match", held}});
      Decision decision = put.request();
      if (decision.kind() == Decision::Kind::Fetch) decision = put.fetched(fetched_ok(kBody1, {{"ETag", "\"5-abc\""}}));
      EXPECT_TRUE(decision.forwards()) << held;  // no false 409
      put.end();
    }
    // Other bytes are another version, whichever tag the client holds. The writes above ended
    // without a response, so the table forgot the version and verify = "cache" re-reads too.
    EtagExchange stale = exchange("PUT", "/accounts/1", {{"If-Match", minted}});
    ASSERT_EQ(stale.request().kind(), Decision::Kind::Fetch);
    EXPECT_EQ(stale.fetched(fetched_ok(kBody2, {{"ETag", "\"6-def\""}})).status(), 409);
  }
}

TEST_F(EtagPolicyTest, A201IsLearnedUnderTheKeyARequestForItsLocationWouldHave) {
  EtagExchange insensitive = exchange("POST", "/Accounts");
  insensitive.keyed_by_lower_case_path();
  ASSERT_TRUE(insensitive.request().forwards());
  EXPECT_FALSE(insensitive.respond(201, {{"Location", "/Accounts/9"}, {"ETag", "\"c9\""}}, "{}").fetch_first);
  insensitive.end();
  EXPECT_EQ(known("/accounts/9"), "\"c9\"");  // case_insensitive_paths: keys are lower-cased paths
  EXPECT_FALSE(known("/Accounts/9").has_value());

  EtagExchange sensitive = exchange("POST", "/Accounts");
  ASSERT_TRUE(sensitive.request().forwards());
  EXPECT_FALSE(sensitive.respond(201, {{"Location", "/Accounts/10"}, {"ETag", "\"c10\""}}, "{}").fetch_first);
  sensitive.end();
  EXPECT_EQ(known("/Accounts/10"), "\"c10\"");
  EXPECT_FALSE(known("/accounts/10").has_value());
}

TEST_F(EtagPolicyTest, A201IsTaggedByTheResourceItCreated) {
  EtagExchange post = exchange("POST", "/accounts");
  ASSERT_TRUE(post.request().forwards());
  ResponseStep step = post.respond(201, {{"Location", "/accounts/9"}, {"ETag", "W/\"collection\""}}, "{}");
  ASSERT_TRUE(step.fetch_first);
  EXPECT_EQ(step.fetch_target, "/accounts/9");
  post.response_fetched(fetched_ok(kBody2));
  EXPECT_EQ(post.response_etag(), mint_etag(kBody2));
  post.end();
  EXPECT_EQ(known("/accounts/9"), mint_etag(kBody2));
  EXPECT_FALSE(known("/accounts").has_value());  // the collection changed: re-read when needed

  // An absolute Location, and a backend's strong tag for what it created.
  EtagExchange absolute = exchange("POST", "/accounts");
  absolute.request();
  EXPECT_FALSE(absolute.respond(201, {{"Location", "http://backend:8080/accounts/10"}, {"ETag", "\"c10\""}}, "{}")
                   .fetch_first);
  EXPECT_EQ(absolute.response_etag(), "\"c10\"");
  absolute.end();
  EXPECT_EQ(known("/accounts/10"), "\"c10\"");

  // No Location: nothing names the created resource, so no validator at all.
  EtagExchange anonymous = exchange("POST", "/accounts");
  anonymous.request();
  EXPECT_FALSE(anonymous.respond(201, {{"ETag", "\"collection\""}}, "{}").fetch_first);
  EXPECT_FALSE(anonymous.response_etag().has_value());
}

// The created resource is keyed as a request for it would be: the Location's path in the normal
// form the proxy gives request paths before routing.
TEST_F(EtagPolicyTest, A201sLocationIsKeyedByItsNormalisedPath) {
  EtagExchange post = exchange("POST", "/accounts");
  ASSERT_TRUE(post.request().forwards());
  EXPECT_FALSE(post.respond(201, {{"Location", "/x/../accounts/%31%32"}, {"ETag", "\"c12\""}}, "{}").fetch_first);
  EXPECT_EQ(post.response_etag(), "\"c12\"");
  post.end();
  EXPECT_EQ(known("/accounts/12"), "\"c12\"");

  EtagExchange relative = exchange("POST", "/accounts/");
  relative.request();
  EXPECT_FALSE(relative.respond(201, {{"Location", "./%7e13"}, {"ETag", "\"c13\""}}, "{}").fetch_first);
  relative.end();
  EXPECT_EQ(known("/accounts/~13"), "\"c13\"");

  // A Location that climbs above the root names nothing Arbiter can key: no validator.
  EtagExchange escaping = exchange("POST", "/accounts");
  escaping.request();
  EXPECT_FALSE(escaping.respond(201, {{"Location", "/../../etc"}, {"ETag", "\"c14\""}}, "{}").fetch_first);
  EXPECT_FALSE(escaping.response_etag().has_value());
}

TEST_F(EtagPolicyTest, AStreamIsLeftUntagged) {
  EtagExchange get = exchange("GET", "/accounts/1");
  get.request();
  ResponseStep step =
      get.respond(200, {{"Content-Type", "text/event-stream; charset=utf-8"}, {"ETag", "\"b1\""}}, std::nullopt,
                  /*withheld=*/true);
  EXPECT_FALSE(step.fetch_first);
  EXPECT_FALSE(get.response_etag().has_value());
  EXPECT_EQ(store_->size(), 0u);
  EXPECT_TRUE(is_stream_response(HeaderList{{"Content-Type", "TEXT/EVENT-STREAM"}}));
  EXPECT_FALSE(is_stream_response(HeaderList{{"Content-Type", "application/json"}}));
}

}  // namespace
}  // namespace arbiter
