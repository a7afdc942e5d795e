// clams/vram/estimate.h
//
// How much GPU memory a request will need, and where the number came from.
//
// Resolution order (DESIGN.md §3.4):
//   1. declared: the app's EstimateVram(params), raised to the measured
//      profile peak if that is higher;
//   2. profile: the measured peak x (1 + margin);
//   3. metadata: est_gpu_mem_typ (MB in the metadata; read as MiB, the
//      larger reading, so the estimate errs on the safe side);
//   4. conservative: a fraction (default 80 %) of the device's total.
// `warm` is the measured warm peak x (1 + margin) when the class has been
// measured warm, else equal to `full`.
//
// Out-of-memory floors. After an out-of-memory failure with evidence, the
// profile keeps a floor (Profile::oom_floor_bytes, warm_oom_floor_bytes)
// that the estimate is raised to; it decays as the class succeeds (see
// ProfileStore::Record).
//
// The cap. What the server learned (margin-scaled peaks and floors) never
// exceeds EstimateOptions::cap_bytes (the most a device could ever give a
// fresh worker; 0 = no cap), but never drops below a raw measured peak (a
// real success). A declared estimate is the app's own word and is not capped
// (a request no device can hold is refused with 422).
//
// Details: a profile counts as measured (step 2) when it has at least one
// sample or a non-zero peak (an OOM raises the peak of a class that never
// completed); warm likewise with warm samples or a non-zero warm peak.
// Products with the margin or fraction are rounded up to the next byte and
// saturate at 2^64 - 1. A negative margin counts as 0; the conservative
// fraction is clamped to [0, 1]. With no device (total 0) the conservative
// estimate is 0.
//
// Example:
//
//   std::optional<Profile> p = store.Get(request_class.key);
//   Estimate e = ResolveEstimate(app.EstimateVram(params), p ? &*p : nullptr,
//                                metadata.est_gpu_mem_typ, largest_device_total);
//   response.set("X-Clams-Vram", VramHeaderValue(e, need, peak));
#ifndef CLAMS_VRAM_ESTIMATE_H_
#define CLAMS_VRAM_ESTIMATE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "clams/base/status.h"

namespace clams::vram {

struct Profile;

/// 2^20: metadata estimates (`est_gpu_mem_typ`) are read in MiB.
inline constexpr std::uint64_t kBytesPerMiB = std::uint64_t{1} << 20;

enum class EstimateSource { kDeclared, kProfile, kMetadata, kConservative };

/// "declared", "profile", "metadata", "conservative".
std::string_view EstimateSourceName(EstimateSource source);

struct Estimate {
  std::uint64_t full_bytes = 0;
  std::uint64_t warm_bytes = 0;
  EstimateSource source = EstimateSource::kConservative;
};

struct EstimateOptions {
  /// Safety margin on measured peaks.
  double margin = 0.2;
  /// Fraction of a device's total used when nothing else is known.
  double conservative_fraction = 0.8;
  /// The most a learned estimate may be (0: no cap).
  std::uint64_t cap_bytes = 0;
};

/// ceil(bytes x factor), saturating; 0 for a factor <= 0 or NaN.
std::uint64_t ScaleBytes(std::uint64_t bytes, double factor);
/// True if `profile` has a full (cold) measurement: samples > 0, peak > 0 or
/// an OOM floor.
bool HasFullMeasurement(const Profile& profile);
/// True if `profile` has a warm measurement: warm samples > 0, warm peak > 0
/// or a warm OOM floor.
bool HasWarmMeasurement(const Profile& profile);

/// Resolves an estimate. `profile` may be null; `est_gpu_mem_typ_mb` <= 0
/// means undeclared; `device_total_bytes` is the largest device's total.
Estimate ResolveEstimate(std::optional<std::uint64_t> declared_bytes, const Profile* profile,
                         std::int64_t est_gpu_mem_typ_mb, std::uint64_t device_total_bytes,
                         const EstimateOptions& options = {});

/// The response header value
/// `estimate=<bytes>; source=<declared|profile|metadata|conservative>; peak=<bytes>`
/// where `estimate` is `need_bytes` (what was admitted: warm or full) and
/// `peak` the measured growth of the request.
std::string VramHeaderValue(const Estimate& estimate, std::uint64_t need_bytes,
                            std::uint64_t peak_bytes);
/// The header value for a request refused before any estimate existed
/// (malformed body, bad parameters): `estimate=0; source=none; peak=0`.
std::string VramHeaderValueNone();

}  // namespace clams::vram

#endif  // CLAMS_VRAM_ESTIMATE_H_
