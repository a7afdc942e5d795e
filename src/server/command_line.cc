#include "server/command_line.h"

#include <iostream>
#include <memory>
#include <string_view>
#include <vector>

#include "server/options.h"

namespace clams::server {
namespace {

const FlagInfo* FindFlag(const CLI::Option* opt) {
  if (opt == nullptr || opt->get_lnames().empty()) return nullptr;
  const std::string flag = "--" + opt->get_lnames().front();
  for (const FlagInfo& f : ServerFlagTable()) {
    if (f.flag == flag) return &f;
  }
  return nullptr;
}

// CLI11's formatter, with the registry's default and environment variable in
// each server flag's description (instead of CLI11's "=default" after the
// type, which flags without a captured default would lack).
class ServerHelpFormatter : public CLI::Formatter {
 public:
  std::string make_option_opts(const CLI::Option* opt) const override {
    if (FindFlag(opt) == nullptr || !opt->get_option_text().empty()) return CLI::Formatter::make_option_opts(opt);
    if (opt->get_expected_max() == 0 || opt->get_type_name().empty()) return "";
    return " " + opt->get_type_name();
  }
  std::string make_option_desc(const CLI::Option* opt) const override {
    const FlagInfo* f = FindFlag(opt);
    std::string desc = opt->get_description();
    if (f == nullptr) return desc;
    if (!f->default_text.empty()) desc += " Default: " + f->default_text + ".";
    if (!f->env.empty()) desc += " Environment: " + f->env + ".";
    return desc;
  }
};

std::string EnvironmentFooter() {
  std::string out =
      "Settings are taken from the command line, then the --config file, then the environment, then the "
      "defaults.\nEnvironment variables:\n";
  std::size_t width = 0;
  for (const FlagInfo& f : ServerFlagTable()) width = std::max(width, f.env.size());
  for (const FlagInfo& f : ServerFlagTable()) {
    if (f.env.empty()) continue;
    out += "  " + f.env + std::string(width - f.env.size() + 2, ' ') + f.flag + " (default " + f.default_text + ")\n";
  }
  return out;
}

// "a, b or c"
std::string OneOf(const std::vector<std::string>& names) {
  std::string out;
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out += i + 1 == names.size() ? " or " : ", ";
    out += names[i];
  }
  return out;
}

std::string Quoted(std::string_view s) { return "\"" + std::string(s) + "\""; }

// The deepest subcommand the parser entered ("clams mmif" for `clams mmif
// frob`), and its command path.
const CLI::App* Entered(const CLI::App& app, const std::string& program, std::string* where) {
  const CLI::App* at = &app;
  *where = program;
  for (;;) {
    const std::vector<CLI::App*> entered = at->get_subcommands();
    if (entered.empty()) return at;
    at = entered.front();
    *where += " " + at->get_name();
  }
}

}  // namespace

std::string ProgramName(const char* argv0) {
  std::string_view p = argv0 != nullptr ? argv0 : "";
  const auto slash = p.rfind('/');
  if (slash != std::string_view::npos) p.remove_prefix(slash + 1);
  return p.empty() ? "clams" : std::string(p);
}

void AddVersionFlag(CLI::App& app, std::string text) {
  app.set_version_flag("--version", std::move(text), "Print the program's name and version, then exit.");
}

std::string UsageError(const CLI::App& app, const CLI::ParseError& error, const std::string& program) {
  std::string where;
  const CLI::App* at = Entered(app, program, &where);
  // (ParseError::get_name() is not the error's kind for every error: CLI11
  // passes the app's name for ExtrasError.)
  if (dynamic_cast<const CLI::RequiredError*>(&error) != nullptr && at->get_require_subcommand_min() > 0 &&
      at->get_subcommands().empty()) {
    std::vector<std::string> commands;
    for (const CLI::App* sub : at->get_subcommands([](const CLI::App* s) { return !s->get_group().empty(); })) {
      commands.push_back(sub->get_name());
    }
    const std::vector<std::string> rest = at->remaining();
    if (rest.empty()) return where + ": a command is required (" + OneOf(commands) + ")";
    const std::string& token = rest.front();
    if (!token.empty() && token[0] == '-') return where + ": unknown option " + Quoted(token);
    return where + ": unknown command " + Quoted(token) + " (expected " + OneOf(commands) + ")";
  }
  if (dynamic_cast<const CLI::ExtrasError*>(&error) != nullptr) {
    for (const std::string& token : at->remaining()) {
      if (token == "--") continue;
      if (!token.empty() && token[0] == '-') return where + ": unknown option " + Quoted(token);
      return where + ": unexpected argument " + Quoted(token);
    }
  }
  // CLI11's other messages name the option or the unexpected arguments
  // ("--port: Value abc not in range 0 to 65535", "The following argument
  // was not expected: --prot").
  return where + ": " + error.what();
}

std::optional<int> ParseCommandLine(CLI::App& app, int argc, char** argv, const std::string& program_name) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    const std::string program = program_name.empty() ? ProgramName(argc > 0 ? argv[0] : nullptr) : program_name;
    std::string where;
    Entered(app, program, &where);
    std::cerr << UsageError(app, e, program) << "\nRun '" << where << " --help' for usage.\n";
    return kUsageExitCode;
  }
  return std::nullopt;
}

void AddServerHelp(CLI::App& app) {
  app.formatter(std::make_shared<ServerHelpFormatter>());
  app.footer(EnvironmentFooter());
}

}  // namespace clams::server
