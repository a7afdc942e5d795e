// One annotate request inside the front, from intake to its answer. Built
// by Intake (decoded once, refined, classed, estimated), owned by the
// Scheduler, read by the wait queue, dispatch, outcome learning and
// response decoration. Loop thread only.
#ifndef CLAMS_SRC_SERVER_JOB_H_
#define CLAMS_SRC_SERVER_JOB_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "clams/app/params.h"
#include "clams/vram/vram.h"
#include "server/event_loop.h"
#include "server/http.h"

namespace clams::server {

using Clock = std::chrono::steady_clock;

/// A request refused or failed before it reached a worker, as a Status
/// (its code decides the HTTP status: HttpStatusFor) and what its answer
/// needs.
struct RequestFailure {
  Status status;
  /// 400 text/plain "Invalid input data..." (the input cannot carry an
  /// error view); otherwise the body is an error view.
  bool input_unreadable = false;
  /// Metric label of a refusal (clams_admission_rejections_total), empty
  /// for input errors.
  std::string reason;
  /// 503: the Retry-After seconds.
  int retry_after_seconds = 0;
};

struct Job {
  std::uint64_t id = 0;
  std::string request_id;   ///< X-Request-Id (the client's or generated)
  std::string traceparent;  ///< as received
  /// The body as received and where the MMIF document is in it.
  std::shared_ptr<const std::string> body;
  std::size_t mmif_offset = 0;
  std::size_t mmif_length = 0;
  RawParams raw;   ///< decoded once: query over envelope
  Params params;   ///< refined
  bool pretty = false;
  vram::RequestClass cls;
  std::string class_label;     ///< memory-relevant parameters in words
  json::object class_values;   ///< the same, as refined values
  bool has_estimate = false;   ///< the server manages GPUs
  vram::Estimate estimate;
  double expected_ms = 0;      ///< the class's mean duration (0 = unknown)
  Clock::time_point arrived;
  std::function<void(HttpResponse)> respond;
  std::shared_ptr<CancelSignal> cancel;
  bool answered = false;

  // Waiting.
  bool queued = false;
  Timers::TimerId deadline = 0;
  std::optional<vram::Decision::Waiting> last_wait;  ///< why it waited, last time

  // Running.
  bool running = false;
  int worker_id = -1;
  int device = -1;
  bool warm = false;
  std::uint64_t need_bytes = 0;
  std::uint64_t free_at_dispatch = 0;
  Clock::time_point dispatched;
  vram::Reservation reservation;
  std::uint64_t window = 0;     ///< sampler window id (0: none)
  bool overlapped = false;      ///< another request ran on its worker meanwhile
  bool client_gone = false;
  Timers::TimerId gone_timer = 0;

  std::string_view mmif() const {
    return body ? std::string_view(*body).substr(mmif_offset, mmif_length) : std::string_view();
  }
};

}  // namespace clams::server

#endif  // CLAMS_SRC_SERVER_JOB_H_
