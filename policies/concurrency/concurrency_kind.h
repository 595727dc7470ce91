#pragma once
// The in-flight policy kind ([route.concurrency]): see policies/policy_kind.h.

#include "policies/policy_kind.h"

namespace arbiter {

const PolicyKind& concurrency_kind();

}  // namespace arbiter
