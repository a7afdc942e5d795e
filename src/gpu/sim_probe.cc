// The simulated Probe backend: devices and per-process usage from the state
// file of the simulated GPUs.
#include <algorithm>
#include <map>
#include <utility>

#include "gpu/backends.h"
#include "gpu/sim_state.h"

namespace clams::gpu_internal {
namespace {

class SimProbe : public gpu::Probe {
 public:
  SimProbe(gpu::sim::Config config, std::vector<int> visible)
      : config_(std::move(config)), visible_(std::move(visible)) {}

  std::string_view backend() const override { return "simulated"; }

  StatusOr<std::vector<gpu::DeviceInfo>> Devices() override {
    CLAMS_ASSIGN_OR_RETURN(gpu::Snapshot snapshot, Sample());
    return std::move(snapshot.devices);
  }

  StatusOr<gpu::Snapshot> Sample() override {
    // Without the state's lock (ReadSimState): a worker stopped inside an
    // allocation must not stop the front's sampling and admission with it.
    CLAMS_ASSIGN_OR_RETURN(SimState state, ReadSimState(config_.state_path, config_.capacities.size()));

    gpu::Snapshot snapshot;
    std::map<std::pair<int, int>, std::uint64_t> by_device_and_pid;  // (ordinal, pid)
    for (std::size_t ordinal = 0; ordinal < visible_.size(); ++ordinal) {
      const int device = visible_[ordinal];
      const std::uint64_t total = config_.capacities[static_cast<std::size_t>(device)];
      const std::uint64_t used = state.UsedBytes(device);
      gpu::DeviceInfo info;
      info.index = static_cast<int>(ordinal);
      info.uuid = gpu::sim::DeviceUuid(device);
      info.name = gpu::sim::DeviceName(device);
      info.total_bytes = total;
      info.used_bytes = used;
      info.free_bytes = used < total ? total - used : 0;
      info.simulated = true;
      const SimDeviceCounters& counters = state.devices[static_cast<std::size_t>(device)];
      info.high_water_bytes = counters.high_water_bytes;
      info.oom_events = counters.oom_events;
      snapshot.devices.push_back(std::move(info));
      for (const SimAllocationRecord& r : state.allocations) {
        if (r.device == device) by_device_and_pid[{static_cast<int>(ordinal), r.pid}] += r.bytes;
      }
    }
    for (const auto& [key, bytes] : by_device_and_pid) {
      snapshot.processes.push_back({key.second, key.first, bytes});
    }
    return snapshot;
  }

  bool per_process_accounting() const override { return true; }

 private:
  const gpu::sim::Config config_;
  const std::vector<int> visible_;  // simulated device index by CUDA ordinal
};

}  // namespace

StatusOr<std::unique_ptr<gpu::Probe>> CreateSimProbe(const gpu::sim::Config& config,
                                                     bool cuda_visible_devices_set,
                                                     std::string_view cuda_visible_devices) {
  std::vector<int> visible =
      VisibleSimDevices(config, cuda_visible_devices_set, cuda_visible_devices);
  // Touch the state once so that an unusable state file fails here, at start.
  CLAMS_RETURN_IF_ERROR(
      UpdateSimState(config.state_path, config.capacities.size(), [](SimState&) { return false; }));
  return std::unique_ptr<gpu::Probe>(new SimProbe(config, std::move(visible)));
}

}  // namespace clams::gpu_internal
