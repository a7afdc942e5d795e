// Server settings from a file: `--config FILE` (env CLAMS_CONFIG), re-read on
// SIGHUP.
//
// Format: one `key = value` per line; keys are the long flag names of the
// settings registry (options.cc) without `--`; blank lines and lines whose
// first non-blank character is `#` are ignored, and ` #` after a value starts
// a comment (quote the value, "like # this", to keep it). Flags take true,
// false, yes, no, on, off, 1 or 0. Values go through the same parser as the
// command line, so types and ranges are checked the same way; every error
// names the file and the line.
//
//   # /etc/clams/whisper.conf
//   production = true
//   max-queue = 50
//   log-format = json
//
// Precedence: the command line, then the file, then the environment
// (CLAMS_LOGLEVEL, CLAMS_LOG_FORMAT, CLAMS_WORKERS, ...), then the defaults.
//
// Life cycle: main parses the command line, then ResolveSettings() gives the
// settings to start with. On SIGHUP the front calls ConfigReloader::Reload(),
// which re-reads the file, applies what can change while serving (log level,
// log format, access log, max-queue, queue-timeout, request-timeout) through
// the hooks, and logs each change it applied and each that needs a restart.
#ifndef CLAMS_SRC_SERVER_CONFIG_FILE_H_
#define CLAMS_SRC_SERVER_CONFIG_FILE_H_

#include <CLI/CLI.hpp>

#include <functional>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "clams/base/status.h"
#include "server/options.h"

namespace clams::server {

/// One `key = value` line.
struct ConfigEntry {
  std::string key;  ///< flag name without "--"
  std::string value;
  int line = 0;
};

/// A parsed config file.
struct ConfigFile {
  std::string path;
  std::vector<ConfigEntry> entries;  ///< in file order, each key once
};

/// Parses config text; `path` names the file in errors. kInvalidArgument
/// ("FILE:LINE: ...") for a line that is not `key = value`, an empty value, a
/// key that is not a server flag (or is `config` itself), or a key given twice.
StatusOr<ConfigFile> ParseConfig(std::string_view text, const std::string& path);

/// Reads and parses a config file. kNotFound if it does not exist,
/// kFailedPrecondition if it cannot be read, else as ParseConfig().
StatusOr<ConfigFile> ReadConfigFile(const std::string& path);

/// Sets the file's entries on `options` (except the keys in `skip`) through
/// the command-line parser. Returns the keys applied. kInvalidArgument
/// ("FILE:LINE: --port: Value 70000 not in range 0 to 65535") for a value the
/// flag does not accept; `options` may then be partly changed.
StatusOr<std::vector<std::string>> ApplyConfig(const ConfigFile& file, const std::set<std::string>& skip,
                                               ServerOptions& options);

/// The flags given on the command line, as config keys ("max-queue").
std::set<std::string> CommandLineKeys(const CLI::App& parsed);

/// The settings a server starts with.
struct Settings {
  ServerOptions options;
  std::set<std::string> from_file;  ///< keys the config file set
  std::string workers_source;       ///< what set --workers ("--workers", "config", "CLAMS_WORKERS", "")
  ConfigFile file;                  ///< empty when there is no config file
};

/// From the command line's options (`command_line` = what RegisterServerFlags
/// filled; `given` = CommandLineKeys()): the config file (--config, else
/// CLAMS_CONFIG) for what the command line did not give, then the environment
/// for what neither gave. Checks the log level and format. Errors: those of
/// ReadConfigFile() and ApplyConfig(); kInvalidArgument for a bad log level or
/// format (naming the flag, the file line or the variable that set it).
StatusOr<Settings> ResolveSettings(const ServerOptions& command_line, const std::set<std::string>& given);

/// Settings that change while serving, as the front applies them.
struct RuntimeLimits {
  std::size_t max_queue = 0;
  double queue_timeout_seconds = 0;
  double request_timeout_seconds = 0;
};

/// What one reload did (also logged, one line each).
struct ReloadReport {
  std::vector<std::string> applied;   ///< "log-level: info -> debug"
  std::vector<std::string> restart;   ///< "workers: 3 -> 5"
  std::vector<std::string> ignored;   ///< "max-queue: set on the command line (20); the file's 50 is not used"
};

/// SIGHUP for a server started with a config file. Loop thread only.
class ConfigReloader {
 public:
  struct Hooks {
    /// New max-queue / queue-timeout / request-timeout (new requests use them).
    std::function<void(const RuntimeLimits&)> set_limits;
    /// New log settings for workers started from now on (e.g. the SIGHUP
    /// worker reload that follows).
    std::function<void(const ServerOptions&)> set_worker_options;
  };

  /// `command_line` and `given` as for ResolveSettings(); `started` = what it returned.
  ConfigReloader(ServerOptions command_line, std::set<std::string> given, Settings started, Hooks hooks);

  /// Re-reads the file. On an error (unreadable, invalid) nothing changes and
  /// the error is logged and returned. Otherwise applies the changes that can
  /// be made while serving (log-level, log-format, no-access-log, max-queue,
  /// queue-timeout, request-timeout) and logs every change.
  StatusOr<ReloadReport> Reload();

  /// The settings in effect (startup settings plus what reloads applied).
  const ServerOptions& current() const { return current_; }

  /// Keys that change while serving.
  static const std::set<std::string>& RuntimeKeys();

 private:
  ServerOptions command_line_;
  std::set<std::string> given_;
  ServerOptions current_;
  std::map<std::string, std::string> in_effect_;  // file entries the running server reflects
  std::string path_;
  Hooks hooks_;
};

/// Applies log level, log format and the access-log switch of `options` to
/// the process. kInvalidArgument for an unknown level or format.
Status ApplyLogSettings(const ServerOptions& options);

}  // namespace clams::server

#endif  // CLAMS_SRC_SERVER_CONFIG_FILE_H_
