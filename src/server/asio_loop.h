// Internal: the Asio side of EventLoop, included only by the few .cc files
// that use Asio/Beast directly (event_loop.cc, http_server.cc,
// http_client.cc).
#ifndef CLAMS_SRC_SERVER_ASIO_LOOP_H_
#define CLAMS_SRC_SERVER_ASIO_LOOP_H_

#include <boost/asio.hpp>

#include <map>
#include <memory>
#include <thread>
#include <vector>

#include "server/event_loop.h"

namespace clams::server {

struct EventLoop::Impl {
  boost::asio::io_context io;
  std::map<EventLoop::TimerId, std::unique_ptr<boost::asio::steady_timer>> timers;
  EventLoop::TimerId next_timer = 1;
  std::unique_ptr<boost::asio::signal_set> signals;
  std::map<int, std::vector<std::function<void()>>> signal_handlers;
  std::thread::id loop_thread;
  std::unique_ptr<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work;
};

}  // namespace clams::server

#endif  // CLAMS_SRC_SERVER_ASIO_LOOP_H_
