// Metrics::Render: the Prometheus text exposition format (0.0.4).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "server/metrics.h"

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

}  // namespace
}  // namespace clams::server
