#include "server/event_loop.h"

#include <boost/asio/posix/stream_descriptor.hpp>
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>

#include "clams/base/log.h"
#include "server/asio_loop.h"

namespace clams::server {

namespace net = boost::asio;

EventLoop::EventLoop() : impl_(std::make_unique<Impl>()) {
  impl_->work = std::make_unique<net::executor_work_guard<net::io_context::executor_type>>(
      impl_->io.get_executor());
}

EventLoop::~EventLoop() = default;

void EventLoop::Run() {
  impl_->loop_thread = std::this_thread::get_id();
  for (;;) {
    try {
      impl_->io.run();
      break;
    } catch (const std::exception& e) {
      // A callback threw: log it and keep serving (the loop must not die).
      CLAMS_LOG(kError, "uncaught exception in the event loop: {}", e.what());
    }
  }
}

void EventLoop::Stop() {
  impl_->work.reset();
  impl_->io.stop();
}

void EventLoop::Post(std::function<void()> fn) { net::post(impl_->io, std::move(fn)); }

EventLoop::TimerId EventLoop::After(std::chrono::milliseconds delay, std::function<void()> fn) {
  TimerId id = impl_->next_timer++;
  auto timer = std::make_unique<net::steady_timer>(impl_->io, delay);
  timer->async_wait([this, id, fn = std::move(fn)](const boost::system::error_code& ec) {
    impl_->timers.erase(id);  // destroys the timer after this handler returns
    if (!ec) fn();
  });
  impl_->timers.emplace(id, std::move(timer));
  return id;
}

void EventLoop::Cancel(TimerId id) {
  auto it = impl_->timers.find(id);
  if (it != impl_->timers.end()) it->second->cancel();
}

void EventLoop::OnSignal(int signo, std::function<void()> fn) {
  if (!impl_->signals) impl_->signals = std::make_unique<net::signal_set>(impl_->io);
  auto& handlers = impl_->signal_handlers[signo];
  if (handlers.empty()) {
    impl_->signals->add(signo);
  }
  handlers.push_back(std::move(fn));
  if (impl_->signal_handlers.size() == 1 && handlers.size() == 1) {
    // First registration: start waiting.
    struct Waiter {
      EventLoop* loop;
      void operator()(const boost::system::error_code& ec, int sig) const {
        if (ec) return;
        auto it = loop->impl_->signal_handlers.find(sig);
        if (it != loop->impl_->signal_handlers.end()) {
          for (auto& h : it->second) h();
        }
        loop->impl_->signals->async_wait(*this);
      }
    };
    impl_->signals->async_wait(Waiter{this});
  }
}

namespace {

// Readable, closed or failed now (poll with no wait).
bool ReadableNow(int fd) {
  pollfd p{fd, POLLIN, 0};
  int n = 0;
  do {
    n = ::poll(&p, 1, 0);
  } while (n < 0 && errno == EINTR);
  return n != 0;  // an error other than EINTR: let the caller find out
}

// One watch: waits until the descriptor is readable, then calls `fn` once.
// Asio may complete a wait that is not due: when a descriptor is closed while
// its readiness is still queued in the same turn of the loop, the next
// descriptor registered reuses its reactor state and receives that
// readiness. So every completion is checked with poll(), and a wrong one
// waits again.
struct ReadWatch {
  std::shared_ptr<net::posix::stream_descriptor> desc;
  std::function<void()> fn;

  void Wait() && {
    auto& d = *desc;
    d.async_wait(net::posix::stream_descriptor::wait_read, [self = std::move(*this)](const boost::system::error_code& ec) mutable {
      if (!ec && !ReadableNow(self.desc->native_handle())) return std::move(self).Wait();
      self.fn();
    });
  }
};

}  // namespace

void EventLoop::WatchReadable(int fd, std::function<void()> fn) {
  // Watch a duplicate so that closing it never touches the caller's fd.
  int dup_fd = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);  // never inherited by a child
  if (dup_fd < 0) {
    Post(std::move(fn));
    return;
  }
  ReadWatch{std::make_shared<net::posix::stream_descriptor>(impl_->io, dup_fd), std::move(fn)}.Wait();
}

bool EventLoop::InLoopThread() const { return impl_->loop_thread == std::this_thread::get_id(); }

}  // namespace clams::server
