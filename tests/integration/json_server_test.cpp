// Arbiter in front of json-server, a real third-party backend (Express, weak ETags of its own,
// PUT replaces a record, PATCH merges into it): optimistic concurrency through the binary,
// asserted against what json-server stored in its db.json.

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

class JsonServerTest : public harness::JsonServerFixture {
 protected:
  void SetUp() override {
    start_with(json{{"items", {{{"id", 1}, {"name", "one"}, {"count", 1}}, {{"id", 2}, {"name", "two"}, {"count", 2}}}}},
               "[server]\nlisten = \"127.0.0.1:0\"\nworkers = 2\n"
               "\n[[route]]\nname = \"items\"\npath = \"/items/{id}\"\nupstream = \"json_server\"\n"
               "[route.etag]\nverify = \"upstream\"\n");
  }


};

TEST_F(JsonServerTest, ReadGetsAStrongEtagInPlaceOfJsonServersWeakOne) {
  const HttpResponse direct = send_to_backend("GET", "/items/1");
  ASSERT_EQ(direct.status, 200);
  ASSERT_TRUE(direct.header("ETag").value_or("").starts_with("W/\"")) << "json-server's own tag is weak";

  const HttpResponse read = send("GET", "/items/1");
  ASSERT_EQ(read.status, 200) << read.body;
  EXPECT_EQ(json::parse(read.body), (json{{"id", 1}, {"name", "one"}, {"count", 1}}));
  const std::string etag = read.header("ETag").value_or("");
  ASSERT_EQ(etag.size(), 34u) << etag;  // "<32 hex>": minted by Arbiter, strong
  EXPECT_EQ(etag.front(), '"');
  EXPECT_EQ(read.header_count("ETag"), 1u);
  EXPECT_EQ(etag_of("/items/1"), etag);  // the same record, the same tag
  EXPECT_EQ(send("GET", "/items/1", {}, {{"If-None-Match", etag}}).status, 304);
}

TEST_F(JsonServerTest, PutWithTheCurrentEtagIsStoredAndTheSameEtagIsThenStale) {
  const std::string etag = etag_of("/items/1");
  const HttpResponse written = send("PUT", "/items/1", R"({"name":"first"})", {{"If-Match", etag}});
  ASSERT_EQ(written.status, 200) << written.body;
  const std::string new_etag = written.header("ETag").value_or("");
  EXPECT_EQ(new_etag.size(), 34u) << new_etag;
  EXPECT_NE(new_etag, etag);
  // PUT replaces: "count" is gone, json-server keeps the id.
  EXPECT_EQ(backend_->stored_record("items", 1), (json{{"id", 1}, {"name", "first"}}));
  EXPECT_EQ(etag_of("/items/1"), new_etag);  // the write's tag is the one reads get

  const HttpResponse stale = send("PUT", "/items/1", R"({"name":"second"})", {{"If-Match", etag}});
  EXPECT_EQ(stale.status, 409) << stale.body;
  EXPECT_EQ(stale.header("Content-Type").value_or(""), "application/problem+json");
  EXPECT_EQ(stale.header("ETag").value_or(""), new_etag);
  const json problem = json::parse(stale.body);
  EXPECT_EQ(problem["type"], "urn:arbiter:problem:edit-conflict");
  EXPECT_EQ(problem["your_etag"], etag);
  EXPECT_EQ(problem["current_etag"], new_etag);
  EXPECT_EQ(backend_->stored_record("items", 1), (json{{"id", 1}, {"name", "first"}}));
}

// verify = "upstream" reads json-server under the write's turn, so a change made to it behind
// Arbiter's back makes the tag Arbiter handed out before stale.
TEST_F(JsonServerTest, PutWithAnEtagStaleAfterADirectWriteGets409AndChangesNothing) {
  const std::string etag = etag_of("/items/2");
  ASSERT_EQ(send_to_backend("PATCH", "/items/2", R"({"count":20})").status, 200);
  const json changed_directly = {{"id", 2}, {"name", "two"}, {"count", 20}};
  ASSERT_EQ(backend_->stored_record("items", 2), changed_directly);

  const HttpResponse stale = send("PUT", "/items/2", R"({"name":"overwrite"})", {{"If-Match", etag}});
  EXPECT_EQ(stale.status, 409) << stale.body;
  EXPECT_EQ(stale.header("Content-Type").value_or(""), "application/problem+json");
  const json problem = json::parse(stale.body);
  EXPECT_EQ(problem["resource"], "/items/2");
  EXPECT_EQ(problem["your_etag"], etag);
  EXPECT_NE(problem["current_etag"], etag);
  EXPECT_EQ(backend_->stored_record("items", 2), changed_directly);
}

TEST_F(JsonServerTest, PatchThroughArbiterReachesJsonServerWhichMergesIt) {
  const std::string etag = etag_of("/items/1");
  const HttpResponse patched = send("PATCH", "/items/1", R"({"count":5})", {{"If-Match", etag}});
  ASSERT_EQ(patched.status, 200) << patched.body;
  EXPECT_EQ(json::parse(patched.body), (json{{"id", 1}, {"name", "one"}, {"count", 5}}));
  const std::string new_etag = patched.header("ETag").value_or("");
  EXPECT_EQ(new_etag.size(), 34u) << new_etag;
  EXPECT_NE(new_etag, etag);
  EXPECT_EQ(backend_->stored_record("items", 1), (json{{"id", 1}, {"name", "one"}, {"count", 5}}));
  EXPECT_EQ(backend_->stored_record("items", 2), (json{{"id", 2}, {"name", "two"}, {"count", 2}}));

  EXPECT_EQ(send("PATCH", "/items/1", R"({"count":6})", {{"If-Match", etag}}).status, 409);
  EXPECT_EQ(backend_->stored_record("items", 1)->at("count"), 5);
}

}  // namespace
