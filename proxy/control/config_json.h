#pragma once
// The effective configuration as JSON, for GET /config on the admin listener: what Arbiter
// runs with after defaults are filled in and values resolved (workers = 0 shows the number of
// threads started), so an operator can see what a file edit and a reload actually changed.
//
// The shape follows the TOML file, key for key: "server", "admin", "log", "upstream" (an
// object by name, in file order) and "route" (an array, in file order) with the keys of each
// policy kind the route uses ("etag", "rate_limit_headers" and "limit", "concurrency": each
// kind writes its own, PolicyConfig::write_json); "file" names the file it was
// loaded from. Values are written as the file would write them, so any of them can be pasted
// back: durations as strings ("10s", "250ms"), sizes as whole bytes, rates as "20/s", keys as
// "ip" / "header:NAME" / "global". "methods": null means every method; "resource": null the
// request path; "admin.listen": null no admin listener.

#include <string>

#include "proxy/config/config.h"

namespace arbiter {

// Compact JSON (one line), keys in the order above.
std::string config_to_json(const Config& config);

}  // namespace arbiter
