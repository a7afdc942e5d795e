// The only server-side translation unit that includes Boost.Beast.
#include "server/http_server.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/version.hpp>
#include <filesystem>
#include <optional>
#include <unordered_set>

#include "clams/base/log.h"
#include "clams/base/log_limiter.h"
#include "server/asio_loop.h"

namespace clams::server {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using local = net::local::stream_protocol;
using Clock = std::chrono::steady_clock;
using Parser = http::request_parser<http::string_body>;

constexpr std::string_view kServerName = "clams-cpp";
constexpr std::string_view kTextPlain = "text/plain; charset=utf-8";

// Bytes read at once while waiting for the first byte of a request.
constexpr std::size_t kFirstReadBytes = 4096;
// Bytes read at once for the rest of a header that did not come whole.
constexpr std::size_t kHeaderReadBytes = 16384;
// How long a request waits for its answer before its connection is watched
// for the client leaving (see ArmWatchSweep).
constexpr auto kDisconnectWatchDelay = std::chrono::milliseconds(20);
// After the last answer on a connection that closes, what the client still
// sends is read and dropped for this long (and up to this many bytes) before
// the socket is closed: closing with unread data would send a reset, which
// can destroy the answer before the client reads it (a 413 or 431 sent while
// the client is still sending, a request that crossed a drain's close).
constexpr auto kLingerTimeout = std::chrono::seconds(2);
constexpr std::size_t kLingerMaxBytes = std::size_t{1} << 20;
// After accept() fails for want of file descriptors (or memory), accepting
// pauses this long: retrying at once spins at full CPU while the condition
// lasts. Each failure also sheds one waiting connection (see ShedOne).
constexpr auto kAcceptBackoff = std::chrono::milliseconds(100);
// At most one log line per this interval about failing accepts.
constexpr auto kAcceptFailureLogInterval = std::chrono::seconds(10);

constexpr std::string_view kShuttingDown = "the server is shutting down";
// Seconds a client is asked to wait before retrying after a shutdown 503 (a
// restarted or replicated server is usually there again by then).
constexpr const char* kShuttingDownRetryAfter = "1";
// What a connection shed for want of file descriptors is sent before it is
// closed (it was never read, so the answer is all it gets).
constexpr std::string_view kShedAnswer =
    "HTTP/1.1 503 Service Unavailable\r\nServer: clams-cpp\r\nContent-Type: text/plain; charset=utf-8\r\n"
    "Retry-After: 1\r\nConnection: close\r\nContent-Length: 51\r\n\r\n"
    "the server is out of file descriptors; retry later\n";
static_assert(std::string_view("the server is out of file descriptors; retry later\n").size() == 51);

// --- parsing shared by the connections and ParseHttpStream --------------------

void ConfigureParser(Parser& parser, const HttpServerOptions& options) {
  parser.header_limit(static_cast<std::uint32_t>(options.max_header_bytes));
  if (options.max_body_bytes > 0) {
    parser.body_limit(options.max_body_bytes);
  } else {
    parser.body_limit(boost::none);
  }
}

// Beast enforces the header limit exactly only after its first look at a
// request. In that look it checks the lines it already has whole and takes
// the field lines up to the limit counted after the request line; later it
// waits for the header's end within the limit counted from the first line it
// has not taken. So a header up to a few hundred bytes over the limit was
// read or refused depending on how its bytes arrived. This check, before each
// look, makes the limit exact: `used` bytes of the header are already taken
// (whole lines), `buffer` holds the rest; true when the header cannot end
// within max_header_bytes. It scans at most once per header: only when the
// buffer holds as much as the header still may.
bool HeaderCannotFit(const beast::flat_buffer& buffer, std::size_t used, const HttpServerOptions& options) {
  const std::size_t limit = options.max_header_bytes;
  const std::size_t room = used < limit ? limit - used : 0;
  if (buffer.size() < room) return false;
  const std::string_view rest(static_cast<const char*>(buffer.data().data()), room);
  if (used > 0 && rest.substr(0, 2) == "\r\n") return false;  // the empty line after the lines taken
  return rest.find("\r\n\r\n") == std::string_view::npos;
}

// Feeds the bytes in `buffer` to `parser` until the header (with
// `until_done`, the whole request) is parsed or more bytes are needed;
// `header_used` counts the bytes of this request's header the parser took
// (0 for a new request). Returns true when it is parsed or failed (`ec`),
// false when it needs more.
bool FeedParser(Parser& parser, beast::flat_buffer& buffer, const HttpServerOptions& options, bool until_done,
                std::size_t& header_used, beast::error_code& ec) {
  auto settled = [&] { return until_done ? parser.is_done() : parser.is_header_done(); };
  while (!settled() && buffer.size() > 0) {
    const bool in_header = !parser.is_header_done();
    if (in_header && HeaderCannotFit(buffer, header_used, options)) {
      ec = http::error::header_limit;
      return true;
    }
    const std::size_t used = parser.put(buffer.data(), ec);
    buffer.consume(used);
    if (in_header) header_used += used;
    if (ec == http::error::need_more) {
      ec = {};
      return false;
    }
    if (ec) return true;
    if (used == 0) return false;
  }
  return settled();
}

HttpRejection TooLarge(const HttpServerOptions& options) {
  if (options.max_body_bytes > 0) {
    return {413, "request body too large: the limit is " + std::to_string(options.max_body_bytes) +
                     " bytes (--max-body-size)"};
  }
  return {413, "request body too large"};
}

// Errors that mean the peer went away or we closed: nothing to answer.
bool IsDisconnect(const beast::error_code& ec) {
  return ec == http::error::end_of_stream || ec == http::error::partial_message || ec == beast::error::timeout ||
         ec == net::error::operation_aborted || ec == net::error::connection_reset || ec == net::error::eof ||
         ec == net::error::bad_descriptor || ec == net::error::broken_pipe;
}

// The answer to a failed header read, or nothing when the connection just
// ends (closed, timed out, or never sent a byte). `partial` holds the fields
// parsed before the error.
std::optional<HttpRejection> HeaderError(const beast::error_code& ec, bool got_bytes, const HttpServerOptions& options,
                                         const Parser::value_type& partial) {
  if (ec == http::error::body_limit) return TooLarge(options);
  if (ec == http::error::header_limit) return HttpRejection{431, "request header too large"};
  const bool has_te = partial.find(http::field::transfer_encoding) != partial.end();
  const bool has_cl = partial.find(http::field::content_length) != partial.end();
  // The parser stops at the second of Transfer-Encoding and Content-Length,
  // and at a second Transfer-Encoding field after one that ends in chunked.
  if ((ec == http::error::bad_transfer_encoding && has_cl) || (ec == http::error::bad_content_length && has_te)) {
    return HttpRejection{400, "bad Transfer-Encoding: not allowed together with Content-Length"};
  }
  if (ec == http::error::bad_transfer_encoding) {
    return HttpRejection{400, "bad Transfer-Encoding: chunked is applied more than once"};
  }
  if (IsDisconnect(ec) || !got_bytes) return std::nullopt;
  return HttpRejection{400, "malformed HTTP request"};
}

std::optional<HttpRejection> BodyError(const beast::error_code& ec, const HttpServerOptions& options) {
  if (ec == http::error::body_limit) return TooLarge(options);
  if (IsDisconnect(ec)) return std::nullopt;
  // Any other error of the HTTP parser: a bad chunk size or extension, ...
  if (ec.category() == beast::http::make_error_code(http::error::bad_chunk).category()) {
    return HttpRejection{400, "malformed HTTP request body"};
  }
  return std::nullopt;
}

std::string JoinedTransferEncoding(const Parser::value_type& req) {
  std::string joined;
  for (const auto& field : req) {
    if (field.name() != http::field::transfer_encoding) continue;
    if (!joined.empty()) joined += ", ";
    joined += std::string(field.value());
  }
  return joined;
}

std::optional<HttpRejection> CheckHeader(const Parser::value_type& req) {
  const bool has_te = req.find(http::field::transfer_encoding) != req.end();
  if (!has_te) return std::nullopt;
  return CheckFraming(req.version(), JoinedTransferEncoding(req), req.find(http::field::content_length) != req.end());
}

HttpRequest ToHttpRequest(Parser::value_type& req, const std::string& remote) {
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
  out.remote = remote;
  return out;
}

// --- connections ----------------------------------------------------------------

class SessionBase {
 public:
  virtual ~SessionBase() = default;
  // Draining began, or the end of the drain came (Shared says which).
  virtual void OnDrain() = 0;
  // The drain's bound passed: close now.
  virtual void ForceClose() = 0;
  // Its request has waited kDisconnectWatchDelay: watch for the client
  // leaving (see Session::OnRequest).
  virtual void StartDisconnectWatch() = 0;
  Clock::time_point handed_at{};  // when its request went to the handler
};

// What every session of one listener shares; sessions keep it alive, so
// they may outlive the listener.
struct Shared {
  HttpServerOptions options;
  HttpServer::Handler handler;
  std::size_t open = 0;
  bool draining = false;  // BeginDrain(): every answer closes its connection
  bool stopping = false;  // Shutdown(): the handler is no longer called
  Clock::time_point drain_began{};
  std::unordered_set<SessionBase*> sessions;
  // Shutdown()'s `done`, run when the last session goes (once).
  std::function<void()> on_all_closed;
  net::io_context* io = nullptr;
  // Sessions whose request went to the handler and whose connection is not
  // watched yet, and the one timer that starts their watches.
  std::unordered_set<SessionBase*> unwatched;
  std::unique_ptr<net::steady_timer> watch_timer;
  bool watch_timer_waiting = false;

  void FinishIfEmpty() {
    if (open == 0 && on_all_closed) net::post(*io, std::exchange(on_all_closed, nullptr));
  }
};

// Watching a connection for its client leaving costs a system call per
// request (the wait re-arms the socket in epoll); most requests are answered
// long before a departure could matter. So a request is watched only once it
// has waited kDisconnectWatchDelay: one timer per listener, set while any
// request waits unwatched, starts the watches of those that waited that
// long. A client that leaves is noticed at most about twice that delay after
// its request was read.
void ArmWatchSweep(const std::shared_ptr<Shared>& shared) {
  if (shared->watch_timer_waiting || shared->unwatched.empty()) return;
  if (!shared->watch_timer) shared->watch_timer = std::make_unique<net::steady_timer>(*shared->io);
  shared->watch_timer_waiting = true;
  shared->watch_timer->expires_after(kDisconnectWatchDelay);
  shared->watch_timer->async_wait([weak = std::weak_ptr<Shared>(shared)](beast::error_code ec) {
    auto s = weak.lock();
    if (!s) return;
    s->watch_timer_waiting = false;
    if (ec) return;
    const Clock::time_point cutoff = Clock::now() - kDisconnectWatchDelay;
    std::vector<SessionBase*> due;
    for (SessionBase* session : s->unwatched) {
      if (session->handed_at <= cutoff) due.push_back(session);
    }
    for (SessionBase* session : due) {
      s->unwatched.erase(session);
      session->StartDisconnectWatch();
    }
    ArmWatchSweep(s);
  });
}

template <class Protocol>
class Session : public SessionBase, public std::enable_shared_from_this<Session<Protocol>> {
 public:
  using Socket = typename Protocol::socket;

  Session(Socket socket, std::shared_ptr<Shared> shared)
      : socket_(std::move(socket)), timer_(socket_.get_executor()), shared_(std::move(shared)),
        options_(shared_->options) {
    ++shared_->open;
    shared_->sessions.insert(this);
    if constexpr (std::is_same_v<Protocol, tcp>) {
      beast::error_code ec;
      auto ep = socket_.remote_endpoint(ec);
      if (!ec) remote_ = ep.address().to_string() + ":" + std::to_string(ep.port());
      socket_.set_option(tcp::no_delay(true), ec);
    } else {
      remote_ = "unix";
    }
  }
  ~Session() override {
    shared_->unwatched.erase(this);
    shared_->sessions.erase(this);
    --shared_->open;
    shared_->FinishIfEmpty();
  }

  void Start() {
    header_deadline_ = Clock::now() + options_.header_timeout;
    // Writes are first tried on the spot (see Send): a full send buffer must
    // say so instead of blocking the loop thread.
    beast::error_code ec;
    socket_.non_blocking(true, ec);
    if (ec) return Close();
    WaitForRequest();
  }

  void OnDrain() override {
    if (state_ == State::kWaiting) ArmWaitingTimer();
  }

  void ForceClose() override { Close(); }

  void StartDisconnectWatch() override {
    if (pending_ && state_ != State::kClosed) WatchForDisconnect();
  }

 private:
  enum class State { kWaiting, kHeader, kBody, kHandling, kWriting, kLingering, kClosed };
  enum class OnExpiry { kClose, kBodyTimeout };

  // --- timer: one per connection, one deadline at a time; a newer Arm()
  // replaces the older deadline. The wait is started again only when the new
  // deadline comes before the pending wait's expiry; otherwise the pending
  // wait fires at its own expiry and waits again for the rest. A connection
  // that serves request after request therefore sets no timer per request
  // (each reset of the one timer was a timerfd_settime and a cancelled wait
  // to complete). The wait holds the session weakly: it never keeps a
  // connection alive.
  void Arm(Clock::time_point deadline, OnExpiry what) {
    deadline_ = deadline;
    on_expiry_ = what;
    if (timer_waiting_ && timer_.expiry() <= deadline) return;
    StartTimer(deadline);
  }
  void StartTimer(Clock::time_point at) {
    const std::uint64_t generation = ++timer_generation_;
    timer_waiting_ = true;
    timer_.expires_at(at);
    timer_.async_wait([weak = std::weak_ptr<Session>(this->shared_from_this()), generation](beast::error_code ec) {
      auto self = weak.lock();
      if (!self || generation != self->timer_generation_) return;
      self->timer_waiting_ = false;
      if (!ec) self->OnTimer();
    });
  }
  void OnTimer() {
    if (!deadline_) return;  // disarmed
    if (Clock::now() < *deadline_) return StartTimer(*deadline_);
    deadline_.reset();
    if (on_expiry_ == OnExpiry::kBodyTimeout) {
      body_timed_out_ = true;
      beast::error_code ignored;
      socket_.cancel(ignored);
    } else {
      Close();
    }
  }
  void Disarm() { deadline_.reset(); }

  // --- reading a request
  // Waits for the first byte of the next request: the header timeout covers
  // a connection's first request from the accept, the idle timeout the wait
  // between requests; once a byte is there, the header timeout starts again.
  void WaitForRequest() {
    state_ = State::kWaiting;
    if (buffer_.size() > 0) return ReadHeader(first_ ? header_deadline_ : Clock::now() + options_.header_timeout);
    waiting_since_ = Clock::now();
    ArmWaitingTimer();
    socket_.async_read_some(buffer_.prepare(kFirstReadBytes),
                            [self = this->shared_from_this()](beast::error_code ec, std::size_t n) {
                              if (self->state_ != State::kWaiting) return;
                              self->Disarm();
                              if (ec) return self->Close();
                              self->buffer_.commit(n);
                              self->ReadHeader(self->first_ ? self->header_deadline_
                                                            : Clock::now() + self->options_.header_timeout);
                            });
  }

  // While draining, a waiting connection is closed once it has been quiet
  // for kDrainIdleGrace (counted from the later of the wait's start and the
  // drain's start), or at its usual deadline if that comes first.
  void ArmWaitingTimer() {
    Clock::time_point deadline = first_ ? header_deadline_ : waiting_since_ + options_.idle_timeout;
    if (shared_->draining) {
      deadline = std::min(deadline, std::max(waiting_since_, shared_->drain_began) + kDrainIdleGrace);
    }
    Arm(deadline, OnExpiry::kClose);
  }

  void ReadHeader(Clock::time_point deadline) {
    state_ = State::kHeader;
    parser_.emplace();
    ConfigureParser(*parser_, options_);
    header_used_ = 0;
    Arm(deadline, OnExpiry::kClose);
    ContinueHeader();
  }

  // A request's header usually came whole in the read that woke us: it is
  // parsed on the spot, without another trip through the event loop. The
  // rest of one that did not is read here, not by Beast's read loop, so that
  // every piece goes through FeedParser.
  void ContinueHeader() {
    beast::error_code parsed;
    if (FeedParser(*parser_, buffer_, options_, /*until_done=*/false, header_used_, parsed)) return OnHeader(parsed);
    socket_.async_read_some(buffer_.prepare(kHeaderReadBytes),
                            [self = this->shared_from_this()](beast::error_code ec, std::size_t n) {
                              if (self->state_ != State::kHeader) return;
                              if (ec) return self->OnHeader(ec);
                              self->buffer_.commit(n);
                              self->ContinueHeader();
                            });
  }

  void OnHeader(beast::error_code ec) {
    if (state_ != State::kHeader) return;
    Disarm();
    if (ec) {
      if (auto rejection = HeaderError(ec, true, options_, parser_->get())) return Reject(*rejection);
      return Close();
    }
    auto& req = parser_->get();
    version_ = req.version();
    if (auto rejection = CheckHeader(req)) return Reject(*rejection);
    if (beast::iequals(req[http::field::expect], "100-continue") && !parser_->is_done()) {
      // Tell the client to send the body (curl waits a second otherwise).
      continue_ = std::make_shared<http::response<http::empty_body>>(http::status::continue_, req.version());
      state_ = State::kWriting;
      Arm(Clock::now() + options_.write_timeout, OnExpiry::kClose);
      http::async_write(socket_, *continue_, [self = this->shared_from_this()](beast::error_code wec, std::size_t) {
        self->Disarm();
        if (wec || self->state_ != State::kWriting) return self->Close();
        self->ReadBody();
      });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    beast::error_code parsed;
    if (FeedParser(*parser_, buffer_, options_, /*until_done=*/true, header_used_, parsed)) return OnBody(parsed);
    state_ = State::kBody;
    body_timed_out_ = false;
    // Our own timer, which cancels the read instead of closing the socket,
    // so that the 408 can still be written.
    Arm(Clock::now() + options_.body_timeout, OnExpiry::kBodyTimeout);
    http::async_read(socket_, buffer_, *parser_, [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
      if (self->state_ != State::kBody) return;
      self->Disarm();
      if (self->body_timed_out_ && ec) return self->Reject({408, "request body read timed out"});
      self->OnBody(ec);
    });
  }

  // The body is read (from the buffer or the socket), or reading it failed.
  void OnBody(beast::error_code ec) {
    if (ec) {
      if (auto rejection = BodyError(ec, options_)) return Reject(*rejection);
      return Close();
    }
    OnRequest();
  }

  void OnRequest() {
    auto& req = parser_->get();
    keep_alive_ = req.keep_alive();
    head_ = req.method() == http::verb::head;
    state_ = State::kHandling;
    pending_ = true;
    if (shared_->stopping) {
      return Write(HttpResponse{503, std::string(kTextPlain), {{"Retry-After", kShuttingDownRetryAfter}},
                                std::string(kShuttingDown) + "\n"});
    }
    HttpRequest out = ToHttpRequest(req, remote_);
    cancel_ = std::make_shared<CancelSignal>();
    handed_at = Clock::now();
    shared_->unwatched.insert(this);
    ArmWatchSweep(shared_);
    // The answer callback owns the session until it is called: nothing else
    // keeps it alive while the request waits in the queue or runs.
    shared_->handler(std::move(out),
                     [self = this->shared_from_this()](HttpResponse response) { self->Write(std::move(response)); },
                     cancel_);
  }

  // While a request waits for its answer, notice a client that closes the
  // connection so the request can leave the queue.
  void WatchForDisconnect() {
    socket_.async_wait(Socket::wait_read, [weak = std::weak_ptr<Session>(this->shared_from_this())](beast::error_code ec) {
      auto self = weak.lock();
      if (!self || ec || !self->pending_) return;
      char byte;
      ssize_t n = ::recv(self->socket_.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        self->disconnected_ = true;
        if (self->cancel_) self->cancel_->Cancel();
      } else if (n < 0) {
        // Nothing there: Asio reported a readiness that was not this
        // socket's (see EventLoop::WatchReadable). Keep watching.
        self->WatchForDisconnect();
      }
      // Data (a pipelined request) is read after the answer.
    });
  }

  // --- answering
  void Write(HttpResponse response) {
    if (!pending_) return;
    pending_ = false;
    shared_->unwatched.erase(this);
    if (cancel_) cancel_->Clear();
    if (disconnected_ || state_ == State::kClosed) return Close();
    auto res = std::make_shared<http::response<http::string_body>>(static_cast<http::status>(response.status),
                                                                   version_);
    res->set(http::field::server, kServerName);
    if (!response.content_type.empty()) res->set(http::field::content_type, response.content_type);
    for (auto& [name, value] : response.headers) res->set(name, value);
    const bool close = !keep_alive_ || response.status == 413 || response.status == 408 || shared_->draining ||
                       shared_->stopping;
    res->keep_alive(!close);
    if (!head_) {
      res->body() = std::move(response.body);
      res->prepare_payload();
    } else {
      res->content_length(response.body.size());
    }
    Send(std::move(res), close);
  }

  // Answers a request that cannot be read, then closes the connection.
  void Reject(const HttpRejection& rejection) {
    auto res = std::make_shared<http::response<http::string_body>>(static_cast<http::status>(rejection.status),
                                                                   version_ == 10 ? 10 : 11);
    res->set(http::field::server, kServerName);
    res->set(http::field::content_type, kTextPlain);
    res->keep_alive(false);
    res->body() = rejection.reason + "\n";
    res->prepare_payload();
    CLAMS_LOG(kInfo, "rejected a request from {}: {} {}", remote_, rejection.status, rejection.reason);
    Send(std::move(res), /*close=*/true);
  }

  // An answer usually fits in the socket's send buffer: it is written on the
  // spot, without a trip through the event loop, and only what did not fit
  // waits for the socket (under the write timeout).
  void Send(std::shared_ptr<http::response<http::string_body>> res, bool close) {
    response_ = std::move(res);
    state_ = State::kWriting;
    serializer_.emplace(*response_);
    beast::error_code ec;
    http::write(socket_, *serializer_, ec);
    if (ec != net::error::would_block && ec != net::error::try_again) return Sent(ec, close, /*inline_call=*/true);
    Arm(Clock::now() + options_.write_timeout, OnExpiry::kClose);
    http::async_write(socket_, *serializer_, [self = this->shared_from_this(), close](beast::error_code wec,
                                                                                     std::size_t) {
      self->Disarm();
      self->Sent(wec, close, /*inline_call=*/false);
    });
  }

  void Sent(beast::error_code ec, bool close, bool inline_call) {
    serializer_.reset();
    response_.reset();
    if (ec || state_ != State::kWriting) return Close();
    if (close) return CloseGracefully();
    first_ = false;
    if (inline_call && buffer_.size() > 0) {
      // A pipelined request is already here. Reading it now would nest its
      // handling inside the answer to the one before (and so on, as deep as
      // the client pipelines): take it from the event loop instead.
      state_ = State::kWaiting;
      net::post(socket_.get_executor(), [self = this->shared_from_this()] {
        if (self->state_ == State::kWaiting) self->WaitForRequest();
      });
      return;
    }
    WaitForRequest();
  }

  // --- closing
  // Half-closes (the client sees the end of the answers), then reads and
  // drops what the client still sends until it closes too, so the close
  // never turns into a reset that could destroy the last answer.
  void CloseGracefully() {
    if (state_ == State::kLingering || state_ == State::kClosed) return;
    state_ = State::kLingering;
    beast::error_code ec;
    socket_.shutdown(Socket::shutdown_send, ec);
    if (ec) return Close();
    Arm(Clock::now() + kLingerTimeout, OnExpiry::kClose);
    Discard();
  }

  void Discard() {
    socket_.async_read_some(net::buffer(linger_buffer_), [self = this->shared_from_this()](beast::error_code ec,
                                                                                            std::size_t n) {
      if (self->state_ != State::kLingering) return;
      self->lingered_bytes_ += n;
      if (ec || self->lingered_bytes_ > kLingerMaxBytes) return self->Close();
      self->Discard();
    });
  }

  void Close() {
    if (state_ == State::kClosed) return;
    state_ = State::kClosed;
    shared_->unwatched.erase(this);
    Disarm();
    ++timer_generation_;
    timer_waiting_ = false;
    timer_.cancel();
    beast::error_code ec;
    socket_.shutdown(Socket::shutdown_both, ec);
    socket_.close(ec);
  }

  Socket socket_;
  net::steady_timer timer_;
  std::uint64_t timer_generation_ = 0;
  bool timer_waiting_ = false;
  std::optional<Clock::time_point> deadline_;
  OnExpiry on_expiry_ = OnExpiry::kClose;
  std::shared_ptr<Shared> shared_;
  const HttpServerOptions& options_;
  beast::flat_buffer buffer_;
  std::optional<Parser> parser_;
  std::size_t header_used_ = 0;  // bytes of the current header the parser took (FeedParser)
  std::shared_ptr<http::response<http::empty_body>> continue_;
  std::shared_ptr<http::response<http::string_body>> response_;
  std::optional<http::response_serializer<http::string_body>> serializer_;
  std::shared_ptr<CancelSignal> cancel_;
  std::string remote_;
  State state_ = State::kWaiting;
  Clock::time_point header_deadline_;
  Clock::time_point waiting_since_;
  std::array<char, 4096> linger_buffer_{};
  std::size_t lingered_bytes_ = 0;
  unsigned version_ = 11;
  bool first_ = true;
  bool keep_alive_ = true;
  bool head_ = false;
  bool pending_ = false;
  bool disconnected_ = false;
  bool body_timed_out_ = false;
};

// --- the listener ------------------------------------------------------------------

bool OutOfDescriptors(const beast::error_code& ec) {
  return ec == net::error::no_descriptors || ec == boost::system::errc::too_many_files_open_in_system;
}

template <class Protocol>
class Listener : public HttpServer {
 public:
  Listener(EventLoop& loop, HttpServerOptions options, Handler handler)
      : acceptor_(loop.impl().io), backoff_(loop.impl().io), shutdown_timer_(loop.impl().io),
        shared_(std::make_shared<Shared>(Shared{std::move(options), std::move(handler)})),
        accept_failures_(kAcceptFailureLogInterval) {
    shared_->io = &loop.impl().io;
  }
  ~Listener() override {
    StopAccepting();
    // Sessions may outlive the listener (and the loop): nothing may be
    // posted for a Shutdown() that will never finish now.
    shared_->on_all_closed = nullptr;
    backoff_.cancel();
    shutdown_timer_.cancel();
    if (spare_fd_ >= 0) ::close(spare_fd_);
  }

  Status Bind(const typename Protocol::endpoint& endpoint) {
    beast::error_code ec;
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) {
      if constexpr (std::is_same_v<Protocol, tcp>) acceptor_.set_option(net::socket_base::reuse_address(true), ec);
    }
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
    // ShedOne() and Shutdown() call accept() directly: it must never block.
    if (!ec) acceptor_.native_non_blocking(true, ec);
    if (ec) return UnavailableError("cannot listen: " + ec.message());
    // The spare descriptor that ShedOne() gives up to accept one connection
    // when the process has no other.
    spare_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
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
    backoff_.cancel();
  }

  std::size_t connections() const override { return shared_->open; }

  void BeginDrain() override {
    if (shared_->draining) return;
    shared_->draining = true;
    shared_->drain_began = Clock::now();
    NotifySessions();
  }

  void Shutdown(std::chrono::milliseconds bound, std::function<void()> done) override {
    BeginDrain();
    shared_->stopping = true;
    // Connections the kernel has already accepted get their answer (a 503)
    // rather than a reset when the listener closes.
    if (acceptor_.is_open()) {
      beast::error_code ec;
      acceptor_.cancel(ec);
      acceptor_.non_blocking(true, ec);
      for (;;) {
        typename Protocol::socket socket(acceptor_.get_executor());
        acceptor_.accept(socket, ec);
        if (ec) break;
        std::make_shared<Session<Protocol>>(std::move(socket), shared_)->Start();
      }
    }
    StopAccepting();
    NotifySessions();
    auto once = std::make_shared<std::function<void()>>(std::move(done));
    auto finish = [once] {
      if (*once) std::exchange(*once, nullptr)();
    };
    shared_->on_all_closed = finish;
    shutdown_timer_.expires_after(bound);
    shutdown_timer_.async_wait([weak = std::weak_ptr<Shared>(shared_), finish](beast::error_code ec) {
      if (ec) return;
      if (auto shared = weak.lock()) {
        if (shared->open > 0) CLAMS_LOG(kWarning, "closing {} connection(s) that did not finish in time", shared->open);
        shared->on_all_closed = nullptr;
        std::vector<SessionBase*> open(shared->sessions.begin(), shared->sessions.end());
        for (SessionBase* s : open) s->ForceClose();
      }
      finish();
    });
    shared_->FinishIfEmpty();
  }

 private:
  void NotifySessions() {
    std::vector<SessionBase*> open(shared_->sessions.begin(), shared_->sessions.end());
    for (SessionBase* s : open) s->OnDrain();
  }

  void Accept() {
    acceptor_.async_accept([this, alive = std::weak_ptr<int>(alive_)](beast::error_code ec,
                                                                       typename Protocol::socket socket) {
      // After destruction the handler must not touch `this`: `alive`
      // expires with the listener.
      if (alive.expired()) return;
      if (!ec) {
        // Even after StopAccepting(): a connection accepted just before the
        // listener closed still gets its answer rather than a reset.
        std::make_shared<Session<Protocol>>(std::move(socket), shared_)->Start();
        if (acceptor_.is_open()) Accept();
        return;
      }
      if (ec == net::error::operation_aborted || !acceptor_.is_open()) return;
      // A client that left between its connect and our accept: nothing to do.
      if (ec == net::error::connection_aborted) return Accept();
      OnAcceptFailure(ec);
    });
  }

  // accept() failed for a reason that lasts (no file descriptors, no
  // memory): retrying at once would spin. Shed one waiting connection when
  // descriptors are short, log (rate-limited), and pause accepting.
  void OnAcceptFailure(const beast::error_code& ec) {
    if (OutOfDescriptors(ec)) ShedOne();
    if (auto n = accept_failures_.Allow()) {
      CLAMS_LOG(kWarning,
                "accept failed {} time(s) since the last report ({}; {} connection(s) shed so far): pausing accepts "
                "for {} ms after each failure",
                *n, ec.message(), shed_, std::chrono::duration_cast<std::chrono::milliseconds>(kAcceptBackoff).count());
    }
    backoff_.expires_after(kAcceptBackoff);
    backoff_.async_wait([this, alive = std::weak_ptr<int>(alive_)](beast::error_code wec) {
      if (alive.expired() || wec || !acceptor_.is_open()) return;
      Accept();
    });
  }

  // With the spare descriptor given up, accepts one waiting connection,
  // tells it the server is out of descriptors and closes it (nginx's
  // approach), then takes the spare back.
  void ShedOne() {
    if (spare_fd_ >= 0) {
      ::close(spare_fd_);
      spare_fd_ = -1;
    }
    const int fd = ::accept4(acceptor_.native_handle(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd >= 0) {
      (void)::send(fd, kShedAnswer.data(), kShedAnswer.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      ::close(fd);
      ++shed_;
    }
    spare_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  }

  typename Protocol::acceptor acceptor_;
  net::steady_timer backoff_;
  net::steady_timer shutdown_timer_;
  std::shared_ptr<Shared> shared_;
  log::Limiter accept_failures_;
  // Expires with the listener; handlers hold it weakly.
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
  int spare_fd_ = -1;
  std::uint64_t shed_ = 0;
};

// A synchronous stream over bytes in memory, handed out in pieces (how TCP
// may deliver them), for ParseHttpStream.
class PieceStream {
 public:
  PieceStream(std::string_view data, std::size_t piece) : data_(data), piece_(std::max<std::size_t>(1, piece)) {}

  template <class Buffers>
  std::size_t read_some(const Buffers& buffers, beast::error_code& ec) {
    if (data_.empty()) {
      ec = net::error::eof;
      return 0;
    }
    ec = {};
    const std::size_t n = net::buffer_copy(buffers, net::buffer(data_.data(), std::min(piece_, data_.size())));
    data_.remove_prefix(n);
    return n;
  }
  template <class Buffers>
  std::size_t read_some(const Buffers& buffers) {
    beast::error_code ec;
    const std::size_t n = read_some(buffers, ec);
    if (ec) throw beast::system_error(ec);
    return n;
  }

 private:
  std::string_view data_;
  std::size_t piece_;
};

}  // namespace

std::optional<HttpRejection> CheckFraming(unsigned http_version, std::string_view transfer_encoding,
                                          bool has_content_length) {
  // RFC 9112 §6.1: an HTTP/1.0 message with Transfer-Encoding has faulty
  // framing; §6.3: Transfer-Encoding with Content-Length may be a smuggling
  // attempt; the final coding must be chunked or the length is unknown.
  if (http_version < 11) return HttpRejection{400, "bad Transfer-Encoding: not allowed in an HTTP/1.0 request"};
  if (has_content_length) {
    return HttpRejection{400, "bad Transfer-Encoding: not allowed together with Content-Length"};
  }
  std::vector<std::string> codings;
  std::string_view rest = transfer_encoding;
  while (true) {
    const auto comma = rest.find(',');
    std::string_view item = rest.substr(0, comma);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (!item.empty()) {
      std::string lower(item);
      std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
      codings.push_back(std::move(lower));
    }
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  if (codings.empty() || codings.back() != "chunked") {
    return HttpRejection{400, "bad Transfer-Encoding: the last transfer coding must be chunked (RFC 9112 section 6.3)"};
  }
  if (std::count(codings.begin(), codings.end(), "chunked") > 1) {
    return HttpRejection{400, "bad Transfer-Encoding: chunked is applied more than once"};
  }
  if (codings.size() > 1) {
    return HttpRejection{501, "unsupported transfer coding: only chunked is accepted, got " +
                                  log::Quote(transfer_encoding)};
  }
  return std::nullopt;
}

std::vector<ParsedHttpRequest> ParseHttpStream(std::string_view wire, const HttpServerOptions& options,
                                               std::size_t piece_bytes) {
  std::vector<ParsedHttpRequest> out;
  PieceStream stream(wire, piece_bytes);
  beast::flat_buffer buffer;
  while (true) {
    Parser parser;
    ConfigureParser(parser, options);
    beast::error_code ec;
    const bool had_bytes = buffer.size() > 0;
    // As a connection reads a header (Session::ContinueHeader).
    std::size_t header_used = 0;
    while (!FeedParser(parser, buffer, options, /*until_done=*/false, header_used, ec)) {
      const std::size_t n = stream.read_some(buffer.prepare(kHeaderReadBytes), ec);
      if (ec) break;
      buffer.commit(n);
    }
    if (ec) {
      if (auto rejection = HeaderError(ec, had_bytes || parser.got_some(), options, parser.get())) {
        out.push_back({std::move(rejection), {}});
      }
      return out;
    }
    if (auto rejection = CheckHeader(parser.get())) {
      out.push_back({std::move(rejection), {}});
      return out;
    }
    if (!parser.is_done()) http::read(stream, buffer, parser, ec);
    if (ec) {
      if (auto rejection = BodyError(ec, options)) out.push_back({std::move(rejection), {}});
      return out;
    }
    ParsedHttpRequest parsed;
    const bool keep_alive = parser.get().keep_alive();
    parsed.request = ToHttpRequest(parser.get(), "memory");
    out.push_back(std::move(parsed));
    if (!keep_alive) return out;
  }
}

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
