#include "server/status_page.h"

#include <string>

namespace clams::server {

// The page is self-contained: inline script and style, SVG drawn by the
// script, data from status.json on the same origin. The policy makes that a
// rule the browser enforces (no CDN, no external font, no beacon).
constexpr char kStatusPagePolicy[] =
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

HttpResponse StatusPageResponse() {
  HttpResponse r{200, "text/html; charset=utf-8", {}, std::string(StatusPageHtml())};
  r.headers.emplace_back("Content-Security-Policy", kStatusPagePolicy);
  r.headers.emplace_back("Cache-Control", "no-cache");
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  return r;
}

}  // namespace clams::server
