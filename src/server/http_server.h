// The HTTP/1.1 server of the front and of the worker processes (Boost.Beast
// inside http_server.cc only). Keep-alive, header/body/idle timeouts, a body
// size limit (413 before the body is read when Content-Length says so),
// "Expect: 100-continue", and detection of clients that leave while their
// request waits.
#ifndef CLAMS_SRC_SERVER_HTTP_SERVER_H_
#define CLAMS_SRC_SERVER_HTTP_SERVER_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "clams/base/status.h"
#include "server/event_loop.h"
#include "server/http.h"

namespace clams::server {

struct HttpServerOptions {
  std::string host = "0.0.0.0";
  std::uint16_t port = 5000;  ///< 0 picks a free port (see HttpServer::port())
  /// If set, listen on this Unix socket instead of TCP.
  std::string unix_socket;
  std::size_t max_body_bytes = 0;  ///< 0: no limit
  std::size_t max_header_bytes = 64 * 1024;
  std::chrono::seconds header_timeout{30};
  std::chrono::seconds body_timeout{300};
  std::chrono::seconds idle_timeout{75};
  std::chrono::seconds write_timeout{300};
};

class HttpServer {
 public:
  /// Sends the answer; call it exactly once, on the loop thread.
  using Respond = std::function<void(HttpResponse)>;
  /// Called on the loop thread for every complete request.
  using Handler = std::function<void(HttpRequest, Respond, std::shared_ptr<CancelSignal>)>;

  /// Binds and starts accepting. kUnavailable if the address cannot be bound.
  static StatusOr<std::unique_ptr<HttpServer>> Start(EventLoop& loop, const HttpServerOptions& options,
                                                     Handler handler);
  virtual ~HttpServer() = default;

  /// The bound TCP port.
  virtual std::uint16_t port() const = 0;
  /// Stops accepting new connections; open ones continue.
  virtual void StopAccepting() = 0;
  /// Open connections.
  virtual std::size_t connections() const = 0;
};

}  // namespace clams::server

#endif  // CLAMS_SRC_SERVER_HTTP_SERVER_H_
