// clams/vram/sampler.h
//
// The sampler polls the GPU probe on its own thread -- fast (default 20 ms)
// while any request runs, slowly (500 ms) when idle -- and tracks the GPU
// usage of every worker: the sum over the worker's process (and, for
// external apps, its whole process tree) on the worker's device, or the
// device's total usage when per-process accounting is impossible
// (development mode, or a PID namespace NVML cannot see into).
//
// A measurement window brackets one request on one worker: BeginWindow() at
// dispatch records the baseline; the sampler keeps the maximum seen; the
// request's growth is peak - baseline. A worker may have several windows
// open at once (requests running concurrently on it); each sees the
// worker's whole usage.
//
// Accounting. Per process (Options::per_process and the probe's
// per_process_accounting()): a worker's usage is the sum of the
// Snapshot.processes entries on its device whose pid is the worker's root
// pid or, with include_children, a descendant of it (found by walking
// /proc/<pid>/stat parent links upwards from each GPU process; the links are
// read once per sample). Per device otherwise: a worker's usage is its
// device's used_bytes, so a window's growth also counts what other
// processes on the device allocated meanwhile (an overestimate, the safe
// side). The choice is re-evaluated at every sample (NVML in a container
// may prove per-process accounting possible later).
//
// A failed probe sample keeps the last snapshot and usages (logged once per
// failure streak). Window sample counts include the baseline sample of
// BeginWindow and the final sample of EndWindow.
//
// Example (the scheduler):
//
//   auto sampler = Sampler::Start(probe.get(), {});
//   sampler->TrackWorker(worker_id, worker_pid, device);
//   sampler->SetBusy(true);
//   auto id = sampler->BeginWindow(worker_id);  // at dispatch
//   ...                                         // the thread keeps the peak
//   auto window = sampler->EndWindow(id);       // window->growth() at the end
//
// Thread safety: every method is thread-safe. The probe is called on the
// sampler's own thread only (after the first sample, which Start takes), one
// sample at a time, never while holding the lock that the readers (Latest,
// WorkerUsage, CurrentWindow) take; the callers that need a fresh sample
// wait for it a bounded time (Options::fresh_wait).
#ifndef CLAMS_VRAM_SAMPLER_H_
#define CLAMS_VRAM_SAMPLER_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "clams/gpu/probe.h"

namespace clams::vram {

class Sampler {
 public:
  struct Options {
    std::chrono::milliseconds busy_interval{20};
    std::chrono::milliseconds idle_interval{500};
    /// False: every worker's usage is its device's total usage.
    bool per_process = true;
    /// Where procfs is mounted (process-tree walks); tests may point it
    /// at a fake tree.
    std::string proc_dir = "/proc";
    /// How long SampleNow, BeginWindow and EndWindow wait for the fresh
    /// sample they ask the thread for. Past it they go on with the latest
    /// snapshot, and until the probe answers they do not wait again: a hung
    /// probe (an NVML call to a GPU that fell off the bus) must not hold the
    /// front's event loop, which calls them.
    std::chrono::milliseconds fresh_wait{100};
  };

  /// What the window saw.
  struct Window {
    std::uint64_t baseline_bytes = 0;  ///< usage at BeginWindow
    std::uint64_t peak_bytes = 0;      ///< max usage since BeginWindow (>= baseline)
    std::uint64_t samples = 0;         ///< samples taken inside the window
    std::uint64_t growth() const {
      return peak_bytes > baseline_bytes ? peak_bytes - baseline_bytes : 0;
    }
  };

  /// Takes a first sample synchronously, then starts the thread. `probe`
  /// must outlive the sampler.
  static std::unique_ptr<Sampler> Start(gpu::Probe* probe, const Options& options);
  ~Sampler();  // stops and joins the thread

  Sampler(const Sampler&) = delete;
  Sampler& operator=(const Sampler&) = delete;

  /// Switches between the busy and idle intervals.
  void SetBusy(bool busy);

  /// The latest snapshot (devices and processes) and when it was taken.
  gpu::Snapshot Latest() const;
  std::chrono::steady_clock::time_point LatestTime() const;
  /// Has the thread sample now (every worker and window is updated) and
  /// returns the snapshot: the fresh one, or the latest if the probe did not
  /// answer within Options::fresh_wait. Used before each admission decision.
  gpu::Snapshot SampleNow();

  /// Starts tracking worker `worker_id`: process `root_pid` (with its
  /// descendants if `include_children`) on device `device_index`. Tracking
  /// an id again replaces it (usage 0 and no window until the next sample).
  void TrackWorker(int worker_id, int root_pid, int device_index, bool include_children = false);
  void UntrackWorker(int worker_id);
  /// Latest usage of a tracked worker (0 if unknown).
  std::uint64_t WorkerUsage(int worker_id) const;

  /// Opens a window on a tracked worker (baseline = usage now, from a fresh
  /// sample as SampleNow takes it) and returns its id; 0 (no window) for an
  /// untracked worker. Used at dispatch.
  std::uint64_t BeginWindow(int worker_id);
  /// The open window so far (nullopt if none).
  std::optional<Window> CurrentWindow(std::uint64_t window_id) const;
  /// Takes a final sample (as SampleNow does), closes the window and returns
  /// it (nullopt if no such window is open, e.g. its worker was untracked).
  /// Used at the end of a request, so short requests are measured too.
  std::optional<Window> EndWindow(std::uint64_t window_id);

  /// True when the latest sample accounted per process: Options::per_process
  /// and the probe's per_process_accounting() (before the first sample:
  /// Options::per_process).
  bool per_process() const;

 private:
  struct State;
  Sampler(gpu::Probe* probe, const Options& options);
  void Loop();
  // Asks the thread for a sample and waits for it, at most
  // Options::fresh_wait; does not wait while an earlier one is unanswered.
  void Fresh();
  // Samples and applies the result. Called by Start, before the thread
  // exists, then by the thread only: samples are applied in the order taken.
  void TakeSample();
  gpu::Probe* probe_;
  Options options_;
  std::unique_ptr<State> state_;
};

/// The parent PID of `pid` from <proc_dir>/<pid>/stat, or nullopt if the
/// process does not exist or the file cannot be parsed.
std::optional<int> ReadParentPid(const std::string& proc_dir, int pid);

}  // namespace clams::vram

#endif  // CLAMS_VRAM_SAMPLER_H_
