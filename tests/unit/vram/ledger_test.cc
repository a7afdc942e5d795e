#include "clams/vram/ledger.h"

#include <gtest/gtest.h>

#include <utility>

namespace clams::vram {
namespace {

constexpr std::uint64_t kGiB = std::uint64_t{1} << 30;

InFlight Entry(std::uint64_t id, int worker, std::uint64_t need, int device = 0) {
  InFlight f;
  f.request_id = id;
  f.worker_id = worker;
  f.device = device;
  f.need_bytes = need;
  return f;
}

TEST(LedgerTest, AReservationIsReleasedExactlyOnce) {
  Ledger ledger;
  {
    Reservation r = ledger.Reserve(Entry(1, 1, 4 * kGiB), 0);
    EXPECT_TRUE(r.held());
    EXPECT_EQ(ledger.size(), 1u);
    EXPECT_EQ(ledger.Outstanding(0), 4 * kGiB);
    Reservation moved = std::move(r);
    EXPECT_FALSE(r.held());  // NOLINT(bugprone-use-after-move): the move empties it
    EXPECT_EQ(ledger.size(), 1u);
    moved.Release(0);
    EXPECT_EQ(ledger.size(), 0u);
    moved.Release(0);  // no-op
    EXPECT_EQ(ledger.size(), 0u);
  }
  {
    Reservation r = ledger.Reserve(Entry(2, 1, 1 * kGiB), 0);
    EXPECT_EQ(ledger.size(), 1u);
  }  // the destructor releases it
  EXPECT_EQ(ledger.size(), 0u);
  EXPECT_EQ(ledger.Outstanding(0), 0u);
}

TEST(LedgerTest, GrowthIsSharedByTheRequestsOfAWorker) {
  Ledger ledger;
  // A worker holding a 10 GiB model runs two requests of 1.5 GiB each.
  const std::uint64_t need = 3 * kGiB / 2;
  Reservation a = ledger.Reserve(Entry(1, 7, need), 10 * kGiB);
  Reservation b = ledger.Reserve(Entry(2, 7, need), 10 * kGiB);
  EXPECT_EQ(ledger.Outstanding(0), 3 * kGiB);
  EXPECT_EQ(ledger.WorkerNeeds(7), 3 * kGiB);
  EXPECT_EQ(ledger.RunningOn(7), 2u);
  ledger.ObserveUsage(7, 11 * kGiB);  // one of them allocated 1 GiB: whichever
  EXPECT_EQ(ledger.Outstanding(0), 2 * kGiB);
  for (const auto& f : ledger.Snapshot()) EXPECT_EQ(f.growth_bytes, 1 * kGiB);
  ledger.ObserveUsage(7, 14 * kGiB);  // more than both needs: nothing outstanding
  EXPECT_EQ(ledger.Outstanding(0), 0u);
  // One ends but its memory stays (a caching allocator): never counted as
  // the other's progress. The other is reserved in full again.
  a.Release(14 * kGiB);
  EXPECT_EQ(ledger.Outstanding(0), need);
  ledger.ObserveUsage(7, 14 * kGiB + kGiB);
  EXPECT_EQ(ledger.Outstanding(0), need - kGiB);
  b.Release(15 * kGiB);
  EXPECT_EQ(ledger.Outstanding(0), 0u);
  // A new first request starts from the worker's usage then.
  Reservation c = ledger.Reserve(Entry(3, 7, 2 * kGiB), 15 * kGiB);
  ledger.ObserveUsage(7, 16 * kGiB);
  EXPECT_EQ(ledger.Outstanding(0), 1 * kGiB);
}

TEST(LedgerTest, DevicesAndWorkersAreSeparate) {
  Ledger ledger;
  Reservation a = ledger.Reserve(Entry(1, 1, 4 * kGiB, 0), 0);
  Reservation b = ledger.Reserve(Entry(2, 2, 2 * kGiB, 1), 0);
  ledger.ObserveUsage(1, 3 * kGiB);
  EXPECT_EQ(ledger.Outstanding(0), 1 * kGiB);
  EXPECT_EQ(ledger.Outstanding(1), 2 * kGiB);
  EXPECT_EQ(OutstandingBytes(0, ledger.Snapshot()), 1 * kGiB);
}

TEST(LedgerTest, TheLedgerMayGoFirst) {
  auto ledger = std::make_unique<Ledger>();
  Reservation r = ledger->Reserve(Entry(1, 1, kGiB), 0);
  ledger.reset();
  EXPECT_FALSE(r.held());
  r.Release(0);  // no-op, no crash
}

}  // namespace
}  // namespace clams::vram
