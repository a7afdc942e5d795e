// libFuzzer target for the MMIF library: JSON parsing, validation, the
// document model and serialization.
//
// Properties checked on every input that parses as JSON:
//   * serialize(parse(x)) parses again to an equal tree (same key order, same
//     number kinds, bit-identical doubles), in every output style, and
//     serializing that tree gives the same bytes again;
//   * Mmif::Parse accepts exactly the inputs whose Validate() report has no
//     errors;
//   * queries and mutations of the document model never crash, and the
//     mutated document still round-trips.
// A violated property aborts, which libFuzzer reports as a crash.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "clams/mmif/json.h"
#include "clams/mmif/mmif.h"
#include "clams/mmif/text.h"
#include "clams/mmif/validate.h"
#include "clams/mmif/vocabulary.h"

namespace {

namespace mmif = ::clams::mmif;
namespace json = ::boost::json;

// Queries that are quadratic in the annotation count look at this many only.
constexpr std::size_t kMaxAnnotationsQueried = 16;

[[noreturn]] void Fail(const char* what, std::string_view detail) {
  std::fprintf(stderr, "mmif_fuzz: %s\n%.*s\n", what, static_cast<int>(detail.size()),
               detail.data());
  std::abort();
}

bool SameTree(const json::value& a, const json::value& b) {
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case json::kind::null:
      return true;
    case json::kind::bool_:
      return a.get_bool() == b.get_bool();
    case json::kind::int64:
      return a.get_int64() == b.get_int64();
    case json::kind::uint64:
      return a.get_uint64() == b.get_uint64();
    case json::kind::double_: {
      const double x = a.get_double();
      const double y = b.get_double();
      return std::memcmp(&x, &y, sizeof(x)) == 0;
    }
    case json::kind::string:
      return a.get_string() == b.get_string();
    case json::kind::array: {
      const json::array& x = a.get_array();
      const json::array& y = b.get_array();
      if (x.size() != y.size()) return false;
      for (std::size_t i = 0; i < x.size(); ++i) {
        if (!SameTree(x[i], y[i])) return false;
      }
      return true;
    }
    case json::kind::object: {
      const json::object& x = a.get_object();
      const json::object& y = b.get_object();
      if (x.size() != y.size()) return false;
      auto i = x.begin();
      auto j = y.begin();
      for (; i != x.end(); ++i, ++j) {
        if (i->key() != j->key() || !SameTree(i->value(), j->value())) return false;
      }
      return true;
    }
  }
  return false;
}

void CheckRoundTrip(const json::value& tree) {
  const mmif::JsonStyle styles[] = {mmif::JsonStyle{}, mmif::JsonStyle::Python(),
                                    mmif::JsonStyle{2, false, false},
                                    mmif::JsonStyle{2, false, true}};
  for (const mmif::JsonStyle& style : styles) {
    const std::string out = mmif::WriteJson(tree, style);
    clams::StatusOr<json::value> again = mmif::ParseJson(out);
    if (!again.ok()) Fail("serialized JSON does not parse", again.status().message() + "\n" + out);
    if (!SameTree(tree, *again)) Fail("round trip changed the tree", out);
    if (mmif::WriteJson(*again, style) != out) Fail("second serialization differs", out);
  }
}

void ExerciseModel(mmif::Mmif& doc) {
  for (mmif::Document d : doc.documents()) {
    (void)d.long_id();
    (void)d.LocationPath();
    if (auto text = d.text_value()) (void)mmif::CodePointIndex(*text).size();
    (void)doc.ViewsForDocument(d.id());
  }
  for (mmif::View v : doc.views()) {
    (void)v.app();
    (void)v.error();
    (void)v.warnings();
    (void)v.Contains(mmif::vocab::kTimeFrame);
    const std::size_t n = v.annotation_count();
    for (std::size_t i = 0; i < n && i < kMaxAnnotationsQueried; ++i) {
      mmif::Annotation a = v.annotation(i);
      (void)mmif::vocab::IdPrefix(a.type());
      (void)a.GetString("document");
      (void)doc.Start(a);
      (void)doc.End(a);
      (void)doc.AlignedWith(a);
      if (auto found = doc.GetAnnotation(a.long_id())) (void)found->properties();
      (void)v.GetAnnotation(a.id());
    }
  }
  (void)doc.Alignments(mmif::vocab::kTimeFrame, mmif::vocab::kToken);
  (void)doc.DocumentsByType(mmif::vocab::kTextDocument);
  (void)doc.AnnotationsOfType(mmif::vocab::kTimeFrame);
  // Mutations on whatever shape the tree has.
  mmif::View added = doc.NewView();
  added.SetApp("http://apps.clams.ai/fuzz/v1");
  mmif::Annotation tf = added.NewAnnotation(mmif::vocab::kTimeFrame, {{"start", 0}, {"end", 1}});
  (void)tf.Set("label", "speech");
  (void)added.NewTextDocument("fuzz");
  if (doc.view_count() > 1) {
    mmif::View first = doc.view(0);
    (void)first.NewAnnotation(mmif::vocab::kAlignment, {{"source", "d1"}, {"target", tf.id()}});
    first.SetError("fuzz", "trace");
  }
  (void)doc.AddDocument(mmif::vocab::kTextDocument, "fuzz-doc");
  CheckRoundTrip(doc.json());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  clams::StatusOr<json::value> tree = mmif::ParseJson(text);
  if (!tree.ok()) {
    if (mmif::Mmif::Parse(text).ok()) Fail("Mmif::Parse accepted malformed JSON", text);
    return 0;
  }
  CheckRoundTrip(*tree);

  const mmif::ValidationReport report = mmif::Validate(*tree);
  for (const mmif::ValidationIssue& issue : report.errors) (void)issue.ToString();
  clams::StatusOr<mmif::Mmif> parsed = mmif::Mmif::Parse(text);
  if (parsed.ok() != report.ok()) Fail("Mmif::Parse and Validate disagree", text);
  if (parsed.ok() && parsed->Serialize() != mmif::WriteJson(*tree)) {
    Fail("Mmif::Serialize differs from WriteJson", text);
  }

  clams::StatusOr<mmif::Mmif> loose = mmif::Mmif::FromJson(*tree, {.validate = false});
  if (!loose.ok()) Fail("FromJson without validation failed", text);
  ExerciseModel(*loose);
  return 0;
}
