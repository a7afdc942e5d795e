#include "clams/base/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cmath>
#include <ctime>
#include <memory>
#include <mutex>

namespace clams::log {
namespace {

std::atomic<Level> g_level{Level::kInfo};
std::atomic<Format> g_format{Format::kText};
std::atomic<bool> g_access_enabled{true};
thread_local std::string t_request_id;

// The width the level name is padded to in text lines ("warning" and
// "critical" are the longest names in use; "critical" overflows by one).
constexpr std::size_t kTextLevelWidth = 7;

struct SinkHolder {
  std::mutex mu;
  Sink sink;           // empty = format and hand to the line sink
  LineSink line_sink;  // empty = stderr
  std::shared_ptr<spdlog::logger> stderr_logger;
};

SinkHolder& Holder() {
  static SinkHolder* holder = [] {
    auto* h = new SinkHolder();  // intentionally leaked: usable during exit
    auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>(spdlog::color_mode::never);
    h->stderr_logger = std::make_shared<spdlog::logger>("clams", sink);
    h->stderr_logger->set_pattern("%v");
    h->stderr_logger->set_level(spdlog::level::trace);
    return h;
  }();
  return *holder;
}

// Appends `text` as a JSON string. Control characters are escaped; bytes that
// are not well-formed UTF-8 (stray continuation bytes, overlong forms,
// surrogates, code points past U+10FFFF, truncated sequences) become U+FFFD,
// so the line is valid JSON and valid UTF-8 whatever the input was.
void AppendJsonString(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  std::size_t i = 0;
  while (i < n) {
    const unsigned char c = s[i];
    if (c < 0x80) {
      switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        default:
          if (c < 0x20 || c == 0x7f) {
            out += "\\u00";
            out.push_back(kHex[c >> 4]);
            out.push_back(kHex[c & 0xf]);
          } else {
            out.push_back(static_cast<char>(c));
          }
      }
      ++i;
      continue;
    }
    // Multi-byte sequence: length and the valid range of the second byte
    // (Unicode Table 3-7, well-formed UTF-8 byte sequences).
    std::size_t len = 0;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) {
      len = 2;
    } else if (c == 0xe0) {
      len = 3, lo = 0xa0;
    } else if (c >= 0xe1 && c <= 0xec) {
      len = 3;
    } else if (c == 0xed) {
      len = 3, hi = 0x9f;
    } else if (c >= 0xee && c <= 0xef) {
      len = 3;
    } else if (c == 0xf0) {
      len = 4, lo = 0x90;
    } else if (c >= 0xf1 && c <= 0xf3) {
      len = 4;
    } else if (c == 0xf4) {
      len = 4, hi = 0x8f;
    }
    bool ok = len != 0 && i + len <= n && s[i + 1] >= lo && s[i + 1] <= hi;
    for (std::size_t k = 2; ok && k < len; ++k) ok = s[i + k] >= 0x80 && s[i + k] <= 0xbf;
    if (ok) {
      out.append(text.substr(i, len));
      i += len;
    } else {
      out += "\\ufffd";
      ++i;
    }
  }
  out.push_back('"');
}

// Field values in text lines are written bare when they cannot be mistaken
// for anything else, quoted (JSON escaping) otherwise.
bool BareTextValue(std::string_view v) {
  if (v.empty()) return false;
  return std::all_of(v.begin(), v.end(), [](unsigned char c) {
    return std::isalnum(c) != 0 || c == '.' || c == '_' || c == '-' || c == ':' || c == '/' || c == '@' || c == '+' ||
           c == ',' || c == '%';
  });
}

bool Reserved(std::string_view key) {
  return key == "time" || key == "level" || key == "pid" || key == "logger" || key == "request_id" || key == "msg";
}

void AppendTime(std::string& out, std::chrono::system_clock::time_point t) {
  const auto since = t.time_since_epoch();
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(since);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(since - secs).count();
  const std::time_t tt = static_cast<std::time_t>(secs.count());
  std::tm tm{};
  ::gmtime_r(&tt, &tm);
  // Always UTC; the offset is written out so that readers need not assume it.
  fmt::format_to(std::back_inserter(out), "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}+00:00", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
}

void Emit(Level level, std::string_view category, std::string_view message, const Fields* fields) {
  SinkHolder& h = Holder();
  try {
    Sink sink;
    LineSink line_sink;
    {
      std::lock_guard<std::mutex> lock(h.mu);
      sink = h.sink;
      line_sink = h.line_sink;
    }
    if (sink) {
      sink(level, category, message);
      return;
    }
    Record r;
    r.time = std::chrono::system_clock::now();
    r.level = level;
    r.category = category;
    r.message = message;
    r.request_id = t_request_id;
    r.pid = static_cast<long>(::getpid());
    r.fields = fields;
    const std::string line = FormatLine(GetFormat(), r);
    if (line_sink) {
      line_sink(level, line);
    } else {
      h.stderr_logger->log(spdlog::level::info, "{}", line);
    }
  } catch (...) {
    // A failing sink must never take the caller down.
  }
}

}  // namespace

Field::Field(std::string_view key, double value) : key_(key), kind_(Kind::kNumber) {
  if (std::isfinite(value)) {
    text_ = fmt::format("{}", value);
  } else {
    text_ = std::isnan(value) ? "nan" : (value > 0 ? "inf" : "-inf");
  }
}

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

Format GetFormat() { return g_format.load(std::memory_order_relaxed); }
void SetFormat(Format format) { g_format.store(format, std::memory_order_relaxed); }

StatusOr<Format> ParseFormat(std::string_view name) {
  std::string s(name);
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  if (s == "text") return Format::kText;
  if (s == "json") return Format::kJson;
  return InvalidArgumentError("unknown log format " + Quote(name) + " (expected text or json)");
}

std::string_view FormatName(Format format) { return format == Format::kJson ? "json" : "text"; }

ScopedRequestId::ScopedRequestId(std::string_view request_id) {
  std::string next(request_id);  // copied first: `request_id` may view the current id
  previous_ = std::move(t_request_id);
  t_request_id = std::move(next);
}
ScopedRequestId::~ScopedRequestId() { t_request_id = std::move(previous_); }

std::string_view CurrentRequestId() { return t_request_id; }

std::string FormatLine(Format format, const Record& r) {
  std::string out;
  out.reserve(96 + r.message.size());
  if (format == Format::kJson) {
    out += "{\"time\":\"";
    AppendTime(out, r.time);
    out += "\",\"level\":\"";
    out += LevelName(r.level);
    out += "\",\"pid\":";
    out += std::to_string(r.pid);
    out += ",\"logger\":";
    AppendJsonString(out, r.category);
    if (!r.request_id.empty()) {
      out += ",\"request_id\":";
      AppendJsonString(out, r.request_id);
    }
    out += ",\"msg\":";
    AppendJsonString(out, r.message);
    if (r.fields != nullptr) {
      for (const Field& f : *r.fields) {
        out.push_back(',');
        AppendJsonString(out, Reserved(f.key()) ? f.key() + "_" : f.key());
        out.push_back(':');
        if (f.kind() == Field::Kind::kString) {
          AppendJsonString(out, f.text());
        } else if (f.kind() == Field::Kind::kNumber && (f.text() == "nan" || f.text() == "inf" || f.text() == "-inf")) {
          out += "null";
        } else {
          out += f.text();
        }
      }
    }
    out.push_back('}');
    return out;
  }
  AppendTime(out, r.time);
  out.push_back(' ');
  const std::string_view level = LevelName(r.level);
  out += level;
  if (level.size() < kTextLevelWidth) out.append(kTextLevelWidth - level.size(), ' ');
  out += " [";
  out += r.category;
  out += "] pid=";
  out += std::to_string(r.pid);
  if (!r.request_id.empty()) {
    out += " request_id=";
    out += BareTextValue(r.request_id) ? std::string(r.request_id) : Quote(r.request_id);
  }
  out.push_back(' ');
  out += r.message;
  if (r.fields != nullptr) {
    for (const Field& f : *r.fields) {
      out.push_back(' ');
      out += f.key();
      out.push_back('=');
      out += f.kind() != Field::Kind::kString || BareTextValue(f.text()) ? f.text() : Quote(f.text());
    }
  }
  return out;
}

void SetSink(Sink sink) {
  SinkHolder& h = Holder();
  std::lock_guard<std::mutex> lock(h.mu);
  h.sink = std::move(sink);
}

void SetLineSink(LineSink sink) {
  SinkHolder& h = Holder();
  std::lock_guard<std::mutex> lock(h.mu);
  h.line_sink = std::move(sink);
}

void Write(Level level, std::string_view message) { Emit(level, "clams", message, nullptr); }
void Write(Level level, std::string_view message, const Fields& fields) { Emit(level, "clams", message, &fields); }

void Access(std::string_view line) { Access(line, {}, Level::kInfo); }

void Access(std::string_view line, const Fields& fields, Level level) {
  if (AccessLogEnabled(level)) Emit(level, "access", line, fields.empty() ? nullptr : &fields);
}

bool AccessLogEnabled() { return g_access_enabled.load(std::memory_order_relaxed); }

bool AccessLogEnabled(Level level) {
  return AccessLogEnabled() && level != Level::kOff && (level >= Level::kInfo || Enabled(level));
}

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
