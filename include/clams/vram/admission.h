// clams/vram/admission.h
//
// The scheduling decision of the front: which queued requests start now,
// on which workers, and which idle workers to evict to make room. Pure:
// the scheduler passes the queue, the workers, the devices (free bytes from
// the latest sample) and the in-flight ledger (vram::Ledger::Snapshot), and
// applies the Decision.
//
// Rules (DESIGN.md §4):
//   * A worker runs up to `threads` requests at once (--threads K). It
//     *holds* a request class once it has run it or is running it. A request
//     may start on a worker of device d with a free slot iff
//     need <= headroom(d) = free_d - outstanding(d) - safety_d, where need is
//     the warm estimate on a worker that holds its class, else the full one
//     (plus fresh_worker_bytes on a worker that holds no GPU memory and runs
//     nothing: its CUDA context). Headroom shrinks by each need admitted in
//     the same call.
//   * outstanding(d) = sum over the workers w on d of
//     max(0, sum of the needs of w's running requests - growth_w): a worker's
//     measured growth is shared by its running requests (the Ledger resets a
//     worker's base when one of several requests ends, so this never counts
//     memory a finished request left behind as progress of the others).
//   * Placement: a worker that holds the class and has a free slot (fewest
//     running, then most headroom), else an idle worker (the one holding the
//     least memory on the device with the most headroom), else a busy worker
//     with a free slot that does not hold the class (full need). A worker
//     with a running request is never evicted.
//   * Arrival order: the oldest waiting request is the head. When the head
//     does not fit, it gets a reservation: the earliest time T at which it
//     will fit on some device d*, computed from the expected end of the
//     requests running there (their class's mean duration, see Details) and
//     the memory their workers give back once idle (usage + outstanding,
//     freed by eviction if needed), plus what idle workers hold now. Others
//     behind the head may start now (EASY backfilling, as batch schedulers
//     do) only when that cannot delay T: on another device than d*, or when
//     they are expected to end by T, or when they fit in the memory d* will
//     have to spare at T and take no worker the head's reservation counts
//     on. If no reservation exists (T infinite: e.g. a foreign process holds
//     the memory), every request that fits may start. Idle workers that hold
//     models may be evicted for the head, and for backfilled requests on
//     devices the reservation does not use.
//   * If the head does not fit and idle workers hold memory on a device
//     where evicting them would make it fit, the least recently used of
//     them are recycled (as few as needed).
//   * Without GPU accounting (no devices, or enforce=false) it is plain FIFO
//     to free slots: a worker holding the class first, then a fresh one
//     (each time fewest running, then the most recently used), then the
//     least recently used idle one, then a busy one with a free slot.
//
// Details: among warm workers that fit, fewest running requests, then the
// device with the most headroom; among cold candidates, ties on headroom go
// to the lower device position, ties on usage to the earlier worker in
// `workers`. Eviction weighs, per device, keeping an idle worker warm for
// the head (room for its warm need) or not (room for its full need); only
// idle workers that hold a model (classes non-empty, usage > 0) are
// evicted, least recently used first; workers already kStopping count as
// memory coming back (no second eviction while it does). After an
// eviction, requests that overtake the head may use only the memory the
// head will not need. Workers whose device is not in `devices` are not used.
// A running request's expected end is started + expected_ms; unknown
// (expected_ms <= 0) counts as started + default_duration; an overdue one
// counts as ending now (the reservation errs early, which protects the
// head). A backfill candidate with an unknown duration is never assumed to
// end by T.
//
// Example (the scheduler, on every event):
//
//   Decision d = Decide(queue, workers, devices, ledger.Snapshot(), Clock::now(), options);
//   for (int id : d.evict) supervisor.Recycle(id);
//   for (const auto& x : d.dispatches) Start(x.request_id, x.worker_id, x.need_bytes);
//   for (const auto& w : d.waiting) RecordWhy(w.request_id, w.reason);
#ifndef CLAMS_VRAM_ADMISSION_H_
#define CLAMS_VRAM_ADMISSION_H_

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "clams/vram/estimate.h"

namespace clams::vram {

using Clock = std::chrono::steady_clock;

struct QueuedRequest {
  std::uint64_t id = 0;
  std::string class_key;
  Estimate estimate;
  Clock::time_point arrived;
  /// Expected duration of a request of this class (profile mean); 0 = unknown.
  double expected_ms = 0;
};

/// kIdle: ready and running nothing; kBusy: ready and running >= 1 request
/// (it may still have free slots).
enum class WorkerState { kStarting, kIdle, kBusy, kStopping };

/// "starting", "idle", "busy", "stopping".
std::string_view WorkerStateName(WorkerState state);

struct WorkerSlot {
  int id = 0;
  int device = 0;  ///< device index the worker is pinned to
  WorkerState state = WorkerState::kStarting;
  int threads = 1;  ///< requests it may run at once
  int running = 0;  ///< requests running on it now
  /// Classes the worker holds (has run, or is running); empty when fresh.
  std::vector<std::string> classes;
  /// Current GPU usage of the worker (latest sample).
  std::uint64_t usage_bytes = 0;
  Clock::time_point last_used;

  bool Holds(std::string_view class_key) const;
  bool HasFreeSlot() const {
    return (state == WorkerState::kIdle || state == WorkerState::kBusy) && running < threads;
  }
};

struct DeviceView {
  int index = 0;
  std::uint64_t total_bytes = 0;
  std::uint64_t free_bytes = 0;  ///< from the latest sample: counts every process, ours and foreign
};

/// One running request, as the ledger sees it.
struct InFlight {
  std::uint64_t request_id = 0;
  int worker_id = 0;
  int device = 0;
  std::uint64_t need_bytes = 0;  ///< what was admitted
  /// How much the request's worker has grown since the ledger's base for
  /// that worker: the same figure for every request of one worker (shared).
  std::uint64_t growth_bytes = 0;
  Clock::time_point started;
  double expected_ms = 0;  ///< expected duration (profile mean; 0 = unknown)
};

/// A CUDA context with cuBLAS and cuDNN loaded costs a process 300-500 MiB
/// (driver and library dependent); 512 MiB covers it. Without it, several
/// fresh workers started at once overrun the safety margin by a context
/// each (bench/vram shows the OOM).
inline constexpr std::uint64_t kDefaultFreshWorkerBytes = std::uint64_t{512} << 20;
/// How long a running request of a class with no measured duration is
/// assumed to take when the head's reservation is computed.
inline constexpr std::chrono::milliseconds kDefaultExpectedDuration{60000};

struct AdmissionOptions {
  /// safety_d = max(headroom_bytes, headroom_fraction x total_d)
  /// (--vram-headroom BYTES or PCT).
  std::uint64_t headroom_bytes = 0;
  double headroom_fraction = 0.0;
  /// False when there are no GPUs: plain FIFO.
  bool enforce = true;
  /// Added to the full need on a worker that holds no GPU memory and runs
  /// nothing: its first request also creates the process's CUDA context,
  /// which app estimates do not include (measured profiles do once a class
  /// has run on a fresh worker). See kDefaultFreshWorkerBytes.
  std::uint64_t fresh_worker_bytes = kDefaultFreshWorkerBytes;
  /// Duration assumed for running requests of unknown duration (see Details).
  std::chrono::milliseconds default_duration = kDefaultExpectedDuration;
};

/// Why a queued request did not start.
enum class WaitReason {
  kNoFreeWorker,  ///< every worker slot was busy or starting
  kMemory,        ///< no device had room for its need
  kReserved,      ///< it fits now, but starting it could delay the head's reservation
};

/// "no_free_worker", "memory", "reserved".
std::string_view WaitReasonName(WaitReason reason);

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
  /// Idle workers to recycle so the head (or a backfilled request) can fit.
  std::vector<int> evict;
  /// Why the head is waiting, when it is.
  struct Blocked {
    std::uint64_t request_id = 0;
    int device = -1;                  ///< the device it came closest to fitting on
    std::uint64_t need_bytes = 0;     ///< its least need on that device's usable workers
    std::int64_t headroom_bytes = 0;  ///< may be negative
    bool no_idle_worker = false;      ///< every worker slot was busy or starting
    /// When it is expected to fit (its reservation); nullopt: not
    /// foreseeable from the running requests (e.g. foreign memory).
    std::optional<Clock::time_point> reserved_start;
  };
  std::optional<Blocked> head_blocked;
  /// Every queued request that did not start, in queue order, with why.
  struct Waiting {
    std::uint64_t request_id = 0;
    WaitReason reason = WaitReason::kNoFreeWorker;
    int device = -1;                  ///< kMemory: the device it came closest on
    std::uint64_t need_bytes = 0;     ///< kMemory: its need there
    std::int64_t headroom_bytes = 0;  ///< kMemory: what that device could give
  };
  std::vector<Waiting> waiting;
};

/// safety_d for a device (headroom_fraction clamped to [0, 1], rounded up).
std::uint64_t SafetyBytes(const DeviceView& device, const AdmissionOptions& options);
/// outstanding(d): sum over the workers on `device_index` of
/// max(0, sum of needs - shared growth), the ledger's reservation
/// (clams_gpu_memory_reserved_bytes).
std::uint64_t OutstandingBytes(int device_index, const std::vector<InFlight>& in_flight);
/// headroom(d) from the ledger (may be negative).
std::int64_t HeadroomBytes(const DeviceView& device, const std::vector<InFlight>& in_flight,
                           const AdmissionOptions& options);
/// True if some device could ever hold `need_bytes` (total - safety).
/// Without GPU accounting (no devices, or enforce=false) nothing is refused:
/// true.
bool CanEverFit(std::uint64_t need_bytes, const std::vector<DeviceView>& devices,
                const AdmissionOptions& options);
/// The most any device could ever give one request: max over devices of
/// total - safety (0 without devices).
std::uint64_t LargestPossibleBytes(const std::vector<DeviceView>& devices,
                                   const AdmissionOptions& options);

/// The decision for this moment. `queue` is in arrival order. Pure and
/// allocation-light: O(queue x workers + in_flight log in_flight).
Decision Decide(const std::vector<QueuedRequest>& queue, const std::vector<WorkerSlot>& workers,
                const std::vector<DeviceView>& devices, const std::vector<InFlight>& in_flight,
                Clock::time_point now, const AdmissionOptions& options);

/// Seconds a client should wait before retrying a request that has
/// `ahead` requests before it: from the expected finish times of the
/// in-flight requests (expected_ms; unknown durations count as
/// `default_ms`) and the number of worker slots. At least 1, at most a day.
/// Each in-flight request frees its slot at its expected end (now if
/// overdue), idle slots are free now, and each of the `ahead` requests
/// takes the mean expected duration of the in-flight ones (default_ms if
/// none) on the next free slot; the answer is when the next slot is free
/// after those, rounded up.
int RetryAfterSeconds(std::size_t ahead, const std::vector<InFlight>& in_flight,
                      std::size_t slots, Clock::time_point now, double default_ms = 5000);

}  // namespace clams::vram

#endif  // CLAMS_VRAM_ADMISSION_H_
