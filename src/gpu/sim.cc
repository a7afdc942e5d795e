// Simulated GPU memory (clams/gpu/sim.h).
#include "clams/gpu/sim.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <utility>

#include "clams/base/log.h"
#include "gpu/sim_state.h"

namespace clams::gpu::sim {
namespace {

constexpr std::size_t kMaxDevices = 64;
constexpr std::uint64_t kFnvOffsetBasis = 14695981039346656037ull;
constexpr std::uint64_t kFnvPrime = 1099511628211ull;

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

Status BadSpec(std::string_view spec, std::string_view why) {
  return InvalidArgumentError(fmt::format("invalid CLAMS_SIM_GPUS \"{}\": {}", spec, why));
}

}  // namespace

StatusOr<Config> Config::FromEnvironment() {
  const char* gpus = std::getenv("CLAMS_SIM_GPUS");
  if (gpus == nullptr || *gpus == '\0') {
    return FailedPreconditionError(
        "CLAMS_SIM_GPUS is not set: no simulated GPUs (set it to e.g. \"24GiB\" or "
        "\"0:24GiB,1:16GiB\")");
  }
  const char* state = std::getenv("CLAMS_SIM_STATE");
  return Parse(gpus, state != nullptr ? state : "");
}

StatusOr<Config> Config::Parse(std::string_view sim_gpus, std::string state_path) {
  const std::string_view spec = Trim(sim_gpus);
  if (spec.empty()) return BadSpec(sim_gpus, "empty");
  std::vector<std::string_view> entries;
  std::size_t begin = 0;
  while (begin <= spec.size()) {
    std::size_t end = spec.find(',', begin);
    if (end == std::string_view::npos) end = spec.size();
    entries.push_back(Trim(spec.substr(begin, end - begin)));
    begin = end + 1;
  }
  if (entries.size() > kMaxDevices) {
    return BadSpec(sim_gpus, fmt::format("more than {} devices", kMaxDevices));
  }
  Config config;
  config.capacities.assign(entries.size(), 0);
  int indexed = 0;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    std::string_view entry = entries[i];
    if (entry.empty()) return BadSpec(sim_gpus, fmt::format("entry {} is empty", i + 1));
    std::size_t slot = i;
    const std::size_t colon = entry.find(':');
    if (colon != std::string_view::npos) {
      ++indexed;
      const std::string_view index_text = Trim(entry.substr(0, colon));
      std::size_t index = 0;
      bool digits = !index_text.empty() && index_text.size() <= 2;
      for (char c : index_text) {
        if (c < '0' || c > '9') digits = false;
        index = index * 10 + static_cast<std::size_t>(c - '0');
      }
      if (!digits || index >= entries.size()) {
        return BadSpec(sim_gpus, fmt::format("device index \"{}\" is not one of 0..{}", index_text,
                                             entries.size() - 1));
      }
      if (config.capacities[index] != 0) {
        return BadSpec(sim_gpus, fmt::format("device {} is listed twice", index));
      }
      slot = index;
      entry = Trim(entry.substr(colon + 1));
    }
    StatusOr<std::uint64_t> bytes = ParseBytes(entry);
    if (!bytes.ok()) return BadSpec(sim_gpus, bytes.status().message());
    if (*bytes == 0) return BadSpec(sim_gpus, "a device of 0 bytes");
    config.capacities[slot] = *bytes;
  }
  if (indexed != 0 && indexed != static_cast<int>(entries.size())) {
    return BadSpec(sim_gpus, "either every entry has an index (\"0:24GiB\") or none does");
  }
  config.state_path =
      state_path.empty() ? DefaultStatePath(config.capacities) : std::move(state_path);
  return config;
}

std::string Config::DefaultStatePath(const std::vector<std::uint64_t>& capacities) {
  std::uint64_t hash = kFnvOffsetBasis;
  for (std::uint64_t c : capacities) {
    for (char ch : fmt::format("{},", c)) {
      hash ^= static_cast<unsigned char>(ch);
      hash *= kFnvPrime;
    }
  }
  std::error_code ec;
  std::filesystem::path dir = std::filesystem::temp_directory_path(ec);
  if (ec) dir = "/tmp";
  return (dir / fmt::format("clams-sim-gpus-{}-{:016x}.state", ::getuid(), hash)).string();
}

std::string DeviceName(int device) { return fmt::format("Simulated GPU {}", device); }
std::string DeviceUuid(int device) { return fmt::format("SIM-GPU-{}", device); }

Allocation::Allocation(Allocation&& other) noexcept
    : config_(std::move(other.config_)),
      device_(std::exchange(other.device_, -1)),
      bytes_(std::exchange(other.bytes_, 0)),
      token_(std::exchange(other.token_, 0)),
      pid_(std::exchange(other.pid_, 0)) {}

Allocation& Allocation::operator=(Allocation&& other) noexcept {
  if (this != &other) {
    Release();
    config_ = std::move(other.config_);
    device_ = std::exchange(other.device_, -1);
    bytes_ = std::exchange(other.bytes_, 0);
    token_ = std::exchange(other.token_, 0);
    pid_ = std::exchange(other.pid_, 0);
  }
  return *this;
}

Allocation::~Allocation() { Release(); }

void Allocation::Release() {
  const std::uint64_t token = std::exchange(token_, 0);
  const int pid = std::exchange(pid_, 0);
  const int device = std::exchange(device_, -1);
  bytes_ = 0;
  // Nothing recorded (empty or zero bytes), or a forked child's copy.
  if (token == 0 || pid != ::getpid()) return;
  Status s = gpu_internal::UpdateSimState(
      config_.state_path, config_.capacities.size(), [&](gpu_internal::SimState& state) {
        auto it = std::find_if(state.allocations.begin(), state.allocations.end(),
                               [&](const gpu_internal::SimAllocationRecord& r) {
                                 return r.token == token && r.pid == pid;
                               });
        if (it == state.allocations.end()) return false;  // reset meanwhile
        state.allocations.erase(it);
        return true;
      });
  if (!s.ok()) {
    CLAMS_LOG(kWarning, "releasing simulated GPU memory on device {}: {}", device, s.message());
  }
}

StatusOr<Allocation> Allocate(const Config& config, int cuda_ordinal, std::uint64_t bytes) {
  const std::vector<int> visible = gpu_internal::VisibleSimDevicesFromEnvironment(config);
  if (cuda_ordinal < 0 || static_cast<std::size_t>(cuda_ordinal) >= visible.size()) {
    return InvalidArgumentError(fmt::format("invalid device ordinal {}: {} simulated GPUs visible",
                                            cuda_ordinal, visible.size()));
  }
  return gpu_internal::SimAllocateOnDevice(config, visible[static_cast<std::size_t>(cuda_ordinal)],
                                           cuda_ordinal, bytes);
}

StatusOr<Allocation> Allocate(int cuda_ordinal, std::uint64_t bytes) {
  CLAMS_ASSIGN_OR_RETURN(Config config, Config::FromEnvironment());
  return Allocate(config, cuda_ordinal, bytes);
}

StatusOr<std::uint64_t> UsedByThisProcess(const Config& config, int device) {
  if (device < 0 || static_cast<std::size_t>(device) >= config.capacities.size()) {
    return InvalidArgumentError(fmt::format("invalid simulated GPU {}: {} simulated GPUs", device,
                                            config.capacities.size()));
  }
  const int self = ::getpid();
  std::uint64_t used = 0;
  CLAMS_RETURN_IF_ERROR(gpu_internal::UpdateSimState(config.state_path, config.capacities.size(),
                                                     [&](gpu_internal::SimState& state) {
                                                       for (const auto& r : state.allocations) {
                                                         if (r.pid == self && r.device == device)
                                                           used += r.bytes;
                                                       }
                                                       return false;
                                                     }));
  return used;
}

Status Reset(const Config& config) {
  return gpu_internal::UpdateSimState(config.state_path, config.capacities.size(),
                                      [&](gpu_internal::SimState& state) {
                                        state.allocations.clear();
                                        for (auto& d : state.devices) d = {};
                                        return true;
                                      });
}

}  // namespace clams::gpu::sim
