// clams/app/params.h
//
// Runtime parameters: what a request asks for (RawParams: name -> list of
// strings, from the query string or a JSON envelope) and what the app gets
// (Params: typed values after casting and refinement against the metadata).
//
// Casting and refinement follow the Python SDK exactly (booleans are false
// only for "False", "false", "F", "f", "0"; a single-valued parameter takes
// the first value; maps split "k:v" at the first ':' with the last value per
// key winning; defaults fill absent parameters; choices are checked; a
// parameter without default is required), with its known bugs fixed (each
// value of a multivalued parameter is checked against the choices; integer
// and number choices compare as numbers). See docs/compat.md.
//
// Example (inside App::Annotate):
//
//   std::int64_t n = params.GetInt("count");
//   bool verbose = params.GetBool("verbose");
//   std::vector<std::string> labels = params.GetStrings("labels");
#ifndef CLAMS_APP_PARAMS_H_
#define CLAMS_APP_PARAMS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "clams/app/metadata.h"
#include "clams/base/status.h"

namespace clams {

/// The most parameter names one source of a request (its query string, or
/// its envelope's `parameters` object) may carry. CLAMS apps declare a few
/// dozen parameters at most, so no real client comes near it; past it a
/// request is refused before any per-name work, which keeps a hostile
/// request's cost bounded (the recorded `parameters`, the warnings view and
/// refinement are all per name).
inline constexpr std::size_t kMaxParameterNames = 1000;

/// Parameters as received: names in order of first appearance, each with
/// its values in order. Add, Set and Find take constant time on average
/// (a hash index by name beside the ordered entries), so MergeOverride and
/// the parsers are linear in their input.
class RawParams {
 public:
  using Entry = std::pair<std::string, std::vector<std::string>>;

  RawParams() = default;
  RawParams(std::initializer_list<Entry> entries);

  /// Appends `value` to `name` (creating it at the end).
  void Add(std::string_view name, std::string value);
  /// Replaces all values of `name` (keeping its position if it exists).
  void Set(std::string_view name, std::vector<std::string> values);
  /// The values of `name`, or nullptr.
  const std::vector<std::string>* Find(std::string_view name) const;
  bool Has(std::string_view name) const { return Find(name) != nullptr; }
  /// `other`'s entries replace ours per name (query values override
  /// envelope values).
  void MergeOverride(const RawParams& other);

  const std::vector<Entry>& entries() const { return entries_; }
  bool empty() const { return entries_.empty(); }
  std::size_t size() const { return entries_.size(); }

  /// Parses a URL query string ("a=1&b=x%20y&pretty"): percent-decoding,
  /// '+' as space, a name without '=' gets "" (as Flask does). Invalid
  /// percent escapes or non-UTF-8 results give kInvalidArgument, and so
  /// does a query with more than kMaxParameterNames distinct names:
  ///   Too many query parameters: 15500 names, at most 1000 are accepted.
  static StatusOr<RawParams> FromQuery(std::string_view query);
  /// The `parameters` object of an envelope, normalized as the Python SDK
  /// does: array -> each element as a string; object -> "k:v" per entry;
  /// scalar -> one string (true -> "True", false -> "False", null -> "None",
  /// numbers as Python prints them). kInvalidArgument if `value` is not an
  /// object, or if it has more than kMaxParameterNames names:
  ///   Too many envelope parameters: 120000 names, at most 1000 are accepted.
  static StatusOr<RawParams> FromEnvelope(const json::value& value);

 private:
  // Hash and equality that look up std::string keys by std::string_view.
  struct NameHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view name) const { return std::hash<std::string_view>{}(name); }
  };

  std::vector<Entry> entries_;
  // Name -> position in entries_ (entries are never removed).
  std::unordered_map<std::string, std::size_t, NameHash, std::equal_to<>> index_;
};

/// Thrown by the Params getters when app code asks for a parameter that is
/// not declared or has another type: a programming error in the app, caught
/// at the SDK boundary and reported as an app failure (HTTP 500).
class ParamAccessError : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

/// Refined, typed parameters: every declared parameter (app and universal)
/// with a value, in metadata order.
class Params {
 public:
  Params() = default;

  /// The typed value of a declared parameter, or nullptr.
  const json::value* Find(std::string_view name) const;
  bool Has(std::string_view name) const { return Find(name) != nullptr; }

  /// Typed getters; throw ParamAccessError if `name` is not declared or
  /// holds another type.
  bool GetBool(std::string_view name) const;
  std::int64_t GetInt(std::string_view name) const;
  /// Numbers; integers are converted.
  double GetNumber(std::string_view name) const;
  std::string GetString(std::string_view name) const;
  std::vector<std::string> GetStrings(std::string_view name) const;
  std::vector<std::int64_t> GetInts(std::string_view name) const;
  std::vector<double> GetNumbers(std::string_view name) const;
  std::map<std::string, std::string> GetMap(std::string_view name) const;

  /// All refined values, in metadata order: what `appConfiguration` records.
  const json::object& values() const { return values_; }
  /// What the request sent, before refinement.
  const RawParams& raw() const { return raw_; }
  /// Names in raw() that the app does not declare.
  const std::vector<std::string>& undeclared() const { return undeclared_; }
  /// Warnings from refinement (a map value with several ':').
  const std::vector<std::string>& refine_warnings() const { return refine_warnings_; }

 private:
  friend StatusOr<Params> RefineParams(const AppMetadata&, const RawParams&);
  json::object values_;
  RawParams raw_;
  std::vector<std::string> undeclared_;
  std::vector<std::string> refine_warnings_;
};

/// Casts one raw value to `type` (no choices check). kInvalidArgument with
/// a message like `Value for parameter "count" must be an integer, got "x".`
StatusOr<json::value> CastParamValue(const RuntimeParameter& parameter, std::string_view raw);

/// Casts and refines `raw` against `metadata.parameters` (metadata must be
/// finalized so the universal parameters are there). kInvalidArgument with
/// the Python SDK's messages, e.g.
///   Value for parameter "count" must be one of [1, 2, 3].
///   Cannot find configuration for a required parameter "prompt".
StatusOr<Params> RefineParams(const AppMetadata& metadata, const RawParams& raw);

/// The string the Python SDK records in a view's `parameters` for one raw
/// parameter: the first value, or Python's list repr ("['x', 'y']") for a
/// declared multivalued parameter.
std::string RecordedParameterValue(const AppMetadata& metadata, const RawParams::Entry& entry);
/// Python's repr of a list of strings: ['a', "it's"].
std::string PythonListRepr(const std::vector<std::string>& values);

/// The refined values that make up a request class: without the universal
/// parameters and, when `only` is not empty, only the names in it.
json::object ClassParameterValues(const Params& params, const std::vector<std::string>& only = {});
/// The canonical JSON of ClassParameterValues (keys sorted): the parameter
/// part of a request class.
std::string CanonicalClassParameters(const Params& params, const std::vector<std::string>& only = {});

}  // namespace clams

#endif  // CLAMS_APP_PARAMS_H_
