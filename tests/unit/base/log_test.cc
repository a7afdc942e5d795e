#include "clams/base/log.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <latch>
#include <map>
#include <mutex>
#include <optional>
#include <regex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "clams/mmif/json.h"
#include "testing/process.h"
#include "testing/status_matchers.h"
#include "testing/testing.h"

namespace clams::log {
namespace {

using ::clams::testing::IsOkAndHolds;
using ::clams::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::Not;

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


// Formatted lines, captured through the line sink (no raw sink set).
class LogLineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    saved_level_ = GetLevel();
    saved_format_ = GetFormat();
    SetLevel(Level::kInfo);
    SetLineSink([this](Level, std::string_view line) {
      std::lock_guard<std::mutex> lock(mu_);
      lines_.emplace_back(line);
    });
  }
  void TearDown() override {
    SetLineSink(nullptr);
    SetLevel(saved_level_);
    SetFormat(saved_format_);
    SetAccessLogEnabled(true);
  }
  // The only line logged so far, parsed as JSON (fails the test otherwise).
  boost::json::object OnlyJsonLine() {
    EXPECT_EQ(lines_.size(), 1u);
    if (lines_.empty()) return {};
    return ParseObject(lines_.back());
  }
  static boost::json::object ParseObject(const std::string& line) {
    EXPECT_EQ(line.find('\n'), std::string::npos) << line;
    auto v = mmif::ParseJson(line);
    EXPECT_TRUE(v.ok() && v->is_object()) << line;
    return v.ok() && v->is_object() ? v->get_object() : boost::json::object{};
  }
  Level saved_level_;
  Format saved_format_;
  std::mutex mu_;
  std::vector<std::string> lines_;
};

std::string S(const boost::json::value& v) { return v.is_string() ? std::string(v.get_string()) : "<not a string>"; }

constexpr char kUtcTime[] = "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}\\+00:00";

TEST(LogFormatTest, ParsesNamesCaseInsensitively) {
  EXPECT_THAT(ParseFormat("json"), IsOkAndHolds(Format::kJson));
  EXPECT_THAT(ParseFormat("TEXT"), IsOkAndHolds(Format::kText));
  EXPECT_THAT(ParseFormat("xml"),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("unknown log format \"xml\" (expected text or json)")));
}

TEST_F(LogLineTest, TextLinesCarryUtcTimeWithOffsetLevelPidAndMessage) {
  SetFormat(Format::kText);
  CLAMS_LOG(kWarning, "disk {} full", "/tmp");
  ASSERT_EQ(lines_.size(), 1u);
  EXPECT_THAT(lines_[0], MatchesRegex(std::string(kUtcTime) + " warning \\[clams\\] pid=" +
                                      std::to_string(::getpid()) + " disk /tmp full"));
}

TEST_F(LogLineTest, JsonLineHasTimeLevelPidLoggerAndMsgAndNoRequestIdOutsideAScope) {
  SetFormat(Format::kJson);
  CLAMS_LOG(kInfo, "serving on {}", 5000);
  boost::json::object o = OnlyJsonLine();
  ASSERT_TRUE(o.contains("time"));
  EXPECT_TRUE(std::regex_match(std::string(o.at("time").as_string()), std::regex(kUtcTime))) << o.at("time");
  EXPECT_EQ(S(o.at("level")), "info");
  EXPECT_EQ(o.at("pid").as_int64(), ::getpid());
  EXPECT_EQ(S(o.at("logger")), "clams");
  EXPECT_EQ(S(o.at("msg")), "serving on 5000");
  EXPECT_FALSE(o.contains("request_id"));
  EXPECT_EQ(o.size(), 5u);
}

TEST_F(LogLineTest, JsonTimeIsTheRecordTimeInUtc) {
  Record r;
  r.time = std::chrono::system_clock::time_point(std::chrono::milliseconds(1796403600123));  // 2026-12-04T17:00:00.123Z
  r.level = Level::kError;
  r.message = "m";
  r.pid = 7;
  EXPECT_EQ(FormatLine(Format::kJson, r),
            "{\"time\":\"2026-12-04T17:00:00.123+00:00\",\"level\":\"error\",\"pid\":7,\"logger\":\"clams\","
            "\"msg\":\"m\"}");
  EXPECT_EQ(FormatLine(Format::kText, r), "2026-12-04T17:00:00.123+00:00 error   [clams] pid=7 m");
}

TEST_F(LogLineTest, FieldsAreTypedMembersInJsonAndKeyValuePairsInText) {
  const Fields fields = {{"worker", 3}, {"bytes", std::uint64_t{25769803776}}, {"ratio", 0.25}, {"warm", true},
                         {"class", "model=large, lang=en"}, {"msg", "collides"}, {"bad", std::nan("")}};
  SetFormat(Format::kJson);
  CLAMS_LOG_WITH(kInfo, (fields), "admitted");
  boost::json::object o = OnlyJsonLine();
  EXPECT_EQ(S(o.at("msg")), "admitted");
  EXPECT_EQ(o.at("worker").as_int64(), 3);
  EXPECT_EQ(o.at("bytes").as_int64(), 25769803776);
  EXPECT_EQ(o.at("ratio").as_double(), 0.25);
  EXPECT_EQ(o.at("warm").as_bool(), true);
  EXPECT_EQ(S(o.at("class")), "model=large, lang=en");
  EXPECT_EQ(S(o.at("msg_")), "collides");
  EXPECT_TRUE(o.at("bad").is_null());
  lines_.clear();
  SetFormat(Format::kText);
  CLAMS_LOG_WITH(kInfo, (fields), "admitted");
  ASSERT_EQ(lines_.size(), 1u);
  EXPECT_THAT(lines_[0], HasSubstr(" admitted worker=3 bytes=25769803776 ratio=0.25 warm=true "
                                   "class=\"model=large, lang=en\" msg=collides bad=nan"));
}

TEST_F(LogLineTest, FieldsAreNotEvaluatedBelowTheLevel) {
  SetFormat(Format::kJson);
  int evaluated = 0;
  auto fields = [&] {
    ++evaluated;
    return Fields{{"n", 1}};
  };
  CLAMS_LOG_WITH(kDebug, (fields()), "dropped");
  EXPECT_EQ(evaluated, 0);
  EXPECT_TRUE(lines_.empty());
}

// Text a client controls (ids, paths, parameters) must not break the line:
// quotes, backslashes, newlines, control characters, a forged second object,
// and bytes that are not UTF-8 all stay inside one JSON string.
TEST_F(LogLineTest, HostileTextStaysInsideOneJsonObject) {
  SetFormat(Format::kJson);
  const std::string hostile =
      "a\"b\\c\nd\re\tf\x01g\x7f"
      "\"}\n{\"level\":\"critical\",\"msg\":\"forged\"}"
      " caf\xc3\xa9 \xf0\x9f\x98\x80"               // valid: U+00E9, U+1F600
      " \xff \xc0\xaf \xed\xa0\x80 \xf4\x90\x80\x80"  // invalid byte, overlong, surrogate, > U+10FFFF
      " \xe2\x82";                                  // truncated sequence at the end
  ScopedRequestId id("req\"\n" + std::string("\xfe"));
  CLAMS_LOG_WITH(kInfo, (Fields{{"path\n", hostile}}), "{}", hostile);
  ASSERT_EQ(lines_.size(), 1u);
  EXPECT_EQ(lines_[0].find('\n'), std::string::npos);
  EXPECT_TRUE(mmif::IsValidUtf8(lines_[0]));
  boost::json::object o = OnlyJsonLine();
  const std::string expected =
      "a\"b\\c\nd\re\tf\x01g\x7f"
      "\"}\n{\"level\":\"critical\",\"msg\":\"forged\"}"
      " caf\xc3\xa9 \xf0\x9f\x98\x80"
      " \xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd "
      "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
      " \xef\xbf\xbd\xef\xbf\xbd";
  EXPECT_EQ(S(o.at("msg")), expected);
  EXPECT_EQ(S(o.at("path\n")), expected);
  EXPECT_EQ(S(o.at("request_id")), "req\"\n\xef\xbf\xbd");
  EXPECT_EQ(S(o.at("level")), "info");
}

// The same lines read by an independent parser: Python's json module on the
// bytes decoded as strict UTF-8, one object per line.
TEST_F(LogLineTest, JsonLinesParseWithPython) {
  SetFormat(Format::kJson);
  {
    ScopedRequestId id("r-1");
    CLAMS_LOG(kInfo, "plain");
    CLAMS_LOG(kWarning, "quote \" backslash \\ newline \n tab \t nul-ish \x01 bad \xff\xfe end");
    CLAMS_LOG_WITH(kError, (Fields{{"n", -12}, {"x", 1e300}, {"s", "\x1b[31mred"}}), "fields");
  }
  Access("127.0.0.1 \"GET /\\\" 200", {{"status", 200}, {"target", "/?a=\"\n"}});
  ASSERT_EQ(lines_.size(), 4u);
  clams::testing::TempDir dir;
  const auto path = dir.path() / "log.jsonl";
  std::string all;
  for (const auto& l : lines_) all += l + "\n";
  clams::testing::WriteFileOrDie(path, all);
  const std::string script =
      "import json, sys\n"
      "data = open(sys.argv[1], 'rb').read().decode('utf-8', 'strict')\n"
      "rows = [json.loads(l) for l in data.split('\\n') if l]\n"
      "print(len(rows), ','.join(r['level'] for r in rows), ','.join(r.get('request_id', '-') for r in rows),"
      " rows[2]['n'], rows[3]['logger'], rows[3]['status'], json.dumps(rows[3]['target']))\n";
  auto r = clams::testing::RunProgram({"/usr/bin/python3", "-c", script, path.string()});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "4 info,warning,error,info r-1,r-1,r-1,- -12 access 200 \"/?a=\\\"\\n\"\n");
}

TEST_F(LogLineTest, RequestIdScopesNestAndEnd) {
  SetFormat(Format::kJson);
  {
    ScopedRequestId outer("outer");
    CLAMS_LOG(kInfo, "1");
    {
      ScopedRequestId inner("inner");
      EXPECT_EQ(CurrentRequestId(), "inner");
      CLAMS_LOG(kInfo, "2");
    }
    CLAMS_LOG(kInfo, "3");
  }
  CLAMS_LOG(kInfo, "4");
  ASSERT_EQ(lines_.size(), 4u);
  EXPECT_EQ(S(ParseObject(lines_[0]).at("request_id")), "outer");
  EXPECT_EQ(S(ParseObject(lines_[1]).at("request_id")), "inner");
  EXPECT_EQ(S(ParseObject(lines_[2]).at("request_id")), "outer");
  EXPECT_FALSE(ParseObject(lines_[3]).contains("request_id"));
  EXPECT_EQ(CurrentRequestId(), "");
}

TEST_F(LogLineTest, TextLinesShowTheRequestId) {
  SetFormat(Format::kText);
  ScopedRequestId id("4bf92f3577b34da6");
  CLAMS_LOG(kInfo, "answered");
  ASSERT_EQ(lines_.size(), 1u);
  EXPECT_THAT(lines_[0], HasSubstr(" pid=" + std::to_string(::getpid()) + " request_id=4bf92f3577b34da6 answered"));
}

// Each thread carries its own id while the others log at the same time; a
// thread that never opened a scope logs none.
TEST_F(LogLineTest, RequestIdScopeBelongsToItsThread) {
  SetFormat(Format::kJson);
  constexpr int kThreads = 4;
  constexpr int kLinesEach = 200;
  std::latch start(kThreads + 1);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::optional<ScopedRequestId> scope;
      if (t != 0) scope.emplace("id-" + std::to_string(t));
      start.arrive_and_wait();
      for (int i = 0; i < kLinesEach; ++i) CLAMS_LOG(kInfo, "thread {}", t);
    });
  }
  ScopedRequestId main_scope("main");
  start.arrive_and_wait();
  for (auto& th : threads) th.join();
  CLAMS_LOG(kInfo, "thread main");
  ASSERT_EQ(lines_.size(), static_cast<std::size_t>(kThreads * kLinesEach + 1));
  std::map<std::string, int> per_thread;
  for (const auto& line : lines_) {
    boost::json::object o = ParseObject(line);
    const std::string msg(o.at("msg").as_string());
    const std::string who = msg.substr(7);
    ++per_thread[who];
    if (who == "0") {
      EXPECT_FALSE(o.contains("request_id")) << line;
    } else if (who == "main") {
      EXPECT_EQ(S(o.at("request_id")), "main") << line;
    } else {
      EXPECT_EQ(S(o.at("request_id")), "id-" + who) << line;
    }
  }
  EXPECT_EQ(per_thread["1"], kLinesEach);
  EXPECT_EQ(per_thread["main"], 1);
}

TEST_F(LogLineTest, AccessLinesUseTheSameFormatterAndDebugLinesFollowTheLevel) {
  SetFormat(Format::kJson);
  SetLevel(Level::kInfo);
  Access("10.0.0.1 \"GET /health\" 200 15 0.1ms", {{"path", "/health"}}, Level::kDebug);
  EXPECT_TRUE(lines_.empty());
  EXPECT_FALSE(AccessLogEnabled(Level::kDebug));
  SetLevel(Level::kDebug);
  EXPECT_TRUE(AccessLogEnabled(Level::kDebug));
  Access("10.0.0.1 \"GET /health\" 200 15 0.1ms", {{"path", "/health"}}, Level::kDebug);
  boost::json::object o = OnlyJsonLine();
  EXPECT_EQ(S(o.at("logger")), "access");
  EXPECT_EQ(S(o.at("level")), "debug");
  EXPECT_EQ(S(o.at("path")), "/health");
  EXPECT_EQ(S(o.at("msg")), "10.0.0.1 \"GET /health\" 200 15 0.1ms");
  // Info access lines are kept even when the rest of the log is quiet.
  lines_.clear();
  SetLevel(Level::kError);
  Access("10.0.0.1 \"POST /\" 200 99 5.0ms", {{"status", 200}});
  ASSERT_EQ(lines_.size(), 1u);
  SetAccessLogEnabled(false);
  Access("10.0.0.1 \"POST /\" 200 99 5.0ms", {{"status", 200}});
  EXPECT_EQ(lines_.size(), 1u);
}

}  // namespace
}  // namespace clams::log
