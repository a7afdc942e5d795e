// The front's access log: one line per answer, written when the answer goes
// out, through the same formatter as every other line (log::Access). Probe
// and polling endpoints (/health, /ready, /metrics, /status, /status.json)
// are logged at debug so that orchestrator probes and scrapes do not drown
// the requests; everything else at info.
//
// Text:  127.0.0.1 "POST /?pretty" 200 5123 41.7ms
// JSON:  {"time":...,"level":"info","pid":..,"logger":"access","request_id":"..","msg":"<the text line>",
//         "remote":"127.0.0.1","method":"POST","target":"/?pretty","status":200,"bytes":5123,"duration_ms":41.7}
#ifndef CLAMS_SRC_SERVER_ACCESS_LOG_H_
#define CLAMS_SRC_SERVER_ACCESS_LOG_H_

#include <string>
#include <string_view>

#include "clams/base/log.h"
#include "server/http.h"
#include "server/http_server.h"

namespace clams::server {

/// kDebug for probe and polling paths, kInfo otherwise.
log::Level AccessLevel(std::string_view path);

/// Wraps `respond` so that the answer is logged at `level` when it goes out,
/// with `request_id` (the id the front gave the request: the client's valid
/// X-Request-Id or a new one). Call only when log::AccessLogEnabled(level).
HttpServer::Respond WithAccessLog(const HttpRequest& request, log::Level level, std::string request_id,
                                  HttpServer::Respond respond);

}  // namespace clams::server

#endif  // CLAMS_SRC_SERVER_ACCESS_LOG_H_
