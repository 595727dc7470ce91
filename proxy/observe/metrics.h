#pragma once
// What GET /metrics reports: request metrics recorded on the data path, process counters, and
// the policies' own counters, in the Prometheus text exposition format (version 0.0.4).
//
// Recording: each worker thread records into its own MetricsShard (thread_metrics()), so that
// workers never write to the same memory. A shard's mutex is taken by its own thread on every
// record and, besides, only by a scrape summing the shards; it is therefore uncontended except
// for the moment a scrape copies that shard. Once a route has been seen, recording allocates
// nothing: methods fall into a fixed set of labels and statuses into five classes, so a client
// cannot create series by sending made-up methods or statuses.
//
// Process counters (reloads) are atomics anyone may increment, from any thread:
//
//   process_metrics().reloads_succeeded.fetch_add(1, std::memory_order_relaxed);
//   process_metrics().reloads_failed.fetch_add(1, std::memory_order_relaxed);
//
// Request counters only grow for the life of the process. The policies' counters are read from
// the Runtime being scraped, so they are those of the policy objects that Runtime holds: a
// reload that changes a route's policy configuration makes a new policy, counting from zero
// (which Prometheus reads as a counter reset).

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace arbiter {

class Runtime;

// ---- Labels of the request metrics ----

// The methods that get series of their own; any other is counted as "other".
enum class MethodLabel : std::uint8_t { Get, Head, Post, Put, Patch, Delete, Options, Other };
inline constexpr std::size_t kMethodLabelCount = 8;
MethodLabel method_label(std::string_view method) noexcept;
std::string_view method_label_name(MethodLabel label) noexcept;  // "GET", ..., "other"

// "1xx".."5xx" are classes 0..4. A status outside 100..599 (an upstream may send any three
// digits) is counted in the nearest class rather than given a series of its own.
inline constexpr std::size_t kStatusClassCount = 5;
std::size_t status_class(int status) noexcept;
std::string_view status_class_name(std::size_t index) noexcept;

// Upper bounds, in seconds, of the upstream latency histogram's buckets (Prometheus's
// defaults with 1ms and 2.5ms added below, since a backend on the same host answers in
// under 5ms); the +Inf bucket comes after them.
inline constexpr std::array<double, 13> kLatencyBounds = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                          0.25,  0.5,    1,     2.5,  5,     10};

// ---- Recording ----

// One route's request metrics (in one shard, or summed over all of them).
struct RouteMetrics {
  std::array<std::array<std::uint64_t, kStatusClassCount>, kMethodLabelCount> requests{};
  // Observations per bucket, not cumulative: [i] counts values in (bound[i-1], bound[i]], the
  // last one those above every bound.
  std::array<std::uint64_t, kLatencyBounds.size() + 1> latency_buckets{};
  double latency_sum = 0;
  std::uint64_t latency_count = 0;

  void add(const RouteMetrics& other) noexcept;
};

// The sum of every shard at one moment (each shard is read under its lock in turn).
struct MetricsSnapshot {
  std::map<std::string, RouteMetrics, std::less<>> routes;  // by route name; "" = no route matched
  std::int64_t open_connections = 0;
};

// alignas: shards of different workers never share a cache line.
class alignas(64) MetricsShard {
 public:
  // An exchange has ended. route: "" when no route matched. upstream_seconds: from the first
  // connection attempt to the upstream's response head; negative when no upstream answered.
  void record_exchange(std::string_view route, std::string_view method, int status, double upstream_seconds);
  // Client connections on the proxy listeners; opened and closed on the shard's own thread.
  void connection_opened() noexcept { open_connections_.fetch_add(1, std::memory_order_relaxed); }
  void connection_closed() noexcept { open_connections_.fetch_sub(1, std::memory_order_relaxed); }

  void add_to(MetricsSnapshot& snapshot) const;

 private:
  // Looks a route up by a string_view, so that a route already seen costs no allocation.
  struct NameHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view name) const noexcept { return std::hash<std::string_view>{}(name); }
  };

  mutable std::mutex mutex_;
  std::unordered_map<std::string, RouteMetrics, NameHash, std::equal_to<>> routes_;  // guarded by mutex_
  std::atomic<std::int64_t> open_connections_{0};
};

// Owns the shards; a shard lives as long as its registry, so what a thread recorded is still
// counted after the thread ends.
class MetricsRegistry {
 public:
  MetricsShard& add_shard();
  MetricsSnapshot snapshot() const;

 private:
  mutable std::mutex mutex_;
  std::vector<std::unique_ptr<MetricsShard>> shards_;  // guarded by mutex_
};

// The process's registry, and the calling thread's shard of it (made on the thread's first
// call). A worker is one thread, so this is the worker's shard; the Worker itself needs no
// metrics member.
MetricsRegistry& metrics_registry();
MetricsShard& thread_metrics();

// Process-level counters; see the top of this file.
struct ProcessMetrics {
  std::atomic<std::uint64_t> reloads_succeeded{0};
  std::atomic<std::uint64_t> reloads_failed{0};
  // Upstream pools that reloads replaced and connections still use, across the workers (each
  // worker has its own pool of every upstream); freed when their last connection closes.
  std::atomic<std::uint64_t> retired_upstream_pools{0};
};
ProcessMetrics& process_metrics();

// ---- Exposition ----

enum class MetricType : std::uint8_t { Counter, Gauge, Histogram };

struct MetricLabel {
  std::string name;
  std::string value;
};

struct MetricSample {
  std::string suffix;  // appended to the family's name: "", "_bucket", "_sum", "_count"
  std::vector<MetricLabel> labels;
  double value = 0;
};

// One metric family: a # HELP and a # TYPE line, then its samples, all together as the format
// requires.
struct MetricFamily {
  std::string name;
  std::string help;
  MetricType type = MetricType::Counter;
  std::vector<MetricSample> samples;

  void add(std::vector<MetricLabel> labels, double value);
  // A histogram's samples: cumulative _bucket{le=...} for each bound and +Inf, _sum, _count.
  // bucket_counts holds per-bucket (not cumulative) counts, one per bound plus one for +Inf.
  void add_histogram(const std::vector<MetricLabel>& labels, std::span<const double> bounds,
                     std::span<const std::uint64_t> bucket_counts, double sum);
};

// The text exposition format 0.0.4: label values escaped (\\, \", \n), HELP text escaped
// (\\, \n), values in the shortest form that reads back exactly, NaN and +Inf/-Inf spelled as
// Prometheus spells them.
std::string render_exposition(const std::vector<MetricFamily>& families);

// Counts read when the scrape happened, besides the shards.
struct ProcessCounts {
  std::uint64_t reloads_succeeded = 0;
  std::uint64_t reloads_failed = 0;
  std::uint64_t retired_upstream_pools = 0;
};

// The request families (requests, latency, open connections) and the reload counter.
std::vector<MetricFamily> request_metric_families(const MetricsSnapshot& snapshot, const ProcessCounts& process);
// The families the runtime's policy kinds declare (PolicyKind::declare_metrics), with the samples
// of the policies on its routes (Policy::write_metrics).
std::vector<MetricFamily> policy_metric_families(const Runtime& runtime);

// Parts of the process outside the Runtime (the webhook sender) that add families to every
// scrape. Any thread. A source runs on the scraping thread under a lock that removing it takes,
// so it never runs after remove_metric_source() returns.
using MetricSource = std::function<void(std::vector<MetricFamily>& families)>;
std::uint64_t add_metric_source(MetricSource source);  // returns its id for removal (never 0)
void remove_metric_source(std::uint64_t id);

// The whole GET /metrics body: the process registry, process_metrics(), the runtime's policies
// and the metric sources.
std::string render_metrics(const Runtime& runtime);

inline constexpr std::string_view kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace arbiter
