// The admin listener's endpoints, answered by the connection's Exchange as local answers
// (ExchangeHost::answer_locally): GET /healthz, /readyz, /metrics, /config and POST /reload.

#include "proxy/control/config_json.h"
#include "proxy/net/client_connection.h"
#include "proxy/net/server.h"
#include "proxy/net/worker.h"
#include "proxy/observe/metrics.h"

namespace arbiter {

namespace {

void answer_reload(Exchange& exchange, const RequestHead& head, Worker& worker) {
  if (head.method != "POST") {
    exchange.reply_problem(Problem::make("method-not-allowed", 405, "Method not allowed", "Reload with POST /reload."),
                           HeaderList{{"Allow", "POST"}}, "admin");
    return;
  }
  // Parsing a configuration file takes this worker's loop for a moment; reloads are rare.
  ReloadOutcome outcome = worker.server().reload();
  if (!outcome.applied) {
    Problem problem = Problem::make("invalid-configuration", 422, "Configuration refused",
                                    "The new configuration has errors; Arbiter keeps serving with the previous one.");
    nlohmann::json errors = nlohmann::json::array();
    for (const ConfigDiagnostic& diagnostic : outcome.errors) {
      errors.push_back({{"file", diagnostic.file},
                        {"line", diagnostic.line},
                        {"column", diagnostic.column},
                        {"key", diagnostic.key},
                        {"message", diagnostic.message},
                        {"text", diagnostic.text()}});
    }
    problem.extensions.emplace_back("errors", std::move(errors));
    exchange.reply_problem(problem, {}, "admin");
    return;
  }
  nlohmann::json body = {{"status", "reloaded"},
                         {"file", worker.server().runtime()->config().file},
                         {"restart_needed_for", outcome.notes}};
  exchange.reply(200, "application/json", {}, body.dump(), "admin");
}

}  // namespace

void ClientConnection::answer_locally(Exchange& exchange, const RequestHead& head) {
  std::string_view path = std::string_view(head.target).substr(0, head.target.find('?'));
  if (path == "/reload") {
    answer_reload(exchange, head, worker_);
    return;
  }
  if (head.method != "GET" && head.method != "HEAD") {
    exchange.reply_problem(Problem::make("method-not-allowed", 405, "Method not allowed", "The admin endpoints take GET."),
                           HeaderList{{"Allow", "GET, HEAD"}}, "admin");
  } else if (path == "/metrics") {
    // The server's current Runtime: the policies a reload just put in place, not this worker's
    // copy, which it adopts on its next loop iteration.
    exchange.reply(200, kMetricsContentType, {}, render_metrics(*worker_.server().runtime()), "admin");
  } else if (path == "/config") {
    exchange.reply(200, "application/json", {}, config_to_json(worker_.server().runtime()->config()), "admin");
  } else if (path == "/healthz") {
    exchange.reply(200, "application/json", {}, R"({"status":"ok"})", "admin");
  } else if (path == "/readyz") {
    if (worker_.draining()) {
      exchange.reply(503, "application/json", {}, R"({"status":"draining"})", "admin");
    } else {
      exchange.reply(200, "application/json", {}, R"({"status":"ready"})", "admin");
    }
  } else {
    exchange.reply_problem(Problem::make("not-found", 404, "Not found",
                                         "No admin endpoint " + std::string(path) +
                                             "; there are /healthz, /readyz, /metrics, /config and POST /reload."),
                           {}, "admin");
  }
}

}  // namespace arbiter
