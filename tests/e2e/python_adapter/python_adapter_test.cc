// End-to-end tests of `clams serve app.py`: an unmodified, template-shaped
// Python CLAMS app (app/app.py) served through clams-cpp's Python worker
// adapter (python/clams_worker.py) on Debian's python3 and Flask.
//
// clams-python is not a Debian package: the app runs on a test double of
// the SDK (sdk_double/clams, written from shared/spec/clams-app-behavior.md)
// and, for the PyTorch cap, on a fake `torch` (fake_torch/) that records
// the memory fraction it is given. Both are on PYTHONPATH in these tests
// only.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "e2e/server/e2e_util.h"
#include "testing/process.h"
#include "testing/testing.h"

namespace clams::e2e {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;
using Clock = std::chrono::steady_clock;

// Debian's interpreter, which has python3-flask (the pyenv python3 on PATH may not).
constexpr const char* kPython = "/usr/bin/python3";
// How fast `clams serve` must give up on an app that can never start (issue 12).
constexpr auto kFailFast = std::chrono::seconds(10);
// How long an app that holds its requests sleeps in the concurrency test.
constexpr int kHoldMs = 600;
constexpr std::uint64_t kGiB = 1ull << 30;

fs::path Here() { return testing::SourceDir() / "tests/e2e/python_adapter"; }
fs::path AppDir() { return Here() / "app"; }
fs::path Adapter() { return testing::BinaryDir() / "share/clams/clams_worker.py"; }
std::string Clams() { return testing::BuiltBinary("src/cli/clams").string(); }

std::map<std::string, std::string> PythonEnv(bool with_torch = false) {
  std::string path = (Here() / "sdk_double").string();
  if (with_torch) path += ":" + (Here() / "fake_torch").string();
  // No __pycache__ written into the source tree.
  return {{"PYTHONPATH", path}, {"PYTHONDONTWRITEBYTECODE", "1"}};
}

// A template-shaped MMIF input with one TextDocument.
std::string Input() { return TextMmif("the quick brown fox"); }

// The timestamp and running time of new views differ between two runs.
std::string WithoutRunTimes(const std::string& body) {
  static const std::regex kTimes(R"re("(timestamp|runningTime)": "[^"]*")re");
  return std::regex_replace(body, kTimes, "\"$1\": \"(run time)\"");
}

// What the app answers when run directly through the SDK double's Flask app.
struct DirectAnswer {
  int status = 0;
  std::string content_type;
  std::string body;
};

DirectAnswer RunDirectly(const std::string& method, const std::string& target, const std::string& body) {
  testing::TempDir tmp;
  testing::WriteFileOrDie(tmp.path() / "body", body);
  auto r = testing::RunProgram({kPython, (Here() / "direct.py").string(), (AppDir() / "app.py").string(), method,
                                target, (tmp.path() / "body").string(), (tmp.path() / "out.json").string()},
                               PythonEnv());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  json::value out = Json(testing::ReadFileOrDie(tmp.path() / "out.json"));
  return DirectAnswer{static_cast<int>(out.at("status").as_int64()), std::string(out.at("content_type").as_string()),
                      std::string(out.at("body").as_string())};
}

// Every process whose chain of parents reaches `root` (root included), from /proc.
std::vector<int> ProcessTree(int root) {
  std::map<int, int> parent;
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(e.path() / "stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const auto close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream fields(stat.substr(close + 2));
    std::string state;
    int ppid = 0;
    fields >> state >> ppid;
    if (state != "Z") parent[std::stoi(name)] = ppid;
  }
  std::vector<int> tree;
  for (const auto& [pid, ppid] : parent) {
    for (int p = pid, hops = 0; p > 1 && hops < 64; p = parent.count(p) ? parent[p] : 0, ++hops) {
      if (p == root) {
        tree.push_back(pid);
        break;
      }
    }
  }
  return tree;
}

std::string Cmdline(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline");
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (char& c : s) c = c == '\0' ? ' ' : c;
  return s;
}

// `clams serve [args] APP` on simulated GPUs (or none), waited for until every worker is idle.
class ServedApp {
 public:
  ServedApp(std::vector<std::string> args, const fs::path& app, bool with_torch = false, bool with_gpu = true) {
    env_ = PythonEnv(with_torch);
    if (with_gpu) env_["CLAMS_SIM_GPUS"] = "8GiB";
    env_["CLAMS_SIM_STATE"] = (tmp_.path() / "sim").string();
    env_["CLAMS_PROFILE_DIR"] = (tmp_.path() / "profiles").string();
    args.insert(args.end(), {"--expose-runtime", "--python", kPython, app.string()});
    server_ = std::make_unique<testing::ServerProcess>(Clams(), args, env_, std::chrono::seconds(60),
                                                       std::vector<std::string>{"serve"});
    EXPECT_TRUE(WaitReady(port(), std::chrono::seconds(60))) << server_->Log();
    EXPECT_TRUE(testing::WaitFor([&] { return AllWorkersIdle(port()); }, std::chrono::seconds(60)))
        << server_->Log();
  }
  ~ServedApp() {
    if (::testing::Test::HasFailure()) std::cerr << "--- server log ---\n" << server_->Log() << "---\n";
  }
  int port() const { return server_->port(); }
  std::string Log() const { return server_->Log(); }
  HttpResponse Send(const std::string& method, const std::string& target, const std::string& body = Input()) {
    HttpResponse r = Call(port(), method, target, body);
    if (method != "GET" && r.status == 200 && r.content_type == "application/json") KeepForSchemaCheck(r.body);
    return r;
  }

 private:
  testing::TempDir tmp_;
  std::map<std::string, std::string> env_;
  std::unique_ptr<testing::ServerProcess> server_;
};

// --- a client of one worker's socket, one kept-alive connection ------------------------------

struct RawAnswer {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
};

class SocketClient {
 public:
  explicit SocketClient(const fs::path& path) : path_(path) {}
  ~SocketClient() {
    if (fd_ >= 0) ::close(fd_);
  }
  int connects() const { return connects_; }

  RawAnswer Send(const std::string& method, const std::string& target, const std::string& body,
                 const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    Write(Request(method, target, body, headers));
    return Read();
  }

  static std::string Request(const std::string& method, const std::string& target, const std::string& body,
                             const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    std::string req = method + " " + target + " HTTP/1.1\r\nHost: worker\r\nContent-Length: " +
                      std::to_string(body.size()) + "\r\n";
    for (const auto& [k, v] : headers) req += k + ": " + v + "\r\n";
    return req + "\r\n" + body;
  }

  // Writes requests (several at once: pipelined) without reading answers.
  void Write(const std::string& requests) {
    if (fd_ < 0) Connect();
    EXPECT_EQ(::send(fd_, requests.data(), requests.size(), MSG_NOSIGNAL), static_cast<ssize_t>(requests.size()));
  }

  // The next answer on the connection.
  RawAnswer Read() {
    RawAnswer a;
    std::string head = ReadUntil("\r\n\r\n");
    std::istringstream lines(head);
    std::string line;
    std::getline(lines, line);
    if (line.size() > 12) a.status = std::stoi(line.substr(9, 3));
    while (std::getline(lines, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      const auto colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string name = line.substr(0, colon);
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      a.headers[name] = line.substr(line.find_first_not_of(' ', colon + 1));
    }
    const std::size_t length = a.headers.count("content-length") ? std::stoul(a.headers["content-length"]) : 0;
    a.body = ReadBytes(length);
    if (a.headers.count("connection") && a.headers["connection"] == "close") {
      ::close(fd_);
      fd_ = -1;
    }
    return a;
  }

 private:
  void Connect() {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path_.c_str(), sizeof(addr.sun_path) - 1);
    ASSERT_EQ(::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0) << std::strerror(errno);
    ++connects_;
    buffered_.clear();
  }
  bool Fill() {
    char buf[65536];
    const ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
    if (n <= 0) return false;
    buffered_.append(buf, static_cast<std::size_t>(n));
    return true;
  }
  std::string ReadUntil(const std::string& end) {
    std::size_t at;
    while ((at = buffered_.find(end)) == std::string::npos) {
      if (!Fill()) {
        ADD_FAILURE() << "the worker closed the connection";
        return "";
      }
    }
    std::string out = buffered_.substr(0, at);
    buffered_.erase(0, at + end.size());
    return out;
  }
  std::string ReadBytes(std::size_t n) {
    while (buffered_.size() < n) {
      if (!Fill()) {
        ADD_FAILURE() << "the worker closed the connection in a body";
        break;
      }
    }
    std::string out = buffered_.substr(0, n);
    buffered_.erase(0, std::min(n, buffered_.size()));
    return out;
  }

  fs::path path_;
  int fd_ = -1;
  int connects_ = 0;
  std::string buffered_;
};

bool CanConnect(const fs::path& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(fd);
  return ok;
}

// One adapter process started directly (no front), on a socket in a temp dir.
class Worker {
 public:
  explicit Worker(std::vector<std::string> extra_args = {}, int threads = 1) {
    socket_ = tmp_.path() / "worker.sock";
    torch_log_ = tmp_.path() / "torch.log";
    std::map<std::string, std::string> env = PythonEnv(/*with_torch=*/true);
    env["FAKE_TORCH_LOG"] = torch_log_.string();
    std::vector<std::string> argv = {kPython,    Adapter().string(), "--app",     AppDir().string(),
                                     "--socket", socket_.string(),   "--threads", std::to_string(threads)};
    argv.insert(argv.end(), extra_args.begin(), extra_args.end());
    process_ = std::make_unique<testing::Process>(argv, env, tmp_.path() / "worker.log");
    // The adapter listens once the app is built: a connection that succeeds means ready.
    EXPECT_TRUE(testing::WaitFor([&] { return CanConnect(socket_); }, std::chrono::seconds(30))) << Log();
  }
  const fs::path& socket() const { return socket_; }
  std::string Log() const { return testing::ReadFileOrDie(tmp_.path() / "worker.log"); }
  // The fractions the fake torch was given, one "<fraction> <device>" per call.
  std::vector<std::string> TorchCalls() const {
    std::vector<std::string> lines;
    std::ifstream in(torch_log_);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
  }

 private:
  testing::TempDir tmp_;
  fs::path socket_;
  fs::path torch_log_;
  std::unique_ptr<testing::Process> process_;
};

std::string Grant(std::uint64_t grant, std::uint64_t total) {
  return "grant=" + std::to_string(grant) + "; total=" + std::to_string(total);
}

class PythonAdapterTest : public ::testing::Test {
 protected:
};

// --- through clams serve ----------------------------------------------------------------------

TEST_F(PythonAdapterTest, TwoWorkersRunOneProcessEachAndAnswerAsTheAppRunDirectly) {
  ServedApp s({"--workers", "2"}, AppDir());
  // Each worker is exactly one process (no reloader child, no second copy of the app): the
  // adapter, not the template's __main__ block.
  const std::vector<int> pids = WorkerPids(s.port());
  ASSERT_EQ(pids.size(), 2u);
  for (int pid : pids) {
    EXPECT_THAT(ProcessTree(pid), ElementsAre(pid)) << Cmdline(pid);
    EXPECT_THAT(Cmdline(pid), HasSubstr("clams_worker.py --app " + (AppDir() / "app.py").string()));
  }
  // Metadata: the SDK's bytes.
  HttpResponse md = s.Send("GET", "/", "");
  DirectAnswer direct_md = RunDirectly("GET", "/", "");
  EXPECT_EQ(md.status, 200);
  EXPECT_EQ(md.body, direct_md.body);
  // Annotations, with and without parameters, warnings views included.
  for (const auto& [method, target] : std::vector<std::pair<std::string, std::string>>{
           {"POST", "/"}, {"PUT", "/?pretty=true"}, {"POST", "/?unknownParam=x&holdMs=1"}}) {
    HttpResponse r = s.Send(method, target);
    DirectAnswer d = RunDirectly(method, target, Input());
    EXPECT_EQ(r.status, 200) << target << "\n" << r.body;
    EXPECT_EQ(d.status, 200) << target;
    EXPECT_EQ(r.content_type, d.content_type) << target;
    EXPECT_EQ(WithoutRunTimes(r.body), WithoutRunTimes(d.body)) << target;
  }
  // Both workers serve (one request at a time each, so two concurrent requests use both).
  std::set<std::int64_t> served_by;
  std::vector<std::future<HttpResponse>> answers;
  for (int i = 0; i < 2; ++i) {
    answers.push_back(std::async(std::launch::async, [&] { return s.Send("POST", "/?holdMs=400&diagnostics=true"); }));
  }
  for (auto& a : answers) {
    HttpResponse r = a.get();
    ASSERT_EQ(r.status, 200) << r.body;
    served_by.insert(LastView(Json(r.body)).at("annotations").as_array().back().at("properties").at("pid").as_int64());
  }
  EXPECT_EQ(served_by, std::set<std::int64_t>(pids.begin(), pids.end()));
}

TEST_F(PythonAdapterTest, AppErrorIsTheSdkErrorViewNeverATracebackPage) {
  ServedApp s({"--workers", "1"}, AppDir());
  HttpResponse r = s.Send("POST", "/?raiseError=true");
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(r.content_type, "application/json");
  EXPECT_THAT(r.body, StartsWith("{\n  \"metadata\": {"));  // the SDK's pretty error view
  EXPECT_THAT(r.body, AllOf(Not(HasSubstr("<html")), Not(HasSubstr("<!doctype")), Not(HasSubstr("Werkzeug"))));
  json::value out = Json(r.body);
  const auto& error = LastView(out).at("metadata").at("error");
  EXPECT_EQ(error.at("message"), "<class 'ValueError'>: boom");
  // The stack trace is the app's and the SDK's, with nothing of the adapter in it.
  EXPECT_THAT(std::string(error.at("stackTrace").as_string()),
              AllOf(HasSubstr("in _annotate"), Not(HasSubstr("clams_worker"))));
  KeepForSchemaCheck(r.body);
  DirectAnswer d = RunDirectly("POST", "/?raiseError=true", Input());
  EXPECT_EQ(d.status, 500);
  EXPECT_EQ(WithoutRunTimes(r.body), WithoutRunTimes(d.body));
  // Input that is not JSON: the front reads every request once and refuses
  // it itself, with the SDK's first line (a 400: it never costs a worker).
  HttpResponse bad = s.Send("POST", "/", "this is not json");
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(bad.content_type, "text/plain; charset=utf-8");
  EXPECT_THAT(bad.body, StartsWith("Invalid input data. See below for validation error.\n\nmalformed JSON"));
}

TEST_F(PythonAdapterTest, FrameworkOomFromTheAppIsA503) {
  ServedApp s({"--workers", "1"}, AppDir(), /*with_torch=*/true);
  HttpResponse r = s.Send("POST", "/?oom=torch");
  EXPECT_EQ(r.status, 503);
  EXPECT_FALSE(server::FindHeader(r.headers, "Retry-After").empty());
  EXPECT_THAT(Call(s.port(), "GET", "/metrics").body, HasSubstr("clams_oom_total 1"));
}

TEST_F(PythonAdapterTest, Mmif050InputIsAnswered200InItsOwnVersion) {
  ServedApp s({"--workers", "1"}, AppDir());
  const std::string input =
      R"({"metadata": {"mmif": "http://mmif.clams.ai/0.5.0"}, "documents": [{"@type": "http://mmif.clams.ai/vocabulary/TextDocument/v1", "properties": {"id": "m1", "text": {"@value": "older MMIF still works"}}}], "views": []})";
  HttpResponse r = s.Send("POST", "/", input);
  ASSERT_EQ(r.status, 200) << r.body;
  json::value out = Json(r.body);
  EXPECT_EQ(out.at("metadata").at("mmif"), "http://mmif.clams.ai/0.5.0");
  EXPECT_EQ(LastView(out).at("annotations").as_array().size(), 4u);
  // Valid against MMIF 0.5.0's own schema too (python3-jsonschema).
  testing::TempDir tmp;
  testing::WriteFileOrDie(tmp.path() / "answer.json", r.body);
  auto check = testing::RunProgram({kPython, (testing::SourceDir() / "tests/tools/validate_mmif.py").string(),
                                    (testing::SharedDir() / "data/mmif-pre1/schema/0.5.0/mmif.json").string(),
                                    (tmp.path() / "answer.json").string()});
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
  // A shared 0.5.0 sample too (documents in views, short ids).
  const std::string sample =
      testing::ReadFileOrDie(testing::SharedDir() / "data/mmif-pre1/samples/0.5.0/bars-tones-slates.json");
  HttpResponse r2 = s.Send("POST", "/?hwFetch=true", sample);
  EXPECT_EQ(r2.status, 200) << r2.body;
  EXPECT_EQ(Json(r2.body).at("metadata").at("mmif"), "http://mmif.clams.ai/0.5.0");
}

// --- clams serve gives up at once on apps that cannot start ----------------------------------

struct Timed {
  testing::RunResult result;
  std::chrono::milliseconds took;
};

Timed RunServe(std::vector<std::string> args, std::map<std::string, std::string> env = PythonEnv()) {
  args.insert(args.begin(), {Clams(), "serve", "--port", "0"});
  const auto t0 = Clock::now();
  testing::RunResult r = testing::RunProgram(args, env, "", std::chrono::seconds(60));
  return Timed{r, std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0)};
}

TEST_F(PythonAdapterTest, Issue12BrokenImportStopsServeWithinSecondsWithTheImportError) {
  Timed t = RunServe({"--python", kPython, (Here() / "broken_app").string()});
  EXPECT_EQ(t.result.exit_code, 1) << t.result.err;
  EXPECT_LT(t.took, kFailFast);
  EXPECT_THAT(t.result.err,
              AllOf(HasSubstr("cannot start the app: worker 1 exited with code 3 before any worker ever answered: "
                              "the app cannot be imported; its last output:"),
                    HasSubstr("ModuleNotFoundError: No module named 'clams_test_dependency_that_is_not_installed'")));
}

TEST_F(PythonAdapterTest, AppFileWithoutAnAppObjectSaysWhatItFound) {
  Timed t = RunServe({"--python", kPython, (Here() / "no_app/app.py").string()});
  EXPECT_EQ(t.result.exit_code, 1) << t.result.err;
  EXPECT_LT(t.took, kFailFast);
  EXPECT_THAT(t.result.err, HasSubstr((Here() / "no_app/app.py").string() +
                                      " has no get_app() function and 2 ClamsApp subclasses (found: First, Second); "
                                      "add get_app() returning the app object"));
}

TEST_F(PythonAdapterTest, InterpreterWithoutTheSdkIsNamed) {
  Timed t = RunServe({"--python", kPython, AppDir().string()}, {{"PYTHONPATH", ""}, {"PYTHONDONTWRITEBYTECODE", "1"}});
  EXPECT_EQ(t.result.exit_code, 1) << t.result.err;
  EXPECT_LT(t.took, kFailFast);
  EXPECT_THAT(t.result.err, AllOf(HasSubstr("exited with code 5 before any worker ever answered: the Python "
                                            "interpreter cannot import the Python SDK (clams-python)"),
                                  HasSubstr("No module named 'clams'")));
}

TEST_F(PythonAdapterTest, MissingAppFileOrInterpreter) {
  Timed missing = RunServe({(Here() / "nowhere/app.py").string()});
  EXPECT_EQ(missing.result.exit_code, 2);
  EXPECT_THAT(missing.result.err, HasSubstr("nowhere/app.py: no such file"));
  Timed no_python = RunServe({"--python", "/nonexistent/python3", AppDir().string()});
  EXPECT_EQ(no_python.result.exit_code, 1) << no_python.result.err;
  EXPECT_LT(no_python.took, kFailFast);
  EXPECT_THAT(no_python.result.err,
              AllOf(HasSubstr("exited with code 127 before any worker ever answered"),
                    HasSubstr("cannot execute /nonexistent/python3: No such file or directory")));
  Timed generic = RunServe({"--python", kPython, "--", kPython, "app.py", "--port", "{port}"});
  EXPECT_EQ(generic.result.exit_code, 2);
  EXPECT_THAT(generic.result.err, HasSubstr("--python and --no-torch-cap apply to a Python app"));
}

// --- one worker, straight on its socket ---------------------------------------------------------

TEST_F(PythonAdapterTest, KeepAliveOneConnectionServesManyRequests) {
  Worker w;
  SocketClient c(w.socket());
  for (int i = 0; i < 30; ++i) {
    RawAnswer a = c.Send(i % 3 == 0 ? "GET" : "POST", "/", i % 3 == 0 ? "" : Input());
    ASSERT_EQ(a.status, 200) << i << " " << a.body;
    EXPECT_EQ(a.headers.count("connection"), 0u) << i;
  }
  EXPECT_EQ(c.connects(), 1);
}

// The front pipelines a request taken ahead behind the one a worker runs
// (issue 15): the adapter answers pipelined requests one after the other,
// in order, on the one connection.
TEST_F(PythonAdapterTest, PipelinedRequestsAreAnsweredInOrder) {
  Worker w;
  SocketClient c(w.socket());
  c.Write(SocketClient::Request("POST", "/?holdMs=300", Input()) + SocketClient::Request("GET", "/", "") +
          SocketClient::Request("POST", "/?pretty=true", Input()));
  RawAnswer first = c.Read();
  RawAnswer second = c.Read();
  RawAnswer third = c.Read();
  ASSERT_EQ(first.status, 200) << first.body;
  ASSERT_EQ(second.status, 200) << second.body;
  ASSERT_EQ(third.status, 200) << third.body;
  EXPECT_EQ(Json(first.body).at("views").as_array().size(), 1u);
  EXPECT_TRUE(Json(second.body).as_object().contains("identifier")) << second.body;  // the metadata
  EXPECT_EQ(Json(third.body).at("views").as_array().size(), 1u);
  EXPECT_THAT(third.body, HasSubstr("\n  "));  // pretty: its own parameters
  EXPECT_THAT(first.body, Not(HasSubstr("\n  ")));
  EXPECT_EQ(c.connects(), 1);
}

// Without a GPU, `clams serve app.py` hands each worker one request ahead
// while its requests are quick, and both requests get their own answers.
TEST_F(PythonAdapterTest, Issue15WithoutAGpuEachWorkerTakesARequestAhead) {
  ServedApp s({"--workers", "1"}, AppDir(), /*with_torch=*/false, /*with_gpu=*/false);
  auto worker = [&] { return FirstWorker(s.port()); };
  ASSERT_EQ(s.Send("POST", "/").status, 200);  // its requests are quick
  EXPECT_EQ(worker().at("ahead"), 1);
  auto first = std::async(std::launch::async, [&] { return s.Send("POST", "/?holdMs=1500"); });
  ASSERT_TRUE(testing::WaitFor([&] { return worker().at("running") == 1; }, std::chrono::seconds(10)));
  auto second = std::async(std::launch::async, [&] { return s.Send("POST", "/?pretty=true"); });
  ASSERT_TRUE(testing::WaitFor([&] { return worker().at("running") == 2; }, std::chrono::seconds(10)));
  EXPECT_EQ(Runtime(s.port()).at("queue").at("length"), 0);
  HttpResponse a = first.get();
  HttpResponse b = second.get();
  ASSERT_EQ(a.status, 200) << a.body;
  ASSERT_EQ(b.status, 200) << b.body;
  EXPECT_EQ(WithoutRunTimes(a.body), WithoutRunTimes(RunDirectly("POST", "/?holdMs=1500", Input()).body));
  EXPECT_EQ(WithoutRunTimes(b.body), WithoutRunTimes(RunDirectly("POST", "/?pretty=true", Input()).body));
}

TEST_F(PythonAdapterTest, TorchCapFollowsTheGrantOfEachRequest) {
  Worker w;
  SocketClient c(w.socket());
  EXPECT_EQ(c.Send("POST", "/", Input(), {{"X-Clams-Vram-Grant", Grant(1 * kGiB, 4 * kGiB)}}).status, 200);
  EXPECT_EQ(c.Send("POST", "/", Input()).status, 200);  // no grant: the cap stays
  EXPECT_EQ(c.Send("POST", "/", Input(), {{"X-Clams-Vram-Grant", Grant(8 * kGiB, 4 * kGiB)}}).status, 200);
  EXPECT_EQ(c.Send("POST", "/", Input(), {{"X-Clams-Vram-Grant", "grant=lots; total=4294967296"}}).status, 200);
  EXPECT_EQ(c.Send("POST", "/", Input(), {{"X-Clams-Vram-Grant", Grant(3 * kGiB, 4 * kGiB)}}).status, 200);
  EXPECT_THAT(w.TorchCalls(), ElementsAre("0.25 0", "1.0 0", "0.75 0"));
  EXPECT_THAT(w.Log(), HasSubstr("ignoring a malformed X-Clams-Vram-Grant header: 'grant=lots; total=4294967296'"));
  EXPECT_EQ(c.connects(), 1);
}

TEST_F(PythonAdapterTest, NoTorchCapLeavesPyTorchAlone) {
  Worker w({"--no-torch-cap"});
  SocketClient c(w.socket());
  EXPECT_EQ(c.Send("POST", "/", Input(), {{"X-Clams-Vram-Grant", Grant(1 * kGiB, 4 * kGiB)}}).status, 200);
  EXPECT_THAT(w.TorchCalls(), ElementsAre());
  EXPECT_THAT(w.Log(), HasSubstr("PyTorch cap: off (--no-torch-cap)"));
}

TEST_F(PythonAdapterTest, FrameworkOomAnswersCarryTheOomMark) {
  Worker w;
  SocketClient c(w.socket());
  RawAnswer torch_oom = c.Send("POST", "/?oom=torch", Input(), {{"X-Request-Id", "req-oom-1"}});
  EXPECT_EQ(torch_oom.status, 500);
  EXPECT_EQ(torch_oom.headers["x-clams-oom"], "1; tried=2147483648");
  EXPECT_THAT(torch_oom.body, HasSubstr("\"message\": \"<class 'torch.OutOfMemoryError'>: CUDA out of memory."));
  RawAnswer runtime_oom = c.Send("POST", "/?oom=runtime", Input());
  EXPECT_EQ(runtime_oom.status, 500);
  EXPECT_EQ(runtime_oom.headers["x-clams-oom"], "1");
  RawAnswer other = c.Send("POST", "/?raiseError=true", Input());
  EXPECT_EQ(other.status, 500);
  EXPECT_EQ(other.headers.count("x-clams-oom"), 0u);
  EXPECT_THAT(w.Log(), HasSubstr("request_id=req-oom-1 the app ran out of GPU memory (OutOfMemoryError: CUDA out of "
                                 "memory. Tried to allocate 2.00 GiB (GPU 0; 4.00 GiB total capacity)); answered "
                                 "with X-Clams-Oom: 1; tried=2147483648"));
  EXPECT_EQ(c.connects(), 1);
}

// The most requests of `answers` that ran at once in the app (its diagnostics annotation).
std::int64_t MostAtOnce(Worker& w, int requests) {
  std::vector<std::future<RawAnswer>> answers;
  for (int i = 0; i < requests; ++i) {
    answers.push_back(std::async(std::launch::async, [&] {
      SocketClient c(w.socket());  // a connection each, as the front will use with --threads
      return c.Send("POST", "/?diagnostics=true&holdMs=" + std::to_string(kHoldMs), Input());
    }));
  }
  std::int64_t most = 0;
  for (auto& f : answers) {
    RawAnswer a = f.get();
    EXPECT_EQ(a.status, 200) << a.body;
    if (a.status != 200) continue;
    most = std::max(most,
                    LastView(Json(a.body)).at("annotations").as_array().back().at("properties").at("running").as_int64());
  }
  return most;
}

TEST_F(PythonAdapterTest, ThreadsBoundTheRequestsRunningAtOnce) {
  Worker one({}, /*threads=*/1);
  EXPECT_EQ(MostAtOnce(one, 3), 1);
  Worker two({}, /*threads=*/2);
  EXPECT_EQ(MostAtOnce(two, 4), 2);
}

}  // namespace
}  // namespace clams::e2e
