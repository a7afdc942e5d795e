#!/usr/bin/python3
"""Validates MMIF files against the official MMIF JSON schema with an
independent implementation (Debian's python3-jsonschema, Draft 4).

usage: validate_mmif.py SCHEMA FILE_OR_DIR...
Prints one line per invalid file and exits 1 if any is invalid; prints the
number of files checked.
"""
import json
import os
import sys

import jsonschema


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    with open(sys.argv[1], encoding="utf-8") as f:
        schema = json.load(f)
    validator = jsonschema.Draft4Validator(schema)
    files = []
    for arg in sys.argv[2:]:
        if os.path.isdir(arg):
            for name in sorted(os.listdir(arg)):
                if name.endswith(".json") or name.endswith(".mmif"):
                    files.append(os.path.join(arg, name))
        else:
            files.append(arg)
    bad = 0
    for path in files:
        try:
            with open(path, encoding="utf-8") as f:
                doc = json.load(f)
        except ValueError as e:
            print(f"{path}: not JSON: {e}")
            bad += 1
            continue
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
        if errors:
            bad += 1
            first = errors[0]
            where = "/".join(str(p) for p in first.path)
            print(f"{path}: {where}: {first.message}")
    print(f"checked {len(files)} file(s), {bad} invalid")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
