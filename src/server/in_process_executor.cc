#include "server/in_process_executor.h"

#include <unistd.h>

#include <numeric>
#include <optional>

#include "clams/base/log.h"

namespace clams::server {

// One dispatched request, shared by its task, its timer and its answer.
struct InProcessExecutor::Run {
  int worker_id = 0;
  std::shared_ptr<ExecRequest> request;
  std::function<void(ExecResult)> done;
  bool answered = false;         // loop thread only
  EventLoop::TimerId timer = 0;  // loop thread only
};

InProcessExecutor::InProcessExecutor(EventLoop& loop, AppRunner& runner, int threads, int device)
    : loop_(loop),
      runner_(runner),
      device_(device),
      ahead_(device < 0 ? 1 : 0),
      running_(static_cast<std::size_t>(std::max(1, threads)), 0) {}

InProcessExecutor::~InProcessExecutor() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
}

void InProcessExecutor::Emit(int worker_id, WorkerEvent::Kind kind, KillCause cause) {
  if (!on_event_) return;
  WorkerEvent e;
  e.worker_id = worker_id;
  e.pid = ::getpid();
  e.device = device_;
  e.kind = kind;
  e.cause = cause;
  e.ahead = ahead_;
  on_event_(e);
}

Status InProcessExecutor::Start(EventSink on_event) {
  on_event_ = std::move(on_event);
  for (std::size_t i = 0; i < running_.size(); ++i) threads_.emplace_back([this] { ThreadMain(); });
  CLAMS_LOG(kInfo, "development mode: {} in-process worker thread(s){}", running_.size(),
            ahead_ > 0 ? ", each taking one request ahead" : "");
  for (std::size_t i = 0; i < running_.size(); ++i) {
    Emit(static_cast<int>(i) + 1, WorkerEvent::Kind::kStarted);
    Emit(static_cast<int>(i) + 1, WorkerEvent::Kind::kReady);
  }
  return Status::Ok();
}

void InProcessExecutor::ThreadMain() {
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !tasks_.empty(); });
      if (tasks_.empty()) return;
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    task();
  }
}

void InProcessExecutor::Dispatch(int worker_id, std::shared_ptr<ExecRequest> request,
                                 std::function<void(ExecResult)> done) {
  const std::size_t slot = static_cast<std::size_t>(worker_id - 1);
  if (worker_id < 1 || slot >= running_.size() || running_[slot] > ahead_) {
    ExecResult r;
    r.fate = ExecResult::Fate::kNotSent;
    r.fate_text = "worker " + std::to_string(worker_id) + " is not idle";
    done(std::move(r));
    return;
  }
  // Tasks leave the pool's queue in order, one per free thread: this one
  // starts now if a thread is free, else when the next one returns.
  const bool starts_now = std::accumulate(running_.begin(), running_.end(), 0) < static_cast<int>(running_.size());
  ++running_[slot];
  auto run = std::make_shared<Run>();
  run->worker_id = worker_id;
  run->request = std::move(request);
  run->done = std::move(done);
  if (starts_now) {
    ArmTimeout(run);
  } else {
    not_started_.push_back(run);
  }
  auto task = [this, slot, run] {
    ExecResult r;
    {
      // The app's log lines carry the request id.
      std::optional<log::ScopedRequestId> scope;
      if (!run->request->call.request_id.empty()) scope.emplace(run->request->call.request_id);
      r.answer = runner_.RunPrepared(run->request->call.mmif(), run->request->call.params);
    }
    loop_.Post([this, slot, run, r = std::move(r)]() mutable {
      --running_[slot];
      if (!not_started_.empty()) {
        // The thread this one freed has taken the oldest waiting task.
        ArmTimeout(not_started_.front());
        not_started_.pop_front();
      }
      if (run->timer != 0) loop_.Cancel(run->timer);
      if (!run->answered) {
        run->answered = true;
        run->done(std::move(r));
      } else {
        Emit(run->worker_id, WorkerEvent::Kind::kReady);  // the timed-out thread is free again
      }
    });
  };
  {
    std::lock_guard<std::mutex> lock(mu_);
    tasks_.push_back(std::move(task));
  }
  cv_.notify_one();
}

// A thread cannot be killed: on --request-timeout the client gets its 504 at
// once, and the slot stays busy until the app returns.
void InProcessExecutor::ArmTimeout(const std::shared_ptr<Run>& run) {
  if (run->request->timeout.count() <= 0) return;
  run->timer = loop_.After(run->request->timeout, [this, weak = std::weak_ptr<Run>(run)] {
    auto late = weak.lock();
    if (!late || late->answered) return;
    late->answered = true;
    late->timer = 0;
    // The thread runs on: the slot takes nothing until it returns.
    Emit(late->worker_id, WorkerEvent::Kind::kStopping, KillCause::kRequestTimeout);
    ExecResult r;
    r.fate = ExecResult::Fate::kTimedOut;
    r.cause = KillCause::kRequestTimeout;
    r.fate_text = "the request ran longer than --request-timeout on in-process worker " +
                  std::to_string(late->worker_id) + " (its thread keeps running until the app returns)";
    late->done(std::move(r));
  });
}

void InProcessExecutor::Shutdown(std::function<void()> done) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
  done();
}

}  // namespace clams::server
