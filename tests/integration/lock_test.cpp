// Lock leases ([route.lock], issue #14) through the real binary in front of the demo legacy API:
// LOCK -> write with If: (<token>) -> UNLOCK, 423 for everyone else (never forwarded), leases
// that end on their own, 412 for a token that ended, FIFO hand-over with `wait`, reloads, the
// fence header, Arbiter's lock endpoints, metrics, the access log and `arbiter explain`.
// Every wait is on an event (a response, a log line, the waiters count), never on the clock.

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <csignal>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/proxy_fixture.h"

namespace lock_it {

using harness::ConfigOptions;
using harness::HeaderPairs;
using harness::HttpClient;
using harness::HttpResponse;
using nlohmann::json;
using namespace std::chrono_literals;

// Route "locked", /documents/{id}, whose methods do not name LOCK or UNLOCK; `lock_keys` go into
// its [route.lock], which it has only when `with_lock`.
std::string locked_route(const std::string& lock_keys, bool with_lock = true) {
  return "\n[[route]]\nname = \"locked\"\npath = \"/documents/{id}\"\n"
         "methods = [\"GET\", \"PUT\", \"PATCH\", \"DELETE\"]\nupstream = \"legacy\"\n" +
         (with_lock ? "[route.lock]\n" + lock_keys + "\n" : std::string());
}

// "urn:uuid:..." from a Lock-Token field "<urn:uuid:...>"; empty when it is not that shape.
std::string token_of(const HttpResponse& response) {
  std::string field = response.header("Lock-Token").value_or("");
  if (field.size() < 3 || field.front() != '<' || field.back() != '>') return {};
  return field.substr(1, field.size() - 2);
}

std::string if_token(const std::string& token) { return "(<" + token + ">)"; }

// The value of field `name` in the backend log entry `entry` ([[name, value], ...]); nullopt if absent.
std::optional<std::string> logged_header(const json& entry, std::string_view name) {
  for (const auto& pair : entry["headers"]) {
    std::string field = pair[0];
    if (field.size() == name.size() &&
        std::equal(field.begin(), field.end(), name.begin(), [](char a, char b) { return std::tolower(a) == std::tolower(b); })) {
      return pair[1].get<std::string>();
    }
  }
  return std::nullopt;
}

class LockTest : public harness::ProxyFixture {
 protected:
  // Arbiter with route "locked"; the backend holds /documents/1, /documents/2 and /documents/3.
  void start_locked(const std::string& lock_keys, int workers = 2) {
    for (std::string_view id : {"1", "2", "3"}) {
      HttpResponse created =
          send_to_backend("PUT", "/documents/" + std::string(id), json{{"id", id}, {"name", "seed"}}.dump());
      ASSERT_TRUE(created.status == 200 || created.status == 201) << created.status << " " << created.body;
    }
    start(ConfigOptions{.leading_routes = locked_route(lock_keys), .workers = workers});
  }
  std::string config_with(const std::string& lock_keys, bool with_lock = true) {
    return harness::make_config(backend_.port(), ConfigOptions{.leading_routes = locked_route(lock_keys, with_lock)});
  }

  // LOCK with an owner label (JSON body); asserts nothing.
  HttpResponse lock(std::string_view target, std::string_view owner, const HeaderPairs& extra = {}) {
    HeaderPairs headers = extra;
    headers.emplace_back("Content-Type", "application/json");
    return send("LOCK", target, json{{"owner", owner}}.dump(), headers);
  }
  HttpResponse put_item(std::string_view target, std::string_view name, const std::string& token = {}) {
    HeaderPairs headers{{"Content-Type", "application/json"}};
    if (!token.empty()) headers.emplace_back("If", if_token(token));
    return send("PUT", target, json{{"id", "1"}, {"name", name}}.dump(), headers);
  }
  HttpResponse unlock(std::string_view target, const std::string& token) {
    return send("UNLOCK", target, {}, {{"Lock-Token", "<" + token + ">"}});
  }
  HttpResponse describe(std::string_view resource) {
    return send("GET", "/_arbiter/locks?resource=" + std::string(resource));
  }
  HttpResponse admin(std::string_view method, std::string_view target) {
    HttpClient client(*arbiter_->admin_port());
    return harness::require(client.request(method, target), client);
  }
  // The writes (anything but GET) the backend received since the last clear_backend_log().
  std::vector<json> backend_writes() {
    std::vector<json> writes;
    for (const auto& entry : backend_log()) {
      if (entry["method"] != "GET") writes.push_back(entry);
    }
    return writes;
  }
  // The value of one sample line of /metrics ("name{labels}"); -1 when absent.
  double metric(const std::string& sample) {
    HttpResponse scraped = admin("GET", "/metrics");
    std::size_t at = scraped.body.find("\n" + sample + " ");
    if (at == std::string::npos) return -1;
    return std::stod(scraped.body.substr(at + sample.size() + 2));
  }
  // The conflict feed's polling form: every event of `type` the feed holds, oldest first.
  std::vector<json> feed_events_of(std::string_view type) {
    HttpResponse polled = send("GET", "/_arbiter/conflicts?type=" + std::string(type));
    EXPECT_EQ(polled.status, 200) << polled.body;
    json body = json::parse(polled.body, nullptr, false);
    if (!body.is_object() || !body["events"].is_array()) return {};
    return body["events"].get<std::vector<json>>();
  }
  void reload_by_signal(const std::string& config_text) {
    harness::LinePosition before = arbiter_->process().position();
    arbiter_->config_file().replace(config_text);
    ASSERT_TRUE(arbiter_->process().signal(SIGHUP));
    ASSERT_TRUE(arbiter_->process().wait_for_line(std::regex("arbiter: reloaded "), 10s, before))
        << arbiter_->process().output_summary();
  }
};

TEST_F(LockTest, LockWriteWithTheTokenUnlockAndTheFenceGrows) {
  start_locked("");
  clear_backend_log();
  std::uint64_t last_fence = 0;
  for (int round = 1; round <= 2; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    HttpResponse granted = lock("/documents/1", "alice");
    ASSERT_EQ(granted.status, 200) << granted.body;
    std::string token = token_of(granted);
    ASSERT_EQ(token.rfind("urn:uuid:", 0), 0u) << granted.header("Lock-Token").value_or("(none)");
    EXPECT_EQ(granted.header("Timeout").value_or(""), "Second-30");
    EXPECT_EQ(granted.header("Content-Type").value_or(""), "application/json");
    json body = json::parse(granted.body);
    EXPECT_EQ(body["resource"], "/documents/1");
    EXPECT_EQ(body["token"], token);
    EXPECT_EQ(body["owner"], "alice");
    EXPECT_EQ(body["timeout"], 30);
    EXPECT_TRUE(std::regex_match(body["expires"].get<std::string>(), std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d.*Z)")))
        << body["expires"];
    std::uint64_t fence = body["fence"];
    EXPECT_GT(fence, last_fence) << "every grant has a larger fence than the last";
    EXPECT_TRUE(backend_writes().empty()) << "LOCK is answered by Arbiter: " << backend_log().dump();

    HttpResponse written = put_item("/documents/1", "round " + std::to_string(round), token);
    EXPECT_EQ(written.status, 200) << written.body;
    auto writes = backend_writes();
    ASSERT_EQ(writes.size(), 1u) << backend_log().dump();
    EXPECT_EQ(writes[0]["method"], "PUT");
    EXPECT_EQ(logged_header(writes[0], "Arbiter-Fence"), std::optional<std::string>(std::to_string(fence)));
    EXPECT_FALSE(logged_header(writes[0], "If")) << "the If field is Arbiter's business, not the backend's";

    HttpResponse released = unlock("/documents/1", token);
    EXPECT_EQ(released.status, 204) << released.body;
    EXPECT_EQ(released.header("Arbiter-Lock").value_or(""), "released");
    EXPECT_EQ(backend_writes().size(), 1u) << "UNLOCK is answered by Arbiter: " << backend_log().dump();
    EXPECT_EQ(describe("/documents/1").status, 404);
    clear_backend_log();
    last_fence = fence;
  }
  // Unlocked: anyone writes again, with no fence.
  EXPECT_EQ(put_item("/documents/1", "free").status, 200);
  auto writes = backend_writes();
  ASSERT_EQ(writes.size(), 1u);
  EXPECT_FALSE(logged_header(writes[0], "Arbiter-Fence"));
}

TEST_F(LockTest, AnEntityTagInTheIfFieldIsCheckedByTheEtagPolicy) {
  start_locked("\n[route.etag]\n");  // the route has both policies
  HttpResponse read = send("GET", "/documents/1");
  ASSERT_EQ(read.status, 200) << read.body;
  std::string etag = read.header("ETag").value_or("");
  ASSERT_FALSE(etag.empty());
  HttpResponse granted = lock("/documents/1", "alice");
  ASSERT_EQ(granted.status, 200) << granted.body;
  EXPECT_EQ(granted.header("ETag").value_or(""), etag) << "a LOCK carries the ETag Arbiter knows";
  std::string token = token_of(granted);
  clear_backend_log();
  HeaderPairs json_body{{"Content-Type", "application/json"}};
  HeaderPairs stale = json_body, current = json_body;
  stale.emplace_back("If", "(<" + token + "> [\"0000\"])");
  current.emplace_back("If", "(<" + token + "> [" + etag + "])");
  HttpResponse refused = send("PUT", "/documents/1", json{{"name", "stale"}}.dump(), stale);
  EXPECT_TRUE(refused.status == 409 || refused.status == 412) << refused.status << " " << refused.body;
  EXPECT_TRUE(backend_writes().empty()) << backend_log().dump();
  HttpResponse written = send("PUT", "/documents/1", json{{"name", "current"}}.dump(), current);
  EXPECT_EQ(written.status, 200) << written.body;
  auto writes = backend_writes();
  ASSERT_EQ(writes.size(), 1u) << backend_log().dump();
  EXPECT_FALSE(logged_header(writes[0], "If")) << "the If field is Arbiter's";
  EXPECT_FALSE(logged_header(writes[0], "If-Match")) << "checked by the ETag policy, not forwarded";
}

TEST_F(LockTest, CurlStyleLockWithoutABodyAndRefresh) {
  start_locked("max_timeout = \"60s\"");
  // What `curl -X LOCK http://.../documents/2` sends: no body, no Content-Length.
  HttpClient client(arbiter_->port());
  ASSERT_TRUE(client.send_raw("LOCK /documents/2 HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n"));
  HttpResponse granted = harness::require(client.read_response(), client);
  ASSERT_EQ(granted.status, 200) << granted.body;
  std::string token = token_of(granted);
  ASSERT_FALSE(token.empty());
  json body = json::parse(granted.body);
  EXPECT_EQ(body["owner"], "");
  // With Content-Length: 0 on the same connection: refused, it is held (by this very client, but
  // without the token it is anyone).
  HttpResponse again = harness::require(client.request("LOCK", "/documents/2", {{"Content-Length", "0"}}), client);
  EXPECT_EQ(again.status, 423) << again.body;
  // A refresh: If with the token, no body; same token and fence, the new timeout (capped).
  HttpResponse refreshed = harness::require(
      client.request("LOCK", "/documents/2", {{"If", if_token(token)}, {"Timeout", "Infinite, Second-5"}}), client);
  ASSERT_EQ(refreshed.status, 200) << refreshed.body;
  EXPECT_EQ(token_of(refreshed), token);
  EXPECT_EQ(refreshed.header("Timeout").value_or(""), "Second-60");
  EXPECT_EQ(json::parse(refreshed.body)["fence"], body["fence"]);
  HttpResponse released = harness::require(client.request("UNLOCK", "/documents/2", {{"Lock-Token", "<" + token + ">"}}), client);
  EXPECT_EQ(released.status, 204);
}

TEST_F(LockTest, AWriteWithoutTheTokenIsRefusedWith423AndNeverForwarded) {
  start_locked("");
  HttpResponse granted = lock("/documents/1", "alice's batch");
  ASSERT_EQ(granted.status, 200) << granted.body;
  std::string token = token_of(granted);
  clear_backend_log();
  harness::LinePosition before = arbiter_->process().position();

  for (std::string_view method : {"PUT", "PATCH", "DELETE"}) {
    HttpResponse refused = send(method, "/documents/1", "{\"name\":\"bob\"}", {{"Content-Type", "application/json"}});
    EXPECT_EQ(refused.status, 423) << method << ": " << refused.body;
    EXPECT_EQ(refused.header("Content-Type").value_or(""), "application/problem+json") << method;
    json problem = json::parse(refused.body);
    EXPECT_EQ(problem["status"], 423);
    EXPECT_EQ(problem["owner"], "alice's batch");
    EXPECT_EQ(problem["resource"], "/documents/1");
    int left = problem["seconds_left"];
    EXPECT_GE(left, 1);
    EXPECT_LE(left, 30);
    int retry_after = std::stoi(refused.header("Retry-After").value_or("0"));
    EXPECT_GE(retry_after, 1);
    EXPECT_LE(retry_after, 30);
    EXPECT_EQ(refused.body.find(token), std::string::npos) << "the token is the holder's alone";
  }
  // Another token (from a lock on another resource) opens nothing either.
  HttpResponse other = lock("/documents/2", "carol");
  ASSERT_EQ(other.status, 200);
  EXPECT_EQ(put_item("/documents/1", "carol", token_of(other)).status, 412)
      << "an If field naming no current token of this resource is false";
  // A conflicting LOCK is refused the same way; reads pass (block_reads = false).
  HttpResponse conflicting = lock("/documents/1", "bob");
  EXPECT_EQ(conflicting.status, 423) << conflicting.body;
  EXPECT_TRUE(conflicting.header("Retry-After"));
  EXPECT_EQ(send("GET", "/documents/1").status, 200);
  EXPECT_TRUE(backend_writes().empty()) << backend_log().dump();

  // The access log says who answered: "locked".
  auto line = arbiter_->process().wait_for_line(std::regex(R"("method":"PUT".*"status":423.*"decision":"locked")"), 10s, before);
  ASSERT_TRUE(line) << arbiter_->process().output_summary();

  // The holder still writes.
  EXPECT_EQ(put_item("/documents/1", "alice", token).status, 200);
  EXPECT_EQ(backend_writes().size(), 1u);
}

TEST_F(LockTest, AVanishedHolderBlocksOnlyUntilItsTimeoutAndItsTokenThenGets412) {
  start_locked("default_timeout = \"1s\"\nmax_timeout = \"2s\"");
  HttpResponse granted = lock("/documents/1", "gone", {{"Timeout", "Second-2"}});
  ASSERT_EQ(granted.status, 200) << granted.body;
  EXPECT_EQ(granted.header("Timeout").value_or(""), "Second-2");
  std::string token = token_of(granted);
  clear_backend_log();
  // The holder never comes back. Others are refused, then, once the lease ends, served.
  EXPECT_EQ(put_item("/documents/1", "bob").status, 423);
  int last_status = 0;
  EXPECT_TRUE(harness::eventually([&] {
    last_status = put_item("/documents/1", "bob").status;
    return last_status != 423;
  }));
  EXPECT_EQ(last_status, 200);
  EXPECT_EQ(describe("/documents/1").status, 404);
  clear_backend_log();

  // The vanished holder comes back too late: its write is not forwarded.
  HttpResponse late = put_item("/documents/1", "gone", token);
  EXPECT_EQ(late.status, 412) << late.body;
  EXPECT_EQ(late.header("Content-Type").value_or(""), "application/problem+json");
  EXPECT_EQ(json::parse(late.body)["lock"], "expired") << late.body;
  EXPECT_TRUE(backend_writes().empty()) << backend_log().dump();
  // Its UNLOCK is not an error; the response says the lock had expired.
  HttpResponse released = unlock("/documents/1", token);
  EXPECT_EQ(released.status, 204);
  EXPECT_EQ(released.header("Arbiter-Lock").value_or(""), "already-expired");
  EXPECT_EQ(metric(R"(arbiter_lock_events_total{route="locked",event="expired"})"), 1);
}

TEST_F(LockTest, UnlockAnswers400And409) {
  start_locked("");
  HttpResponse granted = lock("/documents/1", "alice");
  ASSERT_EQ(granted.status, 200);
  HttpResponse missing = send("UNLOCK", "/documents/1");
  EXPECT_EQ(missing.status, 400) << missing.body;
  EXPECT_EQ(send("UNLOCK", "/documents/1", {}, {{"Lock-Token", token_of(granted)}}).status, 400) << "no angle brackets";
  HttpResponse foreign = unlock("/documents/1", "urn:uuid:3f2504e0-4f89-41d3-9a0c-0305e82c3301");
  EXPECT_EQ(foreign.status, 409) << foreign.body;
  EXPECT_EQ(foreign.header("Content-Type").value_or(""), "application/problem+json");
  EXPECT_EQ(describe("/documents/1").status, 200) << "nothing was unlocked";
  HttpResponse bad_timeout = lock("/documents/3", "x", {{"Timeout", "Minute-3"}});
  EXPECT_EQ(bad_timeout.status, 400) << bad_timeout.body;
}

TEST_F(LockTest, RequireAnswers428ToAWriteWithoutTheLock) {
  start_locked("require = true");
  clear_backend_log();
  HttpResponse refused = put_item("/documents/1", "bob");
  EXPECT_EQ(refused.status, 428) << refused.body;
  EXPECT_EQ(refused.header("Content-Type").value_or(""), "application/problem+json");
  EXPECT_TRUE(backend_writes().empty());
  HttpResponse granted = lock("/documents/1", "bob");
  ASSERT_EQ(granted.status, 200);
  EXPECT_EQ(put_item("/documents/1", "bob", token_of(granted)).status, 200);
  EXPECT_EQ(backend_writes().size(), 1u);
}

TEST_F(LockTest, WaitHandsTheLockOverInArrivalOrder) {
  start_locked("wait = \"60s\"");
  HttpResponse first = lock("/documents/1", "holder");
  ASSERT_EQ(first.status, 200) << first.body;
  std::string token = token_of(first);
  std::uint64_t fence = json::parse(first.body)["fence"];

  // Three LOCKs, each sent only once the one before it is seen queued.
  const std::vector<std::string> owners = {"first-waiter", "second-waiter", "third-waiter"};
  std::vector<std::unique_ptr<HttpClient>> waiters;
  for (std::size_t i = 0; i < owners.size(); ++i) {
    waiters.push_back(std::make_unique<HttpClient>(arbiter_->port(), 60s));
    std::string body = json{{"owner", owners[i]}}.dump();
    ASSERT_TRUE(waiters.back()->send_raw(harness::format_request(
        "LOCK", "/documents/1", arbiter_->port(), {{"Content-Type", "application/json"}}, body)));
    json seen;
    ASSERT_TRUE(harness::eventually([&] {
      HttpResponse described = describe("/documents/1");
      if (described.status != 200) return false;
      seen = json::parse(described.body);
      return seen["waiters"] == i + 1;
    })) << seen.dump();
    EXPECT_EQ(seen["owner"], "holder");
  }
  // A write without a token queues too, but gets 423 only after `wait`: not tried here.

  // Each release hands the lock to the next in line, with a larger fence.
  for (std::size_t i = 0; i < owners.size(); ++i) {
    SCOPED_TRACE(owners[i]);
    ASSERT_EQ(unlock("/documents/1", token).status, 204);
    HttpResponse granted = harness::require(waiters[i]->read_response(), *waiters[i]);
    ASSERT_EQ(granted.status, 200) << granted.body;
    json body = json::parse(granted.body);
    EXPECT_EQ(body["owner"], owners[i]);
    EXPECT_GT(body["fence"].get<std::uint64_t>(), fence);
    fence = body["fence"];
    token = token_of(granted);
    json described = json::parse(describe("/documents/1").body);
    EXPECT_EQ(described["owner"], owners[i]);
    EXPECT_EQ(described["waiters"], owners.size() - i - 1);
  }
  EXPECT_EQ(unlock("/documents/1", token).status, 204);
  EXPECT_GE(metric(R"(arbiter_lock_events_total{route="locked",event="queued"})"), 3);
  EXPECT_EQ(metric(R"(arbiter_lock_wait_seconds_count{route="locked"})"), 3);
}

TEST_F(LockTest, AQueuedLockIsGrantedWhenTheVanishedHolderExpires) {
  start_locked("wait = \"60s\"\ndefault_timeout = \"1s\"\nmax_timeout = \"1s\"");
  HttpResponse first = lock("/documents/1", "gone", {{"Timeout", "Infinite"}});
  ASSERT_EQ(first.status, 200) << first.body;
  EXPECT_EQ(first.header("Timeout").value_or(""), "Second-1") << "Infinite is capped by max_timeout";
  // The waiter gets the lock when the lease ends (long before its 60 s wait would answer 423).
  HttpClient waiter(arbiter_->port(), 60s);
  HttpResponse granted = harness::require(waiter.request("LOCK", "/documents/1", {{"Content-Length", "0"}}), waiter);
  ASSERT_EQ(granted.status, 200) << granted.body;
  EXPECT_GT(json::parse(granted.body)["fence"].get<std::uint64_t>(), json::parse(first.body)["fence"].get<std::uint64_t>());
  EXPECT_EQ(unlock("/documents/1", token_of(first)).header("Arbiter-Lock").value_or(""), "already-expired");
}

TEST_F(LockTest, AClientThatLeavesTheQueueIsNoLongerCounted) {
  start_locked("wait = \"60s\"");
  HttpResponse first = lock("/documents/1", "holder");
  ASSERT_EQ(first.status, 200);
  auto waiters = [&] {
    HttpResponse described = describe("/documents/1");
    return described.status == 200 ? json::parse(described.body)["waiters"].get<int>() : -1;
  };
  {
    HttpClient leaving(arbiter_->port(), 60s);
    ASSERT_TRUE(leaving.send_raw(harness::format_request("PUT", "/documents/1", arbiter_->port(), {}, "{}")));
    ASSERT_TRUE(harness::eventually([&] { return waiters() == 1; })) << waiters();
  }  // closed while queued
  EXPECT_TRUE(harness::eventually([&] { return waiters() == 0; })) << waiters();
  clear_backend_log();
  EXPECT_EQ(unlock("/documents/1", token_of(first)).status, 204);
  EXPECT_TRUE(backend_writes().empty()) << "the write that left was never forwarded: " << backend_log().dump();
}

TEST_F(LockTest, ThePerClientCapAnswers429AndTheProcessCap503) {
  start_locked("key = \"header:X-Client\"\nmax_locks_per_client = 1\nmax_locks = 2");
  EXPECT_EQ(lock("/documents/1", "a", {{"X-Client", "a"}}).status, 200);
  HttpResponse second = lock("/documents/2", "a", {{"X-Client", "a"}});
  EXPECT_EQ(second.status, 429) << second.body;
  EXPECT_EQ(second.header("Retry-After").value_or(""), "1");
  EXPECT_EQ(second.header("Content-Type").value_or(""), "application/problem+json");
  EXPECT_EQ(lock("/documents/2", "b", {{"X-Client", "b"}}).status, 200);
  HttpResponse third = lock("/documents/3", "c", {{"X-Client", "c"}});
  EXPECT_EQ(third.status, 503) << third.body;
  EXPECT_EQ(third.header("Retry-After").value_or(""), "1");
  EXPECT_EQ(metric(R"(arbiter_locks_held{route="locked"})"), 2);
}

TEST_F(LockTest, AReloadKeepsLocksAndRemovingTheLockTableDropsThem) {
  start_locked("");
  HttpResponse granted = lock("/documents/1", "alice");
  ASSERT_EQ(granted.status, 200);
  std::string token = token_of(granted);
  std::uint64_t fence = json::parse(granted.body)["fence"];

  reload_by_signal(config_with("") + "# an edit elsewhere\n");
  EXPECT_EQ(put_item("/documents/1", "bob").status, 423) << "a reload is no way around a lock";
  HttpResponse mine = put_item("/documents/1", "alice", token);
  EXPECT_EQ(mine.status, 200) << mine.body;
  EXPECT_EQ(json::parse(describe("/documents/1").body)["fence"], fence);

  // A changed setting keeps the lock too (admin POST /reload this time).
  arbiter_->config_file().replace(config_with("block_reads = true"));
  HttpResponse reloaded = admin("POST", "/reload");
  ASSERT_EQ(reloaded.status, 200) << reloaded.body;
  EXPECT_EQ(send("GET", "/documents/1").status, 423) << "the new setting applies to the kept lock";
  EXPECT_EQ(send("GET", "/documents/1", {}, {{"If", if_token(token)}}).status, 200);
  EXPECT_EQ(json::parse(describe("/documents/1").body)["fence"], fence);

  // Without [route.lock], the route's locks are dropped: anyone writes, the old token is gone.
  arbiter_->config_file().replace(config_with("", false));
  reloaded = admin("POST", "/reload");
  ASSERT_EQ(reloaded.status, 200) << reloaded.body;
  EXPECT_EQ(describe("/documents/1").status, 404);
  EXPECT_EQ(put_item("/documents/1", "bob").status, 200);
  // Put back: the dropped lock does not come back, and its token is not current.
  arbiter_->config_file().replace(config_with(""));
  ASSERT_EQ(admin("POST", "/reload").status, 200);
  EXPECT_EQ(describe("/documents/1").status, 404);
  EXPECT_EQ(put_item("/documents/1", "alice", token).status, 412);
  HttpResponse released = unlock("/documents/1", token);
  EXPECT_EQ(released.status, 204);
  EXPECT_EQ(released.header("Arbiter-Lock").value_or(""), "already-dropped");
}

TEST_F(LockTest, LockEndpointsDescribeListAndBreakWithoutRevealingTheToken) {
  start_locked("");
  HttpResponse granted = lock("/documents/1", "alice");
  ASSERT_EQ(granted.status, 200);
  std::string token = token_of(granted);
  ASSERT_EQ(lock("/documents/2", "bob").status, 200);

  HttpResponse described = describe("/documents/1");
  ASSERT_EQ(described.status, 200) << described.body;
  json lock_json = json::parse(described.body);
  EXPECT_EQ(lock_json["resource"], "/documents/1");
  EXPECT_EQ(lock_json["owner"], "alice");
  EXPECT_EQ(lock_json["route"], "locked");
  EXPECT_EQ(lock_json["waiters"], 0);
  EXPECT_EQ(lock_json["fence"], json::parse(granted.body)["fence"]);
  EXPECT_GE(lock_json["seconds_left"].get<int>(), 1);
  EXPECT_EQ(described.body.find(token), std::string::npos) << described.body;
  EXPECT_EQ(describe("/documents/3").status, 404);
  EXPECT_EQ(send("GET", "/_arbiter/locks").status, 400);

  HttpResponse listed = admin("GET", "/locks");
  ASSERT_EQ(listed.status, 200) << listed.body;
  json all = json::parse(listed.body);
  ASSERT_EQ(all["locks"].size(), 2u) << listed.body;
  EXPECT_EQ(all["locks"][0]["resource"], "/documents/1");
  EXPECT_EQ(all["locks"][1]["resource"], "/documents/2");
  EXPECT_TRUE(all["next"].is_null());
  EXPECT_EQ(listed.body.find(token), std::string::npos);
  json page = json::parse(admin("GET", "/locks?limit=1").body);
  ASSERT_EQ(page["locks"].size(), 1u);
  EXPECT_EQ(page["next"], "/documents/1");
  EXPECT_EQ(json::parse(admin("GET", "/locks?after=%2Fdocuments%2F1").body)["locks"][0]["resource"], "/documents/2");

  clear_backend_log();
  harness::LinePosition before = arbiter_->process().position();
  HttpResponse broken = admin("DELETE", "/locks?resource=/documents/1");
  ASSERT_EQ(broken.status, 200) << broken.body;
  EXPECT_EQ(json::parse(broken.body)["broken"]["owner"], "alice");
  EXPECT_TRUE(arbiter_->process().wait_for_line(std::regex("lock broken by the admin endpoint: /documents/1"), 10s, before));
  EXPECT_EQ(admin("DELETE", "/locks?resource=/documents/1").status, 404);
  HttpResponse late = put_item("/documents/1", "alice", token);
  EXPECT_EQ(late.status, 412) << late.body;
  EXPECT_EQ(json::parse(late.body)["lock"], "broken");
  EXPECT_TRUE(backend_writes().empty()) << backend_log().dump();
  EXPECT_EQ(metric(R"(arbiter_lock_events_total{route="locked",event="broken"})"), 1);
}

TEST_F(LockTest, MetricsCountTheLocksAndPassPromtool) {
  start_locked("");
  HttpResponse granted = lock("/documents/1", "alice");
  ASSERT_EQ(granted.status, 200);
  EXPECT_EQ(put_item("/documents/1", "bob").status, 423);
  EXPECT_EQ(lock("/documents/2", "bob").status, 200);
  EXPECT_EQ(unlock("/documents/1", token_of(granted)).status, 204);

  EXPECT_EQ(metric(R"(arbiter_locks_held{route="locked"})"), 1);
  EXPECT_EQ(metric(R"(arbiter_lock_events_total{route="locked",event="granted"})"), 2);
  EXPECT_EQ(metric(R"(arbiter_lock_events_total{route="locked",event="released"})"), 1);
  EXPECT_EQ(metric(R"(arbiter_lock_events_total{route="locked",event="refused"})"), 1);
  EXPECT_EQ(metric(R"(arbiter_lock_wait_seconds_count{route="locked"})"), 0);

  HttpResponse scraped = admin("GET", "/metrics");
  ASSERT_EQ(scraped.status, 200);
  EXPECT_NE(scraped.body.find("# TYPE arbiter_lock_wait_seconds histogram"), std::string::npos);
  harness::TempFile file(scraped.body, ".prom");
  // promtool is on PATH in CI (`bash .ci/test`; /work/tools here); it reads stdin.
  auto result = harness::run_process("/bin/sh", {"-c", "promtool check metrics < \"$0\"", file.path()});
  EXPECT_EQ(result.exit_code, std::optional<int>(0))
      << "stdout:\n" << result.stdout_text << "\nstderr:\n" << result.stderr_text << "\nmetrics:\n" << scraped.body;
}

TEST_F(LockTest, ExplainAndCheckShowTheLockPolicy) {
  auto file = harness::write_temp_file(config_with("wait = \"5s\""), ".toml");
  auto explained = harness::run_arbiter({"explain", "-c", file.path(), "LOCK", "/documents/1"});
  EXPECT_EQ(explained.exit_code, std::optional<int>(0)) << explained.stderr_text;
  EXPECT_NE(explained.stdout_text.find("route:     locked"), std::string::npos) << explained.stdout_text;
  EXPECT_NE(explained.stdout_text.find("LOCK is answered by Arbiter"), std::string::npos) << explained.stdout_text;
  EXPECT_NE(explained.stdout_text.find("then:      answered by Arbiter (lock); never forwarded"), std::string::npos)
      << explained.stdout_text;
  EXPECT_EQ(explained.stdout_text.find("forwarded to the upstream if"), std::string::npos) << explained.stdout_text;
  auto write = harness::run_arbiter({"explain", "-c", file.path(), "PUT", "/documents/1"});
  EXPECT_NE(write.stdout_text.find("needs the lock's token in If (else 423, after queueing up to 5s)"),
            std::string::npos)
      << write.stdout_text;
  EXPECT_NE(write.stdout_text.find("then:      forwarded to the upstream if every policy lets it through"),
            std::string::npos)
      << write.stdout_text;
  auto checked = harness::run_arbiter({"--check", "-c", file.path()});
  EXPECT_EQ(checked.exit_code, std::optional<int>(0)) << checked.stderr_text;
  EXPECT_NE((checked.stdout_text + checked.stderr_text).find("lock(30s, wait 5s)"), std::string::npos)
      << checked.stdout_text << checked.stderr_text;
}

// The issue's contention test: 8 clients x 25 increments of one record, each LOCK (queueing with
// wait) -> GET -> PUT n+1 with the token -> UNLOCK, through 2 workers. Nothing is lost however the
// clients interleave; the test waits on responses only.
TEST_F(LockTest, ContendedIncrementsUnderTheLockLoseNothing) {
  constexpr int kClients = 8, kIncrements = 25;
  start(ConfigOptions{.leading_routes = "\n[[route]]\nname = \"accounts\"\npath = \"/accounts/{id}\"\n"
                                        "methods = [\"GET\", \"PUT\"]\nupstream = \"legacy\"\n[route.lock]\n"
                                        "wait = \"60s\"\ndefault_timeout = \"60s\"\n",
                      .workers = 2});
  HttpResponse initial = send("GET", "/accounts/1");
  ASSERT_EQ(initial.status, 200) << initial.body;
  const int start_balance = json::parse(initial.body)["balance"];

  std::vector<std::string> failures(kClients);
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      auto fail = [&](const std::string& what) { failures[c] = "client " + std::to_string(c) + ": " + what; };
      try {
        HttpClient client(arbiter_->port(), 120s);
        for (int i = 0; i < kIncrements; ++i) {
          HttpResponse granted = harness::require(client.request("LOCK", "/accounts/1"), client);
          if (granted.status != 200) return fail("LOCK " + std::to_string(granted.status) + " " + granted.body);
          std::string token = token_of(granted);
          HttpResponse read = harness::require(client.request("GET", "/accounts/1"), client);
          if (read.status != 200) return fail("GET " + std::to_string(read.status));
          json record = json::parse(read.body);
          record["balance"] = record["balance"].get<int>() + 1;
          HttpResponse written = harness::require(
              client.request("PUT", "/accounts/1", {{"Content-Type", "application/json"}, {"If", if_token(token)}},
                             record.dump()),
              client);
          if (written.status != 200) return fail("PUT " + std::to_string(written.status) + " " + written.body);
          HttpResponse released =
              harness::require(client.request("UNLOCK", "/accounts/1", {{"Lock-Token", "<" + token + ">"}}), client);
          if (released.status != 204 || released.header("Arbiter-Lock") != std::optional<std::string>("released")) {
            return fail("UNLOCK " + std::to_string(released.status));
          }
        }
      } catch (const std::exception& error) {
        fail(error.what());
      }
    });
  }
  for (auto& thread : clients) thread.join();
  for (const auto& failure : failures) EXPECT_TRUE(failure.empty()) << failure;
  HttpResponse final_read = send_to_backend("GET", "/accounts/1");
  EXPECT_EQ(json::parse(final_read.body)["balance"], start_balance + kClients * kIncrements) << final_read.body;
  EXPECT_EQ(metric(R"(arbiter_lock_events_total{route="accounts",event="granted"})"), kClients * kIncrements);
  EXPECT_EQ(metric(R"(arbiter_locks_held{route="accounts"})"), 0);
}

TEST_F(LockTest, RefusalsBreaksAndExpiriesArePublishedToTheConflictFeed) {
  start_locked("default_timeout = \"1s\"\nmax_timeout = \"2s\"");
  HttpResponse granted = lock("/documents/1", "alice", {{"Timeout", "Second-1"}});
  ASSERT_EQ(granted.status, 200) << granted.body;
  std::string token = token_of(granted);
  ASSERT_EQ(send("PUT", "/documents/1", "{\"name\":\"bob\"}", {{"Content-Type", "application/json"}, {"X-Request-Id", "bob-1"}}).status, 423);

  std::vector<json> locked = feed_events_of("locked");
  ASSERT_EQ(locked.size(), 1u);
  EXPECT_EQ(locked[0]["route"], "locked");
  EXPECT_EQ(locked[0]["resource"], "/documents/1");
  EXPECT_EQ(locked[0]["request_id"], "bob-1");
  EXPECT_EQ(locked[0]["method"], "PUT");
  EXPECT_EQ(locked[0]["owner"], "alice");
  EXPECT_EQ(locked[0]["status"], 423);
  EXPECT_EQ(locked[0].dump().find(token), std::string::npos) << "the token is the holder's alone";

  // Nobody comes back for it: within a second of its end, the expiry is announced.
  std::vector<json> expired;
  EXPECT_TRUE(harness::eventually([&] {
    expired = feed_events_of("lock-expired");
    return !expired.empty();
  }));
  ASSERT_EQ(expired.size(), 1u);
  EXPECT_EQ(expired[0]["resource"], "/documents/1");
  EXPECT_EQ(expired[0]["owner"], "alice");
  EXPECT_EQ(expired[0]["route"], "locked");

  // An operator breaks another.
  ASSERT_EQ(lock("/documents/2", "carol").status, 200);
  ASSERT_EQ(admin("DELETE", "/locks?resource=/documents/2").status, 200);
  std::vector<json> broken = feed_events_of("lock-broken");
  ASSERT_EQ(broken.size(), 1u);
  EXPECT_EQ(broken[0]["resource"], "/documents/2");
  EXPECT_EQ(broken[0]["owner"], "carol");
  EXPECT_EQ(broken[0]["by"], "admin");
  EXPECT_EQ(feed_events_of("lock-expired").size(), 1u) << "a broken lock is not an expiry";
}

}  // namespace lock_it
