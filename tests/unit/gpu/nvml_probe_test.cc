// The NVML backend, through the real dlopen path, against a fake
// libnvidia-ml (fake_nvml.cc) and a fake /proc.
#include <dlfcn.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "clams/gpu/probe.h"
#include "gpu/pid_namespace.h"
#include "testing/status_matchers.h"
#include "testing/testing.h"
#include "unit/gpu/test_util.h"

namespace clams::gpu {
namespace {

using ::clams::gpu_internal::FakeNvmlPath;
using ::clams::gpu_internal::FakeNvmlV1Path;
using ::clams::gpu_internal::FakeProc;
using ::clams::gpu_internal::LogCapture;
using ::clams::gpu_internal::ScopedEnv;
using ::clams::testing::IsOk;
using ::clams::testing::StatusIs;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;

constexpr std::uint64_t kMiB = 1ull << 20;
constexpr std::uint64_t kGiB = 1ull << 30;
constexpr char kUuidA[] = "GPU-aaaaaaaa-1111-2222-3333-444444444444";
constexpr char kUuidB[] = "GPU-bbbbbbbb-1111-2222-3333-444444444444";
constexpr std::uint64_t kOtherNamespace = 4026532001u;

constexpr char kTwoGpus[] =
    "device GPU-aaaaaaaa-1111-2222-3333-444444444444 85899345920 1073741824 NVIDIA H100 80GB HBM3\n"
    "device GPU-bbbbbbbb-1111-2222-3333-444444444444 25769803776 0 NVIDIA A10\n"
    "process 0 100 536870912\n"
    "process 0 200 268435456\n"
    "process 1 100 1048576\n"
    "process 0 100 1048576\n"
    "process 1 300 na\n";

// Test hooks of one fake library, kept loaded so that its counters persist.
class FakeNvmlHooks {
 public:
  explicit FakeNvmlHooks(const std::string& path)
      : handle_(::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL)) {
    EXPECT_NE(handle_, nullptr) << ::dlerror();
    Get(&refcount_, "fake_nvml_init_refcount");
    Get(&queries_, "fake_nvml_process_queries");
    Get(&version_, "fake_nvml_last_query_version");
    Get(&reset_, "fake_nvml_reset_counters");
    if (reset_ != nullptr) reset_();
  }
  ~FakeNvmlHooks() {
    if (handle_ != nullptr) ::dlclose(handle_);
  }
  int init_refcount() const { return refcount_(); }
  int process_queries() const { return queries_(); }
  int last_query_version() const { return version_(); }
  void Reset() const { reset_(); }

 private:
  template <typename Fn>
  void Get(Fn* fn, const char* name) {
    *fn = handle_ != nullptr ? reinterpret_cast<Fn>(::dlsym(handle_, name)) : nullptr;
    EXPECT_NE(*fn, nullptr) << name;
  }
  void* handle_;
  int (*refcount_)() = nullptr;
  int (*queries_)() = nullptr;
  int (*version_)() = nullptr;
  void (*reset_)() = nullptr;
};

class NvmlProbeTest : public ::testing::Test {
 protected:
  NvmlProbeTest()
      : config_path_(dir_.path() / "fake-nvml.conf"),
        env_("FAKE_NVML_CONFIG", config_path_.string()),
        proc_(dir_.path()) {
    proc_.SetNamespace(gpu_internal::kInitialPidNamespaceInode);
    WriteConfig(kTwoGpus);
  }

  void WriteConfig(const std::string& text) { clams::testing::WriteFileOrDie(config_path_, text); }

  ProbeOptions Options() const {
    ProbeOptions options;
    options.nvml_library_path = FakeNvmlPath();
    options.proc_dir = proc_.dir();
    return options;
  }

  std::unique_ptr<Probe> MakeProbe(const ProbeOptions& options) {
    StatusOr<std::unique_ptr<Probe>> probe = CreateProbe(options);
    EXPECT_THAT(probe, IsOk());
    return probe.ok() ? std::move(probe).value() : nullptr;
  }

  clams::testing::TempDir dir_;
  std::filesystem::path config_path_;
  ScopedEnv env_;
  FakeProc proc_;
  FakeNvmlHooks hooks_{FakeNvmlPath()};
};

TEST_F(NvmlProbeTest, ReportsDevicesInNvmlOrder) {
  auto probe = MakeProbe(Options());
  ASSERT_NE(probe, nullptr);
  EXPECT_EQ(probe->backend(), "nvml");
  StatusOr<std::vector<DeviceInfo>> devices = probe->Devices();
  ASSERT_THAT(devices, IsOk());
  ASSERT_THAT(*devices, SizeIs(2));
  const DeviceInfo& a = (*devices)[0];
  EXPECT_EQ(a.index, 0);
  EXPECT_EQ(a.uuid, kUuidA);
  EXPECT_EQ(a.name, "NVIDIA H100 80GB HBM3");
  EXPECT_EQ(a.total_bytes, 80 * kGiB);
  EXPECT_EQ(a.used_bytes, 1 * kGiB);
  EXPECT_EQ(a.free_bytes, 79 * kGiB);
  EXPECT_FALSE(a.simulated);
  EXPECT_EQ(a.high_water_bytes, 0u);
  const DeviceInfo& b = (*devices)[1];
  EXPECT_EQ(b.index, 1);
  EXPECT_EQ(b.uuid, kUuidB);
  EXPECT_EQ(b.name, "NVIDIA A10");
  EXPECT_EQ(b.total_bytes, 24 * kGiB);
  EXPECT_EQ(b.free_bytes, 24 * kGiB);
}

TEST_F(NvmlProbeTest, SampleSumsEachPidPerDevice) {
  auto probe = MakeProbe(Options());
  ASSERT_NE(probe, nullptr);
  EXPECT_TRUE(probe->per_process_accounting());
  StatusOr<Snapshot> snapshot = probe->Sample();
  ASSERT_THAT(snapshot, IsOk());
  EXPECT_THAT(snapshot->devices, SizeIs(2));
  EXPECT_THAT(snapshot->processes,
              ElementsAre(ProcessUsage{100, 0, 512 * kMiB + kMiB}, ProcessUsage{200, 0, 256 * kMiB},
                          ProcessUsage{100, 1, kMiB}, ProcessUsage{300, 1, 0}));
  EXPECT_EQ(hooks_.last_query_version(), 3);
}

TEST_F(NvmlProbeTest, OldDriverFallsBackToTheV1Query) {
  FakeNvmlHooks v1_hooks(FakeNvmlV1Path());
  ProbeOptions options = Options();
  options.nvml_library_path = FakeNvmlV1Path();
  auto probe = MakeProbe(options);
  ASSERT_NE(probe, nullptr);
  StatusOr<Snapshot> snapshot = probe->Sample();
  ASSERT_THAT(snapshot, IsOk());
  EXPECT_THAT(snapshot->processes,
              ElementsAre(ProcessUsage{100, 0, 512 * kMiB + kMiB}, ProcessUsage{200, 0, 256 * kMiB},
                          ProcessUsage{100, 1, kMiB}, ProcessUsage{300, 1, 0}));
  EXPECT_EQ(v1_hooks.last_query_version(), 1);
}

TEST_F(NvmlProbeTest, CudaVisibleDevicesIndicesReorder) {
  ProbeOptions options = Options();
  options.cuda_visible_devices_set = true;
  options.cuda_visible_devices = "1,0";
  options.cuda_device_order = "PCI_BUS_ID";
  auto probe = MakeProbe(options);
  ASSERT_NE(probe, nullptr);
  StatusOr<Snapshot> snapshot = probe->Sample();
  ASSERT_THAT(snapshot, IsOk());
  ASSERT_THAT(snapshot->devices, SizeIs(2));
  EXPECT_EQ(snapshot->devices[0].index, 0);
  EXPECT_EQ(snapshot->devices[0].uuid, kUuidB);
  EXPECT_EQ(snapshot->devices[1].index, 1);
  EXPECT_EQ(snapshot->devices[1].uuid, kUuidA);
  EXPECT_THAT(snapshot->processes, ElementsAre(ProcessUsage{100, 0, kMiB}, ProcessUsage{300, 0, 0},
                                               ProcessUsage{100, 1, 512 * kMiB + kMiB},
                                               ProcessUsage{200, 1, 256 * kMiB}));
}

TEST_F(NvmlProbeTest, CudaVisibleDevicesUuidPrefixPinsOneDeviceAsOrdinalZero) {
  ProbeOptions options = Options();
  options.cuda_visible_devices_set = true;
  options.cuda_visible_devices = "GPU-bbbb";
  auto probe = MakeProbe(options);
  ASSERT_NE(probe, nullptr);
  StatusOr<Snapshot> snapshot = probe->Sample();
  ASSERT_THAT(snapshot, IsOk());
  ASSERT_THAT(snapshot->devices, SizeIs(1));
  EXPECT_EQ(snapshot->devices[0].index, 0);
  EXPECT_EQ(snapshot->devices[0].uuid, kUuidB);
  EXPECT_THAT(snapshot->processes,
              ElementsAre(ProcessUsage{100, 0, kMiB}, ProcessUsage{300, 0, 0}));
}

TEST_F(NvmlProbeTest, CudaVisibleDevicesInvalidEntryEndsTheList) {
  LogCapture logs;
  ProbeOptions options = Options();
  options.cuda_visible_devices_set = true;
  options.cuda_visible_devices = "0,5,1";
  auto probe = MakeProbe(options);
  ASSERT_NE(probe, nullptr);
  StatusOr<std::vector<DeviceInfo>> devices = probe->Devices();
  ASSERT_THAT(devices, IsOk());
  ASSERT_THAT(*devices, SizeIs(1));
  EXPECT_EQ((*devices)[0].uuid, kUuidA);
  EXPECT_THAT(logs.lines(),
              Contains("warning: NVML: CUDA_VISIBLE_DEVICES=\"0,5,1\": index 5 is out of range (2 "
                       "devices); the devices from this entry on are not visible (as in CUDA)"));
}

TEST_F(NvmlProbeTest, MigIdsAreUnsupportedAndHideTheDevice) {
  LogCapture logs;
  ProbeOptions options = Options();
  options.cuda_visible_devices_set = true;
  options.cuda_visible_devices = "MIG-GPU-aaaaaaaa-1111-2222-3333-444444444444/1/0";
  auto probe = MakeProbe(options);
  ASSERT_NE(probe, nullptr);
  EXPECT_EQ(probe->backend(), "nvml");
  StatusOr<std::vector<DeviceInfo>> devices = probe->Devices();
  ASSERT_THAT(devices, IsOk());
  EXPECT_THAT(*devices, IsEmpty());
  EXPECT_THAT(logs.lines(), Contains(HasSubstr("is a MIG device, which clams does not support")));
}

TEST_F(NvmlProbeTest, EmptyCudaVisibleDevicesHidesEverything) {
  ProbeOptions options = Options();
  options.cuda_visible_devices_set = true;
  options.cuda_visible_devices = "";
  auto probe = MakeProbe(options);
  ASSERT_NE(probe, nullptr);
  StatusOr<Snapshot> snapshot = probe->Sample();
  ASSERT_THAT(snapshot, IsOk());
  EXPECT_THAT(snapshot->devices, IsEmpty());
  EXPECT_THAT(snapshot->processes, IsEmpty());
}

TEST_F(NvmlProbeTest, MixedModelsWithoutPciBusOrderWarn) {
  {
    LogCapture logs;
    auto probe = MakeProbe(Options());
    EXPECT_THAT(logs.lines(), Contains(HasSubstr("set CUDA_DEVICE_ORDER=PCI_BUS_ID")));
  }
  {
    LogCapture logs;
    ProbeOptions options = Options();
    options.cuda_device_order = "PCI_BUS_ID";
    auto probe = MakeProbe(options);
    EXPECT_THAT(logs.lines(), Not(Contains(HasSubstr("CUDA_DEVICE_ORDER"))));
  }
}

TEST_F(NvmlProbeTest, InsufficientSizeGrowsTheBufferAndRetries) {
  // Every query adds 40 processes: 43 > 32 entries, then 83 > 64, then 123 <= 128.
  WriteConfig(std::string(kTwoGpus) + "grow 40\n");
  ProbeOptions options = Options();
  options.cuda_visible_devices_set = true;
  options.cuda_visible_devices = "0";
  auto probe = MakeProbe(options);
  ASSERT_NE(probe, nullptr);
  hooks_.Reset();
  StatusOr<Snapshot> snapshot = probe->Sample();
  ASSERT_THAT(snapshot, IsOk());
  EXPECT_EQ(hooks_.process_queries(), 3);
  // pids 100 and 200 plus 120 added ones, each 1 MiB.
  ASSERT_THAT(snapshot->processes, SizeIs(122));
  EXPECT_EQ(snapshot->processes[0], (ProcessUsage{100, 0, 512 * kMiB + kMiB}));
  EXPECT_EQ(snapshot->processes[1], (ProcessUsage{200, 0, 256 * kMiB}));
  EXPECT_EQ(snapshot->processes[121], (ProcessUsage{900119, 0, kMiB}));
}

TEST_F(NvmlProbeTest, AProcessListThatKeepsGrowingIsUnavailable) {
  WriteConfig(std::string(kTwoGpus) + "always_insufficient 1\n");
  auto probe = MakeProbe(Options());
  ASSERT_NE(probe, nullptr);
  hooks_.Reset();
  EXPECT_THAT(probe->Sample(),
              StatusIs(StatusCode::kUnavailable, std::string("NVML: the process list of ") +
                                                     kUuidA + " kept growing over 4 attempts"));
  EXPECT_EQ(hooks_.process_queries(), 4);
  EXPECT_THAT(probe->Devices(), IsOk());
}

TEST_F(NvmlProbeTest, ADeviceThatCannotListProcessesKeepsItsDeviceNumbers) {
  WriteConfig(std::string(kTwoGpus) + "process_error 3\n");
  auto probe = MakeProbe(Options());
  ASSERT_NE(probe, nullptr);
  LogCapture logs(log::Level::kWarning);
  for (int i = 0; i < 2; ++i) {
    StatusOr<Snapshot> snapshot = probe->Sample();
    ASSERT_THAT(snapshot, IsOk());
    EXPECT_THAT(snapshot->devices, SizeIs(2));
    EXPECT_THAT(snapshot->processes, IsEmpty());
  }
  EXPECT_FALSE(probe->per_process_accounting());
  EXPECT_THAT(logs.lines(),
              ElementsAre(std::string("warning: NVML cannot list the processes on ") + kUuidA +
                          ": Not Supported (NVML error 3); per-process GPU accounting is off, GPU "
                          "memory is accounted per device"));
}

TEST_F(NvmlProbeTest, AV3QueryTheDriverLacksFallsBackToV2) {
  WriteConfig(std::string(kTwoGpus) + "v3_error 13\n");
  auto probe = MakeProbe(Options());
  ASSERT_NE(probe, nullptr);
  StatusOr<Snapshot> snapshot = probe->Sample();
  ASSERT_THAT(snapshot, IsOk());
  EXPECT_THAT(snapshot->processes, SizeIs(4));
  EXPECT_EQ(hooks_.last_query_version(), 2);
  EXPECT_TRUE(probe->per_process_accounting());
}

TEST_F(NvmlProbeTest, AProcessListErrorIsUnavailable) {
  WriteConfig(std::string(kTwoGpus) + "process_error 15\n");
  auto probe = MakeProbe(Options());
  ASSERT_NE(probe, nullptr);
  EXPECT_THAT(probe->Sample(), StatusIs(StatusCode::kUnavailable,
                                        std::string("NVML: listing the processes on ") + kUuidA +
                                            " failed: GPU is lost (NVML error 15)"));
}

TEST_F(NvmlProbeTest, AMemoryErrorIsUnavailable) {
  WriteConfig(std::string(kTwoGpus) + "memory_error 1 15\n");
  auto probe = MakeProbe(Options());
  ASSERT_NE(probe, nullptr);
  EXPECT_THAT(probe->Devices(), StatusIs(StatusCode::kUnavailable,
                                         std::string("NVML: reading the memory of ") + kUuidB +
                                             " failed: GPU is lost (NVML error 15)"));
  EXPECT_THAT(probe->Sample(), StatusIs(StatusCode::kUnavailable, HasSubstr("GPU is lost")));
}

TEST_F(NvmlProbeTest, ShutsNvmlDownWhenDestroyed) {
  {
    auto probe = MakeProbe(Options());
    ASSERT_NE(probe, nullptr);
    EXPECT_EQ(hooks_.init_refcount(), 1);
    auto second = MakeProbe(Options());
    EXPECT_EQ(hooks_.init_refcount(), 2);
  }
  EXPECT_EQ(hooks_.init_refcount(), 0);
}

TEST_F(NvmlProbeTest, NoLibraryMeansNoGpus) {
  LogCapture logs;
  ProbeOptions options = Options();
  options.nvml_library_path = (dir_.path() / "libnvidia-ml.so.1").string();
  auto probe = MakeProbe(options);
  ASSERT_NE(probe, nullptr);
  EXPECT_EQ(probe->backend(), "none");
  EXPECT_THAT(probe->Devices(), ::clams::testing::IsOkAndHolds(IsEmpty()));
  StatusOr<Snapshot> snapshot = probe->Sample();
  ASSERT_THAT(snapshot, IsOk());
  EXPECT_THAT(snapshot->devices, IsEmpty());
  EXPECT_THAT(snapshot->processes, IsEmpty());
  EXPECT_THAT(logs.lines(),
              ElementsAre("info: no GPUs (backend: none): cannot load " +
                          options.nvml_library_path + ": " + options.nvml_library_path +
                          ": cannot open shared object file: No such file or directory"));
}

TEST_F(NvmlProbeTest, DriverNotLoadedMeansNoGpus) {
  WriteConfig("init_error 9\n");
  LogCapture logs;
  auto probe = MakeProbe(Options());
  ASSERT_NE(probe, nullptr);
  EXPECT_EQ(probe->backend(), "none");
  EXPECT_THAT(logs.lines(),
              ElementsAre("info: no GPUs (backend: none): nvmlInit_v2 failed: Driver Not Loaded "
                          "(NVML error 9)"));
}

TEST_F(NvmlProbeTest, DeviceCountErrorMeansNoGpusAndShutsDown) {
  WriteConfig(std::string(kTwoGpus) + "count_error 999\n");
  auto probe = MakeProbe(Options());
  ASSERT_NE(probe, nullptr);
  EXPECT_EQ(probe->backend(), "none");
  EXPECT_EQ(hooks_.init_refcount(), 0);
}

TEST_F(NvmlProbeTest, ZeroDevicesIsNvmlWithoutGpus) {
  WriteConfig("");
  auto probe = MakeProbe(Options());
  ASSERT_NE(probe, nullptr);
  EXPECT_EQ(probe->backend(), "nvml");
  EXPECT_THAT(probe->Devices(), ::clams::testing::IsOkAndHolds(IsEmpty()));
}

TEST_F(NvmlProbeTest, UseNvmlFalseMeansNoGpus) {
  ProbeOptions options = Options();
  options.use_nvml = false;
  auto probe = MakeProbe(options);
  ASSERT_NE(probe, nullptr);
  EXPECT_EQ(probe->backend(), "none");
  EXPECT_EQ(hooks_.init_refcount(), 0);
}

TEST_F(NvmlProbeTest, HostPidsInAContainerTurnPerProcessAccountingOff) {
  proc_.SetNamespace(kOtherNamespace);
  proc_.AddProcess(200, {"/dev/null"});  // a PID that exists here, but not a GPU user
  LogCapture logs;
  auto probe = MakeProbe(Options());
  ASSERT_NE(probe, nullptr);
  EXPECT_FALSE(probe->per_process_accounting());  // pending until processes show up
  EXPECT_THAT(logs.lines(),
              Contains("info: NVML: this process is not in the initial PID namespace (namespace "
                       "inode 4026532001); per-process GPU accounting stays off until NVML's "
                       "process list shows whose PIDs it reports"));
  for (int i = 0; i < 3; ++i) {
    StatusOr<Snapshot> snapshot = probe->Sample();
    ASSERT_THAT(snapshot, IsOk());
    EXPECT_THAT(snapshot->devices, SizeIs(2));
    EXPECT_THAT(snapshot->processes, IsEmpty());
  }
  EXPECT_FALSE(probe->per_process_accounting());
  int warnings = 0;
  for (const std::string& line : logs.lines()) {
    if (line.find("per-process GPU accounting is off") != std::string::npos) ++warnings;
  }
  EXPECT_EQ(warnings, 1);
  // Decided for good: our PIDs showing up later do not turn it back on.
  proc_.AddProcess(100, {"/dev/nvidia0"});
  ASSERT_THAT(probe->Sample(), IsOk());
  EXPECT_FALSE(probe->per_process_accounting());
}

TEST_F(NvmlProbeTest, OwnPidsInAContainerKeepPerProcessAccounting) {
  proc_.SetNamespace(kOtherNamespace);
  WriteConfig(
      "device GPU-aaaaaaaa-1111-2222-3333-444444444444 85899345920 0 NVIDIA H100 80GB HBM3\n");
  auto probe = MakeProbe(Options());
  ASSERT_NE(probe, nullptr);
  // No process yet: nothing to judge by.
  ASSERT_THAT(probe->Sample(), IsOk());
  EXPECT_FALSE(probe->per_process_accounting());
  // A worker of ours (it has /dev/nvidia0 open) and a foreign one.
  proc_.AddProcess(100, {"/dev/nvidiactl", "/dev/nvidia0"});
  WriteConfig(
      "device GPU-aaaaaaaa-1111-2222-3333-444444444444 85899345920 0 NVIDIA H100 80GB HBM3\n"
      "process 0 100 1048576\nprocess 0 4242 2097152\n");
  LogCapture logs;
  StatusOr<Snapshot> snapshot = probe->Sample();
  ASSERT_THAT(snapshot, IsOk());
  EXPECT_TRUE(probe->per_process_accounting());
  EXPECT_THAT(snapshot->processes,
              ElementsAre(ProcessUsage{100, 0, kMiB}, ProcessUsage{4242, 0, 2 * kMiB}));
  EXPECT_THAT(logs.lines(), ElementsAre("info: NVML reports the PIDs of this PID namespace: "
                                        "per-process GPU accounting is on"));
}

TEST_F(NvmlProbeTest, ProbeOptionsFromEnvironment) {
  ScopedEnv a("CLAMS_SIM_GPUS", "0:24GiB,1:16GiB");
  ScopedEnv b("CLAMS_SIM_STATE", "/tmp/x.state");
  ScopedEnv c("CUDA_VISIBLE_DEVICES", "");
  ScopedEnv d("CUDA_DEVICE_ORDER", "PCI_BUS_ID");
  ScopedEnv e("CLAMS_NVML_LIBRARY", "/opt/libnvidia-ml.so.1");
  ProbeOptions options = ProbeOptions::FromEnvironment();
  EXPECT_EQ(options.sim_gpus, "0:24GiB,1:16GiB");
  EXPECT_EQ(options.sim_state, "/tmp/x.state");
  EXPECT_TRUE(options.cuda_visible_devices_set);
  EXPECT_EQ(options.cuda_visible_devices, "");
  EXPECT_EQ(options.cuda_device_order, "PCI_BUS_ID");
  EXPECT_EQ(options.nvml_library_path, "/opt/libnvidia-ml.so.1");
  EXPECT_TRUE(options.use_nvml);
  EXPECT_EQ(options.proc_dir, "/proc");
  ScopedEnv f("CUDA_VISIBLE_DEVICES", std::nullopt);
  EXPECT_FALSE(ProbeOptions::FromEnvironment().cuda_visible_devices_set);
}

}  // namespace
}  // namespace clams::gpu
