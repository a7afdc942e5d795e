// mmif_bench: timings of the MMIF library, for bench/mmif/run.sh.
//
//   mmif_bench process IN OUT
//       The whole job of a process: read IN, parse + validate + index
//       (Mmif::Parse), write it back in mmif-python's format to OUT. Prints
//       nothing; run.sh times the process and reads its peak RSS.
//   mmif_bench inprocess IN [REPEATS]
//       Best-of-REPEATS wall times, in one process, of raw Boost.JSON
//       (parse into a monotonic arena + boost::json::serialize) and of
//       the library (Mmif::Parse + Serialize), plus the library's parts.
//       Prints `name seconds` lines.
//   mmif_bench annotate [N] [REPEATS]
//       Annotation building and the small-request round trip, best of
//       REPEATS, in one process: (a) a view of N (default 10,000) Token
//       annotations (start, end, text, document) built with
//       View::NewAnnotation, against (b) the same JSON built with raw
//       Boost.JSON (objects appended to an array); (c) the round trip of a
//       small request: Mmif::Parse (parse + validate) of a 400-byte text
//       MMIF, a new view with 40 annotations, Serialize (and the same with
//       ParseJson into malloc storage + FromJson); against (d) the same
//       with raw Boost.JSON (parse, append, serialize; no validation).
//       Prints `name value` lines (ns per annotation, us per round trip).
//   mmif_bench once build|build-boost N | once roundtrip|roundtrip-boost K
//       One build of N annotations, or K round trips, untimed: a driver for
//       `valgrind --tool=callgrind` (instructions per annotation).
#include <algorithm>
#include <boost/json/monotonic_resource.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include "clams/mmif/json.h"
#include "clams/mmif/mmif.h"
#include "clams/mmif/validate.h"
#include "clams/mmif/vocabulary.h"

namespace {

namespace mmif = ::clams::mmif;

// Default number of timed repetitions in `inprocess` mode (the best one counts).
constexpr int kDefaultRepeats = 7;
// Chunk size for reading the input file.
constexpr std::size_t kReadChunk = std::size_t{1} << 20;

bool ReadFile(const char* path, std::string* out) {
  std::FILE* f = std::fopen(path, "rb");
  if (f == nullptr) return false;
  std::fseek(f, 0, SEEK_END);
  const long size = std::ftell(f);
  std::fseek(f, 0, SEEK_SET);
  out->resize(size > 0 ? static_cast<std::size_t>(size) : 0);
  std::size_t done = 0;
  while (done < out->size()) {
    const std::size_t n =
        std::fread(out->data() + done, 1, std::min(kReadChunk, out->size() - done), f);
    if (n == 0) break;
    done += n;
  }
  std::fclose(f);
  return done == out->size();
}

int Process(const char* in, const char* out) {
  clams::StatusOr<mmif::Mmif> doc = mmif::Mmif::ParseFile(in);
  if (!doc.ok()) {
    std::cerr << "mmif_bench: " << in << ": " << doc.status().message() << "\n";
    return 1;
  }
  clams::Status written = doc->SerializeToFile(out, {.python_style = true});
  if (!written.ok()) {
    std::cerr << "mmif_bench: " << written.message() << "\n";
    return 1;
  }
  return 0;
}

double BestOf(int repeats, const std::function<void()>& run) {
  double best = 1e300;
  for (int i = 0; i < repeats; ++i) {
    const auto start = std::chrono::steady_clock::now();
    run();
    const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
    best = std::min(best, took.count());
  }
  return best;
}

int InProcess(const char* in, int repeats) {
  std::string text;
  if (!ReadFile(in, &text)) {
    std::cerr << "mmif_bench: cannot read " << in << "\n";
    return 1;
  }
  std::size_t sink = 0;  // keeps the optimizer from dropping work
  const double boost_time = BestOf(repeats, [&] {
    boost::json::monotonic_resource arena;
    boost::json::value v = boost::json::parse(text, &arena);
    sink += boost::json::serialize(v).size();
  });
  const double ours = BestOf(repeats, [&] {
    clams::StatusOr<mmif::Mmif> doc = mmif::Mmif::Parse(text);
    if (!doc.ok()) std::abort();
    sink += doc->Serialize({.python_style = true}).size();
  });
  const double ours_compact = BestOf(repeats, [&] {
    clams::StatusOr<mmif::Mmif> doc = mmif::Mmif::Parse(text);
    if (!doc.ok()) std::abort();
    sink += doc->Serialize().size();
  });
  const double parse = BestOf(repeats, [&] {
    auto arena = boost::json::make_shared_resource<boost::json::monotonic_resource>();
    sink += mmif::ParseJson(text, arena)->as_object().size();
  });
  clams::StatusOr<boost::json::value> tree = mmif::ParseJson(text);
  const double validate = BestOf(repeats, [&] { sink += mmif::Validate(*tree).warnings.size(); });
  clams::StatusOr<mmif::Mmif> doc = mmif::Mmif::Parse(text);
  const double serialize =
      BestOf(repeats, [&] { sink += doc->Serialize({.python_style = true}).size(); });
  std::cout << "boost_parse_serialize " << boost_time << "\n"
            << "ours_load_save " << ours << "\n"
            << "ours_load_save_compact " << ours_compact << "\n"
            << "ours_parse_json " << parse << "\n"
            << "ours_validate_index " << validate << "\n"
            << "ours_serialize " << serialize << "\n"
            << "sink " << sink % 10 << "\n";
  return 0;
}

// --- annotation building -----------------------------------------------------

namespace json = ::boost::json;

// Annotations per view in `annotate` mode.
constexpr int kDefaultAnnotations = 10000;
// Repetitions of the (short) round trip per timing, so one timing is long
// enough for the clock.
constexpr int kRoundTripsPerTiming = 200;
// Annotations the small round trip adds (the size of a sentence-splitter answer).
constexpr int kRoundTripAnnotations = 40;
// Repeats of the build in `annotate` mode (the best counts).
constexpr int kDefaultAnnotateRepeats = 15;
constexpr std::string_view kApp = "http://apps.clams.ai/bench/v1";
constexpr std::string_view kWords[] = {"Karen", "flew",          "to",      "New",        "York",
                                       ".",     "She",           "met",     "Jonathan",   "at",
                                       "the",   "international", "airport", "afterwards", ","};

// The text of the small request: 5 sentences, 40 whitespace tokens.
constexpr std::string_view kSmallText =
    "Karen flew to New York. She met Jonathan at the airport. They drove into the city "
    "together. The weather was cold and grey. Afterwards they had dinner at a small place "
    "near the park and talked until late.";

// A 400-byte text MMIF with one TextDocument "d1" holding kSmallText.
std::string SmallRequest() {
  return std::string(R"({"metadata":{"mmif":"http://mmif.clams.ai/1.1.0"},"documents":[{"@type":)"
                     R"("http://mmif.clams.ai/vocabulary/TextDocument/v1","properties":{"id":"d1",)"
                     R"("text":{"@value":")") +
         std::string(kSmallText) + R"(","@language":"en"}}}],"views":[]})";
}

// Whitespace-separated tokens of `text` as (start, end) offsets, cycled to `n`.
std::vector<std::pair<int, int>> Spans(std::string_view text, int n) {
  std::vector<std::pair<int, int>> all;
  std::size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && text[i] == ' ') ++i;
    const std::size_t start = i;
    while (i < text.size() && text[i] != ' ') ++i;
    if (i > start) all.emplace_back(static_cast<int>(start), static_cast<int>(i));
  }
  std::vector<std::pair<int, int>> out;
  for (int k = 0; k < n; ++k) out.push_back(all[static_cast<std::size_t>(k) % all.size()]);
  return out;
}

// (a) `n` Tokens through View::NewAnnotation; returns the annotation count.
std::size_t BuildWithLibrary(int n) {
  mmif::Mmif doc = mmif::Mmif::New();
  mmif::View view = doc.NewView();
  view.SetApp(kApp);
  constexpr std::size_t kWordCount = std::size(kWords);
  for (int i = 0; i < n; ++i) {
    const auto w = static_cast<std::size_t>(i) % kWordCount;
    view.NewAnnotation(
        mmif::vocab::kToken,
        {{"start", i * 8}, {"end", i * 8 + 5}, {"text", kWords[w]}, {"document", "d1"}});
  }
  return view.annotation_count();
}

// (b) The same JSON with raw Boost.JSON: ids formatted by hand, objects
// built in place and appended to the annotations array, all in `storage`.
std::size_t BuildWithBoost(int n, const json::storage_ptr& storage) {
  json::value root(json::object_kind, storage);
  json::object& r = root.get_object();
  json::object& metadata = r["metadata"].emplace_object();
  metadata.emplace("mmif", mmif::kSpecVersionIri);
  r.emplace("documents", json::array());
  json::array& views = r["views"].emplace_array();
  json::object& view = views.emplace_back(json::object()).get_object();
  view.emplace("id", "v_0");
  json::object& vmeta = view["metadata"].emplace_object();
  vmeta.emplace("timestamp", "2026-01-01T00:00:00.000000");
  vmeta.emplace("app", kApp);
  vmeta["contains"].emplace_object()[mmif::vocab::kToken].emplace_object();
  json::array& anns = view["annotations"].emplace_array();
  constexpr std::size_t kWordCount = std::size(kWords);
  char id[32] = "v_0:to_";
  constexpr std::size_t kIdPrefixLength = 7;
  for (int i = 0; i < n; ++i) {
    const auto w = static_cast<std::size_t>(i) % kWordCount;
    auto end = std::to_chars(id + kIdPrefixLength, id + sizeof(id), i + 1).ptr;
    json::object& ann = anns.emplace_back(json::object()).get_object();
    ann.reserve(2);
    ann.emplace("@type", mmif::vocab::kToken);
    json::object& props = ann["properties"].emplace_object();
    props.reserve(5);
    props.emplace("id", std::string_view(id, static_cast<std::size_t>(end - id)));
    props.emplace("start", i * 8);
    props.emplace("end", i * 8 + 5);
    props.emplace("text", kWords[w]);
    props.emplace("document", "d1");
  }
  return anns.size();
}

// (c) The small request's round trip through the library: Mmif::Parse
// (into an arena), or, with `malloc_tree`, ParseJson into the default
// storage + Mmif::FromJson (what src/app/runner.cc does with a request).
std::size_t RoundTripWithLibrary(const std::string& request,
                                 const std::vector<std::pair<int, int>>& spans,
                                 bool malloc_tree = false) {
  clams::StatusOr<mmif::Mmif> doc =
      malloc_tree ? mmif::Mmif::FromJson(*mmif::ParseJson(request)) : mmif::Mmif::Parse(request);
  if (!doc.ok()) std::abort();
  mmif::Document d = doc->document(0);
  const std::string_view text = *d.text_value();
  const std::string doc_id = d.long_id();
  mmif::View view = doc->NewView();
  view.SetApp(kApp);
  view.NewContain(mmif::vocab::kToken, {{"document", doc_id}});
  for (const auto& [start, end] : spans) {
    view.NewAnnotation(mmif::vocab::kToken,
                       {{"start", start},
                        {"end", end},
                        {"text", text.substr(static_cast<std::size_t>(start),
                                             static_cast<std::size_t>(end - start))}});
  }
  return doc->Serialize().size();
}

// (d) The same with raw Boost.JSON (no validation, no index).
std::size_t RoundTripWithBoost(const std::string& request,
                               const std::vector<std::pair<int, int>>& spans) {
  json::monotonic_resource arena;
  json::value root = json::parse(request, &arena);
  json::object& r = root.get_object();
  const json::string& text_value = r["documents"]
                                       .get_array()[0]
                                       .get_object()["properties"]
                                       .get_object()["text"]
                                       .get_object()["@value"]
                                       .get_string();
  const std::string_view text(text_value.data(), text_value.size());
  json::array& views = r["views"].get_array();
  json::object& view = views.emplace_back(json::object()).get_object();
  view.emplace("id", "v_0");
  json::object& vmeta = view["metadata"].emplace_object();
  vmeta.emplace("timestamp", "2026-01-01T00:00:00.000000");
  vmeta.emplace("app", kApp);
  vmeta["contains"].emplace_object()[mmif::vocab::kToken].emplace_object().emplace("document",
                                                                                   "d1");
  json::array& anns = view["annotations"].emplace_array();
  char id[32] = "v_0:to_";
  constexpr std::size_t kIdPrefixLength = 7;
  int i = 0;
  for (const auto& [start, end] : spans) {
    auto id_end = std::to_chars(id + kIdPrefixLength, id + sizeof(id), ++i).ptr;
    json::object& ann = anns.emplace_back(json::object()).get_object();
    ann.reserve(2);
    ann.emplace("@type", mmif::vocab::kToken);
    json::object& props = ann["properties"].emplace_object();
    props.reserve(4);
    props.emplace("id", std::string_view(id, static_cast<std::size_t>(id_end - id)));
    props.emplace("start", start);
    props.emplace("end", end);
    props.emplace("text", text.substr(static_cast<std::size_t>(start),
                                      static_cast<std::size_t>(end - start)));
  }
  return json::serialize(root).size();
}

int Annotate(int n, int repeats) {
  std::size_t sink = 0;
  // Raw Boost.JSON in a shared monotonic arena, the storage of a Mmif's
  // tree (Mmif::New), and with the default (malloc) storage for reference.
  const double boost_build = BestOf(repeats, [&] {
    sink += BuildWithBoost(n, json::make_shared_resource<json::monotonic_resource>());
  });
  const double boost_malloc_build = BestOf(repeats, [&] { sink += BuildWithBoost(n, {}); });
  const double ours_build = BestOf(repeats, [&] { sink += BuildWithLibrary(n); });
  const std::string request = SmallRequest();
  const std::vector<std::pair<int, int>> spans = Spans(kSmallText, kRoundTripAnnotations);
  const double boost_trip = BestOf(repeats, [&] {
    for (int k = 0; k < kRoundTripsPerTiming; ++k) sink += RoundTripWithBoost(request, spans);
  });
  const double ours_trip = BestOf(repeats, [&] {
    for (int k = 0; k < kRoundTripsPerTiming; ++k) sink += RoundTripWithLibrary(request, spans);
  });
  const double ours_malloc_trip = BestOf(repeats, [&] {
    for (int k = 0; k < kRoundTripsPerTiming; ++k) {
      sink += RoundTripWithLibrary(request, spans, /*malloc_tree=*/true);
    }
  });
  constexpr double kNanos = 1e9;
  constexpr double kMicros = 1e6;
  std::cout << "annotations " << n << "\n"
            << "boost_build_ns " << boost_build * kNanos / n << "\n"
            << "boost_malloc_build_ns " << boost_malloc_build * kNanos / n << "\n"
            << "ours_build_ns " << ours_build * kNanos / n << "\n"
            << "request_bytes " << request.size() << "\n"
            << "roundtrip_annotations " << spans.size() << "\n"
            << "boost_roundtrip_us " << boost_trip * kMicros / kRoundTripsPerTiming << "\n"
            << "ours_roundtrip_us " << ours_trip * kMicros / kRoundTripsPerTiming << "\n"
            << "ours_malloc_roundtrip_us " << ours_malloc_trip * kMicros / kRoundTripsPerTiming
            << "\n"
            << "sink " << sink % 10 << "\n";
  return 0;
}

// One untimed run, for callgrind.
int Once(const std::string& what, int n) {
  std::size_t sink = 0;
  if (what == "build") {
    sink = BuildWithLibrary(n);
  } else if (what == "build-boost") {
    sink = BuildWithBoost(n, json::make_shared_resource<json::monotonic_resource>());
  } else if (what == "roundtrip") {
    const std::string request = SmallRequest();
    const auto spans = Spans(kSmallText, kRoundTripAnnotations);
    for (int k = 0; k < n; ++k) sink += RoundTripWithLibrary(request, spans);
  } else if (what == "roundtrip-boost") {
    const std::string request = SmallRequest();
    const auto spans = Spans(kSmallText, kRoundTripAnnotations);
    for (int k = 0; k < n; ++k) sink += RoundTripWithBoost(request, spans);
  } else {
    return 2;
  }
  return sink == 0 ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "process" && argc == 4) return Process(argv[2], argv[3]);
  if (mode == "inprocess" && (argc == 3 || argc == 4)) {
    return InProcess(argv[2], argc == 4 ? std::atoi(argv[3]) : kDefaultRepeats);
  }
  if (mode == "annotate" && argc <= 4) {
    return Annotate(argc >= 3 ? std::atoi(argv[2]) : kDefaultAnnotations,
                    argc == 4 ? std::atoi(argv[3]) : kDefaultAnnotateRepeats);
  }
  if (mode == "once" && argc == 4) return Once(argv[2], std::atoi(argv[3]));
  std::cerr << "usage: mmif_bench process IN OUT | mmif_bench inprocess IN [REPEATS] |\n"
               "       mmif_bench annotate [N] [REPEATS] | mmif_bench once WHAT N\n";
  return 2;
}
