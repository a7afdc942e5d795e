#include "server/worker_plan.h"

#include <algorithm>

#include <fmt/format.h>

namespace clams::server {

WorkerPlan PlanWorkers(const std::vector<gpu::DeviceInfo>& devices, int cores, std::int64_t typ_mb,
                       int override_count, const std::string& override_source) {
  constexpr std::uint64_t kMiB = 1ull << 20;
  WorkerPlan plan;
  const int cpu_workers = 2 * std::max(cores, 1) + 1;
  // Capacity of each device in workers of the typical size (or in MiB when
  // the app declares none), for the count and for the spread.
  std::vector<std::uint64_t> capacity;
  std::uint64_t vram_workers = 0;
  std::uint64_t total_mib = 0;
  for (const auto& d : devices) {
    const std::uint64_t mib = d.total_bytes / kMiB;
    total_mib += mib;
    const std::uint64_t by_vram = typ_mb > 0 ? mib / static_cast<std::uint64_t>(typ_mb) : mib;
    capacity.push_back(by_vram);
    vram_workers += typ_mb > 0 ? by_vram : 0;
  }
  if (override_count > 0) {
    plan.count = override_count;
    plan.reasoning = fmt::format("using {} worker(s) from {}", override_count, override_source);
  } else if (typ_mb > 0 && !devices.empty()) {
    const int by_vram = static_cast<int>(std::max<std::uint64_t>(1, vram_workers));
    plan.count = std::min(by_vram, cpu_workers);
    plan.reasoning = fmt::format("GPU detected: {} MiB VRAM on {} device(s), app requires {} MB, using {} workers "
                                 "(max {} by VRAM, {} by CPU)",
                                 total_mib, devices.size(), typ_mb, plan.count, by_vram, cpu_workers);
  } else {
    plan.count = cpu_workers;
    plan.reasoning = fmt::format("using {} workers (2 x {} cores + 1){}", cpu_workers, cores,
                                 devices.empty() ? "" : "; the app declares no est_gpu_mem_typ");
  }
  if (devices.empty()) {
    plan.devices.assign(plan.count, -1);
    return plan;
  }
  // Largest-remainder spread in proportion to capacity (every device with
  // capacity gets at least one worker while workers last).
  std::uint64_t total_capacity = 0;
  for (auto c : capacity) total_capacity += std::max<std::uint64_t>(c, 1);
  std::vector<int> per_device(devices.size(), 0);
  std::vector<std::pair<double, std::size_t>> remainders;
  int assigned = 0;
  for (std::size_t i = 0; i < devices.size(); ++i) {
    const double share = static_cast<double>(plan.count) * std::max<std::uint64_t>(capacity[i], 1) / total_capacity;
    per_device[i] = static_cast<int>(share);
    assigned += per_device[i];
    remainders.emplace_back(share - per_device[i], i);
  }
  std::sort(remainders.begin(), remainders.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });
  for (std::size_t k = 0; assigned < plan.count; k = (k + 1) % remainders.size()) {
    ++per_device[remainders[k].second];
    ++assigned;
  }
  // Interleave so that worker ids alternate over devices.
  for (int round = 0; static_cast<int>(plan.devices.size()) < plan.count; ++round) {
    for (std::size_t i = 0; i < devices.size(); ++i) {
      if (round < per_device[i]) plan.devices.push_back(devices[i].index);
    }
  }
  return plan;
}

}  // namespace clams::server
