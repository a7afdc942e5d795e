// Helpers for the GPU tests: a fake /proc tree, scoped environment
// variables, and the paths of the fake driver libraries.
#ifndef CLAMS_TESTS_UNIT_GPU_TEST_UTIL_H_
#define CLAMS_TESTS_UNIT_GPU_TEST_UTIL_H_

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "clams/base/log.h"
#include "clams/gpu/probe.h"

namespace clams::gpu {
// For EXPECT_THAT on process lists.
inline bool operator==(const ProcessUsage& a, const ProcessUsage& b) {
  return a.pid == b.pid && a.device_index == b.device_index && a.used_bytes == b.used_bytes;
}
inline void PrintTo(const ProcessUsage& p, std::ostream* os) {
  *os << "{pid " << p.pid << ", device " << p.device_index << ", " << p.used_bytes << " B}";
}
}  // namespace clams::gpu

namespace clams::gpu_internal {

/// Collects the log messages at `min_level` and above while alive.
class LogCapture {
 public:
  explicit LogCapture(log::Level min_level = log::Level::kInfo) : old_level_(log::GetLevel()) {
    log::SetLevel(min_level);
    log::SetSink([this](log::Level level, std::string_view, std::string_view message) {
      std::lock_guard<std::mutex> lock(mu_);
      lines_.push_back(std::string(log::LevelName(level)) + ": " + std::string(message));
    });
  }
  ~LogCapture() {
    log::SetSink({});
    log::SetLevel(old_level_);
  }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

  std::vector<std::string> lines() {
    std::lock_guard<std::mutex> lock(mu_);
    return lines_;
  }

 private:
  log::Level old_level_;
  std::mutex mu_;
  std::vector<std::string> lines_;
};

/// A directory laid out like the parts of /proc the probe reads.
class FakeProc {
 public:
  explicit FakeProc(const std::filesystem::path& root) : dir_(root / "proc") {
    std::filesystem::create_directories(dir_ / "self" / "ns");
  }
  std::string dir() const { return dir_.string(); }

  /// <proc>/self/ns/pid -> "pid:[<inode>]", as the kernel shows it.
  void SetNamespace(std::uint64_t inode) {
    const auto link = dir_ / "self" / "ns" / "pid";
    std::error_code ec;
    std::filesystem::remove(link, ec);
    std::filesystem::create_symlink("pid:[" + std::to_string(inode) + "]", link);
  }

  /// <proc>/<pid>/fd/<n> -> each of `open_files`.
  void AddProcess(int pid, const std::vector<std::string>& open_files) {
    const auto fd_dir = dir_ / std::to_string(pid) / "fd";
    std::filesystem::create_directories(fd_dir);
    for (std::size_t i = 0; i < open_files.size(); ++i) {
      std::filesystem::create_symlink(open_files[i], fd_dir / std::to_string(i));
    }
  }

 private:
  std::filesystem::path dir_;
};

/// Sets (or unsets) an environment variable for the life of the object.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, std::optional<std::string> value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value.has_value()) {
      ::setenv(name, value->c_str(), 1);
    } else {
      ::unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (old_.has_value()) {
      ::setenv(name_.c_str(), old_->c_str(), 1);
    } else {
      ::unsetenv(name_.c_str());
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  std::string name_;
  std::optional<std::string> old_;
};

inline std::string FakeNvmlPath() { return CLAMS_FAKE_NVML; }
inline std::string FakeNvmlV1Path() { return CLAMS_FAKE_NVML_V1; }
inline std::string FakeCudartPath() { return CLAMS_FAKE_CUDART; }

}  // namespace clams::gpu_internal

#endif  // CLAMS_TESTS_UNIT_GPU_TEST_UTIL_H_
