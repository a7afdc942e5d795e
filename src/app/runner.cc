#include "clams/app/runner.h"

#include <cxxabi.h>
#include <sys/utsname.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <thread>
#include <typeinfo>

#include "app/json_scan.h"
#include "app/python_text.h"
#include "clams/base/log.h"
#include "clams/mmif/json.h"
#include "clams/mmif/validate.h"

namespace clams {
namespace {

using app_internal::SkipString;
using app_internal::SkipValue;
using app_internal::SkipWs;

constexpr std::string_view kJsonContentType = "application/json";
constexpr std::string_view kTextContentType = "text/plain; charset=utf-8";
constexpr int kHttpOk = 200;
constexpr int kHttpBadRequest = 400;
constexpr int kHttpInternalError = 500;
// Arena size for a parsed request: the tree takes about twice the JSON text.
constexpr std::size_t kArenaBytesPerBodyByte = 2;

thread_local std::vector<std::string>* t_warnings = nullptr;

// Points clams::Warn() at a run's warning list for the scope's lifetime.
class WarningScope {
 public:
  explicit WarningScope(std::vector<std::string>* sink) : saved_(t_warnings) { t_warnings = sink; }
  ~WarningScope() { t_warnings = saved_; }
  WarningScope(const WarningScope&) = delete;
  WarningScope& operator=(const WarningScope&) = delete;

 private:
  std::vector<std::string>* saved_;
};

std::string Demangle(const char* name) {
  int status = 0;
  char* out = abi::__cxa_demangle(name, nullptr, nullptr, &status);
  std::string result = (status == 0 && out != nullptr) ? out : name;
  std::free(out);
  return result;
}

AnnotateOutcome BadInput(std::string_view reason) {
  AnnotateOutcome out;
  out.http_status = kHttpBadRequest;
  out.content_type = std::string(kTextContentType);
  out.body = std::string(kInvalidInputPrefix);
  out.body += reason;
  out.failure = FailureKind::kBadInput;
  out.error = std::string(reason);
  return out;
}

// Named view metadata keys in the order mmif-python writes them; any other
// key ("extras", e.g. appTags, appProfiling) is written before them.
constexpr std::array<std::string_view, 8> kNamedViewKeys = {
    "document", "timestamp", "app", "contains", "parameters", "appConfiguration", "error", "warnings"};

bool IsNamedViewKey(std::string_view key) {
  return std::find(kNamedViewKeys.begin(), kNamedViewKeys.end(), key) != kNamedViewKeys.end();
}

// Rewrites a view's metadata in mmif-python's key order: appTags,
// appProfiling, other extras, then the named keys.
void ReorderViewMetadata(json::object& md) {
  json::object out(md.storage());
  out.reserve(md.size());
  for (std::string_view first : {std::string_view("appTags"), std::string_view("appProfiling")}) {
    if (auto* v = md.if_contains(first)) out[first] = std::move(*v);
  }
  for (auto& kv : md) {
    if (kv.key() != "appTags" && kv.key() != "appProfiling" && !IsNamedViewKey(kv.key())) {
      out[kv.key()] = std::move(kv.value());
    }
  }
  for (std::string_view key : kNamedViewKeys) {
    if (auto* v = md.if_contains(key)) out[key] = std::move(*v);
  }
  md = std::move(out);
}

json::object RecordedParameters(const AppMetadata& metadata, const RawParams& raw) {
  json::object out;
  for (const auto& entry : raw.entries()) out[entry.first] = RecordedParameterValue(metadata, entry);
  return out;
}

// Signs `view` the way the Python SDK's sign_view + annotate do.
void SignView(mmif::View view, const AppMetadata& metadata, const RawParams& raw,
              const Params* params, std::string_view timestamp, const json::object* profiling) {
  view.SetApp(metadata.identifier);
  view.SetTimestamp(timestamp);
  json::object& md = view.mutable_metadata();
  if (!metadata.app_tags.empty()) {
    md["appTags"] = json::array(metadata.app_tags.begin(), metadata.app_tags.end());
  }
  if (profiling != nullptr && !profiling->empty()) md["appProfiling"] = *profiling;
  if (!raw.empty()) md["parameters"] = RecordedParameters(metadata, raw);
  if (params != nullptr) md["appConfiguration"] = params->values();
  ReorderViewMetadata(md);
}

AnnotateOutcome ErrorViewOn(mmif::Mmif& doc, const AppMetadata& metadata, const RawParams& raw,
                            const Params* params, int http_status, std::string_view message,
                            FailureKind kind) {
  mmif::View view = doc.NewView();
  view.SetError(message);
  SignView(view, metadata, raw, params, mmif::NowTimestamp(), nullptr);
  AnnotateOutcome out;
  out.http_status = http_status;
  out.content_type = std::string(kJsonContentType);
  // Error views are always pretty-printed, as in the Python SDK.
  out.body = doc.Serialize({.pretty = true});
  out.failure = kind;
  out.error = std::string(message);
  out.new_view_ids.emplace_back(view.id());
  return out;
}

// Removes the views from index `keep` on (a failed app's partial output).
void TruncateViews(mmif::Mmif& doc, std::size_t keep) {
  if (doc.view_count() <= keep) return;
  json::array& views = doc.mutable_json().get_object()["views"].get_array();
  views.erase(views.begin() + static_cast<std::ptrdiff_t>(keep), views.end());
  doc.Reindex();
}

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

}  // namespace

void Warn(std::string message) {
  if (t_warnings != nullptr) {
    t_warnings->push_back(std::move(message));
  } else {
    CLAMS_LOG(kWarning, "app warning outside a request: {}", message);
  }
}

std::string FormatRunningTime(std::chrono::microseconds elapsed) {
  using std::chrono::duration_cast;
  constexpr std::int64_t kMicrosPerSecond = 1000000;
  constexpr std::int64_t kSecondsPerDay = 86400;
  std::int64_t us = std::max<std::int64_t>(0, elapsed.count());
  std::int64_t total_seconds = us / kMicrosPerSecond;
  std::int64_t micros = us % kMicrosPerSecond;
  std::int64_t days = total_seconds / kSecondsPerDay;
  std::int64_t rem = total_seconds % kSecondsPerDay;
  std::string out;
  if (days > 0) out = fmt::format("{} day{}, ", days, days == 1 ? "" : "s");
  out += fmt::format("{}:{:02}:{:02}", rem / 3600, (rem / 60) % 60, rem % 60);
  if (micros != 0) out += fmt::format(".{:06}", micros);
  return out;
}

std::string HostCpuDescription() {
  struct utsname u {};
  std::string machine = ::uname(&u) == 0 ? u.machine : "unknown";
  return fmt::format("{}, {} cores", machine, std::thread::hardware_concurrency());
}

std::uint64_t ParseTriedToAllocate(std::string_view text) {
  constexpr std::string_view kNeedle = "Tried to allocate ";
  const auto at = text.find(kNeedle);
  if (at == std::string_view::npos) return 0;
  std::string_view rest = text.substr(at + kNeedle.size());
  std::size_t i = 0;
  while (i < rest.size() && (std::isdigit(static_cast<unsigned char>(rest[i])) != 0 || rest[i] == '.')) ++i;
  if (i == 0) return 0;
  const std::string number(rest.substr(0, i));
  char* end = nullptr;
  const double value = std::strtod(number.c_str(), &end);
  if (end != number.c_str() + number.size() || !(value >= 0) || !std::isfinite(value)) return 0;
  while (i < rest.size() && rest[i] == ' ') ++i;
  std::size_t j = i;
  while (j < rest.size() && std::isalpha(static_cast<unsigned char>(rest[j])) != 0) ++j;
  const std::string unit = Lower(rest.substr(i, j - i));
  double scale = 0;
  if (unit == "b" || unit == "bytes") scale = 1;
  if (unit == "kib" || unit == "kb") scale = 1024.0;
  if (unit == "mib" || unit == "mb") scale = 1024.0 * 1024;
  if (unit == "gib" || unit == "gb") scale = 1024.0 * 1024 * 1024;
  if (unit == "tib" || unit == "tb") scale = 1024.0 * 1024 * 1024 * 1024;
  const double bytes = value * scale;
  // Anything beyond 2^63 is not a real allocation.
  constexpr double kMaxBytes = 9.2e18;
  if (!(bytes > 0) || bytes > kMaxBytes) return 0;
  return static_cast<std::uint64_t>(bytes);
}

StatusOr<EnvelopeScan> ScanEnvelope(std::string_view body) {
  EnvelopeScan scan;
  std::size_t i = SkipWs(body, 0);
  if (i >= body.size() || body[i] != '{') return scan;  // not an object: never an envelope
  scan.is_object = true;
  i = SkipWs(body, i + 1);
  if (i < body.size() && body[i] == '}') return scan;
  while (i < body.size()) {
    if (body[i] != '"') return InvalidArgumentError("malformed JSON: expected a key");
    std::size_t key_end = SkipString(body, i);
    if (key_end == std::string_view::npos) return InvalidArgumentError("malformed JSON: unterminated key");
    std::string_view key = body.substr(i + 1, key_end - i - 2);
    // A key written with escapes ("param\u0065ters") is the same key to a
    // JSON parser, so it is decoded before the comparison.
    std::string decoded;
    if (key.find('\\') != std::string_view::npos) {
      auto parsed = mmif::ParseJson(body.substr(i, key_end - i));
      if (!parsed.ok() || !parsed->is_string()) return InvalidArgumentError("malformed JSON: bad key");
      decoded = std::string(parsed->get_string());
      key = decoded;
    }
    i = SkipWs(body, key_end);
    if (i >= body.size() || body[i] != ':') return InvalidArgumentError("malformed JSON: expected ':'");
    std::size_t value_start = SkipWs(body, i + 1);
    std::size_t value_end = SkipValue(body, value_start);
    if (value_end == std::string_view::npos) return InvalidArgumentError("malformed JSON: truncated value");
    if (key == "parameters") {
      scan.has_parameters = true;
      scan.parameters_text = body.substr(value_start, value_end - value_start);
    } else if (key == "mmif") {
      scan.has_mmif = true;
    }
    i = SkipWs(body, value_end);
    if (i < body.size() && body[i] == ',') {
      i = SkipWs(body, i + 1);
      continue;
    }
    break;
  }
  return scan;
}

AppRunner::AppRunner(App& app, AppMetadata metadata, Options options)
    : app_(app), metadata_(std::move(metadata)), options_(std::move(options)) {
  if (options_.metadata_json.empty()) {
    metadata_compact_ = metadata_.Serialize(false);
    metadata_pretty_ = metadata_.Serialize(true);
  } else {
    metadata_compact_ = options_.metadata_json;
    auto parsed = mmif::ParseJson(options_.metadata_json);
    metadata_pretty_ = parsed.ok() ? mmif::WriteJson(*parsed, {.indent = 2}) : options_.metadata_json;
  }
  if (options_.cpu_description.empty()) options_.cpu_description = HostCpuDescription();
}

StatusOr<std::unique_ptr<AppRunner>> AppRunner::Create(App& app, Options options) {
  AppMetadata metadata;
  try {
    metadata = app.Metadata();
  } catch (const std::exception& e) {
    return InvalidArgumentError(std::string("App::Metadata() threw: ") + e.what());
  }
  if (metadata.app_version.empty()) metadata.app_version = options.default_app_version;
  CLAMS_RETURN_IF_ERROR(metadata.Finalize());
  return std::unique_ptr<AppRunner>(new AppRunner(app, std::move(metadata), std::move(options)));
}

StatusOr<RequestParams> AppRunner::PrepareParams(std::string_view body, const RawParams& query) const {
  RequestParams out;
  CLAMS_ASSIGN_OR_RETURN(EnvelopeScan scan, ScanEnvelope(body));
  if (scan.has_parameters) {
    CLAMS_ASSIGN_OR_RETURN(json::value parameters, mmif::ParseJson(scan.parameters_text));
    CLAMS_ASSIGN_OR_RETURN(out.raw, RawParams::FromEnvelope(parameters));
    if (!scan.has_mmif) return InvalidArgumentError("Envelope is missing required \"mmif\" key");
  }
  out.raw.MergeOverride(query);
  auto refined = RefineParams(metadata_, out.raw);
  if (refined.ok()) {
    out.params = std::move(refined).value();
  } else {
    out.refine_status = refined.status();
  }
  return out;
}

AnnotateOutcome AppRunner::ParameterErrorAnswer(std::string_view body, const RawParams& raw,
                                                const Status& refine_status) const {
  return ErrorViewAnswer(body, raw, kHttpBadRequest, refine_status.message(), FailureKind::kBadParameters);
}

AnnotateOutcome AppRunner::ErrorViewAnswer(std::string_view body, const RawParams& raw, int http_status,
                                           std::string_view message, FailureKind kind) const {
  auto tree = mmif::ParseJson(body);
  StatusOr<mmif::Mmif> doc = InvalidArgumentError("no body");
  if (tree.ok()) {
    json::value root = std::move(*tree);
    if (root.is_object() && root.get_object().contains("parameters") && root.get_object().contains("mmif")) {
      json::value inner = std::move(root.get_object()["mmif"]);
      root = std::move(inner);
    }
    doc = mmif::Mmif::FromJson(std::move(root));
  }
  if (!doc.ok()) {
    if (kind == FailureKind::kBadParameters) return BadInput(doc.status().message());
    doc = mmif::Mmif::New();
  }
  return ErrorViewOn(*doc, metadata_, raw, nullptr, http_status, message, kind);
}

AnnotateOutcome AppRunner::Run(std::string_view body, const RawParams& query, const RunHooks& hooks) {
  // 1. Envelope and MMIF, parsed into one arena for the whole document (the
  // Mmif keeps it alive): far fewer allocations than the default storage,
  // and its blocks come from the tree block cache, so their pages are
  // mapped already.
  auto tree = mmif::ParseJson(body, mmif::MakeTreeArena(body.size() * kArenaBytesPerBodyByte));
  if (!tree.ok()) return BadInput(tree.status().message());
  json::value root = std::move(*tree);
  RawParams raw;
  if (root.is_object() && root.get_object().contains("parameters")) {
    auto envelope = RawParams::FromEnvelope(root.get_object()["parameters"]);
    if (!envelope.ok()) return BadInput(envelope.status().message());
    if (!root.get_object().contains("mmif")) return BadInput("Envelope is missing required \"mmif\" key");
    raw = std::move(envelope).value();
    json::value inner = std::move(root.get_object()["mmif"]);
    root = std::move(inner);
  }
  raw.MergeOverride(query);
  auto parsed = mmif::Mmif::FromJson(std::move(root));
  if (!parsed.ok()) return BadInput(parsed.status().message());
  return RunDocument(std::move(parsed).value(), raw, hooks);
}

AnnotateOutcome AppRunner::RunPrepared(std::string_view mmif_text, const RawParams& raw, const RunHooks& hooks) {
  auto tree = mmif::ParseJson(mmif_text, mmif::MakeTreeArena(mmif_text.size() * kArenaBytesPerBodyByte));
  if (!tree.ok()) return BadInput(tree.status().message());
  auto parsed = mmif::Mmif::FromJson(std::move(*tree));
  if (!parsed.ok()) return BadInput(parsed.status().message());
  return RunDocument(std::move(parsed).value(), raw, hooks);
}

AnnotateOutcome AppRunner::RunDocument(mmif::Mmif doc, const RawParams& raw, const RunHooks& hooks) {
  // 2. Parameters.
  auto refined = RefineParams(metadata_, raw);
  if (!refined.ok()) {
    return ErrorViewOn(doc, metadata_, raw, nullptr, kHttpBadRequest, refined.status().message(),
                       FailureKind::kBadParameters);
  }
  const Params& params = *refined;
  std::vector<std::string> warnings;
  for (const auto& name : params.undeclared()) {
    warnings.push_back("An undefined parameter \"" + name + "\" (value: \"" +
                       PythonListRepr(*raw.Find(name)) + "\") is passed");
  }
  for (const auto& w : params.refine_warnings()) warnings.push_back(w);
  CLAMS_LOG(kDebug, "Refined parameters: {}", mmif::WriteJson(params.values()));

  // 3. The app.
  const std::size_t views_before = doc.view_count();
  if (hooks.before_annotate) hooks.before_annotate(params);
  const auto t0 = std::chrono::steady_clock::now();
  Status status;
  std::vector<std::string> app_warnings;
  {
    WarningScope scope(&app_warnings);
    std::unique_lock<std::mutex> lock(app_mutex_, std::defer_lock);
    if (!app_.thread_safe()) lock.lock();
    try {
      status = app_.Annotate(doc, params);
    } catch (const std::exception& e) {
      status = UnknownError(Demangle(typeid(e).name()) + ": " + e.what());
    } catch (...) {
      status = UnknownError("unknown exception from the app");
    }
  }
  if (!status.ok()) {
    // Only the app's typed signal counts as running out of memory; words in
    // a message (which may quote the input) never do.
    const bool oom = status.code() == StatusCode::kResourceExhausted;
    std::string message = status.code() == StatusCode::kUnknown ? status.message() : status.ToString();
    CLAMS_LOG(kError, "Error in annotation: {}", message);
    TruncateViews(doc, views_before);
    AnnotateOutcome failed = ErrorViewOn(doc, metadata_, raw, &params, kHttpInternalError, message,
                                         oom ? FailureKind::kAppOom : FailureKind::kAppError);
    if (oom) failed.oom_tried_bytes = ParseTriedToAllocate(status.message());
    return failed;
  }
  warnings.insert(warnings.end(), std::make_move_iterator(app_warnings.begin()),
                  std::make_move_iterator(app_warnings.end()));
  if (!warnings.empty()) doc.NewView().SetWarnings(warnings);

  // 4. Sign the new views with one timestamp.
  const std::string run_id = mmif::NowTimestamp();
  const auto elapsed = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0);
  json::object profiling;
  if (params.GetBool("runningTime")) profiling["runningTime"] = FormatRunningTime(elapsed);
  const bool hw_fetch = params.GetBool("hwFetch");
  if (hw_fetch) {
    json::object hardware;
    hardware["cpu"] = options_.cpu_description;
    hardware["cuda"] = hooks.cuda_hardware ? hooks.cuda_hardware() : json::array();
    profiling["hardware"] = std::move(hardware);
  }
  AnnotateOutcome out;
  out.hw_fetch = hw_fetch;
  for (std::size_t i = views_before; i < doc.view_count(); ++i) {
    mmif::View view = doc.view(i);
    if (!view.app().empty() && view.app() != metadata_.identifier) continue;
    SignView(view, metadata_, raw, &params, run_id, &profiling);
    out.new_view_ids.emplace_back(view.id());
  }

  // 5. Check what the app produced, then answer.
  if (options_.validate_output) {
    // Only errors decide here, so the duplicate-id and reference checks
    // (warnings, and an id index of the whole output) are left out.
    mmif::ValidationReport report = mmif::Validate(doc.json(), {.references = false});
    if (!report.ok()) {
      std::string message = "the app produced invalid MMIF: " + report.errors.front().ToString();
      CLAMS_LOG(kError, "{}", message);
      TruncateViews(doc, views_before);
      return ErrorViewOn(doc, metadata_, raw, &params, kHttpInternalError, message, FailureKind::kAppError);
    }
  }
  out.http_status = kHttpOk;
  out.content_type = std::string(kJsonContentType);
  out.body = doc.Serialize({.pretty = params.GetBool("pretty")});
  return out;
}

}  // namespace clams
