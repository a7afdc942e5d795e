// clams profiles list|show KEY|clear [KEY] [--profile-dir DIR] [--app ID] [--json]:
// the measured GPU memory profiles the server keeps per request class
// (DESIGN.md §6).
#include <fmt/format.h>
#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "clams/base/status.h"
#include "clams/mmif/json.h"
#include "clams/vram/estimate.h"
#include "clams/vram/profile_store.h"
#include "cli/commands.h"

namespace clams::cli {
namespace {

namespace fs = std::filesystem;
namespace json = ::boost::json;
using vram::Profile;

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;  // no such profile, a file that cannot be read or removed
constexpr std::uint64_t kBytesPerMiB = std::uint64_t{1} << 20;
// Pretty JSON output, as the profile files themselves.
constexpr int kJsonIndent = 2;

struct ProfilesOptions {
  std::string profile_dir;
  std::string app;
  bool json = false;
  std::string key;
};

// One profile file found on disk.
struct Entry {
  std::string app_dir;  // directory name under the root
  std::string key;
  fs::path path;
  StatusOr<Profile> profile = Status(StatusCode::kUnknown, "not read");

  // The app id recorded in the file, else the directory name.
  std::string App() const {
    if (profile.ok() && !profile->app_id.empty()) return profile->app_id;
    return app_dir;
  }
};

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? std::string() : std::string(v);
}

std::string HomeDirectory() {
  std::string home = Env("HOME");
  if (!home.empty()) return home;
  if (const passwd* pw = ::getpwuid(::getuid()); pw != nullptr && pw->pw_dir != nullptr) {
    return pw->pw_dir;
  }
  return ".";
}

// --profile-dir, else ${CLAMS_PROFILE_DIR:-${XDG_CACHE_HOME:-~/.cache}/clams/memory_profiles}.
fs::path ProfileRoot(const ProfilesOptions& options) {
  if (!options.profile_dir.empty()) return fs::path(options.profile_dir);
  return vram::DefaultProfileRoot(Env("CLAMS_PROFILE_DIR"), Env("XDG_CACHE_HOME"), HomeDirectory());
}

// Every profile file under the root (or of one app), sorted by app and key.
std::vector<Entry> Scan(const fs::path& root, const std::string& app) {
  std::vector<std::string> app_dirs;
  std::error_code ec;
  if (!app.empty()) {
    app_dirs.push_back(vram::AppDirectoryName(app));
  } else {
    for (fs::directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
      if (it->is_directory(ec)) app_dirs.push_back(it->path().filename().string());
    }
    std::sort(app_dirs.begin(), app_dirs.end());
  }
  std::vector<Entry> entries;
  for (const std::string& app_dir : app_dirs) {
    const fs::path dir = root / app_dir;
    std::vector<Entry> found;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      auto key = vram::ClassKeyFromFileName(it->path().filename().string());
      if (!key) continue;
      Entry e;
      e.app_dir = app_dir;
      e.key = *key;
      e.path = it->path();
      e.profile = vram::ProfileStore::ReadFile(e.path);
      found.push_back(std::move(e));
    }
    std::sort(found.begin(), found.end(),
              [](const Entry& a, const Entry& b) { return a.key < b.key; });
    for (Entry& e : found) entries.push_back(std::move(e));
  }
  return entries;
}

// Entries whose key is `key`, else those whose key starts with it.
std::vector<const Entry*> Match(const std::vector<Entry>& entries, const std::string& key) {
  std::vector<const Entry*> exact;
  std::vector<const Entry*> prefix;
  for (const Entry& e : entries) {
    if (e.key == key) exact.push_back(&e);
    if (e.key.compare(0, key.size(), key) == 0) prefix.push_back(&e);
  }
  return exact.empty() ? prefix : exact;
}

std::string MiB(std::uint64_t bytes) {
  return std::to_string((bytes + kBytesPerMiB / 2) / kBytesPerMiB);
}

std::string CompactJson(const json::object& object) { return mmif::WriteJson(json::value(object)); }

json::object EntryJson(const Entry& e) {
  json::object obj;
  obj["class_key"] = e.key;
  obj["app"] = e.App();
  obj["app_dir"] = e.app_dir;
  obj["path"] = e.path.string();
  if (e.profile.ok()) {
    for (const auto& kv : vram::ProfileToJson(*e.profile)) obj[kv.key()] = kv.value();
  } else {
    obj["error"] = e.profile.status().message();
  }
  return obj;
}

void PrintJson(const json::object& obj) {
  std::cout << mmif::WriteJson(json::value(obj), {.indent = kJsonIndent}) << "\n";
}

int RunList(const ProfilesOptions& options) {
  const fs::path root = ProfileRoot(options);
  const std::vector<Entry> entries = Scan(root, options.app);
  if (options.json) {
    json::object out;
    out["profile_dir"] = root.string();
    json::array profiles;
    json::array errors;
    for (const Entry& e : entries) {
      if (e.profile.ok()) {
        profiles.push_back(EntryJson(e));
      } else {
        errors.push_back(
            json::object{{"path", e.path.string()}, {"error", e.profile.status().message()}});
      }
    }
    out["profiles"] = std::move(profiles);
    out["errors"] = std::move(errors);
    PrintJson(out);
    return kExitOk;
  }
  std::size_t shown = 0;
  for (const Entry& e : entries) {
    if (!e.profile.ok()) {
      std::cerr << "clams profiles: skipping " << e.profile.status().message() << "\n";
      continue;
    }
    if (shown++ == 0) {
      std::cout << fmt::format("{:<32}  {:<40}  {:>8}  {:>8}  {:>7}  {:>4}  {:<20}  {}\n",
                               "CLASS KEY", "APP", "PEAK MiB", "WARM MiB", "SAMPLES", "OOMS",
                               "UPDATED", "PARAMETERS");
    }
    const Profile& p = *e.profile;
    const std::string warm = vram::HasWarmMeasurement(p) ? MiB(p.warm_peak_bytes) : "-";
    std::cout << fmt::format("{:<32}  {:<40}  {:>8}  {:>8}  {:>7}  {:>4}  {:<20}  {}\n", e.key,
                             e.App(), MiB(p.peak_bytes), warm,
                             fmt::format("{}+{}", p.samples, p.warm_samples), p.oom_events,
                             p.updated.empty() ? "-" : p.updated, CompactJson(p.parameters));
  }
  if (shown == 0) {
    std::cout << "no memory profiles under " << root.string() << "\n";
  } else {
    std::cout << "\n"
              << shown << " profile(s) under " << root.string()
              << " (SAMPLES: full+warm measurements)\n";
  }
  return kExitOk;
}

// The one entry for `options.key`, or an exit code after printing why not.
std::optional<const Entry*> FindOne(const std::vector<Entry>& entries, const fs::path& root,
                                    const ProfilesOptions& options, int* exit_code) {
  const std::vector<const Entry*> matches = Match(entries, options.key);
  if (matches.empty()) {
    std::cerr << "clams profiles: no profile " << options.key << " under " << root.string()
              << (options.app.empty() ? "" : " for app " + options.app) << "\n";
    *exit_code = kExitFailure;
    return std::nullopt;
  }
  if (matches.size() > 1) {
    std::cerr << "clams profiles: " << options.key << " matches " << matches.size() << " profiles:";
    for (const Entry* e : matches) std::cerr << " " << e->key << " (" << e->App() << ")";
    std::cerr << "; give a longer key or --app\n";
    *exit_code = kExitFailure;
    return std::nullopt;
  }
  return matches.front();
}

int RunShow(const ProfilesOptions& options) {
  const fs::path root = ProfileRoot(options);
  const std::vector<Entry> entries = Scan(root, options.app);
  int exit_code = kExitOk;
  const auto found = FindOne(entries, root, options, &exit_code);
  if (!found) return exit_code;
  const Entry& e = **found;
  if (!e.profile.ok()) {
    std::cerr << "clams profiles: " << e.profile.status().message() << "\n";
    return kExitFailure;
  }
  if (options.json) {
    PrintJson(EntryJson(e));
    return kExitOk;
  }
  const Profile& p = *e.profile;
  std::cout << "class key:     " << e.key << "\n"
            << "app:           " << e.App() << "\n"
            << "file:          " << e.path.string() << "\n"
            << "peak:          " << p.peak_bytes << " bytes (" << MiB(p.peak_bytes)
            << " MiB), full growth\n"
            << "warm peak:     "
            << (vram::HasWarmMeasurement(p)
                    ? fmt::format("{} bytes ({} MiB)", p.warm_peak_bytes, MiB(p.warm_peak_bytes))
                    : std::string("not measured"))
            << "\n"
            << "samples:       " << p.samples << " full, " << p.warm_samples << " warm\n"
            << "OOM events:    " << p.oom_events << "\n"
            << "mean duration: " << fmt::format("{:.1f}", p.mean_duration_ms) << " ms\n"
            << "updated:       " << (p.updated.empty() ? "-" : p.updated) << "\n"
            << "device:        " << (p.device.empty() ? "-" : p.device) << "\n"
            << "app version:   " << (p.app_version.empty() ? "-" : p.app_version) << "\n"
            << "parameters:    "
            << mmif::WriteJson(json::value(p.parameters), {.indent = kJsonIndent}) << "\n";
  return kExitOk;
}

int RunClear(const ProfilesOptions& options) {
  const fs::path root = ProfileRoot(options);
  const std::vector<Entry> entries = Scan(root, options.app);
  std::vector<const Entry*> targets;
  if (options.key.empty()) {
    for (const Entry& e : entries) targets.push_back(&e);
  } else {
    int exit_code = kExitOk;
    const auto found = FindOne(entries, root, options, &exit_code);
    if (!found) return exit_code;
    targets.push_back(*found);
  }
  int exit_code = kExitOk;
  std::size_t removed = 0;
  for (const Entry* e : targets) {
    std::error_code ec;
    if (fs::remove(e->path, ec)) {
      ++removed;
    } else if (ec) {
      std::cerr << "clams profiles: cannot remove " << e->path.string() << ": " << ec.message()
                << "\n";
      exit_code = kExitFailure;
    }
  }
  if (options.json) {
    json::object out;
    out["profile_dir"] = root.string();
    out["removed"] = removed;
    PrintJson(out);
  } else {
    std::cout << "removed " << removed << " profile(s) under " << root.string() << "\n";
  }
  return exit_code;
}

}  // namespace

void AddProfilesCommands(CLI::App& app, CommandContext& ctx) {
  auto options = std::make_shared<ProfilesOptions>();
  auto* profiles = app.add_subcommand(
      "profiles",
      "Measured GPU memory per request class (the server's estimates). Profiles live in "
      "${CLAMS_PROFILE_DIR:-${XDG_CACHE_HOME:-~/.cache}/clams/memory_profiles}/<app>/.");
  profiles->require_subcommand(1);
  // The options below may follow the subcommand: `clams profiles list --json`.
  profiles->fallthrough();
  profiles->add_option("--profile-dir", options->profile_dir,
                       "Profile root directory (default from CLAMS_PROFILE_DIR, XDG_CACHE_HOME "
                       "or HOME)");
  profiles->add_option("--app", options->app,
                       "Only this app (its identifier, or its directory name)");
  profiles->add_flag("--json", options->json, "JSON output");

  auto* list = profiles->add_subcommand(
      "list",
      "List profiles: class key, app, peak and warm peak (MiB), samples, OOMs, "
      "updated, parameters");
  list->callback([options, &ctx] { ctx.exit_code = RunList(*options); });

  auto* show = profiles->add_subcommand("show", "Show one profile");
  show->add_option("KEY", options->key, "Class key (or a unique prefix of one)")->required();
  show->callback([options, &ctx] { ctx.exit_code = RunShow(*options); });

  auto* clear = profiles->add_subcommand(
      "clear", "Remove one profile (KEY) or all of them (of --app, or of every app)");
  clear->add_option("KEY", options->key, "Class key (or a unique prefix of one)");
  clear->callback([options, &ctx] { ctx.exit_code = RunClear(*options); });
}

}  // namespace clams::cli
