// Placeholder until the GPU commands land: every call fails loudly.
#include <iostream>

#include "cli/commands.h"

namespace clams::cli {
void AddGpuCommands(CLI::App& app, CommandContext& ctx) {
  auto* cmd = app.add_subcommand("gpu", "GPUs (not implemented yet)");
  cmd->allow_extras();
  cmd->callback([&ctx] {
    std::cerr << "clams gpu: not implemented yet\n";
    ctx.exit_code = 2;
  });
}
}  // namespace clams::cli
