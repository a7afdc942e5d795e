#include "clams/base/log_limiter.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace clams::log {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

class LimiterTest : public ::testing::Test {
 protected:
  Limiter::Now FakeNow() {
    return [this] { return now_; };
  }
  Limiter::Clock::time_point now_{};
};

TEST_F(LimiterTest, FirstOccurrenceIsReportedAtOnce) {
  Limiter limiter(seconds(60), FakeNow());
  EXPECT_EQ(limiter.Allow(), std::optional<std::uint64_t>(1));
  EXPECT_EQ(limiter.suppressed(), 0u);
}

TEST_F(LimiterTest, RepeatsWithinTheIntervalAreCountedAndReportedOnceItPasses) {
  Limiter limiter(seconds(60), FakeNow());
  ASSERT_EQ(limiter.Allow(), std::optional<std::uint64_t>(1));
  for (int i = 0; i < 999; ++i) {
    now_ += milliseconds(50);
    EXPECT_EQ(limiter.Allow(), std::nullopt) << i;
  }
  EXPECT_EQ(limiter.suppressed(), 999u);
  now_ += milliseconds(10050);  // 49.95 s + 10.05 s: one interval after the first report
  EXPECT_EQ(limiter.Allow(), std::optional<std::uint64_t>(1000));
  EXPECT_EQ(limiter.suppressed(), 0u);
  now_ += seconds(59);
  EXPECT_EQ(limiter.Allow(), std::nullopt);
  now_ += seconds(1);  // exactly one interval after the second report
  EXPECT_EQ(limiter.Allow(), std::optional<std::uint64_t>(2));
}

TEST_F(LimiterTest, AQuietPeriodReportsTheNextOccurrenceAtOnce) {
  Limiter limiter(seconds(1), FakeNow());
  EXPECT_EQ(limiter.Allow(), std::optional<std::uint64_t>(1));
  now_ += seconds(3600);
  EXPECT_EQ(limiter.Allow(), std::optional<std::uint64_t>(1));
}

TEST_F(LimiterTest, ZeroIntervalReportsEveryOccurrence) {
  Limiter limiter(Limiter::Clock::duration::zero(), FakeNow());
  for (int i = 0; i < 3; ++i) EXPECT_EQ(limiter.Allow(), std::optional<std::uint64_t>(1));
}

TEST(LimiterThreadsTest, ConcurrentCallersLoseNoOccurrence) {
  // The real clock and an interval longer than the test: one report, and
  // every other call is counted as suppressed.
  Limiter limiter(seconds(3600));
  constexpr int kThreads = 8;
  constexpr int kCallsPerThread = 10000;
  std::atomic<std::uint64_t> reported{0};
  std::atomic<int> reports{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kCallsPerThread; ++i) {
        if (auto n = limiter.Allow()) {
          reported += *n;
          ++reports;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(reports.load(), 1);
  EXPECT_EQ(reported.load() + limiter.suppressed(), std::uint64_t{kThreads} * kCallsPerThread);
}

}  // namespace
}  // namespace clams::log
