// GoogleTest matchers for clams::Status and clams::StatusOr (after Abseil's
// status_matchers.h). There is deliberately no "is not ok" matcher: a test
// names the error it expects.
//
//   EXPECT_THAT(DoIt(), clams::testing::IsOk());
//   EXPECT_THAT(Parse("x"), StatusIs(StatusCode::kInvalidArgument, HasSubstr("line 1")));
//   EXPECT_THAT(Compute(), IsOkAndHolds(42));
#ifndef CLAMS_TESTING_STATUS_MATCHERS_H_
#define CLAMS_TESTING_STATUS_MATCHERS_H_

#include <gmock/gmock.h>

#include <ostream>

#include "clams/base/status.h"

namespace clams {
inline void PrintTo(const Status& s, std::ostream* os) { *os << s.ToString(); }
inline void PrintTo(StatusCode c, std::ostream* os) { *os << StatusCodeName(c); }
template <typename T>
void PrintTo(const StatusOr<T>& s, std::ostream* os) {
  if (s.ok()) {
    *os << "OK: " << ::testing::PrintToString(*s);
  } else {
    *os << s.status().ToString();
  }
}
}  // namespace clams

namespace clams::testing {

inline const Status& GetStatus(const Status& s) { return s; }
template <typename T>
Status GetStatus(const StatusOr<T>& s) {
  return s.status();
}

MATCHER(IsOk, "is OK") {
  Status s = GetStatus(arg);
  if (!s.ok()) *result_listener << "status is " << s.ToString();
  return s.ok();
}

MATCHER_P2(StatusIs, code, message_matcher,
           "has code " + std::string(StatusCodeName(code)) + " and message " +
               ::testing::DescribeMatcher<std::string>(message_matcher)) {
  Status s = GetStatus(arg);
  *result_listener << "status is " << s.ToString();
  return s.code() == code &&
         ::testing::Matches(::testing::Matcher<std::string>(message_matcher))(s.message());
}

MATCHER_P(IsOkAndHolds, value_matcher, "is OK and holds a matching value") {
  if (!arg.ok()) {
    *result_listener << "status is " << arg.status().ToString();
    return false;
  }
  return ::testing::ExplainMatchResult(value_matcher, *arg, result_listener);
}

}  // namespace clams::testing

#endif  // CLAMS_TESTING_STATUS_MATCHERS_H_
