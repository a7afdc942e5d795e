// Prometheus metrics of the front (text exposition format 0.0.4). Counters
// and histograms are updated as things happen; gauges are set by the
// scheduler just before a scrape. Loop thread only.
#ifndef CLAMS_SRC_SERVER_METRICS_H_
#define CLAMS_SRC_SERVER_METRICS_H_

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace clams::server {

using Labels = std::vector<std::pair<std::string, std::string>>;

class Metrics {
 public:
  enum class Type { kCounter, kGauge, kHistogram };

  /// Declares a family (name, help, type); histograms take their bucket
  /// upper bounds.
  void Declare(const std::string& name, const std::string& help, Type type,
               std::vector<double> buckets = {});
  void Add(const std::string& name, const Labels& labels, double delta = 1);
  void Set(const std::string& name, const Labels& labels, double value);
  void Observe(const std::string& name, const Labels& labels, double value);
  /// Removes every series of a gauge family (before re-setting it).
  void ClearSeries(const std::string& name);
  /// Current value of a counter or gauge series (0 if absent).
  double Value(const std::string& name, const Labels& labels) const;

  std::string Render() const;

 private:
  struct Series {
    double value = 0;
    std::vector<std::uint64_t> bucket_counts;
    double sum = 0;
    std::uint64_t count = 0;
  };
  struct Family {
    std::string help;
    Type type = Type::kCounter;
    std::vector<double> buckets;
    std::map<Labels, Series> series;
  };
  Series& Get(const std::string& name, const Labels& labels);
  std::map<std::string, Family> families_;
};

/// Declares every metric of DESIGN.md §7 and the server's extras.
void DeclareServerMetrics(Metrics& metrics);

}  // namespace clams::server

#endif  // CLAMS_SRC_SERVER_METRICS_H_
