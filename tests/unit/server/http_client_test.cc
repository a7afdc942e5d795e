// Tests of HttpConnection's pipelining against a scripted peer on a Unix
// socket: requests sent while others wait are written at once, answers come
// back in order, requests behind an answer that closes the connection are
// sent again on a new one, and a failed connection fails every request on it.
#include "server/http_client.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>
#include <vector>

namespace clams::server {
namespace {

using namespace std::chrono_literals;

// A listening Unix socket in a fresh private directory; its peer runs a
// script on a thread with blocking calls.
class ScriptedPeer {
 public:
  ScriptedPeer() {
    char dir[] = "/tmp/clams-http-client-test-XXXXXX";
    if (::mkdtemp(dir) != nullptr) dir_ = dir;
    path_ = dir_ + "/s";
    listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path_.c_str(), sizeof(addr.sun_path) - 1);
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || ::listen(listen_fd_, 4) != 0) {
      ::close(listen_fd_);
      listen_fd_ = -1;
    }
  }
  ~ScriptedPeer() {
    if (thread_.joinable()) thread_.join();
    if (listen_fd_ >= 0) ::close(listen_fd_);
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }
  bool ok() const { return listen_fd_ >= 0; }
  Endpoint endpoint() const {
    Endpoint e;
    e.unix_socket = path_;
    return e;
  }
  void Run(std::function<void(ScriptedPeer&)> script) {
    thread_ = std::thread([this, script = std::move(script)] { script(*this); });
  }
  void Join() { thread_.join(); }

  // The next connection (-1 after 10 s).
  int Accept() {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 10000) != 1) return -1;
    return ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
  }

  // Reads from `fd` until `count` whole requests (GETs: no body) came, the
  // peer closed, or 10 s passed; returns their request lines.
  static std::vector<std::string> ReadRequests(int fd, std::size_t count) {
    std::string data;
    std::vector<std::string> lines;
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    for (;;) {
      lines.clear();
      for (std::size_t at = 0, end; (end = data.find("\r\n\r\n", at)) != std::string::npos; at = end + 4) {
        lines.push_back(data.substr(at, data.find("\r\n", at) - at));
      }
      if (lines.size() >= count || std::chrono::steady_clock::now() >= deadline) return lines;
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 100) != 1) continue;
      char buf[4096];
      const ssize_t n = ::read(fd, buf, sizeof(buf));
      if (n <= 0) return lines;
      data.append(buf, static_cast<std::size_t>(n));
    }
  }

  static void Write(int fd, const std::string& text) {
    for (std::size_t at = 0; at < text.size();) {
      const ssize_t n = ::write(fd, text.data() + at, text.size() - at);
      if (n <= 0) return;
      at += static_cast<std::size_t>(n);
    }
  }

  static std::string Answer(const std::string& body, bool close = false) {
    return "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " + std::to_string(body.size()) +
           (close ? "\r\nConnection: close" : "") + "\r\n\r\n" + body;
  }

 private:
  std::string dir_;
  std::string path_;
  int listen_fd_ = -1;
  std::thread thread_;
};

HttpRequest Get(const std::string& target) {
  HttpRequest r;
  r.method = "GET";
  r.target = target;
  return r;
}

// What each request ended with, in the order the answers came.
struct Outcome {
  std::string target;
  StatusOr<HttpResponse> result;
};

// Sends GETs of `targets` back to back on one connection and runs the loop
// until every one has ended (or 20 s passed).
std::vector<Outcome> SendAll(const Endpoint& endpoint, const std::vector<std::string>& targets) {
  EventLoop loop;
  std::vector<Outcome> out;
  auto conn = HttpConnection::Create(loop, endpoint);
  for (const auto& t : targets) {
    conn->Send(Get(t), std::chrono::milliseconds(0), [&, t](StatusOr<HttpResponse> r) {
      out.push_back({t, std::move(r)});
      if (out.size() == targets.size()) loop.Stop();
    });
  }
  loop.After(20s, [&] { loop.Stop(); });
  loop.Run();
  return out;
}

TEST(HttpClientTest, ARequestSentWhileAnotherWaitsIsWrittenAtOnceAndAnsweredInOrder) {
  ScriptedPeer peer;
  ASSERT_TRUE(peer.ok());
  std::vector<std::string> seen;
  peer.Run([&](ScriptedPeer&) {
    const int fd = peer.Accept();
    if (fd < 0) return;
    // Nothing is answered until both requests are in: a client that waits
    // for the first answer before writing the second gets no answer at all.
    seen = ScriptedPeer::ReadRequests(fd, 2);
    if (seen.size() == 2) ScriptedPeer::Write(fd, ScriptedPeer::Answer("first") + ScriptedPeer::Answer("second"));
    ScriptedPeer::ReadRequests(fd, 1);  // until the client closes
    ::close(fd);
  });
  auto out = SendAll(peer.endpoint(), {"/a", "/b"});
  ASSERT_EQ(out.size(), 2u);
  peer.Join();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0], "GET /a HTTP/1.1");
  EXPECT_EQ(seen[1], "GET /b HTTP/1.1");
  ASSERT_TRUE(out[0].result.ok()) << out[0].result.status().ToString();
  ASSERT_TRUE(out[1].result.ok()) << out[1].result.status().ToString();
  EXPECT_EQ(out[0].target, "/a");
  EXPECT_EQ(out[0].result->body, "first");
  EXPECT_EQ(out[1].target, "/b");
  EXPECT_EQ(out[1].result->body, "second");
}

TEST(HttpClientTest, RequestsBehindAnAnswerThatClosesTheConnectionAreSentAgainOnANewOne) {
  ScriptedPeer peer;
  ASSERT_TRUE(peer.ok());
  std::vector<std::string> first_connection, second_connection;
  peer.Run([&](ScriptedPeer&) {
    int fd = peer.Accept();
    if (fd < 0) return;
    first_connection = ScriptedPeer::ReadRequests(fd, 3);
    // It answers the first and processes nothing after it.
    ScriptedPeer::Write(fd, ScriptedPeer::Answer("first", /*close=*/true));
    ::close(fd);
    fd = peer.Accept();
    if (fd < 0) return;
    second_connection = ScriptedPeer::ReadRequests(fd, 2);
    ScriptedPeer::Write(fd, ScriptedPeer::Answer("second") + ScriptedPeer::Answer("third"));
    ScriptedPeer::ReadRequests(fd, 1);
    ::close(fd);
  });
  auto out = SendAll(peer.endpoint(), {"/a", "/b", "/c"});
  ASSERT_EQ(out.size(), 3u);
  peer.Join();
  EXPECT_EQ(first_connection.size(), 3u);
  ASSERT_EQ(second_connection.size(), 2u);
  EXPECT_EQ(second_connection[0], "GET /b HTTP/1.1");
  EXPECT_EQ(second_connection[1], "GET /c HTTP/1.1");
  const std::vector<std::string> bodies = {"first", "second", "third"};
  for (std::size_t i = 0; i < out.size(); ++i) {
    ASSERT_TRUE(out[i].result.ok()) << out[i].target << ": " << out[i].result.status().ToString();
    EXPECT_EQ(out[i].result->body, bodies[i]);
  }
}

TEST(HttpClientTest, AConnectionThatFailsFailsEveryRequestOnItInOrder) {
  ScriptedPeer peer;
  ASSERT_TRUE(peer.ok());
  peer.Run([&](ScriptedPeer&) {
    const int fd = peer.Accept();
    if (fd < 0) return;
    ScriptedPeer::ReadRequests(fd, 2);
    ::close(fd);  // no answer
  });
  auto out = SendAll(peer.endpoint(), {"/a", "/b"});
  peer.Join();
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].target, "/a");
  EXPECT_EQ(out[1].target, "/b");
  for (const auto& o : out) EXPECT_EQ(o.result.status().code(), StatusCode::kUnavailable) << o.target;
}

}  // namespace
}  // namespace clams::server
