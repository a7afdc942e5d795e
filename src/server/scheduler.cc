#include "server/scheduler.h"

#include <signal.h>

#include <algorithm>
#include <cmath>

#include "clams/base/log.h"
#include "server/answers.h"
#include "server/decorate.h"

namespace clams::server {
namespace {

/// What the front grants a worker beyond the needs of its requests (the
/// torch cap): a little slack for allocator rounding.
constexpr double kGrantMarginFraction = 0.1;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

std::string Bytes(std::uint64_t b) { return gpu::FormatBytes(b); }

bool Contains(const std::vector<std::string>& v, std::string_view x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

}  // namespace

Scheduler::Scheduler(Timers& loop, AppRunner& runner, Executor& executor, vram::Sampler* sampler,
                     vram::ProfileStore* profiles, Metrics& metrics, SchedulerOptions options)
    : loop_(loop),
      runner_(runner),
      executor_(executor),
      sampler_(sampler),
      profiles_(profiles),
      metrics_(metrics),
      options_(std::move(options)),
      intake_(runner, profiles, IntakeOptions{}),
      queue_(loop, WaitQueue::Limits{options_.max_queue, options_.max_queued_bytes},
             [this](std::uint64_t id) { OnDeadline(id); }),
      learner_(profiles, OutcomeOptions{0, options_.drift_min_bytes, options_.drift_fraction}),
      registry_(sampler) {
  has_gpus_ = sampler_ != nullptr && !sampler_->Latest().devices.empty();
  options_.admission.enforce = has_gpus_;
  // Learned estimates never exceed what a device could ever give a fresh
  // worker (a transient error must not become a permanent 422).
  std::uint64_t cap = 0;
  if (has_gpus_) {
    const std::uint64_t largest = vram::LargestPossibleBytes(Devices(), options_.admission);
    cap = largest > options_.admission.fresh_worker_bytes ? largest - options_.admission.fresh_worker_bytes : largest;
  }
  options_.estimates.cap_bytes = cap;
  // The parameters that shape memory: --class-params, else the app's own.
  if (options_.class_params.empty()) options_.class_params = runner.app().ClassParameters();
  IntakeOptions io;
  io.gpus = has_gpus_;
  io.class_params = options_.class_params;
  io.estimates = options_.estimates;
  io.admission = options_.admission;
  intake_.set_options(std::move(io));
  learner_.set_cap_bytes(cap);
  ScheduleFlush();
}

void Scheduler::ScheduleFlush() {
  if (profiles_ == nullptr) return;
  flush_timer_ = loop_.After(options_.profile_flush_interval, [this] {
    FlushProfiles();
    ScheduleFlush();
  });
}

Scheduler::~Scheduler() {
  loop_.Cancel(flush_timer_);
  FlushProfiles();
}

std::vector<vram::DeviceView> Scheduler::Devices() const {
  std::vector<vram::DeviceView> out;
  if (sampler_ == nullptr) return out;
  for (const auto& d : sampler_->Latest().devices) out.push_back({d.index, d.total_bytes, d.free_bytes});
  return out;
}

std::optional<gpu::DeviceInfo> Scheduler::DeviceInfoFor(int index) const {
  if (sampler_ == nullptr) return std::nullopt;
  for (const auto& d : sampler_->Latest().devices) {
    if (d.index == index) return d;
  }
  return std::nullopt;
}

Job* Scheduler::FindJob(std::uint64_t id) {
  auto it = jobs_.find(id);
  return it == jobs_.end() ? nullptr : it->second.get();
}

ObserveInputs Scheduler::Inputs() const {
  ObserveInputs in;
  in.metadata = &runner_.metadata();
  in.executor_kind = executor_.kind();
  in.registry = &registry_;
  in.queue = &queue_;
  in.ledger = &ledger_;
  in.sampler = sampler_;
  in.profiles = profiles_;
  in.events = &events_;
  in.admission = &options_.admission;
  in.running = ledger_.size();
  in.draining = draining_;
  in.now = loop_.Now();
  return in;
}

int Scheduler::RetryAfter(std::size_t ahead) const {
  return vram::RetryAfterSeconds(ahead, ledger_.Snapshot(), std::max<std::size_t>(registry_.Capacity(), 1),
                                 loop_.Now());
}

std::string Scheduler::ForRequest(const Job& job, std::string message) const {
  return message + " (request " + job.request_id + ")";
}

void Scheduler::Answer(Job& job, HttpResponse response) {
  if (job.answered) return;
  job.answered = true;
  if (job.cancel) job.cancel->Clear();
  if (HasGpus() && server::FindHeader(response.headers, "X-Clams-Vram").empty()) {
    response.headers.emplace_back("X-Clams-Vram", job.has_estimate
                                                      ? vram::VramHeaderValue(job.estimate, job.estimate.full_bytes, 0)
                                                      : vram::VramHeaderValueNone());
  }
  ObserveRequest(metrics_, response.status, Seconds(loop_.Now() - job.arrived));
  job.respond(std::move(response));
}

void Scheduler::Refuse(Job& job, RequestFailure failure) {
  if (!failure.reason.empty()) {
    metrics_.Add("clams_admission_rejections_total", {{"reason", failure.reason}});
    events_.Add({std::chrono::system_clock::now(), "reject", job.request_id, job.class_label, 0,
                 failure.reason + ": " + failure.status.message()});
    CLAMS_LOG(kInfo, "request {} refused ({}): {}", job.request_id, failure.reason, failure.status.message());
  }
  // Refusals and failures name the request (parameter errors keep the
  // Python SDK's text).
  if (!failure.input_unreadable && failure.status.code() != StatusCode::kInvalidArgument) {
    failure.status = Status(failure.status.code(), ForRequest(job, failure.status.message()));
  }
  Answer(job, FailureAnswer(runner_, failure, job.mmif(), job.raw));
}

void Scheduler::OnWorkerEvent(const WorkerEvent& event) {
  registry_.Apply(event);
  if (event.kind == WorkerEvent::Kind::kExited && event.cause == KillCause::kNone) {
    events_.Add({std::chrono::system_clock::now(), "crash", "", "", event.worker_id, event.how});
  }
  Pump();
}

void Scheduler::Submit(AnnotateCall call) {
  auto owned = std::make_unique<Job>();
  Job& job = *owned;
  job.id = next_id_++;
  job.arrived = loop_.Now();
  job.request_id = std::move(call.request_id);
  job.traceparent = std::string(FindHeader(call.request.headers, wire::kTraceparentHeader));
  job.respond = std::move(call.respond);
  job.cancel = std::move(call.cancel);
  auto body = std::make_shared<const std::string>(std::move(call.request.body));
  job.body = body;
  job.mmif_length = body->size();

  // Refusals that need no look at the body: O(1), whatever its size.
  if (draining_) {
    return Refuse(job, {UnavailableError("the server is shutting down and takes no new requests"), false, "draining",
                        RetryAfter(queue_.size())});
  }
  std::string reason;
  if (Status room = queue_.CheckRoom(body->size(), &reason); !room.ok()) {
    return Refuse(job, {room, false, reason, RetryAfter(queue_.size())});
  }

  // Intake: one decoding, validated, refined, classed, estimated.
  RequestFailure failure;
  RawParams raw;
  std::unique_ptr<Job> taken = intake_.Take(body, call.query, Devices(), &failure, &raw);
  if (!taken) {
    job.raw = std::move(raw);
    if (!failure.input_unreadable) {  // a valid body: the error view goes on its MMIF
      const BodyLayout layout = FindBodyLayout(*body);
      job.mmif_offset = layout.mmif_offset;
      job.mmif_length = layout.mmif_length;
    }
    return Refuse(job, std::move(failure));
  }
  taken->id = job.id;
  taken->arrived = job.arrived;
  taken->request_id = std::move(job.request_id);
  taken->traceparent = std::move(job.traceparent);
  taken->respond = std::move(job.respond);
  taken->cancel = std::move(job.cancel);
  owned = std::move(taken);
  Job& j = *owned;

  if (j.has_estimate && !vram::CanEverFit(j.estimate.full_bytes, Devices(), options_.admission)) {
    return Refuse(j, {OutOfRangeError("this request needs " + Bytes(j.estimate.full_bytes) + " of GPU memory (" +
                                      std::string(vram::EstimateSourceName(j.estimate.source)) +
                                      " estimate), but no device can ever provide more than " +
                                      Bytes(vram::LargestPossibleBytes(Devices(), options_.admission)) +
                                      " (total minus --vram-headroom)"),
                      false, "impossible", 0});
  }

  const std::uint64_t id = j.id;
  if (j.cancel) j.cancel->OnCancel([this, id] { OnCancel(id); });
  queue_.PushBack(&j);
  jobs_.emplace(id, std::move(owned));
  Pump();
  // Most requests start at once; only those still waiting get a deadline.
  if (Job* waiting = FindJob(id); waiting != nullptr && waiting->queued) queue_.Arm(waiting, options_.queue_timeout);
}

void Scheduler::OnCancel(std::uint64_t job_id) {
  Job* job = FindJob(job_id);
  if (job == nullptr || job->answered) return;
  metrics_.Add("clams_client_gone_total", {});
  if (job->queued) {
    queue_.Remove(job);
    CLAMS_LOG(kInfo, "request {} left the queue: the client disconnected after {:.1f} s", job->request_id,
              Seconds(loop_.Now() - job->arrived));
    jobs_.erase(job_id);
    MaybeFinishDrain();
    return;
  }
  if (job->running && !job->client_gone) {
    // Its worker keeps working for nobody: after a short grace (the client
    // may just have half-closed), cancel it.
    job->client_gone = true;
    CLAMS_LOG(kInfo, "request {}: the client disconnected while it ran on worker {}; cancelling it in {:.1f} s",
              job->request_id, job->worker_id, options_.client_gone_grace.count() / 1000.0);
    job->gone_timer = loop_.After(options_.client_gone_grace, [this, job_id] { OnClientGoneGrace(job_id); });
  }
}

void Scheduler::OnClientGoneGrace(std::uint64_t job_id) {
  Job* job = FindJob(job_id);
  if (job == nullptr || !job->running) return;
  job->gone_timer = 0;
  MaybeCancelGoneWork(job->worker_id);
}

// Kills a worker whose every running request has been abandoned past the
// grace (a worker still serving someone else is left alone; it is checked
// again when that request ends).
void Scheduler::MaybeCancelGoneWork(int worker_id) {
  const WorkerRecord* w = registry_.Find(worker_id);
  if (w == nullptr || w->running.empty()) return;
  for (std::uint64_t id : w->running) {
    const Job* job = FindJob(id);
    if (job == nullptr || !job->client_gone || job->gone_timer != 0) return;
  }
  if (executor_.Kill(worker_id, KillCause::kClientGone)) {
    CLAMS_LOG(kInfo, "worker {}: every request it was running was abandoned by its client; recycling it", worker_id);
    events_.Add({std::chrono::system_clock::now(), "recycle", "", "", worker_id, "client gone"});
  }
}

std::string Scheduler::WaitedFor(const Job& job) const {
  if (!job.last_wait) return "it was never considered (the server was starting)";
  const auto& w = *job.last_wait;
  switch (w.reason) {
    case vram::WaitReason::kNoFreeWorker:
      return "it waited for a free worker: all " + std::to_string(registry_.Capacity()) +
             " worker slot(s) were busy or starting";
    case vram::WaitReason::kMemory: {
      std::string text = "it waited for GPU memory: it needs " + Bytes(w.need_bytes) + " on device " +
                         std::to_string(w.device) + ", and at most " +
                         Bytes(static_cast<std::uint64_t>(std::max<std::int64_t>(0, w.headroom_bytes))) +
                         " could be given";
      if (auto d = DeviceInfoFor(w.device)) {
        text += " (" + Bytes(d->free_bytes) + " free, " + Bytes(ledger_.Outstanding(w.device)) +
                " reserved for running requests, " +
                Bytes(vram::SafetyBytes({d->index, d->total_bytes, d->free_bytes}, options_.admission)) +
                " kept free by --vram-headroom)";
      }
      return text;
    }
    case vram::WaitReason::kReserved:
      return "it fitted, but was held back so as not to delay the request ahead of it, which holds a reservation "
             "of GPU memory";
  }
  return "";
}

void Scheduler::OnDeadline(std::uint64_t job_id) {
  Job* job = FindJob(job_id);
  if (job == nullptr || !job->queued) return;
  const std::size_t ahead = queue_.Ahead(job_id);
  const std::string message = "waited " + fmt::format("{:.0f}", Seconds(loop_.Now() - job->arrived)) +
                              " s (--queue-timeout) without being admitted: " + WaitedFor(*job) + "; " +
                              std::to_string(ahead) + " request(s) ahead";
  const int retry = RetryAfter(ahead);
  queue_.Remove(job);
  Refuse(*job, {UnavailableError(message), false, "queue_timeout", retry});
  jobs_.erase(job_id);
  MaybeFinishDrain();
}

void Scheduler::Pump() {
  // Executors report worker changes synchronously (a Recycle() below calls
  // back here): never decide inside a decision; run again afterwards.
  if (pumping_) {
    pump_again_ = true;
    return;
  }
  pumping_ = true;
  do {
    pump_again_ = false;
    PumpOnce();
  } while (pump_again_);
  pumping_ = false;
}

void Scheduler::PumpOnce() {
  if (queue_.empty()) {
    if (sampler_ != nullptr) sampler_->SetBusy(ledger_.size() > 0);
    return;
  }
  // Admission needs free memory as it is now: other processes allocate and
  // workers that just exited gave memory back. One fresh sample per
  // decision, taken by the sampler's thread; a probe that does not answer
  // within Sampler::Options::fresh_wait leaves the decision to the latest.
  if (sampler_ != nullptr) sampler_->SampleNow();
  for (const auto& [id, w] : registry_.all()) {
    if (!w.running.empty() && sampler_ != nullptr) ledger_.ObserveUsage(id, sampler_->WorkerUsage(id));
  }
  std::vector<vram::QueuedRequest> queued;
  queued.reserve(queue_.size());
  for (const Job* job : queue_.jobs()) {
    queued.push_back({job->id, job->cls.key, job->estimate, job->arrived, job->expected_ms});
  }
  const auto devices = Devices();
  const auto now = loop_.Now();
  vram::Decision decision = vram::Decide(queued, registry_.Slots(), devices, ledger_.Snapshot(), now, options_.admission);
  for (const auto& w : decision.waiting) {
    if (Job* job = FindJob(w.request_id)) job->last_wait = w;
  }
  for (int worker : decision.evict) {
    CLAMS_LOG(kInfo, "evicting idle worker {} to free GPU memory for a waiting request", worker);
    metrics_.Add("clams_evictions_total", {});
    events_.Add({std::chrono::system_clock::now(), "evict", "", "", worker, "GPU memory needed by a waiting request"});
    executor_.Recycle(worker, KillCause::kEvict);
  }
  for (const auto& d : decision.dispatches) {
    Job* job = FindJob(d.request_id);
    if (job == nullptr || !job->queued) continue;
    Start(*job, d, devices);
  }
  metrics_.Set("clams_queue_length", {}, static_cast<double>(queue_.size()));
  // Sample fast while anything runs or waits: freed memory shows up sooner.
  if (sampler_ != nullptr) sampler_->SetBusy(ledger_.size() > 0 || !queue_.empty());
  if (!queue_.empty() && decision.head_blocked && !decision.head_blocked->no_idle_worker) ScheduleRecheck();
}

void Scheduler::Start(Job& job, const vram::Decision::Dispatch& d, const std::vector<vram::DeviceView>& devices) {
  queue_.Remove(&job);
  WorkerRecord* worker = registry_.Find(d.worker_id);
  job.running = true;
  job.worker_id = d.worker_id;
  job.device = worker != nullptr ? worker->device : -1;
  job.warm = d.warm;
  job.need_bytes = d.need_bytes;
  job.dispatched = loop_.Now();
  for (const auto& dev : devices) {
    if (dev.index == job.device) job.free_at_dispatch = dev.free_bytes;
  }
  // Requests sharing a worker cannot be measured one by one.
  if (worker != nullptr && !worker->running.empty()) {
    job.overlapped = true;
    for (std::uint64_t other : worker->running) {
      if (Job* o = FindJob(other)) o->overlapped = true;
    }
  }
  const std::uint64_t usage = sampler_ != nullptr ? sampler_->WorkerUsage(d.worker_id) : 0;
  vram::InFlight entry;
  entry.request_id = job.id;
  entry.worker_id = d.worker_id;
  entry.device = std::max(job.device, 0);
  entry.need_bytes = d.need_bytes;
  entry.started = job.dispatched;
  entry.expected_ms = job.expected_ms;
  job.reservation = ledger_.Reserve(entry, usage);
  if (sampler_ != nullptr) {
    job.window = sampler_->BeginWindow(d.worker_id);
    sampler_->SetBusy(true);
  }
  registry_.StartRequest(d.worker_id, job.id, job.cls.key);
  metrics_.Observe("clams_queue_wait_seconds", {}, Seconds(job.dispatched - job.arrived));

  auto exec = std::make_shared<ExecRequest>();
  wire::Call& call = exec->call;
  call.body = job.body;
  call.mmif_offset = job.mmif_offset;
  call.mmif_length = job.mmif_length;
  call.params = job.raw;
  call.front_only = options_.front_only_parameters;
  call.request_id = job.request_id;
  call.traceparent = job.traceparent;
  if (HasGpus()) {
    if (auto dev = DeviceInfoFor(job.device)) {
      const std::uint64_t admitted = usage + ledger_.WorkerNeeds(d.worker_id);
      const std::uint64_t grant = std::min(dev->total_bytes, vram::ScaleBytes(admitted, 1 + kGrantMarginFraction));
      call.grant = wire::Grant{grant, dev->total_bytes};
    }
  }
  exec->timeout = options_.request_timeout;
  CLAMS_LOG(kDebug, "request {} -> worker {} (need {}, {}, class {})", job.request_id, d.worker_id, Bytes(d.need_bytes),
            d.warm ? "warm" : "cold", job.class_label);
  events_.Add({std::chrono::system_clock::now(), "admit", job.request_id, job.class_label, d.worker_id,
               HasGpus() ? "needs " + Bytes(d.need_bytes) + (d.warm ? " (warm)" : " (cold)") : "free worker"});
  const std::uint64_t id = job.id;
  executor_.Dispatch(d.worker_id, std::move(exec), [this, id](ExecResult r) { OnDone(id, std::move(r)); });
}

void Scheduler::ScheduleRecheck() {
  if (recheck_scheduled_) return;
  recheck_scheduled_ = true;
  loop_.After(options_.recheck_interval, [this] {
    recheck_scheduled_ = false;
    Pump();
  });
}

void Scheduler::OnDone(std::uint64_t job_id, ExecResult result) {
  Job* found = FindJob(job_id);
  if (found == nullptr || !found->running) return;
  Job& job = *found;
  job.running = false;
  loop_.Cancel(job.gone_timer);
  job.gone_timer = 0;
  std::optional<vram::Sampler::Window> window;
  if (sampler_ != nullptr) window = sampler_->EndWindow(job.window);
  const std::uint64_t usage_now = sampler_ != nullptr ? sampler_->WorkerUsage(job.worker_id) : 0;
  job.reservation.Release(usage_now);
  const bool answered = result.fate == ExecResult::Fate::kAnswered;
  registry_.EndRequest(job.worker_id, job.id, answered, answered && result.answer.http_status == 200, job.cls.key,
                       job.warm);

  if (result.fate == ExecResult::Fate::kNotSent && job.client_gone) {
    // Nothing ran, and nobody waits for it any more.
    CLAMS_LOG(kInfo, "request {} is dropped: it was not run ({}) and its client has disconnected", job.request_id,
              result.fate_text);
    jobs_.erase(job_id);
    MaybeFinishDrain();
    return;
  }
  if (result.fate == ExecResult::Fate::kNotSent) {
    // Nothing ran: back to the head of the queue, no request lost.
    CLAMS_LOG(kWarning, "request {} could not be sent ({}); it waits again", job.request_id, result.fate_text);
    job.worker_id = -1;
    job.overlapped = false;
    queue_.PushFront(&job);
    queue_.Arm(&job, std::chrono::duration_cast<std::chrono::milliseconds>(options_.queue_timeout -
                                                                           (loop_.Now() - job.arrived)));
    ScheduleRecheck();  // not at once: the worker that refused may be chosen again
    return;
  }
  const std::optional<gpu::DeviceInfo> device = HasGpus() ? DeviceInfoFor(job.device) : std::nullopt;
  HttpResponse response = AnswerFor(job, result, window, device);
  if (HasGpus()) {
    response.headers.emplace_back("X-Clams-Vram",
                                  vram::VramHeaderValue(job.estimate, job.need_bytes, window ? window->growth() : 0));
  }
  const int worker = job.worker_id;
  Answer(job, std::move(response));
  Finish(job_id);
  MaybeCancelGoneWork(worker);
  Pump();
  MaybeFinishDrain();
}

HttpResponse Scheduler::AnswerFor(Job& job, ExecResult& result, const std::optional<vram::Sampler::Window>& window,
                                  const std::optional<gpu::DeviceInfo>& device) {
  const std::string device_name = device ? device->name : "";
  const double duration_ms = std::chrono::duration<double, std::milli>(loop_.Now() - job.dispatched).count();
  auto failed = [&](Status status, int retry_after) {
    CLAMS_LOG(kError, "request {}: {}", job.request_id, result.log_text.empty() ? status.message() : result.log_text);
    RequestFailure f{Status(status.code(), ForRequest(job, status.message())), false, "", retry_after};
    return FailureAnswer(runner_, f, job.mmif(), job.raw);
  };
  switch (result.fate) {
    case ExecResult::Fate::kAnswered: break;
    case ExecResult::Fate::kWorkerDied:
      if (result.cause == KillCause::kNone) {
        // A crash or a kill from outside (the host's OOM killer, an
        // operator): not evidence of GPU memory exhaustion.
        events_.Add({std::chrono::system_clock::now(), "crash", job.request_id, job.class_label, job.worker_id,
                     result.fate_text});
        return failed(InternalError(result.fate_text), 0);
      }
      if (result.cause == KillCause::kClientGone) return failed(CancelledError("the client went away"), 0);
      // The server stopped the worker for another reason (a neighbour's
      // timeout, shutdown): the request itself did nothing wrong.
      return failed(UnavailableError(result.fate_text + "; retry"), RetryAfter(queue_.size()));
    case ExecResult::Fate::kTimedOut:
      events_.Add({std::chrono::system_clock::now(), "timeout", job.request_id, job.class_label, job.worker_id,
                   result.fate_text});
      return failed(DeadlineExceededError(result.fate_text), 0);
    case ExecResult::Fate::kLost:
    case ExecResult::Fate::kNotSent:
      return failed(InternalError(result.fate_text), 0);
  }

  AnnotateOutcome& answer = result.answer;
  HttpResponse response;
  response.status = answer.http_status;
  response.content_type = std::move(answer.content_type);
  if (answer.failure == FailureKind::kAppOom && HasGpus()) {
    const OomVerdict verdict =
        learner_.JudgeOom(job, answer, window, device ? device->free_bytes : UINT64_MAX);
    if (verdict.confirmed) {
      // Admission let it in and it still ran out: learn, recycle, and let
      // the client retry.
      metrics_.Add("clams_oom_total", {});
      learner_.RecordOom(job, verdict, device_name);
      RefreshQueued(job.cls.key);
      events_.Add({std::chrono::system_clock::now(), "oom", job.request_id, job.class_label, job.worker_id,
                   verdict.explanation});
      CLAMS_LOG(kWarning, "request {} on worker {} ({}): {}", job.request_id, job.worker_id, job.class_label,
                verdict.explanation);
      executor_.Recycle(job.worker_id, KillCause::kOom);
      response.status = HttpStatusFor(UnavailableError(""));
      response.headers.emplace_back("Retry-After", std::to_string(RetryAfter(0)));
    } else {
      CLAMS_LOG(kWarning, "request {} on worker {}: {}; answered as an app error, nothing learned", job.request_id,
                job.worker_id, verdict.explanation);
    }
    response.body = std::move(answer.body);
    return response;
  }
  if (answer.http_status != 200) {
    response.body = std::move(answer.body);
    return response;
  }
  const WorkerRecord* ran_on = registry_.Find(job.worker_id);
  std::optional<std::uint64_t> usage_after;
  if (ran_on != nullptr && ran_on->running.empty() && sampler_ != nullptr) usage_after = sampler_->WorkerUsage(job.worker_id);
  learner_.OnSuccess(job, window, duration_ms, device_name, usage_after);
  RefreshQueued(job.cls.key);
  if (WorkerRecord* w = registry_.Find(job.worker_id); w != nullptr && w->running.empty() && HasGpus()) {
    const std::uint64_t idle = sampler_->WorkerUsage(job.worker_id);
    if (learner_.Drifted(*w, job.warm, idle)) {
      CLAMS_LOG(kInfo, "worker {} holds {} idle, above its baseline {}: recycling it", job.worker_id, Bytes(idle),
                Bytes(w->idle_baseline));
      events_.Add({std::chrono::system_clock::now(), "recycle", job.request_id, job.class_label, job.worker_id,
                   "idle memory drifted from " + Bytes(w->idle_baseline) + " to " + Bytes(idle)});
      executor_.Recycle(job.worker_id, KillCause::kDrift);
    }
  }
  // hwFetch: the measured record goes into the new views (a native worker
  // wrote "cuda": [] for the front to fill). runningTime: added here only
  // for an external app that does not know the parameter.
  Decoration dec;
  dec.hardware = job.params.GetBool("hwFetch") && (HasGpus() || Contains(options_.front_only_parameters, "hwFetch"));
  dec.running_time = Contains(options_.front_only_parameters, "runningTime") && job.params.GetBool("runningTime");
  if (!dec.hardware && !dec.running_time) {
    response.body = std::move(answer.body);
    return response;
  }
  if (dec.hardware && device) {
    // Per-process accounting reports the worker's peak usage during the
    // request; device-level accounting its growth (the device's delta).
    std::uint64_t peak = 0;
    if (window) peak = sampler_->per_process() ? window->peak_bytes : window->growth();
    dec.cuda.emplace_back(gpu::FormatCudaHardwareEntry(device->name, device->total_bytes, job.free_at_dispatch, peak));
  }
  dec.elapsed = std::chrono::duration_cast<std::chrono::microseconds>(loop_.Now() - job.dispatched);
  dec.pretty = job.pretty;
  dec.new_views = answer.new_view_ids;
  dec.find_new_views = options_.external;
  dec.app_identifier = runner_.metadata().identifier;
  response.body = DecorateAnswer(answer.body, job.mmif(), dec);
  return response;
}

void Scheduler::Finish(std::uint64_t job_id) { jobs_.erase(job_id); }

// Requests of a class whose profile just changed wait with its new estimate
// (an estimate fixed at arrival keeps a first request's conservative guess
// for every request queued behind it).
void Scheduler::RefreshQueued(const std::string& class_key) {
  if (!HasGpus() || queue_.empty()) return;
  const auto devices = Devices();
  for (Job* job : queue_.jobs()) {
    if (job->cls.key == class_key) intake_.Reestimate(*job, devices);
  }
}

bool Scheduler::Ready(std::string* why) const {
  auto say = [why](std::string text) {
    if (why != nullptr) *why = std::move(text);
    return false;
  };
  if (draining_) return say("draining");
  if (!registry_.AnyReady()) return say("no worker is ready");
  if (queue_.size() >= queue_.limits().max_count) return say("the queue is full");
  if (HasGpus() && profiles_ != nullptr) {
    const std::optional<std::uint64_t> smallest_peak = profiles_->SmallestPeakBytes();
    if (smallest_peak) {
      // As the estimate would be: with the margin, within the cap.
      std::uint64_t smallest = vram::ScaleBytes(*smallest_peak, 1 + std::max(0.0, options_.estimates.margin));
      if (options_.estimates.cap_bytes > 0) smallest = std::min(smallest, std::max(options_.estimates.cap_bytes, *smallest_peak));
      const auto ledger = ledger_.Snapshot();
      bool soon = false;
      for (const auto& d : Devices()) {
        const bool will_free = std::any_of(ledger.begin(), ledger.end(),
                                           [&](const vram::InFlight& f) { return f.device == d.index; });
        // Idle workers' models can be evicted for it.
        std::int64_t room = vram::HeadroomBytes(d, ledger, options_.admission);
        for (const auto& [id, w] : registry_.all()) {
          if (w.device == d.index && w.state == vram::WorkerState::kIdle && sampler_ != nullptr) {
            room += static_cast<std::int64_t>(sampler_->WorkerUsage(id));
          }
        }
        if (will_free || (room >= 0 && static_cast<std::uint64_t>(room) >= smallest)) soon = true;
      }
      if (!soon) {
        return say("no device has room for the smallest known request class (" + Bytes(smallest) +
                   ") and nothing running will free memory");
      }
    }
  }
  return true;
}

json::object Scheduler::Runtime(bool full) const { return RuntimeJson(Inputs(), full || options_.expose_runtime); }

json::object Scheduler::StatusJson() const { return server::StatusJson(Inputs()); }

void Scheduler::UpdateGauges() { server::UpdateGauges(Inputs(), metrics_); }

void Scheduler::FlushProfiles() {
  if (profiles_ == nullptr) return;
  if (Status s = profiles_->Flush(); !s.ok()) CLAMS_LOG(kDebug, "memory profiles not written: {}", s.message());
}

void Scheduler::Drain(std::chrono::milliseconds grace, std::function<void()> done) {
  if (draining_) return;
  draining_ = true;
  drain_done_ = std::move(done);
  CLAMS_LOG(kInfo, "draining: {} queued and {} running request(s) may finish (up to {} s)", queue_.size(),
            ledger_.size(), grace.count() / 1000);
  drain_timer_ = loop_.After(grace, [this] {
    CLAMS_LOG(kWarning, "drain time is up: refusing {} queued request(s)", queue_.size());
    while (!queue_.empty()) {
      Job* job = queue_.jobs().front();
      const std::uint64_t id = job->id;
      queue_.Remove(job);
      Refuse(*job, {UnavailableError("the server is shutting down"), false, "draining", RetryAfter(queue_.size())});
      jobs_.erase(id);
    }
    FlushProfiles();
    auto done_fn = std::move(drain_done_);
    drain_done_ = nullptr;
    if (done_fn) done_fn();
  });
  MaybeFinishDrain();
}

void Scheduler::MaybeFinishDrain() {
  if (!draining_ || !drain_done_ || !queue_.empty() || ledger_.size() > 0) return;
  loop_.Cancel(drain_timer_);
  FlushProfiles();
  auto done_fn = std::move(drain_done_);
  drain_done_ = nullptr;
  done_fn();
}

}  // namespace clams::server
