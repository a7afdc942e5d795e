#include "splitter.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace splitter {
namespace {

std::vector<std::string> Sentences(const std::string& text, const Options& o = {}) {
  std::vector<std::string> out;
  for (const auto& s : Split(text, o).sentences) out.push_back(text.substr(s.byte_start, s.byte_end - s.byte_start));
  return out;
}

std::vector<std::string> Tokens(const std::string& text) {
  std::vector<std::string> out;
  for (const auto& t : Split(text).tokens) out.push_back(text.substr(t.byte_start, t.byte_end - t.byte_start));
  return out;
}

TEST(SplitterTest, AbbreviationsInitialsAndNumbersDoNotEndSentences) {
  EXPECT_EQ(Sentences("Dr. Smith paid $3.50 at 10:30 a.m. on Friday. He left."),
            (std::vector<std::string>{"Dr. Smith paid $3.50 at 10:30 a.m. on Friday.", "He left."}));
  EXPECT_EQ(Sentences("J. R. R. Tolkien wrote it, e.g. the book. Mr. Baggins agreed."),
            (std::vector<std::string>{"J. R. R. Tolkien wrote it, e.g. the book.", "Mr. Baggins agreed."}));
  EXPECT_EQ(Sentences("Was it U.S. policy? Yes."), (std::vector<std::string>{"Was it U.S. policy?", "Yes."}));
}

TEST(SplitterTest, QuotesEllipsesAndParagraphs) {
  EXPECT_EQ(Sentences("He said \"Wow!\" Then he left... and came back. Yes\xe2\x80\xa6 It was."),
            (std::vector<std::string>{"He said \"Wow!\"", "Then he left... and came back.", "Yes\xe2\x80\xa6",
                                      "It was."}));
  EXPECT_EQ(Sentences("A heading\n\nThe text follows"), (std::vector<std::string>{"A heading", "The text follows"}));
  Options no_paragraphs;
  no_paragraphs.paragraph_breaks = false;
  EXPECT_EQ(Sentences("A heading\n\nThe text follows", no_paragraphs),
            (std::vector<std::string>{"A heading\n\nThe text follows"}));
}

TEST(SplitterTest, ExtraAbbreviations) {
  Options o;
  o.extra_abbreviations = {"approx"};
  EXPECT_EQ(Sentences("It weighs approx. Ten tons.", o), (std::vector<std::string>{"It weighs approx. Ten tons."}));
  Options q;
  q.extra_abbreviations = {"xyz"};
  EXPECT_EQ(Sentences("See xyz. Then go.", q), (std::vector<std::string>{"See xyz. Then go."}));
}

TEST(SplitterTest, TokensKeepWordsNumbersAndPunctuationApart) {
  EXPECT_EQ(Tokens("Don't pay $1,000.50 for well-known caf\xc3\xa9s!"),
            (std::vector<std::string>{"Don't", "pay", "$", "1,000.50", "for", "well-known", "caf\xc3\xa9s", "!"}));
}

TEST(SplitterTest, OffsetsCountCodePoints) {
  const std::string text = "\xc3\xa9t\xc3\xa9. Caf\xc3\xa9 \xf0\x9f\x98\x80 ok.";  // été. Café 😀 ok.
  Result r = Split(text);
  ASSERT_EQ(r.sentences.size(), 2u);
  EXPECT_EQ(r.sentences[0].start, 0u);
  EXPECT_EQ(r.sentences[0].end, 4u);
  EXPECT_EQ(r.sentences[1].start, 5u);
  EXPECT_EQ(r.sentences[1].end, 15u);  // C a f é ␠ 😀 ␠ o k .
  EXPECT_EQ(r.sentence_tokens[0], (std::pair<std::size_t, std::size_t>{0, 2}));
}

TEST(SplitterTest, EmptyAndWhitespaceOnlyText) {
  EXPECT_TRUE(Split("").sentences.empty());
  EXPECT_TRUE(Split("  \n\t ").tokens.empty());
}

}  // namespace
}  // namespace splitter
