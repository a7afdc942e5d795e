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
#include <algorithm>
#include <boost/json/monotonic_resource.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <iostream>
#include <string>

#include "clams/mmif/json.h"
#include "clams/mmif/mmif.h"
#include "clams/mmif/validate.h"

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

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "process" && argc == 4) return Process(argv[2], argv[3]);
  if (mode == "inprocess" && (argc == 3 || argc == 4)) {
    return InProcess(argv[2], argc == 4 ? std::atoi(argv[3]) : kDefaultRepeats);
  }
  std::cerr << "usage: mmif_bench process IN OUT | mmif_bench inprocess IN [REPEATS]\n";
  return 2;
}
