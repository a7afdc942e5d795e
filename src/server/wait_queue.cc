#include "server/wait_queue.h"

#include <algorithm>

#include "clams/gpu/probe.h"

namespace clams::server {

Status WaitQueue::CheckRoom(std::uint64_t bytes, std::string* reason) const {
  if (jobs_.size() >= limits_.max_count) {
    *reason = "queue_full";
    return ResourceExhaustedError("the queue is full: " + std::to_string(limits_.max_count) +
                                  " requests are already waiting (--max-queue); retry later");
  }
  if (limits_.max_bytes > 0 && bytes_ + bytes > limits_.max_bytes) {
    *reason = "queued_bytes";
    return ResourceExhaustedError("the queue holds " + gpu::FormatBytes(bytes_) + " of request bodies and this one (" +
                                  gpu::FormatBytes(bytes) + ") would pass the bound of " +
                                  gpu::FormatBytes(limits_.max_bytes) + " (--max-queued-bytes); retry later");
  }
  return Status::Ok();
}

void WaitQueue::PushBack(Job* job) {
  jobs_.push_back(job);
  bytes_ += Bytes(job);
  job->queued = true;
}

void WaitQueue::PushFront(Job* job) {
  jobs_.push_front(job);
  bytes_ += Bytes(job);
  job->queued = true;
}

void WaitQueue::Arm(Job* job, std::chrono::milliseconds after) {
  if (!job->queued) return;
  loop_.Cancel(job->deadline);
  const std::uint64_t id = job->id;
  job->deadline = loop_.After(std::max(after, std::chrono::milliseconds(1)), [this, id] { on_deadline_(id); });
}

void WaitQueue::Remove(Job* job) {
  if (!job->queued) return;
  job->queued = false;
  loop_.Cancel(job->deadline);
  job->deadline = 0;
  auto it = std::find(jobs_.begin(), jobs_.end(), job);
  if (it != jobs_.end()) {
    jobs_.erase(it);
    bytes_ -= Bytes(job);
  }
}

std::size_t WaitQueue::Ahead(std::uint64_t job_id) const {
  auto it = std::find_if(jobs_.begin(), jobs_.end(), [&](const Job* j) { return j->id == job_id; });
  return static_cast<std::size_t>(it - jobs_.begin());
}

}  // namespace clams::server
