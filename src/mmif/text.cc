// Code point <-> byte offset conversion for MMIF text offsets.
#include "clams/mmif/text.h"

#include <algorithm>

namespace clams::mmif {

namespace {
// Every byte that is not a UTF-8 continuation byte starts a code point (a
// stray continuation byte at the very start counts as one too).
bool StartsCodePoint(std::string_view utf8, std::size_t i) {
  return i == 0 || (static_cast<unsigned char>(utf8[i]) & 0xC0) != 0x80;
}
}  // namespace

CodePointIndex::CodePointIndex(std::string_view utf8) {
  std::size_t count = 0;
  for (std::size_t i = 0; i < utf8.size(); ++i) count += StartsCodePoint(utf8, i) ? 1 : 0;
  starts_.reserve(count + 1);
  for (std::size_t i = 0; i < utf8.size(); ++i) {
    if (StartsCodePoint(utf8, i)) starts_.push_back(static_cast<std::uint32_t>(i));
  }
  starts_.push_back(static_cast<std::uint32_t>(utf8.size()));
}

std::size_t CodePointIndex::CodePointAt(std::size_t byte) const {
  if (byte >= starts_.back()) return size();
  auto it = std::upper_bound(starts_.begin(), starts_.end(), byte);
  return static_cast<std::size_t>(it - starts_.begin()) - 1;
}

}  // namespace clams::mmif
