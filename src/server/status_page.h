// GET /status: the live page of the front (src/server/status_page.html,
// embedded at build time). It polls GET /status.json every second.
#ifndef CLAMS_SRC_SERVER_STATUS_PAGE_H_
#define CLAMS_SRC_SERVER_STATUS_PAGE_H_

#include <string_view>

#include "server/http.h"

namespace clams::server {

/// The page, byte for byte as in the repository.
std::string_view StatusPageHtml();

/// The answer to GET /status: the page, with a Content-Security-Policy that
/// lets it load nothing but status.json from the same server.
HttpResponse StatusPageResponse();

}  // namespace clams::server

#endif  // CLAMS_SRC_SERVER_STATUS_PAGE_H_
