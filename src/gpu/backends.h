// Internal: the Probe backends behind gpu::CreateProbe.
#ifndef CLAMS_SRC_GPU_BACKENDS_H_
#define CLAMS_SRC_GPU_BACKENDS_H_

#include <memory>
#include <string_view>

#include "clams/base/status.h"
#include "clams/gpu/probe.h"
#include "clams/gpu/sim.h"

namespace clams::gpu_internal {

/// The simulated backend over `config`, seeing the devices that
/// CUDA_VISIBLE_DEVICES (as given) leaves visible. kFailedPrecondition if the
/// state file cannot be used.
StatusOr<std::unique_ptr<gpu::Probe>> CreateSimProbe(const gpu::sim::Config& config,
                                                     bool cuda_visible_devices_set,
                                                     std::string_view cuda_visible_devices);

/// The NVML backend. kNotFound if the library cannot be loaded,
/// kFailedPrecondition if it lacks a function we need, kUnavailable if NVML
/// does not initialise (no driver) or cannot count the devices. Zero devices
/// is a probe with no devices.
StatusOr<std::unique_ptr<gpu::Probe>> CreateNvmlProbe(const gpu::ProbeOptions& options);

/// A probe without GPUs.
std::unique_ptr<gpu::Probe> CreateNoneProbe();

}  // namespace clams::gpu_internal

#endif  // CLAMS_SRC_GPU_BACKENDS_H_
