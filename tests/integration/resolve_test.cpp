// Settling a conflict through POST {control_prefix}/conflicts/{id}/resolve, against json-server
// (a real third-party backend): the chosen document goes through the route's whole chain and is
// what json-server then stores; a stale choice is refused as any stale write is.

#include <gtest/gtest.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "tests/support/harness.h"
#include "tests/support/json_server_fixture.h"

namespace {

using harness::HttpClient;
using harness::HttpResponse;
using nlohmann::json;

class ResolveTest : public harness::JsonServerFixture {
 protected:
  void SetUp() override {
    start_with(json{{"items", {{{"id", 1}, {"name", "one"}, {"count", 1}}, {{"id", 2}, {"name", "two"}, {"count", 2}}}}},
               "[server]\nlisten = \"127.0.0.1:0\"\nworkers = 2\n"
               "\n[[route]]\nname = \"items\"\npath = \"/items/{id}\"\nupstream = \"json_server\"\n"
               "[route.etag]\nverify = \"upstream\"\n[route.history]\nkeep = 10\n");
  }

  // Two writers start from one version; the second is refused. Its conflict's id.
  std::uint64_t provoke_conflict(std::string_view target, std::string_view theirs, std::string_view yours) {
    const std::string base = etag_of(target);
    HttpResponse first = send("PUT", target, theirs, {{"If-Match", base}});
    EXPECT_EQ(first.status, 200) << first.body;
    HttpResponse refused = send("PUT", target, yours, {{"If-Match", base}});
    EXPECT_EQ(refused.status, 409) << refused.body;
    json problem = json::parse(refused.body);
    EXPECT_TRUE(problem.contains("conflict_id")) << refused.body;
    std::uint64_t id = problem.value("conflict_id", std::uint64_t{0});
    EXPECT_EQ(problem.value("conflict_record", ""), "/_arbiter/conflicts/" + std::to_string(id));
    return id;
  }
  HttpResponse resolve(std::uint64_t id, const json& choice, harness::HeaderPairs headers) {
    return send("POST", "/_arbiter/conflicts/" + std::to_string(id) + "/resolve", choice.dump(), std::move(headers));
  }

};

TEST_F(ResolveTest, TakeYoursWritesTheRefusedBodyOverTheCurrentVersion) {
  std::uint64_t id = provoke_conflict("/items/1", R"({"name":"theirs","count":1})", R"({"name":"yours","count":7})");
  ASSERT_GT(id, 0u);
  const std::string current = etag_of("/items/1");
  HttpResponse resolved = resolve(id, {{"take", "yours"}}, {{"If-Match", current}});
  ASSERT_EQ(resolved.status, 200) << resolved.body;
  const std::string new_etag = resolved.header("ETag").value_or("");
  EXPECT_EQ(new_etag.size(), 34u) << new_etag;
  EXPECT_NE(new_etag, current);
  EXPECT_TRUE(resolved.header("Arbiter-Resolved").value_or("").starts_with(std::to_string(id) + "; event="));
  EXPECT_EQ(backend_->stored_record("items", 1), (json{{"id", 1}, {"name", "yours"}, {"count", 7}}));
  EXPECT_EQ(etag_of("/items/1"), new_etag);
  // The feed says so: who (no [control] tokens: the client's address), how, and the new tag.
  HttpResponse polled = send("GET", "/_arbiter/conflicts?type=resolved");
  ASSERT_EQ(polled.status, 200) << polled.body;
  json events = json::parse(polled.body)["events"];
  ASSERT_EQ(events.size(), 1u) << polled.body;
  EXPECT_EQ(events[0]["conflict"], id);
  EXPECT_EQ(events[0]["resource"], "/items/1");
  EXPECT_EQ(events[0]["route"], "items");
  EXPECT_EQ(events[0]["choice"], "yours");
  EXPECT_EQ(events[0]["by"], "127.0.0.1");
  EXPECT_EQ(events[0]["etag"], new_etag);
  // The conflict's own event says it was settled.
  HttpResponse conflict = send("GET", "/_arbiter/conflicts/" + std::to_string(id));
  ASSERT_EQ(conflict.status, 200) << conflict.body;
  EXPECT_EQ(json::parse(conflict.body)["resolved"]["etag"], new_etag) << conflict.body;
  EXPECT_EQ(resolved.header("Arbiter-Resolved").value_or(""),
            std::to_string(id) + "; event=" + std::to_string(events[0]["id"].get<std::uint64_t>()));

  // Once settled, it stays settled, and says by whom.
  HttpResponse again = resolve(id, {{"take", "yours"}}, {{"If-Match", new_etag}});
  EXPECT_EQ(again.status, 409) << again.body;
  json problem = json::parse(again.body);
  EXPECT_EQ(problem["type"], "urn:arbiter:problem:already-resolved");
  EXPECT_EQ(problem["resolved"]["choice"], "yours");
  EXPECT_EQ(problem["resolved"]["etag"], new_etag);
  EXPECT_FALSE(problem["resolved"]["by"].get<std::string>().empty());
}

TEST_F(ResolveTest, AStaleIfMatchIsANewConflictAndWritesNothing) {
  std::uint64_t id = provoke_conflict("/items/2", R"({"name":"theirs"})", R"({"name":"yours"})");
  const std::string stale = etag_of("/items/2");
  ASSERT_EQ(send("PUT", "/items/2", R"({"name":"third"})", {{"If-Match", stale}}).status, 200);
  HttpResponse refused = resolve(id, {{"take", "yours"}}, {{"If-Match", stale}});
  ASSERT_EQ(refused.status, 409) << refused.body;
  json problem = json::parse(refused.body);
  EXPECT_EQ(problem["type"], "urn:arbiter:problem:edit-conflict");
  EXPECT_GT(problem.value("conflict_id", std::uint64_t{0}), id);  // a conflict of its own
  EXPECT_EQ(backend_->stored_record("items", 2), (json{{"id", 2}, {"name", "third"}}));
  // Not settled: a fresh try with the current tag still may.
  HttpResponse retried = resolve(id, {{"take", "yours"}}, {{"If-Match", etag_of("/items/2")}});
  EXPECT_EQ(retried.status, 200) << retried.body;
  EXPECT_EQ(backend_->stored_record("items", 2), (json{{"id", 2}, {"name", "yours"}}));
}

TEST_F(ResolveTest, TakeDocumentWritesTheGivenDocumentAndTheirsWritesNothing) {
  std::uint64_t first = provoke_conflict("/items/1", R"({"name":"theirs","count":2})", R"({"name":"yours","count":3})");
  HttpResponse edited = resolve(first, {{"take", "document"}, {"document", {{"name", "edited"}, {"count", 5}}}},
                                {{"If-Match", etag_of("/items/1")}});
  ASSERT_EQ(edited.status, 200) << edited.body;
  EXPECT_EQ(backend_->stored_record("items", 1), (json{{"id", 1}, {"name", "edited"}, {"count", 5}}));

  std::uint64_t second = provoke_conflict("/items/1", R"({"name":"kept","count":9})", R"({"name":"lost","count":0})");
  HttpResponse theirs = resolve(second, {{"take", "theirs"}}, {});
  ASSERT_EQ(theirs.status, 200) << theirs.body;
  json body = json::parse(theirs.body);
  EXPECT_EQ(body["conflict"], second);
  EXPECT_EQ(body["resolved"]["choice"], "theirs");
  EXPECT_TRUE(body["resolved"]["etag"].is_null());
  EXPECT_EQ(backend_->stored_record("items", 1), (json{{"id", 1}, {"name", "kept"}, {"count", 9}}));
  EXPECT_EQ(resolve(second, {{"take", "yours"}}, {{"If-Match", etag_of("/items/1")}}).status, 409);
}

TEST_F(ResolveTest, MalformedResolvesAreProblemsThatChangeNothing) {
  std::uint64_t id = provoke_conflict("/items/1", R"({"name":"theirs"})", R"({"name":"yours"})");
  const std::string current = etag_of("/items/1");
  auto problem_type = [](const HttpResponse& response) {
    EXPECT_EQ(response.header("Content-Type").value_or(""), "application/problem+json") << response.body;
    return json::parse(response.body).value("type", "");
  };
  HttpResponse no_if_match = resolve(id, {{"take", "yours"}}, {});
  EXPECT_EQ(no_if_match.status, 428);
  EXPECT_EQ(problem_type(no_if_match), "urn:arbiter:problem:precondition-required");
  HttpResponse bad_take = resolve(id, {{"take", "mine"}}, {{"If-Match", current}});
  EXPECT_EQ(bad_take.status, 400);
  EXPECT_EQ(problem_type(bad_take), "urn:arbiter:problem:bad-resolve-body");
  HttpResponse not_json = send("POST", "/_arbiter/conflicts/" + std::to_string(id) + "/resolve", "take=yours",
                               {{"If-Match", current}});
  EXPECT_EQ(not_json.status, 400);
  HttpResponse no_document = resolve(id, {{"take", "document"}}, {{"If-Match", current}});
  EXPECT_EQ(no_document.status, 400);
  HttpResponse unknown = resolve(id + 1000, {{"take", "yours"}}, {{"If-Match", current}});
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(problem_type(unknown), "urn:arbiter:problem:conflict-not-found");
  HttpResponse bad_path = send("POST", "/_arbiter/conflicts/x/resolve", R"({"take":"yours"})", {{"If-Match", current}});
  EXPECT_EQ(bad_path.status, 404);
  HttpResponse too_large = send("POST", "/_arbiter/conflicts/" + std::to_string(id) + "/resolve",
                                std::string(2u << 20, ' '), {{"If-Match", current}});
  EXPECT_EQ(too_large.status, 413);
  EXPECT_EQ(backend_->stored_record("items", 1), (json{{"id", 1}, {"name", "theirs"}}));
  // None of them settled it.
  EXPECT_EQ(resolve(id, {{"take", "yours"}}, {{"If-Match", current}}).status, 200);
}

}  // namespace
