// The side-request vocabulary of policies/policy.h: calls carry their specs, and fetch is the
// one-GET form whose answer reaches on_fetched / on_response_fetched / on_end_fetched by default.

#include "policies/policy.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

namespace arbiter {
namespace {

// Records which hook got what.
class RecordingPolicy final : public Policy {
 public:
  std::string_view kind() const noexcept override { return "recording"; }
  Decision on_request(const RequestView&, std::unique_ptr<ExchangeState>&) override { return Decision::forward(); }
  Decision on_fetched(const RequestView&, const FetchedResponse& fetched, std::unique_ptr<ExchangeState>&) override {
    fetched_statuses.push_back(fetched.status);
    return Decision::respond(299, {});
  }
  void on_response_fetched(const RequestView&, ResponseView&, const FetchedResponse& fetched, ExchangeState*) override {
    response_fetched_statuses.push_back(fetched.status);
  }
  void on_end_fetched(const RequestView&, const ExchangeOutcome&, const FetchedResponse& fetched, ExchangeState*) override {
    end_fetched_statuses.push_back(fetched.status);
  }
  std::vector<int> fetched_statuses;
  std::vector<int> response_fetched_statuses;
  std::vector<int> end_fetched_statuses;
};

SideResponse answered(int status) {
  SideResponse response;
  response.reached = true;
  response.status = status;
  response.body_complete = true;
  return response;
}

class PolicyVocabularyTest : public ::testing::Test {
 protected:
  RequestView view() const {
    return RequestView{"GET", "/items/1", "/items/1", {}, headers_, "127.0.0.1", "r", {}, "id", MonotonicClock::now(),
                       nullptr};
  }
  HeaderList headers_;
  std::unique_ptr<ExchangeState> state_;
};

TEST_F(PolicyVocabularyTest, ACallCarriesItsSpecsInOrder) {
  SideRequestSpec post;
  post.method = "POST";
  post.target = "/audit";
  post.upstream = "audit";
  post.body = "{}";
  post.timeout = std::chrono::milliseconds(250);
  Decision call = Decision::call({post, SideRequestSpec::fetch("/items/1")});
  EXPECT_EQ(call.kind(), Decision::Kind::Call);
  EXPECT_FALSE(call.forwards());
  ASSERT_EQ(call.side_requests().size(), 2u);
  EXPECT_EQ(call.side_requests()[0].method, "POST");
  EXPECT_EQ(call.side_requests()[0].upstream, "audit");
  EXPECT_EQ(call.side_requests()[0].timeout, std::chrono::milliseconds(250));
  EXPECT_FALSE(call.side_requests()[0].client_fields);
  EXPECT_EQ(call.side_requests()[1].target, "/items/1");
  EXPECT_EQ(call.fetch_target(), "/audit");  // the first one's
  EXPECT_EQ(Decision::forward().fetch_target(), "");

  ResponseStep step = ResponseStep::call({post});
  EXPECT_TRUE(step.fetch_first);
  ASSERT_EQ(step.side_requests.size(), 1u);
  EXPECT_EQ(step.side_requests[0].body, "{}");
  EXPECT_FALSE(ResponseStep::proceed().fetch_first);
}

TEST_F(PolicyVocabularyTest, FetchIsACallOfOneGetOnTheRoutesUpstreamAsTheClient) {
  Decision fetch = Decision::fetch("/items/1?x=1");
  EXPECT_EQ(fetch.kind(), Decision::Kind::Fetch);
  EXPECT_EQ(fetch.kind(), Decision::Kind::Call);
  ASSERT_EQ(fetch.side_requests().size(), 1u);
  const SideRequestSpec& get = fetch.side_requests()[0];
  EXPECT_EQ(get.method, "GET");
  EXPECT_EQ(get.target, "/items/1?x=1");
  EXPECT_TRUE(get.upstream.empty());
  EXPECT_TRUE(get.client_fields);
  EXPECT_TRUE(get.body.empty());
  EXPECT_EQ(get.body_limit, SideRequestSpec::kRouteBodyLimit);
  EXPECT_EQ(get.timeout.count(), 0);

  ResponseStep step = ResponseStep::fetch("/items/2");
  EXPECT_TRUE(step.fetch_first);
  EXPECT_EQ(step.fetch_target, "/items/2");
  ASSERT_EQ(step.side_requests.size(), 1u);
  EXPECT_TRUE(step.side_requests[0].client_fields);
}

TEST_F(PolicyVocabularyTest, OneAnswerGoesToTheFetchHooksByDefault) {
  RecordingPolicy policy;
  std::vector<SideResponse> one = {answered(200)};
  EXPECT_EQ(policy.on_side_responses(view(), one, state_).status(), 299);
  EXPECT_EQ(policy.fetched_statuses, std::vector<int>{200});

  HeaderList response_headers;
  ResponseView response{200, response_headers, nullptr, false, MonotonicClock::now()};
  std::vector<SideResponse> other = {answered(404)};
  policy.on_response_side_responses(view(), response, other, nullptr);
  EXPECT_EQ(policy.response_fetched_statuses, std::vector<int>{404});

  std::vector<SideResponse> last = {answered(410)};
  policy.on_end_side_responses(view(), ExchangeOutcome{}, last, nullptr);
  EXPECT_EQ(policy.end_fetched_statuses, std::vector<int>{410});
}

TEST_F(PolicyVocabularyTest, SeveralAnswersWithoutAnOverrideForward) {
  RecordingPolicy policy;
  std::vector<SideResponse> two = {answered(200), answered(201)};
  EXPECT_TRUE(policy.on_side_responses(view(), two, state_).forwards());
  EXPECT_TRUE(policy.fetched_statuses.empty());

  HeaderList response_headers;
  ResponseView response{200, response_headers, nullptr, false, MonotonicClock::now()};
  policy.on_response_side_responses(view(), response, two, nullptr);
  policy.on_end_side_responses(view(), ExchangeOutcome{}, two, nullptr);
  EXPECT_TRUE(policy.response_fetched_statuses.empty());
  EXPECT_TRUE(policy.end_fetched_statuses.empty());
}

}  // namespace
}  // namespace arbiter
