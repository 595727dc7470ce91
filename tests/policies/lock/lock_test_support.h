#pragma once
// What the lock policy's unit tests share: a request driven through LockPolicy as the proxy
// drives it (one view per pass, the ExchangeState kept between passes, ended by destroying it),
// a LockStore that answers when the test says so, and a MetricsWriter that records.

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "policies/lock/lock_policy.h"
#include "policies/metrics_writer.h"
#include "policies/store/memory_lock_store.h"
#include "tests/policies/counting_waker.h"
#include "tests/policies/policy_test_support.h"
#include "tests/policies/store/delayed_stores.h"

namespace arbiter::testing {

class LockRequest {
 public:
  LockRequest(LockPolicy& policy, FakeClock& clock, std::string method, std::string path = "/items/1",
              HeaderList headers = {}, std::string client = "10.0.0.1")
      : policy_(policy),
        clock_(clock),
        method_(std::move(method)),
        path_(std::move(path)),
        headers_(std::move(headers)),
        client_(std::move(client)),
        waker_(std::make_shared<CountingWaker>()) {}

  LockRequest& body(std::string text) {
    body_ = std::move(text);
    has_body_ = true;
    return *this;
  }
  Decision call() {
    RequestView view{method_, path_, path_,   "",           headers_, client_, "items",
                     {},      "req", clock_.now, waker_, path_, has_body_ ? &body_ : nullptr};
    return policy_.on_request(view, state_);
  }
  void end() { state_.reset(); }
  int wakes() const { return waker_->wakes.load(); }
  bool has_state() const { return state_ != nullptr; }

 private:
  LockPolicy& policy_;
  FakeClock& clock_;
  std::string method_, path_;
  HeaderList headers_;
  std::string client_;
  std::string body_;
  bool has_body_ = false;
  std::shared_ptr<CountingWaker> waker_;
  std::unique_ptr<ExchangeState> state_;
};

// A memory lock store whose completions are held until the test releases them (DelayedCalls).
class DelayedLockStoreForPolicy final : public LockStore, public DelayedCalls {
 public:
  StoreCall ask(const LockAsk& ask, Completion<LockAnswer> done) override {
    return hold<LockAnswer>(at_once<LockAnswer>([&](auto c) { return memory.ask(ask, c); }), done);
  }
  StoreCall refresh(std::string_view resource, const LockToken& token, std::chrono::seconds timeout,
                    MonotonicTime now, Completion<LockChange> done) override {
    return hold<LockChange>(
        at_once<LockChange>([&](auto c) { return memory.refresh(resource, token, timeout, now, c); }), done);
  }
  StoreCall unlock(std::string_view resource, const LockToken& token, MonotonicTime now,
                   Completion<LockChange> done) override {
    return hold<LockChange>(at_once<LockChange>([&](auto c) { return memory.unlock(resource, token, now, c); }),
                            done);
  }
  StoreCall describe(std::string_view resource, MonotonicTime now, Completion<std::optional<LockView>> done) override {
    return memory.describe(resource, now, done);
  }
  StoreCall list(std::string_view after, std::size_t limit, MonotonicTime now,
                 Completion<std::vector<LockView>> done) override {
    return memory.list(after, limit, now, done);
  }
  StoreCall break_lock(std::string_view resource, MonotonicTime now, Completion<std::optional<LockView>> done) override {
    return memory.break_lock(resource, now, done);
  }
  StoreCall keep_routes(std::span<const std::string> routes, MonotonicTime now, Completion<std::size_t> done) override {
    return memory.keep_routes(routes, now, done);
  }
  StoreCall take_expired(MonotonicTime now, Completion<std::vector<LockView>> done) override {
    return memory.take_expired(now, done);
  }
  std::size_t held(std::string_view route, MonotonicTime now) const override { return memory.held(route, now); }
  std::uint64_t ended(std::string_view route, LockEnd how) const override { return memory.ended(route, how); }

  // Fails every call at once (StoreError::Unavailable, completed before the call returns).
  bool failing = false;
  MemoryLockStore memory;

 private:
  template <typename T, typename Call>
  StoreResult<T> at_once(Call call) {
    StoreResult<T> out;
    auto keep = [&](StoreResult<T>&& result) { out = std::move(result); };
    StoreCall pending = call(Completion<T>(keep));
    if (failing) out = StoreResult<T>{T{}, StoreError::Unavailable};
    return out;
  }
};

// The samples and histograms write_metrics gave, keyed "family{label=value,...}".
class RecordingMetrics final : public MetricsWriter {
 public:
  void declare(std::string_view, std::string_view, Type) override {}
  void sample(std::string_view family, std::initializer_list<MetricLabelView> labels, double value) override {
    samples[key(family, labels)] = value;
  }
  void histogram(std::string_view family, std::initializer_list<MetricLabelView> labels, std::span<const double>,
                 std::span<const std::uint64_t> buckets, double sum) override {
    histograms[key(family, labels)] = {buckets.begin(), buckets.end()};
    sums[key(family, labels)] = sum;
  }
  std::map<std::string, double> samples;
  std::map<std::string, std::vector<std::uint64_t>> histograms;
  std::map<std::string, double> sums;

 private:
  static std::string key(std::string_view family, std::initializer_list<MetricLabelView> labels) {
    std::string out(family);
    out += '{';
    for (const auto& label : labels) out += std::string(label.name) + "=" + std::string(label.value) + ",";
    return out + '}';
  }
};

}  // namespace arbiter::testing
