#include "tests/policies/probe_kind.h"

namespace arbiter::testing {

namespace {

constexpr std::string_view kRequests = "arbiter_probe_requests_total";

class ProbeConfig final : public SettingsConfig<ProbeSettings> {
 public:
  using SettingsConfig::SettingsConfig;
  void write_json(nlohmann::ordered_json& route) const override {
    route["probe"] = nlohmann::ordered_json{{"greeting", settings().greeting},
                                            {"max_hits", settings().max_hits},
                                            {"pause", duration_text(settings().pause)}};
  }
  std::string summary() const override { return "probe(" + settings().greeting + ")"; }
};

// Keeps a route's policy while its settings stay the same, so its counters go on.
class ProbeState final : public PolicyKindState {
 public:
  std::vector<std::shared_ptr<Policy>> policies(std::span<const Use> uses) override {
    return routes_.update(uses, [](const Use& use, std::shared_ptr<ProbePolicy>& policy) {
      const ProbeSettings& settings = static_cast<const ProbeConfig&>(*use.config).settings();
      if (policy == nullptr || !(policy->settings() == settings)) {
        policy = std::make_shared<ProbePolicy>(std::string(use.route), settings);
      }
      return policy;
    });
  }

 private:
  RouteEntries<std::shared_ptr<ProbePolicy>> routes_;
};

class ProbeKind final : public PolicyKind {
 public:
  std::string_view name() const noexcept override { return "probe"; }
  std::vector<std::string_view> route_keys() const override { return {"probe"}; }
  int chain_position() const noexcept override { return kProbeChainPosition; }
  std::shared_ptr<const PolicyConfig> read(const TableReader& route, const RouteContext&) const override {
    auto table = route.table("probe");
    if (!table) return nullptr;
    table->reject_unknown_keys({"greeting", "max_hits", "pause"});
    ProbeSettings settings;
    if (table->require("greeting")) settings.greeting = table->string("greeting").value_or("");
    table->integer("max_hits", settings.max_hits, 1, 100);
    table->duration("pause", settings.pause, kNoMinimum);
    return std::make_shared<ProbeConfig>(*this, std::move(settings));
  }
  std::unique_ptr<PolicyKindState> make_state(ResourceStores&) const override { return std::make_unique<ProbeState>(); }
  void declare_metrics(MetricsWriter& out) const override {
    out.declare(kRequests, "Probe decisions by route: forwarded or refused.", MetricsWriter::Type::Counter);
  }
};

}  // namespace

Decision ProbePolicy::on_request(const RequestView&, std::unique_ptr<ExchangeState>&) {
  if (hits_.fetch_add(1, std::memory_order_relaxed) < settings_.max_hits) return Decision::forward();
  refused_.fetch_add(1, std::memory_order_relaxed);
  return Decision::reply(Problem::make("probe", 429, "Probed",
                                       settings_.greeting + ": no more than " + std::to_string(settings_.max_hits) +
                                           " requests"));
}

std::string ProbePolicy::explain(const RequestView& request) const {
  return "says " + settings_.greeting + " to " + std::string(request.method) + " requests, " +
         std::to_string(settings_.max_hits) + " of them, pausing " + duration_text(settings_.pause);
}

void ProbePolicy::write_metrics(std::string_view route, MetricsWriter& out) const {
  unsigned refused = refused_.load(std::memory_order_relaxed);
  out.sample(kRequests, {{"route", route}, {"decision", "forwarded"}},
             static_cast<double>(hits_.load(std::memory_order_relaxed) - refused));
  out.sample(kRequests, {{"route", route}, {"decision", "refused"}}, static_cast<double>(refused));
}

const PolicyKind& probe_kind() {
  static const ProbeKind kind;
  return kind;
}

PolicyRegistry with_probe() {
  PolicyRegistry registry = product_policy_registry();
  registry.add(probe_kind());
  return registry;
}

}  // namespace arbiter::testing
