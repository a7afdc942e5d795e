#include "server/front.h"

#include <algorithm>
#include <chrono>
#include <random>

#include "clams/base/log.h"
#include "clams/mmif/json.h"
#include "server/access_log.h"
#include "server/status_page.h"
#include "server/wire.h"

namespace clams::server {
namespace {

constexpr std::string_view kJson = "application/json";
constexpr std::string_view kAllowRoot = "GET, HEAD, OPTIONS, POST, PUT";
constexpr std::string_view kMethodNotAllowed =
    "{\"message\": \"The method is not allowed for the requested URL.\"}";

HttpResponse JsonResponse(int status, std::string body) {
  return HttpResponse{status, std::string(kJson), {}, std::move(body)};
}

HttpResponse NotAllowed(std::string_view allow) {
  HttpResponse r = JsonResponse(405, std::string(kMethodNotAllowed));
  r.headers.emplace_back("Allow", std::string(allow));
  return r;
}

// A universal boolean query parameter as the Python SDK casts it on GET
// (absent: false; present with any value but a falsy one: true).
bool QueryFlag(const RawParams& query, std::string_view name) {
  const auto* values = query.Find(name);
  if (values == nullptr || values->empty()) return false;
  const std::string& v = values->front();
  return !(v == "False" || v == "false" || v == "F" || v == "f" || v == "0");
}

// Operator views (/status, /status.json) show other clients' requests: only
// to loopback clients, or to anyone with --expose-runtime.
bool FromLoopback(const HttpRequest& request) {
  const std::string& r = request.remote;
  return r == "unix" || r.rfind("127.", 0) == 0 || r.rfind("::1", 0) == 0 || r.rfind("::ffff:127.", 0) == 0;
}

}  // namespace

bool IsValidRequestId(std::string_view id) {
  constexpr std::size_t kMaxRequestIdLength = 128;
  if (id.empty() || id.size() > kMaxRequestIdLength) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == ':' || c == '-';
  });
}

std::string NewRequestId() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  return fmt::format("{:016x}", rng());
}

const char kNotFoundHtml[] =
    "<!doctype html>\n<html lang=en>\n<title>404 Not Found</title>\n<h1>Not Found</h1>\n<p>The requested URL was "
    "not found on the server. If you entered the URL manually please check your spelling and try again.</p>\n";

Front::Front(AppRunner& runner, Scheduler& scheduler, Metrics& metrics)
    : runner_(runner), scheduler_(scheduler), metrics_(metrics) {}

HttpResponse Front::Metadata(const HttpRequest& request) {
  auto query = RawParams::FromQuery(request.query);
  if (!query.ok()) {
    return HttpResponse{400, "text/plain; charset=utf-8", {}, query.status().message()};
  }
  const bool pretty = QueryFlag(*query, "pretty");
  if (!QueryFlag(*query, "includeVRAM") && !QueryFlag(*query, "includeRuntime")) {
    return JsonResponse(200, runner_.MetadataJson(pretty));
  }
  auto parsed = mmif::ParseJson(runner_.MetadataJson(false));
  json::object md = parsed.ok() && parsed->is_object() ? parsed->get_object() : runner_.metadata().ToJson();
  md["runtime"] = scheduler_.Runtime(/*full=*/false);
  mmif::JsonStyle style;
  style.indent = pretty ? 2 : 0;
  return JsonResponse(200, mmif::WriteJson(md, style));
}

void Front::Handle(HttpRequest request, HttpServer::Respond respond, std::shared_ptr<CancelSignal> cancel) {
  // Every answer carries the request id (the client's, or a new one).
  const std::string_view given = FindHeader(request.headers, wire::kRequestIdHeader);
  std::string request_id = IsValidRequestId(given) ? std::string(given) : NewRequestId();
  // The access log line is written when the answer goes out (and not even
  // built when the access log is off).
  HttpServer::Respond logged = std::move(respond);
  if (const log::Level level = AccessLevel(request.path); log::AccessLogEnabled(level)) {
    logged = WithAccessLog(request, level, request_id, std::move(logged));
  }
  logged = [id = request_id, inner = std::move(logged)](HttpResponse response) {
    response.headers.emplace_back(std::string(wire::kRequestIdHeader), id);
    inner(std::move(response));
  };
  const std::string& m = request.method;
  if (request.path == "/") {
    if (m == "GET" || m == "HEAD") return logged(Metadata(request));
    if (m == "POST" || m == "PUT") {
      auto query = RawParams::FromQuery(request.query);
      if (!query.ok()) {
        return logged(HttpResponse{400, "text/plain; charset=utf-8", {},
                                   std::string(kInvalidInputPrefix) + query.status().message()});
      }
      AnnotateCall call;
      call.query = std::move(query).value();
      call.request = std::move(request);
      call.request_id = std::move(request_id);
      call.respond = std::move(logged);
      call.cancel = std::move(cancel);
      scheduler_.Submit(std::move(call));
      return;
    }
    if (m == "OPTIONS") {
      HttpResponse r{200, "text/plain; charset=utf-8", {{"Allow", std::string(kAllowRoot)}}, ""};
      return logged(std::move(r));
    }
    return logged(NotAllowed(kAllowRoot));
  }
  if (request.path == "/health") {
    if (m != "GET" && m != "HEAD") return logged(NotAllowed("GET, HEAD"));
    return logged(JsonResponse(200, "{\"status\":\"ok\"}"));
  }
  if (request.path == "/ready") {
    if (m != "GET" && m != "HEAD") return logged(NotAllowed("GET, HEAD"));
    std::string why;
    if (scheduler_.Ready(&why)) return logged(JsonResponse(200, "{\"ready\":true}"));
    json::object o;
    o["ready"] = false;
    o["reason"] = why;
    return logged(JsonResponse(503, mmif::WriteJson(o)));
  }
  if (request.path == "/status") {
    if (m != "GET" && m != "HEAD") return logged(NotAllowed("GET, HEAD"));
    return logged(StatusPageResponse());
  }
  if (request.path == "/metrics") {
    if (m != "GET" && m != "HEAD") return logged(NotAllowed("GET, HEAD"));
    scheduler_.UpdateGauges();
    return logged(HttpResponse{200, "text/plain; version=0.0.4; charset=utf-8", {}, metrics_.Render()});
  }
  if (request.path == "/status.json") {
    if (m != "GET" && m != "HEAD") return logged(NotAllowed("GET, HEAD"));
    if (!scheduler_.options().expose_runtime && !FromLoopback(request)) {
      return logged(JsonResponse(403, "{\"message\": \"the status page is served to loopback clients only; start the "
                                      "server with --expose-runtime to serve it to everyone\"}"));
    }
    return logged(JsonResponse(200, mmif::WriteJson(scheduler_.StatusJson())));
  }
  logged(HttpResponse{404, "text/html; charset=utf-8", {}, kNotFoundHtml});
}

}  // namespace clams::server
