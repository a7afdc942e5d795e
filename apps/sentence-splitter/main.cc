// sentence-splitter: a CLAMS app that splits TextDocuments into sentences
// and tokens. `sentence-splitter --help`, or see docs/writing-an-app.md.
#include "app.h"
#include "clams/server/serve.h"

int main(int argc, char** argv) {
  splitter::SentenceSplitterApp app;
  return clams::Serve(app, argc, argv);
}
