// --config FILE: the parser, the precedence of command line, file and
// environment, and the SIGHUP reload (what it applies, what needs a restart).
#include "server/config_file.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "clams/base/log.h"
#include "testing/status_matchers.h"
#include "testing/testing.h"

namespace clams::server {
namespace {

using ::clams::testing::IsOk;
using ::clams::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// Sets environment variables for one test and restores them afterwards.
class ScopedEnv {
 public:
  ScopedEnv(std::map<std::string, std::optional<std::string>> vars) {
    for (const auto& [name, value] : vars) {
      const char* old = std::getenv(name.c_str());
      saved_[name] = old != nullptr ? std::optional<std::string>(old) : std::nullopt;
      if (value) {
        ::setenv(name.c_str(), value->c_str(), 1);
      } else {
        ::unsetenv(name.c_str());
      }
    }
  }
  ~ScopedEnv() {
    for (const auto& [name, value] : saved_) {
      if (value) {
        ::setenv(name.c_str(), value->c_str(), 1);
      } else {
        ::unsetenv(name.c_str());
      }
    }
  }

 private:
  std::map<std::string, std::optional<std::string>> saved_;
};

// No environment variable of the server leaks into a test.
ScopedEnv CleanEnv(std::map<std::string, std::optional<std::string>> extra = {}) {
  std::map<std::string, std::optional<std::string>> vars = {
      {"CLAMS_CONFIG", std::nullopt},   {"CLAMS_LOGLEVEL", std::nullopt},         {"CLAMS_LOG_FORMAT", std::nullopt},
      {"CLAMS_WORKERS", std::nullopt},  {"CLAMS_GUNICORN_WORKERS", std::nullopt},
  };
  for (auto& [k, v] : extra) vars[k] = v;
  return ScopedEnv(vars);
}

// Parses a command line the way the app executables do.
struct CommandLine {
  explicit CommandLine(std::vector<std::string> args) {
    RegisterServerFlags(app, options);
    std::vector<std::string> reversed(args.rbegin(), args.rend());
    app.parse(reversed);
    given = CommandLineKeys(app);
  }
  CLI::App app;
  ServerOptions options;
  std::set<std::string> given;
};

TEST(ConfigParseTest, ReadsKeyValueLinesCommentsAndQuotedValues) {
  auto file = ParseConfig(
      "# a comment\n"
      "\n"
      "  max-queue = 50   # inline comment\n"
      "log-format=json\r\n"
      "vram-headroom = \"5%\"  # quoted\n"
      "profile-dir = \"/var/cache/clams # not a comment\"\n"
      "production = true",
      "/etc/clams.conf");
  ASSERT_THAT(file.status(), IsOk());
  ASSERT_EQ(file->entries.size(), 5u);
  EXPECT_EQ(file->path, "/etc/clams.conf");
  EXPECT_EQ(file->entries[0].key, "max-queue");
  EXPECT_EQ(file->entries[0].value, "50");
  EXPECT_EQ(file->entries[0].line, 3);
  EXPECT_EQ(file->entries[1].key, "log-format");
  EXPECT_EQ(file->entries[1].value, "json");
  EXPECT_EQ(file->entries[2].value, "5%");
  EXPECT_EQ(file->entries[3].value, "/var/cache/clams # not a comment");
  EXPECT_EQ(file->entries[4].key, "production");
  EXPECT_EQ(file->entries[4].line, 7);
}

TEST(ConfigParseTest, ErrorsNameTheFileAndTheLine) {
  EXPECT_THAT(ParseConfig("port = 1\nmax-queue 50\n", "c.conf"),
              StatusIs(StatusCode::kInvalidArgument, "c.conf:2: expected key = value, got \"max-queue 50\""));
  EXPECT_THAT(ParseConfig("\n\nprot = 5000\n", "c.conf"),
              StatusIs(StatusCode::kInvalidArgument,
                       "c.conf:3: unknown setting \"prot\" (the keys are the server flags without --; see --help)"));
  EXPECT_THAT(ParseConfig("port = 1\nport = 2\n", "c.conf"),
              StatusIs(StatusCode::kInvalidArgument, "c.conf:2: \"port\" is already set on line 1"));
  EXPECT_THAT(ParseConfig("--port = 1\n", "c.conf"),
              StatusIs(StatusCode::kInvalidArgument,
                       "c.conf:1: \"--port\": write keys without the leading -- (\"max-queue = 50\")"));
  EXPECT_THAT(ParseConfig("max-queue =   # nothing\n", "c.conf"),
              StatusIs(StatusCode::kInvalidArgument, "c.conf:1: max-queue has no value"));
  EXPECT_THAT(ParseConfig("config = other.conf\n", "c.conf"),
              StatusIs(StatusCode::kInvalidArgument, "c.conf:1: \"config\" cannot be set in a config file"));
  EXPECT_THAT(ParseConfig("profile-dir = \"/tmp\n", "c.conf"),
              StatusIs(StatusCode::kInvalidArgument, "c.conf:1: profile-dir: the quoted value has no closing \""));
  EXPECT_THAT(ParseConfig("profile-dir = \"/tmp\" x\n", "c.conf"),
              StatusIs(StatusCode::kInvalidArgument,
                       "c.conf:1: profile-dir: unexpected \"x\" after the quoted value"));
  EXPECT_THAT(ParseConfig(" = 3\n", "c.conf"),
              StatusIs(StatusCode::kInvalidArgument, "c.conf:1: a line starts with '=': the key is missing"));
}

TEST(ConfigParseTest, MissingFileIsNotFound) {
  EXPECT_THAT(ReadConfigFile("/nonexistent/clams.conf"),
              StatusIs(StatusCode::kNotFound, "config file /nonexistent/clams.conf does not exist"));
  clams::testing::TempDir dir;
  EXPECT_THAT(ReadConfigFile(dir.path().string()),
              StatusIs(StatusCode::kFailedPrecondition, HasSubstr("is a directory")));
}

TEST(ConfigApplyTest, ValuesGoThroughTheFlagParser) {
  auto file = ParseConfig("max-queue = 7\nqueue-timeout = 2.5\nproduction = yes\nno-access-log = off\n"
                          "log-level = DEBUG\n",
                          "c.conf");
  ASSERT_THAT(file.status(), IsOk());
  ServerOptions o;
  o.no_access_log = true;
  auto applied = ApplyConfig(*file, {}, o);
  ASSERT_THAT(applied.status(), IsOk());
  EXPECT_THAT(*applied, ElementsAre("max-queue", "queue-timeout", "production", "no-access-log", "log-level"));
  EXPECT_EQ(o.max_queue, 7u);
  EXPECT_EQ(o.queue_timeout_seconds, 2.5);
  EXPECT_TRUE(o.production);
  EXPECT_FALSE(o.no_access_log);
  EXPECT_EQ(o.log_level, "DEBUG");
}

TEST(ConfigApplyTest, BadValuesNameTheLineAndTheFlagsRule) {
  ServerOptions o;
  EXPECT_THAT(ApplyConfig(*ParseConfig("max-queue = 5\nport = 70000\n", "c.conf"), {}, o),
              StatusIs(StatusCode::kInvalidArgument, "c.conf:2: --port: Value 70000 not in range 0 to 65535"));
  EXPECT_THAT(ApplyConfig(*ParseConfig("queue-timeout = soon\n", "c.conf"), {}, o),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("c.conf:1: --queue-timeout")));
  EXPECT_THAT(ApplyConfig(*ParseConfig("production = maybe\n", "c.conf"), {}, o),
              StatusIs(StatusCode::kInvalidArgument, "c.conf:1: Could not convert: --production = maybe"));
  EXPECT_THAT(ApplyConfig(*ParseConfig("max-body-size = lots\n", "c.conf"), {}, o),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("c.conf:1: max-body-size: ")));
}

TEST(ConfigApplyTest, KeysInSkipAreLeftAlone) {
  ServerOptions o;
  o.max_queue = 3;
  auto applied = ApplyConfig(*ParseConfig("max-queue = 50\nport = 8080\n", "c.conf"), {"max-queue"}, o);
  ASSERT_THAT(applied.status(), IsOk());
  EXPECT_THAT(*applied, ElementsAre("port"));
  EXPECT_EQ(o.max_queue, 3u);
  EXPECT_EQ(o.port, 8080);
}

TEST(ResolveSettingsTest, CommandLineWinsOverTheFileWhichWinsOverTheEnvironment) {
  clams::testing::TempDir dir;
  const auto conf = dir.path() / "clams.conf";
  clams::testing::WriteFileOrDie(conf, "max-queue = 50\nlog-format = json\nlog-level = warning\nport = 6000\n");
  auto env = CleanEnv({{"CLAMS_LOG_FORMAT", "text"}, {"CLAMS_LOGLEVEL", "error"}, {"CLAMS_WORKERS", "3"}});
  CommandLine cl({"--config", conf.string(), "--port", "7000"});
  auto s = ResolveSettings(cl.options, cl.given);
  ASSERT_THAT(s.status(), IsOk());
  EXPECT_EQ(s->options.port, 7000);              // command line
  EXPECT_EQ(s->options.max_queue, 50u);          // file
  EXPECT_EQ(s->options.log_format, "json");      // file over CLAMS_LOG_FORMAT
  EXPECT_EQ(s->options.log_level, "warning");    // file over CLAMS_LOGLEVEL
  EXPECT_EQ(s->options.workers, 3);              // environment
  EXPECT_EQ(s->workers_source, "CLAMS_WORKERS");
  EXPECT_EQ(s->options.queue_timeout_seconds, 300);  // default
  EXPECT_EQ(s->from_file, (std::set<std::string>{"max-queue", "log-format", "log-level"}));
}

TEST(ResolveSettingsTest, EnvironmentFillsWhatNeitherGaveAndClamsConfigNamesTheFile) {
  clams::testing::TempDir dir;
  const auto conf = dir.path() / "clams.conf";
  clams::testing::WriteFileOrDie(conf, "workers = 4\n");
  auto env = CleanEnv({{"CLAMS_CONFIG", conf.string()}, {"CLAMS_LOG_FORMAT", "json"}, {"CLAMS_WORKERS", "9"}});
  CommandLine cl({});
  auto s = ResolveSettings(cl.options, cl.given);
  ASSERT_THAT(s.status(), IsOk());
  EXPECT_EQ(s->options.config_file, conf.string());
  EXPECT_EQ(s->options.workers, 4);
  EXPECT_EQ(s->workers_source, conf.string());
  EXPECT_EQ(s->options.log_format, "json");
  EXPECT_EQ(s->options.log_level, "info");
  // An empty --config on the command line means no file, whatever CLAMS_CONFIG says.
  CommandLine none({"--config", ""});
  auto t = ResolveSettings(none.options, none.given);
  ASSERT_THAT(t.status(), IsOk());
  EXPECT_EQ(t->options.workers, 9);
  EXPECT_THAT(t->from_file, IsEmpty());
}

TEST(ResolveSettingsTest, BadLogSettingsNameWhereTheyCameFrom) {
  clams::testing::TempDir dir;
  const auto conf = dir.path() / "clams.conf";
  clams::testing::WriteFileOrDie(conf, "# levels\nlog-level = loud\n");
  auto env = CleanEnv({{"CLAMS_LOG_FORMAT", "xml"}});
  CommandLine with_file({"--config", conf.string(), "--log-format", "text"});
  EXPECT_THAT(ResolveSettings(with_file.options, with_file.given),
              StatusIs(StatusCode::kInvalidArgument,
                       conf.string() + ":2: log-level: unknown log level \"loud\" (expected trace, debug, info, "
                                       "warning, error, critical or off)"));
  CommandLine plain({});
  EXPECT_THAT(ResolveSettings(plain.options, plain.given),
              StatusIs(StatusCode::kInvalidArgument,
                       "CLAMS_LOG_FORMAT: unknown log format \"xml\" (expected text or json)"));
  EXPECT_THAT(ResolveSettings(CommandLine({"--config", "/nonexistent.conf"}).options,
                              CommandLine({"--config", "/nonexistent.conf"}).given),
              StatusIs(StatusCode::kNotFound, "config file /nonexistent.conf does not exist"));
}

class ConfigReloaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    saved_level_ = log::GetLevel();
    saved_format_ = log::GetFormat();
    log::SetSink([this](log::Level, std::string_view, std::string_view m) { log_.emplace_back(m); });
    conf_ = dir_.path() / "clams.conf";
  }
  void TearDown() override {
    log::SetSink(nullptr);
    log::SetLevel(saved_level_);
    log::SetFormat(saved_format_);
    log::SetAccessLogEnabled(true);
  }
  // Starts as a server would: command line, then the file, then the hooks.
  std::unique_ptr<ConfigReloader> Start(const std::string& file_text, std::vector<std::string> args = {}) {
    clams::testing::WriteFileOrDie(conf_, file_text);
    args.insert(args.begin(), {"--config", conf_.string()});
    cl_ = std::make_unique<CommandLine>(args);
    auto s = ResolveSettings(cl_->options, cl_->given);
    EXPECT_THAT(s.status(), IsOk());
    if (!s.ok()) return nullptr;
    EXPECT_THAT(ApplyLogSettings(s->options), IsOk());
    ConfigReloader::Hooks hooks;
    hooks.set_limits = [this](const RuntimeLimits& l) { limits_.push_back(l); };
    hooks.set_worker_options = [this](const ServerOptions& o) { worker_levels_.push_back(o.log_level); };
    return std::make_unique<ConfigReloader>(cl_->options, cl_->given, *s, hooks);
  }
  clams::testing::TempDir dir_;
  std::filesystem::path conf_;
  std::unique_ptr<CommandLine> cl_;
  std::vector<RuntimeLimits> limits_;
  std::vector<std::string> worker_levels_;
  std::vector<std::string> log_;
  log::Level saved_level_;
  log::Format saved_format_;
};

TEST_F(ConfigReloaderTest, AppliesRuntimeSettingsAndReportsTheRestNeedARestart) {
  auto env = CleanEnv();
  auto r = Start("log-level = info\nmax-queue = 10\nworkers = 2\n");
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(log::GetLevel(), log::Level::kInfo);
  clams::testing::WriteFileOrDie(conf_,
                                 "log-level = debug\nlog-format = json\nmax-queue = 20\nqueue-timeout = 30\n"
                                 "request-timeout = 600\nworkers = 5\nport = 6001\n");
  auto report = r->Reload();
  ASSERT_THAT(report.status(), IsOk());
  EXPECT_THAT(report->applied, ElementsAre("log-format: text -> json", "log-level: info -> debug",
                                           "max-queue: 10 -> 20", "queue-timeout: 300 -> 30",
                                           "request-timeout: 0 -> 600"));
  EXPECT_THAT(report->restart, ElementsAre("port: 5000 -> 6001", "workers: 2 -> 5"));
  EXPECT_THAT(report->ignored, IsEmpty());
  EXPECT_EQ(log::GetLevel(), log::Level::kDebug);
  EXPECT_EQ(log::GetFormat(), log::Format::kJson);
  ASSERT_EQ(limits_.size(), 1u);
  EXPECT_EQ(limits_[0].max_queue, 20u);
  EXPECT_EQ(limits_[0].queue_timeout_seconds, 30);
  EXPECT_EQ(limits_[0].request_timeout_seconds, 600);
  EXPECT_THAT(worker_levels_, ElementsAre("debug"));
  EXPECT_EQ(r->current().max_queue, 20u);
  EXPECT_EQ(r->current().workers, 2);  // not applied
  const std::string path = conf_.string();
  EXPECT_THAT(log_, ::testing::Contains("SIGHUP: config " + path + ": applied log-level: info -> debug"));
  EXPECT_THAT(log_, ::testing::Contains("SIGHUP: config " + path + ": workers: 2 -> 5 needs a restart, not applied"));
  // Still pending at the next SIGHUP, until a restart.
  log_.clear();
  report = r->Reload();
  ASSERT_THAT(report.status(), IsOk());
  EXPECT_THAT(report->applied, IsEmpty());
  EXPECT_THAT(report->restart, ElementsAre("port: 5000 -> 6001", "workers: 2 -> 5"));
}

TEST_F(ConfigReloaderTest, ARemovedKeyFallsBackToTheEnvironmentOrTheDefault) {
  auto env = CleanEnv({{"CLAMS_LOGLEVEL", "warning"}});
  auto r = Start("log-level = debug\nmax-queue = 10\n");
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(log::GetLevel(), log::Level::kDebug);
  clams::testing::WriteFileOrDie(conf_, "# emptied\n");
  auto report = r->Reload();
  ASSERT_THAT(report.status(), IsOk());
  EXPECT_THAT(report->applied, ElementsAre("log-level: debug -> warning", "max-queue: 10 -> 100"));
  EXPECT_EQ(log::GetLevel(), log::Level::kWarning);
}

TEST_F(ConfigReloaderTest, CommandLineSettingsAreNotChangedByTheFile) {
  auto env = CleanEnv();
  auto r = Start("max-queue = 10\n", {"--max-queue", "3"});
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->current().max_queue, 3u);
  clams::testing::WriteFileOrDie(conf_, "max-queue = 40\n");
  auto report = r->Reload();
  ASSERT_THAT(report.status(), IsOk());
  EXPECT_THAT(report->applied, IsEmpty());
  EXPECT_THAT(report->ignored, ElementsAre("max-queue: set on the command line (3); the file's 40 is not used"));
  EXPECT_TRUE(limits_.empty());
  EXPECT_EQ(r->current().max_queue, 3u);
}

TEST_F(ConfigReloaderTest, AnInvalidFileChangesNothing) {
  auto env = CleanEnv();
  auto r = Start("log-level = info\nmax-queue = 10\n");
  ASSERT_NE(r, nullptr);
  clams::testing::WriteFileOrDie(conf_, "log-level = debug\nmax-queue = many\n");
  auto report = r->Reload();
  EXPECT_THAT(report.status(), StatusIs(StatusCode::kInvalidArgument, HasSubstr(conf_.string() + ":2: Could not convert: --max-queue = many")));
  EXPECT_EQ(log::GetLevel(), log::Level::kInfo);
  EXPECT_TRUE(limits_.empty());
  EXPECT_EQ(r->current().max_queue, 10u);
  ASSERT_FALSE(log_.empty());
  EXPECT_THAT(log_.back(), HasSubstr("SIGHUP: config not reloaded, settings unchanged: " + conf_.string() + ":2:"));
  clams::testing::WriteFileOrDie(conf_, "log-level = info\nmax-queue = 10\n");
  report = r->Reload();
  ASSERT_THAT(report.status(), IsOk());
  EXPECT_EQ(log_.back(), "SIGHUP: config " + conf_.string() + " re-read: no changes");
}

TEST(CommandLineKeysTest, NamesTheFlagsGivenOnTheCommandLine) {
  CommandLine cl({"--port", "1", "--production", "--log-format=json"});
  EXPECT_EQ(cl.given, (std::set<std::string>{"port", "production", "log-format"}));
}

}  // namespace
}  // namespace clams::server
