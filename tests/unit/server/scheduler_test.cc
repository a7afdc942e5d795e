// Unit tests of the scheduler (issue 9) against a fake executor and a manual
// clock: every transition of a request, without processes, sockets or sleeps.
#include "server/scheduler.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <deque>
#include <functional>
#include <memory>
#include <optional>

#include "clams/app/app.h"
#include "clams/mmif/json.h"
#include "testing/fake_probe.h"
#include "testing/manual_timers.h"
#include "testing/testing.h"

namespace clams::server {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;
using namespace std::chrono_literals;  // NOLINT(build/namespaces)

constexpr std::uint64_t kGiB = std::uint64_t{1} << 30;
constexpr char kMmif[] =
    R"({"metadata": {"mmif": "http://mmif.clams.ai/1.1.0"}, "documents": [{"@type": "http://mmif.clams.ai/vocabulary/TextDocument/v1", "properties": {"id": "d1", "text": {"@value": "hi"}}}], "views": []})";

// An app with a `model` parameter that declares 2, 4 or 8 GiB.
class ModelApp : public App {
 public:
  AppMetadata Metadata() const override {
    AppMetadata m;
    m.name = "Model App";
    m.description = "d";
    m.app_license = "MIT";
    m.identifier = "model-app";
    m.app_version = "v1";
    m.url = "https://example.org";
    (void)m.AddParameter({.name = "model", .description = "size", .type = ParamType::kString,
                          .choices = {"s", "m", "l"}, .default_value = "s"});
    (void)m.AddParameter({.name = "holdMs", .description = "t", .type = ParamType::kInteger, .default_value = 0});
    return m;
  }
  Status Annotate(mmif::Mmif&, const Params&) override { return Status::Ok(); }
  std::optional<std::uint64_t> EstimateVram(const Params& params) const override {
    const std::string m = params.GetString("model");
    return (m == "s" ? 2 : m == "m" ? 4 : 8) * kGiB;
  }
  std::vector<std::string> ClassParameters() const override { return {"model"}; }
};

// An executor whose workers and answers the test controls.
class FakeExecutor : public Executor {
 public:
  struct Call {
    int worker = 0;
    std::shared_ptr<ExecRequest> request;
    std::function<void(ExecResult)> done;
  };
  std::string_view kind() const override { return "process"; }
  Status Start(EventSink sink) override {
    sink_ = std::move(sink);
    return Status::Ok();
  }
  void Dispatch(int worker_id, std::shared_ptr<ExecRequest> request, std::function<void(ExecResult)> done) override {
    if (refuse_next) {
      refuse_next = false;
      ExecResult r;
      r.fate = ExecResult::Fate::kNotSent;
      r.fate_text = "worker " + std::to_string(worker_id) + " has no free slot";
      done(std::move(r));
      return;
    }
    calls.push_back({worker_id, std::move(request), std::move(done)});
  }
  void Recycle(int worker_id, KillCause cause) override { recycled.emplace_back(worker_id, cause); }
  bool Kill(int worker_id, KillCause cause) override {
    killed.emplace_back(worker_id, cause);
    return true;
  }
  void ReplaceAll() override {}
  int Scale(int) override { return 0; }
  void Shutdown(std::function<void()> done) override { done(); }

  void Up(int id, int device = 0, int threads = 1) {
    WorkerEvent e;
    e.worker_id = id;
    e.pid = 1000 + id;
    e.device = device;
    e.threads = threads;
    e.kind = WorkerEvent::Kind::kStarted;
    sink_(e);
    e.kind = WorkerEvent::Kind::kReady;
    sink_(e);
  }
  // Completes the oldest dispatched call.
  void Finish(ExecResult r) {
    ASSERT_FALSE(calls.empty());
    Call c = std::move(calls.front());
    calls.pop_front();
    c.done(std::move(r));
  }

  std::deque<Call> calls;
  std::vector<std::pair<int, KillCause>> recycled;
  std::vector<std::pair<int, KillCause>> killed;
  bool refuse_next = false;

 private:
  EventSink sink_;
};

ExecResult Ok(std::string body = kMmif) {
  ExecResult r;
  r.answer.http_status = 200;
  r.answer.content_type = "application/json";
  r.answer.body = std::move(body);
  return r;
}

ExecResult Died(int signal, KillCause cause, std::string text) {
  ExecResult r;
  r.fate = ExecResult::Fate::kWorkerDied;
  r.signal = signal;
  r.cause = cause;
  r.fate_text = std::move(text);
  return r;
}

class SchedulerTest : public ::testing::Test {
 protected:
  void Make(SchedulerOptions options = {}, bool gpus = false) {
    runner_ = std::move(AppRunner::Create(app_)).value();
    if (gpus) {
      sampler_ = vram::Sampler::Start(&probe_, ManualSampling());
      auto store = vram::ProfileStore::Open({dir_.path(), runner_->metadata().identifier});
      ASSERT_TRUE(store.ok());
      profiles_ = std::move(store).value();
    }
    DeclareServerMetrics(metrics_);
    scheduler_ = std::make_unique<Scheduler>(timers_, *runner_, executor_, sampler_.get(), profiles_.get(), metrics_,
                                             options);
    ASSERT_TRUE(executor_.Start([this](const WorkerEvent& e) { scheduler_->OnWorkerEvent(e); }).ok());
  }
  static vram::Sampler::Options ManualSampling() {
    vram::Sampler::Options o;
    o.busy_interval = std::chrono::hours(1);
    o.idle_interval = std::chrono::hours(1);
    return o;
  }

  // Submits a request; its answer lands in the returned slot.
  std::shared_ptr<std::optional<HttpResponse>> Submit(const std::string& query, std::string body = kMmif,
                                                      std::shared_ptr<CancelSignal> cancel = nullptr) {
    auto answer = std::make_shared<std::optional<HttpResponse>>();
    AnnotateCall call;
    call.request.method = "POST";
    call.request.body = std::move(body);
    call.query = RawParams::FromQuery(query).value();
    call.request_id = "req-" + std::to_string(++submitted_);
    call.respond = [answer](HttpResponse r) { *answer = std::move(r); };
    call.cancel = std::move(cancel);
    scheduler_->Submit(std::move(call));
    return answer;
  }
  // Usage of worker `id` on device 0 (its process and the device total).
  void Use(int id, std::uint64_t bytes) {
    probe_.SetProcess(1000 + id, 0, bytes);
    used_[id] = bytes;
    std::uint64_t total = 0;
    for (const auto& [w, b] : used_) total += b;
    probe_.SetDeviceUsed(0, total);
  }
  static std::string ErrorMessage(const HttpResponse& r) {
    auto v = mmif::ParseJson(r.body);
    if (!v.ok()) return "";
    return std::string(v->at("views").as_array().back().at("metadata").at("error").at("message").as_string());
  }
  static std::string Header(const HttpResponse& r, std::string_view name) {
    return std::string(FindHeader(r.headers, name));
  }
  double Metric(const std::string& name, const Labels& labels = {}) { return metrics_.Value(name, labels); }
  // The profile key of ModelApp's class for `model`.
  std::string RequestClassKey(const std::string& model) const {
    return vram::RequestClass::Make(runner_->metadata().identifier, "v1", "{\"model\":\"" + model + "\"}").key;
  }

  ModelApp app_;
  std::unique_ptr<AppRunner> runner_;
  testing::ManualTimers timers_;
  testing::FakeProbe probe_;
  testing::TempDir dir_;
  std::unique_ptr<vram::Sampler> sampler_;
  std::unique_ptr<vram::ProfileStore> profiles_;
  Metrics metrics_;
  FakeExecutor executor_;
  std::unique_ptr<Scheduler> scheduler_;
  std::map<int, std::uint64_t> used_;
  int submitted_ = 0;
};

TEST_F(SchedulerTest, ARequestIsDispatchedWithTheDecodedParametersAndAnswered) {
  Make();
  executor_.Up(1);
  auto answer = Submit("model=m", std::string(R"({"parameters": {"holdMs": "5"}, "mmif": )") + kMmif + "}");
  ASSERT_EQ(executor_.calls.size(), 1u);
  const wire::Call& call = executor_.calls.front().request->call;
  EXPECT_EQ(call.mmif(), kMmif);  // the envelope is unwrapped by the front
  EXPECT_EQ(call.params.entries(), (RawParams{{"holdMs", {"5"}}, {"model", {"m"}}}).entries());
  EXPECT_EQ(call.request_id, "req-1");
  EXPECT_FALSE(answer->has_value());
  executor_.Finish(Ok());
  ASSERT_TRUE(answer->has_value());
  EXPECT_EQ((*answer)->status, 200);
  EXPECT_EQ(Metric("clams_requests_total", {{"code", "200"}}), 1);
}

TEST_F(SchedulerTest, ARequestThatCouldNotBeSentWaitsAgainFirstInLine) {
  Make();
  executor_.Up(1);
  executor_.refuse_next = true;
  auto first = Submit("");
  EXPECT_TRUE(executor_.calls.empty());  // refused: back in the queue, not lost
  EXPECT_FALSE(first->has_value());
  timers_.Advance(100ms);  // the recheck
  ASSERT_EQ(executor_.calls.size(), 1u);
  auto second = Submit("");  // arrives later: waits behind it
  ASSERT_EQ(executor_.calls.size(), 1u);
  EXPECT_EQ(executor_.calls.front().request->call.request_id, "req-1");
  executor_.Finish(Ok());
  EXPECT_EQ((*first)->status, 200);
  ASSERT_EQ(executor_.calls.size(), 1u);
  executor_.Finish(Ok());
  EXPECT_EQ((*second)->status, 200);
}

TEST_F(SchedulerTest, BadInputIsAnsweredWithoutAWorker) {
  Make();
  executor_.Up(1);
  auto bad = Submit("model=m", "not json");
  ASSERT_TRUE(bad->has_value());
  EXPECT_EQ((*bad)->status, 400);
  EXPECT_THAT((*bad)->body, StartsWith("Invalid input data. See below for validation error.\n\n"));
  auto bad_value = Submit("model=xl");
  ASSERT_TRUE(bad_value->has_value());
  EXPECT_EQ((*bad_value)->status, 400);
  EXPECT_THAT(ErrorMessage(**bad_value), HasSubstr("must be one of"));
  EXPECT_TRUE(executor_.calls.empty());
}

// Issue 10.1: an external app with a required parameter: refining without it
// aborted the front; now it is a 400 error view.
TEST_F(SchedulerTest, Issue10MissingRequiredParameterIsA400NotAnAbort) {
  class Required : public ModelApp {
    AppMetadata Metadata() const override {
      AppMetadata m = ModelApp::Metadata();
      (void)m.AddParameter({.name = "prompt", .description = "required", .type = ParamType::kString});
      return m;
    }
  };
  Required app;
  runner_ = std::move(AppRunner::Create(app)).value();
  DeclareServerMetrics(metrics_);
  SchedulerOptions o;
  o.external = true;
  scheduler_ = std::make_unique<Scheduler>(timers_, *runner_, executor_, nullptr, nullptr, metrics_, o);
  ASSERT_TRUE(executor_.Start([this](const WorkerEvent& e) { scheduler_->OnWorkerEvent(e); }).ok());
  executor_.Up(1);
  auto r = Submit("");
  ASSERT_TRUE(r->has_value());
  EXPECT_EQ((*r)->status, 400);
  EXPECT_THAT(ErrorMessage(**r), HasSubstr("Cannot find configuration for a required parameter \"prompt\""));
}

TEST_F(SchedulerTest, CrashTimeoutAndLostConnectionAnswers) {
  Make();
  executor_.Up(1);
  auto crash = Submit("");
  executor_.Finish(Died(SIGSEGV, KillCause::kNone, "worker 1 was killed by signal 11 (SIGSEGV) while running the request"));
  EXPECT_EQ((*crash)->status, 500);
  EXPECT_THAT(ErrorMessage(**crash), HasSubstr("signal 11 (SIGSEGV)"));
  auto timeout = Submit("");
  ExecResult t;
  t.fate = ExecResult::Fate::kTimedOut;
  t.cause = KillCause::kRequestTimeout;
  t.fate_text = "the request ran longer than --request-timeout";
  executor_.Finish(t);
  EXPECT_EQ((*timeout)->status, 504);
  auto lost = Submit("");
  ExecResult l;
  l.fate = ExecResult::Fate::kLost;
  l.fate_text = "lost the connection to worker 1";
  executor_.Finish(l);
  EXPECT_EQ((*lost)->status, 500);
  // A kill the server sent for another reason: the request may retry.
  auto shut = Submit("");
  executor_.Finish(Died(SIGTERM, KillCause::kShutdown, "worker 1 was stopped because the server is shutting down"));
  EXPECT_EQ((*shut)->status, 503);
  EXPECT_FALSE(Header(**shut, "Retry-After").empty());
}

TEST_F(SchedulerTest, QueueDeadlineNamesWhatTheRequestWaitedFor) {
  SchedulerOptions o;
  o.queue_timeout = 2s;
  Make(o);
  executor_.Up(1);
  auto running = Submit("");
  auto waiting = Submit("");
  ASSERT_EQ(executor_.calls.size(), 1u);
  timers_.Advance(1999ms);
  EXPECT_FALSE(waiting->has_value());
  timers_.Advance(1ms);
  ASSERT_TRUE(waiting->has_value());
  EXPECT_EQ((*waiting)->status, 503);
  EXPECT_THAT(ErrorMessage(**waiting), HasSubstr("waited 2 s (--queue-timeout) without being admitted: it waited for "
                                                 "a free worker: all 1 worker slot(s) were busy or starting"));
  EXPECT_THAT(ErrorMessage(**waiting), HasSubstr("(request req-2)"));
  EXPECT_EQ(Metric("clams_admission_rejections_total", {{"reason", "queue_timeout"}}), 1);
  executor_.Finish(Ok());
  EXPECT_EQ((*running)->status, 200);
}

// Issue 10.5: refusals cost O(1): the queue bounds are checked before the
// body is looked at, and a large body is never echoed.
TEST_F(SchedulerTest, QueueBoundsRefuseAtOnceWithoutReadingTheBody) {
  SchedulerOptions o;
  o.max_queue = 1;
  o.max_queued_bytes = 1000;
  Make(o);
  executor_.Up(1);
  auto running = Submit("");
  auto queued = Submit("");
  auto full = Submit("", "not json at all");  // refused before any parse: not a 400
  ASSERT_TRUE(full->has_value());
  EXPECT_EQ((*full)->status, 503);
  EXPECT_THAT(ErrorMessage(**full), HasSubstr("the queue is full: 1 requests are already waiting (--max-queue)"));
  EXPECT_FALSE(Header(**full, "Retry-After").empty());
  executor_.Finish(Ok());  // the queued one starts; the queue is empty again
  const std::string big(100000, ' ');
  auto too_big = Submit("", std::string(kMmif) + big);
  ASSERT_TRUE(too_big->has_value());
  EXPECT_EQ((*too_big)->status, 503);
  EXPECT_THAT(ErrorMessage(**too_big), HasSubstr("(--max-queued-bytes)"));
  EXPECT_LT((*too_big)->body.size(), 2000u);  // not an echo of the 100 KB body
  EXPECT_EQ(Metric("clams_admission_rejections_total", {{"reason", "queue_full"}}), 1);
  EXPECT_EQ(Metric("clams_admission_rejections_total", {{"reason", "queued_bytes"}}), 1);
}

TEST_F(SchedulerTest, ClientGoneQueuedLeavesRunningIsCancelledAfterTheGrace) {
  SchedulerOptions o;
  o.client_gone_grace = 3s;
  Make(o);
  executor_.Up(1);
  auto running_cancel = std::make_shared<CancelSignal>();
  auto running = Submit("", kMmif, running_cancel);
  auto queued_cancel = std::make_shared<CancelSignal>();
  auto queued = Submit("", kMmif, queued_cancel);
  queued_cancel->Cancel();
  EXPECT_EQ(Metric("clams_client_gone_total"), 1);
  running_cancel->Cancel();
  timers_.Advance(2999ms);
  EXPECT_TRUE(executor_.killed.empty());
  timers_.Advance(1ms);
  ASSERT_EQ(executor_.killed.size(), 1u);
  EXPECT_EQ(executor_.killed[0], std::make_pair(1, KillCause::kClientGone));
  executor_.Finish(Died(SIGKILL, KillCause::kClientGone, "worker 1 was stopped because its client went away"));
  EXPECT_EQ(Metric("clams_client_gone_total"), 2);
  // Not admission refusals.
  EXPECT_EQ(Metric("clams_admission_rejections_total", {{"reason", "client_gone"}}), 0);
  EXPECT_FALSE(queued->has_value());  // it left without an answer
}

TEST_F(SchedulerTest, DrainRefusesNewRequestsAndWaitsForRunningOnes) {
  Make();
  executor_.Up(1);
  auto running = Submit("");
  bool drained = false;
  scheduler_->Drain(10s, [&] { drained = true; });
  auto late = Submit("");
  ASSERT_TRUE(late->has_value());
  EXPECT_EQ((*late)->status, 503);
  EXPECT_THAT(ErrorMessage(**late), HasSubstr("shutting down"));
  EXPECT_FALSE(drained);
  executor_.Finish(Ok());
  EXPECT_TRUE(drained);
}

// --- with a (fake) GPU --------------------------------------------------------------------

// Issue 9.2: an OOM counts only with evidence; a confirmed one sets a floor,
// recycles the worker and answers 503.
TEST_F(SchedulerTest, OomIsLearnedOnlyWithEvidence) {
  Make({}, /*gpus=*/true);
  executor_.Up(1);
  auto words = Submit("model=l");
  ASSERT_EQ(executor_.calls.size(), 1u);
  ExecResult claimed;  // says OOM but grew by nothing and tried nothing
  claimed.answer.http_status = 500;
  claimed.answer.content_type = "application/json";
  claimed.answer.body = kMmif;
  claimed.answer.failure = FailureKind::kAppOom;
  executor_.Finish(claimed);
  EXPECT_EQ((*words)->status, 500);
  EXPECT_EQ(Metric("clams_oom_total"), 0);
  EXPECT_TRUE(executor_.recycled.empty());
  EXPECT_FALSE(profiles_->Get(RequestClassKey("l")).has_value());

  auto real = Submit("model=l");
  ASSERT_EQ(executor_.calls.size(), 1u);
  Use(1, 6 * kGiB);  // it grew to most of its 8 GiB need before failing
  ExecResult oom = claimed;
  oom.answer.oom_tried_bytes = 2 * kGiB;
  executor_.Finish(oom);
  EXPECT_EQ((*real)->status, 503);
  EXPECT_FALSE(Header(**real, "Retry-After").empty());
  EXPECT_EQ(Metric("clams_oom_total"), 1);
  ASSERT_EQ(executor_.recycled.size(), 1u);
  EXPECT_EQ(executor_.recycled[0], std::make_pair(1, KillCause::kOom));
  auto p = profiles_->Get(RequestClassKey("l"));
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->oom_events, 1u);
  EXPECT_GE(p->oom_floor_bytes, 12 * kGiB);  // 1.5 x the 8 GiB (+ context) admitted
  EXPECT_LE(p->oom_floor_bytes, 24 * kGiB - vram::kDefaultFreshWorkerBytes);  // the cap
}

// Issue 9.3: a SIGKILL from outside is a crash, never an OOM.
TEST_F(SchedulerTest, ASigkillFromOutsideIsNotLearned) {
  Make({}, /*gpus=*/true);
  executor_.Up(1);
  auto r = Submit("model=l");
  Use(1, 7 * kGiB);
  executor_.Finish(Died(SIGKILL, KillCause::kNone, "worker 1 was killed by signal 9 (SIGKILL) while running the request"));
  EXPECT_EQ((*r)->status, 500);
  EXPECT_EQ(Metric("clams_oom_total"), 0);
  EXPECT_FALSE(profiles_->Get(RequestClassKey("l")).has_value());
}

TEST_F(SchedulerTest, ASuccessIsMeasuredOnlyWhenItRanAloneOnItsWorker) {
  Make({}, /*gpus=*/true);
  executor_.Up(1, 0, /*threads=*/2);
  auto a = Submit("model=s");
  auto b = Submit("model=s");  // warm on the same worker: two at once
  ASSERT_EQ(executor_.calls.size(), 2u);
  Use(1, 5 * kGiB);
  executor_.Finish(Ok());
  executor_.Finish(Ok());
  EXPECT_EQ((*a)->status, 200);
  EXPECT_EQ((*b)->status, 200);
  EXPECT_FALSE(profiles_->Get(RequestClassKey("s")).has_value());  // overlapped: not measured
  auto c = Submit("model=s");
  ASSERT_EQ(executor_.calls.size(), 1u);
  Use(1, 6 * kGiB);
  sampler_->SampleNow();  // the sampler sees its peak
  Use(1, 5 * kGiB);       // and its activations go
  executor_.Finish(Ok());
  EXPECT_TRUE(executor_.recycled.empty());  // back to its baseline: no drift
  auto p = profiles_->Get(RequestClassKey("s"));
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->warm_samples, 1u);
  EXPECT_EQ(p->warm_peak_bytes, 1 * kGiB);  // alone: its own growth
}

TEST_F(SchedulerTest, ThePythonAdapterGetsItsWorkersGrant) {
  Make({}, /*gpus=*/true);
  executor_.Up(1, 0, /*threads=*/2);
  Use(1, 1 * kGiB);
  auto a = Submit("model=s");
  ASSERT_EQ(executor_.calls.size(), 1u);
  const auto grant = executor_.calls.front().request->call.grant;
  ASSERT_TRUE(grant.has_value());
  EXPECT_EQ(grant->total_bytes, 24 * kGiB);
  // held (1 GiB) + the 2 GiB admitted, with 10 % slack
  EXPECT_EQ(grant->grant_bytes, vram::ScaleBytes(3 * kGiB, 1.1));
  executor_.Finish(Ok());
}

// Issue 10.9: a profile whose peak is absurd (2^64 - 1) must not make /ready
// lie (the old unchecked cast to uint64 reported ready).
TEST_F(SchedulerTest, Issue10AnAbsurdProfileMakesReadyFalseNotTrue) {
  Make({}, /*gpus=*/true);
  executor_.Up(1);
  ASSERT_TRUE(profiles_->Record(vram::RequestClass::Make(runner_->metadata().identifier, "v1", "{\"model\":\"l\"}"),
                                {}, UINT64_MAX, false, 1, "d")
                  .ok());
  std::string why;
  EXPECT_FALSE(scheduler_->Ready(&why));
  EXPECT_THAT(why, HasSubstr("no device has room for the smallest known request class"));
}

// Issue 10.8: the runtime object shows a client only what it needs.
TEST_F(SchedulerTest, Issue10RuntimeHidesPidsAndParametersUnlessExposed) {
  Make({}, /*gpus=*/true);
  executor_.Up(1);
  auto r = Submit("model=s");
  executor_.Finish(Ok());
  const std::string limited = mmif::WriteJson(scheduler_->Runtime(/*full=*/false));
  EXPECT_EQ(limited.find("\"pid\""), std::string::npos) << limited;
  EXPECT_EQ(limited.find("\"directory\""), std::string::npos);
  EXPECT_EQ(limited.find("\"parameters\""), std::string::npos);
  EXPECT_EQ(limited.find("\"classes\""), std::string::npos);
  const std::string full = mmif::WriteJson(scheduler_->Runtime(/*full=*/true));
  EXPECT_NE(full.find("\"pid\":1001"), std::string::npos) << full;
  EXPECT_NE(full.find("\"directory\""), std::string::npos);
}

TEST_F(SchedulerTest, EveryAnswerCarriesTheVramHeader) {
  Make({}, /*gpus=*/true);
  executor_.Up(1);
  auto bad = Submit("model=m", "not json");
  EXPECT_EQ(Header(**bad, "X-Clams-Vram"), "estimate=0; source=none; peak=0");
  auto ok = Submit("model=m");
  executor_.Finish(Ok());
  EXPECT_THAT(Header(**ok, "X-Clams-Vram"), StartsWith("estimate="));
  EXPECT_THAT(Header(**ok, "X-Clams-Vram"), HasSubstr("source=declared"));
}

}  // namespace
}  // namespace clams::server
