// Intake: the first stage of an annotate request in the front. One decoding
// of the body (the envelope's keys are decoded as JSON decodes them, so
// "param\u0065ters" is "parameters", and the last of duplicate keys wins,
// as in Python's json), the query merged over the envelope parameters, the
// MMIF validated, the parameters refined, the request class and the
// estimate resolved. What comes out is a Job the worker will run exactly
// as decoded (wire.h), or a RequestFailure: nothing that ends in a 4xx ever
// reaches the queue, reserves memory or evicts a worker.
//
// Failures (their HTTP status through HttpStatusFor):
//   kInvalidArgument, input_unreadable: malformed JSON, a bad envelope,
//       invalid MMIF (400 text/plain, the Python SDK's text)
//   kInvalidArgument: parameters that do not refine (400 error view)
// (The scheduler then refuses with 422 what no device could ever hold.)
//
// Loop thread only.
#ifndef CLAMS_SRC_SERVER_INTAKE_H_
#define CLAMS_SRC_SERVER_INTAKE_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "clams/app/runner.h"
#include "clams/vram/vram.h"
#include "server/http.h"
#include "server/job.h"

namespace clams::server {

/// Where the parts of a request body are: the MMIF document, and the
/// envelope's `parameters` value when the body is an envelope.
struct BodyLayout {
  bool envelope = false;
  std::size_t mmif_offset = 0;
  std::size_t mmif_length = 0;
  std::size_t parameters_offset = 0;
  std::size_t parameters_length = 0;
};

/// Finds the top-level `parameters` and `mmif` values of a body that is a
/// well-formed JSON text (check that first). Keys are decoded (escapes) and
/// the last occurrence of a key wins, as JSON parsers do. A body that is
/// not an object, or has no `parameters` key, is not an envelope: the whole
/// body is the MMIF.
BodyLayout FindBodyLayout(std::string_view body);

struct IntakeOptions {
  /// The front manages GPUs: resolve an estimate and refuse what cannot fit.
  bool gpus = false;
  /// The parameters that shape memory (the class key uses only these);
  /// empty: all refined parameters but the universal ones.
  std::vector<std::string> class_params;
  vram::EstimateOptions estimates;
  vram::AdmissionOptions admission;
};

class Intake {
 public:
  Intake(AppRunner& runner, vram::ProfileStore* profiles, IntakeOptions options);

  /// Decodes `body` with the already parsed `query` into a Job (its id,
  /// request id, respond and cancel are the caller's to set). On failure
  /// returns null and fills `failure` (and `raw`, the parameters decoded so
  /// far, for the error view). `devices`: the latest device view (for the
  /// conservative estimate).
  std::unique_ptr<Job> Take(std::shared_ptr<const std::string> body, const RawParams& query,
                            const std::vector<vram::DeviceView>& devices, RequestFailure* failure, RawParams* raw);

  /// Resolves `job`'s estimate and expected duration again (a profile of
  /// its class changed while it waited). No-op without GPUs.
  void Reestimate(Job& job, const std::vector<vram::DeviceView>& devices);

  /// The memory-relevant parameters of a refined request in words
  /// ("model=large, beam=5"; "(no parameters)" when there are none).
  static std::string ClassLabel(const json::object& class_values);

  const IntakeOptions& options() const { return options_; }
  void set_options(IntakeOptions options) { options_ = std::move(options); }

 private:
  AppRunner& runner_;
  vram::ProfileStore* profiles_;
  IntakeOptions options_;
};

}  // namespace clams::server

#endif  // CLAMS_SRC_SERVER_INTAKE_H_
