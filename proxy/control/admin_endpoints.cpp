#include "proxy/control/admin_endpoints.h"

#include <nlohmann/json.hpp>

#include "proxy/control/config_json.h"
#include "proxy/exchange/runtime.h"
#include "proxy/observe/metrics.h"

namespace arbiter {

namespace {

const HeaderList& json_fields() {
  static const HeaderList fields{{"Content-Type", "application/json"}};
  return fields;
}

// A handler that is one function of the services.
template <typename Answer>
class AdminHandler final : public LocalHandler {
 public:
  AdminHandler(AdminServices& services, Answer answer) : services_(services), answer_(std::move(answer)) {}
  void handle(const LocalRequest& request, LocalResponder& responder) override {
    answer_(services_, request, responder);
  }

 private:
  AdminServices& services_;
  Answer answer_;
};

template <typename Answer>
void add(HandlerRegistry& registry, AdminServices& services, std::string path, std::vector<std::string> methods,
         std::string summary, Answer answer) {
  registry.add(std::move(path), PathMatch::Exact, std::move(methods), std::move(summary),
               std::make_shared<AdminHandler<Answer>>(services, std::move(answer)));
}

void answer_reload(AdminServices& services, const LocalRequest&, LocalResponder& responder) {
  ReloadOutcome outcome = services.reload_configuration();
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
    responder.reply_problem(problem);
    return;
  }
  nlohmann::json body = {{"status", "reloaded"},
                         {"file", services.current_runtime()->config().file},
                         {"restart_needed_for", outcome.notes}};
  responder.reply(200, json_fields(), body.dump());
}

}  // namespace

void add_admin_endpoints(HandlerRegistry& registry, AdminServices& services) {
  using Services = AdminServices;
  add(registry, services, "/healthz", {"GET"}, "liveness",
      [](Services&, const LocalRequest&, LocalResponder& responder) {
        responder.reply(200, json_fields(), R"({"status":"ok"})");
      });
  add(registry, services, "/readyz", {"GET"}, "readiness (503 while draining)",
      [](Services& services, const LocalRequest&, LocalResponder& responder) {
        if (services.shutting_down()) {
          responder.reply(503, json_fields(), R"({"status":"draining"})");
        } else {
          responder.reply(200, json_fields(), R"({"status":"ready"})");
        }
      });
  add(registry, services, "/metrics", {"GET"}, "Prometheus metrics",
      [](Services& services, const LocalRequest&, LocalResponder& responder) {
        responder.reply(200, HeaderList{{"Content-Type", kMetricsContentType}},
                        render_metrics(*services.current_runtime()));
      });
  add(registry, services, "/config", {"GET"}, "the effective configuration as JSON",
      [](Services& services, const LocalRequest&, LocalResponder& responder) {
        responder.reply(200, json_fields(), config_to_json(services.current_runtime()->config()));
      });
  add(registry, services, "/reload", {"POST"}, "re-read the configuration file", answer_reload);
}

}  // namespace arbiter
