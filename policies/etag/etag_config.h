#pragma once
// [route.etag]: reading it (defaults, validation, positioned diagnostics), and writing it back
// as /config JSON and as the route table's entry. The settings struct is EtagPolicyConfig
// (policies/etag/etag_policy.h).

#include <memory>

#include "policies/etag/etag_policy.h"
#include "policies/policy_kind.h"

namespace arbiter {

class EtagConfig final : public SettingsConfig<EtagPolicyConfig> {
 public:
  using SettingsConfig::SettingsConfig;
  void write_json(nlohmann::ordered_json& route) const override;
  std::string summary() const override;
};

// The route's [route.etag] as a config of `kind`; nullptr when the route has none or it is not
// a table (reported).
std::shared_ptr<const PolicyConfig> read_etag_config(const PolicyKind& kind, const TableReader& route,
                                                     const RouteContext& context);

}  // namespace arbiter
