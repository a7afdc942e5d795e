// End-to-end tests of `clams serve -- CMD`: an unmodified Python (Flask)
// CLAMS app run as worker processes behind the front, on simulated GPUs.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <future>
#include <iostream>
#include <set>
#include <thread>

#include "e2e/server/e2e_util.h"
#include "testing/process.h"
#include "testing/testing.h"

namespace clams::e2e {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;
namespace json = boost::json;
using Clock = std::chrono::steady_clock;
constexpr std::uint64_t kMiB = 1ull << 20;

std::string EmptyMmif() {
  return R"({"metadata": {"mmif": "http://mmif.clams.ai/1.1.0"}, "documents": [{"@type": "http://mmif.clams.ai/vocabulary/TextDocument/v1", "properties": {"id": "d1", "text": {"@value": "hi"}}}], "views": []})";
}

class Served {
 public:
  /// `app_args` go to flask_app.py before its --port/--socket.
  Served(const std::string& gpus, std::vector<std::string> args, bool unix_socket = false,
         const std::vector<std::string>& app_args = {}) {
    const std::string clams = testing::BuiltBinary("src/cli/clams").string();
    env_ = {{"CLAMS_SIM_GPUS", gpus}, {"CLAMS_SIM_STATE", (tmp_.path() / "sim").string()},
            {"CLAMS_PROFILE_DIR", (tmp_.path() / "profiles").string()}, {"CLAMS_BIN", clams}};
    std::vector<std::string> argv = args;
    argv.push_back("--expose-runtime");  // the tests read worker pids
    for (const std::string& a : {std::string("--"), std::string("/usr/bin/python3"),
                                 (testing::SourceDir() / "tests/e2e/serve/flask_app.py").string()}) {
      argv.push_back(a);
    }
    argv.insert(argv.end(), app_args.begin(), app_args.end());
    argv.push_back(unix_socket ? "--socket" : "--port");
    argv.push_back(unix_socket ? "{socket}" : "{port}");
    server_ = std::make_unique<testing::ServerProcess>(clams, argv, env_, std::chrono::seconds(60),
                                                       std::vector<std::string>{"serve"});
    EXPECT_TRUE(WaitReady(port(), std::chrono::seconds(60))) << server_->Log();
    // /ready needs one worker; tests reason about all of them.
    EXPECT_TRUE(testing::WaitFor([&] { return AllWorkersIdle(port()); }, std::chrono::seconds(60)))
        << server_->Log();
  }
  ~Served() {
    if (::testing::Test::HasFailure()) std::cerr << "--- server log ---\n" << server_->Log() << "---\n";
  }
  int port() const { return server_->port(); }
  testing::ServerProcess& server() { return *server_; }
  HttpResponse Post(const std::string& query, const std::string& body = EmptyMmif()) {
    HttpResponse r = Call(port(), "POST", "/" + query, body);
    if (r.status == 200) KeepForSchemaCheck(r.body);
    return r;
  }
  json::value Runtime() { return e2e::Runtime(port()); }
  std::vector<int> Pids() { return WorkerPids(port()); }
  bool AllIdle(std::size_t n) { return AllWorkersIdle(port(), n); }
  json::value Device() { return Gpus(env_).at("devices").as_array()[0]; }
  std::string Metrics() { return Call(port(), "GET", "/metrics").body; }

 private:
  testing::TempDir tmp_;
  std::map<std::string, std::string> env_;
  std::unique_ptr<testing::ServerProcess> server_;
};

class ServeTest : public ::testing::Test {
 protected:
};

TEST_F(ServeTest, MetadataPassesThroughAndSizesThePool) {
  Served s("8GiB", {});
  HttpResponse r = Call(s.port(), "GET", "/");
  ASSERT_EQ(r.status, 200);
  // The app's own bytes (Python's json.dumps separators), not a re-encoding.
  EXPECT_THAT(r.body, StartsWith("{\"name\": \"Flask Test App\", \"description\": "));
  json::value md = Json(r.body);
  EXPECT_EQ(md.at("est_gpu_mem_typ"), 3500);
  // 8 GiB / 3500 MB: 2 workers (fewer if the machine has fewer CPU slots).
  const std::size_t cpu = 2 * std::thread::hardware_concurrency() + 1;
  EXPECT_EQ(s.Runtime().at("workers").as_array().size(), std::min<std::size_t>(cpu, 2));
  EXPECT_THAT(Call(s.port(), "GET", "/?pretty").body, StartsWith("{\n  \"name\": \"Flask Test App\""));
}

TEST_F(ServeTest, WorkersServeConcurrentRequests) {
  Served s("24GiB", {"--workers", "3"});
  std::vector<std::future<HttpResponse>> answers;
  for (int i = 0; i < 9; ++i) answers.push_back(std::async(std::launch::async, [&] { return s.Post("?holdMs=200"); }));
  std::set<std::int64_t> pids;
  for (auto& a : answers) {
    HttpResponse r = a.get();
    ASSERT_EQ(r.status, 200) << r.body;
    json::value out = Json(r.body);
    pids.insert(LastView(out).at("annotations").as_array()[0].at("properties").at("pid").as_int64());
  }
  EXPECT_EQ(pids.size(), 3u);
}

TEST_F(ServeTest, AKilledWorkerIsReplacedAndItsRequestFails) {
  Served s("24GiB", {"--workers", "2"});
  const std::vector<int> before = s.Pids();
  HttpResponse r = s.Post("?crash=true");
  EXPECT_EQ(r.status, 500);
  EXPECT_THAT(std::string(LastView(Json(r.body)).at("metadata").at("error").at("message").as_string()),
              HasSubstr("killed by signal 9 (SIGKILL)"));
  ASSERT_TRUE(testing::WaitFor([&] { return s.AllIdle(2) && s.Pids() != before; }, std::chrono::seconds(30)));
  // A worker killed from outside while idle is replaced too.
  const std::vector<int> now = s.Pids();
  ASSERT_EQ(::kill(now[0], SIGKILL), 0);
  ASSERT_TRUE(testing::WaitFor([&] { return s.AllIdle(2) && s.Pids()[0] != now[0]; }, std::chrono::seconds(30)));
  EXPECT_EQ(s.Post("").status, 200);
}

TEST_F(ServeTest, AdmissionPreventsOomAcrossAppProcesses) {
  // 3,000 MiB per request held by a child process of the app; the card
  // holds two at a time. Without admission, four workers would overrun it.
  Served s("8GiB", {"--workers", "4"});
  std::vector<std::future<HttpResponse>> answers;
  for (int i = 0; i < 8; ++i) {
    answers.push_back(std::async(std::launch::async, [&] { return s.Post("?allocMiB=3000&holdMs=300"); }));
  }
  for (auto& a : answers) EXPECT_EQ(a.get().status, 200);
  json::value dev = s.Device();
  EXPECT_EQ(dev.at("oom_events"), 0);
  EXPECT_LE(dev.at("high_water_bytes").to_number<std::uint64_t>(), 8ull << 30);
  EXPECT_GE(dev.at("high_water_bytes").to_number<std::uint64_t>(), 3000 * kMiB);
}

TEST_F(ServeTest, HwFetchGetsTheMeasuredPeakOfTheWorkersProcessTree) {
  Served s("8GiB", {"--workers", "1"});
  HttpResponse r = s.Post("?allocMiB=1500&holdMs=300&hwFetch=true");
  ASSERT_EQ(r.status, 200) << r.body;
  json::value out = Json(r.body);
  const auto& hw = LastView(out).at("metadata").at("appProfiling").at("hardware");
  EXPECT_EQ(hw.at("cpu"), "x86_64, 1 cores");  // the app's own
  EXPECT_EQ(hw.at("cuda"), (json::array{"Simulated GPU 0, 8192 MiB total, 8192 MiB available, 1500 MiB peak used"}));
  EXPECT_THAT(std::string(server::FindHeader(r.headers, "X-Clams-Vram")), HasSubstr("peak=1572864000"));
  // Without hwFetch the body passes through untouched.
  HttpResponse plain = s.Post("?holdMs=1");
  EXPECT_THAT(plain.body, HasSubstr("\"runningTime\": \"0:00:00"));
}

TEST_F(ServeTest, CudaOomAnswerIs503AndInputErrorsAreAnsweredByTheFront) {
  Served s("8GiB", {"--workers", "1"});
  HttpResponse oom = s.Post("?oom=true");
  EXPECT_EQ(oom.status, 503);
  EXPECT_FALSE(std::string(server::FindHeader(oom.headers, "Retry-After")).empty());
  EXPECT_THAT(s.Metrics(), HasSubstr("clams_oom_total 1"));
  // The front reads every request once and refuses bad input itself (400):
  // it never reaches the app, reserves or waits.
  HttpResponse bad = Call(s.port(), "POST", "/", "this is not json");
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(bad.content_type, "text/plain; charset=utf-8");
  EXPECT_THAT(bad.body, StartsWith("Invalid input data. See below for validation error."));
}

// Issue 9.2: a real Python-SDK-shaped app answers 500 quoting a document
// location that says "out of memory": that is a FileNotFoundError, not an
// OOM; the class's estimate must not move.
TEST_F(ServeTest, Issue9ErrorTextQuotingOutOfMemoryIsNotAnOom) {
  Served s("8GiB", {"--workers", "1"});
  const std::string input = R"({"metadata": {"mmif": "http://mmif.clams.ai/1.1.0"}, "documents": [{"@type": "http://mmif.clams.ai/vocabulary/TextDocument/v1", "properties": {"id": "d1", "location": "file:///nonexistent/out of memory.txt"}}], "views": []})";
  HttpResponse r = Call(s.port(), "POST", "/?missing=true", input);
  EXPECT_EQ(r.status, 500);
  EXPECT_THAT(r.body, HasSubstr("FileNotFoundError"));
  EXPECT_THAT(s.Metrics(), HasSubstr("clams_oom_total 0"));
  const auto rt = s.Runtime();
  for (const auto& p : rt.at("profiles").at("classes").as_array()) EXPECT_EQ(p.at("oom_events"), 0);
}

TEST_F(ServeTest, SigtermDrainsAndStopsTheAppProcesses) {
  Served s("8GiB", {"--workers", "2"});
  const std::vector<int> pids = s.Pids();
  auto in_flight = std::async(std::launch::async, [&] { return s.Post("?holdMs=1500"); });
  ASSERT_TRUE(testing::WaitFor([&] { return s.Runtime().at("queue").at("running") == 1; }, std::chrono::seconds(5)));
  ASSERT_TRUE(s.server().process().Signal(SIGTERM));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(s.Post("").status, 503);
  EXPECT_EQ(in_flight.get().status, 200);
  auto status = s.server().process().Wait(std::chrono::seconds(20));
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
  for (int pid : pids) EXPECT_NE(::kill(pid, 0), 0) << pid;  // gone
}

TEST_F(ServeTest, AppsListeningOnAUnixSocketWork) {
  Served s("8GiB", {"--workers", "2"}, /*unix_socket=*/true);
  EXPECT_THAT(Call(s.port(), "GET", "/").body, StartsWith("{\"name\": \"Flask Test App\""));
  // Long enough for the sampler (20 ms while busy) on a loaded machine.
  HttpResponse r = s.Post("?allocMiB=500&holdMs=300&hwFetch=true");
  ASSERT_EQ(r.status, 200) << r.body;
  json::value out = Json(r.body);
  EXPECT_EQ(LastView(out).at("metadata").at("appProfiling").at("hardware").at("cuda"),
            (json::array{"Simulated GPU 0, 8192 MiB total, 8192 MiB available, 500 MiB peak used"}));
}

TEST_F(ServeTest, AppThatNeverAnswersFailsStartupWithAClearMessage) {
  testing::TempDir tmp;
  auto r = testing::RunProgram({testing::BuiltBinary("src/cli/clams").string(), "serve", "--startup-timeout", "3",
                                "--", "/usr/bin/python3", "-c", "import time; time.sleep(60)", "{port}"},
                               {}, "", std::chrono::seconds(30));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("not ready after 3 s"));
  auto usage = testing::RunProgram({testing::BuiltBinary("src/cli/clams").string(), "serve", "--", "/bin/true"});
  EXPECT_EQ(usage.exit_code, 2);
  EXPECT_THAT(usage.err, HasSubstr("{port}"));
}

// --- process lifetime (issue 10, item 6) ---------------------------------------------------

// DESIGN.md §9: no process of a worker's tree outlives the front.
constexpr auto kTreeGoneWithin = std::chrono::seconds(2);

TEST_F(ServeTest, Issue10NoProcessOfAFlaskReloaderTreeOrItsDaemonOutlivesAKilledFront) {
  // Each worker: Werkzeug's reloader (a parent holding the port) and the
  // child that serves, which left a daemon in its own session at start.
  Served s("24GiB", {"--workers", "2"}, /*unix_socket=*/false, {"--reloader", "--detach"});
  // One request per worker at once (each serves one at a time, and both
  // fit on the card): each answer names its worker's daemon.
  std::vector<std::future<HttpResponse>> answers;
  for (int i = 0; i < 2; ++i) {
    answers.push_back(std::async(std::launch::async, [&] { return s.Post("?holdMs=500"); }));
  }
  std::set<pid_t> daemons;
  for (auto& a : answers) {
    HttpResponse r = a.get();
    ASSERT_EQ(r.status, 200) << r.body;
    daemons.insert(static_cast<pid_t>(
        LastView(Json(r.body)).at("annotations").as_array()[0].at("properties").at("detached").as_int64()));
  }
  ASSERT_EQ(daemons.size(), 2u);
  std::vector<testing::ProcessId> processes = testing::ProcessTree(s.server().process().pid());
  for (pid_t pid : daemons) {
    auto p = testing::FindProcess(pid);
    ASSERT_TRUE(p.has_value()) << pid;
    if (std::none_of(processes.begin(), processes.end(), [&](const auto& q) { return q.pid == pid; })) {
      processes.push_back(*p);
    }
  }
  // The front, two reloaders, two serving children, two daemons (and the keepers).
  ASSERT_GE(processes.size(), 7u);
  ASSERT_TRUE(s.server().process().Signal(SIGKILL));
  ASSERT_TRUE(s.server().process().Wait(std::chrono::seconds(10)).has_value());
  const bool gone = testing::WaitFor([&] { return testing::StillRunningOf(processes).empty(); }, kTreeGoneWithin);
  EXPECT_TRUE(gone) << "still running 2 s after the front was killed (SIGKILL):\n"
                    << testing::StillRunningOf(processes);
  testing::KillStillRunning(processes);
}

// --- crash loops: a command that never answered is given up on within seconds (issue 10, item 7)

// How fast `clams serve` must give up on a command that can never start.
constexpr auto kFailFast = std::chrono::seconds(10);

struct TimedRun {
  testing::RunResult result;
  std::chrono::milliseconds took;
};

TimedRun RunServe(const std::vector<std::string>& command) {
  std::vector<std::string> argv = {testing::BuiltBinary("src/cli/clams").string(), "serve", "--port", "0", "--"};
  argv.insert(argv.end(), command.begin(), command.end());
  const auto t0 = Clock::now();
  testing::RunResult r = testing::RunProgram(argv, {}, "", std::chrono::seconds(60));
  return TimedRun{r, std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0)};
}

TEST_F(ServeTest, Issue10CommandNotFoundStopsServeWithinSeconds) {
  TimedRun t = RunServe({"/nonexistent/cmd", "--port", "{port}"});
  EXPECT_EQ(t.result.exit_code, 1) << t.result.err;
  EXPECT_LT(t.took, kFailFast);
  EXPECT_THAT(t.result.err,
              HasSubstr("cannot start the app: worker 1 exited with code 127 before any worker ever answered: the "
                        "command could not be executed (not found, or not executable); its last output:\n"
                        "  clams serve: cannot execute /nonexistent/cmd: No such file or directory"));
  // The worker's stderr is also logged as it comes, line by line.
  EXPECT_THAT(t.result.err, HasSubstr("): clams serve: cannot execute /nonexistent/cmd: No such file or directory\n"));
  EXPECT_THAT(t.result.err, HasSubstr("worker 1 (pid "));
}

TEST_F(ServeTest, Issue10AppRejectingPortStopsServeWithinSecondsWithItsStderr) {
  TimedRun t = RunServe({"/usr/bin/python3", "-c", "import argparse; argparse.ArgumentParser(prog='app.py').parse_args()",
                         "--port", "{port}"});
  EXPECT_EQ(t.result.exit_code, 1) << t.result.err;
  EXPECT_LT(t.took, kFailFast);
  EXPECT_THAT(t.result.err, HasSubstr("cannot start the app: worker 1 exited with code 2 before any worker ever "
                                      "answered: it failed 3 times in a row; its last output:\n"
                                      "  usage: app.py [-h]\n"
                                      "  app.py: error: unrecognized arguments: --port "));
}


}  // namespace
}  // namespace clams::e2e
