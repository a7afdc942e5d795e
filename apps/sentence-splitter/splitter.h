// Rule-based sentence and token splitting for English-like text, with
// offsets in Unicode code points (what MMIF uses). Handles abbreviations
// ("Dr.", "e.g.", "U.S."), initials ("J. Smith"), decimals and thousands
// ("3.50", "1,000"), times ("10:30"), ellipses ("..." and "…"), quotes and
// brackets after a sentence end ('He left." She'), contractions and
// hyphenated words, and blank lines as paragraph breaks.
#ifndef CLAMS_APPS_SENTENCE_SPLITTER_SPLITTER_H_
#define CLAMS_APPS_SENTENCE_SPLITTER_SPLITTER_H_

#include <cstddef>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace splitter {

/// A span of the text: [start, end) in code points and in bytes.
struct Span {
  std::size_t start = 0;  ///< code points
  std::size_t end = 0;
  std::size_t byte_start = 0;
  std::size_t byte_end = 0;
};

struct Options {
  /// Words (without the final period, case-insensitive) after which a
  /// period does not end a sentence, in addition to the built-in list.
  std::set<std::string> extra_abbreviations;
  /// A blank line always ends a sentence.
  bool paragraph_breaks = true;
};

struct Result {
  std::vector<Span> tokens;
  std::vector<Span> sentences;
  /// For each sentence, the index of its first token and one past its last.
  std::vector<std::pair<std::size_t, std::size_t>> sentence_tokens;
};

/// Splits `text` (valid UTF-8).
Result Split(std::string_view text, const Options& options = {});

}  // namespace splitter

#endif  // CLAMS_APPS_SENTENCE_SPLITTER_SPLITTER_H_
