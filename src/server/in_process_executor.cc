#include "server/in_process_executor.h"

#include <unistd.h>

#include "clams/base/log.h"

namespace clams::server {

InProcessExecutor::InProcessExecutor(EventLoop& loop, AppRunner& runner, int threads, int device)
    : loop_(loop), runner_(runner) {
  const auto now = std::chrono::steady_clock::now();
  for (int i = 0; i < threads; ++i) {
    WorkerInfo w;
    w.id = i + 1;
    w.pid = ::getpid();
    w.device = device;
    w.state = vram::WorkerState::kIdle;
    w.started = now;
    w.last_used = now;
    workers_.push_back(w);
  }
}

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

Status InProcessExecutor::Start(WorkersChanged on_change) {
  on_change_ = std::move(on_change);
  for (std::size_t i = 0; i < workers_.size(); ++i) threads_.emplace_back([this] { ThreadMain(); });
  CLAMS_LOG(kInfo, "development mode: {} in-process worker thread(s)", workers_.size());
  if (on_change_) on_change_();
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
  WorkerInfo* worker = nullptr;
  for (auto& w : workers_) {
    if (w.id == worker_id) worker = &w;
  }
  if (worker == nullptr || worker->state != vram::WorkerState::kIdle) {
    ExecResult r;
    r.fate = ExecResult::Fate::kNotSent;
    r.fate_text = "worker " + std::to_string(worker_id) + " is not idle";
    done(std::move(r));
    return;
  }
  worker->state = vram::WorkerState::kBusy;
  // A thread cannot be killed: on --request-timeout the client gets its 504
  // at once, and the slot stays busy until the app returns.
  auto answered = std::make_shared<bool>(false);
  auto shared_done = std::make_shared<std::function<void(ExecResult)>>(std::move(done));
  EventLoop::TimerId timer = 0;
  if (request->timeout.count() > 0) {
    timer = loop_.After(request->timeout, [answered, shared_done, worker_id] {
      if (*answered) return;
      *answered = true;
      ExecResult r;
      r.fate = ExecResult::Fate::kTimedOut;
      r.fate_text = "the request ran longer than --request-timeout on in-process worker " +
                    std::to_string(worker_id) + " (its thread keeps running until the app returns)";
      (*shared_done)(std::move(r));
    });
  }
  auto task = [this, worker_id, request = std::move(request), answered, shared_done, timer]() mutable {
    ExecResult r;
    r.answer = runner_.Run(request->body, request->query);
    loop_.Post([this, worker_id, r = std::move(r), answered, shared_done, timer]() mutable {
      if (timer != 0) loop_.Cancel(timer);
      for (auto& w : workers_) {
        if (w.id == worker_id) {
          w.state = vram::WorkerState::kIdle;
          ++w.requests;
          w.last_used = std::chrono::steady_clock::now();
        }
      }
      if (!*answered) {
        *answered = true;
        (*shared_done)(std::move(r));
      } else if (on_change_) {
        on_change_();  // the slot is free again
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
