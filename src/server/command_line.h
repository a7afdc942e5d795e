// Command-line conventions shared by every executable of the project (`clams`,
// `clams serve`, and every app through clams::Serve):
//
//   * `--version` prints "<program> <version>" and exits 0;
//   * `--help` prints to stdout and exits 0; for the server flags it shows
//     each flag's default and environment variable, and a footer lists the
//     environment variables (the same facts as docs/server-flags.md);
//   * a usage error prints "<program>: <what is wrong, naming the offending
//     argument>" and a pointer to --help on stderr, and exits 2 (the POSIX
//     utilities' convention), never CLI11's own codes (105-114).
//
//   CLI::App app{"..."};
//   AddVersionFlag(app, "clams " + std::string(clams::Version()));
//   if (auto exit_code = ParseCommandLine(app, argc, argv)) return *exit_code;
#ifndef CLAMS_SRC_SERVER_COMMAND_LINE_H_
#define CLAMS_SRC_SERVER_COMMAND_LINE_H_

#include <CLI/CLI.hpp>

#include <optional>
#include <string>

namespace clams::server {

/// Exit status of a usage error (bad flag, bad value, unknown command).
inline constexpr int kUsageExitCode = 2;

/// The last path component of argv[0] ("clams", "sentence-splitter").
std::string ProgramName(const char* argv0);

/// Adds `--version`, which prints `text` (conventionally "<program> <version>")
/// and a newline to stdout.
void AddVersionFlag(CLI::App& app, std::string text);

/// Parses `argv` into `app`. Returns nullopt when the program should go on;
/// otherwise its exit status: 0 after --help or --version (printed to stdout),
/// kUsageExitCode after a usage error (printed to stderr by UsageError()).
/// `program` names the command in messages (default: ProgramName(argv[0])).
std::optional<int> ParseCommandLine(CLI::App& app, int argc, char** argv, const std::string& program = "");

/// The message for a usage error that CLI11 raised while parsing `app`
/// ("clams: unknown command \"frob\" (expected one of: mmif, gpu, ...)"), one
/// line, without the --help pointer. `program` names the executable.
std::string UsageError(const CLI::App& app, const CLI::ParseError& error, const std::string& program);

/// Shows the settings registry's defaults and environment variables in
/// `app`'s --help (each server flag's help line, plus an "Environment" footer).
/// RegisterServerFlags() calls it.
void AddServerHelp(CLI::App& app);

}  // namespace clams::server

#endif  // CLAMS_SRC_SERVER_COMMAND_LINE_H_
