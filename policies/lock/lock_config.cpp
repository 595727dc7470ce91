#include "policies/lock/lock_config.h"

#include "policies/resource_key.h"

namespace arbiter {

namespace {

// Sanity bounds: a lock is a lease, never infinite; a day covers the longest edit.
constexpr Duration kLongestTimeout = std::chrono::hours(24);
constexpr std::int64_t kMostLocks = 100'000'000;
constexpr std::int64_t kMostWaiters = 1'000'000;

std::chrono::seconds whole_seconds(Duration duration) {
  return std::chrono::duration_cast<std::chrono::seconds>(duration);
}

}  // namespace

std::shared_ptr<const PolicyConfig> read_lock_config(const PolicyKind& kind, const TableReader& route,
                                                     const RouteContext& context) {
  auto table = route.table("lock");
  if (!table) return nullptr;
  const TableReader& reader = *table;
  reader.reject_unknown_keys({"default_timeout", "max_timeout", "wait", "max_waiters", "require", "block_reads",
                              "fence_header", "max_locks", "max_locks_per_client", "key", "resource"});
  LockSettings lock;
  Duration default_timeout = lock.default_timeout, max_timeout = lock.max_timeout, wait = lock.wait;
  reader.duration("default_timeout", default_timeout, std::chrono::seconds(1));
  reader.duration("max_timeout", max_timeout, std::chrono::seconds(1));
  reader.duration("wait", wait, kNoMinimum);
  for (auto [name, value] : {std::pair{"default_timeout", &default_timeout}, std::pair{"max_timeout", &max_timeout}}) {
    if (*value > kLongestTimeout) {
      reader.error(*reader.find(name), reader.key(name), "at most 24h: a lock is a lease that must end");
    } else if (*value % std::chrono::seconds(1) != Duration(0)) {
      reader.error(*reader.find(name), reader.key(name), "a whole number of seconds (Timeout: Second-N counts seconds)");
    }
  }
  if (default_timeout > max_timeout) {  // one of them was set, or the defaults would hold
    std::string_view name = reader.find("default_timeout") ? "default_timeout" : "max_timeout";
    reader.error(*reader.find(name), reader.key(name),
                 "default_timeout (" + duration_text(default_timeout) + ") is longer than max_timeout (" +
                     duration_text(max_timeout) + ")");
  }
  lock.default_timeout = whole_seconds(default_timeout);
  lock.max_timeout = whole_seconds(max_timeout);
  lock.wait = wait;
  reader.integer("max_waiters", lock.max_waiters, 0, kMostWaiters);
  reader.boolean("require", lock.require);
  reader.boolean("block_reads", lock.block_reads);
  if (auto fence = reader.string("fence_header")) {
    if (!fence->empty() && !is_token(*fence)) {
      reader.error(*reader.find("fence_header"), reader.key("fence_header"),
                   "not a field name (RFC 9110 section 5.1); \"\" sends no fence");
    } else {
      lock.fence_header = *fence;
    }
  }
  reader.integer("max_locks", lock.max_locks, 1, kMostLocks);
  reader.integer("max_locks_per_client", lock.max_locks_per_client, 1, kMostLocks);
  read_key(reader, lock.key, lock.header);
  read_resource_template(reader, context.path, lock.resource);
  // One resource, one identity: the ETag policy's template is the lock's too.
  if (auto etag = route.contents().get_as<toml::table>("etag")) {
    if (auto etag_resource = etag->get_as<std::string>("resource")) {
      if (reader.find("resource") == nullptr) {
        lock.resource = etag_resource->get();
      } else if (lock.resource != etag_resource->get()) {
        reader.error(*reader.find("resource"), reader.key("resource"),
                     "differs from [route.etag] resource \"" + etag_resource->get() +
                         "\": locks and versions must key the same resource; leave one out");
      }
    }
  }
  return std::make_shared<LockConfig>(kind, std::move(lock));
}

void LockConfig::write_json(nlohmann::ordered_json& route) const {
  const LockSettings& lock = settings();
  using Json = nlohmann::ordered_json;
  route["lock"] = Json{{"default_timeout", duration_text(lock.default_timeout)},
                       {"max_timeout", duration_text(lock.max_timeout)},
                       {"wait", duration_text(lock.wait)},
                       {"max_waiters", lock.max_waiters},
                       {"require", lock.require},
                       {"block_reads", lock.block_reads},
                       {"fence_header", lock.fence_header},
                       {"max_locks", lock.max_locks},
                       {"max_locks_per_client", lock.max_locks_per_client},
                       {"key", key_name(lock.key, lock.header)},
                       {"resource", lock.resource.empty() ? Json(nullptr) : Json(lock.resource)}};
}

std::string LockConfig::summary() const {
  const LockSettings& lock = settings();
  std::string text = "lock(" + duration_text(lock.default_timeout);
  if (lock.wait.count() > 0) text += ", wait " + duration_text(lock.wait);
  if (lock.require) text += ", required";
  return text + ")";
}

}  // namespace arbiter
