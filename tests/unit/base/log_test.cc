#include "clams/base/log.h"

#include <gtest/gtest.h>

#include <stdexcept>
#include <vector>

#include "testing/status_matchers.h"

namespace clams::log {
namespace {

using ::clams::testing::IsOkAndHolds;
using ::clams::testing::StatusIs;
using ::testing::HasSubstr;

struct Captured {
  Level level;
  std::string category;
  std::string message;
};

class LogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    saved_ = GetLevel();
    SetSink([this](Level l, std::string_view c, std::string_view m) {
      lines_.push_back({l, std::string(c), std::string(m)});
    });
  }
  void TearDown() override {
    SetSink(nullptr);
    SetLevel(saved_);
    SetAccessLogEnabled(true);
  }
  Level saved_;
  std::vector<Captured> lines_;
};

int g_formatted = 0;
struct CountsFormatting {};

}  // namespace
}  // namespace clams::log

template <>
struct fmt::formatter<clams::log::CountsFormatting> : fmt::formatter<std::string_view> {
  auto format(clams::log::CountsFormatting, fmt::format_context& ctx) const {
    ++clams::log::g_formatted;
    return fmt::formatter<std::string_view>::format("counted", ctx);
  }
};

namespace clams::log {
namespace {

TEST_F(LogTest, FiltersBelowLevelWithoutFormatting) {
  SetLevel(Level::kWarning);
  g_formatted = 0;
  CLAMS_LOG(kInfo, "dropped {}", CountsFormatting{});
  EXPECT_EQ(g_formatted, 0);
  EXPECT_TRUE(lines_.empty());
  CLAMS_LOG(kError, "kept {}", CountsFormatting{});
  EXPECT_EQ(g_formatted, 1);
  ASSERT_EQ(lines_.size(), 1u);
  EXPECT_EQ(lines_[0].level, Level::kError);
  EXPECT_EQ(lines_[0].category, "clams");
  EXPECT_EQ(lines_[0].message, "kept counted");
}

TEST_F(LogTest, AccessLogIsNotFilteredByLevelButCanBeDisabled) {
  SetLevel(Level::kError);
  Access("GET / 200");
  ASSERT_EQ(lines_.size(), 1u);
  EXPECT_EQ(lines_[0].category, "access");
  SetAccessLogEnabled(false);
  Access("GET / 200");
  EXPECT_EQ(lines_.size(), 1u);
}

TEST_F(LogTest, ThrowingSinkDoesNotEscape) {
  SetSink([](Level, std::string_view, std::string_view) { throw std::runtime_error("sink down"); });
  SetLevel(Level::kInfo);
  EXPECT_NO_THROW(CLAMS_LOG(kInfo, "hello"));
}

TEST(LogLevelTest, ParsesNamesCaseInsensitively) {
  EXPECT_THAT(ParseLevel("DEBUG"), IsOkAndHolds(Level::kDebug));
  EXPECT_THAT(ParseLevel("warn"), IsOkAndHolds(Level::kWarning));
  EXPECT_THAT(ParseLevel("Warning"), IsOkAndHolds(Level::kWarning));
  EXPECT_THAT(ParseLevel("loud"), StatusIs(StatusCode::kInvalidArgument, HasSubstr("\"loud\"")));
}

TEST(LogQuoteTest, EscapesControlCharactersAndQuotes) {
  EXPECT_EQ(Quote("a\"b\\c\nd\x01"), "\"a\\\"b\\\\c\\nd\\u0001\"");
  EXPECT_EQ(Quote("caf\xc3\xa9"), "\"caf\xc3\xa9\"");
}

}  // namespace
}  // namespace clams::log
