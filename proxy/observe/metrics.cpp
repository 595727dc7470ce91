#include "proxy/observe/metrics.h"

#include <charconv>
#include <cmath>
#include <concepts>
#include <limits>
#include <optional>

#include "policies/metrics_writer.h"
#include "policies/policy_kind.h"
#include "proxy/exchange/runtime.h"
#include "proxy/net/feed_subscribers.h"

namespace arbiter {

// ---- Labels ----

MethodLabel method_label(std::string_view method) noexcept {
  // Methods arrive upper-case from llhttp; the switch on length keeps this to one comparison.
  switch (method.size()) {
    case 3:
      if (method == "GET") return MethodLabel::Get;
      if (method == "PUT") return MethodLabel::Put;
      break;
    case 4:
      if (method == "HEAD") return MethodLabel::Head;
      if (method == "POST") return MethodLabel::Post;
      break;
    case 5:
      if (method == "PATCH") return MethodLabel::Patch;
      break;
    case 6:
      if (method == "DELETE") return MethodLabel::Delete;
      break;
    case 7:
      if (method == "OPTIONS") return MethodLabel::Options;
      break;
    default:
      break;
  }
  return MethodLabel::Other;
}

std::string_view method_label_name(MethodLabel label) noexcept {
  static constexpr std::string_view kNames[kMethodLabelCount] = {"GET",   "HEAD",   "POST",    "PUT",
                                                                 "PATCH", "DELETE", "OPTIONS", "other"};
  return kNames[static_cast<std::size_t>(label)];
}

std::size_t status_class(int status) noexcept {
  if (status < 200) return 0;
  if (status >= 500) return 4;
  return static_cast<std::size_t>(status / 100 - 1);
}

std::string_view status_class_name(std::size_t index) noexcept {
  static constexpr std::string_view kNames[kStatusClassCount] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
  return kNames[index < kStatusClassCount ? index : kStatusClassCount - 1];
}

// ---- Recording ----

void RouteMetrics::add(const RouteMetrics& other) noexcept {
  for (std::size_t m = 0; m < kMethodLabelCount; ++m) {
    for (std::size_t c = 0; c < kStatusClassCount; ++c) requests[m][c] += other.requests[m][c];
  }
  for (std::size_t b = 0; b < latency_buckets.size(); ++b) latency_buckets[b] += other.latency_buckets[b];
  latency_sum += other.latency_sum;
  latency_count += other.latency_count;
}

void MetricsShard::record_exchange(std::string_view route, std::string_view method, int status,
                                   double upstream_seconds) {
  std::size_t method_index = static_cast<std::size_t>(method_label(method));
  std::size_t class_index = status_class(status);
  std::lock_guard lock(mutex_);
  auto it = routes_.find(route);
  if (it == routes_.end()) it = routes_.emplace(std::string(route), RouteMetrics{}).first;
  RouteMetrics& metrics = it->second;
  ++metrics.requests[method_index][class_index];
  if (upstream_seconds < 0) return;
  std::size_t bucket = 0;
  while (bucket < kLatencyBounds.size() && upstream_seconds > kLatencyBounds[bucket]) ++bucket;
  ++metrics.latency_buckets[bucket];
  metrics.latency_sum += upstream_seconds;
  ++metrics.latency_count;
}

void MetricsShard::add_to(MetricsSnapshot& snapshot) const {
  snapshot.open_connections += open_connections_.load(std::memory_order_relaxed);
  std::lock_guard lock(mutex_);
  for (const auto& [name, metrics] : routes_) {
    auto it = snapshot.routes.find(name);
    if (it == snapshot.routes.end()) it = snapshot.routes.emplace(name, RouteMetrics{}).first;
    it->second.add(metrics);
  }
}

MetricsShard& MetricsRegistry::add_shard() {
  std::lock_guard lock(mutex_);
  return *shards_.emplace_back(std::make_unique<MetricsShard>());
}

MetricsSnapshot MetricsRegistry::snapshot() const {
  MetricsSnapshot snapshot;
  std::lock_guard lock(mutex_);
  for (const auto& shard : shards_) shard->add_to(snapshot);
  return snapshot;
}

MetricsRegistry& metrics_registry() {
  static MetricsRegistry registry;
  return registry;
}

MetricsShard& thread_metrics() {
  thread_local MetricsShard& shard = metrics_registry().add_shard();
  return shard;
}

ProcessMetrics& process_metrics() {
  static ProcessMetrics metrics;
  return metrics;
}

// ---- Exposition ----

void MetricFamily::add(std::vector<MetricLabel> labels, double value) {
  samples.push_back(MetricSample{"", std::move(labels), value});
}

namespace {

void append_value(std::string& out, double value) {
  if (std::isnan(value)) {
    out += "NaN";
  } else if (std::isinf(value)) {
    out += value > 0 ? "+Inf" : "-Inf";
  } else {
    char text[32];
    auto result = std::to_chars(text, text + sizeof text, value);  // shortest exact form: 3, 0.25, 1e+20
    out.append(text, result.ptr);
  }
}

std::string value_text(double value) {
  std::string out;
  append_value(out, value);
  return out;
}

void append_escaped(std::string& out, std::string_view text, bool quotes) {
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quotes) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
}

std::string_view type_name(MetricType type) {
  switch (type) {
    case MetricType::Counter: return "counter";
    case MetricType::Gauge: return "gauge";
    case MetricType::Histogram: return "histogram";
  }
  return "untyped";
}

}  // namespace

void MetricFamily::add_histogram(const std::vector<MetricLabel>& labels, std::span<const double> bounds,
                                 std::span<const std::uint64_t> bucket_counts, double sum) {
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i <= bounds.size(); ++i) {
    cumulative += i < bucket_counts.size() ? bucket_counts[i] : 0;
    std::vector<MetricLabel> with_le = labels;
    with_le.push_back({"le", i < bounds.size() ? value_text(bounds[i]) : "+Inf"});
    samples.push_back(MetricSample{"_bucket", std::move(with_le), static_cast<double>(cumulative)});
  }
  samples.push_back(MetricSample{"_sum", labels, sum});
  samples.push_back(MetricSample{"_count", labels, static_cast<double>(cumulative)});
}

std::string render_exposition(const std::vector<MetricFamily>& families) {
  std::string out;
  for (const MetricFamily& family : families) {
    if (family.samples.empty()) continue;  // a family with no series says nothing
    out += "# HELP ";
    out += family.name;
    out += ' ';
    append_escaped(out, family.help, false);
    out += "\n# TYPE ";
    out += family.name;
    out += ' ';
    out += type_name(family.type);
    out += '\n';
    for (const MetricSample& sample : family.samples) {
      out += family.name;
      out += sample.suffix;
      if (!sample.labels.empty()) {
        out += '{';
        for (std::size_t i = 0; i < sample.labels.size(); ++i) {
          if (i > 0) out += ',';
          out += sample.labels[i].name;
          out += "=\"";
          append_escaped(out, sample.labels[i].value, true);
          out += '"';
        }
        out += '}';
      }
      out += ' ';
      append_value(out, sample.value);
      out += '\n';
    }
  }
  return out;
}

std::vector<MetricFamily> request_metric_families(const MetricsSnapshot& snapshot, const ProcessCounts& process) {
  MetricFamily requests{"arbiter_requests_total",
                        "Requests answered on the proxy listeners, by route (empty: no route matched), method "
                        "(GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, other) and status class; 499 (the client "
                        "went away) counts as 4xx.",
                        MetricType::Counter,
                        {}};
  MetricFamily latency{"arbiter_upstream_response_seconds",
                       "Time from the first connection attempt to the upstream until its response head arrived, "
                       "for requests the upstream answered (access log decision \"forwarded\"), by route.",
                       MetricType::Histogram,
                       {}};
  for (const auto& [route, metrics] : snapshot.routes) {
    for (std::size_t m = 0; m < kMethodLabelCount; ++m) {
      for (std::size_t c = 0; c < kStatusClassCount; ++c) {
        if (metrics.requests[m][c] == 0) continue;
        requests.add({{"route", route},
                      {"method", std::string(method_label_name(static_cast<MethodLabel>(m)))},
                      {"status_class", std::string(status_class_name(c))}},
                     static_cast<double>(metrics.requests[m][c]));
      }
    }
    if (metrics.latency_count > 0) {
      latency.add_histogram({{"route", route}}, kLatencyBounds, metrics.latency_buckets, metrics.latency_sum);
    }
  }
  MetricFamily connections{"arbiter_open_connections",
                           "Client connections open on the proxy listeners (the admin listener's are not counted).",
                           MetricType::Gauge,
                           {}};
  connections.add({}, static_cast<double>(snapshot.open_connections));
  MetricFamily reloads{"arbiter_reloads_total", "Configuration reloads, by result: success or failure.",
                       MetricType::Counter, {}};
  reloads.add({{"result", "success"}}, static_cast<double>(process.reloads_succeeded));
  reloads.add({{"result", "failure"}}, static_cast<double>(process.reloads_failed));
  MetricFamily retired_pools{"arbiter_retired_upstream_pools",
                             "Upstream connection pools a reload replaced that connections still use (one per "
                             "worker and upstream); each is freed when its last connection has closed.",
                             MetricType::Gauge,
                             {}};
  retired_pools.add({}, static_cast<double>(process.retired_upstream_pools));
  std::vector<MetricFamily> families;
  families.push_back(std::move(requests));
  families.push_back(std::move(latency));
  families.push_back(std::move(connections));
  families.push_back(std::move(reloads));
  families.push_back(std::move(retired_pools));
  return families;
}

namespace {

// The families the policy kinds declare, in declaration order, and the samples their policies
// add to them.
class FamilyWriter final : public MetricsWriter {
 public:
  void declare(std::string_view name, std::string_view help, Type type) override {
    if (find(name) != nullptr) return;
    MetricType exposed = type == Type::Gauge       ? MetricType::Gauge
                         : type == Type::Histogram ? MetricType::Histogram
                                                   : MetricType::Counter;
    families_.push_back(MetricFamily{std::string(name), std::string(help), exposed, {}});
  }
  void sample(std::string_view family, std::initializer_list<MetricLabelView> labels, double value) override {
    MetricFamily* target = find(family);
    if (target == nullptr) return;
    target->add(copy(labels), value);
  }
  void histogram(std::string_view family, std::initializer_list<MetricLabelView> labels, std::span<const double> bounds,
                 std::span<const std::uint64_t> bucket_counts, double sum) override {
    if (MetricFamily* target = find(family)) target->add_histogram(copy(labels), bounds, bucket_counts, sum);
  }
  std::vector<MetricFamily> take() { return std::move(families_); }

 private:
  static std::vector<MetricLabel> copy(std::initializer_list<MetricLabelView> labels) {
    std::vector<MetricLabel> copied;
    copied.reserve(labels.size());
    for (const MetricLabelView& label : labels) copied.push_back({std::string(label.name), std::string(label.value)});
    return copied;
  }
  MetricFamily* find(std::string_view name) {
    for (MetricFamily& family : families_) {
      if (family.name == name) return &family;
    }
    return nullptr;
  }
  std::vector<MetricFamily> families_;
};

}  // namespace

std::vector<MetricFamily> policy_metric_families(const Runtime& runtime) {
  FamilyWriter writer;
  for (const PolicyKind* kind : runtime.config().policy_kinds.kinds()) kind->declare_metrics(writer);
  for (std::size_t r = 0; r < runtime.route_count(); ++r) {
    const RouteRuntime& route = runtime.route(r);
    for (const auto& policy : route.policies) policy->write_metrics(route.config->name, writer);
  }
  return writer.take();
}

std::string render_metrics(const Runtime& runtime) {
  const ProcessMetrics& process = process_metrics();
  std::vector<MetricFamily> families =
      request_metric_families(metrics_registry().snapshot(),
                              ProcessCounts{process.reloads_succeeded.load(std::memory_order_relaxed),
                                            process.reloads_failed.load(std::memory_order_relaxed),
                                            process.retired_upstream_pools.load(std::memory_order_relaxed)});
  for (MetricFamily& family : policy_metric_families(runtime)) families.push_back(std::move(family));
  for (MetricFamily& family : feed_subscriber_metric_families(feed_subscriber_counters())) families.push_back(std::move(family));
  return render_exposition(families);
}

}  // namespace arbiter
