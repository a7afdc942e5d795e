// Production mode: N worker processes started by exec (never a bare fork of
// a process that may have touched CUDA), each serving up to `threads`
// requests at once (one connection per slot) on its own Unix socket
// (native workers, `{socket}` apps) or loopback port (`{port}` apps),
// pinned to one GPU with CUDA_VISIBLE_DEVICES. The supervisor inside:
//
//   spawn -> starting --(ready: pipe handshake or GET / answers)--> ready
//   ready --Dispatch--> a slot runs a request --answer--> slot free
//       (take_ahead, no GPU: a busy slot may also take one request ahead,
//       pipelined behind the one it runs; it starts when that is answered)
//   crash while running -> its requests fail (the signal named); respawn
//       (requests taken ahead never started: kNotSent, they wait again)
//   a request past --request-timeout -> SIGKILL, 504 for it (503 for the
//       others on that worker: the server killed it, retry); respawn
//   Recycle/retire (evict, drift, oom, max-requests, reload) -> stopping
//       once it runs nothing -> SIGTERM -> exit -> respawn at once
//   exit before it ever served -> crash loop: respawn with exponential
//       backoff; the count resets once a worker has served
//   exit before any worker was ever ready (a fatal exit code, or
//       give_up_after_failures in a row) -> on_give_up, no respawn
//
// Each worker runs under its own keeper (keeper.h), a small process the
// front starts by re-executing keeper_executable: the keeper starts the
// worker, reports its pid, forwards SIGTERM, kills the worker's whole
// process tree on the front's kill command, when the worker ends and when
// the front dies (even by SIGKILL), and exits as the worker did. The front
// waits for keepers; the pids it reports are the workers'; the sampler
// counts the GPU memory of the keeper's whole tree.
//
// External workers' stderr goes through a pipe: each line is logged and
// the last kStderrTailLines are kept for messages about the worker's end.
//
// Every change is reported as a WorkerEvent. Kills the server sends carry
// their KillCause into the ExecResults of the requests they end. Texts for
// clients never contain process ids (logs do). Loop thread only.
#ifndef CLAMS_SRC_SERVER_PROCESS_EXECUTOR_H_
#define CLAMS_SRC_SERVER_PROCESS_EXECUTOR_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "clams/gpu/probe.h"
#include "server/event_loop.h"
#include "server/executor.h"
#include "server/http_client.h"
#include "server/metrics.h"

namespace clams::server {

/// Lines of an external worker's stderr kept for the message about its end.
inline constexpr std::size_t kStderrTailLines = 20;
/// Longer stderr lines are cut (in the log and in the tail).
inline constexpr std::size_t kStderrLineMaxBytes = 4096;
/// The exit code of a command that could not be executed (shells and our
/// own child after a failed exec).
inline constexpr int kExitCommandNotFound = 127;

struct ProcessExecutorOptions {
  /// An executable that links clams::server, started as each worker's
  /// keeper (keeper.h). The default is this program itself, even if its
  /// file was replaced or deleted since it started.
  std::string keeper_executable = "/proc/self/exe";
  /// Native workers: the executable re-executed in worker role and its
  /// extra arguments (--clams-worker-socket and -fd are added).
  std::string executable;
  std::vector<std::string> worker_args;
  /// External workers: the command, with "{port}" or "{socket}" replaced
  /// per worker. Non-empty selects the external kind.
  std::vector<std::string> external_command;
  /// Device index of each worker (-1: no GPU); its size is the worker count.
  std::vector<int> worker_devices;
  /// Requests each worker runs at once.
  int threads = 1;
  /// Each slot of a worker without a GPU takes one request ahead, written
  /// behind the one it runs on the same connection (HTTP/1.1 pipelining), so
  /// the worker starts it as soon as it has written the answer before, not
  /// after a round trip through the front. Only for workers that read
  /// pipelined requests in order: native workers and the Python adapter.
  /// With a GPU nothing is taken ahead: memory is admitted only for work
  /// that runs.
  bool take_ahead = false;
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
  /// Giving up on a command that never worked. Until the first worker is
  /// ready, a worker that exits with kExitCommandNotFound or a code listed
  /// here (with what it means), or that fails `give_up_after_failures`
  /// times in a row (0: never), calls `on_give_up` with a message that
  /// names the exit and quotes the worker's last stderr lines; nothing is
  /// respawned after that. Without `on_give_up` workers are retried forever.
  std::map<int, std::string> give_up_exit_codes;
  int give_up_after_failures = 0;
  std::function<void(const std::string& message)> on_give_up;
};

class ProcessExecutor : public Executor {
 public:
  ProcessExecutor(EventLoop& loop, Metrics& metrics, ProcessExecutorOptions options);
  ~ProcessExecutor() override;

  std::string_view kind() const override { return options_.external_command.empty() ? "process" : "external"; }
  Status Start(EventSink on_event) override;
  void Dispatch(int worker_id, std::shared_ptr<ExecRequest> request, std::function<void(ExecResult)> done) override;
  void Recycle(int worker_id, KillCause cause) override;
  bool Kill(int worker_id, KillCause cause) override;
  void ReplaceAll() override;
  int Scale(int delta) override;
  void Shutdown(std::function<void()> done) override;

  /// Total replacements so far (all reasons).
  std::uint64_t restarts() const { return restarts_; }
  /// Adds workers on the given devices (after Start); they start at once.
  void AddWorkers(const std::vector<int>& devices);
  /// Where worker `worker_id` listens (empty endpoint if unknown).
  Endpoint WorkerEndpoint(int worker_id) const;
  /// Ids of workers that are ready.
  std::vector<int> ReadyWorkers() const;
  /// Arguments for workers started from now on (SIGHUP config reload: new
  /// log settings reach the workers the reload replaces).
  void SetWorkerArgs(std::vector<std::string> args) { options_.worker_args = std::move(args); }

 private:
  struct Worker;
  void Spawn(Worker& w);
  void ScheduleSpawn(Worker& w);
  void OnKeeperReport(int worker_id, std::uint64_t generation);
  void ReadKeeperReport(Worker& w);
  void SendKill(Worker& w);
  void OnReadyPipe(int worker_id, std::uint64_t generation);
  void OnStderr(int worker_id, std::uint64_t generation);
  void DrainStderr(Worker& w, bool worker_gone);
  void StderrLine(Worker& w, std::string_view line);
  bool GiveUp(Worker& w, int status);
  void PollExternalReady(int worker_id, std::uint64_t generation);
  void BecomeReady(Worker& w);
  void Reap();
  void OnExit(Worker& w, int status);
  void StartRequest(Worker& w, std::size_t slot, std::chrono::milliseconds timeout);
  void ArmRequestTimer(Worker& w, std::size_t slot);
  void OnResponse(int worker_id, std::uint64_t generation, std::size_t slot, StatusOr<HttpResponse> response);
  void Retire(Worker& w, KillCause cause);
  void Stop(Worker& w, KillCause cause);
  void KillNow(Worker& w, KillCause cause);
  void AdvanceReload();
  void Emit(const Worker& w, WorkerEvent::Kind kind, KillCause cause = KillCause::kNone, std::string how = "");
  Worker* Find(int worker_id);
  Endpoint EndpointOf(const Worker& w) const;
  std::uint64_t DrawMaxRequests();
  bool External() const { return !options_.external_command.empty(); }
  int Ahead(const Worker& w) const;

  EventLoop& loop_;
  Metrics& metrics_;
  ProcessExecutorOptions options_;
  EventSink on_event_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::uint64_t restarts_ = 0;
  int reloading_worker_ = 0;  // the worker SIGHUP is replacing now (0: none)
  bool shutting_down_ = false;
  bool ever_ready_ = false;  // some worker has been ready since Start
  bool gave_up_ = false;
  std::function<void()> shutdown_done_;
  std::mt19937_64 rng_;
};

/// "exited with code 3", "was killed by signal 11 (SIGSEGV)".
std::string DescribeExit(int wait_status);

/// Runs the worker role of a native app: serves AppRunner on a Unix socket,
/// up to `threads` requests at once, after telling the front it is ready on
/// `ready_fd`. Returns the process exit code.
int RunNativeWorker(AppRunner& runner, const std::string& socket_path, int ready_fd, int threads);

}  // namespace clams::server

#endif  // CLAMS_SRC_SERVER_PROCESS_EXECUTOR_H_
