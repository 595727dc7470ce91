#pragma once
// [route.concurrency]: reading it (defaults, validation, positioned diagnostics), and writing it
// back as /config JSON and as the route table's entry. The settings struct is ConcurrencyConfig
// (policies/concurrency/concurrency_policy.h).

#include <memory>

#include "policies/concurrency/concurrency_policy.h"
#include "policies/policy_kind.h"

namespace arbiter {

class ConcurrencyConfigEntry final : public SettingsConfig<ConcurrencyConfig> {
 public:
  using SettingsConfig::SettingsConfig;
  void write_json(nlohmann::ordered_json& route) const override;
  std::string summary() const override;
};

// The route's [route.concurrency] as a config of `kind`; nullptr when the route has none or it
// is not a table (reported).
std::shared_ptr<const PolicyConfig> read_concurrency_config(const PolicyKind& kind, const TableReader& route);

}  // namespace arbiter
