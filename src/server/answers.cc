#include "server/answers.h"

#include <string>

namespace clams::server {

int HttpStatusFor(const Status& status) {
  switch (status.code()) {
    case StatusCode::kOk: return 200;
    case StatusCode::kInvalidArgument: return 400;
    case StatusCode::kNotFound: return 404;
    case StatusCode::kOutOfRange: return 422;
    case StatusCode::kResourceExhausted: return 503;
    case StatusCode::kUnavailable: return 503;
    case StatusCode::kDeadlineExceeded: return 504;
    case StatusCode::kCancelled: return 499;
    case StatusCode::kUnimplemented: return 501;
    default: return 500;
  }
}

HttpResponse FailureAnswer(const AppRunner& runner, const RequestFailure& failure, std::string_view mmif_text,
                           const RawParams& raw) {
  HttpResponse r;
  r.status = HttpStatusFor(failure.status);
  if (failure.input_unreadable) {
    r.content_type = "text/plain; charset=utf-8";
    r.body = std::string(kInvalidInputPrefix) + failure.status.message();
  } else {
    const bool bad_parameters = failure.status.code() == StatusCode::kInvalidArgument;
    const std::string_view on = bad_parameters || mmif_text.size() <= kEchoLimitBytes ? mmif_text : std::string_view();
    AnnotateOutcome o =
        runner.ErrorViewAnswer(on, raw, r.status, failure.status.message(),
                               bad_parameters ? FailureKind::kBadParameters : FailureKind::kAppError);
    r.status = o.http_status;
    r.content_type = std::move(o.content_type);
    r.body = std::move(o.body);
  }
  if (failure.retry_after_seconds > 0) r.headers.emplace_back("Retry-After", std::to_string(failure.retry_after_seconds));
  return r;
}

}  // namespace clams::server
