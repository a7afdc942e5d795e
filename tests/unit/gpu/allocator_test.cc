// DeviceAllocator over simulated VRAM and over a fake CUDA runtime loaded
// with dlopen (fake_cudart.cc).
#include "clams/gpu/allocator.h"

#include <dlfcn.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "testing/status_matchers.h"
#include "testing/testing.h"
#include "unit/gpu/test_util.h"

namespace clams::gpu {
namespace {

using ::clams::gpu_internal::FakeCudartPath;
using ::clams::gpu_internal::ScopedEnv;
using ::clams::testing::IsOk;
using ::clams::testing::IsOkAndHolds;
using ::clams::testing::StatusIs;
using ::testing::HasSubstr;

constexpr std::uint64_t kMiB = 1ull << 20;
constexpr std::uint64_t kGiB = 1ull << 30;

class SimAllocatorTest : public ::testing::Test {
 protected:
  std::unique_ptr<DeviceAllocator> Make(const std::string& spec) {
    AllocatorOptions options;
    options.sim_gpus = spec;
    options.sim_state = (dir_.path() / "sim.state").string();
    StatusOr<std::unique_ptr<DeviceAllocator>> a = DeviceAllocator::Create(options);
    EXPECT_THAT(a, IsOk());
    return a.ok() ? std::move(a).value() : nullptr;
  }
  clams::testing::TempDir dir_;
  ScopedEnv no_cvd_{"CUDA_VISIBLE_DEVICES", std::nullopt};
};

TEST_F(SimAllocatorTest, AllocatesSimulatedVram) {
  auto allocator = Make("2GiB");
  ASSERT_NE(allocator, nullptr);
  EXPECT_EQ(allocator->backend(), "simulated");
  EXPECT_EQ(allocator->device_count(), 1);
  EXPECT_THAT(allocator->InitDevice(0), IsOk());
  StatusOr<DeviceBuffer> buffer = allocator->Allocate(0, 1 * kGiB);
  ASSERT_THAT(buffer, IsOk());
  EXPECT_TRUE(buffer->simulated());
  EXPECT_EQ(buffer->data(), nullptr);
  EXPECT_EQ(buffer->bytes(), 1 * kGiB);
  EXPECT_EQ(buffer->device(), 0);
  EXPECT_THAT(allocator->AllocatedByThisProcess(0), IsOkAndHolds(1 * kGiB));
  StatusOr<DeviceMemory> memory = allocator->MemoryInfo(0);
  ASSERT_THAT(memory, IsOk());
  EXPECT_EQ(memory->free_bytes, 1 * kGiB);
  EXPECT_EQ(memory->total_bytes, 2 * kGiB);
  EXPECT_THAT(allocator->Allocate(0, 2 * kGiB),
              StatusIs(StatusCode::kResourceExhausted,
                       "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 2.00 GiB total "
                       "capacity; 1024.00 MiB already allocated; 1024.00 MiB free)"));
  buffer->Release();
  EXPECT_EQ(buffer->bytes(), 0u);
  EXPECT_EQ(buffer->device(), -1);
  EXPECT_THAT(allocator->AllocatedByThisProcess(0), IsOkAndHolds(0u));
}

TEST_F(SimAllocatorTest, UnknownDevicesAreInvalid) {
  auto allocator = Make("2GiB");
  ASSERT_NE(allocator, nullptr);
  EXPECT_THAT(allocator->Allocate(1, 1),
              StatusIs(StatusCode::kInvalidArgument,
                       "invalid device ordinal 1: 1 simulated GPU(s) visible"));
  EXPECT_THAT(allocator->InitDevice(-1),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("invalid device ordinal -1")));
  EXPECT_THAT(allocator->MemoryInfo(1), StatusIs(StatusCode::kInvalidArgument, HasSubstr("1")));
  EXPECT_THAT(allocator->AllocatedByThisProcess(1),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("invalid device ordinal 1")));
}

TEST_F(SimAllocatorTest, HonoursCudaVisibleDevices) {
  ScopedEnv cvd("CUDA_VISIBLE_DEVICES", "1");
  auto allocator = Make("0:1GiB,1:2GiB");
  ASSERT_NE(allocator, nullptr);
  EXPECT_EQ(allocator->device_count(), 1);
  DeviceBuffer b = allocator->Allocate(0, 1536 * kMiB).value();
  EXPECT_EQ(b.device(), 0);
  EXPECT_EQ(allocator->MemoryInfo(0)->total_bytes, 2 * kGiB);
  EXPECT_EQ(allocator->MemoryInfo(0)->free_bytes, 512 * kMiB);
}

TEST_F(SimAllocatorTest, BuffersMoveAndOutliveTheAllocator) {
  DeviceBuffer kept;
  {
    auto allocator = Make("2GiB");
    ASSERT_NE(allocator, nullptr);
    DeviceBuffer a = allocator->Allocate(0, 1 * kGiB).value();
    kept = std::move(a);
    EXPECT_EQ(a.bytes(), 0u);  // NOLINT(bugprone-use-after-move): moved-from is empty
    EXPECT_FALSE(a.simulated());
  }
  EXPECT_EQ(kept.bytes(), 1 * kGiB);
  auto again = Make("2GiB");
  EXPECT_EQ(again->MemoryInfo(0)->free_bytes, 1 * kGiB);
  kept = DeviceBuffer();
  EXPECT_EQ(again->MemoryInfo(0)->free_bytes, 2 * kGiB);
}

TEST_F(SimAllocatorTest, ABadSpecIsInvalid) {
  AllocatorOptions options;
  options.sim_gpus = "0:1GiB,0:1GiB";
  EXPECT_THAT(DeviceAllocator::Create(options),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("device 0 is listed twice")));
}

TEST(AllocatorOptionsTest, FromEnvironment) {
  ScopedEnv gpus("CLAMS_SIM_GPUS", "8GiB");
  ScopedEnv state("CLAMS_SIM_STATE", "/tmp/s.state");
  AllocatorOptions options = AllocatorOptions::FromEnvironment();
  EXPECT_EQ(options.sim_gpus, "8GiB");
  EXPECT_EQ(options.sim_state, "/tmp/s.state");
  EXPECT_THAT(options.cuda_runtime_libraries,
              ::testing::ElementsAre("libcudart.so", "libcudart.so.12", "libcudart.so.11.0",
                                     "libcudart.so.13"));
}

TEST(NoBackendTest, NeitherSimulationNorCudaIsAFailedPrecondition) {
  clams::testing::TempDir dir;
  const std::string missing = (dir.path() / "libcudart.so").string();
  AllocatorOptions options;
  options.cuda_runtime_libraries = {missing};
  EXPECT_THAT(DeviceAllocator::Create(options),
              StatusIs(StatusCode::kFailedPrecondition,
                       "no GPU memory to allocate: CLAMS_SIM_GPUS is not set (no simulated GPUs) "
                       "and no CUDA runtime library: tried " +
                           missing + " (" + missing +
                           ": cannot open shared object file: No such file or directory)"));
}

class CudaAllocatorTest : public ::testing::Test {
 protected:
  CudaAllocatorTest() : handle_(::dlopen(FakeCudartPath().c_str(), RTLD_NOW | RTLD_LOCAL)) {
    EXPECT_NE(handle_, nullptr);
    used_ = reinterpret_cast<unsigned long long (*)(int)>(::dlsym(handle_, "fake_cudart_used"));
    memset_bytes_ =
        reinterpret_cast<unsigned long long (*)()>(::dlsym(handle_, "fake_cudart_memset_bytes"));
    contexts_ = reinterpret_cast<int (*)()>(::dlsym(handle_, "fake_cudart_contexts"));
    pending_error_ =
        reinterpret_cast<int (*)()>(::dlsym(handle_, "fake_cudart_last_error_pending"));
  }
  ~CudaAllocatorTest() override { ::dlclose(handle_); }

  AllocatorOptions Options() const {
    AllocatorOptions options;
    options.cuda_runtime_libraries = {"libclams-no-such-cudart.so", FakeCudartPath()};
    return options;
  }

  ScopedEnv devices_{"FAKE_CUDART_DEVICES", "2"};
  ScopedEnv capacity_{"FAKE_CUDART_CAPACITY", std::to_string(1ull << 30)};
  ScopedEnv no_error_{"FAKE_CUDART_COUNT_ERROR", std::nullopt};
  void* handle_;
  unsigned long long (*used_)(int) = nullptr;
  unsigned long long (*memset_bytes_)() = nullptr;
  int (*contexts_)() = nullptr;
  int (*pending_error_)() = nullptr;
};

TEST_F(CudaAllocatorTest, AllocatesTouchesAndFreesThroughTheRuntime) {
  StatusOr<std::unique_ptr<DeviceAllocator>> created = DeviceAllocator::Create(Options());
  ASSERT_THAT(created, IsOk());
  DeviceAllocator& allocator = **created;
  EXPECT_EQ(allocator.backend(), "cuda");
  EXPECT_EQ(allocator.device_count(), 2);
  const int contexts_before = contexts_();
  EXPECT_THAT(allocator.InitDevice(1), IsOk());
  EXPECT_GE(contexts_(), contexts_before);
  const unsigned long long memset_before = memset_bytes_();
  StatusOr<DeviceBuffer> buffer = allocator.Allocate(0, 256 * kMiB);
  ASSERT_THAT(buffer, IsOk());
  EXPECT_NE(buffer->data(), nullptr);
  EXPECT_FALSE(buffer->simulated());
  EXPECT_EQ(buffer->device(), 0);
  EXPECT_EQ(memset_bytes_() - memset_before, 256 * kMiB);
  EXPECT_EQ(used_(0), 256 * kMiB);
  EXPECT_THAT(allocator.AllocatedByThisProcess(0), IsOkAndHolds(256 * kMiB));
  EXPECT_THAT(allocator.AllocatedByThisProcess(1), IsOkAndHolds(0u));
  StatusOr<DeviceMemory> memory = allocator.MemoryInfo(0);
  ASSERT_THAT(memory, IsOk());
  EXPECT_EQ(memory->total_bytes, 1 * kGiB);
  EXPECT_EQ(memory->free_bytes, 768 * kMiB);
  buffer->Release();
  EXPECT_EQ(used_(0), 0u);
  EXPECT_THAT(allocator.AllocatedByThisProcess(0), IsOkAndHolds(0u));
}

TEST_F(CudaAllocatorTest, OutOfMemoryIsResourceExhausted) {
  auto allocator = DeviceAllocator::Create(Options()).value();
  DeviceBuffer held = allocator->Allocate(1, 256 * kMiB).value();
  EXPECT_THAT(allocator->Allocate(1, 1 * kGiB),
              StatusIs(StatusCode::kResourceExhausted,
                       "CUDA out of memory. Tried to allocate 1024.00 MiB (GPU 1; 1024.00 MiB "
                       "total capacity; 256.00 MiB already allocated; 768.00 MiB free)"));
  EXPECT_EQ(pending_error_(), 0);  // the sticky "last error" was cleared
  EXPECT_THAT(allocator->Allocate(1, 768 * kMiB), IsOk());
}

TEST_F(CudaAllocatorTest, ZeroBytesGiveAnEmptyBuffer) {
  auto allocator = DeviceAllocator::Create(Options()).value();
  DeviceBuffer empty = allocator->Allocate(1, 0).value();
  EXPECT_EQ(empty.data(), nullptr);
  EXPECT_EQ(empty.bytes(), 0u);
  EXPECT_EQ(empty.device(), 1);
  EXPECT_THAT(allocator->Allocate(2, 1),
              StatusIs(StatusCode::kInvalidArgument, "invalid device ordinal 2: 2 GPU(s) visible"));
}

TEST_F(CudaAllocatorTest, BuffersOutliveTheAllocator) {
  DeviceBuffer kept;
  {
    auto allocator = DeviceAllocator::Create(Options()).value();
    kept = allocator->Allocate(0, 1 * kMiB).value();
  }
  EXPECT_EQ(used_(0), 1 * kMiB);
  kept.Release();
  EXPECT_EQ(used_(0), 0u);
}

TEST_F(CudaAllocatorTest, ARuntimeWithoutDevicesIsAFailedPrecondition) {
  ScopedEnv error("FAKE_CUDART_COUNT_ERROR", "100");
  EXPECT_THAT(DeviceAllocator::Create(Options()),
              StatusIs(StatusCode::kFailedPrecondition,
                       "no GPU memory to allocate: CLAMS_SIM_GPUS is not set (no simulated GPUs) "
                       "and CUDA runtime " +
                           FakeCudartPath() +
                           ": no usable GPU: no CUDA-capable device is detected (CUDA error 100)"));
  ScopedEnv none("FAKE_CUDART_COUNT_ERROR", std::nullopt);
  ScopedEnv zero("FAKE_CUDART_DEVICES", "0");
  EXPECT_THAT(DeviceAllocator::Create(Options()),
              StatusIs(StatusCode::kFailedPrecondition, HasSubstr(": no GPU")));
}

}  // namespace
}  // namespace clams::gpu
