#include "server/private_dir.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <sstream>

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

// The owner file as "key" -> "value".
std::map<std::string, std::string> ParseOwner(const std::string& text) {
  std::map<std::string, std::string> fields;
  std::istringstream in(text);
  std::string key, value;
  while (in >> key >> value) fields[key] = value;
  return fields;
}

std::string OwnerText(const std::map<std::string, std::string>& fields) {
  std::string text;
  for (const auto& [k, v] : fields) text += k + " " + v + "\n";
  return text;
}

// A pid no process has now: a child that exited and was reaped.
std::string GonePid() {
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  int status = 0;
  ::waitpid(child, &status, 0);
  return std::to_string(child);
}

TEST(PrivateDirTest, NamesItsProcessInTheOwnerFile) {
  testing::TempDir base;
  auto dir = PrivateDir::Create(base.path());
  ASSERT_THAT(dir, IsOk());
  const auto owner = dir->path() / std::string(kPrivateDirOwnerFile);
  struct stat st {};
  ASSERT_EQ(::lstat(owner.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  const auto fields = ParseOwner(testing::ReadFileOrDie(owner));
  EXPECT_EQ(fields.at("pid"), std::to_string(::getpid()));
  EXPECT_EQ(fields.count("start"), 1u);
  EXPECT_EQ(fields.count("pidns"), 1u);
  EXPECT_EQ(fields.at("boot"), [] {
    std::string id = testing::ReadFileOrDie("/proc/sys/kernel/random/boot_id");
    return id.substr(0, id.find('\n'));
  }());
}

// A server killed outright leaves its directory; the next one removes it,
// and nothing that is not provably a dead server's.
TEST(PrivateDirTest, RemoveStaleRemovesOnlyTheDirectoriesOfProcessesThatAreGone) {
  testing::TempDir base;
  auto live = PrivateDir::Create(base.path());
  ASSERT_THAT(live, IsOk());
  const auto self = ParseOwner(testing::ReadFileOrDie(live->path() / std::string(kPrivateDirOwnerFile)));
  testing::WriteFileOrDie(live->path() / "worker-1-1.sock", "x");
  const auto make = [&](const std::string& name, const std::optional<std::map<std::string, std::string>>& owner,
                        mode_t mode = 0700) {
    const auto dir = base.path() / name;
    std::filesystem::create_directory(dir);
    testing::WriteFileOrDie(dir / "worker-1-1.sock", "x");
    if (owner) testing::WriteFileOrDie(dir / std::string(kPrivateDirOwnerFile), OwnerText(*owner));
    ::chmod(dir.c_str(), mode);
    return dir;
  };
  auto with = [&](std::map<std::string, std::string> changes) {
    auto fields = self;
    for (auto& [k, v] : changes) fields[k] = v;
    return fields;
  };
  const auto gone = make("clams-gone01", with({{"pid", GonePid()}}));
  // Our pid, but a process started at another time: the pid was reused.
  const auto reused = make("clams-reuse1", with({{"start", std::to_string(std::stoull(self.at("start")) + 1)}}));
  // A running pid, but of an earlier boot.
  const auto earlier_boot = make("clams-boot01", with({{"boot", "00000000-0000-0000-0000-000000000000"}}));
  // Left alone:
  const auto other_ns = make("clams-pidns1", with({{"pid", GonePid()}, {"pidns", "1"}}));
  const auto no_owner = make("clams-noown1", std::nullopt);
  const auto open_mode = make("clams-mode01", with({{"pid", GonePid()}}), 0755);
  const auto other_prefix = make("other-gone01", with({{"pid", GonePid()}}));
  const auto other_length = make("clams-gone", with({{"pid", GonePid()}}));
  const auto target = make("target", with({{"pid", GonePid()}}));
  const auto link = base.path() / "clams-link01";
  std::filesystem::create_directory_symlink(target, link);

  EXPECT_EQ(RemoveStalePrivateDirs(base.path()), 3);
  EXPECT_FALSE(std::filesystem::exists(gone));
  EXPECT_FALSE(std::filesystem::exists(reused));
  EXPECT_FALSE(std::filesystem::exists(earlier_boot));
  for (const auto& kept : {live->path(), other_ns, no_owner, open_mode, other_prefix, other_length, target}) {
    EXPECT_TRUE(std::filesystem::exists(kept / "worker-1-1.sock")) << kept;
  }
  EXPECT_TRUE(std::filesystem::is_symlink(link));
  EXPECT_EQ(RemoveStalePrivateDirs(base.path()), 0);
  EXPECT_EQ(RemoveStalePrivateDirs(base.path() / "missing"), 0);
  ::chmod(open_mode.c_str(), 0700);  // for TempDir's removal
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
