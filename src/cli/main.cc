// clams: MMIF files, GPUs and memory profiles from the command line.
#include <CLI/CLI.hpp>

#include <string_view>

#include "clams/base/version.h"
#include "clams/server/serve.h"
#include "cli/commands.h"
#include "server/command_line.h"

int main(int argc, char** argv) {
  // `clams serve` takes every server flag and a command after `--`: it
  // parses its own arguments.
  if (argc > 1 && std::string_view(argv[1]) == "serve") return clams::ServeExternal(argc - 1, argv + 1);
  CLI::App app{"clams: tools for CLAMS apps (MMIF files, GPUs, memory profiles)"};
  app.require_subcommand(1);
  clams::server::AddVersionFlag(app, "clams " + std::string(clams::Version()));
  clams::cli::CommandContext ctx;
  clams::cli::AddMmifCommands(app, ctx);
  clams::cli::AddGpuCommands(app, ctx);
  clams::cli::AddProfilesCommands(app, ctx);
  app.add_subcommand("serve",
                     "Serve an unmodified CLAMS app (e.g. a Python app) behind the GPU-aware front: "
                     "clams serve [server flags] -- CMD ... {port} ... (see `clams serve --help`)");
  if (auto exit_code = clams::server::ParseCommandLine(app, argc, argv)) return *exit_code;
  return ctx.exit_code;
}
