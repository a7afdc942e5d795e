// Measured GPU memory per request class, persisted as one JSON file per class.
#include "clams/vram/profile_store.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>
#include <string>
#include <system_error>
#include <utility>

#include "clams/base/log.h"
#include "clams/vram/estimate.h"

namespace clams::vram {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kFilePrefix = "memory_";
constexpr std::string_view kFileSuffix = ".json";
// Temporary files are hidden and end in ".tmp" so no reader mistakes them
// for profiles: ".memory_<key>.<pid>.<n>.tmp".
constexpr std::string_view kTempPrefix = ".memory_";
constexpr std::string_view kTempSuffix = ".tmp";
// The Python SDK writes its profiles with json.dump(..., indent=2).
constexpr int kFileIndent = 2;
// Keys are MD5 hex digests (32 characters); anything much longer is not ours.
constexpr std::size_t kMaxKeyLength = 128;
// A profile file is a few hundred bytes; refuse to read huge files.
constexpr std::uintmax_t kMaxProfileFileBytes = 1 << 20;

// Distinguishes temporary files of concurrent writes within one process.
std::atomic<std::uint64_t> g_temp_counter{0};

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && s.substr(0, prefix.size()) == prefix;
}
bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

std::string NowIso8601() {
  const std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string ErrnoText(int err) { return std::error_code(err, std::generic_category()).message(); }

Status ReadUint(const json::object& obj, std::string_view field, bool required,
                std::uint64_t* out) {
  const json::value* v = obj.if_contains(field);
  if (v == nullptr) {
    if (required) return InvalidArgumentError(fmt::format("missing \"{}\"", field));
    return Status::Ok();
  }
  if (v->is_uint64()) {
    *out = v->get_uint64();
  } else if (v->is_int64() && v->get_int64() >= 0) {
    *out = static_cast<std::uint64_t>(v->get_int64());
  } else {
    return InvalidArgumentError(fmt::format("\"{}\" is not a non-negative integer", field));
  }
  return Status::Ok();
}

Status ReadString(const json::object& obj, std::string_view field, std::string* out) {
  const json::value* v = obj.if_contains(field);
  if (v == nullptr) return Status::Ok();
  if (!v->is_string()) {
    return InvalidArgumentError(fmt::format("\"{}\" is not a string", field));
  }
  *out = std::string(v->get_string());
  return Status::Ok();
}

StatusOr<Profile> ProfileFromJson(const json::value& value) {
  if (!value.is_object()) return InvalidArgumentError("not a JSON object");
  const json::object& obj = value.get_object();
  Profile p;
  CLAMS_RETURN_IF_ERROR(ReadUint(obj, "peak_bytes", /*required=*/true, &p.peak_bytes));
  CLAMS_RETURN_IF_ERROR(ReadUint(obj, "warm_peak_bytes", false, &p.warm_peak_bytes));
  CLAMS_RETURN_IF_ERROR(ReadUint(obj, "samples", false, &p.samples));
  CLAMS_RETURN_IF_ERROR(ReadUint(obj, "warm_samples", false, &p.warm_samples));
  CLAMS_RETURN_IF_ERROR(ReadUint(obj, "oom_events", false, &p.oom_events));
  CLAMS_RETURN_IF_ERROR(ReadUint(obj, "oom_floor_bytes", false, &p.oom_floor_bytes));
  CLAMS_RETURN_IF_ERROR(ReadUint(obj, "warm_oom_floor_bytes", false, &p.warm_oom_floor_bytes));
  if (const json::value* v = obj.if_contains("mean_duration_ms")) {
    double d = -1;
    if (v->is_double()) d = v->get_double();
    if (v->is_int64()) d = static_cast<double>(v->get_int64());
    if (v->is_uint64()) d = static_cast<double>(v->get_uint64());
    if (!std::isfinite(d) || d < 0) {
      return InvalidArgumentError("\"mean_duration_ms\" is not a non-negative number");
    }
    p.mean_duration_ms = d;
  }
  if (const json::value* v = obj.if_contains("parameters")) {
    if (!v->is_object()) return InvalidArgumentError("\"parameters\" is not an object");
    p.parameters = v->get_object();
  }
  CLAMS_RETURN_IF_ERROR(ReadString(obj, "updated", &p.updated));
  CLAMS_RETURN_IF_ERROR(ReadString(obj, "device", &p.device));
  CLAMS_RETURN_IF_ERROR(ReadString(obj, "app_version", &p.app_version));
  CLAMS_RETURN_IF_ERROR(ReadString(obj, "app_id", &p.app_id));
  return p;
}

// Removes temporary files left by writers that died between write and
// rename (their PID no longer exists).
void RemoveStaleTempFiles(const fs::path& dir) {
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (!StartsWith(name, kTempPrefix) || !EndsWith(name, kTempSuffix)) continue;
    // ".memory_<key>.<pid>.<n>.tmp": the PID is the second-to-last field.
    const std::string_view core(name.data(), name.size() - kTempSuffix.size());
    const auto last_dot = core.rfind('.');
    if (last_dot == std::string_view::npos || last_dot == 0) continue;
    const auto pid_dot = core.rfind('.', last_dot - 1);
    if (pid_dot == std::string_view::npos) continue;
    const std::string pid_text(core.substr(pid_dot + 1, last_dot - pid_dot - 1));
    char* end_ptr = nullptr;
    const long pid = std::strtol(pid_text.c_str(), &end_ptr, 10);
    if (pid_text.empty() || *end_ptr != '\0' || pid <= 0) continue;
    if (::kill(static_cast<pid_t>(pid), 0) == -1 && errno == ESRCH) {
      std::error_code rm_ec;
      fs::remove(it->path(), rm_ec);
    }
  }
}

}  // namespace

fs::path DefaultProfileRoot(const std::string& clams_profile_dir, const std::string& xdg_cache_home,
                            const std::string& home) {
  if (!clams_profile_dir.empty()) return fs::path(clams_profile_dir);
  if (!xdg_cache_home.empty()) return fs::path(xdg_cache_home) / "clams" / "memory_profiles";
  return fs::path(home) / ".cache" / "clams" / "memory_profiles";
}

std::string AppDirectoryName(std::string_view app_id) {
  std::string name(app_id);
  std::replace(name.begin(), name.end(), '/', '-');
  std::replace(name.begin(), name.end(), ':', '-');
  if (name.empty() || name == "." || name == "..") return std::string(kUnnamedAppDirectory);
  return name;
}

bool IsValidClassKey(std::string_view key) {
  if (key.empty() || key.size() > kMaxKeyLength) return false;
  return std::all_of(key.begin(), key.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' ||
           c == '_';
  });
}

fs::path ProfileFileName(std::string_view class_key) {
  std::string name(kFilePrefix);
  name.append(class_key).append(kFileSuffix);
  return fs::path(name);
}

std::optional<std::string> ClassKeyFromFileName(std::string_view file_name) {
  if (!StartsWith(file_name, kFilePrefix) || !EndsWith(file_name, kFileSuffix)) return std::nullopt;
  std::string_view key = file_name.substr(kFilePrefix.size());
  key = key.substr(0, key.size() - kFileSuffix.size());
  if (!IsValidClassKey(key)) return std::nullopt;
  return std::string(key);
}

json::object ProfileToJson(const Profile& p) {
  json::object obj;
  obj["peak_bytes"] = p.peak_bytes;
  obj["warm_peak_bytes"] = p.warm_peak_bytes;
  obj["samples"] = p.samples;
  obj["warm_samples"] = p.warm_samples;
  obj["oom_events"] = p.oom_events;
  obj["oom_floor_bytes"] = p.oom_floor_bytes;
  obj["warm_oom_floor_bytes"] = p.warm_oom_floor_bytes;
  obj["mean_duration_ms"] = p.mean_duration_ms;
  obj["parameters"] = p.parameters;
  obj["updated"] = p.updated;
  obj["device"] = p.device;
  obj["app_version"] = p.app_version;
  obj["app_id"] = p.app_id;
  return obj;
}

StatusOr<Profile> ProfileStore::ReadFile(const fs::path& path) {
  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (!fs::exists(status)) return NotFoundError("no profile file " + path.string());
  if (!fs::is_regular_file(status)) {
    return InvalidArgumentError(path.string() + ": not a regular file");
  }
  const std::uintmax_t size = fs::file_size(path, ec);
  if (ec) return FailedPreconditionError("cannot read " + path.string() + ": " + ec.message());
  if (size > kMaxProfileFileBytes) {
    return InvalidArgumentError(path.string() + ": too large for a profile (" +
                                std::to_string(size) + " bytes)");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return FailedPreconditionError("cannot read " + path.string() + ": " + ErrnoText(errno));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return FailedPreconditionError("cannot read " + path.string());
  auto parsed = mmif::ParseJson(text.str());
  if (!parsed.ok()) return InvalidArgumentError(path.string() + ": " + parsed.status().message());
  auto profile = ProfileFromJson(*parsed);
  if (!profile.ok()) return InvalidArgumentError(path.string() + ": " + profile.status().message());
  return profile;
}

ProfileStore::ProfileStore(fs::path dir, std::string app_id, std::size_t max_profiles)
    : dir_(std::move(dir)), app_id_(std::move(app_id)), max_profiles_(max_profiles) {}

StatusOr<std::unique_ptr<ProfileStore>> ProfileStore::Open(const Options& options) {
  if (options.root.empty()) return InvalidArgumentError("empty profile root directory");
  fs::path dir = options.root / AppDirectoryName(options.app_id);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir)) {
    return FailedPreconditionError("cannot create profile directory " + dir.string() + ": " +
                                   (ec ? ec.message() : std::string("not a directory")));
  }
  std::unique_ptr<ProfileStore> store(new ProfileStore(dir, options.app_id, options.max_profiles));
  RemoveStaleTempFiles(dir);
  fs::directory_iterator it(dir, ec);
  if (ec) {
    return FailedPreconditionError("cannot list profile directory " + dir.string() + ": " +
                                   ec.message());
  }
  // Newest first, so that the bound keeps the most recently used classes.
  std::vector<std::pair<fs::file_time_type, fs::path>> files;
  for (fs::directory_iterator end; it != end; it.increment(ec)) {
    if (ec) {
      return FailedPreconditionError("cannot list profile directory " + dir.string() + ": " +
                                     ec.message());
    }
    if (!ClassKeyFromFileName(it->path().filename().string())) continue;
    std::error_code time_ec;
    files.emplace_back(fs::last_write_time(it->path(), time_ec), it->path());
  }
  std::sort(files.begin(), files.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  std::size_t dropped = 0;
  for (std::size_t i = 0; i < files.size(); ++i) {
    const fs::path& path = files[i].second;
    const std::string key = *ClassKeyFromFileName(path.filename().string());
    if (store->max_profiles_ > 0 && store->profiles_.size() >= store->max_profiles_) {
      std::error_code rm_ec;
      fs::remove(path, rm_ec);
      ++dropped;
      continue;
    }
    auto profile = ReadFile(path);
    if (!profile.ok()) {
      CLAMS_LOG(kWarning,
                "ignoring unreadable memory profile ({}); it is replaced at the next "
                "write of its class",
                profile.status().message());
      continue;
    }
    // Older files get older ticks: the oldest is dropped first.
    Entry& e = store->profiles_[key];
    e.profile = *std::move(profile);
    e.last_used = files.size() - i;
  }
  store->tick_ = files.size() + 1;
  if (dropped > 0) {
    CLAMS_LOG(kWarning, "removed {} memory profile(s) beyond the bound of {} classes (least recently written)",
              dropped, store->max_profiles_);
  }
  CLAMS_LOG(kDebug, "loaded {} memory profile(s) from {}", store->profiles_.size(), dir.string());
  return store;
}

std::optional<Profile> ProfileStore::Get(const std::string& class_key) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = profiles_.find(class_key);
  if (it == profiles_.end()) return std::nullopt;
  it->second.last_used = ++tick_;
  return it->second.profile;
}

std::size_t ProfileStore::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return profiles_.size();
}

std::map<std::string, Profile> ProfileStore::All() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::map<std::string, Profile> out;
  for (const auto& [key, e] : profiles_) out.emplace(key, e.profile);
  return out;
}

void ProfileStore::ForEach(const std::function<void(const std::string&, const Profile&)>& fn) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [key, e] : profiles_) fn(key, e.profile);
}

std::optional<std::uint64_t> ProfileStore::SmallestPeakBytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::optional<std::uint64_t> smallest;
  for (const auto& [key, e] : profiles_) {
    if (!HasFullMeasurement(e.profile)) continue;
    const std::uint64_t v = std::max(e.profile.peak_bytes, e.profile.oom_floor_bytes);
    if (!smallest || v < *smallest) smallest = v;
  }
  return smallest;
}

ProfileStore::Entry& ProfileStore::Use(const std::string& key) {
  auto it = profiles_.find(key);
  if (it == profiles_.end()) {
    if (max_profiles_ > 0 && profiles_.size() >= max_profiles_) {
      auto victim = std::min_element(profiles_.begin(), profiles_.end(), [](const auto& a, const auto& b) {
        return a.second.last_used < b.second.last_used;
      });
      std::error_code ec;
      fs::remove(dir_ / ProfileFileName(victim->first), ec);
      CLAMS_LOG(kDebug, "dropped the memory profile of class {} (least recently used; bound {})", victim->first,
                max_profiles_);
      profiles_.erase(victim);
    }
    it = profiles_.emplace(key, Entry{}).first;
  }
  it->second.last_used = ++tick_;
  return it->second;
}

Status ProfileStore::CheckClass(const RequestClass& request_class) const {
  if (!IsValidClassKey(request_class.key)) {
    return InvalidArgumentError("invalid request class key " + log::Quote(request_class.key));
  }
  if (request_class.app_id != app_id_) {
    return InvalidArgumentError("request class of app " + log::Quote(request_class.app_id) +
                                " given to the profile store of app " + log::Quote(app_id_));
  }
  return Status::Ok();
}

namespace {

// Halves a floor's excess over the measured peak; drops a floor that has
// settled. Returns true when the floor changed.
bool DecayFloor(std::uint64_t* floor, std::uint64_t measured) {
  if (*floor == 0) return false;
  if (*floor <= measured + kOomFloorSettleBytes) {
    *floor = 0;
    return true;
  }
  *floor = measured + (*floor - measured) / 2;
  return true;
}

}  // namespace

Status ProfileStore::Record(const RequestClass& request_class, const json::object& parameters,
                            std::uint64_t growth_bytes, bool warm, double duration_ms,
                            const std::string& device_name) {
  CLAMS_RETURN_IF_ERROR(CheckClass(request_class));
  std::lock_guard<std::mutex> lock(mu_);
  Entry& e = Use(request_class.key);
  Profile& p = e.profile;
  bool moved = false;
  if (warm) {
    // The first warm measurement replaces a seeded estimate (SeedWarm),
    // unless it saw nothing: a short request's activations may come and go
    // between two samples.
    if (p.warm_samples == 0 && growth_bytes > 0) p.warm_peak_bytes = 0;
    moved = ++p.warm_samples == 1 || growth_bytes > p.warm_peak_bytes;
    p.warm_peak_bytes = std::max(p.warm_peak_bytes, growth_bytes);
    moved |= DecayFloor(&p.warm_oom_floor_bytes, p.warm_peak_bytes);
  } else {
    moved = ++p.samples == 1 || growth_bytes > p.peak_bytes;
    p.peak_bytes = std::max(p.peak_bytes, growth_bytes);
    moved |= DecayFloor(&p.oom_floor_bytes, p.peak_bytes);
  }
  if (std::isfinite(duration_ms) && duration_ms >= 0) {
    const double n = static_cast<double>(p.samples + p.warm_samples);
    p.mean_duration_ms += (duration_ms - p.mean_duration_ms) / n;
  }
  moved |= p.parameters != parameters || p.device != device_name || p.app_version != request_class.app_version;
  p.parameters = parameters;
  p.device = device_name;
  p.app_version = request_class.app_version;
  p.app_id = app_id_;
  e.dirty = true;
  if (!moved) return Status::Ok();
  return WriteLocked(request_class.key, e);
}

void ProfileStore::SeedWarm(const RequestClass& request_class, std::uint64_t warm_bytes) {
  if (!CheckClass(request_class).ok()) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = profiles_.find(request_class.key);
  if (it == profiles_.end()) return;
  Profile& p = it->second.profile;
  if (p.warm_samples > 0 || warm_bytes <= p.warm_peak_bytes) return;
  p.warm_peak_bytes = warm_bytes;
  it->second.dirty = true;
}

Status ProfileStore::RecordOom(const RequestClass& request_class, const json::object& parameters, bool warm,
                               std::uint64_t floor_bytes, const std::string& device_name) {
  CLAMS_RETURN_IF_ERROR(CheckClass(request_class));
  std::lock_guard<std::mutex> lock(mu_);
  Entry& e = Use(request_class.key);
  Profile& p = e.profile;
  std::uint64_t& floor = warm ? p.warm_oom_floor_bytes : p.oom_floor_bytes;
  const std::uint64_t old_floor = floor;
  floor = std::max(floor, floor_bytes);
  ++p.oom_events;
  p.parameters = parameters;
  p.device = device_name;
  p.app_version = request_class.app_version;
  p.app_id = app_id_;
  CLAMS_LOG(kWarning, "out of GPU memory in request class {}: {} floor raised from {} to {} bytes",
            request_class.key, warm ? "warm" : "full", old_floor, floor);
  e.dirty = true;
  return WriteLocked(request_class.key, e);
}

Status ProfileStore::Flush() {
  std::lock_guard<std::mutex> lock(mu_);
  Status first;
  for (auto& [key, e] : profiles_) {
    if (!e.dirty) continue;
    Status s = WriteLocked(key, e);
    if (first.ok() && !s.ok()) first = s;
  }
  return first;
}

void ProfileStore::WarnLocked(const Status& status) {
  // One warning a minute at most: a full or read-only directory would
  // otherwise log one line per request.
  constexpr std::chrono::seconds kWarningInterval{60};
  const auto now = std::chrono::steady_clock::now();
  if (last_warning_ != std::chrono::steady_clock::time_point{} && now - last_warning_ < kWarningInterval) {
    ++suppressed_warnings_;
    return;
  }
  if (suppressed_warnings_ > 0) {
    CLAMS_LOG(kWarning, "{} ({} more write failure(s) since the last warning)", status.message(),
              suppressed_warnings_);
  } else {
    CLAMS_LOG(kWarning, "{}", status.message());
  }
  suppressed_warnings_ = 0;
  last_warning_ = now;
}

Status ProfileStore::Remove(const std::string& class_key) {
  if (!IsValidClassKey(class_key)) {
    return InvalidArgumentError("invalid request class key " + log::Quote(class_key));
  }
  std::lock_guard<std::mutex> lock(mu_);
  const bool in_memory = profiles_.erase(class_key) > 0;
  std::error_code ec;
  const bool on_disk = fs::remove(dir_ / ProfileFileName(class_key), ec);
  if (ec) {
    return FailedPreconditionError("cannot remove profile " + class_key + " in " + dir_.string() +
                                   ": " + ec.message());
  }
  if (!in_memory && !on_disk) {
    return NotFoundError("no profile " + class_key + " in " + dir_.string());
  }
  return Status::Ok();
}

Status ProfileStore::Clear() {
  std::lock_guard<std::mutex> lock(mu_);
  profiles_.clear();
  Status result;
  std::error_code ec;
  for (fs::directory_iterator it(dir_, ec), end; it != end; it.increment(ec)) {
    if (ec) break;
    const std::string name = it->path().filename().string();
    if (!StartsWith(name, kFilePrefix) || !EndsWith(name, kFileSuffix)) continue;
    std::error_code rm_ec;
    fs::remove(it->path(), rm_ec);
    if (rm_ec && result.ok()) {
      result =
          FailedPreconditionError("cannot remove " + it->path().string() + ": " + rm_ec.message());
    }
  }
  if (ec && ec != std::errc::no_such_file_or_directory && result.ok()) {
    result = FailedPreconditionError("cannot list profile directory " + dir_.string() + ": " +
                                     ec.message());
  }
  return result;
}

Status ProfileStore::WriteLocked(const std::string& key, Entry& entry) {
  Profile& profile = entry.profile;
  profile.updated = NowIso8601();
  std::string text = mmif::WriteJson(json::value(ProfileToJson(profile)), {.indent = kFileIndent});
  text.push_back('\n');
  const fs::path final_path = dir_ / ProfileFileName(key);
  const fs::path temp_path =
      dir_ / (std::string(kTempPrefix) + key + "." + std::to_string(::getpid()) + "." +
              std::to_string(g_temp_counter.fetch_add(1)) + std::string(kTempSuffix));
  auto fail = [&](const std::string& what, int err) {
    ::unlink(temp_path.c_str());
    const Status s = FailedPreconditionError("cannot write memory profile " + final_path.string() +
                                             ": " + what + ": " + ErrnoText(err));
    WarnLocked(s);
    return s;
  };
  // The directory may have been removed behind our back (a manual cleanup).
  std::error_code ec;
  if (!fs::is_directory(dir_, ec)) fs::create_directories(dir_, ec);
  // Private: the parameters of other clients' requests are in it.
  const int fd = ::open(temp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return fail("open", errno);
  std::size_t written = 0;
  while (written < text.size()) {
    const ssize_t n = ::write(fd, text.data() + written, text.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      return fail("write", err);
    }
    written += static_cast<std::size_t>(n);
  }
  if (::close(fd) != 0) return fail("close", errno);
  if (::rename(temp_path.c_str(), final_path.c_str()) != 0) return fail("rename", errno);
  entry.dirty = false;
  return Status::Ok();
}

}  // namespace clams::vram
