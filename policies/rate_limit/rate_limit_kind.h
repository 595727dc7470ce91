#pragma once
// The rate-limit policy kind ([[route.limit]]): see policies/policy_kind.h.

#include "policies/policy_kind.h"

namespace arbiter {

const PolicyKind& rate_limit_kind();

}  // namespace arbiter
