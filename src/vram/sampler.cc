// The GPU sampler: polls the probe on its own thread and tracks per-worker
// usage and measurement windows.
#include "clams/vram/sampler.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "clams/base/log.h"

namespace clams::vram {
namespace {

using SteadyClock = std::chrono::steady_clock;

// An interval of 0 would make the thread spin; 1 ms is already far below
// what NVML can usefully deliver.
constexpr std::chrono::milliseconds kMinInterval{1};
// Process trees deeper than this are not walked (a loop guard: PIDs are
// reused, so a ppid chain read at two moments could in theory cycle).
constexpr int kMaxProcessTreeDepth = 128;

}  // namespace

std::optional<int> ReadParentPid(const std::string& proc_dir, int pid) {
  std::ifstream in(proc_dir + "/" + std::to_string(pid) + "/stat");
  if (!in) return std::nullopt;
  std::string line;
  std::getline(in, line);
  // "<pid> (<comm>) <state> <ppid> ...": comm may hold spaces and ')', so
  // parse after the last ')'.
  const auto close = line.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream rest(line.substr(close + 1));
  std::string state;
  int ppid = -1;
  if (!(rest >> state >> ppid) || ppid < 0) return std::nullopt;
  return ppid;
}

struct Sampler::State {
  struct Tracked {
    int root_pid = 0;
    int device = 0;
    bool include_children = false;
    std::uint64_t usage = 0;
    std::map<std::uint64_t, Window> windows;  // by window id
  };

  mutable std::mutex mu;
  std::condition_variable cv;
  bool stop = false;
  bool busy = false;
  gpu::Snapshot latest;
  SteadyClock::time_point latest_time;
  SteadyClock::time_point last_attempt;
  bool per_process_active = true;
  bool failing = false;
  // Fresh samples asked for (Fresh()) and the last one the thread has
  // answered: asked > answered while one is under way.
  std::uint64_t asked = 0;
  std::uint64_t answered = 0;
  bool slow_warned = false;
  std::map<int, Tracked> workers;
  std::uint64_t next_window = 1;
  std::thread thread;
};

Sampler::Sampler(gpu::Probe* probe, const Options& options)
    : probe_(probe), options_(options), state_(std::make_unique<State>()) {
  options_.busy_interval = std::max(options_.busy_interval, kMinInterval);
  options_.idle_interval = std::max(options_.idle_interval, kMinInterval);
  state_->per_process_active = options_.per_process;
}

std::unique_ptr<Sampler> Sampler::Start(gpu::Probe* probe, const Options& options) {
  std::unique_ptr<Sampler> sampler(new Sampler(probe, options));
  sampler->TakeSample();  // the first sample, before the thread exists
  sampler->state_->thread = std::thread([s = sampler.get()] { s->Loop(); });
  return sampler;
}

Sampler::~Sampler() {
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->stop = true;
  }
  state_->cv.notify_all();
  if (state_->thread.joinable()) state_->thread.join();
}

void Sampler::Loop() {
  State& s = *state_;
  std::unique_lock<std::mutex> lock(s.mu);
  while (!s.stop) {
    const auto interval = s.busy ? options_.busy_interval : options_.idle_interval;
    const auto due = s.last_attempt + interval;
    if (s.asked == s.answered && SteadyClock::now() < due) {
      // SetBusy(), Fresh() and the destructor wake us; the deadline is then
      // recomputed.
      s.cv.wait_until(lock, due);
      continue;
    }
    const std::uint64_t asked = s.asked;  // this sample answers every request made so far
    lock.unlock();
    TakeSample();
    lock.lock();
    if (s.answered < asked) {
      if (s.slow_warned) CLAMS_LOG(kInfo, "GPU sampling answers again");
      s.slow_warned = false;
      s.answered = asked;
      s.cv.notify_all();
    }
  }
}

void Sampler::Fresh() {
  State& s = *state_;
  std::unique_lock<std::mutex> lock(s.mu);
  if (s.asked != s.answered) {
    // The sample asked for last has not come back: the probe is slow or
    // hung. The caller goes on with the latest snapshot, without waiting again.
    return;
  }
  const std::uint64_t ticket = ++s.asked;
  s.cv.notify_all();
  const bool done = s.cv.wait_for(lock, options_.fresh_wait, [&] { return s.answered >= ticket || s.stop; });
  if (!done && !s.slow_warned) {
    s.slow_warned = true;
    const auto age = std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - s.latest_time);
    CLAMS_LOG(kWarning,
              "a GPU sample took longer than {} ms: going on with the snapshot from {} ms ago, and not waiting "
              "for the probe again until it answers",
              options_.fresh_wait.count(), age.count());
  }
}

void Sampler::SetBusy(bool busy) {
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    if (state_->busy == busy) return;
    state_->busy = busy;
  }
  state_->cv.notify_all();
}

gpu::Snapshot Sampler::Latest() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->latest;
}

SteadyClock::time_point Sampler::LatestTime() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->latest_time;
}

bool Sampler::per_process() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->per_process_active;
}

gpu::Snapshot Sampler::SampleNow() {
  Fresh();
  return Latest();
}

void Sampler::TakeSample() {
  State& s = *state_;
  const auto attempt_time = SteadyClock::now();
  StatusOr<gpu::Snapshot> snapshot = probe_->Sample();
  if (!snapshot.ok()) {
    std::lock_guard<std::mutex> lock(s.mu);
    s.last_attempt = attempt_time;
    if (!s.failing) {
      CLAMS_LOG(kWarning, "GPU sample failed ({}); keeping the last snapshot",
                snapshot.status().ToString());
      s.failing = true;
    }
    return;
  }
  const bool per_process = options_.per_process && probe_->per_process_accounting();

  // Copy what is tracked, then compute usages without holding `mu` (reading
  // /proc is file I/O).
  std::vector<std::pair<int, State::Tracked>> tracked;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    tracked.reserve(s.workers.size());
    for (const auto& [id, t] : s.workers) tracked.emplace_back(id, t);
  }
  std::unordered_map<int, std::optional<int>> parent_cache;  // per sample
  auto parent_of = [&](int pid) -> std::optional<int> {
    auto it = parent_cache.find(pid);
    if (it != parent_cache.end()) return it->second;
    auto ppid = ReadParentPid(options_.proc_dir, pid);
    parent_cache.emplace(pid, ppid);
    return ppid;
  };
  auto belongs = [&](int pid, const State::Tracked& t) {
    if (pid == t.root_pid) return true;
    if (!t.include_children) return false;
    int current = pid;
    for (int depth = 0; depth < kMaxProcessTreeDepth; ++depth) {
      const auto parent = parent_of(current);
      if (!parent || *parent <= 1) return false;  // 1 (init) and 0 end every chain
      if (*parent == t.root_pid) return true;
      current = *parent;
    }
    return false;
  };
  std::vector<std::uint64_t> usages(tracked.size(), 0);
  for (std::size_t i = 0; i < tracked.size(); ++i) {
    const State::Tracked& t = tracked[i].second;
    std::uint64_t usage = 0;
    if (per_process) {
      for (const gpu::ProcessUsage& p : snapshot->processes) {
        if (p.device_index == t.device && belongs(p.pid, t)) usage += p.used_bytes;
      }
    } else {
      for (const gpu::DeviceInfo& d : snapshot->devices) {
        if (d.index == t.device) usage = d.used_bytes;
      }
    }
    usages[i] = usage;
  }

  std::lock_guard<std::mutex> lock(s.mu);
  if (s.failing) {
    CLAMS_LOG(kInfo, "GPU sampling recovered");
    s.failing = false;
  }
  if (per_process != s.per_process_active) {
    CLAMS_LOG(kInfo, "worker GPU usage is now accounted {}",
              per_process ? "per process" : "per device (the device's total usage)");
  }
  s.per_process_active = per_process;
  s.latest = *std::move(snapshot);
  s.latest_time = attempt_time;
  s.last_attempt = attempt_time;
  for (std::size_t i = 0; i < tracked.size(); ++i) {
    auto it = s.workers.find(tracked[i].first);
    // Skip workers untracked or re-tracked while we computed.
    if (it == s.workers.end() || it->second.root_pid != tracked[i].second.root_pid ||
        it->second.device != tracked[i].second.device) {
      continue;
    }
    it->second.usage = usages[i];
    for (auto& [id, window] : it->second.windows) {
      window.peak_bytes = std::max(window.peak_bytes, usages[i]);
      ++window.samples;
    }
  }
}

void Sampler::TrackWorker(int worker_id, int root_pid, int device_index, bool include_children) {
  std::lock_guard<std::mutex> lock(state_->mu);
  State::Tracked& t = state_->workers[worker_id];
  t = State::Tracked{};
  t.root_pid = root_pid;
  t.device = device_index;
  t.include_children = include_children;
}

void Sampler::UntrackWorker(int worker_id) {
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->workers.erase(worker_id);
}

std::uint64_t Sampler::WorkerUsage(int worker_id) const {
  std::lock_guard<std::mutex> lock(state_->mu);
  auto it = state_->workers.find(worker_id);
  return it == state_->workers.end() ? 0 : it->second.usage;
}

std::uint64_t Sampler::BeginWindow(int worker_id) {
  Fresh();
  std::lock_guard<std::mutex> lock(state_->mu);
  auto it = state_->workers.find(worker_id);
  if (it == state_->workers.end()) return 0;
  Window w;
  w.baseline_bytes = it->second.usage;
  w.peak_bytes = it->second.usage;
  w.samples = 1;
  const std::uint64_t id = state_->next_window++;
  it->second.windows.emplace(id, w);
  return id;
}

std::optional<Sampler::Window> Sampler::CurrentWindow(std::uint64_t window_id) const {
  std::lock_guard<std::mutex> lock(state_->mu);
  for (const auto& [worker, t] : state_->workers) {
    if (auto w = t.windows.find(window_id); w != t.windows.end()) return w->second;
  }
  return std::nullopt;
}

std::optional<Sampler::Window> Sampler::EndWindow(std::uint64_t window_id) {
  if (window_id == 0) return std::nullopt;
  Fresh();
  std::lock_guard<std::mutex> lock(state_->mu);
  for (auto& [worker, t] : state_->workers) {
    auto w = t.windows.find(window_id);
    if (w == t.windows.end()) continue;
    Window out = w->second;
    t.windows.erase(w);
    return out;
  }
  return std::nullopt;
}

}  // namespace clams::vram
