#pragma once
// The admin listener's endpoints, as local handlers (proxy/control/local_handler.h):
//   GET /healthz   200 {"status":"ok"}
//   GET /readyz    200 {"status":"ready"}, or 503 {"status":"draining"} while shutting down
//   GET /metrics   the Prometheus text (proxy/observe/metrics.h)
//   GET /config    the effective configuration as JSON (proxy/control/config_json.h)
//   POST /reload   re-reads the configuration file: 200 {"status":"reloaded",...} or 422 problem
// Every other path is the registry's 404 problem listing these; another method its 405.

#include <memory>
#include <string>
#include <vector>

#include "proxy/config/config.h"
#include "proxy/control/handler_registry.h"

namespace arbiter {

class Runtime;

struct ReloadOutcome {
  bool applied = false;
  std::vector<ConfigDiagnostic> errors;  // why it was refused
  std::vector<std::string> notes;        // what was applied only partly (listener changes)
};

// What the admin endpoints ask of the process; implemented by the worker whose loop runs them.
class AdminServices {
 public:
  // The server's current Runtime: the one a reload just put in place, even before this worker
  // adopts it for its requests.
  virtual std::shared_ptr<const Runtime> current_runtime() const = 0;
  // This worker has begun a graceful shutdown.
  virtual bool shutting_down() const = 0;
  // Server::reload: parses and applies the configuration file (blocks the loop for that long;
  // reloads are rare).
  virtual ReloadOutcome reload_configuration() = 0;

 protected:
  ~AdminServices() = default;
};

// Registers the endpoints above; `services` must outlive the registry.
void add_admin_endpoints(HandlerRegistry& registry, AdminServices& services);

}  // namespace arbiter
