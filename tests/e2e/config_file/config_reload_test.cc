// A production server started with --config FILE: SIGHUP after the file
// changed applies the new log level and format (seen in the server's own
// log), the new queue limit, and still replaces the workers, which start with
// the new log settings. An invalid file changes nothing.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <iostream>
#include <sstream>

#include "e2e/server/e2e_util.h"
#include "testing/process.h"
#include "testing/testing.h"

namespace clams::e2e {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// The command line of a process, arguments joined by spaces.
std::string CommandLineOf(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  for (char& c : s) {
    if (c == '\0') c = ' ';
  }
  return s;
}

// The JSON lines of a log (text lines are skipped).
std::vector<boost::json::object> JsonLines(const std::string& log) {
  std::vector<boost::json::object> out;
  std::istringstream in(log);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] != '{') continue;
    auto v = mmif::ParseJson(line);
    EXPECT_TRUE(v.ok() && v->is_object()) << "not a JSON object: " << line;
    if (v.ok() && v->is_object()) out.push_back(v->get_object());
  }
  return out;
}

class ConfigReloadTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (HasFailure() && server_) std::cerr << "--- server log ---\n" << server_->Log() << "---\n";
  }
  void Start(const std::string& config) {
    conf_ = dir_.path() / "clams.conf";
    testing::WriteFileOrDie(conf_, config);
    server_ = std::make_unique<testing::ServerProcess>(
        testing::BuiltBinary("apps/sentence-splitter/sentence-splitter"),
        std::vector<std::string>{"--production", "--workers", "1", "--expose-runtime", "--config", conf_.string()},
        std::map<std::string, std::string>{{"CLAMS_LOGLEVEL", ""}, {"CLAMS_LOG_FORMAT", ""}, {"CLAMS_CONFIG", ""}});
    ASSERT_TRUE(WaitReady(server_->port())) << server_->Log();
    ASSERT_TRUE(testing::WaitFor([&] { return AllWorkersIdle(server_->port(), 1); }, std::chrono::seconds(30)));
  }
  bool LogHas(const std::string& text, std::chrono::seconds timeout = std::chrono::seconds(30)) {
    return testing::WaitFor([&] { return server_->Log().find(text) != std::string::npos; }, timeout);
  }
  testing::TempDir dir_;
  std::filesystem::path conf_;
  std::unique_ptr<testing::ServerProcess> server_;
};

TEST_F(ConfigReloadTest, SighupWithAChangedFileChangesTheLogLevelAndFormat) {
  Start("# the server's settings\nlog-level = info\nmax-queue = 50\n");
  const int port = server_->port();
  const std::vector<int> before = WorkerPids(port);
  ASSERT_EQ(before.size(), 1u);
  EXPECT_THAT(CommandLineOf(before[0]), HasSubstr("--log-level info --log-format text"));

  // At info, probes are not in the access log (they are logged at debug).
  EXPECT_EQ(Call(port, "GET", "/health").status, 200);
  const std::string probe_line = "\"GET /health\" 200";
  EXPECT_THAT(server_->Log(), Not(HasSubstr(probe_line)));

  testing::WriteFileOrDie(conf_, "log-level = debug\nlog-format = json\nmax-queue = 50\nmax-requests = 5\n"
                                 "workers = 3\n");
  ASSERT_TRUE(server_->process().Signal(SIGHUP));
  const std::string path = conf_.string();
  ASSERT_TRUE(LogHas("SIGHUP: config " + path + ": applied log-format: text -> json"));
  EXPECT_TRUE(LogHas("SIGHUP: config " + path + ": applied log-level: info -> debug"));
  EXPECT_TRUE(LogHas("SIGHUP: config " + path + ": max-requests: 0 -> 5 needs a restart, not applied"));
  EXPECT_TRUE(LogHas("SIGHUP: config " + path + ": workers: set on the command line (1); the file's 3 is not used"));

  // The workers are still replaced, and the new one runs with the new settings.
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        std::vector<int> now = WorkerPids(port);
        return now.size() == 1 && now[0] != before[0] && AllWorkersIdle(port, 1);
      },
      std::chrono::seconds(60)));
  const int worker = WorkerPids(port)[0];
  EXPECT_THAT(CommandLineOf(worker), HasSubstr("--log-level debug --log-format json"));

  // The front now logs JSON at debug: the probe's access line appears.
  EXPECT_EQ(Call(port, "GET", "/health").status, 200);
  bool found = false;
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        for (const auto& o : JsonLines(server_->Log())) {
          if (o.contains("logger") && o.at("logger") == "access" && o.contains("target") &&
              o.at("target") == "/health") {
            found = true;
            EXPECT_EQ(o.at("level"), "debug");
            EXPECT_EQ(o.at("status").as_int64(), 200);
            EXPECT_EQ(o.at("method"), "GET");
            EXPECT_THAT(std::string(o.at("msg").as_string()), HasSubstr(probe_line));
            EXPECT_EQ(o.at("pid").as_int64(), server_->process().pid());
          }
        }
        return found;
      },
      std::chrono::seconds(30)));
  EXPECT_TRUE(found) << "no JSON access line for the probe";
}

TEST_F(ConfigReloadTest, AnInvalidFileOnSighupChangesNothingAndTheServerKeepsServing) {
  Start("log-level = info\n");
  const int port = server_->port();
  testing::WriteFileOrDie(conf_, "log-level = debug\nmax-queue = a few\n");
  ASSERT_TRUE(server_->process().Signal(SIGHUP));
  ASSERT_TRUE(LogHas("SIGHUP: config not reloaded, settings unchanged: " + conf_.string() +
                     ":2: Could not convert: --max-queue = a few"));
  EXPECT_EQ(Call(port, "GET", "/health").status, 200);
  EXPECT_TRUE(WaitReady(port));
  // Still at info: no probe lines.
  EXPECT_THAT(server_->Log(), Not(HasSubstr("\"GET /health\" 200")));
  auto r = Call(port, "POST", "/", TextMmif("One sentence. Two."));
  EXPECT_EQ(r.status, 200);
  KeepForSchemaCheck(r.body);
}

}  // namespace
}  // namespace clams::e2e
