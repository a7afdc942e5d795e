#include "server/in_process_executor.h"

#include <unistd.h>

#include <optional>

#include "clams/base/log.h"

namespace clams::server {

InProcessExecutor::InProcessExecutor(EventLoop& loop, AppRunner& runner, int threads, int device)
    : loop_(loop), runner_(runner), device_(device), busy_(static_cast<std::size_t>(std::max(1, threads)), false) {}

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
  on_event_(e);
}

Status InProcessExecutor::Start(EventSink on_event) {
  on_event_ = std::move(on_event);
  for (std::size_t i = 0; i < busy_.size(); ++i) threads_.emplace_back([this] { ThreadMain(); });
  CLAMS_LOG(kInfo, "development mode: {} in-process worker thread(s)", busy_.size());
  for (std::size_t i = 0; i < busy_.size(); ++i) {
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
  if (worker_id < 1 || slot >= busy_.size() || busy_[slot]) {
    ExecResult r;
    r.fate = ExecResult::Fate::kNotSent;
    r.fate_text = "worker " + std::to_string(worker_id) + " is not idle";
    done(std::move(r));
    return;
  }
  busy_[slot] = true;
  // A thread cannot be killed: on --request-timeout the client gets its 504
  // at once, and the slot stays busy until the app returns.
  auto answered = std::make_shared<bool>(false);
  auto shared_done = std::make_shared<std::function<void(ExecResult)>>(std::move(done));
  EventLoop::TimerId timer = 0;
  if (request->timeout.count() > 0) {
    timer = loop_.After(request->timeout, [this, answered, shared_done, worker_id] {
      if (*answered) return;
      *answered = true;
      // The thread runs on: the slot takes nothing until it returns.
      Emit(worker_id, WorkerEvent::Kind::kStopping, KillCause::kRequestTimeout);
      ExecResult r;
      r.fate = ExecResult::Fate::kTimedOut;
      r.cause = KillCause::kRequestTimeout;
      r.fate_text = "the request ran longer than --request-timeout on in-process worker " + std::to_string(worker_id) +
                    " (its thread keeps running until the app returns)";
      (*shared_done)(std::move(r));
    });
  }
  auto task = [this, slot, worker_id, request = std::move(request), answered, shared_done, timer]() mutable {
    ExecResult r;
    {
      // The app's log lines carry the request id.
      std::optional<log::ScopedRequestId> scope;
      if (!request->call.request_id.empty()) scope.emplace(request->call.request_id);
      r.answer = runner_.RunPrepared(request->call.mmif(), request->call.params);
    }
    loop_.Post([this, slot, worker_id, r = std::move(r), answered, shared_done, timer]() mutable {
      if (timer != 0) loop_.Cancel(timer);
      busy_[slot] = false;
      if (!*answered) {
        *answered = true;
        (*shared_done)(std::move(r));
      } else {
        Emit(worker_id, WorkerEvent::Kind::kReady);  // the timed-out thread is free again
      }
    });
  };
  {
    std::lock_guard<std::mutex> lock(mu_);
    tasks_.push_back(std::move(task));
  }
  cv_.notify_one();
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
