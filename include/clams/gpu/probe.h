// clams/gpu/probe.h
//
// What the GPUs of this machine hold: devices (index, UUID, name, total, used,
// free bytes) and the memory each process uses on each device. Backends:
//   * NVML, loaded at run time with dlopen("libnvidia-ml.so.1"): no CUDA or
//     NVML package is needed to build, and a machine without the library or
//     without a device simply has no GPUs (never an error at start).
//   * Simulated devices (CLAMS_SIM_GPUS / CLAMS_SIM_STATE, see sim.h), the
//     test double used by tests and demos on machines without a GPU.
//   * None: no GPUs.
// The probe never initialises CUDA, so the front process can use it.
//
// Example:
//
//   CLAMS_ASSIGN_OR_RETURN(auto probe, gpu::CreateProbe(gpu::ProbeOptions::FromEnvironment()));
//   CLAMS_ASSIGN_OR_RETURN(auto devices, probe->Devices());
//   for (const auto& d : devices) CLAMS_LOG(kInfo, "{}: {} free", d.name, d.free_bytes);
//
// Thread safety: all methods may be called from any thread.
#ifndef CLAMS_GPU_PROBE_H_
#define CLAMS_GPU_PROBE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "clams/base/status.h"

namespace clams::gpu {

/// One device as this process sees it.
struct DeviceInfo {
  /// CUDA ordinal for this process (after CUDA_VISIBLE_DEVICES): 0, 1, ...
  int index = 0;
  /// Stable identity: "GPU-<uuid>" from NVML, "SIM-GPU-<n>" when simulated.
  /// Pin a worker with CUDA_VISIBLE_DEVICES=<uuid>.
  std::string uuid;
  std::string name;
  std::uint64_t total_bytes = 0;
  std::uint64_t used_bytes = 0;
  std::uint64_t free_bytes = 0;
  /// Simulated devices only: the highest `used_bytes` ever reached and the
  /// number of allocations refused for lack of memory.
  bool simulated = false;
  std::uint64_t high_water_bytes = 0;
  std::uint64_t oom_events = 0;
};

/// Memory one process uses on one device.
struct ProcessUsage {
  int pid = 0;
  int device_index = 0;
  std::uint64_t used_bytes = 0;
};

/// A snapshot of every device and every process using one.
struct Snapshot {
  std::vector<DeviceInfo> devices;
  std::vector<ProcessUsage> processes;
};

class Probe {
 public:
  virtual ~Probe() = default;

  /// "nvml", "simulated" or "none".
  virtual std::string_view backend() const = 0;

  /// Devices in CUDA-ordinal order. An empty list means no GPUs.
  /// kUnavailable if the backend failed after a successful start (e.g. the
  /// driver went away); callers keep their last snapshot.
  virtual StatusOr<std::vector<DeviceInfo>> Devices() = 0;

  /// Devices and per-process usage in one call (cheaper than separate calls
  /// for the sampler). Processes are reported with PIDs of this process's
  /// PID namespace, one entry per (pid, device) with the memory summed;
  /// when that is impossible (see per_process_accounting) the list is
  /// empty. Errors as for Devices().
  virtual StatusOr<Snapshot> Sample() = 0;

  /// False when per-process numbers cannot be attributed to our PIDs (NVML
  /// in a container that reports host PIDs); callers then account at the
  /// device level. Decided once, logged once. Always true for the simulated
  /// backend; for NVML in the initial PID namespace true from the start; in
  /// another PID namespace false until NVML's first non-empty process list
  /// proves that it reports our PIDs (see CreateProbe), never true again once
  /// it proved the opposite.
  virtual bool per_process_accounting() const = 0;
};

/// Which backend to use, from the environment or explicit values.
struct ProbeOptions {
  /// CLAMS_SIM_GPUS: "24GiB" or "0:24GiB,1:16GiB". Non-empty selects the
  /// simulated backend.
  std::string sim_gpus;
  /// CLAMS_SIM_STATE: the shared state file of the simulated devices.
  /// Empty: a default path derived from sim_gpus under the temp directory.
  std::string sim_state;
  /// CUDA_VISIBLE_DEVICES as this process sees it (unset = all devices).
  bool cuda_visible_devices_set = false;
  std::string cuda_visible_devices;
  /// Try NVML when no simulation is asked for.
  bool use_nvml = true;
  /// CUDA_DEVICE_ORDER as this process sees it (empty = unset). Numeric
  /// CUDA_VISIBLE_DEVICES entries and CUDA ordinals are interpreted in PCI bus
  /// order (NVML's order), which is what CUDA uses with
  /// CUDA_DEVICE_ORDER=PCI_BUS_ID; with another order and devices of
  /// different models the probe logs a warning once.
  std::string cuda_device_order;
  /// The NVML library to dlopen; empty means kNvmlLibrary. Tests point it at
  /// a fake library (CLAMS_NVML_LIBRARY).
  std::string nvml_library_path;
  /// Where procfs is mounted, for the PID namespace check of the NVML
  /// backend. Tests point it at a fake tree.
  std::string proc_dir = "/proc";

  /// Reads CLAMS_SIM_GPUS, CLAMS_SIM_STATE, CUDA_VISIBLE_DEVICES,
  /// CUDA_DEVICE_ORDER and CLAMS_NVML_LIBRARY.
  static ProbeOptions FromEnvironment();
};

/// The NVML library loaded by default (the driver installs it).
inline constexpr std::string_view kNvmlLibrary = "libnvidia-ml.so.1";

/// The simulated backend if options.sim_gpus is set (kInvalidArgument if it
/// cannot be parsed; kFailedPrecondition if its state file cannot be
/// created or locked), else NVML if it loads and initialises, else "none".
/// A missing library, a driver that is not loaded or a machine without
/// devices is not an error: the probe then has no GPUs, and the reason is
/// logged once at info level.
///
/// NVML backend details:
///   * Devices are enumerated in NVML (PCI bus) order and mapped to CUDA
///     ordinals through CUDA_VISIBLE_DEVICES as CUDA does: a comma list of
///     indices, "GPU-<uuid>" ids or unique prefixes of them; the first entry
///     that names no device (out of range, unknown, ambiguous, repeated,
///     empty) ends the list; MIG ids are not supported (logged, no device).
///   * Per-process usage comes from nvmlDeviceGetComputeRunningProcesses
///     (_v3, else _v2, else v1). A device that cannot list its processes
///     (NVML_ERROR_NOT_SUPPORTED or NO_PERMISSION, e.g. vGPU) turns
///     per-process accounting off for good (logged once); its memory numbers
///     are still reported. In a PID namespace other than the initial
///     one, NVML may report host PIDs: per-process accounting stays off
///     until the first non-empty process list shows a PID of this namespace
///     that holds /dev/nvidia* open, and is turned off for good when every
///     reported PID is absent here or belongs to a process that does not use
///     the GPU. The decision is logged once.
StatusOr<std::unique_ptr<Probe>> CreateProbe(const ProbeOptions& options);

/// `"<name>, <T> MiB total, <A> MiB available, <P> MiB peak used"` with each
/// value rounded to integer MiB (bytes / 2^20, halves to even, like Python's
/// round()): the hwFetch `appProfiling.hardware.cuda` entry format of the
/// Python SDK, e.g. "NVIDIA H100 80GB HBM3, 81079 MiB total, 80055 MiB
/// available, 3584 MiB peak used".
std::string FormatCudaHardwareEntry(std::string_view name, std::uint64_t total_bytes,
                                    std::uint64_t available_bytes, std::uint64_t peak_bytes);

/// Parses "24GiB", "16G", "8000MiB", "8000MB", "1.5GiB", "123456" (bytes).
/// Binary units (KiB, MiB, GiB, TiB, and K, M, G, T) are powers of 1024;
/// KB, MB, GB, TB are powers of 1000; "B" is bytes. Units are
/// case-insensitive and may follow a space; a fraction is rounded to the
/// nearest byte. kInvalidArgument for anything else (empty text, a sign, a
/// fraction without a unit, an unknown unit, more than 2^64-1 bytes).
StatusOr<std::uint64_t> ParseBytes(std::string_view text);
/// "24.0 GiB", "512.0 MiB", "17 B": for messages. Below 1 KiB the exact
/// byte count; else one decimal in the largest binary unit (KiB .. TiB) that
/// keeps the value at least 1.
std::string FormatBytes(std::uint64_t bytes);

}  // namespace clams::gpu

#endif  // CLAMS_GPU_PROBE_H_
