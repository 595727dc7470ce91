#pragma once
// The policy kinds a configuration may use, by name, in registration order: the order their
// route keys are read in, their /config JSON written in and their /metrics families exposed in.

#include <string_view>
#include <vector>

#include "policies/policy_kind.h"

namespace arbiter {

// A small value (pointers to kinds): copy it to add a kind of your own, e.g. a test's.
class PolicyRegistry {
 public:
  // Throws std::logic_error if the kind's name or one of its route keys is taken already.
  // The kind must outlive the registry and every Config read with it.
  void add(const PolicyKind& kind);
  const std::vector<const PolicyKind*>& kinds() const noexcept { return kinds_; }
  const PolicyKind* find(std::string_view name) const noexcept;

 private:
  std::vector<const PolicyKind*> kinds_;
};

// Arbiter's own kinds, one registration line each (policies/policy_registry.cpp).
const PolicyRegistry& product_policy_registry();

}  // namespace arbiter
