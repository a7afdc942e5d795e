#!/usr/bin/python3
"""The Python baseline for bench/http: a minimal Flask CLAMS app doing the sentence-splitter's job.

Per POST / (or PUT /) it does what a CLAMS app built on the Python SDK does for this job, with
plain `json` and `re` (no mmif-python, no jsonschema, no Flask-RESTful), written to be
reasonably fast rather than a strawman:
  * reads the raw body and parses it with json.loads (a body that is not JSON: 500 + the SDK's
    "Invalid input data" text, like clams-python);
  * reads the query string into name -> list of strings (request.args.to_dict(flat=False));
  * for every TextDocument in `documents`: splits its text into sentences with a regex
    (boundary = sentence-final punctuation + space + a capital/digit/quote, not after a known
    abbreviation or an initial) and each sentence into tokens with a regex; offsets are Python
    string indices = Unicode code points, as MMIF wants;
  * appends one new view (next free `v_N` id) with a Token and a Sentence annotation per span
    (ids `v_N:to_K` / `v_N:se_K`, start, end, text) and the signing metadata the SDK writes:
    appTags, appProfiling.runningTime (timedelta text), timestamp (isoformat), app, contains,
    parameters (raw query values, when any) and appConfiguration (the refined defaults);
  * serializes the document with json.dumps (compact, the same byte layout clams-cpp returns).
GET / answers the app metadata (with the four universal parameters, like the SDK), so
`clams serve` can read it.

Run under gunicorn (bench/http/run.sh does):
    gunicorn -w 2 -b 127.0.0.1:PORT --chdir bench/http flask_app:app               (sync)
    gunicorn -w 2 -k gthread --threads 2 -b 127.0.0.1:PORT --chdir bench/http flask_app:app
or standalone, one process (what `clams serve -- python3 flask_app.py --port {port}` runs):
    python3 flask_app.py --port PORT [--host 127.0.0.1] [--server single|threaded]
Standalone it uses Werkzeug's WSGI server (the one Flask's app.run() uses):
  --server single (default): one thread, one connection at a time, HTTP/1.0 (the connection
      is closed after each answer). Requests are served strictly one at a time; a client that
      keeps a connection open cannot block the next one.
  --server threaded: Flask's app.run() default (a thread per connection, HTTP/1.1 keep-alive).
Werkzeug's per-request log lines are switched off (gunicorn logs nothing per request by
default either).
"""
import argparse
import datetime
import json
import logging
import re
import sys

from flask import Flask, Response, request

APP_ID = "http://apps.clams.ai/sentence-splitter-flask/unresolvable"
VOCAB = "http://mmif.clams.ai/vocabulary/"
TEXT_DOCUMENT = VOCAB + "TextDocument/v1"
SENTENCE = VOCAB + "Sentence/v1"
TOKEN = VOCAB + "Token/v1"
INVALID_INPUT = "Invalid input data. See below for validation error.\n\n"

# A period after one of these (or after a single capital: an initial) does not end a sentence.
_ABBREVIATIONS = ["Dr", "Mr", "Mrs", "Ms", "Prof", "Sr", "Jr", "St", "Gen", "Rep", "Sen", "Gov",
                  "Capt", "Lt", "Col", "Sgt", "Rev", "Hon", "Mt", "vs", "e.g", "i.e", "cf", "No",
                  "Fig", "approx", "Dept", "Vol", "pp", "al", "etc"]
# Python's lookbehinds must be fixed-width: one per abbreviation.
_NOT_AFTER = "".join(r"(?<!\b%s\.)" % re.escape(a) for a in _ABBREVIATIONS) + r"(?<!\b[A-Z]\.)"
# A sentence boundary: the space after ., ! or ? (and closing quotes/brackets) before a capital,
# a digit or an opening quote/bracket; a blank line always ends a sentence.
SENTENCE_BOUNDARY = re.compile(
    r"(?:(?<=[.!?])|(?<=[.!?][\"')\]]))" + _NOT_AFTER + r"\s+(?=[\"'(\[]?[A-Z0-9])|\n\s*\n\s*")
# A token: an abbreviation or initial with its period, a word (letters/digits joined by ' - .
# , : between word characters, e.g. "don't", "3.5", "10:30"), an ellipsis, or one other mark.
TOKEN_RE = re.compile(
    r"(?:%s|[A-Z])\.(?!\w)" % "|".join(re.escape(a) for a in _ABBREVIATIONS)
    + r"|\w+(?:['\u2019\-.,:]\w+)*|\.\.\.+|\S")

UNIVERSAL_PARAMETERS = [
    {"name": "pretty", "description": "The JSON body of the HTTP response will be re-formatted with "
     "2-space indentation", "type": "boolean", "default": False, "multivalued": False},
    {"name": "runningTime", "description": "The running time of the app will be recorded in the "
     "view metadata", "type": "boolean", "default": True, "multivalued": False},
    {"name": "hwFetch", "description": "The hardware information (architecture, GPU and vRAM) will "
     "be recorded in the view metadata", "type": "boolean", "default": False, "multivalued": False},
    {"name": "tfSamplingMode", "description": "Sampling mode for TimeFrame annotations.",
     "type": "string", "choices": ["representatives", "single", "all"],
     "default": "representatives", "multivalued": False},
]
METADATA = {
    "name": "Sentence Splitter (Flask baseline)",
    "description": "Regex sentence and token splitter: the Python baseline of clams-cpp's bench/http.",
    "app_version": "unresolvable",
    "mmif_version": "1.1.0",
    "app_license": "Apache-2.0",
    "identifier": APP_ID,
    "url": "https://github.com/clams-cpp/clams-cpp/tree/main/bench/http",
    "input": [{"@type": TEXT_DOCUMENT, "required": True}],
    "output": [{"@type": SENTENCE}, {"@type": TOKEN}],
    "parameters": UNIVERSAL_PARAMETERS,
    "app_tags": ["text"],
}
METADATA_JSON = json.dumps(METADATA, separators=(",", ":"))
CONFIGURATION = {"pretty": False, "runningTime": True, "hwFetch": False,
                 "tfSamplingMode": "representatives"}
FALSY = ("False", "false", "F", "f", "0")


def split(text):
    """Sentences and tokens of `text`: two lists of (start, end) in code points."""
    sentences, tokens = [], []
    start = 0
    for boundary in SENTENCE_BOUNDARY.finditer(text):
        if boundary.start() > start:
            sentences.append((start, boundary.start()))
        start = boundary.end()
    end = len(text.rstrip())
    if end > start:
        sentences.append((start, end))
    for s, e in sentences:
        tokens.extend(m.span() for m in TOKEN_RE.finditer(text, s, e))
    return sentences, tokens


def annotate(mmif, raw):
    """Adds the splitter's view to `mmif` (a parsed dict); `raw` is the query (name -> list)."""
    t0 = datetime.datetime.now()
    config = dict(CONFIGURATION)
    for name in ("pretty", "runningTime", "hwFetch"):
        if raw.get(name):
            config[name] = raw[name][0] not in FALSY
    views = mmif.setdefault("views", [])
    taken = {v.get("id") for v in views}
    n = len(views)
    while "v_%d" % n in taken:
        n += 1
    vid = "v_%d" % n
    annotations = []
    contains = {}
    n_tokens = n_sentences = 0
    for doc in mmif.get("documents", ()):
        if doc.get("@type") != TEXT_DOCUMENT:
            continue
        props = doc["properties"]
        text = props.get("text", {}).get("@value", "")
        doc_id = props["id"]
        sentences, tokens = split(text)
        contains[TOKEN] = {"document": doc_id}
        contains[SENTENCE] = {"document": doc_id}
        for s, e in tokens:
            n_tokens += 1
            annotations.append({"@type": TOKEN, "properties": {
                "id": "%s:to_%d" % (vid, n_tokens), "start": s, "end": e, "text": text[s:e]}})
        for s, e in sentences:
            n_sentences += 1
            annotations.append({"@type": SENTENCE, "properties": {
                "id": "%s:se_%d" % (vid, n_sentences), "start": s, "end": e, "text": text[s:e]}})
    metadata = {"appTags": ["text"]}
    run_id = datetime.datetime.now()
    if config["runningTime"]:
        metadata["appProfiling"] = {"runningTime": str(run_id - t0)}
    metadata["timestamp"] = run_id.isoformat()
    metadata["app"] = APP_ID
    metadata["contains"] = contains
    if raw:
        metadata["parameters"] = {k: v[0] for k, v in raw.items() if v}
    metadata["appConfiguration"] = config
    views.append({"id": vid, "metadata": metadata, "annotations": annotations})
    return mmif, config["pretty"]


app = Flask("SentenceSplitterFlask")


@app.route("/", methods=["GET"])
def get_metadata():
    return Response(METADATA_JSON, mimetype="application/json")


@app.route("/", methods=["POST", "PUT"])
def post_annotate():
    try:
        mmif = json.loads(request.get_data())
    except ValueError as e:
        return Response(INVALID_INPUT + str(e), status=500, mimetype="text/plain")
    if not isinstance(mmif, dict):
        return Response(INVALID_INPUT + "%r is not of type 'object'" % (mmif,), status=500,
                        mimetype="text/plain")
    out, pretty = annotate(mmif, request.args.to_dict(flat=False))
    body = json.dumps(out, indent=2) if pretty else json.dumps(out, separators=(",", ":"))
    return Response(body, mimetype="application/json")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=5000)
    ap.add_argument("--server", choices=("single", "threaded"), default="single",
                    help="single: one thread, HTTP/1.0, one request at a time (default); "
                         "threaded: a thread per connection, HTTP/1.1 (Flask's app.run())")
    a = ap.parse_args()
    from werkzeug.serving import run_simple
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    run_simple(a.host, a.port, app, threaded=a.server == "threaded", use_reloader=False,
               use_debugger=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
