#pragma once
// [[route.limit]] and the route's rate_limit_headers: reading them (defaults, validation,
// positioned diagnostics), and writing them back as /config JSON and as the route table's
// entry. The settings struct is RateLimitPolicyConfig (policies/rate_limit/rate_limit_policy.h).

#include <memory>

#include "policies/policy_kind.h"
#include "policies/rate_limit/rate_limit_policy.h"

namespace arbiter {

class RateLimitConfigEntry final : public SettingsConfig<RateLimitPolicyConfig> {
 public:
  using SettingsConfig::SettingsConfig;
  void write_json(nlohmann::ordered_json& route) const override;
  std::string summary() const override;
};

// The route's limits, names filled in (default_limit_name), with rate_limit_headers as
// send_headers, as a config of `kind`; nullptr when the route has no 'limit' or it is not an
// array of tables (reported).
std::shared_ptr<const PolicyConfig> read_rate_limit_config(const PolicyKind& kind, const TableReader& route,
                                                           const RouteContext& context);

}  // namespace arbiter
