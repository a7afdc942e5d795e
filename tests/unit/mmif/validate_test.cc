#include "clams/mmif/validate.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "testing/status_matchers.h"

namespace clams::mmif {
namespace {

using ::clams::testing::IsOk;
using ::clams::testing::IsOkAndHolds;
using ::clams::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr std::string_view kMeta = R"({"mmif":"http://mmif.clams.ai/1.1.0"})";
constexpr std::string_view kDocs = R"([{"@type":"http://mmif.clams.ai/vocabulary/TextDocument/v1",)"
                                   R"("properties":{"id":"d1","text":{"@value":"Hello world"}}}])";
constexpr std::string_view kTokenView =
    R"({"id":"v1","metadata":{"app":"http://apps.clams.ai/test/v1",)"
    R"("contains":{"http://mmif.clams.ai/vocabulary/Token/v1":{"document":"d1"}}},)"
    R"("annotations":[{"@type":"http://mmif.clams.ai/vocabulary/Token/v1",)"
    R"("properties":{"id":"v1:t1","start":0,"end":5}}]})";

std::string Doc(std::string_view views, std::string_view documents = kDocs,
                std::string_view metadata = kMeta) {
  return R"({"metadata":)" + std::string(metadata) + R"(,"documents":)" + std::string(documents) +
         R"(,"views":)" + std::string(views) + "}";
}

// A view `v1` with the given metadata and annotations.
std::string ViewWith(std::string_view metadata, std::string_view annotations = "[]") {
  return R"([{"id":"v1","metadata":)" + std::string(metadata) + R"(,"annotations":)" +
         std::string(annotations) + "}]";
}

ValidationReport Check(std::string_view text, const ValidateOptions& options = {}) {
  StatusOr<json::value> tree = ParseJson(text);
  EXPECT_THAT(tree, IsOk()) << text;
  return tree.ok() ? Validate(*tree, options) : ValidationReport{};
}

std::vector<std::string> Errors(std::string_view text, const ValidateOptions& options = {}) {
  std::vector<std::string> out;
  for (const ValidationIssue& i : Check(text, options).errors) out.push_back(i.ToString());
  return out;
}

std::vector<std::string> Warnings(std::string_view text) {
  std::vector<std::string> out;
  for (const ValidationIssue& i : Check(text).warnings) {
    EXPECT_EQ(i.severity, ValidationIssue::Severity::kWarning);
    out.push_back(i.ToString());
  }
  return out;
}

TEST(ValidateTest, ValidDocumentHasNoIssues) {
  ValidationReport r = Check(Doc("[" + std::string(kTokenView) + "]"));
  EXPECT_TRUE(r.ok());
  EXPECT_THAT(r.errors, IsEmpty());
  EXPECT_THAT(r.warnings, IsEmpty());
  EXPECT_THAT(r.ToStatus(), IsOk());
  EXPECT_THAT(r.ToStatus(/*strict=*/true), IsOk());
}

TEST(ValidateTest, EmptyListsAreValid) {
  // The schema's minLength on arrays is a no-op in draft 4.
  EXPECT_THAT(Errors(Doc("[]", "[]")), IsEmpty());
  EXPECT_THAT(Errors(Doc(ViewWith(R"({"app":"http://x.org/a","warnings":[]})"))), IsEmpty());
}

TEST(ValidateTest, Root) {
  EXPECT_THAT(Errors("[]"), ElementsAre("(root): must be an object (got array)"));
  EXPECT_THAT(Errors(R"({"metadata":{"mmif":"http://mmif.clams.ai/1.1.0"}})"),
              ElementsAre(R"((root): missing required property "documents")",
                          R"((root): missing required property "views")"));
  EXPECT_THAT(Errors(R"({"documents":[],"views":[]})"),
              ElementsAre(R"((root): missing required property "metadata")"));
  EXPECT_THAT(
      Errors(R"({"metadata":{"mmif":"http://mmif.clams.ai/1.1.0"},"documents":[],"views":[],)"
             R"("@context":"x"})"),
      ElementsAre(R"((root): property "@context" is not allowed (allowed: "metadata", )"
                  R"("documents", "views"))"));
  EXPECT_THAT(Errors(Doc("{}")), ElementsAre("views: must be an array (got object)"));
  EXPECT_THAT(Errors(Doc("[]", "null")), ElementsAre("documents: must be an array (got null)"));
}

TEST(ValidateTest, MmifMetadata) {
  EXPECT_THAT(Errors(Doc("[]", kDocs, "[]")),
              ElementsAre("metadata: must be an object (got array)"));
  EXPECT_THAT(Errors(Doc("[]", kDocs, R"({"other":1})")),
              ElementsAre(R"(metadata: missing required property "mmif")"));
  EXPECT_THAT(Errors(Doc("[]", kDocs, R"({"mmif":1.1})")),
              ElementsAre("metadata.mmif: must be a string (got number)"));
  EXPECT_THAT(Errors(Doc("[]", kDocs, R"({"mmif":"1.1.0"})")),
              ElementsAre("metadata.mmif: must be at least 7 characters long"));
  // Other keys are allowed in the top-level metadata.
  EXPECT_THAT(Errors(Doc("[]", kDocs, R"({"mmif":"http://mmif.clams.ai/1.0.4","x":[]})")),
              IsEmpty());
}

TEST(ValidateTest, Versions) {
  EXPECT_THAT(Errors(Doc("[]", kDocs, R"({"mmif":"http://mmif.clams.ai/0.3.1"})")),
              ElementsAre("metadata.mmif: MMIF 0.3.1 is not supported: clams-cpp reads MMIF 0.4.0 "
                          "to 0.5.x and 1.0.0 to 1.2.x; files older than 0.4.0 use type IRIs that "
                          "mmif-python refuses too"));
  EXPECT_THAT(Errors(Doc("[]", kDocs, R"({"mmif":"http://mmif.clams.ai/1.3.0"})")),
              ElementsAre("metadata.mmif: MMIF 1.3.0 is not supported: clams-cpp reads MMIF 0.4.0 "
                          "to 0.5.x and 1.0.0 to 1.2.x; this file follows a newer specification"));
  EXPECT_THAT(Errors(Doc("[]", kDocs, R"({"mmif":"http://example.org/mmif"})")),
              ElementsAre("metadata.mmif: cannot read the MMIF version from "
                          "\"http://example.org/mmif\" (expected "
                          "\"http://mmif.clams.ai/<major>.<minor>.<patch>\")"));
  EXPECT_THAT(Errors(Doc("[]", kDocs, R"({"mmif":"http://mmif.clams.ai/1.x.0"})")),
              ElementsAre(::testing::HasSubstr("cannot read the MMIF version")));
  for (const char* ok : {"http://mmif.clams.ai/1.0.0", "http://mmif.clams.ai/1.2.9",
                         "https://mmif.clams.ai/1.1.0", "http://mmif.clams.ai/0.4.0",
                         "http://mmif.clams.ai/0.4.2", "http://mmif.clams.ai/0.5.0"}) {
    EXPECT_THAT(Errors(Doc("[]", kDocs, R"({"mmif":")" + std::string(ok) + "\"}")), IsEmpty())
        << ok;
  }
  // Only the schema: the version is not checked.
  EXPECT_THAT(
      Errors(Doc("[]", kDocs, R"({"mmif":"http://mmif.clams.ai/0.3.1"})"), {.version = false}),
      IsEmpty());
}

TEST(ValidateTest, ReadMmifVersion) {
  EXPECT_THAT(ReadMmifVersion(*ParseJson(Doc("[]"))), IsOkAndHolds("1.1.0"));
  EXPECT_THAT(
      ReadMmifVersion(*ParseJson("[]")),
      StatusIs(StatusCode::kInvalidArgument, "cannot read the MMIF version: not an object"));
  EXPECT_THAT(ReadMmifVersion(*ParseJson("{}")),
              StatusIs(StatusCode::kInvalidArgument,
                       "cannot read the MMIF version: \"metadata\" is missing"));
  EXPECT_THAT(ReadMmifVersion(*ParseJson(R"({"metadata":{}})")),
              StatusIs(StatusCode::kInvalidArgument,
                       "cannot read the MMIF version: \"metadata.mmif\" is missing"));
  EXPECT_THAT(ReadMmifVersion(*ParseJson(R"({"metadata":{"mmif":5}})")),
              StatusIs(StatusCode::kInvalidArgument,
                       "cannot read the MMIF version: \"metadata.mmif\" is not a string"));
  EXPECT_THAT(ReadMmifVersion(*ParseJson(R"({"metadata":{"mmif":"http://mmif.clams.ai/1.0"}})")),
              StatusIs(StatusCode::kInvalidArgument,
                       "cannot read the MMIF version from \"http://mmif.clams.ai/1.0\" (expected "
                       "\"http://mmif.clams.ai/<major>.<minor>.<patch>\")"));
}

TEST(ValidateTest, CheckSupportedVersion) {
  EXPECT_THAT(CheckSupportedVersion("1.0.0"), IsOk());
  EXPECT_THAT(CheckSupportedVersion("1.1.0"), IsOk());
  EXPECT_THAT(CheckSupportedVersion("1.2.3"), IsOk());
  // Before 1.0: the releases mmif-python still loads (issue 12).
  EXPECT_THAT(CheckSupportedVersion("0.4.0"), IsOk());
  EXPECT_THAT(CheckSupportedVersion("0.4.2"), IsOk());
  EXPECT_THAT(CheckSupportedVersion("0.5.0"), IsOk());
  EXPECT_THAT(CheckSupportedVersion("0.3.1"),
              StatusIs(StatusCode::kInvalidArgument,
                       "MMIF 0.3.1 is not supported: clams-cpp reads MMIF 0.4.0 to 0.5.x and 1.0.0 "
                       "to 1.2.x; files older than 0.4.0 use type IRIs that mmif-python refuses "
                       "too"));
  EXPECT_THAT(CheckSupportedVersion("0.6.0"),
              StatusIs(StatusCode::kInvalidArgument,
                       "MMIF 0.6.0 is not supported: clams-cpp reads MMIF 0.4.0 to 0.5.x and 1.0.0 "
                       "to 1.2.x; there is no such MMIF release"));
  EXPECT_THAT(CheckSupportedVersion("2.0.0"),
              StatusIs(StatusCode::kInvalidArgument,
                       "MMIF 2.0.0 is not supported: clams-cpp reads MMIF 0.4.0 to 0.5.x and 1.0.0 "
                       "to 1.2.x; this file follows a newer specification"));
  EXPECT_THAT(CheckSupportedVersion("latest"),
              StatusIs(StatusCode::kInvalidArgument,
                       "MMIF version \"latest\" is not a version number (expected "
                       "<major>.<minor>.<patch>)"));
}

TEST(ValidateTest, Documents) {
  EXPECT_THAT(Errors(Doc("[]", "[1]")),
              ElementsAre("documents[0]: must be an object (got number)"));
  EXPECT_THAT(
      Errors(Doc("[]", R"([{"@type":"http://x.org/T","properties":{"id":"d1"},"id":"d1"}])")),
      ElementsAre(
          R"(documents[0]: property "id" is not allowed (allowed: "@type", "properties"))"));
  EXPECT_THAT(Errors(Doc("[]", R"([{"properties":{"id":"d1"}}])")),
              ElementsAre(R"(documents[0]: missing required property "@type")"));
  EXPECT_THAT(Errors(Doc("[]", R"([{"@type":"T"}])")),
              ElementsAre(R"(documents[0]: missing required property "properties")"));
  EXPECT_THAT(Errors(Doc("[]", R"([{"@type":"","properties":{"id":"d1"}}])")),
              ElementsAre(R"(documents[0]["@type"]: must not be empty)"));
  EXPECT_THAT(Errors(Doc("[]", R"([{"@type":["T"],"properties":{"id":"d1"}}])")),
              ElementsAre(R"(documents[0]["@type"]: must be a string (got array))"));
  EXPECT_THAT(Errors(Doc("[]", R"([{"@type":"T","properties":"d1"}])")),
              ElementsAre("documents[0].properties: must be an object (got string)"));
  EXPECT_THAT(Errors(Doc("[]", R"([{"@type":"T","properties":{"mime":"a/b"}}])")),
              ElementsAre(R"(documents[0].properties: missing required property "id")"));
  EXPECT_THAT(Errors(Doc("[]", R"([{"@type":"T","properties":{"id":""}}])")),
              ElementsAre("documents[0].properties.id: must not be empty"));
  EXPECT_THAT(Errors(Doc("[]", R"([{"@type":"T","properties":{"id":7}}])")),
              ElementsAre("documents[0].properties.id: must be a string (got number)"));
  // `@type` needs only one character, `text` is never checked, other properties are free.
  EXPECT_THAT(Errors(Doc("[]", R"([{"@type":"T","properties":{"id":"x","text":5,"n":null}}])")),
              IsEmpty());
}

TEST(ValidateTest, Views) {
  EXPECT_THAT(Errors(Doc("[null]")), ElementsAre("views[0]: must be an object (got null)"));
  EXPECT_THAT(Errors(Doc(R"([{"metadata":{"app":"http://x.org/a","contains":{}}}])")),
              ElementsAre(R"(views[0]: missing required property "id")",
                          R"(views[0]: missing required property "annotations")"));
  EXPECT_THAT(Errors(Doc(R"([{"id":"","metadata":{"app":"http://x.org/a","contains":{}},)"
                         R"("annotations":{}}])")),
              ElementsAre("views[0].id: must not be empty",
                          "views[0].annotations: must be an array (got object)"));
  EXPECT_THAT(Errors(Doc(R"([{"id":"v1","annotations":[],"docs":[]}])")),
              ElementsAre(R"(views[0]: property "docs" is not allowed (allowed: "id", )"
                          R"("metadata", "annotations"))",
                          R"(views[0]: missing required property "metadata")"));
  EXPECT_THAT(Errors(Doc(ViewWith(R"({"app":"http://x.org/a","contains":{}})",
                                  R"([{"@type":"T","properties":{}}])"))),
              ElementsAre(R"(views[0].annotations[0].properties: missing required property "id")"));
}

TEST(ValidateTest, ViewMetadataOneOf) {
  EXPECT_THAT(Errors(Doc(ViewWith(R"({"app":"http://x.org/a"})"))),
              ElementsAre(R"(views[0].metadata: must have exactly one of "contains", "warnings", )"
                          R"("error")"));
  EXPECT_THAT(
      Errors(Doc(ViewWith(R"({"app":"http://x.org/a","contains":{},"error":{"message":"m"}})"))),
      ElementsAre(R"(views[0].metadata: must have exactly one of "contains", "warnings", "error" )"
                  R"((has "contains" and "error"))"));
  EXPECT_THAT(
      Errors(Doc(ViewWith(
          R"({"app":"http://x.org/a","contains":{},"warnings":[],"error":{"message":"m"}})"))),
      ElementsAre(::testing::HasSubstr(R"((has "contains" and "warnings" and "error"))")));
  EXPECT_THAT(Errors(Doc(ViewWith(R"({"contains":{}})"))),
              ElementsAre(R"(views[0].metadata: missing required property "app")"));
  EXPECT_THAT(Errors(Doc(ViewWith(R"({"timestamp":"t"})"))),
              ElementsAre(R"(views[0].metadata: missing required property "app")",
                          R"(views[0].metadata: must have exactly one of "contains", "warnings", )"
                          R"("error")"));
  // Each branch alone is fine, whatever the values of the other keys.
  EXPECT_THAT(Errors(Doc(ViewWith(R"({"app":"http://x.org/a","warnings":["w"]})"))), IsEmpty());
  EXPECT_THAT(Errors(Doc(ViewWith(R"({"app":"http://x.org/a","error":{"message":"m"}})"))),
              IsEmpty());
}

TEST(ValidateTest, ViewMetadataProperties) {
  EXPECT_THAT(Errors(Doc(ViewWith("[]"))),
              ElementsAre("views[0].metadata: must be an object (got array)"));
  EXPECT_THAT(Errors(Doc(ViewWith(R"({"app":"http://","contains":{},"timestamp":5})"))),
              ElementsAre("views[0].metadata.timestamp: must be a string (got number)"));
  EXPECT_THAT(Errors(Doc(ViewWith(R"({"app":"x://ab","contains":{}})"))),
              ElementsAre("views[0].metadata.app: must be at least 7 characters long"));
  // minLength counts code points, not bytes: six characters in nine bytes.
  EXPECT_THAT(Errors(Doc(ViewWith("{\"app\":\"h\xC3\xA9\xC3\xA9\xC3\xA9:/\",\"contains\":{}}"))),
              ElementsAre("views[0].metadata.app: must be at least 7 characters long"));
  EXPECT_THAT(Errors(Doc(ViewWith("{\"app\":\"h\xC3\xA9\xC3\xA9\xC3\xA9:/x\",\"contains\":{}}"))),
              IsEmpty());
  EXPECT_THAT(Errors(Doc(ViewWith(R"({"app":"http://x.org/a","contains":[]})"))),
              ElementsAre("views[0].metadata.contains: must be an object (got array)"));
  EXPECT_THAT(
      Errors(Doc(ViewWith(R"({"app":"http://x.org/a","contains":{"TimeFrame":{},"ftp://x":{},)"
                          R"("http://x.org/T":"v1","https://x.org/U":{}}})"))),
      ElementsAre(
          R"(views[0].metadata.contains["TimeFrame"]: key is not an annotation type IRI )"
          R"((must match ^https?://))",
          R"(views[0].metadata.contains["ftp://x"]: key is not an annotation type IRI )"
          R"((must match ^https?://))",
          R"(views[0].metadata.contains["http://x.org/T"]: must be an object (got string))"));
  EXPECT_THAT(Errors(Doc(ViewWith(R"({"app":"http://x.org/a","warnings":"w"})"))),
              ElementsAre("views[0].metadata.warnings: must be an array (got string)"));
  EXPECT_THAT(Errors(Doc(ViewWith(R"({"app":"http://x.org/a","warnings":["w",{}]})"))),
              ElementsAre("views[0].metadata.warnings[1]: must be a string (got object)"));
  EXPECT_THAT(
      Errors(Doc(ViewWith(R"({"app":"http://x.org/a","contains":{},"appConfiguration":[]})"))),
      ElementsAre("views[0].metadata.appConfiguration: must be an object (got array)"));
  EXPECT_THAT(
      Errors(Doc(ViewWith(R"({"app":"http://x.org/a","contains":{},"document":5,"x":[]})"))),
      IsEmpty());
}

TEST(ValidateTest, ViewError) {
  EXPECT_THAT(Errors(Doc(ViewWith(R"({"app":"http://x.org/a","error":"boom"})"))),
              ElementsAre("views[0].metadata.error: must be an object (got string)"));
  EXPECT_THAT(Errors(Doc(ViewWith(R"({"app":"http://x.org/a","error":{"stackTrace":"s"}})"))),
              ElementsAre(R"(views[0].metadata.error: missing required property "message")"));
  EXPECT_THAT(Errors(Doc(ViewWith(R"({"app":"http://x.org/a","error":{"message":""}})"))),
              ElementsAre("views[0].metadata.error.message: must not be empty"));
  EXPECT_THAT(
      Errors(Doc(ViewWith(R"({"app":"http://x.org/a","error":{"message":"m","stackTrace":1}})"))),
      ElementsAre("views[0].metadata.error.stackTrace: must be a string (got number)"));
}

TEST(ValidateTest, Parameters) {
  EXPECT_THAT(Errors(Doc(ViewWith(R"({"app":"http://x.org/a","contains":{},"parameters":[]})"))),
              ElementsAre("views[0].metadata.parameters: must be an object (got array)"));
  EXPECT_THAT(
      Errors(Doc(ViewWith(R"({"app":"http://x.org/a","contains":{},"parameters":)"
                          R"({"a":"1","b":["x","y"],"c":true,"d":["x",2],"e":[["x"]],"f":[]}})"))),
      ElementsAre(R"(views[0].metadata.parameters["c"]: must be a string or an array of strings)",
                  R"(views[0].metadata.parameters["d"]: must be a string or an array of strings)",
                  R"(views[0].metadata.parameters["e"]: must be a string or an array of strings)"));
  // patternProperties ".+": the empty key and keys made of newlines only are unconstrained.
  EXPECT_THAT(Errors(Doc(ViewWith(
                  R"({"app":"http://x.org/a","contains":{},"parameters":{"":1,"\n\n":{}}})"))),
              IsEmpty());
  EXPECT_THAT(
      Errors(Doc(ViewWith(R"({"app":"http://x.org/a","contains":{},"parameters":{"\na":1}})"))),
      ElementsAre(R"(views[0].metadata.parameters["\na"]: must be a string or an array )"
                  R"(of strings)"));
}

TEST(ValidateTest, ErrorsComeInDocumentOrder) {
  std::string text =
      R"({"views":[{"id":"","metadata":{"app":"x","contains":{}},"annotations":[]}],)"
      R"("metadata":{"mmif":"short"},"documents":[{"@type":"T","properties":{}}],)"
      R"("extra":1})";
  EXPECT_THAT(Errors(text),
              ElementsAre("views[0].id: must not be empty",
                          "views[0].metadata.app: must be at least 7 characters long",
                          "metadata.mmif: must be at least 7 characters long",
                          R"(documents[0].properties: missing required property "id")",
                          R"((root): property "extra" is not allowed (allowed: "metadata", )"
                          R"("documents", "views"))"));
}

TEST(ValidateTest, DuplicateIds) {
  std::string anns = R"([{"@type":"T","properties":{"id":"v1:a"}},)"
                     R"({"@type":"T","properties":{"id":"v1:b"}},)"
                     R"({"@type":"T","properties":{"id":"v1:a"}}])";
  std::string views = R"([{"id":"v1","metadata":{"app":"http://x.org/a","contains":{}},)"
                      R"("annotations":)" +
                      anns +
                      R"(},)"
                      R"({"id":"d1","metadata":{"app":"http://x.org/a","contains":{}},)"
                      R"("annotations":[]}])";
  std::string docs =
      std::string(kDocs).insert(kDocs.size() - 1, R"(,{"@type":"T","properties":{"id":"d1"}})");
  EXPECT_THAT(
      Warnings(Doc(views, docs)),
      ElementsAre(R"(documents[1].properties.id: duplicate id "d1" (first at documents[0]))",
                  R"(views[0].annotations[2].properties.id: duplicate id "v1:a" (first at )"
                  R"(views[0].annotations[0]))",
                  R"(views[1].id: duplicate id "d1" (first at documents[0]))"));
  EXPECT_THAT(Errors(Doc(views, docs)), IsEmpty());
}

TEST(ValidateTest, ShortIdsAreLongIdsOfTheirView) {
  // In a 1.0.x file, "a" in view v1 is "v1:a".
  std::string views = R"([{"id":"v1","metadata":{"app":"http://x.org/a","contains":{}},)"
                      R"("annotations":[{"@type":"T","properties":{"id":"a"}},)"
                      R"({"@type":"T","properties":{"id":"v1:a"}}]}])";
  EXPECT_THAT(Warnings(Doc(views, kDocs, R"({"mmif":"http://mmif.clams.ai/1.0.5"})")),
              ElementsAre(R"(views[0].annotations[1].properties.id: duplicate id "v1:a" (first at )"
                          R"(views[0].annotations[0]))"));
}

TEST(ValidateTest, DanglingReferences) {
  std::string anns = R"([{"@type":"T","properties":{"id":"v1:a","document":"d9","source":"d1"}},)"
                     R"({"@type":"T","properties":{"id":"v1:b","targets":["v1:a","v1:zz","v1:c"],)"
                     R"("representatives":["v1:c",7]}},)"
                     R"({"@type":"T","properties":{"id":"v1:c","target":"a"}}])";
  std::string views = R"([{"id":"v1","metadata":{"app":"http://x.org/a","contains":)"
                      R"({"http://x.org/T":{"document":"m1"}}},"annotations":)" +
                      anns + "}]";
  EXPECT_THAT(Warnings(Doc(views)),
              ElementsAre(R"(views[0].metadata.contains["http://x.org/T"].document: dangling )"
                          R"(reference "m1": no document or annotation has this id)",
                          R"(views[0].annotations[0].properties.document: dangling reference )"
                          R"("d9": no document or annotation has this id)",
                          R"(views[0].annotations[1].properties.targets[1]: dangling reference )"
                          R"("v1:zz": no document or annotation has this id)",
                          R"(views[0].annotations[2].properties.target: dangling reference "a": )"
                          R"(no document or annotation has this id)"));
}

TEST(ValidateTest, ShortReferencesResolveInOldFiles) {
  std::string views =
      R"([{"id":"v1","metadata":{"app":"http://x.org/a","contains":{"http://x.org/T":)"
      R"({"document":"td1"}}},"annotations":[{"@type":"T","properties":{"id":"td1"}},)"
      R"({"@type":"T","properties":{"id":"a1","source":"td1","target":"d1","targets":["a1"]}}]},)"
      R"({"id":"v2","metadata":{"app":"http://x.org/a","contains":{}},)"
      R"("annotations":[{"@type":"T",)"
      R"("properties":{"id":"a1","source":"v1:td1","target":"td1"}}]}])";
  EXPECT_THAT(Warnings(Doc(views, kDocs, R"({"mmif":"http://mmif.clams.ai/1.0.0"})")),
              ElementsAre(R"(views[1].annotations[0].properties.target: dangling reference )"
                          R"("td1": no document or annotation has this id)"));
  // From 1.1.0 on references must be long ids ("v1:td1" still names the short-id "td1" of v1).
  EXPECT_THAT(
      Warnings(Doc(views)),
      ElementsAre(HasSubstr(R"(contains["http://x.org/T"].document: dangling reference "td1")"),
                  HasSubstr(R"(annotations[1].properties.source: dangling reference "td1")"),
                  HasSubstr(R"(annotations[1].properties.targets[0]: dangling reference "a1")"),
                  HasSubstr(R"(views[1].annotations[0].properties.target: dangling )")));
}

TEST(ValidateTest, ReferencesToViewsDoNotResolve) {
  std::string views =
      R"([{"id":"v1","metadata":{"app":"http://x.org/a","contains":{}},)"
      R"("annotations":[{"@type":"T","properties":{"id":"v1:a","document":"v1"}}]}])";
  EXPECT_THAT(Warnings(Doc(views)),
              ElementsAre(R"(views[0].annotations[0].properties.document: dangling reference )"
                          R"("v1": no document or annotation has this id)"));
}

TEST(ValidateTest, OptionsSelectTheChecks) {
  std::string views =
      R"([{"id":"v1","metadata":{"app":"x","contains":{}},)"
      R"("annotations":[{"@type":"T","properties":{"id":"v1:a","document":"zz"}}]}])";
  std::string text = Doc(views, kDocs, R"({"mmif":"http://mmif.clams.ai/0.3.1"})");
  ValidationReport all = Check(text);
  EXPECT_EQ(all.errors.size(), 2u);
  EXPECT_EQ(all.warnings.size(), 1u);
  ValidationReport schema_only = Check(text, {.version = false, .references = false});
  EXPECT_THAT(schema_only.errors.size(), 1u);
  EXPECT_THAT(schema_only.warnings, IsEmpty());
  ValidationReport version_only = Check(text, {.schema = false, .references = false});
  ASSERT_EQ(version_only.errors.size(), 1u);
  EXPECT_EQ(version_only.errors[0].path, "metadata.mmif");
  EXPECT_THAT(Check("{}", {.schema = false, .references = false}).errors.size(), 1u);
}

TEST(ValidateTest, ToStatus) {
  ValidationReport r;
  r.errors.push_back({ValidationIssue::Severity::kError, "views[0]", "first"});
  EXPECT_THAT(r.ToStatus(), StatusIs(StatusCode::kInvalidArgument, "views[0]: first"));
  r.errors.push_back({ValidationIssue::Severity::kError, "views[1]", "second"});
  EXPECT_THAT(r.ToStatus(),
              StatusIs(StatusCode::kInvalidArgument, "views[0]: first (and 1 more problem)"));
  r.warnings.push_back({ValidationIssue::Severity::kWarning, "documents[0]", "w"});
  EXPECT_THAT(r.ToStatus(),
              StatusIs(StatusCode::kInvalidArgument, "views[0]: first (and 1 more problem)"));
  EXPECT_THAT(r.ToStatus(/*strict=*/true),
              StatusIs(StatusCode::kInvalidArgument, "views[0]: first (and 2 more problems)"));
  ValidationReport only_warning;
  only_warning.warnings.push_back({ValidationIssue::Severity::kWarning, "documents[0]", "w"});
  EXPECT_TRUE(only_warning.ok());
  EXPECT_THAT(only_warning.ToStatus(), IsOk());
  EXPECT_THAT(only_warning.ToStatus(true),
              StatusIs(StatusCode::kInvalidArgument, "documents[0]: w"));
}

TEST(ValidateTest, PathsQuoteUnusualKeys) {
  EXPECT_THAT(
      Errors(R"({"metadata":{"mmif":"http://mmif.clams.ai/1.1.0"},"documents":[],"views":[],)"
             R"("a b":1,"":2})"),
      ElementsAre(R"((root): property "a b" is not allowed (allowed: "metadata", "documents", )"
                  R"("views"))",
                  R"((root): property "" is not allowed (allowed: "metadata", "documents", )"
                  R"("views"))"));
  EXPECT_THAT(Errors(Doc("[]", R"([{"@type":"T","properties":{"id":"d1"},"x y":1}])")),
              ElementsAre(R"(documents[0]: property "x y" is not allowed (allowed: "@type", )"
                          R"("properties"))"));
}

}  // namespace
}  // namespace clams::mmif
