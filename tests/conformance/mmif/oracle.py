#!/usr/bin/python3
"""Independent Python oracle for the MMIF conformance tests (mmif_conformance_test.cc).

Runs under Debian's /usr/bin/python3 with python3-jsonschema (Draft4Validator). Subcommands:

  schema OUTDIR DATADIR SCHEMA [--mutants N] [--seed S]
      Validates every .json/.mmif file under DATADIR and N deterministic mutants of the
      samples against SCHEMA with jsonschema. Writes OUTDIR/corpus.tsv (path, verdict, reason),
      OUTDIR/mutants.jsonl (one mutant per line) and OUTDIR/mutants.tsv (index, verdict, the
      mutations applied, reason).
  compare LIST
      LIST has lines "original<TAB>rewritten". For each, prints "ok" or "DIFF <where>":
      the two files must hold the same JSON value with the same key order and the same
      number kinds (an int stays an int, 2.0 stays a float).
  pylayout FILE...
      Prints "FILE<TAB>ascii|utf8<TAB>newline|none" for each file that Python's
      json.dumps(indent=2) reproduces byte for byte (optionally plus a final newline).
  floats OUT N
      Writes N deterministic doubles (random bit patterns, decimal edge cases) as a JSON
      array in mmif-python's byte format: json.dumps(list).
"""
import copy
import json
import math
import os
import random
import struct
import sys

import jsonschema


# --- schema verdicts -----------------------------------------------------------------------

def load_validator(schema_path):
    with open(schema_path, encoding="utf-8") as f:
        schema = json.load(f)
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(schema)


def verdict(validator, doc):
    error = jsonschema.exceptions.best_match(validator.iter_errors(doc))
    if error is None:
        return "valid", ""
    where = "/".join(str(p) for p in error.absolute_path)
    return "invalid", f"{where}: {error.message}".replace("\t", " ").replace("\n", " ")[:300]


def corpus_files(datadir):
    out = []
    for root, _, files in os.walk(datadir):
        for name in files:
            if name.endswith((".json", ".mmif")):
                out.append(os.path.join(root, name))
    return sorted(out)


# Values of every JSON kind, with strings that sit on the schema's boundaries.
VALUES = [None, True, False, 0, -1, 7, 1.5, 1e-05, "", "x", "abcdef", "abcdefg", "http://",
          "http:/", "https://x.org/T", "\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9",
          "\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9", "\n", [], ["a"], ["a", "b"], [1], [["a"]],
          [None], {}, {"a": "b"}, {"message": "m"}, {"message": ""}, {"id": "x"},
          {"@type": "T", "properties": {"id": "x"}}, {"http://x.org/T": {}}]

ROOT_KEYS = ["metadata", "documents", "views"]
VIEW_KEYS = ["id", "metadata", "annotations"]
ANN_KEYS = ["@type", "properties"]
META_KEYS = ["app", "timestamp", "contains", "error", "warnings", "parameters",
             "appConfiguration", "document", "x"]
EXTRA_KEYS = ["x", "id", "", "\n", "@id", "@type", "properties", "metadata", "mime", "text",
              "annotations", "views", "contains"]
BAD_CONTAINS_KEYS = ["TimeFrame", "ftp://x.org/T", "http:/x", "HTTP://x.org/T", " http://x",
                     "", "\n", "mmif.clams.ai/vocabulary/TimeFrame/v6", "urn:x"]
GOOD_CONTAINS_KEYS = ["http://", "https://", "http://x.org/T", "https://schema.org/Clip",
                      "http://mmif.clams.ai/vocabulary/TimeFrame/v6"]
PARAM_KEYS = ["p", "", "\n", "\n\n", " ", "\na", "a\n"]
PARAM_VALUES = ["1", "", ["a"], [], ["a", "b"], 1, True, None, {}, ["a", 1], [["a"]], [None]]


def other_value(rng, current):
    for _ in range(10):
        v = copy.deepcopy(rng.choice(VALUES))
        if type(v) is not type(current) or v != current:
            return v
    return None


def views_of(doc):
    v = doc.get("views") if isinstance(doc, dict) else None
    return [x for x in v if isinstance(x, dict)] if isinstance(v, list) else []


def metadata_of(rng, doc):
    vs = [v for v in views_of(doc) if isinstance(v.get("metadata"), dict)]
    return rng.choice(vs)["metadata"] if vs else None


def annotations_of(doc):
    out = []
    if isinstance(doc, dict) and isinstance(doc.get("documents"), list):
        out += [d for d in doc["documents"] if isinstance(d, dict)]
    for v in views_of(doc):
        if isinstance(v.get("annotations"), list):
            out += [a for a in v["annotations"] if isinstance(a, dict)]
    return out


def all_nodes(value, parent=None, key=None, out=None):
    """(parent, key, value) for every node below the root."""
    if out is None:
        out = []
    if isinstance(value, dict):
        for k, v in value.items():
            out.append((value, k, v))
            all_nodes(v, value, k, out)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.append((value, i, v))
            all_nodes(v, value, i, out)
    return out


def op_generic(rng, doc):
    nodes = all_nodes(doc)
    if not nodes:
        return "generic: nothing"
    parent, key, value = rng.choice(nodes)
    kind = rng.choice(["delete", "replace", "wrap", "empty", "unwrap"])
    if kind == "delete":
        del parent[key]
        return f"generic: delete {key!r}"
    if kind == "wrap":
        parent[key] = [value]
        return f"generic: wrap {key!r} in a list"
    if kind == "empty":
        parent[key] = type(value)() if isinstance(value, (dict, list, str)) else ""
        return f"generic: empty {key!r}"
    if kind == "unwrap" and isinstance(value, list) and value:
        parent[key] = value[0]
        return f"generic: unwrap {key!r}"
    parent[key] = other_value(rng, value)
    return f"generic: replace {key!r}"


def op_root(rng, doc):
    choice = rng.randrange(4)
    if choice == 0:
        k = rng.choice(ROOT_KEYS)
        doc.pop(k, None)
        return f"root: delete {k}"
    if choice == 1:
        k = rng.choice(EXTRA_KEYS)
        doc[k] = other_value(rng, None)
        return f"root: add {k!r}"
    k = rng.choice(ROOT_KEYS)
    doc[k] = other_value(rng, doc.get(k))
    return f"root: {k} = other value"


def op_mmif_metadata(rng, doc):
    meta = doc.get("metadata")
    if not isinstance(meta, dict):
        doc["metadata"] = {"mmif": "http://mmif.clams.ai/1.1.0"}
        return "metadata: restore"
    choice = rng.randrange(4)
    if choice == 0:
        meta.pop("mmif", None)
        return "metadata: delete mmif"
    if choice == 1:
        meta["mmif"] = rng.choice(["http:/", "http://", "1.1.0", "\u00e9" * 6, "\u00e9" * 7, "",
                                   "http://mmif.clams.ai/0.4.2", "x" * 7])
        return f"metadata: mmif = {meta['mmif']!r}"
    if choice == 2:
        meta[rng.choice(EXTRA_KEYS)] = other_value(rng, None)
        return "metadata: extra key"
    meta["mmif"] = other_value(rng, meta.get("mmif"))
    return "metadata: mmif = other value"


def op_annotation(rng, doc):
    anns = annotations_of(doc)
    if not anns:
        return op_generic(rng, doc)
    a = rng.choice(anns)
    choice = rng.randrange(7)
    if choice == 0:
        k = rng.choice(ANN_KEYS)
        a.pop(k, None)
        return f"annotation: delete {k}"
    if choice == 1:
        a[rng.choice(EXTRA_KEYS)] = other_value(rng, None)
        return "annotation: extra key"
    if choice == 2:
        a["@type"] = rng.choice(["", "T", 5, None, ["T"], "\u00e9"])
        return f"annotation: @type = {a['@type']!r}"
    props = a.get("properties")
    if not isinstance(props, dict):
        a["properties"] = other_value(rng, props)
        return "annotation: properties = other value"
    if choice == 3:
        props.pop("id", None)
        return "annotation: delete id"
    if choice == 4:
        props["id"] = rng.choice(["", 5, None, ["x"], "\u00e9", " "])
        return f"annotation: id = {props['id']!r}"
    if choice == 5:
        props[rng.choice(EXTRA_KEYS)] = other_value(rng, None)
        return "annotation: extra property"
    a["properties"] = other_value(rng, props)
    return "annotation: properties = other value"


def op_view(rng, doc):
    vs = views_of(doc)
    if not vs:
        return op_root(rng, doc)
    v = rng.choice(vs)
    choice = rng.randrange(5)
    if choice == 0:
        k = rng.choice(VIEW_KEYS)
        v.pop(k, None)
        return f"view: delete {k}"
    if choice == 1:
        v[rng.choice(EXTRA_KEYS)] = other_value(rng, None)
        return "view: extra key"
    if choice == 2:
        v["id"] = rng.choice(["", 1, None, "v_9", ["v1"]])
        return f"view: id = {v['id']!r}"
    k = rng.choice(VIEW_KEYS)
    v[k] = other_value(rng, v.get(k))
    return f"view: {k} = other value"


def op_view_metadata(rng, doc):
    meta = metadata_of(rng, doc)
    if meta is None:
        return op_view(rng, doc)
    choice = rng.randrange(12)
    if choice == 0:
        k = rng.choice(META_KEYS)
        meta.pop(k, None)
        return f"view metadata: delete {k}"
    if choice == 1:
        meta["error"] = rng.choice([{"message": "m"}, {"message": "m", "stackTrace": "t"},
                                    {"message": ""}, {}, {"stackTrace": "t"}, {"message": 1},
                                    {"message": "m", "stackTrace": 1}, "boom", None,
                                    {"message": "\u00e9"}])
        return f"view metadata: error = {meta['error']!r}"
    if choice == 2:
        meta["warnings"] = rng.choice([[], ["w"], ["w", 1], "w", None, [["w"]], {}])
        return f"view metadata: warnings = {meta['warnings']!r}"
    if choice == 3:
        meta["contains"] = rng.choice([{}, [], "x", None,
                                       {"http://mmif.clams.ai/vocabulary/TimeFrame/v6": {}}])
        return "view metadata: contains replaced"
    if choice == 4:
        c = meta.get("contains")
        if not isinstance(c, dict):
            c = meta["contains"] = {}
        k = rng.choice(BAD_CONTAINS_KEYS)
        c[k] = {}
        return f"view metadata: contains bad key {k!r}"
    if choice == 5:
        c = meta.get("contains")
        if not isinstance(c, dict):
            c = meta["contains"] = {}
        k = rng.choice(GOOD_CONTAINS_KEYS)
        c[k] = copy.deepcopy(rng.choice([{}, "x", [], None, 1, {"document": 5}]))
        return f"view metadata: contains[{k!r}] = {c[k]!r}"
    if choice == 6:
        meta["app"] = rng.choice(["", "x", "http:/", "http://", "\u00e9" * 6, "\u00e9" * 7, 5,
                                  None])
        return f"view metadata: app = {meta['app']!r}"
    if choice == 7:
        meta["timestamp"] = rng.choice(["", "not a date", 5, None, []])
        return f"view metadata: timestamp = {meta['timestamp']!r}"
    if choice == 8:
        p = meta.get("parameters")
        if not isinstance(p, dict) or rng.random() < 0.2:
            p = meta["parameters"] = {}
        k = rng.choice(PARAM_KEYS)
        p[k] = copy.deepcopy(rng.choice(PARAM_VALUES))
        return f"view metadata: parameters[{k!r}] = {p[k]!r}"
    if choice == 9:
        meta["parameters"] = rng.choice([[], "x", None, 1])
        return "view metadata: parameters = other value"
    if choice == 10:
        meta["appConfiguration"] = rng.choice([{}, {"a": [1, None]}, [], "x", None, 1])
        return f"view metadata: appConfiguration = {meta['appConfiguration']!r}"
    meta[rng.choice(["document", "x", "appProfiling"])] = other_value(rng, None)
    return "view metadata: extra key"


OPS = [(op_generic, 3), (op_root, 1), (op_mmif_metadata, 1), (op_annotation, 3), (op_view, 2),
       (op_view_metadata, 6)]


def shrink(doc, per_view):
    """A small copy: at most `per_view` annotations per view."""
    small = copy.deepcopy(doc)
    for v in views_of(small):
        if isinstance(v.get("annotations"), list):
            v["annotations"] = v["annotations"][:per_view]
    return small


def make_bases(datadir):
    bases = []
    for sub in ("samples", "invalid"):
        for path in corpus_files(os.path.join(datadir, sub)):
            with open(path, encoding="utf-8") as f:
                doc = json.load(f)
            bases.append(shrink(doc, 3))
            bases.append(shrink(doc, 1))
    return bases


def cmd_schema(args):
    outdir, datadir, schema_path = args[0], args[1], args[2]
    count = 3000
    seed = 20260105
    rest = args[3:]
    while rest:
        if rest[0] == "--mutants":
            count = int(rest[1])
        elif rest[0] == "--seed":
            seed = int(rest[1])
        rest = rest[2:]
    validator = load_validator(schema_path)
    with open(os.path.join(outdir, "corpus.tsv"), "w", encoding="utf-8") as out:
        for path in corpus_files(datadir):
            with open(path, encoding="utf-8") as f:
                doc = json.load(f)
            v, why = verdict(validator, doc)
            out.write(f"{path}\t{v}\t{why}\n")
    rng = random.Random(seed)
    bases = make_bases(datadir)
    ops = [op for op, weight in OPS for _ in range(weight)]
    with open(os.path.join(outdir, "mutants.jsonl"), "w", encoding="utf-8") as lines, \
            open(os.path.join(outdir, "mutants.tsv"), "w", encoding="utf-8") as out:
        for i in range(count):
            doc = copy.deepcopy(rng.choice(bases))
            done = [rng.choice(ops)(rng, doc) for _ in range(rng.choice([1, 1, 1, 2, 3]))]
            v, why = verdict(validator, doc)
            lines.write(json.dumps(doc) + "\n")
            what = "; ".join(done).replace("\t", " ").replace("\n", "\\n")
            out.write(f"{i}\t{v}\t{what}\t{why}\n")
    return 0


# --- ordered, kind-exact comparison ------------------------------------------------------------

def load_pairs(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f, object_pairs_hook=lambda pairs: ("object", pairs))


def same(a, b, where="$"):
    """None if equal (order and number kinds included), else where they differ."""
    if type(a) is not type(b):
        return f"{where}: {type(a).__name__} vs {type(b).__name__}"
    if isinstance(a, tuple):  # an object: ("object", [(key, value), ...])
        ka = [k for k, _ in a[1]]
        kb = [k for k, _ in b[1]]
        if ka != kb:
            return f"{where}: keys {ka[:8]} vs {kb[:8]}"
        for (k, va), (_, vb) in zip(a[1], b[1]):
            d = same(va, vb, f"{where}.{k}")
            if d:
                return d
        return None
    if isinstance(a, list):
        if len(a) != len(b):
            return f"{where}: {len(a)} vs {len(b)} items"
        for i, (x, y) in enumerate(zip(a, b)):
            d = same(x, y, f"{where}[{i}]")
            if d:
                return d
        return None
    if isinstance(a, float):
        if a == b and math.copysign(1, a) == math.copysign(1, b):
            return None
        return f"{where}: {a!r} vs {b!r}"
    return None if a == b else f"{where}: {a!r} vs {b!r}"


def cmd_compare(args):
    with open(args[0], encoding="utf-8") as f:
        for line in f:
            original, rewritten = line.rstrip("\n").split("\t")
            d = same(load_pairs(original), load_pairs(rewritten))
            print("ok" if d is None else f"DIFF {d}")
    return 0


def cmd_pylayout(args):
    for path in args:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        doc = json.loads(text)
        for mode, ascii_only in (("ascii", True), ("utf8", False)):
            out = json.dumps(doc, indent=2, ensure_ascii=ascii_only)
            if text == out or text == out + "\n":
                print(f"{path}\t{mode}\t{'newline' if text != out else 'none'}")
                break
    return 0


# --- doubles -------------------------------------------------------------------------------------

def cmd_floats(args):
    out, count = args[0], int(args[1])
    rng = random.Random(7)
    values = [0.0, -0.0, 1.0, 2.0, 0.1, 0.95, 1e-05, 1e-04, 0.0001, 0.00012, 1e16, 1e15,
              9999999999999998.0, 1e22, 1e-7, 5e-324, 2.2250738585072014e-308,
              1.7976931348623157e308, 100000.0, 123456789.123, 1 / 3, 2 / 3, 0.1 + 0.2,
              1.3927926388013963e-143, 5.409760742964738e+124]
    while len(values) < count:
        r = rng.random()
        if r < 0.5:
            bits = rng.getrandbits(64)
            d = struct.unpack("<d", struct.pack("<Q", bits))[0]
            if math.isfinite(d):
                values.append(d)
        elif r < 0.8:
            values.append(round(rng.uniform(-1e6, 1e6), rng.randrange(0, 8)))
        else:
            values.append(rng.uniform(0, 1) * 10.0 ** rng.randrange(-30, 30))
    with open(out, "w", encoding="ascii") as f:
        f.write(json.dumps(values))
    return 0


def main(argv):
    commands = {"schema": cmd_schema, "compare": cmd_compare, "pylayout": cmd_pylayout,
                "floats": cmd_floats}
    if len(argv) < 2 or argv[1] not in commands:
        print(__doc__, file=sys.stderr)
        return 2
    return commands[argv[1]](argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
