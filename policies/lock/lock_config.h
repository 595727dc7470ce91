#pragma once
// [route.lock]: reading it (defaults, validation, positioned diagnostics), and writing it back as
// /config JSON and as the route table's entry. The settings struct is LockSettings
// (policies/lock/lock_policy.h).

#include <memory>

#include "policies/lock/lock_policy.h"
#include "policies/policy_kind.h"

namespace arbiter {

class LockConfig final : public SettingsConfig<LockSettings> {
 public:
  using SettingsConfig::SettingsConfig;
  void write_json(nlohmann::ordered_json& route) const override;
  std::string summary() const override;
  // LOCK and UNLOCK reach the route whatever its `methods` say.
  std::vector<std::string_view> added_methods() const override { return {"LOCK", "UNLOCK"}; }
};

// The route's [route.lock] as a config of `kind`; nullptr when the route has none or it is not a
// table (reported). Its `resource` defaults to [route.etag]'s, and must equal it when both are set.
std::shared_ptr<const PolicyConfig> read_lock_config(const PolicyKind& kind, const TableReader& route,
                                                     const RouteContext& context);

}  // namespace arbiter
