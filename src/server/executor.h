// Executors run annotate requests on workers. The scheduler decides which
// request goes to which worker slot; an executor only runs it there and
// reports back. Two kinds (DESIGN.md §2):
//   InProcessExecutor (development): the App on a small thread pool.
//   ProcessExecutor   (production):  worker processes, supervised, each
//                                    running up to `threads` requests at once.
// Executors report every change of a worker as a WorkerEvent; the
// scheduler's WorkerRegistry is built from those events alone.
// All methods and callbacks run on the event loop thread.
#ifndef CLAMS_SRC_SERVER_EXECUTOR_H_
#define CLAMS_SRC_SERVER_EXECUTOR_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "clams/app/runner.h"
#include "clams/base/status.h"
#include "server/wire.h"

namespace clams::server {

/// Why the server stopped or killed a worker. kNone: the server did not
/// (the worker crashed, exited, or something outside killed it). A kill the
/// server sent is never evidence of running out of GPU memory.
enum class KillCause {
  kNone,
  kRequestTimeout,  ///< a request ran past --request-timeout
  kClientGone,      ///< its only running request's client went away
  kEvict,           ///< idle memory was needed for a waiting request
  kDrift,           ///< idle usage grew past its baseline
  kOom,             ///< it ran out of GPU memory (with evidence)
  kMaxRequests,     ///< --max-requests reached
  kReload,          ///< SIGHUP
  kShutdown,        ///< the server stops (drain finished or expired)
  kReadyTimeout,    ///< not ready within the startup timeout
  kLostConnection,  ///< the connection to it broke and it lingered
  kScaleDown,       ///< fewer workers were asked for (SIGTTOU)
};

/// "request_timeout", "client_gone", "evict", ... (metric label values).
std::string_view KillCauseName(KillCause cause);

/// Something that happened to a worker.
struct WorkerEvent {
  enum class Kind {
    kStarted,   ///< a process exists (pid known), not yet ready
    kReady,     ///< it takes requests
    kStopping,  ///< the server is stopping it (cause says why)
    kExited,    ///< its process is gone (cause: the server's reason, or kNone)
    kRemoved,   ///< the worker is gone for good (fewer workers were asked for)
  };
  Kind kind = Kind::kStarted;
  int worker_id = 0;
  /// The worker's process; 0 until known (a keeper reports it moments
  /// after kStarted; kReady always carries it) and if it never started.
  int pid = 0;
  /// The root of the worker's process tree, whose GPU memory is all the
  /// worker's (its keeper, to which orphans of the tree are re-parented);
  /// 0: `pid` is the root.
  int tree_pid = 0;
  int device = -1;                ///< device index, -1 when there are no GPUs
  int threads = 1;                ///< requests it may run at once
  int ahead = 0;                  ///< requests it takes beyond those, queued in it (started as one ends)
  bool include_children = false;  ///< count the whole tree under the root
  KillCause cause = KillCause::kNone;
  std::string how;  ///< kExited: "exited with code 3", "was killed by signal 9 (SIGKILL)"
};

/// One request to run.
struct ExecRequest {
  wire::Call call;
  std::chrono::milliseconds timeout{0};  ///< 0: none
};

/// How a run ended.
struct ExecResult {
  enum class Fate {
    kAnswered,    ///< the worker answered (any HTTP status)
    kWorkerDied,  ///< the worker process died during the request (see cause)
    kTimedOut,    ///< this request ran past --request-timeout; the worker was killed
    kLost,        ///< the connection to the worker failed for another reason
    kNotSent,     ///< the worker could not take it; nothing was sent (it may run elsewhere)
  };
  Fate fate = Fate::kAnswered;
  /// For the client: what happened, without process ids.
  std::string fate_text;
  /// For the log: with the worker's pid.
  std::string log_text;
  int signal = 0;  ///< kWorkerDied: the signal that ended the worker (0: it exited)
  /// kWorkerDied/kTimedOut: why the server killed the worker (kNone: it did not).
  KillCause cause = KillCause::kNone;
  /// kAnswered: the worker's answer.
  AnnotateOutcome answer;
};

class Executor {
 public:
  using EventSink = std::function<void(const WorkerEvent&)>;

  virtual ~Executor() = default;
  /// "in-process", "process" or "external".
  virtual std::string_view kind() const = 0;
  /// Starts the workers; every change is reported to `on_event`
  /// (synchronously, possibly from within other calls).
  virtual Status Start(EventSink on_event) = 0;
  /// Runs `request` on worker `worker_id`, which must be ready with a free
  /// slot (else kNotSent); `done` is called exactly once.
  virtual void Dispatch(int worker_id, std::shared_ptr<ExecRequest> request,
                        std::function<void(ExecResult)> done) = 0;
  /// Stops an idle worker gracefully and starts a replacement. Ignored for
  /// a worker that runs requests (and for in-process workers).
  virtual void Recycle(int worker_id, KillCause cause) = 0;
  /// Kills a worker now, even with requests running (they end with
  /// kWorkerDied carrying `cause`), and starts a replacement. False when it
  /// cannot (in-process workers are threads).
  virtual bool Kill(int worker_id, KillCause cause) = 0;
  /// Replaces every worker one by one without losing requests (SIGHUP).
  virtual void ReplaceAll() = 0;
  /// Adds (`delta` > 0, SIGTTIN) or removes (< 0, SIGTTOU) workers; a
  /// removed worker finishes its running requests first. Never below one
  /// worker. Returns the worker count asked for now (unchanged where the
  /// executor cannot scale: in-process workers are a fixed thread pool).
  virtual int Scale(int delta) = 0;
  /// Stops the workers (after the scheduler drained); `done` runs when they
  /// are gone.
  virtual void Shutdown(std::function<void()> done) = 0;
};

}  // namespace clams::server

#endif  // CLAMS_SRC_SERVER_EXECUTOR_H_
