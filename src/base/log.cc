#include "clams/base/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <memory>
#include <mutex>

namespace clams::log {
namespace {

std::atomic<Level> g_level{Level::kInfo};
std::atomic<bool> g_access_enabled{true};

struct SinkHolder {
  std::mutex mu;
  Sink sink;  // empty = default
  std::shared_ptr<spdlog::logger> main;
  std::shared_ptr<spdlog::logger> access;
};

SinkHolder& Holder() {
  static SinkHolder* holder = [] {
    auto* h = new SinkHolder();  // intentionally leaked: usable during exit
    auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>(spdlog::color_mode::never);
    h->main = std::make_shared<spdlog::logger>("clams", sink);
    h->access = std::make_shared<spdlog::logger>("access", sink);
    const char* pattern = "%Y-%m-%dT%H:%M:%S.%e %-7l [%n] pid=%P %v";
    h->main->set_pattern(pattern);
    h->access->set_pattern(pattern);
    h->main->set_level(spdlog::level::trace);
    h->access->set_level(spdlog::level::trace);
    return h;
  }();
  return *holder;
}

spdlog::level::level_enum ToSpd(Level level) {
  switch (level) {
    case Level::kTrace: return spdlog::level::trace;
    case Level::kDebug: return spdlog::level::debug;
    case Level::kInfo: return spdlog::level::info;
    case Level::kWarning: return spdlog::level::warn;
    case Level::kError: return spdlog::level::err;
    case Level::kCritical: return spdlog::level::critical;
    case Level::kOff: return spdlog::level::off;
  }
  return spdlog::level::info;
}

void Emit(Level level, std::string_view category, std::string_view message) {
  SinkHolder& h = Holder();
  try {
    Sink sink;
    {
      std::lock_guard<std::mutex> lock(h.mu);
      sink = h.sink;
    }
    if (sink) {
      sink(level, category, message);
    } else {
      auto& logger = category == "access" ? h.access : h.main;
      logger->log(ToSpd(level), "{}", message);
    }
  } catch (...) {
    // A failing sink must never take the caller down.
  }
}

}  // namespace

Level GetLevel() { return g_level.load(std::memory_order_relaxed); }
void SetLevel(Level level) { g_level.store(level, std::memory_order_relaxed); }

StatusOr<Level> ParseLevel(std::string_view name) {
  std::string s(name);
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  if (s == "trace") return Level::kTrace;
  if (s == "debug") return Level::kDebug;
  if (s == "info") return Level::kInfo;
  if (s == "warning" || s == "warn") return Level::kWarning;
  if (s == "error") return Level::kError;
  if (s == "critical" || s == "fatal") return Level::kCritical;
  if (s == "off") return Level::kOff;
  return InvalidArgumentError("unknown log level " + Quote(name) +
                              " (expected trace, debug, info, warning, error, critical or off)");
}

std::string_view LevelName(Level level) {
  switch (level) {
    case Level::kTrace: return "trace";
    case Level::kDebug: return "debug";
    case Level::kInfo: return "info";
    case Level::kWarning: return "warning";
    case Level::kError: return "error";
    case Level::kCritical: return "critical";
    case Level::kOff: return "off";
  }
  return "info";
}

void SetSink(Sink sink) {
  SinkHolder& h = Holder();
  std::lock_guard<std::mutex> lock(h.mu);
  h.sink = std::move(sink);
}

void Write(Level level, std::string_view message) { Emit(level, "clams", message); }

void Access(std::string_view line) {
  if (g_access_enabled.load(std::memory_order_relaxed)) Emit(Level::kInfo, "access", line);
}

bool AccessLogEnabled() { return g_access_enabled.load(std::memory_order_relaxed); }

void SetAccessLogEnabled(bool enabled) { g_access_enabled.store(enabled, std::memory_order_relaxed); }

std::string Quote(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 2);
  out.push_back('"');
  static const char* kHex = "0123456789abcdef";
  for (unsigned char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          out += "\\u00";
          out.push_back(kHex[c >> 4]);
          out.push_back(kHex[c & 0xf]);
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  out.push_back('"');
  return out;
}

}  // namespace clams::log
