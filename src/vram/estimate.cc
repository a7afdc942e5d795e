// Estimate resolution (DESIGN.md §3.4) and the X-Clams-Vram header value.
#include "clams/vram/estimate.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

#include "clams/vram/profile_store.h"

namespace clams::vram {

std::string_view EstimateSourceName(EstimateSource source) {
  switch (source) {
    case EstimateSource::kDeclared:
      return "declared";
    case EstimateSource::kProfile:
      return "profile";
    case EstimateSource::kMetadata:
      return "metadata";
    case EstimateSource::kConservative:
      return "conservative";
  }
  return "conservative";
}

std::uint64_t ScaleBytes(std::uint64_t bytes, double factor) {
  if (!(factor > 0) || bytes == 0) return 0;  // also catches NaN
  const double scaled = std::ceil(static_cast<double>(bytes) * factor);
  // 2^64 as a double; anything at or above it saturates.
  constexpr double kLimit = 18446744073709551616.0;
  if (scaled >= kLimit) return std::numeric_limits<std::uint64_t>::max();
  return static_cast<std::uint64_t>(scaled);
}

bool HasFullMeasurement(const Profile& profile) {
  return profile.samples > 0 || profile.peak_bytes > 0 || profile.oom_floor_bytes > 0;
}

bool HasWarmMeasurement(const Profile& profile) {
  return profile.warm_samples > 0 || profile.warm_peak_bytes > 0 || profile.warm_oom_floor_bytes > 0;
}

Estimate ResolveEstimate(std::optional<std::uint64_t> declared_bytes, const Profile* profile,
                         std::int64_t est_gpu_mem_typ_mb, std::uint64_t device_total_bytes,
                         const EstimateOptions& options) {
  const double margin_factor = 1.0 + std::max(0.0, options.margin);
  // What was learned never exceeds the cap, but never drops below a raw
  // measured peak (a real success).
  auto capped = [&](std::uint64_t learned, std::uint64_t raw_peak) {
    if (options.cap_bytes == 0) return learned;
    return std::min(learned, std::max(options.cap_bytes, raw_peak));
  };
  Estimate estimate;
  if (declared_bytes.has_value()) {
    estimate.source = EstimateSource::kDeclared;
    estimate.full_bytes = *declared_bytes;
    if (profile != nullptr) {
      const std::uint64_t learned = std::max(profile->peak_bytes, profile->oom_floor_bytes);
      estimate.full_bytes = std::max(estimate.full_bytes, capped(learned, profile->peak_bytes));
    }
  } else if (profile != nullptr && HasFullMeasurement(*profile)) {
    estimate.source = EstimateSource::kProfile;
    const std::uint64_t learned = std::max(ScaleBytes(profile->peak_bytes, margin_factor), profile->oom_floor_bytes);
    estimate.full_bytes = capped(learned, profile->peak_bytes);
  } else if (est_gpu_mem_typ_mb > 0) {
    estimate.source = EstimateSource::kMetadata;
    const auto mib = static_cast<std::uint64_t>(est_gpu_mem_typ_mb);
    estimate.full_bytes = mib > (std::numeric_limits<std::uint64_t>::max() >> 20)
                              ? std::numeric_limits<std::uint64_t>::max()
                              : mib * kBytesPerMiB;
  } else {
    estimate.source = EstimateSource::kConservative;
    const double fraction = std::clamp(options.conservative_fraction, 0.0, 1.0);
    estimate.full_bytes = ScaleBytes(device_total_bytes, fraction);
  }
  if (profile != nullptr && HasWarmMeasurement(*profile)) {
    const std::uint64_t learned =
        std::max(ScaleBytes(profile->warm_peak_bytes, margin_factor), profile->warm_oom_floor_bytes);
    estimate.warm_bytes = capped(learned, profile->warm_peak_bytes);
  } else {
    estimate.warm_bytes = estimate.full_bytes;
  }
  return estimate;
}

std::string VramHeaderValue(const Estimate& estimate, std::uint64_t need_bytes,
                            std::uint64_t peak_bytes) {
  return fmt::format("estimate={}; source={}; peak={}", need_bytes,
                     EstimateSourceName(estimate.source), peak_bytes);
}

std::string VramHeaderValueNone() { return "estimate=0; source=none; peak=0"; }

}  // namespace clams::vram
