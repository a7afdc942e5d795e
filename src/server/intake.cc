#include "server/intake.h"

#include <algorithm>

#include "clams/base/log.h"
#include "clams/gpu/probe.h"
#include "clams/mmif/json.h"
#include "clams/mmif/validate.h"
#include "app/json_scan.h"

namespace clams::server {
namespace {

// The arena for parsing a request body: the tree takes about twice the text.
constexpr std::size_t kArenaBytesPerBodyByte = 2;

using app_internal::SkipString;
using app_internal::SkipValue;
using app_internal::SkipWs;

// The decoded text of a JSON string token ("param\u0065ters" -> parameters).
std::string DecodeKey(std::string_view token) {
  if (token.find('\\') == std::string_view::npos) return std::string(token.substr(1, token.size() - 2));
  auto v = mmif::ParseJson(token);
  if (!v.ok() || !v->is_string()) return std::string();
  return std::string(v->get_string());
}

std::string FormatValue(const json::value& v) {
  if (v.is_string()) return std::string(v.get_string());
  return mmif::WriteJson(v);
}

}  // namespace

BodyLayout FindBodyLayout(std::string_view body) {
  BodyLayout out;
  out.mmif_length = body.size();
  std::size_t i = SkipWs(body, 0);
  if (i >= body.size() || body[i] != '{') return out;
  bool has_parameters = false;
  bool has_mmif = false;
  BodyLayout found;
  i = SkipWs(body, i + 1);
  while (i < body.size() && body[i] == '"') {
    const std::size_t key_end = SkipString(body, i);
    if (key_end == std::string_view::npos) return out;
    const std::string key = DecodeKey(body.substr(i, key_end - i));
    i = SkipWs(body, key_end);
    if (i >= body.size() || body[i] != ':') return out;
    const std::size_t value_start = SkipWs(body, i + 1);
    const std::size_t value_end = SkipValue(body, value_start);
    if (value_end == std::string_view::npos) return out;
    if (key == "parameters") {
      has_parameters = true;
      found.parameters_offset = value_start;
      found.parameters_length = value_end - value_start;
    } else if (key == "mmif") {
      has_mmif = true;
      found.mmif_offset = value_start;
      found.mmif_length = value_end - value_start;
    }
    i = SkipWs(body, value_end);
    if (i < body.size() && body[i] == ',') {
      i = SkipWs(body, i + 1);
      continue;
    }
    break;
  }
  if (!has_parameters) return out;
  found.envelope = true;
  if (!has_mmif) found.mmif_length = 0;
  return found;
}

Intake::Intake(AppRunner& runner, vram::ProfileStore* profiles, IntakeOptions options)
    : runner_(runner), profiles_(profiles), options_(std::move(options)) {}

std::string Intake::ClassLabel(const json::object& class_values) {
  if (class_values.empty()) return "(no parameters)";
  std::string out;
  for (const auto& kv : class_values) {
    if (!out.empty()) out += ", ";
    out += kv.key();
    out += '=';
    out += FormatValue(kv.value());
  }
  return out;
}

std::unique_ptr<Job> Intake::Take(std::shared_ptr<const std::string> body, const RawParams& query,
                                  const std::vector<vram::DeviceView>& devices, RequestFailure* failure,
                                  RawParams* raw_out) {
  auto unreadable = [&](std::string message) {
    failure->status = InvalidArgumentError(std::move(message));
    failure->input_unreadable = true;
    return nullptr;
  };
  const std::string_view text = *body;
  // 1. One parse of the whole body; the envelope's values are found in the
  // same text, with keys decoded as the parser decodes them.
  auto tree = mmif::ParseJson(text, mmif::MakeTreeArena(text.size() * kArenaBytesPerBodyByte));
  if (!tree.ok()) return unreadable(tree.status().message());
  RawParams raw;
  const json::value* mmif_tree = &*tree;
  BodyLayout layout;
  layout.mmif_length = text.size();
  if (tree->is_object() && tree->get_object().contains("parameters")) {
    auto envelope = RawParams::FromEnvelope(tree->get_object().at("parameters"));
    if (!envelope.ok()) return unreadable(envelope.status().message());
    const json::value* inner = tree->get_object().if_contains("mmif");
    if (inner == nullptr) return unreadable("Envelope is missing required \"mmif\" key");
    raw = std::move(envelope).value();
    mmif_tree = inner;
    layout = FindBodyLayout(text);
    if (!layout.envelope || layout.mmif_length == 0) {
      // The parser saw an envelope the scanner did not: never forward a body
      // whose meaning the two could disagree on.
      return unreadable("the request body could not be split into its parameters and its MMIF");
    }
  }
  raw.MergeOverride(query);
  *raw_out = raw;

  // 2. The MMIF, checked as the worker will check it.
  if (Status valid = mmif::Validate(*mmif_tree).ToStatus(); !valid.ok()) return unreadable(valid.message());

  // 3. Parameters.
  const AppMetadata& md = runner_.metadata();
  auto refined = RefineParams(md, raw);
  if (!refined.ok()) {
    failure->status = refined.status();
    return nullptr;
  }

  auto job = std::make_unique<Job>();
  job->body = std::move(body);
  job->mmif_offset = layout.mmif_offset;
  job->mmif_length = layout.mmif_length;
  job->raw = std::move(raw);
  job->params = std::move(refined).value();
  job->pretty = job->params.GetBool("pretty");
  job->class_values = ClassParameterValues(job->params, options_.class_params);
  job->class_label = ClassLabel(job->class_values);

  // 4. Class and estimate (only a server that manages GPUs needs them).
  if (!options_.gpus) return job;
  job->cls = vram::RequestClass::Make(md.identifier, md.app_version,
                                      CanonicalClassParameters(job->params, options_.class_params));
  Reestimate(*job, devices);
  return job;
}

void Intake::Reestimate(Job& job, const std::vector<vram::DeviceView>& devices) {
  if (!options_.gpus) return;
  std::optional<std::uint64_t> declared;
  try {
    declared = runner_.app().EstimateVram(job.params);
  } catch (const std::exception& e) {
    CLAMS_LOG(kWarning, "App::EstimateVram threw: {}", e.what());
  }
  std::optional<vram::Profile> profile;
  if (profiles_ != nullptr) profile = profiles_->Get(job.cls.key);
  std::uint64_t largest = 0;
  for (const auto& d : devices) largest = std::max(largest, d.total_bytes);
  job.estimate = vram::ResolveEstimate(declared, profile ? &*profile : nullptr, runner_.metadata().est_gpu_mem_typ,
                                       largest, options_.estimates);
  job.has_estimate = true;
  job.expected_ms = profile ? profile->mean_duration_ms : 0;
}

}  // namespace clams::server
