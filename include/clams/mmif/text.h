// clams/mmif/text.h
//
// MMIF text offsets count Unicode code points; C++ strings hold UTF-8 bytes.
// CodePointIndex converts between the two in O(1) after an O(n) build.
//
// Example:
//
//   CodePointIndex idx(text);
//   std::size_t start_cp = idx.CodePointAt(byte_begin);   // for "start"
//   std::string_view word = text.substr(idx.ByteOffset(s), idx.ByteOffset(e) - idx.ByteOffset(s));
#ifndef CLAMS_MMIF_TEXT_H_
#define CLAMS_MMIF_TEXT_H_

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace clams::mmif {

class CodePointIndex {
 public:
  /// `utf8` should be valid UTF-8 (every byte that is not a continuation
  /// byte starts a code point) and need not outlive the index: only offsets
  /// are kept, as 32-bit numbers, so texts are limited to 4 GiB.
  explicit CodePointIndex(std::string_view utf8);

  /// Number of code points.
  std::size_t size() const { return starts_.size() - 1; }
  /// Byte offset of code point `cp` (0 <= cp <= size(); size() gives the
  /// byte length).
  std::size_t ByteOffset(std::size_t cp) const { return starts_[cp]; }
  /// Index of the code point that contains byte `byte` (byte == length gives
  /// size()).
  std::size_t CodePointAt(std::size_t byte) const;

 private:
  std::vector<std::uint32_t> starts_;  // byte offset of each code point, plus the end
};

}  // namespace clams::mmif

#endif  // CLAMS_MMIF_TEXT_H_
