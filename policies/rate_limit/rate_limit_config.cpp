#include "policies/rate_limit/rate_limit_config.h"

#include <algorithm>

namespace arbiter {

namespace {

// A bucket is about 43 bytes, so these are sanity bounds.
constexpr std::uint64_t kMaxRateCount = 1'000'000'000;
constexpr std::uint64_t kMaxBurst = 1'000'000'000;

void read_limit(const TableReader& reader, const RouteContext& route, RateLimitConfig& limit) {
  reader.reject_unknown_keys({"name", "rate", "burst", "key", "methods", "max_keys"});
  if (auto name = reader.string("name")) {
    const toml::node& at = *reader.find("name");
    if (name->empty()) {
      reader.error(at, reader.key("name"), "a limit name cannot be empty; leave out 'name' for the default");
    } else if (!is_valid_limit_name(*name)) {
      reader.error(at, reader.key("name"),
                   "a limit name must be printable ASCII: clients receive it in the RateLimit fields");
    } else {
      limit.name = *name;
    }
  }
  bool rate_valid = false;
  if (const toml::node* node = reader.require("rate")) {
    std::string key = reader.key("rate");
    auto text = node->as_string();
    auto rate = text ? parse_rate(text->get()) : std::nullopt;
    if (node->is_integer()) {
      reader.error(*node, key, "expected a rate string; write the period too, e.g. \"" +
                                   std::to_string(node->as_integer()->get()) + "/s\"");
    } else if (!text) {
      reader.error(*node, key, type_mismatch("a rate string such as \"20/s\"", *node));
    } else if (!rate) {
      reader.error(*node, key, "rate must look like \"20/s\", \"100/m\" or \"1000/h\", got \"" + text->get() + "\"");
    } else if (rate->count == 0) {
      reader.error(*node, key, "a rate must allow at least 1 request, got \"" + text->get() + "\"");
    } else if (rate->count > kMaxRateCount) {
      reader.error(*node, key,
                   "at most " + std::to_string(kMaxRateCount) + " requests a period, got \"" + text->get() + "\"");
    } else {
      limit.count = rate->count;
      limit.per = rate->per;
      rate_valid = true;
    }
  }
  std::uint64_t max_burst = kMaxBurst;
  if (rate_valid) {
    max_burst = std::min(max_burst, BucketShape::max_burst(limit.count, limit.per));
    limit.burst = default_burst(limit.count, limit.per);
  }
  reader.integer("burst", limit.burst, 1, static_cast<std::int64_t>(max_burst));
  read_key(reader, limit.key_kind, limit.header);
  read_methods(reader, limit.methods);
  if (route.methods_valid && !route.methods.empty()) {
    for (const std::string& method : limit.methods) {
      if (std::find(route.methods.begin(), route.methods.end(), method) != route.methods.end()) continue;
      reader.error(*reader.find("methods"), reader.key("methods"),
                   "the route takes no " + method + " requests (only " + comma_list(route.methods) +
                       "), so this limit would never apply to them");
    }
  }
  reader.integer("max_keys", limit.max_keys, 1, kMaxLimitKeys);
}

}  // namespace

std::shared_ptr<const PolicyConfig> read_rate_limit_config(const PolicyKind& kind, const TableReader& route,
                                                           const RouteContext& context) {
  bool send_headers = true;
  route.boolean("rate_limit_headers", send_headers);
  const toml::node* node = route.find("limit");
  if (!node) return nullptr;
  std::string key = route.key("limit");
  const toml::array* array = node->as_array();
  if (!array) {
    route.error(*node, key,
                node->is_table() ? "write [[route.limit]] (an array of tables), not [route.limit]"
                                 : type_mismatch("an array of [[route.limit]] tables", *node));
    return nullptr;
  }
  if (array->empty()) {
    route.error(*node, key, "no limits; leave out 'limit' or add [[route.limit]] tables");
    return nullptr;
  }
  RateLimitPolicyConfig config;
  config.send_headers = send_headers;
  std::vector<const toml::node*> positions;  // where each limit's name (or table) is, for duplicates
  for (std::size_t i = 0; i < array->size(); ++i) {
    const toml::node& element = *array->get(i);
    std::string element_key = key + "[" + std::to_string(i) + "]";
    if (!element.is_table()) {
      route.error(element, element_key, type_mismatch("a table", element));
      continue;
    }
    TableReader reader = route.child(*element.as_table(), element_key);
    RateLimitConfig& limit = config.limits.emplace_back();
    read_limit(reader, context, limit);
    if (limit.name.empty()) limit.name = default_limit_name(context.name, i);
    const toml::node* name = reader.find("name");
    positions.push_back(name ? name : &element);
    for (std::size_t j = 0; j + 1 < config.limits.size(); ++j) {
      if (config.limits[j].name != limit.name) continue;
      reader.error(*positions.back(), name ? reader.key("name") : element_key,
                   "duplicate limit name " + single_quoted(limit.name) + "; the limit at line " +
                       std::to_string(positions[j]->source().begin.line) + " already has it");
      break;
    }
  }
  return std::make_shared<RateLimitConfigEntry>(kind, std::move(config));
}

void RateLimitConfigEntry::write_json(nlohmann::ordered_json& route) const {
  using Json = nlohmann::ordered_json;
  route["rate_limit_headers"] = settings().send_headers;
  Json limits = Json::array();
  for (const RateLimitConfig& limit : settings().limits) {
    limits.push_back(Json{{"name", limit.name},
                          {"rate", rate_text(limit.count, limit.per)},
                          {"burst", limit.burst},
                          {"key", key_name(limit.key_kind, limit.header)},
                          // null: every method, as leaving the key out of the file means
                          {"methods", limit.methods.empty() ? Json(nullptr) : Json(limit.methods)},
                          {"max_keys", limit.max_keys}});
  }
  route["limit"] = std::move(limits);
}

std::string RateLimitConfigEntry::summary() const {
  std::string limits;
  for (const RateLimitConfig& limit : settings().limits) {
    if (!limits.empty()) limits += "; ";
    limits += limit.name + " " + rate_text(limit.count, limit.per) + " burst " + std::to_string(limit.burst);
  }
  return "rate_limit(" + limits + ")";
}

}  // namespace arbiter
