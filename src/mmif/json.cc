// JSON reading (Boost.JSON's basic_parser with our own tree builder) and
// writing (our own writer, Python-compatible number and string forms).
#include "clams/mmif/json.h"

#include <algorithm>
#include <array>
#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/error.hpp>
#include <boost/json/value_stack.hpp>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <new>
#include <string>
#include <system_error>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "mmif/internal.h"

namespace clams::mmif {
namespace {

// ---------------------------------------------------------------------------
// Reading

// Bytes read per step when parsing from a file.
constexpr std::size_t kParseChunkBytes = std::size_t{1} << 16;
// Scratch space of the tree builder kept inside the parser (on the caller's
// stack): 256 values under construction, enough for small requests.
constexpr std::size_t kParseStackBytes = 4096;

// The handler of boost::json::basic_parser: builds the tree on a value_stack
// exactly like boost::json::parser does, except that doubles are re-read with
// std::from_chars. Boost 1.81 rounds some decimal strings to a neighbouring
// double; from_chars is correctly rounded, which the lossless guarantee needs.
class TreeBuilder {
 public:
  static constexpr std::size_t max_object_size = json::object::max_size();
  static constexpr std::size_t max_array_size = json::array::max_size();
  static constexpr std::size_t max_key_size = json::string::max_size();
  static constexpr std::size_t max_string_size = json::string::max_size();

  explicit TreeBuilder(json::storage_ptr sp) : st({}, scratch, sizeof(scratch)) {
    st.reset(std::move(sp));
  }

  bool on_document_begin(json::error_code&) { return true; }
  bool on_document_end(json::error_code&) { return true; }
  bool on_object_begin(json::error_code&) { return true; }
  bool on_object_end(std::size_t n, json::error_code&) {
    st.push_object(n);
    return true;
  }
  bool on_array_begin(json::error_code&) { return true; }
  bool on_array_end(std::size_t n, json::error_code&) {
    st.push_array(n);
    return true;
  }
  bool on_key_part(json::string_view s, std::size_t, json::error_code&) {
    st.push_chars(s);
    return true;
  }
  bool on_key(json::string_view s, std::size_t, json::error_code&) {
    st.push_key(s);
    return true;
  }
  bool on_string_part(json::string_view s, std::size_t, json::error_code&) {
    st.push_chars(s);
    return true;
  }
  bool on_string(json::string_view s, std::size_t, json::error_code&) {
    st.push_string(s);
    return true;
  }
  bool on_number_part(json::string_view s, json::error_code&) {
    number_prefix.append(s.data(), s.size());
    return true;
  }
  bool on_int64(std::int64_t i, json::string_view, json::error_code&) {
    number_prefix.clear();
    st.push_int64(i);
    return true;
  }
  bool on_uint64(std::uint64_t u, json::string_view, json::error_code&) {
    number_prefix.clear();
    st.push_uint64(u);
    return true;
  }
  bool on_double(double d, json::string_view s, json::error_code& ec) {
    double exact = d;
    if (number_prefix.empty()) {
      exact = Reparse(s.data(), s.size(), d);
    } else {
      number_prefix.append(s.data(), s.size());
      exact = Reparse(number_prefix.data(), number_prefix.size(), d);
      number_prefix.clear();
    }
    if (!std::isfinite(exact)) {
      // JSON has no infinities; Python would read 1e400 as inf and then be
      // unable to write it back as JSON.
      ec = json::make_error_code(json::error::exponent_overflow);
      return false;
    }
    st.push_double(exact);
    return true;
  }
  bool on_bool(bool b, json::error_code&) {
    st.push_bool(b);
    return true;
  }
  bool on_null(json::error_code&) {
    st.push_null();
    return true;
  }
  bool on_comment_part(json::string_view, json::error_code&) { return true; }
  bool on_comment(json::string_view, json::error_code&) { return true; }

  // The value stack's first scratch space (values under construction); it
  // moves to the heap only for deep or wide documents.
  alignas(json::value) unsigned char scratch[kParseStackBytes];
  json::value_stack st;
  std::string number_prefix;  // number text split across write_some calls

 private:
  // Correctly rounded value of the number text; `fallback` (Boost's value)
  // when from_chars cannot represent it (underflow to zero or overflow).
  static double Reparse(const char* text, std::size_t size, double fallback) {
    double out = 0;
    auto [ptr, ec] = std::from_chars(text, text + size, out);
    if (ec == std::errc() && ptr == text + size) return out;
    return fallback;
  }
};

// 1-based line and column (in code points) of byte `offset` in `text`.
std::pair<std::size_t, std::size_t> LineAndColumn(std::string_view text, std::size_t offset) {
  if (offset > text.size()) offset = text.size();
  std::size_t line = 1;
  std::size_t column = 1;
  for (std::size_t i = 0; i < offset; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '\n') {
      ++line;
      column = 1;
    } else if ((c & 0xC0) != 0x80) {
      ++column;
    }
  }
  return {line, column};
}

// Byte offset of the first invalid UTF-8 sequence, or npos.
std::size_t FirstInvalidUtf8(std::string_view text);

Status ParseError(std::string_view text, std::size_t offset, const json::error_code& ec) {
  if (ec == json::error::too_deep) {
    return InvalidArgumentError("JSON nested deeper than " + std::to_string(kMaxJsonDepth) +
                                " levels");
  }
  const std::size_t bad_utf8 = FirstInvalidUtf8(text);
  if (bad_utf8 != std::string_view::npos && bad_utf8 <= offset) {
    auto [line, column] = LineAndColumn(text, bad_utf8);
    return InvalidArgumentError("invalid UTF-8 at line " + std::to_string(line) + ", column " +
                                std::to_string(column));
  }
  std::string what = ec.message();
  if (ec == json::error::exponent_overflow) what = "number out of range";
  if (text.find_first_not_of(" \t\r\n") == std::string_view::npos) what = "empty input";
  auto [line, column] = LineAndColumn(text, offset);
  return InvalidArgumentError("malformed JSON at line " + std::to_string(line) + ", column " +
                              std::to_string(column) + ": " + what);
}

// ---------------------------------------------------------------------------
// UTF-8

// Length of the UTF-8 sequence at `p` (at most `avail` bytes), or 0 if it is
// not a valid, shortest-form, non-surrogate encoding.
std::size_t Utf8SequenceLength(const unsigned char* p, std::size_t avail) {
  const unsigned char c = p[0];
  if (c < 0x80) return 1;
  if (c < 0xC2) return 0;  // continuation byte or overlong 2-byte lead
  if (c < 0xE0) {
    return (avail >= 2 && (p[1] & 0xC0) == 0x80) ? 2 : 0;
  }
  if (c < 0xF0) {
    if (avail < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80) return 0;
    if (c == 0xE0 && p[1] < 0xA0) return 0;   // overlong
    if (c == 0xED && p[1] >= 0xA0) return 0;  // UTF-16 surrogate
    return 3;
  }
  if (c < 0xF5) {
    if (avail < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80) {
      return 0;
    }
    if (c == 0xF0 && p[1] < 0x90) return 0;   // overlong
    if (c == 0xF4 && p[1] >= 0x90) return 0;  // above U+10FFFF
    return 4;
  }
  return 0;
}

std::size_t FirstInvalidUtf8(std::string_view text) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  std::size_t i = 0;
  while (i < n) {
    if (p[i] < 0x80) {
      ++i;
      continue;
    }
    const std::size_t len = Utf8SequenceLength(p + i, n - i);
    if (len == 0) return i;
    i += len;
  }
  return std::string_view::npos;
}

// ---------------------------------------------------------------------------
// Writing

// What each byte needs inside a JSON string: 0 = copy as is, 'u' = \u00XX,
// another character c = the two-byte escape \c. Bytes >= 0x80 are copied
// here; ensure_ascii handles them separately.
constexpr std::array<char, 256> MakeEscapeTable() {
  std::array<char, 256> t{};
  for (int c = 0; c < 0x20; ++c) t[c] = 'u';
  t['"'] = '"';
  t['\\'] = '\\';
  t['\b'] = 'b';
  t['\f'] = 'f';
  t['\n'] = 'n';
  t['\r'] = 'r';
  t['\t'] = 't';
  return t;
}
constexpr std::array<char, 256> kEscape = MakeEscapeTable();
constexpr char kHexDigits[] = "0123456789abcdef";
// The ASCII DEL character, which Python's ensure_ascii escapes too.
constexpr unsigned char kAsciiDel = 0x7F;
// U+FFFD, written for bytes that are not UTF-8 (only reachable through
// values built by hand; parsed strings are always valid).
constexpr std::uint32_t kReplacementChar = 0xFFFD;
// Room for the longest double text ("-2.2250738585072014e-308") with margin.
constexpr std::size_t kMaxDoubleChars = 32;
// Room for the longest integer text ("-9223372036854775808", 20 digits + sign).
constexpr std::size_t kMaxIntegerChars = 24;
// Python's repr switches to exponent form below 1e-4 and from 1e16 on
// (decimal point position <= -4 or > 16).
constexpr int kMinFixedDecimalPoint = -4;
constexpr int kMaxFixedDecimalPoint = 16;
// A chunk overshoots its size by at most one member; reserve a little more.
constexpr std::size_t kChunkSlackBytes = 4096;

// Room for the frame of an object member around its key in one line:
// `, "` before and `"` after (the ": " gets its own room).
constexpr std::size_t kMemberFrameBytes = 4;
// Room a Writer makes at least when it opens or grows its buffer.
constexpr std::size_t kMinBufferRoom = 256;
// Bytes the longest escape of one input byte or code point writes
// (`\uXXXX\uXXXX` for a code point above the BMP, from 4 input bytes).
constexpr std::size_t kMaxEscapeBytes = 12;
// Bytes the word-at-a-time scan reads at once, and half of that.
constexpr std::size_t kWordBytes = 8;
constexpr std::size_t kHalfWordBytes = 4;
constexpr std::uint64_t kEachByte = 0x0101010101010101ULL;
constexpr std::uint64_t kHighBits = 0x8080808080808080ULL;

// Nonzero if a byte of `w` is below `n` (n <= 0x80; exact as a whole).
constexpr std::uint64_t AnyByteBelow(std::uint64_t w, std::uint64_t n) {
  return (w - kEachByte * n) & ~w & kHighBits;
}
// Nonzero if a byte of `w` equals `c` (exact as a whole).
constexpr std::uint64_t AnyByteEquals(std::uint64_t w, std::uint64_t c) {
  return AnyByteBelow(w ^ (kEachByte * c), 1);
}
// True if one of the 8 bytes in `w` needs more than a copy inside a JSON
// string: a control character, '"' or '\\' (and, with `ascii`, DEL and
// bytes >= 0x80).
inline bool WordNeedsEscape(std::uint64_t w, bool ascii) {
  std::uint64_t hit = AnyByteBelow(w, 0x20) | AnyByteEquals(w, '"') | AnyByteEquals(w, '\\');
  if (ascii) hit |= (w & kHighBits) | AnyByteEquals(w, kAsciiDel);
  return hit != 0;
}

// The text being written: the tail of a std::string, sized ahead of the
// writing (so characters go straight to memory; the size at least doubles
// each time, inside a capacity reserved before without reallocating) and
// cut to what was written by Close().
class OutBuffer {
 public:
  OutBuffer(std::string& s, std::size_t first_room) : s_(s), base_(s.size()) {
    s_.resize(base_ + first_room);
    p_ = s_.data() + base_;
    end_ = s_.data() + s_.size();
  }
  OutBuffer(const OutBuffer&) = delete;
  OutBuffer& operator=(const OutBuffer&) = delete;
  ~OutBuffer() { Close(); }

  /// Makes room for `n` more bytes; returns the write position.
  char* Room(std::size_t n) {
    if (static_cast<std::size_t>(end_ - p_) < n) Grow(n);
    return p_;
  }
  /// Marks the bytes up to `p` (from Room()) as written.
  void Advance(char* p) { p_ = p; }
  void Put(char c) {
    *Room(1) = c;
    ++p_;
  }
  void Put(std::string_view text) {
    std::memcpy(Room(text.size()), text.data(), text.size());
    p_ += text.size();
  }
  /// The bytes written since the start (or the last Reset()).
  std::string_view Written() const {
    return std::string_view(s_.data() + base_, static_cast<std::size_t>(p_ - s_.data()) - base_);
  }
  /// Forgets what was written (after a chunk went to the sink).
  void Reset() { p_ = s_.data() + base_; }
  void Close() {
    if (p_ != nullptr) s_.resize(static_cast<std::size_t>(p_ - s_.data()));
    p_ = end_ = nullptr;
  }

 private:
  [[gnu::noinline]] void Grow(std::size_t n) {
    const std::size_t used = static_cast<std::size_t>(p_ - s_.data());
    std::size_t size = std::max({s_.size() * 2, used + n, used + kMinBufferRoom});
    // Inside the reserved capacity as long as the text fits there: growing
    // past it would reallocate (and fault in) twice the reservation.
    if (used + n <= s_.capacity()) size = std::min(size, s_.capacity());
    s_.resize(size);
    p_ = s_.data() + used;
    end_ = s_.data() + s_.size();
  }

  std::string& s_;
  std::size_t base_;
  char* p_ = nullptr;
  char* end_ = nullptr;
};

char* PutUnicodeEscape(char* p, std::uint32_t unit) {
  p[0] = '\\';
  p[1] = 'u';
  p[2] = kHexDigits[(unit >> 12) & 0xF];
  p[3] = kHexDigits[(unit >> 8) & 0xF];
  p[4] = kHexDigits[(unit >> 4) & 0xF];
  p[5] = kHexDigits[unit & 0xF];
  return p + 6;
}

// Writes the escape of the character starting at `text[i]`, which needs
// one (see WordNeedsEscape); returns the bytes of `text` it used.
std::size_t PutEscape(OutBuffer& out, const unsigned char* text, std::size_t i, std::size_t n,
                      bool ascii) {
  char* p = out.Room(kMaxEscapeBytes);
  const unsigned char c = text[i];
  if (c < 0x80 && c != kAsciiDel) {
    const char e = kEscape[c];
    if (e == 'u') {
      out.Advance(PutUnicodeEscape(p, c));
    } else if (e != 0) {
      p[0] = '\\';
      p[1] = e;
      out.Advance(p + 2);
    } else {
      p[0] = static_cast<char>(c);
      out.Advance(p + 1);
    }
    return 1;
  }
  if (!ascii) {  // DEL or a byte of a multi-byte sequence: copied
    p[0] = static_cast<char>(c);
    out.Advance(p + 1);
    return 1;
  }
  if (c == kAsciiDel) {
    out.Advance(PutUnicodeEscape(p, c));
    return 1;
  }
  const std::size_t len = Utf8SequenceLength(text + i, n - i);
  std::uint32_t cp = kReplacementChar;
  if (len == 2) {
    cp = ((c & 0x1Fu) << 6) | (text[i + 1] & 0x3Fu);
  } else if (len == 3) {
    cp = ((c & 0x0Fu) << 12) | ((text[i + 1] & 0x3Fu) << 6) | (text[i + 2] & 0x3Fu);
  } else if (len == 4) {
    cp = ((c & 0x07u) << 18) | ((text[i + 1] & 0x3Fu) << 12) | ((text[i + 2] & 0x3Fu) << 6) |
         (text[i + 3] & 0x3Fu);
  }
  if (cp >= 0x10000) {
    cp -= 0x10000;
    p = PutUnicodeEscape(p, 0xD800 + (cp >> 10));
    p = PutUnicodeEscape(p, 0xDC00 + (cp & 0x3FF));
  } else {
    p = PutUnicodeEscape(p, cp);
  }
  out.Advance(p);
  return len == 0 ? 1 : len;
}

// True if byte `c` is copied as is (see WordNeedsEscape).
inline bool PlainByte(unsigned char c, bool ascii) {
  return kEscape[c] == 0 && (!ascii || c < kAsciiDel);
}

// PutString from byte `i` of `text` on, all bytes before it written
// (plain) up to `p`, inside room made for the whole text and the quotes.
void PutStringFrom(OutBuffer& out, const unsigned char* s, std::size_t n, std::size_t i, char* p,
                   bool ascii) {
  while (i < n) {
    // Plain bytes: words of 8, then single bytes, straight into the room
    // made before (plain bytes take one byte each).
    while (n - i >= kWordBytes) {
      std::uint64_t w;
      std::memcpy(&w, s + i, kWordBytes);
      if (WordNeedsEscape(w, ascii)) break;
      std::memcpy(p, &w, kWordBytes);
      p += kWordBytes;
      i += kWordBytes;
    }
    // Then single bytes up to the one that needs an escape (inside the word
    // the scan stopped at) or to the end.
    while (i < n && PlainByte(s[i], ascii)) *p++ = static_cast<char>(s[i++]);
    if (i >= n) break;
    out.Advance(p);
    i += PutEscape(out, s, i, n, ascii);
    // The rest of the text (and the closing quote) needs room again.
    p = out.Room(n - i + 1);
  }
  *p++ = '"';
  out.Advance(p);
}

#if defined(__SSE2__)
// Bytes the 16-byte scan reads at once.
constexpr std::size_t kBlockBytes = 16;
// True if one of the 16 bytes at `s` needs more than a copy inside a JSON
// string (as WordNeedsEscape).
inline bool BlockNeedsEscape(const unsigned char* s, bool ascii) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s));
  const __m128i below_space = _mm_set1_epi8(0x1F);
  // Unsigned v <= 0x1F: max(v, 0x1F) == 0x1F.
  __m128i hit = _mm_cmpeq_epi8(_mm_max_epu8(v, below_space), below_space);
  hit = _mm_or_si128(hit, _mm_cmpeq_epi8(v, _mm_set1_epi8('"')));
  hit = _mm_or_si128(hit, _mm_cmpeq_epi8(v, _mm_set1_epi8('\\')));
  if (ascii) {
    // Unsigned v >= DEL: max(v, DEL) == v.
    hit = _mm_or_si128(hit, _mm_cmpeq_epi8(_mm_max_epu8(v, _mm_set1_epi8(kAsciiDel)), v));
  }
  return _mm_movemask_epi8(hit) != 0;
}
#endif

// PutString for 16 bytes and more, `p` just after the opening quote, inside
// room made for the text and the closing quote.
void PutLongString(OutBuffer& out, const unsigned char* s, std::size_t n, char* p, bool ascii) {
  std::size_t i = 0;
#if defined(__SSE2__)
  // Whole blocks; the last (partial) one is read as the 16 bytes ending the
  // text, overlapping the one before, and written over the same place.
  for (; n - i > kBlockBytes; i += kBlockBytes) {
    if (BlockNeedsEscape(s + i, ascii)) return PutStringFrom(out, s, n, i, p + i, ascii);
    std::memcpy(p + i, s + i, kBlockBytes);
  }
  if (BlockNeedsEscape(s + n - kBlockBytes, ascii))
    return PutStringFrom(out, s, n, i, p + i, ascii);
  std::memcpy(p + n - kBlockBytes, s + n - kBlockBytes, kBlockBytes);
#else
  std::uint64_t w;
  for (; n - i > kWordBytes; i += kWordBytes) {
    std::memcpy(&w, s + i, kWordBytes);
    if (WordNeedsEscape(w, ascii)) return PutStringFrom(out, s, n, i, p + i, ascii);
    std::memcpy(p + i, &w, kWordBytes);
  }
  std::memcpy(&w, s + n - kWordBytes, kWordBytes);
  if (WordNeedsEscape(w, ascii)) return PutStringFrom(out, s, n, i, p + i, ascii);
  std::memcpy(p + n - kWordBytes, &w, kWordBytes);
#endif
  p[n] = '"';
  out.Advance(p + n + 1);
}

// Writes `text` as a JSON string literal, quotes included, at `p` (room made
// for the text and the quotes; escapes make more as they go).
inline void PutStringAt(OutBuffer& out, char* p, std::string_view text, bool ascii) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  *p++ = '"';
  // The common case, a text without escapes, in whole words that overlap
  // for the sizes in between.
  if (n >= 2 * kWordBytes) {
    return PutLongString(out, s, n, p, ascii);
  } else if (n >= kWordBytes) {
    // 8 to 15 bytes: the first 8 and the last 8.
    std::uint64_t a;
    std::uint64_t b;
    std::memcpy(&a, s, kWordBytes);
    std::memcpy(&b, s + n - kWordBytes, kWordBytes);
    if (WordNeedsEscape(a, ascii) || WordNeedsEscape(b, ascii))
      return PutStringFrom(out, s, n, 0, p, ascii);
    std::memcpy(p, &a, kWordBytes);
    std::memcpy(p + n - kWordBytes, &b, kWordBytes);
  } else if (n >= kHalfWordBytes) {
    // 4 to 7 bytes: the first 4 and the last 4.
    std::uint32_t a;
    std::uint32_t b;
    std::memcpy(&a, s, kHalfWordBytes);
    std::memcpy(&b, s + n - kHalfWordBytes, kHalfWordBytes);
    const std::uint64_t both = (std::uint64_t{a} << 32) | b;
    if (WordNeedsEscape(both, ascii)) return PutStringFrom(out, s, n, 0, p, ascii);
    std::memcpy(p, &a, kHalfWordBytes);
    std::memcpy(p + n - kHalfWordBytes, &b, kHalfWordBytes);
  } else if (n > 0) {
    // 1 to 3 bytes: the first, middle and last byte cover them all; the
    // other five bytes of the word are a plain letter.
    constexpr std::uint64_t kPlainFill = 0x6161616161000000ULL;
    const unsigned char first = s[0];
    const unsigned char middle = s[n / 2];
    const unsigned char last = s[n - 1];
    const std::uint64_t w =
        kPlainFill | first | (std::uint64_t{middle} << 8) | (std::uint64_t{last} << 16);
    if (WordNeedsEscape(w, ascii)) return PutStringFrom(out, s, n, 0, p, ascii);
    p[0] = static_cast<char>(first);
    p[n / 2] = static_cast<char>(middle);
    p[n - 1] = static_cast<char>(last);
  }
  p[n] = '"';
  out.Advance(p + n + 1);
}

// Writes `text` as a JSON string literal, quotes included.
inline void PutString(OutBuffer& out, std::string_view text, bool ascii) {
  PutStringAt(out, out.Room(text.size() + 2), text, ascii);
}

// Writes the shortest round-trip text of `d` in Python's repr form at `buf`
// (room for kMaxDoubleChars * 2 bytes); returns the end.
char* PutDouble(char* buf, double d) {
  if (!std::isfinite(d)) {
    std::memcpy(buf, "null", 4);
    return buf + 4;
  }
  // Shortest round-trip digits in scientific form: "-1.2345e-07", "5e+00".
  char sci[kMaxDoubleChars];
  auto r = std::to_chars(sci, sci + sizeof(sci), d, std::chars_format::scientific);
  const char* p = sci;
  const char* end = r.ptr;
  std::size_t len = 0;
  if (*p == '-') {
    buf[len++] = '-';
    ++p;
  }
  char digits[kMaxDoubleChars];
  std::size_t ndigits = 0;
  while (p < end && *p != 'e') {
    if (*p != '.') digits[ndigits++] = *p;
    ++p;
  }
  int exponent = 0;
  if (p < end) std::from_chars(p[1] == '+' ? p + 2 : p + 1, end, exponent);
  const int decimal_point = exponent + 1;  // digits = 0.d1d2.. x 10^decimal_point
  if (decimal_point > kMinFixedDecimalPoint && decimal_point <= kMaxFixedDecimalPoint) {
    if (decimal_point <= 0) {
      buf[len++] = '0';
      buf[len++] = '.';
      for (int i = 0; i < -decimal_point; ++i) buf[len++] = '0';
      std::memcpy(buf + len, digits, ndigits);
      len += ndigits;
    } else if (static_cast<std::size_t>(decimal_point) < ndigits) {
      std::memcpy(buf + len, digits, static_cast<std::size_t>(decimal_point));
      len += static_cast<std::size_t>(decimal_point);
      buf[len++] = '.';
      std::memcpy(buf + len, digits + decimal_point, ndigits - decimal_point);
      len += ndigits - static_cast<std::size_t>(decimal_point);
    } else {
      std::memcpy(buf + len, digits, ndigits);
      len += ndigits;
      for (std::size_t i = ndigits; i < static_cast<std::size_t>(decimal_point); ++i) {
        buf[len++] = '0';
      }
      buf[len++] = '.';
      buf[len++] = '0';
    }
  } else {
    buf[len++] = digits[0];
    if (ndigits > 1) {
      buf[len++] = '.';
      std::memcpy(buf + len, digits + 1, ndigits - 1);
      len += ndigits - 1;
    }
    buf[len++] = 'e';
    buf[len++] = exponent < 0 ? '-' : '+';
    const int magnitude = exponent < 0 ? -exponent : exponent;
    constexpr int kMinExponentDigits = 10;  // Python pads the exponent to two digits
    if (magnitude < kMinExponentDigits) buf[len++] = '0';
    auto er = std::to_chars(buf + len, buf + kMaxDoubleChars * 2, magnitude);
    len = static_cast<std::size_t>(er.ptr - buf);
  }
  return buf + len;
}

class Writer {
 public:
  // With a `sink`, the text is handed over whenever the buffer holds at
  // least `chunk_bytes` (after an array element or object member).
  Writer(std::string& out, const JsonStyle& style,
         const std::function<void(std::string_view)>* sink = nullptr, std::size_t chunk_bytes = 0)
      : out_(out, kMinBufferRoom),
        style_(style),
        sink_(sink),
        chunk_bytes_(chunk_bytes),
        // Separators: "," and ":" plus a space after ":" when indenting, after
        // both with Python's separators.
        space_after_item_(style.indent <= 0 && style.python_separators),
        space_after_key_(style.indent > 0 || style.python_separators) {}

  void Flush() {
    if (sink_ != nullptr && !out_.Written().empty()) {
      (*sink_)(out_.Written());
      out_.Reset();
    }
  }

  void Close() { out_.Close(); }

  void Write(const json::value& v, int depth) {
    switch (v.kind()) {
      case json::kind::null:
        out_.Put("null");
        return;
      case json::kind::bool_:
        out_.Put(v.get_bool() ? std::string_view("true") : std::string_view("false"));
        return;
      case json::kind::int64: {
        char* p = out_.Room(kMaxIntegerChars);
        out_.Advance(std::to_chars(p, p + kMaxIntegerChars, v.get_int64()).ptr);
        return;
      }
      case json::kind::uint64: {
        char* p = out_.Room(kMaxIntegerChars);
        out_.Advance(std::to_chars(p, p + kMaxIntegerChars, v.get_uint64()).ptr);
        return;
      }
      case json::kind::double_:
        out_.Advance(PutDouble(out_.Room(kMaxDoubleChars * 2), v.get_double()));
        return;
      case json::kind::string: {
        const json::string& s = v.get_string();
        PutString(out_, std::string_view(s.data(), s.size()), style_.ensure_ascii);
        return;
      }
      case json::kind::array:
        WriteArray(v.get_array(), depth);
        return;
      case json::kind::object:
        WriteObject(v.get_object(), depth);
        return;
    }
  }

 private:
  void MaybeFlush() {
    if (sink_ != nullptr && out_.Written().size() >= chunk_bytes_) Flush();
  }

  void ItemSeparator() {
    char* p = out_.Room(2);
    *p++ = ',';
    if (space_after_item_) *p++ = ' ';
    out_.Advance(p);
  }

  void NewLine(int depth) {
    const std::size_t spaces =
        static_cast<std::size_t>(depth) * static_cast<std::size_t>(style_.indent);
    char* p = out_.Room(spaces + 1);
    *p = '\n';
    std::memset(p + 1, ' ', spaces);
    out_.Advance(p + 1 + spaces);
  }

  void WriteArray(const json::array& a, int depth) {
    if (a.empty()) {
      out_.Put("[]");
      return;
    }
    out_.Put('[');
    bool first = true;
    for (const json::value& item : a) {
      if (!first) ItemSeparator();
      first = false;
      if (style_.indent > 0) NewLine(depth + 1);
      Write(item, depth + 1);
      MaybeFlush();
    }
    if (style_.indent > 0) NewLine(depth);
    out_.Put(']');
  }

  void WriteObject(const json::object& o, int depth) {
    if (o.empty()) {
      out_.Put("{}");
      return;
    }
    out_.Put('{');
    bool first = true;
    for (const json::key_value_pair& kv : o) {
      const std::string_view key(kv.key().data(), kv.key().size());
      if (style_.indent > 0) {
        if (!first) ItemSeparator();
        NewLine(depth + 1);
        PutString(out_, key, style_.ensure_ascii);
      } else {
        // Separator, key and quotes in one piece of room.
        char* p = out_.Room(key.size() + kMemberFrameBytes);
        if (!first) {
          *p++ = ',';
          if (space_after_item_) *p++ = ' ';
        }
        PutStringAt(out_, p, key, style_.ensure_ascii);
      }
      first = false;
      char* p = out_.Room(2);
      *p++ = ':';
      if (space_after_key_) *p++ = ' ';
      out_.Advance(p);
      Write(kv.value(), depth + 1);
      MaybeFlush();
    }
    if (style_.indent > 0) NewLine(depth);
    out_.Put('}');
  }

  OutBuffer out_;
  const JsonStyle& style_;
  const std::function<void(std::string_view)>* sink_;
  std::size_t chunk_bytes_;
  bool space_after_item_;
  bool space_after_key_;
};

}  // namespace

StatusOr<json::value> ParseJson(std::string_view text, json::storage_ptr storage) {
  json::parse_options options;
  options.max_depth = kMaxJsonDepth;
  try {
    json::basic_parser<TreeBuilder> parser(options, std::move(storage));
    json::error_code ec;
    const std::size_t n = parser.write_some(false, text.data(), text.size(), ec);
    if (!ec && n < text.size()) ec = json::make_error_code(json::error::extra_data);
    if (ec) return ParseError(text, n, ec);
    if (!parser.done()) {
      return ParseError(text, text.size(), json::make_error_code(json::error::incomplete));
    }
    return parser.handler().st.release();
  } catch (const std::bad_alloc&) {
    return ResourceExhaustedError("out of memory while parsing JSON (" +
                                  std::to_string(text.size()) + " bytes)");
  } catch (const std::exception& e) {
    // value_stack throws std::length_error for containers beyond max_size().
    return InvalidArgumentError(std::string("malformed JSON: ") + e.what());
  }
}

}  // namespace clams::mmif

namespace clams::mmif_internal {

StatusOr<json::value> ParseJsonFromFile(std::FILE* file, json::storage_ptr storage,
                                        std::size_t* bytes) {
  json::parse_options options;
  options.max_depth = mmif::kMaxJsonDepth;
  *bytes = 0;
  try {
    json::basic_parser<mmif::TreeBuilder> parser(options, std::move(storage));
    std::vector<char> chunk(mmif::kParseChunkBytes);
    json::error_code ec;
    while (!ec) {
      const std::size_t n = std::fread(chunk.data(), 1, chunk.size(), file);
      if (n == 0) break;
      *bytes += n;
      const std::size_t used = parser.write_some(true, chunk.data(), n, ec);
      if (!ec && used < n) ec = json::make_error_code(json::error::extra_data);
    }
    if (std::ferror(file)) return FailedPreconditionError(std::strerror(errno));
    if (!ec) parser.write_some(false, nullptr, 0, ec);
    if (ec || !parser.done()) return InvalidArgumentError("malformed JSON");
    return parser.handler().st.release();
  } catch (const std::bad_alloc&) {
    return ResourceExhaustedError("out of memory while parsing JSON (" + std::to_string(*bytes) +
                                  " bytes read)");
  } catch (const std::exception& e) {
    return InvalidArgumentError(std::string("malformed JSON: ") + e.what());
  }
}

}  // namespace clams::mmif_internal

namespace clams::mmif {

void AppendJson(std::string& out, const json::value& value, const JsonStyle& style) {
  Writer writer(out, style);
  writer.Write(value, 0);
}

void WriteJsonChunked(const json::value& value, const JsonStyle& style,
                      const std::function<void(std::string_view)>& sink, std::size_t chunk_bytes) {
  std::string buffer;
  buffer.reserve(chunk_bytes + kChunkSlackBytes);
  Writer writer(buffer, style, &sink, chunk_bytes);
  writer.Write(value, 0);
  writer.Flush();
}

std::string WriteJson(const json::value& value, const JsonStyle& style) {
  std::string out;
  AppendJson(out, value, style);
  return out;
}

void AppendJsonString(std::string& out, std::string_view text, bool ensure_ascii) {
  OutBuffer buffer(out, text.size() + 2);
  PutString(buffer, text, ensure_ascii);
}

void AppendJsonDouble(std::string& out, double d) {
  char buf[kMaxDoubleChars * 2];
  out.append(buf, static_cast<std::size_t>(PutDouble(buf, d) - buf));
}

bool IsValidUtf8(std::string_view text) { return FirstInvalidUtf8(text) == std::string_view::npos; }

}  // namespace clams::mmif
