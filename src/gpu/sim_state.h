// Internal: the state file of the simulated GPUs (see clams/gpu/sim.h).
//
// Format (text, one record per line):
//   clams-sim-gpu-state 1
//   next_token <n>
//   device <index> <high_water_bytes> <oom_events>
//   alloc <pid> <start_time> <device> <token> <bytes>
// <start_time> is the process start time from /proc/<pid>/stat (clock ticks
// since boot; 0 if unknown), which tells a reused PID from the original.
#ifndef CLAMS_SRC_GPU_SIM_STATE_H_
#define CLAMS_SRC_GPU_SIM_STATE_H_

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "clams/base/status.h"
#include "clams/gpu/sim.h"

namespace clams::gpu_internal {

struct SimDeviceCounters {
  std::uint64_t high_water_bytes = 0;
  std::uint64_t oom_events = 0;
};

struct SimAllocationRecord {
  int pid = 0;
  std::uint64_t start_time = 0;
  int device = 0;
  std::uint64_t token = 0;
  std::uint64_t bytes = 0;
};

struct SimState {
  std::uint64_t next_token = 1;
  std::vector<SimDeviceCounters> devices;
  std::vector<SimAllocationRecord> allocations;

  /// Sum of the allocations on `device`.
  std::uint64_t UsedBytes(int device) const;
};

std::string SerializeSimState(const SimState& state);
/// kInvalidArgument naming the line for anything malformed.
StatusOr<SimState> ParseSimState(std::string_view text);

/// The start time of process `pid` (field 22 of /proc/<pid>/stat), 0 if it
/// cannot be read.
std::uint64_t ProcessStartTime(int pid);
/// This process's start time (cached per PID, so correct after fork()).
std::uint64_t OwnStartTime();
/// True if the allocations of `pid` must be purged: the process does not
/// exist (kill(pid, 0) fails with ESRCH), is a zombie, or has another start
/// time than `start_time` (when both are known).
bool ProcessIsGone(int pid, std::uint64_t start_time);

/// Runs `update` on the state of `state_path` under its lock. The state is
/// read (missing file: a fresh state; unparsable or empty file: a fresh state
/// and a warning), widened to `device_count` devices and purged of gone
/// processes before `update` sees it; it is written back (temp file +
/// rename) if the purge or `update` changed it (`update` returns true when
/// it did). kFailedPrecondition if the files cannot be created, locked, read
/// or written.
Status UpdateSimState(const std::string& state_path, std::size_t device_count,
                      const std::function<bool(SimState&)>& update);

/// The state of `state_path` as it is now, without its lock: what a probe
/// reads. Writers replace the file whole (temp file + rename) under the lock,
/// so a reader without it sees one complete version. The state is widened to
/// `device_count` devices and the allocations of gone processes are left out
/// of the copy (the file is not written: the next writer purges them). A
/// missing file reads as a fresh state. kUnavailable if the file cannot be
/// read or parsed (a writer resets an unparsable file).
///
/// Taking the lock here would make every reader wait for every writer, and a
/// writer that is stopped (SIGSTOP, a debugger) inside its update would stop
/// the front's admission, which samples the devices, with it.
StatusOr<SimState> ReadSimState(const std::string& state_path, std::size_t device_count);

/// Sets the private fields of sim::Allocation.
struct SimAllocationAccess {
  static gpu::sim::Allocation Make(const gpu::sim::Config& config, int device, std::uint64_t bytes,
                                   std::uint64_t token, int pid);
};

/// Allocates on simulated device `sim_device`; `cuda_ordinal` is the number
/// used in the OOM message. See sim::Allocate for the errors.
StatusOr<gpu::sim::Allocation> SimAllocateOnDevice(const gpu::sim::Config& config, int sim_device,
                                                   int cuda_ordinal, std::uint64_t bytes);

/// The simulated devices visible through CUDA_VISIBLE_DEVICES (by ordinal);
/// logs the mapping note once per process if there is one.
std::vector<int> VisibleSimDevices(const gpu::sim::Config& config, bool cuda_visible_devices_set,
                                   std::string_view cuda_visible_devices);
/// VisibleSimDevices() with CUDA_VISIBLE_DEVICES from the environment.
std::vector<int> VisibleSimDevicesFromEnvironment(const gpu::sim::Config& config);

}  // namespace clams::gpu_internal

#endif  // CLAMS_SRC_GPU_SIM_STATE_H_
