// A GPU probe whose numbers the test sets (devices of 24 GiB by default;
// per-process usage by pid). Thread-safe.
#ifndef CLAMS_TESTING_FAKE_PROBE_H_
#define CLAMS_TESTING_FAKE_PROBE_H_

#include <cstdint>
#include <mutex>
#include <string>

#include "clams/gpu/probe.h"

namespace clams::testing {

// A probe whose numbers the test sets.
class FakeProbe : public gpu::Probe {
 public:
  explicit FakeProbe(int devices = 1) {
    for (int i = 0; i < devices; ++i) {
      gpu::DeviceInfo d;
      d.index = i;
      d.uuid = "FAKE-" + std::to_string(i);
      d.name = "Fake GPU " + std::to_string(i);
      d.total_bytes = (std::uint64_t{24} << 30);
      d.free_bytes = d.total_bytes;
      snapshot_.devices.push_back(d);
    }
  }
  std::string_view backend() const override { return "fake"; }
  StatusOr<std::vector<gpu::DeviceInfo>> Devices() override {
    std::lock_guard<std::mutex> lock(mu_);
    return snapshot_.devices;
  }
  StatusOr<gpu::Snapshot> Sample() override {
    std::lock_guard<std::mutex> lock(mu_);
    ++calls_;
    if (failing_) return UnavailableError("driver went away");
    return snapshot_;
  }
  bool per_process_accounting() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return per_process_;
  }

  void SetDeviceUsed(int index, std::uint64_t used) {
    std::lock_guard<std::mutex> lock(mu_);
    auto& d = snapshot_.devices.at(index);
    d.used_bytes = used;
    d.free_bytes = d.total_bytes - used;
  }
  void SetProcess(int pid, int device, std::uint64_t bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& p : snapshot_.processes) {
      if (p.pid == pid && p.device_index == device) {
        p.used_bytes = bytes;
        return;
      }
    }
    snapshot_.processes.push_back({pid, device, bytes});
  }
  void SetFailing(bool failing) {
    std::lock_guard<std::mutex> lock(mu_);
    failing_ = failing;
  }
  void SetPerProcess(bool per_process) {
    std::lock_guard<std::mutex> lock(mu_);
    per_process_ = per_process;
  }
  int calls() const {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }

 private:
  mutable std::mutex mu_;
  gpu::Snapshot snapshot_;
  bool failing_ = false;
  bool per_process_ = true;
  int calls_ = 0;
};

}  // namespace clams::testing

#endif  // CLAMS_TESTING_FAKE_PROBE_H_
