#include "gpu/cuda_runtime.h"

#include <dlfcn.h>

#include <array>
#include <atomic>

#include "clams/base/log.h"
#include "gpu/format.h"

namespace clams::gpu_internal {
namespace {

constexpr int kCudaSuccess = 0;
constexpr int kCudaErrorMemoryAllocation = 2;
// Per-device counters of this process; devices past this are not counted.
constexpr int kMaxCountedDevices = 64;

std::array<std::atomic<std::uint64_t>, kMaxCountedDevices>& AllocatedCounters() {
  static std::array<std::atomic<std::uint64_t>, kMaxCountedDevices> counters{};
  return counters;
}

}  // namespace

StatusOr<std::shared_ptr<CudaRuntime>> CudaRuntime::Load(
    const std::vector<std::string>& libraries) {
  void* handle = nullptr;
  std::string tried;
  std::shared_ptr<CudaRuntime> rt(new CudaRuntime());
  for (const std::string& name : libraries) {
    handle = ::dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle != nullptr) {
      rt->library_ = name;
      break;
    }
    const char* err = ::dlerror();
    tried += fmt::format("{}{} ({})", tried.empty() ? "" : "; ", name, err != nullptr ? err : "?");
  }
  if (handle == nullptr) {
    return FailedPreconditionError(fmt::format("no CUDA runtime library: tried {}", tried));
  }
  // The handle is never closed: see the class comment.
  std::string missing;
  auto sym = [&](auto* fn, const char* name, bool required) {
    *fn = reinterpret_cast<std::remove_pointer_t<decltype(fn)>>(::dlsym(handle, name));
    if (*fn == nullptr && required) missing += std::string(missing.empty() ? "" : ", ") + name;
  };
  sym(&rt->get_device_count_, "cudaGetDeviceCount", true);
  sym(&rt->set_device_, "cudaSetDevice", true);
  sym(&rt->malloc_, "cudaMalloc", true);
  sym(&rt->memset_, "cudaMemset", true);
  sym(&rt->free_, "cudaFree", true);
  sym(&rt->mem_get_info_, "cudaMemGetInfo", true);
  sym(&rt->get_error_string_, "cudaGetErrorString", true);
  sym(&rt->device_synchronize_, "cudaDeviceSynchronize", false);
  sym(&rt->get_last_error_, "cudaGetLastError", false);
  if (!missing.empty()) {
    return FailedPreconditionError(fmt::format("CUDA runtime {} lacks {}", rt->library_, missing));
  }
  int count = 0;
  const int r = rt->get_device_count_(&count);
  if (r != kCudaSuccess) {
    return FailedPreconditionError(
        fmt::format("CUDA runtime {}: no usable GPU: {}", rt->library_, rt->Error(r)));
  }
  if (count <= 0) {
    return FailedPreconditionError(fmt::format("CUDA runtime {}: no GPU", rt->library_));
  }
  rt->device_count_ = count;
  return rt;
}

std::string CudaRuntime::Error(int code) const {
  const char* text = get_error_string_ != nullptr ? get_error_string_(code) : nullptr;
  return fmt::format("{} (CUDA error {})", text != nullptr ? text : "unknown error", code);
}

Status CudaRuntime::SetDevice(int device) {
  const int r = set_device_(device);
  if (r != kCudaSuccess) {
    return UnavailableError(fmt::format("cudaSetDevice({}) failed: {}", device, Error(r)));
  }
  return Status::Ok();
}

Status CudaRuntime::InitDevice(int device) {
  CLAMS_RETURN_IF_ERROR(SetDevice(device));
  const int r = free_(nullptr);  // the idiom that creates the context
  if (r != kCudaSuccess) {
    return UnavailableError(
        fmt::format("creating the CUDA context on GPU {} failed: {}", device, Error(r)));
  }
  return Status::Ok();
}

StatusOr<void*> CudaRuntime::Malloc(int device, std::uint64_t bytes) {
  CLAMS_RETURN_IF_ERROR(SetDevice(device));
  void* ptr = nullptr;
  int r = malloc_(&ptr, static_cast<std::size_t>(bytes));
  if (r == kCudaErrorMemoryAllocation) {
    if (get_last_error_ != nullptr) get_last_error_();  // clear it, as PyTorch does
    std::size_t free = 0;
    std::size_t total = 0;
    if (mem_get_info_(&free, &total) != kCudaSuccess && get_last_error_ != nullptr) {
      get_last_error_();
    }
    return ResourceExhaustedError(CudaOomMessage(bytes, device, total, Allocated(device), free));
  }
  if (r != kCudaSuccess) {
    return UnavailableError(
        fmt::format("cudaMalloc({}) on GPU {} failed: {}", bytes, device, Error(r)));
  }
  // Touch every byte so that the memory is committed and NVML sees it.
  r = memset_(ptr, 0, static_cast<std::size_t>(bytes));
  if (r == kCudaSuccess && device_synchronize_ != nullptr) r = device_synchronize_();
  if (r != kCudaSuccess) {
    free_(ptr);
    return UnavailableError(
        fmt::format("cudaMemset of {} bytes on GPU {} failed: {}", bytes, device, Error(r)));
  }
  if (device >= 0 && device < kMaxCountedDevices) AllocatedCounters()[device] += bytes;
  return ptr;
}

void CudaRuntime::Free(int device, void* ptr, std::uint64_t bytes) {
  if (ptr == nullptr) return;
  Status s = SetDevice(device);
  const int r = s.ok() ? free_(ptr) : kCudaSuccess;
  if (!s.ok() || r != kCudaSuccess) {
    CLAMS_LOG(kWarning, "freeing {} bytes on GPU {} failed: {}", bytes, device,
              s.ok() ? Error(r) : s.message());
  }
  if (device >= 0 && device < kMaxCountedDevices) AllocatedCounters()[device] -= bytes;
}

StatusOr<gpu::DeviceMemory> CudaRuntime::MemGetInfo(int device) {
  CLAMS_RETURN_IF_ERROR(SetDevice(device));
  std::size_t free = 0;
  std::size_t total = 0;
  const int r = mem_get_info_(&free, &total);
  if (r != kCudaSuccess) {
    return UnavailableError(fmt::format("cudaMemGetInfo on GPU {} failed: {}", device, Error(r)));
  }
  return gpu::DeviceMemory{free, total};
}

std::uint64_t CudaRuntime::Allocated(int device) {
  if (device < 0 || device >= kMaxCountedDevices) return 0;
  return AllocatedCounters()[device].load();
}

}  // namespace clams::gpu_internal
