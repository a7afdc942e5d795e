#include "server/keeper.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

// The keeper uses the C library only: it runs before main() and before the
// static initialisers of everything else in the program (logging included),
// so nothing here may depend on them.

namespace clams::server::keeper {
namespace {

// What the keeper calls itself in `ps -e`, `top` (15 bytes at most).
constexpr char kProcessName[] = "clams-keeper";
// /proc/PID/stat is read into this (the fields up to the parent pid fit
// easily: the command name is at most 16 bytes).
constexpr std::size_t kStatBytes = 512;
constexpr int kMillisPerSecond = 1000;
constexpr long kNanosPerMilli = 1000000;

void WriteAll(int fd, const char* text) {
  std::size_t left = std::strlen(text);
  while (left > 0) {
    const ssize_t n = ::write(fd, text, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    text += n;
    left -= static_cast<std::size_t>(n);
  }
}

std::int64_t NowMillis() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * kMillisPerSecond + ts.tv_nsec / kNanosPerMilli;
}

// The parent pid of `pid` from /proc/PID/stat ("pid (comm) state ppid ..."),
// -1 if it is gone.
pid_t ParentOf(const char* pid_text) {
  char path[64];
  const int len = std::snprintf(path, sizeof(path), "/proc/%s/stat", pid_text);
  if (len < 0 || static_cast<std::size_t>(len) >= sizeof(path)) return -1;
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  char buf[kStatBytes];
  const ssize_t n = ::read(fd, buf, sizeof(buf) - 1);
  ::close(fd);
  if (n <= 0) return -1;
  buf[n] = '\0';
  // The command name may hold spaces and ')': the last ')' ends it.
  const char* close = std::strrchr(buf, ')');
  if (close == nullptr || close[1] == '\0' || close[2] == '\0') return -1;
  const char* state_end = std::strchr(close + 2, ' ');
  if (state_end == nullptr) return -1;
  return static_cast<pid_t>(std::strtol(state_end + 1, nullptr, 10));
}

// SIGKILLs every descendant of this process, found by walking /proc (an
// orphan re-parented to this subreaper is a child like any other).
void KillDescendants() {
  const pid_t self = ::getpid();
  std::vector<std::pair<pid_t, pid_t>> procs;  // (pid, parent)
  if (DIR* dir = ::opendir("/proc")) {
    while (const dirent* e = ::readdir(dir)) {
      if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
      const pid_t parent = ParentOf(e->d_name);
      if (parent > 0) procs.emplace_back(static_cast<pid_t>(std::strtol(e->d_name, nullptr, 10)), parent);
    }
    ::closedir(dir);
  }
  std::vector<pid_t> tree = {self};
  for (std::size_t i = 0; i < tree.size(); ++i) {
    for (const auto& [pid, parent] : procs) {
      if (parent == tree[i]) tree.push_back(pid);
    }
  }
  for (std::size_t i = 1; i < tree.size(); ++i) ::kill(tree[i], SIGKILL);
}

// Reads every pending signal from `sfd`; returns true if one of them is
// kFrontDiedSignal.
bool DrainSignals(int sfd) {
  bool front_died = false;
  signalfd_siginfo si{};
  while (::read(sfd, &si, sizeof(si)) == static_cast<ssize_t>(sizeof(si))) {
    if (static_cast<int>(si.ssi_signo) == kFrontDiedSignal) front_died = true;
  }
  return front_died;
}

// Kills every descendant (the worker's process group first), reaps them,
// and repeats until none is left or kSweepLimit passes. Records the worker's
// status if it is reaped here.
void Sweep(pid_t worker, int sfd, int* worker_status, bool* worker_done) {
  const std::int64_t deadline = NowMillis() + kSweepLimit.count();
  for (;;) {
    // The group at once while the worker is not reaped (its pid, the group's
    // id, cannot be reused before); every descendant, members included, by
    // /proc.
    if (!*worker_done) ::kill(-worker, SIGKILL);
    KillDescendants();
    int status = 0;
    pid_t pid = 0;
    while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
      if (pid == worker && !*worker_done) {
        *worker_status = status;
        *worker_done = true;
      }
    }
    if (pid < 0 && errno == ECHILD) return;  // nothing left
    if (NowMillis() >= deadline) return;
    pollfd p{sfd, POLLIN, 0};
    ::poll(&p, 1, static_cast<int>(kSweepPoll.count()));
    DrainSignals(sfd);
  }
}

// Ends this process the way the worker ended.
[[noreturn]] void ExitAs(int status) {
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    // The worker's core dump (if any) is its own; the keeper writes none.
    rlimit no_core{0, 0};
    ::setrlimit(RLIMIT_CORE, &no_core);
    ::signal(sig, SIG_DFL);
    sigset_t only;
    sigemptyset(&only);
    sigaddset(&only, sig);
    ::sigprocmask(SIG_UNBLOCK, &only, nullptr);
    ::kill(::getpid(), sig);
    ::_exit(128 + sig);  // a signal whose default is not to end a process
  }
  ::_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 1);
}

// Closes every descriptor from 3 up except `keep_a` and `keep_b`.
void CloseAllBut(int keep_a, int keep_b) {
  const int low = keep_a < keep_b ? keep_a : keep_b;
  const int high = keep_a < keep_b ? keep_b : keep_a;
  if (low > 3) ::close_range(3, static_cast<unsigned>(low - 1), 0);
  if (high > low + 1) ::close_range(static_cast<unsigned>(low + 1), static_cast<unsigned>(high - 1), 0);
  ::close_range(static_cast<unsigned>(high + 1), ~0U, 0);
}

// The keeper role starts here, before main(): a process started as a keeper
// never runs the program's own code. glibc passes argc and argv to
// constructors; priority 101 runs before the program's default-priority
// static initialisers.
__attribute__((constructor(101))) void DispatchKeeper(int argc, char** argv, char** /*envp*/) {
  if (argc > 1 && argv != nullptr && argv[1] != nullptr && std::strcmp(argv[1], kArgument) == 0) Run(argc, argv);
}

}  // namespace

std::vector<std::string> CommandLine(const std::string& argv0, int channel_fd,
                                     const std::vector<std::string>& command) {
  std::vector<std::string> args = {argv0, kArgument, std::to_string(channel_fd), "--"};
  args.insert(args.end(), command.begin(), command.end());
  return args;
}

void Run(int argc, char** argv) {
  // argv: ARGV0 --clams-keeper FD -- CMD ARGS...
  char* end = nullptr;
  const long channel_arg = argc > 2 ? std::strtol(argv[2], &end, 10) : -1;
  if (argc < 5 || end == nullptr || *end != '\0' || channel_arg < 3 || channel_arg > INT32_MAX ||
      std::strcmp(argv[3], "--") != 0) {
    WriteAll(STDERR_FILENO, "usage: clams-keeper --clams-keeper CHANNEL_FD -- CMD [ARGS...] (started by the front)\n");
    ::_exit(kExitUsage);
  }
  const int channel = static_cast<int>(channel_arg);
  char** command = argv + 4;
  ::fcntl(channel, F_SETFD, FD_CLOEXEC);
  ::prctl(PR_SET_NAME, kProcessName);
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  // A write to a front that is gone must not end the keeper before it swept.
  ::signal(SIGPIPE, SIG_IGN);
  sigset_t handled;
  sigemptyset(&handled);
  for (int sig : {SIGCHLD, SIGTERM, SIGINT, SIGHUP, kFrontDiedSignal}) sigaddset(&handled, sig);
  ::sigprocmask(SIG_BLOCK, &handled, nullptr);
  const int sfd = ::signalfd(-1, &handled, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) {
    WriteAll(STDERR_FILENO, "clams-keeper: signalfd failed\n");
    ::_exit(1);
  }

  const pid_t keeper = ::getpid();
  const pid_t worker = ::fork();
  if (worker == 0) {
    // The worker: its own process group (the front signals it as a whole),
    // dies with the keeper, default signal handling.
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != keeper) ::_exit(1);
    ::signal(SIGPIPE, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execvp(command[0], command);
    const int err = errno;
    const char* why = ::strerrordesc_np(err);
    WriteAll(STDERR_FILENO, argv[0]);
    WriteAll(STDERR_FILENO, ": cannot execute ");
    WriteAll(STDERR_FILENO, command[0]);
    WriteAll(STDERR_FILENO, ": ");
    WriteAll(STDERR_FILENO, why != nullptr ? why : "unknown error");
    WriteAll(STDERR_FILENO, "\n");
    ::_exit(127);
  }
  if (worker < 0) {
    WriteAll(STDERR_FILENO, "clams-keeper: cannot start the worker: fork failed\n");
    ::_exit(1);
  }
  ::setpgid(worker, worker);  // also here: no signal may find it in ours
  // Descriptors meant for the worker (the ready pipe) are its alone now.
  CloseAllBut(channel, sfd);
  const std::int32_t report = worker;
  (void)::send(channel, &report, sizeof(report), MSG_NOSIGNAL);

  int worker_status = 0;
  bool worker_done = false;
  bool front_gone = false;
  while (!worker_done && !front_gone) {
    pollfd fds[2] = {{sfd, POLLIN, 0}, {channel, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) continue;  // EINTR
    if (fds[1].revents != 0) {
      char command_byte = 0;
      const ssize_t n = ::recv(channel, &command_byte, 1, MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        front_gone = true;
      } else if (n == 1 && command_byte == kKillCommand) {
        ::kill(-worker, SIGKILL);
        ::kill(worker, SIGKILL);
      }
    }
    if (fds[0].revents == 0) continue;
    signalfd_siginfo si{};
    while (::read(sfd, &si, sizeof(si)) == static_cast<ssize_t>(sizeof(si))) {
      const int sig = static_cast<int>(si.ssi_signo);
      if (sig == SIGCHLD) {
        int status = 0;
        pid_t pid = 0;
        while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
          if (pid == worker) {
            worker_status = status;
            worker_done = true;
          }
        }
      } else if (sig == kFrontDiedSignal) {
        front_gone = true;
      } else if (!worker_done && ::kill(-worker, sig) != 0) {
        ::kill(worker, sig);  // SIGTERM, SIGINT, SIGHUP
      }
    }
  }
  Sweep(worker, sfd, &worker_status, &worker_done);
  if (front_gone) ::_exit(0);  // nobody waits for this status
  ExitAs(worker_status);
}

}  // namespace clams::server::keeper
