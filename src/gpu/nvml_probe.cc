// The NVML Probe backend. libnvidia-ml is loaded with dlopen at run time;
// the few NVML types and functions used are declared here, so neither CUDA
// nor NVML headers are needed to build.
#include <dlfcn.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <utility>

#include "clams/base/log.h"
#include "gpu/backends.h"
#include "gpu/pid_namespace.h"
#include "gpu/visible_devices.h"

namespace clams::gpu_internal {
namespace {

// ---- NVML declarations (layouts from the NVML API reference, nvml.h) ----
using NvmlReturn = int;  // nvmlReturn_t, a C enum
constexpr NvmlReturn kNvmlSuccess = 0;
constexpr NvmlReturn kNvmlErrorNotSupported = 3;
constexpr NvmlReturn kNvmlErrorNoPermission = 4;
constexpr NvmlReturn kNvmlErrorInsufficientSize = 7;
constexpr NvmlReturn kNvmlErrorFunctionNotFound = 13;
struct NvmlDeviceOpaque;
using NvmlDevice = NvmlDeviceOpaque*;  // nvmlDevice_t
struct NvmlMemory {                    // nvmlMemory_t (v1)
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};
struct NvmlProcessInfoV1 {  // nvmlProcessInfo_v1_t: nvmlDeviceGetComputeRunningProcesses
  unsigned int pid;
  unsigned long long usedGpuMemory;
};
struct NvmlProcessInfoV2 {  // nvmlProcessInfo_v2_t / nvmlProcessInfo_t: the _v2 and _v3 queries
  unsigned int pid;
  unsigned long long usedGpuMemory;
  unsigned int gpuInstanceId;
  unsigned int computeInstanceId;
};
static_assert(sizeof(NvmlMemory) == 24);
static_assert(sizeof(NvmlProcessInfoV1) == 16);
static_assert(sizeof(NvmlProcessInfoV2) == 24);
// usedGpuMemory when the driver cannot tell (e.g. Windows WDDM).
constexpr unsigned long long kNvmlValueNotAvailable = ~0ull;
// NVML_DEVICE_NAME_V2_BUFFER_SIZE and NVML_DEVICE_UUID_V2_BUFFER_SIZE.
constexpr unsigned int kNvmlNameBufferSize = 96;
constexpr unsigned int kNvmlUuidBufferSize = 96;

using NvmlInitFn = NvmlReturn (*)();
using NvmlShutdownFn = NvmlReturn (*)();
using NvmlGetCountFn = NvmlReturn (*)(unsigned int*);
using NvmlGetHandleFn = NvmlReturn (*)(unsigned int, NvmlDevice*);
using NvmlGetStringFn = NvmlReturn (*)(NvmlDevice, char*, unsigned int);
using NvmlGetMemoryFn = NvmlReturn (*)(NvmlDevice, NvmlMemory*);
using NvmlGetProcessesV1Fn = NvmlReturn (*)(NvmlDevice, unsigned int*, NvmlProcessInfoV1*);
using NvmlGetProcessesV2Fn = NvmlReturn (*)(NvmlDevice, unsigned int*, NvmlProcessInfoV2*);
using NvmlErrorStringFn = const char* (*)(NvmlReturn);

// Process-list buffers start with room for this many entries per device and
// grow when NVML answers NVML_ERROR_INSUFFICIENT_SIZE; the list can grow
// between calls, so a retry asks for some slack and a few attempts are made.
constexpr std::size_t kInitialProcessCapacity = 32;
constexpr std::size_t kProcessListSlack = 8;
constexpr int kMaxProcessQueryAttempts = 4;

constexpr std::string_view kPciBusIdOrder = "PCI_BUS_ID";

struct RawProcess {
  int pid;
  std::uint64_t bytes;
};

// The loaded library: dlclose()d, and NVML shut down, when destroyed.
class NvmlLibrary {
 public:
  static StatusOr<std::unique_ptr<NvmlLibrary>> Load(const std::string& path) {
    void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
      const char* err = ::dlerror();
      return NotFoundError(fmt::format("cannot load {}: {}", path, err != nullptr ? err : "?"));
    }
    std::unique_ptr<NvmlLibrary> lib(new NvmlLibrary(handle, path));
    std::string missing;
    auto sym = [&](auto* fn, const char* name) {
      *fn = reinterpret_cast<std::remove_pointer_t<decltype(fn)>>(::dlsym(handle, name));
      if (*fn == nullptr) missing += std::string(missing.empty() ? "" : ", ") + name;
    };
    sym(&lib->init_, "nvmlInit_v2");
    sym(&lib->shutdown_, "nvmlShutdown");
    sym(&lib->get_count_, "nvmlDeviceGetCount_v2");
    sym(&lib->get_handle_, "nvmlDeviceGetHandleByIndex_v2");
    sym(&lib->get_name_, "nvmlDeviceGetName");
    sym(&lib->get_uuid_, "nvmlDeviceGetUUID");
    sym(&lib->get_memory_, "nvmlDeviceGetMemoryInfo");
    sym(&lib->error_string_, "nvmlErrorString");
    // The newest process query the library has; older drivers lack _v3/_v2.
    lib->get_processes_v3_ = reinterpret_cast<NvmlGetProcessesV2Fn>(
        ::dlsym(handle, "nvmlDeviceGetComputeRunningProcesses_v3"));
    lib->get_processes_v2_ = reinterpret_cast<NvmlGetProcessesV2Fn>(
        ::dlsym(handle, "nvmlDeviceGetComputeRunningProcesses_v2"));
    lib->get_processes_v1_ = reinterpret_cast<NvmlGetProcessesV1Fn>(
        ::dlsym(handle, "nvmlDeviceGetComputeRunningProcesses"));
    if (lib->get_processes_v3_ == nullptr && lib->get_processes_v2_ == nullptr &&
        lib->get_processes_v1_ == nullptr) {
      missing += std::string(missing.empty() ? "" : ", ") + "nvmlDeviceGetComputeRunningProcesses";
    }
    if (!missing.empty()) {
      return FailedPreconditionError(fmt::format("{} lacks {}", path, missing));
    }
    const NvmlReturn r = lib->init_();
    if (r != kNvmlSuccess) {
      return UnavailableError(fmt::format("nvmlInit_v2 failed: {}", lib->Error(r)));
    }
    lib->initialized_ = true;
    return lib;
  }

  ~NvmlLibrary() {
    if (initialized_) shutdown_();
    ::dlclose(handle_);
  }
  NvmlLibrary(const NvmlLibrary&) = delete;
  NvmlLibrary& operator=(const NvmlLibrary&) = delete;

  std::string Error(NvmlReturn r) const {
    const char* text = error_string_ != nullptr ? error_string_(r) : nullptr;
    return fmt::format("{} (NVML error {})", text != nullptr ? text : "unknown error", r);
  }

  NvmlGetCountFn get_count_ = nullptr;
  NvmlGetHandleFn get_handle_ = nullptr;
  NvmlGetStringFn get_name_ = nullptr;
  NvmlGetStringFn get_uuid_ = nullptr;
  NvmlGetMemoryFn get_memory_ = nullptr;
  NvmlGetProcessesV2Fn get_processes_v3_ = nullptr;
  NvmlGetProcessesV2Fn get_processes_v2_ = nullptr;
  NvmlGetProcessesV1Fn get_processes_v1_ = nullptr;
  const std::string path_;

 private:
  NvmlLibrary(void* handle, std::string path) : path_(std::move(path)), handle_(handle) {}

  void* handle_;
  bool initialized_ = false;
  NvmlInitFn init_ = nullptr;
  NvmlShutdownFn shutdown_ = nullptr;
  NvmlErrorStringFn error_string_ = nullptr;
};

struct NvmlDeviceEntry {
  NvmlDevice handle = nullptr;
  std::string uuid;
  std::string name;
  // Reused across samples (guarded by the probe's mutex).
  std::vector<NvmlProcessInfoV1> buffer_v1;
  std::vector<NvmlProcessInfoV2> buffer_v2;
};

// One process query: fills `out` and returns kNvmlSuccess, or the error of
// the last attempt (kNvmlErrorInsufficientSize if the list kept outgrowing
// `buffer`, which grows on every NVML_ERROR_INSUFFICIENT_SIZE).
template <typename Info, typename Fn>
NvmlReturn QueryProcesses(Fn fn, NvmlDevice handle, std::vector<Info>& buffer,
                          std::vector<RawProcess>* out) {
  if (buffer.empty()) buffer.resize(kInitialProcessCapacity);
  NvmlReturn r = kNvmlErrorInsufficientSize;
  for (int attempt = 0; attempt < kMaxProcessQueryAttempts; ++attempt) {
    unsigned int count = static_cast<unsigned int>(buffer.size());
    r = fn(handle, &count, buffer.data());
    if (r == kNvmlSuccess) {
      const std::size_t n = std::min<std::size_t>(count, buffer.size());
      for (std::size_t i = 0; i < n; ++i) {
        const unsigned long long used = buffer[i].usedGpuMemory;
        out->push_back({static_cast<int>(buffer[i].pid),
                        used == kNvmlValueNotAvailable ? 0 : static_cast<std::uint64_t>(used)});
      }
      return r;
    }
    if (r != kNvmlErrorInsufficientSize) return r;
    buffer.resize(std::max<std::size_t>(static_cast<std::size_t>(count) + kProcessListSlack,
                                        buffer.size() * 2));
  }
  return r;
}

class NvmlProbe : public gpu::Probe {
 public:
  NvmlProbe(std::unique_ptr<NvmlLibrary> lib, std::vector<NvmlDeviceEntry> devices,
            std::string proc_dir, PidAttribution attribution)
      : lib_(std::move(lib)),
        devices_(std::move(devices)),
        proc_dir_(std::move(proc_dir)),
        attribution_(attribution) {}

  std::string_view backend() const override { return "nvml"; }

  StatusOr<std::vector<gpu::DeviceInfo>> Devices() override {
    std::lock_guard<std::mutex> lock(mu_);
    return ReadDevices();
  }

  StatusOr<gpu::Snapshot> Sample() override {
    std::lock_guard<std::mutex> lock(mu_);
    gpu::Snapshot snapshot;
    CLAMS_ASSIGN_OR_RETURN(snapshot.devices, ReadDevices());
    std::map<std::pair<int, int>, std::uint64_t> usage;  // (ordinal, pid) -> bytes
    std::set<int> pids;
    for (std::size_t ordinal = 0; ordinal < devices_.size(); ++ordinal) {
      std::vector<RawProcess> raw;
      CLAMS_RETURN_IF_ERROR(ReadProcesses(devices_[ordinal], &raw));
      for (const RawProcess& p : raw) {
        usage[{static_cast<int>(ordinal), p.pid}] += p.bytes;
        pids.insert(p.pid);
      }
    }
    if (attribution_.load() == PidAttribution::kPending && !pids.empty()) Attribute(pids);
    if (per_process_accounting()) {
      for (const auto& [key, bytes] : usage) {
        snapshot.processes.push_back({key.second, key.first, bytes});
      }
    }
    return snapshot;
  }

  bool per_process_accounting() const override {
    return attribution_.load() == PidAttribution::kOwnPids && !process_list_unavailable_.load();
  }

 private:
  StatusOr<std::vector<gpu::DeviceInfo>> ReadDevices() {
    std::vector<gpu::DeviceInfo> out;
    out.reserve(devices_.size());
    for (std::size_t ordinal = 0; ordinal < devices_.size(); ++ordinal) {
      const NvmlDeviceEntry& d = devices_[ordinal];
      NvmlMemory memory{};
      const NvmlReturn r = lib_->get_memory_(d.handle, &memory);
      if (r != kNvmlSuccess) {
        return UnavailableError(
            fmt::format("NVML: reading the memory of {} failed: {}", d.uuid, lib_->Error(r)));
      }
      gpu::DeviceInfo info;
      info.index = static_cast<int>(ordinal);
      info.uuid = d.uuid;
      info.name = d.name;
      info.total_bytes = memory.total;
      info.used_bytes = memory.used;
      info.free_bytes = memory.free;
      out.push_back(std::move(info));
    }
    return out;
  }

  // Fills `out` with the processes on `d`. kUnavailable if NVML fails; ok
  // with nothing (and per-process accounting off for good) if the device
  // cannot list processes at all.
  Status ReadProcesses(NvmlDeviceEntry& d, std::vector<RawProcess>* out) {
    NvmlReturn r = kNvmlSuccess;
    for (;;) {
      if (lib_->get_processes_v3_ != nullptr) {
        r = QueryProcesses(lib_->get_processes_v3_, d.handle, d.buffer_v2, out);
        // A library that exports a query the driver lacks: use the older one.
        if (r == kNvmlErrorFunctionNotFound) {
          lib_->get_processes_v3_ = nullptr;
          continue;
        }
      } else if (lib_->get_processes_v2_ != nullptr) {
        r = QueryProcesses(lib_->get_processes_v2_, d.handle, d.buffer_v2, out);
        if (r == kNvmlErrorFunctionNotFound) {
          lib_->get_processes_v2_ = nullptr;
          continue;
        }
      } else if (lib_->get_processes_v1_ != nullptr) {
        r = QueryProcesses(lib_->get_processes_v1_, d.handle, d.buffer_v1, out);
      } else {
        r = kNvmlErrorFunctionNotFound;
      }
      break;
    }
    if (r == kNvmlSuccess) return Status::Ok();
    if (r == kNvmlErrorNotSupported || r == kNvmlErrorNoPermission ||
        r == kNvmlErrorFunctionNotFound) {
      out->clear();
      if (!process_list_unavailable_.exchange(true)) {
        CLAMS_LOG(kWarning,
                  "NVML cannot list the processes on {}: {}; per-process GPU accounting is off, "
                  "GPU memory is accounted per device",
                  d.uuid, lib_->Error(r));
      }
      return Status::Ok();
    }
    if (r == kNvmlErrorInsufficientSize) {
      return UnavailableError(
          fmt::format("NVML: the process list of {} kept growing over {} "
                      "attempts",
                      d.uuid, kMaxProcessQueryAttempts));
    }
    return UnavailableError(
        fmt::format("NVML: listing the processes on {} failed: {}", d.uuid, lib_->Error(r)));
  }

  void Attribute(const std::set<int>& pids) {
    std::vector<PidLook> looks;
    for (int pid : pids) looks.push_back(LookUpPid(proc_dir_, pid));
    const PidAttribution verdict = AttributionFromPids(looks);
    if (verdict == PidAttribution::kPending) return;
    attribution_.store(verdict);
    if (verdict == PidAttribution::kOwnPids) {
      CLAMS_LOG(kInfo,
                "NVML reports the PIDs of this PID namespace: per-process GPU accounting "
                "is on");
    } else {
      CLAMS_LOG(kWarning,
                "NVML reports PIDs that are not processes of this PID namespace (a container "
                "without --pid=host; the driver reports host PIDs): per-process GPU accounting is "
                "off, GPU memory is accounted per device");
    }
  }

  const std::unique_ptr<NvmlLibrary> lib_;
  std::mutex mu_;
  std::vector<NvmlDeviceEntry> devices_;  // by CUDA ordinal; buffers guarded by mu_
  const std::string proc_dir_;
  std::atomic<PidAttribution> attribution_;
  // Set for good when a device cannot list its processes (vGPU, MIG, old
  // drivers): per-device numbers are all there is then.
  std::atomic<bool> process_list_unavailable_{false};
};

std::string ReadDeviceString(const NvmlLibrary& lib, NvmlGetStringFn fn, NvmlDevice handle,
                             unsigned int size, Status* status, const char* what) {
  std::vector<char> buf(size, '\0');
  const NvmlReturn r = fn(handle, buf.data(), size);
  if (r != kNvmlSuccess) {
    *status = UnavailableError(fmt::format("{} failed: {}", what, lib.Error(r)));
    return "";
  }
  buf.back() = '\0';
  return std::string(buf.data());
}

}  // namespace

StatusOr<std::unique_ptr<gpu::Probe>> CreateNvmlProbe(const gpu::ProbeOptions& options) {
  const std::string path = options.nvml_library_path.empty() ? std::string(gpu::kNvmlLibrary)
                                                             : options.nvml_library_path;
  CLAMS_ASSIGN_OR_RETURN(std::unique_ptr<NvmlLibrary> lib, NvmlLibrary::Load(path));
  unsigned int count = 0;
  const NvmlReturn r = lib->get_count_(&count);
  if (r != kNvmlSuccess) {
    return UnavailableError(fmt::format("nvmlDeviceGetCount_v2 failed: {}", lib->Error(r)));
  }
  // Every device NVML can describe, in NVML (PCI bus) order.
  std::vector<NvmlDeviceEntry> all;
  for (unsigned int i = 0; i < count; ++i) {
    NvmlDeviceEntry d;
    NvmlReturn hr = lib->get_handle_(i, &d.handle);
    Status status;
    if (hr != kNvmlSuccess) {
      status =
          UnavailableError(fmt::format("nvmlDeviceGetHandleByIndex_v2 failed: {}", lib->Error(hr)));
    } else {
      d.uuid = ReadDeviceString(*lib, lib->get_uuid_, d.handle, kNvmlUuidBufferSize, &status,
                                "nvmlDeviceGetUUID");
      if (status.ok()) {
        d.name = ReadDeviceString(*lib, lib->get_name_, d.handle, kNvmlNameBufferSize, &status,
                                  "nvmlDeviceGetName");
      }
    }
    if (!status.ok()) {
      CLAMS_LOG(kWarning, "NVML: skipping GPU {}: {}", i, status.message());
      continue;
    }
    all.push_back(std::move(d));
  }
  std::vector<std::string> uuids;
  for (const NvmlDeviceEntry& d : all) uuids.push_back(d.uuid);
  const VisibleDevices visible =
      MapVisibleDevices(options.cuda_visible_devices_set, options.cuda_visible_devices, uuids);
  if (!visible.note.empty()) CLAMS_LOG(kWarning, "NVML: {}", visible.note);
  std::vector<NvmlDeviceEntry> devices;
  for (int physical : visible.physical) devices.push_back(all[static_cast<std::size_t>(physical)]);

  bool mixed_models = false;
  for (const NvmlDeviceEntry& d : devices) mixed_models |= d.name != devices.front().name;
  if (mixed_models && options.cuda_device_order != kPciBusIdOrder) {
    CLAMS_LOG(kWarning,
              "GPUs of different models and CUDA_DEVICE_ORDER is not PCI_BUS_ID: CUDA numbers "
              "them fastest first, clams in PCI bus order; set CUDA_DEVICE_ORDER=PCI_BUS_ID so "
              "that both agree");
  }

  const std::optional<std::uint64_t> ns_inode = ReadPidNamespaceInode(options.proc_dir);
  const PidAttribution attribution = AttributionFromNamespace(ns_inode);
  if (attribution == PidAttribution::kPending) {
    CLAMS_LOG(kInfo,
              "NVML: this process is not in the initial PID namespace ({}); per-process GPU "
              "accounting stays off until NVML's process list shows whose PIDs it reports",
              ns_inode.has_value() ? fmt::format("namespace inode {}", *ns_inode)
                                   : std::string("namespace unreadable"));
  }
  CLAMS_LOG(kInfo, "NVML ({}): {} GPU(s) visible of {}", path, devices.size(), all.size());
  return std::unique_ptr<gpu::Probe>(
      new NvmlProbe(std::move(lib), std::move(devices), options.proc_dir, attribution));
}

}  // namespace clams::gpu_internal
