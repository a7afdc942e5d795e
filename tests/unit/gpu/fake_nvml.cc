// A fake libnvidia-ml for tests: exports the NVML functions the probe uses,
// with canned data read (on every call) from the file named by
// FAKE_NVML_CONFIG. Lines:
//   device <uuid> <total> <used> <name...>      one per GPU, in NVML order
//   process <device> <pid> <bytes|na>           a compute process
//   init_error <code>                           nvmlInit_v2 fails with it
//   count_error <code>                          nvmlDeviceGetCount_v2 fails
//   memory_error <device> <code>                nvmlDeviceGetMemoryInfo fails
//   grow <n>                                    every process query adds n
//                                               processes (PIDs 900000+),
//                                               so the list outgrows buffers
//   always_insufficient 1                       every process query answers
//                                               NVML_ERROR_INSUFFICIENT_SIZE
//   process_error <code>                        every process query fails
//   v3_error <code>                             the _v3 process query fails
// Built with FAKE_NVML_V1_ONLY, only the unversioned (v1) process query is
// exported, like an old driver. Test hooks: fake_nvml_*().
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

constexpr int kSuccess = 0;
constexpr int kErrorInvalidArgument = 2;
constexpr int kErrorUninitialized = 1;
constexpr int kErrorInsufficientSize = 7;
constexpr int kGrowPidBase = 900000;
constexpr unsigned long long kGrowBytes = 1 << 20;

struct Device {
  std::string uuid;
  std::string name;
  unsigned long long total = 0;
  unsigned long long used = 0;
  int memory_error = 0;
};
struct Process {
  int device;
  unsigned int pid;
  unsigned long long bytes;
};
struct Config {
  std::vector<Device> devices;
  std::vector<Process> processes;
  int init_error = 0;
  int count_error = 0;
  int grow = 0;
  int always_insufficient = 0;
  int process_error = 0;
  int v3_error = 0;
};

int g_init_refcount = 0;
int g_process_queries = 0;
int g_last_query_version = 0;

Config Load() {
  Config c;
  const char* path = std::getenv("FAKE_NVML_CONFIG");
  if (path == nullptr) return c;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string kind;
    ls >> kind;
    if (kind == "device") {
      Device d;
      ls >> d.uuid >> d.total >> d.used;
      std::getline(ls >> std::ws, d.name);
      c.devices.push_back(d);
    } else if (kind == "process") {
      Process p{};
      std::string bytes;
      ls >> p.device >> p.pid >> bytes;
      p.bytes = bytes == "na" ? ~0ull : std::stoull(bytes);
      c.processes.push_back(p);
    } else if (kind == "init_error") {
      ls >> c.init_error;
    } else if (kind == "count_error") {
      ls >> c.count_error;
    } else if (kind == "memory_error") {
      int device = 0;
      int code = 0;
      ls >> device >> code;
      if (device >= 0 && device < static_cast<int>(c.devices.size())) {
        c.devices[device].memory_error = code;
      }
    } else if (kind == "grow") {
      ls >> c.grow;
    } else if (kind == "always_insufficient") {
      ls >> c.always_insufficient;
    } else if (kind == "process_error") {
      ls >> c.process_error;
    } else if (kind == "v3_error") {
      ls >> c.v3_error;
    }
  }
  return c;
}

int DeviceIndex(void* handle) {
  return static_cast<int>(reinterpret_cast<std::uintptr_t>(handle)) - 1;
}

int CopyString(const std::string& s, char* out, unsigned int length) {
  if (out == nullptr) return kErrorInvalidArgument;
  if (s.size() + 1 > length) return kErrorInsufficientSize;
  std::memcpy(out, s.c_str(), s.size() + 1);
  return kSuccess;
}

struct InfoV1 {
  unsigned int pid;
  unsigned long long usedGpuMemory;
};
struct InfoV2 {
  unsigned int pid;
  unsigned long long usedGpuMemory;
  unsigned int gpuInstanceId;
  unsigned int computeInstanceId;
};

template <typename Info>
int Processes(void* handle, unsigned int* count, Info* infos, int version) {
  if (g_init_refcount == 0) return kErrorUninitialized;
  ++g_process_queries;
  g_last_query_version = version;
  const Config c = Load();
  if (c.process_error != 0) return c.process_error;
  if (version == 3 && c.v3_error != 0) return c.v3_error;
  const int device = DeviceIndex(handle);
  std::vector<Process> list;
  for (const Process& p : c.processes) {
    if (p.device == device) list.push_back(p);
  }
  for (int i = 0; i < c.grow * g_process_queries; ++i) {
    list.push_back({device, static_cast<unsigned int>(kGrowPidBase + i), kGrowBytes});
  }
  if (count == nullptr) return kErrorInvalidArgument;
  if (c.always_insufficient != 0) {
    *count = *count * 2 + 1;
    return kErrorInsufficientSize;
  }
  if (list.size() > *count) {
    *count = static_cast<unsigned int>(list.size());
    return kErrorInsufficientSize;
  }
  for (std::size_t i = 0; i < list.size(); ++i) {
    Info info{};
    info.pid = list[i].pid;
    info.usedGpuMemory = list[i].bytes;
    infos[i] = info;
  }
  *count = static_cast<unsigned int>(list.size());
  return kSuccess;
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) int nvmlInit_v2() {
  const Config c = Load();
  if (c.init_error != 0) return c.init_error;
  ++g_init_refcount;
  return kSuccess;
}

__attribute__((visibility("default"))) int nvmlShutdown() {
  if (g_init_refcount == 0) return kErrorUninitialized;
  --g_init_refcount;
  return kSuccess;
}

__attribute__((visibility("default"))) const char* nvmlErrorString(int code) {
  switch (code) {
    case 0:
      return "Success";
    case 1:
      return "Uninitialized";
    case 2:
      return "Invalid Argument";
    case 3:
      return "Not Supported";
    case 4:
      return "Insufficient Permissions";
    case 7:
      return "Insufficient Size";
    case 9:
      return "Driver Not Loaded";
    case 13:
      return "Function Not Found";
    case 15:
      return "GPU is lost";
    default:
      return "Unknown Error";
  }
}

__attribute__((visibility("default"))) int nvmlDeviceGetCount_v2(unsigned int* count) {
  if (g_init_refcount == 0) return kErrorUninitialized;
  const Config c = Load();
  if (c.count_error != 0) return c.count_error;
  *count = static_cast<unsigned int>(c.devices.size());
  return kSuccess;
}

__attribute__((visibility("default"))) int nvmlDeviceGetHandleByIndex_v2(unsigned int index,
                                                                         void** device) {
  if (g_init_refcount == 0) return kErrorUninitialized;
  const Config c = Load();
  if (index >= c.devices.size()) return kErrorInvalidArgument;
  *device = reinterpret_cast<void*>(static_cast<std::uintptr_t>(index) + 1);
  return kSuccess;
}

__attribute__((visibility("default"))) int nvmlDeviceGetName(void* device, char* name,
                                                             unsigned int length) {
  const Config c = Load();
  const int i = DeviceIndex(device);
  if (i < 0 || i >= static_cast<int>(c.devices.size())) return kErrorInvalidArgument;
  return CopyString(c.devices[i].name, name, length);
}

__attribute__((visibility("default"))) int nvmlDeviceGetUUID(void* device, char* uuid,
                                                             unsigned int length) {
  const Config c = Load();
  const int i = DeviceIndex(device);
  if (i < 0 || i >= static_cast<int>(c.devices.size())) return kErrorInvalidArgument;
  return CopyString(c.devices[i].uuid, uuid, length);
}

struct Memory {
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};

__attribute__((visibility("default"))) int nvmlDeviceGetMemoryInfo(void* device, Memory* memory) {
  if (g_init_refcount == 0) return kErrorUninitialized;
  const Config c = Load();
  const int i = DeviceIndex(device);
  if (i < 0 || i >= static_cast<int>(c.devices.size())) return kErrorInvalidArgument;
  if (c.devices[i].memory_error != 0) return c.devices[i].memory_error;
  memory->total = c.devices[i].total;
  memory->used = c.devices[i].used;
  memory->free = c.devices[i].total - c.devices[i].used;
  return kSuccess;
}

__attribute__((visibility("default"))) int nvmlDeviceGetComputeRunningProcesses(void* device,
                                                                                unsigned int* count,
                                                                                InfoV1* infos) {
  return Processes(device, count, infos, 1);
}

#ifndef FAKE_NVML_V1_ONLY
__attribute__((visibility("default"))) int nvmlDeviceGetComputeRunningProcesses_v2(
    void* device, unsigned int* count, InfoV2* infos) {
  return Processes(device, count, infos, 2);
}

__attribute__((visibility("default"))) int nvmlDeviceGetComputeRunningProcesses_v3(
    void* device, unsigned int* count, InfoV2* infos) {
  return Processes(device, count, infos, 3);
}
#endif

// Test hooks.
__attribute__((visibility("default"))) int fake_nvml_init_refcount() { return g_init_refcount; }
__attribute__((visibility("default"))) int fake_nvml_process_queries() { return g_process_queries; }
__attribute__((visibility("default"))) int fake_nvml_last_query_version() {
  return g_last_query_version;
}
__attribute__((visibility("default"))) void fake_nvml_reset_counters() {
  g_process_queries = 0;
  g_last_query_version = 0;
}

}  // extern "C"
