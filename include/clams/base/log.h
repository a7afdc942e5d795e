// clams/base/log.h
//
// The one logger of clams-cpp. Library code never writes to stdout or stderr;
// it logs through CLAMS_LOG, which checks the level before formatting, and the
// message goes to a sink the host program chooses (by default stderr, one
// line per message, in the text or JSON format).
//
// Example:
//
//   CLAMS_LOG(kInfo, "worker {} ready on {}", pid, socket_path);
//   CLAMS_LOG(kWarning, "bad header from client: {}", clams::log::Quote(raw));
//   CLAMS_LOG_WITH(kInfo, (log::Fields{{"worker", 3}, {"device", 0}}), "worker started");
//
// Text that comes from requests must go through `Quote()` (JSON escaping), so
// a client cannot forge log lines in the text format. The JSON format escapes
// every string itself (and replaces invalid UTF-8), so each line is one JSON
// object whatever the message holds.
//
// Line formats (time in UTC with its offset; `request_id` only while a
// ScopedRequestId is active on the logging thread; fields last):
//
//   text: 2026-12-04T17:00:00.123+00:00 info    [clams] pid=42 request_id=r1 worker started worker=3
//   json: {"time":"2026-12-04T17:00:00.123+00:00","level":"info","pid":42,"logger":"clams",
//          "request_id":"r1","msg":"worker started","worker":3}
//
// Thread-safety: every function here may be called from any thread.
#ifndef CLAMS_BASE_LOG_H_
#define CLAMS_BASE_LOG_H_

#include <fmt/format.h>

#include <chrono>
#include <concepts>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "clams/base/status.h"

namespace clams::log {

enum class Level { kTrace = 0, kDebug, kInfo, kWarning, kError, kCritical, kOff };

/// The current level; messages below it are dropped before formatting.
Level GetLevel();
void SetLevel(Level level);
inline bool Enabled(Level level) { return level >= GetLevel() && level != Level::kOff; }

/// Parses a level name, case-insensitive: trace, debug, info, warning (warn),
/// error, critical (fatal), off. Returns kInvalidArgument otherwise.
StatusOr<Level> ParseLevel(std::string_view name);
std::string_view LevelName(Level level);

/// How lines are written: `kText` for people, `kJson` (one object per line)
/// for log collectors.
enum class Format { kText, kJson };
Format GetFormat();
void SetFormat(Format format);
/// "text" or "json" (case-insensitive); kInvalidArgument otherwise.
StatusOr<Format> ParseFormat(std::string_view name);
std::string_view FormatName(Format format);

/// One structured field of a log line: a key and a string, integer, floating
/// point or boolean value. In JSON the field is a member of the line's object
/// (a key that collides with time, level, pid, logger, request_id or msg gets
/// a trailing underscore); in text it follows the message as key=value.
class Field {
 public:
  enum class Kind { kString, kNumber, kBool };

  Field(std::string_view key, std::string_view value) : key_(key), text_(value), kind_(Kind::kString) {}
  Field(std::string_view key, const char* value) : Field(key, std::string_view(value)) {}
  Field(std::string_view key, const std::string& value) : Field(key, std::string_view(value)) {}
  Field(std::string_view key, bool value) : key_(key), text_(value ? "true" : "false"), kind_(Kind::kBool) {}
  template <std::integral T>
    requires(!std::same_as<T, bool> && !std::same_as<T, char>)
  Field(std::string_view key, T value) : key_(key), text_(fmt::format("{}", value)), kind_(Kind::kNumber) {}
  /// Non-finite values are written as null (JSON) or nan/inf (text).
  Field(std::string_view key, double value);

  const std::string& key() const { return key_; }
  /// The value as text: the string itself, or the number or boolean spelled out.
  const std::string& text() const { return text_; }
  Kind kind() const { return kind_; }

 private:
  std::string key_;
  std::string text_;
  Kind kind_;
};
using Fields = std::vector<Field>;

/// Sets the request id of the calling thread for the lifetime of the scope:
/// every line logged on this thread carries it (`request_id`). Scopes nest;
/// the previous id comes back when a scope ends. Other threads are not
/// affected. Not copyable or movable (it belongs to one thread's stack).
class ScopedRequestId {
 public:
  explicit ScopedRequestId(std::string_view request_id);
  ~ScopedRequestId();
  ScopedRequestId(const ScopedRequestId&) = delete;
  ScopedRequestId& operator=(const ScopedRequestId&) = delete;

 private:
  std::string previous_;
};
/// The request id of the calling thread (empty outside a ScopedRequestId).
std::string_view CurrentRequestId();

/// Raw sink: receives each message before it is formatted. `category` is
/// "clams" for library messages and "access" for the HTTP access log.
using Sink = std::function<void(Level level, std::string_view category, std::string_view message)>;

/// Replaces the raw sink; an empty function restores the default (formatted
/// lines to the line sink). Exceptions thrown by a sink are swallowed.
void SetSink(Sink sink);

/// Line sink: receives each formatted line (no trailing newline) when no raw
/// sink is set. An empty function restores the default, stderr.
using LineSink = std::function<void(Level level, std::string_view line)>;
void SetLineSink(LineSink sink);

/// Everything one line is made of; FormatLine() renders it.
struct Record {
  std::chrono::system_clock::time_point time;
  Level level = Level::kInfo;
  std::string_view category = "clams";
  std::string_view message;
  std::string_view request_id;  ///< empty: none
  long pid = 0;
  const Fields* fields = nullptr;
};
/// One line in `format` (no trailing newline).
std::string FormatLine(Format format, const Record& record);

/// Writes `message` at `level` (no level check; use CLAMS_LOG).
void Write(Level level, std::string_view message);
/// Writes `message` with structured fields (no level check; use CLAMS_LOG_WITH).
void Write(Level level, std::string_view message, const Fields& fields);

/// Writes an access-log line (category "access"). Lines at kInfo and above
/// are not filtered by the level, so that access logs can be kept while the
/// rest is quiet; lines below kInfo (health probes, scrapes) are written only
/// when the level enables them.
void Access(std::string_view line);
void Access(std::string_view line, const Fields& fields, Level level = Level::kInfo);
/// Turns the access log on or off (on by default).
void SetAccessLogEnabled(bool enabled);
/// Whether Access() writes anything at kInfo (check before building a line).
bool AccessLogEnabled();
/// Whether Access() writes a line at `level`.
bool AccessLogEnabled(Level level);

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

/// Logs a fmt-style message with structured fields if `level` is enabled;
/// `fields` is one parenthesized expression, e.g.
/// `CLAMS_LOG_WITH(kInfo, (log::Fields{{"worker", id}}), "worker {} up", id)`.
/// The fields are not evaluated when the level is disabled.
#define CLAMS_LOG_WITH(level, fields, ...)                                                    \
  do {                                                                                        \
    if (::clams::log::Enabled(::clams::log::Level::level)) {                                  \
      ::clams::log::Write(::clams::log::Level::level, ::fmt::format(__VA_ARGS__), fields);    \
    }                                                                                         \
  } while (false)

#endif  // CLAMS_BASE_LOG_H_
