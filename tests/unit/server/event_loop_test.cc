// Tests of EventLoop::WatchReadable against Asio's reactor: a watch is
// called when its descriptor is readable, never before.
#include "server/event_loop.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/asio/local/connect_pair.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/write.hpp>

#include "server/asio_loop.h"

namespace clams::server {
namespace {

namespace net = boost::asio;
using Socket = net::local::stream_protocol::socket;

struct Pipe {
  int read = -1;
  int write = -1;
  Pipe() {
    int fds[2];
    if (::pipe(fds) == 0) {
      read = fds[0];
      write = fds[1];
    }
  }
  ~Pipe() {
    if (read >= 0) ::close(read);
    if (write >= 0) ::close(write);
  }
};

// The front lost a worker's start this way (the keeper's report was read
// too early, found nothing, and was never waited for again). Asio queues a
// readiness with the descriptor's reactor state; when a handler of the same
// turn closes that descriptor and a new one is registered, the new one gets
// the state and the queued readiness. Two sockets are made readable together,
// `first` before `second`: first's handler closes `second` and starts a watch
// on an empty pipe, which inherits second's readiness.
TEST(EventLoopTest, AWatchIsNotCalledForAReadinessThatIsNotItsDescriptors) {
  EventLoop loop;
  auto& io = loop.impl().io;
  Socket first(io), first_peer(io), second(io), second_peer(io);
  net::local::connect_pair(first, first_peer);
  net::local::connect_pair(second, second_peer);
  Pipe empty;
  ASSERT_GE(empty.read, 0);

  bool watch_called = false;
  bool first_called = false;
  second.async_wait(Socket::wait_read, [](const boost::system::error_code&) {});
  first.async_wait(Socket::wait_read, [&](const boost::system::error_code& ec) {
    ASSERT_FALSE(ec);
    first_called = true;
    second.close();
    loop.WatchReadable(empty.read, [&] { watch_called = true; });
    loop.Post([&] { loop.Stop(); });  // after everything this turn queued
  });
  net::write(first_peer, net::buffer("a", 1));
  net::write(second_peer, net::buffer("b", 1));
  loop.Run();

  ASSERT_TRUE(first_called);
  EXPECT_FALSE(watch_called) << "the watch ran though its pipe is empty";
}

// And once the pipe has data, the same watch is called (once).
TEST(EventLoopTest, AWatchIsCalledOnceWhenItsDescriptorBecomesReadable) {
  EventLoop loop;
  Pipe pipe;
  ASSERT_GE(pipe.read, 0);
  int calls = 0;
  loop.WatchReadable(pipe.read, [&] {
    ++calls;
    loop.Post([&] { loop.Stop(); });
  });
  loop.Post([&] { ASSERT_EQ(::write(pipe.write, "x", 1), 1); });
  loop.Run();
  EXPECT_EQ(calls, 1);
}

// A closed writer counts as readable (EOF): the watch is called.
TEST(EventLoopTest, AWatchIsCalledWhenTheOtherEndCloses) {
  EventLoop loop;
  Pipe pipe;
  ASSERT_GE(pipe.read, 0);
  bool called = false;
  loop.WatchReadable(pipe.read, [&] {
    called = true;
    loop.Stop();
  });
  loop.Post([&] {
    ::close(pipe.write);
    pipe.write = -1;
  });
  loop.Run();
  EXPECT_TRUE(called);
}

}  // namespace
}  // namespace clams::server
