#include "server/observe.h"

#include <algorithm>
#include <ctime>

#include "clams/gpu/probe.h"

namespace clams::server {
namespace {

using SteadyClock = std::chrono::steady_clock;

double Seconds(SteadyClock::duration d) { return std::chrono::duration<double>(d).count(); }

std::string UtcTime(std::chrono::system_clock::time_point t) {
  const std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string WaitText(const Job& job) {
  if (!job.last_wait) return "waiting to be considered";
  const auto& w = *job.last_wait;
  switch (w.reason) {
    case vram::WaitReason::kNoFreeWorker: return "waiting for a free worker";
    case vram::WaitReason::kMemory:
      return "waiting for GPU memory: needs " + gpu::FormatBytes(w.need_bytes) + " on device " +
             std::to_string(w.device) + ", " +
             gpu::FormatBytes(static_cast<std::uint64_t>(std::max<std::int64_t>(0, w.headroom_bytes))) +
             " can be given";
    case vram::WaitReason::kReserved: return "held back: the request ahead has a reservation of GPU memory";
  }
  return "";
}

// Usage of each tracked worker on a device, and what is not ours.
struct DeviceShare {
  std::vector<std::pair<int, std::uint64_t>> workers;
  std::uint64_t foreign = 0;
};

DeviceShare ShareOf(const ObserveInputs& in, const gpu::DeviceInfo& d) {
  DeviceShare s;
  if (in.sampler == nullptr || !in.sampler->per_process()) return s;
  std::uint64_t ours = 0;
  for (const auto& [id, w] : in.registry->all()) {
    if (w.device != d.index) continue;
    const std::uint64_t usage = in.sampler->WorkerUsage(id);
    s.workers.emplace_back(id, usage);
    ours += usage;
  }
  s.foreign = d.used_bytes > ours ? d.used_bytes - ours : 0;
  return s;
}

}  // namespace

void EventLog::Add(Event event) {
  events_.push_back(std::move(event));
  while (events_.size() > kMaxEvents) events_.pop_front();
}

json::array EventLog::ToJson() const {
  json::array out;
  out.reserve(events_.size());
  for (auto it = events_.rbegin(); it != events_.rend(); ++it) {
    json::object o;
    o["time"] = UtcTime(it->time);
    o["kind"] = it->kind;
    o["request_id"] = it->request_id;
    o["class"] = it->class_label;
    o["worker"] = it->worker;
    o["reason"] = it->reason;
    out.push_back(std::move(o));
  }
  return out;
}

std::string ProfileLabel(const vram::Profile& profile) {
  if (profile.parameters.empty()) return "(no parameters)";
  std::string out;
  for (const auto& kv : profile.parameters) {
    if (!out.empty()) out += ", ";
    out += kv.key();
    out += '=';
    out += kv.value().is_string() ? std::string(kv.value().get_string()) : mmif::WriteJson(kv.value());
  }
  return out;
}

json::object RuntimeJson(const ObserveInputs& in, bool full) {
  json::object rt;
  rt["mode"] = in.executor_kind == "in-process" ? "development" : "production";
  rt["executor"] = in.executor_kind;
  const auto ledger = in.ledger->Snapshot();
  json::array devices;
  if (in.sampler != nullptr) {
    for (const auto& d : in.sampler->Latest().devices) {
      json::object o;
      o["index"] = d.index;
      o["name"] = d.name;
      if (full) o["uuid"] = d.uuid;
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
    rt["accounting"] = in.sampler->per_process() ? "per_process" : "device";
  }
  rt["devices"] = std::move(devices);
  json::array workers;
  for (const auto& [id, w] : in.registry->all()) {
    json::object o;
    o["id"] = id;
    if (full) o["pid"] = w.pid;
    if (w.device >= 0) {
      o["device"] = w.device;
    } else {
      o["device"] = nullptr;
    }
    o["state"] = vram::WorkerStateName(w.state);
    o["running"] = w.running.size();
    o["threads"] = w.threads;
    if (w.TakesAhead() > 0) o["ahead"] = w.TakesAhead();
    o["requests"] = w.requests;
    o["restarts"] = w.restarts;
    o["vram_bytes"] = in.sampler != nullptr ? in.sampler->WorkerUsage(id) : 0;
    if (full) o["classes"] = json::array(w.classes.begin(), w.classes.end());
    workers.push_back(std::move(o));
  }
  rt["workers"] = std::move(workers);
  json::object queue;
  queue["length"] = in.queue->size();
  queue["bytes"] = in.queue->bytes();
  double oldest = 0;
  if (!in.queue->empty()) oldest = Seconds(in.now - in.queue->jobs().front()->arrived);
  queue["oldest_wait_seconds"] = oldest;
  queue["running"] = in.running;
  rt["queue"] = std::move(queue);
  json::object profiles;
  profiles["count"] = in.profiles != nullptr ? in.profiles->size() : 0;
  if (in.profiles != nullptr && full) {
    profiles["directory"] = in.profiles->directory().string();
    json::array list;
    in.profiles->ForEach([&](const std::string& key, const vram::Profile& p) {
      json::object e;
      e["key"] = key;
      e["peak_bytes"] = p.peak_bytes;
      e["warm_peak_bytes"] = p.warm_peak_bytes;
      e["oom_floor_bytes"] = p.oom_floor_bytes;
      e["warm_oom_floor_bytes"] = p.warm_oom_floor_bytes;
      e["samples"] = p.samples;
      e["oom_events"] = p.oom_events;
      e["parameters"] = p.parameters;
      list.push_back(std::move(e));
    });
    profiles["classes"] = std::move(list);
  }
  rt["profiles"] = std::move(profiles);
  rt["draining"] = in.draining;
  return rt;
}

json::object StatusJson(const ObserveInputs& in) {
  json::object out;
  out["time"] = UtcTime(std::chrono::system_clock::now());
  json::object app;
  app["name"] = in.metadata->name;
  app["identifier"] = in.metadata->identifier;
  app["version"] = in.metadata->app_version;
  out["app"] = std::move(app);
  out["mode"] = in.executor_kind == "in-process" ? "development" : "production";
  out["draining"] = in.draining;
  const auto ledger = in.ledger->Snapshot();
  json::array devices;
  if (in.sampler != nullptr) {
    out["accounting"] = in.sampler->per_process() ? "per_process" : "device";
    for (const auto& d : in.sampler->Latest().devices) {
      json::object o;
      o["index"] = d.index;
      o["name"] = d.name;
      o["total_bytes"] = d.total_bytes;
      o["used_bytes"] = d.used_bytes;
      o["free_bytes"] = d.free_bytes;
      o["reserved_bytes"] = vram::OutstandingBytes(d.index, ledger);
      o["safety_bytes"] = vram::SafetyBytes({d.index, d.total_bytes, d.free_bytes}, *in.admission);
      const DeviceShare share = ShareOf(in, d);
      o["foreign_bytes"] = share.foreign;
      json::array ws;
      for (const auto& [id, bytes] : share.workers) {
        json::object w;
        w["worker"] = id;
        w["bytes"] = bytes;
        ws.push_back(std::move(w));
      }
      o["workers"] = std::move(ws);
      devices.push_back(std::move(o));
    }
  }
  out["devices"] = std::move(devices);
  // Class labels: the classes held by workers are keys; name them from the
  // profiles when known.
  std::map<std::string, std::string> labels;
  if (in.profiles != nullptr) {
    in.profiles->ForEach([&](const std::string& key, const vram::Profile& p) { labels[key] = ProfileLabel(p); });
  }
  json::array workers;
  for (const auto& [id, w] : in.registry->all()) {
    json::object o;
    o["id"] = id;
    o["device"] = w.device;
    o["state"] = vram::WorkerStateName(w.state);
    o["running"] = w.running.size();
    o["threads"] = w.threads;
    if (w.TakesAhead() > 0) o["ahead"] = w.TakesAhead();
    json::array classes;
    for (const auto& c : w.classes) {
      auto it = labels.find(c);
      classes.emplace_back(it != labels.end() ? it->second : c.substr(0, 8));
    }
    o["classes"] = std::move(classes);
    o["requests"] = w.requests;
    o["vram_bytes"] = in.sampler != nullptr ? in.sampler->WorkerUsage(id) : 0;
    o["restarts"] = w.restarts;
    workers.push_back(std::move(o));
  }
  out["workers"] = std::move(workers);
  json::array queue;
  const auto now = in.now;
  for (const Job* job : in.queue->jobs()) {
    json::object q;
    q["request_id"] = job->request_id;
    q["class"] = job->class_label;
    q["wait_seconds"] = Seconds(now - job->arrived);
    q["need_bytes"] = job->has_estimate ? job->estimate.full_bytes : 0;
    q["reason"] = WaitText(*job);
    queue.push_back(std::move(q));
  }
  out["queue"] = std::move(queue);
  out["events"] = in.events->ToJson();
  json::array profiles;
  if (in.profiles != nullptr) {
    in.profiles->ForEach([&](const std::string&, const vram::Profile& p) {
      json::object e;
      e["class"] = ProfileLabel(p);
      e["parameters"] = p.parameters;
      e["full_bytes"] = std::max(p.peak_bytes, p.oom_floor_bytes);
      e["warm_bytes"] = std::max(p.warm_peak_bytes, p.warm_oom_floor_bytes);
      e["samples"] = p.samples + p.warm_samples;
      e["oom_events"] = p.oom_events;
      profiles.push_back(std::move(e));
    });
  }
  out["profiles"] = std::move(profiles);
  return out;
}

void UpdateGauges(const ObserveInputs& in, Metrics& metrics) {
  metrics.Set("clams_queue_length", {}, static_cast<double>(in.queue->size()));
  metrics.ClearSeries("clams_workers");
  for (auto s : {vram::WorkerState::kStarting, vram::WorkerState::kIdle, vram::WorkerState::kBusy,
                 vram::WorkerState::kStopping}) {
    metrics.Set("clams_workers", {{"state", std::string(vram::WorkerStateName(s))}}, 0);
  }
  metrics.ClearSeries("clams_worker_vram_bytes");
  metrics.ClearSeries("clams_worker_running_requests");
  for (const auto& [id, w] : in.registry->all()) {
    Labels state{{"state", std::string(vram::WorkerStateName(w.state))}};
    metrics.Set("clams_workers", state, metrics.Value("clams_workers", state) + 1);
    const Labels worker = WorkerLabels(id);
    metrics.Set("clams_worker_running_requests", worker, static_cast<double>(w.running.size()));
    if (in.sampler != nullptr) {
      metrics.Set("clams_worker_vram_bytes", worker, static_cast<double>(in.sampler->WorkerUsage(id)));
    }
  }
  metrics.ClearSeries("clams_gpu_memory_total_bytes");
  metrics.ClearSeries("clams_gpu_memory_used_bytes");
  metrics.ClearSeries("clams_gpu_memory_reserved_bytes");
  if (in.sampler != nullptr) {
    const auto ledger = in.ledger->Snapshot();
    for (const auto& d : in.sampler->Latest().devices) {
      Labels l{{"device", std::to_string(d.index)}, {"uuid", d.uuid}};
      metrics.Set("clams_gpu_memory_total_bytes", l, static_cast<double>(d.total_bytes));
      metrics.Set("clams_gpu_memory_used_bytes", l, static_cast<double>(d.used_bytes));
      metrics.Set("clams_gpu_memory_reserved_bytes", l, static_cast<double>(vram::OutstandingBytes(d.index, ledger)));
    }
    metrics.Set("clams_gpu_accounting_per_process", {}, in.sampler->per_process() ? 1 : 0);
  }
  metrics.Set("clams_profiles", {}, in.profiles != nullptr ? static_cast<double>(in.profiles->size()) : 0);
}

}  // namespace clams::server
