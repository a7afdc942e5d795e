// clams/app/metadata.h
//
// App metadata: what `GET /` returns. Every field of the Python SDK's
// AppMetadata, serialized the same way (fields equal to their defaults are
// omitted; the four universal parameters come last).
//
// Example:
//
//   AppMetadata m;
//   m.name = "Sentence Splitter";
//   m.description = "Splits text into sentences and tokens.";
//   m.app_license = "Apache-2.0";
//   m.identifier = "sentence-splitter";          // -> http://apps.clams.ai/sentence-splitter/<version>
//   m.url = "https://github.com/clams-cpp/clams-cpp";
//   m.AddInput(vocab::kTextDocument);
//   m.AddOutput(vocab::kSentence);
//   m.AddParameter({.name = "emit", .description = "...", .type = ParamType::kString,
//                   .choices = {"sentences", "tokens", "both"}, .default_value = "both"});
//
// Finalize() resolves the version and identifier, appends the universal
// parameters and checks the rules; the server calls it once at start.
#ifndef CLAMS_APP_METADATA_H_
#define CLAMS_APP_METADATA_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "clams/base/status.h"
#include "clams/mmif/json.h"

namespace clams {

namespace json = ::boost::json;

/// The type of a runtime parameter.
enum class ParamType { kInteger, kNumber, kString, kBoolean, kMap };

/// "integer", "number", "string", "boolean", "map".
std::string_view ParamTypeName(ParamType type);
StatusOr<ParamType> ParseParamType(std::string_view name);

/// A declared runtime parameter.
struct RuntimeParameter {
  std::string name;
  std::string description;
  ParamType type = ParamType::kString;
  /// Allowed values (JSON scalars of the parameter's type). Empty: any.
  /// For a multivalued parameter each value must be one of them.
  std::vector<json::value> choices;
  /// Default: a JSON value of the parameter's type (an array for
  /// multivalued parameters; a scalar there is wrapped in a one-element
  /// array; an array of "key:value" strings for maps). Null: the parameter
  /// is required.
  json::value default_value = nullptr;
  /// Several values allowed (maps are always multivalued; booleans never).
  bool multivalued = false;
};

/// An input or output type, optionally with properties (e.g. timeUnit).
struct TypeSpec {
  std::string at_type;
  std::string description;  ///< optional
  json::object properties;  ///< optional
  bool required = true;     ///< inputs only
};

/// App metadata. Fields are public for easy construction; use the Add*
/// helpers for the rules the Python SDK enforces (duplicates, one-of
/// groups).
struct AppMetadata {
  std::string name;
  std::string description;
  /// Empty: resolved by Finalize() (ResolveAppVersion()).
  std::string app_version;
  /// Empty: the MMIF spec version of this library.
  std::string mmif_version;
  std::optional<std::string> analyzer_version;
  std::optional<std::map<std::string, std::string>> analyzer_versions;
  std::string app_license;
  std::optional<std::string> analyzer_license;
  /// A short name ("sentence-splitter") or a URL; Finalize() rewrites it
  /// as the Python SDK does (see RewriteIdentifier()).
  std::string identifier;
  std::string url;
  /// Each entry is one input or a one-of group (more than one TypeSpec).
  std::vector<std::vector<TypeSpec>> input;
  std::vector<TypeSpec> output;
  std::vector<RuntimeParameter> parameters;
  std::optional<std::vector<std::string>> dependencies;
  std::optional<std::map<std::string, std::string>> more;
  std::vector<std::string> app_tags;
  /// GPU memory in MB with the least demanding parameters; 0 = no GPU.
  std::int64_t est_gpu_mem_min = 0;
  /// GPU memory in MB with default parameters; sizes the worker count.
  std::int64_t est_gpu_mem_typ = 0;

  /// kAlreadyExists if an equal input exists (also inside one-of groups).
  Status AddInput(std::string_view at_type, json::object properties = {}, bool required = true);
  /// A one-of group (one type: a plain input). kInvalidArgument if any
  /// member is not required; kAlreadyExists on duplicates.
  Status AddInputOneOf(std::vector<TypeSpec> types);
  /// kAlreadyExists if the same type with the same properties exists.
  Status AddOutput(std::string_view at_type, json::object properties = {});
  /// Applies the type rules (map -> multivalued, boolean -> single, scalar
  /// default of a multivalued parameter -> one-element list) and checks the
  /// default and choices against the type. kAlreadyExists for a duplicate
  /// name; kInvalidArgument for a bad default/choices.
  Status AddParameter(RuntimeParameter parameter);
  /// kInvalidArgument for an empty key or value; kAlreadyExists for a used key.
  Status AddMore(std::string_view key, std::string_view value);
  /// Adds tags, skipping duplicates; kInvalidArgument for an empty tag.
  Status AddAppTag(std::string_view tag);

  /// Resolves app_version, mmif_version and identifier, applies the
  /// est_gpu_mem rule (typ < min -> typ = min, with a logged warning),
  /// appends the universal parameters, and checks every field (required
  /// fields non-empty, http(s) URLs, parameter rules). kInvalidArgument /
  /// kAlreadyExists with a message naming the field. Idempotent.
  Status Finalize();
  bool finalized() const { return finalized_; }

  /// The metadata as JSON, fields in the Python SDK's order, defaults omitted.
  json::object ToJson() const;
  /// ToJson() as text (compact without spaces, or 2-space indented).
  std::string Serialize(bool pretty = false) const;

  /// The declared parameter named `name`, or nullptr.
  const RuntimeParameter* FindParameter(std::string_view name) const;

  /// Reads metadata as another CLAMS app serves it (`GET /` of a Python
  /// app), already finalized: the identifier is taken as it is and the
  /// universal parameters are expected among the parameters (added if
  /// missing). Defaults and choices are converted to each parameter's type
  /// the way the Python SDK uses them at run time (a string parameter's
  /// default `true` is the string "True"). Unknown fields are ignored.
  /// kInvalidArgument naming the field for what cannot be read.
  static StatusOr<AppMetadata> FromJson(const json::value& json);

 private:
  bool finalized_ = false;
};

/// The four universal parameters every app has, in their order: pretty,
/// runningTime, hwFetch, tfSamplingMode.
const std::vector<RuntimeParameter>& UniversalParameters();
bool IsUniversalParameter(std::string_view name);

/// The Python SDK's identifier rule: prefix "http://apps.clams.ai" only if
/// `identifier` has no '/'; suffix `version`; the non-empty parts stripped
/// of '/' and joined with '/'.
std::string RewriteIdentifier(std::string_view identifier, std::string_view version);

/// The Python SDK's version resolution: `git --git-dir <dir>/.git describe
/// --tags --always` for the first of `search_dirs` that has a .git and when
/// git exists ("unresolvable" if that fails), else `env_version` if
/// non-empty, else "unresolvable".
std::string ResolveAppVersion(const std::vector<std::string>& search_dirs,
                              std::string_view env_version);

}  // namespace clams

#endif  // CLAMS_APP_METADATA_H_
