#include "tests/support/control_server/held_kind.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <deque>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "policies/metrics_writer.h"

namespace arbiter::testing {

namespace {

constexpr std::string_view kCalls = "arbiter_held_calls_total";

enum Phase : std::uint8_t { kRequest, kResponse, kEnd, kPhaseCount };
constexpr std::array<std::string_view, kPhaseCount> kPhaseNames = {"request", "response", "end"};

// ---- the store

class HeldCall;
// This thread's calls, oldest first. Loop thread only: each worker has its own.
thread_local std::deque<HeldCall*> t_held;

class HeldCall final : public PendingStoreCall {
 public:
  explicit HeldCall(Completion<Done> done) : done_(done) { t_held.push_back(this); }
  ~HeldCall() override {
    if (auto it = std::find(t_held.begin(), t_held.end(), this); it != t_held.end()) t_held.erase(it);
  }
  // Called by release() once it has taken the call off the list; the call may be destroyed
  // by the completion, so nothing of it is touched after.
  void complete() { done_(Done{}); }

 private:
  Completion<Done> done_;
};

// ---- the policy

struct HeldSettings {
  std::array<bool, kPhaseCount> phases{true, true, true};
  bool operator==(const HeldSettings&) const = default;
};

// One exchange's progress through its phases. Loop thread only.
struct HeldState final : ExchangeState {
  StoreCall call;  // the current phase's call, until it is answered or given up
  bool answered = false;
  bool gave_up = false;
  std::shared_ptr<Waker> waker;
  MonotonicTime deadline{};
  std::array<bool, kPhaseCount> done{};
  std::string resumed;  // "request, response": the phases that parked and were answered

  void answer(StoreResult<Done>&&) {
    answered = true;
    if (waker) waker->wake();
  }
};

class HeldPolicy final : public Policy {
 public:
  explicit HeldPolicy(HeldSettings settings) : settings_(settings) {}
  std::string_view kind() const noexcept override { return "held"; }
  const HeldSettings& settings() const noexcept { return settings_; }

  Decision on_request(const RequestView& request, std::unique_ptr<ExchangeState>& state) override {
    if (!state) state = std::make_unique<HeldState>();
    auto& held = static_cast<HeldState&>(*state);
    if (waits(kRequest, held, request)) return Decision::wait_until(held.deadline);
    if (held.gave_up) {
      return Decision::reply(Problem::make("held-store-unavailable", 503, "Held store did not answer",
                                           "The held call was not released in time; release it sooner."));
    }
    return Decision::forward();
  }

  ResponseStep on_response(const RequestView& request, ResponseView& response, ExchangeState* state) override {
    if (state == nullptr) return ResponseStep::proceed();
    auto& held = static_cast<HeldState&>(*state);
    if (waits(kResponse, held, request)) return ResponseStep::wait_until(held.deadline);
    response.headers.set("Held-Phases", held.resumed);
    return ResponseStep::proceed();
  }

  ResponseStep on_end(const RequestView& request, const ExchangeOutcome&, ExchangeState* state) override {
    if (state == nullptr) return ResponseStep::proceed();
    auto& held = static_cast<HeldState&>(*state);
    if (waits(kEnd, held, request)) return ResponseStep::wait_until(held.deadline);
    return ResponseStep::proceed();
  }

  // The response is held back (buffered) only when the policy asks for its body.
  std::size_t response_body_limit() const noexcept override { return 1u << 20; }

  std::string explain(const RequestView&) const override {
    std::string parks;
    for (std::size_t phase = 0; phase < kPhaseCount; ++phase) {
      if (!settings_.phases[phase]) continue;
      if (!parks.empty()) parks += ", ";
      parks += kPhaseNames[phase];
    }
    return "parks on the held store in: " + parks;
  }

  void write_metrics(std::string_view route, MetricsWriter& out) const override {
    for (std::size_t phase = 0; phase < kPhaseCount; ++phase) {
      out.sample(kCalls, {{"route", route}, {"phase", kPhaseNames[phase]}, {"outcome", "answered"}},
                 static_cast<double>(answered_[phase].load(std::memory_order_relaxed)));
      out.sample(kCalls, {{"route", route}, {"phase", kPhaseNames[phase]}, {"outcome", "gave_up"}},
                 static_cast<double>(gave_up_[phase].load(std::memory_order_relaxed)));
    }
  }

 private:
  // True while `phase` waits for its held call: the first time, the call is made; later, until
  // it is answered or kHoldLimit has passed (then gave_up is set).
  bool waits(Phase phase, HeldState& held, const RequestView& request) {
    if (!settings_.phases[phase] || held.done[phase]) return false;
    if (!held.call) {
      held.answered = false;
      held.waker = request.waker;
      held.deadline = request.now + kHoldLimit;
      held.call = held_store().hold(Completion<Done>::to<&HeldState::answer>(held));
      return true;
    }
    if (!held.answered && request.now < held.deadline) return true;
    held.call.reset();
    held.done[phase] = true;
    if (held.answered) {
      answered_[phase].fetch_add(1, std::memory_order_relaxed);
      if (!held.resumed.empty()) held.resumed += ", ";
      held.resumed += kPhaseNames[phase];
    } else {
      gave_up_[phase].fetch_add(1, std::memory_order_relaxed);
      held.gave_up = true;
    }
    return false;
  }

  HeldSettings settings_;
  std::array<std::atomic<std::uint64_t>, kPhaseCount> answered_{};
  std::array<std::atomic<std::uint64_t>, kPhaseCount> gave_up_{};
};

// ---- the kind

class HeldConfig final : public SettingsConfig<HeldSettings> {
 public:
  using SettingsConfig::SettingsConfig;
  void write_json(nlohmann::ordered_json& route) const override {
    nlohmann::ordered_json phases = nlohmann::ordered_json::array();
    for (std::size_t phase = 0; phase < kPhaseCount; ++phase) {
      if (settings().phases[phase]) phases.push_back(kPhaseNames[phase]);
    }
    route["held"] = nlohmann::ordered_json{{"phases", std::move(phases)}};
  }
  std::string summary() const override { return "held"; }
};

class HeldKindState final : public PolicyKindState {
 public:
  std::vector<std::shared_ptr<Policy>> policies(std::span<const Use> uses) override {
    return routes_.update(uses, [](const Use& use, std::shared_ptr<HeldPolicy>& policy) {
      const HeldSettings& settings = static_cast<const HeldConfig&>(*use.config).settings();
      if (policy == nullptr || !(policy->settings() == settings)) policy = std::make_shared<HeldPolicy>(settings);
      return policy;
    });
  }

 private:
  RouteEntries<std::shared_ptr<HeldPolicy>> routes_;
};

class HeldKind final : public PolicyKind {
 public:
  std::string_view name() const noexcept override { return "held"; }
  std::vector<std::string_view> route_keys() const override { return {"held"}; }
  int chain_position() const noexcept override { return 150; }
  std::shared_ptr<const PolicyConfig> read(const TableReader& route, const RouteContext&) const override {
    auto table = route.table("held");
    if (!table) return nullptr;
    table->reject_unknown_keys({"phases"});
    HeldSettings settings;
    if (table->find("phases") != nullptr) {
      settings.phases = {};
      table->strings("phases", "phases", false, "", [&](const toml::node& at, std::string key, std::string_view text) {
        auto it = std::find(kPhaseNames.begin(), kPhaseNames.end(), text);
        if (it == kPhaseNames.end()) {
          table->error(at, std::move(key), "expected \"request\", \"response\" or \"end\"");
        } else {
          settings.phases[static_cast<std::size_t>(it - kPhaseNames.begin())] = true;
        }
      });
    }
    return std::make_shared<HeldConfig>(*this, settings);
  }
  std::unique_ptr<PolicyKindState> make_state(ResourceStores&) const override { return std::make_unique<HeldKindState>(); }
  void declare_metrics(MetricsWriter& out) const override {
    out.declare(kCalls, "Held store calls by route, phase and outcome (answered, or given up after the hold limit).",
                MetricsWriter::Type::Counter);
  }
};

}  // namespace

StoreCall HeldStore::hold(Completion<Done> done) { return std::make_unique<HeldCall>(done); }

std::size_t HeldStore::release(std::size_t count) {
  std::size_t released = 0;
  while (released < count && !t_held.empty()) {
    HeldCall* call = t_held.front();
    t_held.pop_front();
    ++released;
    call->complete();
  }
  return released;
}

std::size_t HeldStore::held() const { return t_held.size(); }

HeldStore& held_store() {
  static HeldStore store;
  return store;
}

const PolicyKind& held_kind() {
  static const HeldKind kind;
  return kind;
}

PolicyRegistry with_held() {
  PolicyRegistry registry = product_policy_registry();
  registry.add(held_kind());
  return registry;
}

}  // namespace arbiter::testing
