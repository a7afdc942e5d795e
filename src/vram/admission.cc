// The admission decision (DESIGN.md §4): who starts now, where, and which
// idle workers to recycle; EASY backfilling behind a head that does not fit.
#include "clams/vram/admission.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <queue>
#include <vector>

namespace clams::vram {
namespace {

constexpr std::int64_t kInt64Max = std::numeric_limits<std::int64_t>::max();

std::int64_t ToSigned(std::uint64_t v) {
  return v > static_cast<std::uint64_t>(kInt64Max) ? kInt64Max : static_cast<std::int64_t>(v);
}

// a - b and a + b without overflow (byte counts are far below 2^62 in
// practice; the clamps only keep absurd inputs defined).
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

Clock::duration Millis(double ms) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double, std::milli>(ms));
}

// Per-device state of one Decide() call.
struct DeviceState {
  int index = 0;
  std::int64_t headroom = 0;  // shrinks with each admission of this call
  std::int64_t pending = 0;   // usage of stopping workers: memory about to come back
};

// Per-worker state of one Decide() call.
struct WorkerCall {
  int device_pos = -1;       // position in devices_, -1 if unknown
  int running = 0;           // running requests, including those started in this call
  bool evicted = false;      // chosen for eviction in this call
  bool started_now = false;  // got a request in this call (no longer fresh)
  std::vector<std::string_view> added_classes;  // classes started on it in this call
  // Expected time at which it runs nothing any more (max over its requests).
  Clock::time_point idle_at{};
  std::int64_t outstanding = 0;  // its share of outstanding(d), plus needs admitted now
};

// The head's reservation (EASY backfilling).
struct Plan {
  bool active = false;   // a head is blocked and backfilling is restricted by the plan
  bool finite = false;   // a reservation exists (T below)
  int device_pos = -1;   // d*
  Clock::time_point start{};
  std::int64_t extra = 0;           // memory d* will have to spare at `start`
  std::vector<bool> protected_;     // workers the reservation counts on
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
    calls_.resize(workers.size());
    std::map<int, std::size_t> by_id;
    for (std::size_t w = 0; w < workers.size(); ++w) {
      by_id[workers[w].id] = w;
      WorkerCall& c = calls_[w];
      c.device_pos = DevicePos(workers[w].device);
      c.running = workers[w].running;
      c.idle_at = now_;
      if (workers[w].state == WorkerState::kStopping && c.device_pos >= 0) {
        DeviceState& d = devices_[c.device_pos];
        d.pending = AddSat(d.pending, ToSigned(workers[w].usage_bytes));
      }
    }
    // Expected ends and outstanding shares of the running requests.
    std::map<int, std::pair<std::int64_t, std::int64_t>> need_growth;  // worker -> (sum need, growth)
    for (const InFlight& f : in_flight) {
      auto it = by_id.find(f.worker_id);
      if (it == by_id.end()) continue;
      WorkerCall& c = calls_[it->second];
      Clock::time_point end = f.started + (f.expected_ms > 0 ? Millis(f.expected_ms)
                                                             : Clock::duration(options_.default_duration));
      if (end < now_) end = now_;  // overdue: assume it ends now (errs early, protects the head)
      c.idle_at = std::max(c.idle_at, end);
      auto& ng = need_growth[f.worker_id];
      ng.first = AddSat(ng.first, ToSigned(f.need_bytes));
      ng.second = std::max(ng.second, ToSigned(f.growth_bytes));
    }
    for (const auto& [id, ng] : need_growth) {
      calls_[by_id[id]].outstanding = std::max<std::int64_t>(0, SubSat(ng.first, ng.second));
    }
  }

  Decision Run() {
    Decision out;
    bool head_seen = false;
    for (const QueuedRequest& request : queue_) {
      if (!AnyFreeSlot()) {
        if (!head_seen) {
          head_seen = true;
          out.head_blocked = BlockedNoWorker(request);
        }
        out.waiting.push_back({request.id, WaitReason::kNoFreeWorker});
        continue;
      }
      if (!head_seen) {
        if (Place(request, nullptr, out)) continue;
        head_seen = true;
        // `request` is the head and does not fit: reserve its start, then
        // free memory for it if idle models are in the way.
        plan_ = MakePlan(request);
        out.head_blocked = BlockedOnMemory(request);
        if (plan_.finite) out.head_blocked->reserved_start = plan_.start;
        EvictFor(request, /*only_device=*/-1, /*for_head=*/true, out);
        out.waiting.push_back(WaitingOnMemory(request));
        continue;
      }
      // Behind the head: backfill where it cannot delay the reservation.
      if (Place(request, &plan_, out)) continue;
      if (Place(request, nullptr, out, /*dry_run=*/true)) {
        out.waiting.push_back({request.id, WaitReason::kReserved});
        continue;
      }
      // It does not fit anywhere now: idle models may make room, but only
      // where that takes nothing the head's reservation counts on.
      if (!plan_.finite) {
        EvictFor(request, -1, /*for_head=*/false, out);
      } else {
        for (std::size_t pos = 0; pos < devices_.size(); ++pos) {
          if (static_cast<int>(pos) != plan_.device_pos && EvictFor(request, static_cast<int>(pos), false, out)) break;
        }
      }
      out.waiting.push_back(WaitingOnMemory(request));
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
    const WorkerSlot& s = workers_[w];
    const WorkerCall& c = calls_[w];
    return (s.state == WorkerState::kIdle || s.state == WorkerState::kBusy) && !c.evicted && c.device_pos >= 0 &&
           c.running < std::max(1, s.threads);
  }

  bool AnyFreeSlot() const {
    for (std::size_t w = 0; w < workers_.size(); ++w) {
      if (Usable(w)) return true;
    }
    return false;
  }

  bool Idle(std::size_t w) const { return calls_[w].running == 0; }

  bool Holds(std::size_t w, std::string_view cls) const {
    if (workers_[w].Holds(cls)) return true;
    const auto& added = calls_[w].added_classes;
    return std::find(added.begin(), added.end(), cls) != added.end();
  }

  bool Fresh(std::size_t w) const {
    return workers_[w].usage_bytes == 0 && Idle(w) && !calls_[w].started_now;
  }

  // The need of `r` on worker `w`: warm if it holds the class, else full
  // (plus the CUDA context on a fresh worker).
  std::int64_t NeedOn(std::size_t w, const QueuedRequest& r, bool* warm) const {
    *warm = Holds(w, r.class_key);
    if (*warm) return ToSigned(r.estimate.warm_bytes);
    const std::int64_t full = ToSigned(r.estimate.full_bytes);
    return Fresh(w) ? AddSat(full, fresh_bytes_) : full;
  }

  Clock::time_point ExpectedEnd(const QueuedRequest& r) const {
    if (r.expected_ms <= 0) return Clock::time_point::max();
    return now_ + Millis(r.expected_ms);
  }

  // Whether the plan lets `r` start on worker `w` with `need` (warm or
  // not); consumes the plan's spare memory when that is what allows it.
  // Ending by T is enough only if what `r` takes is back by T: its
  // activations (warm), or a worker that is idle by T (evictable then).
  bool Allowed(const Plan* plan, std::size_t w, std::int64_t need, bool warm, const QueuedRequest& r,
               bool consume) {
    if (plan == nullptr || !plan->active || !plan->finite) return true;
    if (calls_[w].device_pos != plan->device_pos) return true;
    const Clock::time_point end = ExpectedEnd(r);
    if (end <= plan->start && (warm || Idle(w) || calls_[w].idle_at <= plan->start)) return true;
    if (plan->protected_[w]) return false;
    if (need > plan->extra) return false;
    if (consume) plan_.extra = SubSat(plan_.extra, need);
    return true;
  }

  void Dispatch(std::size_t w, const QueuedRequest& r, std::int64_t need, bool warm, Decision& out) {
    WorkerCall& c = calls_[w];
    c.running++;
    c.started_now = true;
    c.outstanding = AddSat(c.outstanding, need);
    const Clock::time_point end = ExpectedEnd(r);
    c.idle_at = std::max(c.idle_at, end == Clock::time_point::max() ? now_ + options_.default_duration : end);
    if (!Holds(w, r.class_key)) c.added_classes.push_back(r.class_key);
    DeviceState& d = devices_[c.device_pos];
    d.headroom = SubSat(d.headroom, need);
    out.dispatches.push_back({r.id, workers_[w].id, static_cast<std::uint64_t>(std::max<std::int64_t>(0, need)), warm});
  }

  // Picks the best allowed worker for `r` and dispatches it there (unless
  // dry_run). Order: a worker holding the class with a free slot (fewest
  // running, then most headroom), else an idle worker (most headroom, then
  // least usage), else a busy worker with a free slot (most headroom, then
  // fewest running).
  bool Place(const QueuedRequest& r, const Plan* plan, Decision& out, bool dry_run = false) {
    int best = -1;
    int best_rank = 0;
    std::int64_t best_need = 0;
    bool best_warm = false;
    for (std::size_t w = 0; w < workers_.size(); ++w) {
      if (!Usable(w)) continue;
      bool warm = false;
      const std::int64_t need = NeedOn(w, r, &warm);
      const std::int64_t headroom = devices_[calls_[w].device_pos].headroom;
      if (need > headroom) continue;
      if (!Allowed(plan, w, need, warm, r, /*consume=*/false)) continue;
      const int rank = warm ? 0 : Idle(w) ? 1 : 2;
      if (best >= 0 && !Better(w, rank, best, best_rank)) continue;
      best = static_cast<int>(w);
      best_rank = rank;
      best_need = need;
      best_warm = warm;
    }
    if (best < 0) return false;
    if (dry_run) return true;
    Allowed(plan, static_cast<std::size_t>(best), best_need, best_warm, r, /*consume=*/true);
    Dispatch(static_cast<std::size_t>(best), r, best_need, best_warm, out);
    return true;
  }

  bool Better(std::size_t a, int rank_a, std::size_t b, int rank_b) const {
    if (rank_a != rank_b) return rank_a < rank_b;
    const std::int64_t ha = devices_[calls_[a].device_pos].headroom;
    const std::int64_t hb = devices_[calls_[b].device_pos].headroom;
    switch (rank_a) {
      case 0:
        if (calls_[a].running != calls_[b].running) return calls_[a].running < calls_[b].running;
        return ha > hb;
      case 1:
        if (ha != hb) return ha > hb;
        return calls_[a].device_pos == calls_[b].device_pos && workers_[a].usage_bytes < workers_[b].usage_bytes;
      default:
        if (ha != hb) return ha > hb;
        return calls_[a].running < calls_[b].running;
    }
  }

  // The least `r` needs on a usable worker of device `pos` (kInt64Max if
  // none is usable); *warm_worker is a usable worker holding the class.
  std::int64_t LeastNeedOn(int pos, const QueuedRequest& r, int* warm_worker) const {
    *warm_worker = -1;
    std::int64_t least = kInt64Max;
    for (std::size_t w = 0; w < workers_.size(); ++w) {
      if (!Usable(w) || calls_[w].device_pos != pos) continue;
      bool warm = false;
      least = std::min(least, NeedOn(w, r, &warm));
      if (warm && Idle(w) && *warm_worker < 0) *warm_worker = static_cast<int>(w);
    }
    return least;
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
      int warm_worker = -1;
      const std::int64_t need = LeastNeedOn(static_cast<int>(pos), r, &warm_worker);
      if (need == kInt64Max) continue;
      const std::int64_t gap = SubSat(devices_[pos].headroom, need);
      if (!found || gap > best_gap) {
        found = true;
        best_gap = gap;
        b.device = devices_[pos].index;
        b.need_bytes = static_cast<std::uint64_t>(std::max<std::int64_t>(0, need));
        b.headroom_bytes = devices_[pos].headroom;
      }
    }
    if (!found) return BlockedNoWorker(r);
    return b;
  }

  Decision::Waiting WaitingOnMemory(const QueuedRequest& r) const {
    const Decision::Blocked b = BlockedOnMemory(r);
    if (b.no_idle_worker) return {r.id, WaitReason::kNoFreeWorker};
    return {r.id, WaitReason::kMemory, b.device, b.need_bytes, b.headroom_bytes};
  }

  // An idle worker holding a model, which eviction may recycle.
  bool Evictable(std::size_t w) const {
    return Usable(w) && Idle(w) && !calls_[w].started_now && !workers_[w].classes.empty() &&
           workers_[w].usage_bytes > 0;
  }

  // The head's reservation: per device, the earliest time T at which its
  // full need (on a fresh replacement worker, the conservative case) fits
  // and a worker slot is free for it. Memory comes from idle workers that
  // hold models (evictable now), from stopping workers, and from each busy
  // worker once it is expected to be idle (its usage and its outstanding
  // reservation). The workers counted are protected: backfill may use them
  // only if it ends by T.
  Plan MakePlan(const QueuedRequest& head) const {
    Plan best;
    best.active = true;
    const std::int64_t need = AddSat(ToSigned(head.estimate.full_bytes), fresh_bytes_);
    for (std::size_t pos = 0; pos < devices_.size(); ++pos) {
      const int p = static_cast<int>(pos);
      bool has_worker = false;
      std::int64_t available = AddSat(devices_[pos].headroom, devices_[pos].pending);
      std::vector<bool> counted(workers_.size(), false);
      bool any_counted = false;
      int slot_now = -1;  // a usable worker (free slot now), most free slots first
      std::vector<std::pair<Clock::time_point, std::size_t>> events;
      for (std::size_t w = 0; w < workers_.size(); ++w) {
        if (calls_[w].device_pos != p || workers_[w].state == WorkerState::kStopping) continue;
        has_worker = true;
        if (calls_[w].evicted) continue;
        if (Usable(w) && (slot_now < 0 || FreeSlots(w) > FreeSlots(static_cast<std::size_t>(slot_now)))) {
          slot_now = static_cast<int>(w);
        }
        if (Evictable(w)) {
          available = AddSat(available, ToSigned(workers_[w].usage_bytes));
          counted[w] = true;
          any_counted = true;
        } else if (!Idle(w)) {
          events.emplace_back(calls_[w].idle_at, w);
        }
      }
      if (!has_worker) continue;
      std::sort(events.begin(), events.end());
      Clock::time_point start = now_;
      bool fits = available >= need;
      std::size_t next = 0;
      for (; next < events.size() && !fits; ++next) {
        const std::size_t w = events[next].second;
        available = AddSat(available, AddSat(ToSigned(workers_[w].usage_bytes), calls_[w].outstanding));
        counted[w] = true;
        any_counted = true;
        start = events[next].first;
        fits = available >= need;
      }
      if (!fits) continue;
      // The head needs a slot too: a worker that gives memory back gives its
      // slot (after eviction or once idle); otherwise a free one now, else
      // the next busy worker to become idle.
      if (!any_counted) {
        if (slot_now >= 0) {
          counted[static_cast<std::size_t>(slot_now)] = true;
        } else if (next < events.size()) {
          counted[events[next].second] = true;
          start = std::max(start, events[next].first);
        } else {
          continue;  // no worker will be there for it
        }
      }
      const std::int64_t extra = SubSat(available, need);
      if (!best.finite || start < best.start || (start == best.start && extra > best.extra)) {
        best.finite = true;
        best.device_pos = p;
        best.start = start;
        best.extra = extra;
        best.protected_ = std::move(counted);
      }
    }
    return best;
  }

  int FreeSlots(std::size_t w) const { return std::max(1, workers_[w].threads) - calls_[w].running; }

  // How many of `candidates` (in order) must go so that `need` fits in
  // `available`; -1 if all of them are not enough. `available` becomes the
  // memory there will be.
  std::int64_t CountNeeded(const std::vector<std::size_t>& candidates, std::int64_t need,
                           std::int64_t* available) const {
    std::size_t count = 0;
    while (*available < need && count < candidates.size()) {
      *available = AddSat(*available, ToSigned(workers_[candidates[count]].usage_bytes));
      ++count;
    }
    return *available < need ? -1 : static_cast<std::int64_t>(count);
  }

  // Idle workers on device `pos` that hold a model, least recently used
  // first, without `keep` and without workers the plan protects (unless
  // `for_head`).
  void EvictionCandidates(int pos, int keep, bool for_head, std::vector<std::size_t>* out) const {
    out->clear();
    for (std::size_t w = 0; w < workers_.size(); ++w) {
      if (calls_[w].device_pos != pos || static_cast<int>(w) == keep || !Evictable(w)) continue;
      if (!for_head && plan_.finite && !plan_.protected_.empty() && plan_.protected_[w]) continue;
      out->push_back(w);
    }
    std::sort(out->begin(), out->end(), [&](std::size_t a, std::size_t b) {
      if (workers_[a].last_used != workers_[b].last_used) return workers_[a].last_used < workers_[b].last_used;
      return workers_[a].id < workers_[b].id;
    });
  }

  // If recycling least-recently-used idle workers that hold a model would
  // let `r` fit on some device (only `only_device` when >= 0), recycle as
  // few as needed, and keep the memory they free (and that of workers
  // already stopping) for `r`. Per device two ways are weighed: keep an
  // idle worker that holds the class and free room for its warm need, or
  // free room for its full need on a fresh replacement (the warm ones may
  // go too: until a class is measured warm its warm estimate is its full
  // one, and keeping the warm worker could then block it for ever).
  bool EvictFor(const QueuedRequest& r, int only_device, bool for_head, Decision& out) {
    int best_pos = -1;
    std::int64_t best_count = 0;
    std::int64_t best_surplus = 0;
    std::vector<std::size_t> best_victims;
    std::vector<std::size_t> candidates;
    for (std::size_t pos = 0; pos < devices_.size(); ++pos) {
      const int p = static_cast<int>(pos);
      if (only_device >= 0 && p != only_device) continue;
      bool has_idle = false;
      for (std::size_t w = 0; w < workers_.size() && !has_idle; ++w) {
        has_idle = Usable(w) && calls_[w].device_pos == p && Idle(w);
      }
      // Stopping workers hand `r` their memory even with no idle worker
      // here now (their replacements will come).
      if (!has_idle && devices_[pos].pending == 0) continue;
      const std::int64_t base = AddSat(devices_[pos].headroom, devices_[pos].pending);
      int warm_worker = -1;
      LeastNeedOn(p, r, &warm_worker);
      const std::int64_t warm_need = ToSigned(r.estimate.warm_bytes);
      // Without the warm worker `r` may land on a fresh replacement.
      const std::int64_t full_need = AddSat(ToSigned(r.estimate.full_bytes), fresh_bytes_);
      for (int way = 0; way < 2; ++way) {  // 0 keeps the warm worker (if any); 1 does not
        if (way == 0 && warm_worker < 0) continue;
        const int keep = way == 0 ? warm_worker : -1;
        const std::int64_t need = way == 0 ? warm_need : full_need;
        EvictionCandidates(p, keep, for_head, &candidates);
        std::int64_t available = base;
        const std::int64_t count = CountNeeded(candidates, need, &available);
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
    if (best_pos < 0) return false;
    for (std::size_t w : best_victims) {
      calls_[w].evicted = true;
      out.evict.push_back(workers_[w].id);
    }
    // Requests that overtake `r` may use only what it leaves.
    DeviceState& d = devices_[best_pos];
    d.headroom = std::min(d.headroom, best_surplus);
    return true;
  }

  const std::vector<QueuedRequest>& queue_;
  const std::vector<WorkerSlot>& workers_;
  Clock::time_point now_;
  const AdmissionOptions& options_;
  const std::int64_t fresh_bytes_;
  std::vector<DeviceState> devices_;
  std::vector<WorkerCall> calls_;
  Plan plan_;
};

// No GPU accounting: arrival order to free slots, preferring a worker that
// holds the class, then a fresh one (one that holds no class; without GPUs
// no class is kept, so every worker is), each time with the fewest running
// and then the one used last: its caches are still warm, and under light
// load one worker serves request after request instead of each in turn.
// Then the least recently used idle worker holding other classes, then a
// busy one with a free slot (fewest running).
Decision DecideFifo(const std::vector<QueuedRequest>& queue, const std::vector<WorkerSlot>& workers) {
  Decision out;
  std::vector<int> running(workers.size());
  for (std::size_t w = 0; w < workers.size(); ++w) running[w] = workers[w].running;
  bool blocked = false;
  for (const QueuedRequest& r : queue) {
    if (blocked) {
      out.waiting.push_back({r.id, WaitReason::kNoFreeWorker});
      continue;
    }
    int best = -1;
    int best_rank = 0;
    for (std::size_t w = 0; w < workers.size(); ++w) {
      const WorkerSlot& s = workers[w];
      if ((s.state != WorkerState::kIdle && s.state != WorkerState::kBusy) || running[w] >= std::max(1, s.threads)) {
        continue;
      }
      const int rank = s.Holds(r.class_key) ? 0 : running[w] > 0 ? 3 : s.classes.empty() ? 1 : 2;
      bool better = best < 0 || rank < best_rank;
      if (!better && rank == best_rank) {
        if (rank == 0 || rank == 1) {
          better = running[w] != running[best] ? running[w] < running[best]
                                               : s.last_used > workers[best].last_used;
        } else if (rank == 3) {
          better = running[w] < running[best];
        } else {
          better = s.last_used < workers[best].last_used;
        }
      }
      if (better) {
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
      out.waiting.push_back({r.id, WaitReason::kNoFreeWorker});
      blocked = true;
      continue;
    }
    running[best]++;
    const bool warm = best_rank == 0;
    out.dispatches.push_back({r.id, workers[best].id, warm ? r.estimate.warm_bytes : r.estimate.full_bytes, warm});
  }
  return out;
}

}  // namespace

std::string_view WorkerStateName(WorkerState state) {
  switch (state) {
    case WorkerState::kStarting: return "starting";
    case WorkerState::kIdle: return "idle";
    case WorkerState::kBusy: return "busy";
    case WorkerState::kStopping: return "stopping";
  }
  return "unknown";
}

std::string_view WaitReasonName(WaitReason reason) {
  switch (reason) {
    case WaitReason::kNoFreeWorker: return "no_free_worker";
    case WaitReason::kMemory: return "memory";
    case WaitReason::kReserved: return "reserved";
  }
  return "unknown";
}

bool WorkerSlot::Holds(std::string_view class_key) const {
  return std::find(classes.begin(), classes.end(), class_key) != classes.end();
}

std::uint64_t SafetyBytes(const DeviceView& device, const AdmissionOptions& options) {
  const double fraction = std::clamp(options.headroom_fraction, 0.0, 1.0);
  return std::max(options.headroom_bytes, ScaleBytes(device.total_bytes, fraction));
}

std::uint64_t OutstandingBytes(int device_index, const std::vector<InFlight>& in_flight) {
  // Per worker: max(0, sum of needs - shared growth).
  std::map<int, std::pair<std::uint64_t, std::uint64_t>> per_worker;  // worker -> (sum need, growth)
  for (const InFlight& f : in_flight) {
    if (f.device != device_index) continue;
    auto& ng = per_worker[f.worker_id];
    ng.first = f.need_bytes > UINT64_MAX - ng.first ? UINT64_MAX : ng.first + f.need_bytes;
    ng.second = std::max(ng.second, f.growth_bytes);
  }
  std::uint64_t outstanding = 0;
  for (const auto& [worker, ng] : per_worker) {
    if (ng.first <= ng.second) continue;
    const std::uint64_t left = ng.first - ng.second;
    outstanding = left > UINT64_MAX - outstanding ? UINT64_MAX : outstanding + left;
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
  return need_bytes <= LargestPossibleBytes(devices, options);
}

std::uint64_t LargestPossibleBytes(const std::vector<DeviceView>& devices, const AdmissionOptions& options) {
  std::uint64_t largest = 0;
  for (const DeviceView& d : devices) {
    const std::uint64_t safety = SafetyBytes(d, options);
    if (d.total_bytes > safety) largest = std::max(largest, d.total_bytes - safety);
  }
  return largest;
}

Decision Decide(const std::vector<QueuedRequest>& queue, const std::vector<WorkerSlot>& workers,
                const std::vector<DeviceView>& devices, const std::vector<InFlight>& in_flight,
                Clock::time_point now, const AdmissionOptions& options) {
  if (queue.empty()) return Decision{};
  if (!options.enforce || devices.empty()) return DecideFifo(queue, workers);
  return Decider(queue, workers, devices, in_flight, now, options).Run();
}

int RetryAfterSeconds(std::size_t ahead, const std::vector<InFlight>& in_flight, std::size_t slots,
                      Clock::time_point now, double default_ms) {
  using Ms = std::chrono::duration<double, std::milli>;
  if (!(default_ms > 0) || !std::isfinite(default_ms)) default_ms = 0;
  // More requests in flight than slots means the count is stale; trust the ledger.
  slots = std::max({slots, in_flight.size(), std::size_t{1}});
  // When each slot is next free, in ms from now: in-flight requests finish
  // at their expected end (at least now); the other slots are free now.
  std::priority_queue<double, std::vector<double>, std::greater<double>> free_at;
  double duration_sum = 0;
  for (const InFlight& f : in_flight) {
    const double expected = f.expected_ms > 0 ? f.expected_ms : default_ms;
    duration_sum += expected;
    const double elapsed = Ms(now - f.started).count();
    free_at.push(std::max(0.0, expected - elapsed));
  }
  while (free_at.size() < slots) free_at.push(0.0);
  // Each request ahead takes the mean expected duration on the next free slot.
  const double per_request = in_flight.empty() ? default_ms : duration_sum / static_cast<double>(in_flight.size());
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
