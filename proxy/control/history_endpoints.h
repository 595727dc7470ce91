#pragma once
// Version history's endpoints ([route.history], policies/store/history_store.h), as local
// handlers over the process's history store (ResourceStores::history), under [server]
// control_prefix (P):
//   GET  P/history?resource=R                 R's recorded versions, newest first (no bodies);
//                                             404 problem when none was ever recorded
//   GET  P/history?resource=R&version=N       version N's body, with its own Content-Type, ETag and
//                                             Memento-Datetime (RFC 7089); 410 problem when dropped by
//                                             retention (or recorded without its body), 404 never recorded
//   GET  P/history?resource=R&from=A&to=B     an RFC 6902 JSON Patch (application/json-patch+json)
//                                             turning version A into version B; 415 problem when
//                                             either is not JSON
//   POST P/history/restore?resource=R&version=N   with If-Match: the current ETag. Writes version N's
//                                             body back: a PUT of R handed on to R's route
//                                             (LocalResponder::pass_on), through its whole policy
//                                             chain; the answer is that write's. No If-Match: 428.
// `resource` is a percent-decoded resource key: the request path, or the key the route's
// `resource` template makes (restore PUTs to it as a path).

#include <memory>

#include "policies/store/history_store.h"
#include "proxy/control/handler_registry.h"

namespace arbiter {

void add_history_endpoints(HandlerRegistry& control, std::shared_ptr<HistoryStore> history);

}  // namespace arbiter
