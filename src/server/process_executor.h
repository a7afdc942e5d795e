// Production mode: N worker processes started by exec (never a bare fork of
// a process that may have touched CUDA), each serving one request at a time
// on its own Unix socket (native workers) or loopback port (external apps),
// pinned to one GPU with CUDA_VISIBLE_DEVICES. The supervisor inside:
//
//   spawn -> starting --(ready: pipe handshake or GET / answers)--> idle
//   idle --Dispatch--> busy --answer--> idle (or stopping at --max-requests)
//   busy --crash--> the request fails with the signal named; respawn
//   busy --request timeout--> SIGKILL, 504; respawn
//   idle --Recycle (evict, drift, oom, reload)--> stopping --exit--> respawn
//   exit while starting -> crash loop: respawn with exponential backoff
//
// Loop thread only.
#ifndef CLAMS_SRC_SERVER_PROCESS_EXECUTOR_H_
#define CLAMS_SRC_SERVER_PROCESS_EXECUTOR_H_

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "clams/gpu/probe.h"
#include "server/event_loop.h"
#include "server/executor.h"
#include "server/http_client.h"
#include "server/metrics.h"

namespace clams::server {

/// Internal response headers between a native worker and the front.
inline constexpr std::string_view kFailureHeader = "X-Clams-Failure";
inline constexpr std::string_view kNewViewsHeader = "X-Clams-New-Views";
inline constexpr std::string_view kHwFetchHeader = "X-Clams-Hw-Fetch";

struct ProcessExecutorOptions {
  /// Native workers: the executable re-executed in worker role and its
  /// extra arguments (--clams-worker-socket and -fd are added).
  std::string executable;
  std::vector<std::string> worker_args;
  /// External workers: the command, with "{port}" or "{socket}" replaced
  /// per worker. Non-empty selects the external kind.
  std::vector<std::string> external_command;
  /// Device index of each worker (-1: no GPU); its size is the worker count.
  std::vector<int> worker_devices;
  /// Devices, for pinning by UUID.
  std::vector<gpu::DeviceInfo> devices;
  std::uint64_t max_requests = 0;
  std::uint64_t max_requests_jitter = 0;
  std::filesystem::path socket_dir;
  /// A worker must be ready within this time or it is killed.
  std::chrono::milliseconds ready_timeout{120000};
  /// SIGTERM, then SIGKILL after this.
  std::chrono::milliseconds stop_timeout{10000};
  /// Crash-loop backoff: first delay, doubling up to the maximum.
  std::chrono::milliseconds backoff_initial{500};
  std::chrono::milliseconds backoff_max{30000};
  /// A worker that lived at least this long resets its failure count.
  std::chrono::milliseconds healthy_after{10000};
};

class ProcessExecutor : public Executor {
 public:
  ProcessExecutor(EventLoop& loop, Metrics& metrics, ProcessExecutorOptions options);
  ~ProcessExecutor() override;

  std::string_view kind() const override { return options_.external_command.empty() ? "process" : "external"; }
  Status Start(WorkersChanged on_change) override;
  std::vector<WorkerInfo> Workers() const override;
  void Dispatch(int worker_id, std::shared_ptr<ExecRequest> request, std::function<void(ExecResult)> done) override;
  void Recycle(int worker_id, std::string_view reason) override;
  void ReplaceAll() override;
  void Shutdown(std::function<void()> done) override;

  /// Total replacements so far (all reasons).
  std::uint64_t restarts() const { return restarts_; }
  /// Adds workers on the given devices (after Start); they start at once.
  void AddWorkers(const std::vector<int>& devices);
  /// Where worker `worker_id` listens (empty endpoint if unknown).
  Endpoint WorkerEndpoint(int worker_id) const;
  /// Arguments for workers started from now on (SIGHUP config reload: new
  /// log settings reach the workers the reload replaces).
  void SetWorkerArgs(std::vector<std::string> args) { options_.worker_args = std::move(args); }

 private:
  struct Slot;
  void Spawn(Slot& slot);
  void ScheduleSpawn(Slot& slot);
  void OnReadyPipe(int slot_id, std::uint64_t generation);
  void PollExternalReady(int slot_id, std::uint64_t generation);
  void BecomeReady(Slot& slot);
  void Reap();
  void OnExit(Slot& slot, int status);
  void OnResponse(int slot_id, std::uint64_t generation, StatusOr<HttpResponse> response);
  void Stop(Slot& slot, std::string_view reason, bool count_restart);
  void AdvanceReload();
  Slot* Find(int slot_id);
  Endpoint EndpointOf(const Slot& slot) const;
  std::uint64_t DrawMaxRequests();
  void Notify();

  EventLoop& loop_;
  Metrics& metrics_;
  ProcessExecutorOptions options_;
  WorkersChanged on_change_;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::uint64_t restarts_ = 0;
  int reloading_slot_ = 0;  // the slot SIGHUP is replacing now (0: none)
  bool shutting_down_ = false;
  std::function<void()> shutdown_done_;
  std::mt19937_64 rng_;
};

/// "exited with code 3", "was killed by signal 11 (SIGSEGV)".
std::string DescribeExit(int wait_status);

/// Runs the worker role of a native app: serves AppRunner on a Unix socket,
/// one request at a time, after telling the front it is ready on
/// `ready_fd`. Returns the process exit code.
int RunNativeWorker(AppRunner& runner, const std::string& socket_path, int ready_fd);

}  // namespace clams::server

#endif  // CLAMS_SRC_SERVER_PROCESS_EXECUTOR_H_
