#include "app.h"

#include <algorithm>

#include "clams/mmif/vocabulary.h"
#include "splitter.h"

namespace splitter {

namespace vocab = clams::mmif::vocab;
namespace json = boost::json;

clams::AppMetadata SentenceSplitterApp::Metadata() const {
  clams::AppMetadata m;
  m.name = "Sentence Splitter";
  m.description =
      "Rule-based sentence and token splitter for English-like text: abbreviations, initials, decimals, times, "
      "ellipses, quotes and paragraph breaks. Offsets are Unicode code points.";
  m.app_license = "Apache-2.0";
  m.identifier = "sentence-splitter";
  m.url = "https://github.com/clams-cpp/clams-cpp/tree/main/apps/sentence-splitter";
  m.analyzer_version = "rules-1";
  (void)m.AddInput(vocab::kTextDocument);
  (void)m.AddOutput(vocab::kSentence);
  (void)m.AddOutput(vocab::kToken);
  (void)m.AddParameter({.name = "emit",
                        .description = "Which annotation types to write: sentences, tokens, or both.",
                        .type = clams::ParamType::kString,
                        .choices = {json::value("sentences"), json::value("tokens")},
                        .default_value = json::array{"sentences", "tokens"},
                        .multivalued = true});
  (void)m.AddParameter({.name = "abbreviations",
                        .description = "More abbreviations (without the period, e.g. \"approx\") after which a "
                                       "period does not end a sentence.",
                        .type = clams::ParamType::kString,
                        .default_value = json::array{},
                        .multivalued = true});
  (void)m.AddParameter({.name = "paragraphBreaks",
                        .description = "A blank line ends a sentence even without punctuation.",
                        .type = clams::ParamType::kBoolean,
                        .default_value = true});
  (void)m.AddParameter({.name = "sentenceTargets",
                        .description = "Give each Sentence the ids of its tokens in `targets` instead of "
                                       "start/end offsets (needs tokens).",
                        .type = clams::ParamType::kBoolean,
                        .default_value = false});
  (void)m.AddAppTag("text");
  return m;
}

clams::Status SentenceSplitterApp::Annotate(clams::mmif::Mmif& mmif, const clams::Params& params) {
  const auto emit = params.GetStrings("emit");
  const bool want_sentences = std::find(emit.begin(), emit.end(), "sentences") != emit.end();
  const bool want_tokens = std::find(emit.begin(), emit.end(), "tokens") != emit.end();
  const bool targets = params.GetBool("sentenceTargets") && want_tokens;
  Options options;
  options.paragraph_breaks = params.GetBool("paragraphBreaks");
  for (std::string a : params.GetStrings("abbreviations")) {
    if (!a.empty() && a.back() == '.') a.pop_back();
    std::transform(a.begin(), a.end(), a.begin(), [](unsigned char c) { return std::tolower(c); });
    options.extra_abbreviations.insert(a);
  }

  auto documents = mmif.DocumentsByType(vocab::kTextDocument);
  if (documents.empty()) clams::Warn("the input has no TextDocument: nothing to split");
  for (const auto& doc : documents) {
    auto text = doc.ReadText();
    if (!text.ok()) {
      clams::Warn("TextDocument \"" + doc.long_id() + "\" was skipped: " + text.status().message());
      continue;
    }
    const Result r = Split(*text, options);
    const std::string_view text_view = *text;
    auto span_text = [&](const Span& s) { return text_view.substr(s.byte_start, s.byte_end - s.byte_start); };
    clams::mmif::View view = mmif.NewView();
    const std::string doc_id = doc.long_id();
    // The token ids, kept only when sentences list them.
    std::vector<std::string> token_ids;
    if (want_tokens) {
      view.NewContain(vocab::kToken, {{"document", doc_id}});
      if (targets) token_ids.reserve(r.tokens.size());
      for (const auto& t : r.tokens) {
        auto a = view.NewAnnotation(vocab::kToken, {{"start", t.start}, {"end", t.end}, {"text", span_text(t)}});
        if (targets) token_ids.emplace_back(a.id());
      }
    }
    if (want_sentences) {
      view.NewContain(vocab::kSentence, {{"document", doc_id}});
      for (std::size_t i = 0; i < r.sentences.size(); ++i) {
        const auto& s = r.sentences[i];
        if (targets) {
          json::array ids(mmif.json().storage());  // the document's storage: moved in, not copied
          ids.reserve(r.sentence_tokens[i].second - r.sentence_tokens[i].first);
          for (std::size_t k = r.sentence_tokens[i].first; k < r.sentence_tokens[i].second; ++k) {
            ids.emplace_back(token_ids[k]);
          }
          view.NewAnnotation(vocab::kSentence, {{"targets", std::move(ids)}, {"text", span_text(s)}});
        } else {
          view.NewAnnotation(vocab::kSentence, {{"start", s.start}, {"end", s.end}, {"text", span_text(s)}});
        }
      }
    }
  }
  return clams::Status::Ok();
}

}  // namespace splitter
