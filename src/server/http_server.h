// The HTTP/1.1 server of the front and of the worker processes (Boost.Beast
// inside http_server.cc only). Keep-alive and pipelining, header/body/idle
// timeouts, a body size limit (413 before the body is read when
// Content-Length says so), strict message framing (RFC 9112 §6), "Expect:
// 100-continue", detection of clients that leave while their request waits
// (a request is watched once it has waited 20 ms, so a client that leaves
// is noticed within about 40 ms; a quicker answer costs no watch),
// a drain that answers every request it reads, and an accept loop that
// survives running out of file descriptors.
//
// Answers the server gives on its own (text/plain, then the connection is
// closed):
//   400 "malformed HTTP request"           unparsable request line or headers
//   400 "malformed HTTP request body"      e.g. a bad chunk size
//   400 "bad Transfer-Encoding: ..."       see CheckFraming below
//   408 "request body read timed out"      the body did not arrive within body_timeout
//   413 "request body too large: ..."      over max_body_bytes
//   431 "request header too large"         over max_header_bytes
//   501 "unsupported transfer coding: ..." a coding other than chunked
//   503 "the server is shutting down"      a request read after Shutdown() (Retry-After: 1)
//
// Timeouts, per connection:
//   header_timeout  from accepting a connection to the end of its first
//                   request's headers, and from the first byte of every later
//                   request to the end of its headers;
//   body_timeout    from the end of the headers to the end of the body;
//   idle_timeout    from the end of an answer to the first byte of the next
//                   request;
//   write_timeout   for writing one answer.
#ifndef CLAMS_SRC_SERVER_HTTP_SERVER_H_
#define CLAMS_SRC_SERVER_HTTP_SERVER_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

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

  /// Draining begins (SIGTERM): requests are still read and handed to the
  /// handler, but every answer from now on carries `Connection: close`, and
  /// a connection waiting for its next request is closed cleanly once it has
  /// been quiet for kDrainIdleGrace (a request already on its way is still
  /// read and answered). Loop thread only.
  virtual void BeginDrain() = 0;
  /// The end of a drain, when nothing will handle requests any more: the
  /// handler is no longer called; every request still read (on an open
  /// connection, or on one waiting in the listen backlog, which is accepted
  /// now) is answered 503 "the server is shutting down" with `Connection:
  /// close`; then the listener is closed. `done` runs once, on the loop, when
  /// every connection has written its last answer and closed, or after
  /// `bound` (the rest are then closed). Loop thread only.
  virtual void Shutdown(std::chrono::milliseconds bound, std::function<void()> done) = 0;
};

/// How long a connection that waits for its next request stays open once
/// draining has begun: a request sent right after connecting, or right after
/// the previous answer, arrives within a round trip, so a connection quiet
/// for this long is idle and is closed (cleanly) rather than kept to the end.
inline constexpr std::chrono::milliseconds kDrainIdleGrace{500};

/// A status and text the server answers on its own before closing.
struct HttpRejection {
  int status = 0;
  std::string reason;
};

/// Checks the framing of a request's headers (RFC 9112 §6): `transfer_encoding`
/// is the comma-joined value of every Transfer-Encoding field ("" when there
/// is none). Returns nothing when the body length is well defined, else:
///   400 "bad Transfer-Encoding: the last transfer coding must be chunked (RFC 9112 section 6.3)"
///   400 "bad Transfer-Encoding: chunked is applied more than once"
///   400 "bad Transfer-Encoding: not allowed in an HTTP/1.0 request"
///   400 "bad Transfer-Encoding: not allowed together with Content-Length"
///   501 "unsupported transfer coding: only chunked is accepted, got \"gzip, chunked\""
std::optional<HttpRejection> CheckFraming(unsigned http_version, std::string_view transfer_encoding,
                                          bool has_content_length);

/// One request read by ParseHttpStream: the request, or the answer the
/// server gives instead (then nothing after it on that connection is read).
struct ParsedHttpRequest {
  std::optional<HttpRejection> rejection;
  HttpRequest request;
};

/// For tests and fuzzing: reads `wire` as the bytes arriving on one
/// connection, handed over in pieces of `piece_bytes` (at least 1), with the
/// parser settings and checks of a real connection (limits, framing), and
/// returns every request in order. Stops at the first rejection, or when the
/// bytes end (an incomplete last request is dropped, as a closed connection
/// would drop it). Timeouts do not apply.
std::vector<ParsedHttpRequest> ParseHttpStream(std::string_view wire, const HttpServerOptions& options,
                                               std::size_t piece_bytes);

}  // namespace clams::server

#endif  // CLAMS_SRC_SERVER_HTTP_SERVER_H_
