#pragma once
// How a policy shows its counters and gauges on /metrics without proxy/ knowing its kind:
// its kind declares the metric families (PolicyKind::declare_metrics), each policy adds its
// samples (Policy::write_metrics), and proxy/observe/ implements the writer and renders the
// Prometheus text.

#include <cstdint>
#include <initializer_list>
#include <span>
#include <string_view>

namespace arbiter {

struct MetricLabelView {
  std::string_view name;
  std::string_view value;
};

// Used by the one thread rendering a scrape; it copies what it is given.
class MetricsWriter {
 public:
  enum class Type : std::uint8_t { Counter, Gauge, Histogram };

  virtual ~MetricsWriter() = default;
  // A family: its samples are exposed together, families in the order declared; a family that
  // gets no sample is left out. `name` is a Prometheus metric name, e.g. "arbiter_in_flight".
  virtual void declare(std::string_view name, std::string_view help, Type type) = 0;
  // One sample of a declared family (a family not declared is ignored).
  virtual void sample(std::string_view family, std::initializer_list<MetricLabelView> labels, double value) = 0;
  // One series of a declared histogram: bucket_counts[i] observations of at most bounds[i] (and
  // above the bound before), the last one (bounds.size()) those above every bound; their sum.
  virtual void histogram(std::string_view family, std::initializer_list<MetricLabelView> labels,
                         std::span<const double> bounds, std::span<const std::uint64_t> bucket_counts, double sum) = 0;
};

}  // namespace arbiter
