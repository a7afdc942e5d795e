// Internals of the MMIF library shared by validate.cc and mmif.cc: where the
// parts of a document sit in the tree, the id index, the one-pass walk that
// validates and indexes, and reference resolution. Not part of the API.
#ifndef CLAMS_SRC_MMIF_INTERNAL_H_
#define CLAMS_SRC_MMIF_INTERNAL_H_

#include <climits>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "clams/mmif/json.h"
#include "clams/mmif/validate.h"

namespace clams::mmif_internal {

namespace json = ::boost::json;
using ::clams::mmif::ValidateOptions;
using ::clams::mmif::ValidationIssue;
using ::clams::mmif::ValidationReport;

/// Where an element with an id sits: a top-level document, a view, or an
/// annotation of a view.
struct Loc {
  static constexpr std::int32_t kDocument = -1;  ///< `view` of a top-level document
  static constexpr std::int32_t kView = -2;      ///< `view` of a view's own id
  std::int32_t view = kDocument;                 ///< view index, or kDocument / kView
  std::uint32_t index = 0;                       ///< document, view or annotation index
  bool is_annotation() const { return view >= 0; }
  friend bool operator==(const Loc& a, const Loc& b) {
    return a.view == b.view && a.index == b.index;
  }
};

/// Pointers to the values of one view object (nullptr where the key is
/// missing). They point into the view's own key table, so they stay valid
/// when the `views` array grows; only a structural change of the view object
/// itself (a key added or removed) or of the tree above it invalidates them.
struct ViewSlots {
  const json::value* id = nullptr;
  const json::value* metadata = nullptr;
  const json::value* annotations = nullptr;
};

/// Pointers to the parts of a document tree (see ViewSlots for validity).
struct TreeSlots {
  const json::value* metadata = nullptr;
  const json::value* documents = nullptr;
  const json::value* views = nullptr;
  std::vector<ViewSlots> view_slots;  ///< one per element of `views` (empty slots for non-objects)

  /// The `annotations` array of view `view`, or nullptr.
  const json::array* Annotations(std::int32_t view) const;
  /// The object at `loc`, or nullptr.
  const json::object* ObjectAt(const Loc& loc) const;
  /// The id string of view `view` ("" if none).
  std::string_view ViewId(std::int32_t view) const;
};

/// The two parts of an element's long id: `view` is non-empty for a short
/// id inside a view, and then the long id is `view + ":" + id`.
struct IdParts {
  std::string_view view;
  std::string_view id;
  std::size_t size() const { return view.empty() ? id.size() : view.size() + 1 + id.size(); }
  std::string Long() const;
  bool Equals(const IdParts& other) const;
  std::uint64_t Hash() const;
};

/// The id of the element at `loc` (empty parts if it has none).
IdParts IdAt(const TreeSlots& tree, const Loc& loc);

/// Id -> Loc for documents, views and annotations (long ids). A flat,
/// open-addressing table of (lower half of the 64-bit hash, Loc); ids are
/// compared against the tree, so the table holds no strings and never
/// dangles when the tree changes shape. The kept half picks the slot (FNV's
/// low bits keep ids that differ in their last characters, such as
/// consecutive generated ids, close together, which big documents need for
/// cache locality) and filters comparisons, and growing needs no access to
/// the ids. Only the first element with a given id is kept.
class IdIndex {
 public:
  void Clear();
  /// Makes room for `n` ids without growing again.
  void Reserve(std::size_t n);
  /// Adds the element at `loc` whose id is `parts`. If an element with an
  /// equal id is present, returns its Loc and changes nothing.
  std::optional<Loc> Insert(const IdParts& parts, const Loc& loc, const TreeSlots& tree);
  /// Adds the element at `loc` whose id hashes to `hash` (IdParts::Hash()).
  /// Precondition: no element with that id is indexed (Find gave nullopt).
  void InsertNew(std::uint64_t hash, const Loc& loc);
  std::optional<Loc> Find(const IdParts& parts, const TreeSlots& tree) const {
    return Find(parts, parts.Hash(), tree);
  }
  /// Find() with the hash of `parts` already computed.
  std::optional<Loc> Find(const IdParts& parts, std::uint64_t hash, const TreeSlots& tree) const;
  std::optional<Loc> Find(std::string_view long_id, const TreeSlots& tree) const {
    return Find(IdParts{{}, long_id}, tree);
  }
  std::size_t size() const { return size_; }

 private:
  // 12 bytes: the lower half of the hash (its low bits pick the slot, all
  // of it filters comparisons) and the Loc; `loc.view == kUnused` marks an
  // empty slot.
  static constexpr std::int32_t kUnused = INT32_MIN;
  struct Slot {
    std::uint32_t hash_low = 0;
    Loc loc{kUnused, 0};
    bool used() const { return loc.view != kUnused; }
  };
  static std::uint32_t LowHalf(std::uint64_t hash) { return static_cast<std::uint32_t>(hash); }
  // Grows the table to hold `n` ids.
  void Rehash(std::size_t n);
  // Makes room for one more id.
  void Grow() {
    if ((size_ + 1) * kLoadFactorInverse > slots_.size()) Rehash(size_ + 1);
  }
  // The index keeps its load factor at or below 1/2 (linear probing).
  static constexpr std::size_t kLoadFactorInverse = 2;
  std::vector<Slot> slots_;
  std::size_t size_ = 0;
};

/// Walks `root` once: fills `slots`, indexes every id into `index`, and
/// (with a non-null `report`) records the issues `options` asks for.
void Walk(const json::value& root, const ValidateOptions& options, TreeSlots* slots, IdIndex* index,
          ValidationReport* report);

/// True for MMIF versions before 1.1.0, whose annotation ids are short and
/// whose short references resolve within their view. Unknown versions count
/// as old (the lenient reading).
bool UsesShortIds(std::string_view version);

/// Resolves a reference made from view `view` (Loc::kDocument for the top
/// level) to a document or annotation: the exact id, else (with
/// `short_ids`) `<view id>:<ref>` for a ref without a colon.
std::optional<Loc> Resolve(std::string_view ref, std::int32_t view, bool short_ids,
                           const TreeSlots& tree, const IdIndex& index);

/// Parses JSON read from `file` in chunks, so the text never sits in memory
/// as a whole; `*bytes` is the number of bytes read. Malformed input gives
/// kInvalidArgument("malformed JSON") without a place: callers read the text
/// and call ParseJson for the exact message. kFailedPrecondition on read
/// errors.
StatusOr<json::value> ParseJsonFromFile(std::FILE* file, json::storage_ptr storage,
                                        std::size_t* bytes);

/// "documents[1]", "views[2]", "views[2].annotations[5]".
std::string LocPath(const Loc& loc);
/// Appends `.key` (or `["key"]` if it is not a plain identifier) to `path`.
void AppendPathKey(std::string& path, std::string_view key);

}  // namespace clams::mmif_internal

#endif  // CLAMS_SRC_MMIF_INTERNAL_H_
