// The front's one table of workers, built only from the executor's
// WorkerEvents and the scheduler's dispatches and answers: state, running
// requests (up to `threads`), the request classes each worker holds, its
// idle memory baseline (drift), restarts. It keeps the sampler tracking
// the right process of every worker. Loop thread only.
#ifndef CLAMS_SRC_SERVER_WORKER_REGISTRY_H_
#define CLAMS_SRC_SERVER_WORKER_REGISTRY_H_

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "clams/vram/vram.h"
#include "server/executor.h"

namespace clams::server {

/// Classes remembered per worker (most recent kept): a worker that ran
/// thousands of distinct classes need not list them all.
inline constexpr std::size_t kMaxHeldClasses = 32;

/// A worker that can take requests ahead (WorkerEvent::ahead) is handed them
/// only while its requests are known to be this quick (moving average of the
/// time from start to answer). A request taken ahead waits behind the one
/// before it even if another worker frees up first: for quick requests that
/// costs little and saves a trip through the front per request (a
/// noticeable share of a millisecond-long request); for long ones it could
/// cost the whole length of the request before, and saves nothing.
inline constexpr std::chrono::milliseconds kTakeAheadMaxService{50};

struct WorkerRecord {
  int id = 0;
  int pid = 0;       ///< 0 while no process runs (or its pid is not known yet)
  int tree_pid = 0;  ///< the root of its process tree, as the sampler tracks it (0: pid)
  int device = -1;
  vram::WorkerState state = vram::WorkerState::kStarting;
  int threads = 1;
  int ahead = 0;  ///< requests it can take beyond `threads` (WorkerEvent::ahead)
  bool include_children = false;
  std::vector<std::uint64_t> running;  ///< job ids, in the order sent
  /// When each of `running` started (time_point::max(): taken ahead, it
  /// waits for one before it to end).
  std::vector<std::chrono::steady_clock::time_point> running_since;
  /// Moving average of the time from start to answer, over `timed` requests.
  std::chrono::steady_clock::duration service{};
  std::uint64_t timed = 0;
  std::vector<std::string> classes;    ///< classes it holds, most recent last
  std::uint64_t requests = 0;          ///< answered by its current process
  std::uint64_t restarts = 0;          ///< processes that ended (any cause) after the first
  std::chrono::steady_clock::time_point started;
  std::chrono::steady_clock::time_point last_used;
  /// Usage when it last went idle after a request of a class it already
  /// held (drift is measured against it).
  std::uint64_t idle_baseline = 0;
  bool has_baseline = false;
  KillCause stopping = KillCause::kNone;

  /// Requests admission hands it beyond `threads` now: `ahead` once its
  /// requests are known to be quick (kTakeAheadMaxService), else none.
  int TakesAhead() const { return timed > 0 && service < kTakeAheadMaxService ? ahead : 0; }
};

class WorkerRegistry {
 public:
  /// `sampler` may be null (no GPUs).
  explicit WorkerRegistry(vram::Sampler* sampler) : sampler_(sampler) {}

  /// Applies an executor event.
  void Apply(const WorkerEvent& event);

  /// A request starts on / leaves `worker_id`. A worker holds a class from
  /// the moment a request of it starts there; a cold request (`was_held`
  /// false) that did not succeed takes the class off again (its model may
  /// not be loaded: the next one is admitted with the full need, the safe
  /// side).
  void StartRequest(int worker_id, std::uint64_t job_id, const std::string& class_key);
  void EndRequest(int worker_id, std::uint64_t job_id, bool answered, bool succeeded,
                  const std::string& class_key, bool was_held);

  WorkerRecord* Find(int worker_id);
  const WorkerRecord* Find(int worker_id) const;
  const std::map<int, WorkerRecord>& all() const { return workers_; }

  /// The workers as the admission rule sees them (usage from the sampler).
  std::vector<vram::WorkerSlot> Slots() const;
  /// Worker slots that can take requests now or soon (not stopping).
  std::size_t Capacity() const;
  /// True if some worker is ready.
  bool AnyReady() const;

 private:
  void Refresh(WorkerRecord& w) const;
  vram::Sampler* sampler_;
  std::map<int, WorkerRecord> workers_;
};

}  // namespace clams::server

#endif  // CLAMS_SRC_SERVER_WORKER_REGISTRY_H_
