// LockPolicy driven as the proxy drives it: LOCK/UNLOCK answered here, writes refused (423, 412,
// 428) or forwarded with the fence, queueing with `wait`, caps, counters, metrics, explain, and
// the store answering later.

#include "policies/lock/lock_policy.h"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "tests/policies/lock/lock_test_support.h"

namespace arbiter {
namespace {

using namespace std::chrono_literals;
using testing::DelayedLockStoreForPolicy;
using testing::FakeClock;
using testing::LockRequest;
using testing::problem_body;
using testing::RecordingMetrics;

struct LockFixture {
  explicit LockFixture(LockSettings settings = {}) : policy("items", std::move(settings), store, nullptr) {
    store->delaying = false;
  }
  std::shared_ptr<DelayedLockStoreForPolicy> store = std::make_shared<DelayedLockStoreForPolicy>();
  FakeClock clock;
  LockPolicy policy;

  LockRequest req(std::string method, HeaderList headers = {}, std::string path = "/items/1",
                  std::string client = "10.0.0.1") {
    return LockRequest(policy, clock, std::move(method), std::move(path), std::move(headers), std::move(client));
  }
  // A LOCK granted now; its token ("urn:uuid:...").
  std::string lock(std::string path = "/items/1", HeaderList headers = {}, std::string client = "10.0.0.1") {
    LockRequest r = req("LOCK", std::move(headers), std::move(path), std::move(client));
    Decision d = r.call();
    EXPECT_EQ(d.status(), 200);
    auto field = d.headers().find("Lock-Token");
    if (!field || field->size() < 2) {
      ADD_FAILURE() << "no Lock-Token";
      return {};
    }
    return std::string(field->substr(1, field->size() - 2));
  }
};

HeaderList lock_if_token(const std::string& token) { return HeaderList{{"If", "(<" + token + ">)"}}; }

bool lock_is_wait(const Decision& d) { return d.kind() == Decision::Kind::Wait; }

std::string lock_field(const Decision& d, std::string_view name) {
  auto value = d.headers().find(name);
  return value ? std::string(*value) : std::string();
}

std::string lock_set_field(const Decision& d, std::string_view name) {
  for (const auto& [n, v] : d.set_fields()) {
    if (n == name) return v;
  }
  return {};
}

TEST(LockPolicyTest, LockIsGrantedWithTokenTimeoutAndJsonBody) {
  LockFixture f;
  LockRequest r = f.req("LOCK", {{"Timeout", "Second-30"}});
  r.body(R"({"owner": "alice"})");
  Decision d = r.call();
  ASSERT_EQ(d.kind(), Decision::Kind::Reply);
  EXPECT_EQ(d.status(), 200);
  std::string token = lock_field(d, "Lock-Token");
  ASSERT_EQ(token.size(), 47u) << token;  // <urn:uuid:36 chars>
  EXPECT_EQ(token.substr(0, 10), "<urn:uuid:");
  EXPECT_EQ(token.back(), '>');
  EXPECT_EQ(lock_field(d, "Timeout"), "Second-30");
  EXPECT_EQ(d.content_type(), "application/json");
  auto body = nlohmann::json::parse(d.body());
  EXPECT_EQ(body["resource"], "/items/1");
  EXPECT_EQ(body["token"], token.substr(1, token.size() - 2));
  EXPECT_EQ(body["owner"], "alice");
  EXPECT_EQ(body["timeout"], 30);
  EXPECT_TRUE(body["expires"].is_string());
  EXPECT_GE(body["fence"].get<std::uint64_t>(), 1u);
  EXPECT_EQ(f.policy.counters().granted, 1u);
}

TEST(LockPolicyTest, TimeoutIsParsedAndCapped) {
  LockSettings s;
  s.default_timeout = 20s;
  s.max_timeout = 100s;
  LockFixture f(s);
  auto granted = [&](std::optional<std::string> timeout, std::string path) {
    HeaderList h;
    if (timeout) h.add("Timeout", *timeout);
    Decision d = f.req("LOCK", h, path).call();
    EXPECT_EQ(d.status(), 200) << path;
    return lock_field(d, "Timeout");
  };
  EXPECT_EQ(granted("Second-30", "/t/1"), "Second-30");
  EXPECT_EQ(granted("Infinite", "/t/2"), "Second-100");
  EXPECT_EQ(granted("Second-999999", "/t/3"), "Second-100");
  EXPECT_EQ(granted("Infinite, Second-10", "/t/4"), "Second-100");
  EXPECT_EQ(granted("Foo, Second-10", "/t/5"), "Second-10");
  EXPECT_EQ(granted(std::nullopt, "/t/6"), "Second-20");
  EXPECT_EQ(granted("Second-99999999999999999999", "/t/7"), "Second-100");  // huge is capped, not malformed
  for (std::string bad : {"Second-", "Second-x1", "Seconds-10", "tomorrow"}) {
    Decision d = f.req("LOCK", {{"Timeout", bad}}, "/t/bad").call();
    EXPECT_EQ(d.status(), 400) << bad;
    EXPECT_EQ(problem_body(d)["type"].get<std::string>().find("malformed-timeout") != std::string::npos, true) << bad;
  }
}

TEST(LockPolicyTest, OwnerFromJsonOrWebDavXml) {
  LockFixture f;
  auto owner = [&](std::string body, std::string path) {
    LockRequest r = f.req("LOCK", {}, path);
    r.body(std::move(body));
    Decision d = r.call();
    EXPECT_EQ(d.status(), 200) << path;
    return d.status() == 200 ? nlohmann::json::parse(d.body())["owner"].get<std::string>() : std::string();
  };
  EXPECT_EQ(owner(R"({"owner":"batch job 7"})", "/o/1"), "batch job 7");
  EXPECT_EQ(owner(R"(<?xml version="1.0" encoding="utf-8" ?>
<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype>
<D:owner><D:href>http://example.org/~ejw/contact.html</D:href></D:owner></D:lockinfo>)",
                  "/o/2"),
            "http://example.org/~ejw/contact.html");
  EXPECT_EQ(owner("<lockinfo xmlns='DAV:'><owner>Bob</owner></lockinfo>", "/o/3"), "Bob");
  EXPECT_EQ(owner("", "/o/4"), "");
  EXPECT_EQ(owner("<D:lockinfo xmlns:D='DAV:'><D:owner>AT&amp;T &lt;ops&gt;</D:owner></D:lockinfo>", "/o/5"),
            "AT&T <ops>");
  for (std::string bad : {std::string("{not json"), std::string(R"({"owner": 7})"), std::string("[1]"),
                          R"({"owner":")" + std::string(LockPolicy::kMaxOwner + 1, 'x') + "\"}"}) {
    LockRequest r = f.req("LOCK", {}, "/o/bad");
    r.body(bad);
    Decision d = r.call();
    EXPECT_EQ(d.status(), 400) << bad;
    EXPECT_FALSE(problem_body(d)["detail"].get<std::string>().empty());
  }
  EXPECT_EQ(f.policy.counters().granted, 5u);
}

TEST(LockPolicyTest, RefreshKeepsTokenAndFenceWithANewTimeout) {
  LockFixture f;
  Decision first = f.req("LOCK", {{"Timeout", "Second-10"}}).call();
  std::string token = lock_field(first, "Lock-Token");
  token = token.substr(1, token.size() - 2);
  auto fence = nlohmann::json::parse(first.body())["fence"];
  f.clock.advance(8s);
  HeaderList h = lock_if_token(token);
  h.add("Timeout", "Second-60");
  Decision refreshed = f.req("LOCK", h).call();
  ASSERT_EQ(refreshed.status(), 200);
  EXPECT_EQ(lock_field(refreshed, "Lock-Token"), "<" + token + ">");
  EXPECT_EQ(lock_field(refreshed, "Timeout"), "Second-60");
  auto body = nlohmann::json::parse(refreshed.body());
  EXPECT_EQ(body["fence"], fence);
  EXPECT_EQ(body["timeout"], 60);
  EXPECT_EQ(f.policy.counters().refreshed, 1u);
  EXPECT_EQ(f.policy.counters().granted, 1u);
  // Still held 50 s later (past the first lease).
  f.clock.advance(50s);
  EXPECT_EQ(f.req("PUT").call().status(), 423);
}

TEST(LockPolicyTest, RefreshWithAMalformedTimeoutIs400) {
  LockFixture f;
  std::string token = f.lock();
  HeaderList h = lock_if_token(token);
  h.add("Timeout", "soon");
  EXPECT_EQ(f.req("LOCK", h).call().status(), 400);
  EXPECT_EQ(f.policy.counters().refreshed, 0u);
}

TEST(LockPolicyTest, RefreshOfAnEndedOrUnknownTokenIs412) {
  LockFixture f;
  std::string token = f.lock();
  EXPECT_EQ(f.req("UNLOCK", {{"Lock-Token", "<" + token + ">"}}).call().status(), 204);
  Decision ended = f.req("LOCK", lock_if_token(token)).call();
  EXPECT_EQ(ended.status(), 412);
  EXPECT_NE(problem_body(ended)["detail"].get<std::string>().find("released"), std::string::npos);
  Decision unknown = f.req("LOCK", lock_if_token(LockToken::random().text())).call();
  EXPECT_EQ(unknown.status(), 412);
}

// Only a token the If field asserts names the lock to refresh: under Not, or in a list tagged
// for another resource, it names none, and the lock keeps its old lease.
TEST(LockPolicyTest, RefreshNeedsATokenAssertedForThisResource) {
  LockFixture f;
  Decision first = f.req("LOCK", {{"Timeout", "Second-10"}}).call();
  std::string token = lock_field(first, "Lock-Token");
  for (std::string field : {"(Not <" + token.substr(1, token.size() - 2) + ">)",
                            "<http://example.test/items/2> (" + token + ")"}) {
    Decision d = f.req("LOCK", {{"If", field}, {"Timeout", "Second-600"}}).call();
    EXPECT_EQ(d.status(), 400) << field;
    EXPECT_NE(problem_body(d)["type"].get<std::string>().find("malformed-lock-refresh"), std::string::npos) << field;
  }
  EXPECT_EQ(f.policy.counters().refreshed, 0u);
  f.clock.advance(11s);
  EXPECT_NE(f.req("PUT").call().status(), 423) << "the lease was not extended";
  // (Not <other>) (<token>): the asserted one is refreshed.
  Decision second = f.req("LOCK", {{"Timeout", "Second-10"}}).call();
  std::string again = lock_field(second, "Lock-Token");
  HeaderList h{{"If", "(Not <" + LockToken::random().text() + ">) (" + again + ")"}, {"Timeout", "Second-60"}};
  Decision refreshed = f.req("LOCK", h).call();
  EXPECT_EQ(refreshed.status(), 200);
  EXPECT_EQ(lock_field(refreshed, "Lock-Token"), again);
  EXPECT_EQ(f.policy.counters().refreshed, 1u);
}

TEST(LockPolicyTest, UnlockReleasesAndSaysHowAnEndedLockEnded) {
  LockFixture f;
  std::string token = f.lock();
  HeaderList h{{"Lock-Token", "<" + token + ">"}};
  Decision d = f.req("UNLOCK", h).call();
  EXPECT_EQ(d.status(), 204);
  EXPECT_EQ(lock_field(d, "Arbiter-Lock"), "released");
  EXPECT_EQ(lock_field(f.req("UNLOCK", h).call(), "Arbiter-Lock"), "already-released");
  EXPECT_EQ(f.policy.counters().released, 1u);

  std::string expiring = f.lock("/items/2", {{"Timeout", "Second-5"}});
  f.clock.advance(6s);
  Decision late = f.req("UNLOCK", {{"Lock-Token", "<" + expiring + ">"}}, "/items/2").call();
  EXPECT_EQ(late.status(), 204);
  EXPECT_EQ(lock_field(late, "Arbiter-Lock"), "already-expired");
}

TEST(LockPolicyTest, UnlockWithAnotherResourcesTokenIs409AndBadTokensAre400) {
  LockFixture f;
  std::string token = f.lock("/items/2");
  Decision other = f.req("UNLOCK", {{"Lock-Token", "<" + token + ">"}}).call();
  EXPECT_EQ(other.status(), 409);
  EXPECT_EQ(f.req("PUT", {}, "/items/2").call().status(), 423);  // still held
  EXPECT_EQ(f.req("UNLOCK").call().status(), 400);
  EXPECT_EQ(f.req("UNLOCK", {{"Lock-Token", token}}).call().status(), 400);  // no angle brackets
  EXPECT_EQ(f.req("UNLOCK", {{"Lock-Token", "<urn:uuid:nope>"}}).call().status(), 400);
}

TEST(LockPolicyTest, AWriteWithoutTheTokenIsLocked) {
  LockFixture f;
  LockRequest l = f.req("LOCK", {{"Timeout", "Second-30"}});
  l.body(R"({"owner":"alice"})");
  ASSERT_EQ(l.call().status(), 200);
  f.clock.advance(10s);
  Decision d = f.req("PUT", {}, "/items/1", "10.0.0.2").call();
  ASSERT_EQ(d.status(), 423);
  EXPECT_EQ(d.logged_as(), "locked");
  EXPECT_EQ(lock_field(d, "Retry-After"), "20");
  auto body = problem_body(d);
  EXPECT_EQ(body["owner"], "alice");
  EXPECT_EQ(body["seconds_left"], 20);
  EXPECT_EQ(body.dump().find("urn:uuid"), std::string::npos);  // the token is never shown
  EXPECT_EQ(f.policy.counters().refused, 1u);
  // A conflicting LOCK too.
  EXPECT_EQ(f.req("LOCK", {}, "/items/1", "10.0.0.2").call().status(), 423);
  EXPECT_EQ(f.policy.counters().refused, 2u);
  // Another resource is free.
  EXPECT_TRUE(f.req("PUT", {}, "/items/2").call().forwards());
}

TEST(LockPolicyTest, TheHoldersWriteIsForwardedWithTheFenceAndWithoutIf) {
  LockFixture f;
  std::string token = f.lock();
  for (std::string form : {"(<" + token + ">)", "</items/1> (<" + token + ">)", "(<" + token + "> [\"v1\"])"}) {
    Decision d = f.req("PUT", {{"If", form}}).call();
    ASSERT_TRUE(d.forwards()) << form << " " << d.status();
    EXPECT_EQ(lock_set_field(d, "Arbiter-Fence"), "1") << form;
    ASSERT_EQ(d.strip_fields().size(), 1u) << form;
    EXPECT_EQ(d.strip_fields()[0], "If");
  }
  // The entity tag of the holding list goes on as If-Match, for the ETag policy after this one;
  // the plain forms add none, and a client's own If-Match is left as it is.
  EXPECT_EQ(lock_set_field(f.req("PUT", {{"If", "(<" + token + "> [\"v1\"])"}}).call(), "If-Match"), "\"v1\"");
  EXPECT_EQ(lock_set_field(f.req("PUT", {{"If", "(<" + token + ">)"}}).call(), "If-Match"), "");
  EXPECT_EQ(lock_set_field(f.req("PUT", {{"If", "(Not <urn:uuid:00000000-0000-4000-8000-000000000000>) (<" + token +
                                                  "> [W/\"a\"] Not [\"b\"])"}}).call(),
                           "If-Match"),
            "");  // the first list holds (no tag); a later list's tags are not asked for
  EXPECT_EQ(lock_set_field(f.req("PUT", {{"If", "(<" + token + "> [\"v1\"])"}, {"If-Match", "\"v2\""}}).call(),
                           "If-Match"),
            "");
  // A second grant gets a larger fence.
  f.req("UNLOCK", {{"Lock-Token", "<" + token + ">"}}).call();
  std::string next = f.lock();
  EXPECT_EQ(lock_set_field(f.req("DELETE", lock_if_token(next)).call(), "Arbiter-Fence"), "2");
}

TEST(LockPolicyTest, NoFenceHeaderWhenItIsEmpty) {
  LockSettings s;
  s.fence_header = "";
  LockFixture f(s);
  std::string token = f.lock();
  Decision d = f.req("PATCH", lock_if_token(token)).call();
  ASSERT_TRUE(d.forwards());
  EXPECT_TRUE(d.set_fields().empty());
}

TEST(LockPolicyTest, AnEndedTokenOnAFreeResourceIs412NotForwarded) {
  LockFixture f;
  std::string token = f.lock("/items/1", {{"Timeout", "Second-5"}});
  f.clock.advance(6s);
  Decision expired = f.req("PUT", lock_if_token(token)).call();
  EXPECT_EQ(expired.status(), 412);
  EXPECT_EQ(problem_body(expired)["lock"], "expired");
  std::string released = f.lock();
  f.req("UNLOCK", {{"Lock-Token", "<" + released + ">"}}).call();
  Decision d = f.req("PUT", lock_if_token(released)).call();
  EXPECT_EQ(d.status(), 412);
  EXPECT_EQ(problem_body(d)["lock"], "released");
  // A write with no If at all goes on.
  EXPECT_TRUE(f.req("PUT").call().forwards());
}

TEST(LockPolicyTest, ReadsPassUnlessBlockReads) {
  LockFixture open;
  open.lock();
  EXPECT_TRUE(open.req("GET").call().forwards());
  LockSettings s;
  s.block_reads = true;
  LockFixture blocked(s);
  std::string token = blocked.lock();
  EXPECT_EQ(blocked.req("GET").call().status(), 423);
  EXPECT_EQ(blocked.req("HEAD").call().status(), 423);
  Decision holder_read = blocked.req("GET", lock_if_token(token)).call();
  EXPECT_TRUE(holder_read.forwards());
  EXPECT_TRUE(holder_read.set_fields().empty());  // fences go with writes only
  EXPECT_TRUE(blocked.req("OPTIONS").call().forwards());
}

TEST(LockPolicyTest, RequireMeans428WithoutTheLock) {
  LockSettings s;
  s.require = true;
  LockFixture f(s);
  Decision d = f.req("PUT").call();
  EXPECT_EQ(d.status(), 428);
  EXPECT_NE(problem_body(d)["detail"].get<std::string>().find("LOCK /items/1 first"), std::string::npos);
  std::string token = f.lock();
  EXPECT_TRUE(f.req("PUT", lock_if_token(token)).call().forwards());
  EXPECT_TRUE(f.req("GET").call().forwards());
}

TEST(LockPolicyTest, AQueuedWriteGoesOnWhenTheHolderUnlocks) {
  LockSettings s;
  s.wait = 10s;
  LockFixture f(s);
  std::string token = f.lock("/items/1", {{"Timeout", "Second-5"}});
  LockRequest w = f.req("PUT", {}, "/items/1", "10.0.0.2");
  Decision parked = w.call();
  ASSERT_TRUE(lock_is_wait(parked));
  EXPECT_EQ(parked.deadline(), f.clock.now + 5s);  // the holder's expiry comes before the wait's end
  EXPECT_EQ(f.policy.counters().queued, 1u);
  f.clock.advance(2s);
  f.req("UNLOCK", {{"Lock-Token", "<" + token + ">"}}).call();
  EXPECT_EQ(w.wakes(), 1);
  Decision go = w.call();
  EXPECT_TRUE(go.forwards());
  EXPECT_TRUE(go.set_fields().empty());
  EXPECT_EQ(f.policy.counters().queued, 1u);
  EXPECT_EQ(f.policy.counters().refused, 0u);
  auto buckets = f.policy.wait_histogram();
  EXPECT_EQ(buckets[5], 1u);  // 2 s: (1, 5]
  std::uint64_t total = 0;
  for (auto n : buckets) total += n;
  EXPECT_EQ(total, 1u);
  EXPECT_DOUBLE_EQ(f.policy.wait_seconds_sum(), 2.0);
}

TEST(LockPolicyTest, QueuedLocksAreGrantedInOrder) {
  LockSettings s;
  s.wait = 60s;
  LockFixture f(s);
  std::string token = f.lock();
  LockRequest a = f.req("LOCK", {}, "/items/1", "10.0.0.2");
  LockRequest b = f.req("LOCK", {}, "/items/1", "10.0.0.3");
  ASSERT_TRUE(lock_is_wait(a.call()));
  ASSERT_TRUE(lock_is_wait(b.call()));
  f.req("UNLOCK", {{"Lock-Token", "<" + token + ">"}}).call();
  // b asks first, but a queued first.
  Decision b_early = b.call();
  EXPECT_TRUE(lock_is_wait(b_early));
  Decision a_now = a.call();
  ASSERT_EQ(a_now.status(), 200);
  EXPECT_EQ(f.policy.counters().granted, 2u);
  EXPECT_EQ(f.policy.counters().queued, 2u);
}

TEST(LockPolicyTest, PastTheWaitIs423) {
  LockSettings s;
  s.wait = 3s;
  LockFixture f(s);
  f.lock();
  LockRequest w = f.req("PUT", {}, "/items/1", "10.0.0.2");
  Decision parked = w.call();
  ASSERT_TRUE(lock_is_wait(parked));
  EXPECT_EQ(parked.deadline(), f.clock.now + 3s);
  f.clock.advance(3s);
  Decision d = w.call();
  EXPECT_EQ(d.status(), 423);
  EXPECT_NE(problem_body(d)["detail"].get<std::string>().find("Waited 3s"), std::string::npos);
  EXPECT_FALSE(w.has_state());
  EXPECT_EQ(f.policy.counters().refused, 1u);
  EXPECT_EQ(f.policy.counters().queued, 1u);
  std::uint64_t total = 0;
  for (auto n : f.policy.wait_histogram()) total += n;
  EXPECT_EQ(total, 1u);
}

TEST(LockPolicyTest, AFullQueueIs423) {
  LockSettings s;
  s.wait = 10s;
  s.max_waiters = 1;
  LockFixture f(s);
  f.lock();
  LockRequest first = f.req("PUT", {}, "/items/1", "10.0.0.2");
  ASSERT_TRUE(lock_is_wait(first.call()));
  Decision d = f.req("PUT", {}, "/items/1", "10.0.0.3").call();
  EXPECT_EQ(d.status(), 423);
  EXPECT_NE(problem_body(d)["detail"].get<std::string>().find("max_waiters"), std::string::npos);
  EXPECT_EQ(f.policy.counters().queued, 1u);
}

TEST(LockPolicyTest, AQueuedRequestWhoseExchangeEndsLeavesTheQueue) {
  LockSettings s;
  s.wait = 10s;
  s.max_waiters = 1;
  LockFixture f(s);
  std::string token = f.lock();
  {
    LockRequest gone = f.req("PUT", {}, "/items/1", "10.0.0.2");
    ASSERT_TRUE(lock_is_wait(gone.call()));
  }  // the client went away
  LockRequest next = f.req("PUT", {}, "/items/1", "10.0.0.3");
  ASSERT_TRUE(lock_is_wait(next.call()));  // room again
  f.req("UNLOCK", {{"Lock-Token", "<" + token + ">"}}).call();
  EXPECT_TRUE(next.call().forwards());
}

TEST(LockPolicyTest, CapsOnLocks) {
  LockSettings s;
  s.max_locks = 2;
  s.max_locks_per_client = 1;
  LockFixture f(s);
  f.lock("/items/1", {}, "10.0.0.1");
  Decision client = f.req("LOCK", {}, "/items/2", "10.0.0.1").call();
  EXPECT_EQ(client.status(), 429);
  EXPECT_EQ(lock_field(client, "Retry-After"), "1");
  f.lock("/items/3", {}, "10.0.0.2");
  Decision table = f.req("LOCK", {}, "/items/4", "10.0.0.3").call();
  EXPECT_EQ(table.status(), 503);
  EXPECT_EQ(lock_field(table, "Retry-After"), "1");
}

TEST(LockPolicyTest, WriteMetricsReportsHeldEventsAndWaits) {
  LockSettings s;
  s.wait = 10s;
  LockFixture f(s);
  f.clock.now = MonotonicClock::now();  // write_metrics asks the store at the real time
  std::string token = f.lock();
  LockRequest w = f.req("PUT", {}, "/items/1", "10.0.0.2");
  ASSERT_TRUE(lock_is_wait(w.call()));
  f.clock.advance(200ms);
  f.req("UNLOCK", {{"Lock-Token", "<" + token + ">"}}).call();
  ASSERT_TRUE(w.call().forwards());
  f.lock("/items/2");
  f.req("PUT", {}, "/items/2", "10.0.0.9").call();  // queues
  RecordingMetrics out;
  f.policy.write_metrics("items", out);
  EXPECT_EQ(out.samples["arbiter_locks_held{route=items,}"], 1);
  EXPECT_EQ(out.samples["arbiter_lock_events_total{route=items,event=granted,}"], 2);
  EXPECT_EQ(out.samples["arbiter_lock_events_total{route=items,event=released,}"], 1);
  EXPECT_EQ(out.samples["arbiter_lock_events_total{route=items,event=queued,}"], 2);
  EXPECT_EQ(out.samples["arbiter_lock_events_total{route=items,event=refused,}"], 0);
  auto buckets = out.histograms["arbiter_lock_wait_seconds{route=items,}"];
  ASSERT_EQ(buckets.size(), LockPolicy::kWaitBuckets.size() + 1);
  EXPECT_EQ(buckets[3], 1u);  // 0.2 s: (0.1, 0.5]
  EXPECT_NEAR(out.sums["arbiter_lock_wait_seconds{route=items,}"], 0.2, 1e-6);
}

TEST(LockPolicyTest, ExplainNamesWhatHappens) {
  LockSettings s;
  s.wait = 5s;
  s.require = true;
  LockFixture f(s);
  HeaderList none;
  std::string client = "10.0.0.1";
  auto explain = [&](std::string method) {
    RequestView view{method, "/items/1", "/items/1", "", none, client, "items", {}, "req", f.clock.now, nullptr};
    return f.policy.explain(view);
  };
  EXPECT_NE(explain("LOCK").find("LOCK is answered by Arbiter, nothing forwarded"), std::string::npos);
  std::string put = explain("PUT");
  EXPECT_NE(put.find("423, after queueing up to 5s"), std::string::npos) << put;
  EXPECT_NE(put.find("428"), std::string::npos) << put;
  EXPECT_NE(put.find("Arbiter-Fence"), std::string::npos) << put;
  EXPECT_NE(explain("GET").find("passes whether or not"), std::string::npos);
}

TEST(LockPolicyTest, AStoreThatAnswersLaterParksTheRequest) {
  LockFixture f;
  f.store->delaying = true;
  LockRequest l = f.req("LOCK");
  Decision parked = l.call();
  ASSERT_TRUE(lock_is_wait(parked));
  EXPECT_EQ(parked.deadline(), f.clock.now + kStoreCallTimeout);
  EXPECT_TRUE(lock_is_wait(l.call()));  // a spurious wake: still waiting
  ASSERT_TRUE(f.store->complete_next());
  EXPECT_EQ(l.wakes(), 1);
  Decision granted = l.call();
  ASSERT_EQ(granted.status(), 200);
  EXPECT_EQ(f.policy.counters().granted, 1u);
  std::string token = lock_field(granted, "Lock-Token");

  LockRequest w = f.req("PUT", {{"If", "(" + token + ")"}});
  ASSERT_TRUE(lock_is_wait(w.call()));
  f.store->complete_next();
  EXPECT_EQ(lock_set_field(w.call(), "Arbiter-Fence"), "1");

  LockRequest u = f.req("UNLOCK", {{"Lock-Token", token}});
  ASSERT_TRUE(lock_is_wait(u.call()));
  f.store->complete_next();
  Decision released = u.call();
  EXPECT_EQ(released.status(), 204);
  EXPECT_EQ(lock_field(released, "Arbiter-Lock"), "released");  // asked once, not again on resuming
  EXPECT_EQ(f.policy.counters().released, 1u);
  EXPECT_EQ(f.store->made(), 3u);
}

TEST(LockPolicyTest, AStoreThatNeverAnswersIs503) {
  LockFixture f;
  f.store->delaying = true;
  LockRequest w = f.req("PUT");
  ASSERT_TRUE(lock_is_wait(w.call()));
  f.clock.advance(kStoreCallTimeout);
  Decision d = w.call();
  EXPECT_EQ(d.status(), 503);
  EXPECT_NE(problem_body(d)["type"].get<std::string>().find("store-unavailable"), std::string::npos);
  EXPECT_EQ(f.store->cancelled(), 1u);
  LockRequest u = f.req("UNLOCK", {{"Lock-Token", "<" + LockToken::random().text() + ">"}});
  ASSERT_TRUE(lock_is_wait(u.call()));
  f.store->fail_next();
  EXPECT_EQ(u.call().status(), 503);
}

TEST(LockPolicyTest, AStoreThatFailsAtOnceIs503NotForwarded) {
  LockFixture f;
  f.store->failing = true;
  Decision w = f.req("PUT").call();
  EXPECT_EQ(w.status(), 503);
  EXPECT_FALSE(w.forwards());
  EXPECT_EQ(f.req("LOCK").call().status(), 503);
  EXPECT_EQ(f.req("LOCK", lock_if_token(LockToken::random().text())).call().status(), 503);
  EXPECT_EQ(f.req("UNLOCK", {{"Lock-Token", "<" + LockToken::random().text() + ">"}}).call().status(), 503);
}

}  // namespace
}  // namespace arbiter
