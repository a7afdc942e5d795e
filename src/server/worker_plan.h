// How many workers, and on which devices (DESIGN.md §7).
#ifndef CLAMS_SRC_SERVER_WORKER_PLAN_H_
#define CLAMS_SRC_SERVER_WORKER_PLAN_H_

#include <cstdint>
#include <string>
#include <vector>

#include "clams/gpu/probe.h"

namespace clams::server {

struct WorkerPlan {
  int count = 0;
  /// Device index of each worker (-1: no GPU), spread over the devices in
  /// proportion to their capacity.
  std::vector<int> devices;
  /// One line explaining the count, for the log.
  std::string reasoning;
};

/// `override_count` > 0 wins (from --workers or the environment, named by
/// `override_source`). Otherwise: min(2 x cores + 1, sum over devices of
/// floor(total MiB / est_gpu_mem_typ)) when typ > 0 and there are devices
/// (at least 1), else 2 x cores + 1.
WorkerPlan PlanWorkers(const std::vector<gpu::DeviceInfo>& devices, int cores, std::int64_t est_gpu_mem_typ_mb,
                       int override_count, const std::string& override_source);

}  // namespace clams::server

#endif  // CLAMS_SRC_SERVER_WORKER_PLAN_H_
