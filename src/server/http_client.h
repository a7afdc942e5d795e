// An HTTP/1.1 client connection (Boost.Beast inside http_client.cc only):
// the front uses one per worker, over a Unix socket (native workers) or TCP
// on loopback (external apps). The connection is kept alive and re-opened
// when the peer closed it between requests; a request sent while others
// wait for their answers is pipelined behind them.
#ifndef CLAMS_SRC_SERVER_HTTP_CLIENT_H_
#define CLAMS_SRC_SERVER_HTTP_CLIENT_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "clams/base/status.h"
#include "server/event_loop.h"
#include "server/http.h"

namespace clams::server {

struct Endpoint {
  std::string unix_socket;  ///< used when non-empty
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
  std::string ToString() const;
};

class HttpConnection {
 public:
  using Done = std::function<void(StatusOr<HttpResponse>)>;

  static std::unique_ptr<HttpConnection> Create(EventLoop& loop, Endpoint endpoint);
  virtual ~HttpConnection() = default;

  /// Sends `request` and calls `done` on the loop thread with the answer,
  /// or kUnavailable if the connection failed (refused, reset, closed before
  /// a full answer), kDeadlineExceeded after `timeout` (0 = none). A request
  /// sent while others wait is written at once behind them (HTTP/1.1
  /// pipelining): answers come in the order sent, its `timeout` runs from
  /// when the answer before its own is read, and a failure of the
  /// connection fails every request on it. Send only to peers that read
  /// pipelined requests in order. The requests behind an answer with
  /// "Connection: close" were not processed (RFC 9112 section 9.6) and are
  /// sent again on a new connection. Loop thread only.
  virtual void Send(HttpRequest request, std::chrono::milliseconds timeout, Done done) = 0;
  /// Closes the socket; pending Sends complete with kCancelled, in order.
  virtual void Close() = 0;
};

/// A blocking request for tools and tests (own io_context, own thread).
StatusOr<HttpResponse> HttpRequestBlocking(const Endpoint& endpoint, HttpRequest request,
                                           std::chrono::milliseconds timeout);

}  // namespace clams::server

#endif  // CLAMS_SRC_SERVER_HTTP_CLIENT_H_
