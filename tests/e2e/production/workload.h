// A vram-workload server on simulated GPUs for the end-to-end tests of the
// production server (each with its own simulated-GPU state and profile
// directory), and small helpers to read its answers.
#ifndef CLAMS_TESTS_E2E_PRODUCTION_WORKLOAD_H_
#define CLAMS_TESTS_E2E_PRODUCTION_WORKLOAD_H_

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "e2e/server/e2e_util.h"
#include "testing/process.h"
#include "testing/testing.h"

namespace clams::e2e {

inline constexpr std::uint64_t kGiB = 1ull << 30;
inline constexpr std::uint64_t kMiB = 1ull << 20;

/// A valid MMIF with one VideoDocument at `location`.
std::string VideoMmif(const std::string& location = "file:///data/a.mp4");

class Workload {
 public:
  /// `gpus`: CLAMS_SIM_GPUS; `args`: server flags (--production and
  /// --expose-runtime are added); `env` is added to the server's.
  Workload(const std::string& gpus, std::vector<std::string> args, std::map<std::string, std::string> env = {},
           const std::filesystem::path& profile_dir = {});
  ~Workload();
  int port() const { return server_->port(); }
  testing::ServerProcess& server() { return *server_; }
  const std::map<std::string, std::string>& env() const { return env_; }
  const std::filesystem::path& profiles() const { return profiles_; }

  HttpResponse Post(const std::string& query, std::chrono::milliseconds timeout = std::chrono::seconds(120));
  HttpResponse PostBody(const std::string& query, const std::string& body, server::Headers headers = {},
                        std::chrono::milliseconds timeout = std::chrono::seconds(120));
  boost::json::value Runtime() { return e2e::Runtime(port()); }
  std::vector<int> Pids() { return WorkerPids(port()); }
  bool AllIdle(std::size_t count) { return AllWorkersIdle(port(), count); }
  /// The simulated devices as `clams gpu --json` sees them.
  boost::json::value Gpus() { return e2e::Gpus(env_); }
  std::string Metrics() { return Call(port(), "GET", "/metrics").body; }

 private:
  testing::TempDir tmp_;
  std::filesystem::path profiles_;
  std::map<std::string, std::string> env_;
  std::unique_ptr<testing::ServerProcess> server_;
};

/// The error message of an error-view answer ("" if none).
std::string ErrorMessage(const HttpResponse& r);
/// A response header ("" if absent).
std::string Header(const HttpResponse& r, std::string_view name);
/// The `estimate=` bytes of the answer's X-Clams-Vram header (0 if absent).
std::uint64_t EstimateOf(const HttpResponse& r);
/// The value of one metric series line ("name{labels}" exactly), -1 if absent.
double MetricValue(const std::string& metrics, const std::string& series);

}  // namespace clams::e2e

#endif  // CLAMS_TESTS_E2E_PRODUCTION_WORKLOAD_H_
