// A manual clock for unit tests of code written against server::Timers:
// time moves only when the test calls Advance(), timers run in due order,
// posted work runs on RunPosted() (or at the next Advance). Single-threaded.
#ifndef CLAMS_TESTING_MANUAL_TIMERS_H_
#define CLAMS_TESTING_MANUAL_TIMERS_H_

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <utility>

#include "server/event_loop.h"

namespace clams::testing {

class ManualTimers : public server::Timers {
 public:
  ManualTimers() : now_(Clock::time_point{} + std::chrono::hours(1)) {}

  Clock::time_point Now() const override { return now_; }
  TimerId After(std::chrono::milliseconds delay, std::function<void()> fn) override {
    const TimerId id = next_++;
    timers_.emplace(id, Timer{now_ + delay, std::move(fn)});
    return id;
  }
  void Cancel(TimerId id) override { timers_.erase(id); }
  void Post(std::function<void()> fn) override { posted_.push_back(std::move(fn)); }

  /// Runs posted work until none is left.
  void RunPosted() {
    while (!posted_.empty()) {
      auto fn = std::move(posted_.front());
      posted_.pop_front();
      fn();
    }
  }
  /// Moves time forward by `d`, running every timer that falls due (in due
  /// order, each at its own time) and posted work.
  void Advance(Clock::duration d) {
    const Clock::time_point end = now_ + d;
    RunPosted();
    for (;;) {
      auto next = timers_.end();
      for (auto it = timers_.begin(); it != timers_.end(); ++it) {
        if (it->second.due <= end && (next == timers_.end() || it->second.due < next->second.due)) next = it;
      }
      if (next == timers_.end()) break;
      now_ = std::max(now_, next->second.due);
      auto fn = std::move(next->second.fn);
      timers_.erase(next);
      fn();
      RunPosted();
    }
    now_ = end;
  }
  std::size_t pending_timers() const { return timers_.size(); }

 private:
  struct Timer {
    Clock::time_point due;
    std::function<void()> fn;
  };
  Clock::time_point now_;
  TimerId next_ = 1;
  std::map<TimerId, Timer> timers_;
  std::deque<std::function<void()>> posted_;
};

}  // namespace clams::testing

#endif  // CLAMS_TESTING_MANUAL_TIMERS_H_
