#include "clams/app/metadata.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "clams/mmif/json.h"
#include "clams/mmif/vocabulary.h"
#include "testing/status_matchers.h"
#include "testing/testing.h"

namespace clams {
namespace {

using ::clams::testing::IsOk;
using ::clams::testing::StatusIs;
using ::testing::HasSubstr;
namespace vocab = mmif::vocab;

AppMetadata Example() {
  AppMetadata m;
  m.name = "Example CLAMS App for testing";
  m.description = "An example";
  m.app_license = "MIT";
  m.identifier = "https://apps.clams.ai/example";
  m.url = "https://github.com/clamsproject/clams-python";
  m.app_version = "v1.0";
  m.dependencies = std::vector<std::string>{"clams-python==develop-ver", "mmif-python==0.0.999"};
  EXPECT_THAT(m.AddInput(vocab::kTextDocument), IsOk());
  EXPECT_THAT(m.AddInputOneOf({{std::string(vocab::kAudioDocument)}, {std::string(vocab::kVideoDocument)}}), IsOk());
  EXPECT_THAT(m.AddOutput(vocab::kTimeFrame), IsOk());
  EXPECT_THAT(m.AddParameter({.name = "raise_error", .description = "raise", .type = ParamType::kBoolean,
                              .default_value = "false"}),
              IsOk());
  return m;
}

TEST(AppMetadataTest, SerializesInThePythonOrderWithDefaultsOmitted) {
  AppMetadata m = Example();
  ASSERT_THAT(m.Finalize(), IsOk());
  json::value v = m.ToJson();
  std::vector<std::string> keys;
  for (const auto& kv : v.as_object()) keys.emplace_back(kv.key());
  EXPECT_EQ(keys, (std::vector<std::string>{"name", "description", "app_version", "mmif_version", "app_license",
                                            "identifier", "url", "input", "output", "parameters", "dependencies"}));
  EXPECT_EQ(v.at("identifier"), "https://apps.clams.ai/example/v1.0");
  EXPECT_EQ(v.at("mmif_version"), "1.1.0");
  const auto& input = v.at("input").as_array();
  ASSERT_EQ(input.size(), 2u);
  EXPECT_EQ(input[0], (json::object{{"@type", vocab::kTextDocument}, {"required", true}}));
  ASSERT_TRUE(input[1].is_array());
  EXPECT_EQ(input[1].as_array().size(), 2u);
  EXPECT_EQ(v.at("output"), (json::array{json::object{{"@type", vocab::kTimeFrame}}}));
  const auto& params = v.at("parameters").as_array();
  ASSERT_EQ(params.size(), 5u);  // raise_error + 4 universal
  EXPECT_EQ(params[0], (json::object{{"name", "raise_error"}, {"description", "raise"}, {"type", "boolean"},
                                     {"default", false}, {"multivalued", false}}));
  EXPECT_EQ(params[4].at("name"), "tfSamplingMode");
  EXPECT_EQ(params[4].at("choices"), (json::array{"representatives", "single", "all"}));
  EXPECT_EQ(m.Serialize().find("\": "), std::string::npos);
  EXPECT_NE(m.Serialize(true).find("\n  \"name\": "), std::string::npos);
}

TEST(AppMetadataTest, IdentifierRewriteFollowsThePythonRule) {
  EXPECT_EQ(RewriteIdentifier("whisper-wrapper", "v9.9"), "http://apps.clams.ai/whisper-wrapper/v9.9");
  EXPECT_EQ(RewriteIdentifier("https://apps.clams.ai/example", "unresolvable"),
            "https://apps.clams.ai/example/unresolvable");
  EXPECT_EQ(RewriteIdentifier("https://apps.clams.ai/example/", "/v1/"), "https://apps.clams.ai/example/v1");
}

TEST(AppMetadataTest, VersionResolutionPrefersGitThenEnvironment) {
  testing::TempDir dir;
  EXPECT_EQ(ResolveAppVersion({dir.path().string()}, ""), "unresolvable");
  EXPECT_EQ(ResolveAppVersion({dir.path().string()}, "v10"), "v10");
}

TEST(AppMetadataTest, DuplicatesAreRefused) {
  AppMetadata m = Example();
  EXPECT_THAT(m.AddInput(vocab::kTextDocument), StatusIs(StatusCode::kAlreadyExists, HasSubstr("duplicate input")));
  EXPECT_THAT(m.AddInput(vocab::kAudioDocument), StatusIs(StatusCode::kAlreadyExists, HasSubstr("duplicate input")));
  EXPECT_THAT(m.AddOutput(vocab::kTimeFrame), StatusIs(StatusCode::kAlreadyExists, HasSubstr("duplicate output")));
  EXPECT_THAT(m.AddOutput(vocab::kBoundingBox, {{"boxType", "text"}}), IsOk());
  EXPECT_THAT(m.AddOutput(vocab::kBoundingBox, {{"boxType", "face"}}), IsOk());
  EXPECT_THAT(m.AddParameter({.name = "raise_error", .description = "again"}),
              StatusIs(StatusCode::kAlreadyExists, "parameter 'raise_error' already exist."));
  EXPECT_THAT(m.AddInputOneOf({{std::string(vocab::kPolygon), "", {}, false}, {std::string(vocab::kImageDocument)}}),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("must be required")));
  EXPECT_THAT(m.AddMore("one", "more"), IsOk());
  EXPECT_THAT(m.AddMore("one", "again"), StatusIs(StatusCode::kAlreadyExists, HasSubstr("'one'")));
  EXPECT_THAT(m.AddMore("two", ""), StatusIs(StatusCode::kInvalidArgument, "Key and value should not be empty!"));
  EXPECT_THAT(m.AddAppTag(""), StatusIs(StatusCode::kInvalidArgument, HasSubstr("non-empty")));
  ASSERT_THAT(m.AddAppTag("foo"), IsOk());
  ASSERT_THAT(m.AddAppTag("bar"), IsOk());
  ASSERT_THAT(m.AddAppTag("foo"), IsOk());
  EXPECT_EQ(m.app_tags, (std::vector<std::string>{"foo", "bar"}));
}

TEST(AppMetadataTest, ParameterTypeRules) {
  AppMetadata m = Example();
  ASSERT_THAT(m.AddParameter({.name = "single_choice", .description = "d", .type = ParamType::kInteger,
                              .choices = {1, 2, 3}, .default_value = "3"}),
              IsOk());
  EXPECT_EQ(m.FindParameter("single_choice")->default_value, 3);
  ASSERT_THAT(m.AddParameter({.name = "multiple_choice", .description = "d", .type = ParamType::kInteger,
                              .choices = {1, 2, 3, 4, 5}, .default_value = 3, .multivalued = true}),
              IsOk());
  EXPECT_EQ(m.FindParameter("multiple_choice")->default_value, (json::array{3}));
  ASSERT_THAT(m.AddParameter({.name = "amap", .description = "d", .type = ParamType::kMap,
                              .default_value = json::object{{"B", "bars"}}}),
              IsOk());
  EXPECT_TRUE(m.FindParameter("amap")->multivalued);
  EXPECT_EQ(m.FindParameter("amap")->default_value, (json::array{"B:bars"}));
  ASSERT_THAT(m.AddParameter({.name = "flag", .description = "d", .type = ParamType::kBoolean,
                              .default_value = true, .multivalued = true}),
              IsOk());
  EXPECT_FALSE(m.FindParameter("flag")->multivalued);
  EXPECT_THAT(m.AddParameter({.name = "bad", .description = "d", .type = ParamType::kInteger, .default_value = "x"}),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("\"bad\": default \"x\" is not a valid integer")));
  EXPECT_THAT(m.AddParameter({.name = "bad2", .description = "d", .type = ParamType::kNumber, .choices = {"a"}}),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("choice")));
  ASSERT_THAT(m.Finalize(), IsOk());
  EXPECT_EQ(m.parameters.size(), 5u + 4u);
}

TEST(AppMetadataTest, GpuMemoryTypicalBelowMinimumIsRaised) {
  AppMetadata m = Example();
  m.est_gpu_mem_min = 4000;
  m.est_gpu_mem_typ = 2000;
  ASSERT_THAT(m.Finalize(), IsOk());
  EXPECT_EQ(m.est_gpu_mem_typ, 4000);
  json::value v = m.ToJson();
  EXPECT_EQ(v.at("est_gpu_mem_min"), 4000);
  EXPECT_EQ(v.at("est_gpu_mem_typ"), 4000);

  AppMetadata only_min = Example();
  only_min.est_gpu_mem_min = 1500;
  ASSERT_THAT(only_min.Finalize(), IsOk());
  EXPECT_EQ(only_min.est_gpu_mem_typ, 0);
}

TEST(AppMetadataTest, FinalizeRejectsMissingFieldsAndUniversalNames) {
  AppMetadata m = Example();
  m.url = "";
  EXPECT_THAT(m.Finalize(), StatusIs(StatusCode::kInvalidArgument, "app metadata: \"url\" is required"));
  AppMetadata n = Example();
  n.url = "ftp://x";
  EXPECT_THAT(n.Finalize(), StatusIs(StatusCode::kInvalidArgument, HasSubstr("http(s) URL")));
  AppMetadata p = Example();
  p.parameters.push_back({.name = "pretty", .description = "mine"});
  EXPECT_THAT(p.Finalize(), StatusIs(StatusCode::kAlreadyExists, "parameter 'pretty' already exist."));
  AppMetadata ok = Example();
  ASSERT_THAT(ok.Finalize(), IsOk());
  ASSERT_THAT(ok.Finalize(), IsOk());  // idempotent
  EXPECT_EQ(ok.parameters.size(), 5u);
}

}  // namespace
}  // namespace clams
