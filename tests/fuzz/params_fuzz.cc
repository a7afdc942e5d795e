// libFuzzer target for the parameters of a request, as the front reads them:
// the query string (RawParams::FromQuery) and its refinement against an app
// with every parameter type (RefineParams), the request-class key and the
// values recorded in a view.
//
// Properties checked on every input:
//   * FromQuery never keeps more than kMaxParameterNames names, and every
//     name it keeps is non-empty, valid UTF-8, found by Find() at its place;
//   * RefineParams either fails with kInvalidArgument or gives a value of the
//     declared type for every declared parameter, each within its choices;
//   * the request-class parameters are valid JSON.
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_set>

#include "clams/app/params.h"
#include "clams/app/runner.h"
#include "clams/mmif/json.h"
#include "fuzz_app.h"

namespace {

using clams::fuzz::Fail;
namespace json = boost::json;

const clams::AppMetadata& Metadata() {
  static const clams::AppMetadata* md = [] {
    static clams::fuzz::FuzzApp app;
    auto runner = clams::AppRunner::Create(app);
    if (!runner.ok()) Fail("fuzz app does not finalize", runner.status().message());
    return new clams::AppMetadata((*runner)->metadata());
  }();
  return *md;
}

bool HasType(const json::value& v, clams::ParamType type) {
  switch (type) {
    case clams::ParamType::kString: return v.is_string();
    case clams::ParamType::kInteger: return v.is_int64();
    case clams::ParamType::kNumber: return v.is_number();
    case clams::ParamType::kBoolean: return v.is_bool();
    case clams::ParamType::kMap: return v.is_object();
  }
  return false;
}

bool InChoices(const json::value& v, const std::vector<json::value>& choices) {
  if (choices.empty()) return true;
  for (const auto& c : choices) {
    if (c.is_number() && v.is_number() ? c.to_number<double>() == v.to_number<double>() : c == v) return true;
  }
  return false;
}

void CheckRefined(const clams::Params& params, std::string_view input) {
  for (const auto& p : Metadata().parameters) {
    const json::value* v = params.Find(p.name);
    if (v == nullptr) Fail("a declared parameter has no refined value", input);
    if (p.multivalued && p.type != clams::ParamType::kMap) {
      if (!v->is_array()) Fail("a multivalued parameter is not a list", input);
      for (const auto& e : v->get_array()) {
        if (!HasType(e, p.type)) Fail("a list element has the wrong type", input);
        if (!InChoices(e, p.choices)) Fail("a list element is outside the choices", input);
      }
    } else {
      if (!HasType(*v, p.type)) Fail("a refined value has the wrong type", input);
      if (!InChoices(*v, p.choices)) Fail("a refined value is outside the choices", input);
    }
  }
  if (!clams::mmif::ParseJson(clams::CanonicalClassParameters(params)).ok()) {
    Fail("the class parameters are not JSON", input);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  clams::StatusOr<clams::RawParams> raw = clams::RawParams::FromQuery(input);
  if (!raw.ok()) {
    if (raw.status().code() != clams::StatusCode::kInvalidArgument) Fail("FromQuery: unexpected code", input);
    return 0;
  }
  if (raw->size() > clams::kMaxParameterNames) Fail("more names than the limit", input);
  std::unordered_set<std::string_view> seen;
  for (std::size_t i = 0; i < raw->entries().size(); ++i) {
    const auto& [name, values] = raw->entries()[i];
    if (name.empty() || !clams::mmif::IsValidUtf8(name)) Fail("an empty or non-UTF-8 name", input);
    if (!seen.insert(name).second) Fail("a name kept twice", input);
    if (raw->Find(name) != &values) Fail("Find() does not find an entry", input);
    for (const auto& v : values) {
      if (!clams::mmif::IsValidUtf8(v)) Fail("a non-UTF-8 value", input);
    }
    (void)clams::RecordedParameterValue(Metadata(), raw->entries()[i]);
  }
  clams::StatusOr<clams::Params> refined = clams::RefineParams(Metadata(), *raw);
  if (!refined.ok()) {
    if (refined.status().code() != clams::StatusCode::kInvalidArgument) Fail("RefineParams: unexpected code", input);
    return 0;
  }
  CheckRefined(*refined, input);
  return 0;
}
