// Development mode: the App runs inside the front on a small thread pool
// (one thread per worker slot). Calls into a non-thread-safe App are
// serialized by the AppRunner. Workers are threads: they cannot be
// recycled or killed.
#ifndef CLAMS_SRC_SERVER_IN_PROCESS_EXECUTOR_H_
#define CLAMS_SRC_SERVER_IN_PROCESS_EXECUTOR_H_

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "server/event_loop.h"
#include "server/executor.h"

namespace clams::server {

class InProcessExecutor : public Executor {
 public:
  /// `threads` worker slots, all on `device` (-1: no GPU).
  InProcessExecutor(EventLoop& loop, AppRunner& runner, int threads, int device);
  ~InProcessExecutor() override;

  std::string_view kind() const override { return "in-process"; }
  Status Start(EventSink on_event) override;
  void Dispatch(int worker_id, std::shared_ptr<ExecRequest> request, std::function<void(ExecResult)> done) override;
  void Recycle(int, KillCause) override {}
  bool Kill(int, KillCause) override { return false; }
  void ReplaceAll() override {}
  int Scale(int) override { return static_cast<int>(busy_.size()); }
  void Shutdown(std::function<void()> done) override;

 private:
  void ThreadMain();
  void Emit(int worker_id, WorkerEvent::Kind kind, KillCause cause = KillCause::kNone);

  EventLoop& loop_;
  AppRunner& runner_;
  int device_;
  EventSink on_event_;
  std::vector<bool> busy_;  // per worker slot (index = id - 1)

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace clams::server

#endif  // CLAMS_SRC_SERVER_IN_PROCESS_EXECUTOR_H_
