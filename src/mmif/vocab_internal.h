// Non-allocating IRI helpers behind vocabulary.h, shared with mmif.cc (type
// matching runs once per annotation in queries). Not part of the API.
#ifndef CLAMS_SRC_MMIF_VOCAB_INTERNAL_H_
#define CLAMS_SRC_MMIF_VOCAB_INTERNAL_H_

#include <optional>
#include <string_view>

namespace clams::mmif_internal {

/// The type name of a CLAMS IRI, current (`.../vocabulary/<Name>/v<N>`, with
/// `*version` = N) or legacy (`http://mmif.clams.ai/<x.y.z>/vocabulary/<Name>`,
/// with `*legacy` = "x.y.z"); nullopt for any other IRI. The out-parameters
/// may be null.
std::optional<std::string_view> ClamsName(std::string_view iri, int* version,
                                          std::string_view* legacy);

/// The CLAMS type name `iri` stands for when matching types: current CLAMS
/// IRIs, 0.4.x legacy IRIs and the LAPPS span types; nullopt otherwise.
std::optional<std::string_view> MatchableClamsName(std::string_view iri);

/// "TimeFrame" for a CLAMS IRI (current or legacy), else the last segment of
/// the IRI ("Token" for http://vocab.lappsgrid.org/Token).
std::string_view ShortName(std::string_view iri);

}  // namespace clams::mmif_internal

#endif  // CLAMS_SRC_MMIF_VOCAB_INTERNAL_H_
