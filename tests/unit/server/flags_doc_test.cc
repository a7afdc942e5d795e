// The settings registry (src/server/options.cc) against CLI11 and against
// docs/server-flags.md, which is generated from it by `make docs`.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <set>
#include <string>

#include "server/options.h"
#include "testing/testing.h"

namespace clams::server {
namespace {

using ::testing::HasSubstr;

TEST(FlagsDocTest, DocsServerFlagsHoldsTheCurrentTable) {
  const std::string doc = clams::testing::ReadFileOrDie(clams::testing::SourceDir() / "docs" / "server-flags.md");
  const std::string table = FlagsMarkdown();
  EXPECT_NE(doc.find(table), std::string::npos)
      << "docs/server-flags.md is out of date with the flag table in src/server/options.cc; run `make docs` "
         "(it replaces everything after the marker line with `APP --print-flags-markdown`). Current table:\n"
      << table;
}

TEST(FlagsDocTest, TheTableStartsWithItsHeaderAndHasOneRowPerFlag) {
  const std::string table = FlagsMarkdown();
  EXPECT_EQ(table.rfind("| flag | environment | default | meaning |\n|---|---|---|---|\n", 0), 0u);
  std::size_t rows = 0;
  for (char c : table) rows += c == '\n' ? 1 : 0;
  EXPECT_EQ(rows, ServerFlagTable().size() + 2);
  for (const auto& f : ServerFlagTable()) {
    EXPECT_THAT(table, HasSubstr("| `" + f.flag + "` |")) << f.flag;
    EXPECT_FALSE(f.help.empty()) << f.flag;
    EXPECT_EQ(f.help.find('|'), std::string::npos) << f.flag << ": a '|' would break the Markdown table";
  }
}

TEST(FlagsDocTest, EveryTableRowIsARegisteredFlagAndEveryVisibleFlagIsInTheTable) {
  CLI::App app;
  ServerOptions options;
  RegisterServerFlags(app, options);
  std::set<std::string> table;
  for (const auto& f : ServerFlagTable()) {
    table.insert(f.flag);
    const CLI::Option* opt = nullptr;
    EXPECT_NO_THROW(opt = app.get_option(f.flag)) << f.flag << " is in the table but not registered";
    if (opt != nullptr) {
      EXPECT_EQ(opt->get_description(), f.help) << f.flag;
    }
  }
  for (const CLI::Option* opt : app.get_options()) {
    if (opt->get_group().empty()) continue;  // hidden: the worker role's internal flags
    if (opt->get_lnames().empty() || opt->get_lnames()[0] == "help") continue;
    const std::string flag = "--" + opt->get_lnames()[0];
    EXPECT_TRUE(table.count(flag)) << flag << " is registered but missing from the table";
  }
}

TEST(FlagsDocTest, DocumentedDefaultsMatchTheRegisteredDefaults) {
  CLI::App app;
  ServerOptions options;
  RegisterServerFlags(app, options);
  for (const auto& f : ServerFlagTable()) {
    const CLI::Option* opt = app.get_option_no_throw(f.flag);
    if (opt == nullptr || opt->get_default_str().empty()) continue;
    EXPECT_EQ(opt->get_default_str(), f.default_text) << f.flag;
  }
}

TEST(FlagsDocTest, EnvironmentColumnNamesTheVariablesMainReads) {
  std::set<std::string> with_env;
  for (const auto& f : ServerFlagTable()) {
    if (!f.env.empty()) with_env.insert(f.flag);
  }
  EXPECT_EQ(with_env, (std::set<std::string>{"--workers", "--threads", "--profile-dir", "--log-level", "--log-format", "--config"}));
}

TEST(FlagsDocTest, ThreadsComeFromTheFlagThenCLAMS_THREADS) {
  auto parse = [](std::vector<std::string> args) {
    CLI::App app;
    ServerOptions options;
    RegisterServerFlags(app, options);
    std::reverse(args.begin(), args.end());
    app.parse(args);
    return options.threads;
  };
  ::unsetenv("CLAMS_THREADS");
  EXPECT_EQ(parse({}), 1);
  ::setenv("CLAMS_THREADS", "4", 1);
  EXPECT_EQ(parse({}), 4);
  EXPECT_EQ(parse({"--threads", "2"}), 2);
  ::setenv("CLAMS_THREADS", "0", 1);
  EXPECT_THROW(parse({}), CLI::ValidationError);
  ::unsetenv("CLAMS_THREADS");
}

}  // namespace
}  // namespace clams::server
