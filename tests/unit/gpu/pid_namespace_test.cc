#include "gpu/pid_namespace.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "testing/testing.h"
#include "unit/gpu/test_util.h"

namespace clams::gpu_internal {
namespace {

TEST(PidNamespaceTest, ReadsTheInodeOfTheLink) {
  clams::testing::TempDir dir;
  FakeProc proc(dir.path());
  proc.SetNamespace(4026532001u);
  EXPECT_EQ(ReadPidNamespaceInode(proc.dir()), 4026532001u);
  EXPECT_EQ(ReadPidNamespaceInode((dir.path() / "nowhere").string()), std::nullopt);
}

TEST(PidNamespaceTest, ReadsTheRealNamespace) {
  ASSERT_TRUE(std::filesystem::exists("/proc/self/ns/pid"));
  EXPECT_TRUE(ReadPidNamespaceInode("/proc").has_value());
}

TEST(PidNamespaceTest, TheInitialNamespaceAttributesAtOnce) {
  EXPECT_EQ(AttributionFromNamespace(kInitialPidNamespaceInode), PidAttribution::kOwnPids);
  EXPECT_EQ(AttributionFromNamespace(4026532001u), PidAttribution::kPending);
  EXPECT_EQ(AttributionFromNamespace(std::nullopt), PidAttribution::kPending);
}

TEST(PidNamespaceTest, LooksUpPids) {
  clams::testing::TempDir dir;
  FakeProc proc(dir.path());
  proc.AddProcess(100, {"/dev/null", "/dev/nvidiactl", "/dev/nvidia0"});
  proc.AddProcess(200, {"/dev/null", "socket:[123]"});
  EXPECT_EQ(LookUpPid(proc.dir(), 100), PidLook::kGpuUser);
  EXPECT_EQ(LookUpPid(proc.dir(), 200), PidLook::kNotGpuUser);
  EXPECT_EQ(LookUpPid(proc.dir(), 300), PidLook::kAbsent);
}

TEST(PidNamespaceTest, LooksUpThisProcessInTheRealProc) {
  EXPECT_EQ(LookUpPid("/proc", ::getpid()), PidLook::kNotGpuUser);
}

TEST(PidNamespaceTest, AttributionFromPids) {
  using L = PidLook;
  EXPECT_EQ(AttributionFromPids({}), PidAttribution::kPending);
  EXPECT_EQ(AttributionFromPids({L::kAbsent, L::kGpuUser}), PidAttribution::kOwnPids);
  EXPECT_EQ(AttributionFromPids({L::kAbsent}), PidAttribution::kHostPids);
  EXPECT_EQ(AttributionFromPids({L::kAbsent, L::kNotGpuUser}), PidAttribution::kHostPids);
  EXPECT_EQ(AttributionFromPids({L::kAbsent, L::kUnreadable}), PidAttribution::kPending);
  EXPECT_EQ(AttributionFromPids({L::kUnreadable, L::kGpuUser}), PidAttribution::kOwnPids);
}

}  // namespace
}  // namespace clams::gpu_internal
