// The conflict feed's request parameters and SSE framing (proxy/control/feed_protocol.h).

#include "proxy/control/feed_protocol.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tests/proxy/control/feed_test_support.h"

namespace arbiter {
namespace {

using feed_testing::parse_sse;
using feed_testing::sample_conflict;

HeaderList accept_fields(std::initializer_list<std::string_view> values) {
  HeaderList fields;
  for (std::string_view value : values) fields.add("Accept", value);
  return fields;
}

TEST(FeedProtocolTest, AnEventStreamIsAskedForByNameWithAWeightAboveZero) {
  EXPECT_TRUE(accepts_event_stream(accept_fields({"text/event-stream"})));
  EXPECT_TRUE(accepts_event_stream(accept_fields({"Text/Event-Stream"})));
  EXPECT_TRUE(accepts_event_stream(accept_fields({"application/json;q=0.9, text/event-stream;q=0.1"})));
  EXPECT_TRUE(accepts_event_stream(accept_fields({"text/event-stream ; charset=utf-8 ; q=1"})));
  EXPECT_TRUE(accepts_event_stream(accept_fields({"application/json", "text/event-stream"})));  // a second field
  EXPECT_TRUE(accepts_event_stream(accept_fields({"text/event-stream;q=0.001"})));

  EXPECT_FALSE(accepts_event_stream(HeaderList{}));
  EXPECT_FALSE(accepts_event_stream(accept_fields({"*/*"})));
  EXPECT_FALSE(accepts_event_stream(accept_fields({"text/*"})));
  EXPECT_FALSE(accepts_event_stream(accept_fields({"application/json"})));
  EXPECT_FALSE(accepts_event_stream(accept_fields({"text/event-stream;q=0"})));
  EXPECT_FALSE(accepts_event_stream(accept_fields({"text/event-stream; Q=0.000"})));
  EXPECT_FALSE(accepts_event_stream(accept_fields({"text/event-streams"})));
}

TEST(FeedProtocolTest, FiltersAreReadPercentDecoded) {
  FeedFilterParse parse = parse_feed_filter("resource=%2Forders%2F*&route=orders&type=conflict,%20merged,,locked");
  ASSERT_FALSE(parse.error);
  EXPECT_EQ(parse.filter.resource, "/orders/*");
  EXPECT_EQ(parse.filter.route, "orders");
  EXPECT_EQ(parse.filter.types, (std::vector<std::string>{"conflict", "merged", "locked"}));
  EXPECT_TRUE(parse.filter.matches(sample_conflict("/orders/7")));
  EXPECT_FALSE(parse.filter.matches(sample_conflict("/order/7")));

  FeedFilterParse none = parse_feed_filter("");
  ASSERT_FALSE(none.error);
  EXPECT_TRUE(none.filter.resource.empty());
  EXPECT_TRUE(none.filter.route.empty());
  EXPECT_TRUE(none.filter.types.empty());
}

TEST(FeedProtocolTest, AnUnknownTypeIsA400ListingTheKnownOnes) {
  FeedFilterParse parse = parse_feed_filter("type=conflict,confict,Merged");
  ASSERT_TRUE(parse.error);
  const Problem& problem = parse.error->problem;
  EXPECT_EQ(problem.status, 400);
  EXPECT_EQ(problem.type, "urn:arbiter:problem:unknown-event-type");
  EXPECT_NE(problem.detail.find("'confict', 'Merged'"), std::string::npos) << problem.detail;
  ASSERT_EQ(problem.extensions.size(), 1u);
  EXPECT_EQ(problem.extensions[0].first, "known");
  EXPECT_EQ(problem.extensions[0].second,
            nlohmann::json({"conflict", "merged", "locked", "lock-expired", "lock-broken", "resolved"}));
}

TEST(FeedProtocolTest, PollingParametersHaveDefaultsBoundsAndRefuseJunk) {
  FeedPollParams defaults = parse_feed_poll("");
  EXPECT_FALSE(defaults.error);
  EXPECT_EQ(defaults.since, 0u);
  EXPECT_EQ(defaults.limit, 100u);

  FeedPollParams asked = parse_feed_poll("since=42&limit=7");
  EXPECT_FALSE(asked.error);
  EXPECT_EQ(asked.since, 42u);
  EXPECT_EQ(asked.limit, 7u);
  EXPECT_EQ(parse_feed_poll("limit=5000").limit, 1000u);

  for (std::string_view junk : {"since=x", "since=-1", "since=", "since=1.5", "limit=0", "limit=ten", "limit=-3",
                                "limit=99999999999999999999999"}) {
    FeedPollParams bad = parse_feed_poll(junk);
    ASSERT_TRUE(bad.error) << junk;
    EXPECT_EQ(bad.error->problem.status, 400) << junk;
  }
}

TEST(FeedProtocolTest, ResumeComesFromLastEventIdOrTheQuery) {
  HeaderList none;
  EXPECT_FALSE(parse_feed_resume(none, "").after);
  EXPECT_FALSE(parse_feed_resume(none, "").error);
  EXPECT_EQ(parse_feed_resume(none, "last_event_id=12").after, 12u);

  HeaderList field{{"Last-Event-ID", " 9 "}};
  EXPECT_EQ(parse_feed_resume(field, "last_event_id=12").after, 9u);  // the field wins

  FeedResumeParse bad = parse_feed_resume(HeaderList{{"Last-Event-ID", "abc"}}, "");
  ASSERT_TRUE(bad.error);
  EXPECT_EQ(bad.error->problem.status, 400);
  EXPECT_EQ(bad.error->problem.type, "urn:arbiter:problem:bad-last-event-id");
}

TEST(FeedProtocolTest, AnEventIsOneFrameWhoseDataIsTheEventJsonOnOneLine) {
  FeedEvent event = sample_conflict("/orders/1\n2");  // a newline in a text stays inside the JSON string
  event.id = 17;
  event.details = R"({"note": "two\nlines"})";
  std::string frame = sse_event_frame(event);
  EXPECT_EQ(frame.rfind("id: 17\nevent: conflict\ndata: {", 0), 0u) << frame;
  auto events = parse_sse(frame);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].id, "17");
  EXPECT_EQ(events[0].event, "conflict");
  nlohmann::json data = nlohmann::json::parse(events[0].data);
  EXPECT_EQ(data["id"], 17);
  EXPECT_EQ(data["resource"], "/orders/1\n2");
  EXPECT_EQ(data["note"], "two\nlines");
  EXPECT_EQ(data["your_etag"], "\"a\"");
  EXPECT_EQ(data["current_etag"], "\"b\"");
  EXPECT_EQ(std::count(frame.begin(), frame.end(), '\n'), 4);  // three field lines and the blank one
}

TEST(FeedProtocolTest, BytesThatAreNotUtf8AreReplacedNotThrown) {
  FeedEvent event = sample_conflict(std::string("/orders/\xff"));
  event.id = 3;
  auto events = parse_sse(sse_event_frame(event));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(nlohmann::json::parse(events[0].data)["resource"], "/orders/\xef\xbf\xbd");
}

TEST(FeedProtocolTest, RetryResetAndHeartbeatFrames) {
  EXPECT_EQ(sse_retry_frame(3000), "retry: 3000\n\n");
  EXPECT_EQ(sse_heartbeat_frame(), ": heartbeat\n\n");
  auto reset = parse_sse(sse_reset_frame(5, 40));
  ASSERT_EQ(reset.size(), 1u);
  EXPECT_EQ(reset[0].event, "reset");
  EXPECT_EQ(reset[0].id, "40");
  nlohmann::json data = nlohmann::json::parse(reset[0].data);
  EXPECT_EQ(data["missed"], true);
  EXPECT_EQ(data["last_event_id"], 5);
  EXPECT_EQ(data["resume_from"], 40);
  auto heartbeat = parse_sse(sse_heartbeat_frame());
  ASSERT_EQ(heartbeat.size(), 1u);
  EXPECT_EQ(heartbeat[0].comments, std::vector<std::string>{"heartbeat"});
}

}  // namespace
}  // namespace arbiter
