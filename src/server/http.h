// Plain HTTP message types shared by the server, the client and the router,
// so that only http_server.cc and http_client.cc see Boost.Beast.
#ifndef CLAMS_SRC_SERVER_HTTP_H_
#define CLAMS_SRC_SERVER_HTTP_H_

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace clams::server {

using Headers = std::vector<std::pair<std::string, std::string>>;

/// Case-insensitive header lookup; empty if absent.
std::string_view FindHeader(const Headers& headers, std::string_view name);

struct HttpRequest {
  std::string method;  ///< "GET", "POST", ...
  std::string target;  ///< "/path?query"
  std::string path;    ///< "/path" (not decoded)
  std::string query;   ///< "query" (raw, without '?')
  Headers headers;
  std::string body;
  bool keep_alive = true;
  std::string remote;  ///< peer address, for the access log
};

struct HttpResponse {
  int status = 200;
  std::string content_type;
  Headers headers;  ///< extra headers
  std::string body;
};

/// Set when the client of a pending request goes away; callbacks run on the
/// loop thread. Thread-compatible (loop thread only).
class CancelSignal {
 public:
  bool cancelled() const { return cancelled_; }
  /// Registers `fn` (replacing an earlier one); runs it at once if already
  /// cancelled.
  void OnCancel(std::function<void()> fn) {
    if (cancelled_) {
      fn();
    } else {
      on_cancel_ = std::move(fn);
    }
  }
  void Clear() { on_cancel_ = nullptr; }
  void Cancel() {
    if (cancelled_) return;
    cancelled_ = true;
    if (on_cancel_) {
      auto fn = std::move(on_cancel_);
      on_cancel_ = nullptr;
      fn();
    }
  }

 private:
  bool cancelled_ = false;
  std::function<void()> on_cancel_;
};

/// "200 OK" style reason phrases.
std::string_view ReasonPhrase(int status);

}  // namespace clams::server

#endif  // CLAMS_SRC_SERVER_HTTP_H_
