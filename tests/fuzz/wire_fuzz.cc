// libFuzzer target for the front<->worker wire format (src/server/wire.h)
// and the intake's body layout (FindBodyLayout, src/server/intake.h): what a
// worker decodes from the front, what the front decodes from a worker (or an
// external app it does not trust), and how the front splits an envelope.
//
// The input is read three ways:
//   * whole, as an X-Clams-Params value, an X-Clams-Vram-Grant value, an
//     error message and a request body;
//   * as a header block ("Name: value" lines up to an empty line) and a body,
//     which become a worker's request (DecodeNative) and a worker's answer
//     (DecodeAnswer; the first byte picks the status and native/external).
//
// Properties checked on every input:
//   * DecodeParams fails only with kInvalidArgument; what it decodes encodes
//     to a single-line header value that decodes to the same parameters;
//   * DecodeGrant's result survives EncodeGrant;
//   * DecodeNative succeeds exactly when its X-Clams-Params header decodes,
//     and keeps the request id and traceparent as sent;
//   * DecodeAnswer keeps the status and body, and reports kAppOom only for a
//     5xx answer;
//   * FindBodyLayout's pieces lie inside the body, and for a body that parses
//     as a JSON object it finds `parameters` and `mmif` where the parser does
//     (the last of duplicate keys).
#include <cstdint>
#include <string>
#include <string_view>

#include "clams/app/params.h"
#include "clams/app/runner.h"
#include "clams/mmif/json.h"
#include "fuzz_app.h"
#include "server/http.h"
#include "server/intake.h"
#include "server/wire.h"

namespace {

using clams::fuzz::Fail;
namespace json = boost::json;
namespace wire = clams::server::wire;

// At most this many header lines are taken from an input (a worker answer
// carries a handful; more only slows the fuzzer down).
constexpr std::size_t kMaxHeaderLines = 16;

bool SameParams(const clams::RawParams& a, const clams::RawParams& b) { return a.entries() == b.entries(); }

void CheckParams(std::string_view text) {
  clams::StatusOr<clams::RawParams> decoded = wire::DecodeParams(text);
  if (!decoded.ok()) {
    if (decoded.status().code() != clams::StatusCode::kInvalidArgument) Fail("DecodeParams: unexpected code", text);
    return;
  }
  const std::string encoded = wire::EncodeParams(*decoded);
  if (encoded.find_first_of("\r\n") != std::string::npos) Fail("EncodeParams wrote a line break", text);
  clams::StatusOr<clams::RawParams> again = wire::DecodeParams(encoded);
  if (!again.ok()) Fail("EncodeParams wrote what DecodeParams rejects", text);
  if (!SameParams(*decoded, *again)) Fail("the parameters changed across EncodeParams", text);
}

void CheckGrant(std::string_view text) {
  const std::optional<wire::Grant> grant = wire::DecodeGrant(text);
  if (!grant) return;
  const std::optional<wire::Grant> again = wire::DecodeGrant(wire::EncodeGrant(*grant));
  if (!again || again->grant_bytes != grant->grant_bytes || again->total_bytes != grant->total_bytes) {
    Fail("the grant changed across EncodeGrant", text);
  }
}

void CheckLayout(std::string_view body) {
  const clams::server::BodyLayout layout = clams::server::FindBodyLayout(body);
  if (layout.mmif_offset > body.size() || layout.mmif_length > body.size() - layout.mmif_offset) {
    Fail("the MMIF piece is not inside the body", body);
  }
  if (layout.parameters_offset > body.size() || layout.parameters_length > body.size() - layout.parameters_offset) {
    Fail("the parameters piece is not inside the body", body);
  }
  clams::StatusOr<json::value> tree = clams::mmif::ParseJson(body);
  if (!tree.ok() || !tree->is_object()) return;
  const json::object& o = tree->get_object();
  if (layout.envelope != o.contains("parameters")) Fail("FindBodyLayout and the parser disagree on `parameters`", body);
  if (!layout.envelope) {
    if (layout.mmif_offset != 0 || layout.mmif_length != body.size()) Fail("a plain body is not all MMIF", body);
    return;
  }
  auto piece = [&](std::size_t offset, std::size_t length) {
    clams::StatusOr<json::value> v = clams::mmif::ParseJson(body.substr(offset, length));
    if (!v.ok()) Fail("a piece FindBodyLayout found does not parse", body);
    return std::move(v).value();
  };
  if (piece(layout.parameters_offset, layout.parameters_length) != o.at("parameters")) {
    Fail("FindBodyLayout found another `parameters` than the parser", body);
  }
  if (const json::value* mmif = o.if_contains("mmif")) {
    if (piece(layout.mmif_offset, layout.mmif_length) != *mmif) Fail("FindBodyLayout found another `mmif`", body);
  } else if (layout.mmif_length != 0) {
    Fail("FindBodyLayout found an `mmif` the parser did not", body);
  }
}

// "Name: value" lines up to the first empty line; the rest is the body.
clams::server::Headers SplitMessage(std::string_view text, std::string* body) {
  clams::server::Headers headers;
  while (!text.empty() && headers.size() < kMaxHeaderLines) {
    const std::size_t eol = text.find('\n');
    const std::string_view line = text.substr(0, eol);
    text = eol == std::string_view::npos ? std::string_view() : text.substr(eol + 1);
    if (line.empty()) break;
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    headers.emplace_back(std::string(line.substr(0, colon)), std::string(value));
  }
  body->assign(text);
  return headers;
}

void CheckNative(std::string_view input) {
  clams::server::HttpRequest request;
  request.method = "POST";
  request.target = request.path = "/";
  request.headers = SplitMessage(input, &request.body);
  clams::StatusOr<wire::NativeCall> call = wire::DecodeNative(request);
  const std::string_view params = clams::server::FindHeader(request.headers, wire::kParamsHeader);
  const bool params_ok = !params.empty() && wire::DecodeParams(params).ok();
  if (call.ok() != params_ok) Fail("DecodeNative and DecodeParams disagree", input);
  if (!call.ok()) {
    if (call.status().code() != clams::StatusCode::kInvalidArgument) Fail("DecodeNative: unexpected code", input);
    return;
  }
  if (call->request_id != clams::server::FindHeader(request.headers, wire::kRequestIdHeader) ||
      call->traceparent != clams::server::FindHeader(request.headers, wire::kTraceparentHeader)) {
    Fail("DecodeNative changed the request id or traceparent", input);
  }
}

void CheckAnswer(std::string_view input) {
  if (input.empty()) return;
  const auto selector = static_cast<unsigned char>(input.front());
  // Statuses 100..611: every class and a few past the end.
  constexpr int kFirstStatus = 100;
  constexpr int kStatusSpan = 512;
  const bool external = (selector & 1) != 0;
  clams::server::HttpResponse response;
  response.status = kFirstStatus + (selector * 2) % kStatusSpan;
  response.content_type = "application/json";
  response.headers = SplitMessage(input.substr(1), &response.body);
  const std::string body = response.body;
  const int status = response.status;
  const wire::OomSignal signal = wire::ExternalOomSignal(response);
  const clams::AnnotateOutcome outcome = wire::DecodeAnswer(std::move(response), external);
  if (outcome.http_status != status || outcome.body != body) Fail("DecodeAnswer changed the status or body", input);
  if (outcome.failure == clams::FailureKind::kAppOom && status < 500) Fail("a non-5xx answer counted as OOM", input);
  if (external && status >= 500 && signal.oom != (outcome.failure == clams::FailureKind::kAppOom)) {
    Fail("DecodeAnswer and ExternalOomSignal disagree on an external answer", input);
  }
  for (const auto& id : outcome.new_view_ids) {
    if (id.empty() || id.find(',') != std::string::npos) Fail("a new view id is empty or holds a comma", input);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  CheckParams(input);
  CheckGrant(input);
  (void)wire::OomSignalFromErrorMessage(input);
  CheckLayout(input);
  CheckNative(input);
  CheckAnswer(input);
  return 0;
}
