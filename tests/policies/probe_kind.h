#pragma once
// A policy kind built only in tests: [route.probe], registered by the tests that use it on a
// copy of the product registry, to show that a kind is its own files plus one registration
// line (policies/policy_kind.h) and that proxy/ needs no edit for it.
//
//   [route.probe]
//   greeting = "hello"   # required: echoed in a field of every forwarded request's answer
//   max_hits = 3         # 1..100, default 2: the request after that many is refused with 429
//   pause = "250ms"      # a duration; only shown (explain, /config)

#include <atomic>
#include <string>

#include "policies/policy_kind.h"
#include "policies/policy_registry.h"

namespace arbiter::testing {

struct ProbeSettings {
  std::string greeting;
  unsigned max_hits = 2;
  Duration pause{0};
  bool operator==(const ProbeSettings&) const = default;
};

// Forwards the first max_hits requests and refuses the rest with a 429 problem; counts both.
class ProbePolicy final : public Policy {
 public:
  ProbePolicy(std::string route, ProbeSettings settings) : route_(std::move(route)), settings_(std::move(settings)) {}
  std::string_view kind() const noexcept override { return "probe"; }
  Decision on_request(const RequestView& request, std::unique_ptr<ExchangeState>& state) override;
  std::string explain(const RequestView& request) const override;
  void write_metrics(std::string_view route, MetricsWriter& out) const override;
  const ProbeSettings& settings() const noexcept { return settings_; }

 private:
  std::string route_;
  ProbeSettings settings_;
  std::atomic<unsigned> hits_{0};
  std::atomic<unsigned> refused_{0};
};

// Runs between the rate limit (100) and the in-flight limit (200).
inline constexpr int kProbeChainPosition = 150;

const PolicyKind& probe_kind();
// The product's kinds and the probe: product_policy_registry() with the one registration line.
PolicyRegistry with_probe();

}  // namespace arbiter::testing
