// Every server setting, declared once: CLI flag, environment fallback,
// default, help. RegisterServerFlags() feeds CLI11; FlagsMarkdown() renders
// the table in docs/server-flags.md (a test keeps the two in sync).
#ifndef CLAMS_SRC_SERVER_OPTIONS_H_
#define CLAMS_SRC_SERVER_OPTIONS_H_

#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "clams/base/status.h"

namespace clams::server {

/// Defaults, with their reasons.
inline constexpr std::uint64_t kDefaultMaxBodyBytes = 1ull << 30;  // 1 GiB: 6-hour pipelines are ~50 MB
inline constexpr double kDefaultQueueTimeoutSeconds = 300;         // DESIGN §7
inline constexpr std::size_t kDefaultMaxQueue = 100;               // DESIGN §7
inline constexpr double kDefaultGracefulTimeoutSeconds = 300;      // drain: let long GPU requests finish
inline constexpr double kDefaultBackfillWindowSeconds = 10;        // bound on how long small requests may overtake
inline constexpr int kDefaultDevelopmentThreads = 4;               // in-process pool cap

struct ServerOptions {
  std::string host = "0.0.0.0";
  int port = 5000;
  bool production = false;
  int workers = 0;  ///< 0: automatic
  std::uint64_t max_requests = 0;
  std::uint64_t max_requests_jitter = 0;
  double queue_timeout_seconds = kDefaultQueueTimeoutSeconds;
  std::size_t max_queue = kDefaultMaxQueue;
  std::string vram_headroom;  ///< BYTES or PCT% (empty: none)
  std::string profile_dir;    ///< empty: from the environment (DESIGN §6)
  double request_timeout_seconds = 0;
  std::string max_body_size = "1GiB";
  std::string log_level;  ///< empty: CLAMS_LOGLEVEL or info
  double header_timeout_seconds = 30;
  double body_timeout_seconds = 300;
  double idle_timeout_seconds = 75;
  double graceful_timeout_seconds = kDefaultGracefulTimeoutSeconds;
  double backfill_window_seconds = kDefaultBackfillWindowSeconds;
  double vram_margin = 0.2;
  double vram_conservative_fraction = 0.8;
  bool no_access_log = false;
  std::string log_format = "text";  ///< text or json (env CLAMS_LOG_FORMAT)
  std::string config_file;          ///< --config FILE (env CLAMS_CONFIG); see config_file.h

  // Internal: the worker role of the production server.
  std::string worker_socket;
  int worker_ready_fd = -1;
};

/// One row of the settings table.
struct FlagInfo {
  std::string flag;
  std::string env;
  std::string default_text;
  std::string help;
};
const std::vector<FlagInfo>& ServerFlagTable();

/// Adds every server flag to `app`, bound to `options`.
void RegisterServerFlags(CLI::App& app, ServerOptions& options);

/// Fills settings not given on the command line from the environment
/// (CLAMS_LOGLEVEL; workers: CLAMS_GUNICORN_WORKERS, then CLAMS_WORKERS).
/// `workers_from_flag` tells whether --workers was given. kInvalidArgument
/// for unparsable values.
Status ApplyEnvironment(ServerOptions& options, bool workers_from_flag, std::string* workers_source);

/// The flag table as Markdown.
std::string FlagsMarkdown();

}  // namespace clams::server

#endif  // CLAMS_SRC_SERVER_OPTIONS_H_
