#include "policies/resource_key.h"

#include <algorithm>

namespace arbiter {

std::optional<std::vector<std::string_view>> template_param_names(std::string_view pattern) {
  std::vector<std::string_view> names;
  std::size_t i = 0;
  while (i < pattern.size()) {
    if (pattern[i] == '}') return std::nullopt;
    if (pattern[i] != '{') {
      ++i;
      continue;
    }
    std::size_t close = pattern.find_first_of("{}", i + 1);
    if (close == std::string_view::npos || pattern[close] != '}' || close == i + 1) return std::nullopt;
    names.push_back(pattern.substr(i + 1, close - i - 1));
    i = close + 1;
  }
  return names;
}

std::string resource_key(const RequestView& request, std::string_view pattern) {
  // The path and the {param}s are normalised already (one spelling per resource).
  if (pattern.empty()) return std::string(keys_lower_case_paths(request) ? request.resource_path : request.path);
  std::string key;
  std::size_t i = 0;
  while (i < pattern.size()) {
    std::size_t open = pattern.find('{', i);
    if (open == std::string_view::npos) break;
    std::size_t close = pattern.find('}', open);  // balanced: checked when it was read
    key.append(pattern.substr(i, open - i));
    std::string_view name = pattern.substr(open + 1, close - open - 1);
    auto param = std::find_if(request.params.begin(), request.params.end(),
                              [&](const PathParam& p) { return p.name == name; });
    // The loader refuses names the route's path does not capture; keep the text if one slips by.
    key.append(param != request.params.end() ? param->value : pattern.substr(open, close - open + 1));
    i = close + 1;
  }
  key.append(pattern.substr(std::min(i, pattern.size())));
  return key;
}

void read_resource_template(const TableReader& reader, std::optional<std::string_view> route_path, std::string& out) {
  auto resource = reader.string("resource");
  if (!resource) return;
  const toml::node& at = *reader.find("resource");
  std::string key = reader.key("resource");
  auto names = template_param_names(*resource);
  if (resource->empty()) {
    reader.error(at, key, "an empty resource key; leave out 'resource' to key each resource by its request path");
    return;
  }
  if (!names) {
    reader.error(at, key, "malformed template \"" + *resource + "\": every '{' needs a '}' and a name between them");
    return;
  }
  // route_path: the route's valid path pattern (nullopt if it is not valid, in which case the
  // template is not checked against it).
  auto captured = route_path ? template_param_names(*route_path) : std::nullopt;
  if (!captured) {  // an invalid path was reported already; nothing to check against
    out = *resource;
    return;
  }
  bool all_known = true;
  for (std::string_view name : *names) {
    if (std::find(captured->begin(), captured->end(), name) != captured->end()) continue;
    all_known = false;
    std::string message = "unknown parameter {" + std::string(name) + "}: the route's path " +
                          single_quoted(*route_path) + " captures ";
    if (captured->empty()) {
      message += "none";
    } else {
      for (std::size_t i = 0; i < captured->size(); ++i) {
        message += (i == 0 ? "{" : ", {") + std::string((*captured)[i]) + "}";
      }
    }
    reader.error(at, key, message);
  }
  if (all_known) out = *resource;
}

}  // namespace arbiter
