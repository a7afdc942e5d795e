// Outcome learning: what the front learns when a request ends (DESIGN.md
// §3.7, §4). Only evidence changes a profile:
//   * a success measures the request's growth (when it ran alone on its
//     worker: with several requests at once on one worker, their growth is
//     not separable, so none of them is measured) and updates the class's
//     full or warm peak; it also decays an OOM floor;
//   * an out-of-memory failure raises the class's floor only when the
//     worker reported it in a typed way (a native app's kResourceExhausted,
//     a framework OOM exception) AND the measured usage backs it up: the
//     request's growth plus the allocation that failed reached at least
//     kOomEvidenceFraction of what was admitted, or that allocation could
//     not have fit in the device's free memory. The floor is
//     max(kOomRaiseFactor x what was admitted, kOomSeenMargin x what was
//     seen), capped at what a device could ever give a fresh worker, so a
//     transient error never turns into a permanent 422;
//   * a worker's death is never evidence: not a SIGKILL from outside (the
//     host's OOM killer, an operator) and not any kill the server sent
//     (timeouts, client gone, eviction, drift, reload, shutdown).
// It also decides drift: an idle worker whose usage grew past its baseline
// is recycled. Loop thread only.
#ifndef CLAMS_SRC_SERVER_OUTCOME_H_
#define CLAMS_SRC_SERVER_OUTCOME_H_

#include <cstdint>
#include <optional>
#include <string>

#include "clams/app/runner.h"
#include "clams/vram/vram.h"
#include "server/job.h"
#include "server/worker_registry.h"

namespace clams::server {

/// The share of what was admitted that measured usage must reach for an
/// out-of-memory report to count (growth seen + the allocation that failed).
inline constexpr double kOomEvidenceFraction = 0.5;
/// Margin on what an OOM showed the request needs at least (its growth plus
/// the allocation that failed): the estimate margin's default.
inline constexpr double kOomSeenMargin = 1.2;

struct OutcomeOptions {
  /// The most a learned floor may be (what a device could ever give a
  /// fresh worker); 0: no cap.
  std::uint64_t cap_bytes = 0;
  /// Idle growth past a worker's baseline that counts as drift:
  /// max(drift_min_bytes, drift_fraction x baseline).
  std::uint64_t drift_min_bytes = 256ull << 20;
  double drift_fraction = 0.1;
};

struct OomVerdict {
  bool confirmed = false;
  std::uint64_t floor_bytes = 0;  ///< when confirmed: the class's new floor
  std::string explanation;        ///< for the log and the answer
};

class OutcomeLearner {
 public:
  OutcomeLearner(vram::ProfileStore* profiles, OutcomeOptions options)
      : profiles_(profiles), options_(options) {}

  /// A successful request: records its growth unless it overlapped others
  /// on its worker. After a cold one, `usage_after` (the worker's usage
  /// once it ended) tells what the worker kept (the model): its growth
  /// minus that seeds the class's warm estimate until a warm run measures
  /// it (see ProfileStore::SeedWarm).
  void OnSuccess(const Job& job, const std::optional<vram::Sampler::Window>& window, double duration_ms,
                 const std::string& device_name, std::optional<std::uint64_t> usage_after = std::nullopt);

  /// Judges a worker's out-of-memory report. `device_free_bytes`: the
  /// device's free memory at the end of the request.
  OomVerdict JudgeOom(const Job& job, const AnnotateOutcome& answer,
                      const std::optional<vram::Sampler::Window>& window, std::uint64_t device_free_bytes) const;
  /// Records a confirmed OOM in the class's profile.
  void RecordOom(const Job& job, const OomVerdict& verdict, const std::string& device_name);

  /// After a success on a worker that now runs nothing: true if its idle
  /// usage drifted above its baseline (recycle it); sets the baseline when
  /// the request was of a class the worker did not hold yet.
  bool Drifted(WorkerRecord& worker, bool warm, std::uint64_t idle_usage) const;

  void set_cap_bytes(std::uint64_t cap) { options_.cap_bytes = cap; }

 private:
  vram::ProfileStore* profiles_;
  OutcomeOptions options_;
};

}  // namespace clams::server

#endif  // CLAMS_SRC_SERVER_OUTCOME_H_
