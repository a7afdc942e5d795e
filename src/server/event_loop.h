// The front's event loop: one thread runs every callback (network, timers,
// signals, worker pipes), so the scheduler and the supervisor need no locks.
// Other threads hand work back with Post(). Implemented with Boost.Asio in
// event_loop.cc; this header keeps Asio out of the rest of the server.
#ifndef CLAMS_SRC_SERVER_EVENT_LOOP_H_
#define CLAMS_SRC_SERVER_EVENT_LOOP_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>

namespace clams::server {

/// Time and timers, as the scheduler needs them: the EventLoop in the
/// server, a manual clock in unit tests (tests/testing/manual_timers.h).
class Timers {
 public:
  using TimerId = std::uint64_t;
  using Clock = std::chrono::steady_clock;

  virtual ~Timers() = default;
  /// The current time.
  virtual Clock::time_point Now() const = 0;
  /// Runs `fn` on the loop thread after `delay`. Loop thread only.
  virtual TimerId After(std::chrono::milliseconds delay, std::function<void()> fn) = 0;
  /// Cancels a pending timer (no-op if it already ran, or for 0).
  virtual void Cancel(TimerId id) = 0;
  /// Runs `fn` on the loop thread soon (thread-safe).
  virtual void Post(std::function<void()> fn) = 0;
};

class EventLoop : public Timers {
 public:
  EventLoop();
  ~EventLoop() override;
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  /// Runs callbacks on the calling thread until Stop().
  void Run();
  /// Makes Run() return (thread-safe).
  void Stop();
  Clock::time_point Now() const override { return Clock::now(); }
  /// Runs `fn` on the loop thread (thread-safe).
  void Post(std::function<void()> fn) override;
  /// Runs `fn` on the loop thread after `delay`. Loop thread only.
  TimerId After(std::chrono::milliseconds delay, std::function<void()> fn) override;
  /// Cancels a pending timer (no-op if it already ran). Loop thread only.
  void Cancel(TimerId id) override;
  /// Calls `fn` on the loop thread each time `signo` arrives. Loop thread only.
  void OnSignal(int signo, std::function<void()> fn);
  /// Calls `fn` once on the loop thread when `fd` becomes readable (or
  /// closed): never before, however Asio reports it. Loop thread only. The fd
  /// stays owned by the caller.
  void WatchReadable(int fd, std::function<void()> fn);
  bool InLoopThread() const;

  /// Internal: the Asio implementation, for the HTTP files.
  struct Impl;
  Impl& impl() { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace clams::server

#endif  // CLAMS_SRC_SERVER_EVENT_LOOP_H_
