// clams/mmif/json.h
//
// JSON reading and writing used by the MMIF library, the app SDK and the
// server. The tree type is Boost.JSON's `boost::json::value` (objects keep
// insertion order). The writer is our own, because Boost.JSON writes doubles
// as `9.5E-1`; ours writes the shortest text that reads back to the same
// double, in the form Python's `repr` uses (`0.95`, `2.0`, `1e-05`, `1e+16`),
// so MMIF produced by Python tools round-trips to the same bytes in
// `JsonStyle::kPython`.
//
// Example:
//
//   CLAMS_ASSIGN_OR_RETURN(boost::json::value v, clams::mmif::ParseJson(text));
//   std::string out = clams::mmif::WriteJson(v, {.indent = 2});
#ifndef CLAMS_MMIF_JSON_H_
#define CLAMS_MMIF_JSON_H_

#include <boost/json/value.hpp>

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

#include "clams/base/status.h"

namespace clams::mmif {

namespace json = ::boost::json;

/// Deepest JSON nesting accepted by ParseJson. MMIF needs about 8 levels
/// (root, views, view, annotations, annotation, properties, value, list);
/// 128 leaves room for rich property values and stops stack exhaustion.
inline constexpr std::size_t kMaxJsonDepth = 128;

/// How WriteJson lays out its output.
struct JsonStyle {
  /// 0: everything on one line. N > 0: one member per line, N spaces per
  /// level (Python's `indent=N`).
  int indent = 0;
  /// One-line output only: separators `", "` and `": "` (Python's json.dumps
  /// defaults, what mmif-python writes) instead of `","` and `":"`.
  bool python_separators = false;
  /// Escape every non-ASCII character (and DEL) as \uXXXX, with surrogate
  /// pairs above the BMP (Python's `ensure_ascii=True`).
  bool ensure_ascii = false;

  /// The compact layout mmif-python writes: `{"a": 1, "b": [1, 2]}`, ASCII only.
  static JsonStyle Python() { return JsonStyle{0, true, true}; }
};

/// Parses `text` as one JSON value (RFC 8259, UTF-8 only, no comments, no
/// trailing commas, no NaN). Duplicate keys in an object: the last value
/// wins, at the place of the first key (as in Python). Integers beyond 64
/// bits are read as doubles. Doubles are correctly rounded (std::from_chars;
/// Boost.JSON 1.81 alone is not), so shortest-form numbers read back to the
/// same double and are written back to the same text. The tree is allocated
/// from `storage` (the default resource if null).
///
/// Returns kInvalidArgument with a message naming line and column (columns
/// count code points), e.g. `malformed JSON at line 1, column 9: syntax
/// error`, `... : number out of range` (1e400), `... : empty input`, or
/// `invalid UTF-8 at line 3, column 14`, or `JSON nested deeper than 128
/// levels`; kResourceExhausted if memory runs out.
StatusOr<json::value> ParseJson(std::string_view text,
                                json::storage_ptr storage = {});

/// Storage for one document's tree: a Boost.JSON monotonic arena (first block of about
/// `initial_bytes`; 0 for Boost.JSON's default) whose blocks come from, and go back to, a
/// process-wide cache of the blocks of trees freed before (up to 64 MiB; thread-safe). Trees
/// built one after another, as a server builds one per request, so reuse memory that is
/// mapped already instead of faulting in fresh pages each time. Copies of parts of the tree
/// share the arena and keep it alive, as with any shared Boost.JSON resource.
json::storage_ptr MakeTreeArena(std::size_t initial_bytes = 0);

/// Appends `value` as JSON text to `out`.
void AppendJson(std::string& out, const json::value& value, const JsonStyle& style = {});
/// Returns `value` as JSON text.
std::string WriteJson(const json::value& value, const JsonStyle& style = {});

/// Size of the pieces WriteJsonChunked hands over (64 KiB).
inline constexpr std::size_t kJsonChunkBytes = std::size_t{1} << 16;

/// Writes `value` as JSON text to `sink` in pieces of about `chunk_bytes`
/// (cut after array elements and object members), so a large document never
/// sits in memory as text. The pieces joined give WriteJson(value, style).
void WriteJsonChunked(const json::value& value, const JsonStyle& style,
                      const std::function<void(std::string_view)>& sink,
                      std::size_t chunk_bytes = kJsonChunkBytes);

/// Appends the JSON string literal (with quotes) for `text`, which must be
/// valid UTF-8.
void AppendJsonString(std::string& out, std::string_view text, bool ensure_ascii = false);
/// Appends the shortest round-trip text of `d` in Python's repr form
/// (`2.0`, `0.1`, `1e-05`, `1e+16`). Non-finite values, which JSON cannot
/// hold, are written as `null`.
void AppendJsonDouble(std::string& out, double d);

/// Returns true if `text` is valid UTF-8 (no overlongs, no surrogates).
bool IsValidUtf8(std::string_view text);

}  // namespace clams::mmif

#endif  // CLAMS_MMIF_JSON_H_
