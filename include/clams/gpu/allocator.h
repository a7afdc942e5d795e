// clams/gpu/allocator.h
//
// Device memory for apps: a move-only RAII `DeviceBuffer` handed out by a
// `DeviceAllocator`. The allocator uses simulated VRAM (sim.h) when
// CLAMS_SIM_GPUS is set, else the CUDA runtime loaded at run time with
// dlopen ("libcudart.so", then "libcudart.so.12", "libcudart.so.11.0",
// "libcudart.so.13"), so nothing CUDA is needed to build. Real allocations
// are touched with cudaMemset so that the memory is committed and shows up
// in NVML.
//
// Only worker processes use this: the first CUDA allocation creates a CUDA
// context (hundreds of MiB) in the calling process. The front never does.
//
// Example (inside an app):
//
//   CLAMS_ASSIGN_OR_RETURN(auto allocator,
//                          gpu::DeviceAllocator::Create(gpu::AllocatorOptions::FromEnvironment()));
//   CLAMS_ASSIGN_OR_RETURN(gpu::DeviceBuffer weights, allocator->Allocate(0, 2ull << 30));
//   ... // memory is held until `weights` is destroyed or Release()d
//
// Thread safety: DeviceAllocator methods may be called from any thread. A
// DeviceBuffer is a value: use one from one thread at a time. Buffers may
// outlive the allocator that made them.
#ifndef CLAMS_GPU_ALLOCATOR_H_
#define CLAMS_GPU_ALLOCATOR_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "clams/base/status.h"
#include "clams/gpu/sim.h"

namespace clams::gpu_internal {
class CudaRuntime;
}  // namespace clams::gpu_internal

namespace clams::gpu {

/// Memory on one device, freed when destroyed. Move-only.
class DeviceBuffer {
 public:
  /// An empty buffer (no memory).
  DeviceBuffer() = default;
  DeviceBuffer(DeviceBuffer&& other) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer();

  /// The device pointer (CUDA backend); nullptr when simulated or empty.
  void* data() const { return ptr_; }
  std::uint64_t bytes() const { return bytes_; }
  /// The CUDA ordinal it was allocated on; -1 when empty.
  int device() const { return device_; }
  bool simulated() const { return simulated_; }
  /// Frees the memory now (idempotent). A cudaFree failure is logged.
  void Release();

 private:
  friend class DeviceAllocator;
  std::shared_ptr<gpu_internal::CudaRuntime> cuda_;  // keeps the runtime usable
  void* ptr_ = nullptr;
  sim::Allocation sim_;
  std::uint64_t bytes_ = 0;
  int device_ = -1;
  bool simulated_ = false;
};

/// Which memory the allocator hands out.
struct AllocatorOptions {
  /// CLAMS_SIM_GPUS / CLAMS_SIM_STATE: non-empty sim_gpus selects simulated
  /// VRAM (see sim::Config::Parse).
  std::string sim_gpus;
  std::string sim_state;
  /// The CUDA runtime libraries to try, in order; the first that loads wins
  /// ("libcudart.so" is the development link, present with a toolkit).
  std::vector<std::string> cuda_runtime_libraries = {"libcudart.so", "libcudart.so.12",
                                                     "libcudart.so.11.0", "libcudart.so.13"};

  /// Reads CLAMS_SIM_GPUS and CLAMS_SIM_STATE. (CUDA_VISIBLE_DEVICES is read
  /// by the CUDA runtime itself, and by the simulated allocator like CUDA.)
  static AllocatorOptions FromEnvironment();
};

/// Free and total memory of one device as the allocator sees it.
struct DeviceMemory {
  std::uint64_t free_bytes = 0;
  std::uint64_t total_bytes = 0;
};

class DeviceAllocator {
 public:
  /// Simulated VRAM if options.sim_gpus is set (kInvalidArgument if it
  /// cannot be parsed), else the CUDA runtime. kFailedPrecondition when
  /// neither is usable: no simulation and no CUDA runtime library, or a
  /// runtime that reports no device (the message says which and why).
  static StatusOr<std::unique_ptr<DeviceAllocator>> Create(const AllocatorOptions& options);
  ~DeviceAllocator();
  DeviceAllocator(const DeviceAllocator&) = delete;
  DeviceAllocator& operator=(const DeviceAllocator&) = delete;

  /// "cuda" or "simulated".
  std::string_view backend() const;
  /// Devices visible to this process (after CUDA_VISIBLE_DEVICES).
  int device_count() const { return device_count_; }

  /// Makes `device` ready: with CUDA, creates the context (cudaSetDevice +
  /// cudaFree(nullptr)) so that its memory cost is paid before the first
  /// allocation is measured; simulated: checks the device. kInvalidArgument
  /// for an unknown device, kUnavailable if CUDA fails.
  Status InitDevice(int device);

  /// Allocates `bytes` on CUDA ordinal `device`. kResourceExhausted whose
  /// message contains "CUDA out of memory" (PyTorch style, see
  /// sim::Allocate) when it does not fit; kInvalidArgument for an unknown
  /// device; kUnavailable for any other CUDA error; kFailedPrecondition if
  /// the simulated state file cannot be used. Zero bytes give an empty
  /// buffer on `device`.
  StatusOr<DeviceBuffer> Allocate(int device, std::uint64_t bytes);

  /// Bytes this process currently holds on `device`: simulated, everything
  /// this process allocated there (sim::UsedByThisProcess); CUDA, what live
  /// DeviceBuffers of every allocator of this process hold (the CUDA
  /// context and other libraries' memory are not counted).
  /// kInvalidArgument for an unknown device.
  StatusOr<std::uint64_t> AllocatedByThisProcess(int device) const;

  /// Free and total memory of `device` (cudaMemGetInfo; simulated: capacity
  /// minus every process's allocations). kInvalidArgument for an unknown
  /// device, kUnavailable if CUDA fails.
  StatusOr<DeviceMemory> MemoryInfo(int device) const;

 private:
  DeviceAllocator() = default;
  Status CheckDevice(int device) const;

  std::shared_ptr<gpu_internal::CudaRuntime> cuda_;  // null when simulated
  sim::Config sim_config_;
  std::vector<int> sim_devices_;  // simulated device index by CUDA ordinal
  int device_count_ = 0;
};

}  // namespace clams::gpu

#endif  // CLAMS_GPU_ALLOCATOR_H_
