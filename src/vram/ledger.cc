// The in-flight ledger and its reservations.
#include "clams/vram/ledger.h"

#include <algorithm>
#include <utility>

namespace clams::vram {

Reservation::Reservation(Reservation&& other) noexcept
    : ledger_(other.ledger_), request_id_(other.request_id_), need_bytes_(other.need_bytes_) {
  if (ledger_ != nullptr) ledger_->holders_[request_id_] = this;
  other.ledger_ = nullptr;
}

Reservation& Reservation::operator=(Reservation&& other) noexcept {
  if (this == &other) return *this;
  Release();
  ledger_ = other.ledger_;
  request_id_ = other.request_id_;
  need_bytes_ = other.need_bytes_;
  if (ledger_ != nullptr) ledger_->holders_[request_id_] = this;
  other.ledger_ = nullptr;
  return *this;
}

Reservation::~Reservation() { Release(); }

void Reservation::Release(std::optional<std::uint64_t> worker_usage_now) {
  if (ledger_ == nullptr) return;
  Ledger* ledger = ledger_;
  ledger_ = nullptr;
  ledger->Release(this, worker_usage_now);
}

Ledger::~Ledger() {
  for (auto& [id, holder] : holders_) holder->ledger_ = nullptr;
}

Reservation Ledger::Reserve(const InFlight& entry, std::uint64_t worker_usage_now) {
  if (auto old = holders_.find(entry.request_id); old != holders_.end()) old->second->Release();
  InFlight e = entry;
  e.growth_bytes = 0;
  entries_[e.request_id] = e;
  WorkerState& w = workers_[e.worker_id];
  if (w.running == 0) {
    w.base = worker_usage_now;
    w.usage = worker_usage_now;
  }
  ++w.running;
  Reservation r(this, e.request_id, e.need_bytes);
  holders_[e.request_id] = &r;  // updated by the move into the caller's object
  return r;
}

void Ledger::Release(Reservation* reservation, std::optional<std::uint64_t> worker_usage_now) {
  holders_.erase(reservation->request_id_);
  auto it = entries_.find(reservation->request_id_);
  if (it == entries_.end()) return;
  const int worker = it->second.worker_id;
  entries_.erase(it);
  auto w = workers_.find(worker);
  if (w == workers_.end()) return;
  if (worker_usage_now) w->second.usage = *worker_usage_now;
  if (--w->second.running == 0) {
    workers_.erase(w);
  } else {
    // What the finished request left allocated is not the others' progress.
    w->second.base = w->second.usage;
  }
}

void Ledger::ObserveUsage(int worker_id, std::uint64_t usage_bytes) {
  auto it = workers_.find(worker_id);
  if (it != workers_.end()) it->second.usage = usage_bytes;
}

std::vector<InFlight> Ledger::Snapshot() const {
  std::vector<InFlight> out;
  out.reserve(entries_.size());
  for (const auto& [id, e] : entries_) {
    InFlight f = e;
    if (auto w = workers_.find(e.worker_id); w != workers_.end()) {
      f.growth_bytes = w->second.usage > w->second.base ? w->second.usage - w->second.base : 0;
    }
    out.push_back(f);
  }
  return out;
}

std::uint64_t Ledger::Outstanding(int device) const { return OutstandingBytes(device, Snapshot()); }

std::uint64_t Ledger::WorkerNeeds(int worker_id) const {
  std::uint64_t sum = 0;
  for (const auto& [id, e] : entries_) {
    if (e.worker_id == worker_id) sum += e.need_bytes;
  }
  return sum;
}

std::size_t Ledger::RunningOn(int worker_id) const {
  auto it = workers_.find(worker_id);
  return it == workers_.end() ? 0 : it->second.running;
}

}  // namespace clams::vram
