// Device memory for apps (clams/gpu/allocator.h).
#include "clams/gpu/allocator.h"

#include <cstdlib>
#include <utility>

#include "clams/base/log.h"
#include "gpu/cuda_runtime.h"
#include "gpu/sim_state.h"

namespace clams::gpu {

DeviceBuffer::DeviceBuffer(DeviceBuffer&& other) noexcept
    : cuda_(std::move(other.cuda_)),
      ptr_(std::exchange(other.ptr_, nullptr)),
      sim_(std::move(other.sim_)),
      bytes_(std::exchange(other.bytes_, 0)),
      device_(std::exchange(other.device_, -1)),
      simulated_(std::exchange(other.simulated_, false)) {}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
  if (this != &other) {
    Release();
    cuda_ = std::move(other.cuda_);
    ptr_ = std::exchange(other.ptr_, nullptr);
    sim_ = std::move(other.sim_);
    bytes_ = std::exchange(other.bytes_, 0);
    device_ = std::exchange(other.device_, -1);
    simulated_ = std::exchange(other.simulated_, false);
  }
  return *this;
}

DeviceBuffer::~DeviceBuffer() { Release(); }

void DeviceBuffer::Release() {
  if (simulated_) {
    sim_.Release();
  } else if (ptr_ != nullptr && cuda_ != nullptr) {
    cuda_->Free(device_, ptr_, bytes_);
  }
  cuda_.reset();
  ptr_ = nullptr;
  bytes_ = 0;
  device_ = -1;
  simulated_ = false;
}

AllocatorOptions AllocatorOptions::FromEnvironment() {
  AllocatorOptions options;
  if (const char* v = std::getenv("CLAMS_SIM_GPUS")) options.sim_gpus = v;
  if (const char* v = std::getenv("CLAMS_SIM_STATE")) options.sim_state = v;
  return options;
}

StatusOr<std::unique_ptr<DeviceAllocator>> DeviceAllocator::Create(
    const AllocatorOptions& options) {
  std::unique_ptr<DeviceAllocator> allocator(new DeviceAllocator());
  if (!options.sim_gpus.empty()) {
    CLAMS_ASSIGN_OR_RETURN(allocator->sim_config_,
                           sim::Config::Parse(options.sim_gpus, options.sim_state));
    // Like the CUDA runtime, read CUDA_VISIBLE_DEVICES once, at start.
    allocator->sim_devices_ =
        gpu_internal::VisibleSimDevicesFromEnvironment(allocator->sim_config_);
    allocator->device_count_ = static_cast<int>(allocator->sim_devices_.size());
    return allocator;
  }
  StatusOr<std::shared_ptr<gpu_internal::CudaRuntime>> cuda =
      gpu_internal::CudaRuntime::Load(options.cuda_runtime_libraries);
  if (!cuda.ok()) {
    return FailedPreconditionError(fmt::format(
        "no GPU memory to allocate: CLAMS_SIM_GPUS is not set (no simulated GPUs) and {}",
        cuda.status().message()));
  }
  allocator->cuda_ = std::move(cuda).value();
  allocator->device_count_ = allocator->cuda_->device_count();
  CLAMS_LOG(kInfo, "device allocator: CUDA runtime {}, {} GPU(s)", allocator->cuda_->library(),
            allocator->device_count_);
  return allocator;
}

DeviceAllocator::~DeviceAllocator() = default;

std::string_view DeviceAllocator::backend() const {
  return cuda_ != nullptr ? "cuda" : "simulated";
}

Status DeviceAllocator::CheckDevice(int device) const {
  if (device < 0 || device >= device_count_) {
    return InvalidArgumentError(fmt::format("invalid device ordinal {}: {} {}GPU(s) visible",
                                            device, device_count_,
                                            cuda_ != nullptr ? "" : "simulated "));
  }
  return Status::Ok();
}

Status DeviceAllocator::InitDevice(int device) {
  CLAMS_RETURN_IF_ERROR(CheckDevice(device));
  if (cuda_ != nullptr) return cuda_->InitDevice(device);
  return Status::Ok();
}

StatusOr<DeviceBuffer> DeviceAllocator::Allocate(int device, std::uint64_t bytes) {
  CLAMS_RETURN_IF_ERROR(CheckDevice(device));
  DeviceBuffer buffer;
  buffer.device_ = device;
  if (cuda_ == nullptr) {
    CLAMS_ASSIGN_OR_RETURN(buffer.sim_, gpu_internal::SimAllocateOnDevice(
                                            sim_config_, sim_devices_[device], device, bytes));
    buffer.simulated_ = true;
    buffer.bytes_ = bytes;
    return buffer;
  }
  if (bytes == 0) return buffer;
  CLAMS_ASSIGN_OR_RETURN(buffer.ptr_, cuda_->Malloc(device, bytes));
  buffer.cuda_ = cuda_;
  buffer.bytes_ = bytes;
  return buffer;
}

StatusOr<std::uint64_t> DeviceAllocator::AllocatedByThisProcess(int device) const {
  CLAMS_RETURN_IF_ERROR(CheckDevice(device));
  if (cuda_ != nullptr) return gpu_internal::CudaRuntime::Allocated(device);
  return sim::UsedByThisProcess(sim_config_, sim_devices_[device]);
}

StatusOr<DeviceMemory> DeviceAllocator::MemoryInfo(int device) const {
  CLAMS_RETURN_IF_ERROR(CheckDevice(device));
  if (cuda_ != nullptr) return cuda_->MemGetInfo(device);
  const int sim_device = sim_devices_[device];
  const std::uint64_t total = sim_config_.capacities[static_cast<std::size_t>(sim_device)];
  std::uint64_t used = 0;
  CLAMS_RETURN_IF_ERROR(gpu_internal::UpdateSimState(
      sim_config_.state_path, sim_config_.capacities.size(), [&](gpu_internal::SimState& state) {
        used = state.UsedBytes(sim_device);
        return false;
      }));
  return DeviceMemory{used < total ? total - used : 0, total};
}

}  // namespace clams::gpu
