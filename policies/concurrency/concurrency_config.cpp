#include "policies/concurrency/concurrency_config.h"

namespace arbiter {

namespace {

// A queue holds requests (connections), so these are sanity bounds.
constexpr std::int64_t kMaxInFlight = 1'000'000;
constexpr std::int64_t kMaxConcurrencyQueue = 1'000'000;

}  // namespace

std::shared_ptr<const PolicyConfig> read_concurrency_config(const PolicyKind& kind, const TableReader& route) {
  auto table = route.table("concurrency");
  if (!table) return nullptr;
  const TableReader& reader = *table;
  reader.reject_unknown_keys({"max_in_flight", "max_queue", "queue_timeout", "key", "max_keys"});
  ConcurrencyConfig concurrency;
  if (reader.require("max_in_flight")) reader.integer("max_in_flight", concurrency.max_in_flight, 1, kMaxInFlight);
  reader.integer("max_queue", concurrency.max_queue, 0, kMaxConcurrencyQueue);
  reader.duration("queue_timeout", concurrency.queue_timeout, kPositive);
  read_key(reader, concurrency.key, concurrency.header);
  reader.integer("max_keys", concurrency.max_keys, 1, kMaxLimitKeys);
  return std::make_shared<ConcurrencyConfigEntry>(kind, std::move(concurrency));
}

void ConcurrencyConfigEntry::write_json(nlohmann::ordered_json& route) const {
  const ConcurrencyConfig& concurrency = settings();
  route["concurrency"] = nlohmann::ordered_json{{"max_in_flight", concurrency.max_in_flight},
                                                {"max_queue", concurrency.max_queue},
                                                {"queue_timeout", duration_text(concurrency.queue_timeout)},
                                                {"key", key_name(concurrency.key, concurrency.header)},
                                                {"max_keys", concurrency.max_keys}};
}

std::string ConcurrencyConfigEntry::summary() const {
  const ConcurrencyConfig& concurrency = settings();
  std::string per_key;
  if (concurrency.key != KeyKind::Global) per_key = " per " + key_name(concurrency.key, concurrency.header);
  return "concurrency(" + std::to_string(concurrency.max_in_flight) + per_key + ", queue " +
         std::to_string(concurrency.max_queue) + ")";
}

}  // namespace arbiter
