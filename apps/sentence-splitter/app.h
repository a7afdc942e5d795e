// The sentence-splitter CLAMS app: TextDocument -> Sentence and Token
// annotations with code-point offsets. CPU only, stateless, thread-safe.
#ifndef CLAMS_APPS_SENTENCE_SPLITTER_APP_H_
#define CLAMS_APPS_SENTENCE_SPLITTER_APP_H_

#include "clams/app/app.h"

namespace splitter {

class SentenceSplitterApp : public clams::App {
 public:
  clams::AppMetadata Metadata() const override;
  clams::Status Annotate(clams::mmif::Mmif& mmif, const clams::Params& params) override;
  bool thread_safe() const override { return true; }
};

}  // namespace splitter

#endif  // CLAMS_APPS_SENTENCE_SPLITTER_APP_H_
