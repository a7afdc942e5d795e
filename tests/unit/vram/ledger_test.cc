#include "clams/vram/ledger.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <utility>
#include <vector>

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

TEST(LedgerTest, ARequestThatAllocatedNothingYetIsChargedNothingItGaveBack) {
  Ledger ledger;
  Reservation a = ledger.Reserve(Entry(1, 7, 2 * kGiB), 10 * kGiB);
  Reservation b = ledger.Reserve(Entry(2, 7, 3 * kGiB), 10 * kGiB);
  ledger.ObserveUsage(7, 11 * kGiB);  // 1 GiB: a's or b's, unknown
  a.Release(11 * kGiB);               // a may have left all of it
  EXPECT_EQ(ledger.Outstanding(0), 3 * kGiB);
}

// The ledger's promise: a worker's outstanding memory is never below what
// its running requests
// can still make the device grow by (their needs less what they hold, less
// the cached blocks they will reuse). Random requests on one worker, with an
// allocator that returns freed memory to the device, one that keeps it, and
// one that returns part of it; usage observed at random moments.
TEST(LedgerTest, PropertyOutstandingCoversWhatRunningRequestsCanStillAllocate) {
  constexpr int kRuns = 300;
  constexpr int kSteps = 80;
  constexpr std::uint64_t kMiB = std::uint64_t{1} << 20;
  constexpr std::uint64_t kModel = 6 * kGiB;
  std::mt19937_64 rng(20250108);
  for (int run = 0; run < kRuns; ++run) {
    const int allocator = run % 3;  // 0: returns freed memory, 1: keeps it, 2: returns half
    Ledger ledger;
    struct Live {
      std::uint64_t need = 0;
      std::uint64_t held = 0;
      Reservation reservation;
    };
    std::map<std::uint64_t, Live> live;
    std::uint64_t next_id = 1;
    std::uint64_t allocated = 0;  // held by live requests
    std::uint64_t reserved = 0;   // what the device sees beyond the model (>= allocated)
    auto usage = [&] { return kModel + reserved; };
    for (int step = 0; step < kSteps; ++step) {
      const int action = static_cast<int>(rng() % 4);
      if (action == 0 && live.size() < 4) {
        const std::uint64_t need = (1 + rng() % 16) * 128 * kMiB;
        const std::uint64_t id = next_id++;
        live[id].need = need;
        live[id].reservation = ledger.Reserve(Entry(id, 1, need), usage());
      } else if (action == 1 && !live.empty()) {
        auto it = std::next(live.begin(), static_cast<std::ptrdiff_t>(rng() % live.size()));
        const std::uint64_t room = it->second.need - it->second.held;
        const std::uint64_t bytes = room == 0 ? 0 : (1 + rng() % 4) * room / 4;
        it->second.held += bytes;
        allocated += bytes;
        reserved = std::max(reserved, allocated);  // the cache is reused first
      } else if (action == 2 && !live.empty()) {
        auto it = std::next(live.begin(), static_cast<std::ptrdiff_t>(rng() % live.size()));
        allocated -= it->second.held;
        if (allocator == 0) reserved = allocated;
        if (allocator == 2) reserved = allocated + (reserved - allocated) / 2;
        const bool report = rng() % 4 != 0;
        if (report) {
          it->second.reservation.Release(usage());
        } else {
          it->second.reservation.Release();
        }
        live.erase(it);
      } else if (!live.empty()) {
        ledger.ObserveUsage(1, usage());
      }
      std::uint64_t can_still = 0;
      for (const auto& [id, l] : live) can_still += l.need - l.held;
      const std::uint64_t cached = reserved - allocated;
      const std::uint64_t device_growth = can_still > cached ? can_still - cached : 0;
      ASSERT_GE(ledger.Outstanding(0), device_growth) << "run " << run << " step " << step;
    }
  }
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
