// clams/base/log_limiter.h
//
// A rate limit for log lines about a condition that can repeat many times a
// second (accept() failing while file descriptors are exhausted, a profile
// directory that cannot be written): the first occurrence is reported at
// once, later ones at most once per interval, each report saying how many
// times the condition occurred since the previous one.
//
// Example:
//
//   static log::Limiter limiter(std::chrono::seconds(60));
//   if (auto n = limiter.Allow()) CLAMS_LOG(kWarning, "cannot write ({} times since the last report)", *n);
#ifndef CLAMS_BASE_LOG_LIMITER_H_
#define CLAMS_BASE_LOG_LIMITER_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>

namespace clams::log {

/// Counts occurrences of one condition and lets a report through at most
/// once per interval. Lifecycle: construct once per condition (a member or
/// a function-local static), call Allow() at every occurrence.
/// Thread-safe: Allow() may be called from any thread.
class Limiter {
 public:
  using Clock = std::chrono::steady_clock;
  /// Returns the current time; tests inject a fake clock.
  using Now = std::function<Clock::time_point()>;

  /// Reports at most once per `interval` (zero or negative: every time).
  explicit Limiter(Clock::duration interval, Now now = {});

  /// Counts one occurrence. Returns the number of occurrences since the
  /// last report, this one included, when a report is due (the first
  /// occurrence, or `interval` after the last report); nullopt otherwise.
  std::optional<std::uint64_t> Allow();

  /// Occurrences counted since the last report (not yet reported).
  std::uint64_t suppressed() const;

 private:
  const Clock::duration interval_;
  const Now now_;
  mutable std::mutex mutex_;
  std::optional<Clock::time_point> last_report_;  // guarded by mutex_
  std::uint64_t pending_ = 0;                     // guarded by mutex_
};

}  // namespace clams::log

#endif  // CLAMS_BASE_LOG_LIMITER_H_
