// vram_sim: a discrete-event simulation of a whisper-like GPU app served on
// one 24 GiB card under four policies, on the same arrival sequence:
//
//   (a) python-sdk   the Python SDK today: 4 gunicorn workers
//                    (min(2 x cores + 1, total_MiB / 6000)), persistent, each
//                    with a growing model cache, no admission: an allocation
//                    past capacity is a CUDA OOM that fails the request.
//   (b) py-proposal  the Python SDK proposal (seeds/vram-management-proposal.md):
//                    the same workers; before each request the worker checks
//                    the device's free memory against the request's declared
//                    size plus a 10 % safety margin and answers 503 if it does
//                    not fit. It sees what others hold, not what they are about
//                    to allocate (check-then-allocate race).
//   (c) clams-cpp    this repository: the front's admission with
//                    clams::vram::Decide() on estimates (declared, raised to
//                    measured profiles; warm estimates once measured), warm
//                    preference, LRU eviction, bounded backfill; queue of at most
//                    100, 300 s queue timeout (then 503).
//   (d) oracle       exact sizes and perfect knowledge of every allocation:
//                    admits whenever the exact growth fits, on the worker that
//                    needs least; same workers, queue bounds, backfill window and
//                    eviction as (c), no safety margin.
//
// The workload (same costs for every policy): model sizes of the vram-workload
// app (DESIGN.md §7), activations 15 % of the weights while a request computes,
// a CUDA context per worker process at its first request, model loading from
// disk on a cache miss, and a card whose compute is shared: up to
// kComputeCapacity requests run at full speed, more share it (processor
// sharing). Arrivals are Poisson at twice the capacity the oracle measures in a
// saturated pilot run. Simulated time only; no sleeping.
//
//   clams_vram_sim [--seed N] [--horizon SECONDS] [--sweep SEEDS]
//
// Prints one table (seed N), a summary of the same comparison over seeds
// 1..SEEDS (default 10; 0 skips it), and the targets of the main run with
// PASS/FAIL. Exits 1 if a target fails.
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "clams/base/log.h"
#include "clams/vram/vram.h"

namespace {

namespace vram = ::clams::vram;
using vram::Clock;

constexpr std::uint64_t kMiB = std::uint64_t{1} << 20;
constexpr std::uint64_t kGiB = std::uint64_t{1} << 30;

// ---------------------------------------------------------------------------
// The machine and the workload.

// One RTX 4090-class card.
constexpr std::uint64_t kTotal = 24 * kGiB;
// Both worker formulas give 4 here: the Python SDK's min(2 x cores + 1,
// total_MiB / est_gpu_mem_typ) and DESIGN.md §7's default (est_gpu_mem_typ 6000).
constexpr int kWorkers = 4;
constexpr std::int64_t kEstGpuMemTypMb = 6000;
// What a CUDA context costs a process (PyTorch with cuDNN: 300-500 MiB).
constexpr std::uint64_t kContextBytes = 384 * kMiB;
// vram-workload: activations are 15 % of the weights while a request computes.
constexpr double kActivationFraction = 0.15;
// How many requests the card runs at full speed; more share it equally.
constexpr double kComputeCapacity = 2.0;
// A model loads from disk in this many equal chunks, each allocated on the GPU
// when read (torch.load with map_location=cuda allocates tensor by tensor).
constexpr int kLoadChunks = 4;
// A recycled worker: its process exits (memory returns), a new one starts.
constexpr double kStopSeconds = 0.5;
constexpr double kStartSeconds = 2.0;
// The Python proposal's safety margin: 10 % of total VRAM.
constexpr double kProposalSafetyFraction = 0.10;
// clams-cpp: --vram-headroom, --max-queue, --queue-timeout and the backfill window.
constexpr std::uint64_t kClamsHeadroom = 512 * kMiB;
constexpr std::size_t kMaxQueue = 100;
constexpr double kQueueTimeoutSeconds = 300;
constexpr double kBackfillWindowSeconds = 10;
// Simulated time: arrivals for kHorizon seconds; utilisation and throughput
// are measured after the warm-up (the queue is full of work by then).
constexpr double kDefaultHorizon = 600;
constexpr double kWarmupSeconds = 60;
// The run: a fixed seed (chosen before any result was seen), then a sweep
// over seeds 1..N for how much one run depends on its arrival sequence.
constexpr std::uint64_t kDefaultSeed = 20250108;
constexpr int kDefaultSweepSeeds = 10;
// The targets.
constexpr double kCompletionTarget = 0.90;   // (c) completes >= 90 % of (d)
constexpr double kUtilisationTarget = 0.80;  // (c) mean utilisation >= 80 %
constexpr double kDecideP99TargetUs = 100;
// The pilot that measures capacity: far more arrivals than any policy serves.
constexpr double kPilotRate = 5.0;
constexpr double kOverload = 2.0;
// Events closer than this are simultaneous.
constexpr double kEpsilon = 1e-9;

struct ModelSpec {
  const char* name;
  std::uint64_t weights;
  double load_seconds;     // from disk to GPU on a cache miss
  double compute_seconds;  // mean work at full speed (a clip of a few minutes)
  double share;            // of the request mix
};

// A whisper mix: turbo is the default, large for quality, tiny/base for speed.
constexpr ModelSpec kModels[] = {
    {"tiny", 1 * kGiB, 1.0, 1.5, 0.10},    {"base", 1 * kGiB, 1.0, 2.0, 0.15},
    {"small", 2 * kGiB, 1.5, 4.0, 0.15},   {"medium", 5 * kGiB, 3.0, 8.0, 0.10},
    {"large", 10 * kGiB, 5.0, 15.0, 0.15}, {"turbo", 6 * kGiB, 3.5, 5.0, 0.35},
};
constexpr int kModelCount = sizeof(kModels) / sizeof(kModels[0]);
// Each request's work is the model's mean times a factor uniform in this range
// (audio lengths vary).
constexpr double kWorkFactorMin = 0.5;
constexpr double kWorkFactorMax = 1.5;

std::uint64_t Activations(int model) {
  return static_cast<std::uint64_t>(static_cast<double>(kModels[model].weights) *
                                    kActivationFraction);
}
// What the vram-workload app declares (EstimateVram): weights + activations.
std::uint64_t Declared(int model) { return kModels[model].weights + Activations(model); }

struct Arrival {
  double time;
  int model;
  double work;
};

std::vector<Arrival> MakeArrivals(double rate, double horizon, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::exponential_distribution<double> gap(rate);
  std::vector<double> shares;
  for (const ModelSpec& m : kModels) shares.push_back(m.share);
  std::discrete_distribution<int> pick(shares.begin(), shares.end());
  std::uniform_real_distribution<double> factor(kWorkFactorMin, kWorkFactorMax);
  std::vector<Arrival> out;
  for (double t = gap(rng); t < horizon; t += gap(rng)) {
    const int model = pick(rng);
    out.push_back({t, model, kModels[model].compute_seconds * factor(rng)});
  }
  return out;
}

// ---------------------------------------------------------------------------
// The simulation.

enum class Policy { kPythonSdk, kPythonProposal, kClamsCpp, kOracle };

const char* PolicyName(Policy p) {
  switch (p) {
    case Policy::kPythonSdk:
      return "(a) python-sdk";
    case Policy::kPythonProposal:
      return "(b) py-proposal";
    case Policy::kClamsCpp:
      return "(c) clams-cpp";
    case Policy::kOracle:
      return "(d) oracle";
  }
  return "?";
}

struct Result {
  Policy policy = Policy::kOracle;
  int arrivals = 0;
  int completed = 0;
  int completed_after_warmup = 0;
  int ooms = 0;
  int rejected = 0;  // 503: queue full, queue timeout, or the proposal's check
  int pending = 0;   // queued or running at the end
  int evictions = 0;
  double p50_latency = 0;
  double p99_latency = 0;
  double mean_util = 0;       // time-weighted used / total after the warm-up
  double mean_committed = 0;  // the same with what admitted requests will still allocate
  std::uint64_t peak_used = 0;
  std::vector<double> decide_us;  // (c): real time of each Decide() call
};

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t i = static_cast<std::size_t>(std::ceil(q * static_cast<double>(v.size()))) - 1;
  return v[std::min(i, v.size() - 1)];
}

enum class WState { kIdle, kBusy, kStopping, kStarting };

struct SimWorker {
  int id = 0;
  WState state = WState::kIdle;
  double state_until = 0;         // end of kStopping / kStarting
  std::uint32_t cache = 0;        // bit per model held in the worker's model cache
  bool context = false;           // CUDA context created
  std::uint64_t activations = 0;  // held by the running request
  std::uint64_t loading = 0;      // weights of a model being loaded, so far
  int last_model = -1;
  double last_used = 0;
  double idle_since = 0;

  std::uint64_t Usage() const {
    std::uint64_t u = (context ? kContextBytes : 0) + activations + loading;
    for (int m = 0; m < kModelCount; ++m) {
      if (cache & (1u << m)) u += kModels[m].weights;
    }
    return u;
  }
};

struct Running {
  int request = 0;  // index into arrivals
  int worker = 0;
  bool loading = false;
  double load_start = 0;
  double load_end = 0;          // when the next chunk of the model has been read
  int chunks = 0;               // chunks of the model on the GPU
  double remaining = 0;         // work left (seconds at full speed)
  std::uint64_t need = 0;       // what admission reserved (c, d)
  std::uint64_t allocated = 0;  // the request's growth so far
  bool warm = false;            // (c): dispatched as warm
  double dispatched = 0;
};

struct Queued {
  int request = 0;
  vram::Estimate estimate;
  std::optional<double> head_since;  // when it became the blocked head (c, d)
};

class Simulation {
 public:
  Simulation(Policy policy, const std::vector<Arrival>& arrivals, double horizon,
             const std::filesystem::path& profile_root)
      : policy_(policy), arrivals_(arrivals), horizon_(horizon) {
    result_.policy = policy;
    for (int i = 0; i < kWorkers; ++i) {
      SimWorker w;
      w.id = i + 1;
      workers_.push_back(w);
    }
    if (policy_ == Policy::kClamsCpp) {
      auto store = vram::ProfileStore::Open({.root = profile_root, .app_id = kAppId});
      if (store.ok()) store_ = *std::move(store);
      for (int m = 0; m < kModelCount; ++m) {
        classes_.push_back(vram::RequestClass::Make(
            kAppId, "v1", std::string("{\"model\":\"") + kModels[m].name + "\"}"));
      }
      options_.headroom_bytes = kClamsHeadroom;
    }
  }

  Result Run() {
    std::size_t next_arrival = 0;
    while (true) {
      double t = horizon_;
      if (next_arrival < arrivals_.size()) t = std::min(t, arrivals_[next_arrival].time);
      const double rate = ComputeRate();
      for (const Running& r : running_) {
        t = std::min(t, r.loading ? r.load_end : now_ + r.remaining / rate);
      }
      for (const SimWorker& w : workers_) {
        if (w.state == WState::kStopping || w.state == WState::kStarting) {
          t = std::min(t, w.state_until);
        }
      }
      if (Bounded() && !queue_.empty()) {
        t = std::min(t, arrivals_[queue_.front().request].time + kQueueTimeoutSeconds);
      }
      Advance(std::max(t, now_), rate);
      if (now_ >= horizon_ - kEpsilon) break;

      WorkerTransitions();
      LoadEnds();
      Completions();
      while (next_arrival < arrivals_.size() && arrivals_[next_arrival].time <= now_ + kEpsilon) {
        Arrive(static_cast<int>(next_arrival++));
      }
      Timeouts();
      Schedule();
    }
    result_.arrivals = static_cast<int>(next_arrival);
    result_.pending = static_cast<int>(queue_.size() + running_.size());
    result_.p50_latency = Percentile(latencies_, 0.50);
    result_.p99_latency = Percentile(latencies_, 0.99);
    const double denominator = static_cast<double>(kTotal) * (horizon_ - kWarmupSeconds);
    result_.mean_util = util_integral_ / denominator;
    result_.mean_committed = std::min(1.0, committed_integral_ / denominator);
    return result_;
  }

 private:
  static constexpr char kAppId[] = "http://apps.clams.ai/vram-workload/v1";

  // What admitted requests have not allocated yet (c, d).
  std::uint64_t Outstanding() const {
    std::uint64_t o = 0;
    for (const Running& r : running_) o += r.need > r.allocated ? r.need - r.allocated : 0;
    return o;
  }

  bool Bounded() const { return policy_ == Policy::kClamsCpp || policy_ == Policy::kOracle; }

  std::uint64_t Used() const {
    std::uint64_t u = 0;
    for (const SimWorker& w : workers_) u += w.Usage();
    return u;
  }

  double ComputeRate() const {
    int computing = 0;
    for (const Running& r : running_) computing += r.loading ? 0 : 1;
    return computing <= kComputeCapacity ? 1.0 : kComputeCapacity / computing;
  }

  void Advance(double t, double rate) {
    const double dt = t - now_;
    if (dt > 0) {
      const double from = std::max(now_, kWarmupSeconds);
      if (t > from) {
        util_integral_ += static_cast<double>(Used()) * (t - from);
        committed_integral_ += static_cast<double>(Used() + Outstanding()) * (t - from);
      }
      for (Running& r : running_) {
        if (!r.loading) r.remaining -= dt * rate;
      }
    }
    now_ = t;
  }

  // Tries to allocate `bytes` for worker `w`; false is a CUDA OOM.
  bool Allocate(std::uint64_t bytes) { return Used() + bytes <= kTotal; }

  void WorkerTransitions() {
    for (SimWorker& w : workers_) {
      if (w.state == WState::kStopping && w.state_until <= now_ + kEpsilon) {
        // The process exited: its memory is back. A replacement starts.
        w.cache = 0;
        w.context = false;
        w.activations = 0;
        w.loading = 0;
        w.last_model = -1;
        w.state = WState::kStarting;
        w.state_until = now_ + kStartSeconds;
      } else if (w.state == WState::kStarting && w.state_until <= now_ + kEpsilon) {
        w.state = WState::kIdle;
        w.idle_since = now_;
        w.last_used = now_;
      }
    }
  }

  // The model is on the GPU: allocate the activations and start computing.
  // Returns false after an OOM (the request failed).
  bool StartCompute(Running& r) {
    SimWorker& w = workers_[r.worker];
    const int model = arrivals_[r.request].model;
    if (!Allocate(Activations(model))) return false;
    w.activations = Activations(model);
    r.allocated += Activations(model);
    r.loading = false;
    r.remaining = arrivals_[r.request].work;
    peak_used_update();
    return true;
  }

  // The next chunk of the model has been read: allocate it. Returns false
  // after an OOM.
  bool LoadChunk(Running& r) {
    SimWorker& w = workers_[r.worker];
    const int model = arrivals_[r.request].model;
    const std::uint64_t weights = kModels[model].weights;
    const std::uint64_t chunk =
        r.chunks + 1 == kLoadChunks ? weights - w.loading : weights / kLoadChunks;
    if (!Allocate(chunk)) return false;
    w.loading += chunk;
    r.allocated += chunk;
    ++r.chunks;
    peak_used_update();
    if (r.chunks < kLoadChunks) {
      r.load_end = r.load_start + kModels[model].load_seconds * (r.chunks + 1) / kLoadChunks;
      return true;
    }
    w.loading = 0;
    w.cache |= 1u << model;
    return StartCompute(r);
  }

  void peak_used_update() { result_.peak_used = std::max(result_.peak_used, Used()); }

  void Fail(std::size_t index) {
    Running r = running_[index];
    running_.erase(running_.begin() + static_cast<std::ptrdiff_t>(index));
    SimWorker& w = workers_[r.worker];
    ++result_.ooms;
    w.activations = 0;
    w.loading = 0;  // a half-loaded model is freed with the exception
    if (policy_ == Policy::kClamsCpp || policy_ == Policy::kOracle) {
      // The server recycles a worker after an OOM and raises the estimate.
      if (store_) {
        const std::uint64_t floor = std::min(
            std::max(vram::ScaleBytes(r.need, vram::kOomRaiseFactor), vram::ScaleBytes(r.allocated, vram::kOomRaiseFactor)),
            kTotal - kClamsHeadroom - vram::kDefaultFreshWorkerBytes);
        store_->RecordOom(classes_[arrivals_[r.request].model], {}, r.warm, floor, "Simulated 24 GiB").IgnoreError();
      }
      w.state = WState::kStopping;
      w.state_until = now_ + kStopSeconds;
    } else {
      // A PyTorch OOM is an exception: the worker lives on with its cache.
      w.state = WState::kIdle;
      w.idle_since = now_;
    }
  }

  void LoadEnds() {
    for (std::size_t i = 0; i < running_.size();) {
      Running& r = running_[i];
      if (r.loading && r.load_end <= now_ + kEpsilon) {
        if (!LoadChunk(r)) {
          Fail(i);
          continue;
        }
      }
      ++i;
    }
  }

  void Completions() {
    bool profiles_changed = false;
    for (std::size_t i = 0; i < running_.size();) {
      Running& r = running_[i];
      if (r.loading || r.remaining > kEpsilon) {
        ++i;
        continue;
      }
      SimWorker& w = workers_[r.worker];
      const int model = arrivals_[r.request].model;
      w.activations = 0;
      w.state = WState::kIdle;
      w.last_model = model;
      w.last_used = now_;
      w.idle_since = now_;
      ++result_.completed;
      if (arrivals_[r.request].time >= kWarmupSeconds) ++result_.completed_after_warmup;
      latencies_.push_back(now_ - arrivals_[r.request].time);
      if (store_) {
        // The sampler's window: the worker's growth during the request.
        store_
            ->Record(classes_[model], {}, r.allocated, r.warm, (now_ - r.dispatched) * 1000,
                     "Simulated 24 GiB")
            .IgnoreError();
        profiles_changed = true;
      }
      running_.erase(running_.begin() + static_cast<std::ptrdiff_t>(i));
    }
    if (profiles_changed) {
      for (Queued& q : queue_) q.estimate = EstimateFor(arrivals_[q.request].model);
    }
  }

  // The class's mean duration from its profile (0: unknown).
  double ExpectedMs(int model) const {
    if (!store_) return 0;
    std::optional<vram::Profile> p = store_->Get(classes_[model].key);
    return p ? p->mean_duration_ms : 0;
  }

  vram::Estimate EstimateFor(int model) const {
    if (policy_ != Policy::kClamsCpp) return {};
    std::optional<vram::Profile> p = store_ ? store_->Get(classes_[model].key) : std::nullopt;
    return vram::ResolveEstimate(Declared(model), p ? &*p : nullptr, kEstGpuMemTypMb, kTotal);
  }

  void Arrive(int request) {
    if (Bounded() && queue_.size() >= kMaxQueue) {
      ++result_.rejected;  // 503: queue full
      return;
    }
    queue_.push_back({request, EstimateFor(arrivals_[request].model), std::nullopt});
  }

  void Timeouts() {
    if (!Bounded()) return;
    while (!queue_.empty() &&
           arrivals_[queue_.front().request].time + kQueueTimeoutSeconds <= now_ + kEpsilon) {
      queue_.pop_front();
      ++result_.rejected;  // 503: waited too long
    }
  }

  void Dispatch(int request, int worker, std::uint64_t need, bool warm) {
    SimWorker& w = workers_[worker];
    w.state = WState::kBusy;
    Running r;
    r.request = request;
    r.worker = worker;
    r.need = need;
    r.warm = warm;
    r.dispatched = now_;
    const int model = arrivals_[request].model;
    if (w.cache & (1u << model)) {
      running_.push_back(r);
      if (!StartCompute(running_.back())) Fail(running_.size() - 1);
    } else {
      // CUDA is initialised first (the context), then the model is read.
      r.loading = true;
      r.load_start = now_;
      r.load_end = now_ + kModels[model].load_seconds / kLoadChunks;
      running_.push_back(r);
      if (!w.context) {
        if (!Allocate(kContextBytes)) {
          Fail(running_.size() - 1);
          return;
        }
        w.context = true;
        running_.back().allocated += kContextBytes;
        peak_used_update();
      }
    }
  }

  void Schedule() {
    switch (policy_) {
      case Policy::kPythonSdk:
      case Policy::kPythonProposal:
        ScheduleGunicorn();
        break;
      case Policy::kClamsCpp:
        ScheduleClams();
        break;
      case Policy::kOracle:
        ScheduleOracle();
        break;
    }
  }

  // Gunicorn: the queue is the listen backlog; an idle worker takes the next
  // connection (the one idle longest, as accept() would hand it out).
  void ScheduleGunicorn() {
    while (!queue_.empty()) {
      int worker = -1;
      for (std::size_t i = 0; i < workers_.size(); ++i) {
        if (workers_[i].state != WState::kIdle) continue;
        if (worker < 0 || workers_[i].idle_since < workers_[worker].idle_since) {
          worker = static_cast<int>(i);
        }
      }
      if (worker < 0) return;
      const int request = queue_.front().request;
      queue_.pop_front();
      if (policy_ == Policy::kPythonProposal) {
        // _check_vram_available(required, safety_margin=0.1) with the free
        // memory of the device as nvidia-smi reports it now.
        const std::uint64_t free = kTotal - Used();
        const double required = static_cast<double>(Declared(arrivals_[request].model)) +
                                kProposalSafetyFraction * static_cast<double>(kTotal);
        if (static_cast<double>(free) < required) {
          ++result_.rejected;  // InsufficientVRAMError -> 503
          continue;
        }
      }
      Dispatch(request, worker, 0, false);
    }
  }

  vram::WorkerState SlotState(WState s) const {
    switch (s) {
      case WState::kIdle:
        return vram::WorkerState::kIdle;
      case WState::kBusy:
        return vram::WorkerState::kBusy;
      case WState::kStopping:
        return vram::WorkerState::kStopping;
      case WState::kStarting:
        return vram::WorkerState::kStarting;
    }
    return vram::WorkerState::kStarting;
  }

  Clock::time_point At(double seconds) const {
    return Clock::time_point{} + std::chrono::duration_cast<Clock::duration>(
                                     std::chrono::duration<double>(seconds + 1.0));
  }

  void ScheduleClams() {
    if (queue_.empty()) return;
    std::vector<vram::QueuedRequest> queue;
    queue.reserve(queue_.size());
    for (const Queued& q : queue_) {
      vram::QueuedRequest r;
      r.id = static_cast<std::uint64_t>(q.request);
      r.class_key = classes_[arrivals_[q.request].model].key;
      r.estimate = q.estimate;
      r.arrived = At(arrivals_[q.request].time);
      r.expected_ms = ExpectedMs(arrivals_[q.request].model);
      queue.push_back(std::move(r));
    }
    std::vector<vram::WorkerSlot> workers;
    for (std::size_t i = 0; i < workers_.size(); ++i) {
      const SimWorker& w = workers_[i];
      vram::WorkerSlot s;
      s.id = static_cast<int>(i);
      s.device = 0;
      s.state = SlotState(w.state);
      s.running = w.state == WState::kBusy ? 1 : 0;
      for (int m = 0; m < kModelCount; ++m) {
        if (w.cache & (1u << m)) s.classes.push_back(classes_[m].key);
      }
      s.usage_bytes = w.Usage();
      s.last_used = At(w.last_used);
      workers.push_back(std::move(s));
    }
    std::vector<vram::InFlight> in_flight;
    for (const Running& r : running_) {
      vram::InFlight f;
      f.request_id = static_cast<std::uint64_t>(r.request);
      f.worker_id = r.worker;
      f.device = 0;
      f.need_bytes = r.need;
      f.growth_bytes = r.allocated;
      f.started = At(r.dispatched);
      f.expected_ms = ExpectedMs(arrivals_[r.request].model);
      in_flight.push_back(f);
    }
    const std::vector<vram::DeviceView> devices = {{0, kTotal, kTotal - Used()}};
    const auto start = std::chrono::steady_clock::now();
    const vram::Decision d = vram::Decide(queue, workers, devices, in_flight, At(now_), options_);
    const auto end = std::chrono::steady_clock::now();
    result_.decide_us.push_back(std::chrono::duration<double, std::micro>(end - start).count());
    for (int id : d.evict) Evict(id);
    for (const auto& x : d.dispatches) {
      const int request = static_cast<int>(x.request_id);
      queue_.erase(std::find_if(queue_.begin(), queue_.end(),
                                [&](const Queued& q) { return q.request == request; }));
      Dispatch(request, x.worker_id, x.need_bytes, x.warm);
    }
  }

  void Evict(int worker) {
    SimWorker& w = workers_[worker];
    w.state = WState::kStopping;
    w.state_until = now_ + kStopSeconds;
    ++result_.evictions;
  }

  // What request `model` would grow worker `w` by, exactly.
  static std::uint64_t ExactGrowth(const SimWorker& w, int model) {
    std::uint64_t g = Activations(model);
    if (!(w.cache & (1u << model))) g += kModels[model].weights + (w.context ? 0 : kContextBytes);
    return g;
  }

  // The oracle: exact growth per worker, no margin, the same queue bounds,
  // backfill window and LRU eviction as (c).
  void ScheduleOracle() {
    if (queue_.empty()) return;
    std::int64_t avail = static_cast<std::int64_t>(kTotal - Used());
    std::int64_t pending = 0;  // memory of stopping workers, about to return
    for (const Running& r : running_) {
      avail -= static_cast<std::int64_t>(r.need) - static_cast<std::int64_t>(r.allocated);
    }
    for (const SimWorker& w : workers_) {
      if (w.state == WState::kStopping) pending += static_cast<std::int64_t>(w.Usage());
    }
    const std::uint64_t fresh_growth_base = kContextBytes;
    bool head_seen = false;
    for (std::size_t qi = 0; qi < queue_.size();) {
      const int request = queue_[qi].request;
      const int model = arrivals_[request].model;
      int best = -1;
      std::uint64_t best_growth = 0;
      bool any_idle = false;
      for (std::size_t i = 0; i < workers_.size(); ++i) {
        if (workers_[i].state != WState::kIdle) continue;
        any_idle = true;
        const std::uint64_t g = ExactGrowth(workers_[i], model);
        if (best < 0 || g < best_growth ||
            (g == best_growth && workers_[i].Usage() < workers_[best].Usage())) {
          best = static_cast<int>(i);
          best_growth = g;
        }
      }
      if (!any_idle) return;
      if (static_cast<std::int64_t>(best_growth) <= avail) {
        avail -= static_cast<std::int64_t>(best_growth);
        queue_.erase(queue_.begin() + static_cast<std::ptrdiff_t>(qi));
        Dispatch(request, best, best_growth, false);
        continue;
      }
      if (!head_seen) {
        head_seen = true;
        if (!queue_[qi].head_since) queue_[qi].head_since = now_;
        // Evict least-recently-used idle workers holding memory, as few as
        // needed, if that lets the head fit on a remaining worker or on a
        // fresh replacement.
        std::vector<int> lru;
        for (std::size_t i = 0; i < workers_.size(); ++i) {
          if (workers_[i].state == WState::kIdle && workers_[i].Usage() > 0) {
            lru.push_back(static_cast<int>(i));
          }
        }
        std::sort(lru.begin(), lru.end(),
                  [&](int a, int b) { return workers_[a].last_used < workers_[b].last_used; });
        const std::uint64_t fresh_growth = fresh_growth_base + Declared(model);
        std::int64_t freed = pending;
        int chosen = -1;
        std::int64_t need_after = 0;
        for (int k = 0; k <= static_cast<int>(lru.size()); ++k) {
          if (k > 0) freed += static_cast<std::int64_t>(workers_[lru[k - 1]].Usage());
          // The head runs on the cheapest remaining idle worker, or on a
          // replacement once a worker is gone.
          std::uint64_t need = (k > 0 || pending > 0) ? fresh_growth : kTotal;
          for (std::size_t i = 0; i < workers_.size(); ++i) {
            if (workers_[i].state != WState::kIdle) continue;
            if (std::find(lru.begin(), lru.begin() + k, static_cast<int>(i)) != lru.begin() + k) {
              continue;
            }
            need = std::min(need, ExactGrowth(workers_[i], model));
          }
          if (avail + freed >= static_cast<std::int64_t>(need)) {
            chosen = k;
            need_after = static_cast<std::int64_t>(need);
            break;
          }
        }
        if (chosen >= 0) {
          for (int k = 0; k < chosen; ++k) Evict(lru[k]);
          avail = std::min(avail, avail + freed - need_after);
        }
        if (now_ - *queue_[qi].head_since >= kBackfillWindowSeconds) return;
      }
      ++qi;
    }
  }

  Policy policy_;
  const std::vector<Arrival>& arrivals_;
  double horizon_;
  double now_ = 0;
  std::vector<SimWorker> workers_;
  std::vector<Running> running_;
  std::deque<Queued> queue_;
  std::vector<double> latencies_;
  double util_integral_ = 0;
  double committed_integral_ = 0;
  Result result_;
  // (c)
  std::unique_ptr<vram::ProfileStore> store_;
  std::vector<vram::RequestClass> classes_;
  vram::AdmissionOptions options_;
};

// Decide() alone on the size the design names: 100 queued, 16 workers, 2 devices.
std::vector<double> DecideMicrobenchmark() {
  const Clock::time_point t0 = Clock::time_point{} + std::chrono::seconds(1000);
  std::vector<vram::QueuedRequest> queue;
  for (std::uint64_t i = 0; i < 100; ++i) {
    vram::QueuedRequest r;
    r.id = i;
    r.class_key = vram::Md5Hex("class-" + std::to_string(i % 7));
    r.estimate = {(2 + i % 9) * kGiB, kGiB, vram::EstimateSource::kProfile};
    r.arrived = t0 + std::chrono::milliseconds(i);
    queue.push_back(r);
  }
  std::vector<vram::WorkerSlot> workers;
  std::vector<vram::InFlight> in_flight;
  for (int i = 0; i < 16; ++i) {
    vram::WorkerSlot w;
    w.id = i;
    w.device = i % 2;
    w.state = i % 3 == 0 ? vram::WorkerState::kIdle : vram::WorkerState::kBusy;
    w.running = w.state == vram::WorkerState::kBusy ? 1 : 0;
    w.classes.push_back(vram::Md5Hex("class-" + std::to_string(i % 9)));
    w.usage_bytes = static_cast<std::uint64_t>(i % 5) * kGiB;
    w.last_used = t0 - std::chrono::seconds(i);
    workers.push_back(w);
    if (w.state == vram::WorkerState::kBusy) {
      vram::InFlight f;
      f.request_id = 1000 + static_cast<std::uint64_t>(i);
      f.worker_id = i;
      f.device = i % 2;
      f.need_bytes = 3 * kGiB;
      f.growth_bytes = kGiB;
      in_flight.push_back(f);
    }
  }
  const std::vector<vram::DeviceView> devices = {{0, 80 * kGiB, 20 * kGiB},
                                                 {1, 80 * kGiB, 18 * kGiB}};
  vram::AdmissionOptions options;
  options.headroom_bytes = kClamsHeadroom;
  std::vector<double> us;
  std::size_t sink = 0;
  for (int i = 0; i < 20000; ++i) {
    const auto start = std::chrono::steady_clock::now();
    const vram::Decision d =
        vram::Decide(queue, workers, devices, in_flight, t0 + std::chrono::seconds(5), options);
    const auto end = std::chrono::steady_clock::now();
    sink += d.dispatches.size() + d.evict.size();
    us.push_back(std::chrono::duration<double, std::micro>(end - start).count());
  }
  if (sink == 0) std::printf("(no dispatches in the microbenchmark)\n");
  return us;
}

struct Target {
  std::string what;
  bool pass;
};

// One comparison: the capacity pilot, then the four policies on one arrival
// sequence.
struct Comparison {
  double capacity = 0;
  double rate = 0;
  std::size_t arrivals = 0;
  std::vector<Result> results;  // in Policy order
};

Comparison Compare(std::uint64_t seed, double horizon, const std::filesystem::path& profile_root) {
  Comparison c;
  // Capacity: the oracle's throughput when saturated.
  const std::vector<Arrival> pilot = MakeArrivals(kPilotRate, horizon, seed ^ 0x9e3779b97f4a7c15u);
  const Result saturated = Simulation(Policy::kOracle, pilot, horizon, profile_root).Run();
  c.capacity = saturated.completed_after_warmup / (horizon - kWarmupSeconds);
  c.rate = kOverload * c.capacity;
  const std::vector<Arrival> arrivals = MakeArrivals(c.rate, horizon, seed);
  c.arrivals = arrivals.size();
  const std::filesystem::path root = profile_root / std::to_string(seed);
  for (Policy p :
       {Policy::kPythonSdk, Policy::kPythonProposal, Policy::kClamsCpp, Policy::kOracle}) {
    c.results.push_back(Simulation(p, arrivals, horizon, root / PolicyName(p)).Run());
  }
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  std::uint64_t seed = kDefaultSeed;
  double horizon = kDefaultHorizon;
  int sweep = kDefaultSweepSeeds;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
      seed = std::strtoull(argv[++i], nullptr, 10);
    } else if (std::strcmp(argv[i], "--horizon") == 0 && i + 1 < argc) {
      horizon = std::strtod(argv[++i], nullptr);
    } else if (std::strcmp(argv[i], "--sweep") == 0 && i + 1 < argc) {
      sweep = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: %s [--seed N] [--horizon SECONDS] [--sweep SEEDS]\n", argv[0]);
      return 2;
    }
  }
  if (!(horizon > 2 * kWarmupSeconds) || sweep < 0) {
    std::fprintf(stderr, "--horizon must exceed %.0f s and --sweep be >= 0\n", 2 * kWarmupSeconds);
    return 2;
  }
  clams::log::SetLevel(clams::log::Level::kError);  // the OOM raises of (c) would be noisy

  char dir_template[] = "/tmp/clams-vram-sim-XXXXXX";
  if (::mkdtemp(dir_template) == nullptr) {
    std::perror("mkdtemp");
    return 1;
  }
  const std::filesystem::path profile_root = dir_template;
  const auto wall_start = std::chrono::steady_clock::now();
  const Comparison main_run = Compare(seed, horizon, profile_root);
  std::vector<Comparison> others;
  for (int i = 1; i <= sweep; ++i) {
    others.push_back(Compare(static_cast<std::uint64_t>(i), horizon, profile_root));
  }
  const std::vector<double> micro = DecideMicrobenchmark();
  std::error_code ec;
  std::filesystem::remove_all(profile_root, ec);
  const double wall_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();

  std::printf("clams-cpp VRAM admission: simulated whisper-like workload on one 24 GiB card\n");
  std::printf("  models (weights, share of requests): ");
  for (const ModelSpec& m : kModels) {
    std::printf("%s %.0f GiB %.0f%%  ", m.name, static_cast<double>(m.weights) / kGiB,
                m.share * 100);
  }
  std::printf(
      "\n  activations 15%% of weights; CUDA context %llu MiB per worker; %d workers; "
      "compute shared beyond %.0f concurrent requests\n",
      static_cast<unsigned long long>(kContextBytes / kMiB), kWorkers, kComputeCapacity);
  std::printf(
      "  capacity (oracle, saturated) %.3f req/s; Poisson arrivals at %.3f req/s "
      "(%.0fx) for %.0f s; seed %llu; %zu arrivals\n\n",
      main_run.capacity, main_run.rate, kOverload, horizon, static_cast<unsigned long long>(seed),
      main_run.arrivals);
  std::printf("%-16s %5s %9s %5s %6s %7s %7s %7s %7s %7s %8s\n", "policy", "OOMs", "completed",
              "503s", "evicts", "pending", "p50 s", "p99 s", "util %", "commit%", "peak GiB");
  for (const Result& r : main_run.results) {
    std::printf("%-16s %5d %9d %5d %6d %7d %7.1f %7.1f %7.1f %7.1f %8.2f\n", PolicyName(r.policy),
                r.ooms, r.completed, r.rejected, r.evictions, r.pending, r.p50_latency,
                r.p99_latency, r.mean_util * 100, r.mean_committed * 100,
                static_cast<double>(r.peak_used) / kGiB);
  }
  const Result& clams = main_run.results[2];
  const Result& oracle = main_run.results[3];
  const double decide_p99 = Percentile(clams.decide_us, 0.99);
  std::printf(
      "\nutil %%: time-weighted GPU memory in use / total after the %.0f s warm-up "
      "(commit%%: plus what admitted requests have not allocated yet);\n"
      "503s: queue full, queue timeout, or the proposal's check; latency of completed "
      "requests, arrival to answer\n",
      kWarmupSeconds);
  std::printf("(c) Decide() over the run: %zu calls, p50 %.2f us, p99 %.2f us, max %.2f us\n",
              clams.decide_us.size(), Percentile(clams.decide_us, 0.50), decide_p99,
              Percentile(clams.decide_us, 1.0));
  std::printf("Decide() alone, 100 queued / 16 workers / 2 devices: p50 %.2f us, p99 %.2f us\n",
              Percentile(micro, 0.50), Percentile(micro, 0.99));

  if (!others.empty()) {
    // The same comparison on other arrival sequences: how much the single
    // run above depends on its seed (not part of PASS/FAIL).
    int ooms = 0;
    double util_min = 1, util_max = 0, util_sum = 0;
    double ratio_min = 1e9, ratio_max = 0, ratio_sum = 0;
    int util_pass = 0, ratio_pass = 0;
    for (const Comparison& c : others) {
      const Result& rc = c.results[2];
      const Result& rd = c.results[3];
      ooms += rc.ooms;
      util_min = std::min(util_min, rc.mean_util);
      util_max = std::max(util_max, rc.mean_util);
      util_sum += rc.mean_util;
      const double ratio = rd.completed > 0 ? static_cast<double>(rc.completed) / rd.completed : 0;
      ratio_min = std::min(ratio_min, ratio);
      ratio_max = std::max(ratio_max, ratio);
      ratio_sum += ratio;
      util_pass += rc.mean_util >= kUtilisationTarget ? 1 : 0;
      ratio_pass += ratio >= kCompletionTarget ? 1 : 0;
    }
    const double n = static_cast<double>(others.size());
    std::printf(
        "\nseeds 1..%zu: (c) OOMs %d; util %% min %.1f mean %.1f max %.1f (>= 80 in %d); "
        "completed (c)/(d) min %.2f mean %.2f max %.2f (>= 0.90 in %d)\n",
        others.size(), ooms, util_min * 100, util_sum / n * 100, util_max * 100, util_pass,
        ratio_min, ratio_sum / n, ratio_max, ratio_pass);
  }
  std::printf("simulated %.0f s, %d comparison(s) of 5 runs, in %.2f s of real time\n\n", horizon,
              1 + sweep, wall_s);

  const std::vector<Target> targets = {
      {"(c) zero OOM", clams.ooms == 0},
      {"(c) completes >= 90% of (d) (" + std::to_string(clams.completed) + " vs " +
           std::to_string(oracle.completed) + ")",
       clams.completed >= kCompletionTarget * oracle.completed},
      {fmt::format("(c) mean VRAM utilisation under saturation >= 80% ({:.1f}%)",
                   clams.mean_util * 100),
       clams.mean_util >= kUtilisationTarget},
      {"(c) Decide() p99 < 100 us over the run", decide_p99 < kDecideP99TargetUs},
  };
  bool all = true;
  for (const Target& t : targets) {
    std::printf("%s  %s\n", t.pass ? "PASS" : "FAIL", t.what.c_str());
    all = all && t.pass;
  }
  return all ? 0 : 1;
}
