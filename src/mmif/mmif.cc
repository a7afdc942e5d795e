// The MMIF document model: the tree, its id index and the typed handles.
#include "clams/mmif/mmif.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <limits>
#include <map>
#include <utility>

#include "mmif/internal.h"
#include "mmif/vocab_internal.h"

namespace clams::mmif {

using mmif_internal::IdParts;
using mmif_internal::Loc;

namespace {

// The monotonic arena of a parsed tree starts at this multiple of the input
// size: the tree takes 2.5 to 3 bytes per input byte, so most documents fit
// in the first block. Pages never touched cost no memory.
constexpr std::size_t kArenaBytesPerInputByte = 3;
// Nesting of `targets` that Start()/End() follow before giving up (deeper
// chains are cycles in practice).
constexpr int kMaxAnchorDepth = 32;
// Extra room reserved for the serialized text beyond the parsed input size.
constexpr std::size_t kSerializeSlackBytes = 256;
// A pretty serialization is at most this many times the compact one
// (indentation and newlines; 1.64x on whisper-1h).
constexpr std::size_t kPrettyGrowth = 2;
// SerializeOptions::pretty indents by two spaces, as mmif-python's pretty=True.
constexpr int kPrettyIndent = 2;
// Chunk size for reading files.
constexpr std::size_t kReadChunkBytes = std::size_t{1} << 16;
// Room for the decimal digits of a 64-bit id counter.
constexpr std::size_t kMaxCounterDigits = 24;
// Room for a timestamp: 7 fields of at most 20 characters and their separators.
constexpr std::size_t kTimestampBufferBytes = 160;
// For the output size estimate of new annotations: the bytes of
// `{"@type":"","properties":{}},`, of `"":"",` around a property, and
// guesses for a number and for an element of a nested array or object.
constexpr std::size_t kAnnotationFrameBytes = 30;
constexpr std::size_t kMemberFrameBytes = 6;
constexpr std::size_t kScalarBytes = 8;
constexpr std::size_t kNestedElementBytes = 16;

const json::object& EmptyObject() {
  static const auto* const kEmpty = new json::object();
  return *kEmpty;
}

std::string_view AsView(const json::string& s) { return std::string_view(s.data(), s.size()); }
std::string_view AsView(json::string_view s) { return std::string_view(s.data(), s.size()); }

std::string_view StringAt(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end() || !it->value().is_string()) return {};
  return AsView(it->value().get_string());
}

std::optional<std::string_view> OptionalStringAt(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end() || !it->value().is_string()) return std::nullopt;
  return AsView(it->value().get_string());
}

const json::object* ObjectAt(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  return it == o.end() ? nullptr : it->value().if_object();
}

std::optional<double> NumberOf(const json::value& v) {
  switch (v.kind()) {
    case json::kind::int64:
      return static_cast<double>(v.get_int64());
    case json::kind::uint64:
      return static_cast<double>(v.get_uint64());
    case json::kind::double_:
      return v.get_double();
    default:
      return std::nullopt;
  }
}

JsonStyle StyleOf(const SerializeOptions& options) {
  JsonStyle style;
  if (options.pretty) {
    style.indent = kPrettyIndent;
    style.ensure_ascii = options.python_style;
  } else if (options.python_style) {
    style = JsonStyle::Python();
  }
  return style;
}

std::string Quoted(std::string_view s) {
  std::string out;
  AppendJsonString(out, s);
  return out;
}

// Type matching with a one-entry memo: annotation types repeat in runs.
class TypeMatcher {
 public:
  explicit TypeMatcher(std::string_view wanted) : wanted_(wanted) {}
  bool operator()(std::string_view type) {
    if (wanted_.empty()) return true;
    if (has_last_ && type == last_) return last_result_;
    last_ = type;
    last_result_ = vocab::TypeMatches(type, wanted_);
    has_last_ = true;
    return last_result_;
  }

 private:
  std::string_view wanted_;
  std::string_view last_;
  bool last_result_ = false;
  bool has_last_ = false;
};

// `<prefix>_<n>` -> n, for generated ids.
std::optional<std::uint64_t> CounterOf(std::string_view local_id, std::string_view prefix) {
  if (local_id.size() <= prefix.size() + 1 || local_id.substr(0, prefix.size()) != prefix ||
      local_id[prefix.size()] != '_') {
    return std::nullopt;
  }
  std::string_view digits = local_id.substr(prefix.size() + 1);
  std::uint64_t n = 0;
  auto r = std::from_chars(digits.data(), digits.data() + digits.size(), n);
  if (r.ec != std::errc() || r.ptr != digits.data() + digits.size()) return std::nullopt;
  return n;
}

// A quick estimate of the compact JSON size of annotation `annotation`
// (exact for flat properties of strings without escapes; nested values
// count a fixed amount per element).
std::size_t EstimatedJsonBytes(std::string_view type, const json::object& properties) {
  std::size_t n = kAnnotationFrameBytes + type.size();
  for (const json::key_value_pair& kv : properties) {
    n += kv.key().size() + kMemberFrameBytes;
    const json::value& v = kv.value();
    if (v.is_string()) {
      n += v.get_string().size();
    } else if (v.is_array()) {
      n += v.get_array().size() * kNestedElementBytes;
    } else if (v.is_object()) {
      n += v.get_object().size() * kNestedElementBytes;
    } else {
      n += kScalarBytes;
    }
  }
  return n;
}

StatusOr<std::string> ReadWholeFile(const std::filesystem::path& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    return NotFoundError("cannot open " + path.string() + ": " + std::strerror(errno));
  }
  std::string data;
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (!ec) data.reserve(static_cast<std::size_t>(size));
  char buf[kReadChunkBytes];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) data.append(buf, n);
  const bool failed = std::ferror(f) != 0;
  const int error = errno;
  std::fclose(f);
  if (failed) {
    return FailedPreconditionError("cannot read " + path.string() + ": " + std::strerror(error));
  }
  return data;
}

}  // namespace

// ---------------------------------------------------------------------------
// Impl

struct Mmif::Impl {
  // Move-constructing keeps the tree's own storage (move-assigning into a
  // default-constructed value would copy it into the default storage).
  explicit Impl(json::value t) : tree(std::move(t)) {}

  json::value tree;
  mmif_internal::TreeSlots slots;
  mmif_internal::IdIndex index;
  std::vector<ValidationIssue> warnings;
  bool short_ids = false;
  std::size_t source_size = 0;
  // Estimated compact JSON size of what the handle methods added since the
  // tree was read (annotations), so Serialize() can size its output once.
  std::size_t added_bytes = 0;

  // --- annotation creation caches -----------------------------------------
  //
  // Per view: the id prefix of each type used with NewAnnotation, the
  // highest n of `<view id>:<prefix>_<n>` in use per prefix, and whether
  // `contains` is known to have the type. Reindex() drops them all; the
  // `contains` knowledge also goes when the metadata is handed out for
  // writing (contains_epoch).

  // The highest n of `<view id>:<prefix>_<n>` in the view (generated or not).
  struct PrefixCounter {
    std::string prefix;
    std::uint64_t highest = 0;
  };
  struct TypeEntry {
    std::string type;     // the exact IRI given to NewAnnotation
    std::string id_base;  // "<view id>:<prefix>_"
    std::size_t counter;  // index into ViewCache::counters
    // `contains` has `type` as a key if this equals contains_epoch.
    std::uint64_t contains_epoch = 0;
  };
  struct ViewCache {
    std::string view_id;  // the view id the entries were made for
    std::vector<TypeEntry> types;
    std::vector<PrefixCounter> counters;
    std::size_t last = 0;  // the entry used last (types come in runs)
    // The annotations [0, generated) of the view were all appended with
    // generated ids through this cache, so each has the prefix of one of
    // `counters` (prefixes are alphanumeric: `<p>_<n>` has one prefix) and
    // a new prefix needs no look at them.
    std::size_t generated = 0;
  };
  std::vector<ViewCache> view_caches;
  // Bumped whenever `contains` may have changed behind our back; starts
  // above the 0 of a new TypeEntry.
  std::uint64_t contains_epoch = 1;
  // Scratch space for generated ids (no allocation once it has grown).
  std::string id_buffer;

  void Reindex() {
    mmif_internal::Walk(tree, ValidateOptions{}, &slots, &index, nullptr);
    StatusOr<std::string> v = ReadMmifVersion(tree);
    short_ids = mmif_internal::UsesShortIds(v.ok() ? *v : std::string());
    view_caches.clear();
    ++contains_epoch;
  }

  // The cache of view `view`, emptied if the view's id changed.
  ViewCache& CacheOf(std::uint32_t view) {
    if (view >= view_caches.size()) view_caches.resize(view + 1);
    ViewCache& c = view_caches[view];
    const std::string_view id = slots.ViewId(static_cast<std::int32_t>(view));
    if (c.view_id != id) {
      c = ViewCache();
      c.view_id.assign(id.data(), id.size());
    }
    return c;
  }

  // The highest n of `<prefix>_<n>` among the ids of view `view` (short
  // ids, and long ones of this view) from annotation `first` on.
  std::uint64_t HighestCounter(std::uint32_t view, std::string_view view_id,
                               std::string_view prefix, std::size_t first) const {
    std::uint64_t highest = 0;
    const json::array* anns = slots.Annotations(static_cast<std::int32_t>(view));
    if (anns == nullptr || first >= anns->size()) return 0;
    for (auto it = anns->begin() + static_cast<std::ptrdiff_t>(first); it != anns->end(); ++it) {
      const json::value& a = *it;
      const json::object* o = a.if_object();
      const json::object* props = o == nullptr ? nullptr : ObjectAt(*o, "properties");
      if (props == nullptr) continue;
      std::string_view written = StringAt(*props, "id");
      if (written.find(':') != std::string_view::npos) {
        if (written.size() <= view_id.size() || written.substr(0, view_id.size()) != view_id ||
            written[view_id.size()] != ':') {
          continue;
        }
        written.remove_prefix(view_id.size() + 1);
      }
      if (std::optional<std::uint64_t> n = CounterOf(written, prefix)) {
        highest = std::max(highest, *n);
      }
    }
    return highest;
  }

  // The entry of `type` in view `view`'s cache, made on first use.
  TypeEntry& TypeEntryOf(ViewCache& cache, std::uint32_t view, std::string_view type) {
    if (cache.last < cache.types.size() && cache.types[cache.last].type == type) {
      return cache.types[cache.last];
    }
    for (std::size_t i = 0; i < cache.types.size(); ++i) {
      if (cache.types[i].type == type) {
        cache.last = i;
        return cache.types[i];
      }
    }
    std::string prefix = vocab::IdPrefix(type);
    std::size_t counter = 0;
    while (counter < cache.counters.size() && cache.counters[counter].prefix != prefix) ++counter;
    if (counter == cache.counters.size()) {
      // First id of this prefix since the document was read: continue after
      // the highest one already in the view.
      const std::uint64_t highest =
          HighestCounter(view, cache.view_id, prefix, cache.generated);
      cache.counters.push_back(PrefixCounter{prefix, highest});
    }
    TypeEntry entry;
    entry.type.assign(type.data(), type.size());
    entry.id_base.reserve(cache.view_id.size() + prefix.size() + 2);
    entry.id_base.append(cache.view_id).append(1, ':').append(prefix).append(1, '_');
    entry.counter = counter;
    cache.types.push_back(std::move(entry));
    cache.last = cache.types.size() - 1;
    return cache.types.back();
  }

  // Keeps the counters of view `view` ahead of an explicit long id.
  void NoteExplicitId(std::uint32_t view, std::string_view long_id) {
    if (view >= view_caches.size()) return;
    ViewCache& cache = view_caches[view];
    const std::string_view view_id = cache.view_id;
    if (long_id.size() <= view_id.size() || long_id.substr(0, view_id.size()) != view_id ||
        long_id[view_id.size()] != ':') {
      return;
    }
    const std::string_view local = long_id.substr(view_id.size() + 1);
    for (PrefixCounter& c : cache.counters) {
      if (std::optional<std::uint64_t> n = CounterOf(local, c.prefix)) {
        c.highest = std::max(c.highest, *n);
      }
    }
  }

  // Writes the next free generated id of `entry` into id_buffer; returns
  // its hash (IdParts::Hash of the long id).
  std::uint64_t NextId(ViewCache& cache, const TypeEntry& entry) {
    PrefixCounter& counter = cache.counters[entry.counter];
    for (;;) {
      ++counter.highest;
      char digits[kMaxCounterDigits];
      const auto r = std::to_chars(digits, digits + sizeof(digits), counter.highest);
      id_buffer.assign(entry.id_base);
      id_buffer.append(digits, static_cast<std::size_t>(r.ptr - digits));
      const IdParts parts{{}, id_buffer};
      const std::uint64_t hash = parts.Hash();
      if (!index.Find(parts, hash, slots)) return hash;
    }
  }

  json::array* MutableArray(const json::value* v) {
    return v == nullptr ? nullptr : const_cast<json::value*>(v)->if_array();
  }

  // The root object, made one if the tree is something else (only possible
  // for trees read without validation).
  json::object& Root() {
    if (!tree.is_object()) {
      tree.emplace_object();
      Reindex();
    }
    return tree.get_object();
  }

  // The array under root key `key`, repaired to [] if missing or not an array.
  json::array& RootArray(std::string_view key) {
    json::object& root = Root();
    auto it = root.find(key);
    if (it == root.end() || !it->value().is_array()) {
      root[key].emplace_array();
      Reindex();
      it = root.find(key);
    }
    return it->value().get_array();
  }

  // View `view` (which must exist), repaired to {} if it is not an object.
  json::object& ViewObject(std::uint32_t view) {
    json::value& v = RootArray("views")[view];
    if (!v.is_object()) {
      v.emplace_object();
      Reindex();
    }
    return v.get_object();
  }

  // The annotations array of a view, repaired to [] if needed.
  json::array& MutableAnnotations(std::uint32_t view) {
    if (json::array* a = MutableArray(slots.view_slots[view].annotations)) return *a;
    json::object& o = ViewObject(view);
    o["annotations"].emplace_array();
    Reindex();
    return *MutableArray(slots.view_slots[view].annotations);
  }

  // The metadata object of a view, repaired to {} if needed.
  json::object& MutableMetadata(std::uint32_t view) {
    const json::value* m = slots.view_slots[view].metadata;
    if (m != nullptr && m->is_object()) return const_cast<json::value*>(m)->get_object();
    json::object& o = ViewObject(view);
    o["metadata"].emplace_object();
    Reindex();
    return const_cast<json::value*>(slots.view_slots[view].metadata)->get_object();
  }

  std::optional<Loc> Resolve(std::string_view ref, std::int32_t view) const {
    return mmif_internal::Resolve(ref, view, short_ids, slots, index);
  }

  // Start (or end) of `a`: timePoint, start/end, or the min/max over targets.
  static StatusOr<double> Anchor(const Impl& impl, Mmif* mmif, const Annotation& a, bool start,
                                 int depth) {
    const json::object& props = a.properties();
    if (auto tp = props.find("timePoint"); tp != props.end()) {
      if (std::optional<double> d = NumberOf(tp->value())) return *d;
      return FailedPreconditionError("\"timePoint\" of annotation " + Quoted(a.long_id()) +
                                     " is not a number");
    }
    const bool has_targets = props.contains("targets");
    const bool has_bounds = props.contains("start") || props.contains("end");
    if (has_targets && has_bounds) {
      return FailedPreconditionError("annotation " + Quoted(a.long_id()) +
                                     " has both \"targets\" and \"start\"/\"end\"");
    }
    if (has_targets) {
      const json::array* targets = props.find("targets")->value().if_array();
      if (targets == nullptr || targets->empty()) {
        return FailedPreconditionError("\"targets\" of annotation " + Quoted(a.long_id()) +
                                       " is not a non-empty list");
      }
      if (depth >= kMaxAnchorDepth) {
        return FailedPreconditionError("\"targets\" of annotation " + Quoted(a.long_id()) +
                                       " nest deeper than " + std::to_string(kMaxAnchorDepth) +
                                       " levels (a cycle?)");
      }
      double best = start ? std::numeric_limits<double>::infinity()
                          : -std::numeric_limits<double>::infinity();
      for (const json::value& t : *targets) {
        std::string_view ref = t.is_string() ? AsView(t.get_string()) : std::string_view();
        std::optional<Loc> loc = impl.Resolve(ref, a.view_index_);
        if (!loc) {
          return NotFoundError("target " + Quoted(ref) + " of annotation " + Quoted(a.long_id()) +
                               " does not resolve");
        }
        CLAMS_ASSIGN_OR_RETURN(double d, Anchor(impl, mmif, Annotation(mmif, loc->view, loc->index),
                                                start, depth + 1));
        best = start ? std::min(best, d) : std::max(best, d);
      }
      return best;
    }
    if (has_bounds) {
      const std::string_view key = start ? "start" : "end";
      auto it = props.find(key);
      if (it == props.end()) {
        return FailedPreconditionError("annotation " + Quoted(a.long_id()) + " has no \"" +
                                       std::string(key) + "\"");
      }
      if (std::optional<double> d = NumberOf(it->value())) return *d;
      return FailedPreconditionError("\"" + std::string(key) + "\" of annotation " +
                                     Quoted(a.long_id()) + " is not a number");
    }
    return FailedPreconditionError("annotation " + Quoted(a.long_id()) +
                                   " has no anchor (timePoint, start/end or targets)");
  }

  bool HasId(std::string_view id) const {
    if (index.Find(id, slots)) return true;
    for (const auto& v : slots.view_slots) {
      if (v.id != nullptr && v.id->is_string() && AsView(v.id->get_string()) == id) return true;
    }
    return false;
  }
};

// ---------------------------------------------------------------------------
// Annotation and Document

const json::object& Annotation::json() const {
  const json::object* o = mmif_->impl_->slots.ObjectAt(Loc{view_index_, index_});
  return o == nullptr ? EmptyObject() : *o;
}

json::object& Annotation::mutable_json() const { return const_cast<json::object&>(json()); }

std::string_view Annotation::type() const { return StringAt(json(), "@type"); }

const json::object& Annotation::properties() const {
  const json::object* p = ObjectAt(json(), "properties");
  return p == nullptr ? EmptyObject() : *p;
}

std::string_view Annotation::id() const { return StringAt(properties(), "id"); }

std::string Annotation::long_id() const {
  return mmif_internal::IdAt(mmif_->impl_->slots, Loc{view_index_, index_}).Long();
}

bool Annotation::is_document() const { return vocab::IsDocumentType(type()); }

bool Annotation::IsType(std::string_view t) const { return vocab::TypeMatches(type(), t); }

View Annotation::view() const { return View(mmif_, static_cast<std::uint32_t>(view_index_)); }

const json::value* Annotation::Get(std::string_view key) const {
  const json::object& props = properties();
  if (auto it = props.find(key); it != props.end()) return &it->value();
  if (is_top_level()) return nullptr;
  const json::object* meta = view().ContainsMetadata(type());
  if (meta == nullptr) return nullptr;
  auto it = meta->find(key);
  return it == meta->end() ? nullptr : &it->value();
}

std::optional<std::string_view> Annotation::GetString(std::string_view key) const {
  const json::value* v = Get(key);
  if (v == nullptr || !v->is_string()) return std::nullopt;
  return AsView(v->get_string());
}

Status Annotation::Set(std::string_view key, json::value value) {
  if (key == "id") {
    return InvalidArgumentError("the id of annotation " + Quoted(long_id()) +
                                " cannot be changed: ids are fixed at creation");
  }
  if (mmif_->impl_->slots.ObjectAt(Loc{view_index_, index_}) == nullptr) {
    return FailedPreconditionError("the annotation no longer exists");
  }
  json::object& o = mutable_json();
  json::value& props = o["properties"];
  if (!props.is_object()) props.emplace_object();
  props.get_object()[key] = std::move(value);
  return Status();
}

std::optional<std::string_view> Document::location() const {
  return OptionalStringAt(properties(), "location");
}

std::optional<std::string_view> Document::mime() const {
  return OptionalStringAt(properties(), "mime");
}

std::optional<std::string_view> Document::text_value() const {
  const json::object* text = ObjectAt(properties(), "text");
  return text == nullptr ? std::nullopt : OptionalStringAt(*text, "@value");
}

std::optional<std::string_view> Document::text_language() const {
  const json::object* text = ObjectAt(properties(), "text");
  return text == nullptr ? std::nullopt : OptionalStringAt(*text, "@language");
}

StatusOr<std::string> Document::LocationPath() const {
  std::optional<std::string_view> loc = location();
  if (!loc) return NotFoundError("document " + Quoted(long_id()) + " has no location");
  std::string_view l = *loc;
  // RFC 3986 scheme: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":"
  std::size_t colon = l.find(':');
  bool has_scheme = colon != std::string_view::npos && colon > 0 &&
                    std::isalpha(static_cast<unsigned char>(l[0]));
  for (std::size_t i = 0; has_scheme && i < colon; ++i) {
    const char c = l[i];
    has_scheme = std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '-' || c == '.';
  }
  if (!has_scheme) {
    if (!l.empty() && l[0] == '/') return std::string(l);
    return FailedPreconditionError("location " + Quoted(l) + " of document " + Quoted(long_id()) +
                                   " is neither a URI nor an absolute path");
  }
  std::string scheme(l.substr(0, colon));
  std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (scheme != "file") {
    return FailedPreconditionError("location " + Quoted(l) + " has scheme \"" + scheme +
                                   "\"; only file:// locations are local paths");
  }
  std::string_view rest = l.substr(colon + 1);
  if (rest.substr(0, 2) == "//") {
    rest.remove_prefix(2);
    const std::size_t slash = rest.find('/');
    rest = slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
  }
  if (rest.empty() || rest[0] != '/') {
    return FailedPreconditionError("location " + Quoted(l) + " has no absolute path");
  }
  return std::string(rest);
}

StatusOr<std::string> Document::ReadText() const {
  if (std::optional<std::string_view> text = text_value()) return std::string(*text);
  if (!location()) {
    return NotFoundError("document " + Quoted(long_id()) + " has neither text nor a location");
  }
  CLAMS_ASSIGN_OR_RETURN(std::string path, LocationPath());
  StatusOr<std::string> content = ReadWholeFile(path);
  if (!content.ok()) return FailedPreconditionError(content.status().message());
  return content;
}

// ---------------------------------------------------------------------------
// View

const json::object& View::json() const {
  const json::object* o = mmif_->impl_->slots.ObjectAt(Loc{Loc::kView, index_});
  return o == nullptr ? EmptyObject() : *o;
}

json::object& View::mutable_json() const { return mmif_->impl_->ViewObject(index_); }

std::string_view View::id() const {
  return mmif_->impl_->slots.ViewId(static_cast<std::int32_t>(index_));
}

const json::object& View::metadata() const {
  const auto& slots = mmif_->impl_->slots.view_slots;
  if (index_ >= slots.size() || slots[index_].metadata == nullptr ||
      !slots[index_].metadata->is_object()) {
    return EmptyObject();
  }
  return slots[index_].metadata->get_object();
}

json::object& View::mutable_metadata() {
  // The caller may change `contains`: check it again before relying on it.
  ++mmif_->impl_->contains_epoch;
  return mmif_->impl_->MutableMetadata(index_);
}

std::string_view View::app() const { return StringAt(metadata(), "app"); }
std::string_view View::timestamp() const { return StringAt(metadata(), "timestamp"); }

void View::SetApp(std::string_view app) { mmif_->impl_->MutableMetadata(index_)["app"] = app; }

void View::SetTimestamp(std::string_view timestamp) {
  mmif_->impl_->MutableMetadata(index_)["timestamp"] = timestamp;
}

const json::object* View::contains() const { return ObjectAt(metadata(), "contains"); }

bool View::Contains(std::string_view type) const { return ContainsMetadata(type) != nullptr; }

const json::object* View::ContainsMetadata(std::string_view type) const {
  const json::object* c = contains();
  if (c == nullptr) return nullptr;
  if (auto it = c->find(type); it != c->end()) return it->value().if_object();
  for (const json::key_value_pair& kv : *c) {
    if (vocab::TypeMatches(AsView(kv.key()), type)) {
      const json::object* meta = kv.value().if_object();
      return meta != nullptr ? meta : &EmptyObject();
    }
  }
  return nullptr;
}

json::object& View::NewContain(std::string_view type, json::object metadata) {
  json::object& entry = AddContain(type);
  for (json::key_value_pair& kv : metadata) entry[kv.key()] = std::move(kv.value());
  return entry;
}

json::object& View::AddContain(std::string_view type) {
  json::object& meta = mmif_->impl_->MutableMetadata(index_);
  json::value& c = meta["contains"];
  if (!c.is_object()) c.emplace_object();
  json::value& entry = c.get_object()[type];
  if (!entry.is_object()) entry.emplace_object();
  return entry.get_object();
}

bool View::has_error() const { return metadata().contains("error"); }

std::optional<ViewError> View::error() const {
  auto it = metadata().find("error");
  if (it == metadata().end()) return std::nullopt;
  ViewError e;
  if (const json::object* o = it->value().if_object()) {
    e.message = std::string(StringAt(*o, "message"));
    e.stack_trace = std::string(StringAt(*o, "stackTrace"));
  } else if (it->value().is_string()) {
    e.message = std::string(AsView(it->value().get_string()));
  } else {
    e.message = WriteJson(it->value());
  }
  return e;
}

bool View::has_warnings() const { return metadata().contains("warnings"); }

std::vector<std::string> View::warnings() const {
  std::vector<std::string> out;
  auto it = metadata().find("warnings");
  if (it == metadata().end()) return out;
  if (const json::array* a = it->value().if_array()) {
    for (const json::value& w : *a) {
      out.push_back(w.is_string() ? std::string(AsView(w.get_string())) : WriteJson(w));
    }
  }
  return out;
}

std::size_t View::annotation_count() const {
  const json::array* a = mmif_->impl_->slots.Annotations(static_cast<std::int32_t>(index_));
  return a == nullptr ? 0 : a->size();
}

Annotation View::annotation(std::size_t i) const {
  return Annotation(mmif_, static_cast<std::int32_t>(index_), static_cast<std::uint32_t>(i));
}

std::vector<Annotation> View::annotations(std::string_view type) const {
  std::vector<Annotation> out;
  const json::array* a = mmif_->impl_->slots.Annotations(static_cast<std::int32_t>(index_));
  if (a == nullptr) return out;
  TypeMatcher matches(type);
  for (std::size_t i = 0; i < a->size(); ++i) {
    const json::object* o = (*a)[i].if_object();
    if (o == nullptr || !matches(StringAt(*o, "@type"))) continue;
    out.push_back(annotation(i));
  }
  return out;
}

std::optional<Annotation> View::GetAnnotation(std::string_view id) const {
  const Mmif::Impl& impl = *mmif_->impl_;
  IdParts parts{{}, id};
  if (id.find(':') == std::string_view::npos) parts.view = this->id();
  std::optional<Loc> loc = impl.index.Find(parts, impl.slots);
  if (!loc || loc->view != static_cast<std::int32_t>(index_)) return std::nullopt;
  return annotation(loc->index);
}

namespace {

// Moves `properties` (less any `id`) into `props`, which has the tree's
// storage: values of the same storage are taken over, others copied.
void MoveProperties(json::object& props, json::object& properties) {
  for (json::key_value_pair& kv : properties) {
    if (kv.key() == "id") continue;
    props.emplace(kv.key(), std::move(kv.value()));
  }
}

}  // namespace

// Appends `{"@type": type, "properties": {}}` to the annotations of view
// `view`, built in the tree's storage with room for `property_count`
// properties; returns the empty properties object.
json::object& View::AppendAnnotation(std::string_view type, std::size_t property_count) const {
  Mmif::Impl& impl = *mmif_->impl_;
  json::array& anns = impl.MutableAnnotations(index_);
  json::object& ann = anns.emplace_back(nullptr).emplace_object();
  ann.reserve(2);
  ann.emplace("@type", type);
  json::object& props = ann.emplace("properties", json::object_kind).first->value().get_object();
  props.reserve(property_count);
  return props;
}

// The generated-id part of NewAnnotation/AddAnnotation: repairs the view,
// picks the next free id, appends the annotation with only its id, indexes
// it and keeps `contains` in sync. Returns the properties object.
json::object& View::AppendGenerated(std::string_view type, std::size_t property_count) {
  Mmif::Impl& impl = *mmif_->impl_;
  // Repairs first: they may restructure the view and reindex.
  impl.MutableMetadata(index_);
  impl.MutableAnnotations(index_);
  Mmif::Impl::ViewCache& cache = impl.CacheOf(index_);
  Mmif::Impl::TypeEntry& entry = impl.TypeEntryOf(cache, index_, type);
  if (entry.contains_epoch != impl.contains_epoch) {
    const json::object* c = contains();
    if (c == nullptr || !c->contains(type)) AddContain(type);
    entry.contains_epoch = impl.contains_epoch;
  }
  const std::uint64_t hash = impl.NextId(cache, entry);
  json::object& props = AppendAnnotation(type, property_count + 1);
  props.emplace("id", impl.id_buffer);
  const json::array* anns = impl.slots.Annotations(static_cast<std::int32_t>(index_));
  const std::size_t position = anns->size() - 1;
  impl.index.InsertNew(
      hash, Loc{static_cast<std::int32_t>(index_), static_cast<std::uint32_t>(position)});
  if (cache.generated == position) cache.generated = position + 1;
  return props;
}

StatusOr<Annotation> View::AddAnnotation(std::string_view type, json::object properties) {
  auto given_it = properties.find("id");
  if (given_it == properties.end()) {
    json::object& props = AppendGenerated(type, properties.size());
    MoveProperties(props, properties);
    mmif_->impl_->added_bytes += EstimatedJsonBytes(type, props);
    return annotation(annotation_count() - 1);
  }
  Mmif::Impl& impl = *mmif_->impl_;
  if (!given_it->value().is_string() || given_it->value().get_string().empty()) {
    return InvalidArgumentError("the \"id\" property must be a non-empty string");
  }
  impl.MutableMetadata(index_);
  impl.MutableAnnotations(index_);
  const std::string_view view_id = id();
  std::string_view given = AsView(given_it->value().get_string());
  std::string long_id;
  if (given.find(':') == std::string_view::npos) {
    long_id.reserve(view_id.size() + 1 + given.size());
    long_id.append(view_id).append(1, ':').append(given);
  } else {
    long_id.assign(given.data(), given.size());
  }
  if (impl.HasId(long_id)) return AlreadyExistsError("id " + Quoted(long_id) + " is already taken");
  const std::uint64_t hash = IdParts{{}, long_id}.Hash();
  impl.NoteExplicitId(index_, long_id);
  // An explicit id keeps the position the caller gave it.
  json::object& props = AppendAnnotation(type, properties.size());
  for (json::key_value_pair& kv : properties) {
    if (kv.key() == "id") {
      props.emplace("id", long_id);
    } else {
      props.emplace(kv.key(), std::move(kv.value()));
    }
  }
  const Loc loc{static_cast<std::int32_t>(index_),
                static_cast<std::uint32_t>(annotation_count() - 1)};
  impl.index.InsertNew(hash, loc);
  impl.added_bytes += EstimatedJsonBytes(type, props);
  const json::object* c = contains();
  if (c == nullptr || !c->contains(type)) AddContain(type);
  return annotation(loc.index);
}

Annotation View::NewAnnotation(std::string_view type, json::object properties) {
  json::object& props = AppendGenerated(type, properties.size());
  MoveProperties(props, properties);
  mmif_->impl_->added_bytes += EstimatedJsonBytes(type, props);
  return annotation(annotation_count() - 1);
}

Annotation View::NewAnnotation(std::string_view type, PropertyList properties) {
  json::object& props = AppendGenerated(type, properties.size());
  props.insert(properties);  // keeps the generated id: a given "id" is a duplicate key
  mmif_->impl_->added_bytes += EstimatedJsonBytes(type, props);
  return annotation(annotation_count() - 1);
}

Document View::NewTextDocument(std::string_view text, std::string_view language,
                               json::object properties) {
  json::object& props = AppendGenerated(vocab::kTextDocument, properties.size() + 1);
  json::object& value = props.emplace("text", json::object_kind).first->value().get_object();
  value.reserve(2);
  value.emplace("@value", text);
  if (!language.empty()) value.emplace("@language", language);
  for (json::key_value_pair& kv : properties) {
    if (kv.key() != "id") props[kv.key()] = std::move(kv.value());
  }
  mmif_->impl_->added_bytes += EstimatedJsonBytes(vocab::kTextDocument, props) + text.size();
  return Document(annotation(annotation_count() - 1));
}

void View::SetError(std::string_view message, std::string_view stack_trace) {
  json::object& meta = mmif_->impl_->MutableMetadata(index_);
  meta.stable_erase("contains");
  meta.stable_erase("warnings");
  json::object error;
  error.emplace("message", message);
  if (!stack_trace.empty()) error.emplace("stackTrace", stack_trace);
  meta["error"] = std::move(error);
  mmif_->impl_->MutableAnnotations(index_).clear();
  mmif_->impl_->Reindex();
}

void View::SetWarnings(const std::vector<std::string>& warnings) {
  json::object& meta = mmif_->impl_->MutableMetadata(index_);
  meta.stable_erase("contains");
  meta.stable_erase("error");
  json::array list;
  list.reserve(warnings.size());
  for (const std::string& w : warnings) list.emplace_back(w);
  meta["warnings"] = std::move(list);
  mmif_->impl_->MutableAnnotations(index_).clear();
  mmif_->impl_->Reindex();
}

// ---------------------------------------------------------------------------
// Mmif

Mmif::Mmif(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Mmif::Mmif(Mmif&&) noexcept = default;
Mmif& Mmif::operator=(Mmif&&) noexcept = default;
Mmif::~Mmif() = default;

StatusOr<Mmif> Mmif::Parse(std::string_view text, const ParseOptions& options) {
  CLAMS_ASSIGN_OR_RETURN(json::value tree,
                         ParseJson(text, MakeTreeArena(text.size() * kArenaBytesPerInputByte)));
  CLAMS_ASSIGN_OR_RETURN(Mmif mmif, FromJson(std::move(tree), options));
  mmif.impl_->source_size = text.size();
  return mmif;
}

StatusOr<Mmif> Mmif::ParseFile(const std::filesystem::path& path, const ParseOptions& options) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    return NotFoundError("cannot open " + path.string() + ": " + std::strerror(errno));
  }
  std::error_code size_error;
  const auto size = std::filesystem::file_size(path, size_error);
  auto arena = MakeTreeArena(
      size_error ? kReadChunkBytes : static_cast<std::size_t>(size) * kArenaBytesPerInputByte);
  std::size_t bytes = 0;
  StatusOr<json::value> tree = mmif_internal::ParseJsonFromFile(f, std::move(arena), &bytes);
  std::fclose(f);
  if (!tree.ok()) {
    if (tree.status().code() == StatusCode::kFailedPrecondition) {
      return FailedPreconditionError("cannot read " + path.string() + ": " +
                                     tree.status().message());
    }
    // Malformed: read the text to say exactly where.
    CLAMS_ASSIGN_OR_RETURN(std::string text, ReadWholeFile(path));
    return Parse(text, options);
  }
  CLAMS_ASSIGN_OR_RETURN(Mmif mmif, FromJson(*std::move(tree), options));
  mmif.impl_->source_size = bytes;
  return mmif;
}

StatusOr<Mmif> Mmif::FromJson(json::value tree, const ParseOptions& options) {
  auto impl = std::make_unique<Impl>(std::move(tree));
  if (options.validate) {
    ValidationReport report;
    mmif_internal::Walk(impl->tree, ValidateOptions{}, &impl->slots, &impl->index, &report);
    CLAMS_RETURN_IF_ERROR(report.ToStatus(options.strict));
    impl->warnings = std::move(report.warnings);
    StatusOr<std::string> v = ReadMmifVersion(impl->tree);
    impl->short_ids = mmif_internal::UsesShortIds(v.ok() ? *v : std::string());
  } else {
    impl->Reindex();
  }
  return Mmif(std::move(impl));
}

Mmif Mmif::New(std::string_view version_iri) {
  // An arena, as for parsed trees: annotations are built in it without a
  // malloc per value.
  json::value tree(json::object_kind, MakeTreeArena());
  json::object& root = tree.get_object();
  root.reserve(3);
  root.emplace("metadata", json::object_kind)
      .first->value()
      .get_object()
      .emplace("mmif", version_iri);
  root.emplace("documents", json::array_kind);
  root.emplace("views", json::array_kind);
  auto impl = std::make_unique<Impl>(std::move(tree));
  impl->Reindex();
  return Mmif(std::move(impl));
}

Mmif Mmif::Clone() const {
  auto impl = std::make_unique<Impl>(
      json::value(impl_->tree, MakeTreeArena()));
  impl->warnings = impl_->warnings;
  impl->source_size = impl_->source_size;
  impl->added_bytes = impl_->added_bytes;
  impl->Reindex();
  return Mmif(std::move(impl));
}

std::string Mmif::Serialize(const SerializeOptions& options) const {
  const JsonStyle style = StyleOf(options);
  std::string out;
  out.reserve((impl_->source_size + impl_->added_bytes) * (options.pretty ? kPrettyGrowth : 1) +
              kSerializeSlackBytes);
  AppendJson(out, impl_->tree, style);
  return out;
}

Status Mmif::SerializeToFile(const std::filesystem::path& path,
                             const SerializeOptions& options) const {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) {
    return FailedPreconditionError("cannot write " + path.string() + ": " + std::strerror(errno));
  }
  bool ok = true;
  WriteJsonChunked(impl_->tree, StyleOf(options), [&](std::string_view chunk) {
    ok = ok && std::fwrite(chunk.data(), 1, chunk.size(), f) == chunk.size();
  });
  const int error = errno;
  ok = std::fclose(f) == 0 && ok;
  if (!ok) {
    return FailedPreconditionError("cannot write " + path.string() + ": " + std::strerror(error));
  }
  return Status();
}

const json::value& Mmif::json() const { return impl_->tree; }
json::value& Mmif::mutable_json() {
  // The caller may change any `contains`: check them again before relying on them.
  ++impl_->contains_epoch;
  return impl_->tree;
}
void Mmif::Reindex() { impl_->Reindex(); }

std::string Mmif::version() const {
  StatusOr<std::string> v = ReadMmifVersion(impl_->tree);
  return v.ok() ? *v : std::string();
}

const std::vector<ValidationIssue>& Mmif::warnings() const { return impl_->warnings; }

std::size_t Mmif::document_count() const {
  const json::value* d = impl_->slots.documents;
  return d != nullptr && d->is_array() ? d->get_array().size() : 0;
}

Document Mmif::document(std::size_t i) const {
  return Document(const_cast<Mmif*>(this), Loc::kDocument, static_cast<std::uint32_t>(i));
}

std::vector<Document> Mmif::documents() const {
  std::vector<Document> out;
  const std::size_t n = document_count();
  out.reserve(n);
  for (std::size_t i = 0; i < n; ++i) out.push_back(document(i));
  return out;
}

std::vector<Document> Mmif::DocumentsByType(std::string_view type) const {
  std::vector<Document> out;
  for (Document d : documents()) {
    if (d.IsType(type)) out.push_back(d);
  }
  for (View v : views()) {
    for (Annotation a : v.annotations(type)) {
      if (a.is_document()) out.emplace_back(a);
    }
  }
  return out;
}

StatusOr<Document> Mmif::AddDocument(std::string_view type, std::string_view id,
                                     json::object properties) {
  if (id.empty()) return InvalidArgumentError("a document id must not be empty");
  if (impl_->HasId(id)) return AlreadyExistsError("id " + Quoted(id) + " is already taken");
  json::object props(impl_->tree.storage());
  props.reserve(properties.size() + 1);
  props.emplace("id", id);
  for (json::key_value_pair& kv : properties) {
    if (kv.key() != "id") props.emplace(kv.key(), std::move(kv.value()));
  }
  json::object doc(impl_->tree.storage());
  doc.emplace("@type", type);
  doc.emplace("properties", std::move(props));
  json::array& docs = impl_->RootArray("documents");
  docs.emplace_back(std::move(doc));
  const Loc loc{Loc::kDocument, static_cast<std::uint32_t>(docs.size() - 1)};
  impl_->index.Insert(IdParts{{}, id}, loc, impl_->slots);
  return document(loc.index);
}

std::size_t Mmif::view_count() const { return impl_->slots.view_slots.size(); }

View Mmif::view(std::size_t i) const {
  return View(const_cast<Mmif*>(this), static_cast<std::uint32_t>(i));
}

std::vector<View> Mmif::views() const {
  std::vector<View> out;
  out.reserve(view_count());
  for (std::size_t i = 0; i < view_count(); ++i) out.push_back(view(i));
  return out;
}

View Mmif::NewView() {
  json::array& list = impl_->RootArray("views");
  std::size_t n = list.size();
  std::string id;
  do {
    id = "v_" + std::to_string(n++);
  } while (impl_->HasId(id));
  json::object metadata(impl_->tree.storage());
  metadata.emplace("timestamp", NowTimestamp());
  metadata.emplace("app", "");
  metadata.emplace("contains", json::object());
  json::object view_object(impl_->tree.storage());
  view_object.emplace("id", id);
  view_object.emplace("metadata", std::move(metadata));
  view_object.emplace("annotations", json::array());
  list.emplace_back(std::move(view_object));
  const json::object& added = list.back().get_object();
  mmif_internal::ViewSlots slots;
  slots.id = &added.find("id")->value();
  slots.metadata = &added.find("metadata")->value();
  slots.annotations = &added.find("annotations")->value();
  impl_->slots.view_slots.resize(list.size() - 1);  // views that are not objects keep empty slots
  impl_->slots.view_slots.push_back(slots);
  const Loc loc{Loc::kView, static_cast<std::uint32_t>(list.size() - 1)};
  impl_->index.Insert(IdParts{{}, id}, loc, impl_->slots);
  return view(loc.index);
}

std::optional<View> Mmif::GetView(std::string_view id) const {
  for (std::size_t i = 0; i < view_count(); ++i) {
    if (impl_->slots.ViewId(static_cast<std::int32_t>(i)) == id) return view(i);
  }
  return std::nullopt;
}

std::vector<View> Mmif::ViewsContaining(const std::vector<std::string_view>& types) const {
  std::vector<View> out;
  for (View v : views()) {
    if (std::all_of(types.begin(), types.end(),
                    [&](std::string_view t) { return v.Contains(t); })) {
      out.push_back(v);
    }
  }
  return out;
}

std::optional<View> Mmif::LastViewContaining(std::string_view type) const {
  for (std::size_t i = view_count(); i > 0; --i) {
    if (view(i - 1).Contains(type)) return view(i - 1);
  }
  return std::nullopt;
}

std::vector<View> Mmif::ViewsForDocument(std::string_view document_id) const {
  const std::optional<Loc> wanted = impl_->Resolve(document_id, Loc::kDocument);
  auto refers = [&](std::string_view ref, std::int32_t view) {
    if (ref == document_id) return true;
    if (!wanted) return false;
    std::optional<Loc> loc = impl_->Resolve(ref, view);
    return loc && *loc == *wanted;
  };
  std::vector<View> out;
  for (std::size_t i = 0; i < view_count(); ++i) {
    View v = view(i);
    const auto vi = static_cast<std::int32_t>(i);
    bool found = false;
    if (const json::object* c = v.contains()) {
      for (const json::key_value_pair& kv : *c) {
        const json::object* meta = kv.value().if_object();
        if (meta != nullptr && refers(StringAt(*meta, "document"), vi)) {
          found = true;
          break;
        }
      }
    }
    const json::array* anns = impl_->slots.Annotations(vi);
    for (std::size_t j = 0; !found && anns != nullptr && j < anns->size(); ++j) {
      const json::object* o = (*anns)[j].if_object();
      const json::object* props = o == nullptr ? nullptr : ObjectAt(*o, "properties");
      if (props != nullptr && props->contains("document") &&
          refers(StringAt(*props, "document"), vi)) {
        found = true;
      }
    }
    if (found) out.push_back(v);
  }
  return out;
}

std::vector<View> Mmif::ViewsWithError() const {
  std::vector<View> out;
  for (View v : views()) {
    if (v.has_error()) out.push_back(v);
  }
  return out;
}

std::optional<Annotation> Mmif::GetAnnotation(std::string_view long_id) const {
  std::optional<Loc> loc = impl_->index.Find(long_id, impl_->slots);
  if (!loc || loc->view == Loc::kView) return std::nullopt;
  return Annotation(const_cast<Mmif*>(this), loc->view, loc->index);
}

std::optional<Document> Mmif::GetDocument(std::string_view id) const {
  std::optional<Annotation> a = GetAnnotation(id);
  if (!a) return std::nullopt;
  if (!a->is_top_level() && !a->is_document()) return std::nullopt;
  return Document(*a);
}

bool Mmif::HasId(std::string_view id) const { return impl_->HasId(id); }

std::vector<Annotation> Mmif::AnnotationsOfType(std::string_view type) const {
  std::vector<Annotation> out;
  TypeMatcher matches(type);
  for (std::size_t v = 0; v < view_count(); ++v) {
    const json::array* anns = impl_->slots.Annotations(static_cast<std::int32_t>(v));
    if (anns == nullptr) continue;
    for (std::size_t i = 0; i < anns->size(); ++i) {
      const json::object* o = (*anns)[i].if_object();
      if (o == nullptr || !matches(StringAt(*o, "@type"))) continue;
      out.emplace_back(const_cast<Mmif*>(this), static_cast<std::int32_t>(v),
                       static_cast<std::uint32_t>(i));
    }
  }
  return out;
}

template <typename Fn>
void Mmif::ForEachAlignment(Fn&& fn) const {
  TypeMatcher is_alignment(vocab::kAlignment);
  Mmif* self = const_cast<Mmif*>(this);
  for (std::size_t v = 0; v < view_count(); ++v) {
    const auto vi = static_cast<std::int32_t>(v);
    const json::array* anns = impl_->slots.Annotations(vi);
    if (anns == nullptr) continue;
    for (std::size_t i = 0; i < anns->size(); ++i) {
      const json::object* o = (*anns)[i].if_object();
      if (o == nullptr || !is_alignment(StringAt(*o, "@type"))) continue;
      const json::object* props = ObjectAt(*o, "properties");
      if (props == nullptr) continue;
      std::optional<Loc> s = impl_->Resolve(StringAt(*props, "source"), vi);
      std::optional<Loc> t = impl_->Resolve(StringAt(*props, "target"), vi);
      if (!s || !t) continue;
      fn(Annotation(self, vi, static_cast<std::uint32_t>(i)), Annotation(self, s->view, s->index),
         Annotation(self, t->view, t->index));
    }
  }
}

std::vector<AlignmentPair> Mmif::Alignments(std::string_view type_a,
                                            std::string_view type_b) const {
  std::vector<AlignmentPair> out;
  // One matcher per end and type, so that each keeps its last answer cached.
  TypeMatcher is_a(type_a);
  TypeMatcher is_b(type_b);
  TypeMatcher is_a2(type_a);
  TypeMatcher is_b2(type_b);
  ForEachAlignment([&](const Annotation& alignment, const Annotation& source, const Annotation& target) {
    const std::string_view st = source.type();
    const std::string_view tt = target.type();
    if ((is_a(st) && is_b(tt)) || (is_b2(st) && is_a2(tt))) out.push_back(AlignmentPair{alignment, source, target});
  });
  return out;
}

std::vector<Annotation> Mmif::AlignedWith(const Annotation& annotation) const {
  std::vector<Annotation> out;
  auto same = [&](const Annotation& a) {
    return a.view_index_ == annotation.view_index_ && a.index_ == annotation.index_;
  };
  ForEachAlignment([&](const Annotation&, const Annotation& source, const Annotation& target) {
    if (same(source)) out.push_back(target);
    if (same(target)) out.push_back(source);
  });
  return out;
}

StatusOr<double> Mmif::Start(const Annotation& annotation) const {
  return Impl::Anchor(*impl_, const_cast<Mmif*>(this), annotation, true, 0);
}

StatusOr<double> Mmif::End(const Annotation& annotation) const {
  return Impl::Anchor(*impl_, const_cast<Mmif*>(this), annotation, false, 0);
}

std::string NowTimestamp() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  const auto micros =
      std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()) %
      std::chrono::seconds(1);
  std::tm local{};
  localtime_r(&seconds, &local);
  // "%04d-%02d-%02dT%02d:%02d:%02d.%06lld", without snprintf's cost.
  char buf[kTimestampBufferBytes];
  char* p = buf;
  const auto put = [&p](long long value, int width, char after) {
    char digits[kTimestampBufferBytes];
    const char* end = std::to_chars(digits, digits + sizeof(digits), value).ptr;
    const auto n = static_cast<int>(end - digits);
    const bool negative = value < 0;
    if (negative) *p++ = '-';
    for (int i = n - int{negative}; i < width; ++i) *p++ = '0';
    std::memcpy(p, digits + int{negative}, static_cast<std::size_t>(n - int{negative}));
    p += n - int{negative};
    if (after != 0) *p++ = after;
  };
  constexpr int kYearDigits = 4;
  constexpr int kFieldDigits = 2;
  constexpr int kMicroDigits = 6;
  constexpr int kTmBaseYear = 1900;
  put(static_cast<long long>(local.tm_year) + kTmBaseYear, kYearDigits, '-');
  put(local.tm_mon + 1, kFieldDigits, '-');
  put(local.tm_mday, kFieldDigits, 'T');
  put(local.tm_hour, kFieldDigits, ':');
  put(local.tm_min, kFieldDigits, ':');
  put(local.tm_sec, kFieldDigits, '.');
  put(static_cast<long long>(micros.count()), kMicroDigits, 0);
  return std::string(buf, static_cast<std::size_t>(p - buf));
}

}  // namespace clams::mmif
