#include "clams/vram/estimate.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <optional>

#include "clams/vram/profile_store.h"

namespace clams::vram {
namespace {

constexpr std::uint64_t kMiB = std::uint64_t{1} << 20;
constexpr std::uint64_t kGiB = std::uint64_t{1} << 30;
constexpr std::uint64_t k24GiB = 24 * kGiB;

Profile Measured(std::uint64_t peak, std::uint64_t samples = 3) {
  Profile p;
  p.peak_bytes = peak;
  p.samples = samples;
  return p;
}

TEST(EstimateSourceNameTest, Names) {
  EXPECT_EQ(EstimateSourceName(EstimateSource::kDeclared), "declared");
  EXPECT_EQ(EstimateSourceName(EstimateSource::kProfile), "profile");
  EXPECT_EQ(EstimateSourceName(EstimateSource::kMetadata), "metadata");
  EXPECT_EQ(EstimateSourceName(EstimateSource::kConservative), "conservative");
}

TEST(ResolveEstimateTest, DeclaredWithoutProfile) {
  Estimate e = ResolveEstimate(5 * kGiB, nullptr, 6000, k24GiB);
  EXPECT_EQ(e.source, EstimateSource::kDeclared);
  EXPECT_EQ(e.full_bytes, 5 * kGiB);
  EXPECT_EQ(e.warm_bytes, 5 * kGiB);
}

TEST(ResolveEstimateTest, DeclaredIsRaisedToAHigherProfilePeakWithoutMargin) {
  Profile p = Measured(7 * kGiB);
  Estimate e = ResolveEstimate(5 * kGiB, &p, 6000, k24GiB);
  EXPECT_EQ(e.source, EstimateSource::kDeclared);
  EXPECT_EQ(e.full_bytes, 7 * kGiB);
  EXPECT_EQ(e.warm_bytes, 7 * kGiB);
}

TEST(ResolveEstimateTest, DeclaredIsKeptWhenTheProfilePeakIsLower) {
  Profile p = Measured(3 * kGiB);
  Estimate e = ResolveEstimate(5 * kGiB, &p, 0, k24GiB);
  EXPECT_EQ(e.source, EstimateSource::kDeclared);
  EXPECT_EQ(e.full_bytes, 5 * kGiB);
}

TEST(ResolveEstimateTest, DeclaredZeroIsADeclaration) {
  Estimate e = ResolveEstimate(std::uint64_t{0}, nullptr, 6000, k24GiB);
  EXPECT_EQ(e.source, EstimateSource::kDeclared);
  EXPECT_EQ(e.full_bytes, 0u);
}

TEST(ResolveEstimateTest, DeclaredWithWarmMeasurement) {
  Profile p = Measured(3 * kGiB);
  p.warm_peak_bytes = 1000;
  p.warm_samples = 2;
  Estimate e = ResolveEstimate(5 * kGiB, &p, 0, k24GiB);
  EXPECT_EQ(e.full_bytes, 5 * kGiB);
  EXPECT_EQ(e.warm_bytes, 1200u);
}

TEST(ResolveEstimateTest, ProfileTimesOnePlusMarginRoundedUp) {
  Profile p = Measured(1000);
  EXPECT_EQ(ResolveEstimate(std::nullopt, &p, 6000, k24GiB).full_bytes, 1200u);
  p.peak_bytes = 1001;  // 1201.2 -> 1202
  Estimate e = ResolveEstimate(std::nullopt, &p, 6000, k24GiB);
  EXPECT_EQ(e.source, EstimateSource::kProfile);
  EXPECT_EQ(e.full_bytes, 1202u);
  EXPECT_EQ(e.warm_bytes, 1202u);  // not measured warm: equal to full
}

TEST(ResolveEstimateTest, ProfileWithCustomAndNegativeMargin) {
  Profile p = Measured(10 * kGiB);
  EXPECT_EQ(ResolveEstimate(std::nullopt, &p, 0, k24GiB, {.margin = 0.5}).full_bytes, 15 * kGiB);
  EXPECT_EQ(ResolveEstimate(std::nullopt, &p, 0, k24GiB, {.margin = 0.0}).full_bytes, 10 * kGiB);
  EXPECT_EQ(ResolveEstimate(std::nullopt, &p, 0, k24GiB, {.margin = -0.5}).full_bytes, 10 * kGiB);
}

TEST(ResolveEstimateTest, ProfileWarmMeasured) {
  Profile p = Measured(10 * kGiB);
  p.warm_peak_bytes = kGiB;
  p.warm_samples = 4;
  Estimate e = ResolveEstimate(std::nullopt, &p, 6000, k24GiB);
  EXPECT_EQ(e.full_bytes, 12 * kGiB);
  EXPECT_EQ(e.warm_bytes, ScaleBytes(kGiB, 1.2));
  EXPECT_EQ(e.warm_bytes, 1288490189u);  // ceil(1073741824 * 1.2)
}

TEST(ResolveEstimateTest, ProfileMeasuredAtZeroGrowth) {
  Profile p = Measured(0, 5);
  Estimate e = ResolveEstimate(std::nullopt, &p, 6000, k24GiB);
  EXPECT_EQ(e.source, EstimateSource::kProfile);
  EXPECT_EQ(e.full_bytes, 0u);
}

TEST(ResolveEstimateTest, ProfileRaisedByAnOomWithoutSamplesIsUsed) {
  Profile p;
  p.peak_bytes = 9 * kGiB;
  p.oom_events = 1;
  Estimate e = ResolveEstimate(std::nullopt, &p, 6000, k24GiB, {.margin = 0.0});
  EXPECT_EQ(e.source, EstimateSource::kProfile);
  EXPECT_EQ(e.full_bytes, 9 * kGiB);
}

TEST(ResolveEstimateTest, UnmeasuredProfileFallsThroughToMetadata) {
  Profile p;  // no samples, no peak
  Estimate e = ResolveEstimate(std::nullopt, &p, 6000, k24GiB);
  EXPECT_EQ(e.source, EstimateSource::kMetadata);
  EXPECT_EQ(e.full_bytes, 6000 * kMiB);
}

TEST(ResolveEstimateTest, MetadataIsReadAsMiB) {
  Estimate e = ResolveEstimate(std::nullopt, nullptr, 6000, k24GiB);
  EXPECT_EQ(e.source, EstimateSource::kMetadata);
  EXPECT_EQ(e.full_bytes, 6291456000u);  // 6000 x 2^20, more than 6000 x 10^6
  EXPECT_EQ(e.warm_bytes, 6291456000u);
}

TEST(ResolveEstimateTest, MetadataWithOnlyAWarmMeasurement) {
  Profile p;
  p.warm_peak_bytes = 100;
  p.warm_samples = 1;
  Estimate e = ResolveEstimate(std::nullopt, &p, 1500, k24GiB);
  EXPECT_EQ(e.source, EstimateSource::kMetadata);
  EXPECT_EQ(e.full_bytes, 1500 * kMiB);
  EXPECT_EQ(e.warm_bytes, 120u);
}

TEST(ResolveEstimateTest, ConservativeFractionOfTheDevice) {
  Estimate e = ResolveEstimate(std::nullopt, nullptr, 0, k24GiB);
  EXPECT_EQ(e.source, EstimateSource::kConservative);
  EXPECT_EQ(e.full_bytes, 20615843021u);  // ceil(0.8 x 24 GiB)
  EXPECT_EQ(e.warm_bytes, 20615843021u);
  EXPECT_EQ(
      ResolveEstimate(std::nullopt, nullptr, -3, k24GiB, {.conservative_fraction = 0.5}).full_bytes,
      12 * kGiB);
  EXPECT_EQ(
      ResolveEstimate(std::nullopt, nullptr, 0, k24GiB, {.conservative_fraction = 2.0}).full_bytes,
      k24GiB);
}

TEST(ResolveEstimateTest, ConservativeWithoutDeviceIsZero) {
  Estimate e = ResolveEstimate(std::nullopt, nullptr, 0, 0);
  EXPECT_EQ(e.source, EstimateSource::kConservative);
  EXPECT_EQ(e.full_bytes, 0u);
}

TEST(ScaleBytesTest, RoundsUpAndSaturates) {
  EXPECT_EQ(ScaleBytes(10, 1.25), 13u);
  EXPECT_EQ(ScaleBytes(0, 1.5), 0u);
  EXPECT_EQ(ScaleBytes(10, 0), 0u);
  EXPECT_EQ(ScaleBytes(10, std::numeric_limits<double>::quiet_NaN()), 0u);
  EXPECT_EQ(ScaleBytes(std::numeric_limits<std::uint64_t>::max(), 2.0),
            std::numeric_limits<std::uint64_t>::max());
  EXPECT_EQ(ResolveEstimate(std::nullopt, nullptr, std::numeric_limits<std::int64_t>::max(), 0)
                .full_bytes,
            std::numeric_limits<std::uint64_t>::max());
}

TEST(VramHeaderValueTest, Format) {
  Estimate e{.full_bytes = 12, .warm_bytes = 5, .source = EstimateSource::kProfile};
  EXPECT_EQ(VramHeaderValue(e, 5, 4), "estimate=5; source=profile; peak=4");
  Estimate c{.full_bytes = 20615843021,
             .warm_bytes = 20615843021,
             .source = EstimateSource::kConservative};
  EXPECT_EQ(VramHeaderValue(c, c.full_bytes, 0),
            "estimate=20615843021; source=conservative; peak=0");
}

// Issue 9.4: what the server learned (margin, OOM floors) never exceeds
// what a device could ever give, so a transient error never becomes a
// permanent 422; a raw measured peak (a real success) is never cut.
TEST(ResolveEstimateTest, Issue9LearnedEstimatesAreCappedAtWhatADeviceCanGive) {
  EstimateOptions o;
  o.cap_bytes = 23 * kGiB;
  Profile p = Measured(11 * kGiB);
  p.oom_floor_bytes = 28 * kGiB;  // two OOMs raised it past the card
  Estimate e = ResolveEstimate(std::nullopt, &p, 0, k24GiB, o);
  EXPECT_EQ(e.source, EstimateSource::kProfile);
  EXPECT_EQ(e.full_bytes, 23 * kGiB);
  // The declared path too: a declared estimate is raised, but not past the cap.
  e = ResolveEstimate(10 * kGiB, &p, 0, k24GiB, o);
  EXPECT_EQ(e.full_bytes, 23 * kGiB);
  // A measured peak above the cap stays (it ran), without the margin.
  Profile big = Measured(23 * kGiB + 512 * kMiB);
  e = ResolveEstimate(std::nullopt, &big, 0, k24GiB, o);
  EXPECT_EQ(e.full_bytes, 23 * kGiB + 512 * kMiB);
  // Without a cap the floor is used as it is.
  e = ResolveEstimate(std::nullopt, &p, 0, k24GiB, EstimateOptions{});
  EXPECT_EQ(e.full_bytes, 28 * kGiB);
}

TEST(ResolveEstimateTest, OomFloorsRaiseTheirKindOnly) {
  Profile p = Measured(10 * kGiB);
  p.warm_peak_bytes = 1 * kGiB;
  p.warm_samples = 2;
  p.warm_oom_floor_bytes = 3 * kGiB;
  Estimate e = ResolveEstimate(std::nullopt, &p, 0, k24GiB);
  EXPECT_EQ(e.full_bytes, 12 * kGiB);  // 10 x 1.2, the floor is warm only
  EXPECT_EQ(e.warm_bytes, 3 * kGiB);   // max(1.2 GiB, 3 GiB)
  // A floor on a class never measured counts as a measurement.
  Profile only_floor;
  only_floor.oom_floor_bytes = 5 * kGiB;
  e = ResolveEstimate(std::nullopt, &only_floor, 6000, k24GiB);
  EXPECT_EQ(e.source, EstimateSource::kProfile);
  EXPECT_EQ(e.full_bytes, 5 * kGiB);
}

TEST(VramHeaderValueTest, NoneBeforeAnyEstimate) {
  EXPECT_EQ(VramHeaderValueNone(), "estimate=0; source=none; peak=0");
}

}  // namespace
}  // namespace clams::vram
