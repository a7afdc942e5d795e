// clams/vram/request_class.h
//
// The request class: requests of one class are expected to need the same
// GPU memory. See vram.h for the definition.
//
//   RequestClass c = RequestClass::Make(app_id, app_version, CanonicalClassParameters(params));
//   c.key  // "3bdf005f28916e0ccc9e51154d896571"
#ifndef CLAMS_VRAM_REQUEST_CLASS_H_
#define CLAMS_VRAM_REQUEST_CLASS_H_

#include <string>
#include <string_view>

namespace clams::vram {

struct RequestClass {
  std::string app_id;
  std::string app_version;
  /// Canonical JSON of the refined parameters without the universal ones,
  /// keys sorted (clams::CanonicalClassParameters).
  std::string parameters_json;
  /// MD5 hex of "<app_id>\n<app_version>\n<parameters_json>".
  std::string key;

  static RequestClass Make(std::string app_id, std::string app_version,
                           std::string parameters_json);
};

/// MD5 of `data` as 32 lowercase hex digits (RFC 1321).
std::string Md5Hex(std::string_view data);

}  // namespace clams::vram

#endif  // CLAMS_VRAM_REQUEST_CLASS_H_
