// A fake CUDA runtime for tests: exports the functions DeviceAllocator uses.
// Environment (read on every call):
//   FAKE_CUDART_DEVICES   number of devices (default 1)
//   FAKE_CUDART_CAPACITY  bytes per device (default 1 GiB)
//   FAKE_CUDART_COUNT_ERROR  cudaGetDeviceCount fails with this code
// Pointers are fake (never dereference them). Test hooks: fake_cudart_*().
#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>

namespace {

constexpr int kSuccess = 0;
constexpr int kErrorInvalidValue = 1;
constexpr int kErrorMemoryAllocation = 2;
constexpr int kErrorInvalidDevice = 101;
constexpr unsigned long long kDefaultCapacity = 1ull << 30;
constexpr std::uintptr_t kFakePointerBase = 0x7f0000000000;
constexpr std::uintptr_t kFakePointerStride = 0x100000000;

thread_local int t_device = 0;
thread_local int t_last_error = kSuccess;
std::map<std::uintptr_t, std::pair<int, std::size_t>> g_allocations;
std::map<int, unsigned long long> g_used;
std::uintptr_t g_next_pointer = kFakePointerBase;
unsigned long long g_memset_bytes = 0;
int g_contexts = 0;
std::map<int, bool> g_has_context;

unsigned long long EnvNumber(const char* name, unsigned long long fallback) {
  const char* v = std::getenv(name);
  return v != nullptr ? std::stoull(v) : fallback;
}
int Devices() { return static_cast<int>(EnvNumber("FAKE_CUDART_DEVICES", 1)); }
unsigned long long Capacity() { return EnvNumber("FAKE_CUDART_CAPACITY", kDefaultCapacity); }

void TouchContext() {
  if (!g_has_context[t_device]) {
    g_has_context[t_device] = true;
    ++g_contexts;
  }
}

int Fail(int code) {
  t_last_error = code;
  return code;
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) int cudaGetDeviceCount(int* count) {
  const unsigned long long error = EnvNumber("FAKE_CUDART_COUNT_ERROR", 0);
  if (error != 0) return Fail(static_cast<int>(error));
  *count = Devices();
  return kSuccess;
}

__attribute__((visibility("default"))) int cudaSetDevice(int device) {
  if (device < 0 || device >= Devices()) return Fail(kErrorInvalidDevice);
  t_device = device;
  return kSuccess;
}

__attribute__((visibility("default"))) int cudaMalloc(void** ptr, std::size_t size) {
  TouchContext();
  if (g_used[t_device] + size > Capacity()) return Fail(kErrorMemoryAllocation);
  const std::uintptr_t p = g_next_pointer;
  g_next_pointer += kFakePointerStride;
  g_allocations[p] = {t_device, size};
  g_used[t_device] += size;
  *ptr = reinterpret_cast<void*>(p);
  return kSuccess;
}

__attribute__((visibility("default"))) int cudaMemset(void* ptr, int, std::size_t count) {
  auto it = g_allocations.find(reinterpret_cast<std::uintptr_t>(ptr));
  if (it == g_allocations.end() || count > it->second.second) return Fail(kErrorInvalidValue);
  g_memset_bytes += count;
  return kSuccess;
}

__attribute__((visibility("default"))) int cudaDeviceSynchronize() { return kSuccess; }

__attribute__((visibility("default"))) int cudaFree(void* ptr) {
  TouchContext();
  if (ptr == nullptr) return kSuccess;
  auto it = g_allocations.find(reinterpret_cast<std::uintptr_t>(ptr));
  if (it == g_allocations.end()) return Fail(kErrorInvalidValue);
  g_used[it->second.first] -= it->second.second;
  g_allocations.erase(it);
  return kSuccess;
}

__attribute__((visibility("default"))) int cudaMemGetInfo(std::size_t* free, std::size_t* total) {
  TouchContext();
  *total = Capacity();
  *free = Capacity() - g_used[t_device];
  return kSuccess;
}

__attribute__((visibility("default"))) int cudaGetLastError() {
  const int e = t_last_error;
  t_last_error = kSuccess;
  return e;
}

__attribute__((visibility("default"))) const char* cudaGetErrorString(int code) {
  switch (code) {
    case 0:
      return "no error";
    case 1:
      return "invalid argument";
    case 2:
      return "out of memory";
    case 100:
      return "no CUDA-capable device is detected";
    case 101:
      return "invalid device ordinal";
    default:
      return "unknown error";
  }
}

// Test hooks.
__attribute__((visibility("default"))) unsigned long long fake_cudart_used(int device) {
  return g_used[device];
}
__attribute__((visibility("default"))) unsigned long long fake_cudart_memset_bytes() {
  return g_memset_bytes;
}
__attribute__((visibility("default"))) int fake_cudart_contexts() { return g_contexts; }
__attribute__((visibility("default"))) int fake_cudart_last_error_pending() { return t_last_error; }

}  // extern "C"
