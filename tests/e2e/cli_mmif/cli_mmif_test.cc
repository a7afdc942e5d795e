// End-to-end tests of `clams mmif validate|roundtrip|describe`.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "clams/mmif/json.h"
#include "testing/testing.h"

namespace clams::cli {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::StartsWith;

struct Result {
  int exit_code = -1;
  std::string out;
  std::string err;
};

std::string Quote(const std::string& s) {
  std::string q = "'";
  q += s;
  q += '\'';
  return q;
}

class CliMmifTest : public ::testing::Test {
 protected:
  // Runs `clams ARGS` (with `stdin_file` as standard input if given).
  Result Run(const std::string& args, const std::string& stdin_file = "") {
    const fs::path out = dir_.path() / "stdout";
    const fs::path err = dir_.path() / "stderr";
    std::string cmd = Quote(CLAMS_CLI_PATH);
    cmd += " " + args + " > " + Quote(out.string()) + " 2> " + Quote(err.string());
    cmd += " < " + (stdin_file.empty() ? std::string("/dev/null") : Quote(stdin_file));
    const int status = std::system(cmd.c_str());
    Result r;
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = clams::testing::ReadFileOrDie(out);
    r.err = clams::testing::ReadFileOrDie(err);
    return r;
  }

  static std::string Sample(const std::string& rel) {
    return (clams::testing::MmifDataDir() / rel).string();
  }
  static std::string Fixture(const std::string& name) {
    return (clams::testing::SourceDir() / "tests/data/mmif" / name).string();
  }
  std::string Temp(const std::string& name) const { return (dir_.path() / name).string(); }

  clams::testing::TempDir dir_;
};

TEST_F(CliMmifTest, ValidateValidFile) {
  const std::string f = Sample("samples/1.1.0/bars-tones-slates.json");
  Result r = Run("mmif validate " + Quote(f));
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, f + ": ok\n");
  EXPECT_EQ(r.err, "");
}

TEST_F(CliMmifTest, ValidateReportsOneLinePerProblem) {
  const std::string bad = Temp("bad.json");
  clams::testing::WriteFileOrDie(
      bad, R"({"metadata":{"mmif":"http://mmif.clams.ai/1.1.0"},"documents":[{"@type":""}],)"
           R"("views":[{"id":"v1","metadata":{"app":"http://x.org/a"},"annotations":[]}]})");
  Result r = Run("mmif validate " + Quote(bad));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, bad +
                       R"(: documents[0]["@type"]: must not be empty)"
                       "\n" +
                       bad +
                       R"(: documents[0]: missing required property "properties")"
                       "\n" +
                       bad +
                       R"(: views[0].metadata: must have exactly one of "contains", )"
                       R"("warnings", "error")"
                       "\n");
}

TEST_F(CliMmifTest, ValidateSeveralFiles) {
  const std::string good = Sample("samples/1.1.0/bars-tones-slates.json");
  const std::string bad = Sample("invalid/error-empty-message.json");
  const std::string warned = Sample("samples/1.1.0/segmenter-kaldi-ner.json");
  Result r = Run("mmif validate " + Quote(good) + " " + Quote(bad) + " " + Quote(warned));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, good + ": ok\n" + bad +
                       ": views[1].metadata.error.message: must not be empty\n" + warned +
                       R"(: warning: views[1].annotations[15].properties.id: duplicate )"
                       R"(id "v2:a5" (first at views[1].annotations[14]))"
                       "\n" +
                       warned + ": ok\n");
}

TEST_F(CliMmifTest, ValidateStrictFailsOnWarnings) {
  const std::string warned = Sample("samples/1.1.0/segmenter-kaldi-ner.json");
  Result r = Run("mmif validate --strict " + Quote(warned));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, warned + R"(: warning: views[1].annotations[15].properties.id: duplicate id )"
                            R"("v2:a5" (first at views[1].annotations[14]))"
                            "\n");
  EXPECT_EQ(Run("mmif validate " + Quote(warned)).exit_code, 0);
}

TEST_F(CliMmifTest, ValidateUnreadableInputs) {
  Result missing = Run("mmif validate /nonexistent/x.json");
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_EQ(missing.out, "/nonexistent/x.json: cannot open: No such file or directory\n");
  Result directory = Run("mmif validate " + Quote(dir_.path().string()));
  EXPECT_EQ(directory.exit_code, 1);
  EXPECT_EQ(directory.out, dir_.path().string() + ": cannot read: Is a directory\n");
  const std::string garbage = Temp("garbage.json");
  clams::testing::WriteFileOrDie(garbage, "{\"metadata\": [1, 2,\n");
  Result malformed = Run("mmif validate " + Quote(garbage));
  EXPECT_EQ(malformed.exit_code, 1);
  EXPECT_EQ(malformed.out, garbage + ": malformed JSON at line 2, column 1: incomplete JSON\n");
  const std::string binary = Temp("binary.mmif");
  clams::testing::WriteFileOrDie(binary, std::string("\x89PNG\r\n\x1a\n\0\0", 10));
  Result png = Run("mmif validate " + Quote(binary));
  EXPECT_EQ(png.exit_code, 1);
  EXPECT_EQ(png.out, binary + ": invalid UTF-8 at line 1, column 1\n");
}

TEST_F(CliMmifTest, ValidateRefusesVersionsBefore040) {
  const std::string old = Temp("old.json");
  clams::testing::WriteFileOrDie(
      old, R"({"metadata":{"mmif":"http://mmif.clams.ai/0.3.1"},"documents":[],"views":[]})");
  Result r = Run("mmif validate " + Quote(old));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, old +
                       ": metadata.mmif: MMIF 0.3.1 is not supported: clams-cpp reads MMIF "
                       "0.4.0 to 0.5.x and 1.0.0 to 1.2.x; files older than 0.4.0 use type IRIs "
                       "that mmif-python refuses too\n");
}

TEST_F(CliMmifTest, Issue12Pre10FilesValidateAndRoundTripLosslessly) {
  for (const char* version : {"0.4.0", "0.4.1", "0.4.2", "0.5.0"}) {
    const std::string file = (clams::testing::SharedDir() / "data/mmif-pre1/samples" / version /
                              "everything.json")
                                 .string();
    Result v = Run("mmif validate " + Quote(file));
    EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
    EXPECT_EQ(v.out, file + ": ok\n");
    // The samples are pretty-printed by Python with indent 2 and no final newline.
    const std::string out = Temp(std::string("rt-") + version + ".json");
    Result rt = Run("mmif roundtrip " + Quote(file) + " " + Quote(out) + " --pretty");
    EXPECT_EQ(rt.exit_code, 0) << rt.err;
    StatusOr<boost::json::value> in_tree = mmif::ParseJson(clams::testing::ReadFileOrDie(file));
    StatusOr<boost::json::value> out_tree = mmif::ParseJson(clams::testing::ReadFileOrDie(out));
    ASSERT_TRUE(in_tree.ok() && out_tree.ok()) << version;
    EXPECT_EQ(mmif::WriteJson(*in_tree), mmif::WriteJson(*out_tree)) << version;
  }
}

TEST_F(CliMmifTest, ValidateFromStdin) {
  Result r = Run("mmif validate -", Sample("samples/1.0.0/everything.json"));
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, "<stdin>: ok\n");
}

TEST_F(CliMmifTest, RoundtripToStdoutIsExact) {
  const std::string bench = Sample("bench/whisper-1h.mmif");
  Result r = Run("mmif roundtrip --python-style " + Quote(bench));
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_TRUE(r.out == clams::testing::ReadFileOrDie(bench));
  EXPECT_EQ(r.err, "");
}

TEST_F(CliMmifTest, RoundtripToFileKeepsTheFinalNewline) {
  // A Python indent=2 file with a final newline comes back byte for byte.
  const std::string in = Sample("samples/1.0.0/segmenter-kaldi-ner.json");
  const std::string out = Temp("out.json");
  Result r = Run("mmif roundtrip --pretty " + Quote(in) + " " + Quote(out));
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(clams::testing::ReadFileOrDie(out), clams::testing::ReadFileOrDie(in));
}

TEST_F(CliMmifTest, RoundtripCompactFromStdin) {
  Result r = Run("mmif roundtrip - -", Fixture("bars-tones-slates.json"));
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.out, StartsWith(R"({"metadata":{"mmif":"http://mmif.clams.ai/1.1.0"},)"
                                R"("documents":[{"@type":)"));
  EXPECT_EQ(r.out.back(), '}');
}

TEST_F(CliMmifTest, RoundtripRefusesInvalidFiles) {
  const std::string bad = Sample("invalid/missing-views-key.json");
  Result r = Run("mmif roundtrip " + Quote(bad));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, bad + R"(: (root): missing required property "views")"
                         "\n");
  Result unwritable = Run("mmif roundtrip " + Quote(Fixture("bars-tones-slates.json")) +
                          " /nonexistent/dir/out.json");
  EXPECT_EQ(unwritable.exit_code, 1);
  EXPECT_EQ(unwritable.err, "/nonexistent/dir/out.json: cannot write: No such file or directory\n");
}

TEST_F(CliMmifTest, DescribeBarsTonesSlates) {
  const std::string f = Fixture("bars-tones-slates.json");
  Result r = Run("mmif describe " + Quote(f));
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out,
            f + "\n"
                "  MMIF 1.1.0, 2,271 bytes, 2 documents, 3 views, 3 annotations\n"
                "\n"
                "Documents\n"
                "  m1  VideoDocument  video/mp4   file:///var/archive/video-0012.mp4\n"
                "  m2  TextDocument   text/plain  file:///var/archive/video-0012-transcript.txt\n"
                "\n"
                "Views\n"
                "  v1  http://apps.clams.ai/bars-and-tones/1.0.5  2020-05-27T12:23:45\n"
                "      1 annotation on m1: TimeFrame 1\n"
                "  v2  http://apps.clams.ai/slates/1.0.3          2020-05-27T12:23:45\n"
                "      1 annotation on m1: TimeFrame 1\n"
                "  v3  http://apps.clams.ai/spacy/1.3.0           2020-05-27T12:25:15\n"
                "      1 annotation on m2: Token 1\n"
                "\n"
                "Valid; no warnings.\n");
}

TEST_F(CliMmifTest, DescribeErrorAndWarningViews) {
  const std::string f = Fixture("asr-pipeline.json");
  Result r = Run("mmif describe " + Quote(f));
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.out, HasSubstr("  v_0  http://apps.clams.ai/whisper-wrapper/v8  "
                               "2026-01-05T10:00:00.000001\n"
                               "       18 annotations on v_0:td_1, d2: TextDocument 1, "
                               "Alignment 6, Token 5, TimeFrame 5, Sentence 1\n"));
  EXPECT_THAT(r.out, HasSubstr("       2 warnings:\n"
                               "         UserWarning: An undefined parameter \"beam\" (value: "
                               "\"5\") is passed\n"));
  EXPECT_THAT(r.out, HasSubstr("       error: CUDA out of memory. Tried to allocate 2.00 GiB\n"));
}

TEST_F(CliMmifTest, DescribeListsValidationWarnings) {
  Result r = Run("mmif describe " + Quote(Sample("samples/1.0.5/east-tesseract-typing.json")));
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.out, HasSubstr("\nValid, with 2 warnings:\n"
                               "  views[2].annotations[0].properties.document: dangling "
                               "reference \"V2:td1\": no document or annotation has this id\n"));
  EXPECT_THAT(r.out, HasSubstr("  m1  ImageDocument  image/jpeg  "
                               "file:///var/archive/image-fido-barks.jpg\n"));
}

TEST_F(CliMmifTest, DescribeLargeFile) {
  Result r = Run("mmif describe " + Quote(Sample("bench/whisper-1h.mmif")));
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.out, HasSubstr("MMIF 1.1.0, 4,596,961 bytes, 1 document, 1 view, "
                               "28,679 annotations\n"));
  EXPECT_THAT(r.out, HasSubstr("28,679 annotations on d1, v_0:td_1: TextDocument 1, Alignment "
                               "9,376, Token 9,375,\n         TimeFrame 9,375, Sentence 552\n"));
}

TEST_F(CliMmifTest, DescribeRefusesInvalidFiles) {
  const std::string bad = Sample("invalid/view-metadata-app-only.json");
  Result r = Run("mmif describe " + Quote(bad));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, bad +
                       ": not a valid MMIF file:\n"
                       R"(  views[1].metadata: must have exactly one of "contains", )"
                       R"("warnings", "error")"
                       "\n");
  Result missing = Run("mmif describe /nonexistent.json");
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_EQ(missing.err, "/nonexistent.json: cannot open: No such file or directory\n");
}

TEST_F(CliMmifTest, UsageErrors) {
  Result none = Run("mmif");
  EXPECT_EQ(none.exit_code, 2);
  EXPECT_EQ(none.err,
            "clams mmif: a command is required (validate, roundtrip or describe)\n"
            "Run 'clams mmif --help' for usage.\n");
  Result no_file = Run("mmif validate");
  EXPECT_EQ(no_file.exit_code, 2);
  EXPECT_EQ(no_file.err, "clams mmif validate: files is required\nRun 'clams mmif validate --help' for usage.\n");
  Result help = Run("mmif roundtrip --help");
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_THAT(help.out, HasSubstr("--python-style"));
}

}  // namespace
}  // namespace clams::cli
