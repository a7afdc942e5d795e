#include "clams/vram/profile_store.h"

#include "clams/vram/estimate.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "clams/base/log.h"
#include "clams/mmif/json.h"
#include "testing/status_matchers.h"
#include "testing/testing.h"

namespace clams::vram {
namespace {

namespace fs = std::filesystem;
using ::clams::testing::IsOk;
using ::clams::testing::IsOkAndHolds;
using ::clams::testing::ReadFileOrDie;
using ::clams::testing::StatusIs;
using ::clams::testing::TempDir;
using ::clams::testing::WriteFileOrDie;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::SizeIs;

constexpr char kAppId[] = "http://apps.clams.ai/example-app/v1.0";
constexpr char kAppDir[] = "http---apps.clams.ai-example-app-v1.0";
constexpr std::uint64_t kMiB = std::uint64_t{1} << 20;
constexpr std::uint64_t kGiB = std::uint64_t{1} << 30;

// Captures log messages for the lifetime of the object.
class LogCapture {
 public:
  LogCapture() {
    log::SetSink([this](log::Level level, std::string_view, std::string_view message) {
      std::lock_guard<std::mutex> lock(mu_);
      if (level >= log::Level::kWarning) warnings_.emplace_back(message);
    });
  }
  ~LogCapture() { log::SetSink({}); }
  std::vector<std::string> warnings() {
    std::lock_guard<std::mutex> lock(mu_);
    return warnings_;
  }

 private:
  std::mutex mu_;
  std::vector<std::string> warnings_;
};

RequestClass Class(const std::string& params_json) {
  return RequestClass::Make(kAppId, "v1.0", params_json);
}

json::object Params(const std::string& model) {
  json::object o;
  o["model"] = model;
  return o;
}

std::unique_ptr<ProfileStore> OpenOrDie(const fs::path& root) {
  auto store = ProfileStore::Open({.root = root, .app_id = kAppId});
  EXPECT_THAT(store, IsOk());
  return store.ok() ? *std::move(store) : nullptr;
}

json::object ReadJsonObject(const fs::path& path) {
  auto v = mmif::ParseJson(ReadFileOrDie(path));
  EXPECT_THAT(v, IsOk());
  if (!v.ok() || !v->is_object()) return {};
  return v->get_object();
}

TEST(DefaultProfileRootTest, FollowsTheEnvironmentOrder) {
  EXPECT_EQ(DefaultProfileRoot("/p", "/xdg", "/home/u"), fs::path("/p"));
  EXPECT_EQ(DefaultProfileRoot("", "/cache", "/home/u"), fs::path("/cache/clams/memory_profiles"));
  EXPECT_EQ(DefaultProfileRoot("", "", "/home/u"),
            fs::path("/home/u/.cache/clams/memory_profiles"));
}

TEST(AppDirectoryNameTest, ReplacesSlashesAndColonsLikeThePythonSdk) {
  EXPECT_EQ(AppDirectoryName(kAppId), kAppDir);
  EXPECT_EQ(AppDirectoryName("a:b/c"), "a-b-c");
  EXPECT_EQ(AppDirectoryName("plain-name"), "plain-name");
  EXPECT_EQ(AppDirectoryName(""), "_");
  EXPECT_EQ(AppDirectoryName("."), "_");
  EXPECT_EQ(AppDirectoryName(".."), "_");
  EXPECT_EQ(AppDirectoryName("../x"), "..-x");  // no separator survives
}

TEST(ProfileFileNameTest, KeysAndFileNames) {
  EXPECT_EQ(ProfileFileName("abc"), fs::path("memory_abc.json"));
  EXPECT_EQ(ClassKeyFromFileName("memory_3bdf005f28916e0ccc9e51154d896571.json"),
            "3bdf005f28916e0ccc9e51154d896571");
  EXPECT_EQ(ClassKeyFromFileName("memory_.json"), std::nullopt);
  EXPECT_EQ(ClassKeyFromFileName("memory_abc.tmp"), std::nullopt);
  EXPECT_EQ(ClassKeyFromFileName(".memory_abc.12.0.tmp"), std::nullopt);
  EXPECT_EQ(ClassKeyFromFileName("memory_a.b.json"), std::nullopt);
  EXPECT_TRUE(IsValidClassKey("Az09_-"));
  EXPECT_FALSE(IsValidClassKey(""));
  EXPECT_FALSE(IsValidClassKey("../etc"));
  EXPECT_FALSE(IsValidClassKey(std::string(129, 'a')));
}

TEST(ProfileStoreTest, OpenCreatesTheAppDirectory) {
  TempDir tmp;
  auto store = OpenOrDie(tmp.path() / "nested" / "root");
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->directory(), tmp.path() / "nested" / "root" / kAppDir);
  EXPECT_TRUE(fs::is_directory(store->directory()));
  EXPECT_EQ(store->size(), 0u);
}

TEST(ProfileStoreTest, OpenFailsWhenTheDirectoryCannotBeCreated) {
  TempDir tmp;
  WriteFileOrDie(tmp.path() / "file", "x");
  EXPECT_THAT(ProfileStore::Open({.root = tmp.path() / "file", .app_id = kAppId}),
              StatusIs(StatusCode::kFailedPrecondition, HasSubstr("cannot create profile")));
  EXPECT_THAT(ProfileStore::Open({.root = "", .app_id = kAppId}),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("empty profile root")));
}

TEST(ProfileStoreTest, RecordWritesTheDocumentedFields) {
  TempDir tmp;
  auto store = OpenOrDie(tmp.path());
  ASSERT_NE(store, nullptr);
  const RequestClass c = Class(R"({"model":"large"})");
  ASSERT_THAT(store->Record(c, Params("large"), 11811160064, /*warm=*/false, 2500.0, "GPU A"),
              IsOk());
  const fs::path file = store->directory() / ("memory_" + c.key + ".json");
  ASSERT_TRUE(fs::exists(file));
  json::object obj = ReadJsonObject(file);
  std::vector<std::string> keys;
  for (const auto& kv : obj) keys.emplace_back(kv.key());
  EXPECT_THAT(keys, ElementsAre("peak_bytes", "warm_peak_bytes", "samples", "warm_samples",
                                "oom_events", "oom_floor_bytes", "warm_oom_floor_bytes", "mean_duration_ms",
                                "parameters", "updated", "device", "app_version", "app_id"));
  EXPECT_EQ(obj["peak_bytes"].to_number<std::uint64_t>(), 11811160064u);
  EXPECT_EQ(obj["warm_peak_bytes"].to_number<std::uint64_t>(), 0u);
  EXPECT_EQ(obj["samples"].to_number<std::uint64_t>(), 1u);
  EXPECT_EQ(obj["warm_samples"].to_number<std::uint64_t>(), 0u);
  EXPECT_EQ(obj["oom_events"].to_number<std::uint64_t>(), 0u);
  EXPECT_EQ(obj["mean_duration_ms"].to_number<double>(), 2500.0);
  EXPECT_EQ(obj["parameters"], json::value(Params("large")));
  EXPECT_THAT(std::string(obj["updated"].as_string()),
              MatchesRegex("[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z"));
  EXPECT_EQ(obj["device"].as_string(), "GPU A");
  EXPECT_EQ(obj["app_version"].as_string(), "v1.0");
  EXPECT_EQ(obj["app_id"].as_string(), kAppId);
  // Indented like the Python SDK's files.
  EXPECT_THAT(ReadFileOrDie(file), HasSubstr("{\n  \"peak_bytes\": 11811160064,\n"));
  // No temporary file is left behind.
  int entries = 0;
  for (const auto& e : fs::directory_iterator(store->directory())) {
    (void)e;
    ++entries;
  }
  EXPECT_EQ(entries, 1);
  // Private: other clients' parameters are in it (issue 10.8).
  EXPECT_EQ(fs::status(file).permissions() & fs::perms::all, fs::perms::owner_read | fs::perms::owner_write);
}

TEST(ProfileStoreTest, RecordKeepsMaximaCountsSamplesAndAveragesDurations) {
  TempDir tmp;
  auto store = OpenOrDie(tmp.path());
  ASSERT_NE(store, nullptr);
  const RequestClass c = Class("{}");
  ASSERT_THAT(store->Record(c, {}, 1000, false, 100, "d"), IsOk());
  ASSERT_THAT(store->Record(c, {}, 800, false, 200, "d"), IsOk());
  ASSERT_THAT(store->Record(c, {}, 50, true, 300, "d"), IsOk());
  ASSERT_THAT(store->Record(c, {}, 70, true, 400, "d2"), IsOk());
  ASSERT_THAT(store->Record(c, {}, 60, true, -1, "d2"), IsOk());  // duration ignored
  auto p = store->Get(c.key);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->peak_bytes, 1000u);
  EXPECT_EQ(p->samples, 2u);
  EXPECT_EQ(p->warm_peak_bytes, 70u);
  EXPECT_EQ(p->warm_samples, 3u);
  EXPECT_DOUBLE_EQ(p->mean_duration_ms, 250.0);
  EXPECT_EQ(p->device, "d2");
  EXPECT_EQ(store->size(), 1u);
  EXPECT_EQ(store->Get("0123"), std::nullopt);
}

TEST(ProfileStoreTest, ProfilesSurviveARestart) {
  TempDir tmp;
  const RequestClass large = Class(R"({"model":"large"})");
  const RequestClass tiny = Class(R"({"model":"tiny"})");
  {
    auto store = OpenOrDie(tmp.path());
    ASSERT_NE(store, nullptr);
    ASSERT_THAT(store->Record(large, Params("large"), 12 * (1ull << 30), false, 9000, "H100"),
                IsOk());
    ASSERT_THAT(store->Record(large, Params("large"), 1 * (1ull << 30), true, 3000, "H100"),
                IsOk());
    ASSERT_THAT(store->Record(tiny, Params("tiny"), 1ull << 30, false, 500, "H100"), IsOk());
  }
  auto reopened = OpenOrDie(tmp.path());
  ASSERT_NE(reopened, nullptr);
  EXPECT_EQ(reopened->size(), 2u);
  auto p = reopened->Get(large.key);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->peak_bytes, 12 * (1ull << 30));
  EXPECT_EQ(p->warm_peak_bytes, 1ull << 30);
  EXPECT_EQ(p->samples, 1u);
  EXPECT_EQ(p->warm_samples, 1u);
  EXPECT_DOUBLE_EQ(p->mean_duration_ms, 6000.0);
  EXPECT_EQ(json::value(p->parameters), json::value(Params("large")));
  EXPECT_EQ(p->device, "H100");
  EXPECT_EQ(p->app_version, "v1.0");
  EXPECT_EQ(p->app_id, kAppId);
  EXPECT_THAT(reopened->All(), SizeIs(2));
}

TEST(ProfileStoreTest, CorruptFilesAreIgnoredWithAWarningAndReplacedAtTheNextWrite) {
  TempDir tmp;
  const RequestClass c = Class(R"({"model":"base"})");
  const fs::path dir = tmp.path() / kAppDir;
  fs::create_directories(dir);
  WriteFileOrDie(dir / ("memory_" + c.key + ".json"), "{\"peak_bytes\": 12");  // truncated
  WriteFileOrDie(dir / "memory_aaaa.json", "[1, 2]");
  WriteFileOrDie(dir / "memory_bbbb.json", R"({"peak_bytes": -5})");
  WriteFileOrDie(dir / "memory_cccc.json", R"({"peak_bytes": 5, "parameters": "x"})");
  WriteFileOrDie(dir / "notes.txt", "not a profile");
  LogCapture logs;
  auto store = OpenOrDie(tmp.path());
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->size(), 0u);
  EXPECT_THAT(logs.warnings(), SizeIs(4));
  EXPECT_THAT(logs.warnings()[0], HasSubstr("ignoring unreadable memory profile"));

  ASSERT_THAT(store->Record(c, Params("base"), 4242, false, 10, "d"), IsOk());
  EXPECT_THAT(ProfileStore::ReadFile(dir / ("memory_" + c.key + ".json")),
              IsOkAndHolds(::testing::Field(&Profile::peak_bytes, 4242u)));
  auto reopened = OpenOrDie(tmp.path());
  ASSERT_NE(reopened, nullptr);
  EXPECT_EQ(reopened->size(), 1u);
}

TEST(ProfileStoreTest, ReadFileNamesTheProblem) {
  TempDir tmp;
  const fs::path f = tmp.path() / "memory_x.json";
  EXPECT_THAT(ProfileStore::ReadFile(f), StatusIs(StatusCode::kNotFound, HasSubstr("memory_x")));
  WriteFileOrDie(f, "not json");
  EXPECT_THAT(ProfileStore::ReadFile(f),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("malformed JSON")));
  WriteFileOrDie(f, "[]");
  EXPECT_THAT(ProfileStore::ReadFile(f),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("not a JSON object")));
  WriteFileOrDie(f, R"({"parameters": {}})");
  EXPECT_THAT(ProfileStore::ReadFile(f),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("missing \"peak_bytes\"")));
  WriteFileOrDie(f, R"({"peak_bytes": 1.5})");
  EXPECT_THAT(ProfileStore::ReadFile(f),
              StatusIs(StatusCode::kInvalidArgument,
                       HasSubstr("\"peak_bytes\" is not a non-negative integer")));
  WriteFileOrDie(f, R"({"peak_bytes": 1, "samples": "3"})");
  EXPECT_THAT(ProfileStore::ReadFile(f),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("\"samples\"")));
  WriteFileOrDie(f, R"({"peak_bytes": 1, "mean_duration_ms": -2})");
  EXPECT_THAT(ProfileStore::ReadFile(f),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("\"mean_duration_ms\"")));
  WriteFileOrDie(f, R"({"peak_bytes": 1, "device": 7})");
  EXPECT_THAT(ProfileStore::ReadFile(f),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("\"device\" is not a string")));
  fs::create_directory(tmp.path() / "memory_dir.json");
  EXPECT_THAT(ProfileStore::ReadFile(tmp.path() / "memory_dir.json"),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("not a regular file")));
}

TEST(ProfileStoreTest, ReadsThePythonSdkFormat) {
  TempDir tmp;
  const fs::path f = tmp.path() / "memory_3bdf005f28916e0ccc9e51154d896571.json";
  WriteFileOrDie(f,
                 "{\n  \"peak_bytes\": 3758096384,\n  \"parameters\": {\n    \"model\": "
                 "\"turbo\"\n  },\n  \"future_field\": [1]\n}");
  auto p = ProfileStore::ReadFile(f);
  ASSERT_THAT(p, IsOk());
  EXPECT_EQ(p->peak_bytes, 3758096384u);
  EXPECT_EQ(p->samples, 0u);
  EXPECT_EQ(p->warm_peak_bytes, 0u);
  EXPECT_EQ(p->parameters.at("model").as_string(), "turbo");
  EXPECT_EQ(p->app_id, "");
}

TEST(ProfileStoreTest, ConcurrentRecordsFromSeveralThreads) {
  TempDir tmp;
  auto store = OpenOrDie(tmp.path());
  ASSERT_NE(store, nullptr);
  constexpr int kThreads = 8;
  constexpr int kPerThread = 40;
  constexpr int kClasses = 3;
  std::vector<RequestClass> classes;
  for (int i = 0; i < kClasses; ++i) classes.push_back(Class("{\"i\":" + std::to_string(i) + "}"));
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const std::uint64_t growth = static_cast<std::uint64_t>(t * 1000 + i);
        if (!store->Record(classes[i % kClasses], {}, growth, (i / kClasses) % 2 == 1, 1.0, "d")
                 .ok()) {
          ++failures;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  std::uint64_t total = 0;
  for (const auto& [key, p] : store->All()) total += p.samples + p.warm_samples;
  EXPECT_EQ(total, static_cast<std::uint64_t>(kThreads * kPerThread));
  // After a flush the files hold the same numbers, and no temporary file is
  // left behind.
  ASSERT_THAT(store->Flush(), IsOk());
  auto reopened = OpenOrDie(tmp.path());
  ASSERT_NE(reopened, nullptr);
  for (const auto& [key, p] : store->All()) {
    auto q = reopened->Get(key);
    ASSERT_TRUE(q.has_value());
    EXPECT_EQ(q->samples, p.samples);
    EXPECT_EQ(q->warm_samples, p.warm_samples);
    EXPECT_EQ(q->peak_bytes, p.peak_bytes);
  }
  int entries = 0;
  for (const auto& e : fs::directory_iterator(store->directory())) {
    EXPECT_THAT(e.path().filename().string(), MatchesRegex("memory_[0-9a-f]{32}\\.json"));
    ++entries;
  }
  EXPECT_EQ(entries, kClasses);
}

TEST(ProfileStoreTest, ReadersNeverSeeAPartialFile) {
  TempDir tmp;
  auto store = OpenOrDie(tmp.path());
  ASSERT_NE(store, nullptr);
  const RequestClass c = Class("{}");
  json::object big;
  big["text"] = std::string(64 * 1024, 'p');  // large enough that a write takes several calls
  ASSERT_THAT(store->Record(c, big, 1, false, 1, "d"), IsOk());
  const fs::path file = store->directory() / ("memory_" + c.key + ".json");
  std::atomic<bool> done{false};
  std::atomic<int> bad_reads{0};
  std::thread reader([&] {
    while (!done.load()) {
      if (!ProfileStore::ReadFile(file).ok()) ++bad_reads;
    }
  });
  for (int i = 0; i < 200; ++i) ASSERT_THAT(store->Record(c, big, i, false, 1, "d"), IsOk());
  done = true;
  reader.join();
  EXPECT_EQ(bad_reads.load(), 0);
}

// Issue 9.2-9.4: an OOM sets a floor (never the measured peak), and the
// floor decays as the class succeeds.
TEST(ProfileStoreTest, RecordOomSetsAFloorThatDecaysWithSuccesses) {
  TempDir tmp;
  auto store = OpenOrDie(tmp.path());
  ASSERT_NE(store, nullptr);
  const RequestClass c = Class("{}");
  ASSERT_THAT(store->RecordOom(c, {}, /*warm=*/false, 6 * kGiB, "d"), IsOk());
  auto p = store->Get(c.key);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->oom_floor_bytes, 6 * kGiB);
  EXPECT_EQ(p->peak_bytes, 0u);  // nothing was measured
  EXPECT_EQ(p->warm_oom_floor_bytes, 0u);
  EXPECT_EQ(p->oom_events, 1u);
  EXPECT_EQ(p->samples, 0u);
  // Never lowered by a smaller floor.
  ASSERT_THAT(store->RecordOom(c, {}, false, 1 * kGiB, "d"), IsOk());
  EXPECT_EQ(store->Get(c.key)->oom_floor_bytes, 6 * kGiB);
  // Written at once.
  EXPECT_EQ(OpenOrDie(tmp.path())->Get(c.key)->oom_floor_bytes, 6 * kGiB);
  // Each success halves the excess over the measured peak (2 GiB here).
  ASSERT_THAT(store->Record(c, {}, 2 * kGiB, false, 1, "d"), IsOk());
  EXPECT_EQ(store->Get(c.key)->oom_floor_bytes, 4 * kGiB);
  ASSERT_THAT(store->Record(c, {}, 2 * kGiB, false, 1, "d"), IsOk());
  EXPECT_EQ(store->Get(c.key)->oom_floor_bytes, 3 * kGiB);
  for (int i = 0; i < 10; ++i) ASSERT_THAT(store->Record(c, {}, 2 * kGiB, false, 1, "d"), IsOk());
  EXPECT_EQ(store->Get(c.key)->oom_floor_bytes, 0u);  // settled: dropped
  EXPECT_EQ(store->Get(c.key)->peak_bytes, 2 * kGiB);
  // A warm OOM sets the warm floor only; warm successes decay it.
  ASSERT_THAT(store->RecordOom(c, {}, /*warm=*/true, 1 * kGiB, "d"), IsOk());
  EXPECT_EQ(store->Get(c.key)->warm_oom_floor_bytes, 1 * kGiB);
  EXPECT_EQ(store->Get(c.key)->oom_floor_bytes, 0u);
  ASSERT_THAT(store->Record(c, {}, 100 * kMiB, true, 1, "d"), IsOk());
  EXPECT_EQ(store->Get(c.key)->warm_oom_floor_bytes, 100 * kMiB + (1 * kGiB - 100 * kMiB) / 2);
  EXPECT_EQ(store->Get(c.key)->oom_events, 3u);
}

// Issue 9.4: 50k distinct classes made 50,001 files; the store keeps at most
// max_profiles, in memory and on disk, dropping the least recently used.
TEST(ProfileStoreTest, Issue9DistinctClassesAreBoundedLeastRecentlyUsedFirst) {
  TempDir tmp;
  auto opened = ProfileStore::Open({tmp.path(), kAppId, /*max_profiles=*/3});
  ASSERT_THAT(opened, IsOk());
  auto& store = *opened;
  std::vector<RequestClass> classes;
  for (int i = 0; i < 5; ++i) classes.push_back(Class("{\"n\":" + std::to_string(i) + "}"));
  for (int i = 0; i < 3; ++i) ASSERT_THAT(store->Record(classes[i], {}, 100, false, 1, "d"), IsOk());
  (void)store->Get(classes[0].key);  // 0 is now more recent than 1 and 2
  ASSERT_THAT(store->Record(classes[3], {}, 100, false, 1, "d"), IsOk());
  EXPECT_EQ(store->size(), 3u);
  EXPECT_FALSE(store->Get(classes[1].key).has_value());  // least recently used: dropped
  EXPECT_TRUE(store->Get(classes[0].key).has_value());
  EXPECT_FALSE(fs::exists(store->directory() / ("memory_" + classes[1].key + ".json")));
  ASSERT_THAT(store->RecordOom(classes[4], {}, false, 100, "d"), IsOk());
  EXPECT_EQ(store->size(), 3u);
  int files = 0;
  for (const auto& e : fs::directory_iterator(store->directory())) files += e.path().extension() == ".json";
  EXPECT_EQ(files, 3);
  // Reopened with a smaller bound: the most recently written are kept, the
  // other files removed.
  auto smaller = ProfileStore::Open({tmp.path(), kAppId, /*max_profiles=*/1});
  ASSERT_THAT(smaller, IsOk());
  EXPECT_EQ((*smaller)->size(), 1u);
  EXPECT_TRUE((*smaller)->Get(classes[4].key).has_value());
  files = 0;
  for (const auto& e : fs::directory_iterator(store->directory())) files += e.path().extension() == ".json";
  EXPECT_EQ(files, 1);
}

// A cold success seeds the warm estimate (its growth minus what the worker
// kept); the first warm measurement replaces it unless it saw nothing.
TEST(ProfileStoreTest, SeededWarmEstimateUntilAWarmMeasurement) {
  TempDir tmp;
  auto store = OpenOrDie(tmp.path());
  ASSERT_NE(store, nullptr);
  const RequestClass c = Class("{}");
  store->SeedWarm(c, 1 * kGiB);  // no profile yet: nothing to seed
  EXPECT_FALSE(store->Get(c.key).has_value());
  ASSERT_THAT(store->Record(c, {}, 11 * kGiB, /*warm=*/false, 1, "d"), IsOk());
  store->SeedWarm(c, 1 * kGiB);
  EXPECT_EQ(store->Get(c.key)->warm_peak_bytes, 1 * kGiB);
  EXPECT_TRUE(HasWarmMeasurement(*store->Get(c.key)));
  ASSERT_THAT(store->Record(c, {}, 0, /*warm=*/true, 1, "d"), IsOk());  // the sampler missed it
  EXPECT_EQ(store->Get(c.key)->warm_peak_bytes, 1 * kGiB);
  TempDir tmp2;
  auto other = OpenOrDie(tmp2.path());
  ASSERT_THAT(other->Record(c, {}, 11 * kGiB, false, 1, "d"), IsOk());
  other->SeedWarm(c, 1 * kGiB);
  ASSERT_THAT(other->Record(c, {}, 700 * kMiB, true, 1, "d"), IsOk());
  EXPECT_EQ(other->Get(c.key)->warm_peak_bytes, 700 * kMiB);  // measured: replaces the seed
  other->SeedWarm(c, 2 * kGiB);                               // measured already: no more seeds
  EXPECT_EQ(other->Get(c.key)->warm_peak_bytes, 700 * kMiB);
}

// Only changes that move an estimate are written at once; others wait for
// Flush() (issue 15: no file write and rename per request).
TEST(ProfileStoreTest, DurationOnlyUpdatesAreWrittenByFlush) {
  TempDir tmp;
  auto store = OpenOrDie(tmp.path());
  ASSERT_NE(store, nullptr);
  const RequestClass c = Class("{}");
  ASSERT_THAT(store->Record(c, {}, 1000, false, 100, "d"), IsOk());
  ASSERT_THAT(store->Record(c, {}, 900, false, 300, "d"), IsOk());  // no new peak
  EXPECT_EQ(OpenOrDie(tmp.path())->Get(c.key)->samples, 1u);     // not written yet
  ASSERT_THAT(store->Flush(), IsOk());
  auto reread = OpenOrDie(tmp.path())->Get(c.key);
  EXPECT_EQ(reread->samples, 2u);
  EXPECT_DOUBLE_EQ(reread->mean_duration_ms, 200.0);
  // A higher peak is written at once.
  ASSERT_THAT(store->Record(c, {}, 2000, false, 100, "d"), IsOk());
  EXPECT_EQ(OpenOrDie(tmp.path())->Get(c.key)->peak_bytes, 2000u);
}

TEST(ProfileStoreTest, RejectsInvalidKeysAndOtherApps) {
  TempDir tmp;
  auto store = OpenOrDie(tmp.path());
  ASSERT_NE(store, nullptr);
  RequestClass bad = Class("{}");
  bad.key = "../../escape";
  EXPECT_THAT(store->Record(bad, {}, 1, false, 1, "d"),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("invalid request class key")));
  EXPECT_THAT(store->RecordOom(bad, {}, false, 1, "d"),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("invalid request class key")));
  RequestClass other = RequestClass::Make("other-app", "v1", "{}");
  EXPECT_THAT(store->Record(other, {}, 1, false, 1, "d"),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("other-app")));
  EXPECT_EQ(store->size(), 0u);
}

TEST(ProfileStoreTest, AFailedWriteKeepsTheMeasurementInMemory) {
  TempDir tmp;
  auto store = OpenOrDie(tmp.path());
  ASSERT_NE(store, nullptr);
  // Replace the directory by a file: no write can succeed (even as root).
  fs::remove_all(store->directory());
  WriteFileOrDie(store->directory(), "in the way");
  LogCapture logs;
  const RequestClass c = Class("{}");
  EXPECT_THAT(store->Record(c, {}, 77, false, 1, "d"),
              StatusIs(StatusCode::kFailedPrecondition, HasSubstr("cannot write memory profile")));
  EXPECT_EQ(store->Get(c.key)->peak_bytes, 77u);
  EXPECT_THAT(logs.warnings(), SizeIs(1));
}

TEST(ProfileStoreTest, ADeletedDirectoryIsRecreated) {
  TempDir tmp;
  auto store = OpenOrDie(tmp.path());
  ASSERT_NE(store, nullptr);
  fs::remove_all(store->directory());
  ASSERT_THAT(store->Record(Class("{}"), {}, 5, false, 1, "d"), IsOk());
  EXPECT_TRUE(fs::exists(store->directory() / ("memory_" + Class("{}").key + ".json")));
}

TEST(ProfileStoreTest, RemoveAndClear) {
  TempDir tmp;
  auto store = OpenOrDie(tmp.path());
  ASSERT_NE(store, nullptr);
  const RequestClass a = Class(R"({"a":1})");
  const RequestClass b = Class(R"({"b":1})");
  ASSERT_THAT(store->Record(a, {}, 1, false, 1, "d"), IsOk());
  ASSERT_THAT(store->Record(b, {}, 2, false, 1, "d"), IsOk());
  WriteFileOrDie(store->directory() / "memory_corrupt.json", "{");
  WriteFileOrDie(store->directory() / "keep.txt", "mine");

  ASSERT_THAT(store->Remove(a.key), IsOk());
  EXPECT_EQ(store->Get(a.key), std::nullopt);
  EXPECT_FALSE(fs::exists(store->directory() / ("memory_" + a.key + ".json")));
  EXPECT_THAT(store->Remove(a.key), StatusIs(StatusCode::kNotFound, HasSubstr(a.key)));
  EXPECT_THAT(store->Remove("../x"), StatusIs(StatusCode::kInvalidArgument, HasSubstr("../x")));
  // A corrupt file was never loaded but can be removed by key.
  ASSERT_THAT(store->Remove("corrupt"), IsOk());

  WriteFileOrDie(store->directory() / "memory_corrupt2.json", "{");
  ASSERT_THAT(store->Clear(), IsOk());
  EXPECT_EQ(store->size(), 0u);
  EXPECT_FALSE(fs::exists(store->directory() / ("memory_" + b.key + ".json")));
  EXPECT_FALSE(fs::exists(store->directory() / "memory_corrupt2.json"));
  EXPECT_TRUE(fs::exists(store->directory() / "keep.txt"));
}

TEST(ProfileStoreTest, OpenRemovesTemporaryFilesOfDeadWriters) {
  TempDir tmp;
  const fs::path dir = tmp.path() / kAppDir;
  fs::create_directories(dir);
  // PID 2^31 - 1 is above any pid_max, so no such process exists.
  const fs::path dead = dir / ".memory_abc.2147483647.0.tmp";
  const fs::path alive = dir / (".memory_abc." + std::to_string(::getpid()) + ".0.tmp");
  WriteFileOrDie(dead, "{");
  WriteFileOrDie(alive, "{");
  auto store = OpenOrDie(tmp.path());
  ASSERT_NE(store, nullptr);
  EXPECT_FALSE(fs::exists(dead));
  EXPECT_TRUE(fs::exists(alive));
  EXPECT_EQ(store->size(), 0u);
}

}  // namespace
}  // namespace clams::vram
