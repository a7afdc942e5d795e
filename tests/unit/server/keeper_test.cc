// Tests of the keeper role (keeper.h). This test binary links clams::server,
// so started as `/proc/self/exe --clams-keeper FD -- CMD...` it is a keeper,
// exactly as the front starts one.
#include "server/keeper.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "testing/process.h"
#include "testing/testing.h"

namespace clams::server {
namespace {

using ::testing::HasSubstr;

// How long a keeper may take to do what a test waits for (a loaded machine).
constexpr auto kPatience = std::chrono::seconds(10);
// Where the keeper finds its channel (as for external workers).
constexpr int kChannelFd = 3;
// In the child before exec, descriptors are moved at or above this first.
constexpr int kScratchFd = 10;

// A keeper started by the test, with its channel and stderr.
class Keeper {
 public:
  explicit Keeper(const std::vector<std::string>& command, const std::string& argv0 = "test-keeper") {
    int channel[2];
    int err[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, channel) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
      ADD_FAILURE() << "socketpair or pipe failed";
      return;
    }
    std::vector<std::string> args = keeper::CommandLine(argv0, kChannelFd, command);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ == 0) {
      const int channel_end = ::fcntl(channel[1], F_DUPFD, kScratchFd);
      const int err_end = ::fcntl(err[1], F_DUPFD, kScratchFd);
      ::dup2(channel_end, kChannelFd);
      ::dup2(err_end, STDERR_FILENO);
      ::close_range(kChannelFd + 1, ~0U, 0);
      ::execv("/proc/self/exe", argv.data());
      ::_exit(127);
    }
    ::close(channel[1]);
    ::close(err[1]);
    channel_ = channel[0];
    err_ = err[0];
  }
  ~Keeper() {
    if (pid_ > 0 && !status_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    CloseChannel();
    if (err_ >= 0) ::close(err_);
  }
  Keeper(const Keeper&) = delete;
  Keeper& operator=(const Keeper&) = delete;

  pid_t pid() const { return pid_; }
  // The worker's pid, as the keeper reports it (0 if it does not).
  pid_t WorkerPid() {
    pollfd p{channel_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(std::chrono::milliseconds(kPatience).count())) != 1) return 0;
    std::int32_t pid = 0;
    return ::recv(channel_, &pid, sizeof(pid), 0) == static_cast<ssize_t>(sizeof(pid)) ? pid : 0;
  }
  void SendKill() { ASSERT_EQ(::send(channel_, &keeper::kKillCommand, 1, MSG_NOSIGNAL), 1); }
  // What the front's death looks like to the keeper.
  void CloseChannel() {
    if (channel_ >= 0) ::close(channel_);
    channel_ = -1;
  }
  // The keeper's wait status once it exited (nullopt if it did not in time).
  std::optional<int> Wait() {
    testing::WaitFor(
        [&] {
          int status = 0;
          if (::waitpid(pid_, &status, WNOHANG) == pid_) status_ = status;
          return status_.has_value();
        },
        kPatience);
    return status_;
  }
  // Everything the keeper (and its worker) wrote on stderr; after Wait().
  std::string Stderr() {
    std::string out;
    char buf[512];
    ssize_t n = 0;
    while ((n = ::read(err_, buf, sizeof(buf))) > 0) out.append(buf, static_cast<std::size_t>(n));
    return out;
  }

 private:
  pid_t pid_ = -1;
  int channel_ = -1;
  int err_ = -1;
  std::optional<int> status_;
};

pid_t ParentOf(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(in, line);
  const auto close = line.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream fields(line.substr(close + 2));
  char state = 0;
  pid_t parent = -1;
  fields >> state >> parent;
  return parent;
}

pid_t ReadPid(const std::filesystem::path& file) {
  std::ifstream in(file);
  pid_t pid = 0;
  in >> pid;
  return pid;
}

// A worker that leaves a child in its process group (pid in `dir`/child)
// and a daemon in a session of its own whose parent exits at once
// (`dir`/daemon), then runs until killed.
std::vector<std::string> WorkerWithATree(const std::filesystem::path& dir) {
  const std::string d = dir.string();
  return {"/bin/sh", "-c",
          "setsid -f /bin/sh -c 'echo $$ > " + d + "/daemon.tmp; mv " + d + "/daemon.tmp " + d +
              "/daemon; exec sleep 300' < /dev/null > /dev/null 2>&1; "
              "sleep 300 & echo $! > " + d + "/child.tmp; mv " + d + "/child.tmp " + d + "/child; "
              "exec sleep 300"};
}

// The processes of WorkerWithATree once both are there.
std::vector<testing::ProcessId> TreeOf(const std::filesystem::path& dir) {
  std::vector<testing::ProcessId> out;
  EXPECT_TRUE(testing::WaitFor(
      [&] { return std::filesystem::exists(dir / "daemon") && std::filesystem::exists(dir / "child"); }, kPatience));
  for (const char* name : {"daemon", "child"}) {
    auto p = testing::FindProcess(ReadPid(dir / name));
    EXPECT_TRUE(p.has_value()) << name;
    if (p) out.push_back(*p);
  }
  return out;
}

TEST(KeeperTest, ReportsItsWorkerWhichLeadsItsOwnProcessGroup) {
  Keeper k({"/bin/sleep", "300"});
  const pid_t worker = k.WorkerPid();
  ASSERT_GT(worker, 0);
  EXPECT_EQ(ParentOf(worker), k.pid());
  EXPECT_EQ(::getpgid(worker), worker);
  EXPECT_THAT(testing::DescribeProcess(k.pid()), HasSubstr(") test-keeper --clams-keeper 3 -- /bin/sleep 300"));
}

TEST(KeeperTest, ExitsWithItsWorkersExitCode) {
  Keeper k({"/bin/sh", "-c", "exit 3"});
  auto status = k.Wait();
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 3);
}

TEST(KeeperTest, DiesOfTheSignalThatKilledItsWorkerWithoutACore) {
  Keeper k({"/bin/sh", "-c", "kill -ABRT $$"});
  auto status = k.Wait();
  ASSERT_TRUE(status.has_value());
  ASSERT_TRUE(WIFSIGNALED(*status));
  EXPECT_EQ(WTERMSIG(*status), SIGABRT);
  EXPECT_FALSE(WCOREDUMP(*status));
}

TEST(KeeperTest, KillCommandKillsTheWorker) {
  Keeper k({"/bin/sleep", "300"});
  ASSERT_GT(k.WorkerPid(), 0);
  k.SendKill();
  auto status = k.Wait();
  ASSERT_TRUE(status.has_value());
  ASSERT_TRUE(WIFSIGNALED(*status));
  EXPECT_EQ(WTERMSIG(*status), SIGKILL);
}

TEST(KeeperTest, ForwardsSigtermToTheWorker) {
  testing::TempDir dir;
  const std::string ready = (dir.path() / "ready").string();
  Keeper k({"/bin/sh", "-c", "trap 'exit 7' TERM; touch " + ready + "; while :; do sleep 1; done"});
  ASSERT_TRUE(testing::WaitFor([&] { return std::filesystem::exists(ready); }, kPatience));
  ASSERT_EQ(::kill(k.pid(), SIGTERM), 0);
  auto status = k.Wait();
  ASSERT_TRUE(status.has_value());
  ASSERT_TRUE(WIFEXITED(*status)) << *status;
  EXPECT_EQ(WEXITSTATUS(*status), 7);
}

TEST(KeeperTest, AWorkerThatDiesTakesItsWholeTreeWithIt) {
  testing::TempDir dir;
  Keeper k(WorkerWithATree(dir.path()));
  const pid_t worker = k.WorkerPid();
  ASSERT_GT(worker, 0);
  const std::vector<testing::ProcessId> tree = TreeOf(dir.path());
  ASSERT_EQ(tree.size(), 2u);
  ASSERT_EQ(::kill(worker, SIGKILL), 0);
  auto status = k.Wait();
  ASSERT_TRUE(status.has_value());
  ASSERT_TRUE(WIFSIGNALED(*status));
  EXPECT_EQ(WTERMSIG(*status), SIGKILL);
  // The keeper exits only once it killed and reaped the rest.
  EXPECT_EQ(testing::StillRunningOf(tree), "");
  testing::KillStillRunning(tree);
}

TEST(KeeperTest, TheWholeTreeDiesWhenTheFrontIsGone) {
  testing::TempDir dir;
  Keeper k(WorkerWithATree(dir.path()));
  const pid_t worker = k.WorkerPid();
  ASSERT_GT(worker, 0);
  std::vector<testing::ProcessId> tree = TreeOf(dir.path());
  ASSERT_EQ(tree.size(), 2u);
  tree.push_back(*testing::FindProcess(worker));
  k.CloseChannel();
  auto status = k.Wait();
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << *status;
  EXPECT_EQ(testing::StillRunningOf(tree), "");
  testing::KillStillRunning(tree);
}

TEST(KeeperTest, TheFrontDiedSignalKillsTheWholeTreeToo) {
  testing::TempDir dir;
  Keeper k(WorkerWithATree(dir.path()));
  const pid_t worker = k.WorkerPid();
  ASSERT_GT(worker, 0);
  std::vector<testing::ProcessId> tree = TreeOf(dir.path());
  ASSERT_EQ(tree.size(), 2u);
  tree.push_back(*testing::FindProcess(worker));
  ASSERT_EQ(::kill(k.pid(), keeper::kFrontDiedSignal), 0);
  auto status = k.Wait();
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << *status;
  EXPECT_EQ(testing::StillRunningOf(tree), "");
  testing::KillStillRunning(tree);
}

TEST(KeeperTest, ACommandThatCannotBeExecutedExits127WithTheReason) {
  Keeper k({"/nonexistent/cmd", "--port", "1"}, "clams serve");
  auto status = k.Wait();
  ASSERT_TRUE(status.has_value());
  ASSERT_TRUE(WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 127);
  EXPECT_EQ(k.Stderr(), "clams serve: cannot execute /nonexistent/cmd: No such file or directory\n");
}

TEST(KeeperTest, AnUnreadableCommandLineExits2) {
  testing::RunResult r = testing::RunProgram({"/proc/self/exe", keeper::kArgument, "three", "--", "/bin/true"});
  EXPECT_EQ(r.exit_code, keeper::kExitUsage);
  EXPECT_EQ(r.err, "usage: clams-keeper --clams-keeper CHANNEL_FD -- CMD [ARGS...] (started by the front)\n");
}

}  // namespace
}  // namespace clams::server
