// The `clams` command-line tool: each group of subcommands registers itself
// on the CLI11 app. Commands set `ctx.exit_code`; they may print (this is a
// tool, not library code).
#ifndef CLAMS_CLI_COMMANDS_H_
#define CLAMS_CLI_COMMANDS_H_

#include <CLI/CLI.hpp>

namespace clams::cli {

struct CommandContext {
  int exit_code = 0;
};

/// clams mmif validate|roundtrip|describe
void AddMmifCommands(CLI::App& app, CommandContext& ctx);
/// clams gpu [--json], clams gpu sim-alloc BYTES --seconds S
void AddGpuCommands(CLI::App& app, CommandContext& ctx);
/// clams profiles list|show|clear [--profile-dir DIR] [--app ID]
void AddProfilesCommands(CLI::App& app, CommandContext& ctx);

}  // namespace clams::cli

#endif  // CLAMS_CLI_COMMANDS_H_
