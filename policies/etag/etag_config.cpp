#include "policies/etag/etag_config.h"

#include "policies/resource_key.h"

#include <algorithm>

namespace arbiter {

namespace {

// The table is memory (about 91 bytes an entry), and a body up to max_body_bytes is buffered
// per exchange, so both stay within what a process can hold.
constexpr std::int64_t kMaxEtagEntries = 1'000'000'000;
constexpr std::uint64_t kMaxEtagBodyBytes = 1ull << 30;
constexpr std::int64_t kMaxEtagQueue = 1'000'000;
constexpr std::int64_t kMaxHistoryKeep = 1'000'000;
constexpr std::uint64_t kMaxHistoryBytes = 1ull << 40;

void read_source(const TableReader& reader, const std::string& source, EtagPolicyConfig& etag) {
  const toml::node& at = *reader.find("source");
  std::string key = reader.key("source");
  constexpr std::string_view kJsonPrefix = "json:";
  if (source == "auto" || source == "hash") {
    etag.source = source == "auto" ? EtagPolicyConfig::Source::Auto : EtagPolicyConfig::Source::Hash;
  } else if (!std::string_view(source).starts_with(kJsonPrefix)) {
    reader.error(at, key, "expected \"auto\", \"hash\" or \"json:/POINTER\", got \"" + source + "\"");
  } else if (std::string pointer = source.substr(kJsonPrefix.size()); pointer.empty()) {
    reader.error(at, key, "no JSON pointer after \"json:\"; name the version field, e.g. \"json:/version\"");
  } else if (!is_valid_json_pointer(pointer)) {
    reader.error(at, key,
                 "invalid JSON pointer \"" + pointer +
                     "\"; write '/' before each key, ~0 for '~' and ~1 for '/', e.g. \"json:/meta/version\"");
  } else {
    etag.source = EtagPolicyConfig::Source::JsonPointer;
    etag.json_pointer = std::move(pointer);
  }
}

// merge_keys = { "/lines" = "id" }: each key a JSON pointer to an array, each value the member
// that names its elements.
void read_merge_keys(const TableReader& reader, EtagPolicyConfig& etag) {
  const toml::node* node = reader.find("merge_keys");
  if (node == nullptr) return;
  const toml::table* table = node->as_table();
  if (table == nullptr) {
    reader.error(*node, reader.key("merge_keys"),
                 type_mismatch("a table of array pointers to key members, e.g. { \"/lines\" = \"id\" }", *node));
    return;
  }
  for (const auto& [pointer, member] : *table) {
    std::string key = reader.key("merge_keys") + "." + std::string(pointer.str());
    std::string text(pointer.str());
    if (text.empty() || !is_valid_json_pointer(text)) {
      reader.error(member, key, "invalid JSON pointer \"" + text + "\"; write the array's pointer, e.g. \"/lines\"");
    } else if (const auto* name = member.as_string(); name == nullptr || name->get().empty()) {
      reader.error(member, key, "expected the member naming the array's elements, e.g. \"id\"");
    } else {
      etag.merge_keys.emplace(std::move(text), name->get());
    }
  }
}

// [route.history]: read here, since the ETag policy records the versions it sees.
void read_history(const TableReader& route, EtagPolicyConfig& etag) {
  auto table = route.table("history");
  if (!table) return;
  const TableReader& reader = *table;
  reader.reject_unknown_keys({"keep", "max_bytes", "max_version_bytes", "max_resources", "client_key"});
  HistoryConfig history;
  reader.integer("keep", history.limits.keep, 1, kMaxHistoryKeep);
  reader.size("max_bytes", history.limits.max_bytes, 1, kMaxHistoryBytes);
  reader.size("max_version_bytes", history.limits.max_version_bytes, 0, kMaxHistoryBytes);
  reader.integer("max_resources", history.limits.max_resources, 1, kMaxEtagEntries);
  read_key(reader, history.client_key, history.client_header, "client_key");
  // The fence the lock policy adds to the holder's writes, recorded with the versions they make.
  if (auto lock = route.contents().get("lock"); lock != nullptr && lock->is_table()) {
    const toml::node* fence = lock->as_table()->get("fence_header");
    history.fence_header = fence != nullptr && fence->is_string() ? fence->as_string()->get() : "Arbiter-Fence";
  }
  etag.history = std::move(history);
}

}  // namespace

std::shared_ptr<const PolicyConfig> read_etag_config(const PolicyKind& kind, const TableReader& route,
                                                     const RouteContext& context) {
  auto table = route.table("etag");
  if (!table) {
    if (const toml::node* history = route.find("history")) {
      route.error(*history, route.key("history"),
                  "history is recorded by the ETag policy: add [route.etag] to this route (or remove [route.history])");
    }
    return nullptr;
  }
  const TableReader& reader = *table;
  reader.reject_unknown_keys({"conflict_status", "require_if_match", "verify", "source", "resource", "max_entries",
                              "max_body_bytes", "max_queue", "queue_timeout", "on_conflict", "merge_keys", "patch",
                              "write_response"});
  EtagPolicyConfig etag;
  if (const toml::node* status = reader.find("conflict_status")) {
    auto number = status->as_integer();
    if (number && number->get() != 409 && number->get() != 412) {
      reader.error(*status, reader.key("conflict_status"),
                   "must be 409 (Conflict) or 412 (Precondition Failed), got " + std::to_string(number->get()));
    } else {
      reader.integer("conflict_status", etag.conflict_status, 409, 412);
    }
  }
  reader.boolean("require_if_match", etag.require_if_match);
  reader.choice("verify", etag.verify, {"upstream", "cache"});
  if (auto source = reader.string("source")) read_source(reader, *source, etag);
  read_resource_template(reader, context.path, etag.resource);
  reader.integer("max_entries", etag.max_entries, 1, kMaxEtagEntries);
  reader.size("max_body_bytes", etag.max_body_bytes, 1, kMaxEtagBodyBytes);
  reader.integer("max_queue", etag.max_queue, 0, kMaxEtagQueue);
  reader.duration("queue_timeout", etag.queue_timeout, kPositive);
  reader.choice("on_conflict", etag.on_conflict, {"reject", "merge"});
  read_merge_keys(reader, etag);
  reader.choice("patch", etag.patch, {"forward", "apply"});
  reader.choice("write_response", etag.write_response, {"status", "representation"});
  read_history(route, etag);
  etag.control_prefix = std::string(context.control_prefix);
  if (etag.on_conflict == EtagPolicyConfig::OnConflict::Merge && !etag.history) {
    reader.error(*reader.find("on_conflict"), reader.key("on_conflict"),
                 "a merge needs the version the client started from: add [route.history] to this route");
  }
  if (context.upstream_timeouts) {
    etag.turn_lease = write_turn_lease(context.upstream_timeouts->connect, context.upstream_timeouts->response);
  }
  return std::make_shared<EtagConfig>(kind, std::move(etag));
}

void EtagConfig::write_json(nlohmann::ordered_json& route) const {
  using Json = nlohmann::ordered_json;
  const EtagPolicyConfig& etag = settings();
  route["etag"] = Json{{"conflict_status", etag.conflict_status},
                       {"require_if_match", etag.require_if_match},
                       {"verify", verify_name(etag.verify)},
                       {"source", source_name(etag)},
                       {"resource", etag.resource.empty() ? Json(nullptr) : Json(etag.resource)},
                       {"max_entries", etag.max_entries},
                       {"max_body_bytes", etag.max_body_bytes},
                       {"max_queue", etag.max_queue},
                       {"queue_timeout", duration_text(etag.queue_timeout)},
                       {"on_conflict", etag.on_conflict == EtagPolicyConfig::OnConflict::Merge ? "merge" : "reject"},
                       {"merge_keys", Json(etag.merge_keys)},
                       {"patch", etag.patch == EtagPolicyConfig::Patch::Apply ? "apply" : "forward"},
                       {"write_response", etag.write_response == EtagPolicyConfig::WriteResponse::Representation
                                              ? "representation"
                                              : "status"}};
  if (etag.history) {
    const HistoryConfig& history = *etag.history;
    route["history"] = Json{{"keep", history.limits.keep},
                            {"max_bytes", history.limits.max_bytes},
                            {"max_version_bytes", history.limits.max_version_bytes},
                            {"max_resources", history.limits.max_resources},
                            {"client_key", key_name(history.client_key, history.client_header)}};
  }
}

std::string EtagConfig::summary() const {
  const EtagPolicyConfig& etag = settings();
  std::string text = "etag(verify=" + std::string(verify_name(etag.verify));
  if (etag.on_conflict == EtagPolicyConfig::OnConflict::Merge) text += ", merge";
  if (etag.patch == EtagPolicyConfig::Patch::Apply) text += ", patch=apply";
  if (etag.write_response == EtagPolicyConfig::WriteResponse::Representation) text += ", write_response=representation";
  if (etag.history) text += ", history=" + std::to_string(etag.history->limits.keep);
  return text + ")";
}

}  // namespace arbiter
