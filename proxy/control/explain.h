#pragma once
// `arbiter explain`: what Arbiter would do with a request under a configuration, without
// running anything, so that whoever edits the policies sees an edit's effect before reloading.

#include <string>
#include <string_view>

#include "proxy/http/headers.h"
#include "proxy/config/config.h"

namespace arbiter {

// The route that matches (or why none does), the path parameters, the upstream, and each
// policy in the order it runs with what it would check for this request.
std::string explain_request(const Config& config, std::string_view method, std::string_view target,
                            const HeaderList& headers);

}  // namespace arbiter
