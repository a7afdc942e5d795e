// clams gpu [--json [--processes]] | sim-alloc BYTES [--seconds S] [--device N] | sim-reset:
// the GPUs of this machine (NVML or simulated) and simulated VRAM holders.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <ctime>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "clams/gpu/probe.h"
#include "clams/gpu/sim.h"
#include "cli/commands.h"

namespace clams::cli {
namespace {

namespace gpu = ::clams::gpu;

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;  // the GPUs cannot be read; the allocation does not fit
constexpr int kExitUsage = 2;    // bad arguments or configuration
constexpr long kNanosPerSecond = 1000000000L;
// Longer holds (and infinity) mean "until a signal"; keeps time_t arithmetic sane.
constexpr double kMaxHoldSeconds = 1e9;

int ExitCodeFor(const Status& status) {
  switch (status.code()) {
    case StatusCode::kInvalidArgument:
    case StatusCode::kFailedPrecondition:
      return kExitUsage;
    default:
      return kExitFailure;
  }
}

std::string JsonString(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          constexpr std::array<char, 17> kHex = {"0123456789abcdef"};
          out += "\\u00";
          out += kHex[(c >> 4) & 0xf];
          out += kHex[c & 0xf];
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

// {"devices":[{"index":0,"name":"...","uuid":"...","total_bytes":N,"used_bytes":N,
// "free_bytes":N[,"high_water_bytes":N,"oom_events":N]}],"backend":"..."}; with
// `processes` (--processes) also "per_process_accounting":true|false and
// "processes":[{"pid":N,"device":N,"used_bytes":N}] before "backend" (an empty list while
// per-process accounting is off).
std::string DevicesJson(std::string_view backend, const std::vector<gpu::DeviceInfo>& devices,
                        const std::optional<std::pair<bool, std::vector<gpu::ProcessUsage>>>& processes) {
  std::ostringstream os;
  os << "{\"devices\":[";
  for (std::size_t i = 0; i < devices.size(); ++i) {
    const gpu::DeviceInfo& d = devices[i];
    os << (i == 0 ? "" : ",") << "{\"index\":" << d.index << ",\"name\":" << JsonString(d.name)
       << ",\"uuid\":" << JsonString(d.uuid) << ",\"total_bytes\":" << d.total_bytes
       << ",\"used_bytes\":" << d.used_bytes << ",\"free_bytes\":" << d.free_bytes;
    if (d.simulated) {
      os << ",\"high_water_bytes\":" << d.high_water_bytes << ",\"oom_events\":" << d.oom_events;
    }
    os << "}";
  }
  os << "]";
  if (processes.has_value()) {
    os << ",\"per_process_accounting\":" << (processes->first ? "true" : "false") << ",\"processes\":[";
    for (std::size_t i = 0; i < processes->second.size(); ++i) {
      const gpu::ProcessUsage& p = processes->second[i];
      os << (i == 0 ? "" : ",") << "{\"pid\":" << p.pid << ",\"device\":" << p.device_index
         << ",\"used_bytes\":" << p.used_bytes << "}";
    }
    os << "]";
  }
  os << ",\"backend\":" << JsonString(backend) << "}";
  return os.str();
}

// Left-aligned columns separated by two spaces.
std::string Table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width;
  for (const auto& row : rows) {
    if (width.size() < row.size()) width.resize(row.size(), 0);
    for (std::size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t c = 0; c < row.size(); ++c) {
      line += row[c];
      if (c + 1 < row.size()) line.append(width[c] - row[c].size() + 2, ' ');
    }
    out += line + "\n";
  }
  return out;
}

std::string HumanReadable(const gpu::Probe& probe, const gpu::Snapshot& snapshot) {
  if (snapshot.devices.empty()) {
    return "no GPUs found (backend: " + std::string(probe.backend()) + ")\n";
  }
  const bool simulated = snapshot.devices.front().simulated;
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> header = {"INDEX", "NAME", "UUID", "TOTAL", "USED", "FREE"};
  if (simulated) {
    header.push_back("HIGH-WATER");
    header.push_back("OOM");
  }
  rows.push_back(header);
  for (const gpu::DeviceInfo& d : snapshot.devices) {
    std::vector<std::string> row = {std::to_string(d.index),
                                    d.name,
                                    d.uuid,
                                    gpu::FormatBytes(d.total_bytes),
                                    gpu::FormatBytes(d.used_bytes),
                                    gpu::FormatBytes(d.free_bytes)};
    if (simulated) {
      row.push_back(gpu::FormatBytes(d.high_water_bytes));
      row.push_back(std::to_string(d.oom_events));
    }
    rows.push_back(row);
  }
  std::string out = "backend: " + std::string(probe.backend()) + "\n" + Table(rows);
  if (!probe.per_process_accounting()) {
    out +=
        "\nper-process usage: not available (NVML reports PIDs of another PID namespace, or "
        "has not shown whose PIDs it reports yet)\n";
  } else if (!snapshot.processes.empty()) {
    std::vector<std::vector<std::string>> procs = {{"PID", "GPU", "USED"}};
    for (const gpu::ProcessUsage& p : snapshot.processes) {
      procs.push_back(
          {std::to_string(p.pid), std::to_string(p.device_index), gpu::FormatBytes(p.used_bytes)});
    }
    out += "\n" + Table(procs);
  }
  return out;
}

int ListGpus(bool json, bool processes) {
  StatusOr<std::unique_ptr<gpu::Probe>> probe =
      gpu::CreateProbe(gpu::ProbeOptions::FromEnvironment());
  if (!probe.ok()) {
    std::cerr << "clams gpu: " << probe.status().message() << "\n";
    return ExitCodeFor(probe.status());
  }
  StatusOr<gpu::Snapshot> snapshot = (*probe)->Sample();
  if (!snapshot.ok()) {
    std::cerr << "clams gpu: " << snapshot.status().message() << "\n";
    return kExitFailure;
  }
  if (json) {
    std::optional<std::pair<bool, std::vector<gpu::ProcessUsage>>> procs;
    if (processes) procs.emplace((*probe)->per_process_accounting(), snapshot->processes);
    std::cout << DevicesJson((*probe)->backend(), snapshot->devices, procs) << "\n";
  } else {
    std::cout << HumanReadable(**probe, *snapshot);
  }
  std::cout.flush();
  return std::cout ? kExitOk : kExitFailure;
}

// Waits for SIGTERM or SIGINT (which the caller blocked) for `seconds`, or
// forever when unset. Returns the signal, or 0 when the time ran out.
int WaitForSignal(const sigset_t& signals, std::optional<double> seconds) {
  if (!seconds.has_value() || *seconds > kMaxHoldSeconds) {
    int sig = 0;
    while (sigwait(&signals, &sig) != 0) {
    }
    return sig;
  }
  timespec deadline{};
  clock_gettime(CLOCK_MONOTONIC, &deadline);
  const double whole = std::floor(*seconds);
  deadline.tv_sec += static_cast<time_t>(whole);
  deadline.tv_nsec += static_cast<long>((*seconds - whole) * kNanosPerSecond);
  if (deadline.tv_nsec >= kNanosPerSecond) {
    deadline.tv_sec += 1;
    deadline.tv_nsec -= kNanosPerSecond;
  }
  for (;;) {
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);
    timespec left{deadline.tv_sec - now.tv_sec, deadline.tv_nsec - now.tv_nsec};
    if (left.tv_nsec < 0) {
      left.tv_sec -= 1;
      left.tv_nsec += kNanosPerSecond;
    }
    if (left.tv_sec < 0) return 0;
    const int sig = sigtimedwait(&signals, nullptr, &left);
    if (sig > 0) return sig;
    if (errno == EAGAIN) return 0;
    // EINTR: another signal; wait for the rest of the time.
  }
}

struct SimAllocArgs {
  std::string bytes;
  std::optional<double> seconds;
  int device = 0;
};

int SimAlloc(const SimAllocArgs& args) {
  StatusOr<gpu::sim::Config> config = gpu::sim::Config::FromEnvironment();
  if (!config.ok()) {
    std::cerr << "clams gpu sim-alloc: " << config.status().message() << "\n";
    return kExitUsage;
  }
  StatusOr<std::uint64_t> bytes = gpu::ParseBytes(args.bytes);
  if (!bytes.ok()) {
    std::cerr << "clams gpu sim-alloc: " << bytes.status().message() << "\n";
    return kExitUsage;
  }
  if (args.seconds.has_value() && !(*args.seconds >= 0)) {
    std::cerr << "clams gpu sim-alloc: --seconds must be 0 or more\n";
    return kExitUsage;
  }
  // Block the stop signals before holding anything, so that one arriving at
  // any point still releases the memory.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  StatusOr<gpu::sim::Allocation> allocation = gpu::sim::Allocate(*config, args.device, *bytes);
  if (!allocation.ok()) {
    std::cerr << "clams gpu sim-alloc: " << allocation.status().message() << "\n";
    return allocation.status().code() == StatusCode::kResourceExhausted
               ? kExitFailure
               : ExitCodeFor(allocation.status());
  }
  std::cout << "holding " << gpu::FormatBytes(*bytes) << " (" << *bytes
            << " bytes) on simulated GPU " << args.device << " ("
            << gpu::sim::DeviceUuid(allocation->device()) << "), pid " << ::getpid();
  if (args.seconds.has_value()) {
    std::cout << ", for " << *args.seconds << " s";
  } else {
    std::cout << ", until SIGTERM or SIGINT";
  }
  std::cout << std::endl;  // a test waits for this line

  const int sig = WaitForSignal(signals, args.seconds);
  allocation->Release();
  std::cout << "released";
  if (sig == SIGTERM) std::cout << " on SIGTERM";
  if (sig == SIGINT) std::cout << " on SIGINT";
  std::cout << std::endl;
  return kExitOk;
}

int SimReset() {
  StatusOr<gpu::sim::Config> config = gpu::sim::Config::FromEnvironment();
  if (!config.ok()) {
    std::cerr << "clams gpu sim-reset: " << config.status().message() << "\n";
    return kExitUsage;
  }
  Status s = gpu::sim::Reset(*config);
  if (!s.ok()) {
    std::cerr << "clams gpu sim-reset: " << s.message() << "\n";
    return kExitFailure;
  }
  std::cout << "reset the simulated GPU state " << config->state_path << "\n";
  return kExitOk;
}

}  // namespace

void AddGpuCommands(CLI::App& app, CommandContext& ctx) {
  CLI::App* gpu_cmd = app.add_subcommand(
      "gpu",
      "List the GPUs this process sees (NVML, or simulated with CLAMS_SIM_GPUS): index (CUDA "
      "ordinal after CUDA_VISIBLE_DEVICES), name, UUID, total/used/free memory, and the "
      "processes using them");
  gpu_cmd->require_subcommand(0, 1);
  auto json = std::make_shared<bool>(false);
  gpu_cmd->add_flag("--json", *json,
                    "Print {\"devices\":[{\"index\",\"name\",\"uuid\",\"total_bytes\","
                    "\"used_bytes\",\"free_bytes\"}],\"backend\"} (simulated devices add "
                    "\"high_water_bytes\" and \"oom_events\")");
  auto processes = std::make_shared<bool>(false);
  gpu_cmd->add_flag("--processes", *processes,
                    "With --json: also \"per_process_accounting\" (true when NVML reports PIDs of "
                    "this PID namespace) and \"processes\":[{\"pid\",\"device\",\"used_bytes\"}]");

  auto alloc_args = std::make_shared<SimAllocArgs>();
  CLI::App* sim_alloc = gpu_cmd->add_subcommand(
      "sim-alloc",
      "Hold simulated VRAM as a foreign process (needs CLAMS_SIM_GPUS; CLAMS_SIM_STATE names the "
      "shared state). Prints one line once it holds the memory; releases it and exits 0 after "
      "--seconds or on SIGTERM/SIGINT; exits 1 with a CUDA-style out-of-memory message if it "
      "does not fit");
  sim_alloc->add_option("bytes", alloc_args->bytes, "How much, e.g. 10GiB, 512MiB, 123456")
      ->required();
  sim_alloc->add_option("--seconds", alloc_args->seconds,
                        "How long to hold it (fractions allowed; default: until a signal)");
  sim_alloc->add_option("--device", alloc_args->device,
                        "CUDA ordinal (after CUDA_VISIBLE_DEVICES), default 0");
  sim_alloc->callback([&ctx, alloc_args] { ctx.exit_code = SimAlloc(*alloc_args); });

  CLI::App* sim_reset = gpu_cmd->add_subcommand(
      "sim-reset",
      "Clear the simulated GPU state (allocations, high-water marks, OOM counters) of "
      "CLAMS_SIM_GPUS / CLAMS_SIM_STATE");
  sim_reset->callback([&ctx] { ctx.exit_code = SimReset(); });

  gpu_cmd->callback([&ctx, gpu_cmd, json, processes] {
    if (!gpu_cmd->get_subcommands().empty()) return;  // a subcommand ran
    ctx.exit_code = ListGpus(*json, *processes);
  });
}

}  // namespace clams::cli
