// Executors run annotate requests on workers. The scheduler decides which
// request goes to which idle worker; an executor only runs it there and
// reports back. Two kinds (DESIGN.md §2):
//   InProcessExecutor (development): the App on a small thread pool.
//   ProcessExecutor   (production):  worker processes, supervised, one
//                                    request at a time each.
// All methods and callbacks run on the event loop thread.
#ifndef CLAMS_SRC_SERVER_EXECUTOR_H_
#define CLAMS_SRC_SERVER_EXECUTOR_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "clams/app/runner.h"
#include "clams/base/status.h"
#include "clams/vram/admission.h"
#include "server/http.h"

namespace clams::server {

/// What the scheduler knows about one worker.
struct WorkerInfo {
  int id = 0;
  int pid = 0;
  int device = -1;  ///< device index, -1 when there are no GPUs
  vram::WorkerState state = vram::WorkerState::kStarting;
  std::uint64_t requests = 0;      ///< requests served by this worker process
  std::uint64_t max_requests = 0;  ///< recycle after this many (0: never)
  std::chrono::steady_clock::time_point started;
  std::chrono::steady_clock::time_point last_used;
  bool include_children = false;   ///< count the whole process tree (external apps)
};

/// One request to run.
struct ExecRequest {
  std::string target;  ///< path and query forwarded to a worker process
  std::string body;
  RawParams query;     ///< parsed query (in-process)
  std::chrono::milliseconds timeout{0};  ///< 0: none
};

/// How a run ended.
struct ExecResult {
  enum class Fate {
    kAnswered,     ///< the worker answered (any HTTP status)
    kWorkerDied,   ///< the worker process died during the request
    kTimedOut,     ///< --request-timeout expired; the worker was killed
    kLost,         ///< the connection to the worker failed for another reason
    kNotSent,      ///< the worker could not take it; nothing was sent (the request may run elsewhere)
  };
  Fate fate = Fate::kAnswered;
  std::string fate_text;  ///< e.g. "worker 1234 was killed by signal 9 (SIGKILL)"
  int signal = 0;         ///< kWorkerDied: the signal that ended the worker (0: it exited)
  /// kAnswered: the worker's answer, as the app runner produced it.
  AnnotateOutcome answer;
};

class Executor {
 public:
  /// Told when workers change (one became ready, one went away).
  using WorkersChanged = std::function<void()>;

  virtual ~Executor() = default;
  /// "in-process", "process" or "external".
  virtual std::string_view kind() const = 0;
  virtual Status Start(WorkersChanged on_change) = 0;
  virtual std::vector<WorkerInfo> Workers() const = 0;
  /// Runs `request` on idle worker `worker_id`; `done` is called once.
  virtual void Dispatch(int worker_id, std::shared_ptr<ExecRequest> request,
                        std::function<void(ExecResult)> done) = 0;
  /// Replaces an idle worker (eviction, drift, max-requests). No-op for
  /// in-process workers.
  virtual void Recycle(int worker_id, std::string_view reason) = 0;
  /// Replaces every worker one by one without losing requests (SIGHUP).
  virtual void ReplaceAll() = 0;
  /// Stops the workers (after the scheduler drained); `done` runs when they
  /// are gone.
  virtual void Shutdown(std::function<void()> done) = 0;
};

}  // namespace clams::server

#endif  // CLAMS_SRC_SERVER_EXECUTOR_H_
