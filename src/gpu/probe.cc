// gpu::CreateProbe: picks the backend (clams/gpu/probe.h).
#include "clams/gpu/probe.h"

#include <cstdlib>

#include "clams/base/log.h"
#include "clams/gpu/sim.h"
#include "gpu/backends.h"

namespace clams::gpu {
namespace {

std::string GetEnv(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? value : "";
}

class NoneProbe : public Probe {
 public:
  std::string_view backend() const override { return "none"; }
  StatusOr<std::vector<DeviceInfo>> Devices() override { return std::vector<DeviceInfo>{}; }
  StatusOr<Snapshot> Sample() override { return Snapshot{}; }
  // Nothing to attribute, so nothing is lost.
  bool per_process_accounting() const override { return true; }
};

}  // namespace

ProbeOptions ProbeOptions::FromEnvironment() {
  ProbeOptions options;
  options.sim_gpus = GetEnv("CLAMS_SIM_GPUS");
  options.sim_state = GetEnv("CLAMS_SIM_STATE");
  options.cuda_visible_devices_set = std::getenv("CUDA_VISIBLE_DEVICES") != nullptr;
  options.cuda_visible_devices = GetEnv("CUDA_VISIBLE_DEVICES");
  options.cuda_device_order = GetEnv("CUDA_DEVICE_ORDER");
  options.nvml_library_path = GetEnv("CLAMS_NVML_LIBRARY");
  return options;
}

StatusOr<std::unique_ptr<Probe>> CreateProbe(const ProbeOptions& options) {
  if (!options.sim_gpus.empty()) {
    CLAMS_ASSIGN_OR_RETURN(sim::Config config,
                           sim::Config::Parse(options.sim_gpus, options.sim_state));
    CLAMS_LOG(kInfo, "GPU probe: {} simulated GPU(s), state {}", config.capacities.size(),
              config.state_path);
    return gpu_internal::CreateSimProbe(config, options.cuda_visible_devices_set,
                                        options.cuda_visible_devices);
  }
  std::string reason = "NVML is disabled";
  if (options.use_nvml) {
    StatusOr<std::unique_ptr<Probe>> nvml = gpu_internal::CreateNvmlProbe(options);
    if (nvml.ok()) return nvml;
    reason = nvml.status().message();
  }
  CLAMS_LOG(kInfo, "no GPUs (backend: none): {}", reason);
  return gpu_internal::CreateNoneProbe();
}

}  // namespace clams::gpu

namespace clams::gpu_internal {
std::unique_ptr<gpu::Probe> CreateNoneProbe() { return std::make_unique<gpu::NoneProbe>(); }
}  // namespace clams::gpu_internal
