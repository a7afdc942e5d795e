#include "clams/mmif/vocabulary.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "testing/status_matchers.h"

namespace clams::mmif::vocab {
namespace {

using ::clams::testing::IsOkAndHolds;
using ::clams::testing::StatusIs;

constexpr const char* kReleases[] = {"1.0.0", "1.0.1", "1.0.2", "1.0.3", "1.0.4", "1.0.5", "1.1.0"};

std::string V(std::string_view name, int version) {
  return std::string(kClamsBase) + std::string(name) + "/v" + std::to_string(version);
}

TEST(IriTest, TypeVersionsPerRelease) {
  const std::vector<std::pair<std::string, std::vector<int>>> table = {
      {"Thing", {1, 1, 1, 1, 1, 1, 1}},         {"Annotation", {2, 2, 3, 4, 5, 5, 6}},
      {"Region", {1, 1, 2, 3, 4, 4, 5}},        {"TimePoint", {1, 1, 2, 3, 4, 4, 5}},
      {"Interval", {1, 1, 2, 3, 4, 4, 5}},      {"Span", {1, 1, 2, 3, 4, 4, 5}},
      {"TimeFrame", {1, 2, 3, 4, 5, 5, 6}},     {"Chapter", {1, 2, 3, 4, 5, 5, 6}},
      {"Polygon", {1, 1, 2, 3, 4, 4, 5}},       {"BoundingBox", {1, 1, 2, 3, 4, 4, 5}},
      {"VideoObject", {1, 1, 2, 3, 4, 4, 5}},   {"Relation", {1, 1, 2, 3, 4, 4, 5}},
      {"Alignment", {1, 1, 1, 1, 1, 1, 1}},     {"Document", {1, 1, 1, 1, 1, 1, 1}},
      {"VideoDocument", {1, 1, 1, 1, 1, 1, 1}}, {"AudioDocument", {1, 1, 1, 1, 1, 1, 1}},
      {"ImageDocument", {1, 1, 1, 1, 1, 1, 1}}, {"TextDocument", {1, 1, 1, 1, 1, 1, 1}},
  };
  for (const auto& [name, versions] : table) {
    for (std::size_t r = 0; r < versions.size(); ++r) {
      EXPECT_THAT(Iri(name, kReleases[r]), IsOkAndHolds(V(name, versions[r])))
          << name << " in " << kReleases[r];
    }
  }
}

TEST(IriTest, DefaultIsTheCurrentSpec) {
  const std::vector<std::pair<std::string, std::string_view>> current = {
      {"Thing", kThing},
      {"Annotation", kAnnotation},
      {"Region", kRegion},
      {"TimePoint", kTimePoint},
      {"Interval", kInterval},
      {"Span", kSpan},
      {"Token", kToken},
      {"Sentence", kSentence},
      {"Paragraph", kParagraph},
      {"NamedEntity", kNamedEntity},
      {"NounChunk", kNounChunk},
      {"VerbChunk", kVerbChunk},
      {"TimeFrame", kTimeFrame},
      {"Chapter", kChapter},
      {"Polygon", kPolygon},
      {"BoundingBox", kBoundingBox},
      {"VideoObject", kVideoObject},
      {"Relation", kRelation},
      {"GenericRelation", kGenericRelation},
      {"SemanticRole", kSemanticRole},
      {"Constituent", kConstituent},
      {"Dependency", kDependency},
      {"Alignment", kAlignment},
      {"Document", kDocument},
      {"VideoDocument", kVideoDocument},
      {"AudioDocument", kAudioDocument},
      {"ImageDocument", kImageDocument},
      {"TextDocument", kTextDocument},
  };
  for (const auto& [name, iri] : current) {
    EXPECT_THAT(Iri(name), IsOkAndHolds(std::string(iri))) << name;
    EXPECT_THAT(Iri(name, "1.1.0"), IsOkAndHolds(std::string(iri))) << name;
  }
}

TEST(IriTest, TypesNewIn110DoNotExistBefore) {
  for (const char* name :
       {"Token", "Sentence", "Paragraph", "NamedEntity", "NounChunk", "VerbChunk",
        "GenericRelation", "SemanticRole", "Constituent", "Dependency"}) {
    EXPECT_THAT(Iri(name, "1.0.5"),
                StatusIs(StatusCode::kNotFound, "type " + std::string(name) +
                                                    " does not exist in MMIF 1.0.5 (it was added "
                                                    "in 1.1.0)"));
  }
}

TEST(IriTest, RejectsUnknownNamesAndVersions) {
  EXPECT_THAT(Iri("SemanticTag"),
              StatusIs(StatusCode::kNotFound, "\"SemanticTag\" is not a CLAMS vocabulary type"));
  EXPECT_THAT(Iri("timeframe"),
              StatusIs(StatusCode::kNotFound, "\"timeframe\" is not a CLAMS vocabulary type"));
  EXPECT_THAT(Iri("TimeFrame", "0.4.2"),
              StatusIs(StatusCode::kInvalidArgument,
                       "unsupported MMIF spec version \"0.4.2\" (the vocabulary is known for "
                       "1.0.0 to 1.1.0)"));
  EXPECT_THAT(Iri("TimeFrame", "1.2.0"),
              StatusIs(StatusCode::kInvalidArgument, ::testing::HasSubstr("\"1.2.0\"")));
}

TEST(ParseTypeTest, ClamsIri) {
  TypeId t = ParseType("http://mmif.clams.ai/vocabulary/TimeFrame/v5");
  EXPECT_EQ(t.kind, TypeId::Kind::kClams);
  EXPECT_EQ(t.name, "TimeFrame");
  EXPECT_EQ(t.version, 5);
  EXPECT_EQ(t.legacy, "");
}

TEST(ParseTypeTest, LegacyIri) {
  TypeId t = ParseType("http://mmif.clams.ai/0.4.2/vocabulary/Annotation");
  EXPECT_EQ(t.kind, TypeId::Kind::kClamsLegacy);
  EXPECT_EQ(t.name, "Annotation");
  EXPECT_EQ(t.version, 0);
  EXPECT_EQ(t.legacy, "0.4.2");
}

TEST(ParseTypeTest, LappsIri) {
  TypeId t = ParseType("http://vocab.lappsgrid.org/SemanticTag");
  EXPECT_EQ(t.kind, TypeId::Kind::kLapps);
  EXPECT_EQ(t.name, "SemanticTag");
}

TEST(ParseTypeTest, OtherIris) {
  TypeId clip = ParseType("https://schema.org/Clip");
  EXPECT_EQ(clip.kind, TypeId::Kind::kOther);
  EXPECT_EQ(clip.name, "Clip");
  // The malformed legacy IRI of the east-tesseract-typing sample.
  TypeId bad = ParseType("http://mmif.clams.ai/0.1.0/TextDocument");
  EXPECT_EQ(bad.kind, TypeId::Kind::kOther);
  EXPECT_EQ(bad.name, "TextDocument");
  EXPECT_EQ(ParseType("https://mmif.clams.ai/vocabulary/TimeFrame/v6").kind, TypeId::Kind::kOther);
  EXPECT_EQ(ParseType("http://mmif.clams.ai/vocabulary/TimeFrame").kind, TypeId::Kind::kOther);
  EXPECT_EQ(ParseType("Token").name, "Token");
  EXPECT_EQ(ParseType("").name, "");
}

TEST(TypeMatchesTest, IgnoresTypeVersions) {
  EXPECT_TRUE(TypeMatches(V("TimeFrame", 1), kTimeFrame));
  EXPECT_TRUE(TypeMatches(kTimeFrame, V("TimeFrame", 3)));
  EXPECT_TRUE(TypeMatches(V("TimeFrame", 5), "TimeFrame"));
  EXPECT_FALSE(TypeMatches(kTimeFrame, kTimePoint));
  EXPECT_FALSE(TypeMatches(kChapter, kTimeFrame));  // a subtype is not the type
  EXPECT_FALSE(TypeMatches(kTimeFrame, "Timeframe"));
}

TEST(TypeMatchesTest, AcceptsLegacy04Iris) {
  EXPECT_TRUE(TypeMatches("http://mmif.clams.ai/0.4.0/vocabulary/TimeFrame", kTimeFrame));
  EXPECT_TRUE(TypeMatches("http://mmif.clams.ai/0.4.2/vocabulary/Annotation", kAnnotation));
  EXPECT_TRUE(TypeMatches(V("Annotation", 2), "http://mmif.clams.ai/0.4.2/vocabulary/Annotation"));
  // Older legacy IRIs are unsupported, as in mmif-python: only an exact match.
  EXPECT_FALSE(TypeMatches("http://mmif.clams.ai/0.2.0/vocabulary/TimeFrame", kTimeFrame));
  EXPECT_FALSE(TypeMatches("http://mmif.clams.ai/0.1.0/TextDocument", kTextDocument));
}

TEST(TypeMatchesTest, MapsLappsSpanTypes) {
  for (const char* name :
       {"Token", "Sentence", "Paragraph", "NamedEntity", "NounChunk", "VerbChunk"}) {
    EXPECT_TRUE(TypeMatches(std::string(kLappsBase) + name, V(name, 1))) << name;
    EXPECT_TRUE(TypeMatches(V(name, 1), std::string(kLappsBase) + name)) << name;
  }
  EXPECT_TRUE(TypeMatches("http://vocab.lappsgrid.org/Markable", "Markable"));
  EXPECT_TRUE(TypeMatches("http://vocab.lappsgrid.org/SemanticTag",
                          "http://vocab.lappsgrid.org/SemanticTag"));
  EXPECT_FALSE(TypeMatches("http://vocab.lappsgrid.org/SemanticTag", "SemanticTag"));
  EXPECT_FALSE(TypeMatches("http://vocab.lappsgrid.org/SemanticTag",
                           "http://mmif.clams.ai/vocabulary/SemanticTag/v1"));
}

TEST(TypeMatchesTest, OtherVocabulariesMatchExactly) {
  EXPECT_TRUE(TypeMatches("https://schema.org/Clip", "https://schema.org/Clip"));
  EXPECT_FALSE(TypeMatches("https://schema.org/Clip", "Clip"));
  EXPECT_FALSE(TypeMatches("https://mmif.clams.ai/vocabulary/TimeFrame/v6", kTimeFrame));
  EXPECT_TRUE(TypeMatches("Token", "Token"));
}

TEST(IsDocumentTypeTest, DocumentTypesOfAnyVersion) {
  EXPECT_TRUE(IsDocumentType(kTextDocument));
  EXPECT_TRUE(IsDocumentType(kVideoDocument));
  EXPECT_TRUE(IsDocumentType(kAudioDocument));
  EXPECT_TRUE(IsDocumentType(kImageDocument));
  EXPECT_TRUE(IsDocumentType(kDocument));
  EXPECT_TRUE(IsDocumentType(V("TextDocument", 2)));
  EXPECT_TRUE(IsDocumentType("http://mmif.clams.ai/0.4.1/vocabulary/TextDocument"));
  EXPECT_FALSE(IsDocumentType(kTimeFrame));
  EXPECT_FALSE(IsDocumentType("http://example.org/MyDocument"));
  EXPECT_FALSE(IsDocumentType("http://mmif.clams.ai/0.1.0/TextDocument"));
}

TEST(IdPrefixTest, MmifPythonTableFor110) {
  const std::vector<std::pair<std::string_view, std::string>> table = {
      {kThing, "t"},
      {kAnnotation, "a"},
      {kRegion, "r"},
      {kTimePoint, "tp"},
      {kInterval, "i"},
      {kSpan, "s"},
      {kToken, "to"},
      {kSentence, "se"},
      {kParagraph, "p"},
      {kNamedEntity, "ne"},
      {kNounChunk, "nc"},
      {kVerbChunk, "vc"},
      {kTimeFrame, "tf"},
      {kChapter, "c"},
      {kPolygon, "po"},
      {kBoundingBox, "bb"},
      {kVideoObject, "vo"},
      {kRelation, "re"},
      {kAlignment, "al"},
      {kDocument, "d"},
      {kVideoDocument, "vd"},
      {kAudioDocument, "ad"},
      {kImageDocument, "id"},
      {kTextDocument, "td"},
      {kGenericRelation, "gr"},
      {kSemanticRole, "sr"},
      {kConstituent, "co"},
      {kDependency, "de"},
  };
  for (const auto& [iri, prefix] : table) EXPECT_EQ(IdPrefix(iri), prefix) << iri;
}

TEST(IdPrefixTest, OtherTypesFollowTheRule) {
  EXPECT_EQ(IdPrefix("http://vocab.lappsgrid.org/Token"), "to");
  EXPECT_EQ(IdPrefix("http://vocab.lappsgrid.org/SemanticTag"), "st");
  EXPECT_EQ(IdPrefix("http://mmif.clams.ai/vocabulary/SemanticTag/v1"), "st");
  EXPECT_EQ(IdPrefix("https://schema.org/Clip"), "cl");  // "c" is Chapter's
  EXPECT_EQ(IdPrefix("http://example.org/types/Token"), "to");
  EXPECT_EQ(IdPrefix("http://example.org/my-type"), "m");
  EXPECT_EQ(IdPrefix("http://example.org/TextDocumentPart"), "tdp");
  EXPECT_EQ(IdPrefix("http://example.org/T"), "t");  // cannot be widened further
  EXPECT_EQ(IdPrefix("http://example.org/123"), "a");
  EXPECT_EQ(IdPrefix("TimeFrame"), "tf");
}

}  // namespace
}  // namespace clams::mmif::vocab
