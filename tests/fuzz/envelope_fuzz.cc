// libFuzzer target for request bodies as the front reads their parameters:
// ScanEnvelope (the top-level keys, without parsing the MMIF), the envelope's
// `parameters` object (RawParams::FromEnvelope) and AppRunner::PrepareParams,
// which merges the query over them and refines the result against an app
// with every parameter type.
//
// Properties checked on every input:
//   * ScanEnvelope's `parameters` text is a piece of the body, and a body
//     that parses as a JSON object has its keys found the same way;
//   * FromEnvelope keeps exactly the object's names (at most
//     kMaxParameterNames), each found by Find();
//   * PrepareParams fails only with kInvalidArgument, and when it succeeds
//     the query's values win over the envelope's.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "clams/app/params.h"
#include "clams/app/runner.h"
#include "clams/mmif/json.h"
#include "fuzz_app.h"

namespace {

using clams::fuzz::Fail;
namespace json = boost::json;

clams::AppRunner& Runner() {
  static clams::AppRunner* runner = [] {
    static clams::fuzz::FuzzApp app;
    auto r = clams::AppRunner::Create(app);
    if (!r.ok()) Fail("fuzz app does not finalize", r.status().message());
    return r->release();
  }();
  return *runner;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);

  clams::StatusOr<clams::EnvelopeScan> scan = clams::ScanEnvelope(body);
  clams::StatusOr<json::value> tree = clams::mmif::ParseJson(body);
  if (scan.ok() && scan->has_parameters) {
    const std::string_view p = scan->parameters_text;
    if (p.data() < body.data() || p.data() + p.size() > body.data() + body.size()) {
      Fail("the parameters text is not inside the body", body);
    }
  }
  if (tree.ok() && tree->is_object()) {
    if (!scan.ok()) Fail("ScanEnvelope rejects a JSON object", body);
    const json::object& o = tree->get_object();
    if (scan->has_parameters != o.contains("parameters") || scan->has_mmif != o.contains("mmif")) {
      Fail("ScanEnvelope and the parser disagree on the top-level keys", body);
    }
    if (const json::value* params = o.if_contains("parameters")) {
      clams::StatusOr<clams::RawParams> raw = clams::RawParams::FromEnvelope(*params);
      if (raw.ok()) {
        if (raw->size() != params->get_object().size() || raw->size() > clams::kMaxParameterNames) {
          Fail("FromEnvelope lost or added names", body);
        }
        for (const auto& kv : params->get_object()) {
          if (raw->Find(kv.key()) == nullptr) Fail("FromEnvelope lost a name", body);
        }
      } else if (raw.status().code() != clams::StatusCode::kInvalidArgument) {
        Fail("FromEnvelope: unexpected code", body);
      }
    }
  }

  // The query that goes with the body: a fixed override, so the merge is
  // exercised on every input.
  static const clams::RawParams query{{"s", {"from the query"}}, {"req", {"r"}}};
  clams::StatusOr<clams::RequestParams> prepared = Runner().PrepareParams(body, query);
  if (!prepared.ok()) {
    if (prepared.status().code() != clams::StatusCode::kInvalidArgument) Fail("PrepareParams: unexpected code", body);
    return 0;
  }
  const auto* s = prepared->raw.Find("s");
  if (s == nullptr || *s != std::vector<std::string>{"from the query"}) Fail("the query did not win", body);
  if (prepared->refine_status.ok() && prepared->params.GetString("s") != "from the query") {
    Fail("refinement lost the query's value", body);
  }
  return 0;
}
