// clams/app/app.h
//
// The interface a C++ CLAMS app implements. One file is enough:
//
//   class Upper : public clams::App {
//    public:
//     clams::AppMetadata Metadata() const override { ... }
//     clams::Status Annotate(clams::mmif::Mmif& mmif, const clams::Params& params) override {
//       clams::mmif::View view = mmif.NewView();   // signed by the SDK afterwards
//       ...
//       return clams::Status::Ok();
//     }
//   };
//   int main(int argc, char** argv) { Upper app; return clams::Serve(app, argc, argv); }
//
// The SDK calls Metadata() once. It calls Annotate() for each request, with
// the parameters cast and refined against the metadata; every view the call
// adds whose `app` is empty (or this app's identifier) is then signed: app,
// one timestamp shared by the run, raw `parameters`, typed
// `appConfiguration`, `appTags`, `appProfiling`. A non-ok Status or an
// exception becomes an error view and HTTP 500; clams::Warn() adds to a
// warnings view.
//
// GPU apps: do not allocate GPU memory in the constructor or in Metadata()
// or EstimateVram() -- the front process of the production server calls
// these and must never touch CUDA. Load models lazily in Annotate() and keep
// them in the object (each worker process has its own App object).
#ifndef CLAMS_APP_APP_H_
#define CLAMS_APP_APP_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "clams/app/metadata.h"
#include "clams/app/params.h"
#include "clams/base/status.h"
#include "clams/mmif/mmif.h"

namespace clams {

class App {
 public:
  virtual ~App() = default;

  /// The app's metadata (not yet finalized: the SDK resolves the version
  /// and identifier and appends the universal parameters).
  virtual AppMetadata Metadata() const = 0;

  /// Analyses `mmif` in place, adding views. Return a non-ok Status (or
  /// throw) to fail the request. Report running out of GPU memory with
  /// kResourceExhausted (ideally saying "Tried to allocate <n> MiB" as CUDA
  /// frameworks do): that is the only signal the server takes as an OOM,
  /// and it raises the request class's estimate only when the measured
  /// usage backs it up. Words in other error messages never count.
  virtual Status Annotate(mmif::Mmif& mmif, const Params& params) = 0;

  /// Optional: how many bytes of GPU memory one request with `params` makes
  /// a fresh worker grow by (model weights plus peak activations). nullopt:
  /// unknown (the server then uses measured profiles or the metadata). Must
  /// be cheap and must not touch the GPU.
  virtual std::optional<std::uint64_t> EstimateVram(const Params& params) const {
    (void)params;
    return std::nullopt;
  }

  /// Optional: the names of the parameters that shape GPU memory (e.g.
  /// {"model"}). The server's request class, which keys measured memory
  /// profiles, uses only these; parameters that change only time (a hold
  /// time, a threshold) then share one profile. Empty (the default): every
  /// refined parameter except the universal ones. Names not declared in the
  /// metadata are ignored.
  virtual std::vector<std::string> ClassParameters() const { return {}; }

  /// True if Annotate() may run on several threads at once on this object:
  /// the development server's threads, and up to --threads requests at once
  /// in each production worker. False (the default): calls are serialized
  /// and a production worker takes one request at a time.
  virtual bool thread_safe() const { return false; }
};

/// Records a warning for the request being annotated on this thread; the
/// SDK writes all warnings of a run into one warnings view. Outside
/// Annotate() it is logged instead.
void Warn(std::string message);

}  // namespace clams

#endif  // CLAMS_APP_APP_H_
