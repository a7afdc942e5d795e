#include "testing/process.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "testing/testing.h"

extern char** environ;

namespace clams::testing {
namespace {

// The GPU a test's program sees is the one the test names: simulated
// devices (CLAMS_SIM_GPUS), an NVML library (CLAMS_NVML_LIBRARY) or
// CUDA_VISIBLE_DEVICES. A test that names none gets no GPU at all, also on a
// machine that has one (CUDA_VISIBLE_DEVICES set and empty hides every
// device from NVML, CUDA and our probe), so that `make test` on a GPU
// workstation tests what it tests on CI.
bool NamesAGpu(const std::map<std::string, std::string>& extra) {
  return extra.count("CLAMS_SIM_GPUS") != 0 || extra.count("CLAMS_NVML_LIBRARY") != 0 ||
         extra.count("CUDA_VISIBLE_DEVICES") != 0;
}

std::vector<std::string> MergedEnv(const std::map<std::string, std::string>& extra_in) {
  std::map<std::string, std::string> extra = extra_in;
  if (!NamesAGpu(extra)) extra["CUDA_VISIBLE_DEVICES"] = "";
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string kv = *e;
    auto eq = kv.find('=');
    if (eq != std::string::npos && extra.count(kv.substr(0, eq)) != 0) continue;
    env.push_back(kv);
  }
  for (const auto& [k, v] : extra) env.push_back(k + "=" + v);
  return env;
}

std::vector<char*> CStrings(std::vector<std::string>& v) {
  std::vector<char*> out;
  for (auto& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

}  // namespace

RunResult RunProgram(const std::vector<std::string>& argv_in, const std::map<std::string, std::string>& env_in,
                     const std::string& input, std::chrono::seconds timeout) {
  RunResult result;
  std::vector<std::string> argv = argv_in;
  std::vector<std::string> env = MergedEnv(env_in);
  auto cargv = CStrings(argv);
  auto cenv = CStrings(env);
  int in_pipe[2], out_pipe[2], err_pipe[2];
  if (::pipe2(in_pipe, O_CLOEXEC) != 0 || ::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe failed";
    return result;
  }
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(in_pipe[0], 0);
    ::dup2(out_pipe[1], 1);
    ::dup2(err_pipe[1], 2);
    ::execve(cargv[0], cargv.data(), cenv.data());
    ::_exit(127);
  }
  ::close(in_pipe[0]);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  std::size_t written = 0;
  int in_fd = in_pipe[1];
  if (input.empty()) {
    ::close(in_fd);
    in_fd = -1;
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int out_fd = out_pipe[0], err_fd = err_pipe[0];
  char buf[65536];
  while (out_fd >= 0 || err_fd >= 0) {
    std::vector<pollfd> fds;
    if (out_fd >= 0) fds.push_back({out_fd, POLLIN, 0});
    if (err_fd >= 0) fds.push_back({err_fd, POLLIN, 0});
    if (in_fd >= 0) fds.push_back({in_fd, POLLOUT, 0});
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      ::kill(pid, SIGKILL);
      ADD_FAILURE() << "timed out running " << argv[0];
      break;
    }
    ::poll(fds.data(), fds.size(), static_cast<int>(left.count()));
    for (auto& p : fds) {
      if (p.revents == 0) continue;
      if (p.fd == in_fd) {
        ssize_t n = ::write(in_fd, input.data() + written, input.size() - written);
        if (n > 0) written += static_cast<std::size_t>(n);
        if (n < 0 || written == input.size()) {
          ::close(in_fd);
          in_fd = -1;
        }
        continue;
      }
      ssize_t n = ::read(p.fd, buf, sizeof(buf));
      if (n <= 0) {
        ::close(p.fd);
        if (p.fd == out_fd) out_fd = -1;
        if (p.fd == err_fd) err_fd = -1;
      } else {
        (p.fd == out_fd ? result.out : result.err).append(buf, static_cast<std::size_t>(n));
      }
    }
  }
  if (in_fd >= 0) ::close(in_fd);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) result.signal = WTERMSIG(status);
  return result;
}

Process::Process(const std::vector<std::string>& argv_in, const std::map<std::string, std::string>& env_in,
                 const std::filesystem::path& log_path) {
  std::vector<std::string> argv = argv_in;
  std::vector<std::string> env = MergedEnv(env_in);
  auto cargv = CStrings(argv);
  auto cenv = CStrings(env);
  int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  pid_ = ::fork();
  if (pid_ == 0) {
    int devnull = ::open("/dev/null", O_RDONLY);
    ::dup2(devnull, 0);
    ::dup2(log_fd, 1);
    ::dup2(log_fd, 2);
    ::execve(cargv[0], cargv.data(), cenv.data());
    ::_exit(127);
  }
  ::close(log_fd);
}

Process::~Process() {
  if (pid_ > 0 && !reaped_) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
}

bool Process::Signal(int signo) const { return pid_ > 0 && ::kill(pid_, signo) == 0; }

bool Process::running() {
  if (reaped_) return false;
  int status = 0;
  pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    reaped_ = true;
    return false;
  }
  return true;
}

std::optional<int> Process::Wait(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      reaped_ = true;
      return status;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return std::nullopt;
}

std::filesystem::path BuiltBinary(const std::string& relative) { return BinaryDir() / relative; }

namespace {

// Fields of /proc/PID/stat after the command name: state, parent pid and
// start time. False if the process is gone.
struct Stat {
  char state = '?';
  pid_t parent = 0;
  unsigned long long start_time = 0;
};

std::optional<Stat> ReadStat(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return std::nullopt;
  // The command name may hold spaces and ')': the last ')' ends it.
  const auto close = line.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream fields(line.substr(close + 1));
  Stat st;
  fields >> st.state >> st.parent;
  // Fields 5 to 21 (pgrp ... itrealvalue), then 22: starttime.
  std::string skip;
  for (int i = 5; i <= 21; ++i) fields >> skip;
  fields >> st.start_time;
  if (!fields) return std::nullopt;
  return st;
}

}  // namespace

std::optional<ProcessId> FindProcess(pid_t pid) {
  auto st = ReadStat(pid);
  if (!st || st->state == 'Z' || st->state == 'X') return std::nullopt;
  return ProcessId{pid, st->start_time};
}

bool StillRunning(const ProcessId& p) {
  auto now = FindProcess(p.pid);
  return now && now->start_time == p.start_time;
}

std::vector<ProcessId> ProcessTree(pid_t root) {
  std::vector<ProcessId> tree;
  auto top = FindProcess(root);
  if (!top) return tree;
  tree.push_back(*top);
  std::vector<std::pair<ProcessId, pid_t>> all;  // (process, parent)
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    const pid_t pid = static_cast<pid_t>(std::stol(name));
    auto st = ReadStat(pid);
    if (st && st->state != 'Z' && st->state != 'X') all.push_back({ProcessId{pid, st->start_time}, st->parent});
  }
  for (std::size_t i = 0; i < tree.size(); ++i) {
    for (const auto& [p, parent] : all) {
      if (parent == tree[i].pid) tree.push_back(p);
    }
  }
  return tree;
}

std::string DescribeProcess(pid_t pid) {
  std::string out = std::to_string(pid);
  if (auto st = ReadStat(pid)) out += std::string(" (") + st->state + ")";
  std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline");
  std::string arg;
  while (std::getline(in, arg, '\0')) out += " " + arg;
  return out;
}

std::string StillRunningOf(const std::vector<ProcessId>& processes) {
  std::string out;
  for (const ProcessId& p : processes) {
    if (StillRunning(p)) out += DescribeProcess(p.pid) + "\n";
  }
  return out;
}

void KillStillRunning(const std::vector<ProcessId>& processes) {
  for (const ProcessId& p : processes) {
    if (StillRunning(p)) ::kill(p.pid, SIGKILL);
  }
}

bool WaitFor(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return condition();
}

ServerProcess::ServerProcess(const std::filesystem::path& binary, const std::vector<std::string>& args,
                             const std::map<std::string, std::string>& env, std::chrono::seconds startup_timeout,
                             const std::vector<std::string>& leading_args) {
  std::random_device rd;
  dir_ = std::filesystem::temp_directory_path() /
         ("clams-server-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
  std::filesystem::create_directories(dir_);
  std::vector<std::string> argv = {binary.string()};
  argv.insert(argv.end(), leading_args.begin(), leading_args.end());
  for (const std::string& a : {std::string("--port"), std::string("0"), std::string("--port-file"),
                               (dir_ / "port").string(), std::string("--host"), std::string("127.0.0.1")}) {
    argv.push_back(a);
  }
  argv.insert(argv.end(), args.begin(), args.end());
  process_ = std::make_unique<Process>(argv, env, dir_ / "server.log");
  const bool up = WaitFor(
      [&] {
        std::ifstream in(dir_ / "port");
        int p = 0;
        if (in >> p && p > 0) {
          port_ = p;
          return true;
        }
        return !process_->running();
      },
      startup_timeout);
  if (!up || port_ == 0) ADD_FAILURE() << "server did not start: " << binary << "\n" << Log();
}

ServerProcess::~ServerProcess() {
  process_.reset();
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

std::string ServerProcess::Log() const {
  std::ifstream in(dir_ / "server.log");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace clams::testing
