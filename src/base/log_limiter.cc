#include "clams/base/log_limiter.h"

#include <utility>

namespace clams::log {

Limiter::Limiter(Clock::duration interval, Now now) : interval_(interval), now_(std::move(now)) {}

std::optional<std::uint64_t> Limiter::Allow() {
  const Clock::time_point now = now_ ? now_() : Clock::now();
  std::lock_guard<std::mutex> lock(mutex_);
  ++pending_;
  if (last_report_ && now - *last_report_ < interval_) return std::nullopt;
  last_report_ = now;
  return std::exchange(pending_, 0);
}

std::uint64_t Limiter::suppressed() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return pending_;
}

}  // namespace clams::log
