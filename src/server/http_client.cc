// The only client-side translation unit that includes Boost.Beast.
#include "server/http_client.h"

#include <sys/socket.h>

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
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
template <class Protocol>
class Core : public std::enable_shared_from_this<Core<Protocol>> {
 public:
  using Done = HttpConnection::Done;
  Core(net::io_context& io, Endpoint endpoint) : io_(io), endpoint_(std::move(endpoint)) {}

  void Send(HttpRequest request, std::chrono::milliseconds timeout, Done done) {
    state_ = std::make_shared<Pending>();
    state_->done = std::move(done);
    state_->request = ToBeast(request);
    state_->timeout = timeout;
    if (!stream_ || !stream_->socket().is_open()) {
      Connect(state_);
    } else {
      Write(state_);
    }
  }

  // Closes the socket; a pending request completes with kCancelled unless
  // `silent` (the owner is going away and must not be called back).
  void Close(bool silent) {
    if (stream_) {
      beast::error_code ec;
      stream_->socket().shutdown(Protocol::socket::shutdown_both, ec);
      stream_->close();
    }
    if (silent && state_) state_->done = nullptr;
    if (state_ && state_->done) Finish(state_, CancelledError("connection closed"));
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
  };

  void Arm(const std::shared_ptr<Pending>& p) {
    if (p->timeout.count() > 0) {
      stream_->expires_after(p->timeout);
    } else {
      stream_->expires_never();
    }
  }

  void Connect(const std::shared_ptr<Pending>& p) {
    stream_.emplace(io_);
    Arm(p);
    typename Protocol::endpoint ep;
    if constexpr (std::is_same_v<Protocol, local>) {
      ep = local::endpoint(endpoint_.unix_socket);
    } else {
      beast::error_code ec;
      auto address = net::ip::make_address(endpoint_.host, ec);
      if (ec) return Finish(p, InvalidArgumentError("bad address " + endpoint_.host));
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
    stream_->async_connect(ep, [this, self = this->shared_from_this(), p](beast::error_code ec) {
      if (p != state_) return;
      if (ec) return Finish(p, Failure("connect", ec));
      Write(p);
    });
  }

  // The request usually fits in the socket's send buffer: it is written on
  // the spot, and only what did not fit waits for the socket.
  void Write(const std::shared_ptr<Pending>& p) {
    Arm(p);
    p->serializer.emplace(p->request);
    beast::error_code ec;
    auto& socket = stream_->socket();
    if (!socket.non_blocking()) socket.non_blocking(true, ec);
    if (!ec) http::write(socket, *p->serializer, ec);
    if (ec && ec != net::error::would_block && ec != net::error::try_again) return FailLater(p, WriteStage(*p), ec);
    if (!ec) return Written(p, ec);
    http::async_write(*stream_, *p->serializer,
                      [this, self = this->shared_from_this(), p](beast::error_code wec, std::size_t) {
                        if (p != state_) return;
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
    net::post(io_, [this, self = this->shared_from_this(), p, stage, ec] {
      if (p == state_) Finish(p, Failure(stage, ec));
    });
  }

  void Written(const std::shared_ptr<Pending>& p, beast::error_code ec) {
    if (ec) return Finish(p, Failure(WriteStage(*p), ec));
    p->connecting = false;
    p->serializer.reset();
    p->parser.emplace();
    p->parser->skip(p->request.method() == http::verb::head);  // no body follows a HEAD answer
    p->parser->body_limit(boost::none);
    p->parser->header_limit(1 << 20);
    // Each request starts from an empty buffer, as with a fresh one: bytes
    // an earlier answer left behind are never read as this one's.
    buffer_.consume(buffer_.size());
    if (buffer_.capacity() < kAnswerBufferBytes) buffer_.reserve(kAnswerBufferBytes);
    http::async_read(*stream_, buffer_, *p->parser,
                     [this, self = this->shared_from_this(), p](beast::error_code rec, std::size_t) {
                       if (p != state_) return;
                       if (rec) return Finish(p, Failure("receive", rec));
                       auto res = p->parser->release();
                       // The whole answer is read: a close is all the peer needs to see.
                       if (!res.keep_alive()) stream_->close();
                       Finish(p, FromBeast(res));
                     });
  }

  Status Failure(std::string_view stage, beast::error_code ec) {
    if (stream_) stream_->close();
    if (ec == beast::error::timeout) {
      return DeadlineExceededError("no answer from " + endpoint_.ToString() + " in time");
    }
    return UnavailableError(std::string(stage) + " " + endpoint_.ToString() + ": " + ec.message());
  }

  void Finish(const std::shared_ptr<Pending>& p, StatusOr<HttpResponse> result) {
    if (!p->done) return;
    Done done = std::move(p->done);
    p->done = nullptr;
    if (state_ == p) state_.reset();
    done(std::move(result));
  }

  net::io_context& io_;
  Endpoint endpoint_;
  std::optional<beast::basic_stream<Protocol>> stream_;
  std::shared_ptr<Pending> state_;
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
