// vram_sim: a discrete-event simulation of a whisper-like GPU app served on
// one 24 GiB card under six policies, on the same arrival sequence:
//
//   (a)  python-sdk   the Python SDK with persistent workers: 4 gunicorn
//                     workers (min(2 x cores + 1, total_MiB / 6000)), one
//                     request at a time each, each with a growing model cache,
//                     no admission: an allocation past capacity is a CUDA OOM
//                     that fails the request.
//   (a') sdk-default  the Python SDK as it ships: the same 4 workers with
//                     gunicorn's max_requests=1 and threads=2. Gunicorn counts
//                     a request when it starts handling it, so a worker
//                     process takes the requests waiting when it is ready (up
//                     to its 2 threads, sharing its model copy), then no more,
//                     and is replaced once they are done: every process pays
//                     its start, a CUDA context and its model loads. No
//                     admission.
//   (b)  py-proposal  the Python SDK proposal (seeds/vram-management-proposal.md):
//                     (a)'s workers; before each request the worker checks the
//                     device's free memory against the request's declared size
//                     plus a 10 % safety margin and answers 503 if it does not
//                     fit. It sees what others hold, not what they are about to
//                     allocate (check-then-allocate race).
//   (c)  clams-cpp    this repository with --threads 1: the front's admission
//                     with clams::vram::Decide() and clams::vram::Ledger on
//                     estimates (declared, raised to measured profiles; warm
//                     estimates once measured, or seeded by a cold success:
//                     its growth less what its worker kept), warm preference,
//                     LRU eviction, EASY backfilling; queue of at most 100,
//                     300 s queue timeout (then 503). A queued request keeps
//                     the estimate it arrived with, as the server's intake
//                     fixes it.
//   (d)  oracle       exact sizes and perfect knowledge of every allocation,
//                     one request per worker: admits whenever the exact growth
//                     fits, on the worker that needs least; same workers, queue
//                     bounds and eviction as (c), a 10 s backfill window, no
//                     safety margin.
//   (e)  clams -t 4   (c) with --threads 4: each worker runs up to 4 requests
//                     on one copy of its models; admission per request through
//                     Decide() with worker slots and the Ledger's shared-growth
//                     attribution; profiles learn only from requests that ran
//                     alone on their worker, as the server does.
//
// Targets: (c) no OOM, >= 90 % of (d)'s completions, >= 80 % mean memory in
// use, Decide() p99 < 100 us; (e) at 2x no OOM on any seed, >= 1.5x the
// completions of (c), >= 85 % mean memory in use on every seed 1..10. When
// one fails, the variants of (e) say what bounds it: its requests not
// sharing their worker's CPU, Decide() seeing each request's exact
// outstanding memory instead of the shared-growth attribution, every class
// measured beforehand, queued estimates fixed at arrival instead of
// refreshed when a profile changes (what the refresh is worth), and a card
// whose memory never binds.
//
// The workload (same costs for every policy): model sizes of the vram-workload
// app (DESIGN.md §7), activations 15 % of the weights held by each request
// while it computes (returned to the device when it ends: the simulation has
// no caching allocator), a CUDA context per worker process at
// its first request, model loading from disk on a cache miss (once per worker:
// a request for a model its worker is loading waits for that load).
//
// Compute. A request's work is W seconds alone on an idle card. A fraction
// kCpuFraction of it is CPU-bound in its worker process (the app is Python:
// op dispatch and the per-token synchronisation of the decode loop, MMIF
// handling, all under the GIL), the rest runs on the GPU. Fluid model with
// fixed shares between events: the card runs kComputeCapacity requests at
// full speed and shares itself equally among more (processor sharing, over
// every computing request of every worker), and a worker process gives its k
// computing requests 1/k of one core each (GIL-bound threads; workers are
// separate processes on a host with more cores than workers, so they do not
// compete with each other). A request progresses at
//   rate = 1 / ((1 - f) / gpu_share + f / cpu_share)
// (work seconds per second): with one request per worker the CPU part runs
// at full speed; on a worker with k requests its CPU part takes k times as
// long. Model loads are disk and PCIe bound and are not slowed by either.
// Capacity is the most requests per second the card and the workers' cores
// can complete for this mix (the work-rate ceiling below over the mean work
// of a request): no policy serves more without favouring cheap requests.
// Arrivals are Poisson at twice that capacity (and at half of it for the
// latency table). Simulated time only; no sleeping.
//
//   clams_vram_sim [--seed N] [--horizon SECONDS] [--sweep SEEDS] [--cpu-fraction F] [--verbose]
//
// Prints the table of the six policies (seed N), (c) and (e) at half the
// capacity, diagnostics of (c) and (e) and of variants of (e) that isolate one
// cost each (--verbose: their diagnostics too), a summary of the same
// comparison over seeds 1..SEEDS (default 10; 0 skips it), and the targets
// with PASS/FAIL. Exits 1 if a target fails.
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
#include "clams/vram/ledger.h"
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
// The share of a request's work that is CPU-bound in its worker process
// (GIL-held Python in a whisper app: op dispatch and the per-token .item()
// synchronisation of the decode loop, and MMIF handling; audio decoding runs
// in an ffmpeg subprocess and is not counted). About a third for a
// PyTorch whisper decode on one stream; --cpu-fraction changes it.
constexpr double kDefaultCpuFraction = 0.3;
// A model loads from disk in this many equal chunks, each allocated on the GPU
// when read (torch.load with map_location=cuda allocates tensor by tensor).
constexpr int kLoadChunks = 4;
// A recycled worker: its process exits (memory returns), a new one starts.
constexpr double kStopSeconds = 0.5;
constexpr double kStartSeconds = 2.0;
// The Python proposal's safety margin: 10 % of total VRAM.
constexpr double kProposalSafetyFraction = 0.10;
// The Python SDK as it ships: gunicorn's gthread worker with threads=2 and
// max_requests=1.
constexpr int kSdkThreads = 2;
constexpr int kSdkMaxRequests = 1;
// (e): --threads 4.
constexpr int kClamsThreads = 4;
// clams-cpp: --vram-headroom, --max-queue and --queue-timeout; the oracle's
// backfill window.
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
constexpr double kThreadsCompletionTarget = 1.5;   // (e) completes >= 1.5 x (c)
constexpr double kThreadsUtilisationTarget = 0.85;  // (e) mean utilisation >= 85 %, every seed
// Arrival rates as multiples of that capacity: the overload of the main
// table, and the light load at which latency is compared.
constexpr double kOverload = 2.0;
constexpr double kLightLoad = 0.5;
// Events closer than this are simultaneous.
constexpr double kEpsilon = 1e-9;

struct ModelSpec {
  const char* name;
  std::uint64_t weights;
  double load_seconds;     // from disk to GPU on a cache miss
  double compute_seconds;  // mean work alone on the card (a clip of a few minutes)
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

// The most work per second the card and the workers' cores can do: with N
// computing requests spread evenly over the workers, each progresses at
// 1 / ((1 - f) N / C + f N / W) once N >= W >= C (at most one per worker:
// N / ((1 - f) N / C + f), which reaches the same at N = W), so the total
// is 1 / ((1 - f) / C + f / W) whatever the slots per worker.
double WorkRateCeiling(double cpu_fraction) {
  return 1.0 / ((1.0 - cpu_fraction) / kComputeCapacity + cpu_fraction / kWorkers);
}

// The mean work of a request of the mix (seconds alone on the card).
double MeanWork() {
  double mean = 0;
  for (const ModelSpec& m : kModels) {
    mean += m.share * m.compute_seconds * (kWorkFactorMin + kWorkFactorMax) / 2;
  }
  return mean;
}

// Requests per second the card can complete for this mix at most.
double Capacity(double cpu_fraction) { return WorkRateCeiling(cpu_fraction) / MeanWork(); }

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

enum class Policy { kPythonSdk, kSdkDefault, kPythonProposal, kClamsCpp, kOracle, kClamsThreads };
constexpr Policy kPolicies[] = {Policy::kPythonSdk, Policy::kSdkDefault, Policy::kPythonProposal,
                                Policy::kClamsCpp,  Policy::kOracle,     Policy::kClamsThreads};
// Positions in Comparison::results.
constexpr std::size_t kRowClams = 3;
constexpr std::size_t kRowOracle = 4;
constexpr std::size_t kRowThreads = 5;

const char* PolicyName(Policy p) {
  switch (p) {
    case Policy::kPythonSdk:
      return "(a) python-sdk";
    case Policy::kSdkDefault:
      return "(a') sdk-default";
    case Policy::kPythonProposal:
      return "(b) py-proposal";
    case Policy::kClamsCpp:
      return "(c) clams-cpp";
    case Policy::kOracle:
      return "(d) oracle";
    case Policy::kClamsThreads:
      return "(e) clams -t 4";
  }
  return "?";
}

// Request slots per worker and gunicorn's max_requests (0: never recycled).
int ThreadsOf(Policy p) {
  switch (p) {
    case Policy::kSdkDefault:
      return kSdkThreads;
    case Policy::kClamsThreads:
      return kClamsThreads;
    default:
      return 1;
  }
}
int MaxRequestsOf(Policy p) { return p == Policy::kSdkDefault ? kSdkMaxRequests : 0; }

// Variations of a policy that isolate one cost (diagnostics only).
struct Variant {
  // False: a worker's requests do not share its CPU (each gets a core).
  bool cpu_shared = true;
  // True: Decide() sees each request's exact outstanding memory instead of
  // the Ledger's shared-growth attribution.
  bool exact_attribution = false;
  // The card's memory (a bound on what memory costs: a card so large that
  // memory never binds leaves only compute).
  std::uint64_t card_bytes = kTotal;
  // True: every class starts with one measurement of each kind (full on a
  // fresh worker, warm), as a profile directory kept from an earlier run.
  bool profiles_known = false;
  // True: queued requests take the new estimate whenever a profile of their
  // class changes, as the server does (false: fixed at arrival, to show what
  // the refresh is worth).
  bool refresh_queued = true;
};

struct Result {
  Policy policy = Policy::kOracle;
  int arrivals = 0;
  int completed = 0;
  int ooms = 0;
  int rejected = 0;  // 503: queue full, queue timeout, the proposal's check, or a worker recycled under it
  int pending = 0;   // queued or running at the end
  int evictions = 0;
  int loads = 0;    // models read from disk
  int learned = 0;  // completed requests whose growth went into a profile
  double p50_latency = 0;
  double p99_latency = 0;
  double mean_util = 0;       // time-weighted used / total after the warm-up
  double mean_committed = 0;  // the same with what admitted requests will still allocate
  std::uint64_t peak_used = 0;
  // Time averages after the warm-up (c, e): requests running and computing;
  // what the ledger reserves (outstanding(d)), what is exactly outstanding
  // (sum of need - allocated per request), and what running requests will
  // still allocate.
  double mean_running = 0;
  double mean_computing = 0;
  double mean_ledger_reserved = 0;
  double mean_exact_outstanding = 0;
  double mean_future = 0;
  double mean_headroom = 0;  // total - used - ledger - safety (GiB; negative: over-reserved)
  // Of the memory in use (GiB): models cached by a worker that runs no
  // request of them, and extra copies of models cached by several workers.
  double mean_idle_weights = 0;
  double mean_duplicate_weights = 0;
  // Work done per second (seconds of work alone on the card) after the
  // warm-up, and the work of the completed requests.
  double mean_work_rate = 0;
  double work_completed = 0;
  // (c, e): each class's estimate at the end and its measurements.
  struct ClassState {
    vram::Estimate estimate;
    std::uint64_t samples = 0;
    std::uint64_t warm_samples = 0;
  };
  std::vector<ClassState> estimates;
  std::vector<double> latencies;  // of completed requests
  std::vector<double> decide_us;  // (c, e): real time of each Decide() call
};

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t i = static_cast<std::size_t>(std::ceil(q * static_cast<double>(v.size()))) - 1;
  return v[std::min(i, v.size() - 1)];
}

enum class WState { kIdle, kBusy, kStopping, kStarting };

// A model being read into a worker's memory.
struct Load {
  int model = 0;
  double start = 0;
  double next = 0;  // when the next chunk has been read
  int chunks = 0;   // chunks on the GPU
  std::uint64_t bytes = 0;
};

struct SimWorker {
  int id = 0;
  int threads = 1;
  WState state = WState::kIdle;   // kBusy: running >= 1 request
  double state_until = 0;         // end of kStopping / kStarting
  std::uint32_t cache = 0;        // bit per model held in the worker's model cache
  bool context = false;           // CUDA context created
  std::uint64_t activations = 0;  // held by its computing requests
  std::vector<Load> loads;        // models being read (one load per model)
  int running = 0;
  int served = 0;       // requests taken by this process (max_requests)
  bool closed = false;  // takes no more requests: gunicorn's max_requests reached
  double last_used = 0;
  double idle_since = 0;

  bool Cached(int model) const { return (cache & (1u << model)) != 0; }
  const Load* LoadOf(int model) const {
    for (const Load& l : loads) {
      if (l.model == model) return &l;
    }
    return nullptr;
  }
  // Has the model or is reading it (the scheduler's "holds the class").
  bool Holds(int model) const { return Cached(model) || LoadOf(model) != nullptr; }
  bool Ready() const { return state == WState::kIdle || state == WState::kBusy; }
  std::uint64_t Usage() const {
    std::uint64_t u = (context ? kContextBytes : 0) + activations;
    for (const Load& l : loads) u += l.bytes;
    for (int m = 0; m < kModelCount; ++m) {
      if (Cached(m)) u += kModels[m].weights;
    }
    return u;
  }
};

enum class Phase { kLoading, kWaitingForLoad, kComputing };

struct Running {
  int request = 0;  // index into arrivals
  int worker = 0;
  int model = 0;
  Phase phase = Phase::kComputing;
  double remaining = 0;           // work left (seconds alone on the card)
  std::uint64_t need = 0;         // what admission reserved (c, d, e)
  std::uint64_t allocated = 0;    // the request's growth so far
  std::uint64_t activations = 0;  // held while computing
  std::uint64_t eventual = 0;     // what it will have allocated when it ends
  bool warm = false;              // (c, e): dispatched as warm
  bool overlapped = false;        // another request ran on its worker meanwhile
  double dispatched = 0;
  std::uint64_t baseline = 0;     // its worker's usage at dispatch (the sampler window's)
  vram::Reservation reservation;  // (c, e)
};

// A queued request's estimate and expected duration are fixed when it
// arrives, as the server's intake fixes them (src/server/intake.cc).
struct Queued {
  int request = 0;
  vram::Estimate estimate;
  double expected_ms = 0;
  std::optional<double> head_since;  // when it became the blocked head (d)
};

class Simulation {
 public:
  Simulation(Policy policy, const std::vector<Arrival>& arrivals, double horizon,
             const std::filesystem::path& profile_root, double cpu_fraction, Variant variant = {})
      : policy_(policy),
        arrivals_(arrivals),
        horizon_(horizon),
        cpu_fraction_(cpu_fraction),
        variant_(variant),
        max_requests_(MaxRequestsOf(policy)),
        total_(variant.card_bytes) {
    result_.policy = policy;
    for (int i = 0; i < kWorkers; ++i) {
      SimWorker w;
      w.id = i + 1;
      w.threads = ThreadsOf(policy);
      workers_.push_back(w);
    }
    if (UsesDecide()) {
      auto store = vram::ProfileStore::Open({.root = profile_root, .app_id = kAppId});
      if (store.ok()) store_ = *std::move(store);
      for (int m = 0; m < kModelCount; ++m) {
        classes_.push_back(vram::RequestClass::Make(
            kAppId, "v1", std::string("{\"model\":\"") + kModels[m].name + "\"}"));
      }
      options_.headroom_bytes = kClamsHeadroom;
      for (int m = 0; store_ && variant.profiles_known && m < kModelCount; ++m) {
        const vram::RequestClass& c = classes_[static_cast<std::size_t>(m)];
        const double ms = kModels[m].compute_seconds * 1000;
        store_->Record(c, {}, kContextBytes + Declared(m), false, ms, "Simulated 24 GiB").IgnoreError();
        store_->Record(c, {}, Activations(m), true, ms, "Simulated 24 GiB").IgnoreError();
      }
    }
  }

  Result Run() {
    std::size_t next_arrival = 0;
    while (true) {
      const std::vector<double> rates = Rates();
      double t = horizon_;
      if (next_arrival < arrivals_.size()) t = std::min(t, arrivals_[next_arrival].time);
      for (std::size_t i = 0; i < running_.size(); ++i) {
        if (running_[i].phase == Phase::kComputing) {
          t = std::min(t, now_ + running_[i].remaining / rates[i]);
        }
      }
      for (const SimWorker& w : workers_) {
        for (const Load& l : w.loads) t = std::min(t, l.next);
        if (w.state == WState::kStopping || w.state == WState::kStarting) {
          t = std::min(t, w.state_until);
        }
      }
      if (Bounded() && !queue_.empty()) {
        t = std::min(t, arrivals_[queue_.front().request].time + kQueueTimeoutSeconds);
      }
      Advance(std::max(t, now_), rates);
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
    result_.p50_latency = Percentile(result_.latencies, 0.50);
    result_.p99_latency = Percentile(result_.latencies, 0.99);
    const double span = horizon_ - kWarmupSeconds;
    const double denominator = static_cast<double>(total_) * span;
    result_.mean_util = util_integral_ / denominator;
    result_.mean_committed = std::min(1.0, committed_integral_ / denominator);
    result_.mean_running = running_integral_ / span;
    result_.mean_computing = computing_integral_ / span;
    result_.mean_ledger_reserved = ledger_integral_ / span;
    result_.mean_exact_outstanding = exact_integral_ / span;
    result_.mean_future = future_integral_ / span;
    result_.mean_work_rate = work_integral_ / span;
    result_.mean_headroom = headroom_integral_ / span;
    result_.mean_idle_weights = idle_weights_integral_ / span;
    result_.mean_duplicate_weights = duplicate_weights_integral_ / span;
    if (store_) {
      for (int m = 0; m < kModelCount; ++m) {
        std::optional<vram::Profile> p = store_->Get(classes_[static_cast<std::size_t>(m)].key);
        result_.estimates.push_back(
            {EstimateFor(m), p ? p->samples : 0, p ? p->warm_samples : 0});
      }
    }
    running_.clear();  // releases the reservations before the ledger goes
    return result_;
  }

 private:
  static constexpr char kAppId[] = "http://apps.clams.ai/vram-workload/v1";

  // The front's admission: Decide() with the Ledger and profiles.
  bool UsesDecide() const {
    return policy_ == Policy::kClamsCpp || policy_ == Policy::kClamsThreads;
  }
  // Bounded queue with timeouts, and workers recycled after an OOM.
  bool Bounded() const { return UsesDecide() || policy_ == Policy::kOracle; }

  // What admitted requests have not allocated yet (c, d, e), exactly.
  std::uint64_t ExactOutstanding() const {
    std::uint64_t o = 0;
    for (const Running& r : running_) o += r.need > r.allocated ? r.need - r.allocated : 0;
    return o;
  }

  std::uint64_t Used() const {
    std::uint64_t u = 0;
    for (const SimWorker& w : workers_) u += w.Usage();
    return u;
  }

  // Work seconds per second of each running request (0 unless computing):
  // the card shared beyond kComputeCapacity, the worker's core shared by its
  // computing requests (see the header).
  std::vector<double> Rates() const {
    std::vector<double> rates(running_.size(), 0.0);
    int computing = 0;
    std::vector<int> on_worker(workers_.size(), 0);
    for (const Running& r : running_) {
      if (r.phase != Phase::kComputing) continue;
      ++computing;
      ++on_worker[static_cast<std::size_t>(r.worker)];
    }
    const double gpu_share =
        computing <= kComputeCapacity ? 1.0 : kComputeCapacity / static_cast<double>(computing);
    for (std::size_t i = 0; i < running_.size(); ++i) {
      const Running& r = running_[i];
      if (r.phase != Phase::kComputing) continue;
      const double sharing =
          variant_.cpu_shared ? static_cast<double>(on_worker[static_cast<std::size_t>(r.worker)]) : 1.0;
      rates[i] = 1.0 / ((1.0 - cpu_fraction_) / gpu_share + cpu_fraction_ * sharing);
    }
    return rates;
  }

  void ObserveUsage() {
    for (std::size_t i = 0; i < workers_.size(); ++i) {
      if (workers_[i].running > 0) ledger_.ObserveUsage(static_cast<int>(i), workers_[i].Usage());
    }
  }

  void Advance(double t, const std::vector<double>& rates) {
    const double dt = t - now_;
    if (dt > 0) {
      const double from = std::max(now_, kWarmupSeconds);
      if (t > from) {
        const double span = t - from;
        const std::uint64_t exact = ExactOutstanding();
        util_integral_ += static_cast<double>(Used()) * span;
        committed_integral_ += static_cast<double>(Used() + exact) * span;
        std::uint64_t future = 0;
        int computing = 0;
        for (const Running& r : running_) {
          future += r.eventual > r.allocated ? r.eventual - r.allocated : 0;
          computing += r.phase == Phase::kComputing ? 1 : 0;
        }
        running_integral_ += static_cast<double>(running_.size()) * span;
        std::uint64_t idle_weights = 0;
        std::uint64_t duplicate_weights = 0;
        for (int m = 0; m < kModelCount; ++m) {
          int copies = 0;
          for (std::size_t wi = 0; wi < workers_.size(); ++wi) {
            if (!workers_[wi].Cached(m)) continue;
            ++copies;
            const bool used = std::any_of(running_.begin(), running_.end(), [&](const Running& r) {
              return r.worker == static_cast<int>(wi) && r.model == m;
            });
            if (!used) idle_weights += kModels[m].weights;
          }
          if (copies > 1) duplicate_weights += (copies - 1) * kModels[m].weights;
        }
        idle_weights_integral_ += static_cast<double>(idle_weights) / kGiB * span;
        duplicate_weights_integral_ += static_cast<double>(duplicate_weights) / kGiB * span;
        for (double rate : rates) work_integral_ += rate * span;
        computing_integral_ += computing * span;
        exact_integral_ += static_cast<double>(exact) / kGiB * span;
        future_integral_ += static_cast<double>(future) / kGiB * span;
        if (UsesDecide()) {
          ObserveUsage();
          const std::uint64_t reserved = ledger_.Outstanding(0);
          ledger_integral_ += static_cast<double>(reserved) / kGiB * span;
          headroom_integral_ += (static_cast<double>(total_) - static_cast<double>(Used()) -
                                 static_cast<double>(reserved) -
                                 static_cast<double>(kClamsHeadroom)) /
                                kGiB * span;
        }
      }
      for (std::size_t i = 0; i < running_.size(); ++i) running_[i].remaining -= dt * rates[i];
    }
    now_ = t;
  }

  // Tries to allocate `bytes`; false is a CUDA OOM.
  bool Allocate(std::uint64_t bytes) { return Used() + bytes <= total_; }

  void PeakUpdate() { result_.peak_used = std::max(result_.peak_used, Used()); }

  void WorkerTransitions() {
    for (SimWorker& w : workers_) {
      if (w.state == WState::kStopping && w.state_until <= now_ + kEpsilon) {
        // The process exited: its memory is back. A replacement starts.
        w.cache = 0;
        w.context = false;
        w.activations = 0;
        w.loads.clear();
        w.running = 0;
        w.served = 0;
        w.closed = false;
        w.state = WState::kStarting;
        w.state_until = now_ + kStartSeconds;
      } else if (w.state == WState::kStarting && w.state_until <= now_ + kEpsilon) {
        w.state = WState::kIdle;
        w.idle_since = now_;
        w.last_used = now_;
      }
    }
  }

  // A worker ran its last request: idle, or (max_requests reached) its
  // process exits and gunicorn starts another.
  void WorkerDone(SimWorker& w) {
    if (max_requests_ > 0 && w.served >= max_requests_) {
      w.state = WState::kStopping;
      w.state_until = now_ + kStopSeconds;
      return;
    }
    w.state = WState::kIdle;
    w.idle_since = now_;
  }

  int IndexOf(int request) const {
    for (std::size_t i = 0; i < running_.size(); ++i) {
      if (running_[i].request == request) return static_cast<int>(i);
    }
    return -1;
  }

  // The model is on the GPU: allocate the request's activations and start
  // computing. False after an OOM (the caller fails the request).
  bool StartCompute(Running& r) {
    SimWorker& w = workers_[static_cast<std::size_t>(r.worker)];
    const std::uint64_t act = Activations(r.model);
    if (!Allocate(act)) return false;
    w.activations += act;
    r.activations = act;
    r.allocated += act;
    r.phase = Phase::kComputing;
    r.remaining = arrivals_[static_cast<std::size_t>(r.request)].work;
    PeakUpdate();
    return true;
  }

  // A request failed: an OOM, or (oom false) killed with its worker.
  void Fail(std::size_t index) {
    Running r = std::move(running_[index]);
    running_.erase(running_.begin() + static_cast<std::ptrdiff_t>(index));
    SimWorker& w = workers_[static_cast<std::size_t>(r.worker)];
    ++result_.ooms;
    w.activations -= r.activations;
    --w.running;
    if (Bounded()) {
      // The server recycles a worker after an OOM (and raises the estimate);
      // the other requests on it fail with it (503, retry).
      if (store_) {
        const std::uint64_t floor =
            std::min(std::max(vram::ScaleBytes(r.need, vram::kOomRaiseFactor),
                              vram::ScaleBytes(r.allocated, vram::kOomRaiseFactor)),
                     total_ - kClamsHeadroom - vram::kDefaultFreshWorkerBytes);
        store_->RecordOom(classes_[static_cast<std::size_t>(r.model)], {}, r.warm, floor,
                          "Simulated 24 GiB")
            .IgnoreError();
      }
      r.reservation.Release();
      for (std::size_t i = 0; i < running_.size();) {
        if (running_[i].worker != r.worker) {
          ++i;
          continue;
        }
        ++result_.rejected;
        running_[i].reservation.Release();
        running_.erase(running_.begin() + static_cast<std::ptrdiff_t>(i));
      }
      w.activations = 0;
      w.loads.clear();  // a half-loaded model is freed with the exception
      w.running = 0;
      w.state = WState::kStopping;
      w.state_until = now_ + kStopSeconds;
      return;
    }
    // A PyTorch OOM is an exception: the worker lives on with its cache. A
    // half-loaded model is freed with it; a request waiting for that load
    // reads the model itself.
    // (A request that failed on its activations after the model was read
    // is still marked kLoading; its load is gone already.)
    auto load = std::find_if(w.loads.begin(), w.loads.end(),
                             [&](const Load& l) { return l.model == r.model; });
    if (r.phase == Phase::kLoading && load != w.loads.end()) {
      w.loads.erase(load);
      for (Running& o : running_) {
        if (o.worker == r.worker && o.model == r.model && o.phase == Phase::kWaitingForLoad) {
          StartLoad(o);
          break;
        }
      }
    }
    if (w.running == 0) WorkerDone(w);
  }

  void StartLoad(Running& r) {
    SimWorker& w = workers_[static_cast<std::size_t>(r.worker)];
    r.phase = Phase::kLoading;
    w.loads.push_back({r.model, now_, now_ + kModels[r.model].load_seconds / kLoadChunks, 0, 0});
    ++result_.loads;
  }

  // The next chunk of a model has been read into worker `wi`: allocate it;
  // once the model is complete, its loader and the requests waiting for it
  // start computing.
  void LoadChunk(std::size_t wi, int model) {
    SimWorker& w = workers_[wi];
    auto load = std::find_if(w.loads.begin(), w.loads.end(),
                             [&](const Load& l) { return l.model == model; });
    int loader = -1;
    for (std::size_t i = 0; i < running_.size(); ++i) {
      if (running_[i].worker == static_cast<int>(wi) && running_[i].model == model &&
          running_[i].phase == Phase::kLoading) {
        loader = static_cast<int>(i);
      }
    }
    const std::uint64_t weights = kModels[model].weights;
    const std::uint64_t chunk =
        load->chunks + 1 == kLoadChunks ? weights - load->bytes : weights / kLoadChunks;
    if (!Allocate(chunk)) {
      Fail(static_cast<std::size_t>(loader));
      return;
    }
    load->bytes += chunk;
    running_[static_cast<std::size_t>(loader)].allocated += chunk;
    ++load->chunks;
    PeakUpdate();
    if (load->chunks < kLoadChunks) {
      load->next = load->start + kModels[model].load_seconds * (load->chunks + 1) / kLoadChunks;
      return;
    }
    w.loads.erase(load);
    w.cache |= 1u << model;
    while (true) {
      int next = -1;
      for (std::size_t i = 0; i < running_.size() && next < 0; ++i) {
        const Running& r = running_[i];
        if (r.worker == static_cast<int>(wi) && r.model == model && r.phase != Phase::kComputing) {
          next = static_cast<int>(i);
        }
      }
      if (next < 0) break;
      if (!StartCompute(running_[static_cast<std::size_t>(next)])) {
        Fail(static_cast<std::size_t>(next));
      }
    }
  }

  void LoadEnds() {
    bool again = true;
    while (again) {
      again = false;
      for (std::size_t wi = 0; wi < workers_.size() && !again; ++wi) {
        for (const Load& l : workers_[wi].loads) {
          if (l.next <= now_ + kEpsilon) {
            LoadChunk(wi, l.model);
            again = true;
            break;
          }
        }
      }
    }
  }

  void Completions() {
    bool profiles_changed = false;
    for (std::size_t i = 0; i < running_.size();) {
      Running& r = running_[i];
      if (r.phase != Phase::kComputing || r.remaining > kEpsilon) {
        ++i;
        continue;
      }
      SimWorker& w = workers_[static_cast<std::size_t>(r.worker)];
      w.activations -= r.activations;
      --w.running;
      w.last_used = now_;
      ++result_.completed;
      const Arrival& a = arrivals_[static_cast<std::size_t>(r.request)];
      result_.latencies.push_back(now_ - a.time);
      result_.work_completed += a.work;
      // The server learns only from a request that ran alone on its worker:
      // the sampler sees a process, not the requests sharing it.
      if (store_ && !r.overlapped) {
        // The sampler's window: the worker's growth during the request.
        store_
            ->Record(classes_[static_cast<std::size_t>(r.model)], {}, r.allocated, r.warm,
                     (now_ - r.dispatched) * 1000, "Simulated 24 GiB")
            .IgnoreError();
        ++result_.learned;
        profiles_changed = true;
        // A cold success seeds the warm estimate while the class has no
        // warm measurement: its growth less what its worker kept (the
        // model), measured once the worker runs nothing
        // (OutcomeLearner::OnSuccess and ProfileStore::SeedWarm on main).
        if (!r.warm && w.running == 0 && w.Usage() >= r.baseline) {
          const std::uint64_t kept = w.Usage() - r.baseline;
          if (kept < r.allocated) SeedWarm(r.model, r.allocated - kept);
        }
      }
      r.reservation.Release(w.Usage());
      if (w.running == 0) WorkerDone(w);
      running_.erase(running_.begin() + static_cast<std::ptrdiff_t>(i));
    }
    if (profiles_changed && variant_.refresh_queued) {
      for (Queued& q : queue_) {
        const int model = arrivals_[static_cast<std::size_t>(q.request)].model;
        q.estimate = EstimateFor(model);
        q.expected_ms = ExpectedMs(model);
      }
    }
  }

  void SeedWarm(int model, std::uint64_t warm_bytes) {
    std::optional<vram::Profile> p = store_->Get(classes_[static_cast<std::size_t>(model)].key);
    if (!p || p->warm_samples > 0) return;
    std::uint64_t& seed = seeded_warm_[static_cast<std::size_t>(model)];
    seed = std::max(seed, warm_bytes);
  }

  // The class's mean duration from its profile (0: unknown).
  double ExpectedMs(int model) const {
    if (!store_) return 0;
    std::optional<vram::Profile> p = store_->Get(classes_[static_cast<std::size_t>(model)].key);
    return p ? p->mean_duration_ms : 0;
  }

  vram::Estimate EstimateFor(int model) const {
    if (!UsesDecide()) return {};
    std::optional<vram::Profile> p =
        store_ ? store_->Get(classes_[static_cast<std::size_t>(model)].key) : std::nullopt;
    // The seed stays in warm_peak_bytes (a lower bound warm measurements raise).
    if (p) p->warm_peak_bytes = std::max(p->warm_peak_bytes, seeded_warm_[static_cast<std::size_t>(model)]);
    return vram::ResolveEstimate(Declared(model), p ? &*p : nullptr, kEstGpuMemTypMb, total_);
  }

  void Arrive(int request) {
    if (Bounded() && queue_.size() >= kMaxQueue) {
      ++result_.rejected;  // 503: queue full
      return;
    }
    const int model = arrivals_[static_cast<std::size_t>(request)].model;
    queue_.push_back({request, EstimateFor(model), ExpectedMs(model), std::nullopt});
  }

  void Timeouts() {
    if (!Bounded()) return;
    while (!queue_.empty() &&
           arrivals_[queue_.front().request].time + kQueueTimeoutSeconds <= now_ + kEpsilon) {
      queue_.pop_front();
      ++result_.rejected;  // 503: waited too long
    }
  }

  // What request `model` would grow worker `w` by, exactly.
  static std::uint64_t ExactGrowth(const SimWorker& w, int model) {
    std::uint64_t g = Activations(model);
    if (!w.Holds(model)) g += kModels[model].weights + (w.context ? 0 : kContextBytes);
    return g;
  }

  void Dispatch(int request, int worker, std::uint64_t need, bool warm) {
    SimWorker& w = workers_[static_cast<std::size_t>(worker)];
    const int model = arrivals_[static_cast<std::size_t>(request)].model;
    const std::uint64_t usage = w.Usage();
    Running r;
    r.request = request;
    r.worker = worker;
    r.model = model;
    r.need = need;
    r.warm = warm;
    r.dispatched = now_;
    r.baseline = usage;
    r.eventual = ExactGrowth(w, model);
    // Requests sharing a worker cannot be measured one by one.
    if (w.running > 0) {
      r.overlapped = true;
      for (Running& o : running_) {
        if (o.worker == worker) o.overlapped = true;
      }
    }
    if (UsesDecide()) {
      vram::InFlight entry;
      entry.request_id = static_cast<std::uint64_t>(request);
      entry.worker_id = worker;
      entry.device = 0;
      entry.need_bytes = need;
      entry.started = At(now_);
      entry.expected_ms = ExpectedMs(model);
      r.reservation = ledger_.Reserve(entry, usage);
    }
    ++w.running;
    ++w.served;
    w.state = WState::kBusy;
    if (w.Cached(model)) {
      running_.push_back(std::move(r));
      if (!StartCompute(running_.back())) Fail(running_.size() - 1);
      return;
    }
    if (w.LoadOf(model) != nullptr) {
      // Its worker is reading the model for another request: wait for it.
      r.phase = Phase::kWaitingForLoad;
      running_.push_back(std::move(r));
      return;
    }
    // CUDA is initialised first (the context), then the model is read.
    StartLoad(r);
    running_.push_back(std::move(r));
    if (!w.context) {
      if (!Allocate(kContextBytes)) {
        Fail(running_.size() - 1);
        return;
      }
      w.context = true;
      running_.back().allocated += kContextBytes;
      PeakUpdate();
    }
  }

  void Schedule() {
    switch (policy_) {
      case Policy::kPythonSdk:
      case Policy::kSdkDefault:
      case Policy::kPythonProposal:
        ScheduleGunicorn();
        break;
      case Policy::kClamsCpp:
      case Policy::kClamsThreads:
        ScheduleClams();
        break;
      case Policy::kOracle:
        ScheduleOracle();
        break;
    }
  }

  // Gunicorn: the queue is the listen backlog; a worker with a free thread
  // takes the next connection (an idle one first, the one idle longest, as
  // accept() would hand it out). With max_requests=1 a worker stops
  // accepting once its first request has started: it takes the connections
  // waiting when it is ready (up to its threads), then no more.
  void ScheduleGunicorn() {
    while (!queue_.empty()) {
      int worker = -1;
      for (std::size_t i = 0; i < workers_.size(); ++i) {
        const SimWorker& w = workers_[i];
        if (!w.Ready() || w.closed || w.running >= w.threads) continue;
        if (worker < 0) {
          worker = static_cast<int>(i);
          continue;
        }
        const SimWorker& b = workers_[static_cast<std::size_t>(worker)];
        if (w.running < b.running || (w.running == b.running && w.idle_since < b.idle_since)) {
          worker = static_cast<int>(i);
        }
      }
      if (worker < 0) break;
      const int request = queue_.front().request;
      queue_.pop_front();
      if (policy_ == Policy::kPythonProposal) {
        // _check_vram_available(required, safety_margin=0.1) with the free
        // memory of the device as nvidia-smi reports it now.
        const std::uint64_t free = total_ - Used();
        const double required =
            static_cast<double>(Declared(arrivals_[static_cast<std::size_t>(request)].model)) +
            kProposalSafetyFraction * static_cast<double>(total_);
        if (static_cast<double>(free) < required) {
          ++result_.rejected;  // InsufficientVRAMError -> 503
          continue;
        }
      }
      Dispatch(request, worker, 0, false);
    }
    if (max_requests_ > 0) {
      for (SimWorker& w : workers_) {
        if (w.served >= max_requests_) w.closed = true;
      }
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

  // The server's scheduler: Decide() on the queue, the worker slots and the
  // ledger's snapshot.
  void ScheduleClams() {
    if (queue_.empty()) return;
    ObserveUsage();
    std::vector<vram::QueuedRequest> queue;
    queue.reserve(queue_.size());
    for (const Queued& q : queue_) {
      const int model = arrivals_[static_cast<std::size_t>(q.request)].model;
      vram::QueuedRequest r;
      r.id = static_cast<std::uint64_t>(q.request);
      r.class_key = classes_[static_cast<std::size_t>(model)].key;
      r.estimate = q.estimate;
      r.arrived = At(arrivals_[static_cast<std::size_t>(q.request)].time);
      r.expected_ms = q.expected_ms;
      queue.push_back(std::move(r));
    }
    std::vector<vram::WorkerSlot> workers;
    for (std::size_t i = 0; i < workers_.size(); ++i) {
      const SimWorker& w = workers_[i];
      vram::WorkerSlot s;
      s.id = static_cast<int>(i);
      s.device = 0;
      s.state = SlotState(w.state);
      s.threads = w.threads;
      s.running = w.running;
      for (int m = 0; m < kModelCount; ++m) {
        if (w.Holds(m)) s.classes.push_back(classes_[static_cast<std::size_t>(m)].key);
      }
      s.usage_bytes = w.Usage();
      s.last_used = At(w.last_used);
      workers.push_back(std::move(s));
    }
    std::vector<vram::InFlight> in_flight = ledger_.Snapshot();
    if (variant_.exact_attribution) {
      // Each worker's growth as the share of its needs already allocated:
      // outstanding_w = sum over its requests of max(0, need - allocated).
      std::map<int, std::pair<std::uint64_t, std::uint64_t>> per_worker;  // (needs, exact outstanding)
      for (const Running& r : running_) {
        auto& p = per_worker[r.worker];
        p.first += r.need;
        p.second += r.need > r.allocated ? r.need - r.allocated : 0;
      }
      for (vram::InFlight& f : in_flight) {
        const auto& p = per_worker[f.worker_id];
        f.growth_bytes = p.first - p.second;
      }
    }
    const std::vector<vram::DeviceView> devices = {{0, total_, total_ - Used()}};
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
    SimWorker& w = workers_[static_cast<std::size_t>(worker)];
    w.state = WState::kStopping;
    w.state_until = now_ + kStopSeconds;
    ++result_.evictions;
  }

  // The oracle: exact growth per worker, no margin, the same queue bounds
  // and LRU eviction as (c), one request per worker, a fixed backfill window.
  void ScheduleOracle() {
    if (queue_.empty()) return;
    std::int64_t avail = static_cast<std::int64_t>(total_ - Used());
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
          std::uint64_t need = (k > 0 || pending > 0) ? fresh_growth : total_;
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
  double cpu_fraction_;
  Variant variant_;
  int max_requests_;
  std::uint64_t total_;
  double now_ = 0;
  std::vector<SimWorker> workers_;
  vram::Ledger ledger_;  // declared before running_: it outlives their reservations
  std::vector<Running> running_;
  std::deque<Queued> queue_;
  double util_integral_ = 0;
  double committed_integral_ = 0;
  double running_integral_ = 0;
  double computing_integral_ = 0;
  double ledger_integral_ = 0;  // GiB x s
  double exact_integral_ = 0;   // GiB x s
  double future_integral_ = 0;  // GiB x s
  double work_integral_ = 0;    // work seconds
  double headroom_integral_ = 0;  // GiB x s
  double idle_weights_integral_ = 0;       // GiB x s
  double duplicate_weights_integral_ = 0;  // GiB x s
  Result result_;
  // (c, e)
  std::unique_ptr<vram::ProfileStore> store_;
  std::vector<vram::RequestClass> classes_;
  std::vector<std::uint64_t> seeded_warm_ = std::vector<std::uint64_t>(kModelCount, 0);
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

// One comparison: the six policies on one arrival sequence at kOverload x
// capacity, the variants of (e) on the same sequence, and (c) and (e) on
// another at kLightLoad x capacity.
struct Comparison {
  double capacity = 0;
  double rate = 0;
  std::size_t arrivals = 0;
  std::vector<Result> results;  // in kPolicies order
  double light_rate = 0;
  std::size_t light_arrivals = 0;
  std::vector<Result> light;  // (c), (e)
  std::vector<Result> variants;  // by VariantRow, on the same arrivals as `results`
};

// Variants of (e) on the main arrivals that isolate one cost each.
enum VariantRow {
  kUnsharedCpu,   // a worker's requests do not share its CPU
  kExact,         // Decide() sees each request's exact outstanding memory
  kLearned,       // (e) starts with every class measured (full and warm)
  kLearnedExact,  // both
  kBigClams,      // (c) on a card whose memory never binds
  kBigThreads,    // (e) on that card
  kRefreshClams,  // (c) with queued estimates fixed at arrival (no refresh)
  kRefreshThreads,  // (e) with the same
};

std::vector<Result> RunVariants(const std::vector<Arrival>& arrivals, double horizon,
                                const std::filesystem::path& root, double cpu_fraction) {
  // A card so large that memory never binds: only compute and CPU remain.
  constexpr std::uint64_t kUnboundedCard = 1024 * kGiB;
  std::vector<Result> out;
  out.push_back(Simulation(Policy::kClamsThreads, arrivals, horizon, root / "cpu", cpu_fraction,
                           {.cpu_shared = false})
                    .Run());
  out.push_back(Simulation(Policy::kClamsThreads, arrivals, horizon, root / "exact", cpu_fraction,
                           {.exact_attribution = true})
                    .Run());
  // What learning only from requests alone on their worker costs: every
  // class measured beforehand (a profile directory kept from an earlier run).
  for (bool exact : {false, true}) {
    out.push_back(Simulation(Policy::kClamsThreads, arrivals, horizon,
                             root / (exact ? "learned-exact" : "learned"), cpu_fraction,
                             {.exact_attribution = exact, .profiles_known = true})
                      .Run());
  }
  for (Policy p : {Policy::kClamsCpp, Policy::kClamsThreads}) {
    out.push_back(Simulation(p, arrivals, horizon, root / "big" / PolicyName(p), cpu_fraction,
                             {.card_bytes = kUnboundedCard})
                      .Run());
  }
  for (Policy p : {Policy::kClamsCpp, Policy::kClamsThreads}) {
    out.push_back(Simulation(p, arrivals, horizon, root / "fixed" / PolicyName(p), cpu_fraction,
                             {.refresh_queued = false})
                      .Run());
  }
  return out;
}

Comparison Compare(std::uint64_t seed, double horizon, const std::filesystem::path& profile_root,
                   double cpu_fraction) {
  Comparison c;
  c.capacity = Capacity(cpu_fraction);
  c.rate = kOverload * c.capacity;
  const std::vector<Arrival> arrivals = MakeArrivals(c.rate, horizon, seed);
  c.arrivals = arrivals.size();
  const std::filesystem::path root = profile_root / std::to_string(seed);
  for (Policy p : kPolicies) {
    c.results.push_back(
        Simulation(p, arrivals, horizon, root / PolicyName(p), cpu_fraction).Run());
  }
  c.variants = RunVariants(arrivals, horizon, root / "variants", cpu_fraction);
  c.light_rate = kLightLoad * c.capacity;
  const std::vector<Arrival> light = MakeArrivals(c.light_rate, horizon, seed);
  c.light_arrivals = light.size();
  for (Policy p : {Policy::kClamsCpp, Policy::kClamsThreads}) {
    c.light.push_back(
        Simulation(p, light, horizon, root / "light" / PolicyName(p), cpu_fraction).Run());
  }
  return c;
}

double Ratio(int a, int b) { return b > 0 ? static_cast<double>(a) / b : 0; }

void PrintRow(const Result& r) {
  std::printf("%-17s %5d %9d %5d %6d %7d %7.1f %7.1f %7.1f %7.1f %8.2f\n", PolicyName(r.policy),
              r.ooms, r.completed, r.rejected, r.evictions, r.pending, r.p50_latency,
              r.p99_latency, r.mean_util * 100, r.mean_committed * 100,
              static_cast<double>(r.peak_used) / kGiB);
}

void PrintHeader() {
  std::printf("%-17s %5s %9s %5s %6s %7s %7s %7s %7s %7s %8s\n", "policy", "OOMs", "completed",
              "503s", "evicts", "pending", "p50 s", "p99 s", "util %", "commit%", "peak GiB");
}

// Where (c)'s and (e)'s memory goes, time averages after the warm-up.
void PrintDiagnostics(const Result& r, double cpu_fraction) {
  std::printf(
      "%-17s running %.1f (computing %.1f); work done %.2f s/s = %.0f%% of the ceiling %.2f; "
      "work of the completed %.0f s (%.1f s each); %d model loads; learned from %d of %d\n",
      PolicyName(r.policy), r.mean_running, r.mean_computing, r.mean_work_rate,
      r.mean_work_rate / WorkRateCeiling(cpu_fraction) * 100, WorkRateCeiling(cpu_fraction),
      r.work_completed, r.completed > 0 ? r.work_completed / r.completed : 0, r.loads, r.learned,
      r.completed);
  std::printf(
      "%-17s memory not in use %.2f GiB = reserved by the ledger %.2f (still to be allocated "
      "%.2f + estimate margins %.2f + shared-growth attribution %.2f) + safety %.2f + "
      "headroom left %.2f\n",
      "", (1 - r.mean_util) * static_cast<double>(kTotal) / kGiB, r.mean_ledger_reserved,
      r.mean_future, r.mean_exact_outstanding - r.mean_future,
      r.mean_ledger_reserved - r.mean_exact_outstanding, static_cast<double>(kClamsHeadroom) / kGiB,
      r.mean_headroom);
  std::printf(
      "%-17s of the memory in use, models no running request of their worker uses %.2f GiB, "
      "second and later copies of a model %.2f GiB\n",
      "", r.mean_idle_weights, r.mean_duplicate_weights);
  std::printf("%-17s estimates at the end, full/warm GiB (measured full+warm):", "");
  for (std::size_t m = 0; m < r.estimates.size(); ++m) {
    const Result::ClassState& c = r.estimates[m];
    std::printf(" %s %.2f/%.2f (%llu+%llu)", kModels[m].name,
                static_cast<double>(c.estimate.full_bytes) / kGiB,
                static_cast<double>(c.estimate.warm_bytes) / kGiB,
                static_cast<unsigned long long>(c.samples),
                static_cast<unsigned long long>(c.warm_samples));
  }
  std::printf("\n");
}

}  // namespace

int main(int argc, char** argv) {
  std::uint64_t seed = kDefaultSeed;
  double horizon = kDefaultHorizon;
  int sweep = kDefaultSweepSeeds;
  double cpu_fraction = kDefaultCpuFraction;
  bool verbose = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
      seed = std::strtoull(argv[++i], nullptr, 10);
    } else if (std::strcmp(argv[i], "--horizon") == 0 && i + 1 < argc) {
      horizon = std::strtod(argv[++i], nullptr);
    } else if (std::strcmp(argv[i], "--sweep") == 0 && i + 1 < argc) {
      sweep = std::atoi(argv[++i]);
    } else if (std::strcmp(argv[i], "--cpu-fraction") == 0 && i + 1 < argc) {
      cpu_fraction = std::strtod(argv[++i], nullptr);
    } else if (std::strcmp(argv[i], "--verbose") == 0) {
      verbose = true;
    } else {
      std::fprintf(stderr,
                   "usage: %s [--seed N] [--horizon SECONDS] [--sweep SEEDS] [--cpu-fraction F] "
                   "[--verbose]\n",
                   argv[0]);
      return 2;
    }
  }
  if (!(horizon > 2 * kWarmupSeconds) || sweep < 0 || !(cpu_fraction >= 0 && cpu_fraction < 1)) {
    std::fprintf(stderr,
                 "--horizon must exceed %.0f s, --sweep be >= 0 and --cpu-fraction in [0, 1)\n",
                 2 * kWarmupSeconds);
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
  const Comparison main_run = Compare(seed, horizon, profile_root, cpu_fraction);
  std::vector<Comparison> others;
  for (int i = 1; i <= sweep; ++i) {
    others.push_back(Compare(static_cast<std::uint64_t>(i), horizon, profile_root, cpu_fraction));
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
      "\n  activations 15%% of weights per running request; CUDA context %llu MiB per worker "
      "process; %d workers;\n  card compute shared beyond %.0f computing requests; %.0f%% of "
      "each request's work is CPU-bound and shares its worker's core\n",
      static_cast<unsigned long long>(kContextBytes / kMiB), kWorkers, kComputeCapacity,
      cpu_fraction * 100);
  std::printf(
      "  capacity (the most the card completes for this mix: %.2f work-s/s over %.2f s per "
      "request) %.3f req/s;\n  Poisson arrivals at %.3f req/s (%.0fx) for %.0f s; seed %llu; "
      "%zu arrivals\n\n",
      WorkRateCeiling(cpu_fraction), MeanWork(), main_run.capacity, main_run.rate, kOverload, horizon, static_cast<unsigned long long>(seed),
      main_run.arrivals);
  PrintHeader();
  for (const Result& r : main_run.results) PrintRow(r);
  const Result& clams = main_run.results[kRowClams];
  const Result& oracle = main_run.results[kRowOracle];
  const Result& threads = main_run.results[kRowThreads];
  std::printf(
      "\nutil %%: time-weighted GPU memory in use / total after the %.0f s warm-up "
      "(commit%%: plus what admitted requests have not allocated yet);\n"
      "503s: queue full, queue timeout, the proposal's check, or a worker recycled under the "
      "request; latency of completed requests, arrival to answer\n",
      kWarmupSeconds);

  std::printf("\nAt %.1fx load (%.3f req/s, %zu arrivals, same seed):\n", kLightLoad,
              main_run.light_rate, main_run.light_arrivals);
  PrintHeader();
  for (const Result& r : main_run.light) PrintRow(r);

  std::printf("\nWhere the memory goes (time averages after the warm-up, 2x load):\n");
  PrintDiagnostics(clams, cpu_fraction);
  PrintDiagnostics(threads, cpu_fraction);
  std::printf(
      "(e) if a worker's requests did not share its CPU: completed %d (vs %d), p50 %.1f s, "
      "p99 %.1f s, util %.1f%%\n",
      main_run.variants[kUnsharedCpu].completed, threads.completed, main_run.variants[kUnsharedCpu].p50_latency,
      main_run.variants[kUnsharedCpu].p99_latency, main_run.variants[kUnsharedCpu].mean_util * 100);
  std::printf(
      "(e) if Decide() saw each request's exact outstanding memory (no shared-growth "
      "attribution): completed %d (vs %d), util %.1f%%, OOMs %d\n",
      main_run.variants[kExact].completed, threads.completed, main_run.variants[kExact].mean_util * 100,
      main_run.variants[kExact].ooms);
  std::printf(
      "(e) if every class was measured beforehand (full and warm): completed %d, util %.1f%%, "
      "OOMs %d; and Decide() saw exact outstanding memory too: completed %d, util %.1f%%, OOMs "
      "%d\n",
      main_run.variants[kLearned].completed, main_run.variants[kLearned].mean_util * 100, main_run.variants[kLearned].ooms, main_run.variants[kLearnedExact].completed,
      main_run.variants[kLearnedExact].mean_util * 100, main_run.variants[kLearnedExact].ooms);
  if (verbose) {
    for (const Result& r : main_run.variants) PrintDiagnostics(r, cpu_fraction);
  }
  std::printf(
      "if queued requests kept the estimate they arrived with (the server refreshes it when a "
      "profile of their class changes): (c) completed %d, util %.1f%%, OOMs %d; (e) completed %d, "
      "util %.1f%%, OOMs %d\n",
      main_run.variants[kRefreshClams].completed, main_run.variants[kRefreshClams].mean_util * 100,
      main_run.variants[kRefreshClams].ooms, main_run.variants[kRefreshThreads].completed,
      main_run.variants[kRefreshThreads].mean_util * 100, main_run.variants[kRefreshThreads].ooms);
  std::printf(
      "on a card whose memory never binds: (c) completed %d, work done %.2f s/s; (e) completed "
      "%d, work done %.2f s/s (%.2fx (c) of the 24 GiB card)\n",
      main_run.variants[kBigClams].completed, main_run.variants[kBigClams].mean_work_rate, main_run.variants[kBigThreads].completed, main_run.variants[kBigThreads].mean_work_rate,
      Ratio(main_run.variants[kBigThreads].completed, clams.completed));

  const double decide_p99 = Percentile(clams.decide_us, 0.99);
  std::printf("\n(c) Decide() over the run: %zu calls, p50 %.2f us, p99 %.2f us, max %.2f us\n",
              clams.decide_us.size(), Percentile(clams.decide_us, 0.50), decide_p99,
              Percentile(clams.decide_us, 1.0));
  std::printf("(e) Decide() over the run: %zu calls, p50 %.2f us, p99 %.2f us, max %.2f us\n",
              threads.decide_us.size(), Percentile(threads.decide_us, 0.50),
              Percentile(threads.decide_us, 0.99), Percentile(threads.decide_us, 1.0));
  std::printf("Decide() alone, 100 queued / 16 workers / 2 devices: p50 %.2f us, p99 %.2f us\n",
              Percentile(micro, 0.50), Percentile(micro, 0.99));

  int sweep_threads_ooms = 0;
  double sweep_threads_util_min = 1;
  // For the notes under the targets: the bounds the variants measure, as
  // (mean, max) of completed / (c) and (mean, min) of utilisation.
  std::pair<double, double> unbounded_ratio{Ratio(main_run.variants[kBigThreads].completed,
                                                  clams.completed),
                                            0};
  unbounded_ratio.second = unbounded_ratio.first;
  std::pair<double, double> exact_util{main_run.variants[kExact].mean_util * 100, 0};
  exact_util.second = exact_util.first;
  std::pair<double, double> refresh_util{main_run.variants[kRefreshThreads].mean_util * 100, 0};
  refresh_util.second = refresh_util.first;
  std::pair<double, double> ideal_util{main_run.variants[kLearnedExact].mean_util * 100, 0};
  ideal_util.second = ideal_util.first;
  if (!others.empty()) {
    // The same comparison on other arrival sequences: how much the single
    // run above depends on its seed.
    struct Range {
      double min = 1e18, max = -1e18, sum = 0;
      int pass = 0;
      void Add(double v, bool ok) {
        min = std::min(min, v);
        max = std::max(max, v);
        sum += v;
        pass += ok ? 1 : 0;
      }
    };
    int c_ooms = 0;
    Range c_util, c_ratio, e_util, e_ratio, c_p99, e_p99;
    std::vector<double> light_c, light_e;
    for (const Comparison& c : others) {
      const Result& rc = c.results[kRowClams];
      const Result& rd = c.results[kRowOracle];
      const Result& re = c.results[kRowThreads];
      c_ooms += rc.ooms;
      sweep_threads_ooms += re.ooms;
      c_util.Add(rc.mean_util * 100, rc.mean_util >= kUtilisationTarget);
      c_ratio.Add(Ratio(rc.completed, rd.completed),
                  rc.completed >= kCompletionTarget * rd.completed);
      e_util.Add(re.mean_util * 100, re.mean_util >= kThreadsUtilisationTarget);
      e_ratio.Add(Ratio(re.completed, rc.completed),
                  re.completed >= kThreadsCompletionTarget * rc.completed);
      c_p99.Add(rc.p99_latency, true);
      e_p99.Add(re.p99_latency, true);
      light_c.insert(light_c.end(), c.light[0].latencies.begin(), c.light[0].latencies.end());
      light_e.insert(light_e.end(), c.light[1].latencies.begin(), c.light[1].latencies.end());
    }
    sweep_threads_util_min = e_util.min / 100;
    const double n = static_cast<double>(others.size());
    std::printf(
        "\nseeds 1..%zu at 2x: (c) OOMs %d; util %% min %.1f mean %.1f max %.1f (>= 80 in %d); "
        "completed (c)/(d) min %.2f mean %.2f max %.2f (>= 0.90 in %d); p99 s mean %.0f\n",
        others.size(), c_ooms, c_util.min, c_util.sum / n, c_util.max, c_util.pass, c_ratio.min,
        c_ratio.sum / n, c_ratio.max, c_ratio.pass, c_p99.sum / n);
    std::printf(
        "seeds 1..%zu at 2x: (e) OOMs %d; util %% min %.1f mean %.1f max %.1f (>= 85 in %d); "
        "completed (e)/(c) min %.2f mean %.2f max %.2f (>= 1.5 in %d); p99 s mean %.0f\n",
        others.size(), sweep_threads_ooms, e_util.min, e_util.sum / n, e_util.max, e_util.pass,
        e_ratio.min, e_ratio.sum / n, e_ratio.max, e_ratio.pass, e_p99.sum / n);
    // The variants of (e) on the same seeds: which cost holds it back.
    const std::pair<VariantRow, const char*> variants[] = {
        {kUnsharedCpu, "requests do not share their worker's CPU"},
        {kExact, "Decide() sees exact outstanding memory"},
        {kLearned, "every class was measured beforehand"},
        {kLearnedExact, "both of the last two"},
        {kRefreshThreads, "queued estimates were fixed at arrival"},
        {kBigThreads, "memory never binds"},
    };
    for (const auto& [row, words] : variants) {
      Range util, ratio;
      int ooms = 0;
      for (const Comparison& c : others) {
        const Result& v = c.variants[row];
        ooms += v.ooms;
        util.Add(v.mean_util * 100, v.mean_util >= kThreadsUtilisationTarget);
        ratio.Add(Ratio(v.completed, c.results[kRowClams].completed),
                  v.completed >= kThreadsCompletionTarget * c.results[kRowClams].completed);
      }
      if (row == kBigThreads) {
        std::printf("  (e) if %-42s completed / (c) min %.2f mean %.2f max %.2f\n", words,
                    ratio.min, ratio.sum / n, ratio.max);
        continue;
      }
      std::printf(
          "  (e) if %-42s util %% min %.1f mean %.1f (>= 85 in %d); completed / (c) min %.2f "
          "mean %.2f max %.2f; OOMs %d\n",
          words, util.min, util.sum / n, util.pass, ratio.min, ratio.sum / n, ratio.max, ooms);
    }
    auto summary = [&](VariantRow row, bool ratio) {
      Range r;
      for (const Comparison& c : others) {
        const Result& v = c.variants[row];
        r.Add(ratio ? Ratio(v.completed, c.results[kRowClams].completed) : v.mean_util * 100, true);
      }
      return std::pair<double, double>{r.sum / n, ratio ? r.max : r.min};
    };
    unbounded_ratio = summary(kBigThreads, true);
    exact_util = summary(kExact, false);
    refresh_util = summary(kRefreshThreads, false);
    ideal_util = summary(kLearnedExact, false);
    Range refreshed_c;
    int refreshed_c_ooms = 0;
    for (const Comparison& c : others) {
      const Result& v = c.variants[kRefreshClams];
      refreshed_c_ooms += v.ooms;
      refreshed_c.Add(v.mean_util * 100, v.mean_util >= kUtilisationTarget);
    }
    std::printf("  (c) if queued estimates were fixed at arrival util %% min %.1f mean %.1f (>= 80 in %d); OOMs %d\n",
                refreshed_c.min, refreshed_c.sum / n, refreshed_c.pass, refreshed_c_ooms);
    std::printf(
        "seeds 1..%zu at %.1fx, latency of all completed requests pooled: (c) p50 %.1f s p99 "
        "%.1f s; (e) p50 %.1f s p99 %.1f s\n",
        others.size(), kLightLoad, Percentile(light_c, 0.5), Percentile(light_c, 0.99),
        Percentile(light_e, 0.5), Percentile(light_e, 0.99));
  }
  std::printf("simulated %.0f s, %d comparison(s) of 9 runs, in %.2f s of real time\n\n", horizon,
              1 + sweep, wall_s);

  const std::string sweep_words =
      others.empty() ? std::string("this run") : fmt::format("seeds 1..{}", others.size());
  const double threads_util_min = others.empty() ? threads.mean_util : sweep_threads_util_min;
  const bool completions_pass = threads.completed >= kThreadsCompletionTarget * clams.completed;
  const bool utilisation_pass = threads_util_min >= kThreadsUtilisationTarget;
  const std::vector<Target> targets = {
      {"(c) zero OOM", clams.ooms == 0},
      {"(c) completes >= 90% of (d) (" + std::to_string(clams.completed) + " vs " +
           std::to_string(oracle.completed) + ")",
       clams.completed >= kCompletionTarget * oracle.completed},
      {fmt::format("(c) mean VRAM utilisation under saturation >= 80% ({:.1f}%)",
                   clams.mean_util * 100),
       clams.mean_util >= kUtilisationTarget},
      {"(c) Decide() p99 < 100 us over the run", decide_p99 < kDecideP99TargetUs},
      {others.empty() ? std::string("(e) zero OOM")
                      : fmt::format("(e) zero OOM (this run and {})", sweep_words),
       threads.ooms == 0 && sweep_threads_ooms == 0},
      {fmt::format("(e) completes >= 1.5x (c) ({} vs {}: {:.2f}x)", threads.completed,
                   clams.completed, Ratio(threads.completed, clams.completed)),
       completions_pass},
      {others.empty()
           ? fmt::format("(e) mean VRAM utilisation >= 85% ({:.1f}%)", threads_util_min * 100)
           : fmt::format("(e) mean VRAM utilisation >= 85% on every one of {} (min {:.1f}%)",
                         sweep_words, threads_util_min * 100),
       utilisation_pass},
  };
  bool all = true;
  for (const Target& t : targets) {
    std::printf("%s  %s\n", t.pass ? "PASS" : "FAIL", t.what.c_str());
    all = all && t.pass;
  }
  const std::string over = others.empty() ? "this run" : "seeds 1.." + std::to_string(others.size());
  if (!completions_pass) {
    std::printf(
        "why   the card's compute bounds it: with memory that never binds (e) completes %.2fx (c) "
        "(%s: mean; max %.2f)\n",
        unbounded_ratio.first, over.c_str(), unbounded_ratio.second);
  }
  if (!utilisation_pass) {
    std::printf(
        "why   the shared-growth attribution and classes not yet measured: %s mean (min) %.1f "
        "(%.1f) with queued estimates fixed at arrival instead, %.1f (%.1f) with exact attribution, "
        "%.1f (%.1f) with both exact and every class measured\n",
        over.c_str(), refresh_util.first, refresh_util.second, exact_util.first,
        exact_util.second, ideal_util.first, ideal_util.second);
  }
  std::printf("info  (e) p99 latency %.1f s at %.0fx load (c: %.1f s), %.1f s at %.1fx (c: %.1f s)\n",
              threads.p99_latency, kOverload, clams.p99_latency, main_run.light[1].p99_latency,
              kLightLoad, main_run.light[0].p99_latency);
  return all ? 0 : 1;
}
