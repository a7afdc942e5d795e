#include "clams/mmif/text.h"

#include <gtest/gtest.h>

#include <string>

namespace clams::mmif {
namespace {

TEST(CodePointIndexTest, AsciiOffsetsAreBytes) {
  CodePointIndex idx("hello");
  EXPECT_EQ(idx.size(), 5u);
  EXPECT_EQ(idx.ByteOffset(0), 0u);
  EXPECT_EQ(idx.ByteOffset(5), 5u);
  EXPECT_EQ(idx.CodePointAt(3), 3u);
  EXPECT_EQ(idx.CodePointAt(5), 5u);
}

TEST(CodePointIndexTest, MultiByteCharacters) {
  // "Café 中 😀!" : C a f é(2 bytes) space 中(3) space 😀(4) !
  const std::string text = "Caf\xC3\xA9 \xE4\xB8\xAD \xF0\x9F\x98\x80!";
  CodePointIndex idx(text);
  EXPECT_EQ(idx.size(), 9u);
  EXPECT_EQ(idx.ByteOffset(3), 3u);   // é
  EXPECT_EQ(idx.ByteOffset(4), 5u);   // space
  EXPECT_EQ(idx.ByteOffset(5), 6u);   // 中
  EXPECT_EQ(idx.ByteOffset(7), 10u);  // 😀
  EXPECT_EQ(idx.ByteOffset(8), 14u);  // !
  EXPECT_EQ(idx.ByteOffset(9), text.size());
  EXPECT_EQ(idx.CodePointAt(4), 3u);   // second byte of é
  EXPECT_EQ(idx.CodePointAt(12), 7u);  // inside 😀
  EXPECT_EQ(idx.CodePointAt(14), 8u);
  EXPECT_EQ(idx.CodePointAt(text.size()), 9u);
  EXPECT_EQ(idx.CodePointAt(text.size() + 10), 9u);
  // MMIF offsets -> the UTF-8 substring.
  const std::size_t b = idx.ByteOffset(5);
  const std::size_t e = idx.ByteOffset(6);
  EXPECT_EQ(text.substr(b, e - b), "\xE4\xB8\xAD");
}

TEST(CodePointIndexTest, EmptyText) {
  CodePointIndex idx("");
  EXPECT_EQ(idx.size(), 0u);
  EXPECT_EQ(idx.ByteOffset(0), 0u);
  EXPECT_EQ(idx.CodePointAt(0), 0u);
}

}  // namespace
}  // namespace clams::mmif
