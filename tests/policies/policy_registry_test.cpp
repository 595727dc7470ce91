// The registry of policy kinds: the product's kinds in their order, a test's kind added to a
// copy, and a name or route key taken twice refused.

#include "policies/policy_registry.h"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string_view>
#include <vector>

#include "tests/policies/probe_kind.h"

namespace arbiter {
namespace {

using testing::probe_kind;

TEST(PolicyRegistryTest, ProductKindsInRegistrationOrder) {
  std::vector<std::string_view> names;
  for (const PolicyKind* kind : product_policy_registry().kinds()) names.push_back(kind->name());
  EXPECT_EQ(names, (std::vector<std::string_view>{"etag", "rate_limit", "concurrency", "lock"}));
  EXPECT_EQ(product_policy_registry().find("probe"), nullptr);
  EXPECT_EQ(testing::with_probe().find("probe"), &probe_kind());
}

TEST(PolicyRegistryTest, ANameOrARouteKeyTakenTwiceIsRefused) {
  PolicyRegistry registry = testing::with_probe();
  EXPECT_THROW(registry.add(probe_kind()), std::logic_error);
  // A kind reading a route key another kind reads already.
  class Greedy final : public PolicyKind {
   public:
    std::string_view name() const noexcept override { return "greedy"; }
    std::vector<std::string_view> route_keys() const override { return {"rate_limit_headers"}; }
    int chain_position() const noexcept override { return 0; }
    std::shared_ptr<const PolicyConfig> read(const TableReader&, const RouteContext&) const override {
      return nullptr;
    }
    std::unique_ptr<PolicyKindState> make_state(ResourceStores&) const override { return nullptr; }
  } greedy;
  EXPECT_THROW(registry.add(greedy), std::logic_error);
  EXPECT_EQ(registry.kinds().size(), 5u);  // the product's four and the probe
}

}  // namespace
}  // namespace arbiter
