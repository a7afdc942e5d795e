// clams/mmif/vocabulary.h
//
// The CLAMS vocabulary: type IRIs for MMIF spec 1.0.0 .. 1.1.0, and type
// matching that accepts older versions of a type.
//
// A CLAMS type IRI is `http://mmif.clams.ai/vocabulary/<Name>/v<N>`; each type
// has its own version (TimeFrame is v6 in spec 1.1.0, v5 in 1.0.5). Legacy
// IRIs `http://mmif.clams.ai/<x.y.z>/vocabulary/<Name>` (0.4.x) and the LAPPS
// span types that became CLAMS types in 1.1.0 (`http://vocab.lappsgrid.org/
// Token`, Sentence, Paragraph, NamedEntity, NounChunk, VerbChunk, Markable)
// match the CLAMS type of the same name.
//
// Example:
//
//   view.NewAnnotation(vocab::kTimeFrame, {{"start", 0}, {"end", 10}});
//   if (vocab::TypeMatches(ann.type(), vocab::kTimeFrame)) ...
//   vocab::Iri("TimeFrame", "1.0.5")  // -> ".../TimeFrame/v5"
#ifndef CLAMS_MMIF_VOCABULARY_H_
#define CLAMS_MMIF_VOCABULARY_H_

#include <optional>
#include <string>
#include <string_view>

#include "clams/base/status.h"

namespace clams::mmif {

/// The MMIF spec version this library writes into new documents.
inline constexpr std::string_view kSpecVersion = "1.1.0";
/// `metadata.mmif` of new documents.
inline constexpr std::string_view kSpecVersionIri = "http://mmif.clams.ai/1.1.0";

namespace vocab {

inline constexpr std::string_view kClamsBase = "http://mmif.clams.ai/vocabulary/";
inline constexpr std::string_view kLappsBase = "http://vocab.lappsgrid.org/";

// Current IRIs (spec 1.1.0).
inline constexpr std::string_view kThing = "http://mmif.clams.ai/vocabulary/Thing/v1";
inline constexpr std::string_view kAnnotation = "http://mmif.clams.ai/vocabulary/Annotation/v6";
inline constexpr std::string_view kRegion = "http://mmif.clams.ai/vocabulary/Region/v5";
inline constexpr std::string_view kTimePoint = "http://mmif.clams.ai/vocabulary/TimePoint/v5";
inline constexpr std::string_view kInterval = "http://mmif.clams.ai/vocabulary/Interval/v5";
inline constexpr std::string_view kSpan = "http://mmif.clams.ai/vocabulary/Span/v5";
inline constexpr std::string_view kToken = "http://mmif.clams.ai/vocabulary/Token/v1";
inline constexpr std::string_view kSentence = "http://mmif.clams.ai/vocabulary/Sentence/v1";
inline constexpr std::string_view kParagraph = "http://mmif.clams.ai/vocabulary/Paragraph/v1";
inline constexpr std::string_view kNamedEntity = "http://mmif.clams.ai/vocabulary/NamedEntity/v1";
inline constexpr std::string_view kNounChunk = "http://mmif.clams.ai/vocabulary/NounChunk/v1";
inline constexpr std::string_view kVerbChunk = "http://mmif.clams.ai/vocabulary/VerbChunk/v1";
inline constexpr std::string_view kTimeFrame = "http://mmif.clams.ai/vocabulary/TimeFrame/v6";
inline constexpr std::string_view kChapter = "http://mmif.clams.ai/vocabulary/Chapter/v6";
inline constexpr std::string_view kPolygon = "http://mmif.clams.ai/vocabulary/Polygon/v5";
inline constexpr std::string_view kBoundingBox = "http://mmif.clams.ai/vocabulary/BoundingBox/v5";
inline constexpr std::string_view kVideoObject = "http://mmif.clams.ai/vocabulary/VideoObject/v5";
inline constexpr std::string_view kRelation = "http://mmif.clams.ai/vocabulary/Relation/v5";
inline constexpr std::string_view kGenericRelation = "http://mmif.clams.ai/vocabulary/GenericRelation/v1";
inline constexpr std::string_view kSemanticRole = "http://mmif.clams.ai/vocabulary/SemanticRole/v1";
inline constexpr std::string_view kConstituent = "http://mmif.clams.ai/vocabulary/Constituent/v1";
inline constexpr std::string_view kDependency = "http://mmif.clams.ai/vocabulary/Dependency/v1";
inline constexpr std::string_view kAlignment = "http://mmif.clams.ai/vocabulary/Alignment/v1";
inline constexpr std::string_view kDocument = "http://mmif.clams.ai/vocabulary/Document/v1";
inline constexpr std::string_view kVideoDocument = "http://mmif.clams.ai/vocabulary/VideoDocument/v1";
inline constexpr std::string_view kAudioDocument = "http://mmif.clams.ai/vocabulary/AudioDocument/v1";
inline constexpr std::string_view kImageDocument = "http://mmif.clams.ai/vocabulary/ImageDocument/v1";
inline constexpr std::string_view kTextDocument = "http://mmif.clams.ai/vocabulary/TextDocument/v1";

/// A parsed type IRI.
struct TypeId {
  enum class Kind { kClams, kClamsLegacy, kLapps, kOther };
  Kind kind = Kind::kOther;
  std::string name;     ///< short name: "TimeFrame"; for kOther the last path segment
  int version = 0;      ///< N of `/vN` for kClams; 0 otherwise
  std::string legacy;   ///< "0.4.2" for kClamsLegacy
};

/// Parses any IRI. Never fails: unknown shapes give Kind::kOther with the
/// last path segment as name.
TypeId ParseType(std::string_view iri);

/// True if `iri` names the same type as `wanted`, ignoring the type version
/// and mapping legacy CLAMS IRIs and the LAPPS span types onto CLAMS types.
/// `wanted` may be a full IRI or a bare CLAMS short name ("TimeFrame").
/// IRIs of other vocabularies match only exactly.
bool TypeMatches(std::string_view iri, std::string_view wanted);

/// True if `iri` is a document type (VideoDocument, AudioDocument,
/// ImageDocument, TextDocument, Document; any version).
bool IsDocumentType(std::string_view iri);

/// The IRI of CLAMS type `name` as published with MMIF spec `spec_version`,
/// one of the releases 1.0.0, 1.0.1, 1.0.2, 1.0.3, 1.0.4, 1.0.5, 1.1.0
/// (1.0.5 has 1.0.4's versions; 1.0.3's, not listed in the spec notes, are
/// inferred from its samples: TimeFrame/v4, Annotation/v4, Region family v3).
/// kNotFound for unknown names (`"Foo" is not a CLAMS vocabulary type`) or a
/// type that did not exist in that version (Token before 1.1.0);
/// kInvalidArgument for other spec versions.
StatusOr<std::string> Iri(std::string_view name, std::string_view spec_version = kSpecVersion);

/// The id prefix mmif-python uses for a type: the lowercased capitals of the
/// short name (TimeFrame -> "tf"), widened where two CLAMS types would clash
/// (Token -> "to" next to Thing "t"). Fixed table for the CLAMS types in
/// spec 1.1.0; other types by the same rule. Names with no letters give "a".
std::string IdPrefix(std::string_view iri);

}  // namespace vocab
}  // namespace clams::mmif

#endif  // CLAMS_MMIF_VOCABULARY_H_
