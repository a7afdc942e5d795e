// clams/mmif/mmif.h
//
// The MMIF document model. The JSON tree *is* the document: `Mmif` owns a
// `boost::json::value` exactly as parsed (key order, unknown keys, empty
// fields, duplicate ids all kept), and `Document`, `View` and `Annotation` are
// light handles onto parts of it. Indices (id -> location) are derived from
// the tree and kept up to date by the mutating methods. Parse followed by
// Serialize gives the same JSON value with the same key order.
//
// Example:
//
//   CLAMS_ASSIGN_OR_RETURN(Mmif mmif, Mmif::Parse(body));
//   for (Document doc : mmif.DocumentsByType(vocab::kTextDocument)) {
//     View view = mmif.NewView();
//     view.SetApp("http://apps.clams.ai/my-app/v1");
//     Annotation s = view.NewAnnotation(vocab::kSentence,
//                                       {{"start", 0}, {"end", 5}, {"document", doc.long_id()}});
//   }
//   std::string out = mmif.Serialize({.pretty = true});
//
// Lifecycle and validity of handles: a handle stores the owning Mmif's
// address and the position of its element (view index, annotation index), so
// it survives additions to any list but not a move of the Mmif, and an
// Annotation handle dies when its view's annotations are cleared (SetError,
// SetWarnings). Handles must not outlive the Mmif.
//
// Thread safety: const methods may run concurrently; any mutation needs
// exclusive access.
//
// Memory: a parsed tree lives in one arena (a Boost.JSON monotonic
// resource, about three bytes per input byte), and so does the tree of
// Mmif::New(), so values that are replaced or removed give their memory back
// only when the Mmif goes away. Copies of parts of the tree share the arena
// and keep it alive. (A tree given to FromJson keeps its own storage.)
//
// Cost: NewAnnotation builds the annotation in place in the tree's storage
// and keeps per-view caches (id prefix per type, next id counter per prefix,
// which types `contains` has), so adding an annotation costs about what
// building the same JSON with Boost.JSON directly does (bench/mmif).
//
// Trees read with `validate = false` may have any shape. Queries then see
// what is there (a `views` that is not an array has no views); the mutating
// methods first repair what they write to (such a `views` becomes []).
#ifndef CLAMS_MMIF_MMIF_H_
#define CLAMS_MMIF_MMIF_H_

#include <boost/json/value_ref.hpp>
#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "clams/base/status.h"
#include "clams/mmif/json.h"
#include "clams/mmif/validate.h"
#include "clams/mmif/vocabulary.h"

namespace clams::mmif {

class Mmif;
class View;

/// How to read a document.
struct ParseOptions {
  /// Run the schema and version checks (Validate); invalid input fails.
  bool validate = true;
  /// Also fail on warnings (duplicate ids, dangling references).
  bool strict = false;
};

/// How to write a document.
struct SerializeOptions {
  /// Two-space indentation (what `pretty=true` asks for).
  bool pretty = false;
  /// One-line output with mmif-python's separators and ASCII escaping, so a
  /// file written by mmif-python comes back byte for byte. With `pretty`,
  /// only the ASCII escaping applies (the indented layout already is
  /// Python's `json.dumps(indent=2)`).
  bool python_style = false;
};

/// An annotation (or a document inside a view, or a top-level document):
/// `{"@type": ..., "properties": {"id": ..., ...}}`.
class Annotation {
 public:
  /// `@type` (empty if missing or not a string).
  std::string_view type() const;
  /// `properties.id` as written ("s1" in old files, "v1:s1" in new ones).
  std::string_view id() const;
  /// The id that is unique in the document: `<view id>:<id>` for a short id
  /// inside a view, the id as written otherwise.
  std::string long_id() const;
  /// True if this lives in `documents` rather than in a view.
  bool is_top_level() const { return view_index_ < 0; }
  /// True if `@type` is a document type.
  bool is_document() const;
  /// True if `@type` matches `type` (see vocab::TypeMatches).
  bool IsType(std::string_view type) const;
  /// The view this annotation is in. Precondition: !is_top_level().
  View view() const;

  const json::object& properties() const;
  /// A property: the annotation's own, else the value in its view's
  /// `contains[<type>]` metadata (e.g. `document`, `timeUnit`); nullptr if
  /// neither has it.
  const json::value* Get(std::string_view key) const;
  /// A string property (own or view-level); nullopt if absent or not a string.
  std::optional<std::string_view> GetString(std::string_view key) const;

  /// Sets an own property. Setting "id" is refused (kInvalidArgument): ids
  /// are fixed at creation so the index stays right.
  Status Set(std::string_view key, json::value value);

  /// The JSON object of this annotation.
  const json::object& json() const;

  Annotation(Mmif* mmif, int32_t view_index, uint32_t index)
      : mmif_(mmif), view_index_(view_index), index_(index) {}

 protected:
  friend class Mmif;
  json::object& mutable_json() const;
  Mmif* mmif_;
  int32_t view_index_;  // -1: top-level document
  uint32_t index_;
};

/// A document: a top-level entry of `documents`, or a document-typed
/// annotation in a view (an ASR transcript, OCR text).
class Document : public Annotation {
 public:
  using Annotation::Annotation;
  explicit Document(const Annotation& a) : Annotation(a) {}

  /// `properties.location` (a URI such as file:///data/a.mp4).
  std::optional<std::string_view> location() const;
  /// The local path of a `file://` location (or of a bare absolute path);
  /// kFailedPrecondition for other schemes, kNotFound without a location.
  StatusOr<std::string> LocationPath() const;
  std::optional<std::string_view> mime() const;
  /// `properties.text["@value"]` for inline text (TextDocument).
  std::optional<std::string_view> text_value() const;
  /// `properties.text["@language"]`.
  std::optional<std::string_view> text_language() const;
  /// The text: the inline value, else the content of the file:// location.
  /// kNotFound if the document has neither; kFailedPrecondition on read errors.
  StatusOr<std::string> ReadText() const;
};

/// The error recorded in a view's metadata.
struct ViewError {
  std::string message;
  std::string stack_trace;
};

/// A view: `{"id": ..., "metadata": {...}, "annotations": [...]}`.
class View {
 public:
  std::string_view id() const;
  /// `metadata.app` and `metadata.timestamp` (empty if absent).
  std::string_view app() const;
  std::string_view timestamp() const;

  const json::object& metadata() const;
  /// Direct access to the metadata object, for keys this class has no
  /// setter for (`appTags`, `appProfiling`, ...). Do not change `contains`
  /// through it while annotations are being added (with the reference
  /// kept across NewAnnotation calls): the next NewAnnotation after this
  /// call checks `contains` again, later ones rely on what it found.
  json::object& mutable_metadata();

  void SetApp(std::string_view app);
  void SetTimestamp(std::string_view timestamp);

  /// The `contains` map, or nullptr if the view has none (error/warnings views).
  const json::object* contains() const;
  /// True if `contains` has a key matching `type` (vocab::TypeMatches).
  bool Contains(std::string_view type) const;
  /// The metadata object of `contains[type]` (matching as above), or nullptr.
  const json::object* ContainsMetadata(std::string_view type) const;
  /// Adds `type` to `contains` if absent, then merges `metadata` into its
  /// object (later keys win). Returns the entry.
  json::object& NewContain(std::string_view type, json::object metadata = {});

  bool has_error() const;
  std::optional<ViewError> error() const;
  bool has_warnings() const;
  std::vector<std::string> warnings() const;

  std::size_t annotation_count() const;
  Annotation annotation(std::size_t i) const;
  /// Annotations in order; with `type`, only those matching it.
  std::vector<Annotation> annotations(std::string_view type = {}) const;
  /// Looks an annotation of this view up by short or long id.
  std::optional<Annotation> GetAnnotation(std::string_view id) const;

  /// Appends an annotation of `type` with `properties`. Its id is
  /// `<view id>:<prefix>_<n>` (vocab::IdPrefix) with the smallest n above
  /// every n already used for that prefix in this view, so ids never
  /// collide, also after a reload. An `id` in `properties` is used instead
  /// (a short one gets the `<view id>:` prefix); kAlreadyExists if taken,
  /// kInvalidArgument if it is not a non-empty string. `type` is added to
  /// `contains` (exact IRI) if missing. The view should be an ordinary one:
  /// adding to an error or warnings view gives it `contains` next to
  /// `error`/`warnings`, which the schema forbids.
  StatusOr<Annotation> AddAnnotation(std::string_view type, json::object properties = {});
  /// AddAnnotation for generated ids, which cannot fail (an `id` in
  /// `properties` is dropped).
  Annotation NewAnnotation(std::string_view type, json::object properties = {});
  /// The properties of an annotation as a braced list, `{{"start", 0},
  /// {"end", 5}}`: what json::object's list constructor takes.
  using PropertyList = std::initializer_list<std::pair<json::string_view, json::value_ref>>;
  /// NewAnnotation with the properties written as a braced list (this
  /// overload is what `view.NewAnnotation(type, {{"start", 0}})` calls):
  /// the values are built directly in the document, with no intermediate
  /// object. Same result as the json::object overload: an `id` is dropped,
  /// and of repeated keys the first counts.
  Annotation NewAnnotation(std::string_view type, PropertyList properties);
  /// A TextDocument annotation with inline text and language (no
  /// `@language` if `language` is empty).
  Document NewTextDocument(std::string_view text, std::string_view language = "en",
                           json::object properties = {});

  /// Turns this view into an error view: sets `metadata.error` (the stack
  /// trace only if non-empty), removes `contains` and `warnings`, and empties
  /// the annotations.
  void SetError(std::string_view message, std::string_view stack_trace = {});
  /// Turns this view into a warnings view: sets `metadata.warnings`, removes
  /// `contains` and `error`, and empties the annotations.
  void SetWarnings(const std::vector<std::string>& warnings);

  const json::object& json() const;

  View(Mmif* mmif, uint32_t index) : mmif_(mmif), index_(index) {}

 private:
  friend class Annotation;
  friend class Mmif;
  json::object& mutable_json() const;
  // Adds `type` to `contains` if absent (repairing `contains`); returns its entry.
  json::object& AddContain(std::string_view type);
  // Appends an annotation of `type` with an empty properties object that has
  // room for `property_count` properties; returns the properties object.
  json::object& AppendAnnotation(std::string_view type, std::size_t property_count) const;
  // AppendAnnotation with the next generated id in place and indexed, and
  // `type` in `contains`.
  json::object& AppendGenerated(std::string_view type, std::size_t property_count);
  Mmif* mmif_;
  uint32_t index_;
};

/// One alignment with both ends resolved.
struct AlignmentPair {
  Annotation alignment;
  Annotation source;
  Annotation target;
};

/// An MMIF document. Movable, not copyable (use Clone()).
class Mmif {
 public:
  /// Parses and (by default) validates. kInvalidArgument for malformed JSON,
  /// non-UTF-8 text, schema violations and unsupported MMIF versions, with a
  /// message naming the place and rule (see ParseJson and Validate).
  static StatusOr<Mmif> Parse(std::string_view text, const ParseOptions& options = {});
  /// Parse() of a file's content, read in pieces (the whole text never sits
  /// in memory); kNotFound if it cannot be opened, kFailedPrecondition if
  /// it cannot be read.
  static StatusOr<Mmif> ParseFile(const std::filesystem::path& path,
                                  const ParseOptions& options = {});
  /// Takes an already parsed tree; validates as Parse() does.
  static StatusOr<Mmif> FromJson(json::value tree, const ParseOptions& options = {});
  /// An empty document: `{"metadata": {"mmif": <version IRI>}, "documents": [], "views": []}`.
  static Mmif New(std::string_view version_iri = kSpecVersionIri);

  Mmif(Mmif&&) noexcept;
  Mmif& operator=(Mmif&&) noexcept;
  Mmif(const Mmif&) = delete;
  Mmif& operator=(const Mmif&) = delete;
  ~Mmif();

  /// A deep copy (handles to the original do not work on the copy).
  Mmif Clone() const;

  /// Writes the tree; parse -> serialize is lossless.
  std::string Serialize(const SerializeOptions& options = {}) const;
  /// Serialize() into a file, written in pieces (the whole text never sits
  /// in memory). kFailedPrecondition if the file cannot be written.
  Status SerializeToFile(const std::filesystem::path& path,
                         const SerializeOptions& options = {}) const;

  /// The whole tree. Changing it directly (rather than through the handle
  /// methods) requires Reindex() before ids are looked up or generated
  /// again (Reindex also drops the per-view caches of NewAnnotation).
  const json::value& json() const;
  json::value& mutable_json();
  /// Rebuilds the id index from the tree.
  void Reindex();

  /// "1.1.0" (from metadata.mmif).
  std::string version() const;
  /// Warnings found when the document was read (duplicate ids, dangling
  /// references). Empty when parsed with validate=false.
  const std::vector<ValidationIssue>& warnings() const;

  // --- documents ---------------------------------------------------------
  std::size_t document_count() const;
  Document document(std::size_t i) const;
  /// Top-level documents, in order.
  std::vector<Document> documents() const;
  /// Documents of `type`: top-level ones first, then those inside views in
  /// view order.
  std::vector<Document> DocumentsByType(std::string_view type) const;
  /// Appends a top-level document. kAlreadyExists if `id` is taken.
  StatusOr<Document> AddDocument(std::string_view type, std::string_view id,
                                 json::object properties = {});

  // --- views -------------------------------------------------------------
  std::size_t view_count() const;
  View view(std::size_t i) const;
  std::vector<View> views() const;
  /// Appends a view with the next free id (`v_<n>`, n = view count, raised
  /// while taken), `timestamp` = now (local ISO-8601 with microseconds, as
  /// mmif-python writes), `app` = "" and `contains` = {}. Sign it with
  /// SetApp() before serializing: an empty app is schema-invalid.
  View NewView();
  std::optional<View> GetView(std::string_view id) const;
  /// Views whose `contains` has every type in `types`.
  std::vector<View> ViewsContaining(const std::vector<std::string_view>& types) const;
  /// The last view containing `type`, if any.
  std::optional<View> LastViewContaining(std::string_view type) const;
  /// Views with annotations on document `document_id` (own `document`
  /// property or `contains[*].document`).
  std::vector<View> ViewsForDocument(std::string_view document_id) const;
  std::vector<View> ViewsWithError() const;

  // --- lookup and queries -------------------------------------------------
  /// A view annotation by long id (`v1:tf1`), or a top-level document by id.
  /// With duplicate ids, the first one in document order.
  std::optional<Annotation> GetAnnotation(std::string_view long_id) const;
  /// A top-level document by id, or a document-typed view annotation by long
  /// id (`v4:td1`).
  std::optional<Document> GetDocument(std::string_view id) const;
  /// True if `id` names a document, a view or an annotation.
  bool HasId(std::string_view id) const;
  /// Annotations of `type` in every view, in document order.
  std::vector<Annotation> AnnotationsOfType(std::string_view type) const;
  /// Alignments whose two ends have types `type_a` and `type_b` (either
  /// direction). Alignments whose ends do not resolve are skipped.
  std::vector<AlignmentPair> Alignments(std::string_view type_a, std::string_view type_b) const;
  /// The annotations aligned with `annotation`, through any Alignment.
  std::vector<Annotation> AlignedWith(const Annotation& annotation) const;
  /// Start and end of a time- or text-anchored annotation: `timePoint`,
  /// `start`/`end`, or the min start / max end of `targets` (recursively).
  /// Values are in the annotation's own unit (`timeUnit` of its view's
  /// `contains`, or code points for text). kFailedPrecondition if it has no
  /// anchor, both targets and start/end, a non-number value, or targets
  /// nested deeper than 32 levels (a cycle); kNotFound if a target does not
  /// resolve (short target ids resolve within the view in files before 1.1.0).
  StatusOr<double> Start(const Annotation& annotation) const;
  StatusOr<double> End(const Annotation& annotation) const;

 private:
  friend class Annotation;
  friend class Document;
  friend class View;
  struct Impl;
  explicit Mmif(std::unique_ptr<Impl> impl);
  // Calls fn(alignment, source, target) for every Alignment annotation whose
  // two ends resolve (defined and used in mmif.cc only).
  template <typename Fn>
  void ForEachAlignment(Fn&& fn) const;
  std::unique_ptr<Impl> impl_;
};

/// Current local time in mmif-python's timestamp format,
/// `2026-11-25T03:02:01.839090`.
std::string NowTimestamp();

}  // namespace clams::mmif

#endif  // CLAMS_MMIF_MMIF_H_
