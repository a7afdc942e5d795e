// End-to-end tests of issue 11 (load once, serve many) on simulated GPUs:
// --threads K lets a worker run K requests on one copy of its model, each
// admitted on its own.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <thread>

#include "e2e/production/workload.h"
#include "e2e/server/e2e_util.h"
#include "testing/process.h"
#include "testing/testing.h"

namespace clams::e2e {
namespace {

using ::testing::HasSubstr;
namespace json = boost::json;

constexpr std::uint64_t kLargeWeights = 10 * kGiB;
constexpr std::uint64_t kLargeActivations = kLargeWeights * 15 / 100;

class LoadOnceTest : public ::testing::Test {
 protected:
};

int Running(Workload& w) { return w.Runtime().at("queue").at("running").to_number<int>(); }

// Four large requests on one worker with --threads 4: the weights are loaded
// once and all four run at the same time, each with its own activations.
TEST_F(LoadOnceTest, FourLargeRequestsShareOneWorkersModel) {
  Workload w("24GiB", {"--workers", "1", "--threads", "4"});
  // Measure the class cold, then warm (until then warm = full, and four
  // full estimates would not fit).
  ASSERT_EQ(w.Post("?model=large&holdMs=300").status, 200);
  ASSERT_EQ(w.Post("?model=large&holdMs=300").status, 200);
  std::vector<std::future<HttpResponse>> four;
  for (int i = 0; i < 4; ++i) four.push_back(std::async(std::launch::async, [&] { return w.Post("?model=large&holdMs=3000"); }));
  EXPECT_TRUE(testing::WaitFor([&] { return Running(w) == 4; }, std::chrono::seconds(10)))
      << "running: " << Running(w);
  for (auto& f : four) {
    HttpResponse r = f.get();
    EXPECT_EQ(r.status, 200);
    EXPECT_LT(EstimateOf(r), kLargeWeights);  // admitted warm: its activations, not another copy
  }
  const json::value gpu = w.Gpus().at("devices").as_array()[0];
  EXPECT_EQ(gpu.at("oom_events"), 0);
  EXPECT_EQ(gpu.at("high_water_bytes").to_number<std::uint64_t>(), kLargeWeights + 4 * kLargeActivations);
  EXPECT_THAT(w.server().Log(), ::testing::Not(HasSubstr("is not thread-safe")));
}

// Two workers, two classes: each request goes to the worker holding its class.
TEST_F(LoadOnceTest, MixedClassesArePlacedOnTheWorkerHoldingTheirModel) {
  Workload w("24GiB", {"--workers", "2", "--threads", "2"});
  // One worker learns large, the other small (sent together, they land on
  // different workers), then each is measured warm.
  auto a = std::async(std::launch::async, [&] { return w.Post("?model=large&holdMs=500"); });
  auto b = std::async(std::launch::async, [&] { return w.Post("?model=small&holdMs=500"); });
  ASSERT_EQ(a.get().status, 200);
  ASSERT_EQ(b.get().status, 200);
  ASSERT_EQ(w.Post("?model=large&holdMs=300").status, 200);
  ASSERT_EQ(w.Post("?model=small&holdMs=300").status, 200);
  std::vector<std::future<HttpResponse>> mixed;
  for (const char* m : {"large", "small", "large", "small"}) {
    mixed.push_back(std::async(std::launch::async, [&w, m] { return w.Post(std::string("?model=") + m + "&holdMs=1500"); }));
  }
  for (auto& f : mixed) {
    HttpResponse r = f.get();
    EXPECT_EQ(r.status, 200);
    EXPECT_LT(EstimateOf(r), 2 * kGiB);  // warm on the worker that holds it, never a second copy
  }
  EXPECT_EQ(w.Gpus().at("devices").as_array()[0].at("oom_events"), 0);
  // The card never held more than one copy of each model.
  EXPECT_LE(w.Gpus().at("devices").as_array()[0].at("high_water_bytes").to_number<std::uint64_t>(),
            kLargeWeights + 2 * kGiB + 2 * kLargeActivations + 2 * (2 * kGiB * 15 / 100));
}

// A request that would need a second copy of the model (full, on a fresh
// worker) when memory allows only the activations waits for a warm slot.
TEST_F(LoadOnceTest, ARequestThatFitsOnlyWarmWaitsForTheWarmSlot) {
  Workload w("24GiB", {"--workers", "2"});
  testing::TempDir dir;
  testing::Process foreign(
      {testing::BuiltBinary("src/cli/clams").string(), "gpu", "sim-alloc", "8GiB", "--seconds", "60"}, w.env(),
      dir.path() / "foreign.log");
  ASSERT_TRUE(testing::WaitFor([&] { return w.Gpus().at("devices").as_array()[0].at("used_bytes") == 8 * kGiB; },
                               std::chrono::seconds(5)));
  ASSERT_EQ(w.Post("?model=large&holdMs=300").status, 200);  // worker holds large (10 GiB)
  ASSERT_EQ(w.Post("?model=large&holdMs=300").status, 200);  // measured warm
  auto busy = std::async(std::launch::async, [&] { return w.Post("?model=large&holdMs=2000"); });
  ASSERT_TRUE(testing::WaitFor([&] { return Running(w) == 1; }, std::chrono::seconds(10)));
  // 24 - 8 - 10 - 1.5 = 4.5 GiB free: a second copy (11.5 GiB + context)
  // cannot start; it waits for the warm worker.
  HttpResponse second = w.Post("?model=large&holdMs=10");
  EXPECT_EQ(second.status, 200);
  EXPECT_LT(EstimateOf(second), kLargeWeights);  // it ran warm
  EXPECT_EQ(busy.get().status, 200);
  const json::value rt = w.Runtime();
  int holding = 0;
  for (const auto& worker : rt.at("workers").as_array()) holding += worker.at("vram_bytes").to_number<std::uint64_t>() > 0;
  EXPECT_EQ(holding, 1);  // only one copy was ever loaded
  EXPECT_EQ(w.Gpus().at("devices").as_array()[0].at("oom_events"), 0);
}

// holdMs changes time, not memory: one class, one profile.
TEST_F(LoadOnceTest, ParametersThatDoNotShapeMemoryShareOneProfile) {
  Workload w("24GiB", {"--workers", "1"});
  for (int ms : {10, 20, 30}) ASSERT_EQ(w.Post("?model=tiny&holdMs=" + std::to_string(ms)).status, 200);
  const json::value rt = w.Runtime();
  ASSERT_EQ(rt.at("profiles").at("count"), 1);
  EXPECT_EQ(rt.at("profiles").at("classes").as_array()[0].at("parameters"), (json::object{{"model", "tiny"}}));
}

// A native app that is not thread-safe runs one request at a time per
// worker, whatever --threads says, and the server says so. Without GPUs a
// worker whose requests are quick takes the second request ahead (issue
// 15): it is sent behind the first and runs when the first has been
// answered, never beside it.
TEST_F(LoadOnceTest, ANonThreadSafeAppRunsOneRequestAtATime) {
  testing::TempDir tmp;
  testing::ServerProcess server(testing::BuiltBinary("tests/e2e/apps/clams-test-app"),
                                {"--production", "--workers", "1", "--threads", "4", "--expose-runtime"});
  ASSERT_TRUE(WaitReady(server.port()));
  EXPECT_THAT(server.Log(), HasSubstr("is not thread-safe"));
  const json::value rt = Runtime(server.port());
  EXPECT_EQ(rt.at("workers").as_array()[0].at("threads"), 1);
  ASSERT_EQ(Call(server.port(), "POST", "/", TextMmif("quick")).status, 200);  // its requests are quick
  EXPECT_EQ(FirstWorker(server.port()).at("ahead"), 1);
  auto first = std::async(std::launch::async,
                          [&] { return Call(server.port(), "POST", "/?mode=sleep&sleepMs=3000", TextMmif("a")); });
  ASSERT_TRUE(testing::WaitFor([&] { return Runtime(server.port()).at("queue").at("running") == 1; },
                               std::chrono::seconds(10)));
  const auto second_sent = std::chrono::steady_clock::now();
  auto second = std::async(std::launch::async,
                           [&] { return Call(server.port(), "POST", "/?mode=sleep&sleepMs=10", TextMmif("b")); });
  ASSERT_TRUE(testing::WaitFor([&] { return Runtime(server.port()).at("queue").at("running") == 2; },
                               std::chrono::seconds(10)));
  EXPECT_EQ(Runtime(server.port()).at("queue").at("length"), 0);  // taken ahead by the worker
  // The second (10 ms) waited for the slot instead of running beside the
  // first (3 s), which had most of its time left when the second was sent.
  EXPECT_EQ(second.get().status, 200);
  EXPECT_GT(std::chrono::steady_clock::now() - second_sent, std::chrono::seconds(1));
  EXPECT_EQ(first.get().status, 200);
}

}  // namespace
}  // namespace clams::e2e
