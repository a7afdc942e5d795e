#!/usr/bin/env python3
"""Issue 10.1: no `.value()` on a StatusOr that can fail on a request path.

A failed StatusOr's value() aborts the process: on the path a request takes
through the front or a worker, that is a remote crash. This check scans the
request-path sources and fails on
  * `.value()` on a call's result (`F(...).value()`): never checked first;
  * `x.value()` / `std::move(x).value()` / `*x` style uses are allowed only
    when `x.ok()` is tested earlier in the same file (identifiers never
    tested with ok() are not StatusOr, e.g. a JSON key_value_pair's value()).
Usage: statusor_value_check.py SOURCE_DIR
"""
import re
import sys
from pathlib import Path

REQUEST_PATH = [
    "src/server/front.cc", "src/server/scheduler.cc", "src/server/intake.cc", "src/server/wire.cc",
    "src/server/answers.cc", "src/server/decorate.cc", "src/server/outcome.cc", "src/server/observe.cc",
    "src/server/wait_queue.cc", "src/server/worker_registry.cc", "src/server/worker_main.cc",
    "src/server/process_executor.cc", "src/server/in_process_executor.cc", "src/server/http_server.cc",
    "src/app/runner.cc", "src/app/params.cc",
]
VALUE = re.compile(r"\.\s*value\s*\(\s*\)")
IDENT_VALUE = re.compile(r"(?:std::move\(\s*(\w+)\s*\)|\b(\w+))\s*\.\s*value\s*\(\s*\)")


def called_function(line, close):
    """For `...)` ending at index `close`, the name before its `(` ("" if none)."""
    depth = 0
    for i in range(close, -1, -1):
        if line[i] == ")":
            depth += 1
        elif line[i] == "(":
            depth -= 1
            if depth == 0:
                m = re.search(r"([\w:]+)\s*$", line[:i])
                return m.group(1) if m else ""
    return ""


def strip_comments(line):
    return line.split("//", 1)[0]


def check(root):
    problems = []
    for rel in REQUEST_PATH:
        path = root / rel
        text = path.read_text()
        lines = text.splitlines()
        for number, raw in enumerate(lines, 1):
            line = strip_comments(raw)
            for m in VALUE.finditer(line):
                before = line[: m.start()].rstrip()
                if not before.endswith(")"):
                    continue
                function = called_function(before, len(before) - 1)
                if function in ("std::move", "move", ""):
                    continue
                problems.append(f"{rel}:{number}: .value() on the result of {function}(...)")
            for m in IDENT_VALUE.finditer(line):
                name = m.group(1) or m.group(2)
                before = "\n".join(strip_comments(l) for l in lines[: number - 1]) + "\n" + line[: m.start()]
                tested = re.search(r"\b" + re.escape(name) + r"\s*(?:\.|->)\s*ok\s*\(", before)
                anywhere = re.search(r"\b" + re.escape(name) + r"\s*(?:\.|->)\s*ok\s*\(", text)
                if anywhere and not tested:
                    problems.append(f"{rel}:{number}: {name}.value() before {name}.ok() is tested")
    return problems


def main():
    root = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    problems = check(root)
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} unchecked StatusOr value() on the request path (issue 10.1)")
        return 1
    print(f"ok: {len(REQUEST_PATH)} request-path files, no unchecked StatusOr value()")
    return 0


if __name__ == "__main__":
    sys.exit(main())
