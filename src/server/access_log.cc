#include "server/access_log.h"

#include <chrono>
#include <cmath>
#include <optional>
#include <string>

namespace clams::server {

log::Level AccessLevel(std::string_view path) {
  for (std::string_view probe : {"/health", "/ready", "/metrics", "/status", "/status.json"}) {
    if (path == probe) return log::Level::kDebug;
  }
  return log::Level::kInfo;
}

HttpServer::Respond WithAccessLog(const HttpRequest& request, log::Level level, std::string request_id,
                                  HttpServer::Respond respond) {
  return [start = std::chrono::steady_clock::now(), remote = request.remote, method = request.method,
          target = request.target, request_id = std::move(request_id), level,
          inner = std::move(respond)](HttpResponse response) {
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    {
      std::optional<log::ScopedRequestId> scope;
      if (!request_id.empty()) scope.emplace(request_id);
      const std::string line = fmt::format("{} {} {} {} {:.1f}ms", remote, log::Quote(method + " " + target),
                                           response.status, response.body.size(), ms);
      if (log::GetFormat() == log::Format::kJson) {
        log::Access(line,
                    {{"remote", remote},
                     {"method", method},
                     {"target", target},
                     {"status", response.status},
                     {"bytes", response.body.size()},
                     {"duration_ms", std::round(ms * 10) / 10}},
                    level);
      } else {
        log::Access(line, {}, level);
      }
    }
    inner(std::move(response));
  };
}

}  // namespace clams::server
