// End-to-end tests of the production server on simulated GPUs: worker
// processes, supervision (crash, hang, OOM, recycling, SIGTERM drain,
// SIGHUP reload), runtime and metrics (issue 4), and VRAM admission
// control: estimates, profiles, queueing, eviction, OOM feedback (issue 5).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <iostream>
#include <memory>
#include <future>
#include <set>
#include <sstream>
#include <thread>

#include "e2e/production/workload.h"
#include "e2e/server/e2e_util.h"
#include "testing/process.h"
#include "testing/testing.h"

namespace clams::e2e {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;
namespace json = boost::json;
using Clock = std::chrono::steady_clock;


class ProductionTest : public ::testing::Test {
 protected:
};

// --- worker counts and placement ------------------------------------------------------

TEST_F(ProductionTest, WorkerCountFollowsVramAndCpuAndTheEnvironment) {
  const int cpu_workers = 2 * static_cast<int>(std::thread::hardware_concurrency()) + 1;
  {
    Workload w("24GiB", {});
    // typ 6000 MB on a 24 GiB card: min(2 x cores + 1, 4).
    EXPECT_EQ(w.Runtime().at("workers").as_array().size(), static_cast<std::size_t>(std::min(cpu_workers, 4)));
    EXPECT_THAT(w.server().Log(), HasSubstr("app requires 6000 MB, using"));
  }
  {
    Workload w("24GiB", {}, {{"CLAMS_GUNICORN_WORKERS", "2"}, {"CLAMS_WORKERS", "3"}});
    EXPECT_EQ(w.Runtime().at("workers").as_array().size(), 2u);
  }
  {
    Workload w("24GiB", {}, {{"CLAMS_WORKERS", "3"}});
    EXPECT_EQ(w.Runtime().at("workers").as_array().size(), 3u);
  }
  {
    Workload w("24GiB", {"--workers", "1"}, {{"CLAMS_WORKERS", "3"}});
    EXPECT_EQ(w.Runtime().at("workers").as_array().size(), 1u);
  }
}

TEST_F(ProductionTest, TwoDevicesGetWorkersInProportionToCapacity) {
  Workload w("0:24GiB,1:12GiB", {"--workers", "6"});
  std::map<int, int> per_device;
  json::value rt = w.Runtime();
  for (const auto& worker : rt.at("workers").as_array()) ++per_device[static_cast<int>(worker.at("device").as_int64())];
  EXPECT_EQ(per_device[0], 4);
  EXPECT_EQ(per_device[1], 2);
}

// --- supervision ------------------------------------------------------------------------

TEST_F(ProductionTest, MaxRequestsRecyclesWorkersWithNewPids) {
  Workload w("24GiB", {"--workers", "1", "--max-requests", "1"});
  const std::vector<int> before = w.Pids();
  ASSERT_EQ(w.Post("?model=tiny&holdMs=10").status, 200);
  ASSERT_TRUE(testing::WaitFor([&] { return w.AllIdle(1) && w.Pids() != before; }, std::chrono::seconds(10)));
  ASSERT_EQ(w.Post("?model=tiny&holdMs=10").status, 200);
  EXPECT_THAT(w.Metrics(), HasSubstr("clams_worker_restarts_total{reason=\"max_requests\"}"));
}

TEST_F(ProductionTest, CrashFailsOnlyItsRequestAndTheWorkerIsReplaced) {
  Workload w("24GiB", {"--workers", "2"});
  const std::vector<int> before = w.Pids();
  HttpResponse crash = w.Post("?failMode=crash");
  EXPECT_EQ(crash.status, 500);
  EXPECT_THAT(ErrorMessage(crash), HasSubstr("was killed by signal 6 (SIGABRT) while running the request"));
  ASSERT_TRUE(testing::WaitFor([&] { return w.AllIdle(2); }, std::chrono::seconds(10)));
  const std::vector<int> after = w.Pids();
  EXPECT_NE(before, after);
  EXPECT_EQ(w.Post("?model=tiny&holdMs=10").status, 200);
  EXPECT_THAT(w.Metrics(), HasSubstr("clams_worker_restarts_total{reason=\"crash\"} 1"));
}

TEST_F(ProductionTest, HangingWorkerIsKilledAt504AndReplaced) {
  Workload w("24GiB", {"--workers", "1", "--request-timeout", "1"});
  const auto start = Clock::now();
  HttpResponse hang = w.Post("?failMode=hang");
  EXPECT_EQ(hang.status, 504);
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(5));
  EXPECT_THAT(ErrorMessage(hang), HasSubstr("--request-timeout"));
  ASSERT_TRUE(testing::WaitFor([&] { return w.AllIdle(1); }, std::chrono::seconds(10)));
  EXPECT_EQ(w.Post("?model=tiny&holdMs=10").status, 200);
  EXPECT_THAT(w.Metrics(), HasSubstr("clams_worker_restarts_total{reason=\"request_timeout\"} 1"));
}

// A worker stopped (SIGSTOP, a debugger) while it allocates holds the
// simulated GPU's state lock. Here the test holds it. The front samples the
// devices before each admission decision; it did so under that lock, and so
// stopped with the worker: no --request-timeout, no /health, nothing until
// the lock was free. Now the front answers, times the request out (its
// worker waits for the lock) and serves again once the lock is free.
TEST_F(ProductionTest, AWorkerStoppedWhileItAllocatesDoesNotStopTheFront) {
  Workload w("24GiB", {"--workers", "1", "--request-timeout", "2"});
  ASSERT_EQ(w.Post("?model=tiny&holdMs=10").status, 200);
  const int lock = ::open((w.env().at("CLAMS_SIM_STATE") + ".lock").c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(lock, 0);
  ASSERT_EQ(::flock(lock, LOCK_EX), 0);

  const auto start = Clock::now();
  auto waiting = std::async(std::launch::async, [&] { return w.Post("?model=tiny&holdMs=10"); });
  const bool answered = waiting.wait_for(std::chrono::seconds(20)) == std::future_status::ready;
  HttpResponse health = Call(w.port(), "GET", "/health", "", {}, std::chrono::seconds(5));
  ::close(lock);  // a front that waited for the lock goes on now, so the test ends either way
  ASSERT_TRUE(answered) << "the front stopped while the lock was held";
  HttpResponse timed_out = waiting.get();
  EXPECT_EQ(timed_out.status, 504);
  EXPECT_THAT(ErrorMessage(timed_out), HasSubstr("--request-timeout"));
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(15));
  EXPECT_EQ(health.status, 200);

  ASSERT_TRUE(testing::WaitFor([&] { return w.AllIdle(1); }, std::chrono::seconds(10)));
  EXPECT_EQ(w.Post("?model=tiny&holdMs=10").status, 200);
}

// --- without GPUs: one request taken ahead per worker slot (issue 15) -----------------

// clams-test-app in production with one worker and no GPU, ready and idle.
std::unique_ptr<testing::ServerProcess> OneWorkerWithoutGpu(const std::vector<std::string>& flags) {
  std::vector<std::string> args = {"--production", "--workers", "1", "--expose-runtime"};
  args.insert(args.end(), flags.begin(), flags.end());
  auto app = std::make_unique<testing::ServerProcess>(testing::BuiltBinary("tests/e2e/apps/clams-test-app"), args);
  EXPECT_TRUE(WaitReady(app->port()));
  EXPECT_TRUE(testing::WaitFor([&] { return AllWorkersIdle(app->port(), 1); }, std::chrono::seconds(30)));
  return app;
}

// A worker without a GPU takes a second request while it runs one, once its
// requests are known to be quick: the front writes it behind the first on
// the worker's connection (HTTP/1.1 pipelining), so the worker starts it as
// soon as it has written the answer before. Its --request-timeout runs from
// when it starts: B waits 1.3 s behind A, runs 1.3 s, and is answered under
// a 2 s timeout. After such slow requests nothing is taken ahead: a request
// waits in the front's queue for whichever worker frees up first.
TEST_F(ProductionTest, Issue15AWorkerWithoutAGpuTakesARequestAheadWhileItsRequestsAreQuick) {
  auto server = OneWorkerWithoutGpu({"--request-timeout", "2"});
  ASSERT_FALSE(::testing::Test::HasFailure());
  testing::ServerProcess& app = *server;
  auto worker = [&] { return FirstWorker(app.port()); };
  EXPECT_EQ(worker().at("threads"), 1);
  EXPECT_FALSE(worker().contains("ahead"));  // nothing known about its requests yet
  ASSERT_EQ(Call(app.port(), "POST", "/", TextMmif("quick")).status, 200);
  EXPECT_EQ(worker().at("ahead"), 1);
  auto post = [&](const std::string& target, const std::string& text) {
    return std::async(std::launch::async, [&app, target, text] { return Call(app.port(), "POST", target, TextMmif(text)); });
  };
  auto a = post("/?mode=sleep&sleepMs=1300", "first");
  ASSERT_TRUE(testing::WaitFor([&] { return worker().at("running") == 1; }, std::chrono::seconds(10)));
  auto b = post("/?mode=sleep&sleepMs=1300", "second");
  // B is the worker's, not the queue's, while A runs.
  ASSERT_TRUE(testing::WaitFor([&] { return worker().at("running") == 2; }, std::chrono::seconds(10)));
  EXPECT_EQ(Runtime(app.port()).at("queue").at("length"), 0);
  HttpResponse ra = a.get();
  HttpResponse rb = b.get();
  ASSERT_EQ(ra.status, 200) << ra.body;
  ASSERT_EQ(rb.status, 200) << rb.body;
  // Each answer is its own request's.
  EXPECT_EQ(Json(ra.body).at("documents").as_array()[0].at("properties").at("text").at("@value"), "first");
  EXPECT_EQ(Json(rb.body).at("documents").as_array()[0].at("properties").at("text").at("@value"), "second");
  // Its requests are slow now: the next one waits in the queue.
  EXPECT_FALSE(worker().contains("ahead"));
  auto c = post("/?mode=sleep&sleepMs=1000", "third");
  ASSERT_TRUE(testing::WaitFor([&] { return worker().at("running") == 1; }, std::chrono::seconds(10)));
  auto d = post("/", "fourth");
  ASSERT_TRUE(testing::WaitFor([&] { return Runtime(app.port()).at("queue").at("length") == 1; },
                               std::chrono::seconds(10)));
  EXPECT_EQ(worker().at("running"), 1);
  EXPECT_EQ(c.get().status, 200);
  EXPECT_EQ(d.get().status, 200);
}

// The request taken ahead of one that hangs never started: when the worker
// is killed for the first one's --request-timeout, it is not failed with it
// but waits again and runs on the replacement.
TEST_F(ProductionTest, Issue15ARequestTakenAheadOfAHungOneRunsOnTheReplacement) {
  auto server = OneWorkerWithoutGpu({"--request-timeout", "3"});
  ASSERT_FALSE(::testing::Test::HasFailure());
  testing::ServerProcess& app = *server;
  ASSERT_EQ(Call(app.port(), "POST", "/", TextMmif("quick")).status, 200);  // its requests are quick
  const std::vector<int> before = WorkerPids(app.port());
  auto running = [&] { return FirstWorker(app.port()).at("running"); };
  auto hang = std::async(std::launch::async, [&] { return Call(app.port(), "POST", "/?mode=hang", TextMmif("h")); });
  ASSERT_TRUE(testing::WaitFor([&] { return running() == 1; }, std::chrono::seconds(10)));
  auto next = std::async(std::launch::async, [&] { return Call(app.port(), "POST", "/", TextMmif("n")); });
  ASSERT_TRUE(testing::WaitFor([&] { return running() == 2; }, std::chrono::seconds(10)));
  EXPECT_EQ(hang.get().status, 504);
  HttpResponse r = next.get();
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_NE(WorkerPids(app.port()), before);
  EXPECT_THAT(app.Log(), HasSubstr("ended before it started the request taken ahead"));
  EXPECT_THAT(app.Log(), HasSubstr("it waits again"));
}

// When the clients of both the running request and the one taken ahead have
// left, the worker is recycled (client_gone); the request taken ahead, which
// never started, is dropped rather than run again for nobody.
TEST_F(ProductionTest, Issue15ARequestTakenAheadWhoseClientLeftIsNotRunAgain) {
  auto server = OneWorkerWithoutGpu({"--client-gone-grace", "0.3"});
  ASSERT_FALSE(::testing::Test::HasFailure());
  testing::ServerProcess& app = *server;
  ASSERT_EQ(Call(app.port(), "POST", "/", TextMmif("quick")).status, 200);  // its requests are quick
  auto running = [&] { return FirstWorker(app.port()).at("running"); };
  auto leave_after = [&](std::chrono::milliseconds patience) {
    return std::async(std::launch::async, [&app, patience] {
      server::HttpRequest req;
      req.method = "POST";
      req.target = "/?mode=sleep&sleepMs=60000";
      req.body = TextMmif("x");
      return server::HttpRequestBlocking(
          server::Endpoint{"", "127.0.0.1", static_cast<std::uint16_t>(app.port())}, std::move(req), patience);
    });
  };
  auto a = leave_after(std::chrono::milliseconds(3000));  // B is taken ahead well before A's client leaves
  ASSERT_TRUE(testing::WaitFor([&] { return running() == 1; }, std::chrono::seconds(10)));
  auto b = leave_after(std::chrono::milliseconds(1000));
  ASSERT_TRUE(testing::WaitFor([&] { return running() == 2; }, std::chrono::seconds(10)));
  EXPECT_FALSE(a.get().ok());
  EXPECT_FALSE(b.get().ok());
  const auto metric = [&](const std::string& series) {
    return MetricValue(Call(app.port(), "GET", "/metrics").body, series);
  };
  ASSERT_TRUE(testing::WaitFor([&] { return metric("clams_worker_restarts_total{reason=\"client_gone\"}") == 1; },
                               std::chrono::seconds(10)));
  // Nothing runs again: the new worker is idle.
  ASSERT_TRUE(testing::WaitFor([&] { return AllWorkersIdle(app.port(), 1); }, std::chrono::seconds(10)))
      << app.Log();
  EXPECT_EQ(running(), 0);
  EXPECT_THAT(app.Log(), HasSubstr("is dropped: it was not run"));
  EXPECT_EQ(Call(app.port(), "POST", "/", TextMmif("y")).status, 200);
}

TEST_F(ProductionTest, AppOomIs503WithRetryAfterAndRaisesTheEstimate) {
  Workload w("24GiB", {"--workers", "1"});
  HttpResponse oom = w.Post("?model=small&failMode=oom&declareVram=false");
  EXPECT_EQ(oom.status, 503);
  EXPECT_FALSE(Header(oom, "Retry-After").empty());
  EXPECT_THAT(ErrorMessage(oom), HasSubstr("CUDA out of memory"));
  EXPECT_THAT(w.Metrics(), HasSubstr("clams_oom_total 1"));
  // The class's profile now remembers the OOM as a floor of at least 1.5 x
  // what was admitted (the measured peak is left alone: nothing succeeded).
  json::value rt = w.Runtime();
  const auto& classes = rt.at("profiles").at("classes").as_array();
  ASSERT_EQ(classes.size(), 1u);
  EXPECT_EQ(classes[0].at("oom_events"), 1);
  EXPECT_EQ(classes[0].at("peak_bytes").to_number<std::uint64_t>(), 0u);
  EXPECT_GE(classes[0].at("oom_floor_bytes").to_number<std::uint64_t>(), 3ull * kGiB);
  ASSERT_TRUE(testing::WaitFor([&] { return w.AllIdle(1); }, std::chrono::seconds(10)));
  EXPECT_THAT(w.Metrics(), HasSubstr("clams_worker_restarts_total{reason=\"oom\"} 1"));
}

TEST_F(ProductionTest, SigtermDrainsInFlightRequestsAndRefusesNewOnes) {
  Workload w("24GiB", {"--workers", "2"});
  auto in_flight = std::async(std::launch::async, [&] { return w.Post("?model=tiny&holdMs=1500"); });
  ASSERT_TRUE(testing::WaitFor([&] { return w.Runtime().at("queue").at("running") == 1; }, std::chrono::seconds(5)));
  ASSERT_TRUE(w.server().process().Signal(SIGTERM));
  ASSERT_TRUE(testing::WaitFor([&] { return Call(w.port(), "GET", "/ready").body.find("draining") != std::string::npos; },
                               std::chrono::seconds(5)));
  HttpResponse late = w.Post("?model=tiny&holdMs=10");
  EXPECT_EQ(late.status, 503);
  EXPECT_THAT(ErrorMessage(late), HasSubstr("shutting down"));
  EXPECT_EQ(in_flight.get().status, 200);
  auto status = w.server().process().Wait(std::chrono::seconds(15));
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
}

// Issue 14: gunicorn's signals change the worker count at run time.
TEST_F(ProductionTest, SigttinAddsAWorkerAndSigttouRemovesOne) {
  Workload w("24GiB", {"--workers", "2"});
  auto count = [&] { return w.Runtime().at("workers").as_array().size(); };
  ASSERT_TRUE(w.server().process().Signal(SIGTTIN));
  ASSERT_TRUE(testing::WaitFor([&] { return count() == 3 && w.AllIdle(3); }, std::chrono::seconds(20)));
  EXPECT_EQ(w.Post("?model=tiny&holdMs=1").status, 200);
  // One at a time: signals of one kind sent together may arrive as one.
  ASSERT_TRUE(w.server().process().Signal(SIGTTOU));
  ASSERT_TRUE(testing::WaitFor([&] { return count() == 2; }, std::chrono::seconds(20)));
  ASSERT_TRUE(w.server().process().Signal(SIGTTOU));
  ASSERT_TRUE(testing::WaitFor([&] { return count() == 1; }, std::chrono::seconds(20)));
  ASSERT_TRUE(w.server().process().Signal(SIGTTOU));  // never below one
  EXPECT_EQ(w.Post("?model=tiny&holdMs=1").status, 200);
  EXPECT_EQ(count(), 1u);
  EXPECT_THAT(w.server().Log(), HasSubstr("SIGTTIN: worker 3 added"));
}

TEST_F(ProductionTest, SighupReplacesEveryWorkerWithoutFailingRequests) {
  Workload w("24GiB", {"--workers", "3"});
  const std::vector<int> before = w.Pids();
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < 3; ++i) {
    clients.emplace_back([&] {
      while (!stop) {
        HttpResponse r = w.Post("?model=tiny&holdMs=30");
        (r.status == 200 ? ok : failed)++;
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ASSERT_TRUE(w.server().process().Signal(SIGHUP));
  const bool replaced = testing::WaitFor(
      [&] {
        std::vector<int> now = w.Pids();
        for (std::size_t i = 0; i < now.size(); ++i) {
          if (now[i] == before[i] || now[i] == 0) return false;
        }
        return true;
      },
      std::chrono::seconds(20));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  stop = true;
  for (auto& t : clients) t.join();
  EXPECT_TRUE(replaced);
  EXPECT_EQ(failed.load(), 0);
  EXPECT_GT(ok.load(), 10);
  EXPECT_THAT(w.Metrics(), HasSubstr("clams_worker_restarts_total{reason=\"reload\"} 3"));
}

TEST_F(ProductionTest, RuntimeAndMetricsReportWhatHappened) {
  Workload w("24GiB", {"--workers", "2"});
  HttpResponse r = w.Post("?model=base&holdMs=50&hwFetch=true");
  ASSERT_EQ(r.status, 200);
  // hwFetch: the measured per-process peak for the worker's device.
  json::value out = Json(r.body);
  const auto& hw = LastView(out).at("metadata").at("appProfiling").at("hardware");
  ASSERT_EQ(hw.at("cuda").as_array().size(), 1u);
  EXPECT_EQ(hw.at("cuda").as_array()[0], "Simulated GPU 0, 24576 MiB total, 24576 MiB available, 1178 MiB peak used");
  // X-Clams-Vram: declared estimate and the measured growth.
  EXPECT_EQ(Header(r, "X-Clams-Vram"), "estimate=1771674009; source=declared; peak=1234803097");
  json::value rt = w.Runtime();
  EXPECT_EQ(rt.at("mode"), "production");
  EXPECT_EQ(rt.at("accounting"), "per_process");
  const auto& dev = rt.at("devices").as_array()[0];
  EXPECT_EQ(dev.at("total_bytes"), 24 * kGiB);
  EXPECT_EQ(dev.at("used_bytes"), 1 * kGiB);  // the base model stays in the worker's cache
  std::uint64_t worker_vram = 0;
  for (const auto& wk : rt.at("workers").as_array()) worker_vram += wk.at("vram_bytes").to_number<std::uint64_t>();
  EXPECT_EQ(worker_vram, 1 * kGiB);
  const std::string m = w.Metrics();
  EXPECT_THAT(m, HasSubstr("clams_requests_total{code=\"200\"} 1"));
  EXPECT_THAT(m, HasSubstr("clams_gpu_memory_total_bytes{device=\"0\",uuid=\"SIM-GPU-0\"} 25769803776"));
  EXPECT_THAT(m, HasSubstr("clams_workers{state=\"idle\"} 2"));
  EXPECT_THAT(m, HasSubstr("clams_gpu_accounting_per_process 1"));
}

// --- process lifetime (issue 10, item 6) ---------------------------------------------------

// DESIGN.md §9: no process of a worker's tree outlives the front. How soon
// after the front's (or the worker's) death nothing may be left.
constexpr auto kTreeGoneWithin = std::chrono::seconds(2);

// The native test app in production mode on `workers` workers.
std::unique_ptr<testing::ServerProcess> StartTestApp(const testing::TempDir& tmp, const std::string& workers,
                                                     std::vector<std::string> args = {}) {
  args.insert(args.begin(), {"--production", "--workers", workers});
  const std::map<std::string, std::string> env = {{"CLAMS_PROFILE_DIR", (tmp.path() / "profiles").string()}};
  auto server =
      std::make_unique<testing::ServerProcess>(testing::BuiltBinary("tests/e2e/apps/clams-test-app"), args, env);
  EXPECT_TRUE(WaitReady(server->port())) << server->Log();
  EXPECT_TRUE(testing::WaitFor([&] { return AllWorkersIdle(server->port(), std::stoul(workers)); },
                               std::chrono::seconds(30)))
      << server->Log();
  return server;
}

// mode=spawn on one worker: the pids of the child it left in its process
// group and of the daemon (setsid, parent gone) it left outside.
std::vector<pid_t> SpawnOnAWorker(int port) {
  HttpResponse r = Call(port, "POST", "/?mode=spawn", TextMmif("hello"));
  EXPECT_EQ(r.status, 200) << r.body;
  if (r.status != 200) return {};
  KeepForSchemaCheck(r.body);
  const json::value out = Json(r.body);
  const auto& props = LastView(out).at("annotations").as_array()[0].at("properties");
  std::vector<pid_t> pids = {static_cast<pid_t>(props.at("child").as_int64()),
                             static_cast<pid_t>(props.at("daemon").as_int64())};
  for (pid_t pid : pids) EXPECT_TRUE(testing::FindProcess(pid).has_value()) << pid;
  return pids;
}

// `root`'s process tree now, plus `extra` (processes that left it).
std::vector<testing::ProcessId> TreeAndOthers(pid_t root, const std::vector<pid_t>& extra) {
  std::vector<testing::ProcessId> all = testing::ProcessTree(root);
  for (pid_t pid : extra) {
    auto p = testing::FindProcess(pid);
    if (p && std::none_of(all.begin(), all.end(), [&](const testing::ProcessId& q) { return q.pid == pid; })) {
      all.push_back(*p);
    }
  }
  return all;
}

// Issue 14: one request can be followed through the logs of the front and of
// the worker that ran it by its X-Request-Id.
TEST_F(ProductionTest, Issue14TheRequestIdIsOnTheAnswerAndOnTheFrontsAndTheWorkersLines) {
  Workload w("24GiB", {"--workers", "1", "--log-level", "debug"});
  const std::string id = "trace-5f3a9c";
  HttpResponse r = w.PostBody("?model=tiny&holdMs=10", VideoMmif(), {{"X-Request-Id", id}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Header(r, "X-Request-Id"), id);
  const pid_t front = w.server().process().pid();
  const int worker = w.Pids().at(0);
  auto line_of = [&](int pid, const std::string& text) {
    std::istringstream lines(w.server().Log());
    for (std::string line; std::getline(lines, line);) {
      if (line.find("pid=" + std::to_string(pid) + " ") != std::string::npos &&
          line.find("request_id=" + id + " ") != std::string::npos && line.find(text) != std::string::npos) {
        return true;
      }
    }
    return false;
  };
  // Every line the worker logs while it runs the request carries the id.
  EXPECT_TRUE(testing::WaitFor([&] { return line_of(worker, "request answered 200"); }, std::chrono::seconds(10)))
      << w.server().Log();
  EXPECT_TRUE(line_of(worker, "request started"));
  // The front's access line too.
  EXPECT_TRUE(testing::WaitFor([&] { return line_of(front, "\"POST /?model=tiny&holdMs=10\" 200"); },
                               std::chrono::seconds(10)))
      << w.server().Log();
  // No id, or one with characters an id may not have: a fresh one, on the answer.
  const server::Headers invalid = {{"X-Request-Id", "not an id; has spaces"}};
  for (const server::Headers& headers : {server::Headers{}, invalid}) {
    HttpResponse g = w.PostBody("?model=tiny&holdMs=10", VideoMmif(), headers);
    ASSERT_EQ(g.status, 200) << g.body;
    const std::string fresh = Header(g, "X-Request-Id");
    EXPECT_EQ(fresh.size(), 16u) << fresh;
    EXPECT_NE(fresh, id);
  }
}

TEST_F(ProductionTest, Issue10NoProcessOfAWorkerTreeOutlivesAKilledFront) {
  testing::TempDir tmp;
  auto server = StartTestApp(tmp, "2");
  const std::vector<pid_t> spawned = SpawnOnAWorker(server->port());
  ASSERT_EQ(spawned.size(), 2u);
  const std::vector<testing::ProcessId> processes = TreeAndOthers(server->process().pid(), spawned);
  // The front, two workers, the child and the daemon (and the keepers).
  ASSERT_GE(processes.size(), 5u);
  ASSERT_TRUE(server->process().Signal(SIGKILL));
  ASSERT_TRUE(server->process().Wait(std::chrono::seconds(10)).has_value());
  const bool gone = testing::WaitFor([&] { return testing::StillRunningOf(processes).empty(); }, kTreeGoneWithin);
  EXPECT_TRUE(gone) << "still running 2 s after the front was killed (SIGKILL):\n"
                    << testing::StillRunningOf(processes);
  testing::KillStillRunning(processes);
}

TEST_F(ProductionTest, Issue10AWorkerKilledForTheRequestTimeoutTakesItsWholeTree) {
  testing::TempDir tmp;
  auto server = StartTestApp(tmp, "1", {"--request-timeout", "1"});
  const std::vector<pid_t> spawned = SpawnOnAWorker(server->port());
  ASSERT_EQ(spawned.size(), 2u);
  // The worker's tree: every process below the front, and the daemon.
  std::vector<testing::ProcessId> processes = TreeAndOthers(server->process().pid(), spawned);
  ASSERT_EQ(processes.front().pid, server->process().pid());
  processes.erase(processes.begin());
  HttpResponse hang = Call(server->port(), "POST", "/?mode=hang", TextMmif("hello"));
  EXPECT_EQ(hang.status, 504);
  const bool gone = testing::WaitFor([&] { return testing::StillRunningOf(processes).empty(); }, kTreeGoneWithin);
  EXPECT_TRUE(gone) << "still running 2 s after the worker was killed:\n" << testing::StillRunningOf(processes);
  testing::KillStillRunning(processes);
  // The replacement serves.
  ASSERT_TRUE(testing::WaitFor([&] { return AllWorkersIdle(server->port(), 1); }, std::chrono::seconds(30)));
  HttpResponse ok = Call(server->port(), "POST", "/", TextMmif("hello"));
  EXPECT_EQ(ok.status, 200);
  KeepForSchemaCheck(ok.body);
}

// --- admission control ----------------------------------------------------------------------

TEST_F(ProductionTest, TwelveLargeRequestsOn24GiBWithSixWorkersNeverOverrunTheCard) {
  Workload w("24GiB", {"--workers", "6", "--max-queue", "50"});
  std::vector<std::future<HttpResponse>> answers;
  for (int i = 0; i < 12; ++i) {
    answers.push_back(std::async(std::launch::async, [&] { return w.Post("?model=large&holdMs=150"); }));
  }
  for (auto& a : answers) EXPECT_EQ(a.get().status, 200);
  json::value gpus = w.Gpus();
  const auto& dev = gpus.at("devices").as_array()[0];
  EXPECT_EQ(dev.at("oom_events"), 0);
  EXPECT_LE(dev.at("high_water_bytes").to_number<std::uint64_t>(), 24 * kGiB);
  EXPECT_GE(dev.at("high_water_bytes").to_number<std::uint64_t>(), 10 * kGiB);
}

TEST_F(ProductionTest, ForeignMemoryMakesRequestsWaitNotFail) {
  Workload w("24GiB", {"--workers", "2"});
  testing::TempDir dir;
  testing::Process foreign({testing::BuiltBinary("src/cli/clams").string(), "gpu", "sim-alloc", "22GiB", "--seconds", "2"},
                           w.env(), dir.path() / "foreign.log");
  ASSERT_TRUE(testing::WaitFor([&] { return w.Gpus().at("devices").as_array()[0].at("used_bytes") == 22 * kGiB; },
                               std::chrono::seconds(5)));
  const auto start = Clock::now();
  HttpResponse r = w.Post("?model=small&holdMs=10");  // needs 2.3 GiB, 2 GiB free
  EXPECT_EQ(r.status, 200);
  EXPECT_GT(Clock::now() - start, std::chrono::milliseconds(1000));
  EXPECT_EQ(w.Gpus().at("devices").as_array()[0].at("oom_events"), 0);
}

TEST_F(ProductionTest, QueueTimeoutAndQueueFullAre503WithRetryAfterAndTheReason) {
  Workload w("24GiB", {"--workers", "2", "--queue-timeout", "1", "--max-queue", "1"});
  testing::TempDir dir;
  testing::Process foreign({testing::BuiltBinary("src/cli/clams").string(), "gpu", "sim-alloc", "23GiB", "--seconds", "6"},
                           w.env(), dir.path() / "foreign.log");
  ASSERT_TRUE(testing::WaitFor([&] { return w.Gpus().at("devices").as_array()[0].at("used_bytes") == 23 * kGiB; },
                               std::chrono::seconds(5)));
  auto waiting = std::async(std::launch::async, [&] { return w.Post("?model=small&holdMs=10"); });
  ASSERT_TRUE(testing::WaitFor([&] { return w.Runtime().at("queue").at("length") == 1; }, std::chrono::seconds(5)));
  HttpResponse full = w.Post("?model=tiny&holdMs=10");
  EXPECT_EQ(full.status, 503);
  EXPECT_FALSE(Header(full, "Retry-After").empty());
  EXPECT_THAT(ErrorMessage(full), HasSubstr("the queue is full"));
  HttpResponse timed_out = waiting.get();
  EXPECT_EQ(timed_out.status, 503);
  EXPECT_GE(std::stoi(Header(timed_out, "Retry-After")), 1);
  const std::string why = ErrorMessage(timed_out);
  EXPECT_THAT(why, HasSubstr("(--queue-timeout)"));
  EXPECT_THAT(why, HasSubstr("it waited for GPU memory: it needs 2.8 GiB"));
  EXPECT_THAT(why, HasSubstr("0 request(s) ahead"));
  const std::string m = w.Metrics();
  EXPECT_THAT(m, HasSubstr("clams_admission_rejections_total{reason=\"queue_full\"} 1"));
  EXPECT_THAT(m, HasSubstr("clams_admission_rejections_total{reason=\"queue_timeout\"} 1"));
}

TEST_F(ProductionTest, RequestLargerThanAnyDeviceIs422AtOnce) {
  Workload w("8GiB", {"--workers", "1"});
  const auto start = Clock::now();
  HttpResponse r = w.Post("?model=large");
  EXPECT_EQ(r.status, 422);
  EXPECT_LT(Clock::now() - start, std::chrono::milliseconds(500));
  EXPECT_THAT(ErrorMessage(r), HasSubstr("needs 11.5 GiB of GPU memory (declared estimate), but no device can ever "
                                         "provide more than 8.0 GiB"));
  EXPECT_EQ(Header(r, "X-Clams-Vram"), "estimate=12348030976; source=declared; peak=0");
}

TEST_F(ProductionTest, ProfileIsWrittenReusedAfterARestartAndReplacedWhenCorrupt) {
  testing::TempDir profiles;
  const std::string query = "?model=small&holdMs=60&declareVram=false";
  {
    Workload w("24GiB", {"--workers", "1"}, {}, profiles.path());
    HttpResponse first = w.Post(query);
    ASSERT_EQ(first.status, 200);
    // Nothing declared or measured yet: the metadata's est_gpu_mem_typ (6000 MiB), plus
    // the fresh worker's allowance for its CUDA context (512 MiB).
    EXPECT_THAT(Header(first, "X-Clams-Vram"), StartsWith("estimate=6828326912; source=metadata; peak=2469606195"));
  }
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::recursive_directory_iterator(profiles.path())) {
    if (e.is_regular_file()) files.push_back(e.path());
  }
  ASSERT_EQ(files.size(), 1u);
  EXPECT_THAT(files[0].filename().string(), StartsWith("memory_"));
  json::value profile = Json(testing::ReadFileOrDie(files[0]));
  EXPECT_EQ(profile.at("peak_bytes"), 2469606195u);  // 2 GiB weights + 15 % activations
  EXPECT_EQ(profile.at("samples"), 1);
  {
    Workload w("24GiB", {"--workers", "1"}, {}, profiles.path());
    HttpResponse again = w.Post(query);
    ASSERT_EQ(again.status, 200);
    // Measured peak x 1.2, plus the fresh-worker allowance.
    EXPECT_THAT(Header(again, "X-Clams-Vram"), StartsWith("estimate=3500398346; source=profile;"));
  }
  testing::WriteFileOrDie(files[0], "{not json");
  {
    Workload w("24GiB", {"--workers", "1"}, {}, profiles.path());
    HttpResponse after = w.Post(query);
    ASSERT_EQ(after.status, 200);
    EXPECT_THAT(Header(after, "X-Clams-Vram"), StartsWith("estimate=6828326912; source=metadata;"));
  }
  EXPECT_EQ(Json(testing::ReadFileOrDie(files[0])).at("peak_bytes"), 2469606195u);
}

TEST_F(ProductionTest, EvictionLetsAMediumRequestInWhileIdleWorkersHoldLargeModels) {
  Workload w("24GiB", {"--workers", "2"});
  auto a = std::async(std::launch::async, [&] { return w.Post("?model=large&holdMs=300"); });
  auto b = std::async(std::launch::async, [&] { return w.Post("?model=large&holdMs=300"); });
  ASSERT_EQ(a.get().status, 200);
  ASSERT_EQ(b.get().status, 200);
  // Both workers now hold a 10 GiB model: 4 GiB free, medium needs 5.75 GiB.
  ASSERT_EQ(w.Gpus().at("devices").as_array()[0].at("used_bytes"), 20 * kGiB);
  HttpResponse medium = w.Post("?model=medium&holdMs=10");
  EXPECT_EQ(medium.status, 200);
  EXPECT_THAT(w.Metrics(), HasSubstr("clams_evictions_total 1"));
  json::value gpus = w.Gpus();
  EXPECT_EQ(gpus.at("devices").as_array()[0].at("oom_events"), 0);
  EXPECT_LE(gpus.at("devices").as_array()[0].at("high_water_bytes").to_number<std::uint64_t>(), 24 * kGiB);
}

TEST_F(ProductionTest, WarmWorkerIsPreferredForItsClass) {
  Workload w("24GiB", {"--workers", "3"});
  ASSERT_EQ(w.Post("?model=turbo&holdMs=10").status, 200);
  for (int i = 0; i < 3; ++i) ASSERT_EQ(w.Post("?model=turbo&holdMs=10").status, 200);
  // Always the same warm worker: the model was loaded once.
  EXPECT_EQ(w.Gpus().at("devices").as_array()[0].at("used_bytes"), 6 * kGiB);
  std::size_t busy_workers = 0;
  json::value rt = w.Runtime();
  for (const auto& wk : rt.at("workers").as_array()) busy_workers += wk.at("requests").to_number<std::uint64_t>() > 0;
  EXPECT_EQ(busy_workers, 1u);
}

TEST_F(ProductionTest, LargeRequestIsNotStarvedByAStreamOfSmallOnes) {
  Workload w("24GiB", {"--workers", "4"});
  std::atomic<bool> stop{false};
  std::vector<std::thread> small;
  for (int i = 0; i < 4; ++i) {
    small.emplace_back([&] {
      while (!stop) (void)w.Post("?model=small&holdMs=200");
    });
  }
  ASSERT_TRUE(testing::WaitFor([&] { return w.Runtime().at("queue").at("running").to_number<int>() >= 2; },
                               std::chrono::seconds(10)));
  const auto start = Clock::now();
  HttpResponse large = w.Post("?model=large&holdMs=50");
  const auto waited = Clock::now() - start;
  stop = true;
  for (auto& t : small) t.join();
  EXPECT_EQ(large.status, 200);
  // Bound: its reservation (EASY backfilling): the smalls running when it
  // arrived end; new ones do not overtake it.
  EXPECT_LT(waited, std::chrono::seconds(5));
  EXPECT_EQ(w.Gpus().at("devices").as_array()[0].at("oom_events"), 0);
}

TEST_F(ProductionTest, MixedTwoDevicePlacement) {
  Workload w("0:24GiB,1:8GiB", {"--workers", "4"});
  std::vector<std::future<HttpResponse>> answers;
  for (int i = 0; i < 3; ++i) answers.push_back(std::async(std::launch::async, [&] { return w.Post("?model=large&holdMs=100"); }));
  for (int i = 0; i < 4; ++i) answers.push_back(std::async(std::launch::async, [&] { return w.Post("?model=small&holdMs=100"); }));
  for (auto& a : answers) EXPECT_EQ(a.get().status, 200);
  json::value gpus = w.Gpus();
  for (const auto& d : gpus.at("devices").as_array()) {
    EXPECT_EQ(d.at("oom_events"), 0);
    EXPECT_LE(d.at("high_water_bytes").to_number<std::uint64_t>(), d.at("total_bytes").to_number<std::uint64_t>());
  }
  // Large models (11.5 GiB) only ever ran on the 24 GiB device.
  EXPECT_LT(gpus.at("devices").as_array()[1].at("high_water_bytes").to_number<std::uint64_t>(), 8 * kGiB);
}

}  // namespace
}  // namespace clams::e2e
