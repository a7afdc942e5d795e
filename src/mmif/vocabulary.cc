// The CLAMS vocabulary: type versions per spec release, IRI parsing and
// version-tolerant type matching, id prefixes.
#include "clams/mmif/vocabulary.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <string>
#include <vector>

#include "mmif/vocab_internal.h"

namespace clams::mmif::vocab {
using mmif_internal::ClamsName;
using mmif_internal::MatchableClamsName;
using mmif_internal::ShortName;

namespace {

constexpr std::string_view kClamsHost = "http://mmif.clams.ai/";
constexpr std::string_view kLegacyVocabularyDir = "/vocabulary/";
// Legacy IRIs of these releases match current types (mmif-python refuses
// older ones and rejects newer legacy-form IRIs as invalid).
constexpr std::string_view kSupportedLegacyPrefix = "0.4.";

// Spec releases with their own vocabulary table, oldest first.
constexpr std::array<std::string_view, 7> kReleases = {"1.0.0", "1.0.1", "1.0.2", "1.0.3",
                                                       "1.0.4", "1.0.5", "1.1.0"};
constexpr std::size_t kReleaseCount = kReleases.size();
using Versions = std::array<int, kReleaseCount>;  // 0: the type does not exist in that release

// Type versions per release, from docs/<ver>/vocabulary/attypeversions.json
// (spec/mmif.md section 1.8). 1.0.3 is not listed there; its sample files use
// TimeFrame/v4, which places it between 1.0.2 and 1.0.4 (Annotation v4,
// Region family v3), since every Annotation change carries down to subtypes.
constexpr Versions kAlwaysV1 = {1, 1, 1, 1, 1, 1, 1};
constexpr Versions kAnnotationVersions = {2, 2, 3, 4, 5, 5, 6};
constexpr Versions kRegionFamilyVersions = {1, 1, 2, 3, 4, 4, 5};
constexpr Versions kTimeFrameVersions = {1, 2, 3, 4, 5, 5, 6};
constexpr Versions kNewIn110 = {0, 0, 0, 0, 0, 0, 1};

struct TypeInfo {
  std::string_view name;
  std::string_view prefix;  // mmif-python's id prefix
  const Versions* versions;
};

// Every CLAMS type of spec 1.1.0, in mmif-python's registration order (which
// decides who gets the narrow prefix), then the types mmif-python lacks.
constexpr TypeInfo kTypes[] = {
    {"Thing", "t", &kAlwaysV1},
    {"Annotation", "a", &kAnnotationVersions},
    {"Region", "r", &kRegionFamilyVersions},
    {"TimePoint", "tp", &kRegionFamilyVersions},
    {"Interval", "i", &kRegionFamilyVersions},
    {"Span", "s", &kRegionFamilyVersions},
    {"Token", "to", &kNewIn110},
    {"Sentence", "se", &kNewIn110},
    {"Paragraph", "p", &kNewIn110},
    {"NamedEntity", "ne", &kNewIn110},
    {"NounChunk", "nc", &kNewIn110},
    {"VerbChunk", "vc", &kNewIn110},
    {"TimeFrame", "tf", &kTimeFrameVersions},
    {"Chapter", "c", &kTimeFrameVersions},
    {"Polygon", "po", &kRegionFamilyVersions},
    {"BoundingBox", "bb", &kRegionFamilyVersions},
    {"VideoObject", "vo", &kRegionFamilyVersions},
    {"Relation", "re", &kRegionFamilyVersions},
    {"Alignment", "al", &kAlwaysV1},
    {"Document", "d", &kAlwaysV1},
    {"VideoDocument", "vd", &kAlwaysV1},
    {"AudioDocument", "ad", &kAlwaysV1},
    {"ImageDocument", "id", &kAlwaysV1},
    {"TextDocument", "td", &kAlwaysV1},
    {"GenericRelation", "gr", &kNewIn110},
    {"SemanticRole", "sr", &kNewIn110},
    {"Constituent", "co", &kNewIn110},
    {"Dependency", "de", &kNewIn110},
};

// LAPPS types that became CLAMS types of the same name in 1.1.0 (Markable
// was dropped, but it is still a span type).
constexpr std::string_view kLappsSpanTypes[] = {"Token",       "Sentence",  "Paragraph", "Markable",
                                                "NamedEntity", "NounChunk", "VerbChunk"};

constexpr std::string_view kDocumentTypes[] = {"Document", "VideoDocument", "AudioDocument",
                                               "ImageDocument", "TextDocument"};

// The prefix for names with no letters.
constexpr std::string_view kFallbackPrefix = "a";

const TypeInfo* FindType(std::string_view name) {
  for (const TypeInfo& t : kTypes) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

bool IsDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool IsVersionNumber(std::string_view s) {
  int dots = 0;
  for (char c : s) {
    if (c == '.') {
      ++dots;
    } else if (c < '0' || c > '9') {
      return false;
    }
  }
  return dots == 2 && !s.empty() && s.front() != '.' && s.back() != '.' &&
         s.find("..") == std::string_view::npos;
}

// The last path segment of an IRI (after the last '/' or '#', ignoring one
// trailing '/').
std::string_view LastSegment(std::string_view iri) {
  if (!iri.empty() && iri.back() == '/') iri.remove_suffix(1);
  const std::size_t cut = iri.find_last_of("/#");
  return cut == std::string_view::npos ? iri : iri.substr(cut + 1);
}

// mmif-python's prefix rule: the lowercased capitals, each widened by the
// letters after it until the prefix is not another table type's.
std::string RulePrefix(std::string_view name) {
  if (std::none_of(name.begin(), name.end(),
                   [](char c) { return std::isalpha(static_cast<unsigned char>(c)); })) {
    return std::string(kFallbackPrefix);
  }
  std::vector<std::string> segments;
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) continue;
    if (std::isupper(static_cast<unsigned char>(c)) || segments.empty()) segments.emplace_back();
    segments.back() += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  std::size_t widest = 0;
  for (const std::string& s : segments) widest = std::max(widest, s.size());
  std::string prefix;
  for (std::size_t width = 1; width <= widest; ++width) {
    prefix.clear();
    for (const std::string& s : segments) prefix += s.substr(0, width);
    const bool taken = std::any_of(std::begin(kTypes), std::end(kTypes), [&](const TypeInfo& t) {
      return t.prefix == prefix && t.name != name;
    });
    if (!taken) break;
  }
  return prefix;
}

}  // namespace

TypeId ParseType(std::string_view iri) {
  TypeId t;
  int version = 0;
  std::string_view legacy;
  if (std::optional<std::string_view> name = ClamsName(iri, &version, &legacy)) {
    t.kind = legacy.empty() ? TypeId::Kind::kClams : TypeId::Kind::kClamsLegacy;
    t.name = std::string(*name);
    t.version = version;
    t.legacy = std::string(legacy);
    return t;
  }
  if (iri.substr(0, kLappsBase.size()) == kLappsBase) {
    t.kind = TypeId::Kind::kLapps;
    t.name = std::string(LastSegment(iri));
    return t;
  }
  t.kind = TypeId::Kind::kOther;
  t.name = std::string(LastSegment(iri));
  return t;
}

bool TypeMatches(std::string_view iri, std::string_view wanted) {
  if (iri == wanted) return true;
  std::optional<std::string_view> a = MatchableClamsName(iri);
  if (!a) return false;
  if (wanted.find(':') == std::string_view::npos) return *a == wanted;  // a bare short name
  std::optional<std::string_view> b = MatchableClamsName(wanted);
  return b && *a == *b;
}

bool IsDocumentType(std::string_view iri) {
  std::optional<std::string_view> name = MatchableClamsName(iri);
  if (!name) return false;
  return std::find(std::begin(kDocumentTypes), std::end(kDocumentTypes), *name) !=
         std::end(kDocumentTypes);
}

StatusOr<std::string> Iri(std::string_view name, std::string_view spec_version) {
  const auto release = std::find(kReleases.begin(), kReleases.end(), spec_version);
  if (release == kReleases.end()) {
    return InvalidArgumentError("unsupported MMIF spec version \"" + std::string(spec_version) +
                                "\" (the vocabulary is known for 1.0.0 to 1.1.0)");
  }
  const TypeInfo* type = FindType(name);
  if (type == nullptr) {
    std::string message = "\"";
    message.append(name).append("\" is not a CLAMS vocabulary type");
    return NotFoundError(std::move(message));
  }
  const int version = (*type->versions)[static_cast<std::size_t>(release - kReleases.begin())];
  if (version == 0) {
    return NotFoundError("type " + std::string(name) + " does not exist in MMIF " +
                         std::string(spec_version) + " (it was added in 1.1.0)");
  }
  return std::string(kClamsBase) + std::string(name) + "/v" + std::to_string(version);
}

std::string IdPrefix(std::string_view iri) {
  std::string_view name = iri;
  if (iri.find(':') != std::string_view::npos || iri.find('/') != std::string_view::npos) {
    std::optional<std::string_view> clams = MatchableClamsName(iri);
    name = clams ? *clams : ShortName(iri);
  }
  if (const TypeInfo* t = FindType(name)) return std::string(t->prefix);
  return RulePrefix(name);
}

}  // namespace clams::mmif::vocab

namespace clams::mmif_internal {

std::optional<std::string_view> ClamsName(std::string_view iri, int* version,
                                          std::string_view* legacy) {
  if (iri.substr(0, mmif::vocab::kClamsBase.size()) == mmif::vocab::kClamsBase) {
    std::string_view rest = iri.substr(mmif::vocab::kClamsBase.size());
    const std::size_t slash = rest.find('/');
    if (slash == std::string_view::npos || slash == 0) return std::nullopt;
    std::string_view v = rest.substr(slash + 1);
    if (v.size() < 2 || v[0] != 'v' || !mmif::vocab::IsDigits(v.substr(1))) return std::nullopt;
    if (version != nullptr) {
      *version = 0;
      std::from_chars(v.data() + 1, v.data() + v.size(), *version);
    }
    return rest.substr(0, slash);
  }
  if (iri.substr(0, mmif::vocab::kClamsHost.size()) == mmif::vocab::kClamsHost) {
    // Legacy form: http://mmif.clams.ai/<x.y.z>/vocabulary/<Name>
    std::string_view rest = iri.substr(mmif::vocab::kClamsHost.size());
    const std::size_t dir = rest.find(mmif::vocab::kLegacyVocabularyDir);
    if (dir == std::string_view::npos) return std::nullopt;
    std::string_view release = rest.substr(0, dir);
    std::string_view name = rest.substr(dir + mmif::vocab::kLegacyVocabularyDir.size());
    if (!mmif::vocab::IsVersionNumber(release) || name.empty() ||
        name.find('/') != std::string_view::npos) {
      return std::nullopt;
    }
    if (legacy != nullptr) *legacy = release;
    if (version != nullptr) *version = 0;
    return name;
  }
  return std::nullopt;
}

std::optional<std::string_view> MatchableClamsName(std::string_view iri) {
  std::string_view legacy;
  std::optional<std::string_view> name = ClamsName(iri, nullptr, &legacy);
  if (name) {
    if (!legacy.empty() && legacy.substr(0, mmif::vocab::kSupportedLegacyPrefix.size()) !=
                               mmif::vocab::kSupportedLegacyPrefix) {
      return std::nullopt;
    }
    return name;
  }
  if (iri.substr(0, mmif::vocab::kLappsBase.size()) == mmif::vocab::kLappsBase) {
    std::string_view lapps = iri.substr(mmif::vocab::kLappsBase.size());
    for (std::string_view t : mmif::vocab::kLappsSpanTypes) {
      if (t == lapps) return lapps;
    }
  }
  return std::nullopt;
}

std::string_view ShortName(std::string_view iri) {
  if (std::optional<std::string_view> name = ClamsName(iri, nullptr, nullptr)) return *name;
  return mmif::vocab::LastSegment(iri);
}

}  // namespace clams::mmif_internal
