#include "clams/mmif/json.h"

#include <gtest/gtest.h>

#include <boost/json/monotonic_resource.hpp>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <limits>
#include <optional>
#include <string>

#include "testing/status_matchers.h"

namespace clams::mmif {
namespace {

using ::clams::testing::IsOk;
using ::clams::testing::StatusIs;

json::value Parsed(std::string_view text) {
  StatusOr<json::value> v = ParseJson(text);
  EXPECT_THAT(v, IsOk()) << text;
  return v.ok() ? *v : json::value();
}

std::string Double(double d) {
  std::string out;
  AppendJsonDouble(out, d);
  return out;
}

std::string Nested(int depth) {
  return std::string(static_cast<std::size_t>(depth), '[') +
         std::string(static_cast<std::size_t>(depth), ']');
}

TEST(ParseJsonTest, ParsesAllKinds) {
  json::value v = Parsed(R"({"s":"x","i":-3,"u":18446744073709551615,"d":0.5,"b":true,"n":null,
                            "a":[1,[2]],"o":{}})");
  const json::object& o = v.get_object();
  EXPECT_EQ(o.at("s").get_string(), "x");
  EXPECT_EQ(o.at("i").get_int64(), -3);
  EXPECT_EQ(o.at("u").get_uint64(), std::numeric_limits<std::uint64_t>::max());
  EXPECT_EQ(o.at("d").get_double(), 0.5);
  EXPECT_TRUE(o.at("b").get_bool());
  EXPECT_TRUE(o.at("n").is_null());
  EXPECT_EQ(o.at("a").get_array().size(), 2u);
  EXPECT_TRUE(o.at("o").get_object().empty());
}

TEST(ParseJsonTest, KeepsKeyOrder) {
  json::value v = Parsed(R"({"z":1,"a":2,"m":3})");
  EXPECT_EQ(WriteJson(v), R"({"z":1,"a":2,"m":3})");
}

TEST(ParseJsonTest, DuplicateKeyKeepsLastValueAtFirstPosition) {
  // Python's json.loads: {"a": 3, "b": 2}.
  json::value v = Parsed(R"({"a":1,"b":2,"a":3})");
  EXPECT_EQ(WriteJson(v), R"({"a":3,"b":2})");
}

TEST(ParseJsonTest, IntegersBeyond64BitsBecomeDoubles) {
  json::value v = Parsed("[100000000000000000000, -9223372036854775809]");
  ASSERT_TRUE(v.get_array()[0].is_double());
  EXPECT_EQ(v.get_array()[0].get_double(), 1e20);
  EXPECT_EQ(WriteJson(v), "[1e+20,-9.223372036854776e+18]");
}

TEST(ParseJsonTest, DoublesAreCorrectlyRounded) {
  // Boost.JSON 1.81 alone reads these as 1.3927926388013965e-143 and
  // 5.4097607429647374e+124; the shortest repr must come back unchanged.
  for (std::string_view text : {"1.3927926388013963e-143", "5.409760742964738e+124",
                                "2.2250738585072011e-308", "0.1", "0.30000000000000004"}) {
    json::value v = Parsed(text);
    ASSERT_TRUE(v.is_double()) << text;
    double expected = 0;
    std::from_chars(text.data(), text.data() + text.size(), expected);
    EXPECT_EQ(v.get_double(), expected) << text;
  }
  EXPECT_EQ(WriteJson(Parsed("1.3927926388013963e-143")), "1.3927926388013963e-143");
}

TEST(ParseJsonTest, UnderflowReadsAsZero) {
  json::value v = Parsed("1e-400");
  ASSERT_TRUE(v.is_double());
  EXPECT_EQ(v.get_double(), 0.0);
}

TEST(ParseJsonTest, RejectsOverflowingNumbers) {
  EXPECT_THAT(ParseJson("[1e400]"),
              StatusIs(StatusCode::kInvalidArgument,
                       "malformed JSON at line 1, column 7: number out of range"));
}

TEST(ParseJsonTest, SyntaxErrorNamesLineAndColumn) {
  EXPECT_THAT(
      ParseJson("{\"a\": 1,\n  \"b\" 2}"),
      StatusIs(StatusCode::kInvalidArgument, "malformed JSON at line 2, column 7: syntax error"));
  EXPECT_THAT(ParseJson("[1, 2"), StatusIs(StatusCode::kInvalidArgument,
                                           "malformed JSON at line 1, column 6: incomplete JSON"));
  EXPECT_THAT(ParseJson("{} x"), StatusIs(StatusCode::kInvalidArgument,
                                          "malformed JSON at line 1, column 4: extra data"));
  EXPECT_THAT(ParseJson("[1,]"), StatusIs(StatusCode::kInvalidArgument,
                                          "malformed JSON at line 1, column 4: syntax error"));
  EXPECT_THAT(ParseJson("[NaN]"), StatusIs(StatusCode::kInvalidArgument,
                                           "malformed JSON at line 1, column 2: syntax error"));
}

TEST(ParseJsonTest, ColumnsCountCodePoints) {
  EXPECT_THAT(
      ParseJson("[\"\xC3\xA9\xC3\xA9\" x]"),  // x is the 7th character
      StatusIs(StatusCode::kInvalidArgument, "malformed JSON at line 1, column 7: syntax error"));
}

TEST(ParseJsonTest, RejectsEmptyInput) {
  EXPECT_THAT(ParseJson(""), StatusIs(StatusCode::kInvalidArgument,
                                      "malformed JSON at line 1, column 1: empty input"));
  EXPECT_THAT(ParseJson(" \n "), StatusIs(StatusCode::kInvalidArgument,
                                          "malformed JSON at line 2, column 2: empty input"));
}

TEST(ParseJsonTest, RejectsInvalidUtf8) {
  EXPECT_THAT(ParseJson("{\n  \"a\": \"ok\",\n  \"b\": \"x\xFFy\"}"),
              StatusIs(StatusCode::kInvalidArgument, "invalid UTF-8 at line 3, column 10"));
  EXPECT_THAT(ParseJson("[\"\xC0\x80\"]"),  // overlong NUL
              StatusIs(StatusCode::kInvalidArgument, "invalid UTF-8 at line 1, column 3"));
}

TEST(ParseJsonTest, RejectsLoneSurrogateEscapes) {
  EXPECT_THAT(
      ParseJson(R"(["\ud800"])"),
      StatusIs(StatusCode::kInvalidArgument, "malformed JSON at line 1, column 9: syntax error"));
}

TEST(ParseJsonTest, DecodesEscapes) {
  json::value v = Parsed(R"(["\u00e9\ud83d\ude00\n\"\\\/"])");
  EXPECT_EQ(v.get_array()[0].get_string(), "\xC3\xA9\xF0\x9F\x98\x80\n\"\\/");
}

TEST(ParseJsonTest, LimitsNesting) {
  EXPECT_THAT(ParseJson(Nested(static_cast<int>(kMaxJsonDepth))), IsOk());
  EXPECT_THAT(ParseJson(Nested(static_cast<int>(kMaxJsonDepth) + 1)),
              StatusIs(StatusCode::kInvalidArgument, "JSON nested deeper than 128 levels"));
}

TEST(ParseJsonTest, UsesTheGivenStorage) {
  json::storage_ptr sp = json::make_shared_resource<json::monotonic_resource>();
  StatusOr<json::value> v = ParseJson(R"({"a":[1,2,3]})", sp);
  ASSERT_THAT(v, IsOk());
  EXPECT_EQ(v->storage().get(), sp.get());
}

TEST(WriteJsonTest, CompactByDefault) {
  EXPECT_EQ(WriteJson(Parsed(R"({ "a" : [1, 2.5, "x"], "b" : {"c" : null} })")),
            R"({"a":[1,2.5,"x"],"b":{"c":null}})");
}

TEST(WriteJsonTest, PythonSeparatorsAndAscii) {
  json::value v = Parsed(R"({"a":[1,2],"t":"caf\u00e9 \ud83d\ude00","e":{}})");
  EXPECT_EQ(WriteJson(v, JsonStyle::Python()),
            R"({"a": [1, 2], "t": "caf\u00e9 \ud83d\ude00", "e": {}})");
}

TEST(WriteJsonTest, PrettyIsPythonIndentTwo) {
  json::value v = Parsed(R"({"a":[1,{"b":[]}],"c":{},"d":"x"})");
  EXPECT_EQ(WriteJson(v, {.indent = 2}),
            "{\n"
            "  \"a\": [\n"
            "    1,\n"
            "    {\n"
            "      \"b\": []\n"
            "    }\n"
            "  ],\n"
            "  \"c\": {},\n"
            "  \"d\": \"x\"\n"
            "}");
  EXPECT_EQ(WriteJson(Parsed("[]"), {.indent = 2}), "[]");
  EXPECT_EQ(WriteJson(Parsed("{}"), {.indent = 4}), "{}");
  EXPECT_EQ(WriteJson(Parsed("[1]"), {.indent = 4}), "[\n    1\n]");
}

TEST(WriteJsonTest, EscapesLikePython) {
  std::string raw;
  AppendJsonString(raw, "q\"b\\s/\b\f\n\r\t\x01\x1f\x7f\xC3\xA9");
  EXPECT_EQ(raw, "\"q\\\"b\\\\s/\\b\\f\\n\\r\\t\\u0001\\u001f\x7f\xC3\xA9\"");
  std::string ascii;
  AppendJsonString(ascii, "\x7f\xC3\xA9\xE4\xB8\xAD\xF0\x9F\x98\x80", /*ensure_ascii=*/true);
  EXPECT_EQ(ascii, R"("\u007f\u00e9\u4e2d\ud83d\ude00")");
}

TEST(WriteJsonTest, InvalidUtf8BecomesReplacementCharacterInAsciiMode) {
  std::string out;
  AppendJsonString(out, "a\xFFz", /*ensure_ascii=*/true);
  EXPECT_EQ(out, R"("a\ufffdz")");
}

TEST(WriteJsonTest, DoublesInPythonReprForm) {
  EXPECT_EQ(Double(2.0), "2.0");
  EXPECT_EQ(Double(0.95), "0.95");
  EXPECT_EQ(Double(1e-05), "1e-05");
  EXPECT_EQ(Double(1.5e-07), "1.5e-07");
  EXPECT_EQ(Double(0.0001), "0.0001");
  EXPECT_EQ(Double(0.00012), "0.00012");
  EXPECT_EQ(Double(100000.0), "100000.0");
  EXPECT_EQ(Double(1e15), "1000000000000000.0");
  EXPECT_EQ(Double(1e16), "1e+16");
  EXPECT_EQ(Double(1.5e300), "1.5e+300");
  EXPECT_EQ(Double(123456789.123), "123456789.123");
  EXPECT_EQ(Double(0.1 + 0.2), "0.30000000000000004");
  EXPECT_EQ(Double(0.0), "0.0");
  EXPECT_EQ(Double(-0.0), "-0.0");
  EXPECT_EQ(Double(-2.5), "-2.5");
  EXPECT_EQ(Double(5e-324), "5e-324");
  EXPECT_EQ(Double(1.7976931348623157e308), "1.7976931348623157e+308");
  EXPECT_EQ(Double(std::numeric_limits<double>::quiet_NaN()), "null");
  EXPECT_EQ(Double(std::numeric_limits<double>::infinity()), "null");
}

TEST(WriteJsonTest, IntegersKeepTheirKind) {
  EXPECT_EQ(WriteJson(Parsed("[0, -0, 1.0, -9223372036854775808, 18446744073709551615]")),
            "[0,0,1.0,-9223372036854775808,18446744073709551615]");
}

TEST(WriteJsonTest, AppendsToExistingText) {
  std::string out = "x=";
  AppendJson(out, Parsed("[true,false]"));
  EXPECT_EQ(out, "x=[true,false]");
}

TEST(WriteJsonTest, ChunkedPiecesJoinToTheWholeText) {
  json::array big;
  for (int i = 0; i < 1000; ++i) big.emplace_back(json::object{{"i", i}, {"s", "x\u00e9"}});
  const json::value v = big;
  for (const JsonStyle& style : {JsonStyle{}, JsonStyle::Python(), JsonStyle{.indent = 2}}) {
    std::string joined;
    int pieces = 0;
    constexpr std::size_t kChunk = 512;
    WriteJsonChunked(
        v, style,
        [&](std::string_view piece) {
          EXPECT_FALSE(piece.empty());
          // A piece ends after the member that crossed the chunk size.
          EXPECT_LT(piece.size(), 2 * kChunk);
          joined.append(piece);
          ++pieces;
        },
        kChunk);
    EXPECT_EQ(joined, WriteJson(v, style));
    EXPECT_GT(pieces, 10);
  }
  int calls = 0;
  WriteJsonChunked(json::value(7), {}, [&](std::string_view piece) {
    EXPECT_EQ(piece, "7");
    ++calls;
  });
  EXPECT_EQ(calls, 1);
}

// The escaping of one string, character by character: what the word-at-a-
// time writer must produce. Knows the pieces StringEscapesMatchTheReference
// builds its strings from (valid UTF-8 plus the invalid byte 0xFF).
std::string ReferenceEscape(std::string_view s, bool ascii) {
  std::string out = "\"";
  const auto unicode = [&out](unsigned unit) {
    char buf[8];
    std::snprintf(buf, sizeof(buf), "\\u%04x", unit);
    out += buf;
  };
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\b' || c == '\f' || c == '\n' || c == '\r' || c == '\t') {
      out += '\\';
      out += c == '\b' ? 'b' : c == '\f' ? 'f' : c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
    } else if (c < 0x20) {
      unicode(c);
    } else if (c < 0x7F || (!ascii && c >= 0x7F)) {
      out += static_cast<char>(c);
    } else if (c == 0x7F) {
      unicode(c);
    } else {
      std::size_t len = 1;
      unsigned cp = 0xFFFD;
      if (c >= 0xF0 && c < 0xF5) {
        len = 4;
        cp = ((c & 0x07u) << 18) | ((s[i + 1] & 0x3Fu) << 12) | ((s[i + 2] & 0x3Fu) << 6) |
             (s[i + 3] & 0x3Fu);
      } else if (c >= 0xE0 && c < 0xF0) {
        len = 3;
        cp = ((c & 0x0Fu) << 12) | ((s[i + 1] & 0x3Fu) << 6) | (s[i + 2] & 0x3Fu);
      } else if (c >= 0xC2 && c < 0xE0) {
        len = 2;
        cp = ((c & 0x1Fu) << 6) | (s[i + 1] & 0x3Fu);
      }
      if (cp >= 0x10000) {
        unicode(0xD800 + ((cp - 0x10000) >> 10));
        unicode(0xDC00 + ((cp - 0x10000) & 0x3FF));
      } else {
        unicode(cp);
      }
      i += len;
      continue;
    }
    ++i;
  }
  return out + "\"";
}

TEST(WriteJsonTest, StringEscapesMatchTheReference) {
  // Strings of every length up to 40 from pieces that need escapes, in all
  // positions relative to the writer's 8- and 4-byte words.
  const std::string_view pieces[] = {"a",    "Z",    " ",    "\"",           "\\",
                                     "\n",   "\x01", "\x1f", "\x7f",         "\xC3\xA9",
                                     "\xFF", "/",    "~",    "\xE4\xB8\xAD", "\xF0\x9F\x98\x80"};
  std::uint32_t state = 12345;
  const auto next = [&state] {
    state = state * 1103515245u + 12345u;
    return state >> 16;
  };
  for (int round = 0; round < 400; ++round) {
    const int length = round % 41;
    // Mostly plain text, so the fast paths run too.
    const bool plain = round % 3 != 0;
    std::string text;
    while (static_cast<int>(text.size()) < length) {
      const std::size_t pick = next() % std::size(pieces);
      text += plain && next() % 8 != 0 ? pieces[pick % 2] : pieces[pick];
    }
    for (bool ascii : {false, true}) {
      std::string out = "x=";
      AppendJsonString(out, text, ascii);
      EXPECT_EQ(out, "x=" + ReferenceEscape(text, ascii)) << "length " << text.size();
      EXPECT_EQ(WriteJson(json::value(text), {.ensure_ascii = ascii}),
                ReferenceEscape(text, ascii));
    }
  }
}

TEST(WriteJsonTest, ObjectKeysAreEscapedLikeStrings) {
  // Keys of every length up to 40, with and without escapes, first and later in an object
  // (the compact writer puts the separator and the key in one piece of room).
  std::uint32_t state = 777;
  const auto next = [&state] {
    state = state * 1103515245u + 12345u;
    return state >> 16;
  };
  const std::string_view pieces[] = {"k", "\"", "\\", "\n", "\x01", "\xC3\xA9", "\xF0\x9F\x98\x80"};
  for (int round = 0; round < 200; ++round) {
    std::string key;
    while (static_cast<int>(key.size()) < round % 41) {
      key += next() % 4 != 0 ? pieces[0] : pieces[next() % std::size(pieces)];
    }
    json::object o;
    o["first"] = 1;
    o[key] = 2;
    for (bool ascii : {false, true}) {
      const std::string k = ReferenceEscape(key, ascii);
      EXPECT_EQ(WriteJson(json::value(o), {.ensure_ascii = ascii}), R"({"first":1,)" + k + ":2}")
          << "key length " << key.size();
      EXPECT_EQ(WriteJson(json::value(o), {.python_separators = true, .ensure_ascii = ascii}),
                R"({"first": 1, )" + k + ": 2}");
      EXPECT_EQ(WriteJson(json::value(json::object{{key, 3}}), {.ensure_ascii = ascii}),
                "{" + k + ":3}");
    }
  }
}

TEST(WriteJsonTest, LongTextsGrowTheOutput) {
  // Far more than the first room the writer makes, with escapes late on.
  std::string text(100000, 'x');
  text[99990] = '\n';
  text[50000] = '"';
  json::array a;
  a.emplace_back(text);
  a.emplace_back(text);
  const std::string one = ReferenceEscape(text, false);
  EXPECT_EQ(WriteJson(json::value(a)), "[" + one + "," + one + "]");
}

TEST(TreeArenaTest, TheNextTreeReusesTheMemoryOfAFreedOne) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "under AddressSanitizer freed blocks are not kept";
#endif
  // A first block of 5 MiB (8 MiB, rounded up; no other tree in this binary has one that
  // size): big enough that malloc maps it on its own and would unmap it when freed. The next
  // tree gets the same memory back, still holding what the first one wrote, so it was never
  // given back to the system (fresh pages would be zeros).
  constexpr std::size_t kFirstBlockBytes = std::size_t{5} << 20;
  constexpr std::size_t kMarkBytes = 4096;
  constexpr unsigned char kMark = 0xA5;
  unsigned char* first = nullptr;
  {
    json::storage_ptr arena = MakeTreeArena(kFirstBlockBytes);
    first = static_cast<unsigned char*>(arena->allocate(kMarkBytes));
    std::memset(first, kMark, kMarkBytes);
  }
  json::storage_ptr next = MakeTreeArena(kFirstBlockBytes);
  auto* again = static_cast<unsigned char*>(next->allocate(kMarkBytes));
  EXPECT_EQ(again, first);
  EXPECT_EQ(again[0], kMark);
  EXPECT_EQ(again[kMarkBytes - 1], kMark);
}

TEST(TreeArenaTest, CopiesOfPartsOfATreeKeepItsArenaAlive) {
  std::optional<json::value> copy;
  {
    StatusOr<json::value> tree =
        ParseJson(R"({"a":["a text longer than any small-string buffer"]})", MakeTreeArena());
    ASSERT_THAT(tree, IsOk());
    copy.emplace(tree->at("a"));  // a copy keeps the storage of what it copies
    EXPECT_EQ(copy->storage().get(), tree->storage().get());
  }
  EXPECT_EQ(copy->at(0), "a text longer than any small-string buffer");
}

TEST(Utf8Test, Validates) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("plain ascii"));
  EXPECT_TRUE(IsValidUtf8("\xC3\xA9\xE4\xB8\xAD\xF0\x9F\x98\x80\xF4\x8F\xBF\xBF"));
  EXPECT_FALSE(IsValidUtf8("\xC0\x80"));          // overlong
  EXPECT_FALSE(IsValidUtf8("\xE0\x80\x80"));      // overlong
  EXPECT_FALSE(IsValidUtf8("\xED\xA0\x80"));      // surrogate
  EXPECT_FALSE(IsValidUtf8("\xF4\x90\x80\x80"));  // above U+10FFFF
  EXPECT_FALSE(IsValidUtf8("\xE4\xB8"));          // truncated
  EXPECT_FALSE(IsValidUtf8("\x80"));              // lone continuation
  EXPECT_FALSE(IsValidUtf8("\xFF"));
}

}  // namespace
}  // namespace clams::mmif
