// upper.cc: adds an upper-cased copy of every TextDocument. The app of
// docs/writing-an-app.md, built against an installed clams-cpp.
#include <algorithm>

#include "clams/app/app.h"
#include "clams/mmif/vocabulary.h"
#include "clams/server/serve.h"

namespace vocab = clams::mmif::vocab;

class Upper : public clams::App {
 public:
  clams::AppMetadata Metadata() const override {
    clams::AppMetadata m;
    m.name = "Upper";
    m.description = "Upper-cases text documents.";
    m.app_license = "MIT";
    m.identifier = "upper";                       // -> http://apps.clams.ai/upper/<version>
    m.app_version = "v1.0";                        // or from git / CLAMS_APP_VERSION
    m.url = "https://example.org/upper";
    (void)m.AddInput(vocab::kTextDocument);
    (void)m.AddOutput(vocab::kTextDocument);
    (void)m.AddParameter({.name = "keepDigits",
                          .description = "Leave digits as they are.",
                          .type = clams::ParamType::kBoolean,
                          .default_value = true});
    return m;
  }

  clams::Status Annotate(clams::mmif::Mmif& mmif, const clams::Params& params) override {
    (void)params;
    auto docs = mmif.DocumentsByType(vocab::kTextDocument);
    if (docs.empty()) clams::Warn("no TextDocument in the input");
    for (const auto& doc : docs) {
      auto text = doc.ReadText();                  // inline text or a file:// location
      if (!text.ok()) return text.status();        // -> HTTP 500 with an error view
      std::string upper = *text;
      std::transform(upper.begin(), upper.end(), upper.begin(), ::toupper);
      clams::mmif::View view = mmif.NewView();     // signed by the SDK afterwards
      auto out = view.NewTextDocument(upper, "en");
      view.NewAnnotation(vocab::kAlignment, {{"source", doc.long_id()}, {"target", out.id()}});
    }
    return clams::Status::Ok();
  }

  bool thread_safe() const override { return true; }  // no shared mutable state
};

int main(int argc, char** argv) {
  Upper app;
  return clams::Serve(app, argc, argv);
}
