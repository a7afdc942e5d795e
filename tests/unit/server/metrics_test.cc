// Metrics::Render: the Prometheus text exposition format (0.0.4).
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "clams/base/version.h"
#include "server/metrics.h"
#include "server/process_stats.h"
#include "testing/process.h"

namespace clams::server {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(MetricsTest, CountersWithoutSeriesRenderZeroAndGaugesOnlyTheirHeader) {
  Metrics m;
  m.Declare("a_total", "Things.", Metrics::Type::kCounter);
  m.Declare("b", "A level.", Metrics::Type::kGauge);
  EXPECT_EQ(m.Render(),
            "# HELP a_total Things.\n# TYPE a_total counter\na_total 0\n"
            "# HELP b A level.\n# TYPE b gauge\n");
}

TEST(MetricsTest, FamiliesAreSortedByNameAndSeriesByLabels) {
  Metrics m;
  m.Declare("z", "Z.", Metrics::Type::kGauge);
  m.Declare("a_total", "A.", Metrics::Type::kCounter);
  m.Set("z", {{"device", "1"}}, 2);
  m.Set("z", {{"device", "0"}}, 1);
  m.Add("a_total", {{"code", "200"}});
  m.Add("a_total", {{"code", "200"}}, 2);
  EXPECT_EQ(m.Render(),
            "# HELP a_total A.\n# TYPE a_total counter\na_total{code=\"200\"} 3\n"
            "# HELP z Z.\n# TYPE z gauge\nz{device=\"0\"} 1\nz{device=\"1\"} 2\n");
}

TEST(MetricsTest, LabelValuesAreEscaped) {
  Metrics m;
  m.Declare("g", "G.", Metrics::Type::kGauge);
  m.Set("g", {{"path", "a\"b\\c\nd"}, {"x", "y"}}, 1);
  EXPECT_THAT(m.Render(), HasSubstr("g{path=\"a\\\"b\\\\c\\nd\",x=\"y\"} 1\n"));
}

TEST(MetricsTest, ValuesAreIntegersWhenWholeAndShortestDecimalsOtherwise) {
  Metrics m;
  m.Declare("g", "G.", Metrics::Type::kGauge);
  m.Set("g", {{"k", "big"}}, 25769803776.0);
  m.Set("g", {{"k", "frac"}}, 0.25);
  m.Set("g", {{"k", "neg"}}, -3);
  const std::string out = m.Render();
  EXPECT_THAT(out, HasSubstr("g{k=\"big\"} 25769803776\n"));
  EXPECT_THAT(out, HasSubstr("g{k=\"frac\"} 0.25\n"));
  EXPECT_THAT(out, HasSubstr("g{k=\"neg\"} -3\n"));
}

TEST(MetricsTest, HistogramBucketsAreCumulativeWithInfSumAndCount) {
  Metrics m;
  m.Declare("h_seconds", "H.", Metrics::Type::kHistogram, {0.1, 1});
  m.Observe("h_seconds", {}, 0.0625);
  m.Observe("h_seconds", {}, 0.5);
  m.Observe("h_seconds", {}, 5);
  EXPECT_EQ(m.Render(),
            "# HELP h_seconds H.\n# TYPE h_seconds histogram\n"
            "h_seconds_bucket{le=\"0.1\"} 1\n"
            "h_seconds_bucket{le=\"1\"} 2\n"
            "h_seconds_bucket{le=\"+Inf\"} 3\n"
            "h_seconds_sum 5.5625\n"
            "h_seconds_count 3\n");
}

TEST(MetricsTest, HistogramLabelsComeBeforeLe) {
  Metrics m;
  m.Declare("h", "H.", Metrics::Type::kHistogram, {1});
  m.Observe("h", {{"device", "0"}}, 2);
  const std::string out = m.Render();
  EXPECT_THAT(out, HasSubstr("h_bucket{device=\"0\",le=\"1\"} 0\n"));
  EXPECT_THAT(out, HasSubstr("h_bucket{device=\"0\",le=\"+Inf\"} 1\n"));
  EXPECT_THAT(out, HasSubstr("h_sum{device=\"0\"} 2\n"));
}

TEST(MetricsTest, ValueReadsSeriesAndClearSeriesEmptiesAFamily) {
  Metrics m;
  m.Declare("g", "G.", Metrics::Type::kGauge);
  m.Set("g", {{"w", "1"}}, 7);
  EXPECT_EQ(m.Value("g", {{"w", "1"}}), 7);
  EXPECT_EQ(m.Value("g", {{"w", "2"}}), 0);
  EXPECT_EQ(m.Value("absent", {}), 0);
  m.ClearSeries("g");
  EXPECT_EQ(m.Value("g", {{"w", "1"}}), 0);
  EXPECT_THAT(m.Render(), Not(HasSubstr("g{")));
}

TEST(MetricsTest, ServerMetricsDeclareEveryNameOfTheDesign) {
  Metrics m;
  DeclareServerMetrics(m);
  const std::string out = m.Render();
  for (const char* counter : {"clams_requests_total", "clams_admission_rejections_total",
                              "clams_worker_restarts_total", "clams_oom_total"}) {
    EXPECT_THAT(out, HasSubstr(std::string("# TYPE ") + counter + " counter\n")) << counter;
  }
  for (const char* gauge : {"clams_queue_length", "clams_gpu_memory_total_bytes", "clams_gpu_memory_used_bytes",
                            "clams_gpu_memory_reserved_bytes", "clams_worker_vram_bytes", "clams_workers"}) {
    EXPECT_THAT(out, HasSubstr(std::string("# TYPE ") + gauge + " gauge\n")) << gauge;
  }
  for (const char* histogram : {"clams_request_duration_seconds", "clams_queue_wait_seconds"}) {
    EXPECT_THAT(out, HasSubstr(std::string("# TYPE ") + histogram + " histogram\n")) << histogram;
  }
}

// A strict reader of the Prometheus text exposition format 0.0.4, as a
// scraper would read it: every line is a HELP, a TYPE or a sample; names and
// label names are valid; a family's TYPE comes once, before its samples, and
// its samples are contiguous; no series repeats; histograms have cumulative
// buckets ending in le="+Inf" equal to _count, and a _sum.
struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};
struct Exposition {
  std::map<std::string, std::string> types;  // family -> type
  std::map<std::string, std::string> help;
  std::vector<Sample> samples;
  std::vector<std::string> errors;

  // The value of one series (NaN if absent).
  double Value(const std::string& name, const std::map<std::string, std::string>& labels = {}) const {
    for (const Sample& s : samples) {
      if (s.name == name && s.labels == labels) return s.value;
    }
    return std::nan("");
  }
  std::vector<const Sample*> Series(const std::string& name) const {
    std::vector<const Sample*> out;
    for (const Sample& s : samples) {
      if (s.name == name) out.push_back(&s);
    }
    return out;
  }
};

std::string FamilyOf(const std::string& sample_name, const std::map<std::string, std::string>& types) {
  for (const char* suffix : {"_bucket", "_sum", "_count"}) {
    const std::string sfx = suffix;
    if (sample_name.size() > sfx.size() && sample_name.compare(sample_name.size() - sfx.size(), sfx.size(), sfx) == 0) {
      const std::string base = sample_name.substr(0, sample_name.size() - sfx.size());
      auto it = types.find(base);
      if (it != types.end() && it->second == "histogram") return base;
    }
  }
  return sample_name;
}

Exposition ParseExposition(const std::string& text) {
  Exposition e;
  static const std::regex kName("[a-zA-Z_:][a-zA-Z0-9_:]*");
  static const std::regex kLabelName("[a-zA-Z_][a-zA-Z0-9_]*");
  std::set<std::string> finished;  // families whose samples are over
  std::string current;
  std::set<std::string> seen_series;
  if (text.empty() || text.back() != '\n') e.errors.push_back("the exposition does not end with a newline");
  std::istringstream in(text);
  std::string line;
  int no = 0;
  auto error = [&](const std::string& what) { e.errors.push_back("line " + std::to_string(no) + ": " + what + ": " + line); };
  while (std::getline(in, line)) {
    ++no;
    if (line.empty()) {
      error("empty line");
      continue;
    }
    if (line.rfind("# HELP ", 0) == 0 || line.rfind("# TYPE ", 0) == 0) {
      const bool is_type = line[2] == 'T';
      std::string rest = line.substr(7);
      const auto sp = rest.find(' ');
      const std::string name = rest.substr(0, sp);
      const std::string arg = sp == std::string::npos ? "" : rest.substr(sp + 1);
      if (!std::regex_match(name, kName)) error("bad metric name");
      if (finished.count(name) || (!current.empty() && current != name && e.types.count(name))) error("family reopened");
      if (current != name) {
        if (!current.empty()) finished.insert(current);
        current = name;
      }
      if (is_type) {
        if (e.types.count(name)) error("second TYPE");
        static const std::set<std::string> kTypes = {"counter", "gauge", "histogram", "summary", "untyped"};
        if (!kTypes.count(arg)) error("unknown type");
        e.types[name] = arg;
      } else {
        if (e.help.count(name)) error("second HELP");
        if (arg.empty()) error("empty HELP");
        e.help[name] = arg;
      }
      continue;
    }
    if (line[0] == '#') {
      error("comment that is neither HELP nor TYPE");
      continue;
    }
    Sample s;
    std::size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
    s.name = line.substr(0, i);
    if (!std::regex_match(s.name, kName)) error("bad sample name");
    std::string series_key = s.name + "{";
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        std::size_t eq = line.find('=', i);
        if (eq == std::string::npos) {
          error("label without '='");
          break;
        }
        const std::string lname = line.substr(i, eq - i);
        if (!std::regex_match(lname, kLabelName)) error("bad label name '" + lname + "'");
        if (eq + 1 >= line.size() || line[eq + 1] != '"') {
          error("label value not quoted");
          break;
        }
        std::string value;
        std::size_t j = eq + 2;
        bool closed = false;
        for (; j < line.size(); ++j) {
          if (line[j] == '\\') {
            if (j + 1 >= line.size()) break;
            const char c = line[++j];
            if (c == 'n') value += '\n';
            else if (c == '\\' || c == '"') value += c;
            else error("bad escape in a label value");
          } else if (line[j] == '"') {
            closed = true;
            break;
          } else {
            value += line[j];
          }
        }
        if (!closed) {
          error("unterminated label value");
          break;
        }
        if (s.labels.count(lname)) error("label repeated");
        s.labels[lname] = value;
        i = j + 1;
        if (i < line.size() && line[i] == ',') ++i;
      }
      if (i >= line.size() || line[i] != '}') error("labels not closed");
      ++i;
    }
    for (const auto& [k, v] : s.labels) series_key += k + "=" + v + ",";
    if (i >= line.size() || line[i] != ' ') {
      error("no space before the value");
      continue;
    }
    const std::string value_text = line.substr(i + 1);
    if (value_text == "+Inf") {
      s.value = INFINITY;
    } else if (value_text == "-Inf") {
      s.value = -INFINITY;
    } else if (value_text == "NaN") {
      s.value = NAN;
    } else {
      static const std::regex kNumber("-?[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?");
      if (!std::regex_match(value_text, kNumber)) error("bad value");
      s.value = std::strtod(value_text.c_str(), nullptr);
    }
    const std::string family = FamilyOf(s.name, e.types);
    if (!e.types.count(family)) error("sample before its TYPE");
    if (family != current) error("samples of a family are not contiguous");
    if (!seen_series.insert(series_key).second) error("series repeated");
    if (s.name != family && e.types[family] == "histogram" && s.name == family + "_bucket" && !s.labels.count("le")) {
      error("bucket without le");
    }
    e.samples.push_back(std::move(s));
  }
  // Histogram rules, per series (labels without le).
  for (const auto& [family, type] : e.types) {
    if (type == "counter" && (family.size() < 6 || family.compare(family.size() - 6, 6, "_total") != 0)) {
      e.errors.push_back(family + ": a counter's name should end in _total");
    }
    if (type != "histogram") continue;
    std::map<std::map<std::string, std::string>, std::vector<std::pair<double, double>>> buckets;
    for (const Sample* b : e.Series(family + "_bucket")) {
      auto labels = b->labels;
      const std::string le = labels["le"];
      labels.erase("le");
      buckets[labels].push_back({le == "+Inf" ? INFINITY : std::strtod(le.c_str(), nullptr), b->value});
    }
    for (const auto& [labels, list] : buckets) {
      for (std::size_t k = 1; k < list.size(); ++k) {
        if (!(list[k].first > list[k - 1].first)) e.errors.push_back(family + ": le not increasing");
        if (list[k].second < list[k - 1].second) e.errors.push_back(family + ": buckets not cumulative");
      }
      if (list.empty() || !std::isinf(list.back().first)) e.errors.push_back(family + ": no +Inf bucket");
      const double count = e.Value(family + "_count", labels);
      if (list.empty() || count != list.back().second) e.errors.push_back(family + ": +Inf bucket != _count");
      if (std::isnan(e.Value(family + "_sum", labels))) e.errors.push_back(family + ": no _sum");
    }
  }
  return e;
}

TEST(ExpositionReaderTest, RejectsWhatAScraperWouldReject) {
  // The reader itself must catch broken output, or the tests below prove nothing.
  EXPECT_THAT(ParseExposition("a_total 1\n").errors, ::testing::Contains(HasSubstr("sample before its TYPE")));
  EXPECT_THAT(ParseExposition("# TYPE a counter\na 1\n").errors,
              ::testing::Contains(HasSubstr("should end in _total")));
  EXPECT_THAT(ParseExposition("# TYPE g gauge\ng{x=\"1\"} 1\ng{x=\"1\"} 2\n").errors,
              ::testing::Contains(HasSubstr("series repeated")));
  EXPECT_THAT(ParseExposition("# TYPE g gauge\ng{x=1} 1\n").errors,
              ::testing::Contains(HasSubstr("label value not quoted")));
  EXPECT_THAT(ParseExposition("# TYPE g gauge\ng{1x=\"1\"} 1\n").errors,
              ::testing::Contains(HasSubstr("bad label name")));
  EXPECT_THAT(ParseExposition("# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\n"
                              "h_count 1\n")
                  .errors,
              ::testing::Contains(HasSubstr("buckets not cumulative")));
  EXPECT_THAT(ParseExposition("# TYPE a gauge\n# TYPE b gauge\na 1\n").errors,
              ::testing::Contains(HasSubstr("not contiguous")));
  EXPECT_THAT(ParseExposition("# TYPE g gauge\ng one\n").errors, ::testing::Contains(HasSubstr("bad value")));
}

// Everything the server declares, after some traffic, is a valid exposition.
TEST(ServerMetricsTest, RenderIsAStrictlyValidExposition) {
  Metrics m;
  DeclareServerMetrics(m);
  SetBuildInfo(m, "Whisper \"large\" \\ app\n", "v1.2");
  ObserveRequest(m, 200, 0.3);
  ObserveRequest(m, 503, 12);
  m.Observe("clams_queue_wait_seconds", {}, 4);
  m.Set("clams_worker_vram_bytes", WorkerLabels(1), 1.5e9);
  m.Add("clams_admission_rejections_total", {{"reason", "queue_full"}});
  const std::string text = m.Render();
  Exposition e = ParseExposition(text);
  EXPECT_THAT(e.errors, ::testing::IsEmpty()) << text;
  for (const auto& [family, type] : e.types) EXPECT_TRUE(e.help.count(family)) << family << " has no HELP";
}

TEST(ServerMetricsTest, CountersStartAtZeroForEveryDeclaredLabelValue) {
  Metrics m;
  DeclareServerMetrics(m);
  Exposition e = ParseExposition(m.Render());
  ASSERT_THAT(e.errors, ::testing::IsEmpty());
  for (const char* code : {"200", "400", "413", "422", "500", "503", "504"}) {
    EXPECT_EQ(e.Value("clams_requests_total", {{"code", code}}), 0) << code;
  }
  for (const char* reason : {"queue_full", "queued_bytes", "queue_timeout", "impossible", "draining"}) {
    EXPECT_EQ(e.Value("clams_admission_rejections_total", {{"reason", reason}}), 0) << reason;
  }
  for (const char* reason : {"crash", "request_timeout", "client_gone", "max_requests", "drift", "evict", "oom",
                             "reload", "ready_timeout", "lost_connection", "scale_down"}) {
    EXPECT_EQ(e.Value("clams_worker_restarts_total", {{"reason", reason}}), 0) << reason;
  }
  for (const char* cls : {"2xx", "4xx", "5xx"}) {
    EXPECT_EQ(e.Value("clams_request_duration_seconds_count", {{"status_class", cls}}), 0) << cls;
    EXPECT_EQ(e.Value("clams_request_duration_seconds_bucket", {{"status_class", cls}, {"le", "3600"}}), 0) << cls;
  }
  for (const char* counter : {"clams_oom_total", "clams_evictions_total", "clams_client_gone_total"}) {
    EXPECT_EQ(e.Value(counter), 0) << counter;
  }
  EXPECT_EQ(e.Value("clams_queue_length"), 0);
}

TEST(ServerMetricsTest, EveryContractNameIsDeclaredWithItsType) {
  Metrics m;
  DeclareServerMetrics(m);
  Exposition e = ParseExposition(m.Render());
  const std::map<std::string, std::string> expected = {
      {"clams_build_info", "gauge"},
      {"clams_requests_total", "counter"},
      {"clams_request_duration_seconds", "histogram"},
      {"clams_queue_length", "gauge"},
      {"clams_queue_wait_seconds", "histogram"},
      {"clams_admission_rejections_total", "counter"},
      {"clams_gpu_memory_total_bytes", "gauge"},
      {"clams_gpu_memory_used_bytes", "gauge"},
      {"clams_gpu_memory_reserved_bytes", "gauge"},
      {"clams_worker_vram_bytes", "gauge"},
      {"clams_worker_running_requests", "gauge"},
      {"clams_workers", "gauge"},
      {"clams_worker_restarts_total", "counter"},
      {"clams_oom_total", "counter"},
      {"clams_evictions_total", "counter"},
      {"clams_client_gone_total", "counter"},
      {"clams_process_resident_memory_bytes", "gauge"},
      {"clams_process_open_fds", "gauge"},
      {"clams_process_cpu_seconds_total", "counter"},
  };
  for (const auto& [name, type] : expected) {
    auto it = e.types.find(name);
    ASSERT_NE(it, e.types.end()) << name;
    EXPECT_EQ(it->second, type) << name;
  }
}

TEST(ServerMetricsTest, RequestDurationsHaveAStatusClassAndBucketsUpToAnHour) {
  Metrics m;
  DeclareServerMetrics(m);
  ObserveRequest(m, 503, 1200);
  ObserveRequest(m, 200, 2400);
  ObserveRequest(m, 422, 0.001);
  Exposition e = ParseExposition(m.Render());
  ASSERT_THAT(e.errors, ::testing::IsEmpty());
  EXPECT_EQ(DurationBuckets().back(), 3600);
  EXPECT_EQ(e.Value("clams_requests_total", {{"code", "503"}}), 1);
  EXPECT_EQ(e.Value("clams_request_duration_seconds_bucket", {{"status_class", "5xx"}, {"le", "600"}}), 0);
  EXPECT_EQ(e.Value("clams_request_duration_seconds_bucket", {{"status_class", "5xx"}, {"le", "1200"}}), 1);
  EXPECT_EQ(e.Value("clams_request_duration_seconds_bucket", {{"status_class", "2xx"}, {"le", "1800"}}), 0);
  EXPECT_EQ(e.Value("clams_request_duration_seconds_bucket", {{"status_class", "2xx"}, {"le", "3600"}}), 1);
  EXPECT_EQ(e.Value("clams_request_duration_seconds_bucket", {{"status_class", "4xx"}, {"le", "0.005"}}), 1);
  EXPECT_EQ(e.Value("clams_request_duration_seconds_sum", {{"status_class", "5xx"}}), 1200);
  EXPECT_EQ(StatusClass(200), "2xx");
  EXPECT_EQ(StatusClass(413), "4xx");
  EXPECT_EQ(StatusClass(504), "5xx");
  EXPECT_EQ(StatusClass(42), "other");
}

TEST(ServerMetricsTest, BuildInfoIsOneSeriesNamingTheVersions) {
  Metrics m;
  DeclareServerMetrics(m);
  SetBuildInfo(m, "Old", "0.9");
  SetBuildInfo(m, "Sentence Splitter", "v2");
  Exposition e = ParseExposition(m.Render());
  ASSERT_THAT(e.errors, ::testing::IsEmpty());
  auto series = e.Series("clams_build_info");
  ASSERT_EQ(series.size(), 1u);
  EXPECT_EQ(series[0]->value, 1);
  EXPECT_EQ(series[0]->labels, (std::map<std::string, std::string>{
                                   {"version", std::string(Version())}, {"app", "Sentence Splitter"}, {"app_version", "v2"}}));
  EXPECT_THAT(std::string(Version()), ::testing::MatchesRegex("[0-9]+\\.[0-9]+\\.[0-9]+(\\+[-.0-9A-Za-z]+)?"));
}

TEST(ServerMetricsTest, PerWorkerLabelsAreTheWorkerIdOnly) {
  EXPECT_EQ(WorkerLabels(3), (Labels{{"worker", "3"}}));
}

TEST(ProcessMetricsTest, AreReadAtEachScrape) {
  Metrics m;
  DeclareServerMetrics(m);
  Exposition before = ParseExposition(m.Render());
  ASSERT_THAT(before.errors, ::testing::IsEmpty());
  const double fds = before.Value("clams_process_open_fds");
  EXPECT_GT(before.Value("clams_process_resident_memory_bytes"), 1 << 20);
  EXPECT_GE(before.Value("clams_process_cpu_seconds_total"), 0);
  const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  Exposition after = ParseExposition(m.Render());
  ::close(fd);
  EXPECT_EQ(after.Value("clams_process_open_fds"), fds + 1);
  EXPECT_GE(after.Value("clams_process_cpu_seconds_total"), before.Value("clams_process_cpu_seconds_total"));
}

TEST(ProcessMetricsTest, StatParsingSurvivesParenthesesInTheCommandName) {
  const std::string stat =
      "4242 (evil) name (x) R 1 2 3 4 5 6 7 8 9 10 250 150 0 0 20 0 1 0 100 200 300 18446744073709551615";
  EXPECT_EQ(CpuSecondsFromStat(stat, 100), 4.0);
  EXPECT_EQ(CpuSecondsFromStat("4242 (short) R 1 2", 100), std::nullopt);
  EXPECT_EQ(CpuSecondsFromStat("no parenthesis", 100), std::nullopt);
  EXPECT_EQ(ResidentBytesFromStatm("1000 256 10 1 0 50 0\n", 4096), 256.0 * 4096);
  EXPECT_EQ(ResidentBytesFromStatm("", 4096), std::nullopt);
}

TEST(MetricsTest, FunctionMetricsRenderTheirValueOrNothing) {
  Metrics m;
  double v = 2.5;
  m.DeclareFunction("f_seconds_total", "F.", Metrics::Type::kCounter, [&] { return v; });
  EXPECT_EQ(m.Render(), "# HELP f_seconds_total F.\n# TYPE f_seconds_total counter\nf_seconds_total 2.5\n");
  v = std::nan("");
  EXPECT_EQ(m.Render(), "# HELP f_seconds_total F.\n# TYPE f_seconds_total counter\n");
}

// promtool (Debian's prometheus package), where it is installed, must find
// nothing to complain about either.
TEST(ServerMetricsTest, PromtoolChecksTheExposition) {
  const std::string promtool = "/usr/bin/promtool";
  if (!std::filesystem::exists(promtool)) GTEST_SKIP() << "promtool is not installed";
  Metrics m;
  DeclareServerMetrics(m);
  SetBuildInfo(m, "App", "1");
  ObserveRequest(m, 200, 1);
  auto r = clams::testing::RunProgram({promtool, "check", "metrics"}, {}, m.Render());
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(r.out + r.err, "");
}

}  // namespace
}  // namespace clams::server
