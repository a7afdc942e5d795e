// PlanWorkers: the worker count rule of DESIGN.md §7 and the spread over devices.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "server/worker_plan.h"

namespace clams::server {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr std::uint64_t kGiB = 1ull << 30;

gpu::DeviceInfo Device(int index, std::uint64_t total) {
  gpu::DeviceInfo d;
  d.index = index;
  d.uuid = "SIM-GPU-" + std::to_string(index);
  d.name = "Simulated GPU " + std::to_string(index);
  d.total_bytes = total;
  d.free_bytes = total;
  return d;
}

TEST(PlanWorkersTest, AnOverrideWinsAndNamesItsSource) {
  WorkerPlan p = PlanWorkers({Device(0, 24 * kGiB)}, 8, 6000, 3, "CLAMS_WORKERS");
  EXPECT_EQ(p.count, 3);
  EXPECT_THAT(p.devices, ElementsAre(0, 0, 0));
  EXPECT_EQ(p.reasoning, "using 3 worker(s) from CLAMS_WORKERS");
}

TEST(PlanWorkersTest, WithoutGpusItIsTwiceTheCoresPlusOneOnNoDevice) {
  WorkerPlan p = PlanWorkers({}, 2, 6000, 0, "");
  EXPECT_EQ(p.count, 5);
  EXPECT_THAT(p.devices, ElementsAre(-1, -1, -1, -1, -1));
  EXPECT_EQ(p.reasoning, "using 5 workers (2 x 2 cores + 1)");
}

TEST(PlanWorkersTest, ZeroCoresCountAsOne) {
  EXPECT_EQ(PlanWorkers({}, 0, 0, 0, "").count, 3);
}

TEST(PlanWorkersTest, GpuAppsGetAsManyTypicalRequestsAsFitTheCard) {
  // 24576 MiB / 6000 MB typical = 4 workers, fewer than 2 x 8 + 1.
  WorkerPlan p = PlanWorkers({Device(0, 24 * kGiB)}, 8, 6000, 0, "");
  EXPECT_EQ(p.count, 4);
  EXPECT_THAT(p.devices, ElementsAre(0, 0, 0, 0));
  EXPECT_THAT(p.reasoning, HasSubstr("24576 MiB VRAM on 1 device(s), app requires 6000 MB, using 4 workers"));
}

TEST(PlanWorkersTest, CoresCapTheCountOnALargeCard) {
  WorkerPlan p = PlanWorkers({Device(0, 80 * kGiB)}, 2, 1000, 0, "");
  EXPECT_EQ(p.count, 5);
  EXPECT_THAT(p.reasoning, HasSubstr("(max 81 by VRAM, 5 by CPU)"));
}

TEST(PlanWorkersTest, ACardSmallerThanTheTypicalRequestStillGetsOneWorker) {
  WorkerPlan p = PlanWorkers({Device(0, 4 * kGiB)}, 4, 6000, 0, "");
  EXPECT_EQ(p.count, 1);
  EXPECT_THAT(p.devices, ElementsAre(0));
}

TEST(PlanWorkersTest, WorkersAreSpreadInProportionToCapacityAndInterleaved) {
  // 24 GiB: 4 typical requests, 16 GiB: 2; ids alternate while both have some left.
  WorkerPlan p = PlanWorkers({Device(0, 24 * kGiB), Device(1, 16 * kGiB)}, 8, 6000, 0, "");
  EXPECT_EQ(p.count, 6);
  EXPECT_THAT(p.devices, ElementsAre(0, 1, 0, 1, 0, 0));
}

TEST(PlanWorkersTest, WithoutATypicalEstimateGpusShareTheCpuCountByMemory) {
  WorkerPlan p = PlanWorkers({Device(0, 16 * kGiB), Device(1, 16 * kGiB)}, 2, 0, 0, "");
  EXPECT_EQ(p.count, 5);
  EXPECT_THAT(p.devices, ElementsAre(0, 1, 0, 1, 0));
  EXPECT_THAT(p.reasoning, HasSubstr("the app declares no est_gpu_mem_typ"));
}

TEST(PlanWorkersTest, AnOverrideIsSpreadOverDevicesToo) {
  WorkerPlan p = PlanWorkers({Device(0, 24 * kGiB), Device(1, 24 * kGiB)}, 8, 6000, 4, "--workers");
  EXPECT_THAT(p.devices, ElementsAre(0, 1, 0, 1));
}

}  // namespace
}  // namespace clams::server
