#include "server/config_file.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include "clams/base/log.h"
#include "clams/gpu/probe.h"

namespace clams::server {
namespace {

constexpr std::string_view kWhitespace = " \t\r";

std::string_view Trim(std::string_view s) {
  const auto b = s.find_first_not_of(kWhitespace);
  if (b == std::string_view::npos) return {};
  const auto e = s.find_last_not_of(kWhitespace);
  return s.substr(b, e - b + 1);
}

std::string At(const std::string& path, int line) { return path + ":" + std::to_string(line) + ": "; }

bool IsSettingKey(std::string_view key) {
  for (const FlagInfo& f : ServerFlagTable()) {
    if (std::string_view(f.flag).substr(2) == key) return true;
  }
  return false;
}

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? v : "";
}

const ConfigEntry* Find(const ConfigFile& file, std::string_view key) {
  for (const ConfigEntry& e : file.entries) {
    if (e.key == key) return &e;
  }
  return nullptr;
}

// The value of setting `key` in `options` as text, through the same
// registration as the command line (so new flags need nothing here). Flags
// (on/off) have no captured text; the two of the registry are read directly.
std::string ValueText(const ServerOptions& options, const std::string& key) {
  if (key == "production") return options.production ? "on" : "off";
  if (key == "no-access-log") return options.no_access_log ? "on" : "off";
  ServerOptions copy = options;
  CLI::App app;
  RegisterServerFlags(app, copy);
  CLI::Option* opt = app.get_option_no_throw("--" + key);
  if (opt == nullptr || opt->get_expected_max() == 0) return "?";
  opt->capture_default_str();
  const std::string v = opt->get_default_str();
  return v.empty() ? "\"\"" : v;
}

// Copies one setting that can change while serving.
void CopyRuntimeSetting(const ServerOptions& from, const std::string& key, ServerOptions& to) {
  if (key == "log-level") to.log_level = from.log_level;
  if (key == "log-format") to.log_format = from.log_format;
  if (key == "no-access-log") to.no_access_log = from.no_access_log;
  if (key == "max-queue") to.max_queue = from.max_queue;
  if (key == "queue-timeout") to.queue_timeout_seconds = from.queue_timeout_seconds;
  if (key == "request-timeout") to.request_timeout_seconds = from.request_timeout_seconds;
}

// The settings for `command_line` + `file` (may be null) + environment.
StatusOr<Settings> Resolve(const ServerOptions& command_line, const std::set<std::string>& given,
                           const ConfigFile* file) {
  Settings s;
  s.options = command_line;
  if (file != nullptr) {
    s.file = *file;
    CLAMS_ASSIGN_OR_RETURN(std::vector<std::string> applied, ApplyConfig(*file, given, s.options));
    s.from_file.insert(applied.begin(), applied.end());
  }
  const bool workers_given = given.count("workers") > 0 || s.from_file.count("workers") > 0;
  CLAMS_RETURN_IF_ERROR(ApplyEnvironment(s.options, workers_given, &s.workers_source));
  if (given.count("workers") == 0 && s.from_file.count("workers") > 0) s.workers_source = s.file.path;
  std::string format_source = "--log-format";
  if (given.count("log-format") == 0) {
    if (const ConfigEntry* e = file != nullptr ? Find(*file, "log-format") : nullptr) {
      format_source = At(file->path, e->line) + "log-format";
    } else if (std::string env = Env("CLAMS_LOG_FORMAT"); !env.empty()) {
      s.options.log_format = env;
      format_source = "CLAMS_LOG_FORMAT";
    }
  }
  if (auto f = log::ParseFormat(s.options.log_format); !f.ok()) {
    return InvalidArgumentError(format_source + ": " + f.status().message());
  }
  if (auto l = log::ParseLevel(s.options.log_level); !l.ok()) {
    std::string source = "--log-level";
    if (given.count("log-level") == 0) {
      const ConfigEntry* e = file != nullptr ? Find(*file, "log-level") : nullptr;
      source = e != nullptr ? At(file->path, e->line) + "log-level" : "CLAMS_LOGLEVEL";
    }
    return InvalidArgumentError(source + ": " + l.status().message());
  }
  return s;
}

}  // namespace

StatusOr<ConfigFile> ParseConfig(std::string_view text, const std::string& path) {
  ConfigFile file;
  file.path = path;
  std::map<std::string, int> seen;
  int line_no = 0;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    const std::size_t end = std::min(text.find('\n', pos), text.size());
    const std::string_view raw = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    const std::string_view line = Trim(raw);
    if (line.empty() || line.front() == '#') {
      if (end == text.size()) break;
      continue;
    }
    const auto eq = line.find('=');
    if (eq == std::string_view::npos) {
      return InvalidArgumentError(At(path, line_no) + "expected key = value, got " + log::Quote(line));
    }
    const std::string key(Trim(line.substr(0, eq)));
    std::string_view rest = Trim(line.substr(eq + 1));
    std::string value;
    if (!rest.empty() && rest.front() == '"') {
      const auto close = rest.find('"', 1);
      if (close == std::string_view::npos) {
        return InvalidArgumentError(At(path, line_no) + key + ": the quoted value has no closing \"");
      }
      value = std::string(rest.substr(1, close - 1));
      const std::string_view after = Trim(rest.substr(close + 1));
      if (!after.empty() && after.front() != '#') {
        return InvalidArgumentError(At(path, line_no) + key + ": unexpected " + log::Quote(after) +
                                    " after the quoted value");
      }
    } else {
      // " #" or "\t#" starts a comment after an unquoted value.
      for (std::size_t i = 0; i < rest.size(); ++i) {
        if (rest[i] == '#' && (i == 0 || rest[i - 1] == ' ' || rest[i - 1] == '\t')) {
          rest = Trim(rest.substr(0, i));
          break;
        }
      }
      value = std::string(rest);
      if (value.empty()) return InvalidArgumentError(At(path, line_no) + key + " has no value");
    }
    if (key.empty()) return InvalidArgumentError(At(path, line_no) + "a line starts with '=': the key is missing");
    if (key.front() == '-') {
      return InvalidArgumentError(At(path, line_no) + log::Quote(key) +
                                  ": write keys without the leading -- (\"max-queue = 50\")");
    }
    if (key == "config") {
      return InvalidArgumentError(At(path, line_no) + "\"config\" cannot be set in a config file");
    }
    if (!IsSettingKey(key)) {
      return InvalidArgumentError(At(path, line_no) + "unknown setting " + log::Quote(key) +
                                  " (the keys are the server flags without --; see --help)");
    }
    if (auto it = seen.find(key); it != seen.end()) {
      return InvalidArgumentError(At(path, line_no) + log::Quote(key) + " is already set on line " +
                                  std::to_string(it->second));
    }
    seen[key] = line_no;
    file.entries.push_back({key, std::move(value), line_no});
    if (end == text.size()) break;
  }
  return file;
}

StatusOr<ConfigFile> ReadConfigFile(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return NotFoundError("config file " + path + " does not exist");
  if (std::filesystem::is_directory(path, ec)) return FailedPreconditionError("config file " + path + " is a directory");
  std::ifstream in(path, std::ios::binary);
  if (!in.is_open()) return FailedPreconditionError("cannot open config file " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return FailedPreconditionError("cannot read config file " + path);
  return ParseConfig(ss.str(), path);
}

StatusOr<std::vector<std::string>> ApplyConfig(const ConfigFile& file, const std::set<std::string>& skip,
                                               ServerOptions& options) {
  std::vector<std::string> applied;
  for (const ConfigEntry& e : file.entries) {
    if (skip.count(e.key) != 0) continue;
    // One fresh parser per line, bound to `options`: only this setting is
    // written, and an error belongs to this line.
    CLI::App parser;
    RegisterServerFlags(parser, options);
    std::vector<std::string> args = {"--" + e.key + "=" + e.value};
    try {
      parser.parse(args);
    } catch (const CLI::ParseError& error) {
      return InvalidArgumentError(At(file.path, e.line) + error.what());
    }
    if (e.key == "max-body-size") {
      if (auto b = gpu::ParseBytes(e.value); !b.ok()) {
        return InvalidArgumentError(At(file.path, e.line) + "max-body-size: " + b.status().message());
      }
    }
    applied.push_back(e.key);
  }
  return applied;
}

std::set<std::string> CommandLineKeys(const CLI::App& parsed) {
  std::set<std::string> keys;
  for (const FlagInfo& f : ServerFlagTable()) {
    const CLI::Option* opt = parsed.get_option_no_throw(f.flag);
    if (opt != nullptr && opt->count() > 0) keys.insert(f.flag.substr(2));
  }
  return keys;
}

StatusOr<Settings> ResolveSettings(const ServerOptions& command_line, const std::set<std::string>& given) {
  ServerOptions with_path = command_line;
  if (given.count("config") == 0 && with_path.config_file.empty()) with_path.config_file = Env("CLAMS_CONFIG");
  if (with_path.config_file.empty()) return Resolve(with_path, given, nullptr);
  CLAMS_ASSIGN_OR_RETURN(ConfigFile file, ReadConfigFile(with_path.config_file));
  return Resolve(with_path, given, &file);
}

Status ApplyLogSettings(const ServerOptions& options) {
  CLAMS_ASSIGN_OR_RETURN(log::Level level, log::ParseLevel(options.log_level));
  CLAMS_ASSIGN_OR_RETURN(log::Format format, log::ParseFormat(options.log_format));
  log::SetLevel(level);
  log::SetFormat(format);
  log::SetAccessLogEnabled(!options.no_access_log);
  return Status::Ok();
}

const std::set<std::string>& ConfigReloader::RuntimeKeys() {
  static const std::set<std::string>* keys = new std::set<std::string>{
      "log-level", "log-format", "no-access-log", "max-queue", "queue-timeout", "request-timeout"};
  return *keys;
}

ConfigReloader::ConfigReloader(ServerOptions command_line, std::set<std::string> given, Settings started, Hooks hooks)
    : command_line_(std::move(command_line)),
      given_(std::move(given)),
      current_(std::move(started.options)),
      path_(current_.config_file),
      hooks_(std::move(hooks)) {
  command_line_.config_file = path_;
  for (const ConfigEntry& e : started.file.entries) in_effect_[e.key] = e.value;
}

StatusOr<ReloadReport> ConfigReloader::Reload() {
  auto fail = [&](const Status& s) {
    CLAMS_LOG(kError, "SIGHUP: config not reloaded, settings unchanged: {}", s.message());
    return s;
  };
  auto file = ReadConfigFile(path_);
  if (!file.ok()) return fail(file.status());
  auto next = Resolve(command_line_, given_, &*file);
  if (!next.ok()) return fail(next.status());

  std::map<std::string, std::string> entries;
  for (const ConfigEntry& e : file->entries) entries[e.key] = e.value;
  std::set<std::string> keys;
  for (const auto& [k, v] : in_effect_) keys.insert(k);
  for (const auto& [k, v] : entries) keys.insert(k);

  ReloadReport report;
  ServerOptions updated = current_;
  bool log_changed = false, limits_changed = false;
  for (const std::string& key : keys) {
    const auto before = in_effect_.find(key);
    const auto after = entries.find(key);
    const bool had = before != in_effect_.end(), has = after != entries.end();
    if (had == has && (!had || before->second == after->second)) continue;
    if (given_.count(key) != 0) {
      report.ignored.push_back(key + ": set on the command line (" + ValueText(current_, key) + "); the file's " +
                               (has ? after->second : std::string("removal")) + " is not used");
      if (has) in_effect_[key] = after->second; else in_effect_.erase(key);
      continue;
    }
    const std::string change = key + ": " + ValueText(current_, key) + " -> " + ValueText(next->options, key);
    if (RuntimeKeys().count(key) == 0) {
      report.restart.push_back(change);
      continue;
    }
    CopyRuntimeSetting(next->options, key, updated);
    report.applied.push_back(change);
    if (has) in_effect_[key] = after->second; else in_effect_.erase(key);
    if (key == "log-level" || key == "log-format" || key == "no-access-log") log_changed = true;
    if (key == "max-queue" || key == "queue-timeout" || key == "request-timeout") limits_changed = true;
  }

  // Logged before the log settings change, so that a change to a quieter
  // level is still announced.
  for (const std::string& c : report.applied) CLAMS_LOG(kInfo, "SIGHUP: config {}: applied {}", path_, c);
  for (const std::string& c : report.restart) {
    CLAMS_LOG(kWarning, "SIGHUP: config {}: {} needs a restart, not applied", path_, c);
  }
  for (const std::string& c : report.ignored) CLAMS_LOG(kInfo, "SIGHUP: config {}: {}", path_, c);
  if (report.applied.empty() && report.restart.empty() && report.ignored.empty()) {
    CLAMS_LOG(kInfo, "SIGHUP: config {} re-read: no changes", path_);
  }

  current_ = updated;
  if (log_changed) {
    (void)ApplyLogSettings(current_);  // checked by Resolve()
    if (hooks_.set_worker_options) hooks_.set_worker_options(current_);
  }
  if (limits_changed && hooks_.set_limits) {
    hooks_.set_limits(RuntimeLimits{current_.max_queue, current_.queue_timeout_seconds,
                                    current_.request_timeout_seconds});
  }
  return report;
}

}  // namespace clams::server
