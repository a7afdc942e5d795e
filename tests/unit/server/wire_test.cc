// The front <-> worker wire format (src/server/wire.h) and the front's
// intake decoding (src/server/intake.h).
#include "server/wire.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "server/intake.h"

namespace clams::server {
namespace {

using ::testing::HasSubstr;

TEST(WireTest, ParametersRoundTripInOrderWithEveryValue) {
  RawParams p{{"model", {"large"}}, {"labels", {"a", "b c", "é\"\\"}}, {"empty", {}}};
  auto decoded = wire::DecodeParams(wire::EncodeParams(p));
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(decoded->entries(), p.entries());
  EXPECT_FALSE(wire::DecodeParams("{\"model\": \"x\"}").ok());
  EXPECT_FALSE(wire::DecodeParams("[[\"model\", \"x\"]]").ok());
  EXPECT_FALSE(wire::DecodeParams("[[\"model\", [1]]]").ok());
}

TEST(WireTest, QueryEncodingIsReadBackAsTheSameParameters) {
  RawParams p{{"model", {"large"}}, {"labels", {"a&b=c", "x y+z", "%41"}}, {"hwFetch", {"True"}}};
  const std::string query = wire::EncodeQuery(p, {"hwFetch"});
  EXPECT_EQ(query.find("hwFetch"), std::string::npos);  // front-only: not forwarded
  auto back = RawParams::FromQuery(query);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->entries(), (RawParams{{"model", {"large"}}, {"labels", {"a&b=c", "x y+z", "%41"}}}).entries());
}

TEST(WireTest, NativeRequestCarriesTheMmifOnlyAndTheDecodedParameters) {
  wire::Call call;
  call.body = std::make_shared<const std::string>(R"({"parameters": {"a": "1"}, "mmif": {"x": 1}})");
  call.mmif_offset = call.body->find("{\"x\"");
  call.mmif_length = 8;
  call.params = RawParams{{"a", {"1"}}};
  call.request_id = "abc";
  call.grant = wire::Grant{3, 24};
  HttpRequest req = wire::EncodeForNative(call);
  EXPECT_EQ(req.body, "{\"x\": 1}");
  auto decoded = wire::DecodeNative(req);
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(decoded->params.entries(), call.params.entries());
  EXPECT_EQ(decoded->request_id, "abc");
  ASSERT_TRUE(decoded->grant.has_value());
  EXPECT_EQ(decoded->grant->grant_bytes, 3u);
  EXPECT_EQ(FindHeader(req.headers, wire::kGrantHeader), "grant=3; total=24");
  req.headers.clear();
  EXPECT_FALSE(wire::DecodeNative(req).ok());  // a worker never guesses parameters
}

TEST(WireTest, OomIsRecognisedFromTheExceptionClassNeverFromWords) {
  EXPECT_TRUE(wire::OomSignalFromErrorMessage(
                  "<class 'torch.OutOfMemoryError'>: CUDA out of memory. Tried to allocate 2.00 GiB")
                  .oom);
  EXPECT_EQ(wire::OomSignalFromErrorMessage("<class 'torch.cuda.OutOfMemoryError'>: Tried to allocate 20.00 MiB")
                .tried_bytes,
            20u << 20);
  EXPECT_TRUE(wire::OomSignalFromErrorMessage("<class 'RuntimeError'>: CUDA out of memory. Tried to allocate").oom);
  EXPECT_TRUE(wire::OomSignalFromErrorMessage("<class 'RuntimeError'>: CUDA error: out of memory").oom);
  // Issue 9.2: the words anywhere else are not evidence.
  EXPECT_FALSE(wire::OomSignalFromErrorMessage("<class 'FileNotFoundError'>: file:///nonexistent/out of memory.txt")
                   .oom);
  EXPECT_FALSE(wire::OomSignalFromErrorMessage("<class 'RuntimeError'>: input says CUDA out of memory").oom);
  EXPECT_FALSE(wire::OomSignalFromErrorMessage("CUDA out of memory").oom);
  HttpResponse r;
  r.status = 500;
  r.headers.emplace_back("X-Clams-Oom", "1; tried=1024");
  EXPECT_TRUE(wire::ExternalOomSignal(r).oom);
  EXPECT_EQ(wire::ExternalOomSignal(r).tried_bytes, 1024u);
  HttpResponse words;
  words.status = 500;
  words.body = R"({"views": [{"metadata": {"error": {"message": "<class 'ValueError'>: out of memory"}}}]})";
  EXPECT_FALSE(wire::ExternalOomSignal(words).oom);
  AnnotateOutcome decoded = wire::DecodeAnswer(words, /*external=*/true);
  EXPECT_EQ(decoded.failure, FailureKind::kAppError);
}

// Found by wire_fuzz: a failure header that contradicts the status (an app
// behind the adapter, or any external app, can send any header) must not
// turn a 200 into an OOM (which the front answers 503, learns from and
// recycles the worker for) or a 4xx into an app error.
TEST(WireTest, FailureHeadersCountOnlyWithAStatusOfTheirClass) {
  for (bool external : {false, true}) {
    HttpResponse ok;
    ok.status = 200;
    ok.headers = {{"X-Clams-Failure", "app-oom"}, {"X-Clams-Oom", "1; tried=1024"}};
    AnnotateOutcome a = wire::DecodeAnswer(ok, external);
    EXPECT_EQ(a.failure, FailureKind::kNone) << external;
    EXPECT_EQ(a.oom_tried_bytes, 0u) << external;
    EXPECT_EQ(a.error, "") << external;

    HttpResponse bad;
    bad.status = 400;
    bad.headers = {{"X-Clams-Failure", "app-error"}};
    EXPECT_EQ(wire::DecodeAnswer(bad, external).failure, FailureKind::kBadInput) << external;
    bad.headers = {{"X-Clams-Failure", "bad-parameters"}};
    EXPECT_EQ(wire::DecodeAnswer(bad, external).failure, FailureKind::kBadParameters) << external;

    HttpResponse failed;
    failed.status = 500;
    failed.headers = {{"X-Clams-Failure", "bad-input"}};
    EXPECT_EQ(wire::DecodeAnswer(failed, external).failure, FailureKind::kAppError) << external;
  }
  // What a native worker does send is read as before.
  HttpResponse oom;
  oom.status = 500;
  oom.headers = {{"X-Clams-Failure", "app-oom"}, {"X-Clams-Oom", "1; tried=2048"}};
  AnnotateOutcome a = wire::DecodeAnswer(oom, /*external=*/false);
  EXPECT_EQ(a.failure, FailureKind::kAppOom);
  EXPECT_EQ(a.oom_tried_bytes, 2048u);
  EXPECT_EQ(a.error, "app failure");
}

// Issue 9.1: keys are decoded as JSON parsers decode them; the last of
// duplicate keys wins, as in Python.
TEST(IntakeTest, Issue9EnvelopeKeysAreDecodedAndTheLastDuplicateWins) {
  const std::string escaped = R"({"param\u0065ters": {"model": "large"}, "mmif": {"v": 1}})";
  BodyLayout l = FindBodyLayout(escaped);
  EXPECT_TRUE(l.envelope);
  EXPECT_EQ(escaped.substr(l.mmif_offset, l.mmif_length), "{\"v\": 1}");
  EXPECT_EQ(escaped.substr(l.parameters_offset, l.parameters_length), "{\"model\": \"large\"}");
  const std::string twice = R"({"mmif": {"v": 1}, "parameters": {}, "mmif": {"v": 2}})";
  l = FindBodyLayout(twice);
  EXPECT_EQ(twice.substr(l.mmif_offset, l.mmif_length), "{\"v\": 2}");
  // Not an envelope: the whole body is the MMIF.
  const std::string plain = R"({"metadata": {"parameters": 1}, "views": []})";
  l = FindBodyLayout(plain);
  EXPECT_FALSE(l.envelope);
  EXPECT_EQ(l.mmif_offset, 0u);
  EXPECT_EQ(l.mmif_length, plain.size());
  EXPECT_FALSE(FindBodyLayout("[1, 2]").envelope);
  // Strings with braces and escaped quotes do not confuse the scan.
  const std::string tricky = R"({"x": "}\"{", "parameters": {"k": "]"}, "mmif": ["}"]})";
  l = FindBodyLayout(tricky);
  EXPECT_TRUE(l.envelope);
  EXPECT_EQ(tricky.substr(l.mmif_offset, l.mmif_length), "[\"}\"]");
}

TEST(IntakeTest, ClassLabelNamesTheParametersInWords) {
  EXPECT_EQ(Intake::ClassLabel(json::object{{"model", "large"}, {"beam", 5}}), "model=large, beam=5");
  EXPECT_EQ(Intake::ClassLabel(json::object{}), "(no parameters)");
}

}  // namespace
}  // namespace clams::server
