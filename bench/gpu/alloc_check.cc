// alloc_check: how much GPU memory does an allocation really cost a process?
//
// For each size it starts a child process (this program, re-executed), which
// creates a CUDA context through gpu::DeviceAllocator::InitDevice and then
// allocates the size (touched with cudaMemset). At each step the parent, which
// never touches CUDA, reads the child's usage through the gpu::Probe (NVML per
// process, or the device's used memory when per-process accounting is off)
// and prints the context overhead and the growth against the size allocated.
//
//   clams_gpu_alloc_check [--device N] [--sizes 256MiB,1GiB,4GiB]
//
// Exits 0 with a "no GPU" line when there is no GPU (and no CLAMS_SIM_GPUS),
// 1 if a measurement failed. Sizes larger than the free memory are skipped;
// an out-of-memory error is reported but is not a failure.
#include <fmt/format.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "clams/base/log.h"
#include "clams/gpu/allocator.h"
#include "clams/gpu/probe.h"

namespace {

namespace gpu = clams::gpu;

constexpr char kDefaultSizes[] = "256MiB,1GiB,4GiB";
constexpr double kMiB = 1024.0 * 1024.0;
// NVML's numbers follow an allocation within milliseconds; poll until they are
// stable (two equal reads kSettle apart) or kSettleTimeout passed.
constexpr auto kPoll = std::chrono::milliseconds(20);
constexpr auto kSettle = std::chrono::milliseconds(100);
constexpr auto kSettleTimeout = std::chrono::seconds(10);
constexpr std::size_t kLineMax = 512;
constexpr char kOomPhrase[] = "CUDA out of memory";

double MiB(std::uint64_t bytes) { return static_cast<double>(bytes) / kMiB; }
double MiB(std::int64_t bytes) { return static_cast<double>(bytes) / kMiB; }

// ---- child ----

int RunChild(int device) {
  clams::log::SetLevel(clams::log::Level::kWarning);
  auto allocator = gpu::DeviceAllocator::Create(gpu::AllocatorOptions::FromEnvironment());
  if (!allocator.ok()) {
    std::printf("error %s\n", allocator.status().message().c_str());
    return 1;
  }
  clams::Status init = (*allocator)->InitDevice(device);
  if (!init.ok()) {
    std::printf("error %s\n", init.message().c_str());
    return 1;
  }
  std::printf("ready %s\n", std::string((*allocator)->backend()).c_str());
  std::fflush(stdout);
  std::vector<gpu::DeviceBuffer> held;
  char line[kLineMax];
  while (std::fgets(line, sizeof line, stdin) != nullptr) {
    unsigned long long bytes = 0;
    if (std::sscanf(line, "alloc %llu", &bytes) == 1) {
      auto buffer = (*allocator)->Allocate(device, bytes);
      if (buffer.ok()) {
        held.push_back(std::move(buffer).value());
        std::printf("allocated\n");
      } else {
        std::printf("error %s\n", buffer.status().message().c_str());
      }
      std::fflush(stdout);
    } else {
      break;  // "exit" or EOF
    }
  }
  return 0;
}

// ---- parent ----

struct Child {
  pid_t pid = -1;
  FILE* to = nullptr;
  FILE* from = nullptr;
};

std::optional<Child> StartChild(int device) {
  int down[2];
  int up[2];
  if (::pipe(down) != 0 || ::pipe(up) != 0) return std::nullopt;
  const pid_t pid = ::fork();
  if (pid < 0) return std::nullopt;
  if (pid == 0) {
    ::dup2(down[0], STDIN_FILENO);
    ::dup2(up[1], STDOUT_FILENO);
    ::close(down[0]);
    ::close(down[1]);
    ::close(up[0]);
    ::close(up[1]);
    const std::string device_arg = std::to_string(device);
    // The numbering the probe uses: NVML's (PCI bus) order.
    ::setenv("CUDA_DEVICE_ORDER", "PCI_BUS_ID", 1);
    ::execl("/proc/self/exe", "clams_gpu_alloc_check", "--child", "--device", device_arg.c_str(),
            static_cast<char*>(nullptr));
    std::_Exit(127);
  }
  ::close(down[0]);
  ::close(up[1]);
  Child c;
  c.pid = pid;
  c.to = ::fdopen(down[1], "w");
  c.from = ::fdopen(up[0], "r");
  return c;
}

std::string ReadLine(const Child& c) {
  char line[kLineMax];
  if (std::fgets(line, sizeof line, c.from) == nullptr) return "";
  std::string s = line;
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

void StopChild(Child& c) {
  std::fputs("exit\n", c.to);
  std::fclose(c.to);
  std::fclose(c.from);
  int status = 0;
  ::waitpid(c.pid, &status, 0);
}

struct Reading {
  std::uint64_t process_bytes = 0;  // the child's usage (0 without per-process accounting)
  std::uint64_t device_used = 0;    // the device's used memory
};

std::optional<Reading> Read(gpu::Probe& probe, int device, pid_t pid) {
  auto s = probe.Sample();
  if (!s.ok() || device >= static_cast<int>(s->devices.size())) return std::nullopt;
  Reading r;
  r.device_used = s->devices[device].used_bytes;
  for (const auto& p : s->processes) {
    if (p.pid == pid && p.device_index == device) r.process_bytes += p.used_bytes;
  }
  return r;
}

// Polls until the reading is stable; with `before`, also until it differs
// from `before` (an allocation happened, so NVML must show it).
std::optional<Reading> Settled(gpu::Probe& probe, int device, pid_t pid,
                               std::optional<Reading> before) {
  const auto deadline = std::chrono::steady_clock::now() + kSettleTimeout;
  std::optional<Reading> last;
  auto last_change = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() < deadline) {
    std::optional<Reading> r = Read(probe, device, pid);
    if (!r.has_value()) return std::nullopt;
    const bool moved = !before.has_value() || r->process_bytes != before->process_bytes ||
                       r->device_used != before->device_used;
    if (!last.has_value() || r->process_bytes != last->process_bytes ||
        r->device_used != last->device_used) {
      last = r;
      last_change = std::chrono::steady_clock::now();
    } else if (moved && std::chrono::steady_clock::now() - last_change >= kSettle) {
      return last;
    }
    std::this_thread::sleep_for(kPoll);
  }
  return last;  // never moved: report what there is
}

int RunParent(int device, const std::string& sizes_text) {
  auto probe = gpu::CreateProbe(gpu::ProbeOptions::FromEnvironment());
  if (!probe.ok()) {
    std::printf("alloc_check: %s\n", probe.status().message().c_str());
    return 1;
  }
  auto devices = (*probe)->Devices();
  if (!devices.ok()) {
    std::printf("alloc_check: %s\n", devices.status().message().c_str());
    return 1;
  }
  if (devices->empty()) {
    std::printf("alloc_check: no GPU (backend: %s): nothing to measure\n",
                std::string((*probe)->backend()).c_str());
    return 0;
  }
  if (device < 0 || device >= static_cast<int>(devices->size())) {
    std::printf("alloc_check: no GPU %d (%zu visible)\n", device, devices->size());
    return 1;
  }
  std::vector<std::uint64_t> sizes;
  std::size_t begin = 0;
  while (begin <= sizes_text.size()) {
    std::size_t end = sizes_text.find(',', begin);
    if (end == std::string::npos) end = sizes_text.size();
    auto bytes = gpu::ParseBytes(sizes_text.substr(begin, end - begin));
    if (!bytes.ok()) {
      std::printf("alloc_check: %s\n", bytes.status().message().c_str());
      return 1;
    }
    sizes.push_back(*bytes);
    begin = end + 1;
  }
  const gpu::DeviceInfo& d = (*devices)[device];
  std::printf("alloc_check: backend %s, GPU %d %s (%s), %.0f MiB total, %.0f MiB free\n",
              std::string((*probe)->backend()).c_str(), d.index, d.name.c_str(), d.uuid.c_str(),
              MiB(d.total_bytes), MiB(d.free_bytes));
  std::printf("%-12s %12s %12s %12s %14s %14s\n", "size_MiB", "context_MiB", "after_MiB",
              "growth_MiB", "growth-size", "dev_delta_MiB");
  int failures = 0;
  for (std::uint64_t size : sizes) {
    if (size > d.free_bytes) {
      std::printf("%-12.0f skipped: only %.0f MiB free\n", MiB(size), MiB(d.free_bytes));
      continue;
    }
    const auto before_start = Read(**probe, device, -1);
    std::optional<Child> child = StartChild(device);
    if (!child.has_value() || !before_start.has_value()) {
      std::printf("alloc_check: cannot start a child process\n");
      return 1;
    }
    const std::string ready = ReadLine(*child);
    if (ready.rfind("ready", 0) != 0) {
      std::printf("alloc_check: child: %s\n", ready.c_str());
      StopChild(*child);
      return 1;
    }
    // Per-process accounting may only be decided once NVML lists the child.
    const auto context = Settled(**probe, device, child->pid, std::nullopt);
    const bool attributed = (*probe)->per_process_accounting();
    std::fprintf(child->to, "alloc %llu\n", static_cast<unsigned long long>(size));
    std::fflush(child->to);
    const std::string reply = ReadLine(*child);
    if (reply != "allocated") {
      std::printf("%-12.0f %s\n", MiB(size), reply.c_str());
      StopChild(*child);
      // Out of memory (the card is shared, or the context took the rest) is
      // a fact to report, not a failure of the GPU layer.
      if (reply.find(kOomPhrase) == std::string::npos) ++failures;
      continue;
    }
    const auto after = Settled(**probe, device, child->pid, context);
    StopChild(*child);
    if (!context.has_value() || !after.has_value()) {
      std::printf("alloc_check: the probe failed\n");
      return 1;
    }
    const std::int64_t dev_delta = static_cast<std::int64_t>(after->device_used) -
                                   static_cast<std::int64_t>(before_start->device_used);
    if (attributed) {
      const std::int64_t growth = static_cast<std::int64_t>(after->process_bytes) -
                                  static_cast<std::int64_t>(context->process_bytes);
      std::printf("%-12.0f %12.1f %12.1f %12.1f %+14.1f %14.1f\n", MiB(size),
                  MiB(context->process_bytes), MiB(after->process_bytes), MiB(growth),
                  MiB(growth - static_cast<std::int64_t>(size)), MiB(dev_delta));
    } else {
      const std::int64_t ctx_delta = static_cast<std::int64_t>(context->device_used) -
                                     static_cast<std::int64_t>(before_start->device_used);
      const std::int64_t growth = static_cast<std::int64_t>(after->device_used) -
                                  static_cast<std::int64_t>(context->device_used);
      std::printf(
          "%-12.0f %12.1f %12s %12.1f %+14.1f %14.1f  (device-level: per-process "
          "accounting off)\n",
          MiB(size), MiB(ctx_delta), "-", MiB(growth),
          MiB(growth - static_cast<std::int64_t>(size)), MiB(dev_delta));
    }
  }
  return failures == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  int device = 0;
  bool child = false;
  std::string sizes = kDefaultSizes;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--child") {
      child = true;
    } else if (arg == "--device" && i + 1 < argc) {
      device = std::atoi(argv[++i]);
    } else if (arg == "--sizes" && i + 1 < argc) {
      sizes = argv[++i];
    } else {
      std::fprintf(stderr, "usage: %s [--device N] [--sizes 256MiB,1GiB,4GiB]\n", argv[0]);
      return 2;
    }
  }
  return child ? RunChild(device) : RunParent(device, sizes);
}
