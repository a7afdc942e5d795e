// clams/app/runner.h
//
// AppRunner runs the whole annotate pipeline of one request on an App, with
// the HTTP semantics of the CLAMS API but no HTTP: body and query in,
// status, content type and body out. The development server, the worker
// processes of the production server and the local batch command all use it.
//
// Pipeline: envelope unwrap -> parse and validate the MMIF -> merge query
// over envelope parameters -> refine -> App::Annotate -> warnings view ->
// sign the new views (one timestamp) -> validate the output -> serialize.
//
//   400 text/plain   "Invalid input data. See below for validation error.\n\n<reason>"
//                    (malformed JSON, non-UTF-8, invalid MMIF, bad envelope)
//   400 MMIF         error view for invalid parameter values
//   500 MMIF         error view for app failures (Status, exception, invalid output)
//   200 MMIF         success
//
// Thread safety: Run() may be called concurrently; calls into the App are
// serialized unless App::thread_safe().
#ifndef CLAMS_APP_RUNNER_H_
#define CLAMS_APP_RUNNER_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "clams/app/app.h"
#include "clams/app/metadata.h"
#include "clams/app/params.h"
#include "clams/base/status.h"
#include "clams/mmif/mmif.h"

namespace clams {

/// The fixed first line of every 400 text/plain answer (Python SDK text).
inline constexpr std::string_view kInvalidInputPrefix =
    "Invalid input data. See below for validation error.\n\n";

/// What went wrong, for status codes, metrics and the server's OOM feedback.
enum class FailureKind {
  kNone,
  kBadInput,       ///< 400 text/plain
  kBadParameters,  ///< 400 error view
  kAppError,       ///< 500 error view
  kAppOom,         ///< 500 error view; the app reported running out of (GPU) memory
};

/// The answer to one annotate request.
struct AnnotateOutcome {
  int http_status = 200;
  std::string content_type;
  std::string body;
  FailureKind failure = FailureKind::kNone;
  /// Short description of the failure, for logs.
  std::string error;
  /// Ids of the views this run added (signed app views and the warnings
  /// view), so a caller can add a hardware record to them.
  std::vector<std::string> new_view_ids;
  /// True when the request asked for hwFetch.
  bool hw_fetch = false;
  /// kAppOom: the allocation that failed, when the error said ("Tried to
  /// allocate 2.00 GiB"); 0 if unknown.
  std::uint64_t oom_tried_bytes = 0;
};

/// Optional callbacks into the serving layer.
struct RunHooks {
  /// Called after Annotate() when hwFetch is asked for; returns the
  /// `appProfiling.hardware.cuda` entries (see gpu::FormatCudaHardwareEntry).
  /// Unset: an empty list (a production front fills it in later).
  std::function<json::array()> cuda_hardware;
  /// Called with the refined parameters just before Annotate().
  std::function<void(const Params&)> before_annotate;
};

/// Top-level shape of a request body, found without parsing all of it.
struct EnvelopeScan {
  bool is_object = false;
  bool has_parameters = false;
  bool has_mmif = false;
  /// Text of the `parameters` value (when has_parameters).
  std::string_view parameters_text;
};

/// Scans the top-level keys of `body` (skipping nested values without
/// building them). kInvalidArgument if the structure is broken before the
/// keys could be read; deeper errors are left to the full parse.
StatusOr<EnvelopeScan> ScanEnvelope(std::string_view body);

/// Parameters of a request: query values merged over envelope values, then
/// refined. kInvalidArgument for a bad envelope `parameters` value (400
/// text/plain) -- refinement errors are returned in `refine_status`.
struct RequestParams {
  RawParams raw;
  Status refine_status;
  Params params;  ///< valid when refine_status is ok
};

class AppRunner {
 public:
  struct Options {
    /// Validate the output MMIF (an app bug becomes a 500 error view).
    bool validate_output = true;
    /// "<machine>, <n> cores" for appProfiling.hardware.cpu; empty: from
    /// the host.
    std::string cpu_description;
    /// Used when the app's metadata leaves app_version empty (the server
    /// passes ResolveAppVersion()'s answer); empty: "unresolvable".
    std::string default_app_version;
    /// GET / answers this text instead of the serialized metadata (an
    /// external app's own answer, passed through).
    std::string metadata_json;
  };

  /// Finalizes `app`'s metadata (kInvalidArgument/kAlreadyExists naming
  /// the bad field). `app` must outlive the runner.
  static StatusOr<std::unique_ptr<AppRunner>> Create(App& app, Options options);
  static StatusOr<std::unique_ptr<AppRunner>> Create(App& app) { return Create(app, Options{}); }

  App& app() { return app_; }
  const AppMetadata& metadata() const { return metadata_; }
  /// GET / body (cached).
  const std::string& MetadataJson(bool pretty) const {
    return pretty ? metadata_pretty_ : metadata_compact_;
  }

  /// Runs the pipeline for a POST/PUT body and its query parameters.
  AnnotateOutcome Run(std::string_view body, const RawParams& query, const RunHooks& hooks = {});

  /// Runs the pipeline on an MMIF document (never an envelope) with the
  /// parameters already decoded (query merged over envelope): what a worker
  /// process does with what the front admitted. Nothing is decoded twice.
  AnnotateOutcome RunPrepared(std::string_view mmif_text, const RawParams& raw, const RunHooks& hooks = {});

  /// The parameter stage only, for a front that schedules before a worker
  /// runs the request: envelope parameters (from ScanEnvelope) merged under
  /// the query, then refined.
  StatusOr<RequestParams> PrepareParams(std::string_view body, const RawParams& query) const;

  /// The 400 answer for parameters that failed refinement: an error view
  /// added to the request's MMIF (or 400 text/plain if the body is not a
  /// valid MMIF).
  AnnotateOutcome ParameterErrorAnswer(std::string_view body, const RawParams& raw,
                                       const Status& refine_status) const;

  /// An error view answer built on the request's MMIF, for failures decided
  /// outside the app (a crashed worker, a timeout, no memory): `status`
  /// and `message` become the HTTP status and error message. Falls back to
  /// a fresh MMIF if the body cannot be parsed.
  AnnotateOutcome ErrorViewAnswer(std::string_view body, const RawParams& raw, int http_status,
                                  std::string_view message, FailureKind kind) const;

 private:
  AppRunner(App& app, AppMetadata metadata, Options options);
  AnnotateOutcome RunDocument(mmif::Mmif doc, const RawParams& raw, const RunHooks& hooks);

  App& app_;
  AppMetadata metadata_;
  Options options_;
  std::string metadata_compact_;
  std::string metadata_pretty_;
  std::mutex app_mutex_;  // serializes Annotate() for apps that are not thread-safe
};

/// "H:MM:SS.ffffff" (Python's timedelta text; the fraction is left out when
/// it is zero, days are written as "N day(s), ").
std::string FormatRunningTime(std::chrono::microseconds elapsed);

/// "<machine>, <logical CPUs> cores" for this host (e.g. "x86_64, 2 cores").
std::string HostCpuDescription();

/// The size in "Tried to allocate <number> <unit>" (B, KiB, MiB, GiB, TiB,
/// and KB/MB/GB/TB read as binary units, as PyTorch prints them), the first
/// occurrence; 0 if absent or unreadable.
std::uint64_t ParseTriedToAllocate(std::string_view text);

}  // namespace clams

#endif  // CLAMS_APP_RUNNER_H_
