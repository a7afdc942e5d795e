// The admission decision (DESIGN.md §4): who starts now, where, and which
// idle workers to recycle.
#include "clams/vram/admission.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <queue>
#include <vector>

namespace clams::vram {
namespace {

constexpr std::int64_t kInt64Max = std::numeric_limits<std::int64_t>::max();

std::int64_t ToSigned(std::uint64_t v) {
  return v > static_cast<std::uint64_t>(kInt64Max) ? kInt64Max : static_cast<std::int64_t>(v);
}

// a - b without overflow (both are byte counts far below 2^62 in practice;
// the clamps only keep absurd inputs defined).
std::int64_t SubSat(std::int64_t a, std::int64_t b) {
  std::int64_t r = 0;
  if (__builtin_sub_overflow(a, b, &r)) {
    return b > 0 ? std::numeric_limits<std::int64_t>::min() : kInt64Max;
  }
  return r;
}
std::int64_t AddSat(std::int64_t a, std::int64_t b) {
  std::int64_t r = 0;
  if (__builtin_add_overflow(a, b, &r)) {
    return b > 0 ? kInt64Max : std::numeric_limits<std::int64_t>::min();
  }
  return r;
}

// Per-device state of one Decide() call.
struct DeviceState {
  int index = 0;
  std::int64_t headroom = 0;  // shrinks with each admission of this call
  std::int64_t pending = 0;   // usage of stopping workers: memory about to come back
};

class Decider {
 public:
  Decider(const std::vector<QueuedRequest>& queue, const std::vector<WorkerSlot>& workers,
          const std::vector<DeviceView>& devices, const std::vector<InFlight>& in_flight,
          Clock::time_point now, const AdmissionOptions& options)
      : queue_(queue),
        workers_(workers),
        now_(now),
        options_(options),
        fresh_bytes_(ToSigned(options.fresh_worker_bytes)) {
    devices_.reserve(devices.size());
    for (const DeviceView& d : devices) {
      devices_.push_back({d.index, HeadroomBytes(d, in_flight, options), 0});
    }
    worker_device_.assign(workers.size(), -1);
    taken_.assign(workers.size(), false);
    for (std::size_t w = 0; w < workers.size(); ++w) {
      worker_device_[w] = DevicePos(workers[w].device);
      if (workers[w].state == WorkerState::kIdle) {
        ++free_idle_;
      } else if (workers[w].state == WorkerState::kStopping && worker_device_[w] >= 0) {
        DeviceState& d = devices_[worker_device_[w]];
        d.pending = AddSat(d.pending, ToSigned(workers[w].usage_bytes));
      }
    }
  }

  Decision Run() {
    Decision out;
    bool backfilling = false;
    for (const QueuedRequest& request : queue_) {
      if (free_idle_ == 0) {
        if (!backfilling) out.head_blocked = BlockedNoWorker(request);
        break;
      }
      if (Place(request, out)) continue;
      if (backfilling) continue;
      // `request` is the head and does not fit.
      out.head_blocked = BlockedOnMemory(request);
      EvictFor(request, out);
      if (now_ - request.head_since.value_or(request.arrived) >= options_.backfill_window) break;
      backfilling = true;
    }
    return out;
  }

 private:
  int DevicePos(int device_index) const {
    for (std::size_t i = 0; i < devices_.size(); ++i) {
      if (devices_[i].index == device_index) return static_cast<int>(i);
    }
    return -1;
  }

  bool Usable(std::size_t w) const {
    return workers_[w].state == WorkerState::kIdle && !taken_[w] && worker_device_[w] >= 0;
  }

  bool IsWarm(std::size_t w, const QueuedRequest& r) const {
    return !workers_[w].last_class.empty() && workers_[w].last_class == r.class_key;
  }

  void Dispatch(std::size_t w, const QueuedRequest& r, std::uint64_t need, bool warm,
                Decision& out) {
    taken_[w] = true;
    --free_idle_;
    DeviceState& d = devices_[worker_device_[w]];
    d.headroom = SubSat(d.headroom, ToSigned(need));
    out.dispatches.push_back({r.id, workers_[w].id, need, warm});
  }

  // Warm worker first (on the device with the most headroom where the warm
  // need fits), else the least-memory idle worker on the device with the
  // most headroom where the full need fits.
  bool Place(const QueuedRequest& r, Decision& out) {
    const std::int64_t warm_need = ToSigned(r.estimate.warm_bytes);
    const std::int64_t full_need = ToSigned(r.estimate.full_bytes);
    int best_warm = -1;
    for (std::size_t w = 0; w < workers_.size(); ++w) {
      if (!Usable(w) || !IsWarm(w, r)) continue;
      const std::int64_t headroom = devices_[worker_device_[w]].headroom;
      if (warm_need > headroom) continue;
      if (best_warm < 0 || headroom > devices_[worker_device_[best_warm]].headroom) {
        best_warm = static_cast<int>(w);
      }
    }
    if (best_warm >= 0) {
      Dispatch(best_warm, r, r.estimate.warm_bytes, /*warm=*/true, out);
      return true;
    }
    int best = -1;
    for (std::size_t w = 0; w < workers_.size(); ++w) {
      if (!Usable(w)) continue;
      const std::int64_t headroom = devices_[worker_device_[w]].headroom;
      if (ColdNeed(w, full_need) > headroom) continue;
      if (best < 0) {
        best = static_cast<int>(w);
        continue;
      }
      const std::int64_t best_headroom = devices_[worker_device_[best]].headroom;
      if (headroom > best_headroom ||
          (headroom == best_headroom && worker_device_[w] == worker_device_[best] &&
           workers_[w].usage_bytes < workers_[best].usage_bytes)) {
        best = static_cast<int>(w);
      }
    }
    if (best < 0) return false;
    Dispatch(best, r, static_cast<std::uint64_t>(ColdNeed(best, full_need)), IsWarm(best, r), out);
    return true;
  }

  // A fresh worker (no GPU memory yet) first creates its CUDA context.
  std::int64_t ColdNeed(std::size_t w, std::int64_t full_need) const {
    return workers_[w].usage_bytes == 0 ? AddSat(full_need, fresh_bytes_) : full_need;
  }

  // The least `r` needs on an idle worker of device `pos`: its warm need on
  // a worker warm for it (that worker in *warm_worker), else its full need
  // (plus the context on a fresh worker). kInt64Max without an idle worker.
  std::int64_t NeedOn(int pos, const QueuedRequest& r, int* warm_worker) const {
    *warm_worker = -1;
    std::int64_t need = kInt64Max;
    for (std::size_t w = 0; w < workers_.size(); ++w) {
      if (!Usable(w) || worker_device_[w] != pos) continue;
      if (IsWarm(w, r) && *warm_worker < 0) {
        *warm_worker = static_cast<int>(w);
        need = std::min(need, ToSigned(r.estimate.warm_bytes));
      } else {
        need = std::min(need, ColdNeed(w, ToSigned(r.estimate.full_bytes)));
      }
    }
    return need;
  }

  Decision::Blocked BlockedNoWorker(const QueuedRequest& r) const {
    Decision::Blocked b;
    b.request_id = r.id;
    b.need_bytes = r.estimate.full_bytes;
    b.no_idle_worker = true;
    for (const DeviceState& d : devices_) {
      if (b.device < 0 || d.headroom > b.headroom_bytes) {
        b.device = d.index;
        b.headroom_bytes = d.headroom;
      }
    }
    return b;
  }

  Decision::Blocked BlockedOnMemory(const QueuedRequest& r) const {
    Decision::Blocked b;
    b.request_id = r.id;
    b.need_bytes = r.estimate.full_bytes;
    bool found = false;
    std::int64_t best_gap = 0;
    for (std::size_t pos = 0; pos < devices_.size(); ++pos) {
      bool has_idle = false;
      for (std::size_t w = 0; w < workers_.size() && !has_idle; ++w) {
        has_idle = Usable(w) && worker_device_[w] == static_cast<int>(pos);
      }
      if (!has_idle) continue;
      int warm_worker = -1;
      const std::int64_t need = NeedOn(static_cast<int>(pos), r, &warm_worker);
      const std::int64_t gap = SubSat(devices_[pos].headroom, need);
      if (!found || gap > best_gap) {
        found = true;
        best_gap = gap;
        b.device = devices_[pos].index;
        b.need_bytes = static_cast<std::uint64_t>(need);
        b.headroom_bytes = devices_[pos].headroom;
      }
    }
    if (!found) return BlockedNoWorker(r);
    return b;
  }

  // Idle workers on device `pos` that hold a model, least recently used
  // first, without `keep`.
  void EvictionCandidates(int pos, int keep, std::vector<std::size_t>* out) const {
    out->clear();
    for (std::size_t w = 0; w < workers_.size(); ++w) {
      if (!Usable(w) || worker_device_[w] != pos || static_cast<int>(w) == keep) continue;
      if (workers_[w].last_class.empty() || workers_[w].usage_bytes == 0) continue;
      out->push_back(w);
    }
    std::sort(out->begin(), out->end(), [&](std::size_t a, std::size_t b) {
      if (workers_[a].last_used != workers_[b].last_used) {
        return workers_[a].last_used < workers_[b].last_used;
      }
      return workers_[a].id < workers_[b].id;
    });
  }

  // How many of `candidates` (in order) must go so that `need` fits in
  // `available`; -1 if all of them are not enough. `available` becomes the
  // memory there will be.
  static int CountNeeded(const std::vector<std::size_t>& candidates,
                         const std::vector<WorkerSlot>& workers, std::int64_t need,
                         std::int64_t* available) {
    std::size_t count = 0;
    while (*available < need && count < candidates.size()) {
      *available = AddSat(*available, ToSigned(workers[candidates[count]].usage_bytes));
      ++count;
    }
    return *available < need ? -1 : static_cast<int>(count);
  }

  // If recycling least-recently-used idle workers that hold a model would
  // let the head fit on some device, recycle as few as needed, and keep the
  // memory they free (and that of workers already stopping) for the head.
  // Per device two ways are weighed: keep an idle worker warm for the head
  // and free room for its warm need, or free room for its full need on any
  // worker (the warm ones may go too: until a class is measured warm, its
  // warm estimate is its full one, and keeping the warm worker could then
  // block the head for ever).
  void EvictFor(const QueuedRequest& head, Decision& out) {
    int best_pos = -1;
    int best_count = 0;
    std::int64_t best_surplus = 0;
    std::vector<std::size_t> best_victims;
    std::vector<std::size_t> candidates;
    for (std::size_t pos = 0; pos < devices_.size(); ++pos) {
      const int p = static_cast<int>(pos);
      bool has_idle = false;
      for (std::size_t w = 0; w < workers_.size() && !has_idle; ++w) {
        has_idle = Usable(w) && worker_device_[w] == p;
      }
      // Stopping workers hand the head their memory even with no idle worker
      // here now (their replacements will come).
      if (!has_idle && devices_[pos].pending == 0) continue;
      const std::int64_t base = AddSat(devices_[pos].headroom, devices_[pos].pending);
      int warm_worker = -1;
      NeedOn(p, head, &warm_worker);
      const std::int64_t warm_need = ToSigned(head.estimate.warm_bytes);
      // Without the warm worker the head may land on a fresh replacement.
      const std::int64_t full_need = AddSat(ToSigned(head.estimate.full_bytes), fresh_bytes_);
      // Way 0 keeps the warm worker (if there is one); way 1 does not.
      for (int way = 0; way < 2; ++way) {
        if (way == 0 && warm_worker < 0) continue;
        const int keep = way == 0 ? warm_worker : -1;
        const std::int64_t need = way == 0 ? warm_need : full_need;
        EvictionCandidates(p, keep, &candidates);
        std::int64_t available = base;
        const int count = CountNeeded(candidates, workers_, need, &available);
        if (count < 0) continue;
        const std::int64_t surplus = SubSat(available, need);
        if (best_pos < 0 || count < best_count || (count == best_count && surplus > best_surplus)) {
          best_pos = p;
          best_count = count;
          best_surplus = surplus;
          best_victims.assign(candidates.begin(), candidates.begin() + count);
        }
      }
    }
    if (best_pos < 0) return;
    for (std::size_t w : best_victims) {
      taken_[w] = true;
      --free_idle_;
      out.evict.push_back(workers_[w].id);
    }
    // Requests that overtake the head may use only what the head leaves.
    DeviceState& d = devices_[best_pos];
    d.headroom = std::min(d.headroom, best_surplus);
  }

  const std::vector<QueuedRequest>& queue_;
  const std::vector<WorkerSlot>& workers_;
  Clock::time_point now_;
  const AdmissionOptions& options_;
  const std::int64_t fresh_bytes_;
  std::vector<DeviceState> devices_;
  std::vector<int> worker_device_;  // position in devices_, -1 if unknown
  std::vector<bool> taken_;         // dispatched or evicted in this call
  std::size_t free_idle_ = 0;       // idle workers not yet taken
};

// No GPU accounting: arrival order to idle workers, preferring a worker
// warm for the class, then a fresh one, then the least recently used.
Decision DecideFifo(const std::vector<QueuedRequest>& queue,
                    const std::vector<WorkerSlot>& workers) {
  Decision out;
  std::vector<bool> taken(workers.size(), false);
  for (const QueuedRequest& r : queue) {
    int best = -1;
    int best_rank = 0;
    for (std::size_t w = 0; w < workers.size(); ++w) {
      if (workers[w].state != WorkerState::kIdle || taken[w]) continue;
      const WorkerSlot& s = workers[w];
      const int rank = (!s.last_class.empty() && s.last_class == r.class_key) ? 0
                       : s.last_class.empty()                                 ? 1
                                                                              : 2;
      if (best < 0 || rank < best_rank ||
          (rank == best_rank && s.last_used < workers[best].last_used)) {
        best = static_cast<int>(w);
        best_rank = rank;
      }
    }
    if (best < 0) {
      Decision::Blocked b;
      b.request_id = r.id;
      b.need_bytes = r.estimate.full_bytes;
      b.no_idle_worker = true;
      out.head_blocked = b;
      break;
    }
    taken[best] = true;
    const bool warm = best_rank == 0;
    out.dispatches.push_back(
        {r.id, workers[best].id, warm ? r.estimate.warm_bytes : r.estimate.full_bytes, warm});
  }
  return out;
}

}  // namespace

std::uint64_t SafetyBytes(const DeviceView& device, const AdmissionOptions& options) {
  const double fraction = std::clamp(options.headroom_fraction, 0.0, 1.0);
  return std::max(options.headroom_bytes, ScaleBytes(device.total_bytes, fraction));
}

std::uint64_t OutstandingBytes(int device_index, const std::vector<InFlight>& in_flight) {
  std::uint64_t outstanding = 0;
  for (const InFlight& f : in_flight) {
    if (f.device == device_index && f.need_bytes > f.growth_bytes) {
      const std::uint64_t left = f.need_bytes - f.growth_bytes;
      outstanding = left > UINT64_MAX - outstanding ? UINT64_MAX : outstanding + left;
    }
  }
  return outstanding;
}

std::int64_t HeadroomBytes(const DeviceView& device, const std::vector<InFlight>& in_flight,
                           const AdmissionOptions& options) {
  const std::int64_t headroom =
      SubSat(ToSigned(device.free_bytes), ToSigned(OutstandingBytes(device.index, in_flight)));
  return SubSat(headroom, ToSigned(SafetyBytes(device, options)));
}

bool CanEverFit(std::uint64_t need_bytes, const std::vector<DeviceView>& devices,
                const AdmissionOptions& options) {
  if (devices.empty() || !options.enforce) return true;
  for (const DeviceView& d : devices) {
    const std::uint64_t safety = SafetyBytes(d, options);
    if (d.total_bytes >= safety && d.total_bytes - safety >= need_bytes) return true;
  }
  return false;
}

Decision Decide(const std::vector<QueuedRequest>& queue, const std::vector<WorkerSlot>& workers,
                const std::vector<DeviceView>& devices, const std::vector<InFlight>& in_flight,
                Clock::time_point now, const AdmissionOptions& options) {
  if (queue.empty()) return Decision{};
  if (!options.enforce || devices.empty()) return DecideFifo(queue, workers);
  return Decider(queue, workers, devices, in_flight, now, options).Run();
}

int RetryAfterSeconds(std::size_t ahead, const std::vector<InFlight>& in_flight,
                      std::size_t workers, Clock::time_point now, double default_ms) {
  using Ms = std::chrono::duration<double, std::milli>;
  if (!(default_ms > 0) || !std::isfinite(default_ms)) default_ms = 0;
  // More requests in flight than workers means the count is stale; trust the ledger.
  const std::size_t slots = std::max({workers, in_flight.size(), std::size_t{1}});
  // When each worker is next free, in ms from now: in-flight requests finish
  // at their expected end (at least now); the other workers are free now.
  std::priority_queue<double, std::vector<double>, std::greater<double>> free_at;
  double duration_sum = 0;
  for (const InFlight& f : in_flight) {
    const double expected = f.expected_ms > 0 ? f.expected_ms : default_ms;
    duration_sum += expected;
    const double elapsed = Ms(now - f.started).count();
    free_at.push(std::max(0.0, expected - elapsed));
  }
  while (free_at.size() < slots) free_at.push(0.0);
  // Each request ahead takes the mean expected duration on the next free worker.
  const double per_request =
      in_flight.empty() ? default_ms : duration_sum / static_cast<double>(in_flight.size());
  for (std::size_t i = 0; i < ahead; ++i) {
    const double t = free_at.top();
    free_at.pop();
    free_at.push(t + per_request);
  }
  const double wait_s = free_at.top() / 1000.0;
  // Retry-After is a whole number of seconds; a day is already absurd.
  constexpr double kMaxRetryAfterSeconds = 86400;
  return static_cast<int>(std::clamp(std::ceil(wait_s), 1.0, kMaxRetryAfterSeconds));
}

}  // namespace clams::vram
