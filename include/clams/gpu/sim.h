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
// State file semantics: every call takes an exclusive flock on
// "<state>.lock", reads "<state>" (a few lines of text), purges the entries
// of processes that are gone (kill(pid, 0) fails with ESRCH, the process is a
// zombie, or its PID was reused by a process started later), applies the
// change and replaces "<state>" by rename, so a process killed at any point
// never leaves a half-written file. A file that cannot be parsed is reset
// with a logged warning. Simulated device n has the name "Simulated GPU n"
// and the id "SIM-GPU-n".
//
// Thread safety: every function may be called from any thread and any
// process; the file lock serialises them.
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
#include <string_view>
#include <vector>

#include "clams/base/status.h"
#include "clams/gpu/probe.h"

namespace clams::gpu_internal {
struct SimAllocationAccess;
}  // namespace clams::gpu_internal

namespace clams::gpu::sim {

/// The simulated devices and the state file, usually from the environment.
struct Config {
  std::vector<std::uint64_t> capacities;  ///< by simulated device index
  std::string state_path;

  /// From CLAMS_SIM_GPUS / CLAMS_SIM_STATE; kFailedPrecondition if
  /// CLAMS_SIM_GPUS is unset or empty, kInvalidArgument if it cannot be
  /// parsed.
  static StatusOr<Config> FromEnvironment();
  /// Parses a CLAMS_SIM_GPUS value: one size ("24GiB", see ParseBytes) for
  /// one device, or a comma list of sizes ("24GiB,16GiB") or of
  /// "<index>:<size>" pairs ("0:24GiB,1:16GiB") whose indices are 0..n-1,
  /// each once, in any order. Sizes must be positive. An empty `state_path`
  /// becomes DefaultStatePath(). kInvalidArgument for anything else.
  static StatusOr<Config> Parse(std::string_view sim_gpus, std::string state_path);
  /// "<temp dir>/clams-sim-gpus-<uid>-<hash of the capacities>.state": the
  /// same devices give the same file, so every process of one server (and a
  /// `clams gpu` run beside it) shares it without CLAMS_SIM_STATE.
  static std::string DefaultStatePath(const std::vector<std::uint64_t>& capacities);
};

/// Name and id of simulated device `device`: "Simulated GPU <n>", "SIM-GPU-<n>".
std::string DeviceName(int device);
std::string DeviceUuid(int device);

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
  /// The simulated device index (not the CUDA ordinal); -1 when empty.
  int device() const { return device_; }
  /// Returns the memory now (idempotent). A failure to update the state file
  /// is logged (the entry is then purged when this process exits). In a
  /// child forked after the allocation this does nothing: the memory
  /// belongs to the parent.
  void Release();

 private:
  friend StatusOr<Allocation> Allocate(const Config&, int, std::uint64_t);
  friend struct ::clams::gpu_internal::SimAllocationAccess;
  Config config_;
  int device_ = -1;  // simulated device index
  std::uint64_t bytes_ = 0;
  std::uint64_t token_ = 0;
  int pid_ = 0;  // the process that owns the entry
};

/// Allocates `bytes` on the device that CUDA ordinal `cuda_ordinal` names
/// for this process (CUDA_VISIBLE_DEVICES is honoured, with indices or
/// SIM-GPU-<n> ids, as CUDA would). kResourceExhausted with a message in the
/// style of a PyTorch CUDA OOM when it does not fit (and the device's OOM
/// counter goes up), e.g. "CUDA out of memory. Tried to allocate 10.00 GiB
/// (GPU 0; 24.00 GiB total capacity; 20.00 GiB already allocated; 4.00 GiB
/// free)" where "already allocated" counts every process on the device;
/// kInvalidArgument for an unknown device ("invalid device ordinal ...");
/// kFailedPrecondition if the state file cannot be used. Zero bytes
/// succeed without touching the state.
StatusOr<Allocation> Allocate(const Config& config, int cuda_ordinal, std::uint64_t bytes);
/// Allocate() with Config::FromEnvironment().
StatusOr<Allocation> Allocate(int cuda_ordinal, std::uint64_t bytes);

/// Bytes this process holds on simulated device `device` (kInvalidArgument
/// if there is no such device).
StatusOr<std::uint64_t> UsedByThisProcess(const Config& config, int device);

/// Clears the state file (all allocations, high-water marks, OOM counters).
/// Allocation objects alive across a Reset release nothing.
Status Reset(const Config& config);

}  // namespace clams::gpu::sim

#endif  // CLAMS_GPU_SIM_H_
