// The only server-side translation unit that includes Boost.Beast.
#include "server/http_server.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/version.hpp>
#include <filesystem>
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

constexpr std::string_view kServerName = "clams-cpp";

// What every session of one listener shares; sessions keep it alive, so
// they may outlive the listener.
struct Shared {
  HttpServerOptions options;
  HttpServer::Handler handler;
  std::size_t open = 0;
};

template <class Protocol>
class Session : public std::enable_shared_from_this<Session<Protocol>> {
 public:
  using Stream = beast::basic_stream<Protocol>;

  Session(typename Protocol::socket socket, std::shared_ptr<Shared> shared)
      : stream_(std::move(socket)), shared_(std::move(shared)), options_(shared_->options),
        handler_(shared_->handler) {
    ++shared_->open;
    if constexpr (std::is_same_v<Protocol, tcp>) {
      beast::error_code ec;
      auto ep = stream_.socket().remote_endpoint(ec);
      if (!ec) remote_ = ep.address().to_string() + ":" + std::to_string(ep.port());
      stream_.socket().set_option(tcp::no_delay(true), ec);
    } else {
      remote_ = "unix";
    }
  }
  ~Session() { --shared_->open; }

  void Start() { ReadHeader(true); }

 private:
  void ReadHeader(bool first) {
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(options_.max_header_bytes));
    if (options_.max_body_bytes > 0) {
      parser_->body_limit(options_.max_body_bytes);
    } else {
      parser_->body_limit(boost::none);
    }
    stream_.expires_after(first ? options_.header_timeout : options_.idle_timeout);
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                              self->OnHeader(ec);
                            });
  }

  void OnHeader(beast::error_code ec) {
    if (ec == http::error::body_limit) return Reject(413, "request body too large");
    if (ec == http::error::header_limit) return Reject(431, "request header too large");
    if (ec) {
      if (ec != http::error::end_of_stream && ec != beast::error::timeout &&
          ec != net::error::operation_aborted && ec != net::error::connection_reset &&
          ec != net::error::eof) {
        if (buffer_.size() > 0 || parser_->got_some()) return Reject(400, "malformed HTTP request");
      }
      return Close();
    }
    auto& req = parser_->get();
    auto expect = req[http::field::expect];
    if (beast::iequals(expect, "100-continue")) {
      // Tell the client to send the body (curl waits a second otherwise).
      continue_ = std::make_shared<http::response<http::empty_body>>(http::status::continue_, req.version());
      stream_.expires_after(options_.write_timeout);
      http::async_write(stream_, *continue_,
                        [self = this->shared_from_this()](beast::error_code wec, std::size_t) {
                          if (wec) return self->Close();
                          self->ReadBody();
                        });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    if (parser_->is_done()) return OnRequest();
    stream_.expires_after(options_.body_timeout);
    http::async_read(stream_, buffer_, *parser_,
                     [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                       if (ec == http::error::body_limit) return self->Reject(413, "request body too large");
                       if (ec == beast::error::timeout) return self->Reject(408, "request body read timed out");
                       if (ec) return self->Close();
                       self->OnRequest();
                     });
  }

  void OnRequest() {
    stream_.expires_never();
    auto& req = parser_->get();
    HttpRequest out;
    out.method = std::string(req.method_string());
    out.target = std::string(req.target());
    auto q = out.target.find('?');
    out.path = out.target.substr(0, q);
    if (q != std::string::npos) out.query = out.target.substr(q + 1);
    for (const auto& field : req) {
      out.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
    }
    out.body = std::move(req.body());
    out.keep_alive = req.keep_alive();
    out.remote = remote_;
    version_ = req.version();
    keep_alive_ = req.keep_alive();
    head_ = req.method() == http::verb::head;
    pending_ = true;
    cancel_ = std::make_shared<CancelSignal>();
    WatchForDisconnect();
    // The answer callback owns the session until it is called: nothing else
    // keeps it alive while the request waits in the queue or runs.
    handler_(std::move(out),
             [self = this->shared_from_this()](HttpResponse response) { self->Write(std::move(response)); },
             cancel_);
  }

  // While a request waits for its answer, notice a client that closes the
  // connection so the request can leave the queue.
  void WatchForDisconnect() {
    stream_.socket().async_wait(Protocol::socket::wait_read,
                                [weak = std::weak_ptr<Session>(this->shared_from_this())](beast::error_code ec) {
                                  auto self = weak.lock();
                                  if (!self || ec || !self->pending_) return;
                                  char byte;
                                  ssize_t n = ::recv(self->stream_.socket().native_handle(), &byte, 1,
                                                     MSG_PEEK | MSG_DONTWAIT);
                                  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
                                    self->disconnected_ = true;
                                    if (self->cancel_) self->cancel_->Cancel();
                                  }
                                  // Data (a pipelined request) is read after the answer.
                                });
  }

  void Write(HttpResponse response) {
    if (!pending_) return;
    pending_ = false;
    if (cancel_) cancel_->Clear();
    if (disconnected_) return Close();
    auto res = std::make_shared<http::response<http::string_body>>(
        static_cast<http::status>(response.status), version_);
    res->set(http::field::server, kServerName);
    if (!response.content_type.empty()) res->set(http::field::content_type, response.content_type);
    for (auto& [name, value] : response.headers) res->set(name, value);
    const bool close = !keep_alive_ || response.status == 413 || response.status == 408;
    res->keep_alive(!close);
    if (!head_) {
      res->body() = std::move(response.body);
      res->prepare_payload();
    } else {
      res->content_length(response.body.size());
    }
    response_ = res;
    stream_.expires_after(options_.write_timeout);
    http::async_write(stream_, *res, [self = this->shared_from_this(), close](beast::error_code ec, std::size_t) {
      self->response_.reset();
      if (ec || close) return self->Close();
      self->ReadHeader(false);
    });
  }

  // Answers a request that cannot be read and closes the connection.
  void Reject(int status, std::string_view reason) {
    auto res = std::make_shared<http::response<http::string_body>>(static_cast<http::status>(status),
                                                                    parser_ && parser_->is_header_done()
                                                                        ? parser_->get().version()
                                                                        : 11);
    res->set(http::field::server, kServerName);
    res->set(http::field::content_type, "text/plain; charset=utf-8");
    res->keep_alive(false);
    res->body() = std::string(reason) + "\n";
    if (status == 413 && options_.max_body_bytes > 0) {
      res->body() = "request body too large: the limit is " + std::to_string(options_.max_body_bytes) +
                    " bytes (--max-body-size)\n";
    }
    res->prepare_payload();
    CLAMS_LOG(kInfo, "rejected a request from {}: {} {}", remote_, status, reason);
    response_ = res;
    stream_.expires_after(options_.write_timeout);
    http::async_write(stream_, *res, [self = this->shared_from_this()](beast::error_code, std::size_t) {
      self->response_.reset();
      self->Close();
    });
  }

  void Close() {
    beast::error_code ec;
    stream_.socket().shutdown(Protocol::socket::shutdown_both, ec);
    stream_.close();
  }

  Stream stream_;
  std::shared_ptr<Shared> shared_;
  const HttpServerOptions& options_;
  const HttpServer::Handler& handler_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::shared_ptr<http::response<http::empty_body>> continue_;
  std::shared_ptr<http::response<http::string_body>> response_;
  std::shared_ptr<CancelSignal> cancel_;
  std::string remote_;
  unsigned version_ = 11;
  bool keep_alive_ = true;
  bool head_ = false;
  bool pending_ = false;
  bool disconnected_ = false;
};

template <class Protocol>
class Listener : public HttpServer {
 public:
  Listener(EventLoop& loop, HttpServerOptions options, Handler handler)
      : acceptor_(loop.impl().io),
        shared_(std::make_shared<Shared>(Shared{std::move(options), std::move(handler), 0})) {}
  ~Listener() override { StopAccepting(); }

  Status Bind(const typename Protocol::endpoint& endpoint) {
    beast::error_code ec;
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) {
      if constexpr (std::is_same_v<Protocol, tcp>) acceptor_.set_option(net::socket_base::reuse_address(true), ec);
    }
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
    if (ec) return UnavailableError("cannot listen: " + ec.message());
    Accept();
    return Status::Ok();
  }

  std::uint16_t port() const override {
    if constexpr (std::is_same_v<Protocol, tcp>) {
      beast::error_code ec;
      return acceptor_.local_endpoint(ec).port();
    }
    return 0;
  }

  void StopAccepting() override {
    beast::error_code ec;
    acceptor_.close(ec);
  }

  std::size_t connections() const override { return shared_->open; }

 private:
  void Accept() {
    acceptor_.async_accept([this](beast::error_code ec, typename Protocol::socket socket) {
      // After StopAccepting() or destruction the handler only sees
      // operation_aborted and must not touch `this`.
      if (ec == net::error::operation_aborted) return;
      if (ec) {
        CLAMS_LOG(kWarning, "accept failed: {}", ec.message());
      } else {
        std::make_shared<Session<Protocol>>(std::move(socket), shared_)->Start();
      }
      if (acceptor_.is_open()) Accept();
    });
  }

  typename Protocol::acceptor acceptor_;
  std::shared_ptr<Shared> shared_;
};

}  // namespace

StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(EventLoop& loop, const HttpServerOptions& options,
                                                        Handler handler) {
  if (!options.unix_socket.empty()) {
    std::error_code fs_ec;
    std::filesystem::remove(options.unix_socket, fs_ec);
    auto server = std::make_unique<Listener<local>>(loop, options, std::move(handler));
    CLAMS_RETURN_IF_ERROR(server->Bind(local::endpoint(options.unix_socket))
                              .WithContext("unix socket " + options.unix_socket));
    ::chmod(options.unix_socket.c_str(), S_IRUSR | S_IWUSR);
    return std::unique_ptr<HttpServer>(std::move(server));
  }
  beast::error_code ec;
  auto address = net::ip::make_address(options.host == "localhost" ? "127.0.0.1" : options.host, ec);
  if (ec) return InvalidArgumentError("--host: \"" + options.host + "\" is not an IP address");
  auto server = std::make_unique<Listener<tcp>>(loop, options, std::move(handler));
  CLAMS_RETURN_IF_ERROR(server->Bind(tcp::endpoint(address, options.port))
                            .WithContext(options.host + ":" + std::to_string(options.port)));
  return std::unique_ptr<HttpServer>(std::move(server));
}

}  // namespace clams::server
