#include "clams/vram/sampler.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include "clams/base/status.h"
#include "clams/gpu/sim.h"
#include "testing/fake_probe.h"
#include "testing/process.h"
#include "testing/status_matchers.h"
#include "testing/testing.h"

namespace clams::vram {
namespace {

using namespace std::chrono_literals;  // NOLINT(build/namespaces)

constexpr std::uint64_t kGiB = std::uint64_t{1} << 30;
constexpr std::uint64_t kMiB = std::uint64_t{1} << 20;

using testing::FakeProbe;

// Intervals so long that the thread never samples during a test: every
// sample comes from SampleNow/BeginWindow/EndWindow (deterministic).
Sampler::Options Manual(bool per_process = true) {
  Sampler::Options o;
  o.busy_interval = std::chrono::hours(1);
  o.idle_interval = std::chrono::hours(1);
  o.per_process = per_process;
  return o;
}

TEST(SamplerTest, StartTakesAFirstSampleSynchronously) {
  FakeProbe probe;
  probe.SetDeviceUsed(0, 3 * kGiB);
  auto sampler = Sampler::Start(&probe, Manual());
  EXPECT_EQ(probe.calls(), 1);
  gpu::Snapshot s = sampler->Latest();
  ASSERT_EQ(s.devices.size(), 1u);
  EXPECT_EQ(s.devices[0].used_bytes, 3 * kGiB);
  EXPECT_NE(sampler->LatestTime(), std::chrono::steady_clock::time_point{});
  EXPECT_TRUE(sampler->per_process());
}

TEST(SamplerTest, WorkerUsageSumsItsProcessOnItsDevice) {
  FakeProbe probe(2);
  probe.SetProcess(100, 0, 1 * kGiB);
  probe.SetProcess(100, 1, 5 * kGiB);  // another device: not this worker's
  probe.SetProcess(200, 0, 2 * kGiB);  // another process
  auto sampler = Sampler::Start(&probe, Manual());
  sampler->TrackWorker(1, 100, 0);
  sampler->TrackWorker(2, 200, 0);
  sampler->TrackWorker(3, 300, 0);         // no GPU usage yet
  EXPECT_EQ(sampler->WorkerUsage(1), 0u);  // not sampled since tracking
  sampler->SampleNow();
  EXPECT_EQ(sampler->WorkerUsage(1), 1 * kGiB);
  EXPECT_EQ(sampler->WorkerUsage(2), 2 * kGiB);
  EXPECT_EQ(sampler->WorkerUsage(3), 0u);
  EXPECT_EQ(sampler->WorkerUsage(42), 0u);  // unknown worker
  sampler->UntrackWorker(1);
  EXPECT_EQ(sampler->WorkerUsage(1), 0u);
}

TEST(SamplerTest, WindowTracksBaselinePeakAndSamples) {
  FakeProbe probe;
  probe.SetProcess(100, 0, 2 * kGiB);
  auto sampler = Sampler::Start(&probe, Manual());
  sampler->TrackWorker(7, 100, 0);
  const std::uint64_t id = sampler->BeginWindow(7);  // fresh sample: baseline 2 GiB
  ASSERT_NE(id, 0u);
  auto w = sampler->CurrentWindow(id);
  ASSERT_TRUE(w.has_value());
  EXPECT_EQ(w->baseline_bytes, 2 * kGiB);
  EXPECT_EQ(w->peak_bytes, 2 * kGiB);
  EXPECT_EQ(w->samples, 1u);

  probe.SetProcess(100, 0, 9 * kGiB);
  sampler->SampleNow();
  probe.SetProcess(100, 0, 4 * kGiB);
  sampler->SampleNow();
  w = sampler->CurrentWindow(id);
  EXPECT_EQ(w->peak_bytes, 9 * kGiB);
  EXPECT_EQ(w->samples, 3u);
  EXPECT_EQ(sampler->WorkerUsage(7), 4 * kGiB);

  auto done = sampler->EndWindow(id);
  ASSERT_TRUE(done.has_value());
  EXPECT_EQ(done->baseline_bytes, 2 * kGiB);
  EXPECT_EQ(done->peak_bytes, 9 * kGiB);
  EXPECT_EQ(done->growth(), 7 * kGiB);
  EXPECT_EQ(done->samples, 4u);
  EXPECT_EQ(sampler->CurrentWindow(id), std::nullopt);
  EXPECT_EQ(sampler->EndWindow(id), std::nullopt);
}

TEST(SamplerTest, EndWindowTakesAFinalSampleSoShortRequestsAreMeasured) {
  FakeProbe probe;
  probe.SetProcess(100, 0, 1 * kGiB);
  auto sampler = Sampler::Start(&probe, Manual());
  sampler->TrackWorker(1, 100, 0);
  const std::uint64_t id = sampler->BeginWindow(1);
  probe.SetProcess(100, 0, 3 * kGiB);  // the model stays loaded after the request
  auto w = sampler->EndWindow(id);
  ASSERT_TRUE(w.has_value());
  EXPECT_EQ(w->growth(), 2 * kGiB);
  EXPECT_EQ(w->samples, 2u);
}

TEST(SamplerTest, GrowthIsZeroWhenUsageFallsBelowTheBaseline) {
  FakeProbe probe;
  probe.SetProcess(100, 0, 5 * kGiB);
  auto sampler = Sampler::Start(&probe, Manual());
  sampler->TrackWorker(1, 100, 0);
  const std::uint64_t id = sampler->BeginWindow(1);
  probe.SetProcess(100, 0, 1 * kGiB);
  auto w = sampler->EndWindow(id);
  ASSERT_TRUE(w.has_value());
  EXPECT_EQ(w->peak_bytes, 5 * kGiB);
  EXPECT_EQ(w->growth(), 0u);
}

// Several requests may run on one worker at once (--threads): each has its
// own window over the worker's usage.
TEST(SamplerTest, ConcurrentWindowsOnOneWorkerAndUntrackedWorkers) {
  FakeProbe probe;
  probe.SetProcess(100, 0, 1 * kGiB);
  auto sampler = Sampler::Start(&probe, Manual());
  EXPECT_EQ(sampler->BeginWindow(9), 0u);  // untracked: no window
  sampler->TrackWorker(1, 100, 0);
  const std::uint64_t first = sampler->BeginWindow(1);
  probe.SetProcess(100, 0, 6 * kGiB);
  const std::uint64_t second = sampler->BeginWindow(1);
  ASSERT_NE(first, second);
  EXPECT_EQ(sampler->CurrentWindow(second)->baseline_bytes, 6 * kGiB);
  EXPECT_EQ(sampler->CurrentWindow(second)->samples, 1u);
  probe.SetProcess(100, 0, 8 * kGiB);
  auto a = sampler->EndWindow(first);
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->growth(), 7 * kGiB);
  auto b = sampler->EndWindow(second);
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->growth(), 2 * kGiB);
  // Untracking a worker drops its windows.
  const std::uint64_t third = sampler->BeginWindow(1);
  sampler->UntrackWorker(1);
  EXPECT_EQ(sampler->EndWindow(third), std::nullopt);
}

TEST(SamplerTest, DeviceLevelAccountingWhenPerProcessIsOff) {
  FakeProbe probe;
  probe.SetDeviceUsed(0, 3 * kGiB);
  probe.SetProcess(100, 0, 1 * kGiB);
  auto sampler = Sampler::Start(&probe, Manual(/*per_process=*/false));
  EXPECT_FALSE(sampler->per_process());
  sampler->TrackWorker(1, 100, 0);
  sampler->TrackWorker(2, 999, 0);
  const std::uint64_t id = sampler->BeginWindow(1);
  EXPECT_EQ(sampler->WorkerUsage(1), 3 * kGiB);
  EXPECT_EQ(sampler->WorkerUsage(2), 3 * kGiB);  // every worker sees its device's usage
  probe.SetDeviceUsed(0, 10 * kGiB);
  auto w = sampler->EndWindow(id);
  EXPECT_EQ(w->growth(), 7 * kGiB);
}

TEST(SamplerTest, FallsBackToDeviceLevelWhenTheProbeCannotAttributeProcesses) {
  FakeProbe probe;
  probe.SetPerProcess(false);  // NVML in a PID namespace: host PIDs
  probe.SetDeviceUsed(0, 8 * kGiB);
  probe.SetProcess(100, 0, 1 * kGiB);
  auto sampler = Sampler::Start(&probe, Manual());
  sampler->TrackWorker(1, 100, 0);
  sampler->SampleNow();
  EXPECT_FALSE(sampler->per_process());
  EXPECT_EQ(sampler->WorkerUsage(1), 8 * kGiB);
  probe.SetPerProcess(true);  // proved possible later
  sampler->SampleNow();
  EXPECT_TRUE(sampler->per_process());
  EXPECT_EQ(sampler->WorkerUsage(1), 1 * kGiB);
}

TEST(SamplerTest, AFailedSampleKeepsTheLastSnapshotAndWindow) {
  FakeProbe probe;
  probe.SetDeviceUsed(0, 2 * kGiB);
  probe.SetProcess(100, 0, 2 * kGiB);
  auto sampler = Sampler::Start(&probe, Manual());
  sampler->TrackWorker(1, 100, 0);
  const std::uint64_t id = sampler->BeginWindow(1);
  const auto t0 = sampler->LatestTime();
  probe.SetFailing(true);
  probe.SetProcess(100, 0, 9 * kGiB);
  gpu::Snapshot s = sampler->SampleNow();
  EXPECT_EQ(s.devices.at(0).used_bytes, 2 * kGiB);
  EXPECT_EQ(sampler->LatestTime(), t0);
  EXPECT_EQ(sampler->WorkerUsage(1), 2 * kGiB);
  EXPECT_EQ(sampler->CurrentWindow(id)->samples, 1u);
  probe.SetFailing(false);
  auto w = sampler->EndWindow(id);
  EXPECT_EQ(w->growth(), 7 * kGiB);
  EXPECT_EQ(w->samples, 2u);
}

TEST(SamplerTest, TheThreadSamplesFastWhileBusyAndSlowlyWhenIdle) {
  FakeProbe probe;
  Sampler::Options o;
  o.busy_interval = 1ms;
  o.idle_interval = std::chrono::hours(1);
  auto sampler = Sampler::Start(&probe, o);
  // Idle: the 1-hour interval has not passed.
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(probe.calls(), 1);
  sampler->SetBusy(true);
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (probe.calls() < 6 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(1ms);
  }
  EXPECT_GE(probe.calls(), 6);
  sampler->SetBusy(false);
  const int after_switch = probe.calls();
  std::this_thread::sleep_for(30ms);
  EXPECT_LE(probe.calls(), after_switch + 1);  // at most the sample that was under way
}

TEST(SamplerTest, DestructionDoesNotWaitForTheIdleInterval) {
  FakeProbe probe;
  const auto start = std::chrono::steady_clock::now();
  { auto sampler = Sampler::Start(&probe, Manual()); }
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
}

TEST(SamplerTest, ConcurrentSamplesAndReads) {
  FakeProbe probe;
  Sampler::Options o;
  o.busy_interval = 1ms;
  auto sampler = Sampler::Start(&probe, o);
  sampler->SetBusy(true);
  sampler->TrackWorker(1, 100, 0);
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&, t] {
      std::uint64_t i = 0;
      while (!stop.load()) {
        probe.SetProcess(100, 0, (++i % 7) * kMiB);
        if (t == 0) (void)sampler->EndWindow(sampler->BeginWindow(1));
        if (t == 1) (void)sampler->EndWindow(i);
        (void)sampler->WorkerUsage(1);
        (void)sampler->Latest();
        (void)sampler->CurrentWindow(i);
      }
    });
  }
  std::this_thread::sleep_for(100ms);
  stop = true;
  for (auto& th : threads) th.join();
  EXPECT_GT(probe.calls(), 3);
}

// A probe whose Sample() can be made to hang, as an NVML call to a GPU that
// fell off the bus can.
class HangingProbe : public gpu::Probe {
 public:
  explicit HangingProbe(FakeProbe& inner) : inner_(inner) {}
  std::string_view backend() const override { return "hanging"; }
  StatusOr<std::vector<gpu::DeviceInfo>> Devices() override { return inner_.Devices(); }
  bool per_process_accounting() const override { return inner_.per_process_accounting(); }
  StatusOr<gpu::Snapshot> Sample() override {
    std::unique_lock<std::mutex> lock(mu_);
    ++started_;
    cv_.notify_all();
    cv_.wait(lock, [&] { return !hung_; });
    lock.unlock();
    return inner_.Sample();
  }
  void Hang() {
    std::lock_guard<std::mutex> lock(mu_);
    hung_ = true;
  }
  void Release() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      hung_ = false;
    }
    cv_.notify_all();
  }
  int started() {
    std::lock_guard<std::mutex> lock(mu_);
    return started_;
  }

 private:
  FakeProbe& inner_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool hung_ = false;
  int started_ = 0;
};

// The front calls SampleNow before each admission decision, BeginWindow at
// dispatch and EndWindow at the end of a request, all on its event loop.
// They used to call the probe there: a hung probe held the front. Now the
// sampler's thread samples and they wait at most fresh_wait, then go on
// with the latest snapshot, and do not wait again until the probe answers.
TEST(SamplerTest, AHungProbeHoldsNeitherSampleNowNorTheWindows) {
  FakeProbe fake;
  fake.SetProcess(100, 0, 1 * kGiB);
  fake.SetDeviceUsed(0, 1 * kGiB);
  HangingProbe probe(fake);
  Sampler::Options o = Manual();
  o.fresh_wait = 50ms;
  auto sampler = Sampler::Start(&probe, o);
  std::vector<std::future<void>> calls;  // a call that hangs ends once the releaser below has run
  struct Releaser {
    HangingProbe& p;
    ~Releaser() { p.Release(); }  // before the calls and the sampler's thread are joined
  } releaser{probe};
  sampler->TrackWorker(1, 100, 0);
  ASSERT_EQ(sampler->SampleNow().devices[0].used_bytes, 1 * kGiB);
  ASSERT_EQ(sampler->WorkerUsage(1), 1 * kGiB);

  probe.Hang();
  fake.SetDeviceUsed(0, 5 * kGiB);
  fake.SetProcess(100, 0, 5 * kGiB);
  auto returns = [&](std::function<void()> call) {
    calls.push_back(std::async(std::launch::async, std::move(call)));
    return calls.back().wait_for(10s) == std::future_status::ready;
  };
  gpu::Snapshot stale;
  ASSERT_TRUE(returns([&] { stale = sampler->SampleNow(); })) << "SampleNow waited for the hung probe";
  EXPECT_EQ(stale.devices[0].used_bytes, 1 * kGiB);  // the latest snapshot
  const int started = probe.started();
  std::uint64_t window = 0;
  ASSERT_TRUE(returns([&] { window = sampler->BeginWindow(1); })) << "BeginWindow waited for the hung probe";
  EXPECT_NE(window, 0u);
  std::optional<Sampler::Window> closed;
  ASSERT_TRUE(returns([&] { closed = sampler->EndWindow(window); })) << "EndWindow waited for the hung probe";
  ASSERT_TRUE(closed.has_value());
  EXPECT_EQ(closed->baseline_bytes, 1 * kGiB);
  EXPECT_EQ(probe.started(), started);  // no new probe call behind the hung one

  probe.Release();
  ASSERT_TRUE(clams::testing::WaitFor([&] { return sampler->Latest().devices[0].used_bytes == 5 * kGiB; }, 10s));
  EXPECT_EQ(sampler->SampleNow().devices[0].used_bytes, 5 * kGiB);
  EXPECT_EQ(sampler->WorkerUsage(1), 5 * kGiB);
  EXPECT_GT(probe.started(), started);  // fresh samples again
}

TEST(ReadParentPidTest, ReadsProcStat) {
  EXPECT_EQ(ReadParentPid("/proc", ::getpid()), ::getppid());
  EXPECT_EQ(ReadParentPid("/proc", 2147483647), std::nullopt);
  clams::testing::TempDir tmp;
  std::filesystem::create_directories(tmp.path() / "123");
  // A command name with spaces and parentheses.
  clams::testing::WriteFileOrDie(tmp.path() / "123" / "stat", "123 (a) b) c) S 77 1 1 0\n");
  EXPECT_EQ(ReadParentPid(tmp.path().string(), 123), 77);
  std::filesystem::create_directories(tmp.path() / "124");
  clams::testing::WriteFileOrDie(tmp.path() / "124" / "stat", "garbage");
  EXPECT_EQ(ReadParentPid(tmp.path().string(), 124), std::nullopt);
}

// A worker whose app starts a child that starts a grandchild (an external
// app's launcher, say): only the grandchild uses the GPU.
TEST(SamplerTest, IncludeChildrenCountsDescendantsFoundThroughProc) {
  int pid_pipe[2];
  int release[2];
  ASSERT_EQ(::pipe(pid_pipe), 0);
  ASSERT_EQ(::pipe(release), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(pid_pipe[0]);
    ::close(release[1]);
    const pid_t grandchild = ::fork();
    if (grandchild == 0) {
      char c;
      while (::read(release[0], &c, 1) < 0) {
      }
      ::_exit(0);
    }
    if (::write(pid_pipe[1], &grandchild, sizeof(grandchild)) != sizeof(grandchild)) ::_exit(1);
    char c;
    while (::read(release[0], &c, 1) < 0) {
    }
    ::waitpid(grandchild, nullptr, 0);
    ::_exit(0);
  }
  ::close(pid_pipe[1]);
  ::close(release[0]);
  pid_t grandchild = 0;
  ASSERT_EQ(::read(pid_pipe[0], &grandchild, sizeof(grandchild)),
            static_cast<ssize_t>(sizeof(grandchild)));
  ::close(pid_pipe[0]);

  FakeProbe probe(2);
  probe.SetProcess(grandchild, 0, 3 * kGiB);
  probe.SetProcess(grandchild, 1, 1 * kGiB);  // another device
  probe.SetProcess(child, 0, 512 * kMiB);
  probe.SetProcess(::getpid(), 0, 7 * kGiB);  // an ancestor, not a descendant
  probe.SetProcess(1, 0, 5 * kGiB);           // unrelated
  {
    auto sampler = Sampler::Start(&probe, Manual());
    sampler->TrackWorker(1, child, 0, /*include_children=*/true);
    sampler->TrackWorker(2, child, 0, /*include_children=*/false);
    sampler->TrackWorker(3, child, 1, /*include_children=*/true);
    sampler->SampleNow();
    EXPECT_EQ(sampler->WorkerUsage(1), 3 * kGiB + 512 * kMiB);
    EXPECT_EQ(sampler->WorkerUsage(2), 512 * kMiB);
    EXPECT_EQ(sampler->WorkerUsage(3), 1 * kGiB);
  }
  ::close(release[1]);  // both processes see EOF and exit
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

// With the real simulated-GPU backend: a worker process allocates simulated
// VRAM while its window is open.
TEST(SamplerSimulatedGpuTest, MeasuresTheGrowthOfAWorkerProcess) {
  clams::testing::TempDir tmp;
  const std::string state = (tmp.path() / "sim.state").string();
  gpu::ProbeOptions probe_options;
  probe_options.sim_gpus = "24GiB";
  probe_options.sim_state = state;
  probe_options.use_nvml = false;
  auto probe = gpu::CreateProbe(probe_options);
  ASSERT_THAT(probe, clams::testing::IsOk());
  auto config = gpu::sim::Config::Parse("24GiB", state);
  ASSERT_THAT(config, clams::testing::IsOk());

  int go[2];
  int done[2];
  ASSERT_EQ(::pipe(go), 0);
  ASSERT_EQ(::pipe(done), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(go[1]);
    ::close(done[0]);
    ::unsetenv("CUDA_VISIBLE_DEVICES");
    char c;
    if (::read(go[0], &c, 1) != 1) ::_exit(1);
    auto allocation = gpu::sim::Allocate(*config, 0, 3 * kGiB);
    const char result = allocation.ok() ? 'y' : 'n';
    if (::write(done[1], &result, 1) != 1) ::_exit(1);
    while (::read(go[0], &c, 1) > 0) {
    }
    ::_exit(0);  // the allocation is purged with the process
  }
  ::close(go[0]);
  ::close(done[1]);
  {
    auto sampler = Sampler::Start(probe->get(), Manual());
    sampler->TrackWorker(1, child, 0);
    const std::uint64_t id = sampler->BeginWindow(1);
    EXPECT_EQ(sampler->CurrentWindow(id)->baseline_bytes, 0u);
    ASSERT_EQ(::write(go[1], "g", 1), 1);
    char result = 0;
    ASSERT_EQ(::read(done[0], &result, 1), 1);
    EXPECT_EQ(result, 'y');
    auto w = sampler->EndWindow(id);
    ASSERT_TRUE(w.has_value());
    EXPECT_EQ(w->growth(), 3 * kGiB);
    EXPECT_EQ(sampler->WorkerUsage(1), 3 * kGiB);
    EXPECT_EQ(sampler->Latest().devices.at(0).used_bytes, 3 * kGiB);
  }
  ::close(go[1]);
  ::close(done[0]);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
}  // namespace clams::vram
