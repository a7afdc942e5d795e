// clams/vram/admission.h
//
// The scheduling decision of the front: which queued requests start now,
// on which workers, and which idle workers to evict to make room. Pure:
// the scheduler passes the queue, the workers, the devices (free bytes from
// the latest sample) and the in-flight ledger, and applies the Decision.
//
// Rules (DESIGN.md §4):
//   * A request may start on an idle worker of device d iff
//     need <= headroom(d) = free_d - sum(outstanding on d) - safety_d,
//     where need = warm estimate if the worker last served the same class,
//     else full (plus fresh_worker_bytes on a worker that holds no GPU
//     memory yet: its CUDA context). Headroom shrinks by each need admitted
//     in the same call.
//   * Worker choice for a request: an idle worker warm for its class (on
//     the device where it fits), else the idle worker holding the least
//     memory on the device with the most headroom where it fits.
//   * Arrival order: the oldest waiting request is the head. Requests
//     behind a head that does not fit may start ahead of it (backfill), but
//     only while the head has been the blocked head for less than
//     `backfill_window` (from QueuedRequest::head_since, else from its
//     arrival); after that nothing new starts until the head does, so once
//     a request is the head it waits at most backfill_window + the longest
//     running time of the requests started in that window (bounded by
//     --request-timeout when set). The window runs from head_since rather
//     than arrival because under sustained overload every request has
//     waited longer than the window by the time it reaches the head, which
//     would turn backfill off for good and leave workers idle behind it.
//   * If the head does not fit and idle workers hold memory on a device
//     where evicting them would make it fit, the least recently used of
//     them are recycled (as few as needed).
//   * Without GPU accounting (no devices, or enforce=false) it is plain FIFO
//     to idle workers: a worker warm for the class first, then a fresh one,
//     then the least recently used.
//
// Details: among warm workers that fit, the one on the device with the most
// headroom; among cold candidates, ties on headroom go to the lower device
// position, ties on usage to the earlier worker in `workers`. Eviction
// weighs, per device, keeping an idle worker warm for the head (room for
// its warm need) or not (room for its full need); only idle workers that
// hold a model (last_class set, usage > 0) are evicted, least recently used
// first; workers already kStopping count as memory coming back (no second
// eviction while it does). After an eviction, requests that overtake the
// head may use only the memory the head will not need. Workers whose
// device is not in `devices` are not used.
//
// Example (the scheduler, on every event):
//
//   Decision d = Decide(queue, workers, devices, in_flight, Clock::now(), options);
//   for (int id : d.evict) supervisor.Recycle(id);
//   for (const auto& x : d.dispatches) Start(x.request_id, x.worker_id, x.need_bytes);
//   if (d.head_blocked && !d.head_blocked->no_idle_worker)
//   MarkHeadSince(d.head_blocked->request_id);
#ifndef CLAMS_VRAM_ADMISSION_H_
#define CLAMS_VRAM_ADMISSION_H_

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "clams/vram/estimate.h"

namespace clams::vram {

using Clock = std::chrono::steady_clock;

struct QueuedRequest {
  std::uint64_t id = 0;
  std::string class_key;
  Estimate estimate;
  Clock::time_point arrived;
  /// When this request became the blocked head: the scheduler sets it to
  /// `now` the first time Decision::head_blocked names it with
  /// no_idle_worker false, and keeps it until the request starts. The
  /// backfill window runs from here; unset, from `arrived`.
  std::optional<Clock::time_point> head_since{};
};

enum class WorkerState { kStarting, kIdle, kBusy, kStopping };

struct WorkerSlot {
  int id = 0;
  int device = 0;  ///< device index the worker is pinned to
  WorkerState state = WorkerState::kStarting;
  /// Class of the worker's last successful request; empty when fresh.
  std::string last_class;
  /// Current GPU usage of the worker (latest sample).
  std::uint64_t usage_bytes = 0;
  Clock::time_point last_used;
};

struct DeviceView {
  int index = 0;
  std::uint64_t total_bytes = 0;
  std::uint64_t free_bytes = 0;  ///< from the latest sample: counts every process, ours and foreign
};

struct InFlight {
  std::uint64_t request_id = 0;
  int worker_id = 0;
  int device = 0;
  std::uint64_t need_bytes = 0;    ///< what was admitted
  std::uint64_t growth_bytes = 0;  ///< how much the worker has grown since dispatch
  Clock::time_point started;
  double expected_ms = 0;  ///< expected duration (profile mean; 0 = unknown)
};

/// A CUDA context with cuBLAS and cuDNN loaded costs a process 300-500 MiB
/// (driver and library dependent); 512 MiB covers it. Without it, several
/// fresh workers started at once overrun the safety margin by a context
/// each (bench/vram shows the OOM).
inline constexpr std::uint64_t kDefaultFreshWorkerBytes = std::uint64_t{512} << 20;

struct AdmissionOptions {
  /// safety_d = max(headroom_bytes, headroom_fraction x total_d)
  /// (--vram-headroom BYTES or PCT).
  std::uint64_t headroom_bytes = 0;
  double headroom_fraction = 0.0;
  /// How long requests may overtake a head that does not fit.
  std::chrono::milliseconds backfill_window{10000};
  /// False when there are no GPUs: plain FIFO.
  bool enforce = true;
  /// Added to the full need on a worker that holds no GPU memory yet
  /// (usage_bytes == 0): its first request also creates the process's CUDA
  /// context, which app estimates do not include (measured profiles do once
  /// a class has run on a fresh worker). See kDefaultFreshWorkerBytes.
  std::uint64_t fresh_worker_bytes = kDefaultFreshWorkerBytes;
};

struct Decision {
  struct Dispatch {
    std::uint64_t request_id = 0;
    int worker_id = 0;
    /// What was admitted (warm, full, or full + fresh_worker_bytes): the
    /// InFlight::need_bytes of the request.
    std::uint64_t need_bytes = 0;
    bool warm = false;
  };
  std::vector<Dispatch> dispatches;
  /// Idle workers to recycle so the head can fit.
  std::vector<int> evict;
  /// Why the head is waiting, when it is.
  struct Blocked {
    std::uint64_t request_id = 0;
    int device = -1;                  ///< the device it came closest to fitting on
    std::uint64_t need_bytes = 0;     ///< its least need on that device's idle workers
    std::int64_t headroom_bytes = 0;  ///< may be negative
    bool no_idle_worker = false;      ///< every worker was busy or starting
  };
  std::optional<Blocked> head_blocked;
};

/// safety_d for a device (headroom_fraction clamped to [0, 1], rounded up).
std::uint64_t SafetyBytes(const DeviceView& device, const AdmissionOptions& options);
/// sum(outstanding_i) on device `device_index`: what the requests running
/// there were admitted for and have not allocated yet (the ledger's
/// reservation, clams_gpu_memory_reserved_bytes).
std::uint64_t OutstandingBytes(int device_index, const std::vector<InFlight>& in_flight);
/// headroom(d) from the ledger (may be negative).
std::int64_t HeadroomBytes(const DeviceView& device, const std::vector<InFlight>& in_flight,
                           const AdmissionOptions& options);
/// True if some device could ever hold `need_bytes` (total - safety).
/// Without GPU accounting (no devices, or enforce=false) nothing is refused:
/// true.
bool CanEverFit(std::uint64_t need_bytes, const std::vector<DeviceView>& devices,
                const AdmissionOptions& options);

/// The decision for this moment. `queue` is in arrival order. Pure and
/// allocation-light: O(queue x workers).
Decision Decide(const std::vector<QueuedRequest>& queue, const std::vector<WorkerSlot>& workers,
                const std::vector<DeviceView>& devices, const std::vector<InFlight>& in_flight,
                Clock::time_point now, const AdmissionOptions& options);

/// Seconds a client should wait before retrying a request that has
/// `ahead` requests before it: from the expected finish times of the
/// in-flight requests (expected_ms; unknown durations count as
/// `default_ms`) and the number of workers. At least 1, at most a day.
/// Each in-flight request frees its worker at its expected end (now if
/// overdue), idle workers are free now, and each of the `ahead` requests
/// takes the mean expected duration of the in-flight ones (default_ms if
/// none) on the next free worker; the answer is when the next worker is
/// free after those, rounded up.
int RetryAfterSeconds(std::size_t ahead, const std::vector<InFlight>& in_flight,
                      std::size_t workers, Clock::time_point now, double default_ms = 5000);

}  // namespace clams::vram

#endif  // CLAMS_VRAM_ADMISSION_H_
