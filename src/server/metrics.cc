#include "server/metrics.h"

#include <cmath>

#include "clams/base/version.h"
#include "clams/mmif/json.h"
#include "server/process_stats.h"

namespace clams::server {
namespace {

std::string EscapeLabel(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string FormatValue(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) return std::to_string(static_cast<long long>(v));
  std::string out;
  mmif::AppendJsonDouble(out, v);
  return out;
}

std::string LabelText(const Labels& labels, const std::string& extra_key = "", const std::string& extra = "") {
  if (labels.empty() && extra_key.empty()) return "";
  std::string out = "{";
  bool first = true;
  for (const auto& [k, v] : labels) {
    if (!first) out += ",";
    first = false;
    out += k + "=\"" + EscapeLabel(v) + "\"";
  }
  if (!extra_key.empty()) {
    if (!first) out += ",";
    out += extra_key + "=\"" + extra + "\"";
  }
  return out + "}";
}

}  // namespace

void Metrics::Declare(const std::string& name, const std::string& help, Type type, std::vector<double> buckets) {
  Family& f = families_[name];
  f.help = help;
  f.type = type;
  f.buckets = std::move(buckets);
}

void Metrics::DeclareFunction(const std::string& name, const std::string& help, Type type,
                              std::function<double()> read) {
  Family& f = families_[name];
  f.help = help;
  f.type = type;
  f.read = std::move(read);
}

void Metrics::DeclareLabelValues(const std::string& name, const std::string& label,
                                 const std::vector<std::string>& values) {
  for (const std::string& v : values) GetSeries(GetFamily(name), {{label, v}});
}

Metrics::Family& Metrics::GetFamily(std::string_view name) {
  auto it = families_.find(name);
  if (it == families_.end()) it = families_.emplace(std::string(name), Family{}).first;
  return it->second;
}

Metrics::Series& Metrics::GetSeries(Family& f, const Labels& labels) {
  Series& s = f.series[labels];
  if (f.type == Type::kHistogram && s.bucket_counts.size() != f.buckets.size()) {
    s.bucket_counts.assign(f.buckets.size(), 0);
  }
  return s;
}

void Metrics::Add(std::string_view name, const Labels& labels, double delta) {
  GetSeries(GetFamily(name), labels).value += delta;
}
void Metrics::Set(std::string_view name, const Labels& labels, double value) {
  GetSeries(GetFamily(name), labels).value = value;
}

void Metrics::Observe(std::string_view name, const Labels& labels, double value) {
  Family& f = GetFamily(name);
  Series& s = GetSeries(f, labels);
  for (std::size_t i = 0; i < f.buckets.size(); ++i) {
    if (value <= f.buckets[i]) ++s.bucket_counts[i];
  }
  s.sum += value;
  ++s.count;
}

void Metrics::ClearSeries(const std::string& name) {
  auto it = families_.find(name);
  if (it != families_.end()) it->second.series.clear();
}

double Metrics::Value(const std::string& name, const Labels& labels) const {
  auto it = families_.find(name);
  if (it == families_.end()) return 0;
  auto s = it->second.series.find(labels);
  return s == it->second.series.end() ? 0 : s->second.value;
}

std::string Metrics::Render() const {
  std::string out;
  for (const auto& [name, f] : families_) {
    out += "# HELP " + name + " " + f.help + "\n";
    out += "# TYPE " + name + " " +
           (f.type == Type::kCounter ? "counter" : f.type == Type::kGauge ? "gauge" : "histogram") + "\n";
    if (f.read) {
      const double v = f.read();
      if (!std::isnan(v)) out += name + " " + FormatValue(v) + "\n";
      continue;
    }
    if (f.type != Type::kHistogram) {
      if (f.series.empty() && f.type == Type::kCounter) out += name + " 0\n";
      for (const auto& [labels, s] : f.series) out += name + LabelText(labels) + " " + FormatValue(s.value) + "\n";
      continue;
    }
    for (const auto& [labels, s] : f.series) {
      for (std::size_t i = 0; i < f.buckets.size(); ++i) {
        out += name + "_bucket" + LabelText(labels, "le", FormatValue(f.buckets[i])) + " " +
               std::to_string(s.bucket_counts[i]) + "\n";
      }
      out += name + "_bucket" + LabelText(labels, "le", "+Inf") + " " + std::to_string(s.count) + "\n";
      out += name + "_sum" + LabelText(labels) + " " + FormatValue(s.sum) + "\n";
      out += name + "_count" + LabelText(labels) + " " + std::to_string(s.count) + "\n";
    }
  }
  return out;
}

const std::vector<double>& DurationBuckets() {
  static const std::vector<double>* buckets = new std::vector<double>{
      0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600};
  return *buckets;
}

std::string StatusClass(int http_status) {
  if (http_status < 100 || http_status > 599) return "other";
  return std::to_string(http_status / 100) + "xx";
}

void ObserveRequest(Metrics& metrics, int http_status, double seconds) {
  metrics.Add("clams_requests_total", {{"code", std::to_string(http_status)}});
  metrics.Observe("clams_request_duration_seconds", {{"status_class", StatusClass(http_status)}}, seconds);
}

Labels WorkerLabels(int worker_id) { return {{"worker", std::to_string(worker_id)}}; }

void SetBuildInfo(Metrics& metrics, const std::string& app, const std::string& app_version) {
  metrics.ClearSeries("clams_build_info");
  metrics.Set("clams_build_info", {{"version", std::string(Version())}, {"app", app}, {"app_version", app_version}}, 1);
}

void DeclareServerMetrics(Metrics& m) {
  using T = Metrics::Type;
  m.Declare("clams_build_info",
            "Always 1; the labels name the clams-cpp version and the app's name and version.", T::kGauge);
  m.Declare("clams_requests_total", "Annotate requests answered, by HTTP status code.", T::kCounter);
  // The codes an annotate request can get (DESIGN.md §7).
  m.DeclareLabelValues("clams_requests_total", "code", {"200", "400", "413", "422", "500", "503", "504"});
  m.Declare("clams_request_duration_seconds",
            "Time from arrival to answer of annotate requests, by status class (2xx, 4xx, 5xx).", T::kHistogram,
            DurationBuckets());
  m.DeclareLabelValues("clams_request_duration_seconds", "status_class", {"2xx", "4xx", "5xx"});
  m.Declare("clams_queue_length", "Requests waiting for admission.", T::kGauge);
  m.Set("clams_queue_length", {}, 0);
  m.Declare("clams_queue_wait_seconds", "Time requests waited in the queue before they started.", T::kHistogram,
            DurationBuckets());
  m.Declare("clams_admission_rejections_total",
            "Requests refused without running, by reason (queue_full, queued_bytes, queue_timeout, impossible, "
            "draining).",
            T::kCounter);
  m.DeclareLabelValues("clams_admission_rejections_total", "reason",
                       {"queue_full", "queued_bytes", "queue_timeout", "impossible", "draining"});
  m.Declare("clams_client_gone_total",
            "Requests whose client disconnected before the answer (queued ones leave the queue; running ones are "
            "cancelled after --client-gone-grace).",
            T::kCounter);
  m.Declare("clams_gpu_memory_total_bytes", "Total memory of each GPU.", T::kGauge);
  m.Declare("clams_gpu_memory_used_bytes", "Used memory of each GPU (all processes), from the last sample.",
            T::kGauge);
  m.Declare("clams_gpu_memory_reserved_bytes",
            "Memory admitted requests may still allocate on each GPU (the admission ledger).", T::kGauge);
  m.Declare("clams_worker_vram_bytes", "GPU memory used by each worker (its process tree), by worker id.", T::kGauge);
  m.Declare("clams_worker_running_requests", "Requests running on each worker (at most --threads), by worker id.",
            T::kGauge);
  m.Declare("clams_workers", "Workers by state.", T::kGauge);
  m.Declare("clams_worker_restarts_total",
            "Workers replaced, by reason (crash, request_timeout, client_gone, max_requests, drift, evict, oom, "
            "reload, ready_timeout, lost_connection, scale_down).",
            T::kCounter);
  m.DeclareLabelValues("clams_worker_restarts_total", "reason",
                       {"crash", "request_timeout", "client_gone", "max_requests", "drift", "evict", "oom", "reload",
                        "ready_timeout", "lost_connection", "scale_down"});
  m.Declare("clams_oom_total",
            "Requests that ran out of GPU memory despite admission, with the measured usage to back it.", T::kCounter);
  m.Declare("clams_evictions_total", "Idle workers recycled to free GPU memory for a waiting request.",
            T::kCounter);
  m.Declare("clams_gpu_accounting_per_process",
            "1 when GPU memory is attributed per worker process, 0 when only device totals are usable.",
            T::kGauge);
  m.Declare("clams_profiles", "Request classes with a measured memory profile.", T::kGauge);
  DeclareProcessMetrics(m);
}

}  // namespace clams::server
