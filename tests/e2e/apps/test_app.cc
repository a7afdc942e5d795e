// clams-test-app: a small native app whose behaviour tests choose per
// request with `mode`, for the end-to-end tests of the server.
//   ok       one view with a TimeFrame (and the input's TextDocument count)
//   throw    throws std::runtime_error("boom")
//   status   returns INVALID_ARGUMENT "no usable input"
//   warn     succeeds with two warnings (clams::Warn)
//   invalid  produces schema-invalid output (a view whose app is erased)
//   crash    abort()s the process (SIGABRT)
//   hang     sleeps forever
//   oom      returns a CUDA-style out-of-memory error
//   sleep    sleeps sleepMs, then ok
//   spawn    ok, after starting two processes that outlive the request: a
//            child in the worker's process group and a daemon (double fork,
//            setsid) whose parent exits at once; their pids are the
//            TimeFrame's properties "child" and "daemon"
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <thread>

#include "clams/app/app.h"
#include "clams/mmif/vocabulary.h"
#include "clams/server/serve.h"

namespace {

namespace vocab = clams::mmif::vocab;
namespace json = boost::json;

// Processes started by mode=spawn end by themselves after this long if
// nothing kills them.
constexpr int kSpawnedSeconds = 300;

struct Spawned {
  pid_t child = -1;
  pid_t daemon = -1;
};

// mode=spawn. The worker has threads: between fork and exec only
// async-signal-safe calls.
Spawned SpawnSleepers() {
  std::string seconds = std::to_string(kSpawnedSeconds);
  char sleep_name[] = "sleep";
  char* argv[] = {sleep_name, seconds.data(), nullptr};
  Spawned s;
  s.child = ::fork();
  if (s.child == 0) {
    ::execv("/bin/sleep", argv);
    ::_exit(127);
  }
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return s;
  const pid_t middle = ::fork();
  if (middle == 0) {
    ::setsid();
    const pid_t daemon = ::fork();
    if (daemon == 0) {
      ::execv("/bin/sleep", argv);
      ::_exit(127);
    }
    (void)!::write(fds[1], &daemon, sizeof(daemon));
    ::_exit(0);
  }
  ::close(fds[1]);
  if (middle > 0) {
    if (::read(fds[0], &s.daemon, sizeof(s.daemon)) != static_cast<ssize_t>(sizeof(s.daemon))) s.daemon = -1;
    ::waitpid(middle, nullptr, 0);
  }
  ::close(fds[0]);
  return s;
}

class TestApp : public clams::App {
 public:
  clams::AppMetadata Metadata() const override {
    clams::AppMetadata m;
    m.name = "Test App";
    m.description = "Behaves as each test asks.";
    m.app_license = "MIT";
    m.identifier = "test-app";
    m.app_version = "v1";
    m.url = "https://example.org/test-app";
    (void)m.AddInput(vocab::kTextDocument, {}, false);
    (void)m.AddOutput(vocab::kTimeFrame, {{"timeUnit", "milliseconds"}});
    (void)m.AddParameter({.name = "mode",
                          .description = "What to do.",
                          .type = clams::ParamType::kString,
                          .choices = {"ok", "throw", "status", "warn", "invalid", "crash", "hang", "oom", "sleep",
                                      "spawn"},
                          .default_value = "ok"});
    (void)m.AddParameter({.name = "sleepMs", .description = "For mode=sleep.", .type = clams::ParamType::kInteger,
                          .default_value = 0});
    (void)m.AddParameter({.name = "count", .description = "An integer with choices.",
                          .type = clams::ParamType::kInteger, .choices = {1, 2, 3}, .default_value = 3});
    (void)m.AddParameter({.name = "labels", .description = "Multivalued strings.", .type = clams::ParamType::kString,
                          .default_value = json::array{"a", "b"}, .multivalued = true});
    (void)m.AddParameter({.name = "labelMap", .description = "A map.", .type = clams::ParamType::kMap,
                          .default_value = json::array{"B:bars"}});
    (void)m.AddParameter({.name = "threshold", .description = "A number.", .type = clams::ParamType::kNumber,
                          .default_value = 0.5});
    (void)m.AddAppTag("TemporalSegmentation");
    return m;
  }

  clams::Status Annotate(clams::mmif::Mmif& mmif, const clams::Params& params) override {
    const std::string mode = params.GetString("mode");
    if (mode == "throw") throw std::runtime_error("boom");
    if (mode == "status") return clams::InvalidArgumentError("no usable input");
    if (mode == "crash") std::abort();
    if (mode == "hang") {
      for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
    }
    if (mode == "oom") {
      return clams::ResourceExhaustedError("CUDA out of memory. Tried to allocate 2.00 GiB");
    }
    if (mode == "sleep") std::this_thread::sleep_for(std::chrono::milliseconds(params.GetInt("sleepMs")));
    clams::mmif::View view = mmif.NewView();
    view.NewContain(vocab::kTimeFrame, {{"timeUnit", "milliseconds"}});
    json::object properties{{"start", 10}, {"end", 99}, {"label", "speech"},
                            {"documents", mmif.DocumentsByType(vocab::kTextDocument).size()}};
    if (mode == "spawn") {
      const Spawned spawned = SpawnSleepers();
      properties["child"] = spawned.child;
      properties["daemon"] = spawned.daemon;
    }
    view.NewAnnotation(vocab::kTimeFrame, std::move(properties));
    if (mode == "warn") {
      clams::Warn("threshold is high");
      clams::Warn("second warning");
    }
    if (mode == "invalid") view.mutable_metadata().erase("app"), view.mutable_metadata()["app"] = "x";
    return clams::Status::Ok();
  }
};

}  // namespace

int main(int argc, char** argv) {
  TestApp app;
  return clams::Serve(app, argc, argv);
}
