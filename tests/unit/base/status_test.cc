#include "clams/base/status.h"

#include <gtest/gtest.h>

#include <memory>

#include "testing/status_matchers.h"

namespace clams {
namespace {

using ::clams::testing::IsOk;
using ::clams::testing::IsOkAndHolds;
using ::clams::testing::StatusIs;
using ::testing::HasSubstr;

StatusOr<int> Half(int x) {
  if (x % 2 != 0) return InvalidArgumentError("odd: " + std::to_string(x));
  return x / 2;
}

StatusOr<int> Quarter(int x) {
  CLAMS_ASSIGN_OR_RETURN(int h, Half(x));
  CLAMS_ASSIGN_OR_RETURN(auto q, Half(h));
  return q;
}

Status CheckEven(int x) {
  CLAMS_RETURN_IF_ERROR(Half(x).status());
  return Status::Ok();
}

TEST(StatusTest, DefaultIsOk) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.ToString(), "OK");
  EXPECT_THAT(s, IsOk());
}

TEST(StatusTest, ErrorCarriesCodeAndMessage) {
  Status s = NotFoundError("no view v9");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.ToString(), "NOT_FOUND: no view v9");
  EXPECT_THAT(s.WithContext("lookup"), StatusIs(StatusCode::kNotFound, "lookup: no view v9"));
}

TEST(StatusTest, OkIgnoresMessage) {
  Status s(StatusCode::kOk, "ignored");
  EXPECT_EQ(s.message(), "");
}

TEST(StatusOrTest, PropagatesErrorsAndValues) {
  EXPECT_THAT(Quarter(8), IsOkAndHolds(2));
  EXPECT_THAT(Quarter(6), StatusIs(StatusCode::kInvalidArgument, HasSubstr("odd: 3")));
  EXPECT_THAT(CheckEven(3), StatusIs(StatusCode::kInvalidArgument, "odd: 3"));
  EXPECT_THAT(CheckEven(4), IsOk());
}

TEST(StatusOrTest, OkStatusBecomesInternalError) {
  StatusOr<int> s = Status::Ok();
  EXPECT_THAT(s, StatusIs(StatusCode::kInternal, HasSubstr("ok Status")));
}

TEST(StatusOrTest, HoldsMoveOnlyValues) {
  StatusOr<std::unique_ptr<int>> s = std::make_unique<int>(7);
  ASSERT_TRUE(s.ok());
  std::unique_ptr<int> p = std::move(s).value();
  EXPECT_EQ(*p, 7);
  EXPECT_EQ(StatusOr<int>(UnavailableError("x")).value_or(5), 5);
}

TEST(StatusOrDeathTest, ValueOfErrorAborts) {
  StatusOr<int> s = InternalError("boom");
  EXPECT_DEATH((void)s.value(), "INTERNAL: boom");
}

}  // namespace
}  // namespace clams
