#include "clams/app/runner.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "clams/mmif/mmif.h"
#include "testing/status_matchers.h"

namespace clams {
namespace {

using ::clams::testing::IsOk;
using ::clams::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::StartsWith;
namespace vocab = mmif::vocab;

constexpr char kInput[] =
    R"({"metadata": {"mmif": "http://mmif.clams.ai/1.1.0"}, "documents": [{"@type": "http://mmif.clams.ai/vocabulary/TextDocument/v1", "properties": {"id": "d1", "text": {"@value": "hello"}}}], "views": []})";

class FakeApp : public App {
 public:
  AppMetadata Metadata() const override {
    AppMetadata m;
    m.name = "Fake";
    m.description = "d";
    m.app_license = "MIT";
    m.identifier = "fake";
    m.app_version = "v2";
    m.url = "https://example.org";
    (void)m.AddParameter({.name = "fail", .description = "d", .type = ParamType::kString, .default_value = ""});
    (void)m.AddParameter({.name = "views", .description = "d", .type = ParamType::kInteger, .default_value = 1});
    (void)m.AddAppTag("tag1");
    return m;
  }
  Status Annotate(mmif::Mmif& doc, const Params& params) override {
    ++calls;
    const int now = ++concurrent;
    max_concurrent = std::max(max_concurrent.load(), now);
    std::this_thread::sleep_for(std::chrono::milliseconds(sleep_ms));
    for (int i = 0; i < params.GetInt("views"); ++i) {
      mmif::View v = doc.NewView();
      v.NewAnnotation(vocab::kTimeFrame, {{"start", 1}, {"end", 2}});
    }
    --concurrent;
    const std::string fail = params.GetString("fail");
    if (fail == "throw") throw std::invalid_argument("bad thing");
    if (fail == "status") return NotFoundError("no model");
    if (fail == "oom") return ResourceExhaustedError("CUDA out of memory. Tried to allocate 2.00 GiB");
    // An error whose text quotes the input: words are never evidence.
    if (fail == "words") return UnknownError("cannot open file:///nonexistent/out of memory.txt");
    if (fail == "warn") Warn("careful");
    return Status::Ok();
  }
  bool thread_safe() const override { return safe; }
  std::atomic<int> calls{0};
  std::atomic<int> concurrent{0};
  std::atomic<int> max_concurrent{0};
  int sleep_ms = 0;
  bool safe = false;
};

std::unique_ptr<AppRunner> MakeRunner(App& app) {
  auto r = AppRunner::Create(app);
  EXPECT_THAT(r, IsOk());
  return std::move(r).value();
}

json::value Parse(const std::string& body) {
  auto v = mmif::ParseJson(body);
  EXPECT_THAT(v, IsOk()) << body;
  return v.ok() ? *v : json::value();
}

TEST(AppRunnerTest, SignsEveryNewViewWithOneTimestamp) {
  FakeApp app;
  auto runner = MakeRunner(app);
  AnnotateOutcome o = runner->Run(kInput, RawParams{{"views", {"2"}}});
  ASSERT_EQ(o.http_status, 200) << o.body;
  json::value out = Parse(o.body);
  const auto& views = out.at("views").as_array();
  ASSERT_EQ(views.size(), 2u);
  EXPECT_EQ(o.new_view_ids, (std::vector<std::string>{"v_0", "v_1"}));
  for (const auto& v : views) {
    const auto& md = v.at("metadata").as_object();
    EXPECT_EQ(md.at("app"), "http://apps.clams.ai/fake/v2");
    EXPECT_EQ(md.at("timestamp"), views[0].at("metadata").at("timestamp"));
    EXPECT_EQ(md.at("parameters"), (json::object{{"views", "2"}}));
    EXPECT_EQ(md.at("appConfiguration").at("views"), 2);
    EXPECT_EQ(md.at("appTags"), (json::array{"tag1"}));
    EXPECT_TRUE(md.at("appProfiling").as_object().contains("runningTime"));
    EXPECT_FALSE(md.at("appProfiling").as_object().contains("hardware"));
  }
}

TEST(AppRunnerTest, HwFetchAddsHardwareFromTheHook) {
  FakeApp app;
  auto runner = AppRunner::Create(app, AppRunner::Options{.cpu_description = "x86_64, 8 cores"});
  ASSERT_THAT(runner, IsOk());
  RunHooks hooks;
  hooks.cuda_hardware = [] { return json::array{"GPU, 100 MiB total, 90 MiB available, 5 MiB peak used"}; };
  AnnotateOutcome o = (*runner)->Run(kInput, RawParams{{"hwFetch", {"true"}}, {"runningTime", {"false"}}}, hooks);
  ASSERT_EQ(o.http_status, 200);
  EXPECT_TRUE(o.hw_fetch);
  json::value out = Parse(o.body);
  const auto& profiling = out.at("views").as_array()[0].at("metadata").at("appProfiling");
  EXPECT_EQ(profiling, (json::object{{"hardware", json::object{{"cpu", "x86_64, 8 cores"},
                                                               {"cuda", json::array{"GPU, 100 MiB total, 90 MiB "
                                                                                    "available, 5 MiB peak used"}}}}}));
  AnnotateOutcome none = (*runner)->Run(kInput, RawParams{{"hwFetch", {"true"}}});
  EXPECT_EQ(Parse(none.body).at("views").as_array()[0].at("metadata").at("appProfiling").at("hardware").at("cuda"),
            json::array{});
}

TEST(AppRunnerTest, FailuresBecomeErrorViewsOnAFreshView) {
  FakeApp app;
  auto runner = MakeRunner(app);
  AnnotateOutcome thrown = runner->Run(kInput, RawParams{{"fail", {"throw"}}});
  EXPECT_EQ(thrown.http_status, 500);
  EXPECT_EQ(thrown.failure, FailureKind::kAppError);
  json::value out = Parse(thrown.body);
  ASSERT_EQ(out.at("views").as_array().size(), 1u);  // the app's partial view is gone
  const auto& md = out.at("views").as_array()[0].at("metadata").as_object();
  EXPECT_EQ(md.at("error"), (json::object{{"message", "std::invalid_argument: bad thing"}}));
  EXPECT_EQ(md.at("parameters"), (json::object{{"fail", "throw"}}));
  EXPECT_TRUE(md.contains("appConfiguration"));
  AnnotateOutcome status = runner->Run(kInput, RawParams{{"fail", {"status"}}});
  EXPECT_EQ(Parse(status.body).at("views").as_array()[0].at("metadata").at("error").at("message"),
            "NOT_FOUND: no model");
  AnnotateOutcome oom = runner->Run(kInput, RawParams{{"fail", {"oom"}}});
  EXPECT_EQ(oom.http_status, 500);
  EXPECT_EQ(oom.failure, FailureKind::kAppOom);
  EXPECT_EQ(oom.oom_tried_bytes, 2ull << 30);
}

// Issue 9.2: only the app's typed kResourceExhausted is an OOM; "out of
// memory" in a message (a path from the input) is an ordinary app error.
TEST(AppRunnerTest, Issue9OutOfMemoryWordsInAMessageAreNotAnOom) {
  FakeApp app;
  auto runner = MakeRunner(app);
  AnnotateOutcome o = runner->Run(kInput, RawParams{{"fail", {"words"}}});
  EXPECT_EQ(o.http_status, 500);
  EXPECT_EQ(o.failure, FailureKind::kAppError);
  EXPECT_EQ(o.oom_tried_bytes, 0u);
}

TEST(AppRunnerTest, RunPreparedRunsExactlyTheGivenParametersOnTheGivenMmif) {
  FakeApp app;
  auto runner = MakeRunner(app);
  // The text is the MMIF only: even a top-level "parameters" key would not
  // be read as an envelope (and is invalid MMIF).
  AnnotateOutcome o = runner->RunPrepared(kInput, RawParams{{"views", {"3"}}});
  ASSERT_EQ(o.http_status, 200) << o.body;
  EXPECT_EQ(Parse(o.body).at("views").as_array().size(), 3u);
  const std::string envelope = std::string(R"({"parameters": {"views": "2"}, "mmif": )") + kInput + "}";
  AnnotateOutcome e = runner->RunPrepared(envelope, RawParams{});
  EXPECT_EQ(e.http_status, 400);
  EXPECT_EQ(e.failure, FailureKind::kBadInput);
}

TEST(AppRunnerTest, WarningsViewCollectsUndeclaredAndAppWarnings) {
  FakeApp app;
  auto runner = MakeRunner(app);
  AnnotateOutcome o = runner->Run(kInput, RawParams{{"fail", {"warn"}}, {"extra", {"1", "2"}}});
  ASSERT_EQ(o.http_status, 200);
  json::value out = Parse(o.body);
  const auto& views = out.at("views").as_array();
  ASSERT_EQ(views.size(), 2u);
  EXPECT_EQ(views[1].at("metadata").at("warnings"),
            (json::array{"An undefined parameter \"extra\" (value: \"['1', '2']\") is passed", "careful"}));
  EXPECT_EQ(o.new_view_ids.size(), 2u);
}

TEST(AppRunnerTest, BadInputIsPlainTextAndBadParametersAnErrorView) {
  FakeApp app;
  auto runner = MakeRunner(app);
  AnnotateOutcome bad = runner->Run("{", {});
  EXPECT_EQ(bad.http_status, 400);
  EXPECT_EQ(bad.content_type, "text/plain; charset=utf-8");
  EXPECT_THAT(bad.body, StartsWith(std::string(kInvalidInputPrefix)));
  EXPECT_EQ(app.calls.load(), 0);
  AnnotateOutcome param = runner->Run(kInput, RawParams{{"views", {"many"}}});
  EXPECT_EQ(param.http_status, 400);
  EXPECT_EQ(param.failure, FailureKind::kBadParameters);
  EXPECT_EQ(param.content_type, "application/json");
  EXPECT_EQ(app.calls.load(), 0);
}

TEST(AppRunnerTest, NotThreadSafeAppsAreSerialized) {
  FakeApp app;
  app.sleep_ms = 20;
  auto runner = MakeRunner(app);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) threads.emplace_back([&] { (void)runner->Run(kInput, {}); });
  for (auto& t : threads) t.join();
  EXPECT_EQ(app.max_concurrent.load(), 1);

  FakeApp safe;
  safe.safe = true;
  safe.sleep_ms = 50;
  auto parallel = MakeRunner(safe);
  std::vector<std::thread> more;
  for (int i = 0; i < 4; ++i) more.emplace_back([&] { (void)parallel->Run(kInput, {}); });
  for (auto& t : more) t.join();
  EXPECT_GT(safe.max_concurrent.load(), 1);
}

TEST(AppRunnerTest, PrepareParamsReadsTheEnvelopeWithoutParsingTheMmif) {
  FakeApp app;
  auto runner = MakeRunner(app);
  auto p = runner->PrepareParams(R"({"parameters": {"views": 3}, "mmif": {"broken": )", RawParams{});
  // The envelope keys before the broken part are enough.
  ASSERT_THAT(p, StatusIs(StatusCode::kInvalidArgument, HasSubstr("malformed JSON")));
  auto ok = runner->PrepareParams(std::string(R"({"parameters": {"views": 3}, "mmif": )") + kInput + "}",
                                  RawParams{{"views", {"4"}}});
  ASSERT_THAT(ok, IsOk());
  EXPECT_THAT(ok->refine_status, IsOk());
  EXPECT_EQ(ok->params.GetInt("views"), 4);
  auto bad = runner->PrepareParams(kInput, RawParams{{"views", {"x"}}});
  ASSERT_THAT(bad, IsOk());
  EXPECT_THAT(bad->refine_status, StatusIs(StatusCode::kInvalidArgument, HasSubstr("must be an integer")));
}

TEST(ScanEnvelopeTest, FindsTopLevelKeysOnly) {
  auto s = ScanEnvelope(R"( {"mmif": {"parameters": 1}, "parameters": {"a": "}"} } )");
  ASSERT_THAT(s, IsOk());
  EXPECT_TRUE(s->is_object);
  EXPECT_TRUE(s->has_mmif);
  EXPECT_TRUE(s->has_parameters);
  EXPECT_EQ(s->parameters_text, R"({"a": "}"})");
  auto plain = ScanEnvelope(kInput);
  ASSERT_THAT(plain, IsOk());
  EXPECT_FALSE(plain->has_parameters);
  auto arr = ScanEnvelope("[1, 2]");
  ASSERT_THAT(arr, IsOk());
  EXPECT_FALSE(arr->is_object);
}

// A key written with JSON escapes is the same key to the full parser (which
// the worker uses), so the front's scan must see it too.
TEST(ScanEnvelopeTest, KeysWithEscapesAreDecoded) {
  auto s = ScanEnvelope(R"({"param\u0065ters": {"a": 1}, "\u006dmif": {}})");
  ASSERT_THAT(s, IsOk());
  EXPECT_TRUE(s->has_parameters);
  EXPECT_TRUE(s->has_mmif);
  EXPECT_EQ(s->parameters_text, R"({"a": 1})");
  EXPECT_THAT(ScanEnvelope(R"({"bad\x": 1})"), StatusIs(StatusCode::kInvalidArgument, "malformed JSON: bad key"));
}

TEST(FormatTest, RunningTimeMatchesPythonTimedelta) {
  using std::chrono::microseconds;
  EXPECT_EQ(FormatRunningTime(microseconds(515)), "0:00:00.000515");
  EXPECT_EQ(FormatRunningTime(microseconds(2'000'000)), "0:00:02");
  EXPECT_EQ(FormatRunningTime(microseconds(3'723'456'789)), "1:02:03.456789");
  EXPECT_EQ(FormatRunningTime(microseconds(86'401'500'000)), "1 day, 0:00:01.500000");
  EXPECT_EQ(FormatRunningTime(microseconds(2LL * 86'400'000'000)), "2 days, 0:00:00");
}

TEST(FormatTest, TriedToAllocateSizes) {
  EXPECT_EQ(ParseTriedToAllocate("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 23.6 GiB total)"),
            2ull << 30);
  EXPECT_EQ(ParseTriedToAllocate("Tried to allocate 20 MiB"), 20ull << 20);
  EXPECT_EQ(ParseTriedToAllocate("Tried to allocate 1.5 GB"), 3ull << 29);
  EXPECT_EQ(ParseTriedToAllocate("Tried to allocate 512 bytes"), 512u);
  EXPECT_EQ(ParseTriedToAllocate("no room for this"), 0u);
  EXPECT_EQ(ParseTriedToAllocate("Tried to allocate lots"), 0u);
  EXPECT_EQ(ParseTriedToAllocate("Tried to allocate 99999999999 TiB"), 0u);  // not a real allocation
}

}  // namespace
}  // namespace clams
