// Running programs from tests: spawn with arguments and environment, read
// their output, signal and wait. Also a ServerProcess that starts an app
// binary on a free port and waits until it answers.
#ifndef CLAMS_TESTING_PROCESS_H_
#define CLAMS_TESTING_PROCESS_H_

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace clams::testing {

/// Result of running a program to completion.
struct RunResult {
  int exit_code = -1;  ///< -1 if killed by a signal
  int signal = 0;
  std::string out;
  std::string err;
};

/// Runs `argv` with `env` added to the environment, `input` on stdin.
RunResult RunProgram(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env = {},
                     const std::string& input = "", std::chrono::seconds timeout = std::chrono::seconds(120));

/// A child process running in the background; killed (SIGKILL) when the
/// object goes away unless it was waited for.
class Process {
 public:
  /// Starts `argv`; stdout and stderr go to `log_path` (appended).
  Process(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
          const std::filesystem::path& log_path);
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  bool Signal(int signo) const;
  /// Waits for the exit; nullopt on timeout. Returns the wait status.
  std::optional<int> Wait(std::chrono::milliseconds timeout);
  bool running();

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
};

/// The path of a built binary, relative to the build directory.
std::filesystem::path BuiltBinary(const std::string& relative);

/// An app server started on a free port (--port 0 --port-file), with its
/// log in a temp file. Fails the test if it does not come up.
class ServerProcess {
 public:
  /// `leading_args` come right after the binary (a subcommand such as
  /// "serve"), before the port flags and `args`.
  ServerProcess(const std::filesystem::path& binary, const std::vector<std::string>& args,
                const std::map<std::string, std::string>& env = {},
                std::chrono::seconds startup_timeout = std::chrono::seconds(30),
                const std::vector<std::string>& leading_args = {});
  ~ServerProcess();

  int port() const { return port_; }
  Process& process() { return *process_; }
  /// The server's log so far.
  std::string Log() const;
  const std::filesystem::path& dir() const { return dir_; }

 private:
  std::filesystem::path dir_;
  std::unique_ptr<Process> process_;
  int port_ = 0;
};

/// A process as /proc shows it: the pid and the start time (clock ticks
/// after boot), which tell it from a later process that reuses the pid.
struct ProcessId {
  pid_t pid = 0;
  unsigned long long start_time = 0;
};

/// The process `pid` now; nullopt if there is none or only its zombie.
std::optional<ProcessId> FindProcess(pid_t pid);
/// True while `p` runs: same pid and start time, not a zombie.
bool StillRunning(const ProcessId& p);
/// `root` and every process below it (by parent pid in /proc), root first;
/// empty if `root` is gone.
std::vector<ProcessId> ProcessTree(pid_t root);
/// "1234 (S) python3 app.py --port 4000", for messages.
std::string DescribeProcess(pid_t pid);
/// Those of `processes` that still run, one DescribeProcess line each; ""
/// when none does.
std::string StillRunningOf(const std::vector<ProcessId>& processes);
/// SIGKILLs those of `processes` that still run (a test's cleanup).
void KillStillRunning(const std::vector<ProcessId>& processes);

/// Polls `condition` every 20 ms until it is true or `timeout` passes.
bool WaitFor(const std::function<bool()>& condition, std::chrono::milliseconds timeout);

}  // namespace clams::testing

#endif  // CLAMS_TESTING_PROCESS_H_
