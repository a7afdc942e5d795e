// The scheduler of the front: the one place where annotate requests wait,
// are admitted against GPU memory (clams::vram::Decide), are dispatched to
// workers, and are answered. It also feeds measured peaks back into the
// profiles and recycles workers whose memory drifted or that ran out of
// memory. Loop thread only.
//
// Life of a request: Submit() (checks: draining, impossible, queue full) ->
// queued with a deadline -> Pump() admits it onto a worker -> the executor
// runs it -> OnDone() measures, records, answers -> Pump() again.
#ifndef CLAMS_SRC_SERVER_SCHEDULER_H_
#define CLAMS_SRC_SERVER_SCHEDULER_H_

#include <chrono>
#include <cstdint>
#include <deque>
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
#include "server/metrics.h"

namespace clams::server {

struct SchedulerOptions {
  std::chrono::milliseconds queue_timeout{300000};
  std::size_t max_queue = 100;
  std::chrono::milliseconds request_timeout{0};
  vram::AdmissionOptions admission;
  vram::EstimateOptions estimates;
  /// Idle usage growth past a worker's baseline that counts as drift:
  /// max(drift_min_bytes, drift_fraction x baseline).
  std::uint64_t drift_min_bytes = 256ull << 20;
  double drift_fraction = 0.1;
  /// How often a waiting head is re-checked against fresh samples.
  std::chrono::milliseconds recheck_interval{50};
  /// External apps (`clams serve`): requests whose parameters or envelope
  /// the front cannot read are still forwarded, so the app gives its own
  /// answer; new views are found by comparing with the input.
  bool external = false;
  /// Universal parameters the external app does not declare: not forwarded;
  /// the front records them itself (runningTime, hwFetch).
  std::vector<std::string> front_only_parameters;
};

/// Everything the answer to one annotate request needs.
struct AnnotateCall {
  HttpRequest request;
  RawParams query;
  std::function<void(HttpResponse)> respond;
  std::shared_ptr<CancelSignal> cancel;
};

class Scheduler {
 public:
  /// `sampler` and `profiles` may be null (no GPUs; no persistence).
  Scheduler(EventLoop& loop, AppRunner& runner, Executor& executor, vram::Sampler* sampler,
            vram::ProfileStore* profiles, Metrics& metrics, SchedulerOptions options);
  ~Scheduler();

  /// Takes an annotate request (POST/PUT /).
  void Submit(AnnotateCall call);
  /// Admits and dispatches what can run now.
  void Pump();

  /// True when the server can take work: not draining, a worker is up, and
  /// the smallest known request class can be admitted soon.
  bool Ready(std::string* why) const;
  /// The `runtime` object of GET /?includeVRAM=true.
  json::object Runtime() const;
  /// Sets the gauges before a /metrics scrape.
  void UpdateGauges();

  /// SIGTERM: refuse new requests (503), let queued and running ones finish
  /// (at most `grace`), then call `done`.
  void Drain(std::chrono::milliseconds grace, std::function<void()> done);
  bool draining() const { return draining_; }

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
  struct Job;
  struct Running;

  void PumpOnce();
  bool HasGpus() const;
  std::vector<vram::DeviceView> Devices() const;
  const gpu::DeviceInfo* DeviceInfoFor(int index) const;
  void Reject(Job& job, int status, std::string_view reason, std::string_view message, bool retry_after);
  void Answer(Job& job, HttpResponse response);
  void OnDone(std::uint64_t job_id, ExecResult result);
  void OnQueueTimeout(std::uint64_t job_id);
  void OnCancel(std::uint64_t job_id);
  void ScheduleRecheck();
  void MaybeFinishDrain();
  int RetryAfter(std::size_t ahead) const;
  /// Requests queued before `job_id` (the queue length if it is not queued).
  std::size_t Ahead(std::uint64_t job_id) const;
  std::vector<vram::InFlight> InFlightLedger() const;
  std::string AddProfiling(const Job& job, const ExecResult& result, const vram::Sampler::Window* window,
                           bool hardware, bool running_time);
  std::string ForwardTarget(const HttpRequest& request) const;

  EventLoop& loop_;
  AppRunner& runner_;
  Executor& executor_;
  vram::Sampler* sampler_;
  vram::ProfileStore* profiles_;
  Metrics& metrics_;
  SchedulerOptions options_;

  std::uint64_t next_id_ = 1;
  std::deque<std::uint64_t> queue_;  // job ids in arrival order
  std::map<std::uint64_t, std::unique_ptr<Job>> jobs_;
  std::map<int, std::uint64_t> running_by_worker_;
  // Per worker: class of its last successful request and its idle baseline.
  struct WorkerMemory {
    std::string last_class;
    std::uint64_t baseline_bytes = 0;
    bool has_baseline = false;
    int pid = 0;
  };
  std::map<int, WorkerMemory> worker_memory_;
  bool recheck_scheduled_ = false;
  bool has_gpus_ = false;  // devices do not come and go while serving
  bool pumping_ = false;
  bool pump_again_ = false;
  bool draining_ = false;
  std::function<void()> drain_done_;
  EventLoop::TimerId drain_timer_ = 0;
  std::optional<vram::Decision::Blocked> last_blocked_;
};

}  // namespace clams::server

#endif  // CLAMS_SRC_SERVER_SCHEDULER_H_
