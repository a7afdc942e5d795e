// The command-line conventions of every executable: `clams`, `clams serve`
// and the app executables built on clams::Serve.
//
//   --version         prints "<program> <version>" on stdout, exit 0
//   a usage error     "<program>: <what, naming the argument>" and a pointer
//                     to --help on stderr, exit 2 (before: CLI11's 105-114,
//                     and "A subcommand is required" for `clams frob`)
//   --help            every server flag's default and environment variable
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "server/options.h"
#include "testing/process.h"

namespace clams::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;

// The version part: the project version, then "+<git revision>" when built
// from a checkout.
const std::string kVersion = std::string(CLAMS_PROJECT_VERSION) + "(\\+[-.0-9A-Za-z]+)?";

RunResult RunTool(const std::string& binary, std::vector<std::string> args) {
  args.insert(args.begin(), binary);
  return RunProgram(args, {{"CLAMS_CONFIG", ""}, {"CLAMS_LOG_FORMAT", ""}});
}

TEST(VersionTest, ClamsPrintsItsNameAndVersion) {
  RunResult r = RunTool(CLAMS_CLI_PATH, {"--version"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.out, MatchesRegex("clams " + kVersion + "\n"));
  EXPECT_EQ(r.err, "");
}

TEST(VersionTest, ClamsServePrintsItsNameAndVersion) {
  RunResult r = RunTool(CLAMS_CLI_PATH, {"serve", "--version"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.out, MatchesRegex("clams serve " + kVersion + "\n"));
}

TEST(VersionTest, AppsPrintTheirNameAndVersionAndTheSdkVersion) {
  for (const auto& [binary, name] : std::vector<std::pair<std::string, std::string>>{
           {CLAMS_SPLITTER_PATH, "sentence-splitter"}, {CLAMS_WORKLOAD_PATH, "vram-workload"}}) {
    RunResult r = RunTool(binary, {"--version"});
    EXPECT_EQ(r.exit_code, 0) << name;
    EXPECT_THAT(r.out, MatchesRegex(name + " [^ ]+ \\(clams-cpp " + kVersion + "\\)\n")) << name;
    EXPECT_EQ(r.err, "") << name;
  }
}

struct UsageCase {
  std::string binary;
  std::vector<std::string> args;
  std::string err;
};

TEST(UsageErrorTest, ExitTwoAndNameTheOffendingArgument) {
  const std::string splitter = CLAMS_SPLITTER_PATH;
  const std::vector<UsageCase> cases = {
      {CLAMS_CLI_PATH, {"frob"},
       "clams: unknown command \"frob\" (expected mmif, gpu, profiles or serve)\nRun 'clams --help' for usage.\n"},
      {CLAMS_CLI_PATH, {}, "clams: a command is required (mmif, gpu, profiles or serve)\nRun 'clams --help' for usage.\n"},
      {CLAMS_CLI_PATH, {"--frob"}, "clams: unknown option \"--frob\"\nRun 'clams --help' for usage.\n"},
      {CLAMS_CLI_PATH, {"mmif", "frob"},
       "clams mmif: unknown command \"frob\" (expected validate, roundtrip or describe)\n"
       "Run 'clams mmif --help' for usage.\n"},
      {CLAMS_CLI_PATH, {"gpu", "--jsn"}, "clams gpu: unknown option \"--jsn\"\nRun 'clams gpu --help' for usage.\n"},
      {CLAMS_CLI_PATH, {"serve", "--max-queue", "lots", "--", "app", "{port}"},
       "clams serve: Could not convert: --max-queue = lots\n"
       "Run 'clams serve --help' for usage.\n"},
      {CLAMS_CLI_PATH, {"serve", "--frob", "--", "app", "{port}"},
       "clams serve: unknown option \"--frob\"\nRun 'clams serve --help' for usage.\n"},
      {splitter, {"--prot", "5000"},
       "sentence-splitter: unknown option \"--prot\"\nRun 'sentence-splitter --help' for usage.\n"},
      {splitter, {"--port", "http"},
       "sentence-splitter: --port: Value http not in range 0 to 65535\nRun 'sentence-splitter --help' for usage.\n"},
      {splitter, {"--port"},
       "sentence-splitter: --port: 1 required INT:INT in [0 - 65535] missing\n"
       "Run 'sentence-splitter --help' for usage.\n"},
      {splitter, {"--log-format", "xml"},
       "sentence-splitter: --log-format: unknown log format \"xml\" (expected text or json)\n"},
      {splitter, {"--log-level", "loud"},
       "sentence-splitter: --log-level: unknown log level \"loud\" (expected trace, debug, info, warning, error, "
       "critical or off)\n"},
      {CLAMS_WORKLOAD_PATH, {"--workers", "0"},
       "vram-workload: --workers: Value 0 not in range 1 to 1024\nRun 'vram-workload --help' for usage.\n"},
  };
  for (const UsageCase& c : cases) {
    RunResult r = RunTool(c.binary, c.args);
    std::string cmd = c.binary;
    for (const auto& a : c.args) cmd += " " + a;
    EXPECT_EQ(r.exit_code, 2) << cmd;
    EXPECT_EQ(r.err, c.err) << cmd;
    EXPECT_EQ(r.out, "") << cmd;
  }
}

// `--help` carries the facts of docs/server-flags.md: every flag with its
// default, and the environment variables.
TEST(HelpTest, ListsEveryServerFlagWithItsDefaultAndEnvironment) {
  for (const std::vector<std::string>& cmd : std::vector<std::vector<std::string>>{
           {CLAMS_SPLITTER_PATH, "--help"}, {CLAMS_WORKLOAD_PATH, "--help"}, {CLAMS_CLI_PATH, "serve", "--help"}}) {
    RunResult r = RunProgram(cmd);
    EXPECT_EQ(r.exit_code, 0) << cmd[0];
    // One flag's entry: from its name to the next flag's (CLI11 may wrap it).
    for (const auto& f : server::ServerFlagTable()) {
      const auto start = r.out.find("  " + f.flag + " ");
      ASSERT_NE(start, std::string::npos) << cmd[0] << ": " << f.flag;
      const auto end = r.out.find("\n  --", start + 1);
      const std::string entry = r.out.substr(start, end == std::string::npos ? std::string::npos : end - start);
      EXPECT_THAT(entry, HasSubstr("Default: " + f.default_text + ".")) << cmd[0] << ": " << f.flag;
      if (!f.env.empty()) {
        EXPECT_THAT(entry, HasSubstr("Environment: " + f.env + ".")) << cmd[0] << ": " << f.flag;
        EXPECT_THAT(r.out, HasSubstr("  " + f.env + " ")) << cmd[0] << ": the footer lacks " << f.env;
      }
    }
    EXPECT_THAT(r.out, HasSubstr("Settings are taken from the command line, then the --config file, then the "
                                 "environment, then the defaults."));
  }
}

TEST(HelpTest, ClamsHelpNamesTheCommandsAndTheVersionFlag) {
  RunResult r = RunTool(CLAMS_CLI_PATH, {"--help"});
  EXPECT_EQ(r.exit_code, 0);
  for (const char* s : {"mmif", "gpu", "profiles", "serve", "--version"}) EXPECT_THAT(r.out, HasSubstr(s));
}

}  // namespace
}  // namespace clams::testing
