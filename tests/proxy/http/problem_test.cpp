#include "proxy/http/problem.h"

#include <gtest/gtest.h>

namespace arbiter {
namespace {

TEST(ProblemTest, MakeBuildsTheTypeFromTheSlug) {
  Problem p = Problem::make("route-not-found", 404, "No route", "No route matches GET /x");
  EXPECT_EQ(p.status, 404);
  EXPECT_EQ(p.type, "urn:arbiter:problem:route-not-found");
  EXPECT_EQ(p.title, "No route");
  EXPECT_EQ(p.detail, "No route matches GET /x");
  EXPECT_TRUE(p.extensions.empty());
}

TEST(ProblemTest, JsonHasTheMembersInOrder) {
  Problem p = Problem::make("route-not-found", 404, "No route", "No route matches GET /x");
  EXPECT_EQ(p.to_json(""),
            R"({"type":"urn:arbiter:problem:route-not-found","title":"No route","status":404,)"
            R"("detail":"No route matches GET /x"})");
}

TEST(ProblemTest, RequestIdBecomesInstanceAndMember) {
  Problem p = Problem::make("upstream-timeout", 504, "Upstream timed out", "after 30s");
  EXPECT_EQ(p.to_json("r-17"),
            R"({"type":"urn:arbiter:problem:upstream-timeout","title":"Upstream timed out","status":504,)"
            R"("detail":"after 30s","instance":"urn:arbiter:request:r-17","request-id":"r-17"})");
}

TEST(ProblemTest, DefaultsFillTypeAndTitleAndOmitDetail) {
  Problem p;
  EXPECT_EQ(p.to_json(""), R"({"type":"about:blank","title":"Internal Server Error","status":500})");
  p.status = 429;
  EXPECT_EQ(p.to_json(""), R"({"type":"about:blank","title":"Too Many Requests","status":429})");
}

TEST(ProblemTest, ExtensionsFollowInOrder) {
  Problem p = Problem::make("precondition-required", 428, "Precondition required", "");
  p.extensions.emplace_back("violated-policies", nlohmann::json::array({"etag"}));
  p.extensions.emplace_back("retry-after", 3);
  EXPECT_EQ(p.to_json(""),
            R"({"type":"urn:arbiter:problem:precondition-required","title":"Precondition required",)"
            R"("status":428,"violated-policies":["etag"],"retry-after":3})");
}

TEST(ProblemTest, EscapesAndReplacesInvalidUtf8InsteadOfThrowing) {
  Problem p = Problem::make("bad-request", 400, "Bad request", "say \"hi\" \xff!");
  EXPECT_EQ(p.to_json(""),
            "{\"type\":\"urn:arbiter:problem:bad-request\",\"title\":\"Bad request\",\"status\":400,"
            "\"detail\":\"say \\\"hi\\\" \xEF\xBF\xBD!\"}");
}

TEST(ProblemTest, ContentType) { EXPECT_EQ(kProblemContentType, "application/problem+json"); }

TEST(ReasonPhraseTest, KnownAndUnknownCodes) {
  EXPECT_EQ(reason_phrase(200), "OK");
  EXPECT_EQ(reason_phrase(304), "Not Modified");
  EXPECT_EQ(reason_phrase(404), "Not Found");
  EXPECT_EQ(reason_phrase(405), "Method Not Allowed");
  EXPECT_EQ(reason_phrase(412), "Precondition Failed");
  EXPECT_EQ(reason_phrase(413), "Content Too Large");
  EXPECT_EQ(reason_phrase(431), "Request Header Fields Too Large");
  EXPECT_EQ(reason_phrase(502), "Bad Gateway");
  EXPECT_EQ(reason_phrase(504), "Gateway Timeout");
  EXPECT_EQ(reason_phrase(299), "Unknown");
  EXPECT_EQ(reason_phrase(0), "Unknown");
  EXPECT_EQ(reason_phrase(-1), "Unknown");
}

}  // namespace
}  // namespace arbiter
