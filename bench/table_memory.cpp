// Memory per entry of the shared policy tables: fills the ETag version store, the rate-limit
// bucket store or the lock store (one held lock a resource, each by a client of its own) with N keys and reports the growth of the resident set and of the
// heap per entry. One table per run, so the second does not reuse memory the first freed.
// `history` records N versions into the version-history store (N/20 resources, 20 versions
// each, written by PUTs with a request id and a client, 100-byte bodies) and reports the
// memory per version beyond its body.
// `feed` publishes N conflict events without a body into a conflict feed of capacity N (PUTs on
// N/100 resources, each with a request id, a client, both ETags and a small details object) and
// reports the memory per event.
//
//   build-bench/table_memory_bench etag|buckets|locks|history|feed [entries]

#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <string>

#include "policies/etag/etag.h"
#include "policies/store/memory_bucket_store.h"
#include "policies/store/memory_conflict_feed.h"
#include "policies/store/memory_history_store.h"
#include "policies/store/memory_lock_store.h"
#include "policies/store/memory_version_store.h"
#include "policies/rate_limit/token_bucket.h"

namespace {

long resident_kb() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

// Runs fill(), which builds a table of `entries` keys and reports how many it holds, and
// prints the memory growth per entry while the table is alive.
void measure(const char* name, std::size_t entries, const std::function<std::size_t(const std::function<void()>&)>& fill) {
  long rss_before = resident_kb();
  std::size_t heap_before = mallinfo2().uordblks;
  std::size_t held = fill([&] {
    long rss_after = resident_kb();
    std::size_t heap_after = mallinfo2().uordblks;
    std::printf("%-14s %9zu keys  RSS %6.1f bytes/entry  heap %6.1f bytes/entry\n", name, entries,
                (rss_after - rss_before) * 1024.0 / static_cast<double>(entries),
                static_cast<double>(heap_after - heap_before) / static_cast<double>(entries));
  });
  std::printf("%-14s table holds %zu of them\n", "", held);
}

}  // namespace

int main(int argc, char** argv) {
  std::string table = argc > 1 ? argv[1] : "";
  std::size_t entries = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 1000000;
  if (table != "etag" && table != "buckets" && table != "locks" && table != "history" &&
      table != "feed") {
    std::fprintf(stderr, "usage: table_memory_bench etag|buckets|locks|history|feed [entries]\n");
    return 2;
  }

  if (table == "etag") measure("etag entries", entries, [&](const std::function<void()>& report) {
    arbiter::MemoryVersionStore store(entries);
    for (std::size_t i = 0; i < entries; ++i) {
      std::string resource = "/accounts/" + std::to_string(i);
      store.put(resource, arbiter::mint_etag(resource));
    }
    report();
    return store.size();
  });

  if (table == "buckets") measure("rate buckets", entries, [&](const std::function<void()>& report) {
    arbiter::MemoryBucketStore store;
    auto shape = arbiter::BucketShape::make(20, std::chrono::seconds(1), 40, entries);
    std::uint64_t now = arbiter::monotonic_ns(arbiter::MonotonicClock::now());
    for (std::size_t i = 0; i < entries; ++i) {
      store.take("route/per-client", "10." + std::to_string(i >> 16) + "." + std::to_string((i >> 8) & 255) + "." +
                                         std::to_string(i & 255),
                 *shape, now);
    }
    report();
    return store.size();
  });

  if (table == "locks") measure("held locks", entries, [&](const std::function<void()>& report) {
    arbiter::MemoryLockStore store;
    arbiter::MonotonicTime now = arbiter::MonotonicClock::now();
    for (std::size_t i = 0; i < entries; ++i) {
      std::string resource = "/items/" + std::to_string(i);
      std::string client = "10." + std::to_string(i >> 16) + "." + std::to_string((i >> 8) & 255) + "." +
                           std::to_string(i & 255);
      arbiter::LockAsk ask;
      ask.kind = arbiter::LockAsk::Kind::Lock;
      ask.resource = resource;
      ask.route = "items";
      ask.client = client;
      ask.timeout = std::chrono::seconds(300);
      ask.now = now;
      ask.max_locks = entries;
      ask.max_locks_per_client = 100;
      store.ask_now(ask);
    }
    report();
    return store.size(now);
  });

  if (table == "history") {
    constexpr std::size_t kVersionsPerResource = 20;
    const std::string body(100, 'b');
    std::size_t resources = std::max<std::size_t>(1, entries / kVersionsPerResource);
    entries = resources * kVersionsPerResource;
    std::printf("history: %zu resources x %zu versions, %zu-byte bodies\n", resources,
                kVersionsPerResource, body.size());
    measure("versions", entries, [&](const std::function<void()>& report) {
      std::size_t heap_before = mallinfo2().uordblks;
      arbiter::MemoryHistoryStore store;
      arbiter::HistoryLimits limits;
      limits.keep = kVersionsPerResource;
      limits.max_bytes = std::size_t{1} << 40;
      limits.max_resources = resources;
      const auto start = std::chrono::system_clock::now();
      char etag[19];
      char request_id[33];
      for (std::size_t v = 0; v < kVersionsPerResource; ++v) {
        for (std::size_t r = 0; r < resources; ++r) {
          std::string resource = "/items/" + std::to_string(r);
          std::uint64_t n = v * resources + r;
          std::snprintf(etag, sizeof etag, "\"%016llx\"", static_cast<unsigned long long>(n * 0x9e3779b97f4a7c15ull));
          std::snprintf(request_id, sizeof request_id, "%016llx%016llx", static_cast<unsigned long long>(n),
                        static_cast<unsigned long long>(~n));
          arbiter::VersionInput input;
          input.route = "items";
          input.resource = resource;
          input.etag = etag;
          input.body = body;
          input.content_type = "application/json";
          input.time = start + std::chrono::milliseconds(n);
          input.author = arbiter::VersionAuthor{"PUT", request_id, "127.0.0.1", std::nullopt};
          store.record(input, limits);
        }
      }
      report();
      std::printf("%-14s heap %6.1f bytes/version beyond its body (target: at most 96)\n", "",
                  static_cast<double>(mallinfo2().uordblks - heap_before) / static_cast<double>(entries) -
                      static_cast<double>(body.size()));
      return static_cast<std::size_t>(store.stats("items").versions);
    });
  }

  if (table == "feed") measure("feed events", entries, [&](const std::function<void()>& report) {
    arbiter::FeedLimits limits;
    limits.capacity = entries;
    arbiter::MemoryConflictFeed feed(limits);
    const auto start = std::chrono::system_clock::now();
    char etag[19];
    char request_id[33];
    for (std::size_t i = 0; i < entries; ++i) {
      arbiter::FeedEvent event;
      event.type = arbiter::kFeedConflict;
      event.time = start + std::chrono::milliseconds(i);
      event.route = "items";
      event.resource = "/items/" + std::to_string(i / 100);
      std::snprintf(request_id, sizeof request_id, "%016llx%016llx", static_cast<unsigned long long>(i),
                    static_cast<unsigned long long>(~i));
      event.request_id = request_id;
      event.client = "10.0." + std::to_string((i >> 8) & 255) + "." + std::to_string(i & 255);
      event.method = "PUT";
      std::snprintf(etag, sizeof etag, "\"%016llx\"", static_cast<unsigned long long>(i * 0x9e3779b97f4a7c15ull));
      event.your_etag = etag;
      std::snprintf(etag, sizeof etag, "\"%016llx\"", static_cast<unsigned long long>(~i * 0x9e3779b97f4a7c15ull));
      event.current_etag = etag;
      event.details = R"({"precondition":"If-Match"})";
      feed.publish(std::move(event));
    }
    report();
    return feed.size();
  });
  return 0;
}
