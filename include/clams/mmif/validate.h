// clams/mmif/validate.h
//
// Validation of an MMIF JSON tree: the rules of the official JSON schema
// (shared/data/mmif/schema/mmif.json, draft 4) checked by hand in one pass,
// plus what the schema cannot say, reported as warnings: duplicate ids and
// references that resolve to nothing. Older schemas (1.0.0 .. 1.0.2) accept a
// subset of what the current one accepts, so one rule set serves MMIF 1.x;
// files of MMIF 0.4.x and 0.5.x are checked with the same rules, as
// mmif-python checks them against its current schema.
//
// Every issue names a JSON path and the rule, e.g.
//   views[2].metadata: must have exactly one of "contains", "warnings", "error"
//   documents[1]: property "id" is not allowed (allowed: "@type", "properties")
//   views[0].annotations[3].properties.id: duplicate id "v2:a5" (first at views[0].annotations[2])
//
// Example:
//
//   ValidationReport r = Validate(tree);
//   for (const auto& e : r.errors) std::cerr << e.ToString() << "\n";
#ifndef CLAMS_MMIF_VALIDATE_H_
#define CLAMS_MMIF_VALIDATE_H_

#include <string>
#include <vector>

#include "clams/base/status.h"
#include "clams/mmif/json.h"

namespace clams::mmif {

/// One problem found in a document.
struct ValidationIssue {
  enum class Severity { kError, kWarning };
  Severity severity = Severity::kError;
  /// JSON path: `views[2].metadata.contains["TimeFrame"]`; "(root)" for the top.
  std::string path;
  /// The rule, in words: `must have exactly one of "contains", "warnings", "error"`.
  std::string message;

  /// "<path>: <message>".
  std::string ToString() const;
};

struct ValidationReport {
  std::vector<ValidationIssue> errors;    ///< schema violations and unsupported versions
  std::vector<ValidationIssue> warnings;  ///< duplicate ids, dangling references

  bool ok() const { return errors.empty(); }
  /// Ok if there are no errors (and, with `strict`, no warnings); otherwise
  /// kInvalidArgument whose message is the first issue, plus
  /// " (and N more problems)" when there are more ("problem" for one).
  Status ToStatus(bool strict = false) const;
};

/// The MMIF version in `metadata.mmif` ("1.1.0" from
/// "http://mmif.clams.ai/1.1.0"). kInvalidArgument if it cannot be read.
StatusOr<std::string> ReadMmifVersion(const json::value& tree);

/// kOk for versions 0.4.0 .. 0.5.x and 1.0.0 .. 1.2.x; kInvalidArgument
/// otherwise, saying why (e.g. "MMIF 0.3.1 is not supported: clams-cpp reads
/// MMIF 0.4.0 to 0.5.x and 1.0.0 to 1.2.x; files older than 0.4.0 use type
/// IRIs that mmif-python refuses too"). Files before 1.0 are validated with
/// the same rules as 1.x files (mmif-python checks every file against its
/// current schema), and their short annotation ids resolve as in 1.0.x.
Status CheckSupportedVersion(std::string_view version);

/// Which checks Validate runs (all of them by default).
struct ValidateOptions {
  /// The rules of the JSON schema (errors).
  bool schema = true;
  /// `metadata.mmif` names a supported version (errors).
  bool version = true;
  /// Duplicate ids and dangling references (warnings).
  bool references = true;
};

/// Checks `tree` against the schema rules and the supported version, and
/// reports duplicate ids and dangling references (`document`, `source`,
/// `target`, `targets`, `representatives`, and `contains[*].document`).
/// Errors are listed in document order, and so are warnings. In files
/// older than MMIF 1.1.0 a reference without a colon resolves to a
/// top-level document or to an annotation of the same view; from 1.1.0 on
/// references must be exact (long ids).
ValidationReport Validate(const json::value& tree);
/// Validate() with only the checks `options` asks for. With `version` off
/// and `references` off, the verdict is exactly the JSON schema's.
ValidationReport Validate(const json::value& tree, const ValidateOptions& options);

}  // namespace clams::mmif

#endif  // CLAMS_MMIF_VALIDATE_H_
