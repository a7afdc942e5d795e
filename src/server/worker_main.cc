// The worker role of the production server: one process per worker, the
// App inside, one request at a time on a Unix socket from the front.
#include <signal.h>
#include <unistd.h>

#include <string>

#include "clams/base/log.h"
#include "server/event_loop.h"
#include "server/http_server.h"
#include "server/process_executor.h"

namespace clams::server {
namespace {

std::string_view FailureName(FailureKind kind) {
  switch (kind) {
    case FailureKind::kNone: return "";
    case FailureKind::kBadInput: return "bad-input";
    case FailureKind::kBadParameters: return "bad-parameters";
    case FailureKind::kAppError: return "app-error";
    case FailureKind::kAppOom: return "app-oom";
  }
  return "";
}

}  // namespace

int RunNativeWorker(AppRunner& runner, const std::string& socket_path, int ready_fd) {
  EventLoop loop;
  HttpServerOptions options;
  options.unix_socket = socket_path;
  // The front is trusted and enforces the client-facing limits; a worker
  // only needs to outlive long requests on its one connection.
  options.max_body_bytes = 0;
  options.header_timeout = std::chrono::hours(24 * 365);
  options.idle_timeout = std::chrono::hours(24 * 365);
  options.body_timeout = std::chrono::hours(24);
  options.write_timeout = std::chrono::hours(24);
  auto server = HttpServer::Start(
      loop, options, [&runner](HttpRequest request, HttpServer::Respond respond, std::shared_ptr<CancelSignal>) {
        HttpResponse response;
        if (request.method == "GET" && request.path == "/health") {
          response.content_type = "application/json";
          response.body = "{\"status\":\"ok\"}";
          return respond(std::move(response));
        }
        auto query = RawParams::FromQuery(request.query);
        if (!query.ok()) {
          response.status = 400;
          response.content_type = "text/plain; charset=utf-8";
          response.body = std::string(kInvalidInputPrefix) + query.status().message();
          response.headers.emplace_back(std::string(kFailureHeader), "bad-input");
          return respond(std::move(response));
        }
        AnnotateOutcome outcome = runner.Run(request.body, *query);
        response.status = outcome.http_status;
        response.content_type = std::move(outcome.content_type);
        response.body = std::move(outcome.body);
        if (outcome.failure != FailureKind::kNone) {
          response.headers.emplace_back(std::string(kFailureHeader), std::string(FailureName(outcome.failure)));
        }
        std::string views;
        for (const auto& v : outcome.new_view_ids) {
          if (!views.empty()) views += ",";
          views += v;
        }
        if (!views.empty()) response.headers.emplace_back(std::string(kNewViewsHeader), views);
        if (outcome.hw_fetch) response.headers.emplace_back(std::string(kHwFetchHeader), "1");
        respond(std::move(response));
      });
  if (!server.ok()) {
    CLAMS_LOG(kCritical, "worker cannot listen on {}: {}", socket_path, server.status().ToString());
    return 1;
  }
  // SIGTERM: finish the request being served (requests run on this thread,
  // so the handler runs between requests), then exit. SIGINT belongs to the
  // front, which drains.
  loop.OnSignal(SIGTERM, [&loop] { loop.Stop(); });
  ::signal(SIGINT, SIG_IGN);
  if (ready_fd >= 0) {
    const char token[] = "ready\n";
    if (::write(ready_fd, token, sizeof(token) - 1) < 0) {
      CLAMS_LOG(kError, "cannot tell the front that this worker is ready");
      return 1;
    }
    ::close(ready_fd);
  }
  loop.Run();
  return 0;
}

}  // namespace clams::server
