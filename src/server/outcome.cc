#include "server/outcome.h"

#include <algorithm>

#include "clams/base/log.h"
#include "clams/gpu/probe.h"

namespace clams::server {

void OutcomeLearner::OnSuccess(const Job& job, const std::optional<vram::Sampler::Window>& window, double duration_ms,
                               const std::string& device_name, std::optional<std::uint64_t> usage_after) {
  if (profiles_ == nullptr || !job.has_estimate || !window) return;
  if (job.overlapped) {
    CLAMS_LOG(kDebug, "request {} overlapped others on worker {}: its growth is not measured", job.request_id,
              job.worker_id);
    return;
  }
  Status s = profiles_->Record(job.cls, job.class_values, window->growth(), job.warm, duration_ms, device_name);
  if (!s.ok()) CLAMS_LOG(kDebug, "memory profile not written: {}", s.message());
  if (!job.warm && usage_after && *usage_after >= window->baseline_bytes) {
    const std::uint64_t kept = *usage_after - window->baseline_bytes;
    if (kept < window->growth()) profiles_->SeedWarm(job.cls, window->growth() - kept);
  }
}

OomVerdict OutcomeLearner::JudgeOom(const Job& job, const AnnotateOutcome& answer,
                                    const std::optional<vram::Sampler::Window>& window,
                                    std::uint64_t device_free_bytes) const {
  OomVerdict v;
  const std::uint64_t growth = window ? window->growth() : 0;
  const std::uint64_t tried = answer.oom_tried_bytes;
  const std::uint64_t seen = growth + tried;
  const bool near_grant = static_cast<double>(seen) >= kOomEvidenceFraction * static_cast<double>(job.need_bytes);
  const bool could_not_fit = tried > 0 && tried > device_free_bytes;
  if (!job.has_estimate) {
    v.explanation = "no GPU accounting";
    return v;
  }
  if (!near_grant && !could_not_fit) {
    v.explanation = "the worker reported running out of GPU memory, but it grew by only " + gpu::FormatBytes(growth) +
                    (tried > 0 ? " (and tried to allocate " + gpu::FormatBytes(tried) + ")" : std::string()) +
                    " of the " + gpu::FormatBytes(job.need_bytes) + " admitted";
    return v;
  }
  v.confirmed = true;
  std::uint64_t floor =
      std::max(vram::ScaleBytes(job.need_bytes, vram::kOomRaiseFactor), vram::ScaleBytes(seen, kOomSeenMargin));
  if (options_.cap_bytes > 0) floor = std::min(floor, options_.cap_bytes);
  v.floor_bytes = floor;
  v.explanation = "ran out of GPU memory after growing by " + gpu::FormatBytes(growth) +
                  (tried > 0 ? " and trying to allocate " + gpu::FormatBytes(tried) : std::string()) + " of the " +
                  gpu::FormatBytes(job.need_bytes) + " admitted; the class's estimate is raised to " +
                  gpu::FormatBytes(floor);
  return v;
}

void OutcomeLearner::RecordOom(const Job& job, const OomVerdict& verdict, const std::string& device_name) {
  if (profiles_ == nullptr || !verdict.confirmed) return;
  Status s = profiles_->RecordOom(job.cls, job.class_values, job.warm, verdict.floor_bytes, device_name);
  if (!s.ok()) CLAMS_LOG(kDebug, "memory profile not written: {}", s.message());
}

bool OutcomeLearner::Drifted(WorkerRecord& worker, bool warm, std::uint64_t idle_usage) const {
  if (warm && worker.has_baseline) {
    const std::uint64_t allowed =
        worker.idle_baseline +
        std::max<std::uint64_t>(options_.drift_min_bytes,
                                vram::ScaleBytes(worker.idle_baseline, std::max(0.0, options_.drift_fraction)));
    return idle_usage > allowed;
  }
  worker.idle_baseline = idle_usage;
  worker.has_baseline = true;
  return false;
}

}  // namespace clams::server
