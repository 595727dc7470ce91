// Microbenchmarks (Google Benchmark) for the decisions Arbiter makes on every request: the
// token-bucket arithmetic and the bucket store, the ETag table, XXH3-128 tag minting, route
// matching and the JSON three-way merge. Setup (filling tables, building routes, making bodies,
// documents) is outside the timed loops.
//
//   build-bench/micro_bench [--benchmark_min_time=0.1] [--benchmark_out=FILE --benchmark_out_format=json]

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "policies/etag/etag.h"
#include "policies/merge/json_merge.h"
#include "policies/rate_limit/rate_limit_policy.h"
#include "policies/rate_limit/token_bucket.h"
#include "policies/store/memory_bucket_store.h"
#include "policies/store/memory_slot_table.h"
#include "policies/store/memory_version_store.h"
#include "policies/store/memory_write_queues.h"
#include "proxy/config/config.h"
#include "proxy/exchange/router.h"

namespace {

// A limit that never refuses in these loops: 100 000 000/s with a burst as large as allowed.
arbiter::BucketShape generous_shape(std::size_t max_keys) {
  auto burst = arbiter::BucketShape::max_burst(100'000'000, std::chrono::seconds(1));
  return *arbiter::BucketShape::make(100'000'000, std::chrono::seconds(1), burst, max_keys);
}

// A completion that keeps the last result, for calls through the store interfaces (the path the
// policies take; the memory stores complete before returning).
template <typename T>
struct Keep {
  T value{};
  void operator()(arbiter::StoreResult<T>&& result) { value = std::move(result.value); }
};

std::string client_address(std::size_t i) {
  return "10." + std::to_string(i >> 16) + "." + std::to_string((i >> 8) & 255) + "." + std::to_string(i & 255);
}

// ---- token bucket -------------------------------------------------------------------------

void BM_TokenBucketTake(benchmark::State& state) {
  auto shape = generous_shape(arbiter::BucketShape::kDefaultMaxKeys);
  std::uint64_t now = arbiter::monotonic_ns(arbiter::MonotonicClock::now());
  arbiter::BucketState bucket = arbiter::full_bucket(shape, now);
  for (auto _ : state) {
    now += 10;  // 10 ns between requests: refills exactly what it takes
    auto result = arbiter::take_token(bucket, shape, now);
    benchmark::DoNotOptimize(result);
  }
}
BENCHMARK(BM_TokenBucketTake);

void BM_BucketStoreTakeOneKey(benchmark::State& state) {
  arbiter::MemoryBucketStore memory;
  arbiter::BucketStore& store = memory;
  auto shape = generous_shape(arbiter::BucketShape::kDefaultMaxKeys);
  std::uint64_t now = arbiter::monotonic_ns(arbiter::MonotonicClock::now());
  const std::string key = "10.0.0.1";
  Keep<arbiter::TakeResult> result;
  store.take("route/per-client", key, shape, now, result);  // the bucket exists before timing
  for (auto _ : state) {
    now += 10;
    auto call = store.take("route/per-client", key, shape, now, result);
    benchmark::DoNotOptimize(call);
    benchmark::DoNotOptimize(result.value);
  }
}
BENCHMARK(BM_BucketStoreTakeOneKey);

void BM_BucketStoreTake100kKeys(benchmark::State& state) {
  constexpr std::size_t kKeys = 100'000;
  arbiter::MemoryBucketStore memory;
  arbiter::BucketStore& store = memory;
  Keep<arbiter::TakeResult> result;
  // Room for twice the keys: a shard holds max_keys / shards, and the keys do not spread
  // exactly evenly, so with max_keys = kKeys a few would be evicted and the loop would time
  // evictions too.
  auto shape = generous_shape(2 * kKeys);
  std::uint64_t now = arbiter::monotonic_ns(arbiter::MonotonicClock::now());
  std::vector<std::string> keys;
  keys.reserve(kKeys);
  for (std::size_t i = 0; i < kKeys; ++i) keys.push_back(client_address(i));
  for (const auto& key : keys) store.take("route/per-client", key, shape, now, result);
  // A fixed pseudo-random walk over the keys, so that consecutive takes hit unrelated slots.
  std::size_t i = 0;
  for (auto _ : state) {
    now += 10;
    i = (i + 7919) % kKeys;
    auto call = store.take("route/per-client", keys[i], shape, now, result);
    benchmark::DoNotOptimize(call);
    benchmark::DoNotOptimize(result.value);
  }
  state.counters["buckets"] = static_cast<double>(store.size());
}
BENCHMARK(BM_BucketStoreTake100kKeys);

// A route's rate-limit policy deciding a request: the key, the store's take, the counters, and
// the request's state (kept for the RateLimit fields when send_headers).
void rate_limit_policy_on_request(benchmark::State& state, bool send_headers) {
  arbiter::RateLimitConfig limit;
  limit.name = "per-client";
  limit.count = 100'000'000;
  limit.burst = arbiter::BucketShape::max_burst(100'000'000, std::chrono::seconds(1));
  arbiter::RateLimitPolicy policy("route", arbiter::RateLimitPolicyConfig{{limit}, send_headers},
                                  std::make_shared<arbiter::MemoryBucketStore>());
  arbiter::HeaderList headers;
  arbiter::MonotonicTime now = arbiter::MonotonicClock::now();
  arbiter::RequestView request{"GET", "/items/1", "/items/1", "", headers, "10.0.0.1", "route", {}, "id", now, nullptr};
  for (auto _ : state) {
    request.now += std::chrono::nanoseconds(10);
    std::unique_ptr<arbiter::ExchangeState> exchange;
    auto decision = policy.on_request(request, exchange);
    benchmark::DoNotOptimize(decision);
  }
}
void BM_RateLimitPolicyOnRequest(benchmark::State& state) { rate_limit_policy_on_request(state, true); }
BENCHMARK(BM_RateLimitPolicyOnRequest);
// rate_limit_headers = false: nothing is kept past the decision.
void BM_RateLimitPolicyOnRequestWithoutFields(benchmark::State& state) { rate_limit_policy_on_request(state, false); }
BENCHMARK(BM_RateLimitPolicyOnRequestWithoutFields);

// ---- in-flight slots and write turns ------------------------------------------------------

// A slot taken and given back on a key nobody else holds: the concurrency policy's whole cost.
void BM_SlotTableAcquireRelease(benchmark::State& state) {
  arbiter::MemorySlotTable memory(1000);
  arbiter::SlotTable& table = memory;
  const std::string key = "10.0.0.1";
  for (auto _ : state) {
    Keep<arbiter::SlotTable::Claim> claim;
    auto call = table.acquire(key, 1, 0, nullptr, claim);
    benchmark::DoNotOptimize(call);
    benchmark::DoNotOptimize(claim.value);
  }
}
BENCHMARK(BM_SlotTableAcquireRelease);

// A write's turn on a resource nobody else writes: taken at once and given back.
void BM_WriteTurnAcquireRelease(benchmark::State& state) {
  arbiter::MemoryWriteQueues memory;
  arbiter::WriteTurnStore& turns = memory;
  const std::string resource = "/accounts/1";
  const arbiter::MonotonicTime now = arbiter::MonotonicClock::now();
  for (auto _ : state) {
    Keep<std::unique_ptr<arbiter::WriteTurn>> turn;
    auto call = turns.acquire(resource, std::chrono::seconds(103), now, 64, nullptr, turn);
    benchmark::DoNotOptimize(call);
    benchmark::DoNotOptimize(turn.value);
  }
}
BENCHMARK(BM_WriteTurnAcquireRelease);

// ---- ETag table ---------------------------------------------------------------------------

constexpr std::size_t kTableEntries = 1'000'000;

// One table of 1M entries and its keys and tags, built on first use and shared by the ETag
// table benchmarks (building it takes about a second). Its bound is twice the entries, for the
// reason given for the buckets above: every lookup finds its entry and no put evicts.
struct EtagTable {
  arbiter::MemoryVersionStore store{2 * kTableEntries};
  arbiter::VersionStore& versions() { return store; }
  std::vector<std::string> resources;
  std::vector<std::string> tags;
  EtagTable() {
    resources.reserve(kTableEntries);
    tags.reserve(kTableEntries);
    for (std::size_t i = 0; i < kTableEntries; ++i) {
      resources.push_back("/accounts/" + std::to_string(i));
      tags.push_back(arbiter::mint_etag(resources.back()));
      store.put(resources.back(), tags.back());
    }
  }
};

EtagTable& etag_table() {
  static EtagTable table;
  return table;
}

// Runs operation(table, i) for i over the table's entries in a scattered order (stride 7919),
// so that lookups miss the cache as a busy table's would.
template <class Operation>
void over_etag_table(benchmark::State& state, Operation operation) {
  auto& table = etag_table();
  std::size_t i = 0;
  for (auto _ : state) {
    i = (i + 7919) % kTableEntries;
    operation(table, i);
  }
  state.counters["entries"] = static_cast<double>(table.store.size());
}

void BM_VersionStoreGet(benchmark::State& state) {
  over_etag_table(state, [](EtagTable& table, std::size_t i) {
    Keep<std::optional<std::string>> tag;
    auto call = table.versions().get(table.resources[i], tag);
    benchmark::DoNotOptimize(call);
    benchmark::DoNotOptimize(tag.value);
  });
}
BENCHMARK(BM_VersionStoreGet);

void BM_VersionStorePut(benchmark::State& state) {
  // An existing resource gets another resource's tag: a write that replaces the entry's tag.
  over_etag_table(state, [](EtagTable& table, std::size_t i) {
    Keep<arbiter::Done> done;
    auto call = table.versions().put(table.resources[i], table.tags[(i + 1) % kTableEntries], done);
    benchmark::DoNotOptimize(call);
  });
}
BENCHMARK(BM_VersionStorePut);

void BM_VersionStoreSequence(benchmark::State& state) {
  over_etag_table(state, [](EtagTable& table, std::size_t i) {
    Keep<std::uint64_t> sequence;
    auto call = table.versions().sequence(table.resources[i], sequence);
    benchmark::DoNotOptimize(call);
    benchmark::DoNotOptimize(sequence.value);
  });
}
BENCHMARK(BM_VersionStoreSequence);

// ---- XXH3-128 minting ---------------------------------------------------------------------

void BM_MintEtag(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  std::string body(size, '\0');
  for (std::size_t i = 0; i < size; ++i) body[i] = static_cast<char>("{\"id\":1,\"name\":\"x\"}"[i % 20]);
  for (auto _ : state) {
    auto tag = arbiter::mint_etag(body);
    benchmark::DoNotOptimize(tag);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(size));
}
BENCHMARK(BM_MintEtag)->Arg(100)->Arg(1024)->Arg(16 * 1024)->Arg(256 * 1024);

// ---- route matching -----------------------------------------------------------------------

std::vector<arbiter::RouteConfig> hundred_routes() {
  std::vector<arbiter::RouteConfig> routes;
  for (int i = 0; i < 100; ++i) {
    arbiter::RouteConfig route;
    route.name = "route" + std::to_string(i);
    route.path = "/service" + std::to_string(i) + "/items/{id}";
    route.methods = {"GET", "PUT"};
    route.upstream = "backend";
    routes.push_back(std::move(route));
  }
  return routes;
}

void BM_RouterMatchLast(benchmark::State& state) {
  arbiter::Router router(hundred_routes());
  arbiter::RouteMatch match;
  for (auto _ : state) {
    match.params.clear();
    auto outcome = router.match("GET", "/service99/items/42", match);
    benchmark::DoNotOptimize(outcome);
    benchmark::DoNotOptimize(match);
  }
  if (match.route_index != 99) state.SkipWithError("did not match the last route");
}
BENCHMARK(BM_RouterMatchLast);

void BM_RouterMiss(benchmark::State& state) {
  arbiter::Router router(hundred_routes());
  arbiter::RouteMatch match;
  for (auto _ : state) {
    match.params.clear();
    auto outcome = router.match("GET", "/nowhere/items/42", match);
    benchmark::DoNotOptimize(outcome);
  }
}
BENCHMARK(BM_RouterMiss);

// ---- JSON three-way merge (on_conflict = "merge") -------------------------------------------

// An order of about 10 KiB: nested objects (customer, address, shipping, audit) and 56 lines
// keyed by "id", as [route.etag] merge_keys = { "/lines" = "id" } would name them.
nlohmann::json ten_kib_order() {
  nlohmann::json order = {
      {"id", 1001},
      {"status", "open"},
      {"customer", {{"name", "Ada Lovelace"}, {"email", "ada@example.com"}, {"tier", "gold"},
                    {"address", {{"street", "12 Analytical Row"}, {"city", "London"}, {"zip", "N1 7AA"}}}}},
      {"shipping", {{"method", "express"}, {"carrier", "royal-mail"}, {"insured", true}, {"notes", nullptr}}},
      {"audit", {{"created_by", "importer"}, {"created_at", "2026-11-30T09:00:00Z"}, {"revision", 17}}},
  };
  nlohmann::json lines = nlohmann::json::array();
  for (int i = 0; i < 56; ++i) {
    lines.push_back({{"id", "line-" + std::to_string(i)},
                     {"sku", "SKU-" + std::to_string(100000 + i)},
                     {"description", "replacement part number " + std::to_string(i) + " for the legacy unit"},
                     {"quantity", i % 7 + 1},
                     {"price", {{"amount", 1999 + i}, {"currency", "EUR"}}},
                     {"tags", {"spare", "boxed"}}});
  }
  order["lines"] = std::move(lines);
  return order;
}

void BM_ThreeWayMerge10KiB(benchmark::State& state) {
  const arbiter::MergeKeys keys{{"/lines", "id"}};
  const nlohmann::json base = ten_kib_order();
  nlohmann::json current = base;  // 5 fields changed by another client
  current["status"] = "packed";
  current["customer"]["address"]["zip"] = "N1 7AB";
  current["audit"]["revision"] = 18;
  current["lines"][3]["quantity"] = 9;
  current["lines"][30]["price"]["amount"] = 1500;
  nlohmann::json yours = base;  // 5 other fields changed by this client
  yours["customer"]["email"] = "ada@analytical.example";
  yours["shipping"]["method"] = "standard";
  yours["shipping"]["notes"] = "leave at the door";
  yours["lines"][3]["description"] = "replacement part, revised";
  yours["lines"][12]["tags"] = nlohmann::json::array({"spare"});
  state.counters["document_bytes"] = static_cast<double>(base.dump().size());
  bool merged = true;
  for (auto _ : state) {
    auto outcome = arbiter::three_way_merge(base, current, yours, keys);
    merged = merged && outcome.merged;
    benchmark::DoNotOptimize(outcome);
  }
  if (!merged) state.SkipWithError("the disjoint edits did not merge");
}
BENCHMARK(BM_ThreeWayMerge10KiB)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
