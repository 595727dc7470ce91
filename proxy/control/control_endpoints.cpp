#include "proxy/control/control_endpoints.h"

#include <nlohmann/json.hpp>

#include "proxy/http/headers.h"

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

}  // namespace

void add_control_endpoints(HandlerRegistry& registry) {
  registry.add("/", PathMatch::Exact, {"GET"}, "the control endpoints enabled (this list)",
               std::make_shared<IndexHandler>(registry));
}

bool in_control_namespace(std::string_view path, std::string_view prefix, bool case_insensitive) noexcept {
  if (path.size() < prefix.size() || (path.size() > prefix.size() && path[prefix.size()] != '/')) return false;
  std::string_view head = path.substr(0, prefix.size());
  return case_insensitive ? iequals(head, prefix) : head == prefix;
}

}  // namespace arbiter
