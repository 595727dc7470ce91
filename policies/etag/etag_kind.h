#pragma once
// The ETag policy kind ([route.etag]): see policies/policy_kind.h.

#include "policies/policy_kind.h"

namespace arbiter {

const PolicyKind& etag_kind();

}  // namespace arbiter
