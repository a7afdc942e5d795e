// Conformance of the MMIF library against independent references: the
// official JSON schema run by Python's jsonschema (Draft4Validator), Python's
// json module for lossless round trips and number formatting, and the shared
// corpus (samples, invalid files, the whisper benchmark file; the MMIF 0.4.x
// and 0.5.0 samples with their own schemas in shared/data/mmif-pre1).
//
// Python is Debian's /usr/bin/python3 (with python3-jsonschema), driven
// through tests/conformance/mmif/oracle.py, one process per test.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "clams/mmif/json.h"
#include "clams/mmif/mmif.h"
#include "clams/mmif/validate.h"
#include "testing/status_matchers.h"
#include "testing/testing.h"

namespace clams::mmif {
namespace {

namespace fs = std::filesystem;
using ::clams::testing::IsOk;
using ::clams::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

// Debian's interpreter, which has python3-jsonschema (the pyenv python3 on
// PATH may not).
constexpr const char* kPython = "/usr/bin/python3";
// Mutants generated from the samples for the schema comparison.
constexpr int kMutantCount = 3000;
// Words generated for the byte-for-byte checks of gen_whisper.py output.
constexpr int kGeneratedTokens = 2000;
// Doubles compared with Python's repr.
constexpr int kDoubleCount = 20000;

fs::path Oracle() { return clams::testing::SourceDir() / "tests/conformance/mmif/oracle.py"; }

std::string Quote(const fs::path& p) {
  std::string q = "'";
  q += p.string();
  q += '\'';
  return q;
}

// Runs `/usr/bin/python3 ARGS > out 2> err`; returns the exit status and
// fills `out` with standard output.
int RunPython(const std::string& args, const fs::path& dir, std::string* out = nullptr) {
  const fs::path out_file = dir / "python.out";
  const fs::path err_file = dir / "python.err";
  const std::string cmd =
      std::string(kPython) + " " + args + " > " + Quote(out_file) + " 2> " + Quote(err_file);
  const int status = std::system(cmd.c_str());
  const int rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (out != nullptr) *out = clams::testing::ReadFileOrDie(out_file);
  if (rc != 0) {
    ADD_FAILURE() << cmd << " exited with " << rc << ":\n"
                  << clams::testing::ReadFileOrDie(err_file);
  }
  return rc;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) out.push_back(line);
  return out;
}

std::vector<std::string> SplitTabs(const std::string& line) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (true) {
    const std::size_t tab = line.find('\t', start);
    out.push_back(line.substr(start, tab - start));
    if (tab == std::string::npos) return out;
    start = tab + 1;
  }
}

// Every JSON file of the shared MMIF data (samples, invalid, bench, schema).
std::vector<fs::path> CorpusFiles() {
  std::vector<fs::path> out;
  for (const auto& e : fs::recursive_directory_iterator(clams::testing::MmifDataDir())) {
    const std::string ext = e.path().extension().string();
    if (e.is_regular_file() && (ext == ".json" || ext == ".mmif")) out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// MMIF before 1.0: shared/data/mmif-pre1 (samples/<ver>/, schema/<ver>/mmif.json).
fs::path Pre10Dir() { return clams::testing::SharedDir() / "data" / "mmif-pre1"; }
const std::vector<std::string>& Pre10Versions() {
  static const auto* versions = new std::vector<std::string>{"0.4.0", "0.4.1", "0.4.2", "0.5.0"};
  return *versions;
}
std::vector<fs::path> Pre10Samples() {
  std::vector<fs::path> out;
  for (const auto& e : fs::recursive_directory_iterator(Pre10Dir() / "samples")) {
    if (e.is_regular_file() && e.path().extension() == ".json") out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// The valid MMIF files: shared samples (1.x and before 1.0), the bench file,
// our own fixtures.
std::vector<fs::path> ValidFiles() {
  std::vector<fs::path> out;
  for (const fs::path& p : CorpusFiles()) {
    const std::string s = p.string();
    if (s.find("/samples/") != std::string::npos || s.find("/bench/") != std::string::npos) {
      out.push_back(p);
    }
  }
  for (const auto& e : fs::directory_iterator(clams::testing::SourceDir() / "tests/data/mmif")) {
    if (e.path().extension() == ".json") out.push_back(e.path());
  }
  for (const fs::path& p : Pre10Samples()) out.push_back(p);
  std::sort(out.begin(), out.end());
  return out;
}

bool SchemaValid(const json::value& tree) {
  return Validate(tree, {.version = false, .references = false}).ok();
}

// --- the validator against jsonschema ------------------------------------------------

TEST(SchemaConformanceTest, VerdictsMatchJsonSchemaOnCorpusAndMutants) {
  clams::testing::TempDir dir;
  const fs::path schema = clams::testing::MmifDataDir() / "schema" / "mmif.json";
  ASSERT_EQ(RunPython(Quote(Oracle()) + " schema " + Quote(dir.path()) + " " +
                          Quote(clams::testing::MmifDataDir()) + " " + Quote(schema) +
                          " --mutants " + std::to_string(kMutantCount),
                      dir.path()),
            0);

  // The corpus, file by file.
  int corpus = 0;
  for (const std::string& line : Lines(clams::testing::ReadFileOrDie(dir.path() / "corpus.tsv"))) {
    std::vector<std::string> f = SplitTabs(line);
    ASSERT_GE(f.size(), 2u) << line;
    StatusOr<json::value> tree = ParseJson(clams::testing::ReadFileOrDie(f[0]));
    ASSERT_THAT(tree, IsOk()) << f[0];
    const bool ours = SchemaValid(*tree);
    EXPECT_EQ(ours ? "valid" : "invalid", f[1])
        << f[0] << "\n  jsonschema: " << (f.size() > 2 ? f[2] : "")
        << "\n  ours: " << Validate(*tree).ToStatus().message();
    ++corpus;
  }
  EXPECT_EQ(corpus, static_cast<int>(CorpusFiles().size()));

  // The mutants, in one pass.
  std::vector<std::string> docs =
      Lines(clams::testing::ReadFileOrDie(dir.path() / "mutants.jsonl"));
  std::vector<std::string> verdicts =
      Lines(clams::testing::ReadFileOrDie(dir.path() / "mutants.tsv"));
  ASSERT_EQ(docs.size(), static_cast<std::size_t>(kMutantCount));
  ASSERT_EQ(verdicts.size(), docs.size());
  int valid = 0;
  int mismatches = 0;
  for (std::size_t i = 0; i < docs.size(); ++i) {
    std::vector<std::string> f = SplitTabs(verdicts[i]);
    ASSERT_GE(f.size(), 3u) << verdicts[i];
    StatusOr<json::value> tree = ParseJson(docs[i]);
    ASSERT_THAT(tree, IsOk()) << "mutant " << i;
    const bool ours = SchemaValid(*tree);
    valid += ours ? 1 : 0;
    if ((ours ? "valid" : "invalid") != f[1]) {
      ++mismatches;
      ADD_FAILURE() << "mutant " << i << " (" << f[2] << ")\n  jsonschema: " << f[1] << " "
                    << (f.size() > 3 ? f[3] : "")
                    << "\n  ours: " << Validate(*tree).ToStatus().message() << "\n  " << docs[i];
    }
    if (mismatches >= 10) break;
  }
  EXPECT_EQ(mismatches, 0);
  // The mutants must exercise both verdicts to mean anything.
  EXPECT_GT(valid, kMutantCount / 20);
  EXPECT_GT(kMutantCount - valid, kMutantCount / 2);
}

// --- round trips ---------------------------------------------------------------------

TEST(RoundTripConformanceTest, ValidFilesRoundTripLosslessly) {
  clams::testing::TempDir dir;
  std::ofstream list(dir.path() / "pairs.tsv");
  int n = 0;
  for (const fs::path& file : ValidFiles()) {
    StatusOr<Mmif> m = Mmif::ParseFile(file);
    ASSERT_THAT(m, IsOk()) << file;
    const std::vector<std::pair<std::string, SerializeOptions>> styles = {
        {"compact", {}},
        {"pretty", {.pretty = true}},
        {"python", {.python_style = true}},
        {"pretty-python", {.pretty = true, .python_style = true}}};
    for (const auto& [name, options] : styles) {
      const std::string out = m->Serialize(options);
      const fs::path out_file = dir.path() / (std::to_string(n++) + "-" + name + ".json");
      clams::testing::WriteFileOrDie(out_file, out);
      list << file.string() << "\t" << out_file.string() << "\n";
      // And through our own parser: the same tree again, and the same bytes.
      StatusOr<Mmif> again = Mmif::Parse(out);
      ASSERT_THAT(again, IsOk()) << file << " " << name;
      EXPECT_EQ(again->Serialize(options), out) << file << " " << name;
    }
  }
  list.close();
  std::string report;
  ASSERT_EQ(RunPython(Quote(Oracle()) + " compare " + Quote(dir.path() / "pairs.tsv"), dir.path(),
                      &report),
            0);
  std::vector<std::string> lines = Lines(report);
  ASSERT_EQ(static_cast<int>(lines.size()), n);
  for (int i = 0; i < n; ++i) EXPECT_EQ(lines[static_cast<std::size_t>(i)], "ok") << "pair " << i;
}

TEST(RoundTripConformanceTest, PythonLayoutFilesComeBackByteForByte) {
  // Every JSON file that Python's json.dumps(indent=2) reproduces exactly
  // must come back from our pretty writer exactly too.
  clams::testing::TempDir dir;
  std::string args = Quote(Oracle()) + " pylayout";
  std::vector<fs::path> files = CorpusFiles();
  for (const auto& e : fs::directory_iterator(clams::testing::SourceDir() / "tests/data/mmif")) {
    files.push_back(e.path());
  }
  for (const fs::path& p : Pre10Samples()) files.push_back(p);
  for (const fs::path& f : files) {
    if (f.string().find("/bench/") != std::string::npos) continue;
    args += ' ';
    args += Quote(f);
  }
  std::string report;
  ASSERT_EQ(RunPython(args, dir.path(), &report), 0);
  int checked = 0;
  for (const std::string& line : Lines(report)) {
    std::vector<std::string> f = SplitTabs(line);
    ASSERT_EQ(f.size(), 3u) << line;
    const std::string text = clams::testing::ReadFileOrDie(f[0]);
    StatusOr<json::value> tree = ParseJson(text);
    ASSERT_THAT(tree, IsOk()) << f[0];
    std::string out = WriteJson(*tree, {.indent = 2, .ensure_ascii = f[1] == "ascii"});
    if (f[2] == "newline") out += "\n";
    EXPECT_EQ(out, text) << f[0];
    ++checked;
  }
  // The shared samples in Python layout (bars-tones-slates, segmenter-kaldi-ner, the invalid
  // files) and our fixtures.
  EXPECT_GE(checked, 14);
}

TEST(RoundTripConformanceTest, BenchFileComesBackByteForByte) {
  const std::string text =
      clams::testing::ReadFileOrDie(clams::testing::MmifDataDir() / "bench" / "whisper-1h.mmif");
  StatusOr<Mmif> m = Mmif::Parse(text);
  ASSERT_THAT(m, IsOk());
  EXPECT_THAT(m->warnings(), IsEmpty());
  EXPECT_TRUE(m->Serialize({.python_style = true}) == text);
}

TEST(RoundTripConformanceTest, GeneratedFilesComeBackByteForByte) {
  clams::testing::TempDir dir;
  const fs::path gen = clams::testing::MmifDataDir() / "bench" / "gen_whisper.py";
  const std::string tokens = " --tokens " + std::to_string(kGeneratedTokens) + " ";
  const std::vector<std::pair<std::string, SerializeOptions>> cases = {
      {"--pipeline", {.python_style = true}},
      {"--pipeline --pretty", {.pretty = true, .python_style = true}},
      {"", {.python_style = true}},
      {"--pretty", {.pretty = true, .python_style = true}},
  };
  int i = 0;
  for (const auto& [flags, options] : cases) {
    const fs::path out = dir.path() / ("gen" + std::to_string(i++) + ".mmif");
    ASSERT_EQ(RunPython(Quote(gen) + tokens + flags + " " + Quote(out), dir.path()), 0);
    const std::string text = clams::testing::ReadFileOrDie(out);
    StatusOr<Mmif> m = Mmif::Parse(text, {.strict = true});
    ASSERT_THAT(m, IsOk()) << flags;
    EXPECT_TRUE(m->Serialize(options) == text) << flags;
  }
}

TEST(RoundTripConformanceTest, DoublesMatchPythonRepr) {
  clams::testing::TempDir dir;
  const fs::path out = dir.path() / "floats.json";
  ASSERT_EQ(
      RunPython(Quote(Oracle()) + " floats " + Quote(out) + " " + std::to_string(kDoubleCount),
                dir.path()),
      0);
  const std::string text = clams::testing::ReadFileOrDie(out);
  StatusOr<json::value> tree = ParseJson(text);
  ASSERT_THAT(tree, IsOk());
  ASSERT_EQ(tree->get_array().size(), static_cast<std::size_t>(kDoubleCount));
  const std::string ours = WriteJson(*tree, JsonStyle::Python());
  if (ours != text) {
    // Name the first value that differs.
    std::size_t i = 0;
    while (i < ours.size() && i < text.size() && ours[i] == text[i]) ++i;
    FAIL() << "first difference at byte " << i << ": python \""
           << text.substr(i > 20 ? i - 20 : 0, 60) << "\" vs ours \""
           << ours.substr(i > 20 ? i - 20 : 0, 60) << "\"";
  }
}

// --- the corpus with our full rules ---------------------------------------------------

TEST(CorpusConformanceTest, InvalidFilesFailWithTheirRule) {
  const std::map<std::string, std::string> expected = {
      {"missing-views-key.json", R"((root): missing required property "views")"},
      {"contains-key-not-uri.json",
       R"(views[2].metadata.contains["TimeFrame"]: key is not an annotation type IRI )"
       R"((must match ^https?://))"},
      {"view-metadata-app-only.json",
       R"(views[1].metadata: must have exactly one of "contains", "warnings", "error")"},
      {"document-extra-key.json",
       R"(documents[1]: property "id" is not allowed (allowed: "@type", "properties"))"},
      {"error-empty-message.json", "views[1].metadata.error.message: must not be empty"},
  };
  int files = 0;
  for (const auto& e : fs::directory_iterator(clams::testing::MmifDataDir() / "invalid")) {
    if (e.path().extension() != ".json") continue;
    ++files;
    const std::string name = e.path().filename().string();
    ASSERT_TRUE(expected.count(name)) << "no expected rule for " << name;
    EXPECT_THAT(Mmif::ParseFile(e.path()),
                StatusIs(StatusCode::kInvalidArgument, expected.at(name)))
        << name;
    // Exactly one problem each.
    StatusOr<json::value> tree = ParseJson(clams::testing::ReadFileOrDie(e.path()));
    ASSERT_THAT(tree, IsOk());
    ValidationReport r = Validate(*tree);
    EXPECT_EQ(r.errors.size(), 1u) << name;
    EXPECT_THAT(r.warnings, IsEmpty()) << name;
  }
  EXPECT_EQ(files, static_cast<int>(expected.size()));
}

TEST(CorpusConformanceTest, SamplesAreValidWithTheirKnownFlaws) {
  int samples = 0;
  for (const fs::path& file : CorpusFiles()) {
    if (file.string().find("/samples/") == std::string::npos) continue;
    ++samples;
    StatusOr<Mmif> m = Mmif::ParseFile(file);
    ASSERT_THAT(m, IsOk()) << file;
    std::vector<std::string> warnings;
    for (const ValidationIssue& w : m->warnings()) warnings.push_back(w.ToString());
    const std::string name = file.filename().string();
    if (name == "segmenter-kaldi-ner.json") {
      EXPECT_THAT(warnings, ElementsAre(R"(views[1].annotations[15].properties.id: duplicate id )"
                                        R"("v2:a5" (first at views[1].annotations[14]))"))
          << file;
    } else if (name == "east-tesseract-typing.json") {
      EXPECT_THAT(warnings,
                  ElementsAre(R"(views[2].annotations[0].properties.document: dangling reference )"
                              R"("V2:td1": no document or annotation has this id)",
                              R"(views[2].annotations[1].properties.document: dangling reference )"
                              R"("V2:td2": no document or annotation has this id)"))
          << file;
    } else {
      EXPECT_THAT(warnings, IsEmpty()) << file;
    }
    EXPECT_EQ(m->version(), file.parent_path().filename().string());
  }
  EXPECT_EQ(samples, 14);
}

// --- MMIF before 1.0 (issue 12) -------------------------------------------------------

// Mutants of the pre-1.0 samples for the schema comparison.
constexpr int kPre10MutantCount = 1500;

// Each 0.4.x/0.5.0 sample against the schema published with its own version (jsonschema),
// and through our full rules (schema, version, references).
TEST(Pre10ConformanceTest, SamplesAreValidAgainstTheirOwnSchemaAndLoad) {
  int checked = 0;
  for (const std::string& version : Pre10Versions()) {
    clams::testing::TempDir dir;
    const fs::path samples = Pre10Dir() / "samples" / version;
    const fs::path schema = Pre10Dir() / "schema" / version / "mmif.json";
    ASSERT_EQ(RunPython(Quote(Oracle()) + " schema " + Quote(dir.path()) + " " + Quote(samples) + " " +
                            Quote(schema) + " --mutants 0",
                        dir.path()),
              0);
    for (const std::string& line : Lines(clams::testing::ReadFileOrDie(dir.path() / "corpus.tsv"))) {
      std::vector<std::string> f = SplitTabs(line);
      ASSERT_GE(f.size(), 2u) << line;
      EXPECT_EQ(f[1], "valid") << f[0] << " against " << schema << ": " << (f.size() > 2 ? f[2] : "");
      StatusOr<Mmif> m = Mmif::ParseFile(f[0]);
      ASSERT_THAT(m, IsOk()) << f[0];
      EXPECT_EQ(m->version(), version) << f[0];
      ++checked;
    }
  }
  EXPECT_EQ(checked, 16);
}

// mmif-python validates every file, whatever its version, against the schema it bundles (the
// current one): our verdicts on the pre-1.0 samples and their mutants match jsonschema's with
// that schema.
TEST(Pre10ConformanceTest, VerdictsMatchTheCurrentSchemaOnPre10SamplesAndMutants) {
  clams::testing::TempDir dir;
  const fs::path schema = clams::testing::MmifDataDir() / "schema" / "mmif.json";
  ASSERT_EQ(RunPython(Quote(Oracle()) + " schema " + Quote(dir.path()) + " " + Quote(Pre10Dir()) + " " +
                          Quote(schema) + " --mutants " + std::to_string(kPre10MutantCount),
                      dir.path()),
            0);
  int samples = 0;
  for (const std::string& line : Lines(clams::testing::ReadFileOrDie(dir.path() / "corpus.tsv"))) {
    std::vector<std::string> f = SplitTabs(line);
    ASSERT_GE(f.size(), 2u) << line;
    if (f[0].find("/samples/") == std::string::npos) continue;  // the schema files themselves
    ++samples;
    StatusOr<json::value> tree = ParseJson(clams::testing::ReadFileOrDie(f[0]));
    ASSERT_THAT(tree, IsOk()) << f[0];
    EXPECT_EQ(f[1], "valid") << f[0];
    EXPECT_TRUE(Validate(*tree).ok()) << f[0] << ": " << Validate(*tree).ToStatus().message();
  }
  EXPECT_EQ(samples, 16);
  std::vector<std::string> docs = Lines(clams::testing::ReadFileOrDie(dir.path() / "mutants.jsonl"));
  std::vector<std::string> verdicts = Lines(clams::testing::ReadFileOrDie(dir.path() / "mutants.tsv"));
  ASSERT_EQ(docs.size(), static_cast<std::size_t>(kPre10MutantCount));
  ASSERT_EQ(verdicts.size(), docs.size());
  int valid = 0;
  int mismatches = 0;
  for (std::size_t i = 0; i < docs.size() && mismatches < 10; ++i) {
    std::vector<std::string> f = SplitTabs(verdicts[i]);
    ASSERT_GE(f.size(), 3u) << verdicts[i];
    StatusOr<json::value> tree = ParseJson(docs[i]);
    ASSERT_THAT(tree, IsOk()) << "mutant " << i;
    const bool ours = SchemaValid(*tree);
    valid += ours ? 1 : 0;
    if ((ours ? "valid" : "invalid") != f[1]) {
      ++mismatches;
      ADD_FAILURE() << "mutant " << i << " (" << f[2] << ")\n  jsonschema: " << f[1] << " "
                    << (f.size() > 3 ? f[3] : "") << "\n  ours: " << Validate(*tree).ToStatus().message();
    }
  }
  EXPECT_EQ(mismatches, 0);
  EXPECT_GT(valid, kPre10MutantCount / 20);
  EXPECT_GT(kPre10MutantCount - valid, kPre10MutantCount / 2);
}

// The pre-1.0 samples have the flaws of their 1.x successors, reported the same way; their short
// ids resolve within their view as in 1.0.x files.
TEST(Pre10ConformanceTest, SamplesLoadWithTheirKnownFlaws) {
  int samples = 0;
  for (const fs::path& file : Pre10Samples()) {
    ++samples;
    StatusOr<Mmif> m = Mmif::ParseFile(file);
    ASSERT_THAT(m, IsOk()) << file;
    std::vector<std::string> warnings;
    for (const ValidationIssue& w : m->warnings()) warnings.push_back(w.ToString());
    const std::string name = file.filename().string();
    if (name == "segmenter-kaldi-ner.json") {
      EXPECT_THAT(warnings, ElementsAre(R"(views[1].annotations[15].properties.id: duplicate id )"
                                        R"("v2:a5" (first at views[1].annotations[14]))"))
          << file;
    } else if (name == "east-tesseract-typing.json") {
      EXPECT_THAT(warnings,
                  ElementsAre(R"(views[2].annotations[0].properties.document: dangling reference )"
                              R"("V2:td1": no document or annotation has this id)",
                              R"(views[2].annotations[1].properties.document: dangling reference )"
                              R"("V2:td2": no document or annotation has this id)"))
          << file;
    } else {
      EXPECT_THAT(warnings, IsEmpty()) << file;
    }
  }
  EXPECT_EQ(samples, 16);
}

}  // namespace
}  // namespace clams::mmif
