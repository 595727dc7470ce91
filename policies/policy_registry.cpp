#include "policies/policy_registry.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "policies/concurrency/concurrency_kind.h"
#include "policies/etag/etag_kind.h"
#include "policies/lock/lock_kind.h"
#include "policies/rate_limit/rate_limit_kind.h"

namespace arbiter {

void PolicyRegistry::add(const PolicyKind& kind) {
  if (find(kind.name()) != nullptr) {
    throw std::logic_error("policy kind '" + std::string(kind.name()) + "' is registered already");
  }
  for (const PolicyKind* other : kinds_) {
    for (std::string_view key : kind.route_keys()) {
      std::vector<std::string_view> taken = other->route_keys();
      if (std::find(taken.begin(), taken.end(), key) != taken.end()) {
        throw std::logic_error("route key '" + std::string(key) + "' of policy kind '" + std::string(kind.name()) +
                               "' is read by kind '" + std::string(other->name()) + "' already");
      }
    }
  }
  kinds_.push_back(&kind);
}

const PolicyKind* PolicyRegistry::find(std::string_view name) const noexcept {
  for (const PolicyKind* kind : kinds_) {
    if (kind->name() == name) return kind;
  }
  return nullptr;
}

const PolicyRegistry& product_policy_registry() {
  static const PolicyRegistry registry = [] {
    PolicyRegistry kinds;
    kinds.add(etag_kind());
    kinds.add(rate_limit_kind());
    kinds.add(concurrency_kind());
    kinds.add(lock_kind());  // after etag: it reads the ETag table etag publishes
    return kinds;
  }();
  return registry;
}

}  // namespace arbiter
