// clams mmif validate|roundtrip|describe: MMIF files from the command line.
#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "clams/mmif/mmif.h"
#include "clams/mmif/text.h"
#include "clams/mmif/validate.h"
#include "clams/mmif/vocabulary.h"
#include "cli/commands.h"

namespace clams::cli {
namespace {

namespace mmif = ::clams::mmif;

// The name that stands for standard input and output.
constexpr std::string_view kStdio = "-";
// --pretty indents by two spaces, as Mmif::Serialize({.pretty = true}).
constexpr int kPrettyIndent = 2;
// describe wraps its per-type annotation counts at this width.
constexpr std::size_t kDescribeWidth = 100;
// describe lists at most this many validation warnings (and counts the rest).
constexpr std::size_t kMaxListedWarnings = 10;
// describe names at most this many documents a view is anchored on.
constexpr std::size_t kMaxListedDocuments = 3;
// describe shortens warning texts of warnings-only views to this many characters.
constexpr std::size_t kMaxWarningChars = 160;

struct Input {
  std::string name;  // for messages: the path, or "<stdin>"
  std::string text;
};

StatusOr<Input> ReadInput(const std::string& path) {
  Input in;
  if (path == kStdio) {
    in.name = "<stdin>";
    in.text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    if (std::cin.bad()) return FailedPreconditionError("cannot read standard input");
    return in;
  }
  in.name = path;
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    return FailedPreconditionError("cannot read: " + std::string(std::strerror(EISDIR)));
  }
  std::ifstream f(path, std::ios::binary);
  if (!f) return NotFoundError("cannot open: " + std::string(std::strerror(errno)));
  std::ostringstream ss;
  ss << f.rdbuf();
  if (f.bad()) return FailedPreconditionError("cannot read: " + std::string(std::strerror(errno)));
  in.text = std::move(ss).str();
  return in;
}

// 28679 -> "28,679".
std::string WithThousands(std::size_t n) {
  std::string digits = std::to_string(n);
  std::string out;
  constexpr std::size_t kGroup = 3;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % kGroup == 0) out += ',';
    out += digits[i];
  }
  return out;
}

std::string Plural(std::size_t n, std::string_view word) {
  return WithThousands(n) + " " + std::string(word) + (n == 1 ? "" : "s");
}

// "TimeFrame", "Token (LAPPS)", or the last segment of another IRI.
std::string ShortTypeName(std::string_view iri) {
  mmif::vocab::TypeId t = mmif::vocab::ParseType(iri);
  if (t.kind == mmif::vocab::TypeId::Kind::kLapps) return t.name + " (LAPPS)";
  if (t.name.empty()) return std::string(iri);
  return t.name;
}

std::string Truncated(std::string_view s, std::size_t max) {
  if (s.size() <= max) return std::string(s);
  return std::string(s.substr(0, max)) + "...";
}

std::string Pad(std::string_view s, std::size_t width) {
  std::string out(s);
  if (out.size() < width) out.append(width - out.size(), ' ');
  return out;
}

// --- validate ---------------------------------------------------------------

int Validate(const std::vector<std::string>& files, bool strict) {
  bool all_valid = true;
  for (const std::string& file : files) {
    StatusOr<Input> in = ReadInput(file);
    if (!in.ok()) {
      std::cout << file << ": " << in.status().message() << "\n";
      all_valid = false;
      continue;
    }
    StatusOr<mmif::json::value> tree = mmif::ParseJson(in->text);
    if (!tree.ok()) {
      std::cout << in->name << ": " << tree.status().message() << "\n";
      all_valid = false;
      continue;
    }
    mmif::ValidationReport report = mmif::Validate(*tree);
    for (const mmif::ValidationIssue& e : report.errors) {
      std::cout << in->name << ": " << e.ToString() << "\n";
    }
    for (const mmif::ValidationIssue& w : report.warnings) {
      std::cout << in->name << ": warning: " << w.ToString() << "\n";
    }
    if (report.ToStatus(strict).ok()) {
      std::cout << in->name << ": ok\n";
    } else {
      all_valid = false;
    }
  }
  return all_valid ? 0 : 1;
}

// --- roundtrip --------------------------------------------------------------

int Roundtrip(const std::string& input, const std::string& output, bool pretty, bool python_style) {
  StatusOr<Input> in = ReadInput(input);
  if (!in.ok()) {
    std::cerr << input << ": " << in.status().message() << "\n";
    return 1;
  }
  StatusOr<mmif::Mmif> doc = mmif::Mmif::Parse(in->text);
  if (!doc.ok()) {
    std::cerr << in->name << ": " << doc.status().message() << "\n";
    return 1;
  }
  // The same layout as Mmif::Serialize, streamed in pieces to the output.
  mmif::JsonStyle style = python_style ? mmif::JsonStyle::Python() : mmif::JsonStyle{};
  if (pretty) style = {.indent = kPrettyIndent, .ensure_ascii = python_style};
  const bool to_stdout = output.empty() || output == kStdio;
  std::FILE* f = to_stdout ? stdout : std::fopen(output.c_str(), "wb");
  if (f == nullptr) {
    std::cerr << output << ": cannot write: " << std::strerror(errno) << "\n";
    return 1;
  }
  bool ok = true;
  mmif::WriteJsonChunked(doc->json(), style, [&](std::string_view chunk) {
    ok = ok && std::fwrite(chunk.data(), 1, chunk.size(), f) == chunk.size();
  });
  // Keep a final newline, so that files written with one come back byte for byte.
  if (!in->text.empty() && in->text.back() == '\n') ok = ok && std::fputc('\n', f) != EOF;
  const int error = errno;
  ok = (to_stdout ? std::fflush(f) == 0 : std::fclose(f) == 0) && ok;
  if (!ok) {
    std::cerr << (to_stdout ? "<stdout>" : output) << ": cannot write: " << std::strerror(error)
              << "\n";
    return 1;
  }
  return 0;
}

// --- describe ---------------------------------------------------------------

void DescribeDocuments(const std::vector<mmif::Document>& docs, std::ostream& os) {
  if (docs.empty()) return;
  std::vector<std::array<std::string, 4>> rows;  // id, type, mime, location or text
  for (const mmif::Document& d : docs) {
    std::string where;
    if (std::optional<std::string_view> loc = d.location()) {
      where = std::string(*loc);
    } else if (std::optional<std::string_view> text = d.text_value()) {
      where = "text, " + Plural(mmif::CodePointIndex(*text).size(), "character");
      if (std::optional<std::string_view> lang = d.text_language(); lang && !lang->empty()) {
        where += ", " + std::string(*lang);
      }
    }
    rows.push_back(
        {d.long_id(), ShortTypeName(d.type()), std::string(d.mime().value_or("")), where});
  }
  std::array<std::size_t, 3> width{};
  for (const auto& r : rows) {
    for (std::size_t c = 0; c < width.size(); ++c) width[c] = std::max(width[c], r[c].size());
  }
  os << "\nDocuments\n";
  for (const auto& r : rows) {
    std::string line = "  " + Pad(r[0], width[0]) + "  " + Pad(r[1], width[1]) + "  " +
                       Pad(r[2], width[2]) + "  " + r[3];
    while (!line.empty() && line.back() == ' ') line.pop_back();
    os << line << "\n";
  }
}

// The documents a view's annotations are anchored on: `contains[*].document`
// and each annotation's own `document`, in first-seen order.
std::vector<std::string> AnchorDocuments(const mmif::View& v) {
  std::vector<std::string> out;
  auto add = [&out](std::string_view id) {
    if (!id.empty() && std::find(out.begin(), out.end(), id) == out.end()) out.emplace_back(id);
  };
  if (const mmif::json::object* c = v.contains()) {
    for (const auto& kv : *c) {
      const mmif::json::object* meta = kv.value().if_object();
      if (meta == nullptr) continue;
      auto doc = meta->find("document");
      if (doc != meta->end() && doc->value().is_string()) add(doc->value().get_string());
    }
  }
  for (std::size_t i = 0; i < v.annotation_count(); ++i) {
    const mmif::json::object& props = v.annotation(i).properties();
    auto doc = props.find("document");
    if (doc != props.end() && doc->value().is_string()) add(doc->value().get_string());
  }
  return out;
}

void DescribeViews(const std::vector<mmif::View>& views, std::ostream& os) {
  if (views.empty()) return;
  std::size_t id_width = 0;
  std::size_t app_width = 0;
  for (const mmif::View& v : views) {
    id_width = std::max(id_width, v.id().size());
    app_width = std::max(app_width, v.app().empty() ? std::size_t{8} : v.app().size());
  }
  const std::string indent(2 + id_width + 2, ' ');
  os << "\nViews\n";
  for (const mmif::View& v : views) {
    std::string head = "  " + Pad(v.id(), id_width) + "  " +
                       Pad(v.app().empty() ? "(no app)" : v.app(), app_width) + "  " +
                       std::string(v.timestamp());
    while (!head.empty() && head.back() == ' ') head.pop_back();
    os << head << "\n";
    if (std::optional<mmif::ViewError> e = v.error()) {
      os << indent << "error: " << Truncated(e->message, kMaxWarningChars) << "\n";
    }
    if (v.has_warnings()) {
      std::vector<std::string> warnings = v.warnings();
      os << indent << Plural(warnings.size(), "warning") << (warnings.empty() ? "" : ":") << "\n";
      for (const std::string& w : warnings) {
        os << indent << "  " << Truncated(w, kMaxWarningChars) << "\n";
      }
    }
    const std::size_t total = v.annotation_count();
    if (total == 0) {
      if (!v.has_error() && !v.has_warnings()) os << indent << "no annotations\n";
      continue;
    }
    std::vector<std::pair<std::string, std::size_t>> counts;  // first-seen order
    std::map<std::string, std::size_t> slot;
    for (std::size_t i = 0; i < total; ++i) {
      std::string name = ShortTypeName(v.annotation(i).type());
      auto [it, inserted] = slot.try_emplace(name, counts.size());
      if (inserted) counts.emplace_back(name, 0);
      ++counts[it->second].second;
    }
    std::string line = indent + Plural(total, "annotation");
    std::vector<std::string> docs = AnchorDocuments(v);
    for (std::size_t i = 0; i < docs.size() && i < kMaxListedDocuments; ++i) {
      line += (i == 0 ? " on " : ", ") + docs[i];
    }
    if (docs.size() > kMaxListedDocuments) {
      line += " and " + WithThousands(docs.size() - kMaxListedDocuments) + " more";
    }
    line += ":";
    for (std::size_t i = 0; i < counts.size(); ++i) {
      std::string item = " " + counts[i].first + " " + WithThousands(counts[i].second) +
                         (i + 1 < counts.size() ? "," : "");
      if (line.size() + item.size() > kDescribeWidth) {
        os << line << "\n";
        line = indent + " ";
      }
      line += item;
    }
    os << line << "\n";
  }
}

int Describe(const std::string& file) {
  StatusOr<Input> in = ReadInput(file);
  if (!in.ok()) {
    std::cerr << file << ": " << in.status().message() << "\n";
    return 1;
  }
  StatusOr<mmif::json::value> tree = mmif::ParseJson(in->text);
  if (!tree.ok()) {
    std::cerr << in->name << ": " << tree.status().message() << "\n";
    return 1;
  }
  mmif::ValidationReport report = mmif::Validate(*tree);
  if (!report.ok()) {
    std::cerr << in->name << ": not a valid MMIF file:\n";
    for (const mmif::ValidationIssue& e : report.errors) std::cerr << "  " << e.ToString() << "\n";
    return 1;
  }
  StatusOr<mmif::Mmif> doc = mmif::Mmif::FromJson(std::move(*tree));
  if (!doc.ok()) {
    std::cerr << in->name << ": " << doc.status().message() << "\n";
    return 1;
  }
  std::size_t annotations = 0;
  for (const mmif::View& v : doc->views()) annotations += v.annotation_count();
  std::ostringstream os;
  os << in->name << "\n  MMIF " << doc->version() << ", " << Plural(in->text.size(), "byte") << ", "
     << Plural(doc->document_count(), "document") << ", " << Plural(doc->view_count(), "view")
     << ", " << Plural(annotations, "annotation") << "\n";
  DescribeDocuments(doc->documents(), os);
  DescribeViews(doc->views(), os);
  const auto& warnings = doc->warnings();
  if (warnings.empty()) {
    os << "\nValid; no warnings.\n";
  } else {
    os << "\nValid, with " << Plural(warnings.size(), "warning") << ":\n";
    for (std::size_t i = 0; i < warnings.size() && i < kMaxListedWarnings; ++i) {
      os << "  " << warnings[i].ToString() << "\n";
    }
    if (warnings.size() > kMaxListedWarnings) {
      os << "  ... and " << WithThousands(warnings.size() - kMaxListedWarnings) << " more\n";
    }
  }
  std::cout << os.str();
  return 0;
}

}  // namespace

void AddMmifCommands(CLI::App& app, CommandContext& ctx) {
  CLI::App* mmif_cmd = app.add_subcommand("mmif", "Validate, rewrite and describe MMIF files");
  mmif_cmd->require_subcommand(1);

  struct ValidateArgs {
    std::vector<std::string> files;
    bool strict = false;
  };
  auto validate_args = std::make_shared<ValidateArgs>();
  CLI::App* validate = mmif_cmd->add_subcommand(
      "validate",
      "Check MMIF files against the MMIF JSON schema and report duplicate ids and dangling "
      "references. Prints one line per problem (FILE: path: rule; warnings as FILE: warning: "
      "...) and FILE: ok for each valid file. Exit status 0 if all files are valid, else 1.");
  validate->add_option("files", validate_args->files, "MMIF files (- for standard input)")
      ->required();
  validate->add_flag("--strict", validate_args->strict,
                     "Count warnings (duplicate ids, dangling references) as errors");
  validate->callback([&ctx, validate_args] {
    ctx.exit_code = Validate(validate_args->files, validate_args->strict);
  });

  struct RoundtripArgs {
    std::string input;
    std::string output;
    bool pretty = false;
    bool python_style = false;
  };
  auto rt_args = std::make_shared<RoundtripArgs>();
  CLI::App* roundtrip = mmif_cmd->add_subcommand(
      "roundtrip",
      "Read a valid MMIF file and write it again (parse -> serialize is lossless: same values, "
      "same key order). A final newline of the input is kept.");
  roundtrip->add_option("input", rt_args->input, "MMIF file (- for standard input)")->required();
  roundtrip->add_option("output", rt_args->output, "Output file (default or -: standard output)");
  roundtrip->add_flag("--pretty", rt_args->pretty, "Indent by two spaces (Python's indent=2)");
  roundtrip->add_flag("--python-style", rt_args->python_style,
                      "mmif-python's byte format: \", \" and \": \" separators, ASCII only");
  roundtrip->callback([&ctx, rt_args] {
    ctx.exit_code =
        Roundtrip(rt_args->input, rt_args->output, rt_args->pretty, rt_args->python_style);
  });

  auto describe_file = std::make_shared<std::string>();
  CLI::App* describe = mmif_cmd->add_subcommand(
      "describe", "Summarize an MMIF file: version, documents, views, annotation counts, problems");
  describe->add_option("file", *describe_file, "MMIF file (- for standard input)")->required();
  describe->callback([&ctx, describe_file] { ctx.exit_code = Describe(*describe_file); });
}

}  // namespace clams::cli
