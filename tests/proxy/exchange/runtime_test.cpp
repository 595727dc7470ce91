// RuntimeState across Runtimes (what a reload builds): resource state keyed by resource and
// shared by routes, write turns and the conflict log surviving reloads, max_keys applied.

#include "proxy/exchange/runtime.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "policies/etag/etag_policy.h"
#include "tests/policies/counting_waker.h"
#include "tests/policies/etag/etag_test_support.h"

namespace arbiter {
namespace {

Config config_of(const std::string& routes) {
  return parse_config("[upstream.legacy]\nservers = [\"127.0.0.1:9\"]\n" + routes, "runtime_test.toml");
}

std::string etag_routes(const std::string& rw_etag_keys, const std::string& patch_etag_keys) {
  return "[[route]]\nname = \"rw\"\npath = \"/accounts/{id}\"\nmethods = [\"GET\", \"PUT\"]\nupstream = \"legacy\"\n"
         "[route.etag]\nverify = \"cache\"\n" + rw_etag_keys +
         "\n[[route]]\nname = \"patch\"\npath = \"/accounts/{id}\"\nmethods = [\"PATCH\"]\nupstream = \"legacy\"\n"
         "[route.etag]\nverify = \"cache\"\n" + patch_etag_keys + "\n";
}

// One request through one policy, as a ClientConnection drives it.
class Exchange {
 public:
  Exchange(Policy& policy, std::string method, std::string path, HeaderList headers = {})
      : policy_(policy), method_(std::move(method)), path_(std::move(path)), headers_(std::move(headers)) {
    params_.push_back({"id", std::string_view(path_).substr(path_.rfind('/') + 1)});
  }
  Decision request() { return policy_.on_request(view(waker_), state_); }
  ResponseStep respond(int status, std::string body) {
    body_ = std::move(body);
    ResponseView response{status, response_headers_, &body_, false, MonotonicClock::now()};
    return policy_.on_response(view(nullptr), response, state_.get());
  }
  void end() { state_.reset(); }
  CountingWaker& waker() { return *waker_; }
  const HeaderList& response_headers() const { return response_headers_; }

 private:
  RequestView view(std::shared_ptr<Waker> waker) const {
    return RequestView{method_,  path_,   path_, {},           headers_, "127.0.0.1", "test",
                       params_, "req-1", MonotonicClock::now(), std::move(waker)};
  }
  Policy& policy_;
  std::string method_, path_;
  HeaderList headers_;
  std::vector<PathParam> params_;
  std::shared_ptr<CountingWaker> waker_ = std::make_shared<CountingWaker>();
  std::unique_ptr<ExchangeState> state_;
  HeaderList response_headers_;
  std::string body_;
};

Policy& etag_of(const Runtime& runtime, std::size_t route) { return *runtime.route(route).policies.back(); }

// A GET through `policy` answered 200: returns the ETag the policy handed out (and learned).
std::string read_through(Policy& policy, const std::string& path) {
  Exchange read(policy, "GET", path);
  EXPECT_EQ(read.request().kind(), Decision::Kind::Forward);
  read.respond(200, R"({"path":")" + path + R"("})");
  return std::string(read.response_headers().find("ETag").value_or(""));
}

TEST(RuntimeStateTest, RoutesOverOneResourceShareOneWriteQueue) {
  RuntimeState state;
  Runtime runtime(config_of(etag_routes("", "")), state);
  Exchange put(etag_of(runtime, 0), "PUT", "/accounts/1");
  ASSERT_EQ(put.request().kind(), Decision::Kind::Forward);  // holds the resource's turn
  Exchange patch(etag_of(runtime, 1), "PATCH", "/accounts/1");
  EXPECT_EQ(patch.request().kind(), Decision::Kind::Wait);  // another route, the same resource
  Exchange other(etag_of(runtime, 1), "PATCH", "/accounts/2");
  EXPECT_EQ(other.request().kind(), Decision::Kind::Forward);
  put.end();
  EXPECT_EQ(patch.waker().wakes.load(), 1);
  EXPECT_EQ(patch.request().kind(), Decision::Kind::Forward);
}

TEST(RuntimeStateTest, RoutesOverOneResourceShareOneEtagTable) {
  RuntimeState state;
  Runtime runtime(config_of(etag_routes("", "")), state);
  std::string tag = read_through(etag_of(runtime, 0), "/accounts/1");
  ASSERT_FALSE(tag.empty());
  // The PATCH route knows the version the GET/PUT route handed out.
  Exchange patch(etag_of(runtime, 1), "PATCH", "/accounts/1", HeaderList{{"If-Match", "\"stale\""}});
  Decision refused = patch.request();
  ASSERT_EQ(refused.kind(), Decision::Kind::Reply);
  EXPECT_EQ(refused.problem()->status, 409);
  patch.end();  // the refused write's exchange ends, giving its turn up
  Exchange fresh(etag_of(runtime, 1), "PATCH", "/accounts/1", HeaderList{{"If-Match", tag}});
  EXPECT_EQ(fresh.request().kind(), Decision::Kind::Forward);
}

TEST(RuntimeStateTest, WriteTurnsSurviveAReloadThatReplacesTheEtagTable) {
  RuntimeState state;
  auto before = std::make_unique<Runtime>(config_of(etag_routes("max_entries = 100", "")), state);
  Exchange old_write(etag_of(*before, 0), "PUT", "/accounts/1");
  ASSERT_EQ(old_write.request().kind(), Decision::Kind::Forward);
  // The reload: a larger max_entries needs a new table and new policies.
  Runtime after(config_of(etag_routes("max_entries = 5000000", "")), state);
  const auto& old_policy = dynamic_cast<const EtagPolicy&>(etag_of(*before, 0));
  const auto& new_policy = dynamic_cast<const EtagPolicy&>(etag_of(after, 0));
  ASSERT_NE(&old_policy, &new_policy);
  ASSERT_NE(&old_policy.store(), &new_policy.store());
  Exchange new_write(etag_of(after, 0), "PUT", "/accounts/1");
  EXPECT_EQ(new_write.request().kind(), Decision::Kind::Wait);  // still serialized with the old one
  Exchange new_patch(etag_of(after, 1), "PATCH", "/accounts/1");
  EXPECT_EQ(new_patch.request().kind(), Decision::Kind::Wait);
  old_write.end();
  before.reset();  // the old Runtime goes once its last request has ended
  EXPECT_EQ(new_write.waker().wakes.load(), 1);
  EXPECT_EQ(new_write.request().kind(), Decision::Kind::Forward);
}

TEST(RuntimeStateTest, TheConflictFeedSurvivesAReloadThatReplacesThePolicies) {
  RuntimeState state;
  auto before = std::make_unique<Runtime>(config_of(etag_routes("", "")), state);
  ASSERT_FALSE(read_through(etag_of(*before, 0), "/accounts/1").empty());
  Exchange stale(etag_of(*before, 1), "PATCH", "/accounts/1", HeaderList{{"If-Match", "\"stale\""}});
  ASSERT_EQ(stale.request().kind(), Decision::Kind::Reply);
  stale.end();
  // A larger max_entries than the default replaces the shared table too (item 21's reload).
  Runtime after(config_of(etag_routes("max_entries = 2000000", "conflict_status = 412")), state);
  ASSERT_NE(&dynamic_cast<const EtagPolicy&>(etag_of(*before, 0)).store(),
            &dynamic_cast<const EtagPolicy&>(etag_of(after, 0)).store());
  std::shared_ptr<ConflictFeed> old_feed = dynamic_cast<const EtagPolicy&>(etag_of(*before, 0)).conflict_feed();
  before.reset();
  const auto& policy = dynamic_cast<const EtagPolicy&>(etag_of(after, 0));
  std::vector<FeedEvent> conflicts = etag_testing::published_events(policy);
  ASSERT_EQ(conflicts.size(), 1u);
  EXPECT_EQ(conflicts[0].route, "patch");
  EXPECT_EQ(conflicts[0].resource, "/accounts/1");
  EXPECT_EQ(conflicts[0].your_etag, "\"stale\"");
  EXPECT_EQ(policy.conflict_feed(), old_feed);  // the state's one feed, not a new one
  EXPECT_EQ(policy.conflict_feed(), state.stores().feed);
}

std::string concurrency_route(int max_keys) {
  return "[[route]]\nname = \"slow\"\npath = \"/slow\"\nupstream = \"legacy\"\n[route.concurrency]\n"
         "max_in_flight = 1\nkey = \"header:X-Key\"\nmax_keys = " + std::to_string(max_keys) + "\n";
}

TEST(RuntimeStateTest, AReloadAppliesAChangedMaxKeys) {
  RuntimeState state;
  auto before = std::make_unique<Runtime>(config_of(concurrency_route(1)), state);
  Exchange a(*before->route(0).policies[0], "GET", "/slow", HeaderList{{"X-Key", "a"}});
  ASSERT_EQ(a.request().kind(), Decision::Kind::Forward);
  Exchange b(*before->route(0).policies[0], "GET", "/slow", HeaderList{{"X-Key", "b"}});
  Decision refused = b.request();
  ASSERT_EQ(refused.kind(), Decision::Kind::Reply);
  EXPECT_NE(refused.problem()->detail.find("for 1 other clients already (max_keys)"), std::string::npos)
      << refused.problem()->detail;

  Runtime after(config_of(concurrency_route(2)), state);
  Exchange b_again(*after.route(0).policies[0], "GET", "/slow", HeaderList{{"X-Key", "b"}});
  EXPECT_EQ(b_again.request().kind(), Decision::Kind::Forward);  // room for a second key now
  Exchange c(*after.route(0).policies[0], "GET", "/slow", HeaderList{{"X-Key", "c"}});
  Decision full = c.request();
  ASSERT_EQ(full.kind(), Decision::Kind::Reply);
  EXPECT_NE(full.problem()->detail.find("for 2 other clients already (max_keys)"), std::string::npos)
      << full.problem()->detail;
  a.end();  // the slot held under the old Runtime counted against the new bound until now
  Exchange c_again(*after.route(0).policies[0], "GET", "/slow", HeaderList{{"X-Key", "c"}});
  EXPECT_EQ(c_again.request().kind(), Decision::Kind::Forward);
}

// What a reload keeps: a route whose settings of a kind did not change keeps that kind's very
// policy object (its counters go on); an edited one gets a new policy.
TEST(RuntimeStateTest, AnUnchangedRouteKeepsItsPoliciesAndAnEditedOneGetsNewOnes) {
  auto route = [](const std::string& rate, const std::string& max_in_flight, const std::string& verify) {
    return "[[route]]\nname = \"items\"\npath = \"/items/{id}\"\nupstream = \"legacy\"\n"
           "[[route.limit]]\nrate = \"" + rate + "\"\n"  // no name: the loader names it items-limit-0
           "[route.concurrency]\nmax_in_flight = " + max_in_flight + "\n"
           "[route.etag]\nverify = \"" + verify + "\"\n";
  };
  RuntimeState state;
  Runtime before(config_of(route("5/s", "4", "cache")), state);
  const std::vector<std::shared_ptr<Policy>>& kept = before.route(0).policies;
  ASSERT_EQ(kept.size(), 3u);
  EXPECT_EQ(kept[0]->kind(), "rate_limit");
  EXPECT_EQ(kept[1]->kind(), "concurrency");
  EXPECT_EQ(kept[2]->kind(), "etag");

  Runtime same(config_of(route("5/s", "4", "cache")), state);
  for (std::size_t i = 0; i < kept.size(); ++i) EXPECT_EQ(same.route(0).policies[i], kept[i]) << kept[i]->kind();

  Runtime edited(config_of(route("6/s", "8", "upstream")), state);
  for (std::size_t i = 0; i < kept.size(); ++i) EXPECT_NE(edited.route(0).policies[i], kept[i]) << kept[i]->kind();
}

// A configuration without ETag routes releases the shared table (as a route that lost its
// etag section used to release its own); ETag routes that come back start a new one.
TEST(RuntimeStateTest, AReloadWithoutEtagRoutesReleasesTheEtagTable) {
  RuntimeState state;
  auto tagged = std::make_unique<Runtime>(config_of(etag_routes("", "")), state);
  ASSERT_FALSE(read_through(etag_of(*tagged, 0), "/accounts/1").empty());
  ASSERT_EQ(dynamic_cast<const EtagPolicy&>(etag_of(*tagged, 0)).store().size(), 1u);
  tagged.reset();
  Runtime untagged(config_of(concurrency_route(1)), state);
  Runtime tagged_again(config_of(etag_routes("", "")), state);
  EXPECT_EQ(dynamic_cast<const EtagPolicy&>(etag_of(tagged_again, 0)).store().size(), 0u);
}

}  // namespace
}  // namespace arbiter
