#include "server/private_dir.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "server/file_limit.h"
#include "testing/status_matchers.h"
#include "testing/testing.h"

namespace clams::server {
namespace {

using ::clams::testing::IsOk;
using ::clams::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::StartsWith;

TEST(PrivateDirTest, IsMode0700OwnedByUsUnpredictableAndRemovedWithItsContents) {
  testing::TempDir base;
  ::umask(0);  // mkdtemp's 0700 must not depend on the umask
  auto a = PrivateDir::Create(base.path());
  auto b = PrivateDir::Create(base.path());
  ::umask(022);
  ASSERT_THAT(a, IsOk());
  ASSERT_THAT(b, IsOk());
  EXPECT_NE(a->path(), b->path());
  EXPECT_EQ(a->path().parent_path(), base.path());
  EXPECT_THAT(a->path().filename().string(), StartsWith("clams-"));
  EXPECT_NE(a->path().filename().string(), "clams-" + std::to_string(::getpid()));
  struct stat st {};
  ASSERT_EQ(::lstat(a->path().c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  EXPECT_EQ(st.st_uid, ::geteuid());
  const std::filesystem::path dir = a->path();
  std::ofstream(dir / "worker-1.sock") << "x";
  {
    PrivateDir moved = std::move(a).value();
    EXPECT_EQ(moved.path(), dir);
  }
  EXPECT_FALSE(std::filesystem::exists(dir));
}

TEST(PrivateDirTest, CreateFailsInAMissingBase) {
  EXPECT_THAT(PrivateDir::Create("/nonexistent-clams-base"),
              StatusIs(StatusCode::kFailedPrecondition,
                       HasSubstr("cannot create a private directory in /nonexistent-clams-base")));
}

TEST(PrivateDirTest, BaseIsTheRuntimeDirWhenItExists) {
  testing::TempDir xdg;
  EXPECT_EQ(PrivateDirBase(xdg.path().string()), xdg.path());
  EXPECT_EQ(PrivateDirBase(""), std::filesystem::temp_directory_path());
  EXPECT_EQ(PrivateDirBase("/nonexistent-clams-runtime"), std::filesystem::temp_directory_path());
}

TEST(PrivateDirTest, CheckRejectsSymlinksOpenModesAndOtherOwners) {
  testing::TempDir base;
  const auto target = base.path() / "target";
  std::filesystem::create_directory(target);
  ::chmod(target.c_str(), 0700);
  EXPECT_THAT(CheckPrivateDirectory(target), IsOk());
  const auto link = base.path() / "link";
  std::filesystem::create_directory_symlink(target, link);
  EXPECT_THAT(CheckPrivateDirectory(link), StatusIs(StatusCode::kFailedPrecondition, link.string() + " is a symbolic link"));
  ::chmod(target.c_str(), 0755);
  EXPECT_THAT(CheckPrivateDirectory(target),
              StatusIs(StatusCode::kFailedPrecondition, target.string() + " has mode 0755, not 0700"));
  ::chmod(target.c_str(), 0700);
  if (::geteuid() != 0) GTEST_SKIP() << "giving a directory to another user needs root";
  ASSERT_EQ(::chown(target.c_str(), 65534, 65534), 0);
  EXPECT_THAT(CheckPrivateDirectory(target),
              StatusIs(StatusCode::kFailedPrecondition, target.string() + " is owned by uid 65534, not 0"));
}

TEST(FileLimitTest, SoftLimitIsRaisedToTheHardOneAndRestoredForChildren) {
  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
  if (saved.rlim_max < 256) GTEST_SKIP() << "hard limit too low to lower the soft one";
  rlimit low = saved;
  low.rlim_cur = 128;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
  auto raised = RaiseFileLimit();
  ASSERT_THAT(raised, IsOk());
  EXPECT_EQ(raised->before, 128u);
  EXPECT_EQ(raised->after, saved.rlim_max);
  rlimit now{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &now), 0);
  EXPECT_EQ(now.rlim_cur, saved.rlim_max);
  RestoreInheritedFileLimit();
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &now), 0);
  EXPECT_EQ(now.rlim_cur, 128u);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &saved), 0);
}

}  // namespace
}  // namespace clams::server
