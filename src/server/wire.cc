// The front <-> worker wire format (see wire.h).
#include "server/wire.h"

#include <algorithm>
#include <array>
#include <cstdlib>

#include "clams/mmif/json.h"

namespace clams::server::wire {
namespace {

constexpr std::string_view kFailureBadInput = "bad-input";
constexpr std::string_view kFailureBadParameters = "bad-parameters";
constexpr std::string_view kFailureAppError = "app-error";
constexpr std::string_view kFailureAppOom = "app-oom";

std::string_view FailureName(FailureKind kind) {
  switch (kind) {
    case FailureKind::kNone: return "";
    case FailureKind::kBadInput: return kFailureBadInput;
    case FailureKind::kBadParameters: return kFailureBadParameters;
    case FailureKind::kAppError: return kFailureAppError;
    case FailureKind::kAppOom: return kFailureAppOom;
  }
  return "";
}

bool Unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
         c == '_' || c == '~';
}

void AppendEncoded(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (unsigned char c : text) {
    if (Unreserved(c)) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xF]);
    }
  }
}

// "key=value; key=value" -> value of `key`.
std::string_view Field(std::string_view text, std::string_view key) {
  while (!text.empty()) {
    const auto semi = text.find(';');
    std::string_view part = text.substr(0, semi);
    text = semi == std::string_view::npos ? std::string_view() : text.substr(semi + 1);
    while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
    while (!part.empty() && part.back() == ' ') part.remove_suffix(1);
    if (part.size() > key.size() && part.substr(0, key.size()) == key && part[key.size()] == '=') {
      return part.substr(key.size() + 1);
    }
  }
  return {};
}

std::optional<std::uint64_t> ParseUint(std::string_view text) {
  if (text.empty() || text.size() > 20) return std::nullopt;
  std::uint64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    const std::uint64_t digit = static_cast<std::uint64_t>(c - '0');
    if (v > (UINT64_MAX - digit) / 10) return std::nullopt;
    v = v * 10 + digit;
  }
  return v;
}

void AddCommonHeaders(const Call& call, HttpRequest& req) {
  req.headers.emplace_back("Content-Type", "application/json");
  if (!call.request_id.empty()) req.headers.emplace_back(std::string(kRequestIdHeader), call.request_id);
  if (!call.traceparent.empty()) req.headers.emplace_back(std::string(kTraceparentHeader), call.traceparent);
  if (call.grant) req.headers.emplace_back(std::string(kGrantHeader), EncodeGrant(*call.grant));
}

}  // namespace

HttpRequest EncodeForNative(const Call& call) {
  HttpRequest req;
  req.method = "POST";
  req.target = "/";
  req.path = "/";
  AddCommonHeaders(call, req);
  req.headers.emplace_back(std::string(kParamsHeader), EncodeParams(call.params));
  req.body = std::string(call.mmif());
  return req;
}

HttpRequest EncodeForExternal(const Call& call) {
  HttpRequest req;
  req.method = "POST";
  req.path = "/";
  req.query = EncodeQuery(call.params, call.front_only);
  req.target = req.query.empty() ? "/" : "/?" + req.query;
  AddCommonHeaders(call, req);
  req.body = std::string(call.mmif());
  return req;
}

StatusOr<NativeCall> DecodeNative(const HttpRequest& request) {
  NativeCall out;
  const std::string_view params = FindHeader(request.headers, kParamsHeader);
  if (params.empty()) return InvalidArgumentError("the front sent no " + std::string(kParamsHeader) + " header");
  CLAMS_ASSIGN_OR_RETURN(out.params, DecodeParams(params));
  out.request_id = std::string(FindHeader(request.headers, kRequestIdHeader));
  out.traceparent = std::string(FindHeader(request.headers, kTraceparentHeader));
  out.grant = DecodeGrant(FindHeader(request.headers, kGrantHeader));
  return out;
}

HttpResponse EncodeAnswer(AnnotateOutcome outcome) {
  HttpResponse response;
  response.status = outcome.http_status;
  response.content_type = std::move(outcome.content_type);
  response.body = std::move(outcome.body);
  if (outcome.failure != FailureKind::kNone) {
    response.headers.emplace_back(std::string(kFailureHeader), std::string(FailureName(outcome.failure)));
  }
  if (outcome.failure == FailureKind::kAppOom) {
    response.headers.emplace_back(std::string(kOomHeader),
                                  outcome.oom_tried_bytes > 0 ? "1; tried=" + std::to_string(outcome.oom_tried_bytes)
                                                              : std::string("1"));
  }
  std::string views;
  for (const auto& v : outcome.new_view_ids) {
    if (!views.empty()) views += ",";
    views += v;
  }
  if (!views.empty()) response.headers.emplace_back(std::string(kNewViewsHeader), views);
  if (outcome.hw_fetch) response.headers.emplace_back(std::string(kHwFetchHeader), "1");
  return response;
}

AnnotateOutcome DecodeAnswer(HttpResponse response, bool external) {
  AnnotateOutcome a;
  a.http_status = response.status;
  a.content_type = std::move(response.content_type);
  // The status decides the class of failure; X-Clams-Failure only refines it
  // within that class. A header that contradicts the status (any external
  // app can send any header) never makes a 2xx a failure, a 4xx an app
  // failure or a 5xx the client's fault.
  const std::string_view failure = FindHeader(response.headers, kFailureHeader);
  if (a.http_status >= 500) {
    a.failure = failure == kFailureAppOom ? FailureKind::kAppOom : FailureKind::kAppError;
  } else if (a.http_status >= 400) {
    a.failure = failure == kFailureBadParameters ? FailureKind::kBadParameters : FailureKind::kBadInput;
  }
  if (a.http_status >= 500 && (external || a.failure == FailureKind::kAppOom)) {
    const OomSignal oom = ExternalOomSignal(response);
    if (oom.oom) {
      a.failure = FailureKind::kAppOom;
      a.oom_tried_bytes = oom.tried_bytes;
    } else if (external) {
      a.failure = FailureKind::kAppError;
    }
  }
  if (a.failure == FailureKind::kAppOom || a.failure == FailureKind::kAppError) a.error = "app failure";
  std::string_view views = FindHeader(response.headers, kNewViewsHeader);
  while (!views.empty()) {
    auto comma = views.find(',');
    if (comma != 0) a.new_view_ids.emplace_back(views.substr(0, comma));
    if (comma == std::string_view::npos) break;
    views.remove_prefix(comma + 1);
  }
  a.hw_fetch = FindHeader(response.headers, kHwFetchHeader) == "1";
  a.body = std::move(response.body);
  return a;
}

std::string EncodeParams(const RawParams& params) {
  json::array out;
  out.reserve(params.size());
  for (const auto& [name, values] : params.entries()) {
    json::array entry;
    entry.emplace_back(name);
    entry.emplace_back(json::array(values.begin(), values.end()));
    out.emplace_back(std::move(entry));
  }
  return mmif::WriteJson(out);
}

StatusOr<RawParams> DecodeParams(std::string_view text) {
  CLAMS_ASSIGN_OR_RETURN(json::value v, mmif::ParseJson(text));
  auto bad = [] { return InvalidArgumentError(std::string(kParamsHeader) + " is not [[name, [value, ...]], ...]"); };
  if (!v.is_array()) return bad();
  RawParams out;
  for (const auto& entry : v.get_array()) {
    if (!entry.is_array() || entry.get_array().size() != 2) return bad();
    const auto& name = entry.get_array()[0];
    const auto& values = entry.get_array()[1];
    if (!name.is_string() || !values.is_array()) return bad();
    std::vector<std::string> strings;
    strings.reserve(values.get_array().size());
    for (const auto& s : values.get_array()) {
      if (!s.is_string()) return bad();
      strings.emplace_back(s.get_string());
    }
    out.Set(name.get_string(), std::move(strings));
  }
  return out;
}

std::string EncodeQuery(const RawParams& params, const std::vector<std::string>& skip) {
  std::string out;
  for (const auto& [name, values] : params.entries()) {
    if (std::find(skip.begin(), skip.end(), name) != skip.end()) continue;
    for (const auto& value : values) {
      if (!out.empty()) out.push_back('&');
      AppendEncoded(out, name);
      out.push_back('=');
      AppendEncoded(out, value);
    }
  }
  return out;
}

std::string EncodeGrant(const Grant& grant) {
  return "grant=" + std::to_string(grant.grant_bytes) + "; total=" + std::to_string(grant.total_bytes);
}

std::optional<Grant> DecodeGrant(std::string_view text) {
  if (text.empty()) return std::nullopt;
  auto grant = ParseUint(Field(text, "grant"));
  auto total = ParseUint(Field(text, "total"));
  if (!grant || !total) return std::nullopt;
  return Grant{*grant, *total};
}

OomSignal OomSignalFromErrorMessage(std::string_view message) {
  // The Python SDK writes "<class 'module.Name'>: message".
  static constexpr std::array<std::string_view, 4> kOomClasses = {
      "<class 'torch.OutOfMemoryError'>", "<class 'torch.cuda.OutOfMemoryError'>",
      "<class 'tensorflow.python.framework.errors_impl.ResourceExhaustedError'>",
      "<class 'jaxlib.xla_extension.XlaRuntimeError'>: RESOURCE_EXHAUSTED"};
  static constexpr std::array<std::string_view, 2> kRuntimeErrorStarts = {
      "<class 'RuntimeError'>: CUDA out of memory", "<class 'RuntimeError'>: CUDA error: out of memory"};
  auto starts = [&](std::string_view prefix) { return message.substr(0, prefix.size()) == prefix; };
  OomSignal out;
  out.oom = std::any_of(kOomClasses.begin(), kOomClasses.end(), starts) ||
            std::any_of(kRuntimeErrorStarts.begin(), kRuntimeErrorStarts.end(), starts);
  if (out.oom) out.tried_bytes = ParseTriedToAllocate(message);
  return out;
}

OomSignal ExternalOomSignal(const HttpResponse& response) {
  const std::string_view header = FindHeader(response.headers, kOomHeader);
  if (!header.empty()) {
    OomSignal out;
    out.oom = header.substr(0, 1) == "1";
    if (auto tried = ParseUint(Field(header, "tried"))) out.tried_bytes = *tried;
    return out;
  }
  if (response.status < 500) return {};
  auto tree = mmif::ParseJson(response.body);
  if (!tree.ok() || !tree->is_object()) return {};
  const json::value* views = tree->get_object().if_contains("views");
  if (views == nullptr || !views->is_array() || views->get_array().empty()) return {};
  const json::value& last = views->get_array().back();
  const json::value* md = last.is_object() ? last.get_object().if_contains("metadata") : nullptr;
  const json::value* error = md != nullptr && md->is_object() ? md->get_object().if_contains("error") : nullptr;
  const json::value* message =
      error != nullptr && error->is_object() ? error->get_object().if_contains("message") : nullptr;
  if (message == nullptr || !message->is_string()) return {};
  return OomSignalFromErrorMessage(message->get_string());
}

}  // namespace clams::server::wire
