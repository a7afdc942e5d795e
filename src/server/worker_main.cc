// The worker role of the production server: one process per worker, the
// App inside, up to `threads` requests at once on a Unix socket from the
// front. It runs exactly what the front decoded and admitted (wire.h): the
// body is the MMIF, the parameters come in a header.
#include <signal.h>
#include <unistd.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "clams/base/log.h"
#include "server/event_loop.h"
#include "server/http_server.h"
#include "server/process_executor.h"
#include "server/wire.h"

namespace clams::server {
namespace {

// Runs annotate calls on `threads` threads; answers go back to the loop.
class Pool {
 public:
  explicit Pool(int threads) {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Main(); });
  }
  ~Pool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  void Run(std::function<void()> task) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      tasks_.push_back(std::move(task));
    }
    cv_.notify_one();
  }

 private:
  void Main() {
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
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

HttpResponse Serve(AppRunner& runner, const HttpRequest& request) {
  if (request.method == "GET" && request.path == "/health") {
    HttpResponse response;
    response.content_type = "application/json";
    response.body = "{\"status\":\"ok\"}";
    return response;
  }
  auto call = wire::DecodeNative(request);
  if (!call.ok()) {
    AnnotateOutcome bad;
    bad.http_status = 400;
    bad.content_type = "text/plain; charset=utf-8";
    bad.body = std::string(kInvalidInputPrefix) + call.status().message();
    bad.failure = FailureKind::kBadInput;
    return wire::EncodeAnswer(std::move(bad));
  }
  // Every line logged while the request runs (the app's too) carries its id.
  std::optional<log::ScopedRequestId> scope;
  if (!call->request_id.empty()) scope.emplace(call->request_id);
  CLAMS_LOG(kDebug, "request started");
  AnnotateOutcome outcome = runner.RunPrepared(request.body, call->params);
  CLAMS_LOG(kDebug, "request answered {}", outcome.http_status);
  return wire::EncodeAnswer(std::move(outcome));
}

}  // namespace

int RunNativeWorker(AppRunner& runner, const std::string& socket_path, int ready_fd, int threads) {
  EventLoop loop;
  HttpServerOptions options;
  options.unix_socket = socket_path;
  // The front is trusted and enforces the client-facing limits; a worker
  // only needs to outlive long requests on its connections.
  options.max_body_bytes = 0;
  options.header_timeout = std::chrono::hours(24 * 365);
  options.idle_timeout = std::chrono::hours(24 * 365);
  options.body_timeout = std::chrono::hours(24);
  options.write_timeout = std::chrono::hours(24);
  threads = std::max(1, threads);
  std::unique_ptr<Pool> pool = threads > 1 ? std::make_unique<Pool>(threads) : nullptr;
  int in_flight = 0;
  bool stopping = false;
  auto server = HttpServer::Start(
      loop, options,
      [&](HttpRequest request, HttpServer::Respond respond, std::shared_ptr<CancelSignal>) {
        if (!pool) return respond(Serve(runner, request));
        ++in_flight;
        auto shared_request = std::make_shared<HttpRequest>(std::move(request));
        auto shared_respond = std::make_shared<HttpServer::Respond>(std::move(respond));
        pool->Run([&, shared_request, shared_respond] {
          auto response = std::make_shared<HttpResponse>(Serve(runner, *shared_request));
          loop.Post([&, response, shared_respond] {
            (*shared_respond)(std::move(*response));
            if (--in_flight == 0 && stopping) loop.Stop();
          });
        });
      });
  if (!server.ok()) {
    CLAMS_LOG(kCritical, "worker cannot listen on {}: {}", socket_path, server.status().ToString());
    return 1;
  }
  // SIGTERM: finish the requests being served, then exit (with one thread
  // they run on this thread, so the handler runs between requests). SIGINT
  // belongs to the front, which drains.
  loop.OnSignal(SIGTERM, [&] {
    stopping = true;
    (*server)->StopAccepting();
    if (in_flight == 0) loop.Stop();
  });
  ::signal(SIGINT, SIG_IGN);
  if (ready_fd >= 0) {
    const char token[] = "ready\n";
    if (::write(ready_fd, token, sizeof(token) - 1) < 0) {
      CLAMS_LOG(kError, "cannot tell the front that this worker is ready");
      return 1;
    }
    ::close(ready_fd);
  }
  loop.Run();
  return 0;
}

}  // namespace clams::server
