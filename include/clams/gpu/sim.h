// clams/gpu/sim.h
//
// Simulated GPU memory: a test double of the hardware for machines without a
// GPU. CLAMS_SIM_GPUS="24GiB" (one device) or "0:24GiB,1:16GiB" declares the
// devices; their state lives in the file CLAMS_SIM_STATE, shared by every
// process of one server and protected by a lock (flock). Each process's
// allocations are recorded under its PID; entries of PIDs that no longer
// exist are purged on every access. An allocation that does not fit fails
// like a CUDA out-of-memory error and is counted; the high-water mark of
// used memory is kept, so a test can prove "never over capacity, zero OOM".
// Never used when real GPUs are present unless CLAMS_SIM_GPUS asks for it.
//
// Example (inside an app):
//
//   CLAMS_ASSIGN_OR_RETURN(gpu::sim::Allocation weights,
//                          gpu::sim::Allocate(/*device=*/0, 10ull << 30));
//   ... // memory is held until `weights` is destroyed or Release()d
#ifndef CLAMS_GPU_SIM_H_
#define CLAMS_GPU_SIM_H_

#include <cstdint>
#include <string>
#include <vector>

#include "clams/base/status.h"
#include "clams/gpu/probe.h"

namespace clams::gpu::sim {

/// The simulated devices and the state file, usually from the environment.
struct Config {
  std::vector<std::uint64_t> capacities;  ///< by simulated device index
  std::string state_path;

  /// From CLAMS_SIM_GPUS / CLAMS_SIM_STATE; kFailedPrecondition if
  /// CLAMS_SIM_GPUS is unset, kInvalidArgument if it cannot be parsed.
  static StatusOr<Config> FromEnvironment();
  /// Parses a CLAMS_SIM_GPUS value.
  static StatusOr<Config> Parse(std::string_view sim_gpus, std::string state_path);
};

/// Memory held on a simulated device by this process; released when
/// destroyed. Move-only.
class Allocation {
 public:
  Allocation() = default;
  Allocation(Allocation&& other) noexcept;
  Allocation& operator=(Allocation&& other) noexcept;
  Allocation(const Allocation&) = delete;
  Allocation& operator=(const Allocation&) = delete;
  ~Allocation();

  std::uint64_t bytes() const { return bytes_; }
  int device() const { return device_; }
  /// Returns the memory now (idempotent).
  void Release();

 private:
  friend StatusOr<Allocation> Allocate(const Config&, int, std::uint64_t);
  Config config_;
  int device_ = -1;  // simulated device index
  std::uint64_t bytes_ = 0;
  std::uint64_t token_ = 0;
};

/// Allocates `bytes` on the device that CUDA ordinal `cuda_ordinal` names
/// for this process (CUDA_VISIBLE_DEVICES is honoured, with indices or
/// SIM-GPU-<n> ids, as CUDA would). kResourceExhausted with a message in the
/// style of a CUDA OOM ("CUDA out of memory. Tried to allocate 10.0 GiB ...")
/// when it does not fit (and the device's OOM counter goes up);
/// kInvalidArgument for an unknown device.
StatusOr<Allocation> Allocate(const Config& config, int cuda_ordinal, std::uint64_t bytes);
/// Allocate() with Config::FromEnvironment().
StatusOr<Allocation> Allocate(int cuda_ordinal, std::uint64_t bytes);

/// Bytes this process holds on simulated device `device`.
StatusOr<std::uint64_t> UsedByThisProcess(const Config& config, int device);

/// Clears the state file (all allocations, high-water marks, OOM counters).
Status Reset(const Config& config);

}  // namespace clams::gpu::sim

#endif  // CLAMS_GPU_SIM_H_
