#include "clams/mmif/mmif.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "testing/status_matchers.h"
#include "testing/testing.h"

namespace clams::mmif {
namespace {

using ::clams::testing::IsOk;
using ::clams::testing::IsOkAndHolds;
using ::clams::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::filesystem::path Sample(std::string_view version, std::string_view name) {
  return clams::testing::MmifDataDir() / "samples" / std::string(version) /
         (std::string(name) + ".json");
}

std::filesystem::path Fixture(std::string_view name) {
  return clams::testing::SourceDir() / "tests" / "data" / "mmif" / std::string(name);
}

Mmif Load(const std::filesystem::path& path, const ParseOptions& options = {}) {
  StatusOr<Mmif> m = Mmif::ParseFile(path, options);
  EXPECT_THAT(m, IsOk()) << path;
  if (!m.ok()) return Mmif::New();
  return *std::move(m);
}

Mmif LoadText(std::string_view text, const ParseOptions& options = {}) {
  StatusOr<Mmif> m = Mmif::Parse(text, options);
  EXPECT_THAT(m, IsOk()) << text;
  if (!m.ok()) return Mmif::New();
  return *std::move(m);
}

// "2026-11-25T03:02:01.839090": digits where the pattern has 'd'.
bool IsTimestamp(std::string_view s) {
  constexpr std::string_view kPattern = "dddd-dd-ddTdd:dd:dd.dddddd";
  if (s.size() != kPattern.size()) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const bool digit = s[i] >= '0' && s[i] <= '9';
    if (kPattern[i] == 'd' ? !digit : s[i] != kPattern[i]) return false;
  }
  return true;
}

std::vector<std::string> Ids(const std::vector<Annotation>& anns) {
  std::vector<std::string> out;
  for (const Annotation& a : anns) out.push_back(a.long_id());
  return out;
}

template <typename T>
std::vector<std::string> ViewIds(const T& views) {
  std::vector<std::string> out;
  for (const View& v : views) out.emplace_back(v.id());
  return out;
}

// --- parse and serialize -------------------------------------------------

TEST(MmifTest, ParseSerializeIsLossless) {
  // Unusual key order, empty values, nulls, unknown keys, floats, big numbers.
  const std::string text =
      R"({"views":[{"annotations":[{"properties":{"x":null,"e":"","l":[],"o":{},"f":0.1,)"
      R"("g":1e-05,"h":100000.0,"big":18446744073709551615,"neg":-1,"id":"v_0:a_1",)"
      R"("u":"caf\u00e9 \u4e2d"},"@type":"http://x.org/T"}],"metadata":{"contains":)"
      R"({"http://x.org/T":{}},"app":"http://x.org/app","zz":[[1,2],[3]]},"id":"v_0"}],)"
      R"("documents":[],"metadata":{"x":true,"mmif":"http://mmif.clams.ai/1.1.0"}})";
  Mmif m = LoadText(text);
  EXPECT_EQ(m.Serialize(),
            R"({"views":[{"annotations":[{"properties":{"x":null,"e":"","l":[],"o":{},"f":0.1,)"
            R"("g":1e-05,"h":100000.0,"big":18446744073709551615,"neg":-1,"id":"v_0:a_1",)"
            "\"u\":\"caf\xC3\xA9 \xE4\xB8\xAD\"},\"@type\":\"http://x.org/T\"}],"
            R"("metadata":{"contains":{"http://x.org/T":{}},"app":"http://x.org/app",)"
            R"("zz":[[1,2],[3]]},"id":"v_0"}],"documents":[],)"
            R"("metadata":{"x":true,"mmif":"http://mmif.clams.ai/1.1.0"}})");
  Mmif again = LoadText(m.Serialize({.pretty = true}));
  EXPECT_EQ(again.Serialize(), m.Serialize());
  Mmif python = LoadText(m.Serialize({.python_style = true}));
  EXPECT_EQ(python.Serialize(), m.Serialize());
  EXPECT_THAT(m.Serialize({.python_style = true}), HasSubstr(R"("u": "caf\u00e9 \u4e2d")"));
  EXPECT_THAT(m.Serialize({.pretty = true, .python_style = true}),
              HasSubstr(R"("u": "caf\u00e9 \u4e2d")"));
  EXPECT_THAT(m.Serialize({.pretty = true}), HasSubstr("\"u\": \"caf\xC3\xA9 \xE4\xB8\xAD\""));
}

TEST(MmifTest, PrettyFixtureRoundTripsByteForByte) {
  // Written by Python's json.dumps(indent=2, ensure_ascii=False) plus a newline.
  const std::string text = clams::testing::ReadFileOrDie(Fixture("asr-pipeline.json"));
  Mmif m = LoadText(text);
  EXPECT_EQ(m.Serialize({.pretty = true}) + "\n", text);
}

TEST(MmifTest, ParseErrorsNameThePlace) {
  EXPECT_THAT(
      Mmif::Parse("{\"metadata\": }"),
      StatusIs(StatusCode::kInvalidArgument, "malformed JSON at line 1, column 14: syntax error"));
  EXPECT_THAT(
      Mmif::Parse(R"({"metadata":{"mmif":"http://mmif.clams.ai/1.1.0"},"documents":[]})"),
      StatusIs(StatusCode::kInvalidArgument, R"((root): missing required property "views")"));
  EXPECT_THAT(Mmif::Parse(R"({"metadata":{"mmif":"http://mmif.clams.ai/0.3.1"},"documents":[1]})"),
              StatusIs(StatusCode::kInvalidArgument,
                       "metadata.mmif: MMIF 0.3.1 is not supported: clams-cpp reads MMIF 0.4.0 to "
                       "0.5.x and 1.0.0 to 1.2.x; files older than 0.4.0 use type IRIs that "
                       "mmif-python refuses too (and 2 more problems)"));
}

TEST(MmifTest, ParseFileErrors) {
  EXPECT_THAT(Mmif::ParseFile("/nonexistent/x.mmif"),
              StatusIs(StatusCode::kNotFound,
                       "cannot open /nonexistent/x.mmif: No such file or directory"));
  EXPECT_THAT(
      Mmif::ParseFile(clams::testing::MmifDataDir() / "invalid" / "error-empty-message.json"),
      StatusIs(StatusCode::kInvalidArgument, "views[1].metadata.error.message: must not be empty"));
}

TEST(MmifTest, ParseFileReportsTheExactPlace) {
  clams::testing::TempDir dir;
  // Large enough to be read in several pieces; broken near the end.
  const std::string text =
      clams::testing::ReadFileOrDie(clams::testing::MmifDataDir() / "bench" / "whisper-1h.mmif");
  ASSERT_GT(text.size(), std::size_t{1} << 20);
  const std::size_t cut = text.size() - 3;
  std::string broken(text, 0, cut);
  broken += ',';
  broken.append(text, cut, std::string::npos);
  clams::testing::WriteFileOrDie(dir.path() / "broken.mmif", broken);
  EXPECT_THAT(Mmif::ParseFile(dir.path() / "broken.mmif"),
              StatusIs(StatusCode::kInvalidArgument,
                       "malformed JSON at line 1, column 4596960: syntax error"));
  clams::testing::WriteFileOrDie(dir.path() / "empty.mmif", "");
  EXPECT_THAT(
      Mmif::ParseFile(dir.path() / "empty.mmif"),
      StatusIs(StatusCode::kInvalidArgument, "malformed JSON at line 1, column 1: empty input"));
  EXPECT_THAT(Mmif::ParseFile(dir.path()),
              StatusIs(StatusCode::kFailedPrecondition, HasSubstr("Is a directory")));
}

TEST(MmifTest, SerializeToFile) {
  clams::testing::TempDir dir;
  Mmif m = Load(clams::testing::MmifDataDir() / "bench" / "whisper-1h.mmif");
  for (const SerializeOptions& options : {SerializeOptions{}, SerializeOptions{.pretty = true},
                                          SerializeOptions{.python_style = true}}) {
    ASSERT_THAT(m.SerializeToFile(dir.path() / "out.mmif", options), IsOk());
    EXPECT_TRUE(clams::testing::ReadFileOrDie(dir.path() / "out.mmif") == m.Serialize(options));
  }
  EXPECT_THAT(m.SerializeToFile("/nonexistent/dir/out.mmif"),
              StatusIs(StatusCode::kFailedPrecondition,
                       "cannot write /nonexistent/dir/out.mmif: No such file or directory"));
}

TEST(MmifTest, WarningsAreKeptAndStrictFails) {
  Mmif m = Load(Sample("1.1.0", "segmenter-kaldi-ner"));
  ASSERT_EQ(m.warnings().size(), 1u);
  EXPECT_EQ(m.warnings()[0].ToString(),
            R"(views[1].annotations[15].properties.id: duplicate id "v2:a5" (first at )"
            R"(views[1].annotations[14]))");
  EXPECT_THAT(Mmif::ParseFile(Sample("1.1.0", "segmenter-kaldi-ner"), {.strict = true}),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("duplicate id \"v2:a5\"")));
  // Both annotations stay in the document; lookups find the first.
  EXPECT_EQ(m.view(1).annotation_count(), 16u);
  EXPECT_THAT(m.GetAnnotation("v2:a5")->GetString("target"),
              ::testing::Optional(std::string_view("v2:t3")));
}

TEST(MmifTest, WithoutValidationAnythingJsonIsKept) {
  const std::string text = R"({"views":3,"extra":[1,2.5]})";
  Mmif m = LoadText(text, {.validate = false});
  EXPECT_THAT(m.warnings(), IsEmpty());
  EXPECT_EQ(m.Serialize(), text);
  EXPECT_EQ(m.view_count(), 0u);
  EXPECT_EQ(m.document_count(), 0u);
  EXPECT_EQ(m.version(), "");
  // Mutations repair only what they write to.
  View v = m.NewView();
  EXPECT_EQ(v.id(), "v_0");
  EXPECT_THAT(m.Serialize(), HasSubstr(R"("extra":[1,2.5])"));
  EXPECT_EQ(m.view_count(), 1u);
  // A tree that is not an object is replaced by one when written to.
  Mmif scalar = LoadText("42", {.validate = false});
  EXPECT_THAT(scalar.AddDocument(vocab::kTextDocument, "d1"), IsOk());
  EXPECT_EQ(scalar.Serialize(),
            R"({"documents":[{"@type":"http://mmif.clams.ai/vocabulary/TextDocument/v1",)"
            R"("properties":{"id":"d1"}}]})");
}

TEST(MmifTest, FromJson) {
  StatusOr<json::value> tree =
      ParseJson(clams::testing::ReadFileOrDie(Fixture("bars-tones-slates.json")));
  ASSERT_THAT(tree, IsOk());
  StatusOr<Mmif> m = Mmif::FromJson(*tree);
  ASSERT_THAT(m, IsOk());
  EXPECT_EQ(m->view_count(), 3u);
  json::value broken = *tree;
  broken.get_object().erase("views");
  EXPECT_THAT(Mmif::FromJson(broken), StatusIs(StatusCode::kInvalidArgument,
                                               R"((root): missing required property "views")"));
}

TEST(MmifTest, NewDocument) {
  Mmif m = Mmif::New();
  EXPECT_EQ(m.Serialize(),
            R"({"metadata":{"mmif":"http://mmif.clams.ai/1.1.0"},"documents":[],"views":[]})");
  EXPECT_EQ(m.version(), "1.1.0");
  EXPECT_EQ(Mmif::New("http://mmif.clams.ai/1.0.5").version(), "1.0.5");
}

// --- documents ---------------------------------------------------------------

TEST(MmifTest, Documents) {
  Mmif m = Load(Fixture("bars-tones-slates.json"));
  ASSERT_EQ(m.document_count(), 2u);
  Document video = m.document(0);
  EXPECT_TRUE(video.is_top_level());
  EXPECT_TRUE(video.is_document());
  EXPECT_EQ(video.id(), "m1");
  EXPECT_EQ(video.long_id(), "m1");
  EXPECT_EQ(video.type(), vocab::kVideoDocument);
  EXPECT_THAT(video.location(),
              ::testing::Optional(std::string_view("file:///var/archive/video-0012.mp4")));
  EXPECT_THAT(video.mime(), ::testing::Optional(std::string_view("video/mp4")));
  EXPECT_THAT(video.LocationPath(), IsOkAndHolds("/var/archive/video-0012.mp4"));
  EXPECT_EQ(video.text_value(), std::nullopt);
  EXPECT_EQ(m.documents().size(), 2u);
  EXPECT_EQ(m.GetDocument("m2")->mime(), "text/plain");
  EXPECT_EQ(m.GetDocument("m3"), std::nullopt);
}

TEST(MmifTest, DocumentsByTypeListsTopLevelThenViews) {
  Mmif m = Load(Sample("1.0.5", "everything"));
  EXPECT_EQ(m.DocumentsByType(vocab::kVideoDocument).size(), 1u);
  std::vector<Document> texts = m.DocumentsByType(vocab::kTextDocument);
  ASSERT_EQ(texts.size(), 26u);
  EXPECT_EQ(texts[0].long_id(), "v4:td1");
  EXPECT_EQ(texts[1].long_id(), "v6:td1");
  EXPECT_FALSE(texts[0].is_top_level());
  Mmif bars = Load(Fixture("bars-tones-slates.json"));
  ASSERT_EQ(bars.DocumentsByType("TextDocument").size(), 1u);
  EXPECT_EQ(bars.DocumentsByType("TextDocument")[0].id(), "m2");
}

TEST(MmifTest, AddDocument) {
  Mmif m = Mmif::New();
  StatusOr<Document> d = m.AddDocument(vocab::kVideoDocument, "d1",
                                       {{"mime", "video/mp4"}, {"location", "file:///a.mp4"}});
  ASSERT_THAT(d, IsOk());
  EXPECT_EQ(d->id(), "d1");
  EXPECT_THAT(m.AddDocument(vocab::kTextDocument, "d1"),
              StatusIs(StatusCode::kAlreadyExists, R"(id "d1" is already taken)"));
  EXPECT_THAT(m.AddDocument(vocab::kTextDocument, ""),
              StatusIs(StatusCode::kInvalidArgument, "a document id must not be empty"));
  EXPECT_EQ(m.Serialize(),
            R"({"metadata":{"mmif":"http://mmif.clams.ai/1.1.0"},"documents":[{"@type":)"
            R"("http://mmif.clams.ai/vocabulary/VideoDocument/v1","properties":{"id":"d1",)"
            R"("mime":"video/mp4","location":"file:///a.mp4"}}],"views":[]})");
  EXPECT_TRUE(m.HasId("d1"));
  EXPECT_EQ(m.GetDocument("d1")->LocationPath().value(), "/a.mp4");
}

TEST(MmifTest, DocumentLocations) {
  Mmif m = Mmif::New();
  auto path_of = [&m](std::string_view id, std::string_view location) {
    return m.AddDocument(vocab::kVideoDocument, id, {{"location", location}})->LocationPath();
  };
  EXPECT_THAT(path_of("a", "file:///var/archive/video-003.mp4"),
              IsOkAndHolds("/var/archive/video-003.mp4"));
  EXPECT_THAT(path_of("b", "file://localhost/var/x.mp4"), IsOkAndHolds("/var/x.mp4"));
  EXPECT_THAT(path_of("c", "FILE:/var/y.mp4"), IsOkAndHolds("/var/y.mp4"));
  EXPECT_THAT(path_of("d", "/var/archive/z.mp4"), IsOkAndHolds("/var/archive/z.mp4"));
  EXPECT_THAT(path_of("e", "ftp://localhost/var/archive/video-003.mp4"),
              StatusIs(StatusCode::kFailedPrecondition,
                       "location \"ftp://localhost/var/archive/video-003.mp4\" has scheme \"ftp\"; "
                       "only file:// locations are local paths"));
  EXPECT_THAT(path_of("f", "relative/z.mp4"),
              StatusIs(StatusCode::kFailedPrecondition,
                       "location \"relative/z.mp4\" of document \"f\" is neither a URI nor an "
                       "absolute path"));
  EXPECT_THAT(
      path_of("g", "file://host"),
      StatusIs(StatusCode::kFailedPrecondition, "location \"file://host\" has no absolute path"));
  Document none = *m.AddDocument(vocab::kTextDocument, "h");
  EXPECT_THAT(none.LocationPath(),
              StatusIs(StatusCode::kNotFound, "document \"h\" has no location"));
  EXPECT_THAT(none.ReadText(),
              StatusIs(StatusCode::kNotFound, "document \"h\" has neither text nor a location"));
}

TEST(MmifTest, ReadText) {
  clams::testing::TempDir dir;
  const auto file = dir.path() / "transcript.txt";
  clams::testing::WriteFileOrDie(file, "Hello from a file");
  Mmif m = Mmif::New();
  Document from_file =
      *m.AddDocument(vocab::kTextDocument, "d1", {{"location", "file://" + file.string()}});
  EXPECT_THAT(from_file.ReadText(), IsOkAndHolds("Hello from a file"));
  Document missing =
      *m.AddDocument(vocab::kTextDocument, "d2", {{"location", "file:///nonexistent/t.txt"}});
  EXPECT_THAT(missing.ReadText(),
              StatusIs(StatusCode::kFailedPrecondition,
                       "cannot open /nonexistent/t.txt: No such file or directory"));
  Mmif fixture = Load(Fixture("asr-pipeline.json"));
  Document td = *fixture.GetDocument("v_0:td_1");
  EXPECT_THAT(td.ReadText(), IsOkAndHolds("Caf\xC3\xA9 au lait \xF0\x9F\x98\x80 ok"));
  EXPECT_THAT(td.text_language(), ::testing::Optional(std::string_view("fr")));
}

// --- views -------------------------------------------------------------------

TEST(MmifTest, Views) {
  Mmif m = Load(Fixture("asr-pipeline.json"));
  ASSERT_EQ(m.view_count(), 4u);
  View asr = m.view(0);
  EXPECT_EQ(asr.id(), "v_0");
  EXPECT_EQ(asr.app(), "http://apps.clams.ai/whisper-wrapper/v8");
  EXPECT_EQ(asr.timestamp(), "2026-01-05T10:00:00.000001");
  EXPECT_EQ(asr.annotation_count(), 18u);
  EXPECT_FALSE(asr.has_error());
  EXPECT_FALSE(asr.has_warnings());
  ASSERT_NE(asr.contains(), nullptr);
  EXPECT_EQ(asr.contains()->size(), 5u);
  EXPECT_TRUE(asr.Contains(vocab::kToken));
  EXPECT_TRUE(asr.Contains("http://vocab.lappsgrid.org/Token"));
  EXPECT_TRUE(asr.Contains("http://mmif.clams.ai/vocabulary/TimeFrame/v5"));
  EXPECT_FALSE(asr.Contains(vocab::kTimePoint));
  EXPECT_EQ(asr.ContainsMetadata(vocab::kTimeFrame)->at("timeUnit").get_string(), "milliseconds");
  EXPECT_EQ(asr.ContainsMetadata(vocab::kTimePoint), nullptr);
  EXPECT_EQ(asr.annotations(vocab::kToken).size(), 5u);
  EXPECT_EQ(asr.annotations().size(), 18u);
  EXPECT_EQ(asr.metadata().at("parameters").at("modelSize").get_string(), "large");

  View warned = m.view(1);
  EXPECT_TRUE(warned.has_warnings());
  EXPECT_EQ(warned.contains(), nullptr);
  EXPECT_THAT(warned.warnings(),
              ElementsAre("UserWarning: An undefined parameter \"beam\" (value: \"5\") is passed",
                          "RuntimeWarning: audio resampled to 16 kHz"));
  View failed = m.view(2);
  ASSERT_TRUE(failed.has_error());
  EXPECT_EQ(failed.error()->message, "CUDA out of memory. Tried to allocate 2.00 GiB");
  EXPECT_THAT(failed.error()->stack_trace, HasSubstr("RuntimeError: CUDA out of memory"));
  EXPECT_EQ(warned.error(), std::nullopt);
  EXPECT_THAT(ViewIds(m.ViewsWithError()), ElementsAre("v_2"));
  EXPECT_EQ(m.GetView("v_3")->app(), "http://apps.clams.ai/swt-detection/v7.4");
  EXPECT_EQ(m.GetView("v_9"), std::nullopt);
  EXPECT_EQ(m.views().size(), 4u);
}

TEST(MmifTest, ViewsContaining) {
  Mmif m = Load(Sample("1.0.5", "everything"));
  EXPECT_THAT(ViewIds(m.ViewsContaining({vocab::kTimeFrame})), ElementsAre("v1", "v2", "v3", "v4"));
  EXPECT_THAT(ViewIds(m.ViewsContaining({"http://mmif.clams.ai/vocabulary/TimeFrame/v0"})),
              ElementsAre("v1", "v2", "v3", "v4"));  // versions do not count
  EXPECT_THAT(ViewIds(m.ViewsContaining({vocab::kTextDocument})), ElementsAre("v4", "v6"));
  EXPECT_THAT(ViewIds(m.ViewsContaining({"http://vocab.lappsgrid.org/SemanticTag"})),
              ElementsAre("v8"));
  EXPECT_THAT(
      ViewIds(m.ViewsContaining({vocab::kTimeFrame, vocab::kTextDocument, vocab::kAlignment})),
      ElementsAre("v4"));
  EXPECT_THAT(ViewIds(m.ViewsContaining({"http://example.org/Nothing"})), IsEmpty());
  EXPECT_EQ(m.LastViewContaining("http://vocab.lappsgrid.org/SemanticTag")->id(), "v8");
  EXPECT_EQ(m.LastViewContaining(vocab::kTimeFrame)->id(), "v4");
  EXPECT_EQ(m.LastViewContaining("http://example.org/Nothing"), std::nullopt);
}

TEST(MmifTest, ViewsForDocument) {
  Mmif m = Load(Sample("1.0.5", "everything"));
  EXPECT_THAT(ViewIds(m.ViewsForDocument("m1")), ElementsAre("v1", "v2", "v3", "v4", "v5"));
  EXPECT_THAT(ViewIds(m.ViewsForDocument("v4:td1")), ElementsAre("v4", "v7"));
  EXPECT_THAT(ViewIds(m.ViewsForDocument("m321321")), IsEmpty());
}

TEST(MmifTest, NewViewIds) {
  Mmif m = Mmif::New();
  EXPECT_EQ(m.NewView().id(), "v_0");
  // Add a view `v_2` by hand: the next new view skips it.
  json::object v2;
  v2["id"] = "v_2";
  v2["metadata"] = json::object{{"app", "http://x.org/a"}, {"contains", json::object()}};
  v2["annotations"] = json::array();
  m.mutable_json().get_object()["views"].get_array().emplace_back(v2);
  m.Reindex();
  EXPECT_EQ(m.NewView().id(), "v_3");
  v2["id"] = "v4";
  m.mutable_json().get_object()["views"].get_array().emplace_back(v2);
  m.Reindex();
  EXPECT_EQ(m.NewView().id(), "v_4");
  EXPECT_EQ(m.view_count(), 5u);
  // A document id is taken too.
  ASSERT_THAT(m.AddDocument(vocab::kVideoDocument, "v_5"), IsOk());
  EXPECT_EQ(m.NewView().id(), "v_6");
}

TEST(MmifTest, NewViewMetadata) {
  Mmif m = Mmif::New();
  View v = m.NewView();
  EXPECT_EQ(v.app(), "");
  EXPECT_TRUE(IsTimestamp(v.timestamp())) << v.timestamp();
  std::vector<std::string> keys;
  for (const auto& kv : v.metadata()) keys.emplace_back(kv.key());
  EXPECT_THAT(keys, ElementsAre("timestamp", "app", "contains"));
  // An unsigned view is schema-invalid until SetApp.
  EXPECT_THAT(Mmif::Parse(m.Serialize()),
              StatusIs(StatusCode::kInvalidArgument,
                       "views[0].metadata.app: must be at least 7 characters long"));
  v.SetApp("http://apps.clams.ai/test/v1");
  v.SetTimestamp("2026-01-01T00:00:00.000000");
  EXPECT_THAT(Mmif::Parse(m.Serialize()), IsOk());
  EXPECT_EQ(WriteJson(json::value(v.json())),
            R"({"id":"v_0","metadata":{"timestamp":"2026-01-01T00:00:00.000000",)"
            R"("app":"http://apps.clams.ai/test/v1","contains":{}},"annotations":[]})");
  v.mutable_metadata()["appProfiling"] = json::object{{"runningTime", "0:00:01"}};
  EXPECT_EQ(v.metadata().at("appProfiling").at("runningTime").get_string(), "0:00:01");
}

// --- annotations -------------------------------------------------------------

TEST(MmifTest, NewAnnotationIdsAndContains) {
  Mmif m = Mmif::New();
  View v = m.NewView();
  v.SetApp("http://apps.clams.ai/test/v1");
  Annotation a = v.NewAnnotation(vocab::kTimeFrame, {{"start", 0}, {"end", 10}});
  Annotation b = v.NewAnnotation(vocab::kTimeFrame, {{"start", 10}, {"end", 20}});
  Annotation t = v.NewAnnotation(vocab::kToken, {{"id", "ignored"}, {"text", "hi"}});
  EXPECT_EQ(a.id(), "v_0:tf_1");
  EXPECT_EQ(b.id(), "v_0:tf_2");
  EXPECT_EQ(t.id(), "v_0:to_1");
  EXPECT_EQ(WriteJson(json::value(a.json())),
            R"({"@type":"http://mmif.clams.ai/vocabulary/TimeFrame/v6",)"
            R"("properties":{"id":"v_0:tf_1","start":0,"end":10}})");
  std::vector<std::string> types;
  for (const auto& kv : *v.contains()) types.emplace_back(kv.key());
  EXPECT_THAT(types, ElementsAre(vocab::kTimeFrame, vocab::kToken));
  EXPECT_EQ(m.GetAnnotation("v_0:tf_2")->GetString("id"), "v_0:tf_2");
  EXPECT_EQ(v.GetAnnotation("tf_1")->id(), "v_0:tf_1");
  EXPECT_EQ(v.GetAnnotation("v_0:to_1")->id(), "v_0:to_1");
  EXPECT_EQ(v.annotation(1).view().id(), "v_0");
  EXPECT_FALSE(a.is_top_level());
  EXPECT_TRUE(a.IsType("TimeFrame"));
  EXPECT_FALSE(a.is_document());
}

TEST(MmifTest, NewAnnotationContinuesAfterReload) {
  Mmif m = Mmif::New();
  View v = m.NewView();
  v.SetApp("http://apps.clams.ai/test/v1");
  v.NewAnnotation(vocab::kTimeFrame);
  v.NewAnnotation(vocab::kTimeFrame);
  Mmif reloaded = LoadText(m.Serialize());
  // mmif-python restarts at tf_1 here and fails with a duplicate id.
  EXPECT_EQ(reloaded.view(0).NewAnnotation(vocab::kTimeFrame).id(), "v_0:tf_3");
  EXPECT_EQ(reloaded.view(0).NewAnnotation(vocab::kAlignment).id(), "v_0:al_1");
}

TEST(MmifTest, NewAnnotationCountersSurviveReloadAndReindex) {
  Mmif m = Mmif::New();
  View v = m.NewView();
  v.SetApp("http://apps.clams.ai/test/v1");
  EXPECT_EQ(v.NewAnnotation(vocab::kToken).id(), "v_0:to_1");
  EXPECT_EQ(v.NewAnnotation(vocab::kToken).id(), "v_0:to_2");  // the counter is cached now
  // An annotation added by hand, then Reindex(): the cached counter is
  // dropped and the next id continues after the hand-made one.
  const auto add_by_hand = [&m](std::string_view id) {
    m.mutable_json()
        .get_object()["views"]
        .get_array()[0]
        .get_object()["annotations"]
        .get_array()
        .emplace_back(json::object{{"@type", vocab::kToken}, {"properties", {{"id", id}}}});
    m.Reindex();
  };
  add_by_hand("v_0:to_7");
  EXPECT_EQ(v.NewAnnotation(vocab::kToken).id(), "v_0:to_8");
  // A short id by hand counts too.
  add_by_hand("to_11");
  EXPECT_EQ(v.NewAnnotation(vocab::kToken).id(), "v_0:to_12");
  // After a reload every counter starts from the ids in the view.
  Mmif reloaded = LoadText(m.Serialize());
  View rv = reloaded.view(0);
  EXPECT_EQ(rv.NewAnnotation(vocab::kToken).id(), "v_0:to_13");
  EXPECT_EQ(rv.NewAnnotation(vocab::kToken).id(), "v_0:to_14");
  EXPECT_EQ(rv.NewAnnotation(vocab::kSentence).id(), "v_0:se_1");
  // A view id changed by hand (and reindexed) gives ids in the new view;
  // of the old ones only the short "to_11" is `v9:to_11` now.
  reloaded.mutable_json().get_object()["views"].get_array()[0].get_object()["id"] = "v9";
  reloaded.Reindex();
  EXPECT_EQ(rv.NewAnnotation(vocab::kToken).id(), "v9:to_12");
  EXPECT_EQ(reloaded.GetAnnotation("v9:to_12")->id(), "v9:to_12");
  EXPECT_THAT(Mmif::Parse(reloaded.Serialize(), {.strict = true}), IsOk());
}

TEST(MmifTest, NewAnnotationCountersStayAheadOfExplicitIds) {
  Mmif m = Mmif::New();
  View v = m.NewView();
  EXPECT_EQ(v.NewAnnotation(vocab::kToken).id(), "v_0:to_1");
  // An explicit id with the Token prefix, on an annotation of another type:
  // the next Token id is above it ("the smallest n above every n used").
  ASSERT_THAT(v.AddAnnotation(vocab::kSentence, {{"id", "to_7"}}), IsOk());
  EXPECT_EQ(v.NewAnnotation(vocab::kToken).id(), "v_0:to_8");
  ASSERT_THAT(v.AddAnnotation(vocab::kToken, {{"id", "v_0:to_20"}}), IsOk());
  EXPECT_EQ(v.NewAnnotation(vocab::kToken).id(), "v_0:to_21");
  // Ids of another view do not move this view's counter, but are never reused.
  View w = m.NewView();
  ASSERT_THAT(v.AddAnnotation(vocab::kToken, {{"id", "v_1:to_1"}}), IsOk());
  EXPECT_EQ(w.NewAnnotation(vocab::kToken).id(), "v_1:to_2");
  EXPECT_EQ(v.NewAnnotation(vocab::kToken).id(), "v_0:to_22");
}

TEST(MmifTest, ANewPrefixCountsExplicitIdsAmongGeneratedOnes) {
  // The first id of a prefix looks at the annotations that were not generated: an
  // explicit "se_4" among generated tokens, before any Sentence was made.
  Mmif m = Mmif::New();
  View v = m.NewView();
  EXPECT_EQ(v.NewAnnotation(vocab::kToken).id(), "v_0:to_1");
  ASSERT_THAT(v.AddAnnotation(vocab::kToken, {{"id", "se_4"}}), IsOk());
  EXPECT_EQ(v.NewAnnotation(vocab::kToken).id(), "v_0:to_2");
  EXPECT_EQ(v.NewAnnotation(vocab::kSentence).id(), "v_0:se_5");
  // And before any generated one.
  View w = m.NewView();
  ASSERT_THAT(w.AddAnnotation(vocab::kToken, {{"id", "v_1:tf_9"}}), IsOk());
  EXPECT_EQ(w.NewAnnotation(vocab::kToken).id(), "v_1:to_1");
  EXPECT_EQ(w.NewAnnotation(vocab::kTimeFrame).id(), "v_1:tf_10");
  // Generated ids only: a new prefix starts at 1.
  View x = m.NewView();
  EXPECT_EQ(x.NewAnnotation(vocab::kToken).id(), "v_2:to_1");
  EXPECT_EQ(x.NewAnnotation(vocab::kSentence).id(), "v_2:se_1");
}

TEST(MmifTest, TypesOfOneViewShareTheCounterOfTheirPrefix) {
  Mmif m = Mmif::New();
  View v = m.NewView();
  // TimeFrame v5 and v6 both use the prefix "tf".
  const std::string_view old_tf = "http://mmif.clams.ai/vocabulary/TimeFrame/v5";
  EXPECT_EQ(v.NewAnnotation(vocab::kTimeFrame).id(), "v_0:tf_1");
  EXPECT_EQ(v.NewAnnotation(old_tf).id(), "v_0:tf_2");
  EXPECT_EQ(v.NewAnnotation(vocab::kTimeFrame).id(), "v_0:tf_3");
  std::vector<std::string> types;
  for (const auto& kv : *v.contains()) types.emplace_back(kv.key());
  EXPECT_THAT(types, ElementsAre(vocab::kTimeFrame, old_tf));
}

TEST(MmifTest, ContainsFollowsSetErrorAndSetWarnings) {
  Mmif m = Mmif::New();
  View v = m.NewView();
  v.SetApp("http://apps.clams.ai/test/v1");
  v.NewAnnotation(vocab::kToken);
  ASSERT_TRUE(v.Contains(vocab::kToken));
  v.SetWarnings({"careful"});
  EXPECT_EQ(v.contains(), nullptr);
  // The view knew Token was in `contains`; after SetWarnings it must add it again.
  Annotation t = v.NewAnnotation(vocab::kToken);
  EXPECT_EQ(t.id(), "v_0:to_1");  // the annotations went with the warnings
  ASSERT_NE(v.contains(), nullptr);
  EXPECT_TRUE(v.Contains(vocab::kToken));
  v.SetError("boom");
  EXPECT_EQ(v.contains(), nullptr);
  v.NewAnnotation(vocab::kToken);
  EXPECT_TRUE(v.Contains(vocab::kToken));
  EXPECT_EQ(v.annotation_count(), 1u);
}

TEST(MmifTest, ContainsFollowsDirectEdits) {
  Mmif m = Mmif::New();
  View v = m.NewView();
  v.SetApp("http://apps.clams.ai/test/v1");
  v.NewAnnotation(vocab::kToken);
  v.NewAnnotation(vocab::kSentence);
  // Through the whole tree, then Reindex().
  json::object& meta =
      m.mutable_json().get_object()["views"].get_array()[0].get_object()["metadata"].get_object();
  meta["contains"].get_object().erase(vocab::kToken);
  m.Reindex();
  EXPECT_FALSE(v.Contains(vocab::kToken));
  v.NewAnnotation(vocab::kToken);
  EXPECT_TRUE(v.Contains(vocab::kToken));
  // Through the whole tree, without Reindex() (only `contains` changed).
  m.mutable_json().get_object()["views"].get_array()[0].get_object()["metadata"].get_object().erase(
      "contains");
  v.NewAnnotation(vocab::kSentence);
  EXPECT_TRUE(v.Contains(vocab::kSentence));
  v.NewAnnotation(vocab::kToken);
  EXPECT_TRUE(v.Contains(vocab::kToken));
  // Through the view's metadata.
  v.mutable_metadata()["contains"].get_object().erase(vocab::kSentence);
  v.NewAnnotation(vocab::kSentence);
  EXPECT_TRUE(v.Contains(vocab::kSentence));
  v.mutable_metadata()["contains"] = 5;  // not even an object
  v.NewAnnotation(vocab::kToken);
  EXPECT_TRUE(v.Contains(vocab::kToken));
  EXPECT_EQ(v.annotation_count(), 7u);
  EXPECT_EQ(v.annotation(6).id(), "v_0:to_4");
  EXPECT_THAT(Mmif::Parse(m.Serialize(), {.strict = true}), IsOk());
}

TEST(MmifTest, NewAnnotationWithABracedList) {
  Mmif m = Mmif::New();
  View v = m.NewView();
  // The braced-list overload builds the values in place: same JSON as the
  // json::object overload, an "id" is dropped, the first of repeated keys counts.
  Annotation a = v.NewAnnotation(vocab::kToken, {{"start", 0},
                                                 {"id", "ignored"},
                                                 {"text", "hi"},
                                                 {"start", 9},
                                                 {"tags", {"x", "y"}},
                                                 {"span", {{"a", 1.5}}}});
  Annotation b = v.NewAnnotation(vocab::kToken, json::object{{"start", 0},
                                                             {"id", "ignored"},
                                                             {"text", "hi"},
                                                             {"start", 9},
                                                             {"tags", {"x", "y"}},
                                                             {"span", {{"a", 1.5}}}});
  EXPECT_EQ(WriteJson(json::value(a.properties())),
            R"({"id":"v_0:to_1","start":0,"text":"hi","tags":["x","y"],"span":{"a":1.5}})");
  EXPECT_EQ(WriteJson(json::value(b.properties())),
            R"({"id":"v_0:to_2","start":0,"text":"hi","tags":["x","y"],"span":{"a":1.5}})");
  // Values the list refers to are copied into the document.
  std::string text = "temporary";
  json::array targets{"v_0:to_1", "v_0:to_2"};
  Annotation s = v.NewAnnotation(vocab::kSentence, {{"text", text}, {"targets", targets}});
  text = "changed";
  targets.clear();
  EXPECT_EQ(s.GetString("text"), "temporary");
  EXPECT_EQ(s.properties().at("targets").get_array().size(), 2u);
  EXPECT_EQ(v.NewAnnotation(vocab::kToken, {}).id(), "v_0:to_3");
  EXPECT_EQ(m.GetAnnotation("v_0:to_3")->properties().size(), 1u);
}

TEST(MmifTest, CopiesOfANewTreeOutliveIt) {
  // Mmif::New() builds in an arena that copies of its parts share.
  json::value copy;
  {
    Mmif m = Mmif::New();
    View v = m.NewView();
    v.NewAnnotation(vocab::kToken, {{"text", "a text longer than any small-string buffer"}});
    copy = json::value(m.json(), m.json().storage());
  }
  EXPECT_EQ(copy.at("views").at(0).at("annotations").at(0).at("properties").at("text"),
            "a text longer than any small-string buffer");
}

TEST(MmifTest, SerializeSizesItsOutputForAddedAnnotations) {
  // The output estimate must not matter for the result: many annotations,
  // long and escaped texts, pretty and compact.
  Mmif m = LoadText(clams::testing::ReadFileOrDie(Fixture("asr-pipeline.json")));
  View v = m.NewView();
  v.SetApp("http://apps.clams.ai/test/v1");
  std::string long_text(5000, 'w');
  long_text[17] = '"';
  for (int i = 0; i < 300; ++i) {
    v.NewAnnotation(vocab::kSentence, {{"text", i % 50 == 0 ? long_text : "short\n"},
                                       {"targets", json::array{"v_0:to_1", "v_0:to_2"}}});
  }
  for (const SerializeOptions& options : {SerializeOptions{}, SerializeOptions{.pretty = true},
                                          SerializeOptions{.python_style = true},
                                          SerializeOptions{.pretty = true, .python_style = true}}) {
    JsonStyle style;
    if (options.pretty) {
      style.indent = 2;
      style.ensure_ascii = options.python_style;
    } else if (options.python_style) {
      style = JsonStyle::Python();
    }
    EXPECT_EQ(m.Serialize(options), WriteJson(m.json(), style));
  }
  Mmif again = LoadText(m.Serialize());
  EXPECT_EQ(again.view(again.view_count() - 1).annotation_count(), 300u);
}

TEST(MmifTest, NewAnnotationSkipsTakenIds) {
  Mmif m = Load(Fixture("asr-pipeline.json"));
  View asr = m.view(0);
  EXPECT_EQ(asr.NewAnnotation(vocab::kToken).id(), "v_0:to_6");
  ASSERT_THAT(asr.AddAnnotation(vocab::kToken, {{"id", "to_10"}}), IsOk());
  EXPECT_EQ(asr.NewAnnotation(vocab::kToken).id(), "v_0:to_11");
  // A document elsewhere holding the next id is skipped too.
  ASSERT_THAT(m.AddDocument(vocab::kTextDocument, "v_0:to_12"), IsOk());
  EXPECT_EQ(asr.NewAnnotation(vocab::kToken).id(), "v_0:to_13");
}

TEST(MmifTest, AddAnnotationWithExplicitIds) {
  Mmif m = Load(Fixture("asr-pipeline.json"));
  View asr = m.view(0);
  StatusOr<Annotation> short_id = asr.AddAnnotation(vocab::kSentence, {{"id", "s9"}});
  ASSERT_THAT(short_id, IsOk());
  EXPECT_EQ(short_id->id(), "v_0:s9");
  EXPECT_THAT(asr.AddAnnotation(vocab::kSentence, {{"id", "s9"}}),
              StatusIs(StatusCode::kAlreadyExists, R"(id "v_0:s9" is already taken)"));
  EXPECT_THAT(asr.AddAnnotation(vocab::kSentence, {{"id", "d1"}, {"x", 1}}), IsOk());
  EXPECT_THAT(asr.AddAnnotation(vocab::kSentence, {{"id", "v_0:td_1"}}),
              StatusIs(StatusCode::kAlreadyExists, R"(id "v_0:td_1" is already taken)"));
  EXPECT_THAT(
      asr.AddAnnotation(vocab::kSentence, {{"id", 5}}),
      StatusIs(StatusCode::kInvalidArgument, "the \"id\" property must be a non-empty string"));
  // An explicit id keeps the position the caller gave it.
  StatusOr<Annotation> ordered =
      asr.AddAnnotation(vocab::kSentence, {{"text", "x"}, {"id", "s10"}});
  ASSERT_THAT(ordered, IsOk());
  EXPECT_EQ(WriteJson(json::value(ordered->properties())), R"({"text":"x","id":"v_0:s10"})");
}

TEST(MmifTest, NewAnnotationsOfOtherVocabularies) {
  Mmif m = Mmif::New();
  View v = m.NewView();
  EXPECT_EQ(v.NewAnnotation("http://vocab.lappsgrid.org/SemanticTag").id(), "v_0:st_1");
  EXPECT_EQ(v.NewAnnotation("https://schema.org/Clip").id(), "v_0:cl_1");
  EXPECT_TRUE(v.Contains("https://schema.org/Clip"));
}

TEST(MmifTest, NewTextDocument) {
  Mmif m = Mmif::New();
  View v = m.NewView();
  Document en = v.NewTextDocument("Karen flew to New York.");
  Document ko = v.NewTextDocument("\xEC\x95\x88\xEB\x85\x95", "ko", {{"mime", "text/plain"}});
  Document none = v.NewTextDocument("", "");
  EXPECT_EQ(en.id(), "v_0:td_1");
  EXPECT_EQ(WriteJson(json::value(en.properties())),
            R"({"id":"v_0:td_1","text":{"@value":"Karen flew to New York.","@language":"en"}})");
  EXPECT_EQ(ko.text_language(), "ko");
  EXPECT_EQ(ko.mime(), "text/plain");
  EXPECT_EQ(none.text_value(), "");
  EXPECT_EQ(none.text_language(), std::nullopt);
  EXPECT_TRUE(v.Contains(vocab::kTextDocument));
  EXPECT_TRUE(en.is_document());
  EXPECT_EQ(m.GetDocument("v_0:td_2")->text_value(), "\xEC\x95\x88\xEB\x85\x95");
  EXPECT_EQ(m.DocumentsByType(vocab::kTextDocument).size(), 3u);
}

TEST(MmifTest, AnnotationProperties) {
  Mmif m = Load(Fixture("asr-pipeline.json"));
  Annotation token = *m.GetAnnotation("v_0:to_1");
  EXPECT_EQ(token.type(), vocab::kToken);
  EXPECT_EQ(token.Get("start")->as_int64(), 0);
  // View-level metadata from contains[Token].
  EXPECT_EQ(token.GetString("document"), "v_0:td_1");
  EXPECT_EQ(token.Get("nothing"), nullptr);
  EXPECT_EQ(token.GetString("start"), std::nullopt);
  Annotation tf = *m.GetAnnotation("v_0:tf_1");
  EXPECT_EQ(tf.GetString("timeUnit"), "milliseconds");
  EXPECT_THAT(token.Set("pos", "NNP"), IsOk());
  EXPECT_THAT(token.Set("start", 1), IsOk());
  EXPECT_EQ(WriteJson(json::value(token.properties())),
            "{\"id\":\"v_0:to_1\",\"start\":1,\"end\":4,\"text\":\"Caf\xC3\xA9\",\"pos\":\"NNP\"}");
  EXPECT_THAT(token.Set("id", "x"),
              StatusIs(StatusCode::kInvalidArgument,
                       "the id of annotation \"v_0:to_1\" cannot be changed: ids are fixed at "
                       "creation"));
  // Top-level documents have no view-level metadata.
  EXPECT_EQ(m.document(0).Get("timeUnit"), nullptr);
}

TEST(MmifTest, ShortIdsOfOldFiles) {
  Mmif m = Load(Sample("1.0.0", "everything"));
  Annotation s1 = *m.GetAnnotation("v1:s1");
  EXPECT_EQ(s1.id(), "s1");
  EXPECT_EQ(s1.long_id(), "v1:s1");
  EXPECT_EQ(m.view(0).GetAnnotation("s1")->long_id(), "v1:s1");
  EXPECT_EQ(m.view(1).GetAnnotation("v1:s1"), std::nullopt);  // in another view
  EXPECT_EQ(m.GetAnnotation("s1"), std::nullopt);             // short ids are not global
  EXPECT_EQ(m.GetAnnotation("v5:bb1")->type(), "http://mmif.clams.ai/vocabulary/BoundingBox/v1");
  EXPECT_EQ(m.GetAnnotation("v500"), std::nullopt);
  EXPECT_EQ(m.GetAnnotation("v1"), std::nullopt);  // a view, not an annotation
  EXPECT_TRUE(m.HasId("v1"));
  EXPECT_TRUE(m.HasId("m1"));
  EXPECT_TRUE(m.HasId("v5:bb1"));
  EXPECT_FALSE(m.HasId("v432402"));
  EXPECT_EQ(m.GetDocument("v4:td1")->location(), "file:///var/archive/transcript-002.txt");
  EXPECT_EQ(m.GetDocument("v1:s1"), std::nullopt);  // not a document
  EXPECT_EQ(m.view(4).NewAnnotation(vocab::kBoundingBox).id(), "v5:bb_1");
}

TEST(MmifTest, AnnotationsOfType) {
  Mmif m = Load(Sample("1.0.5", "everything"));
  std::vector<Annotation> tokens = m.AnnotationsOfType(vocab::kToken);  // LAPPS Tokens match
  ASSERT_EQ(tokens.size(), 28u);
  EXPECT_EQ(tokens[0].long_id(), "v4:t1");
  EXPECT_EQ(m.AnnotationsOfType(vocab::kTimeFrame).size(), 32u);
  EXPECT_EQ(m.AnnotationsOfType("http://vocab.lappsgrid.org/SemanticTag").size(), 12u);
  EXPECT_EQ(m.AnnotationsOfType("BoundingBox").size(), 25u);
  EXPECT_EQ(m.AnnotationsOfType("http://example.org/Nothing").size(), 0u);
}

TEST(MmifTest, Alignments) {
  Mmif m = Load(Sample("1.0.5", "everything"));
  std::vector<AlignmentPair> td_tf = m.Alignments(vocab::kTextDocument, vocab::kTimeFrame);
  ASSERT_EQ(td_tf.size(), 1u);
  EXPECT_EQ(td_tf[0].alignment.long_id(), "v4:a1");
  EXPECT_EQ(td_tf[0].source.long_id(), "v3:tf1");
  EXPECT_EQ(td_tf[0].target.long_id(), "v4:td1");
  EXPECT_EQ(m.Alignments("http://vocab.lappsgrid.org/Token", vocab::kTimeFrame).size(), 28u);
  std::vector<AlignmentPair> bb_td = m.Alignments(vocab::kTextDocument, vocab::kBoundingBox);
  ASSERT_EQ(bb_td.size(), 25u);
  EXPECT_EQ(bb_td[0].alignment.view().id(), "v6");
  EXPECT_EQ(m.Alignments(vocab::kVideoDocument, vocab::kChapter).size(), 0u);
}

TEST(MmifTest, AlignedWith) {
  Mmif m = Load(Fixture("asr-pipeline.json"));
  EXPECT_THAT(Ids(m.AlignedWith(*m.GetAnnotation("v_0:to_2"))), ElementsAre("v_0:tf_2"));
  EXPECT_THAT(Ids(m.AlignedWith(*m.GetAnnotation("v_0:tf_2"))), ElementsAre("v_0:to_2"));
  EXPECT_THAT(Ids(m.AlignedWith(*m.GetDocument("d2"))), ElementsAre("v_0:td_1"));
  EXPECT_THAT(Ids(m.AlignedWith(*m.GetAnnotation("v_0:se_1"))), IsEmpty());
  Mmif old = Load(Sample("1.0.0", "segmenter-kaldi-ner"));
  // Short references in a 1.0.0 file resolve inside their view.
  EXPECT_THAT(Ids(old.AlignedWith(*old.GetAnnotation("v2:t1"))), ElementsAre("v2:tf1"));
  EXPECT_THAT(Ids(old.AlignedWith(*old.GetAnnotation("v1:tf1"))), ElementsAre("v2:td1"));
}

TEST(MmifTest, Anchors) {
  Mmif m = Load(Fixture("asr-pipeline.json"));
  EXPECT_THAT(m.Start(*m.GetAnnotation("v_0:tf_2")), IsOkAndHolds(2000.0));
  EXPECT_THAT(m.End(*m.GetAnnotation("v_0:tf_2")), IsOkAndHolds(2800.0));
  EXPECT_THAT(m.Start(*m.GetAnnotation("v_3:tp_2")), IsOkAndHolds(2000.0));
  EXPECT_THAT(m.End(*m.GetAnnotation("v_3:tp_2")), IsOkAndHolds(2000.0));
  // targets: min start, max end over the targets.
  EXPECT_THAT(m.Start(*m.GetAnnotation("v_3:tf_1")), IsOkAndHolds(0.0));
  EXPECT_THAT(m.End(*m.GetAnnotation("v_3:tf_1")), IsOkAndHolds(4000.0));
  // Token offsets count code points.
  EXPECT_THAT(m.Start(*m.GetAnnotation("v_0:se_1")), IsOkAndHolds(0.0));
  EXPECT_THAT(m.End(*m.GetAnnotation("v_0:se_1")), IsOkAndHolds(17.0));
  EXPECT_THAT(m.Start(*m.GetAnnotation("v_0:al_1")),
              StatusIs(StatusCode::kFailedPrecondition,
                       "annotation \"v_0:al_1\" has no anchor (timePoint, start/end or targets)"));
}

TEST(MmifTest, AnchorErrors) {
  Mmif m = Mmif::New();
  View v = m.NewView();
  Annotation both =
      v.NewAnnotation(vocab::kTimeFrame, {{"start", 1}, {"targets", json::array{"x"}}});
  EXPECT_THAT(m.Start(both), StatusIs(StatusCode::kFailedPrecondition,
                                      "annotation \"v_0:tf_1\" has both \"targets\" and "
                                      "\"start\"/\"end\""));
  Annotation dangling = v.NewAnnotation(vocab::kTimeFrame, {{"targets", json::array{"v_0:zz"}}});
  EXPECT_THAT(m.End(dangling),
              StatusIs(StatusCode::kNotFound,
                       "target \"v_0:zz\" of annotation \"v_0:tf_2\" does not resolve"));
  Annotation empty = v.NewAnnotation(vocab::kTimeFrame, {{"targets", json::array()}});
  EXPECT_THAT(m.Start(empty), StatusIs(StatusCode::kFailedPrecondition,
                                       "\"targets\" of annotation \"v_0:tf_3\" is not a "
                                       "non-empty list"));
  Annotation cycle = v.NewAnnotation(vocab::kTimeFrame, {{"targets", json::array{"v_0:tf_4"}}});
  EXPECT_THAT(m.Start(cycle), StatusIs(StatusCode::kFailedPrecondition,
                                       "\"targets\" of annotation \"v_0:tf_4\" nest deeper than "
                                       "32 levels (a cycle?)"));
  Annotation half = v.NewAnnotation(vocab::kTimeFrame, {{"start", 5}});
  EXPECT_THAT(m.Start(half), IsOkAndHolds(5.0));
  EXPECT_THAT(m.End(half),
              StatusIs(StatusCode::kFailedPrecondition, "annotation \"v_0:tf_5\" has no \"end\""));
  Annotation text = v.NewAnnotation(vocab::kTimePoint, {{"timePoint", "3"}});
  EXPECT_THAT(m.Start(text), StatusIs(StatusCode::kFailedPrecondition,
                                      "\"timePoint\" of annotation \"v_0:tp_1\" is not a number"));
}

TEST(MmifTest, SetError) {
  Mmif m = Load(Fixture("asr-pipeline.json"));
  View asr = m.view(0);
  Annotation other = *m.GetAnnotation("v_3:bb_1");
  asr.SetError("Out of memory", "Traceback...");
  EXPECT_TRUE(asr.has_error());
  EXPECT_EQ(asr.annotation_count(), 0u);
  EXPECT_EQ(asr.contains(), nullptr);
  EXPECT_EQ(m.GetAnnotation("v_0:to_1"), std::nullopt);
  EXPECT_EQ(other.id(), "v_3:bb_1");  // handles into other views stay valid
  EXPECT_EQ(m.GetAnnotation("v_3:bb_1")->id(), "v_3:bb_1");
  std::vector<std::string> keys;
  for (const auto& kv : asr.metadata()) keys.emplace_back(kv.key());
  EXPECT_THAT(keys, ElementsAre("app", "timestamp", "parameters", "appConfiguration",
                                "appProfiling", "error"));
  EXPECT_EQ(WriteJson(asr.metadata().at("error")),
            R"({"message":"Out of memory","stackTrace":"Traceback..."})");
  EXPECT_THAT(Mmif::Parse(m.Serialize()), IsOk());
  asr.SetError("again");
  EXPECT_EQ(WriteJson(asr.metadata().at("error")), R"({"message":"again"})");
}

TEST(MmifTest, SetWarnings) {
  Mmif m = Mmif::New();
  View v = m.NewView();
  v.SetApp("http://apps.clams.ai/test/v1");
  v.NewAnnotation(vocab::kTimeFrame);
  v.SetWarnings({"first warning", "second warning"});
  EXPECT_EQ(v.annotation_count(), 0u);
  EXPECT_EQ(v.contains(), nullptr);
  EXPECT_THAT(v.warnings(), ElementsAre("first warning", "second warning"));
  EXPECT_THAT(Mmif::Parse(m.Serialize()), IsOk());
  v.SetError("boom");
  EXPECT_FALSE(v.has_warnings());
  EXPECT_THAT(Mmif::Parse(m.Serialize()), IsOk());
}

TEST(MmifTest, CloneIsIndependent) {
  Mmif m = Load(Fixture("bars-tones-slates.json"));
  Mmif copy = m.Clone();
  copy.view(0).SetApp("http://apps.clams.ai/changed/v1");
  copy.NewView();
  EXPECT_EQ(m.view(0).app(), "http://apps.clams.ai/bars-and-tones/1.0.5");
  EXPECT_EQ(m.view_count(), 3u);
  EXPECT_EQ(copy.view_count(), 4u);
  EXPECT_EQ(copy.GetAnnotation("v1:s1")->GetString("frameType"), "bars-and-tones");
}

TEST(MmifTest, MoveKeepsTheDocument) {
  Mmif m = Load(Fixture("bars-tones-slates.json"));
  Mmif moved = std::move(m);
  EXPECT_EQ(moved.GetAnnotation("v3:s1")->GetString("text"), "The");
  Mmif assigned = Mmif::New();
  assigned = std::move(moved);
  EXPECT_EQ(assigned.view(2).annotations()[0].id(), "v3:s1");
}

TEST(MmifTest, LargeDocumentLookups) {
  std::string text =
      clams::testing::ReadFileOrDie(clams::testing::MmifDataDir() / "bench" / "whisper-1h.mmif");
  Mmif m = LoadText(text);
  EXPECT_THAT(m.warnings(), IsEmpty());
  EXPECT_EQ(m.Serialize({.python_style = true}), text);
  EXPECT_EQ(m.AnnotationsOfType(vocab::kToken).size(), 9375u);
  EXPECT_EQ(m.Alignments(vocab::kTimeFrame, vocab::kToken).size(), 9375u);
  Annotation last_sentence = *m.GetAnnotation("v_0:se_552");
  StatusOr<double> start = m.Start(last_sentence);
  ASSERT_THAT(start, IsOk());
  EXPECT_EQ(*start, m.Start(*m.GetAnnotation("v_0:to_9368")).value());
  EXPECT_EQ(m.view(0).NewAnnotation(vocab::kToken).id(), "v_0:to_9376");
}

TEST(NowTimestampTest, Format) {
  EXPECT_TRUE(IsTimestamp(NowTimestamp())) << NowTimestamp();
  EXPECT_FALSE(IsTimestamp("2026-11-25T03:02:01"));
}

}  // namespace
}  // namespace clams::mmif
