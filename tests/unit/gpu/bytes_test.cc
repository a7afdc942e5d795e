#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "clams/gpu/probe.h"
#include "gpu/format.h"
#include "testing/status_matchers.h"

namespace clams::gpu {
namespace {

using ::clams::testing::IsOkAndHolds;
using ::clams::testing::StatusIs;
using ::testing::HasSubstr;

constexpr std::uint64_t kMiB = 1ull << 20;
constexpr std::uint64_t kGiB = 1ull << 30;

TEST(ParseBytesTest, AcceptsBinaryAndDecimalUnits) {
  EXPECT_THAT(ParseBytes("24GiB"), IsOkAndHolds(24 * kGiB));
  EXPECT_THAT(ParseBytes("16G"), IsOkAndHolds(16 * kGiB));
  EXPECT_THAT(ParseBytes("8000MiB"), IsOkAndHolds(8000 * kMiB));
  EXPECT_THAT(ParseBytes("8000MB"), IsOkAndHolds(8000000000ull));
  EXPECT_THAT(ParseBytes("1.5GiB"), IsOkAndHolds(3 * kGiB / 2));
  EXPECT_THAT(ParseBytes("123456"), IsOkAndHolds(123456u));
  EXPECT_THAT(ParseBytes("2K"), IsOkAndHolds(2048u));
  EXPECT_THAT(ParseBytes("2KB"), IsOkAndHolds(2000u));
  EXPECT_THAT(ParseBytes("3KiB"), IsOkAndHolds(3072u));
  EXPECT_THAT(ParseBytes("1T"), IsOkAndHolds(1ull << 40));
  EXPECT_THAT(ParseBytes("1TB"), IsOkAndHolds(1000000000000ull));
  EXPECT_THAT(ParseBytes("1TiB"), IsOkAndHolds(1ull << 40));
  EXPECT_THAT(ParseBytes("7B"), IsOkAndHolds(7u));
  EXPECT_THAT(ParseBytes("1M"), IsOkAndHolds(kMiB));
}

TEST(ParseBytesTest, UnitsAreCaseInsensitiveAndMayFollowASpace) {
  EXPECT_THAT(ParseBytes("24 GiB"), IsOkAndHolds(24 * kGiB));
  EXPECT_THAT(ParseBytes("  24gib "), IsOkAndHolds(24 * kGiB));
  EXPECT_THAT(ParseBytes("512mb"), IsOkAndHolds(512000000u));
}

TEST(ParseBytesTest, RoundsFractionsToTheNearestByte) {
  EXPECT_THAT(ParseBytes("0.5K"), IsOkAndHolds(512u));
  EXPECT_THAT(ParseBytes("0.0001K"), IsOkAndHolds(0u));  // 0.1024 B
  EXPECT_THAT(ParseBytes("0.0005K"), IsOkAndHolds(1u));  // 0.512 B
  EXPECT_THAT(ParseBytes(".25G"), IsOkAndHolds(kGiB / 4));
  EXPECT_THAT(ParseBytes("1."), IsOkAndHolds(1u));
  EXPECT_THAT(ParseBytes("3.0"), IsOkAndHolds(3u));
}

TEST(ParseBytesTest, AcceptsTheLargestValue) {
  EXPECT_THAT(ParseBytes("18446744073709551615"), IsOkAndHolds(18446744073709551615ull));
}

TEST(ParseBytesTest, RejectsMalformedText) {
  EXPECT_THAT(ParseBytes(""),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("invalid byte size \"\": empty")));
  EXPECT_THAT(ParseBytes("GiB"),
              StatusIs(StatusCode::kInvalidArgument,
                       "invalid byte size \"GiB\": no number (expected a number with an "
                       "optional unit: B, K, KiB, KB, M, MiB, MB, G, GiB, GB, T, TiB, TB)"));
  EXPECT_THAT(ParseBytes("-1G"), StatusIs(StatusCode::kInvalidArgument, HasSubstr("no number")));
  EXPECT_THAT(ParseBytes("+1G"), StatusIs(StatusCode::kInvalidArgument, HasSubstr("no number")));
  EXPECT_THAT(ParseBytes("12XB"),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("unknown unit \"XB\"")));
  EXPECT_THAT(ParseBytes("1 2"),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("unknown unit \"2\"")));
  EXPECT_THAT(ParseBytes("1e9"),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("unknown unit \"e9\"")));
  EXPECT_THAT(ParseBytes("1.5"),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("a fraction of a byte")));
  EXPECT_THAT(ParseBytes("1.5B"),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("a fraction of a byte")));
  EXPECT_THAT(ParseBytes("18446744073709551616"),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("too large")));
  EXPECT_THAT(ParseBytes("16777216TiB"),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("too large")));
}

TEST(FormatBytesTest, UsesTheLargestBinaryUnitWithOneDecimal) {
  EXPECT_EQ(FormatBytes(0), "0 B");
  EXPECT_EQ(FormatBytes(17), "17 B");
  EXPECT_EQ(FormatBytes(1023), "1023 B");
  EXPECT_EQ(FormatBytes(1024), "1.0 KiB");
  EXPECT_EQ(FormatBytes(1536), "1.5 KiB");
  EXPECT_EQ(FormatBytes(512 * kMiB), "512.0 MiB");
  EXPECT_EQ(FormatBytes(24 * kGiB), "24.0 GiB");
  EXPECT_EQ(FormatBytes(3 * kGiB / 2), "1.5 GiB");
  EXPECT_EQ(FormatBytes(2ull << 40), "2.0 TiB");
}

TEST(FormatCudaHardwareEntryTest, MatchesThePythonSdk) {
  EXPECT_EQ(
      FormatCudaHardwareEntry("NVIDIA H100 80GB HBM3", 81079 * kMiB, 80055 * kMiB, 3584 * kMiB),
      "NVIDIA H100 80GB HBM3, 81079 MiB total, 80055 MiB available, 3584 MiB peak used");
}

TEST(FormatCudaHardwareEntryTest, RoundsHalvesToEvenLikePython) {
  const std::uint64_t half = kMiB / 2;
  EXPECT_EQ(FormatCudaHardwareEntry("G", half, kMiB + half, 2 * kMiB + half),
            "G, 0 MiB total, 2 MiB available, 2 MiB peak used");
  EXPECT_EQ(FormatCudaHardwareEntry("G", half + 1, kMiB + half - 1, 0),
            "G, 1 MiB total, 1 MiB available, 0 MiB peak used");
}

TEST(TorchFormatSizeTest, MatchesPytorchFormatSize) {
  using gpu_internal::TorchFormatSize;
  EXPECT_EQ(TorchFormatSize(0), "0 bytes");
  EXPECT_EQ(TorchFormatSize(1024), "1024 bytes");
  EXPECT_EQ(TorchFormatSize(1536), "1.50 KiB");
  EXPECT_EQ(TorchFormatSize(kMiB), "1024.00 KiB");
  EXPECT_EQ(TorchFormatSize(256 * kMiB), "256.00 MiB");
  EXPECT_EQ(TorchFormatSize(kGiB), "1024.00 MiB");
  EXPECT_EQ(TorchFormatSize(10 * kGiB), "10.00 GiB");
}

TEST(CudaOomMessageTest, MatchesThePytorchMessage) {
  EXPECT_EQ(gpu_internal::CudaOomMessage(10 * kGiB, 0, 24 * kGiB, 20 * kGiB, 4 * kGiB),
            "CUDA out of memory. Tried to allocate 10.00 GiB (GPU 0; 24.00 GiB total capacity; "
            "20.00 GiB already allocated; 4.00 GiB free)");
}

}  // namespace
}  // namespace clams::gpu
