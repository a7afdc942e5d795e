// libFuzzer target for the HTTP/1.1 request parser of the server: the bytes
// of one connection go through ParseHttpStream, which applies the parser
// settings (header and body limits) and the framing checks of a real
// connection (src/server/http_server.cc), delivered in pieces whose size the
// first input byte chooses.
//
// Properties checked on every input:
//   * only a connection's last result may be a rejection, and its status is
//     one the server answers on its own (400, 413, 431, 501);
//   * the requests read do not depend on how the bytes were cut into pieces
//     (whole, one byte at a time, and the chosen size), and neither does the
//     status of a rejection both ways end with, except for a request with
//     two defects, one of them its size (TwoDefectsOfOneRequest);
//   * a request's body never exceeds the body limit, and a request read is
//     well formed (method and a target starting with '/' or '*' or a scheme).
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_app.h"
#include "server/http_server.h"

namespace {

using clams::fuzz::Fail;
using clams::server::ParsedHttpRequest;

// Small limits, so that the fuzzer reaches them.
clams::server::HttpServerOptions Options() {
  clams::server::HttpServerOptions o;
  o.max_body_bytes = 4096;
  o.max_header_bytes = 2048;
  return o;
}

std::string Describe(const std::vector<ParsedHttpRequest>& parsed, bool with_rejection = true) {
  std::string out;
  for (const auto& p : parsed) {
    if (p.rejection) {
      if (with_rejection) out += std::to_string(p.rejection->status) + " " + p.rejection->reason + "\n";
    } else {
      out += p.request.method + " " + p.request.target + " [" + std::to_string(p.request.body.size()) + "] " +
             p.request.body + (p.request.keep_alive ? "" : " close") + "\n";
    }
  }
  return out;
}

// A request with two defects, one of them its size, is refused for
// whichever the parser sees first, and that depends on how the bytes arrive:
// a header over the limit with a malformed field within it is 400 when the
// parser's first look has that field whole, else 431 (the size decides
// first); a chunked body over the limit with a malformed chunk is 400 or
// 413 by which it reaches first. Both answers refuse the same request,
// which is never read (the requests before it are compared apart).
bool TwoDefectsOfOneRequest(const clams::server::HttpRejection& a, const clams::server::HttpRejection& b) {
  const auto malformed_and_too_large = [](const clams::server::HttpRejection& malformed,
                                          const clams::server::HttpRejection& size) {
    return malformed.status == 400 && ((malformed.reason == "malformed HTTP request" && size.status == 431) ||
                                       (malformed.reason == "malformed HTTP request body" && size.status == 413));
  };
  return malformed_and_too_large(a, b) || malformed_and_too_large(b, a);
}

const clams::server::HttpRejection* FinalRejection(const std::vector<ParsedHttpRequest>& parsed) {
  return !parsed.empty() && parsed.back().rejection ? &*parsed.back().rejection : nullptr;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t piece = 1 + data[0] % 64;
  const std::string_view wire(reinterpret_cast<const char*>(data + 1), size - 1);
  static const clams::server::HttpServerOptions options = Options();
  const std::vector<ParsedHttpRequest> parsed = clams::server::ParseHttpStream(wire, options, piece);
  for (std::size_t i = 0; i < parsed.size(); ++i) {
    const ParsedHttpRequest& p = parsed[i];
    if (p.rejection) {
      if (i + 1 != parsed.size()) Fail("a request was read after a rejection", wire);
      const int s = p.rejection->status;
      if (s != 400 && s != 413 && s != 431 && s != 501) Fail("unexpected rejection status", Describe(parsed));
      if (p.rejection->reason.empty()) Fail("a rejection without a reason", wire);
      continue;
    }
    if (p.request.body.size() > options.max_body_bytes) Fail("a body over the limit was read", wire);
    if (p.request.method.empty() || p.request.target.empty()) Fail("a request without method or target", wire);
    if (p.request.path + (p.request.query.empty() && p.request.target.find('?') == std::string::npos
                              ? ""
                              : "?" + p.request.query) != p.request.target) {
      Fail("path and query do not make the target", wire);
    }
  }
  // How the bytes arrive must not change which requests are read. A
  // rejection may depend on it only where the headers never end: the parser
  // looks at the fields of an unfinished header only when it has them all
  // in one piece, so there a later piece could still have completed it.
  const std::vector<ParsedHttpRequest> whole = clams::server::ParseHttpStream(wire, options, wire.size() + 1);
  const std::vector<ParsedHttpRequest> bytewise = clams::server::ParseHttpStream(wire, options, 1);
  for (const auto* other : {&whole, &bytewise}) {
    if (Describe(*other, false) != Describe(parsed, false)) {
      Fail("the requests read depend on how the bytes arrive",
           "whole:\n" + Describe(whole) + "one byte at a time:\n" + Describe(bytewise) + "pieces of " +
               std::to_string(piece) + ":\n" + Describe(parsed));
    }
    const auto* a = FinalRejection(*other);
    const auto* b = FinalRejection(parsed);
    if (a != nullptr && b != nullptr && a->status != b->status && !TwoDefectsOfOneRequest(*a, *b)) {
      Fail("the rejection depends on how the bytes arrive", Describe(*other) + "---\n" + Describe(parsed));
    }
  }
  return 0;
}
