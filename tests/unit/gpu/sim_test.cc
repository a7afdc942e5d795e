// Simulated GPUs: configuration, allocations shared through the state file
// by many processes, the purge of gone processes, and the simulated Probe.
#include "clams/gpu/sim.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <future>
#include <functional>
#include <thread>

#include "gpu/sim_state.h"
#include "testing/status_matchers.h"
#include "testing/testing.h"
#include "unit/gpu/test_util.h"

namespace clams::gpu {
namespace {

using ::clams::gpu_internal::LogCapture;
using ::clams::gpu_internal::ScopedEnv;
using ::clams::testing::IsOk;
using ::clams::testing::IsOkAndHolds;
using ::clams::testing::StatusIs;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;
using ::testing::StartsWith;

constexpr std::uint64_t kGiB = 1ull << 30;

// A forked child running `body`; its exit status is body's return value.
class Child {
 public:
  explicit Child(const std::function<int(int write_fd, int read_fd)>& body) {
    int to_parent[2];
    int to_child[2];
    EXPECT_EQ(::pipe(to_parent), 0);
    EXPECT_EQ(::pipe(to_child), 0);
    pid_ = ::fork();
    if (pid_ == 0) {
      ::close(to_parent[0]);
      ::close(to_child[1]);
      ::_exit(body(to_parent[1], to_child[0]));
    }
    ::close(to_parent[1]);
    ::close(to_child[0]);
    from_child_ = to_parent[0];
    to_child_ = to_child[1];
  }
  ~Child() {
    ::close(from_child_);
    ::close(to_child_);
    if (pid_ > 0 && !reaped_) {
      ::kill(pid_, SIGKILL);
      Wait();
    }
  }
  int pid() const { return pid_; }
  // Reads one byte the child wrote (false at EOF).
  bool Receive(char* c) { return ::read(from_child_, c, 1) == 1; }
  void Send(char c) { EXPECT_EQ(::write(to_child_, &c, 1), 1); }
  int Wait() {
    int status = 0;
    EXPECT_EQ(::waitpid(pid_, &status, 0), pid_);
    reaped_ = true;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
  }

 private:
  int pid_ = -1;
  int from_child_ = -1;
  int to_child_ = -1;
  bool reaped_ = false;
};

void Tell(int fd, char c) {
  if (::write(fd, &c, 1) != 1) ::_exit(90);
}
void Await(int fd) {
  char c;
  if (::read(fd, &c, 1) != 1) ::_exit(91);
}

class SimTest : public ::testing::Test {
 protected:
  SimTest() : state_path_((dir_.path() / "sim.state").string()) {
    config_ = sim::Config::Parse("0:24GiB,1:16GiB", state_path_).value();
  }

  std::unique_ptr<Probe> MakeProbe(const std::string& spec = "0:24GiB,1:16GiB") {
    ProbeOptions options;
    options.sim_gpus = spec;
    options.sim_state = state_path_;
    options.cuda_visible_devices_set = cvd_.has_value();
    options.cuda_visible_devices = cvd_.value_or("");
    StatusOr<std::unique_ptr<Probe>> probe = CreateProbe(options);
    EXPECT_THAT(probe, IsOk());
    return probe.ok() ? std::move(probe).value() : nullptr;
  }

  DeviceInfo Device(int index) {
    auto probe = MakeProbe();
    StatusOr<std::vector<DeviceInfo>> devices = probe->Devices();
    EXPECT_THAT(devices, IsOk());
    return devices.ok() && index < static_cast<int>(devices->size()) ? (*devices)[index]
                                                                     : DeviceInfo{};
  }

  clams::testing::TempDir dir_;
  std::string state_path_;
  sim::Config config_;
  ScopedEnv no_cvd_{"CUDA_VISIBLE_DEVICES", std::nullopt};
  std::optional<std::string> cvd_;
};

// ---- Config ----

TEST(SimConfigTest, ParsesOneSize) {
  StatusOr<sim::Config> c = sim::Config::Parse("24GiB", "/x/state");
  ASSERT_THAT(c, IsOk());
  EXPECT_THAT(c->capacities, ElementsAre(24 * kGiB));
  EXPECT_EQ(c->state_path, "/x/state");
}

TEST(SimConfigTest, ParsesIndexedAndPlainLists) {
  EXPECT_THAT(sim::Config::Parse("0:24GiB,1:16GiB", "s")->capacities,
              ElementsAre(24 * kGiB, 16 * kGiB));
  EXPECT_THAT(sim::Config::Parse(" 1:16GiB , 0 : 24GiB ", "s")->capacities,
              ElementsAre(24 * kGiB, 16 * kGiB));
  EXPECT_THAT(sim::Config::Parse("24GiB,16G,8000MB", "s")->capacities,
              ElementsAre(24 * kGiB, 16 * kGiB, 8000000000ull));
}

TEST(SimConfigTest, DefaultStatePathDependsOnlyOnTheDevices) {
  const std::string a = sim::Config::Parse("24GiB", "")->state_path;
  EXPECT_EQ(a, sim::Config::Parse("0:24GiB", "")->state_path);
  EXPECT_EQ(a, sim::Config::DefaultStatePath({24 * kGiB}));
  EXPECT_NE(a, sim::Config::Parse("16GiB", "")->state_path);
  EXPECT_THAT(a, StartsWith((std::filesystem::temp_directory_path() /
                             ("clams-sim-gpus-" + std::to_string(::getuid()) + "-"))
                                .string()));
  EXPECT_THAT(a, ::testing::EndsWith(".state"));
}

TEST(SimConfigTest, RejectsMalformedSpecs) {
  EXPECT_THAT(sim::Config::Parse("", "s"),
              StatusIs(StatusCode::kInvalidArgument, "invalid CLAMS_SIM_GPUS \"\": empty"));
  EXPECT_THAT(sim::Config::Parse("0:24GiB,0:16GiB", "s"),
              StatusIs(StatusCode::kInvalidArgument,
                       "invalid CLAMS_SIM_GPUS \"0:24GiB,0:16GiB\": device 0 is listed twice"));
  EXPECT_THAT(sim::Config::Parse("0:24GiB,2:16GiB", "s"),
              StatusIs(StatusCode::kInvalidArgument,
                       "invalid CLAMS_SIM_GPUS \"0:24GiB,2:16GiB\": device index \"2\" is not one "
                       "of 0..1"));
  EXPECT_THAT(sim::Config::Parse("24GiB,1:16GiB", "s"),
              StatusIs(StatusCode::kInvalidArgument,
                       HasSubstr("either every entry has an index (\"0:24GiB\") or none does")));
  EXPECT_THAT(sim::Config::Parse("0GiB", "s"),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("a device of 0 bytes")));
  EXPECT_THAT(sim::Config::Parse("24GiB,,16GiB", "s"),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("entry 2 is empty")));
  EXPECT_THAT(sim::Config::Parse("a:24GiB", "s"),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("device index \"a\"")));
  EXPECT_THAT(sim::Config::Parse("lots", "s"),
              StatusIs(StatusCode::kInvalidArgument,
                       HasSubstr("invalid CLAMS_SIM_GPUS \"lots\": invalid byte size \"lots\"")));
}

TEST(SimConfigTest, FromEnvironment) {
  {
    ScopedEnv gpus("CLAMS_SIM_GPUS", std::nullopt);
    EXPECT_THAT(sim::Config::FromEnvironment(),
                StatusIs(StatusCode::kFailedPrecondition, StartsWith("CLAMS_SIM_GPUS is not set")));
  }
  {
    ScopedEnv gpus("CLAMS_SIM_GPUS", "");
    EXPECT_THAT(sim::Config::FromEnvironment(),
                StatusIs(StatusCode::kFailedPrecondition, StartsWith("CLAMS_SIM_GPUS is not set")));
  }
  ScopedEnv gpus("CLAMS_SIM_GPUS", "16GiB");
  ScopedEnv state("CLAMS_SIM_STATE", "/somewhere/sim.state");
  StatusOr<sim::Config> c = sim::Config::FromEnvironment();
  ASSERT_THAT(c, IsOk());
  EXPECT_THAT(c->capacities, ElementsAre(16 * kGiB));
  EXPECT_EQ(c->state_path, "/somewhere/sim.state");
}

TEST(SimConfigTest, DeviceNamesAndIds) {
  EXPECT_EQ(sim::DeviceName(3), "Simulated GPU 3");
  EXPECT_EQ(sim::DeviceUuid(3), "SIM-GPU-3");
}

// ---- State file format ----

TEST(SimStateTest, SerializesAndParsesBack) {
  gpu_internal::SimState state;
  state.next_token = 42;
  state.devices = {{5, 1}, {0, 0}};
  state.allocations = {{123, 9876, 1, 41, 1024}};
  const std::string text = gpu_internal::SerializeSimState(state);
  EXPECT_EQ(text,
            "clams-sim-gpu-state 1\nnext_token 42\ndevice 0 5 1\ndevice 1 0 0\n"
            "alloc 123 9876 1 41 1024\n");
  StatusOr<gpu_internal::SimState> back = gpu_internal::ParseSimState(text);
  ASSERT_THAT(back, IsOk());
  EXPECT_EQ(gpu_internal::SerializeSimState(*back), text);
}

TEST(SimStateTest, RejectsMalformedFiles) {
  using gpu_internal::ParseSimState;
  EXPECT_THAT(ParseSimState(""), StatusIs(StatusCode::kInvalidArgument, "the file is empty"));
  EXPECT_THAT(ParseSimState("hello\n"),
              StatusIs(StatusCode::kInvalidArgument, "line 1: expected \"clams-sim-gpu-state 1\""));
  EXPECT_THAT(ParseSimState("clams-sim-gpu-state 1\nalloc 12 3\n"),
              StatusIs(StatusCode::kInvalidArgument, "line 2: malformed alloc record"));
  EXPECT_THAT(ParseSimState("clams-sim-gpu-state 1\nalloc 0 0 0 1 5\n"),
              StatusIs(StatusCode::kInvalidArgument, "line 2: malformed alloc record"));
  EXPECT_THAT(ParseSimState("clams-sim-gpu-state 1\ndevice 99999 0 0\n"),
              StatusIs(StatusCode::kInvalidArgument, "line 2: malformed device record"));
  EXPECT_THAT(ParseSimState("clams-sim-gpu-state 1\n\nfoo 1\n"),
              StatusIs(StatusCode::kInvalidArgument, "line 3: unknown record \"foo\""));
}

// ---- Allocations ----

TEST_F(SimTest, AllocateHoldsUntilReleased) {
  StatusOr<sim::Allocation> a = sim::Allocate(config_, 0, 10 * kGiB);
  ASSERT_THAT(a, IsOk());
  EXPECT_EQ(a->bytes(), 10 * kGiB);
  EXPECT_EQ(a->device(), 0);
  EXPECT_THAT(sim::UsedByThisProcess(config_, 0), IsOkAndHolds(10 * kGiB));
  EXPECT_THAT(sim::UsedByThisProcess(config_, 1), IsOkAndHolds(0u));
  EXPECT_EQ(Device(0).used_bytes, 10 * kGiB);
  EXPECT_EQ(Device(0).free_bytes, 14 * kGiB);
  a->Release();
  EXPECT_EQ(a->bytes(), 0u);
  EXPECT_EQ(a->device(), -1);
  a->Release();  // idempotent
  EXPECT_THAT(sim::UsedByThisProcess(config_, 0), IsOkAndHolds(0u));
}

TEST_F(SimTest, DestructionReleases) {
  {
    StatusOr<sim::Allocation> a = sim::Allocate(config_, 1, 2 * kGiB);
    ASSERT_THAT(a, IsOk());
    EXPECT_THAT(sim::UsedByThisProcess(config_, 1), IsOkAndHolds(2 * kGiB));
  }
  EXPECT_THAT(sim::UsedByThisProcess(config_, 1), IsOkAndHolds(0u));
}

TEST_F(SimTest, MovesTransferOwnership) {
  sim::Allocation a = sim::Allocate(config_, 0, 1 * kGiB).value();
  sim::Allocation b(std::move(a));
  EXPECT_EQ(a.bytes(), 0u);  // NOLINT(bugprone-use-after-move): moved-from is empty
  EXPECT_EQ(a.device(), -1);
  EXPECT_EQ(b.bytes(), 1 * kGiB);
  sim::Allocation c = sim::Allocate(config_, 0, 2 * kGiB).value();
  EXPECT_THAT(sim::UsedByThisProcess(config_, 0), IsOkAndHolds(3 * kGiB));
  c = std::move(b);  // releases c's 2 GiB, takes b's 1 GiB
  EXPECT_THAT(sim::UsedByThisProcess(config_, 0), IsOkAndHolds(1 * kGiB));
  a.Release();  // an empty allocation releases nothing
  EXPECT_THAT(sim::UsedByThisProcess(config_, 0), IsOkAndHolds(1 * kGiB));
  c = sim::Allocation();
  EXPECT_THAT(sim::UsedByThisProcess(config_, 0), IsOkAndHolds(0u));
}

TEST_F(SimTest, AnAllocationThatDoesNotFitFailsLikeACudaOom) {
  sim::Allocation held = sim::Allocate(config_, 0, 20 * kGiB).value();
  EXPECT_THAT(sim::Allocate(config_, 0, 10 * kGiB),
              StatusIs(StatusCode::kResourceExhausted,
                       "CUDA out of memory. Tried to allocate 10.00 GiB (GPU 0; 24.00 GiB total "
                       "capacity; 20.00 GiB already allocated; 4.00 GiB free)"));
  EXPECT_THAT(sim::Allocate(config_, 1, 17 * kGiB),
              StatusIs(StatusCode::kResourceExhausted,
                       "CUDA out of memory. Tried to allocate 17.00 GiB (GPU 1; 16.00 GiB total "
                       "capacity; 0 bytes already allocated; 16.00 GiB free)"));
  const DeviceInfo d0 = Device(0);
  EXPECT_EQ(d0.oom_events, 1u);
  EXPECT_EQ(d0.high_water_bytes, 20 * kGiB);
  EXPECT_EQ(d0.used_bytes, 20 * kGiB);
  EXPECT_EQ(Device(1).oom_events, 1u);
  EXPECT_THAT(sim::Allocate(config_, 0, 4 * kGiB), IsOk());  // exactly fits
}

TEST_F(SimTest, HighWaterMarkKeepsThePeak) {
  {
    sim::Allocation a = sim::Allocate(config_, 0, 10 * kGiB).value();
    sim::Allocation b = sim::Allocate(config_, 0, 8 * kGiB).value();
  }
  sim::Allocation c = sim::Allocate(config_, 0, 1 * kGiB).value();
  const DeviceInfo d0 = Device(0);
  EXPECT_EQ(d0.used_bytes, 1 * kGiB);
  EXPECT_EQ(d0.high_water_bytes, 18 * kGiB);
  EXPECT_EQ(d0.oom_events, 0u);
}

TEST_F(SimTest, ZeroBytesSucceedWithoutState) {
  StatusOr<sim::Allocation> a = sim::Allocate(config_, 1, 0);
  ASSERT_THAT(a, IsOk());
  EXPECT_EQ(a->bytes(), 0u);
  EXPECT_EQ(a->device(), 1);
  EXPECT_FALSE(std::filesystem::exists(state_path_));
}

TEST_F(SimTest, UnknownDevicesAreInvalid) {
  EXPECT_THAT(
      sim::Allocate(config_, 2, kGiB),
      StatusIs(StatusCode::kInvalidArgument, "invalid device ordinal 2: 2 simulated GPUs visible"));
  EXPECT_THAT(sim::Allocate(config_, -1, kGiB),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("invalid device ordinal -1")));
  EXPECT_THAT(sim::UsedByThisProcess(config_, 2),
              StatusIs(StatusCode::kInvalidArgument, "invalid simulated GPU 2: 2 simulated GPUs"));
}

TEST_F(SimTest, CudaVisibleDevicesPinsTheAllocation) {
  {
    ScopedEnv cvd("CUDA_VISIBLE_DEVICES", "1");
    sim::Allocation a = sim::Allocate(config_, 0, 1 * kGiB).value();
    EXPECT_EQ(a.device(), 1);
    EXPECT_THAT(sim::UsedByThisProcess(config_, 1), IsOkAndHolds(1 * kGiB));
    EXPECT_THAT(sim::Allocate(config_, 0, 16 * kGiB),
                StatusIs(StatusCode::kResourceExhausted,
                         HasSubstr("(GPU 0; 16.00 GiB total capacity; 1024.00 MiB already "
                                   "allocated; 15.00 GiB free)")));
    EXPECT_THAT(sim::Allocate(config_, 1, 1),
                StatusIs(StatusCode::kInvalidArgument,
                         "invalid device ordinal 1: 1 simulated GPUs visible"));
  }
  {
    ScopedEnv cvd("CUDA_VISIBLE_DEVICES", "SIM-GPU-1,SIM-GPU-0");
    EXPECT_EQ(sim::Allocate(config_, 0, 1).value().device(), 1);
    EXPECT_EQ(sim::Allocate(config_, 1, 1).value().device(), 0);
  }
  {
    ScopedEnv cvd("CUDA_VISIBLE_DEVICES", "");
    EXPECT_THAT(sim::Allocate(config_, 0, 1),
                StatusIs(StatusCode::kInvalidArgument,
                         "invalid device ordinal 0: 0 simulated GPUs visible"));
  }
}

TEST_F(SimTest, AllocateFromTheEnvironment) {
  ScopedEnv gpus("CLAMS_SIM_GPUS", "4GiB");
  ScopedEnv state("CLAMS_SIM_STATE", state_path_);
  sim::Allocation a = sim::Allocate(0, 3 * kGiB).value();
  EXPECT_THAT(sim::Allocate(0, 2 * kGiB),
              StatusIs(StatusCode::kResourceExhausted, HasSubstr("CUDA out of memory")));
  ScopedEnv no_gpus("CLAMS_SIM_GPUS", std::nullopt);
  EXPECT_THAT(sim::Allocate(0, 1),
              StatusIs(StatusCode::kFailedPrecondition, StartsWith("CLAMS_SIM_GPUS is not set")));
}

TEST_F(SimTest, ResetClearsEverything) {
  sim::Allocation a = sim::Allocate(config_, 0, 20 * kGiB).value();
  EXPECT_THAT(sim::Allocate(config_, 0, 20 * kGiB),
              StatusIs(StatusCode::kResourceExhausted, HasSubstr("CUDA out of memory")));
  ASSERT_THAT(sim::Reset(config_), IsOk());
  DeviceInfo d0 = Device(0);
  EXPECT_EQ(d0.used_bytes, 0u);
  EXPECT_EQ(d0.high_water_bytes, 0u);
  EXPECT_EQ(d0.oom_events, 0u);
  // The old allocation releases nothing that was allocated after the reset.
  sim::Allocation b = sim::Allocate(config_, 0, 5 * kGiB).value();
  a.Release();
  EXPECT_THAT(sim::UsedByThisProcess(config_, 0), IsOkAndHolds(5 * kGiB));
}

TEST_F(SimTest, AnUnusableStateFileFailsCleanly) {
  clams::testing::WriteFileOrDie(dir_.path() / "file", "x");
  sim::Config bad = config_;
  bad.state_path = (dir_.path() / "file" / "sim.state").string();
  EXPECT_THAT(sim::Allocate(bad, 0, 1),
              StatusIs(StatusCode::kFailedPrecondition,
                       HasSubstr("simulated GPU state " + bad.state_path + ": cannot create")));
  EXPECT_THAT(sim::Reset(bad), StatusIs(StatusCode::kFailedPrecondition, HasSubstr("cannot")));
  ProbeOptions options;
  options.sim_gpus = "24GiB";
  options.sim_state = bad.state_path;
  EXPECT_THAT(CreateProbe(options), StatusIs(StatusCode::kFailedPrecondition, HasSubstr("cannot")));
}

TEST_F(SimTest, AStateDirectoryIsCreated) {
  sim::Config nested = config_;
  nested.state_path = (dir_.path() / "a" / "b" / "sim.state").string();
  EXPECT_THAT(sim::Allocate(nested, 0, 1), IsOk());
}

// ---- Robustness ----

TEST_F(SimTest, ACorruptStateFileIsResetWithAWarning) {
  clams::testing::WriteFileOrDie(state_path_, "garbage\x01\x02");
  LogCapture logs;
  sim::Allocation a = sim::Allocate(config_, 0, 1 * kGiB).value();
  EXPECT_THAT(logs.lines(),
              ElementsAre("warning: simulated GPU state " + state_path_ +
                          " is unreadable (line 1: expected \"clams-sim-gpu-state 1\"); "
                          "resetting it"));
  EXPECT_THAT(sim::UsedByThisProcess(config_, 0), IsOkAndHolds(1 * kGiB));
}

TEST_F(SimTest, AnEmptyStateFileIsResetWithAWarning) {
  clams::testing::WriteFileOrDie(state_path_, "");
  LogCapture logs;
  EXPECT_EQ(Device(0).used_bytes, 0u);
  EXPECT_THAT(logs.lines(), Contains("warning: simulated GPU state " + state_path_ +
                                     " is unreadable (the file is empty); resetting it"));
  // Written back: the warning comes once.
  EXPECT_EQ(Device(0).used_bytes, 0u);
  int warnings = 0;
  for (const auto& line : logs.lines()) warnings += line.find("unreadable") != std::string::npos;
  EXPECT_EQ(warnings, 1);
}

TEST_F(SimTest, TheMemoryOfACrashedHolderIsFreed) {
  Child child([&](int to_parent, int) {
    StatusOr<sim::Allocation> a = sim::Allocate(config_, 0, 5 * kGiB);
    if (!a.ok()) return 1;
    Tell(to_parent, 'h');
    ::pause();  // killed here, never releases
    return 0;
  });
  char c = 0;
  ASSERT_TRUE(child.Receive(&c));
  auto probe = MakeProbe();
  StatusOr<Snapshot> held = probe->Sample();
  ASSERT_THAT(held, IsOk());
  EXPECT_EQ(held->devices[0].used_bytes, 5 * kGiB);
  EXPECT_THAT(held->processes, ElementsAre(ProcessUsage{child.pid(), 0, 5 * kGiB}));

  ASSERT_EQ(::kill(child.pid(), SIGKILL), 0);
  // Not reaped yet: a zombie's memory is free already, as on a real GPU.
  constexpr int kPolls = 200;
  for (int i = 0; i < kPolls; ++i) {
    StatusOr<Snapshot> s = probe->Sample();
    ASSERT_THAT(s, IsOk());
    if (s->devices[0].used_bytes == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  StatusOr<Snapshot> zombie = probe->Sample();
  ASSERT_THAT(zombie, IsOk());
  EXPECT_EQ(zombie->devices[0].used_bytes, 0u);
  EXPECT_THAT(zombie->processes, IsEmpty());
  EXPECT_EQ(child.Wait(), -SIGKILL);
  EXPECT_EQ(zombie->devices[0].high_water_bytes, 5 * kGiB);
}

TEST_F(SimTest, AProcessThatExitedWithoutReleasingIsPurged) {
  Child child([&](int, int) -> int {
    StatusOr<sim::Allocation> a = sim::Allocate(config_, 1, 3 * kGiB);
    ::_exit(a.ok() ? 0 : 1);  // skips the destructor
  });
  ASSERT_EQ(child.Wait(), 0);
  EXPECT_EQ(Device(1).used_bytes, 0u);
  EXPECT_EQ(Device(1).high_water_bytes, 3 * kGiB);
}

TEST_F(SimTest, ReusedAndUnknownPidsArePurged) {
  const int self = ::getpid();
  const std::uint64_t own_start = gpu_internal::OwnStartTime();
  ASSERT_NE(own_start, 0u);
  const int parent = ::getppid();
  // Our PID with another start time: a process that had our PID before us.
  // A live process with no recorded start time is kept.
  clams::testing::WriteFileOrDie(
      state_path_, "clams-sim-gpu-state 1\nnext_token 10\n" +
                       fmt::format("alloc {} {} 0 1 1073741824\n", self, own_start + 1) +
                       fmt::format("alloc {} {} 0 2 2147483648\n", self, own_start) +
                       fmt::format("alloc {} 0 1 3 1073741824\n", parent) +
                       "alloc 2147483646 0 0 4 1073741824\n");
  auto probe = MakeProbe();
  StatusOr<Snapshot> s = probe->Sample();
  ASSERT_THAT(s, IsOk());
  EXPECT_THAT(s->processes,
              ElementsAre(ProcessUsage{self, 0, 2 * kGiB}, ProcessUsage{parent, 1, kGiB}));
}

TEST_F(SimTest, AForkedChildDoesNotReleaseItsParentsMemory) {
  sim::Allocation a = sim::Allocate(config_, 0, 2 * kGiB).value();
  Child child([&](int, int) {
    a.Release();  // the child's copy
    return 0;
  });
  ASSERT_EQ(child.Wait(), 0);
  EXPECT_THAT(sim::UsedByThisProcess(config_, 0), IsOkAndHolds(2 * kGiB));
}

TEST_F(SimTest, ConcurrentProcessesNeverExceedTheCapacity) {
  // 8 processes x 40 rounds of "allocate 3 GiB, hold, release" on 10 GiB:
  // at most 3 fit at once; every refusal is counted.
  sim::Config small = sim::Config::Parse("10GiB", state_path_).value();
  constexpr int kProcesses = 8;
  constexpr int kRounds = 40;
  std::vector<std::unique_ptr<Child>> children;
  for (int p = 0; p < kProcesses; ++p) {
    children.push_back(std::make_unique<Child>([&](int to_parent, int) {
      int ooms = 0;
      for (int r = 0; r < kRounds; ++r) {
        StatusOr<sim::Allocation> a = sim::Allocate(small, 0, 3 * kGiB);
        if (!a.ok()) {
          if (a.status().code() != StatusCode::kResourceExhausted) return 100;
          ++ooms;
          continue;
        }
        ::usleep(200);
      }
      Tell(to_parent, static_cast<char>(ooms));
      return 0;
    }));
  }
  int total_ooms = 0;
  for (auto& child : children) {
    char ooms = 0;
    ASSERT_TRUE(child->Receive(&ooms));
    total_ooms += ooms;
    EXPECT_EQ(child->Wait(), 0);
  }
  auto probe = MakeProbe("10GiB");
  StatusOr<Snapshot> s = probe->Sample();
  ASSERT_THAT(s, IsOk());
  EXPECT_EQ(s->devices[0].used_bytes, 0u);
  EXPECT_THAT(s->processes, IsEmpty());
  EXPECT_LE(s->devices[0].high_water_bytes, 9 * kGiB);
  EXPECT_GE(s->devices[0].high_water_bytes, 3 * kGiB);
  EXPECT_EQ(s->devices[0].oom_events, static_cast<std::uint64_t>(total_ooms));
}

TEST_F(SimTest, ConcurrentThreadsShareTheLock) {
  sim::Config small = sim::Config::Parse("4GiB", state_path_).value();
  constexpr int kThreads = 6;
  constexpr int kRounds = 30;
  std::atomic<int> ooms{0};
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int r = 0; r < kRounds; ++r) {
        StatusOr<sim::Allocation> a = sim::Allocate(small, 0, 1 * kGiB);
        if (!a.ok()) {
          (a.status().code() == StatusCode::kResourceExhausted ? ooms : errors)++;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(errors.load(), 0);
  auto probe = MakeProbe("4GiB");
  StatusOr<Snapshot> s = probe->Sample();
  ASSERT_THAT(s, IsOk());
  EXPECT_EQ(s->devices[0].used_bytes, 0u);
  EXPECT_LE(s->devices[0].high_water_bytes, 4 * kGiB);
  EXPECT_EQ(s->devices[0].oom_events, static_cast<std::uint64_t>(ooms.load()));
}

// ---- The simulated Probe ----

TEST_F(SimTest, ProbeDescribesTheDevices) {
  auto probe = MakeProbe();
  ASSERT_NE(probe, nullptr);
  EXPECT_EQ(probe->backend(), "simulated");
  EXPECT_TRUE(probe->per_process_accounting());
  StatusOr<std::vector<DeviceInfo>> devices = probe->Devices();
  ASSERT_THAT(devices, IsOk());
  ASSERT_THAT(*devices, SizeIs(2));
  EXPECT_EQ((*devices)[0].index, 0);
  EXPECT_EQ((*devices)[0].uuid, "SIM-GPU-0");
  EXPECT_EQ((*devices)[0].name, "Simulated GPU 0");
  EXPECT_EQ((*devices)[0].total_bytes, 24 * kGiB);
  EXPECT_EQ((*devices)[0].free_bytes, 24 * kGiB);
  EXPECT_TRUE((*devices)[0].simulated);
  EXPECT_EQ((*devices)[1].uuid, "SIM-GPU-1");
  EXPECT_EQ((*devices)[1].total_bytes, 16 * kGiB);
}

TEST_F(SimTest, ProbeReportsEachProcess) {
  sim::Allocation mine = sim::Allocate(config_, 0, 1 * kGiB).value();
  sim::Allocation mine2 = sim::Allocate(config_, 0, 1 * kGiB).value();
  Child child([&](int to_parent, int from_parent) {
    StatusOr<sim::Allocation> a = sim::Allocate(config_, 1, 2 * kGiB);
    if (!a.ok()) return 1;
    Tell(to_parent, 'h');
    Await(from_parent);
    return 0;
  });
  char c = 0;
  ASSERT_TRUE(child.Receive(&c));
  auto probe = MakeProbe();
  StatusOr<Snapshot> s = probe->Sample();
  ASSERT_THAT(s, IsOk());
  EXPECT_THAT(s->processes, ElementsAre(ProcessUsage{::getpid(), 0, 2 * kGiB},
                                        ProcessUsage{child.pid(), 1, 2 * kGiB}));
  EXPECT_EQ(s->devices[1].used_bytes, 2 * kGiB);
  child.Send('x');
  EXPECT_EQ(child.Wait(), 0);
  s = probe->Sample();
  ASSERT_THAT(s, IsOk());
  EXPECT_THAT(s->processes, ElementsAre(ProcessUsage{::getpid(), 0, 2 * kGiB}));
}

TEST_F(SimTest, AWorkerPinnedToOneDeviceSeesItAsOrdinalZero) {
  sim::Allocation a = sim::Allocate(config_, 1, 3 * kGiB).value();
  cvd_ = "SIM-GPU-1";
  auto probe = MakeProbe();
  ASSERT_NE(probe, nullptr);
  StatusOr<Snapshot> s = probe->Sample();
  ASSERT_THAT(s, IsOk());
  ASSERT_THAT(s->devices, SizeIs(1));
  EXPECT_EQ(s->devices[0].index, 0);
  EXPECT_EQ(s->devices[0].uuid, "SIM-GPU-1");
  EXPECT_EQ(s->devices[0].used_bytes, 3 * kGiB);
  EXPECT_THAT(s->processes, ElementsAre(ProcessUsage{::getpid(), 0, 3 * kGiB}));
  cvd_ = "1";
  EXPECT_EQ(MakeProbe()->Devices().value()[0].uuid, "SIM-GPU-1");
}

TEST_F(SimTest, ProbeRejectsABadSpec) {
  ProbeOptions options;
  options.sim_gpus = "lots";
  EXPECT_THAT(CreateProbe(options),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("invalid CLAMS_SIM_GPUS \"lots\"")));
}

TEST_F(SimTest, ProbeReportsALostStateFileAsUnavailable) {
  auto probe = MakeProbe();
  ASSERT_NE(probe, nullptr);
  std::filesystem::remove_all(dir_.path());
  clams::testing::WriteFileOrDie(dir_.path(), "now a file");
  EXPECT_THAT(probe->Sample(), StatusIs(StatusCode::kUnavailable, HasSubstr("cannot")));
  std::filesystem::remove(dir_.path());
  std::filesystem::create_directory(dir_.path());
}

// A worker stopped (SIGSTOP, a debugger) inside an allocation holds the
// state's lock until it runs again or dies. The probe, which the front's
// admission samples before each decision, reads without the lock: the front
// must not stop with the worker. Before, Sample() waited for the lock.
TEST_F(SimTest, ASampleDoesNotWaitForAWriterThatHoldsTheStateLock) {
  auto probe = MakeProbe();
  ASSERT_NE(probe, nullptr);
  sim::Allocation held = sim::Allocate(config_, 0, 3 * kGiB).value();
  const int lock = ::open((state_path_ + ".lock").c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(lock, 0);
  ASSERT_EQ(::flock(lock, LOCK_EX), 0);  // as a writer stopped inside its update

  auto sample = std::async(std::launch::async, [&] { return probe->Sample(); });
  const bool answered = sample.wait_for(std::chrono::seconds(10)) == std::future_status::ready;
  ::close(lock);  // lets a blocked Sample() return, so the test ends either way
  ASSERT_TRUE(answered) << "Sample() waited for the state's lock";
  StatusOr<Snapshot> snapshot = sample.get();
  ASSERT_THAT(snapshot, IsOk());
  EXPECT_EQ(snapshot->devices[0].used_bytes, 3 * kGiB);
  EXPECT_THAT(snapshot->processes, ElementsAre(ProcessUsage{::getpid(), 0, 3 * kGiB}));
}

// A probe only reads: a corrupt file is unavailable to it (the sampler keeps
// its last snapshot) until a writer, the next allocation, resets it.
TEST_F(SimTest, TheProbeReportsACorruptFileAsUnavailableUntilAWriterResetsIt) {
  auto probe = MakeProbe();
  ASSERT_NE(probe, nullptr);
  clams::testing::WriteFileOrDie(state_path_, "garbage\x01\x02");
  EXPECT_THAT(probe->Sample(), StatusIs(StatusCode::kUnavailable, HasSubstr("is unreadable")));
  sim::Allocation a = sim::Allocate(config_, 0, 1 * kGiB).value();
  StatusOr<Snapshot> snapshot = probe->Sample();
  ASSERT_THAT(snapshot, IsOk());
  EXPECT_EQ(snapshot->devices[0].used_bytes, 1 * kGiB);
}

}  // namespace
}  // namespace clams::gpu
