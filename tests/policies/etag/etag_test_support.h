#pragma once
// Driving the ETag policy hook by hook in unit tests, as the proxy does (tests/policies/etag/).

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "policies/etag/etag_policy.h"
#include "proxy/http/path_normalization.h"
#include "tests/policies/counting_waker.h"
#include "tests/policies/policy_test_support.h"

namespace arbiter::etag_testing {

using ::arbiter::testing::FakeClock;

inline FetchedResponse fetched_ok(std::string body, HeaderList headers = {}) {
  FetchedResponse fetched;
  fetched.reached = true;
  fetched.status = 200;
  fetched.headers = std::move(headers);
  fetched.body = std::move(body);
  fetched.body_complete = true;
  return fetched;
}

inline FetchedResponse fetched_status(int status) {
  FetchedResponse fetched;
  fetched.reached = true;
  fetched.status = status;
  fetched.body_complete = true;
  return fetched;
}

inline FetchedResponse fetched_too_large() {
  FetchedResponse fetched = fetched_ok("");
  fetched.body_complete = false;
  return fetched;
}

inline FetchedResponse unreachable() { return FetchedResponse{}; }

// The events a policy published to its conflict feed, oldest first, without bodies.
inline std::vector<FeedEvent> published_events(const EtagPolicy& policy) {
  std::vector<FeedEvent> events;
  auto keep = [&](StoreResult<FeedPage>&& page) { events = std::move(page.value.events); };
  StoreCall pending = policy.conflict_feed()->read(0, FeedFilter{}, 1u << 20, Completion<FeedPage>(keep));
  return events;
}

// The newest event a policy published, with its body when the feed kept it.
inline FeedEvent last_published(const EtagPolicy& policy) {
  ConflictFeed& feed = *policy.conflict_feed();
  FeedEvent event;
  auto keep = [&](StoreResult<FeedLookup>&& lookup) { event = std::move(lookup.value.event); };
  StoreCall pending = feed.get(feed.stats().last_id, Completion<FeedLookup>(keep));
  return event;
}

// One request through the policy, hook by hook, as the proxy drives it: it owns everything the
// views point at and the ExchangeState. end() ends the exchange as the proxy ends every one
// (on_end, then the state goes); the destructor only destroys the state.
class EtagExchange {
 public:
  EtagExchange(EtagPolicy& policy, FakeClock& clock, std::string method, std::string target, HeaderList headers = {},
           std::vector<PathParam> params = {})
      : policy_(policy),
        clock_(clock),
        method_(std::move(method)),
        target_(std::move(target)),
        headers_(std::move(headers)),
        params_(std::move(params)),
        waker_(std::make_shared<CountingWaker>()) {
    std::size_t question = target_.find('?');
    path_ = target_.substr(0, question);
    if (question != std::string::npos) query_ = target_.substr(question + 1);
  }

  Decision request() { return policy_.on_request(view(true), state_); }
  // The request body as read whole before the policies run (writes), and as a policy replaced it.
  void set_body(std::string body) { body_ = std::move(body); }
  const std::optional<std::string>& body() const { return body_; }
  Decision fetched(const FetchedResponse& fetched) { return policy_.on_fetched(view(true), fetched, state_); }

  // The upstream's response: body nullopt = none; withheld = too large to be shown.
  ResponseStep respond(int status, HeaderList headers, std::optional<std::string> body, bool withheld = false) {
    response_headers_ = std::move(headers);
    response_body_ = body.value_or("");
    response_.emplace(ResponseView{status, response_headers_, body && !withheld ? &response_body_ : nullptr,
                                   withheld, clock_.now});
    return policy_.on_response(view(false), *response_, state_.get());
  }
  void response_fetched(const FetchedResponse& fetched) {
    policy_.on_response_fetched(view(false), *response_, fetched, state_.get());
  }
  void end() {
    bool answered = response_.has_value();
    policy_.on_end(view(false), ExchangeOutcome{answered ? response_->status : 0, answered, answered, false, clock_.now},
                   state_.get());
    state_.reset();
  }

  int status() const { return response_->status; }
  std::optional<std::string> response_etag() const {
    auto value = response_headers_.find("ETag");
    return value ? std::optional<std::string>(*value) : std::nullopt;
  }
  const std::string& response_body() const { return response_body_; }
  const HeaderList& response_headers() const { return response_headers_; }
  CountingWaker& waker() { return *waker_; }
  bool has_state() const { return state_ != nullptr; }
  HeaderList& headers() { return headers_; }
  // As the proxy views a request under [server] case_insensitive_paths.
  void keyed_by_lower_case_path() { lower_case_path(path_, resource_path_); }

 private:
  RequestView view(bool with_waker) const {
    return RequestView{method_,  target_, path_,  query_,     headers_, "127.0.0.1",
                       "accounts", params_, "req-7", clock_.now, with_waker ? waker_ : nullptr, resource_path_,
                       body_ ? &*body_ : nullptr};
  }

  EtagPolicy& policy_;
  FakeClock& clock_;
  std::string method_, target_, path_, query_;
  HeaderList headers_;
  std::vector<PathParam> params_;
  std::string resource_path_;
  std::optional<std::string> body_;
  std::shared_ptr<CountingWaker> waker_;
  std::unique_ptr<ExchangeState> state_;
  HeaderList response_headers_;
  std::string response_body_;
  std::optional<ResponseView> response_;
};

}  // namespace arbiter::etag_testing
