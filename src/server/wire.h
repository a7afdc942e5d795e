// The one wire format between the front and its workers (DESIGN.md §9).
// HTTP/1.1 over a private Unix socket (or loopback TCP for `{port}` apps).
//
// Front -> worker, every forwarded annotate request:
//   X-Request-Id: <id>                 the client's, or one the front made
//   traceparent: <as received>         when the client sent one
//   X-Clams-Vram-Grant: grant=<bytes>; total=<bytes>
//                                      when the front manages GPUs: what it has
//                                      admitted for the worker in total (held
//                                      memory + needs of its running requests
//                                      + margin) and the device's total memory
//   body                               the MMIF document only: an envelope is
//                                      unwrapped by the front
//   native workers: X-Clams-Params: [[name, [value, ...]], ...]
//                                      the parameters the front decoded (query
//                                      over envelope); the worker reads neither
//   external apps: the same parameters as the query string (repeated names
//                  for several values), which the Python SDK reads exactly
//                  like envelope parameters; front-only ones are left out.
//
// Worker -> front:
//   X-Clams-Failure: bad-input|bad-parameters|app-error|app-oom   (native)
//   X-Clams-New-Views: v_1,v_2                                    (native)
//   X-Clams-Hw-Fetch: 1                                           (native)
//   X-Clams-Oom: 1[; tried=<bytes>]   the request failed with a framework
//                                      out-of-memory error (any worker; the
//                                      Python adapter sets it)
// An external app without the adapter gives no header; its answer counts as
// an OOM only when its error view says so structurally (the exception class
// of the Python SDK's "<class '...'>: message" text), never from words
// elsewhere in a body.
#ifndef CLAMS_SRC_SERVER_WIRE_H_
#define CLAMS_SRC_SERVER_WIRE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "clams/app/params.h"
#include "clams/app/runner.h"
#include "clams/base/status.h"
#include "server/http.h"

namespace clams::server::wire {

inline constexpr std::string_view kRequestIdHeader = "X-Request-Id";
inline constexpr std::string_view kTraceparentHeader = "traceparent";
inline constexpr std::string_view kGrantHeader = "X-Clams-Vram-Grant";
inline constexpr std::string_view kParamsHeader = "X-Clams-Params";
inline constexpr std::string_view kFailureHeader = "X-Clams-Failure";
inline constexpr std::string_view kNewViewsHeader = "X-Clams-New-Views";
inline constexpr std::string_view kHwFetchHeader = "X-Clams-Hw-Fetch";
inline constexpr std::string_view kOomHeader = "X-Clams-Oom";

struct Grant {
  std::uint64_t grant_bytes = 0;
  std::uint64_t total_bytes = 0;
};

/// What the front sends a worker for one request.
struct Call {
  /// The request body as received (shared, never copied until it is sent).
  std::shared_ptr<const std::string> body;
  /// Where the MMIF document is inside `body`.
  std::size_t mmif_offset = 0;
  std::size_t mmif_length = 0;
  /// The parameters the front decoded and admitted.
  RawParams params;
  /// Names not forwarded to external apps (the front records them itself).
  std::vector<std::string> front_only;
  std::string request_id;
  std::string traceparent;
  std::optional<Grant> grant;

  std::string_view mmif() const {
    return body ? std::string_view(*body).substr(mmif_offset, mmif_length) : std::string_view();
  }
};

/// The request to a native worker (MMIF body, X-Clams-Params).
HttpRequest EncodeForNative(const Call& call);
/// The request to an external app (MMIF body, parameters as the query).
HttpRequest EncodeForExternal(const Call& call);

/// What a native worker received.
struct NativeCall {
  RawParams params;
  std::string request_id;
  std::string traceparent;
  std::optional<Grant> grant;
};
/// Decodes the headers of a native worker's request (the body is the MMIF).
/// kInvalidArgument if X-Clams-Params is missing or malformed.
StatusOr<NativeCall> DecodeNative(const HttpRequest& request);

/// A native worker's answer for `outcome`.
HttpResponse EncodeAnswer(AnnotateOutcome outcome);
/// The front's reading of a worker's answer. The status decides the class
/// of failure (2xx none, 4xx the input's, 5xx the app's); X-Clams-Failure
/// only refines it within that class. External apps: kAppOom only from
/// X-Clams-Oom or the error view's exception class (ExternalOomSignal).
AnnotateOutcome DecodeAnswer(HttpResponse response, bool external);

/// `[["name", ["v1", "v2"]], ...]`
std::string EncodeParams(const RawParams& params);
/// kInvalidArgument for anything but that shape.
StatusOr<RawParams> DecodeParams(std::string_view text);
/// `name=v1&name=v2&other=x` (percent-encoded), without `skip` names.
std::string EncodeQuery(const RawParams& params, const std::vector<std::string>& skip = {});
/// `grant=<bytes>; total=<bytes>`
std::string EncodeGrant(const Grant& grant);
std::optional<Grant> DecodeGrant(std::string_view text);

/// Whether an external app's 5xx answer reports running out of GPU memory:
/// the X-Clams-Oom header, or the last view's `error.message` starting with
/// a framework OOM exception class in the Python SDK's
/// "<class 'torch.OutOfMemoryError'>: ..." form (also torch.cuda's, a
/// RuntimeError whose message begins "CUDA out of memory" or "CUDA error:
/// out of memory", TensorFlow's ResourceExhaustedError). `tried_bytes` from
/// "Tried to allocate <n> <unit>" in that message or the header.
struct OomSignal {
  bool oom = false;
  std::uint64_t tried_bytes = 0;
};
OomSignal ExternalOomSignal(const HttpResponse& response);
/// The same test on an error message text alone (exposed for tests).
OomSignal OomSignalFromErrorMessage(std::string_view message);

}  // namespace clams::server::wire

#endif  // CLAMS_SRC_SERVER_WIRE_H_
