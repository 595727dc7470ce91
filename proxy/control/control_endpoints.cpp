#include "proxy/control/control_endpoints.h"

#include <nlohmann/json.hpp>

namespace arbiter {

namespace {

class IndexHandler final : public LocalHandler {
 public:
  explicit IndexHandler(const HandlerRegistry& registry) : registry_(registry) {}

  void handle(const LocalRequest& request, LocalResponder& responder) override {
    nlohmann::json endpoints = nlohmann::json::array();
    for (const HandlerRegistry::Entry& entry : registry_.entries()) {
      std::string path = std::string(request.mount) + entry.path;
      if (entry.match == PathMatch::Prefix) path += '*';
      endpoints.push_back(
          {{"path", path}, {"methods", HandlerRegistry::allowed(entry.methods)}, {"summary", entry.summary}});
    }
    nlohmann::json body = {{"endpoints", endpoints}};
    responder.reply(200, HeaderList{{"Content-Type", "application/json"}}, body.dump());
  }

 private:
  const HandlerRegistry& registry_;
};

char lower(char c) noexcept { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; }

}  // namespace

void add_control_endpoints(HandlerRegistry& registry) {
  registry.add("/", PathMatch::Exact, {"GET"}, "the control endpoints enabled (this list)",
               std::make_shared<IndexHandler>(registry));
}

bool in_control_namespace(std::string_view path, std::string_view prefix, bool case_insensitive) noexcept {
  if (path.size() < prefix.size() || (path.size() > prefix.size() && path[prefix.size()] != '/')) return false;
  if (!case_insensitive) return path.substr(0, prefix.size()) == prefix;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    if (lower(path[i]) != lower(prefix[i])) return false;
  }
  return true;
}

}  // namespace arbiter
