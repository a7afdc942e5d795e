// The wait queue of the front: requests in arrival order, each with a
// deadline (--queue-timeout), bounded by count (--max-queue) and by the
// bytes of the bodies it holds (--max-queued-bytes). Checking for room is
// O(1) and needs no parse of the body: a refusal costs nothing.
// Loop thread only.
#ifndef CLAMS_SRC_SERVER_WAIT_QUEUE_H_
#define CLAMS_SRC_SERVER_WAIT_QUEUE_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <string>

#include "clams/base/status.h"
#include "server/event_loop.h"
#include "server/job.h"

namespace clams::server {

class WaitQueue {
 public:
  struct Limits {
    std::size_t max_count = 100;
    std::uint64_t max_bytes = 0;  ///< 0: no bound
  };

  /// `on_deadline(job_id)` runs when a waiting job's deadline passes.
  WaitQueue(Timers& loop, Limits limits, std::function<void(std::uint64_t)> on_deadline)
      : loop_(loop), limits_(limits), on_deadline_(std::move(on_deadline)) {}

  /// Whether a request with a body of `bytes` may wait: ok, or
  /// kResourceExhausted saying which bound is reached; `reason` gets the
  /// metric label ("queue_full", "queued_bytes").
  Status CheckRoom(std::uint64_t bytes, std::string* reason) const;

  /// Adds at the back (arrival) or the front (a request that could not be
  /// sent and waits again, first in line). No deadline yet: Arm() it.
  void PushBack(Job* job);
  void PushFront(Job* job);
  /// Arms `job`'s deadline `after` from now.
  void Arm(Job* job, std::chrono::milliseconds after);
  /// Takes `job` out (cancelling its deadline); no-op if not queued.
  void Remove(Job* job);

  const std::deque<Job*>& jobs() const { return jobs_; }
  std::size_t size() const { return jobs_.size(); }
  bool empty() const { return jobs_.empty(); }
  std::uint64_t bytes() const { return bytes_; }
  /// Requests ahead of `job_id` (the length if it is not queued).
  std::size_t Ahead(std::uint64_t job_id) const;
  const Limits& limits() const { return limits_; }
  void set_limits(Limits limits) { limits_ = limits; }

 private:
  static std::uint64_t Bytes(const Job* job) { return job->body ? job->body->size() : 0; }
  Timers& loop_;
  Limits limits_;
  std::function<void(std::uint64_t)> on_deadline_;
  std::deque<Job*> jobs_;
  std::uint64_t bytes_ = 0;
};

}  // namespace clams::server

#endif  // CLAMS_SRC_SERVER_WAIT_QUEUE_H_
