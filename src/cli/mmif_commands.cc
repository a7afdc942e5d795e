// Placeholder until the MMIF commands land: every call fails loudly.
#include <iostream>

#include "cli/commands.h"

namespace clams::cli {
void AddMmifCommands(CLI::App& app, CommandContext& ctx) {
  auto* cmd = app.add_subcommand("mmif", "MMIF files (not implemented yet)");
  cmd->allow_extras();
  cmd->callback([&ctx] {
    std::cerr << "clams mmif: not implemented yet\n";
    ctx.exit_code = 2;
  });
}
}  // namespace clams::cli
