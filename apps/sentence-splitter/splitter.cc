#include "splitter.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>
#include <limits>

namespace splitter {
namespace {

// Abbreviations after which a period never ends a sentence (titles and
// forms that are always followed by more of the sentence).
const std::set<std::string>& NeverEnd() {
  static const std::set<std::string>* s = new std::set<std::string>{
      "dr", "mr", "mrs", "ms", "prof", "sr", "jr", "st", "gen", "rep", "sen", "gov", "capt", "lt", "col", "sgt",
      "rev", "hon", "mt", "vs", "v", "e.g", "i.e", "cf", "no", "nos", "fig", "figs", "approx", "dept", "est",
      "vol", "p", "pp", "ch", "sec", "art", "ed", "eds", "op", "cit", "al", "mx", "messrs", "mme", "mlle"};
  return *s;
}

// Abbreviations that end a sentence only when a capitalized word follows
// that is not a name-like continuation: we treat them as ending a sentence
// only before a line break or the end of text.
const std::set<std::string>& MaybeEnd() {
  static const std::set<std::string>* s = new std::set<std::string>{
      "etc", "inc", "ltd", "co", "corp", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct",
      "nov", "dec", "a.m", "p.m", "u.s", "u.k", "u.n", "ph.d", "b.a", "m.a", "b.c", "a.d"};
  return *s;
}

// Decodes the code point at `i` (valid UTF-8) and its length.
char32_t Decode(std::string_view s, std::size_t i, std::size_t* len) {
  const auto c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) {
    *len = 1;
    return c;
  }
  int n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
  if (i + n > s.size()) {
    *len = 1;
    return 0xFFFD;
  }
  char32_t cp = c & (0x7F >> n);
  for (int k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  *len = static_cast<std::size_t>(n);
  return cp;
}

// Classes of the ASCII characters, as the "C" locale's <cctype> has them.
enum AsciiClass : unsigned char { kSpace = 1, kPunct = 2, kUpper = 4 };
constexpr std::array<unsigned char, 0x80> MakeAsciiClasses() {
  std::array<unsigned char, 0x80> t{};
  for (char c : std::string_view(" \t\n\r\f\v")) t[static_cast<unsigned char>(c)] |= kSpace;
  for (int c = 0x21; c < 0x7F; ++c) {
    const bool alnum = (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
    if (!alnum) t[c] |= kPunct;
  }
  for (int c = 'A'; c <= 'Z'; ++c) t[c] |= kUpper;
  return t;
}
constexpr std::array<unsigned char, 0x80> kAsciiClasses = MakeAsciiClasses();

bool IsSpace(char32_t c) {
  if (c < 0x80) return (kAsciiClasses[c] & kSpace) != 0;
  return c == 0xA0 || c == 0x2028 || c == 0x2029 || (c >= 0x2000 && c <= 0x200A) || c == 0x3000;
}
bool IsDigit(char32_t c) { return c >= '0' && c <= '9'; }
// Letters: ASCII letters and every non-ASCII code point that is not
// punctuation or space we know of (good enough for Latin, Greek, Cyrillic,
// CJK and accented text).
bool IsOpenQuote(char32_t c) { return c == '"' || c == '\'' || c == 0x201C || c == 0x2018 || c == 0xAB; }
bool IsCloseQuote(char32_t c) {
  return c == '"' || c == '\'' || c == 0x201D || c == 0x2019 || c == 0xBB || c == ')' || c == ']' || c == '}';
}
bool IsPunct(char32_t c) {
  if (c < 0x80) return (kAsciiClasses[c] & kPunct) != 0;
  return (c >= 0x2010 && c <= 0x205E) || c == 0xAB || c == 0xBB || c == 0xA1 || c == 0xBF || (c >= 0x3000 && c <= 0x303F) ||
         c == 0xFF01 || c == 0xFF1F || c == 0xFF0C || c == 0xFF0E;
}
bool IsWordChar(char32_t c) { return !IsSpace(c) && !IsPunct(c); }
bool IsUpper(char32_t c) {
  if (c < 0x80) return (kAsciiClasses[c] & kUpper) != 0;
  return (c >= 0xC0 && c <= 0xDE && c != 0xD7) || (c >= 0x391 && c <= 0x3A9) || (c >= 0x410 && c <= 0x42F);
}
bool IsSentenceFinal(char32_t c) { return c == '.' || c == '!' || c == '?' || c == 0x2026 || c == 0x3002 || c == 0xFF01 || c == 0xFF1F; }

// A code point and its byte offset; `Offset` is 32 bits wide for texts
// below 4 GiB (half the memory of size_t offsets).
template <typename Offset>
struct Char {
  char32_t cp;
  Offset byte;
};

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

template <typename Offset>
Result SplitText(std::string_view text, const Options& options) {
  // Code points with their byte offsets.
  std::vector<Char<Offset>> cs;
  cs.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    std::size_t len = 1;
    char32_t cp = Decode(text, i, &len);
    cs.push_back({cp, static_cast<Offset>(i)});
    i += len;
  }
  const std::size_t n = cs.size();
  auto at = [&](std::size_t i) -> char32_t { return i < n ? cs[i].cp : 0; };
  auto byte_of = [&](std::size_t i) -> std::size_t { return i < n ? cs[i].byte : text.size(); };

  Result result;
  // --- tokens -----------------------------------------------------------
  std::size_t i = 0;
  while (i < n) {
    char32_t c = cs[i].cp;
    if (IsSpace(c)) {
      ++i;
      continue;
    }
    std::size_t start = i;
    if (IsWordChar(c)) {
      // A word: letters/digits, joined by an apostrophe or hyphen between
      // word characters, by '.', ',' or ':' between digits (3.50, 1,000,
      // 10:30), and dotted abbreviations (U.S., e.g.).
      ++i;
      while (i < n) {
        char32_t d = cs[i].cp;
        if (IsWordChar(d)) {
          ++i;
        } else if ((d == '\'' || d == 0x2019 || d == '-') && IsWordChar(at(i + 1))) {
          i += 2;
        } else if ((d == '.' || d == ',' || d == ':') && IsDigit(at(i - 1)) && IsDigit(at(i + 1))) {
          i += 2;
        } else if (d == '.' && IsWordChar(at(i + 1)) && !IsDigit(at(i + 1)) && i >= start + 1 && i - start <= 2 &&
                   at(i + 2) == '.') {
          // "U.S." / "e.g.": single letters separated by periods.
          i += 2;
        } else {
          break;
        }
      }
      // A period after a known abbreviation or an initial stays in the token.
      if (at(i) == '.') {
        std::string word = Lower(text.substr(byte_of(start), byte_of(i) - byte_of(start)));
        // Dotted abbreviations ("u.s", "e.g"), not numbers ("3.50").
        bool dotted = word.find('.') != std::string::npos &&
                      std::none_of(word.begin(), word.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
        bool initial = i - start == 1 && IsUpper(cs[start].cp);
        if (dotted || initial || NeverEnd().count(word) || MaybeEnd().count(word) ||
            options.extra_abbreviations.count(word)) {
          ++i;
        }
      }
    } else if (c == '.' && at(i + 1) == '.' && at(i + 2) == '.') {
      i += 3;
      while (at(i) == '.') ++i;
    } else {
      ++i;  // one punctuation mark
    }
    result.tokens.push_back({start, i, byte_of(start), byte_of(i)});
  }

  // --- sentences --------------------------------------------------------
  auto token_text = [&](const Span& t) { return text.substr(t.byte_start, t.byte_end - t.byte_start); };
  auto is_break_token = [&](std::size_t k) {
    const Span& t = result.tokens[k];
    std::string_view s = token_text(t);
    std::size_t len = 1;
    // The token's last code point.
    std::size_t back = s.size() - 1;
    while (back > 0 && (static_cast<unsigned char>(s[back]) & 0xC0) == 0x80) --back;
    char32_t end_cp = Decode(s, back, &len);
    if (!IsSentenceFinal(end_cp)) return false;
    if (s.size() > 1 && end_cp == '.' && s != "...") {
      // An abbreviation or initial token ("Dr.", "J.", "U.S.", "etc.").
      std::string word = Lower(s.substr(0, s.size() - 1));
      if (NeverEnd().count(word) || options.extra_abbreviations.count(word)) return false;
      bool initial = t.end - t.start == 2 && IsUpper(cs[t.start].cp);
      if (initial) return false;
      if (MaybeEnd().count(word) || word.find('.') != std::string::npos) {
        // Ends a sentence only if the next word starts with a capital after
        // a line break, or at the end of the text.
        if (k + 1 >= result.tokens.size()) return true;
        const Span& next = result.tokens[k + 1];
        bool newline_between = false;
        for (std::size_t p = t.end; p < next.start; ++p) {
          if (cs[p].cp == '\n') newline_between = true;
        }
        return newline_between && IsUpper(cs[next.start].cp);
      }
    }
    // "..." or "…" continues the sentence when a lowercase word follows.
    if ((s == "..." || end_cp == 0x2026) && k + 1 < result.tokens.size()) {
      char32_t next = cs[result.tokens[k + 1].start].cp;
      if (!IsUpper(next) && !IsOpenQuote(next)) return false;
    }
    return true;
  };

  std::size_t sent_first = 0;
  auto close_sentence = [&](std::size_t last_exclusive) {
    if (last_exclusive <= sent_first) return;
    const Span& a = result.tokens[sent_first];
    const Span& b = result.tokens[last_exclusive - 1];
    result.sentences.push_back({a.start, b.end, a.byte_start, b.byte_end});
    result.sentence_tokens.emplace_back(sent_first, last_exclusive);
    sent_first = last_exclusive;
  };
  for (std::size_t k = 0; k < result.tokens.size(); ++k) {
    // A blank line between this token and the next ends the sentence.
    bool paragraph = false;
    if (options.paragraph_breaks && k + 1 < result.tokens.size()) {
      int newlines = 0;
      for (std::size_t p = result.tokens[k].end; p < result.tokens[k + 1].start; ++p) {
        if (cs[p].cp == '\n') ++newlines;
      }
      paragraph = newlines >= 2;
    }
    if (is_break_token(k)) {
      // Closing quotes and brackets right after the mark belong to it.
      std::size_t end = k + 1;
      while (end < result.tokens.size() && result.tokens[end].start == result.tokens[end - 1].end &&
             result.tokens[end].end - result.tokens[end].start == 1 && IsCloseQuote(cs[result.tokens[end].start].cp)) {
        ++end;
      }
      // Do not split "3 p.m. on Friday": require the next token to look
      // like a sentence start (capital, digit, quote or bracket) unless the
      // mark is ! or ?.
      bool next_starts = end >= result.tokens.size();
      if (!next_starts) {
        char32_t nc = cs[result.tokens[end].start].cp;
        std::string_view mark = token_text(result.tokens[k]);
        bool strong = mark == "!" || mark == "?";
        next_starts = strong || IsUpper(nc) || IsDigit(nc) || IsOpenQuote(nc) || nc == '(' || nc == '[' || !IsWordChar(nc) ||
                      nc >= 0x3000;
      }
      if (next_starts) {
        close_sentence(end);
        k = end - 1;
        continue;
      }
    }
    if (paragraph) close_sentence(k + 1);
  }
  close_sentence(result.tokens.size());
  return result;
}

}  // namespace

Result Split(std::string_view text, const Options& options) {
  if (text.size() <= std::numeric_limits<std::uint32_t>::max()) return SplitText<std::uint32_t>(text, options);
  return SplitText<std::size_t>(text, options);
}

}  // namespace splitter
