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
// 256 MiB: a 6-hour pipeline's MMIF is ~50 MB; a body's answer and the
// worker's tree are many times its size (5 MB of text made a 229 MB answer
// and a 1.1 GB worker), so 1 GiB let one request exhaust a host.
inline constexpr std::uint64_t kDefaultMaxBodyBytes = 256ull << 20;
inline constexpr double kDefaultQueueTimeoutSeconds = 300;         // DESIGN §7
inline constexpr std::size_t kDefaultMaxQueue = 100;               // DESIGN §7
inline constexpr double kDefaultGracefulTimeoutSeconds = 300;      // drain: let long GPU requests finish
inline constexpr double kDefaultClientGoneGraceSeconds = 5;        // a half-closed client may still read its answer
inline constexpr std::uint64_t kDefaultMaxQueuedBytes = 1ull << 30; // bodies held while waiting; refusals beyond
inline constexpr int kDefaultDevelopmentThreads = 4;               // in-process pool cap
inline constexpr int kMaxThreadsPerWorker = 1024;                  // --threads bound, as for --workers

struct ServerOptions {
  std::string host = "0.0.0.0";
  int port = 5000;
  bool production = false;
  int workers = 0;  ///< 0: automatic
  int threads = 1;  ///< requests a worker runs at once (--threads, CLAMS_THREADS)
  std::uint64_t max_requests = 0;
  std::uint64_t max_requests_jitter = 0;
  double queue_timeout_seconds = kDefaultQueueTimeoutSeconds;
  std::size_t max_queue = kDefaultMaxQueue;
  std::string vram_headroom;  ///< BYTES or PCT% (empty: none)
  std::string profile_dir;    ///< empty: from the environment (DESIGN §6)
  double request_timeout_seconds = 0;
  std::string max_body_size = "256MiB";
  std::string log_level;  ///< empty: CLAMS_LOGLEVEL or info
  double header_timeout_seconds = 30;
  double body_timeout_seconds = 300;
  double idle_timeout_seconds = 75;
  double graceful_timeout_seconds = kDefaultGracefulTimeoutSeconds;
  double client_gone_grace_seconds = kDefaultClientGoneGraceSeconds;
  std::string class_params;  ///< comma-separated memory-relevant parameter names
  std::string max_queued_bytes = "1GiB";
  bool expose_runtime = false;
  std::size_t max_profiles = 1000;
  double vram_margin = 0.2;
  double vram_conservative_fraction = 0.8;
  bool no_access_log = false;
  /// `clams serve app.py`: do not cap PyTorch at the worker's grant.
  bool no_torch_cap = false;
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
/// for unparsable values. (CLAMS_THREADS is read with the flags.)
Status ApplyEnvironment(ServerOptions& options, bool workers_from_flag, std::string* workers_source);

/// "a, b,c" -> {"a", "b", "c"} (empty names dropped).
std::vector<std::string> SplitNames(const std::string& text);

/// The flag table as Markdown.
std::string FlagsMarkdown();

}  // namespace clams::server

#endif  // CLAMS_SRC_SERVER_OPTIONS_H_
