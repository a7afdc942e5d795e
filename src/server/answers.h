// The one mapping from a request's Status to its HTTP status, and the
// answers the front builds itself (refusals, failures without a worker's
// answer). Loop thread only.
//
//   kInvalidArgument   400  bad input (text/plain) or bad parameters (error view)
//   kNotFound          404
//   kOutOfRange        422  no device could ever hold what the request needs
//   kResourceExhausted 503  queue full (count or bytes), with Retry-After
//   kUnavailable       503  draining, waited too long, ran out of GPU memory, retry
//   kDeadlineExceeded  504  ran past --request-timeout
//   kCancelled         499  the client went away (nobody reads it)
//   kUnimplemented     501
//   everything else    500
#ifndef CLAMS_SRC_SERVER_ANSWERS_H_
#define CLAMS_SRC_SERVER_ANSWERS_H_

#include <cstddef>
#include <string_view>

#include "clams/app/runner.h"
#include "clams/base/status.h"
#include "server/http.h"
#include "server/job.h"

namespace clams::server {

/// Largest input MMIF a front-built error view is added to; larger inputs
/// get an error view on a fresh MMIF, so a refusal never costs a parse and
/// a copy of a large body.
inline constexpr std::size_t kEchoLimitBytes = 64 * 1024;

/// The HTTP status for a request that ended with `status` (ok: 200).
int HttpStatusFor(const Status& status);

/// The answer to `failure` for a request whose MMIF text is `mmif_text`
/// (may be empty or unreadable) and whose decoded parameters are `raw`.
/// Bad input: 400 text/plain. Otherwise an error view saying the status's
/// message, on the input (when it is at most kEchoLimitBytes, or always for
/// bad parameters, as the Python SDK does) or on a fresh MMIF; Retry-After
/// when failure.retry_after_seconds > 0.
HttpResponse FailureAnswer(const AppRunner& runner, const RequestFailure& failure, std::string_view mmif_text,
                           const RawParams& raw);

}  // namespace clams::server

#endif  // CLAMS_SRC_SERVER_ANSWERS_H_
