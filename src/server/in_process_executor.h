// Development mode: the App runs inside the front on a small thread pool
// (one thread per worker slot). Calls into a non-thread-safe App are
// serialized by the AppRunner. Workers are threads: they cannot be
// recycled or killed.
//
// Without GPU accounting each slot takes one request ahead: it waits in the
// pool's queue, and the first thread to finish runs it at once, instead of
// sleeping until the loop hands it the next one (two thread wake-ups per
// request; bench/http measured +17-20 % requests/s on 2 cores). Its
// --request-timeout counts from when it starts. With GPUs every admitted
// request runs at once: memory is admitted for work that runs.
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
  /// `threads` worker slots, all on `device` (-1: no GPU, and each slot
  /// takes one request ahead).
  InProcessExecutor(EventLoop& loop, AppRunner& runner, int threads, int device);
  ~InProcessExecutor() override;

  std::string_view kind() const override { return "in-process"; }
  Status Start(EventSink on_event) override;
  void Dispatch(int worker_id, std::shared_ptr<ExecRequest> request, std::function<void(ExecResult)> done) override;
  void Recycle(int, KillCause) override {}
  bool Kill(int, KillCause) override { return false; }
  void ReplaceAll() override {}
  int Scale(int) override { return static_cast<int>(running_.size()); }
  void Shutdown(std::function<void()> done) override;

 private:
  struct Run;
  void ThreadMain();
  void Emit(int worker_id, WorkerEvent::Kind kind, KillCause cause = KillCause::kNone);
  void ArmTimeout(const std::shared_ptr<Run>& run);

  EventLoop& loop_;
  AppRunner& runner_;
  int device_;
  int ahead_;  // requests a slot takes beyond the one it runs
  EventSink on_event_;
  // Loop thread only:
  std::vector<int> running_;  // per worker slot (index = id - 1): dispatched, not yet returned
  std::deque<std::shared_ptr<Run>> not_started_;  // waiting in the pool, oldest first

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace clams::server

#endif  // CLAMS_SRC_SERVER_IN_PROCESS_EXECUTOR_H_
