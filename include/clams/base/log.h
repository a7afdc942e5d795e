// clams/base/log.h
//
// The one logger of clams-cpp. Library code never writes to stdout or stderr;
// it logs through CLAMS_LOG, which checks the level before formatting, and the
// message goes to a sink the host program chooses (by default a spdlog logger
// on stderr).
//
// Example:
//
//   CLAMS_LOG(kInfo, "worker {} ready on {}", pid, socket_path);
//   CLAMS_LOG(kWarning, "bad header from client: {}", clams::log::Quote(raw));
//
// Text that comes from requests must go through `Quote()` (JSON escaping), so
// a client cannot forge log lines.
#ifndef CLAMS_BASE_LOG_H_
#define CLAMS_BASE_LOG_H_

#include <fmt/format.h>

#include <functional>
#include <string>
#include <string_view>

#include "clams/base/status.h"

namespace clams::log {

enum class Level { kTrace = 0, kDebug, kInfo, kWarning, kError, kCritical, kOff };

/// The current level; messages below it are dropped before formatting.
/// Thread-safe.
Level GetLevel();
void SetLevel(Level level);
inline bool Enabled(Level level) { return level >= GetLevel() && level != Level::kOff; }

/// Parses a level name, case-insensitive: trace, debug, info, warning (warn),
/// error, critical (fatal), off. Returns kInvalidArgument otherwise.
StatusOr<Level> ParseLevel(std::string_view name);
std::string_view LevelName(Level level);

/// Where messages go. `category` is "clams" for library messages and
/// "access" for the HTTP access log.
using Sink = std::function<void(Level level, std::string_view category, std::string_view message)>;

/// Replaces the sink (thread-safe); an empty function restores the default
/// spdlog sink on stderr. Exceptions thrown by a sink are swallowed.
void SetSink(Sink sink);

/// Writes `message` at `level` (no level check; use CLAMS_LOG).
void Write(Level level, std::string_view message);
/// Writes an access-log line (category "access", level kInfo, not filtered
/// by the level so that access logs can be kept at a quiet level).
void Access(std::string_view line);
/// Turns the access log on or off (on by default).
void SetAccessLogEnabled(bool enabled);
/// Whether Access() writes anything (check before building a line).
bool AccessLogEnabled();

/// JSON-escapes `text` and puts it in double quotes.
std::string Quote(std::string_view text);

}  // namespace clams::log

/// Logs a fmt-style message at `level` (kTrace .. kCritical) if enabled.
#define CLAMS_LOG(level, ...)                                                         \
  do {                                                                                \
    if (::clams::log::Enabled(::clams::log::Level::level)) {                          \
      ::clams::log::Write(::clams::log::Level::level, ::fmt::format(__VA_ARGS__));    \
    }                                                                                 \
  } while (false)

#endif  // CLAMS_BASE_LOG_H_
