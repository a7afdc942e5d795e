// clams/vram/ledger.h
//
// The in-flight ledger of the front: one entry per running request, held
// by a move-only Reservation that releases it exactly once (when the
// request ends, or when the Reservation is destroyed). The admission rule
// reads it as a snapshot (Snapshot(), the `in_flight` of vram::Decide).
//
// Attribution of measured growth. Several requests may run on one worker
// at once (--threads). The ledger keeps, per worker with running
// requests, a base usage; the worker's growth is max(0, usage - base) and
// is shared by its running requests: the worker's outstanding memory is
// max(0, sum of their needs - growth). The base is the worker's usage when
// its first running request was admitted, and it is reset to the worker's
// usage whenever one of several running requests ends: what the finished
// request left allocated (a caching allocator keeps freed blocks) is then
// never counted as progress of the others. The reset can only over-count
// (memory the others already allocated is reserved again until they end),
// never under-count.
//
// Example (loop thread):
//
//   Ledger ledger;
//   ledger.ObserveUsage(worker, sampler.WorkerUsage(worker));   // before each decision
//   Reservation r = ledger.Reserve({.request_id = 7, .worker_id = worker, .device = 0,
//                                   .need_bytes = need, .started = now}, usage_now);
//   Decide(queue, workers, devices, ledger.Snapshot(), now, options);
//   r.Release(usage_at_end);   // or let it go out of scope
//
// Thread safety: thread-compatible (the front's loop thread only). The
// ledger must outlive its reservations.
#ifndef CLAMS_VRAM_LEDGER_H_
#define CLAMS_VRAM_LEDGER_H_

#include <cstdint>
#include <map>
#include <optional>
#include <vector>

#include "clams/vram/admission.h"

namespace clams::vram {

class Ledger;

/// One admitted request's claim on GPU memory. Move-only; released exactly
/// once: by Release() or by the destructor.
class Reservation {
 public:
  Reservation() = default;
  Reservation(Reservation&& other) noexcept;
  Reservation& operator=(Reservation&& other) noexcept;
  Reservation(const Reservation&) = delete;
  Reservation& operator=(const Reservation&) = delete;
  ~Reservation();

  /// Releases the claim; `worker_usage_now` (if known) becomes the base of
  /// the worker's remaining requests. No-op when already released or empty.
  void Release(std::optional<std::uint64_t> worker_usage_now = std::nullopt);

  bool held() const { return ledger_ != nullptr; }
  std::uint64_t request_id() const { return request_id_; }
  std::uint64_t need_bytes() const { return need_bytes_; }

 private:
  friend class Ledger;
  Reservation(Ledger* ledger, std::uint64_t request_id, std::uint64_t need_bytes)
      : ledger_(ledger), request_id_(request_id), need_bytes_(need_bytes) {}
  Ledger* ledger_ = nullptr;
  std::uint64_t request_id_ = 0;
  std::uint64_t need_bytes_ = 0;
};

class Ledger {
 public:
  Ledger() = default;
  Ledger(const Ledger&) = delete;
  Ledger& operator=(const Ledger&) = delete;
  /// Reservations still held when the ledger goes are disowned (their
  /// Release() becomes a no-op).
  ~Ledger();

  /// Admits `entry` (its growth_bytes is ignored). `worker_usage_now` is
  /// the worker's usage at dispatch: the base when it runs nothing yet.
  /// A request id already in the ledger replaces the old entry.
  Reservation Reserve(const InFlight& entry, std::uint64_t worker_usage_now);

  /// The latest measured usage of a worker (from the sampler), used for
  /// its growth. Unknown workers are ignored.
  void ObserveUsage(int worker_id, std::uint64_t usage_bytes);

  /// Every running request, with its worker's shared growth.
  std::vector<InFlight> Snapshot() const;
  /// outstanding(d) (see OutstandingBytes).
  std::uint64_t Outstanding(int device) const;
  /// Sum of the needs of the requests running on `worker_id`.
  std::uint64_t WorkerNeeds(int worker_id) const;
  /// Requests running on `worker_id`.
  std::size_t RunningOn(int worker_id) const;
  std::size_t size() const { return entries_.size(); }

 private:
  friend class Reservation;
  struct WorkerState {
    std::uint64_t base = 0;
    std::uint64_t usage = 0;
    std::size_t running = 0;
  };
  void Release(Reservation* reservation, std::optional<std::uint64_t> worker_usage_now);
  void Disown(Reservation* reservation);

  std::map<std::uint64_t, InFlight> entries_;  // by request id
  std::map<int, WorkerState> workers_;         // workers with running requests
  std::map<std::uint64_t, Reservation*> holders_;
};

}  // namespace clams::vram

#endif  // CLAMS_VRAM_LEDGER_H_
