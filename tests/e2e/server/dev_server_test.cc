// End-to-end tests of the development server (in-process executor): every
// row of the status table of DESIGN.md §7 that applies without GPUs, and
// the cases of the Python SDK's test suite (spec/clams-app-behavior.md §6)
// that apply to C++.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <future>
#include <regex>
#include <thread>

#include "e2e/server/e2e_util.h"
#include "testing/process.h"
#include "testing/testing.h"

namespace clams::e2e {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;
namespace json = boost::json;

constexpr char kPrefix[] = "Invalid input data. See below for validation error.\n\n";

class DevServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    splitter_ = new testing::ServerProcess(testing::BuiltBinary("apps/sentence-splitter/sentence-splitter"),
                                           {"--max-body-size", "256KiB", "--header-timeout", "2"});
    test_app_ = new testing::ServerProcess(testing::BuiltBinary("tests/e2e/apps/clams-test-app"),
                                           {"--workers", "4", "--request-timeout", "2"});
  }
  static void TearDownTestSuite() {
    delete splitter_;
    delete test_app_;
  }
  static int sp() { return splitter_->port(); }
  static int tp() { return test_app_->port(); }

  // POSTs and keeps JSON answers for the independent schema check.
  static HttpResponse Post(int port, const std::string& target, const std::string& body, const char* method = "POST") {
    HttpResponse r = Call(port, method, target, body, {{"Content-Type", "application/json"}});
    if (r.content_type == "application/json") KeepForSchemaCheck(r.body);
    return r;
  }

  static testing::ServerProcess* splitter_;
  static testing::ServerProcess* test_app_;
};
testing::ServerProcess* DevServerTest::splitter_ = nullptr;
testing::ServerProcess* DevServerTest::test_app_ = nullptr;

// --- GET / --------------------------------------------------------------------

TEST_F(DevServerTest, GetReturnsMetadataWithUniversalParametersLast) {
  HttpResponse r = Call(sp(), "GET", "/");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "application/json");
  EXPECT_EQ(r.body.find('\n'), std::string::npos);  // compact
  json::value md = Json(r.body);
  EXPECT_EQ(md.at("name"), "Sentence Splitter");
  EXPECT_THAT(std::string(md.at("identifier").as_string()), StartsWith("http://apps.clams.ai/sentence-splitter/"));
  const auto& params = md.at("parameters").as_array();
  ASSERT_GE(params.size(), 4u);
  std::vector<std::string> last4;
  for (std::size_t i = params.size() - 4; i < params.size(); ++i) last4.emplace_back(params[i].at("name").as_string());
  EXPECT_EQ(last4, (std::vector<std::string>{"pretty", "runningTime", "hwFetch", "tfSamplingMode"}));
  EXPECT_FALSE(md.as_object().contains("est_gpu_mem_min"));  // defaults are omitted
}

TEST_F(DevServerTest, GetPrettyIndentsAndHeadHasNoBody) {
  HttpResponse r = Call(sp(), "GET", "/?pretty");
  ASSERT_EQ(r.status, 200);
  EXPECT_THAT(r.body, StartsWith("{\n  \"name\": "));
  HttpResponse h = Call(sp(), "HEAD", "/");
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(h.body, "");
}

// --- POST / PUT -----------------------------------------------------------------

TEST_F(DevServerTest, PostSplitsTextAndSignsTheView) {
  HttpResponse r = Post(sp(), "/", TextMmif("Dr. Smith paid $3.50. He left!"));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.content_type, "application/json");
  json::value out = Json(r.body);
  ASSERT_EQ(out.at("views").as_array().size(), 1u);
  const json::object& view = LastView(out);
  const json::object& md = view.at("metadata").as_object();
  EXPECT_THAT(std::string(md.at("app").as_string()), StartsWith("http://apps.clams.ai/sentence-splitter/"));
  EXPECT_FALSE(md.contains("parameters"));  // none were passed
  EXPECT_EQ(md.at("appConfiguration").at("paragraphBreaks"), true);
  EXPECT_EQ(md.at("appTags"), (json::array{"text"}));
  std::regex running(R"(\d+:\d\d:\d\d(\.\d{6})?)");
  EXPECT_TRUE(std::regex_match(std::string(md.at("appProfiling").at("runningTime").as_string()), running));
  // Key order as the Python SDK writes it.
  std::vector<std::string> keys;
  for (const auto& kv : md) keys.emplace_back(kv.key());
  EXPECT_EQ(keys, (std::vector<std::string>{"appTags", "appProfiling", "timestamp", "app", "contains",
                                            "appConfiguration"}));
  std::vector<std::string> sentences;
  for (const auto& a : view.at("annotations").as_array()) {
    if (a.at("@type") == "http://mmif.clams.ai/vocabulary/Sentence/v1") {
      sentences.emplace_back(a.at("properties").at("text").as_string());
    }
  }
  EXPECT_EQ(sentences, (std::vector<std::string>{"Dr. Smith paid $3.50.", "He left!"}));
}

// The annotations of the sentence-splitter's view, written compactly.
std::string AnnotationsOf(const std::string& body) {
  return mmif::WriteJson(LastView(Json(body)).at("annotations"));
}

TEST_F(DevServerTest, TokensAndSentencesHaveIdsOffsetsAndTextInThisOrder) {
  // Code-point offsets (the "é" is one), and properties in the order the app writes them.
  HttpResponse r = Post(sp(), "/", TextMmif("Caf\xc3\xa9 \"open\". Dr. No!"));
  ASSERT_EQ(r.status, 200) << r.body;
  constexpr char kToken[] = R"({"@type":"http://mmif.clams.ai/vocabulary/Token/v1","properties":)";
  constexpr char kSentence[] = R"({"@type":"http://mmif.clams.ai/vocabulary/Sentence/v1","properties":)";
  EXPECT_EQ(AnnotationsOf(r.body),
            std::string("[") + kToken + R"({"id":"v_0:to_1","start":0,"end":4,"text":"Café"}},)" + kToken +
                R"({"id":"v_0:to_2","start":5,"end":6,"text":"\""}},)" + kToken +
                R"({"id":"v_0:to_3","start":6,"end":10,"text":"open"}},)" + kToken +
                R"({"id":"v_0:to_4","start":10,"end":11,"text":"\""}},)" + kToken +
                R"({"id":"v_0:to_5","start":11,"end":12,"text":"."}},)" + kToken +
                R"({"id":"v_0:to_6","start":13,"end":16,"text":"Dr."}},)" + kToken +
                R"({"id":"v_0:to_7","start":17,"end":19,"text":"No"}},)" + kToken +
                R"({"id":"v_0:to_8","start":19,"end":20,"text":"!"}},)" + kSentence +
                R"({"id":"v_0:se_1","start":0,"end":12,"text":"Café \"open\"."}},)" + kSentence +
                R"({"id":"v_0:se_2","start":13,"end":20,"text":"Dr. No!"}}])");
}

TEST_F(DevServerTest, SentenceTargetsListTheTokenIds) {
  HttpResponse r = Post(sp(), "/?sentenceTargets=true", TextMmif("One two. Three!"));
  ASSERT_EQ(r.status, 200) << r.body;
  const json::value out = Json(r.body);
  const json::array& annotations = LastView(out).at("annotations").as_array();
  ASSERT_EQ(annotations.size(), 7u);  // 5 tokens, 2 sentences
  EXPECT_EQ(mmif::WriteJson(annotations[5]),
            R"({"@type":"http://mmif.clams.ai/vocabulary/Sentence/v1","properties":)"
            R"({"id":"v_0:se_1","targets":["v_0:to_1","v_0:to_2","v_0:to_3"],"text":"One two."}})");
  EXPECT_EQ(mmif::WriteJson(annotations[6]),
            R"({"@type":"http://mmif.clams.ai/vocabulary/Sentence/v1","properties":)"
            R"({"id":"v_0:se_2","targets":["v_0:to_4","v_0:to_5"],"text":"Three!"}})");
  // Without tokens there is nothing to target: sentences keep their offsets.
  HttpResponse s = Post(sp(), "/?sentenceTargets=true&emit=sentences", TextMmif("One two. Three!"));
  ASSERT_EQ(s.status, 200) << s.body;
  EXPECT_EQ(AnnotationsOf(s.body),
            R"([{"@type":"http://mmif.clams.ai/vocabulary/Sentence/v1","properties":)"
            R"({"id":"v_0:se_1","start":0,"end":8,"text":"One two."}},)"
            R"({"@type":"http://mmif.clams.ai/vocabulary/Sentence/v1","properties":)"
            R"({"id":"v_0:se_2","start":9,"end":15,"text":"Three!"}}])");
}

TEST_F(DevServerTest, PutIsPostAndContentTypeIsIgnored) {
  HttpResponse r = Call(sp(), "PUT", "/", TextMmif("One. Two."), {{"Content-Type", "text/plain"}});
  ASSERT_EQ(r.status, 200) << r.body;
  KeepForSchemaCheck(r.body);
  EXPECT_EQ(Json(r.body).at("views").as_array().size(), 1u);
}

TEST_F(DevServerTest, PrettyParameterIndentsAndIsRecorded) {
  HttpResponse r = Post(sp(), "/?pretty=true", TextMmif("One."));
  ASSERT_EQ(r.status, 200);
  EXPECT_THAT(r.body, StartsWith("{\n  \"metadata\": "));
  EXPECT_EQ(LastView(Json(r.body)).at("metadata").at("parameters"), (json::object{{"pretty", "true"}}));
}

TEST_F(DevServerTest, UndefinedParametersGiveAWarningsView) {
  HttpResponse r = Post(sp(), "/?random1=x&random2=y&random2=z", TextMmif("One."));
  ASSERT_EQ(r.status, 200) << r.body;
  json::value out = Json(r.body);
  ASSERT_EQ(out.at("views").as_array().size(), 2u);
  const auto& md = LastView(out).at("metadata").as_object();
  EXPECT_FALSE(md.contains("contains"));
  EXPECT_EQ(md.at("warnings"), (json::array{"An undefined parameter \"random1\" (value: \"['x']\") is passed",
                                            "An undefined parameter \"random2\" (value: \"['y', 'z']\") is passed"}));
  // Both views of one run share one timestamp.
  EXPECT_EQ(out.at("views").as_array()[0].at("metadata").at("timestamp"), md.at("timestamp"));
  // The raw value recorded: the first one for undeclared keys.
  EXPECT_EQ(md.at("parameters").at("random2"), "y");
}

TEST_F(DevServerTest, AppWarningsGoToTheWarningsView) {
  HttpResponse r = Post(tp(), "/?mode=warn", TextMmif("x"));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(LastView(Json(r.body)).at("metadata").at("warnings"), (json::array{"threshold is high", "second warning"}));
}

TEST_F(DevServerTest, ParametersAreCastAndRecordedLikeThePythonSdk) {
  HttpResponse r = Post(tp(), "/?pretty=true&labels=x&labels=y&labelMap=k1:v1&labelMap=k2:a:b&threshold=0.95&count=2",
                        TextMmif("x"));
  ASSERT_EQ(r.status, 200) << r.body;
  json::value out = Json(r.body);
  const auto& md = out.at("views").as_array()[0].at("metadata").as_object();
  EXPECT_EQ(md.at("parameters"), (json::object{{"pretty", "true"},
                                               {"labels", "['x', 'y']"},
                                               {"labelMap", "['k1:v1', 'k2:a:b']"},
                                               {"threshold", "0.95"},
                                               {"count", "2"}}));
  const auto& conf = md.at("appConfiguration").as_object();
  EXPECT_EQ(conf.at("labels"), (json::array{"x", "y"}));
  EXPECT_EQ(conf.at("labelMap"), (json::object{{"k1", "v1"}, {"k2", "a:b"}}));
  EXPECT_EQ(conf.at("threshold"), 0.95);
  EXPECT_EQ(conf.at("count"), 2);
  EXPECT_EQ(conf.at("runningTime"), true);
  EXPECT_EQ(conf.at("tfSamplingMode"), "representatives");
  // The map value with two ':' gives a warning (the Python SDK's
  // UserWarning), in a warnings view.
  ASSERT_EQ(out.at("views").as_array().size(), 2u);
  EXPECT_THAT(std::string(LastView(out).at("metadata").at("warnings").as_array()[0].as_string()),
              HasSubstr("multiple ':'"));
}

TEST_F(DevServerTest, MultivaluedParameterWithChoicesAcceptsEachValue) {
  // The Python SDK rejects every value here (its bug 1).
  HttpResponse r = Post(sp(), "/?emit=tokens&emit=sentences", TextMmif("One. Two."));
  ASSERT_EQ(r.status, 200) << r.body;
  HttpResponse t = Post(sp(), "/?emit=tokens", TextMmif("One. Two."));
  ASSERT_EQ(t.status, 200);
  json::value tokens_only = Json(t.body);
  for (const auto& a : LastView(tokens_only).at("annotations").as_array()) {
    EXPECT_EQ(a.at("@type"), "http://mmif.clams.ai/vocabulary/Token/v1");
  }
}

TEST_F(DevServerTest, BadParameterValueIs400WithAnErrorView) {
  HttpResponse r = Post(tp(), "/?count=4", TextMmif("x"));
  ASSERT_EQ(r.status, 400);
  EXPECT_EQ(r.content_type, "application/json");
  json::value out = Json(r.body);
  const auto& md = LastView(out).at("metadata").as_object();
  EXPECT_EQ(md.at("error").at("message"), "Value for parameter \"count\" must be one of [1, 2, 3].");
  EXPECT_EQ(md.at("parameters"), (json::object{{"count", "4"}}));
  EXPECT_FALSE(md.contains("contains"));
  EXPECT_TRUE(LastView(out).at("annotations").as_array().empty());

  HttpResponse notint = Post(tp(), "/?count=two", TextMmif("x"));
  ASSERT_EQ(notint.status, 400);
  EXPECT_EQ(LastView(Json(notint.body)).at("metadata").at("error").at("message"),
            "Value for parameter \"count\" must be an integer, got 'two'.");
  HttpResponse badmap = Post(tp(), "/?labelMap=nocolon", TextMmif("x"));
  ASSERT_EQ(badmap.status, 400);
  EXPECT_EQ(LastView(Json(badmap.body)).at("metadata").at("error").at("message"),
            "Value for parameter \"labelMap\" must be a \"key:value\" pair, got 'nocolon'.");
}

TEST_F(DevServerTest, AppFailuresAre500ErrorViews) {
  HttpResponse thrown = Post(tp(), "/?mode=throw", TextMmif("x"));
  ASSERT_EQ(thrown.status, 500);
  EXPECT_EQ(thrown.content_type, "application/json");
  json::value out = Json(thrown.body);
  ASSERT_EQ(out.at("views").as_array().size(), 1u);
  EXPECT_EQ(LastView(out).at("metadata").at("error").at("message"), "std::runtime_error: boom");
  EXPECT_TRUE(LastView(out).at("annotations").as_array().empty());
  EXPECT_THAT(thrown.body, StartsWith("{\n  \"metadata\""));  // error views are pretty

  HttpResponse status = Post(tp(), "/?mode=status", TextMmif("x"));
  ASSERT_EQ(status.status, 500);
  EXPECT_EQ(LastView(Json(status.body)).at("metadata").at("error").at("message"),
            "INVALID_ARGUMENT: no usable input");

  HttpResponse invalid = Post(tp(), "/?mode=invalid", TextMmif("x"));
  ASSERT_EQ(invalid.status, 500);
  EXPECT_THAT(std::string(LastView(Json(invalid.body)).at("metadata").at("error").at("message").as_string()),
              HasSubstr("the app produced invalid MMIF: views[0].metadata.app"));
}

TEST_F(DevServerTest, ErrorNeverOverwritesAnEarlierViewOfTheSameApp) {
  // The Python SDK writes the error into the last view with its own app id
  // (bug 3), wiping an earlier run's annotations. We add a new view.
  HttpResponse first = Post(tp(), "/", TextMmif("x"));
  ASSERT_EQ(first.status, 200);
  HttpResponse second = Post(tp(), "/?mode=throw", first.body);
  ASSERT_EQ(second.status, 500);
  json::value out = Json(second.body);
  ASSERT_EQ(out.at("views").as_array().size(), 2u);
  EXPECT_EQ(out.at("views").as_array()[0].at("annotations").as_array().size(), 1u);
  EXPECT_TRUE(LastView(out).at("metadata").as_object().contains("error"));
}

TEST_F(DevServerTest, ReannotatingAddsViewsWithALaterTimestamp) {
  HttpResponse first = Post(tp(), "/", TextMmif("x"));
  ASSERT_EQ(first.status, 200);
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  HttpResponse second = Post(tp(), "/", first.body);
  ASSERT_EQ(second.status, 200);
  json::value out = Json(second.body);
  const auto& views = out.at("views").as_array();
  ASSERT_EQ(views.size(), 2u);
  EXPECT_LT(std::string(views[0].at("metadata").at("timestamp").as_string()),
            std::string(views[1].at("metadata").at("timestamp").as_string()));
  EXPECT_EQ(views[1].at("id"), "v_1");
}

// --- bad input: 400 text/plain ----------------------------------------------------

TEST_F(DevServerTest, MalformedJsonIs400TextPlain) {
  for (const char* body : {"this is not json", "", "{\"a\": }"}) {
    HttpResponse r = Post(sp(), "/", body);
    EXPECT_EQ(r.status, 400) << body;
    EXPECT_EQ(r.content_type, "text/plain; charset=utf-8");
    EXPECT_THAT(r.body, StartsWith(kPrefix));
    EXPECT_THAT(r.body, HasSubstr("line 1"));
  }
}

TEST_F(DevServerTest, Issue12Pre10MmifIsAnsweredInItsOwnVersion) {
  // MMIF 0.4.x (legacy type IRIs) and 0.5.0, as mmif-python loads them: answered 200, the
  // document keeps its version, and the answer is valid against that version's own schema.
  for (const std::string version : {"0.4.0", "0.4.2", "0.5.0"}) {
    const std::string type = version == "0.5.0" ? "http://mmif.clams.ai/vocabulary/TextDocument/v1"
                                                : "http://mmif.clams.ai/" + version + "/vocabulary/TextDocument";
    const std::string body = R"({"metadata": {"mmif": "http://mmif.clams.ai/)" + version +
                             R"("}, "documents": [{"@type": ")" + type +
                             R"(", "properties": {"id": "m1", "text": {"@value": "Older MMIF. Still read."}}}], "views": []})";
    HttpResponse r = Post(sp(), "/", body);
    ASSERT_EQ(r.status, 200) << version << ": " << r.body;
    json::value out = Json(r.body);
    EXPECT_EQ(std::string(out.at("metadata").at("mmif").as_string()), "http://mmif.clams.ai/" + version);
    std::vector<std::string> sentences;
    for (const auto& a : LastView(out).at("annotations").as_array()) {
      if (a.at("@type") == "http://mmif.clams.ai/vocabulary/Sentence/v1") {
        sentences.emplace_back(a.at("properties").at("text").as_string());
      }
    }
    EXPECT_EQ(sentences, (std::vector<std::string>{"Older MMIF.", "Still read."})) << version;
    testing::TempDir tmp;
    testing::WriteFileOrDie(tmp.path() / "answer.json", r.body);
    auto check = testing::RunProgram(
        {"/usr/bin/python3", (testing::SourceDir() / "tests/tools/validate_mmif.py").string(),
         (testing::SharedDir() / "data/mmif-pre1/schema" / version / "mmif.json").string(),
         (tmp.path() / "answer.json").string()});
    EXPECT_EQ(check.exit_code, 0) << version << ": " << check.out << check.err;
  }
  // Older than 0.4.0: refused, as mmif-python refuses their types.
  HttpResponse old = Post(sp(), "/", R"({"metadata": {"mmif": "http://mmif.clams.ai/0.3.1"}, "documents": [], "views": []})");
  EXPECT_EQ(old.status, 400);
  EXPECT_EQ(old.body, std::string(kPrefix) +
                          "metadata.mmif: MMIF 0.3.1 is not supported: clams-cpp reads MMIF 0.4.0 to 0.5.x and "
                          "1.0.0 to 1.2.x; files older than 0.4.0 use type IRIs that mmif-python refuses too");
}

TEST_F(DevServerTest, NonUtf8BodyIs400) {
  std::string body = TextMmif("caf\xe9");  // Latin-1 byte inside a string
  HttpResponse r = Post(sp(), "/", body);
  EXPECT_EQ(r.status, 400);
  EXPECT_THAT(r.body, StartsWith(kPrefix));
  EXPECT_THAT(r.body, HasSubstr("UTF-8"));
}

TEST_F(DevServerTest, SchemaInvalidMmifIs400WithTheRuleAndNoSchemaDump) {
  auto dir = testing::MmifDataDir() / "invalid";
  struct Case {
    const char* file;
    const char* reason;
  } cases[] = {
      {"missing-views-key.json", "views"},
      {"contains-key-not-uri.json", "^https?://"},
      {"view-metadata-app-only.json", "must have exactly one of \"contains\", \"warnings\", \"error\""},
      {"document-extra-key.json", "\"id\""},
      {"error-empty-message.json", "message"},
  };
  for (const auto& c : cases) {
    HttpResponse r = Post(sp(), "/", testing::ReadFileOrDie(dir / c.file));
    EXPECT_EQ(r.status, 400) << c.file;
    EXPECT_EQ(r.content_type, "text/plain; charset=utf-8");
    EXPECT_THAT(r.body, StartsWith(kPrefix)) << c.file;
    EXPECT_THAT(r.body, HasSubstr(c.reason)) << c.file << ": " << r.body;
    EXPECT_LT(r.body.size(), 500u) << c.file;
    EXPECT_EQ(r.body.find("$schema"), std::string::npos);
  }
  HttpResponse top = Post(sp(), "/", "{\"top string\": 1}");
  EXPECT_EQ(top.status, 400);
  HttpResponse arr = Post(sp(), "/", "[]");
  EXPECT_EQ(arr.status, 400);
}

// --- envelopes ----------------------------------------------------------------------

TEST_F(DevServerTest, EnvelopeBodiesWorkAndQueryValuesWin) {
  const std::string mmif = TextMmif("x");
  const std::string envelope = "{\"parameters\": {\"labels\": [\"p\", \"q\"], \"threshold\": 0.7, \"count\": 1}, "
                               "\"mmif\": " + mmif + "}";
  for (const char* method : {"POST", "PUT"}) {
    HttpResponse r = Post(tp(), "/?count=2", envelope, method);
    ASSERT_EQ(r.status, 200) << r.body;
    json::value out = Json(r.body);
    const auto& md = LastView(out).at("metadata").as_object();
    EXPECT_EQ(md.at("parameters"), (json::object{{"labels", "['p', 'q']"}, {"threshold", "0.7"}, {"count", "2"}}));
    EXPECT_EQ(md.at("appConfiguration").at("count"), 2);
  }
  HttpResponse missing = Post(tp(), "/", "{\"parameters\": {}}");
  EXPECT_EQ(missing.status, 400);
  EXPECT_EQ(missing.body, std::string(kPrefix) + "Envelope is missing required \"mmif\" key");
  HttpResponse bad = Post(tp(), "/", "{\"parameters\": \"bad\", \"mmif\": " + mmif + "}");
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(bad.body, std::string(kPrefix) + "\"parameters\" must be a JSON object, got str");
  HttpResponse inner = Post(tp(), "/", "{\"parameters\": {}, \"mmif\": \"not-an-object\"}");
  EXPECT_EQ(inner.status, 400);
  EXPECT_LT(inner.body.size(), 500u);
  HttpResponse failing = Post(tp(), "/", "{\"parameters\": {\"mode\": \"throw\"}, \"mmif\": " + mmif + "}");
  EXPECT_EQ(failing.status, 500);
  EXPECT_EQ(failing.content_type, "application/json");
  EXPECT_EQ(LastView(Json(failing.body)).at("metadata").at("parameters").at("mode"), "throw");
}

// --- routes, methods, limits ----------------------------------------------------------

TEST_F(DevServerTest, OtherMethodsAre405AndOtherPaths404) {
  for (const char* method : {"DELETE", "PATCH"}) {
    HttpResponse r = Call(sp(), method, "/");
    EXPECT_EQ(r.status, 405) << method;
    EXPECT_EQ(r.content_type, "application/json");
    EXPECT_EQ(r.body, "{\"message\": \"The method is not allowed for the requested URL.\"}");
  }
  HttpResponse nf = Call(sp(), "GET", "/nowhere");
  EXPECT_EQ(nf.status, 404);
  EXPECT_THAT(nf.body, HasSubstr("404 Not Found"));
  HttpResponse opts = Call(sp(), "OPTIONS", "/");
  EXPECT_EQ(opts.status, 200);
}

TEST_F(DevServerTest, HealthReadyAndMetrics) {
  EXPECT_EQ(Call(sp(), "GET", "/health").status, 200);
  EXPECT_EQ(Call(sp(), "GET", "/ready").status, 200);
  ASSERT_EQ(Post(sp(), "/", TextMmif("One.")).status, 200);
  HttpResponse m = Call(sp(), "GET", "/metrics");
  ASSERT_EQ(m.status, 200);
  for (const char* name : {"clams_requests_total", "clams_request_duration_seconds", "clams_queue_length",
                           "clams_queue_wait_seconds", "clams_admission_rejections_total", "clams_workers",
                           "clams_worker_restarts_total", "clams_oom_total"}) {
    EXPECT_THAT(m.body, HasSubstr(std::string("# TYPE ") + name)) << name;
  }
  EXPECT_THAT(m.body, HasSubstr("clams_requests_total{code=\"200\"}"));
  HttpResponse rt = Call(sp(), "GET", "/?includeVRAM=true");
  ASSERT_EQ(rt.status, 200);
  json::value md = Json(rt.body);
  EXPECT_EQ(md.at("runtime").at("mode"), "development");
  EXPECT_EQ(md.at("runtime").at("workers").as_array().size(), 4u);
}

TEST_F(DevServerTest, BodyOverTheLimitIs413) {
  std::string big = TextMmif(std::string(300 * 1024, 'a'));
  HttpResponse r = Call(sp(), "POST", "/", big);
  EXPECT_EQ(r.status, 413);
  EXPECT_THAT(r.body, HasSubstr("--max-body-size"));
  // The server is still fine.
  EXPECT_EQ(Post(sp(), "/", TextMmif("One.")).status, 200);
}

TEST_F(DevServerTest, SlowClientIsCutOffAndOthersAreServed) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(sp()));
  ::inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  const char partial[] = "POST / HTTP/1.1\r\nHost: x\r\n";  // headers never finish
  ASSERT_GT(::write(fd, partial, sizeof(partial) - 1), 0);
  EXPECT_EQ(Post(sp(), "/", TextMmif("Served meanwhile.")).status, 200);
  // --header-timeout 2: the server closes the connection.
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  char buf[256];
  const auto start = std::chrono::steady_clock::now();
  ssize_t n = ::read(fd, buf, sizeof(buf));
  EXPECT_LE(n, 0);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(4));
  ::close(fd);
}

TEST_F(DevServerTest, RequestTimeoutGives504ErrorView) {
  HttpResponse r = Post(tp(), "/?mode=sleep&sleepMs=4000", TextMmif("x"));
  EXPECT_EQ(r.status, 504);
  EXPECT_THAT(std::string(LastView(Json(r.body)).at("metadata").at("error").at("message").as_string()),
              HasSubstr("--request-timeout"));
}

// Issue 15: without GPUs a development-mode thread takes one request ahead
// (once the app's requests are known to be quick),
// so that it runs the moment the one before it returns (no trip through the
// loop between them). The request taken ahead has its whole
// --request-timeout from when it starts: B waits 1.3 s behind A, runs 1.3 s,
// and is answered, where a timeout counted from its hand-over would have cut
// it off at 2 s.
TEST(DevServerAheadTest, Issue15ARequestTakenAheadRunsNextWithItsWholeTimeout) {
  testing::ServerProcess app(testing::BuiltBinary("tests/e2e/apps/clams-test-app"),
                             {"--workers", "1", "--request-timeout", "2"});
  auto worker = [&] { return FirstWorker(app.port()); };
  EXPECT_EQ(worker().at("threads"), 1);
  ASSERT_EQ(Call(app.port(), "POST", "/", TextMmif("x"), {{"Content-Type", "application/json"}}).status, 200);
  EXPECT_EQ(worker().at("ahead"), 1);  // its requests are quick
  auto post = [&](const char* target) {
    return std::async(std::launch::async, [&app, target] {
      return Call(app.port(), "POST", target, TextMmif("x"), {{"Content-Type", "application/json"}});
    });
  };
  auto a = post("/?mode=sleep&sleepMs=1300");
  ASSERT_TRUE(testing::WaitFor([&] { return worker().at("running") == 1; }, std::chrono::seconds(10)));
  auto b = post("/?mode=sleep&sleepMs=1300");
  // B is the thread's, not the queue's, while A runs.
  ASSERT_TRUE(testing::WaitFor([&] { return worker().at("running") == 2; }, std::chrono::seconds(10)));
  EXPECT_EQ(Runtime(app.port()).at("queue").at("length"), 0);
  HttpResponse ra = a.get();
  HttpResponse rb = b.get();
  EXPECT_EQ(ra.status, 200) << ra.body;
  EXPECT_EQ(rb.status, 200) << rb.body;
  // A third that runs too long is still cut off, 2 s after it starts.
  HttpResponse rc = Call(app.port(), "POST", "/?mode=sleep&sleepMs=4000", TextMmif("x"),
                         {{"Content-Type", "application/json"}});
  EXPECT_EQ(rc.status, 504);
}

TEST_F(DevServerTest, SixtyFourConcurrentRequestsGetTheirOwnAnswers) {
  constexpr int kRequests = 64;
  std::vector<std::future<HttpResponse>> answers;
  for (int i = 0; i < kRequests; ++i) {
    answers.push_back(std::async(std::launch::async, [i] {
      return Call(sp(), "POST", "/", TextMmif("Request number " + std::to_string(i) + ". It is unique."));
    }));
  }
  for (int i = 0; i < kRequests; ++i) {
    HttpResponse r = answers[i].get();
    ASSERT_EQ(r.status, 200) << i;
    json::value out = Json(r.body);
    const auto& anns = LastView(out).at("annotations").as_array();
    std::vector<std::string> sentences;
    for (const auto& a : anns) {
      if (a.at("@type") == "http://mmif.clams.ai/vocabulary/Sentence/v1") {
        sentences.emplace_back(a.at("properties").at("text").as_string());
      }
    }
    EXPECT_EQ(sentences, (std::vector<std::string>{"Request number " + std::to_string(i) + ".", "It is unique."}));
  }
}

// --- local batch use ----------------------------------------------------------------

TEST(BatchAnnotateTest, AnnotatesFilesAndStdin) {
  testing::TempDir dir;
  testing::WriteFileOrDie(dir.path() / "in.mmif", TextMmif("One. Two."));
  auto bin = testing::BuiltBinary("apps/sentence-splitter/sentence-splitter").string();
  auto r = testing::RunProgram({bin, "annotate", (dir.path() / "in.mmif").string(), (dir.path() / "out.mmif").string(),
                                "--emit", "sentences", "--pretty", "true"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json::value out = Json(testing::ReadFileOrDie(dir.path() / "out.mmif"));
  const auto& view = out.at("views").as_array()[0];
  EXPECT_EQ(view.at("annotations").as_array().size(), 2u);
  EXPECT_EQ(view.at("metadata").at("parameters"), (json::object{{"emit", "['sentences']"}, {"pretty", "true"}}));

  auto piped = testing::RunProgram({bin, "annotate"}, {}, TextMmif("Hello there."));
  ASSERT_EQ(piped.exit_code, 0) << piped.err;
  EXPECT_EQ(Json(piped.out).at("views").as_array().size(), 1u);

  auto bad = testing::RunProgram({bin, "annotate", "-"}, {}, "not json");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_THAT(bad.err, HasSubstr("malformed JSON"));

  auto badparam = testing::RunProgram({bin, "annotate", "--emit", "paragraphs"}, {}, TextMmif("x"));
  EXPECT_EQ(badparam.exit_code, 1);
  EXPECT_THAT(badparam.out, HasSubstr("must be one of ['sentences', 'tokens']"));
}

}  // namespace
}  // namespace clams::e2e
