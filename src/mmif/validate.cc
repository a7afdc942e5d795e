// Validation of MMIF trees: the rules of the official JSON schema
// (shared/data/mmif/schema/mmif.json, draft 4), checked by hand in the same
// walk that indexes the ids, plus duplicate ids and dangling references.
//
// The schema, rule by rule, and where each rule is checked:
//   root            object; only metadata/documents/views; all three required  WalkRoot
//   metadata        object; mmif: string, minLength 7, required                 WalkMmifMetadata
//   documents       array of "annotation" objects                               WalkDocuments
//   views           array of view objects                                        WalkViews
//   view            object; only id/metadata/annotations, all required;
//                   id: string minLength 1; annotations: array of annotations    WalkView
//   view metadata   object; timestamp: string; app: string minLength 7;
//                   contains: object, keys ^https?://, values objects;
//                   error: object, message string minLength 1 (required),
//                   stackTrace string; warnings: array of strings;
//                   parameters: strStrMap; appConfiguration: object;
//                   oneOf {app,contains} | {app,warnings} | {app,error}         WalkViewMetadata
//   annotation      object; only @type/properties, both required;
//                   @type: string minLength 1; properties: object with
//                   id: string minLength 1 (required)                            WalkAnnotation
//   strStrMap       patternProperties ".+" (a key with a character other than
//                   a newline): string or array of strings                      WalkParameters
// Not checked, as in the schema: `format`, `minLength` on arrays (a no-op in
// draft 4), the unreferenced `text` definition.
#include "clams/mmif/validate.h"

#include <algorithm>
#include <charconv>
#include <tuple>
#include <utility>

#include "mmif/internal.h"

namespace clams::mmif {
namespace {

using mmif_internal::IdIndex;
using mmif_internal::IdParts;
using mmif_internal::Loc;
using mmif_internal::TreeSlots;
using mmif_internal::ViewSlots;

// The schema's minLength for `metadata.mmif` and a view's `app` (a URI).
constexpr std::size_t kMinUriLength = 7;
// The versions this library reads: 1.0.0 up to 1.<kMaxMinorVersion>.x, and
// before 1.0 the releases from 0.<kMinPre1MinorVersion>.0 to
// 0.<kMaxPre1MinorVersion>.x, whose files mmif-python still loads (it
// refuses the type IRIs of MMIF older than 0.4.0; 0.5.0 was followed by 1.0.0).
constexpr int kSupportedMajorVersion = 1;
constexpr int kMaxMinorVersion = 2;
constexpr int kMinPre1MinorVersion = 4;
constexpr int kMaxPre1MinorVersion = 5;
// The first version whose annotation ids are long (`v1:tf1`) everywhere.
constexpr int kLongIdsMinorVersion = 1;
constexpr std::string_view kVersionIriPrefixes[] = {"http://mmif.clams.ai/",
                                                    "https://mmif.clams.ai/"};

std::string_view KindName(const json::value& v) {
  switch (v.kind()) {
    case json::kind::null:
      return "null";
    case json::kind::bool_:
      return "boolean";
    case json::kind::int64:
    case json::kind::uint64:
    case json::kind::double_:
      return "number";
    case json::kind::string:
      return "string";
    case json::kind::array:
      return "array";
    case json::kind::object:
      return "object";
  }
  return "value";
}

std::string_view AsView(const json::string& s) { return std::string_view(s.data(), s.size()); }
std::string_view AsView(json::string_view s) { return std::string_view(s.data(), s.size()); }

// True if `s` has at least `n` code points (the schema counts characters).
bool HasAtLeastCodePoints(std::string_view s, std::size_t n) {
  if (s.size() < n) return false;
  std::size_t count = 0;
  for (unsigned char c : s) {
    if ((c & 0xC0) != 0x80 && ++count >= n) return true;
  }
  return count >= n;
}

std::string Quoted(std::string_view s) {
  std::string out;
  AppendJsonString(out, s);
  return out;
}

// "X.Y.Z" with numeric parts.
struct Version {
  int major = 0;
  int minor = 0;
  int patch = 0;
};

std::optional<Version> ParseVersionNumber(std::string_view s) {
  Version v;
  int* parts[] = {&v.major, &v.minor, &v.patch};
  const char* p = s.data();
  const char* end = s.data() + s.size();
  for (std::size_t i = 0; i < 3; ++i) {
    if (p == end || *p < '0' || *p > '9') return std::nullopt;
    auto r = std::from_chars(p, end, *parts[i]);
    if (r.ec != std::errc()) return std::nullopt;
    p = r.ptr;
    if (i < 2) {
      if (p == end || *p != '.') return std::nullopt;
      ++p;
    }
  }
  if (p != end) return std::nullopt;
  return v;
}

// The version part of a version IRI, or an error message.
StatusOr<std::string> VersionFromIri(std::string_view iri) {
  for (std::string_view prefix : kVersionIriPrefixes) {
    if (iri.substr(0, prefix.size()) == prefix) {
      std::string_view version = iri.substr(prefix.size());
      if (ParseVersionNumber(version)) return std::string(version);
      break;
    }
  }
  return InvalidArgumentError("cannot read the MMIF version from " + Quoted(iri) +
                              " (expected \"http://mmif.clams.ai/<major>.<minor>.<patch>\")");
}

// Sort key that puts warnings in document order: (section, view or
// document index, part of the view, annotation, position inside).
using OrderKey = std::tuple<int, std::int64_t, int, std::int64_t, std::int64_t>;
constexpr int kDocumentsSection = 0;
constexpr int kViewsSection = 1;
constexpr int kViewIdPart = 0;
constexpr int kViewMetadataPart = 1;
constexpr int kViewAnnotationsPart = 2;
// Path depth of an MMIF document (root, views, view, annotations, annotation,
// properties, value, list) with room to spare: the walk's path never grows.
constexpr std::size_t kPathReserve = 16;
// Position inside an annotation: property position * this + list index.
constexpr std::int64_t kListIndexSpan = std::int64_t{1} << 32;

class Walker {
 public:
  Walker(const ValidateOptions& options, TreeSlots* slots, IdIndex* index, ValidationReport* report)
      : options_(options), slots_(slots), index_(index), report_(report) {
    path_.reserve(kPathReserve);
    if (report_ == nullptr) {
      options_.schema = false;
      options_.version = false;
      options_.references = false;
    }
    if (index_ == nullptr) options_.references = false;
  }

  void Run(const json::value& root) {
    *slots_ = TreeSlots();
    if (!root.is_object()) {
      if (options_.schema) Error("must be an object (got " + std::string(KindName(root)) + ")");
      return;
    }
    const json::object& o = root.get_object();
    short_ids_ = mmif_internal::UsesShortIds(PeekVersion(o));
    if (index_ != nullptr) index_->Reserve(EstimateIds(o));
    bool has_metadata = false;
    bool has_documents = false;
    bool has_views = false;
    for (const json::key_value_pair& kv : o) {
      std::string_view key = AsView(kv.key());
      if (key == "metadata") {
        has_metadata = true;
        slots_->metadata = &kv.value();
        Push(key);
        WalkMmifMetadata(kv.value());
        Pop();
      } else if (key == "documents") {
        has_documents = true;
        slots_->documents = &kv.value();
        Push(key);
        WalkDocuments(kv.value());
        Pop();
      } else if (key == "views") {
        has_views = true;
        slots_->views = &kv.value();
        Push(key);
        WalkViews(kv.value());
        Pop();
      } else if (options_.schema) {
        NotAllowed(key, R"("metadata", "documents", "views")");
      }
    }
    if (options_.schema) {
      if (!has_metadata) Error(R"(missing required property "metadata")");
      if (!has_documents) Error(R"(missing required property "documents")");
      if (!has_views) Error(R"(missing required property "views")");
    }
    if (!has_metadata && options_.version && !options_.schema) {
      Error("cannot read the MMIF version: \"metadata.mmif\" is missing");
    }
    FinishReferences();
  }

 private:
  // --- paths and issues ----------------------------------------------------

  enum class SegmentKind { kProperty, kMapKey, kIndex };
  struct Segment {
    std::string_view key;
    std::size_t index = 0;
    SegmentKind kind = SegmentKind::kProperty;
  };

  void Push(std::string_view key) { path_.push_back(Segment{key, 0, SegmentKind::kProperty}); }
  // A key of a map-like object (contains, parameters): always written ["key"].
  void PushMapKey(std::string_view key) { path_.push_back(Segment{key, 0, SegmentKind::kMapKey}); }
  void PushIndex(std::size_t i) { path_.push_back(Segment{{}, i, SegmentKind::kIndex}); }
  void Pop() { path_.pop_back(); }

  std::string CurrentPath() const {
    std::string out;
    for (const Segment& s : path_) {
      if (s.kind == SegmentKind::kIndex) {
        out += '[';
        out += std::to_string(s.index);
        out += ']';
      } else if (s.kind == SegmentKind::kMapKey) {
        out += '[';
        AppendJsonString(out, s.key);
        out += ']';
      } else {
        mmif_internal::AppendPathKey(out, s.key);
      }
    }
    return out.empty() ? "(root)" : out;
  }

  void Error(std::string message) {
    report_->errors.push_back(
        ValidationIssue{ValidationIssue::Severity::kError, CurrentPath(), std::move(message)});
  }
  void Warning(const OrderKey& order, std::string path, std::string message) {
    warnings_.push_back({order, ValidationIssue{ValidationIssue::Severity::kWarning,
                                                std::move(path), std::move(message)}});
  }
  void NotAllowed(std::string_view key, std::string_view allowed) {
    Error("property " + Quoted(key) + " is not allowed (allowed: " + std::string(allowed) + ")");
  }
  void WrongKind(const json::value& v, std::string_view expected) {
    Error("must be " + std::string(expected) + " (got " + std::string(KindName(v)) + ")");
  }

  // Checks the kind of `v` (schema errors only); returns whether it matched.
  bool ExpectObject(const json::value& v) {
    if (v.is_object()) return true;
    if (options_.schema) WrongKind(v, "an object");
    return false;
  }
  bool ExpectArray(const json::value& v) {
    if (v.is_array()) return true;
    if (options_.schema) WrongKind(v, "an array");
    return false;
  }
  // A string of at least `min_length` code points.
  bool ExpectString(const json::value& v, std::size_t min_length) {
    if (!v.is_string()) {
      if (options_.schema) WrongKind(v, "a string");
      return false;
    }
    if (min_length > 0 && !HasAtLeastCodePoints(AsView(v.get_string()), min_length)) {
      if (options_.schema) {
        Error(min_length == 1
                  ? std::string("must not be empty")
                  : "must be at least " + std::to_string(min_length) + " characters long");
      }
      return false;
    }
    return true;
  }

  // --- root metadata ---------------------------------------------------------

  static std::string_view PeekVersion(const json::object& root) {
    auto m = root.find("metadata");
    if (m == root.end() || !m->value().is_object()) return {};
    auto v = m->value().get_object().find("mmif");
    if (v == m->value().get_object().end() || !v->value().is_string()) return {};
    std::string_view iri = AsView(v->value().get_string());
    std::size_t slash = iri.rfind('/');
    return slash == std::string_view::npos ? iri : iri.substr(slash + 1);
  }

  // A capacity hint for the id index: documents + views + annotations.
  static std::size_t EstimateIds(const json::object& root) {
    std::size_t n = 0;
    auto d = root.find("documents");
    if (d != root.end() && d->value().is_array()) n += d->value().get_array().size();
    auto v = root.find("views");
    if (v != root.end() && v->value().is_array()) {
      for (const json::value& view : v->value().get_array()) {
        ++n;
        if (!view.is_object()) continue;
        auto a = view.get_object().find("annotations");
        if (a != view.get_object().end() && a->value().is_array()) {
          n += a->value().get_array().size();
        }
      }
    }
    return n;
  }

  void WalkMmifMetadata(const json::value& v) {
    if (!ExpectObject(v)) {
      if (options_.version && !options_.schema) {
        Error("cannot read the MMIF version: \"metadata\" is not an object");
      }
      return;
    }
    const json::object& o = v.get_object();
    auto mmif = o.find("mmif");
    if (mmif == o.end()) {
      if (options_.schema) {
        Error(R"(missing required property "mmif")");
      } else if (options_.version) {
        Error("cannot read the MMIF version: \"metadata.mmif\" is missing");
      }
      return;
    }
    Push("mmif");
    const json::value& value = mmif->value();
    const bool schema_ok = ExpectString(value, kMinUriLength);
    if (options_.version && (schema_ok || !options_.schema)) {
      if (!value.is_string()) {
        Error("cannot read the MMIF version: \"metadata.mmif\" is not a string");
      } else {
        StatusOr<std::string> version = VersionFromIri(AsView(value.get_string()));
        if (!version.ok()) {
          Error(version.status().message());
        } else if (Status s = CheckSupportedVersion(*version); !s.ok()) {
          Error(s.message());
        }
      }
    }
    Pop();
  }

  // --- documents and annotations -------------------------------------------

  void WalkDocuments(const json::value& v) {
    if (!ExpectArray(v)) return;
    const json::array& a = v.get_array();
    for (std::size_t i = 0; i < a.size(); ++i) {
      PushIndex(i);
      WalkAnnotation(a[i], Loc{Loc::kDocument, static_cast<std::uint32_t>(i)});
      Pop();
    }
  }

  void WalkAnnotation(const json::value& v, const Loc& loc) {
    if (!ExpectObject(v)) return;
    const json::object& o = v.get_object();
    bool has_type = false;
    bool has_properties = false;
    for (const json::key_value_pair& kv : o) {
      std::string_view key = AsView(kv.key());
      if (key == "properties") {
        has_properties = true;
        Push(key);
        WalkProperties(kv.value(), loc);
        Pop();
      } else if (key == "@type") {
        has_type = true;
        if (options_.schema) {
          Push(key);
          ExpectString(kv.value(), 1);
          Pop();
        }
      } else if (options_.schema) {
        NotAllowed(key, R"("@type", "properties")");
      }
    }
    if (options_.schema) {
      if (!has_type) Error(R"(missing required property "@type")");
      if (!has_properties) Error(R"(missing required property "properties")");
    }
  }

  void WalkProperties(const json::value& v, const Loc& loc) {
    if (!ExpectObject(v)) return;
    const json::object& o = v.get_object();
    bool has_id = false;
    std::int64_t position = 0;
    for (const json::key_value_pair& kv : o) {
      std::string_view key = AsView(kv.key());
      ++position;
      if (key == "id") {
        has_id = true;
        Push(key);
        if (ExpectString(kv.value(), 1)) {
          AddId(AsView(kv.value().get_string()), loc, position * kListIndexSpan);
        }
        Pop();
      } else if (loc.is_annotation() && options_.references) {
        if (key == "document" || key == "source" || key == "target") {
          if (kv.value().is_string()) {
            CheckReference(AsView(kv.value().get_string()), loc, key, -1, position);
          }
        } else if (key == "targets" || key == "representatives") {
          if (kv.value().is_array()) {
            const json::array& refs = kv.value().get_array();
            for (std::size_t i = 0; i < refs.size(); ++i) {
              if (refs[i].is_string()) {
                CheckReference(AsView(refs[i].get_string()), loc, key, static_cast<std::int64_t>(i),
                               position);
              }
            }
          }
        }
      }
    }
    if (!has_id && options_.schema) Error(R"(missing required property "id")");
  }

  // --- ids and references --------------------------------------------------

  // `position` orders the warning inside its annotation.
  void AddId(std::string_view id, const Loc& loc, std::int64_t position = 0) {
    if (index_ == nullptr) return;
    IdParts parts{{}, id};
    if (loc.is_annotation() && id.find(':') == std::string_view::npos) {
      parts.view = slots_->ViewId(loc.view);
    }
    std::optional<Loc> first = index_->Insert(parts, loc, *slots_);
    if (!first || !options_.references) return;
    OrderKey order =
        loc.view == Loc::kDocument ? OrderKey{kDocumentsSection, loc.index, 0, 0, 0}
        : loc.view == Loc::kView
            ? OrderKey{kViewsSection, loc.index, kViewIdPart, 0, 0}
            : OrderKey{kViewsSection, loc.view, kViewAnnotationsPart, loc.index, position};
    Warning(order, CurrentPath(),
            "duplicate id " + Quoted(parts.Long()) + " (first at " +
                mmif_internal::LocPath(*first) + ")");
  }

  struct PendingReference {
    std::string_view ref;
    std::int32_t view;
    OrderKey order;
    std::string path;
  };

  // `loc` is the annotation (or, for contains, Loc{view, 0} with
  // `list_index` = -2 marking the metadata part).
  void CheckReference(std::string_view ref, const Loc& loc, std::string_view key,
                      std::int64_t list_index, std::int64_t position) {
    if (mmif_internal::Resolve(ref, loc.view, short_ids_, *slots_, *index_)) return;
    std::string path = CurrentPath();
    mmif_internal::AppendPathKey(path, key);
    if (list_index >= 0) path += "[" + std::to_string(list_index) + "]";
    pending_.push_back(PendingReference{
        ref, loc.view,
        OrderKey{kViewsSection, loc.view, kViewAnnotationsPart, loc.index,
                 position * kListIndexSpan + std::max<std::int64_t>(list_index, 0)},
        std::move(path)});
  }

  void CheckContainsReference(std::string_view ref, std::int32_t view, std::int64_t position) {
    if (mmif_internal::Resolve(ref, view, short_ids_, *slots_, *index_)) return;
    std::string path = CurrentPath();
    mmif_internal::AppendPathKey(path, "document");
    pending_.push_back(PendingReference{
        ref, view, OrderKey{kViewsSection, view, kViewMetadataPart, position, 0}, std::move(path)});
  }

  void FinishReferences() {
    for (PendingReference& p : pending_) {
      if (mmif_internal::Resolve(p.ref, p.view, short_ids_, *slots_, *index_)) continue;
      Warning(p.order, std::move(p.path),
              "dangling reference " + Quoted(p.ref) + ": no document or annotation has this id");
    }
    if (report_ == nullptr) return;
    std::stable_sort(warnings_.begin(), warnings_.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    for (auto& w : warnings_) report_->warnings.push_back(std::move(w.second));
  }

  // --- views -----------------------------------------------------------------

  void WalkViews(const json::value& v) {
    if (!ExpectArray(v)) return;
    const json::array& a = v.get_array();
    slots_->view_slots.resize(a.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
      PushIndex(i);
      WalkView(a[i], static_cast<std::int32_t>(i));
      Pop();
    }
  }

  void WalkView(const json::value& v, std::int32_t view) {
    if (!ExpectObject(v)) return;
    const json::object& o = v.get_object();
    ViewSlots& slots = slots_->view_slots[static_cast<std::size_t>(view)];
    // The id first: annotation ids are indexed as `<view id>:<id>`.
    if (auto it = o.find("id"); it != o.end()) slots.id = &it->value();
    bool has_metadata = false;
    bool has_annotations = false;
    for (const json::key_value_pair& kv : o) {
      std::string_view key = AsView(kv.key());
      if (key == "annotations") {
        has_annotations = true;
        slots.annotations = &kv.value();
        Push(key);
        if (ExpectArray(kv.value())) {
          const json::array& anns = kv.value().get_array();
          for (std::size_t i = 0; i < anns.size(); ++i) {
            PushIndex(i);
            WalkAnnotation(anns[i], Loc{view, static_cast<std::uint32_t>(i)});
            Pop();
          }
        }
        Pop();
      } else if (key == "id") {
        Push(key);
        if (ExpectString(kv.value(), 1)) {
          AddId(AsView(kv.value().get_string()), Loc{Loc::kView, static_cast<std::uint32_t>(view)});
        }
        Pop();
      } else if (key == "metadata") {
        has_metadata = true;
        slots.metadata = &kv.value();
        Push(key);
        WalkViewMetadata(kv.value(), view);
        Pop();
      } else if (options_.schema) {
        NotAllowed(key, R"("id", "metadata", "annotations")");
      }
    }
    if (options_.schema) {
      if (slots.id == nullptr) Error(R"(missing required property "id")");
      if (!has_metadata) Error(R"(missing required property "metadata")");
      if (!has_annotations) Error(R"(missing required property "annotations")");
    }
  }

  void WalkViewMetadata(const json::value& v, std::int32_t view) {
    if (!ExpectObject(v)) return;
    const json::object& o = v.get_object();
    bool has_app = false;
    bool has_contains = false;
    bool has_warnings = false;
    bool has_error = false;
    for (const json::key_value_pair& kv : o) {
      std::string_view key = AsView(kv.key());
      const json::value& value = kv.value();
      if (key == "contains") {
        has_contains = true;
        Push(key);
        WalkContains(value, view);
        Pop();
      } else if (key == "app") {
        has_app = true;
        if (options_.schema) {
          Push(key);
          ExpectString(value, kMinUriLength);
          Pop();
        }
      } else if (!options_.schema) {
        if (key == "warnings") has_warnings = true;
        if (key == "error") has_error = true;
      } else if (key == "timestamp") {
        Push(key);
        ExpectString(value, 0);
        Pop();
      } else if (key == "error") {
        has_error = true;
        Push(key);
        WalkError(value);
        Pop();
      } else if (key == "warnings") {
        has_warnings = true;
        Push(key);
        if (ExpectArray(value)) {
          const json::array& a = value.get_array();
          for (std::size_t i = 0; i < a.size(); ++i) {
            PushIndex(i);
            ExpectString(a[i], 0);
            Pop();
          }
        }
        Pop();
      } else if (key == "parameters") {
        Push(key);
        WalkParameters(value);
        Pop();
      } else if (key == "appConfiguration") {
        Push(key);
        ExpectObject(value);
        Pop();
      }
    }
    if (!options_.schema) return;
    if (!has_app) Error(R"(missing required property "app")");
    const int branches = int{has_contains} + int{has_warnings} + int{has_error};
    if (branches == 0) {
      Error(R"(must have exactly one of "contains", "warnings", "error")");
    } else if (branches > 1) {
      std::string found;
      for (auto [present, name] :
           {std::pair{has_contains, R"("contains")"}, std::pair{has_warnings, R"("warnings")"},
            std::pair{has_error, R"("error")"}}) {
        if (!present) continue;
        if (!found.empty()) found += " and ";
        found += name;
      }
      Error(R"(must have exactly one of "contains", "warnings", "error" (has )" + found + ")");
    }
  }

  void WalkContains(const json::value& v, std::int32_t view) {
    if (!ExpectObject(v)) return;
    std::int64_t position = 0;
    for (const json::key_value_pair& kv : v.get_object()) {
      std::string_view key = AsView(kv.key());
      ++position;
      PushMapKey(key);
      const bool uri_key = key.substr(0, 7) == "http://" || key.substr(0, 8) == "https://";
      if (!uri_key) {
        if (options_.schema) Error("key is not an annotation type IRI (must match ^https?://)");
      } else if (ExpectObject(kv.value()) && options_.references) {
        const json::object& meta = kv.value().get_object();
        auto doc = meta.find("document");
        if (doc != meta.end() && doc->value().is_string()) {
          CheckContainsReference(AsView(doc->value().get_string()), view, position);
        }
      }
      Pop();
    }
  }

  void WalkError(const json::value& v) {
    if (!ExpectObject(v)) return;
    bool has_message = false;
    for (const json::key_value_pair& kv : v.get_object()) {
      std::string_view key = AsView(kv.key());
      if (key == "message") {
        has_message = true;
        Push(key);
        ExpectString(kv.value(), 1);
        Pop();
      } else if (key == "stackTrace") {
        Push(key);
        ExpectString(kv.value(), 0);
        Pop();
      }
    }
    if (!has_message) Error(R"(missing required property "message")");
  }

  // strStrMap: patternProperties ".+" constrains every key that has a
  // character other than a newline (Python's `.`); other keys are free.
  void WalkParameters(const json::value& v) {
    if (!ExpectObject(v)) return;
    for (const json::key_value_pair& kv : v.get_object()) {
      std::string_view key = AsView(kv.key());
      if (key.find_first_not_of('\n') == std::string_view::npos) continue;
      const json::value& value = kv.value();
      bool ok = value.is_string();
      if (value.is_array()) {
        const json::array& a = value.get_array();
        ok = std::all_of(a.begin(), a.end(), [](const json::value& x) { return x.is_string(); });
      }
      if (!ok) {
        PushMapKey(key);
        Error("must be a string or an array of strings");
        Pop();
      }
    }
  }

  ValidateOptions options_;
  TreeSlots* slots_;
  IdIndex* index_;
  ValidationReport* report_;
  bool short_ids_ = false;
  std::vector<Segment> path_;
  std::vector<PendingReference> pending_;
  std::vector<std::pair<OrderKey, ValidationIssue>> warnings_;
};

}  // namespace

std::string ValidationIssue::ToString() const { return path + ": " + message; }

Status ValidationReport::ToStatus(bool strict) const {
  const std::size_t problems = errors.size() + (strict ? warnings.size() : 0);
  if (problems == 0) return Status();
  const ValidationIssue& first = errors.empty() ? warnings.front() : errors.front();
  std::string message = first.ToString();
  if (problems > 1) {
    message +=
        " (and " + std::to_string(problems - 1) + " more problem" + (problems > 2 ? "s" : "") + ")";
  }
  return InvalidArgumentError(std::move(message));
}

StatusOr<std::string> ReadMmifVersion(const json::value& tree) {
  const json::object* root = tree.if_object();
  if (root == nullptr) return InvalidArgumentError("cannot read the MMIF version: not an object");
  auto m = root->find("metadata");
  const json::object* metadata = m == root->end() ? nullptr : m->value().if_object();
  if (metadata == nullptr) {
    return InvalidArgumentError("cannot read the MMIF version: \"metadata\" is missing");
  }
  auto v = metadata->find("mmif");
  if (v == metadata->end()) {
    return InvalidArgumentError("cannot read the MMIF version: \"metadata.mmif\" is missing");
  }
  if (!v->value().is_string()) {
    return InvalidArgumentError("cannot read the MMIF version: \"metadata.mmif\" is not a string");
  }
  return VersionFromIri(AsView(v->value().get_string()));
}

Status CheckSupportedVersion(std::string_view version) {
  std::optional<Version> v = ParseVersionNumber(version);
  if (!v) {
    return InvalidArgumentError("MMIF version " + Quoted(version) +
                                " is not a version number (expected <major>.<minor>.<patch>)");
  }
  if (v->major == kSupportedMajorVersion && v->minor <= kMaxMinorVersion) return Status();
  if (v->major == 0 && v->minor >= kMinPre1MinorVersion && v->minor <= kMaxPre1MinorVersion) return Status();
  std::string message = "MMIF " + std::string(version) + " is not supported: clams-cpp reads MMIF 0." +
                        std::to_string(kMinPre1MinorVersion) + ".0 to 0." + std::to_string(kMaxPre1MinorVersion) +
                        ".x and 1.0.0 to 1." + std::to_string(kMaxMinorVersion) + ".x; ";
  if (v->major == 0 && v->minor < kMinPre1MinorVersion) {
    message += "files older than 0." + std::to_string(kMinPre1MinorVersion) +
               ".0 use type IRIs that mmif-python refuses too";
  } else if (v->major == 0) {
    message += "there is no such MMIF release";
  } else {
    message += "this file follows a newer specification";
  }
  return InvalidArgumentError(std::move(message));
}

ValidationReport Validate(const json::value& tree) { return Validate(tree, ValidateOptions{}); }

ValidationReport Validate(const json::value& tree, const ValidateOptions& options) {
  ValidationReport report;
  TreeSlots slots;
  IdIndex index;
  mmif_internal::Walk(tree, options, &slots, options.references ? &index : nullptr, &report);
  return report;
}

}  // namespace clams::mmif

namespace clams::mmif_internal {
namespace {

// 64-bit FNV-1a: simple, and ids are short.
constexpr std::uint64_t kFnvOffset = 1469598103934665603ULL;
constexpr std::uint64_t kFnvPrime = 1099511628211ULL;
// The smallest id index table: room for 32 ids, what a small request adds.
constexpr std::size_t kMinIndexSlots = 64;

std::uint64_t FnvAppend(std::uint64_t h, std::string_view s) {
  for (unsigned char c : s) {
    h ^= c;
    h *= kFnvPrime;
  }
  return h;
}

std::string_view StringOf(const json::value* v) {
  if (v == nullptr || !v->is_string()) return {};
  return std::string_view(v->get_string().data(), v->get_string().size());
}

// Character `i` of a long id given in parts.
char CharAt(const IdParts& p, std::size_t i) {
  if (p.view.empty()) return p.id[i];
  if (i < p.view.size()) return p.view[i];
  if (i == p.view.size()) return ':';
  return p.id[i - p.view.size() - 1];
}

}  // namespace

const json::array* TreeSlots::Annotations(std::int32_t view) const {
  if (view < 0 || static_cast<std::size_t>(view) >= view_slots.size()) return nullptr;
  const json::value* a = view_slots[static_cast<std::size_t>(view)].annotations;
  return a == nullptr ? nullptr : a->if_array();
}

const json::object* TreeSlots::ObjectAt(const Loc& loc) const {
  const json::array* list = nullptr;
  if (loc.view == Loc::kDocument) {
    list = documents == nullptr ? nullptr : documents->if_array();
  } else if (loc.view == Loc::kView) {
    list = views == nullptr ? nullptr : views->if_array();
  } else {
    list = Annotations(loc.view);
  }
  if (list == nullptr || loc.index >= list->size()) return nullptr;
  return (*list)[loc.index].if_object();
}

std::string_view TreeSlots::ViewId(std::int32_t view) const {
  if (view < 0 || static_cast<std::size_t>(view) >= view_slots.size()) return {};
  return StringOf(view_slots[static_cast<std::size_t>(view)].id);
}

std::string IdParts::Long() const {
  if (view.empty()) return std::string(id);
  std::string out;
  out.reserve(size());
  out.append(view);
  out += ':';
  out.append(id);
  return out;
}

bool IdParts::Equals(const IdParts& other) const {
  if (size() != other.size()) return false;
  if (view.size() == other.view.size()) return view == other.view && id == other.id;
  const std::size_t n = size();
  for (std::size_t i = 0; i < n; ++i) {
    if (CharAt(*this, i) != CharAt(other, i)) return false;
  }
  return true;
}

std::uint64_t IdParts::Hash() const {
  std::uint64_t h = kFnvOffset;
  if (!view.empty()) {
    h = FnvAppend(h, view);
    h = FnvAppend(h, ":");
  }
  return FnvAppend(h, id);
}

IdParts IdAt(const TreeSlots& tree, const Loc& loc) {
  if (loc.view == Loc::kView) {
    if (loc.index >= tree.view_slots.size()) return {};
    return IdParts{{}, StringOf(tree.view_slots[loc.index].id)};
  }
  const json::object* o = tree.ObjectAt(loc);
  if (o == nullptr) return {};
  auto p = o->find("properties");
  if (p == o->end() || !p->value().is_object()) return {};
  auto id = p->value().get_object().find("id");
  if (id == p->value().get_object().end()) return {};
  IdParts parts{{}, StringOf(&id->value())};
  if (loc.is_annotation() && parts.id.find(':') == std::string_view::npos) {
    parts.view = tree.ViewId(loc.view);
  }
  return parts;
}

void IdIndex::Clear() {
  slots_.clear();
  size_ = 0;
}

void IdIndex::Reserve(std::size_t n) { Rehash(n); }

void IdIndex::Rehash(std::size_t n) {
  std::size_t want = kMinIndexSlots;
  while (want < n * kLoadFactorInverse) want *= 2;
  if (want <= slots_.size()) return;
  std::vector<Slot> old = std::move(slots_);
  slots_.assign(want, Slot{});
  const std::size_t mask = want - 1;
  for (const Slot& s : old) {
    if (!s.used()) continue;
    std::size_t i = s.hash_low & mask;
    while (slots_[i].used()) i = (i + 1) & mask;
    slots_[i] = s;
  }
}

std::optional<Loc> IdIndex::Insert(const IdParts& parts, const Loc& loc, const TreeSlots& tree) {
  Grow();
  const std::uint32_t low = LowHalf(parts.Hash());
  const std::size_t mask = slots_.size() - 1;
  std::size_t i = low & mask;
  while (slots_[i].used()) {
    if (slots_[i].hash_low == low && IdAt(tree, slots_[i].loc).Equals(parts)) {
      return slots_[i].loc;
    }
    i = (i + 1) & mask;
  }
  slots_[i] = Slot{low, loc};
  ++size_;
  return std::nullopt;
}

void IdIndex::InsertNew(std::uint64_t hash, const Loc& loc) {
  Grow();
  const std::uint32_t low = LowHalf(hash);
  const std::size_t mask = slots_.size() - 1;
  std::size_t i = low & mask;
  while (slots_[i].used()) i = (i + 1) & mask;
  slots_[i] = Slot{low, loc};
  ++size_;
}

std::optional<Loc> IdIndex::Find(const IdParts& parts, std::uint64_t hash,
                                 const TreeSlots& tree) const {
  if (slots_.empty()) return std::nullopt;
  const std::uint32_t low = LowHalf(hash);
  const std::size_t mask = slots_.size() - 1;
  std::size_t i = low & mask;
  while (slots_[i].used()) {
    if (slots_[i].hash_low == low && IdAt(tree, slots_[i].loc).Equals(parts)) {
      return slots_[i].loc;
    }
    i = (i + 1) & mask;
  }
  return std::nullopt;
}

void Walk(const json::value& root, const ValidateOptions& options, TreeSlots* slots, IdIndex* index,
          ValidationReport* report) {
  if (index != nullptr) index->Clear();
  mmif::Walker(options, slots, index, report).Run(root);
}

bool UsesShortIds(std::string_view version) {
  std::optional<mmif::Version> v = mmif::ParseVersionNumber(version);
  if (!v) return true;
  return v->major < mmif::kSupportedMajorVersion ||
         (v->major == mmif::kSupportedMajorVersion && v->minor < mmif::kLongIdsMinorVersion);
}

std::optional<Loc> Resolve(std::string_view ref, std::int32_t view, bool short_ids,
                           const TreeSlots& tree, const IdIndex& index) {
  std::optional<Loc> loc = index.Find(ref, tree);
  if (loc && loc->view != Loc::kView) return loc;
  if (short_ids && view >= 0 && ref.find(':') == std::string_view::npos) {
    std::string_view view_id = tree.ViewId(view);
    if (!view_id.empty()) {
      loc = index.Find(IdParts{view_id, ref}, tree);
      if (loc && loc->view != Loc::kView) return loc;
    }
  }
  return std::nullopt;
}

std::string LocPath(const Loc& loc) {
  if (loc.view == Loc::kDocument) return "documents[" + std::to_string(loc.index) + "]";
  if (loc.view == Loc::kView) return "views[" + std::to_string(loc.index) + "]";
  return "views[" + std::to_string(loc.view) + "].annotations[" + std::to_string(loc.index) + "]";
}

void AppendPathKey(std::string& path, std::string_view key) {
  bool identifier = !key.empty() && !(key[0] >= '0' && key[0] <= '9');
  for (char c : key) {
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!alnum && c != '_') {
      identifier = false;
      break;
    }
  }
  if (identifier) {
    if (!path.empty()) path += '.';
    path.append(key);
  } else {
    path += '[';
    mmif::AppendJsonString(path, key);
    path += ']';
  }
}

}  // namespace clams::mmif_internal
