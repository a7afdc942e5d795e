// Internal: the CUDA runtime, loaded with dlopen, for DeviceAllocator.
#ifndef CLAMS_SRC_GPU_CUDA_RUNTIME_H_
#define CLAMS_SRC_GPU_CUDA_RUNTIME_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "clams/base/status.h"
#include "clams/gpu/allocator.h"

namespace clams::gpu_internal {

/// The few CUDA runtime functions the allocator needs. The library stays
/// loaded for the life of the process (unloading a CUDA runtime with live
/// contexts is unsafe). Thread-safe: the current device is per thread in
/// CUDA, and every call sets it first.
class CudaRuntime {
 public:
  /// Loads the first of `libraries` that dlopen accepts and counts its
  /// devices. kFailedPrecondition if none loads, a function is missing, or
  /// there is no usable device (the message says which).
  static StatusOr<std::shared_ptr<CudaRuntime>> Load(const std::vector<std::string>& libraries);

  const std::string& library() const { return library_; }
  int device_count() const { return device_count_; }

  /// cudaSetDevice + cudaFree(nullptr): creates the context. kUnavailable.
  Status InitDevice(int device);
  /// cudaMalloc + cudaMemset (+ cudaDeviceSynchronize when present).
  /// kResourceExhausted ("CUDA out of memory. ...") on cudaErrorMemoryAllocation,
  /// kUnavailable for other errors.
  StatusOr<void*> Malloc(int device, std::uint64_t bytes);
  /// cudaFree; a failure is logged.
  void Free(int device, void* ptr, std::uint64_t bytes);
  /// cudaMemGetInfo. kUnavailable.
  StatusOr<gpu::DeviceMemory> MemGetInfo(int device);
  /// Bytes held by live allocations of this process on `device` (through
  /// every CudaRuntime of the process).
  static std::uint64_t Allocated(int device);

 private:
  CudaRuntime() = default;
  Status SetDevice(int device);
  std::string Error(int code) const;

  std::string library_;
  int device_count_ = 0;
  // cudaError_t is a C enum (int); size_t arguments are std::size_t.
  int (*get_device_count_)(int*) = nullptr;
  int (*set_device_)(int) = nullptr;
  int (*malloc_)(void**, std::size_t) = nullptr;
  int (*memset_)(void*, int, std::size_t) = nullptr;
  int (*free_)(void*) = nullptr;
  int (*mem_get_info_)(std::size_t*, std::size_t*) = nullptr;
  const char* (*get_error_string_)(int) = nullptr;
  int (*device_synchronize_)() = nullptr;  // optional
  int (*get_last_error_)() = nullptr;      // optional
};

}  // namespace clams::gpu_internal

#endif  // CLAMS_SRC_GPU_CUDA_RUNTIME_H_
