#include "server/worker_registry.h"

#include <algorithm>

namespace clams::server {

void WorkerRegistry::Refresh(WorkerRecord& w) const {
  if (w.state == vram::WorkerState::kIdle || w.state == vram::WorkerState::kBusy) {
    w.state = w.running.empty() ? vram::WorkerState::kIdle : vram::WorkerState::kBusy;
  }
}

void WorkerRegistry::Apply(const WorkerEvent& event) {
  if (event.kind == WorkerEvent::Kind::kRemoved) {
    if (sampler_ != nullptr) sampler_->UntrackWorker(event.worker_id);
    workers_.erase(event.worker_id);
    return;
  }
  WorkerRecord& w = workers_[event.worker_id];
  w.id = event.worker_id;
  w.device = event.device;
  w.threads = std::max(1, event.threads);
  w.ahead = std::max(0, event.ahead);
  w.include_children = event.include_children;
  const auto now = std::chrono::steady_clock::now();
  switch (event.kind) {
    case WorkerEvent::Kind::kStarted:
      if (w.pid != event.pid || w.tree_pid != event.tree_pid) {
        if (sampler_ != nullptr) {
          sampler_->UntrackWorker(w.id);
          const int root = event.tree_pid > 0 ? event.tree_pid : event.pid;
          if (root > 0) sampler_->TrackWorker(w.id, root, std::max(event.device, 0), event.include_children);
        }
      }
      w.pid = event.pid;
      w.tree_pid = event.tree_pid;
      w.state = vram::WorkerState::kStarting;
      w.started = now;
      w.last_used = now;
      w.requests = 0;
      w.classes.clear();
      w.has_baseline = false;
      w.stopping = KillCause::kNone;
      break;
    case WorkerEvent::Kind::kReady:
      if (event.pid > 0) w.pid = event.pid;
      w.state = vram::WorkerState::kIdle;
      w.last_used = now;
      Refresh(w);
      break;
    case WorkerEvent::Kind::kStopping:
      w.state = vram::WorkerState::kStopping;
      w.stopping = event.cause;
      break;
    case WorkerEvent::Kind::kRemoved:  // handled above
    case WorkerEvent::Kind::kExited:
      if (sampler_ != nullptr) sampler_->UntrackWorker(w.id);
      w.pid = 0;
      w.tree_pid = 0;
      w.state = vram::WorkerState::kStarting;
      w.running.clear();
      w.running_since.clear();
      w.classes.clear();
      w.has_baseline = false;
      ++w.restarts;
      break;
  }
}

void WorkerRegistry::StartRequest(int worker_id, std::uint64_t job_id, const std::string& class_key) {
  WorkerRecord* w = Find(worker_id);
  if (w == nullptr) return;
  const auto now = std::chrono::steady_clock::now();
  const bool taken_ahead = static_cast<int>(w->running.size()) >= w->threads;
  w->running.push_back(job_id);
  w->running_since.push_back(taken_ahead ? std::chrono::steady_clock::time_point::max() : now);
  if (!class_key.empty()) {
    auto it = std::find(w->classes.begin(), w->classes.end(), class_key);
    if (it != w->classes.end()) w->classes.erase(it);
    w->classes.push_back(class_key);
    if (w->classes.size() > kMaxHeldClasses) w->classes.erase(w->classes.begin());
  }
  w->last_used = now;
  Refresh(*w);
}

void WorkerRegistry::EndRequest(int worker_id, std::uint64_t job_id, bool answered, bool succeeded,
                                const std::string& class_key, bool was_held) {
  WorkerRecord* w = Find(worker_id);
  if (w == nullptr) return;
  const auto now = std::chrono::steady_clock::now();
  auto it = std::find(w->running.begin(), w->running.end(), job_id);
  if (it != w->running.end()) {
    const auto at = static_cast<std::size_t>(it - w->running.begin());
    const auto since = w->running_since[at];
    w->running.erase(it);
    w->running_since.erase(w->running_since.begin() + static_cast<std::ptrdiff_t>(at));
    if (since != std::chrono::steady_clock::time_point::max()) {
      // One taken ahead starts in its place.
      auto waiting = std::find(w->running_since.begin(), w->running_since.end(),
                               std::chrono::steady_clock::time_point::max());
      if (waiting != w->running_since.end()) *waiting = now;
      if (answered) {
        const auto took = now - since;
        w->service = w->timed == 0 ? took : (w->service * 3 + took) / 4;
        ++w->timed;
      }
    }
  }
  if (answered) ++w->requests;
  if (!succeeded && !was_held && !class_key.empty()) {
    auto held = std::find(w->classes.begin(), w->classes.end(), class_key);
    if (held != w->classes.end()) w->classes.erase(held);
  }
  w->last_used = now;
  Refresh(*w);
}

WorkerRecord* WorkerRegistry::Find(int worker_id) {
  auto it = workers_.find(worker_id);
  return it == workers_.end() ? nullptr : &it->second;
}

const WorkerRecord* WorkerRegistry::Find(int worker_id) const {
  auto it = workers_.find(worker_id);
  return it == workers_.end() ? nullptr : &it->second;
}

std::vector<vram::WorkerSlot> WorkerRegistry::Slots() const {
  std::vector<vram::WorkerSlot> out;
  out.reserve(workers_.size());
  for (const auto& [id, w] : workers_) {
    vram::WorkerSlot s;
    s.id = id;
    s.device = std::max(w.device, 0);
    s.state = w.state;
    s.threads = w.threads + w.TakesAhead();  // admission hands it this many
    s.running = static_cast<int>(w.running.size());
    s.classes = w.classes;
    s.usage_bytes = sampler_ != nullptr ? sampler_->WorkerUsage(id) : 0;
    s.last_used = w.last_used;
    out.push_back(std::move(s));
  }
  return out;
}

std::size_t WorkerRegistry::Capacity() const {
  std::size_t slots = 0;
  for (const auto& [id, w] : workers_) {
    if (w.state != vram::WorkerState::kStopping) slots += static_cast<std::size_t>(w.threads);
  }
  return slots;
}

bool WorkerRegistry::AnyReady() const {
  return std::any_of(workers_.begin(), workers_.end(), [](const auto& kv) {
    return kv.second.state == vram::WorkerState::kIdle || kv.second.state == vram::WorkerState::kBusy;
  });
}

}  // namespace clams::server
