// The ETag policy's history, Accept-Datetime, merge and PATCH (issue #15), hook by hook with a
// fake clock and a fake wall clock.

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "policies/etag/etag.h"
#include "policies/etag/etag_policy.h"
#include "policies/store/memory_history_store.h"
#include "policies/store/memory_version_store.h"
#include "policies/store/memory_write_queues.h"
#include "proxy/http/http_time.h"
#include "tests/policies/etag/etag_test_support.h"

namespace arbiter {
namespace {

using namespace etag_testing;
using namespace std::chrono_literals;

// The wall clock versions are recorded by: moved by hand.
WallTime history_wall_now = WallTime(std::chrono::seconds(1'800'000'000));
WallTime history_wall_clock() { return history_wall_now; }

const std::string kBase = R"({"id":1,"name":"widget","price":10,"tags":["a"]})";
const std::string kJsonType = "application/json";

class EtagHistoryTest : public ::testing::Test {
 protected:
  void SetUp() override { make_policy(merge_config()); }

  static EtagPolicyConfig merge_config() {
    EtagPolicyConfig config;
    config.on_conflict = EtagPolicyConfig::OnConflict::Merge;
    config.patch = EtagPolicyConfig::Patch::Apply;
    config.history = HistoryConfig{};
    config.history->fence_header = "Arbiter-Fence";
    return config;
  }

  void make_policy(EtagPolicyConfig config) {
    versions_ = std::make_shared<MemoryVersionStore>(config.max_entries);
    policy_ = std::make_unique<EtagPolicy>("items", std::move(config), versions_, turns_, nullptr, history_);
    policy_->set_wall_clock(&history_wall_clock);
  }

  EtagExchange exchange(std::string method, std::string target, HeaderList headers = {}) {
    return EtagExchange(*policy_, clock_, std::move(method), std::move(target), std::move(headers));
  }

  // A GET of /items/1 answered with `body`: the version the history then holds.
  std::string read(const std::string& body) {
    EtagExchange get = exchange("GET", "/items/1");
    EXPECT_TRUE(get.request().forwards());
    get.respond(200, {{"Content-Type", kJsonType}}, body);
    get.end();
    return get.response_etag().value_or("");
  }

  HistoryListing listing(std::string_view resource = "/items/1") {
    HistoryListing result;
    auto keep = [&](StoreResult<HistoryListing>&& answer) { result = std::move(answer.value); };
    StoreCall call = history_->list(resource, Completion<HistoryListing>(keep));
    return result;
  }

  // A conditional write of /items/1 whose verify read finds `current`; returns the decision
  // after it.
  Decision write_against(EtagExchange& write, const std::string& current) {
    Decision first = write.request();
    EXPECT_EQ(first.kind(), Decision::Kind::Call);
    return write.fetched(fetched_ok(current, {{"Content-Type", kJsonType}}));
  }

  FakeClock clock_;
  std::shared_ptr<MemoryHistoryStore> history_ = std::make_shared<MemoryHistoryStore>();
  std::shared_ptr<MemoryVersionStore> versions_;
  std::shared_ptr<MemoryWriteQueues> turns_ = std::make_shared<MemoryWriteQueues>();
  std::unique_ptr<EtagPolicy> policy_;
};

nlohmann::json json_of(const std::optional<std::string>& text) {
  return nlohmann::json::parse(text.value_or("null"));
}

// ---- Recording ----

TEST_F(EtagHistoryTest, EachNewRepresentationIsRecordedOnceAndNumbered) {
  std::string first = read(kBase);
  read(kBase);  // the same tag: nothing new
  history_wall_now += 5s;
  std::string second = read(R"({"id":1,"name":"gadget"})");
  HistoryListing versions = listing();
  ASSERT_EQ(versions.versions.size(), 2u);
  EXPECT_EQ(versions.versions[0].number, 2u);  // newest first
  EXPECT_EQ(versions.versions[0].etag, second);
  EXPECT_EQ(versions.versions[1].number, 1u);
  EXPECT_EQ(versions.versions[1].etag, first);
  EXPECT_EQ(versions.versions[1].content_type, kJsonType);
  EXPECT_EQ(versions.versions[1].size, kBase.size());
  EXPECT_TRUE(versions.versions[1].method.empty());  // observed, not written through Arbiter
  EXPECT_EQ(versions.versions[0].time - versions.versions[1].time, 5s);
}

TEST_F(EtagHistoryTest, AReadWithAQueryOrAContentCodingIsNotRecorded) {
  EtagExchange projection = exchange("GET", "/items/1?fields=name");
  projection.request();
  projection.respond(200, {{"Content-Type", kJsonType}}, R"({"name":"widget"})");
  EtagExchange gzipped = exchange("GET", "/items/1");
  gzipped.request();
  gzipped.respond(200, {{"Content-Type", kJsonType}, {"Content-Encoding", "gzip"}}, std::string("\x1f\x8b", 2));
  EXPECT_FALSE(listing().known);
}

TEST_F(EtagHistoryTest, AWriteRecordsItsResultWithWhoMadeIt) {
  EtagExchange put = exchange("PUT", "/items/1", {{"Arbiter-Fence", "7"}});
  put.set_body(kBase);
  EXPECT_TRUE(put.request().forwards());  // unconditional
  ResponseStep step = put.respond(200, {{"Content-Type", kJsonType}}, kBase);
  ASSERT_TRUE(step.fetch_first);  // the new representation is read back to record it
  put.response_fetched(fetched_ok(kBase, {{"Content-Type", kJsonType}}));
  put.end();
  HistoryListing versions = listing();
  ASSERT_EQ(versions.versions.size(), 1u);
  const VersionMeta& made = versions.versions[0];
  EXPECT_EQ(made.method, "PUT");
  EXPECT_EQ(made.request_id, "req-7");
  EXPECT_EQ(made.client, "127.0.0.1");
  EXPECT_EQ(made.fence, 7u);
  EXPECT_EQ(made.etag, put.response_etag());
}

TEST_F(EtagHistoryTest, ResponsesLinkToTheHistory) {
  EtagExchange get = exchange("GET", "/items/1");
  get.request();
  get.respond(200, {{"Content-Type", kJsonType}}, kBase);
  EXPECT_EQ(get.response_headers().find("Link"), "</_arbiter/history?resource=/items/1>; rel=\"version-history\"");
  EXPECT_EQ(get.response_headers().find("Vary"), "accept-datetime");
}

// ---- Accept-Datetime ----

TEST_F(EtagHistoryTest, AcceptDatetimeIsAnsweredFromTheHistory) {
  WallTime first_at = history_wall_now;
  std::string first = read(kBase);
  history_wall_now += 60s;
  read(R"({"id":1,"name":"gadget"})");

  EtagExchange between = exchange("GET", "/items/1", {{"Accept-Datetime", http_date(first_at + 30s)}});
  Decision answer = between.request();
  ASSERT_EQ(answer.kind(), Decision::Kind::Reply);
  EXPECT_EQ(answer.status(), 200);
  EXPECT_EQ(answer.body(), kBase);
  EXPECT_EQ(answer.content_type(), kJsonType);
  EXPECT_EQ(answer.headers().find("ETag"), first);
  EXPECT_EQ(answer.headers().find("Memento-Datetime"), http_date(first_at));
  EXPECT_EQ(policy_->counters().mementos, 1u);

  EtagExchange before = exchange("GET", "/items/1", {{"Accept-Datetime", http_date(first_at - 1s)}});
  Decision none = before.request();
  ASSERT_EQ(none.kind(), Decision::Kind::Reply);
  EXPECT_EQ(none.status(), 404);

  EtagExchange malformed = exchange("GET", "/items/1", {{"Accept-Datetime", "yesterday"}});
  EXPECT_EQ(malformed.request().status(), 400);
}

// ---- Merge ----

TEST_F(EtagHistoryTest, AStaleWriteOfOtherFieldsIsMergedIntoTheCurrentVersion) {
  std::string base = read(kBase);
  const std::string current = R"({"id":1,"name":"gadget","price":10,"tags":["a"]})";  // someone renamed it
  EtagExchange put = exchange("PUT", "/items/1", {{"If-Match", base}, {"Content-Type", kJsonType}});
  put.set_body(R"({"id":1,"name":"widget","price":12,"tags":["a"]})");  // this client changed the price
  Decision merged = write_against(put, current);
  ASSERT_TRUE(merged.forwards());
  ASSERT_TRUE(merged.replaced_body());
  EXPECT_EQ(json_of(merged.replaced_body()), nlohmann::json::parse(R"({"id":1,"name":"gadget","price":12,"tags":["a"]})"));
  EXPECT_EQ(merged.strip_fields(), (std::vector<std::string>{"If-Match", "If-None-Match", "Arbiter-Restore"}));
  put.respond(200, {{"Content-Type", kJsonType}}, *merged.replaced_body());
  EXPECT_EQ(put.response_headers().find("Arbiter-Merge"),
            "merged; base=" + base + "; current=" + mint_etag(current));
  EXPECT_EQ(policy_->counters().merged, 1u);
  FeedEvent event = last_published(*policy_);
  EXPECT_EQ(event.type, "merged");
  EXPECT_EQ(event.conflicts, std::vector<std::string>{"/price"});
  EXPECT_EQ(event.base_etag, base);
  EXPECT_EQ(event.current_etag, mint_etag(current));
  EXPECT_EQ(event.time, history_wall_now);
}

TEST_F(EtagHistoryTest, AStaleWriteOfTheSameFieldIsRefusedWithThePointers) {
  std::string base = read(kBase);
  const std::string current = R"({"id":1,"name":"gadget","price":10,"tags":["a"]})";
  EtagExchange put = exchange("PUT", "/items/1", {{"If-Match", base}});
  put.set_body(R"({"id":1,"name":"gizmo","price":10,"tags":["a"]})");
  Decision refused = write_against(put, current);
  ASSERT_EQ(refused.kind(), Decision::Kind::Reply);
  EXPECT_EQ(refused.status(), 409);
  auto body = nlohmann::json::parse(refused.problem()->to_json("req-7"));
  EXPECT_EQ(body["conflicts"], nlohmann::json::array({"/name"}));
  EXPECT_EQ(body["base_etag"], base);
  EXPECT_EQ(body["current_etag"], mint_etag(current));
  EXPECT_EQ(body["your_etag"], base);
  EXPECT_EQ(policy_->counters().merge_conflicts, 1u);
  EXPECT_EQ(last_published(*policy_).conflicts, std::vector<std::string>{"/name"});
  EXPECT_EQ(last_published(*policy_).your_body, R"({"id":1,"name":"gizmo","price":10,"tags":["a"]})");
}

TEST_F(EtagHistoryTest, ABaseTheHistoryDoesNotHoldGetsTodaysConflict) {
  const std::string current = R"({"id":1,"name":"gadget"})";
  EtagExchange put = exchange("PUT", "/items/1", {{"If-Match", "\"never-seen\""}});
  put.set_body(R"({"id":1,"name":"widget","price":12})");
  Decision refused = write_against(put, current);
  ASSERT_EQ(refused.kind(), Decision::Kind::Reply);
  EXPECT_EQ(refused.status(), 409);
  auto body = nlohmann::json::parse(refused.problem()->to_json("req-7"));
  EXPECT_FALSE(body.contains("conflicts"));
  EXPECT_EQ(policy_->counters().merged, 0u);
}

TEST_F(EtagHistoryTest, WithRejectAStaleWriteIsRefusedEvenWhenItWouldMerge) {
  EtagPolicyConfig config = merge_config();
  config.on_conflict = EtagPolicyConfig::OnConflict::Reject;
  make_policy(config);
  std::string base = read(kBase);
  EtagExchange put = exchange("PUT", "/items/1", {{"If-Match", base}});
  put.set_body(R"({"id":1,"name":"widget","price":12,"tags":["a"]})");
  Decision refused = write_against(put, R"({"id":1,"name":"gadget","price":10,"tags":["a"]})");
  EXPECT_EQ(refused.status(), 409);
}

// ---- PATCH applied here ----

TEST_F(EtagHistoryTest, AMergePatchIsAppliedAndSentAsAPut) {
  EtagExchange patch = exchange("PATCH", "/items/1", {{"Content-Type", "application/merge-patch+json"}});
  patch.set_body(R"({"price":11,"tags":null})");
  Decision applied = write_against(patch, kBase);
  ASSERT_TRUE(applied.forwards());
  EXPECT_EQ(applied.replaced_method(), "PUT");
  EXPECT_EQ(json_of(applied.replaced_body()), nlohmann::json::parse(R"({"id":1,"name":"widget","price":11})"));
  ASSERT_EQ(applied.set_fields().size(), 1u);
  EXPECT_EQ(applied.set_fields()[0], (std::pair<std::string, std::string>{"Content-Type", "application/json"}));
  EXPECT_EQ(policy_->counters().patches_applied, 1u);
}

TEST_F(EtagHistoryTest, AJsonPatchIsAppliedAndAFailedTestIsAConflict) {
  EtagExchange patch = exchange("PATCH", "/items/1", {{"Content-Type", "application/json-patch+json"}});
  patch.set_body(R"([{"op":"test","path":"/price","value":10},{"op":"add","path":"/tags/-","value":"b"}])");
  Decision applied = write_against(patch, kBase);
  ASSERT_TRUE(applied.forwards());
  EXPECT_EQ(json_of(applied.replaced_body())["tags"], nlohmann::json::array({"a", "b"}));
  patch.end();  // gives the turn back without an answer: the next write re-reads

  EtagExchange stale = exchange("PATCH", "/items/1", {{"Content-Type", "application/json-patch+json"}});
  stale.set_body(R"([{"op":"test","path":"/price","value":99}])");
  Decision refused = write_against(stale, kBase);
  ASSERT_EQ(refused.kind(), Decision::Kind::Reply);
  EXPECT_EQ(refused.status(), 409);
}

TEST_F(EtagHistoryTest, APatchThatCannotBeAppliedIsRefusedBeforeAnythingIsForwarded) {
  EtagExchange other_type = exchange("PATCH", "/items/1", {{"Content-Type", "application/json"}});
  other_type.set_body(R"({"price":11})");
  Decision unsupported = other_type.request();
  EXPECT_EQ(unsupported.status(), 415);
  EXPECT_EQ(unsupported.headers().find("Accept-Patch"), "application/merge-patch+json, application/json-patch+json");

  EtagExchange not_json = exchange("PATCH", "/items/1", {{"Content-Type", "application/merge-patch+json"}});
  not_json.set_body("{price");
  EXPECT_EQ(not_json.request().status(), 400);

  EtagExchange bad_op = exchange("PATCH", "/items/1", {{"Content-Type", "application/json-patch+json"}});
  bad_op.set_body(R"([{"op":"frobnicate","path":"/price"}])");
  Decision malformed = write_against(bad_op, kBase);
  ASSERT_EQ(malformed.kind(), Decision::Kind::Reply);
  EXPECT_EQ(malformed.status(), 400);
  EXPECT_NE(malformed.problem()->detail.find("frobnicate"), std::string::npos) << malformed.problem()->detail;

  EtagExchange missing = exchange("PATCH", "/items/2", {{"Content-Type", "application/merge-patch+json"}});
  missing.set_body(R"({"price":11})");
  missing.request();
  EXPECT_EQ(missing.fetched(fetched_status(404)).status(), 404);
}

TEST_F(EtagHistoryTest, AStalePatchIsRebasedLikeAPut) {
  std::string base = read(kBase);
  const std::string current = R"({"id":1,"name":"gadget","price":10,"tags":["a"]})";
  EtagExchange patch = exchange("PATCH", "/items/1",
                                {{"Content-Type", "application/merge-patch+json"}, {"If-Match", base}});
  patch.set_body(R"({"price":12})");
  Decision merged = write_against(patch, current);
  ASSERT_TRUE(merged.forwards());
  EXPECT_EQ(merged.replaced_method(), "PUT");
  EXPECT_EQ(json_of(merged.replaced_body()), nlohmann::json::parse(R"({"id":1,"name":"gadget","price":12,"tags":["a"]})"));
}

}  // namespace
}  // namespace arbiter
