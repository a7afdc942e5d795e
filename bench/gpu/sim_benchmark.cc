// The cost of the simulated GPUs: one allocation (lock + read + purge +
// write) and one probe sample, the call the front makes every 10-50 ms.
#include <benchmark/benchmark.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "clams/base/log.h"
#include "clams/gpu/probe.h"
#include "clams/gpu/sim.h"

namespace {

namespace gpu = clams::gpu;

std::string StatePath(const char* name) {
  return (std::filesystem::temp_directory_path() /
          ("clams-sim-benchmark-" + std::to_string(::getpid()) + "-" + name + ".state"))
      .string();
}

void RemoveState(const std::string& path) {
  for (const char* suffix : {"", ".lock", ".tmp"}) {
    std::error_code ec;
    std::filesystem::remove(path + suffix, ec);
  }
}

// Holder processes: each holds one allocation until killed.
class Holders {
 public:
  Holders(const gpu::sim::Config& config, int count) {
    for (int i = 0; i < count; ++i) {
      int ready[2];
      if (::pipe(ready) != 0) std::abort();
      const pid_t pid = ::fork();
      if (pid == 0) {
        auto a = gpu::sim::Allocate(config, 0, 1 << 20);
        char c = a.ok() ? 'y' : 'n';
        if (::write(ready[1], &c, 1) != 1) ::_exit(1);
        ::pause();
        ::_exit(0);
      }
      char c = 0;
      if (::read(ready[0], &c, 1) != 1 || c != 'y') std::abort();
      ::close(ready[0]);
      ::close(ready[1]);
      pids_.push_back(pid);
    }
  }
  ~Holders() {
    for (pid_t pid : pids_) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }

 private:
  std::vector<pid_t> pids_;
};

void BM_SimAllocateRelease(benchmark::State& state) {
  clams::log::SetLevel(clams::log::Level::kWarning);
  const std::string path = StatePath("alloc");
  auto config = gpu::sim::Config::Parse("0:24GiB,1:16GiB", path).value();
  Holders holders(config, static_cast<int>(state.range(0)));
  for (auto _ : state) {
    auto a = gpu::sim::Allocate(config, 0, 1 << 30);
    benchmark::DoNotOptimize(a);
  }  // each iteration allocates and releases: two locked read-modify-writes
  state.SetLabel(std::to_string(state.range(0)) + " other holder processes");
  RemoveState(path);
}
BENCHMARK(BM_SimAllocateRelease)->Arg(0)->Arg(8)->Arg(32);

void BM_SimProbeSample(benchmark::State& state) {
  clams::log::SetLevel(clams::log::Level::kWarning);
  const std::string path = StatePath("sample");
  gpu::ProbeOptions options;
  options.sim_gpus = "0:24GiB,1:16GiB";
  options.sim_state = path;
  auto config = gpu::sim::Config::Parse(options.sim_gpus, path).value();
  Holders holders(config, static_cast<int>(state.range(0)));
  auto probe = gpu::CreateProbe(options).value();
  for (auto _ : state) {
    auto snapshot = probe->Sample();
    benchmark::DoNotOptimize(snapshot);
  }
  state.SetLabel(std::to_string(state.range(0)) + " holder processes");
  RemoveState(path);
}
BENCHMARK(BM_SimProbeSample)->Arg(0)->Arg(8)->Arg(32);

}  // namespace

BENCHMARK_MAIN();
