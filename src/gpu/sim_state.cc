#include "gpu/sim_state.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <utility>

#include "clams/base/log.h"
#include "gpu/format.h"
#include "gpu/visible_devices.h"

namespace clams::gpu_internal {
namespace {

constexpr std::string_view kMagic = "clams-sim-gpu-state";
constexpr std::string_view kFormatVersion = "1";
// A corrupt file must not make us allocate a huge vector.
constexpr std::uint64_t kMaxSimDevices = 1024;
constexpr std::size_t kReadChunk = 4096;
// Field 22 of /proc/<pid>/stat, counted from the state (field 3).
constexpr int kStartTimeFieldAfterState = 19;
constexpr std::size_t kProcStatBufferSize = 1024;

std::string Errno(int err) { return std::strerror(err); }

class UniqueFd {
 public:
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  int get() const { return fd_; }
  // Closes now; returns false (errno set) if close() failed.
  bool Close() {
    const int fd = std::exchange(fd_, -1);
    return fd < 0 || ::close(fd) == 0;
  }

 private:
  int fd_;
};

std::vector<std::string_view> SplitWords(std::string_view line) {
  std::vector<std::string_view> words;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) ++i;
    std::size_t j = i;
    while (j < line.size() && line[j] != ' ' && line[j] != '\t' && line[j] != '\r') ++j;
    if (j > i) words.push_back(line.substr(i, j - i));
    i = j;
  }
  return words;
}

template <typename T>
bool ParseNumber(std::string_view s, T* out) {
  if (s.empty()) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && end == s.data() + s.size();
}

// State (field 3) and start time (field 22) of /proc/<pid>/stat.
bool ReadProcStat(int pid, char* state, std::uint64_t* start_time) {
  const std::string path = "/proc/" + std::to_string(pid) + "/stat";
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return false;
  std::array<char, kProcStatBufferSize> buf{};
  const ssize_t n = ::read(fd.get(), buf.data(), buf.size());
  if (n <= 0) return false;
  std::string_view text(buf.data(), static_cast<std::size_t>(n));
  // The command name may contain spaces and parentheses: skip to the last ')'.
  const std::size_t close = text.rfind(')');
  if (close == std::string_view::npos) return false;
  const std::vector<std::string_view> fields = SplitWords(text.substr(close + 1));
  if (fields.size() <= static_cast<std::size_t>(kStartTimeFieldAfterState)) return false;
  if (fields[0].size() != 1) return false;
  *state = fields[0][0];
  return ParseNumber(fields[kStartTimeFieldAfterState], start_time);
}

std::uint64_t FreshTokenBase() {
  // Tokens of a state that was lost (corrupt file) must not collide with
  // the ones live Allocation objects still hold: start far from them.
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

Status FileError(const std::string& path, std::string_view what, int err) {
  return FailedPreconditionError(
      fmt::format("simulated GPU state {}: {}: {}", path, what, Errno(err)));
}

Status ReadWholeFile(const std::string& path, bool* exists, std::string* out) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    if (errno == ENOENT) {
      *exists = false;
      return Status::Ok();
    }
    return FileError(path, "cannot open", errno);
  }
  *exists = true;
  std::array<char, kReadChunk> buf{};
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return FileError(path, "cannot read", errno);
    }
    if (n == 0) break;
    out->append(buf.data(), static_cast<std::size_t>(n));
  }
  return Status::Ok();
}

Status WriteWholeFile(const std::string& path, const std::string& content) {
  const std::string tmp = path + ".tmp";
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666));
  if (fd.get() < 0) return FileError(tmp, "cannot create", errno);
  std::size_t done = 0;
  while (done < content.size()) {
    const ssize_t n = ::write(fd.get(), content.data() + done, content.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return FileError(tmp, "cannot write", errno);
    }
    done += static_cast<std::size_t>(n);
  }
  if (!fd.Close()) return FileError(tmp, "cannot write", errno);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return FileError(path, "cannot replace", errno);
  return Status::Ok();
}

// Removes the allocations of gone processes; true if any was removed.
bool Purge(SimState& state) {
  const int self = ::getpid();
  struct Verdict {
    int pid;
    std::uint64_t start_time;
    bool gone;
  };
  std::vector<Verdict> verdicts;  // few distinct processes: a linear scan is fastest
  auto gone = [&](const SimAllocationRecord& r) {
    if (r.pid == self && (r.start_time == 0 || r.start_time == OwnStartTime())) return false;
    for (const Verdict& v : verdicts) {
      if (v.pid == r.pid && v.start_time == r.start_time) return v.gone;
    }
    const bool is_gone = ProcessIsGone(r.pid, r.start_time);
    verdicts.push_back({r.pid, r.start_time, is_gone});
    return is_gone;
  };
  const std::size_t before = state.allocations.size();
  state.allocations.erase(std::remove_if(state.allocations.begin(), state.allocations.end(), gone),
                          state.allocations.end());
  return state.allocations.size() != before;
}

}  // namespace

std::uint64_t SimState::UsedBytes(int device) const {
  std::uint64_t used = 0;
  for (const SimAllocationRecord& r : allocations) {
    if (r.device == device) used += r.bytes;
  }
  return used;
}

std::string SerializeSimState(const SimState& state) {
  std::string out = fmt::format("{} {}\nnext_token {}\n", kMagic, kFormatVersion, state.next_token);
  for (std::size_t i = 0; i < state.devices.size(); ++i) {
    out += fmt::format("device {} {} {}\n", i, state.devices[i].high_water_bytes,
                       state.devices[i].oom_events);
  }
  for (const SimAllocationRecord& r : state.allocations) {
    out += fmt::format("alloc {} {} {} {} {}\n", r.pid, r.start_time, r.device, r.token, r.bytes);
  }
  return out;
}

StatusOr<SimState> ParseSimState(std::string_view text) {
  SimState state;
  bool saw_header = false;
  int line_number = 0;
  std::size_t begin = 0;
  auto bad = [&](std::string_view why) {
    return InvalidArgumentError(fmt::format("line {}: {}", line_number, why));
  };
  while (begin < text.size()) {
    std::size_t end = text.find('\n', begin);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = text.substr(begin, end - begin);
    begin = end + 1;
    ++line_number;
    const std::vector<std::string_view> w = SplitWords(line);
    if (w.empty()) continue;
    if (!saw_header) {
      if (w.size() != 2 || w[0] != kMagic || w[1] != kFormatVersion) {
        return bad(fmt::format("expected \"{} {}\"", kMagic, kFormatVersion));
      }
      saw_header = true;
      continue;
    }
    if (w[0] == "next_token") {
      if (w.size() != 2 || !ParseNumber(w[1], &state.next_token) || state.next_token == 0) {
        return bad("malformed next_token");
      }
    } else if (w[0] == "device") {
      std::uint64_t index = 0;
      SimDeviceCounters counters;
      if (w.size() != 4 || !ParseNumber(w[1], &index) || index >= kMaxSimDevices ||
          !ParseNumber(w[2], &counters.high_water_bytes) ||
          !ParseNumber(w[3], &counters.oom_events)) {
        return bad("malformed device record");
      }
      if (state.devices.size() <= index) state.devices.resize(index + 1);
      state.devices[index] = counters;
    } else if (w[0] == "alloc") {
      SimAllocationRecord r;
      if (w.size() != 6 || !ParseNumber(w[1], &r.pid) || r.pid <= 0 ||
          !ParseNumber(w[2], &r.start_time) || !ParseNumber(w[3], &r.device) || r.device < 0 ||
          static_cast<std::uint64_t>(r.device) >= kMaxSimDevices || !ParseNumber(w[4], &r.token) ||
          r.token == 0 || !ParseNumber(w[5], &r.bytes) || r.bytes == 0) {
        return bad("malformed alloc record");
      }
      state.allocations.push_back(r);
    } else {
      return bad(fmt::format("unknown record \"{}\"", w[0]));
    }
  }
  if (!saw_header) return InvalidArgumentError("the file is empty");
  return state;
}

std::uint64_t ProcessStartTime(int pid) {
  char state = 0;
  std::uint64_t start = 0;
  return ReadProcStat(pid, &state, &start) ? start : 0;
}

std::uint64_t OwnStartTime() {
  // Two atomics rather than a mutex: safe across fork(); threads racing here
  // store the same values.
  static std::atomic<int> cached_pid{0};
  static std::atomic<std::uint64_t> cached_start{0};
  const int self = ::getpid();
  if (cached_pid.load(std::memory_order_acquire) == self) {
    return cached_start.load(std::memory_order_relaxed);
  }
  const std::uint64_t start = ProcessStartTime(self);
  cached_start.store(start, std::memory_order_relaxed);
  cached_pid.store(self, std::memory_order_release);
  return start;
}

bool ProcessIsGone(int pid, std::uint64_t start_time) {
  if (pid <= 0) return true;
  if (::kill(pid, 0) != 0 && errno == ESRCH) return true;
  char state = 0;
  std::uint64_t now_start = 0;
  if (!ReadProcStat(pid, &state, &now_start)) return false;  // exists, cannot tell more
  // A zombie's GPU memory is already freed by the driver; so is ours.
  if (state == 'Z' || state == 'X') return true;
  return start_time != 0 && now_start != 0 && now_start != start_time;
}

Status UpdateSimState(const std::string& state_path, std::size_t device_count,
                      const std::function<bool(SimState&)>& update) {
  const std::filesystem::path parent = std::filesystem::path(state_path).parent_path();
  if (!parent.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(parent, ec);
    if (ec) {
      return FailedPreconditionError(fmt::format("simulated GPU state {}: cannot create {}: {}",
                                                 state_path, parent.string(), ec.message()));
    }
  }
  const std::string lock_path = state_path + ".lock";
  // A fresh descriptor per call: flock() locks belong to the open file
  // description, so a shared or inherited one would not exclude threads or
  // forked children.
  UniqueFd lock(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666));
  if (lock.get() < 0) return FileError(lock_path, "cannot open", errno);
  while (::flock(lock.get(), LOCK_EX) != 0) {
    if (errno != EINTR) return FileError(lock_path, "cannot lock", errno);
  }

  bool exists = false;
  std::string text;
  CLAMS_RETURN_IF_ERROR(ReadWholeFile(state_path, &exists, &text));
  SimState state;
  bool dirty = false;
  if (!exists) {
    state.next_token = FreshTokenBase();
    dirty = true;
  } else {
    StatusOr<SimState> parsed = ParseSimState(text);
    if (parsed.ok()) {
      state = std::move(parsed).value();
    } else {
      CLAMS_LOG(kWarning, "simulated GPU state {} is unreadable ({}); resetting it", state_path,
                parsed.status().message());
      state.next_token = FreshTokenBase();
      dirty = true;
    }
  }
  if (state.devices.size() < device_count) {
    state.devices.resize(device_count);
    dirty = true;
  }
  dirty |= Purge(state);
  dirty |= update(state);
  if (dirty) CLAMS_RETURN_IF_ERROR(WriteWholeFile(state_path, SerializeSimState(state)));
  return Status::Ok();  // `lock` closes here, which releases the lock
}

StatusOr<SimState> ReadSimState(const std::string& state_path, std::size_t device_count) {
  bool exists = false;
  std::string text;
  if (Status read = ReadWholeFile(state_path, &exists, &text); !read.ok()) return UnavailableError(read.message());
  SimState state;
  if (exists) {
    StatusOr<SimState> parsed = ParseSimState(text);
    if (!parsed.ok()) {
      return UnavailableError(
          fmt::format("simulated GPU state {} is unreadable ({})", state_path, parsed.status().message()));
    }
    state = std::move(parsed).value();
  }
  if (state.devices.size() < device_count) state.devices.resize(device_count);
  Purge(state);
  return state;
}

gpu::sim::Allocation SimAllocationAccess::Make(const gpu::sim::Config& config, int device,
                                               std::uint64_t bytes, std::uint64_t token, int pid) {
  gpu::sim::Allocation a;
  a.config_ = config;
  a.device_ = device;
  a.bytes_ = bytes;
  a.token_ = token;
  a.pid_ = pid;
  return a;
}

StatusOr<gpu::sim::Allocation> SimAllocateOnDevice(const gpu::sim::Config& config, int sim_device,
                                                   int cuda_ordinal, std::uint64_t bytes) {
  if (sim_device < 0 || static_cast<std::size_t>(sim_device) >= config.capacities.size()) {
    return InvalidArgumentError(fmt::format("invalid simulated GPU {}: {} simulated GPUs",
                                            sim_device, config.capacities.size()));
  }
  const int pid = ::getpid();
  if (bytes == 0) return SimAllocationAccess::Make(config, sim_device, 0, 0, pid);
  const std::uint64_t start_time = OwnStartTime();
  const std::uint64_t capacity = config.capacities[static_cast<std::size_t>(sim_device)];
  bool fits = false;
  std::uint64_t used = 0;
  std::uint64_t token = 0;
  CLAMS_RETURN_IF_ERROR(
      UpdateSimState(config.state_path, config.capacities.size(), [&](SimState& state) {
        SimDeviceCounters& counters = state.devices[static_cast<std::size_t>(sim_device)];
        used = state.UsedBytes(sim_device);
        if (used > capacity || bytes > capacity - used) {
          ++counters.oom_events;
          return true;
        }
        fits = true;
        token = state.next_token++;
        state.allocations.push_back({pid, start_time, sim_device, token, bytes});
        counters.high_water_bytes = std::max(counters.high_water_bytes, used + bytes);
        return true;
      }));
  if (!fits) {
    return ResourceExhaustedError(
        CudaOomMessage(bytes, cuda_ordinal, capacity, used, used < capacity ? capacity - used : 0));
  }
  return SimAllocationAccess::Make(config, sim_device, bytes, token, pid);
}

std::vector<int> VisibleSimDevices(const gpu::sim::Config& config, bool cuda_visible_devices_set,
                                   std::string_view cuda_visible_devices) {
  std::vector<std::string> uuids;
  for (std::size_t i = 0; i < config.capacities.size(); ++i) {
    uuids.push_back(gpu::sim::DeviceUuid(static_cast<int>(i)));
  }
  VisibleDevices visible = MapVisibleDevices(cuda_visible_devices_set, cuda_visible_devices, uuids);
  static std::atomic<bool> noted{false};
  if (!visible.note.empty() && !noted.exchange(true)) {
    CLAMS_LOG(kWarning, "simulated GPUs: {}", visible.note);
  }
  return visible.physical;
}

std::vector<int> VisibleSimDevicesFromEnvironment(const gpu::sim::Config& config) {
  const char* cvd = std::getenv("CUDA_VISIBLE_DEVICES");
  return VisibleSimDevices(config, cvd != nullptr, cvd != nullptr ? cvd : "");
}

}  // namespace clams::gpu_internal
