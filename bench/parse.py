"""IDL front-end benchmark: parse + validate time per IDL, and the whole CLI run.

``python -m bench.parse [--no-write]`` builds the grammar once, then times
``load_idl`` (parse, transform, validate) on every IDL in ``idl/`` (best of 20 runs), a
syntax error (the first one also builds the table of hints), and the wall time of a whole
``jenerator -l server -t`` process on the largest IDL (best of 5). Targets: under 50 ms
per service IDL after the grammar is built; the CLI under 0.5 s.
Rewrites the ``## IDL front end`` section of ``bench/RESULTS.md`` unless ``--no-write``.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.results import replace_section
from bench.rpc import machine_note
from jenerator.errors import IdlError
from jenerator.frontend import load_idl
from jenerator.parser import parse

REPO = Path(__file__).resolve().parent.parent
SECTION = "## IDL front end"


def best_of(runs: int, action: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - started)
    return best


def syntax_error_ms() -> float:
    """Time of one load_idl call that fails with a syntax error, in ms."""
    started = time.perf_counter()
    try:
        load_idl("service s {\n  #@random #@analysis #@pass\n  bool f(0: int a,)\n}\n", "x.idl")
    except IdlError:
        pass
    return (time.perf_counter() - started) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    parse("service s { #@random #@analysis #@pass\n bool f() }", "warm.idl")
    grammar_ms = (time.perf_counter() - started) * 1000
    rows = []
    for path in sorted((REPO / "idl").glob("*.idl")):
        text = path.read_text()
        seconds = best_of(20, functools.partial(load_idl, text, str(path)))
        rows.append((path.name, len(text), seconds * 1000))
        print(f"{path.name:24} {len(text):6} bytes  {seconds * 1000:7.2f} ms", flush=True)
    first_error, later_error = syntax_error_ms(), min(syntax_error_ms() for _ in range(20))
    print(f"syntax error: first {first_error:.2f} ms, later {later_error:.2f} ms")
    largest = max(rows, key=lambda r: r[1])[0]
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "jenerator", "-l", "server", "-t", "-o", out,
                   str(REPO / "idl" / largest)]  # fmt: skip
        cli = best_of(5, lambda: subprocess.run(command, check=True))
    print(f"grammar build {grammar_ms:.0f} ms; whole CLI run on {largest}: {cli * 1000:.0f} ms")
    if not args.no_write:
        lines = [
            SECTION, "",
            f"`python -m bench.parse` on {datetime.date.today()}; {machine_note(with_loop=False)}.",
            f"Grammar built once in {grammar_ms:.0f} ms. Targets: < 50 ms per IDL, CLI < 500 ms.",
            "lark's `cache=True` is not used: the build is a small part of a CLI run, and a",
            "cache file is state that could go stale.",
            "", "| IDL | bytes | parse + validate ms (best of 20) |", "|---|---:|---:|",
            *(f"| {name} | {size} | {ms:.2f} |" for name, size, ms in rows),
            "",
            f"A syntax error: {first_error:.2f} ms the first time (it builds the hint table), "
            f"{later_error:.2f} ms after (best of 20).",
            "",
            f"Whole `jenerator -l server -t` process on {largest}: {cli * 1000:.0f} ms "
            "(best of 5).",
        ]  # fmt: skip
        replace_section(SECTION, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
