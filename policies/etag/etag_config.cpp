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

}  // namespace

std::shared_ptr<const PolicyConfig> read_etag_config(const PolicyKind& kind, const TableReader& route,
                                                     const RouteContext& context) {
  auto table = route.table("etag");
  if (!table) return nullptr;
  const TableReader& reader = *table;
  reader.reject_unknown_keys({"conflict_status", "require_if_match", "verify", "source", "resource", "max_entries",
                              "max_body_bytes", "max_queue", "queue_timeout"});
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
  if (auto verify = reader.string("verify")) {
    if (*verify == "upstream" || *verify == "cache") {
      etag.verify = *verify == "cache" ? EtagPolicyConfig::Verify::Cache : EtagPolicyConfig::Verify::Upstream;
    } else {
      reader.error(*reader.find("verify"), reader.key("verify"),
                   "expected \"upstream\" or \"cache\", got \"" + *verify + "\"");
    }
  }
  if (auto source = reader.string("source")) read_source(reader, *source, etag);
  read_resource_template(reader, context.path, etag.resource);
  reader.integer("max_entries", etag.max_entries, 1, kMaxEtagEntries);
  reader.size("max_body_bytes", etag.max_body_bytes, 1, kMaxEtagBodyBytes);
  reader.integer("max_queue", etag.max_queue, 0, kMaxEtagQueue);
  reader.duration("queue_timeout", etag.queue_timeout, kPositive);
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
                       {"queue_timeout", duration_text(etag.queue_timeout)}};
}

std::string EtagConfig::summary() const { return "etag(verify=" + std::string(verify_name(settings().verify)) + ")"; }

}  // namespace arbiter
