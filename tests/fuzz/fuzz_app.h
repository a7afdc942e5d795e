// The app the parameter fuzz targets refine against: one parameter of every
// type, single and multivalued, with and without choices and defaults, and
// one required parameter, so that every branch of casting and refinement is
// reachable from the input.
#ifndef CLAMS_TESTS_FUZZ_FUZZ_APP_H_
#define CLAMS_TESTS_FUZZ_FUZZ_APP_H_

#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "clams/app/app.h"
#include "clams/app/metadata.h"

namespace clams::fuzz {

[[noreturn]] inline void Fail(const char* what, std::string_view detail) {
  std::fprintf(stderr, "fuzz property violated: %s\n%.*s\n", what, static_cast<int>(detail.size()), detail.data());
  std::abort();
}

class FuzzApp : public App {
 public:
  AppMetadata Metadata() const override {
    namespace json = boost::json;
    AppMetadata m;
    m.name = "Fuzz App";
    m.description = "Every parameter type.";
    m.app_license = "MIT";
    m.identifier = "fuzz-app";
    m.app_version = "v1";
    m.url = "https://example.org/fuzz-app";
    auto add = [&m](RuntimeParameter p) {
      if (!m.AddParameter(std::move(p)).ok()) Fail("fuzz metadata rejected", "");
    };
    add({.name = "s", .description = "string", .type = ParamType::kString, .default_value = "x"});
    add({.name = "sc", .description = "string with choices", .type = ParamType::kString, .choices = {"a", "b"},
         .default_value = "a"});
    add({.name = "i", .description = "integer", .type = ParamType::kInteger, .default_value = 1});
    add({.name = "ic", .description = "integer with choices", .type = ParamType::kInteger, .choices = {1, 2, 3},
         .default_value = 3});
    add({.name = "n", .description = "number", .type = ParamType::kNumber, .default_value = 0.5});
    add({.name = "nc", .description = "number with choices", .type = ParamType::kNumber, .choices = {0.5, 1},
         .default_value = 1});
    add({.name = "b", .description = "boolean", .type = ParamType::kBoolean, .default_value = false});
    add({.name = "m", .description = "map", .type = ParamType::kMap, .default_value = json::array{"B:bars"}});
    add({.name = "ms", .description = "multivalued strings", .type = ParamType::kString,
         .default_value = json::array{"a"}, .multivalued = true});
    add({.name = "mi", .description = "multivalued integers with choices", .type = ParamType::kInteger,
         .choices = {1, 2}, .default_value = json::array{}, .multivalued = true});
    add({.name = "mn", .description = "multivalued numbers", .type = ParamType::kNumber,
         .default_value = json::array{0.5}, .multivalued = true});
    add({.name = "req", .description = "required, no default", .type = ParamType::kString});
    return m;
  }
  Status Annotate(mmif::Mmif&, const Params&) override { return Status::Ok(); }
};

}  // namespace clams::fuzz

#endif  // CLAMS_TESTS_FUZZ_FUZZ_APP_H_
