#include "proxy/control/ui_endpoints.h"

#include <algorithm>
#include <array>
#include <nlohmann/json.hpp>
#include <string_view>
#include <utility>

#include "proxy/config/control_config.h"
#include "proxy/control/endpoint_support.h"
#include "proxy/control/ui_assets.h"
#include "proxy/exchange/runtime.h"

namespace arbiter {

namespace {

// No inline script or style and nothing from elsewhere: the page's script and style come from
// P/ui/ and it talks only to its own origin. data: images: the page's empty icon, so that the
// browser does not ask the routes (the backend) for /favicon.ico.
constexpr std::string_view kUiSecurityPolicy =
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

struct UiFile {
  std::string_view path;  // below P/ui/; "" is the page itself
  std::string_view asset;
  std::string_view content_type;
};

constexpr std::array<UiFile, 3> kUiFiles = {{
    {"", "index.html", "text/html; charset=utf-8"},
    {"app.js", "app.js", "text/javascript; charset=utf-8"},
    {"app.css", "app.css", "text/css; charset=utf-8"},
}};

constexpr std::string_view kUiPath = "/ui/";

class UiFileHandler final : public LocalHandler {
 public:
  void handle(const LocalRequest& request, LocalResponder& responder) override {
    std::string_view file = request.path.substr(request.mount.size() + kUiPath.size());
    auto known = std::find_if(kUiFiles.begin(), kUiFiles.end(), [&](const UiFile& f) { return f.path == file; });
    std::optional<std::string_view> body = known == kUiFiles.end() ? std::nullopt : ui_asset(known->asset);
    if (!body) {
      responder.reply_problem(Problem::make("not-found", 404, "Not found",
                                            "The conflicts page has no file " + std::string(file) + "; open " +
                                                std::string(request.mount) + "/ui/."));
      return;
    }
    responder.reply(200,
                    HeaderList{{"Content-Type", std::string(known->content_type)},
                               {"Content-Security-Policy", std::string(kUiSecurityPolicy)},
                               {"X-Content-Type-Options", "nosniff"},
                               {"Referrer-Policy", "no-referrer"}},
                    *body);
  }
};

// P/ui without its slash: the page's relative links to app.js and app.css need the slash.
class UiRedirectHandler final : public LocalHandler {
 public:
  void handle(const LocalRequest& request, LocalResponder& responder) override {
    std::string location = std::string(request.mount) + std::string(kUiPath);
    responder.reply(308, HeaderList{{"Location", location}, {"Content-Type", "text/plain; charset=utf-8"}},
                    "The conflicts page is at " + location + "\n");
  }
};

class StatsHandler final : public LocalHandler {
 public:
  explicit StatsHandler(AdminServices& services) : services_(services) {}

  void handle(const LocalRequest&, LocalResponder& responder) override {
    std::shared_ptr<const Runtime> runtime = services_.current_runtime();
    std::vector<std::string> routes;
    routes.reserve(runtime->route_count());
    for (std::size_t r = 0; r < runtime->route_count(); ++r) routes.push_back(runtime->route(r).config->name);
    responder.reply(200, json_fields(),
                    route_stats_json(route_stats(routes, metrics_registry().snapshot(), policy_metric_families(*runtime))));
  }

 private:
  AdminServices& services_;
};

std::string_view label_of(const MetricSample& sample, std::string_view name) {
  for (const MetricLabel& label : sample.labels) {
    if (label.name == name) return label.value;
  }
  return {};
}

bool is_write_method(MethodLabel method) {
  return method == MethodLabel::Post || method == MethodLabel::Put || method == MethodLabel::Patch ||
         method == MethodLabel::Delete;
}

}  // namespace

std::vector<RouteStats> route_stats(const std::vector<std::string>& routes, const MetricsSnapshot& requests,
                                    const std::vector<MetricFamily>& policy_families) {
  std::vector<RouteStats> stats;
  stats.reserve(routes.size());
  for (const std::string& route : routes) {
    RouteStats& entry = stats.emplace_back();
    entry.route = route;
    auto metrics = requests.routes.find(route);
    if (metrics == requests.routes.end()) continue;
    for (std::size_t m = 0; m < kMethodLabelCount; ++m) {
      if (!is_write_method(static_cast<MethodLabel>(m))) continue;
      for (std::uint64_t count : metrics->second.requests[m]) entry.writes += count;
    }
  }
  // Which counter of RouteStats a sample adds to, by family and the label that tells decisions apart.
  auto counter_of = [](const MetricFamily& family, const MetricSample& sample, RouteStats& entry) -> std::uint64_t* {
    if (family.name == "arbiter_etag_decisions_total") {
      std::string_view decision = label_of(sample, "decision");
      if (decision == "conflict" || decision == "merge_conflict") return &entry.conflicts;
      if (decision == "merged") return &entry.merges;
    } else if (family.name == "arbiter_rate_limit_decisions_total") {
      if (label_of(sample, "decision") == "limited") return &entry.rate_limited;
    } else if (family.name == "arbiter_locks_held") {
      return &entry.locks_held;
    }
    return nullptr;
  };
  for (const MetricFamily& family : policy_families) {
    for (const MetricSample& sample : family.samples) {
      std::string_view route = label_of(sample, "route");
      auto entry = std::find_if(stats.begin(), stats.end(), [&](const RouteStats& s) { return s.route == route; });
      if (entry == stats.end()) continue;
      if (std::uint64_t* counter = counter_of(family, sample, *entry)) {
        *counter += static_cast<std::uint64_t>(std::max(0.0, sample.value));
      }
    }
  }
  return stats;
}

std::string route_stats_json(const std::vector<RouteStats>& stats) {
  nlohmann::ordered_json routes = nlohmann::ordered_json::array();
  for (const RouteStats& s : stats) {
    routes.push_back({{"route", s.route},
                      {"writes", s.writes},
                      {"conflicts", s.conflicts},
                      {"merges", s.merges},
                      {"rate_limited", s.rate_limited},
                      {"locks_held", s.locks_held}});
  }
  return nlohmann::ordered_json{{"routes", std::move(routes)}}.dump();
}

void add_ui_endpoints(HandlerRegistry& control, AdminServices& services) {
  control.add("/ui", PathMatch::Exact, {"GET"}, "the conflicts page (redirects to ui/)",
              std::make_shared<UiRedirectHandler>(), std::string(kScopePublic));
  control.add(std::string(kUiPath), PathMatch::Prefix, {"GET"}, "the conflicts page: live feed, counters, resolve",
              std::make_shared<UiFileHandler>(), std::string(kScopePublic));
  control.add("/stats", PathMatch::Exact, {"GET"}, "counters per route (writes, conflicts, merges, 429s, locks held)",
              std::make_shared<StatsHandler>(services), std::string(kScopeFeed));
}

}  // namespace arbiter
