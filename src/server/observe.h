// Observability of the scheduler: the runtime object of
// GET /?includeVRAM=true, the JSON of the /status page, the gauges set
// before a /metrics scrape, and the log of recent events (admissions,
// evictions, refusals, OOMs, crashes). Reads the scheduler's parts; changes
// nothing but the metrics. Loop thread only.
#ifndef CLAMS_SRC_SERVER_OBSERVE_H_
#define CLAMS_SRC_SERVER_OBSERVE_H_

#include <chrono>
#include <cstddef>
#include <deque>
#include <string>
#include <vector>

#include "clams/app/metadata.h"
#include "clams/mmif/json.h"
#include "clams/vram/vram.h"
#include "server/job.h"
#include "server/metrics.h"
#include "server/wait_queue.h"
#include "server/worker_registry.h"

namespace clams::server {

/// Recent events kept for the status page.
inline constexpr std::size_t kMaxEvents = 200;

struct Event {
  std::chrono::system_clock::time_point time;
  std::string kind;  ///< admit, evict, reject, oom, recycle, crash, timeout
  std::string request_id;
  std::string class_label;
  int worker = 0;
  std::string reason;
};

class EventLog {
 public:
  void Add(Event event);
  json::array ToJson() const;

 private:
  std::deque<Event> events_;
};

/// What the builders read.
struct ObserveInputs {
  const AppMetadata* metadata = nullptr;
  std::string_view executor_kind;
  const WorkerRegistry* registry = nullptr;
  const WaitQueue* queue = nullptr;
  const vram::Ledger* ledger = nullptr;
  const vram::Sampler* sampler = nullptr;  // may be null
  const vram::ProfileStore* profiles = nullptr;  // may be null
  const EventLog* events = nullptr;
  const vram::AdmissionOptions* admission = nullptr;
  std::size_t running = 0;
  bool draining = false;
  std::chrono::steady_clock::time_point now;
};

/// The `runtime` object. `full`: with pids, the profile directory and every
/// class's parameters (--expose-runtime).
json::object RuntimeJson(const ObserveInputs& in, bool full);
/// The /status.json document (shape in docs/operations.md).
json::object StatusJson(const ObserveInputs& in);
/// Sets every gauge from the inputs.
void UpdateGauges(const ObserveInputs& in, Metrics& metrics);
/// A profile's class in words, from its recorded parameters.
std::string ProfileLabel(const vram::Profile& profile);

}  // namespace clams::server

#endif  // CLAMS_SRC_SERVER_OBSERVE_H_
