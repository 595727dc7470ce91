// Optimistic concurrency through the real binary: ETags minted for a backend that has none,
// stale If-Match writes refused before they reach it.

#include <gtest/gtest.h>

#include <atomic>
#include <nlohmann/json.hpp>
#include <thread>

#include "tests/support/proxy_fixture.h"

namespace {

using harness::ConfigOptions;
using harness::HttpClient;
using harness::HttpResponse;
using nlohmann::json;
using namespace std::chrono_literals;

std::string accounts_route(std::string_view etag_keys) {
  return "\n[[route]]\nname = \"accounts\"\npath = \"/accounts/{id}\"\nupstream = \"legacy\"\n[route.etag]\n" +
         std::string(etag_keys) + "\n";
}

class EtagTest : public harness::ProxyFixture {
 protected:
  void start_with(std::string_view etag_keys, int workers = 2) {
    start(ConfigOptions{.routes = accounts_route(etag_keys), .workers = workers});
  }
  std::string etag_of(std::string_view target) {
    HttpResponse response = send("GET", target);
    EXPECT_EQ(response.status, 200);
    return response.header("ETag").value_or("");
  }
  // Starts with `etag_keys`, reads /accounts/1's tag (into `read_tag`), clears the backend's log
  // and PUTs `body` with that tag; the PUT's answer.
  HttpResponse put_with_the_current_tag(std::string_view etag_keys, std::string_view body, std::string& read_tag) {
    start_with(etag_keys);
    read_tag = etag_of("/accounts/1");
    clear_backend_log();
    return send("PUT", "/accounts/1", body, {{"If-Match", read_tag}});
  }
  std::size_t backend_writes() {
    std::size_t writes = 0;
    for (const auto& entry : backend_log()) writes += entry["method"] != "GET";
    return writes;
  }
};

TEST_F(EtagTest, ReadsCarryAStrongMintedEtag) {
  start_with("");
  HttpResponse first = send("GET", "/accounts/1");
  ASSERT_EQ(first.status, 200);
  std::string etag = first.header("ETag").value_or("");
  ASSERT_EQ(etag.size(), 34u) << etag;  // "<32 hex>"
  EXPECT_EQ(etag.front(), '"');
  EXPECT_EQ(etag_of("/accounts/1"), etag);  // same representation, same tag
}

TEST_F(EtagTest, IfNoneMatchGets304WithoutBody) {
  start_with("");
  std::string etag = etag_of("/accounts/1");
  HttpResponse response = send("GET", "/accounts/1", {}, {{"If-None-Match", etag}});
  EXPECT_EQ(response.status, 304);
  EXPECT_TRUE(response.body.empty());
  EXPECT_EQ(response.header("ETag").value_or(""), etag);
  EXPECT_EQ(send("GET", "/accounts/1", {}, {{"If-None-Match", "\"other\""}}).status, 200);
}

TEST_F(EtagTest, StaleWriteIs409WithTheCurrentEtagAndNeverReachesTheBackend) {
  start_with("");
  std::string old_etag = etag_of("/accounts/1");
  HttpResponse first = send("PUT", "/accounts/1", R"({"balance":150})", {{"If-Match", old_etag}});
  ASSERT_EQ(first.status, 200);
  std::string new_etag = first.header("ETag").value_or("");
  ASSERT_FALSE(new_etag.empty());
  EXPECT_NE(new_etag, old_etag);

  clear_backend_log();
  HttpResponse stale = send("PUT", "/accounts/1", R"({"balance":999})", {{"If-Match", old_etag}});
  EXPECT_EQ(stale.status, 409);
  EXPECT_EQ(stale.header("Content-Type").value_or(""), "application/problem+json");
  EXPECT_EQ(stale.header("ETag").value_or(""), new_etag);
  json problem = json::parse(stale.body);
  EXPECT_EQ(problem["status"], 409);
  EXPECT_EQ(problem["resource"], "/accounts/1");
  EXPECT_EQ(problem["your_etag"], old_etag);
  EXPECT_EQ(problem["current_etag"], new_etag);
  EXPECT_EQ(backend_writes(), 0u);
  EXPECT_EQ(json::parse(send_to_backend("GET", "/accounts/1").body)["balance"], 150);
}

TEST_F(EtagTest, ConflictStatusCanBe412) {
  start_with("conflict_status = 412");
  HttpResponse stale = send("PUT", "/accounts/1", "{}", {{"If-Match", "\"not-the-current-one\""}});
  EXPECT_EQ(stale.status, 412);
}

TEST_F(EtagTest, TheWritesAnswerCarriesTheEtagThatTheNextGetServes) {
  start_with("");
  std::string etag = etag_of("/accounts/1");
  HttpResponse write = send("PATCH", "/accounts/1", R"({"balance":7})", {{"If-Match", etag}});
  ASSERT_EQ(write.status, 200);
  ASSERT_TRUE(write.header("ETag"));
  EXPECT_EQ(etag_of("/accounts/1"), *write.header("ETag"));
}

TEST_F(EtagTest, AWriteBehindArbitersBackIsCaughtByTheNextStaleWrite) {
  start_with("verify = \"upstream\"");
  std::string etag = etag_of("/accounts/1");
  ASSERT_EQ(send_to_backend("PUT", "/accounts/1", R"({"balance":1})").status, 200);
  HttpResponse stale = send("PUT", "/accounts/1", R"({"balance":2})", {{"If-Match", etag}});
  EXPECT_EQ(stale.status, 409);
  EXPECT_EQ(json::parse(send_to_backend("GET", "/accounts/1").body)["balance"], 1);
}

TEST_F(EtagTest, CacheModeRefusesAStaleWriteWithoutReadingTheBackend) {
  start_with("verify = \"cache\"");
  std::string etag = etag_of("/accounts/1");
  ASSERT_EQ(send("PUT", "/accounts/1", R"({"balance":3})", {{"If-Match", etag}}).status, 200);
  clear_backend_log();
  EXPECT_EQ(send("PUT", "/accounts/1", R"({"balance":4})", {{"If-Match", etag}}).status, 409);
  EXPECT_EQ(backend_log().size(), 0u);
}

// By default a write's answer says how it went, not what the resource now is: Arbiter reads
// the resource again, under the write's turn, for the tag the answer carries.
TEST_F(EtagTest, AWriteIsFollowedByAReadOfTheResourceForItsNewTag) {
  std::string etag;
  HttpResponse write = put_with_the_current_tag("verify = \"cache\"", R"({"balance":11})", etag);
  ASSERT_EQ(write.status, 200);
  json log = backend_log();
  ASSERT_EQ(log.size(), 2u) << log.dump();
  EXPECT_EQ(log[0]["method"], "PUT");
  EXPECT_EQ(log[1]["method"], "GET");
  EXPECT_EQ(etag_of("/accounts/1"), write.header("ETag").value_or(""));
}

// write_response = "representation": the backend answers a PUT or PATCH with the resource as it
// now is, so that answer is tagged and nothing more is asked of the backend; the tag is the one
// the next GET serves, and the old one is stale.
TEST_F(EtagTest, WriteResponseRepresentationTagsTheAnswerWithoutReadingAgain) {
  std::string etag;
  HttpResponse put =
      put_with_the_current_tag("verify = \"cache\"\nwrite_response = \"representation\"", R"({"balance":12})", etag);
  ASSERT_EQ(put.status, 200);
  std::string after_put = put.header("ETag").value_or("");
  ASSERT_FALSE(after_put.empty());
  EXPECT_NE(after_put, etag);
  HttpResponse patch = send("PATCH", "/accounts/1", R"({"note":"x"})", {{"If-Match", after_put}});
  ASSERT_EQ(patch.status, 200);
  std::string after_patch = patch.header("ETag").value_or("");
  json log = backend_log();
  ASSERT_EQ(log.size(), 2u) << log.dump();
  EXPECT_EQ(log[0]["method"], "PUT");
  EXPECT_EQ(log[1]["method"], "PATCH");
  EXPECT_EQ(etag_of("/accounts/1"), after_patch);
  EXPECT_EQ(send("PUT", "/accounts/1", R"({"balance":13})", {{"If-Match", after_put}}).status, 409);
  EXPECT_EQ(json::parse(send_to_backend("GET", "/accounts/1").body)["note"], "x");
}

TEST_F(EtagTest, RequireIfMatchAnswers428AndForwardsNothing) {
  start_with("require_if_match = true");
  clear_backend_log();
  HttpResponse response = send("PUT", "/accounts/1", R"({"balance":0})");
  EXPECT_EQ(response.status, 428);
  json problem = json::parse(response.body);
  EXPECT_NE(problem["detail"].get<std::string>().find("If-Match"), std::string::npos);
  EXPECT_EQ(backend_writes(), 0u);
}

TEST_F(EtagTest, IfNoneMatchStarRefusesToOverwrite) {
  start_with("");
  EXPECT_EQ(send("PUT", "/accounts/1", "{}", {{"If-None-Match", "*"}}).status, 409);
  EXPECT_EQ(send("PUT", "/accounts/77", R"({"balance":5})", {{"If-None-Match", "*"}}).status, 201);
}

// The reason Arbiter exists: concurrent read-modify-write clients lose no update, across two
// workers, while something else also writes to the backend directly (another member, so the
// count stays exact; every such write turns the clients' tags stale).
//
// The direct writer is paced by the clients' progress, not by the clock: it writes once after
// each successful increment. Every direct write can make at most the writes in flight stale,
// and it waits for the next success, so the clients always get through, however slow the
// machine. A client's conflicts are bounded by the writes of the others: at most the 7 other
// clients' increments plus one direct write per increment, far under the attempt cap.
class EtagStormTest : public EtagTest, public ::testing::WithParamInterface<std::string_view> {};

TEST_P(EtagStormTest, LostUpdateStormEndsWithTheExactCount) {
  start_with(GetParam());
  ASSERT_EQ(send_to_backend("PUT", "/accounts/9", R"({"balance":0})").status, 201);
  constexpr int kClients = 8;
  constexpr int kIncrements = 40;
  std::atomic<bool> storm_over{false};
  std::atomic<int> increments{0};
  std::atomic<int> direct_writes{0};
  std::thread direct_writer([&] {
    HttpClient backend(backend_.port());
    int seen = 0;
    while (!storm_over.load()) {
      int now = increments.load();
      if (now == seen) {
        std::this_thread::sleep_for(1ms);
        continue;
      }
      seen = now;
      auto patched = backend.request("PATCH", "/accounts/9", {}, json{{"note", seen}}.dump());
      if (patched && patched->status == 200) ++direct_writes;
    }
  });
  std::atomic<int> conflicts{0};
  std::atomic<int> failures{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&] {
      HttpClient client(arbiter_->port(), 60s);
      for (int i = 0; i < kIncrements; ++i) {
        for (int attempt = 0;; ++attempt) {
          auto read = client.request("GET", "/accounts/9");
          if (!read || read->status != 200 || attempt > 1000) {
            ++failures;
            return;
          }
          int balance = json::parse(read->body)["balance"].get<int>();
          auto write = client.request("PUT", "/accounts/9", {{"If-Match", read->header("ETag").value_or("")}},
                                      json{{"balance", balance + 1}}.dump());
          if (!write) {
            ++failures;
            return;
          }
          if (write->status == 200) {
            ++increments;
            break;
          }
          if (write->status != 409) {
            ++failures;
            return;
          }
          ++conflicts;
        }
      }
    });
  }
  for (auto& client : clients) client.join();
  storm_over = true;
  direct_writer.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(json::parse(send_to_backend("GET", "/accounts/9").body)["balance"], kClients * kIncrements);
  EXPECT_GT(direct_writes.load(), 0) << "nothing wrote behind Arbiter's back; the test proved less";
  EXPECT_GT(conflicts.load(), 0) << "the clients never raced; the test proved nothing";
}

// Learning each write's version by reading the resource again, or from the write's answer (the
// legacy API answers a PUT with the document a GET returns).
INSTANTIATE_TEST_SUITE_P(LearningTheNewVersion, EtagStormTest,
                         ::testing::Values("verify = \"upstream\"",
                                           "verify = \"upstream\"\nwrite_response = \"representation\""),
                         [](const auto& info) { return info.index == 0 ? "ByReReading" : "FromTheAnswer"; });

}  // namespace
