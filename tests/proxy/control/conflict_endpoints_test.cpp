// The conflict feed's endpoints (proxy/control/conflict_endpoints.h) through a registry, over the
// memory feed and history: polling, the choice of SSE by Accept, parameter problems, records with
// bodies and diffs, and 404/410. No sockets (the SSE hub's own tests are in tests/proxy/net/).

#include "proxy/control/conflict_endpoints.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "policies/store/memory_conflict_feed.h"
#include "policies/store/memory_history_store.h"
#include "tests/proxy/control/feed_test_support.h"

namespace arbiter {
namespace {

using feed_testing::FakeFeedResponder;
using feed_testing::sample_conflict;
using nlohmann::json;

class ConflictEndpointsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    uv_loop_init(&loop_);
    subscribers_ = std::make_unique<FeedSubscribers>(loop_, feed_, [] { return FeedStreamSettings{}; }, counters_);
    add_conflict_endpoints(registry_, feed_, history_, *subscribers_);
  }
  void TearDown() override {
    subscribers_->close();
    uv_run(&loop_, UV_RUN_DEFAULT);
    subscribers_.reset();
    uv_loop_close(&loop_);
  }

  FakeFeedResponder get(std::string_view path, std::string_view query = {}, const HeaderList& headers = {}) {
    std::string full = "/_arbiter" + std::string(path);
    FakeFeedResponder responder;
    registry_.dispatch(LocalRequest{"GET", full, full, query, headers, {}, "rid", "/_arbiter", "ops"}, responder);
    EXPECT_EQ(responder.answers, 1) << path;
    return responder;
  }

  void record_version(std::string_view resource, std::string_view etag, std::string_view body,
                      std::string_view content_type = "application/json") {
    VersionInput input;
    input.route = "orders";
    input.resource = resource;
    input.etag = etag;
    input.body = body;
    input.content_type = content_type;
    input.time = WallTime(std::chrono::seconds(1'800'000'000));
    history_->record(input, HistoryLimits{});
  }

  static std::vector<std::uint64_t> ids_of(const json& events) {
    std::vector<std::uint64_t> ids;
    for (const json& event : events) ids.push_back(event["id"].get<std::uint64_t>());
    return ids;
  }

  uv_loop_t loop_{};
  FeedSubscriberCounters counters_;
  std::shared_ptr<MemoryConflictFeed> feed_ = std::make_shared<MemoryConflictFeed>(FeedLimits{.capacity = 8});
  std::shared_ptr<MemoryHistoryStore> history_ = std::make_shared<MemoryHistoryStore>();
  std::unique_ptr<FeedSubscribers> subscribers_;
  HandlerRegistry registry_{"control"};
};

TEST_F(ConflictEndpointsTest, BothEndpointsNeedTheFeedScope) {
  ASSERT_EQ(registry_.entries().size(), 2u);
  EXPECT_EQ(registry_.entries()[0].path, "/conflicts");
  EXPECT_EQ(registry_.entries()[0].match, PathMatch::Exact);
  EXPECT_EQ(registry_.entries()[1].path, "/conflicts/");
  EXPECT_EQ(registry_.entries()[1].match, PathMatch::Prefix);
  for (const auto& entry : registry_.entries()) EXPECT_EQ(entry.scope, "feed") << entry.path;
}

TEST_F(ConflictEndpointsTest, PollingPagesWithSinceLimitAndNext) {
  for (int i = 0; i < 5; ++i) feed_->publish(sample_conflict("/orders/" + std::to_string(i)));
  FakeFeedResponder page = get("/conflicts", "since=2&limit=2");
  ASSERT_EQ(page.status, 200) << page.body;
  EXPECT_EQ(page.fields.find("Content-Type").value_or(""), "application/json");
  json body = page.json();
  EXPECT_EQ(ids_of(body["events"]), (std::vector<std::uint64_t>{3, 4}));
  EXPECT_EQ(body["events"][0]["resource"], "/orders/2");
  EXPECT_EQ(body["next"], 4);
  EXPECT_FALSE(body.contains("reset"));

  json rest = get("/conflicts", "since=4").json();
  EXPECT_EQ(ids_of(rest["events"]), (std::vector<std::uint64_t>{5}));
  EXPECT_EQ(rest["next"], 5);
  json none = get("/conflicts", "since=5").json();
  EXPECT_TRUE(none["events"].empty());
  EXPECT_EQ(none["next"], 5) << "polling again from next finds nothing new, and keeps its place";

  EXPECT_EQ(ids_of(get("/conflicts").json()["events"]), (std::vector<std::uint64_t>{1, 2, 3, 4, 5}));
}

TEST_F(ConflictEndpointsTest, PollingFiltersAndSaysResetWhenTheRingMovedOn) {
  feed_->publish(sample_conflict("/orders/1"));
  feed_->publish(sample_conflict("/orders/2", "merged"));
  feed_->publish(sample_conflict("/stock/1", "merged"));
  json merged = get("/conflicts", "type=merged&resource=/orders/*").json();
  EXPECT_EQ(ids_of(merged["events"]), (std::vector<std::uint64_t>{2}));
  EXPECT_EQ(merged["next"], 3) << "the last examined, not the last matched";
  EXPECT_EQ(ids_of(get("/conflicts", "route=nope").json()["events"]), std::vector<std::uint64_t>{});

  for (int i = 0; i < 10; ++i) feed_->publish(sample_conflict("/orders/x"));  // the ring holds 6..13
  json late = get("/conflicts", "since=2&limit=3").json();
  EXPECT_EQ(late["reset"], true);
  EXPECT_EQ(ids_of(late["events"]), (std::vector<std::uint64_t>{6, 7, 8}));
}

TEST_F(ConflictEndpointsTest, BadParametersAre400Problems) {
  FakeFeedResponder type = get("/conflicts", "type=conflict,nope");
  EXPECT_EQ(type.status, 400);
  EXPECT_EQ(type.json()["known"].size(), 6u);
  EXPECT_EQ(get("/conflicts", "limit=0").status, 400);
  EXPECT_EQ(get("/conflicts", "since=abc").status, 400);
  FakeFeedResponder resume = get("/conflicts", "", HeaderList{{"Accept", "text/event-stream"}, {"Last-Event-ID", "x"}});
  EXPECT_EQ(resume.status, 400);
  EXPECT_EQ(counters_.subscribers.load(), 0u);
}

TEST_F(ConflictEndpointsTest, AcceptEventStreamOpensAStream) {
  feed_->publish(sample_conflict("/orders/1"));
  feed_->publish(sample_conflict("/orders/2"));
  FakeFeedResponder stream =
      get("/conflicts", "type=conflict", HeaderList{{"Accept", "text/event-stream"}, {"Last-Event-ID", "1"}});
  ASSERT_EQ(stream.status, 200);
  ASSERT_TRUE(stream.stream);
  EXPECT_NE(stream.stream->written.find("id: 2\nevent: conflict\n"), std::string::npos) << stream.stream->written;
  EXPECT_EQ(stream.stream->written.find("id: 1\n"), std::string::npos) << stream.stream->written;
  EXPECT_EQ(subscribers_->size(), 1u);
}

TEST_F(ConflictEndpointsTest, ARecordShowsBothBodiesTheBaseAndTheDiffs) {
  record_version("/orders/1", "\"base\"", R"({"status": "new", "qty": 1})");
  record_version("/orders/1", "\"theirs\"", R"({"status": "paid", "qty": 1})");
  FeedEvent conflict = sample_conflict("/orders/1");
  conflict.your_etag = "\"base\"";
  conflict.current_etag = "\"theirs\"";
  conflict.base_etag = "\"base\"";
  conflict.your_body = R"({"status": "new", "qty": 3})";
  conflict.your_content_type = "application/json; charset=utf-8";
  std::uint64_t id = feed_->publish(conflict);

  FakeFeedResponder record = get("/conflicts/" + std::to_string(id));
  ASSERT_EQ(record.status, 200) << record.body;
  json body = record.json();
  EXPECT_EQ(body["id"], id);
  EXPECT_EQ(body["type"], "conflict");
  EXPECT_EQ(body["body"], "kept");
  EXPECT_EQ(body["yours"]["content_type"], "application/json; charset=utf-8");
  EXPECT_EQ(body["yours"]["body"], json::parse(R"({"status": "new", "qty": 3})"));
  EXPECT_EQ(body["current"]["body"]["status"], "paid");
  EXPECT_EQ(body["current"]["version"], 2);
  EXPECT_EQ(body["current"]["etag"], "\"theirs\"");
  EXPECT_EQ(body["base"]["body"]["status"], "new");
  EXPECT_EQ(body["diff"]["base_to_current"],
            json::parse(R"([{"op": "replace", "path": "/status", "value": "paid"}])"));
  EXPECT_EQ(body["diff"]["base_to_yours"], json::parse(R"([{"op": "replace", "path": "/qty", "value": 3}])"));
}

TEST_F(ConflictEndpointsTest, ARecordWithoutHistoryOrJsonShowsWhatItHas) {
  FeedEvent text = sample_conflict("/notes/1");
  text.your_body = "plain words";
  text.your_content_type = "text/plain";
  json plain = get("/conflicts/" + std::to_string(feed_->publish(text))).json();
  EXPECT_EQ(plain["yours"]["body"], "plain words");
  EXPECT_FALSE(plain.contains("current"));
  EXPECT_FALSE(plain.contains("base"));
  EXPECT_FALSE(plain.contains("diff"));

  FeedEvent binary = sample_conflict("/blobs/1");
  binary.your_body = std::string("\x00\xff\x10", 3);
  binary.your_content_type = "application/octet-stream";
  json blob = get("/conflicts/" + std::to_string(feed_->publish(binary))).json();
  EXPECT_EQ(blob["yours"]["body"], "AP8Q");
  EXPECT_EQ(blob["yours"]["encoding"], "base64");

  FeedEvent broken = sample_conflict("/orders/2");
  broken.your_body = "{not json";
  broken.your_content_type = "application/json";
  json unparsed = get("/conflicts/" + std::to_string(feed_->publish(broken))).json();
  EXPECT_EQ(unparsed["yours"]["body"], "{not json") << "JSON that does not parse is shown as a string";

  json bodiless = get("/conflicts/" + std::to_string(feed_->publish(sample_conflict("/orders/3")))).json();
  EXPECT_FALSE(bodiless.contains("yours"));
}

TEST_F(ConflictEndpointsTest, NeverPublishedIs404DroppedIs410AndPathsBelowAnIdAre404) {
  for (int i = 0; i < 10; ++i) feed_->publish(sample_conflict("/orders/1"));  // the ring holds 3..10
  FakeFeedResponder dropped = get("/conflicts/1");
  EXPECT_EQ(dropped.status, 410);
  EXPECT_EQ(dropped.json()["type"], "urn:arbiter:problem:event-dropped");
  EXPECT_EQ(dropped.json()["id"], 1);
  FakeFeedResponder never = get("/conflicts/11");
  EXPECT_EQ(never.status, 404);
  EXPECT_EQ(never.json()["type"], "urn:arbiter:problem:event-not-found");
  for (std::string_view path : {"/conflicts/5/x", "/conflicts/5/resolve", "/conflicts/", "/conflicts/abc",
                                "/conflicts/0", "/conflicts/-1", "/conflicts/5x"}) {
    EXPECT_EQ(get(path).status, 404) << path;
  }
  EXPECT_EQ(get("/conflicts/5").status, 200);
}

}  // namespace
}  // namespace arbiter
