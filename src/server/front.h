// The router of the front: maps HTTP requests onto the metadata, the
// scheduler, health, readiness and metrics, and writes the access log.
// Loop thread only.
#ifndef CLAMS_SRC_SERVER_FRONT_H_
#define CLAMS_SRC_SERVER_FRONT_H_

#include <memory>

#include "clams/app/runner.h"
#include "server/http.h"
#include "server/http_server.h"
#include "server/metrics.h"
#include "server/scheduler.h"

namespace clams::server {

/// A request id a client may choose: 1 to 128 characters of
/// [A-Za-z0-9._:-] (anything else is replaced by a generated one).
bool IsValidRequestId(std::string_view id);
/// A fresh request id: 16 hex digits.
std::string NewRequestId();

class Front {
 public:
  Front(AppRunner& runner, Scheduler& scheduler, Metrics& metrics);

  /// The HttpServer handler.
  void Handle(HttpRequest request, HttpServer::Respond respond, std::shared_ptr<CancelSignal> cancel);

 private:
  HttpResponse Metadata(const HttpRequest& request);

  AppRunner& runner_;
  Scheduler& scheduler_;
  Metrics& metrics_;
};

/// Flask's 404 page (the Python SDK's answer for unknown paths).
extern const char kNotFoundHtml[];

}  // namespace clams::server

#endif  // CLAMS_SRC_SERVER_FRONT_H_
