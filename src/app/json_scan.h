// A lexical scan of JSON text, for finding the top-level members of a request
// envelope without building its tree: the front (server/intake.cc) and the
// development runner (runner.cc ScanEnvelope) read where `mmif` and
// `parameters` are, and parse only those. The text is assumed well formed
// where it matters; callers validate what they take.
#ifndef CLAMS_SRC_APP_JSON_SCAN_H_
#define CLAMS_SRC_APP_JSON_SCAN_H_

#include <cstddef>
#include <string_view>

namespace clams::app_internal {

/// The index of the first non-whitespace character at or after `i`.
std::size_t SkipWs(std::string_view s, std::size_t i);
/// s[i] == '"': the index after the closing quote (npos if unterminated).
std::size_t SkipString(std::string_view s, std::size_t i);
/// One JSON value from `i` (after whitespace): the index after it, or npos
/// if the text breaks off or is malformed at the level the scan can see.
std::size_t SkipValue(std::string_view s, std::size_t i);

}  // namespace clams::app_internal

#endif  // CLAMS_SRC_APP_JSON_SCAN_H_
