// The scheduler of the front: the one place where annotate requests go
// from intake to their answer. It wires the stages, each in its own file:
//
//   intake.h       one decoding of query and envelope, refine, class, estimate
//   wait_queue.h   arrival order, deadlines, cancellation, count/byte bounds
//   (here)         dispatch: applies vram::Decide; each grant is a move-only
//                  vram::Reservation in the vram::Ledger, released exactly once
//   outcome.h      learning from evidence: profiles, OOM floors, drift
//   decorate.h     hwFetch / runningTime in the answer
//   observe.h      runtime JSON, /status.json, gauges, recent events
//   answers.h      the one Status -> HTTP mapping and front-built answers
//   worker_registry.h  the workers, built from executor events only
//
// Life of a request: Submit() (draining? queue room? intake; 422) ->
// queued with a deadline -> Pump() admits it onto a worker slot ->
// the executor runs it -> OnDone() learns, decorates, answers -> Pump().
// Loop thread only.
#ifndef CLAMS_SRC_SERVER_SCHEDULER_H_
#define CLAMS_SRC_SERVER_SCHEDULER_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "clams/app/runner.h"
#include "clams/gpu/probe.h"
#include "clams/vram/vram.h"
#include "server/event_loop.h"
#include "server/executor.h"
#include "server/http.h"
#include "server/intake.h"
#include "server/job.h"
#include "server/metrics.h"
#include "server/observe.h"
#include "server/outcome.h"
#include "server/wait_queue.h"
#include "server/worker_registry.h"

namespace clams::server {

struct SchedulerOptions {
  std::chrono::milliseconds queue_timeout{300000};
  std::size_t max_queue = 100;
  /// Bodies waiting in the queue, in bytes (0: no bound).
  std::uint64_t max_queued_bytes = 1ull << 30;
  std::chrono::milliseconds request_timeout{0};
  /// A running request whose client went away is cancelled after this.
  std::chrono::milliseconds client_gone_grace{5000};
  vram::AdmissionOptions admission;
  vram::EstimateOptions estimates;
  /// Idle usage growth past a worker's baseline that counts as drift:
  /// max(drift_min_bytes, drift_fraction x baseline).
  std::uint64_t drift_min_bytes = 256ull << 20;
  double drift_fraction = 0.1;
  /// How often a waiting head is re-checked against fresh samples.
  std::chrono::milliseconds recheck_interval{50};
  /// How often changed profiles are written.
  std::chrono::milliseconds profile_flush_interval{10000};
  /// External apps (`clams serve`).
  bool external = false;
  /// Universal parameters the external app does not declare: not forwarded;
  /// the front records them itself (runningTime, hwFetch).
  std::vector<std::string> front_only_parameters;
  /// The parameters that shape memory (class key); empty: all.
  std::vector<std::string> class_params;
  /// GET /?includeVRAM=true shows pids, the profile directory and every
  /// class's parameters (else only what a client needs).
  bool expose_runtime = false;
};

/// Everything the answer to one annotate request needs.
struct AnnotateCall {
  HttpRequest request;
  RawParams query;
  std::string request_id;
  std::function<void(HttpResponse)> respond;
  std::shared_ptr<CancelSignal> cancel;
};

class Scheduler {
 public:
  /// `sampler` and `profiles` may be null (no GPUs; no persistence).
  /// `loop`: the event loop in the server (a manual clock in tests).
  Scheduler(Timers& loop, AppRunner& runner, Executor& executor, vram::Sampler* sampler,
            vram::ProfileStore* profiles, Metrics& metrics, SchedulerOptions options);
  ~Scheduler();

  /// The executor's event sink: keeps the registry current, then pumps.
  void OnWorkerEvent(const WorkerEvent& event);
  /// Takes an annotate request (POST/PUT /).
  void Submit(AnnotateCall call);
  /// Admits and dispatches what can run now.
  void Pump();

  /// True when the server can take work: not draining, a worker is up, the
  /// queue has room, and the smallest known request class can be admitted
  /// soon.
  bool Ready(std::string* why) const;
  /// The `runtime` object of GET /?includeVRAM=true (`full`: with pids,
  /// profile directory and class parameters).
  json::object Runtime(bool full) const;
  /// GET /status.json.
  json::object StatusJson() const;
  /// Sets the gauges before a /metrics scrape.
  void UpdateGauges();

  /// SIGTERM: refuse new requests (503), let queued and running ones finish
  /// (at most `grace`), then call `done`.
  void Drain(std::chrono::milliseconds grace, std::function<void()> done);
  bool draining() const { return draining_; }
  /// Writes changed profiles now (also done periodically and at drain).
  void FlushProfiles();

  const SchedulerOptions& options() const { return options_; }

  /// SIGHUP config reload: new limits. max-queue applies to the next arrival,
  /// the queue timeout to requests queued from now on, the request timeout
  /// to requests dispatched from now on.
  void SetLimits(std::size_t max_queue, std::chrono::milliseconds queue_timeout,
                 std::chrono::milliseconds request_timeout) {
    options_.max_queue = max_queue;
    options_.queue_timeout = queue_timeout;
    options_.request_timeout = request_timeout;
  }

 private:
  bool HasGpus() const { return has_gpus_; }
  std::vector<vram::DeviceView> Devices() const;
  std::optional<gpu::DeviceInfo> DeviceInfoFor(int index) const;
  Job* FindJob(std::uint64_t id);
  void Answer(Job& job, HttpResponse response);
  void Refuse(Job& job, RequestFailure failure);
  void PumpOnce();
  void Start(Job& job, const vram::Decision::Dispatch& d, const std::vector<vram::DeviceView>& devices);
  void OnDone(std::uint64_t job_id, ExecResult result);
  HttpResponse AnswerFor(Job& job, ExecResult& result, const std::optional<vram::Sampler::Window>& window,
                         const std::optional<gpu::DeviceInfo>& device);
  void OnDeadline(std::uint64_t job_id);
  void OnCancel(std::uint64_t job_id);
  void OnClientGoneGrace(std::uint64_t job_id);
  void MaybeCancelGoneWork(int worker_id);
  void Finish(std::uint64_t job_id);
  void RefreshQueued(const std::string& class_key);
  void ScheduleRecheck();
  void ScheduleFlush();
  void MaybeFinishDrain();
  int RetryAfter(std::size_t ahead) const;
  std::string WaitedFor(const Job& job) const;
  std::string ForRequest(const Job& job, std::string message) const;
  ObserveInputs Inputs() const;

  Timers& loop_;
  AppRunner& runner_;
  Executor& executor_;
  vram::Sampler* sampler_;
  vram::ProfileStore* profiles_;
  Metrics& metrics_;
  SchedulerOptions options_;
  Intake intake_;
  WaitQueue queue_;
  OutcomeLearner learner_;
  WorkerRegistry registry_;
  vram::Ledger ledger_;
  EventLog events_;

  std::uint64_t next_id_ = 1;
  std::map<std::uint64_t, std::unique_ptr<Job>> jobs_;
  bool recheck_scheduled_ = false;
  bool has_gpus_ = false;  // devices do not come and go while serving
  bool pumping_ = false;
  bool pump_again_ = false;
  bool draining_ = false;
  std::function<void()> drain_done_;
  Timers::TimerId drain_timer_ = 0;
  Timers::TimerId flush_timer_ = 0;
};

}  // namespace clams::server

#endif  // CLAMS_SRC_SERVER_SCHEDULER_H_
