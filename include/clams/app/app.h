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
  /// throw) to fail the request; an out-of-memory failure should use
  /// kResourceExhausted or say "out of memory" so the server can raise the
  /// request class's VRAM estimate.
  virtual Status Annotate(mmif::Mmif& mmif, const Params& params) = 0;

  /// Optional: how many bytes of GPU memory one request with `params` makes
  /// a fresh worker grow by (model weights plus peak activations). nullopt:
  /// unknown (the server then uses measured profiles or the metadata). Must
  /// be cheap and must not touch the GPU.
  virtual std::optional<std::uint64_t> EstimateVram(const Params& params) const {
    (void)params;
    return std::nullopt;
  }

  /// True if Annotate() may run on several threads at once on this object
  /// (development mode). False (the default): calls are serialized.
  virtual bool thread_safe() const { return false; }
};

/// Records a warning for the request being annotated on this thread; the
/// SDK writes all warnings of a run into one warnings view. Outside
/// Annotate() it is logged instead.
void Warn(std::string message);

}  // namespace clams

#endif  // CLAMS_APP_APP_H_
