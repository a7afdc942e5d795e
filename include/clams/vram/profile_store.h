// clams/vram/profile_store.h
//
// Measured GPU memory per request class, persisted so estimates survive
// restarts. Layout (the Python SDK's):
//   <root>/<app id with '/' and ':' replaced by '-'>/memory_<class key>.json
// where <root> is ${CLAMS_PROFILE_DIR:-${XDG_CACHE_HOME:-~/.cache}/clams/memory_profiles}
// (the server resolves it; see DefaultProfileRoot). Content:
//   {"peak_bytes": N, "warm_peak_bytes": N, "samples": N, "warm_samples": N,
//    "oom_events": N, "oom_floor_bytes": N, "warm_oom_floor_bytes": N,
//    "mean_duration_ms": X, "parameters": {...}, "updated": "...",
//    "device": "...", "app_version": "...", "app_id": "..."}
// `peak_bytes` is the largest `full` growth measured on a successful request
// (the field the Python SDK writes); an out-of-memory failure never changes
// it, it sets a floor instead (`oom_floor_bytes`, `warm_oom_floor_bytes`)
// which decays as the class succeeds: each success halves the floor's
// excess over the measured peak, and a floor within kOomFloorSettleBytes of
// it is dropped. Files are written to a temporary name and renamed (atomic),
// mode 0600; only the front process writes. A corrupt or unreadable file is
// ignored (logged) and replaced at the next write, never fatal.
//
// Writes. A change that moves an estimate (a peak, a floor, an OOM, the
// first sample of a kind) is written at once; other updates (sample counts,
// mean duration) only mark the profile dirty, and Flush() writes those (the
// server calls it every few seconds and at shutdown). Write failures are
// logged at most once a minute per store, with a count.
//
// Bounds. At most Options::max_profiles classes are kept, in memory and on
// disk: past it the least recently used class (by Get, Record, RecordOom)
// is dropped and its file removed. Open() loads the most recently modified
// files first and removes the files beyond the bound.
//
// Reading is lenient so the Python SDK's files load too: only `peak_bytes`
// is required; absent fields keep their defaults, unknown fields are
// ignored. A file is corrupt when it is not JSON, not an object, lacks
// `peak_bytes`, or has a known field of the wrong type (counts must be
// non-negative integers, `mean_duration_ms` a non-negative number,
// `parameters` an object, the rest strings).
//
// Temporary files are named ".memory_<key>.<pid>.<n>.tmp" in the same
// directory (unique per write, hidden, never read as profiles); Open()
// removes those whose writer no longer runs.
//
// The store keeps every profile in memory: a file removed on disk while a
// server runs (`clams profiles clear`) is written again, with the server's
// numbers, at that class's next request.
//
// Example:
//
//   CLAMS_ASSIGN_OR_RETURN(auto store, ProfileStore::Open({.root = root, .app_id = id}));
//   std::optional<Profile> p = store->Get(request_class.key);
//   store->Record(request_class, params.values(), growth, warm, ms, "NVIDIA H100").IgnoreError();
//
// Thread safety: all methods are thread-safe.
#ifndef CLAMS_VRAM_PROFILE_STORE_H_
#define CLAMS_VRAM_PROFILE_STORE_H_

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "clams/base/status.h"
#include "clams/mmif/json.h"
#include "clams/vram/request_class.h"

namespace clams::vram {

namespace json = ::boost::json;

struct Profile {
  std::uint64_t peak_bytes = 0;       ///< max full growth measured on a successful request
  std::uint64_t warm_peak_bytes = 0;  ///< max measured warm growth; 0 = not measured
  std::uint64_t samples = 0;          ///< measurements that went into peak_bytes
  std::uint64_t warm_samples = 0;
  std::uint64_t oom_events = 0;
  /// After an OOM: what the estimate is raised to (0 = none). Decays with
  /// each success of the class (full and warm kinds separately).
  std::uint64_t oom_floor_bytes = 0;
  std::uint64_t warm_oom_floor_bytes = 0;
  double mean_duration_ms = 0;  ///< running mean of request durations
  json::object parameters;      ///< refined parameters, for humans
  std::string updated;          ///< ISO-8601 time of the last write
  std::string device;           ///< device name of the last measurement
  std::string app_version;
  std::string app_id;  ///< app identifier (absent from Python SDK files)
};

/// The multiplier applied to what was admitted (or seen) when an OOM raises
/// a class's floor.
inline constexpr double kOomRaiseFactor = 1.5;
/// A floor this close to the measured peak is dropped after a success.
inline constexpr std::uint64_t kOomFloorSettleBytes = std::uint64_t{64} << 20;
/// Default bound on distinct classes: far more than any real app has
/// (whisper: 12 models x a few options), far less than a parameter sweep
/// by a client could create.
inline constexpr std::size_t kDefaultMaxProfiles = 1000;

/// ${CLAMS_PROFILE_DIR}, else ${XDG_CACHE_HOME}/clams/memory_profiles, else
/// ${HOME}/.cache/clams/memory_profiles (values passed in by the caller,
/// which reads the environment).
std::filesystem::path DefaultProfileRoot(const std::string& clams_profile_dir,
                                         const std::string& xdg_cache_home,
                                         const std::string& home);

/// "<app id with '/' and ':' replaced by '-'>": http---apps.clams.ai-my-app-v1.
/// An id that would name no directory of its own ("", ".", "..") gives
/// kUnnamedAppDirectory.
std::string AppDirectoryName(std::string_view app_id);
inline constexpr std::string_view kUnnamedAppDirectory = "_";

/// True for a usable class key: 1 to 128 characters from [0-9A-Za-z_-]
/// (MD5 hex keys are; anything else could escape the directory).
bool IsValidClassKey(std::string_view key);
/// "memory_<key>.json".
std::filesystem::path ProfileFileName(std::string_view class_key);
/// The key of a profile file name ("memory_<key>.json" with a valid key),
/// else nullopt.
std::optional<std::string> ClassKeyFromFileName(std::string_view file_name);
/// The file content of a profile (fields in the documented order).
json::object ProfileToJson(const Profile& profile);

class ProfileStore {
 public:
  struct Options {
    std::filesystem::path root;
    std::string app_id;
    /// Distinct classes kept (in memory and on disk); 0 = no bound.
    std::size_t max_profiles = kDefaultMaxProfiles;
  };

  /// Creates the app's directory if needed and loads every profile in it;
  /// corrupt files are skipped with a warning. kInvalidArgument for an empty
  /// root; kFailedPrecondition if the directory cannot be created or listed
  /// (the server then runs without persistence).
  static StatusOr<std::unique_ptr<ProfileStore>> Open(const Options& options);

  /// The profile of a class (marks it used for the bound).
  std::optional<Profile> Get(const std::string& class_key) const;
  std::size_t size() const;
  /// All profiles by class key (a copy: for tools and tests).
  std::map<std::string, Profile> All() const;
  /// Calls `fn` for every profile under the store's lock, without copying
  /// (`fn` must not call back into the store).
  void ForEach(const std::function<void(const std::string& key, const Profile& profile)>& fn) const;
  /// The smallest full estimate basis over the measured classes
  /// (max(peak_bytes, oom_floor_bytes)); nullopt when none is measured.
  std::optional<std::uint64_t> SmallestPeakBytes() const;
  const std::filesystem::path& directory() const { return dir_; }

  /// Records one successful request: raises peak_bytes (warm=false) or
  /// warm_peak_bytes (warm=true) to `growth_bytes` if higher, counts the
  /// sample, updates the mean duration, decays that kind's OOM floor, and
  /// writes the file when an estimate moved (else marks it dirty for
  /// Flush()). The in-memory profile is updated even if the write fails:
  /// then kFailedPrecondition naming the file and the OS error.
  /// The mean duration is over all samples, full and warm; a negative or
  /// non-finite `duration_ms` leaves it unchanged. `parameters`, `device`,
  /// `app_version` and `updated` take the latest values.
  /// kInvalidArgument (nothing recorded) if the class key is not valid
  /// (IsValidClassKey) or the class belongs to another app id.
  Status Record(const RequestClass& request_class, const json::object& parameters,
                std::uint64_t growth_bytes, bool warm, double duration_ms,
                const std::string& device_name);

  /// After a successful cold (full) request: what a warm request of the
  /// class would likely need, derived from it (its growth minus what its
  /// worker kept afterwards, the model). Raises warm_peak_bytes to it while
  /// the class has no warm measurement (warm_samples == 0), so a worker that
  /// holds the model is not assumed to need a second copy. The first warm
  /// measurement replaces it, unless that measurement saw no growth at all
  /// (a short request's activations may come and go between two samples).
  /// Written with the next write (or Flush()).
  void SeedWarm(const RequestClass& request_class, std::uint64_t warm_bytes);

  /// After an out-of-memory failure with evidence: the floor of that kind
  /// (warm or full) becomes max(floor, `floor_bytes`), oom_events + 1;
  /// peaks and samples are unchanged. The caller caps `floor_bytes` (see
  /// the server's outcome learning). Written at once; errors as for Record().
  Status RecordOom(const RequestClass& request_class, const json::object& parameters, bool warm,
                   std::uint64_t floor_bytes, const std::string& device_name);

  /// Writes every dirty profile; the first error (all are attempted).
  Status Flush();

  /// Removes one profile, from memory and disk (a corrupt file of that key
  /// too): kNotFound if neither had it, kInvalidArgument for an invalid
  /// key, kFailedPrecondition if the file cannot be removed.
  Status Remove(const std::string& class_key);
  /// Removes every profile from memory and every memory_*.json file of the
  /// directory (corrupt ones too); kFailedPrecondition on the first file
  /// that cannot be removed (the others are still removed).
  Status Clear();

  /// Reads one profile file: kNotFound if it does not exist,
  /// kFailedPrecondition if it cannot be read, kInvalidArgument if corrupt
  /// (the message names the path and the problem).
  static StatusOr<Profile> ReadFile(const std::filesystem::path& path);

 private:
  struct Entry {
    Profile profile;
    std::uint64_t last_used = 0;  // tick of the last Get/Record/RecordOom
    bool dirty = false;
  };
  ProfileStore(std::filesystem::path dir, std::string app_id, std::size_t max_profiles);
  Status CheckClass(const RequestClass& request_class) const;
  // The entry of `key`, created if absent (evicting the least recently
  // used one past the bound), marked used.
  Entry& Use(const std::string& key);
  Status WriteLocked(const std::string& key, Entry& entry);
  void WarnLocked(const Status& status);

  std::filesystem::path dir_;
  std::string app_id_;
  std::size_t max_profiles_;
  mutable std::mutex mu_;
  mutable std::uint64_t tick_ = 0;
  mutable std::map<std::string, Entry> profiles_;
  // Rate limit of write-failure warnings.
  std::chrono::steady_clock::time_point last_warning_{};
  std::uint64_t suppressed_warnings_ = 0;
};


}  // namespace clams::vram

#endif  // CLAMS_VRAM_PROFILE_STORE_H_
