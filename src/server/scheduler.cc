#include "server/scheduler.h"

#include <algorithm>
#include <cmath>
#include <csignal>

#include "clams/base/log.h"
#include "clams/mmif/json.h"

namespace clams::server {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kHttpUnprocessable = 422;
constexpr int kHttpInternalError = 500;
constexpr int kHttpUnavailable = 503;
constexpr int kHttpGatewayTimeout = 504;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

std::string Mib(std::uint64_t bytes) { return gpu::FormatBytes(bytes); }

std::string_view StateName(vram::WorkerState s) {
  switch (s) {
    case vram::WorkerState::kStarting: return "starting";
    case vram::WorkerState::kIdle: return "idle";
    case vram::WorkerState::kBusy: return "busy";
    case vram::WorkerState::kStopping: return "stopping";
  }
  return "unknown";
}

json::object ClassParameters(const Params& params) {
  json::object out;
  for (const auto& kv : params.values()) {
    if (!IsUniversalParameter(kv.key())) out[kv.key()] = kv.value();
  }
  return out;
}

}  // namespace

struct Scheduler::Job {
  std::uint64_t id = 0;
  AnnotateCall call;
  RawParams raw;  // query merged over envelope parameters
  Params params;
  bool params_known = true;  // false: an external app gets parameters the front could not refine
  vram::RequestClass cls;
  vram::Estimate estimate;
  bool pretty = false;
  Clock::time_point arrived;
  Clock::time_point dispatched;
  EventLoop::TimerId queue_timer = 0;
  // When it became the head that does not fit (the backfill window runs
  // from here).
  std::optional<Clock::time_point> head_since;
  bool queued = false;
  bool answered = false;
  // While running:
  int worker_id = -1;
  int device = -1;
  bool warm = false;
  std::uint64_t need_bytes = 0;
  std::uint64_t free_at_dispatch = 0;
  double expected_ms = 0;  // the class's mean duration when it started
};

Scheduler::Scheduler(EventLoop& loop, AppRunner& runner, Executor& executor, vram::Sampler* sampler,
                     vram::ProfileStore* profiles, Metrics& metrics, SchedulerOptions options)
    : loop_(loop),
      runner_(runner),
      executor_(executor),
      sampler_(sampler),
      profiles_(profiles),
      metrics_(metrics),
      options_(std::move(options)) {
  has_gpus_ = sampler_ != nullptr && !sampler_->Latest().devices.empty();
  options_.admission.enforce = has_gpus_;
}

Scheduler::~Scheduler() = default;

bool Scheduler::HasGpus() const { return has_gpus_; }

std::vector<vram::DeviceView> Scheduler::Devices() const {
  std::vector<vram::DeviceView> out;
  if (sampler_ == nullptr) return out;
  for (const auto& d : sampler_->Latest().devices) {
    out.push_back({d.index, d.total_bytes, d.free_bytes});
  }
  return out;
}

const gpu::DeviceInfo* Scheduler::DeviceInfoFor(int index) const {
  if (sampler_ == nullptr) return nullptr;
  static thread_local gpu::Snapshot snapshot;  // loop thread only
  snapshot = sampler_->Latest();
  for (const auto& d : snapshot.devices) {
    if (d.index == index) return &d;
  }
  return nullptr;
}

std::vector<vram::InFlight> Scheduler::InFlightLedger() const {
  std::vector<vram::InFlight> out;
  for (const auto& [worker, job_id] : running_by_worker_) {
    auto it = jobs_.find(job_id);
    if (it == jobs_.end()) continue;
    const Job& job = *it->second;
    vram::InFlight f;
    f.request_id = job.id;
    f.worker_id = worker;
    f.device = job.device;
    f.need_bytes = job.need_bytes;
    f.started = job.dispatched;
    if (sampler_ != nullptr) {
      if (auto w = sampler_->CurrentWindow(worker)) f.growth_bytes = w->growth();
    }
    f.expected_ms = job.expected_ms;
    out.push_back(f);
  }
  return out;
}

std::size_t Scheduler::Ahead(std::uint64_t job_id) const {
  return static_cast<std::size_t>(std::find(queue_.begin(), queue_.end(), job_id) - queue_.begin());
}

int Scheduler::RetryAfter(std::size_t ahead) const {
  std::size_t workers = 0;
  for (const auto& w : executor_.Workers()) {
    if (w.state != vram::WorkerState::kStopping) ++workers;
  }
  return vram::RetryAfterSeconds(ahead, InFlightLedger(), std::max<std::size_t>(workers, 1), Clock::now());
}

void Scheduler::Answer(Job& job, HttpResponse response) {
  if (job.answered) return;
  job.answered = true;
  if (job.call.cancel) job.call.cancel->Clear();
  metrics_.Add("clams_requests_total", {{"code", std::to_string(response.status)}});
  metrics_.Observe("clams_request_duration_seconds", {}, Seconds(Clock::now() - job.arrived));
  job.call.respond(std::move(response));
}

void Scheduler::Reject(Job& job, int status, std::string_view reason, std::string_view message,
                       bool retry_after) {
  metrics_.Add("clams_admission_rejections_total", {{"reason", std::string(reason)}});
  AnnotateOutcome o = runner_.ErrorViewAnswer(job.call.request.body, job.raw, status, message,
                                              FailureKind::kAppError);
  HttpResponse r;
  r.status = status;
  r.content_type = o.content_type;
  r.body = std::move(o.body);
  if (retry_after) {
    const std::size_t ahead = Ahead(job.id);
    r.headers.emplace_back("Retry-After", std::to_string(RetryAfter(ahead)));
  }
  if (HasGpus()) {
    r.headers.emplace_back("X-Clams-Vram", vram::VramHeaderValue(job.estimate, job.estimate.full_bytes, 0));
  }
  CLAMS_LOG(kInfo, "request {} refused ({}): {}", job.id, reason, message);
  Answer(job, std::move(r));
}

void Scheduler::Submit(AnnotateCall call) {
  auto job = std::make_unique<Job>();
  job->id = next_id_++;
  job->arrived = Clock::now();
  job->call = std::move(call);
  Job& j = *job;

  auto prepared = runner_.PrepareParams(j.call.request.body, j.call.query);
  const AppMetadata& md = runner_.metadata();
  if (!prepared.ok() || !prepared->refine_status.ok()) {
    if (!options_.external) {
      if (!prepared.ok()) {
        HttpResponse r;
        r.status = 400;
        r.content_type = "text/plain; charset=utf-8";
        r.body = std::string(kInvalidInputPrefix) + prepared.status().message();
        Answer(j, std::move(r));
      } else {
        AnnotateOutcome o = runner_.ParameterErrorAnswer(j.call.request.body, prepared->raw, prepared->refine_status);
        Answer(j, HttpResponse{o.http_status, o.content_type, {}, std::move(o.body)});
      }
      return;
    }
    // An external app answers for its own input: forward it. The class is
    // the raw parameters; the universal ones still steer the front.
    j.params_known = false;
    if (prepared.ok()) j.raw = prepared->raw;
    RawParams universal;
    for (const auto& e : j.raw.entries()) {
      if (IsUniversalParameter(e.first)) universal.Set(e.first, e.second);
    }
    auto refined = RefineParams(md, universal);
    j.params = refined.ok() ? std::move(refined).value() : RefineParams(md, RawParams{}).value();
    json::object raw_class;
    for (const auto& e : j.raw.entries()) {
      if (!IsUniversalParameter(e.first)) raw_class[e.first] = json::array(e.second.begin(), e.second.end());
    }
    j.cls = vram::RequestClass::Make(md.identifier, md.app_version, "raw:" + mmif::WriteJson(raw_class));
  } else {
    j.raw = std::move(prepared->raw);
    j.params = std::move(prepared->params);
    // The class steers GPU admission and profiles; without GPUs it is not
    // needed (and costs a canonical JSON and an MD5 per request).
    if (HasGpus()) j.cls = vram::RequestClass::Make(md.identifier, md.app_version, CanonicalClassParameters(j.params));
  }
  j.pretty = j.params.GetBool("pretty");

  if (draining_) {
    jobs_.emplace(j.id, std::move(job));
    Reject(j, kHttpUnavailable, "draining", "the server is shutting down and takes no new requests", true);
    jobs_.erase(j.id);
    return;
  }

  const bool gpus = HasGpus();
  if (gpus) {
    std::optional<std::uint64_t> declared;
    try {
      declared = runner_.app().EstimateVram(j.params);
    } catch (const std::exception& e) {
      CLAMS_LOG(kWarning, "App::EstimateVram threw: {}", e.what());
    }
    std::optional<vram::Profile> profile;
    if (profiles_ != nullptr) profile = profiles_->Get(j.cls.key);
    std::uint64_t largest = 0;
    for (const auto& d : Devices()) largest = std::max(largest, d.total_bytes);
    j.estimate = vram::ResolveEstimate(declared, profile ? &*profile : nullptr, md.est_gpu_mem_typ, largest,
                                       options_.estimates);
    auto devices = Devices();
    if (!vram::CanEverFit(j.estimate.full_bytes, devices, options_.admission)) {
      std::uint64_t possible = 0;
      for (const auto& d : devices) {
        std::uint64_t safety = vram::SafetyBytes(d, options_.admission);
        possible = std::max(possible, d.total_bytes > safety ? d.total_bytes - safety : 0);
      }
      jobs_.emplace(j.id, std::move(job));
      Reject(j, kHttpUnprocessable, "impossible",
             "this request needs " + Mib(j.estimate.full_bytes) + " of GPU memory (" +
                 std::string(vram::EstimateSourceName(j.estimate.source)) + " estimate), but no device can ever " +
                 "provide more than " + Mib(possible) + " (total minus --vram-headroom)",
             false);
      jobs_.erase(j.id);
      return;
    }
  }

  if (queue_.size() >= options_.max_queue) {
    jobs_.emplace(j.id, std::move(job));
    queue_.push_back(j.id);  // so Retry-After counts everyone ahead
    Reject(j, kHttpUnavailable, "queue_full",
           "the queue is full: " + std::to_string(options_.max_queue) +
               " requests are already waiting (--max-queue); retry later",
           true);
    queue_.pop_back();
    jobs_.erase(j.id);
    return;
  }

  j.queued = true;
  const std::uint64_t id = j.id;
  if (j.call.cancel) j.call.cancel->OnCancel([this, id] { OnCancel(id); });
  queue_.push_back(id);
  jobs_.emplace(id, std::move(job));
  Pump();
  // Most requests start at once; only those still waiting get a deadline.
  if (auto it = jobs_.find(id); it != jobs_.end() && it->second->queued) {
    it->second->queue_timer = loop_.After(options_.queue_timeout, [this, id] { OnQueueTimeout(id); });
  }
}

void Scheduler::OnCancel(std::uint64_t job_id) {
  auto it = jobs_.find(job_id);
  if (it == jobs_.end() || !it->second->queued) return;
  Job& job = *it->second;
  loop_.Cancel(job.queue_timer);
  queue_.erase(std::find(queue_.begin(), queue_.end(), job_id));
  CLAMS_LOG(kInfo, "request {} left the queue: the client disconnected after {:.1f} s", job_id,
            Seconds(Clock::now() - job.arrived));
  metrics_.Add("clams_admission_rejections_total", {{"reason", "client_gone"}});
  jobs_.erase(it);
  metrics_.Set("clams_queue_length", {}, static_cast<double>(queue_.size()));
  MaybeFinishDrain();
}

void Scheduler::OnQueueTimeout(std::uint64_t job_id) {
  auto it = jobs_.find(job_id);
  if (it == jobs_.end() || !it->second->queued) return;
  Job& job = *it->second;
  std::string why;
  if (last_blocked_ && last_blocked_->request_id == job_id && !last_blocked_->no_idle_worker) {
    why = "needed " + Mib(last_blocked_->need_bytes) + " of GPU memory on device " +
          std::to_string(last_blocked_->device) + " but only " +
          Mib(static_cast<std::uint64_t>(std::max<std::int64_t>(0, last_blocked_->headroom_bytes))) +
          " could be given";
  } else if (HasGpus()) {
    std::uint64_t free_bytes = 0;
    for (const auto& d : Devices()) free_bytes = std::max(free_bytes, d.free_bytes);
    why = "needs " + Mib(job.estimate.full_bytes) + " of GPU memory; " + Mib(free_bytes) +
          " free on the emptiest device";
  } else {
    why = "no worker became free";
  }
  const std::size_t ahead = Ahead(job_id);
  Reject(job, kHttpUnavailable, "queue_timeout",
         "waited " + fmt::format("{:.0f}", Seconds(Clock::now() - job.arrived)) + " s (--queue-timeout) without " +
             "being admitted: " + why + "; " + std::to_string(ahead) + " request(s) ahead",
         true);
  queue_.erase(std::find(queue_.begin(), queue_.end(), job_id));
  jobs_.erase(it);
  metrics_.Set("clams_queue_length", {}, static_cast<double>(queue_.size()));
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
  // Keep the sampler's view of the workers current.
  std::vector<WorkerInfo> workers = executor_.Workers();
  for (const auto& w : workers) {
    WorkerMemory& mem = worker_memory_[w.id];
    if (mem.pid != w.pid) {
      mem = WorkerMemory{};
      mem.pid = w.pid;
      if (sampler_ != nullptr) {
        sampler_->UntrackWorker(w.id);
        if (w.pid > 0) sampler_->TrackWorker(w.id, w.pid, std::max(w.device, 0), w.include_children);
      }
    }
  }
  if (queue_.empty()) return;
  // Admission needs free memory as it is now: other processes allocate and
  // workers that just exited gave memory back. One probe call per decision
  // (microseconds simulated, well under a millisecond with NVML).
  if (sampler_ != nullptr) sampler_->SampleNow();

  std::vector<vram::QueuedRequest> queued;
  queued.reserve(queue_.size());
  for (auto id : queue_) {
    const Job& job = *jobs_.at(id);
    queued.push_back({job.id, job.cls.key, job.estimate, job.arrived, job.head_since});
  }
  std::vector<vram::WorkerSlot> slots;
  for (const auto& w : workers) {
    vram::WorkerSlot s;
    s.id = w.id;
    s.device = std::max(w.device, 0);
    s.state = w.state;
    s.last_class = worker_memory_[w.id].last_class;
    s.usage_bytes = sampler_ != nullptr ? sampler_->WorkerUsage(w.id) : 0;
    s.last_used = w.last_used;
    slots.push_back(std::move(s));
  }
  const auto devices = Devices();
  const auto ledger = InFlightLedger();
  const auto now = Clock::now();
  vram::Decision decision = vram::Decide(queued, slots, devices, ledger, now, options_.admission);
  last_blocked_ = decision.head_blocked;
  if (decision.head_blocked && !decision.head_blocked->no_idle_worker) {
    auto it = jobs_.find(decision.head_blocked->request_id);
    if (it != jobs_.end() && !it->second->head_since) it->second->head_since = now;
  }

  for (int worker : decision.evict) {
    CLAMS_LOG(kInfo, "evicting idle worker {} to free GPU memory for a waiting request", worker);
    metrics_.Add("clams_evictions_total", {});
    worker_memory_.erase(worker);
    executor_.Recycle(worker, "evict");
  }

  for (const auto& d : decision.dispatches) {
    auto it = jobs_.find(d.request_id);
    if (it == jobs_.end()) continue;
    Job& job = *it->second;
    job.queued = false;
    loop_.Cancel(job.queue_timer);
    queue_.erase(std::find(queue_.begin(), queue_.end(), job.id));
    job.worker_id = d.worker_id;
    job.warm = d.warm;
    job.need_bytes = d.need_bytes;
    job.dispatched = Clock::now();
    for (const auto& s : slots) {
      if (s.id == d.worker_id) job.device = s.device;
    }
    for (const auto& dev : devices) {
      if (dev.index == job.device) job.free_at_dispatch = dev.free_bytes;
    }
    if (profiles_ != nullptr) {
      if (auto p = profiles_->Get(job.cls.key)) job.expected_ms = p->mean_duration_ms;
    }
    metrics_.Observe("clams_queue_wait_seconds", {}, Seconds(job.dispatched - job.arrived));
    if (sampler_ != nullptr) {
      sampler_->BeginWindow(d.worker_id);
      sampler_->SetBusy(true);
    }
    running_by_worker_[d.worker_id] = job.id;
    auto exec = std::make_shared<ExecRequest>();
    exec->target = ForwardTarget(job.call.request);
    exec->body = job.call.request.body;
    exec->query = job.call.query;
    exec->timeout = options_.request_timeout;
    CLAMS_LOG(kDebug, "request {} -> worker {} (need {}, {}, class {})", job.id, d.worker_id, Mib(d.need_bytes),
              d.warm ? "warm" : "cold", job.cls.key);
    const std::uint64_t id = job.id;
    executor_.Dispatch(d.worker_id, std::move(exec), [this, id](ExecResult r) { OnDone(id, std::move(r)); });
  }
  metrics_.Set("clams_queue_length", {}, static_cast<double>(queue_.size()));
  // Sample fast while anything runs or waits: freed memory shows up sooner.
  if (sampler_ != nullptr) sampler_->SetBusy(!running_by_worker_.empty() || !queue_.empty());
  if (!queue_.empty() && decision.head_blocked && !decision.head_blocked->no_idle_worker) ScheduleRecheck();
}

void Scheduler::ScheduleRecheck() {
  if (recheck_scheduled_) return;
  recheck_scheduled_ = true;
  loop_.After(options_.recheck_interval, [this] {
    recheck_scheduled_ = false;
    Pump();
  });
}

std::string Scheduler::ForwardTarget(const HttpRequest& request) const {
  if (options_.front_only_parameters.empty() || request.query.empty()) return request.target;
  std::string query;
  std::string_view rest = request.query;
  while (!rest.empty()) {
    const auto amp = rest.find('&');
    std::string_view piece = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
    auto decoded = RawParams::FromQuery(piece);
    const bool drop = decoded.ok() && decoded->size() == 1 &&
                      std::find(options_.front_only_parameters.begin(), options_.front_only_parameters.end(),
                                decoded->entries()[0].first) != options_.front_only_parameters.end();
    if (drop) continue;
    if (!query.empty()) query += '&';
    query += piece;
  }
  return request.path + (query.empty() ? "" : "?" + query);
}

std::string Scheduler::AddProfiling(const Job& job, const ExecResult& result, const vram::Sampler::Window* window,
                                    bool hardware, bool running_time) {
  auto tree = mmif::ParseJson(result.answer.body);
  if (!tree.ok() || !tree->is_object()) return result.answer.body;
  json::array cuda;
  if (const gpu::DeviceInfo* d = hardware ? DeviceInfoFor(job.device) : nullptr) {
    // Per-process accounting reports the worker's peak usage during the
    // request; device-level accounting its growth (the device's delta).
    std::uint64_t peak = 0;
    if (window != nullptr) peak = sampler_->per_process() ? window->peak_bytes : window->growth();
    cuda.emplace_back(gpu::FormatCudaHardwareEntry(d->name, d->total_bytes, job.free_at_dispatch, peak));
  }
  // The views this request added: the worker names them (native apps), or
  // they are the app's views that were not in the input (external apps).
  std::vector<std::string> new_views = result.answer.new_view_ids;
  if (options_.external) {
    std::vector<std::string> input_views;
    if (auto in = mmif::ParseJson(job.call.request.body); in.ok() && in->is_object()) {
      const json::value* doc = &*in;
      if (const json::value* inner = in->get_object().if_contains("mmif");
          inner != nullptr && in->get_object().contains("parameters")) {
        doc = inner;
      }
      if (const json::value* vs = doc->is_object() ? doc->get_object().if_contains("views") : nullptr;
          vs != nullptr && vs->is_array()) {
        for (const auto& v : vs->get_array()) {
          if (const json::value* id = v.is_object() ? v.get_object().if_contains("id") : nullptr; id && id->is_string()) {
            input_views.emplace_back(id->get_string());
          }
        }
      }
    }
    if (const json::value* vs = tree->get_object().if_contains("views"); vs != nullptr && vs->is_array()) {
      for (const auto& v : vs->get_array()) {
        const json::value* id = v.is_object() ? v.get_object().if_contains("id") : nullptr;
        const json::value* md = v.is_object() ? v.get_object().if_contains("metadata") : nullptr;
        const json::value* app = md != nullptr && md->is_object() ? md->get_object().if_contains("app") : nullptr;
        if (id == nullptr || !id->is_string() || app == nullptr || !app->is_string()) continue;
        if (app->get_string() != runner_.metadata().identifier) continue;
        if (std::find(input_views.begin(), input_views.end(), std::string_view(id->get_string())) != input_views.end()) {
          continue;
        }
        new_views.emplace_back(id->get_string());
      }
    }
  }
  const std::string elapsed =
      FormatRunningTime(std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - job.dispatched));
  json::value* views = tree->get_object().if_contains("views");
  if (views == nullptr || !views->is_array()) return result.answer.body;
  for (auto& v : views->get_array()) {
    if (!v.is_object()) continue;
    const json::value* id = v.get_object().if_contains("id");
    if (id == nullptr || !id->is_string()) continue;
    if (std::find(new_views.begin(), new_views.end(), std::string_view(id->get_string())) == new_views.end()) {
      continue;
    }
    json::value* md = v.get_object().if_contains("metadata");
    if (md == nullptr || !md->is_object()) continue;
    json::value& profiling = md->get_object()["appProfiling"];
    if (!profiling.is_object()) profiling = json::object();
    if (running_time) profiling.get_object()["runningTime"] = elapsed;
    if (hardware) {
      json::value& hw = profiling.get_object()["hardware"];
      if (!hw.is_object()) hw = json::object();
      if (!hw.get_object().contains("cpu")) hw.get_object()["cpu"] = HostCpuDescription();
      hw.get_object()["cuda"] = cuda;
    }
  }
  mmif::JsonStyle style;
  style.indent = job.pretty ? 2 : 0;
  return mmif::WriteJson(*tree, style);
}

void Scheduler::OnDone(std::uint64_t job_id, ExecResult result) {
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return;
  Job& job = *it->second;
  running_by_worker_.erase(job.worker_id);
  if (result.fate == ExecResult::Fate::kNotSent) {
    // Nothing ran: back to the head of the queue, no request lost.
    CLAMS_LOG(kWarning, "request {} could not be sent ({}); it waits again", job.id, result.fate_text);
    if (sampler_ != nullptr) (void)sampler_->EndWindow(job.worker_id);
    job.queued = true;
    job.worker_id = -1;
    queue_.push_front(job.id);
    const std::uint64_t id = job.id;
    const auto left = std::max(std::chrono::milliseconds(1),
                               std::chrono::duration_cast<std::chrono::milliseconds>(
                                   options_.queue_timeout - (Clock::now() - job.arrived)));
    job.queue_timer = loop_.After(left, [this, id] { OnQueueTimeout(id); });
    loop_.Post([this] { Pump(); });
    return;
  }
  std::optional<vram::Sampler::Window> window;
  if (sampler_ != nullptr) {
    window = sampler_->EndWindow(job.worker_id);
    if (running_by_worker_.empty()) sampler_->SetBusy(false);
  }
  const std::uint64_t growth = window ? window->growth() : 0;
  const double duration_ms = std::chrono::duration<double, std::milli>(Clock::now() - job.dispatched).count();
  const bool gpus = HasGpus();
  const gpu::DeviceInfo* dev = gpus ? DeviceInfoFor(job.device) : nullptr;
  const std::string device_name = dev != nullptr ? dev->name : "";

  HttpResponse response;
  switch (result.fate) {
    case ExecResult::Fate::kAnswered: {
      response.status = result.answer.http_status;
      response.content_type = result.answer.content_type;
      if (result.answer.failure == FailureKind::kAppOom) {
        // Admission let it in and it still ran out: learn, recycle, and let
        // the client retry.
        metrics_.Add("clams_oom_total", {});
        if (profiles_ != nullptr && gpus) {
          // At least 1.5 x what was admitted: a declared estimate is raised
          // too (full = max(declared, profile peak)).
          Status s = profiles_->RecordOom(job.cls, ClassParameters(job.params), window ? window->growth() : 0,
                                          vram::ScaleBytes(job.need_bytes, vram::kOomRaiseFactor), device_name);
          if (!s.ok()) CLAMS_LOG(kWarning, "could not record the OOM in the profile: {}", s.ToString());
        }
        worker_memory_.erase(job.worker_id);
        executor_.Recycle(job.worker_id, "oom");
        response.status = kHttpUnavailable;
        response.headers.emplace_back("Retry-After", std::to_string(RetryAfter(0)));
        CLAMS_LOG(kWarning, "request {} ran out of GPU memory on worker {} (class {}): {}", job.id, job.worker_id,
                  job.cls.key, result.answer.error);
        response.body = std::move(result.answer.body);
      } else if (result.answer.http_status == 200) {
        WorkerMemory& mem = worker_memory_[job.worker_id];
        const bool same_class = mem.last_class == job.cls.key;
        if (profiles_ != nullptr && gpus && (growth > 0 || runner_.metadata().est_gpu_mem_min > 0)) {
          Status s = profiles_->Record(job.cls, ClassParameters(job.params), growth, job.warm, duration_ms,
                                       device_name);
          if (!s.ok()) CLAMS_LOG(kWarning, "could not write the memory profile: {}", s.ToString());
        }
        if (sampler_ != nullptr && gpus) {
          const std::uint64_t idle = sampler_->WorkerUsage(job.worker_id);
          if (same_class && mem.has_baseline) {
            const std::uint64_t allowed =
                mem.baseline_bytes + std::max<std::uint64_t>(options_.drift_min_bytes,
                                                             static_cast<std::uint64_t>(options_.drift_fraction *
                                                                                        mem.baseline_bytes));
            if (idle > allowed) {
              CLAMS_LOG(kInfo, "worker {} holds {} idle, above its baseline {}: recycling it", job.worker_id,
                        Mib(idle), Mib(mem.baseline_bytes));
              worker_memory_.erase(job.worker_id);
              executor_.Recycle(job.worker_id, "drift");
            }
          } else {
            mem.baseline_bytes = idle;
            mem.has_baseline = true;
          }
        }
        if (worker_memory_.count(job.worker_id) != 0) worker_memory_[job.worker_id].last_class = job.cls.key;
        // hwFetch: the measured record goes into the new views (a native
        // worker wrote "cuda": [] for the front to fill). runningTime: added
        // here only for an external app that does not know the parameter.
        auto front_only = [&](std::string_view name) {
          return std::find(options_.front_only_parameters.begin(), options_.front_only_parameters.end(), name) !=
                 options_.front_only_parameters.end();
        };
        const bool add_hardware = job.params.GetBool("hwFetch") && (gpus || front_only("hwFetch"));
        const bool add_time = front_only("runningTime") && job.params.GetBool("runningTime");
        response.body = add_hardware || add_time
                            ? AddProfiling(job, result, window ? &*window : nullptr, add_hardware, add_time)
                            : std::move(result.answer.body);
      } else {
        response.body = std::move(result.answer.body);
      }
      break;
    }
    case ExecResult::Fate::kWorkerDied: {
      // SIGKILL from outside (the kernel's or the driver's OOM killer; our
      // own timeout kills are kTimedOut) is treated as running out of
      // memory: the estimate goes up so a retry has room.
      if (result.signal == SIGKILL && gpus) {
        metrics_.Add("clams_oom_total", {});
        if (profiles_ != nullptr) {
          Status s = profiles_->RecordOom(job.cls, ClassParameters(job.params), growth,
                                          vram::ScaleBytes(job.need_bytes, vram::kOomRaiseFactor), device_name);
          if (!s.ok()) CLAMS_LOG(kWarning, "could not update the profile: {}", s.ToString());
        }
      }
      worker_memory_.erase(job.worker_id);
      AnnotateOutcome o = runner_.ErrorViewAnswer(job.call.request.body, job.raw, kHttpInternalError,
                                                  result.fate_text, FailureKind::kAppError);
      response = HttpResponse{kHttpInternalError, o.content_type, {}, std::move(o.body)};
      break;
    }
    case ExecResult::Fate::kTimedOut: {
      worker_memory_.erase(job.worker_id);
      AnnotateOutcome o = runner_.ErrorViewAnswer(job.call.request.body, job.raw, kHttpGatewayTimeout,
                                                  result.fate_text, FailureKind::kAppError);
      response = HttpResponse{kHttpGatewayTimeout, o.content_type, {}, std::move(o.body)};
      break;
    }
    case ExecResult::Fate::kNotSent:  // handled above
    case ExecResult::Fate::kLost: {
      AnnotateOutcome o = runner_.ErrorViewAnswer(job.call.request.body, job.raw, kHttpInternalError,
                                                  result.fate_text, FailureKind::kAppError);
      response = HttpResponse{kHttpInternalError, o.content_type, {}, std::move(o.body)};
      break;
    }
  }
  if (gpus) response.headers.emplace_back("X-Clams-Vram", vram::VramHeaderValue(job.estimate, job.need_bytes, growth));
  Answer(job, std::move(response));
  jobs_.erase(it);
  Pump();
  MaybeFinishDrain();
}

bool Scheduler::Ready(std::string* why) const {
  auto say = [why](std::string text) {
    if (why != nullptr) *why = std::move(text);
    return false;
  };
  if (draining_) return say("draining");
  bool any_up = false;
  for (const auto& w : executor_.Workers()) {
    if (w.state == vram::WorkerState::kIdle || w.state == vram::WorkerState::kBusy) any_up = true;
  }
  if (!any_up) return say("no worker is ready");
  if (queue_.size() >= options_.max_queue) return say("the queue is full");
  if (HasGpus() && profiles_ != nullptr && profiles_->size() > 0) {
    std::uint64_t smallest = UINT64_MAX;
    for (const auto& [key, p] : profiles_->All()) {
      std::uint64_t need = static_cast<std::uint64_t>(p.peak_bytes * (1 + options_.estimates.margin));
      smallest = std::min(smallest, need);
    }
    const auto ledger = InFlightLedger();
    bool soon = false;
    for (const auto& d : Devices()) {
      const bool will_free = std::any_of(ledger.begin(), ledger.end(),
                                         [&](const vram::InFlight& f) { return f.device == d.index; });
      if (will_free || vram::HeadroomBytes(d, ledger, options_.admission) >= static_cast<std::int64_t>(smallest)) {
        soon = true;
      }
    }
    if (!soon) {
      return say("no device has room for the smallest known request class (" + Mib(smallest) +
                 ") and nothing running will free memory");
    }
  }
  return true;
}

json::object Scheduler::Runtime() const {
  json::object rt;
  rt["mode"] = executor_.kind() == "in-process" ? "development" : "production";
  rt["executor"] = executor_.kind();
  const auto ledger = InFlightLedger();
  json::array devices;
  if (sampler_ != nullptr) {
    for (const auto& d : sampler_->Latest().devices) {
      json::object o;
      o["index"] = d.index;
      o["name"] = d.name;
      o["uuid"] = d.uuid;
      o["total_bytes"] = d.total_bytes;
      o["used_bytes"] = d.used_bytes;
      o["free_bytes"] = d.free_bytes;
      o["reserved_bytes"] = vram::OutstandingBytes(d.index, ledger);
      if (d.simulated) {
        o["high_water_bytes"] = d.high_water_bytes;
        o["oom_events"] = d.oom_events;
      }
      devices.push_back(std::move(o));
    }
    rt["accounting"] = sampler_->per_process() ? "per_process" : "device";
  }
  rt["devices"] = std::move(devices);
  json::array workers;
  for (const auto& w : executor_.Workers()) {
    json::object o;
    o["id"] = w.id;
    o["pid"] = w.pid;
    if (w.device >= 0) {
      o["device"] = w.device;
    } else {
      o["device"] = nullptr;
    }
    o["state"] = StateName(w.state);
    o["requests"] = w.requests;
    o["vram_bytes"] = sampler_ != nullptr ? sampler_->WorkerUsage(w.id) : 0;
    auto mem = worker_memory_.find(w.id);
    o["last_class"] = mem != worker_memory_.end() ? mem->second.last_class : "";
    workers.push_back(std::move(o));
  }
  rt["workers"] = std::move(workers);
  json::object queue;
  queue["length"] = queue_.size();
  double oldest = 0;
  if (!queue_.empty()) oldest = Seconds(Clock::now() - jobs_.at(queue_.front())->arrived);
  queue["oldest_wait_seconds"] = oldest;
  queue["running"] = running_by_worker_.size();
  rt["queue"] = std::move(queue);
  json::object profiles;
  profiles["count"] = profiles_ != nullptr ? profiles_->size() : 0;
  if (profiles_ != nullptr) {
    profiles["directory"] = profiles_->directory().string();
    json::array list;
    for (const auto& [key, p] : profiles_->All()) {
      json::object e;
      e["key"] = key;
      e["peak_bytes"] = p.peak_bytes;
      e["warm_peak_bytes"] = p.warm_peak_bytes;
      e["samples"] = p.samples;
      e["oom_events"] = p.oom_events;
      e["parameters"] = p.parameters;
      list.push_back(std::move(e));
    }
    profiles["classes"] = std::move(list);
  }
  rt["profiles"] = std::move(profiles);
  rt["draining"] = draining_;
  return rt;
}

void Scheduler::UpdateGauges() {
  metrics_.Set("clams_queue_length", {}, static_cast<double>(queue_.size()));
  metrics_.ClearSeries("clams_workers");
  for (auto s : {vram::WorkerState::kStarting, vram::WorkerState::kIdle, vram::WorkerState::kBusy,
                 vram::WorkerState::kStopping}) {
    metrics_.Set("clams_workers", {{"state", std::string(StateName(s))}}, 0);
  }
  metrics_.ClearSeries("clams_worker_vram_bytes");
  for (const auto& w : executor_.Workers()) {
    Labels state{{"state", std::string(StateName(w.state))}};
    metrics_.Set("clams_workers", state, metrics_.Value("clams_workers", state) + 1);
    if (sampler_ != nullptr) {
      metrics_.Set("clams_worker_vram_bytes", {{"worker", std::to_string(w.id)}, {"pid", std::to_string(w.pid)}},
                   static_cast<double>(sampler_->WorkerUsage(w.id)));
    }
  }
  metrics_.ClearSeries("clams_gpu_memory_total_bytes");
  metrics_.ClearSeries("clams_gpu_memory_used_bytes");
  metrics_.ClearSeries("clams_gpu_memory_reserved_bytes");
  if (sampler_ != nullptr) {
    const auto ledger = InFlightLedger();
    for (const auto& d : sampler_->Latest().devices) {
      Labels l{{"device", std::to_string(d.index)}, {"uuid", d.uuid}};
      metrics_.Set("clams_gpu_memory_total_bytes", l, static_cast<double>(d.total_bytes));
      metrics_.Set("clams_gpu_memory_used_bytes", l, static_cast<double>(d.used_bytes));
      metrics_.Set("clams_gpu_memory_reserved_bytes", l,
                   static_cast<double>(vram::OutstandingBytes(d.index, ledger)));
    }
    metrics_.Set("clams_gpu_accounting_per_process", {}, sampler_->per_process() ? 1 : 0);
  }
  metrics_.Set("clams_profiles", {}, profiles_ != nullptr ? static_cast<double>(profiles_->size()) : 0);
}

void Scheduler::Drain(std::chrono::milliseconds grace, std::function<void()> done) {
  if (draining_) return;
  draining_ = true;
  drain_done_ = std::move(done);
  CLAMS_LOG(kInfo, "draining: {} queued and {} running request(s) may finish (up to {} s)", queue_.size(),
            running_by_worker_.size(), grace.count() / 1000);
  drain_timer_ = loop_.After(grace, [this] {
    CLAMS_LOG(kWarning, "drain time is up: refusing {} queued request(s)", queue_.size());
    while (!queue_.empty()) {
      const std::uint64_t id = queue_.front();
      Job& job = *jobs_.at(id);
      loop_.Cancel(job.queue_timer);
      Reject(job, kHttpUnavailable, "draining", "the server is shutting down", true);
      queue_.pop_front();
      jobs_.erase(id);
    }
    auto done_fn = std::move(drain_done_);
    drain_done_ = nullptr;
    if (done_fn) done_fn();
  });
  MaybeFinishDrain();
}

void Scheduler::MaybeFinishDrain() {
  if (!draining_ || !drain_done_ || !queue_.empty() || !running_by_worker_.empty()) return;
  loop_.Cancel(drain_timer_);
  auto done_fn = std::move(drain_done_);
  drain_done_ = nullptr;
  done_fn();
}

}  // namespace clams::server
