// The only client-side translation unit that includes Boost.Beast.
#include "server/http_client.h"

#include <sys/socket.h>

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
#include <algorithm>
#include <deque>
#include <optional>

#include "clams/base/log.h"
#include "server/asio_loop.h"

namespace clams::server {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using local = net::local::stream_protocol;

// The answer buffer kept by a connection across its requests. Beast reads at
// most the buffer's free capacity (at least 512 bytes) per call, so an empty
// buffer takes an answer in 512-byte reads, one system call and one trip
// through the event loop each (a 6 KB answer: 13 reads); with this much room
// it comes in one read, and the buffer grows beyond it for larger answers.
constexpr std::size_t kAnswerBufferBytes = 64 * 1024;

http::request<http::string_body> ToBeast(HttpRequest& request) {
  http::request<http::string_body> req;
  req.method_string(request.method);
  req.target(request.target.empty() ? "/" : request.target);
  req.version(11);
  for (auto& [name, value] : request.headers) req.set(name, value);
  req.keep_alive(true);
  req.body() = std::move(request.body);
  req.prepare_payload();
  return req;
}

HttpResponse FromBeast(http::response<http::string_body>& res) {
  HttpResponse out;
  out.status = static_cast<int>(res.result_int());
  for (const auto& field : res) {
    if (field.name() == http::field::content_type) {
      out.content_type = std::string(field.value());
    } else if (field.name() != http::field::content_length && field.name() != http::field::connection &&
               field.name() != http::field::server && field.name() != http::field::date &&
               field.name() != http::field::transfer_encoding) {
      out.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
    }
  }
  out.body = std::move(res.body());
  return out;
}

// The connection's state lives in a shared Core that every pending
// callback keeps alive, so destroying the HttpConnection while a request is
// in flight is safe.
//
// Requests sent while earlier ones wait for their answers are pipelined
// (RFC 9112 section 9.3): each is written at once, behind the others, and the
// answers are read in order. A request's timeout runs from when its answer is
// the one awaited. When the connection fails, every request on it fails
// with the same error; when the peer closes it after an answer, the
// requests behind that answer are sent again on a new one.
template <class Protocol>
class Core : public std::enable_shared_from_this<Core<Protocol>> {
 public:
  using Done = HttpConnection::Done;
  Core(net::io_context& io, Endpoint endpoint) : io_(io), endpoint_(std::move(endpoint)) {}

  void Send(HttpRequest request, std::chrono::milliseconds timeout, Done done) {
    auto p = std::make_shared<Pending>();
    p->done = std::move(done);
    p->request = ToBeast(request);
    p->timeout = timeout;
    p->behind = !pending_.empty();
    pending_.push_back(p);
    if (p->behind) {
      // The connection is open, or a failure is on its way to every request.
      if (!writing_) Write(p);
    } else if (!stream_ || !stream_->socket().is_open()) {
      Connect(p);
    } else {
      Write(p);
    }
  }

  // Closes the socket; pending requests complete with kCancelled unless
  // `silent` (the owner is going away and must not be called back).
  void Close(bool silent) {
    if (stream_) {
      beast::error_code ec;
      stream_->socket().shutdown(Protocol::socket::shutdown_both, ec);
      stream_->close();
    }
    if (silent) {
      pending_.clear();
      return;
    }
    FailAll(CancelledError("connection closed"));
  }

 private:
  struct Pending {
    Done done;
    http::request<http::string_body> request;
    std::optional<http::request_serializer<http::string_body>> serializer;
    std::optional<http::response_parser<http::string_body>> parser;
    std::chrono::milliseconds timeout{0};
    // The connect was started without waiting for it (see Connect): a
    // failure of the first write is the connect's.
    bool connecting = false;
    // Sent while earlier requests waited for their answers.
    bool behind = false;
    bool written = false;
  };

  bool IsPending(const std::shared_ptr<Pending>& p) const {
    return std::find(pending_.begin(), pending_.end(), p) != pending_.end();
  }

  void Arm(const std::shared_ptr<Pending>& p) {
    if (p->timeout.count() > 0) {
      stream_->expires_after(p->timeout);
    } else {
      stream_->expires_never();
    }
  }

  void Connect(const std::shared_ptr<Pending>& p) {
    ++epoch_;  // what the previous stream's operations complete with is stale
    stream_.emplace(io_);
    Arm(p);
    typename Protocol::endpoint ep;
    if constexpr (std::is_same_v<Protocol, local>) {
      ep = local::endpoint(endpoint_.unix_socket);
    } else {
      beast::error_code ec;
      auto address = net::ip::make_address(endpoint_.host, ec);
      if (ec) return FailAll(InvalidArgumentError("bad address " + endpoint_.host));
      ep = tcp::endpoint(address, endpoint_.port);
      // An external app (Werkzeug's HTTP/1.0 server, gunicorn's sync
      // workers) closes every connection, so this runs once per request. A
      // non-blocking connect on loopback has mostly finished when connect()
      // returns: write at once instead of waiting for the event loop to say
      // so (an epoll round trip and two more system calls). A write before
      // the handshake is done waits for the socket like any other write,
      // and a refused connection fails it.
      auto& socket = stream_->socket();
      socket.open(ep.protocol(), ec);
      if (!ec) socket.non_blocking(true, ec);
      if (!ec) socket.set_option(tcp::no_delay(true), ec);
      if (!ec && ::connect(socket.native_handle(), ep.data(), static_cast<socklen_t>(ep.size())) != 0 &&
          errno != EINPROGRESS) {
        ec = beast::error_code(errno, boost::system::system_category());
      }
      if (ec) return FailLater(p, "connect", ec);
      p->connecting = true;
      return Write(p);
    }
    writing_ = true;  // requests sent meanwhile wait for the connection
    stream_->async_connect(ep, [this, self = this->shared_from_this(), p, e = epoch_](beast::error_code ec) {
      if (e != epoch_ || !IsPending(p)) return;
      writing_ = false;
      if (ec) return FailAll(Failure("connect", ec));
      Write(p);
    });
  }

  // The request usually fits in the socket's send buffer: it is written on
  // the spot, and only what did not fit waits for the socket.
  void Write(const std::shared_ptr<Pending>& p) {
    // A request behind others gets its timeout when its answer is awaited
    // (Read); its write has none (the answer before it has its own).
    if (p->behind) {
      stream_->expires_never();
    } else {
      Arm(p);
    }
    p->serializer.emplace(p->request);
    beast::error_code ec;
    auto& socket = stream_->socket();
    if (!socket.non_blocking()) socket.non_blocking(true, ec);
    if (!ec) http::write(socket, *p->serializer, ec);
    if (ec && ec != net::error::would_block && ec != net::error::try_again) return FailLater(p, WriteStage(*p), ec);
    if (!ec) return Written(p, ec);
    writing_ = true;
    http::async_write(*stream_, *p->serializer,
                      [this, self = this->shared_from_this(), p, e = epoch_](beast::error_code wec, std::size_t) {
                        if (e != epoch_ || !IsPending(p)) return;
                        writing_ = false;
                        Written(p, wec);
                      });
  }

  // What a failed write is reported as: the connect's failure while the
  // connect was not waited for (see Connect), else the send's.
  static std::string_view WriteStage(const Pending& p) { return p.connecting ? "connect" : "send"; }

  // Failures found on the spot are reported from the event loop, as those of
  // the asynchronous operations are: a caller is never called back from
  // inside its own Send().
  void FailLater(const std::shared_ptr<Pending>& p, std::string_view stage, beast::error_code ec) {
    net::post(io_, [this, self = this->shared_from_this(), p, stage, ec, e = epoch_] {
      if (e == epoch_ && IsPending(p)) FailAll(Failure(stage, ec));
    });
  }

  void Written(const std::shared_ptr<Pending>& p, beast::error_code ec) {
    if (ec) return FailAll(Failure(WriteStage(*p), ec));
    p->connecting = false;
    p->written = true;
    p->serializer.reset();
    if (pending_.front() == p) Read(p);
    // The next request behind it, if one came meanwhile.
    auto it = std::find(pending_.begin(), pending_.end(), p);
    if (it != pending_.end() && ++it != pending_.end() && !(*it)->written && !writing_) Write(*it);
  }

  // Reads the answer of `p`, the first request on the connection.
  void Read(const std::shared_ptr<Pending>& p) {
    p->parser.emplace();
    p->parser->skip(p->request.method() == http::verb::head);  // no body follows a HEAD answer
    p->parser->body_limit(boost::none);
    p->parser->header_limit(1 << 20);
    if (!p->behind) {
      // A request sent alone starts from an empty buffer, as with a fresh
      // one: bytes an earlier answer left behind are never read as its own.
      // Behind another, what follows that answer is this one's.
      buffer_.consume(buffer_.size());
      if (buffer_.capacity() < kAnswerBufferBytes) buffer_.reserve(kAnswerBufferBytes);
    }
    if (p->behind) Arm(p);  // a request sent alone was armed when it was written
    http::async_read(*stream_, buffer_, *p->parser,
                     [this, self = this->shared_from_this(), p, e = epoch_](beast::error_code rec, std::size_t) {
                       if (e != epoch_ || pending_.empty() || pending_.front() != p) return;
                       if (rec) return FailAll(Failure("receive", rec));
                       auto res = p->parser->release();
                       pending_.pop_front();
                       if (!res.keep_alive()) {
                         // The whole answer is read: a close is all the peer
                         // needs to see.
                         stream_->close();
                         if (!pending_.empty()) Resend();
                       } else if (!pending_.empty() && pending_.front()->written) {
                         Read(pending_.front());
                       }
                       Finish(p, FromBeast(res));
                     });
  }

  // A peer that closes the connection after an answer has processed none
  // of the requests sent behind it (RFC 9112 section 9.6): they are sent
  // again, in order, on a new connection.
  void Resend() {
    for (auto& q : pending_) {
      q->behind = q != pending_.front();
      q->written = false;
      q->connecting = false;
      q->serializer.reset();
      q->parser.reset();
    }
    writing_ = false;
    Connect(pending_.front());
  }

  // What a failure of the connection is reported as (FailAll closes it).
  Status Failure(std::string_view stage, beast::error_code ec) const {
    if (ec == beast::error::timeout) {
      return DeadlineExceededError("no answer from " + endpoint_.ToString() + " in time");
    }
    return UnavailableError(std::string(stage) + " " + endpoint_.ToString() + ": " + ec.message());
  }

  // Every request on the connection ends with `status`, in order.
  void FailAll(const Status& status) {
    if (stream_) stream_->close();
    writing_ = false;
    auto all = std::move(pending_);
    pending_.clear();
    for (auto& q : all) Finish(q, status);
  }

  void Finish(const std::shared_ptr<Pending>& p, StatusOr<HttpResponse> result) {
    if (!p->done) return;
    Done done = std::move(p->done);
    p->done = nullptr;
    done(std::move(result));
  }

  net::io_context& io_;
  Endpoint endpoint_;
  std::optional<beast::basic_stream<Protocol>> stream_;
  std::deque<std::shared_ptr<Pending>> pending_;  // in the order sent
  std::uint64_t epoch_ = 0;                       // bumps with every new stream
  bool writing_ = false;                          // a connect or write waits for the socket
  beast::flat_buffer buffer_;
};

template <class Protocol>
class Connection : public HttpConnection {
 public:
  Connection(net::io_context& io, Endpoint endpoint)
      : core_(std::make_shared<Core<Protocol>>(io, std::move(endpoint))) {}
  ~Connection() override { core_->Close(/*silent=*/true); }
  void Send(HttpRequest request, std::chrono::milliseconds timeout, Done done) override {
    core_->Send(std::move(request), timeout, std::move(done));
  }
  void Close() override { core_->Close(/*silent=*/false); }

 private:
  std::shared_ptr<Core<Protocol>> core_;
};

}  // namespace

std::string Endpoint::ToString() const {
  if (!unix_socket.empty()) return "unix:" + unix_socket;
  return host + ":" + std::to_string(port);
}

std::unique_ptr<HttpConnection> HttpConnection::Create(EventLoop& loop, Endpoint endpoint) {
  if (!endpoint.unix_socket.empty()) {
    return std::make_unique<Connection<local>>(loop.impl().io, std::move(endpoint));
  }
  return std::make_unique<Connection<tcp>>(loop.impl().io, std::move(endpoint));
}

StatusOr<HttpResponse> HttpRequestBlocking(const Endpoint& endpoint, HttpRequest request,
                                           std::chrono::milliseconds timeout) {
  EventLoop loop;
  std::optional<StatusOr<HttpResponse>> result;
  auto conn = HttpConnection::Create(loop, endpoint);
  conn->Send(std::move(request), timeout, [&](StatusOr<HttpResponse> r) {
    result = std::move(r);
    loop.Stop();
  });
  loop.Run();
  if (!result) return InternalError("no result");
  return std::move(*result);
}

}  // namespace clams::server
