"""The bench/http sentence splitter as a CLAMS app shaped like the Python SDK's app template, for
part (3b): `clams serve app.py` (clams-cpp's Python worker adapter) against the same app under
gunicorn (clams_wsgi.py: `Restifier(get_app()).flask_app`, what the SDK's serve_production runs).

It does flask_app.py's work (the same sentence and token regexes) through the ClamsApp API:
_annotate adds a view with Token and Sentence annotations; the SDK signs the view and records
parameters, appConfiguration and runningTime. clams-python is not a Debian package, so it runs on
the SDK's test double (tests/e2e/python_adapter/sdk_double on PYTHONPATH; bench.py sets it).
"""
import argparse
import logging

from clams import ClamsApp, Restifier

from flask_app import SENTENCE, TEXT_DOCUMENT, TOKEN, split

APP_ID = "http://apps.clams.ai/sentence-splitter-clamsapp/unresolvable"


class SentenceSplitter(ClamsApp):

    def __init__(self):
        super().__init__()

    def _appmetadata(self):
        return {
            "name": "Sentence Splitter (ClamsApp baseline)",
            "description": "Regex sentence and token splitter as a Python SDK app: bench/http part (3b).",
            "app_version": "unresolvable",
            "mmif_version": "1.1.0",
            "app_license": "Apache-2.0",
            "identifier": APP_ID,
            "url": "https://github.com/clams-cpp/clams-cpp/tree/main/bench/http",
            "input": [{"@type": TEXT_DOCUMENT, "required": True}],
            "output": [{"@type": SENTENCE}, {"@type": TOKEN}],
            "app_tags": ["text"],
        }

    def _annotate(self, mmif, **parameters):
        view = self.new_view(mmif)
        self.sign_view(view, parameters)
        contains = view["metadata"]["contains"]
        annotations = view["annotations"]
        vid = view["id"]
        n_tokens = n_sentences = 0
        for doc in mmif["documents"]:
            if doc.get("@type") != TEXT_DOCUMENT:
                continue
            text = doc["properties"].get("text", {}).get("@value", "")
            doc_id = doc["properties"]["id"]
            sentences, tokens = split(text)
            contains[TOKEN] = {"document": doc_id}
            contains[SENTENCE] = {"document": doc_id}
            for s, e in tokens:
                n_tokens += 1
                annotations.append({"@type": TOKEN, "properties": {
                    "start": s, "end": e, "text": text[s:e], "id": "%s:to_%d" % (vid, n_tokens)}})
            for s, e in sentences:
                n_sentences += 1
                annotations.append({"@type": SENTENCE, "properties": {
                    "start": s, "end": e, "text": text[s:e], "id": "%s:se_%d" % (vid, n_sentences)}})
        return mmif


def get_app():
    return SentenceSplitter()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", action="store", default="5000", help="set port to listen")
    parser.add_argument("--production", action="store_true", help="run gunicorn server")
    parsed_args = parser.parse_args()
    app = get_app()
    http_app = Restifier(app, port=int(parsed_args.port))
    if parsed_args.production:
        http_app.serve_production()
    else:
        app.logger.setLevel(logging.DEBUG)
        http_app.run()
