// Prometheus metrics of the front (text exposition format 0.0.4). Counters
// and histograms are updated as things happen; gauges are set by the
// scheduler just before a scrape; function metrics (the process's memory,
// descriptors and CPU time) are read while rendering. Loop thread only.
//
// Label conventions (docs/operations.md lists every metric with its labels):
//   * label values that are known in advance are declared with
//     DeclareLabelValues(), so every series exists with 0 from the start and
//     rate() and absent() work before the first event;
//   * per-worker series carry worker="<id>" only (WorkerLabels()), never a
//     pid, so restarts do not create new series;
//   * request durations carry status_class="2xx|4xx|5xx" (ObserveRequest()).
#ifndef CLAMS_SRC_SERVER_METRICS_H_
#define CLAMS_SRC_SERVER_METRICS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
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
  /// Declares a family whose one unlabelled value is `read()` at each
  /// Render() (a counter or gauge; a NaN value renders no sample).
  void DeclareFunction(const std::string& name, const std::string& help, Type type, std::function<double()> read);
  /// Creates the series `label`=each of `values` with 0 (counters, gauges)
  /// or empty buckets (histograms), so they are rendered before any event.
  void DeclareLabelValues(const std::string& name, const std::string& label, const std::vector<std::string>& values);
  // (Called per request: names are looked up without building a string.)
  void Add(std::string_view name, const Labels& labels, double delta = 1);
  void Set(std::string_view name, const Labels& labels, double value);
  void Observe(std::string_view name, const Labels& labels, double value);
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
    std::function<double()> read;  // function metrics only
  };
  Family& GetFamily(std::string_view name);
  static Series& GetSeries(Family& f, const Labels& labels);
  std::map<std::string, Family, std::less<>> families_;
};

/// Declares every metric of DESIGN.md §7 and the server's extras, with the
/// label values known in advance, and the process metrics of this process.
void DeclareServerMetrics(Metrics& metrics);

/// Histogram buckets of request durations and queue waits, in seconds: from
/// 5 ms (CPU apps) to an hour (long GPU jobs).
const std::vector<double>& DurationBuckets();

/// "2xx", "4xx" or "5xx" (and "1xx", "3xx") for an HTTP status code.
std::string StatusClass(int http_status);

/// Counts an answered annotate request: clams_requests_total{code} and
/// clams_request_duration_seconds{status_class}.
void ObserveRequest(Metrics& metrics, int http_status, double seconds);

/// The labels of a per-worker series: worker="<id>".
Labels WorkerLabels(int worker_id);

/// Sets clams_build_info{version,app,app_version} to 1 (version: clams-cpp's;
/// app and app_version: the app's metadata name and version).
void SetBuildInfo(Metrics& metrics, const std::string& app, const std::string& app_version);

}  // namespace clams::server

#endif  // CLAMS_SRC_SERVER_METRICS_H_
