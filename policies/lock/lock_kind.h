#pragma once
// The lock policy kind ([route.lock]): its reader, its state across reloads (the process's lock
// store, policies/store/resource_stores.h, and each route's policy) and its /metrics families.

#include "policies/policy_kind.h"

namespace arbiter {

const PolicyKind& lock_kind();

}  // namespace arbiter
