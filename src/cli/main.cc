// clams: MMIF files, GPUs and memory profiles from the command line.
#include <CLI/CLI.hpp>

#include "cli/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"clams: tools for CLAMS apps (MMIF files, GPUs, memory profiles)"};
  app.require_subcommand(1);
  clams::cli::CommandContext ctx;
  clams::cli::AddMmifCommands(app, ctx);
  clams::cli::AddGpuCommands(app, ctx);
  clams::cli::AddProfilesCommands(app, ctx);
  CLI11_PARSE(app, argc, argv);
  return ctx.exit_code;
}
