"""Regenerate (or check) every checked-in output listed in ``generated/manifest.toml``.

``python -m jenerator.regen`` rewrites the outputs; ``python -m jenerator.regen --check``
writes nothing and exits 1 listing every file that differs from a fresh run of jenerator,
is missing, or is stale (in an output folder but produced by no row). The test suite runs
the check, so ``generated/`` and ``examples/kvs/`` always equal what jenerator emits.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from jenerator.frontend import load_idl_file
from jenerator.targets import Options, generate
from jenerator.writer import OutputFile, write_all

REPO = Path(__file__).resolve().parent.parent
MANIFEST = REPO / "generated" / "manifest.toml"

#: Files in output folders that no row produces but that belong there.
_KEPT = {"README.md", "manifest.toml"}


@dataclass(frozen=True)
class Row:
    """One jenerator run: ``jenerator -l LANG -o OUT [-n NS] [-t] IDL``."""

    idl: str
    lang: str
    out: str
    namespace: str | None
    template: bool

    @property
    def command(self) -> str:
        parts = ["jenerator", "-l", self.lang, "-o", self.out]
        if self.namespace:
            parts += ["-n", self.namespace]
        if self.template:
            parts.append("-t")
        return " ".join([*parts, self.idl])


def read_manifest(path: Path = MANIFEST) -> list[Row]:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return [
        Row(
            idl=entry["idl"],
            lang=entry["lang"],
            out=entry["out"],
            namespace=entry.get("namespace") or None,
            template=bool(entry.get("template", False)),
        )
        for entry in data["run"]
    ]


def render_row(row: Row, repo: Path = REPO) -> list[OutputFile]:
    """The files ``row`` produces, in memory."""
    idl_path = repo / row.idl
    idl = load_idl_file(str(idl_path))
    options = Options(source_name=idl_path.name, namespace=row.namespace, template=row.template)
    return generate(idl, row.lang, options)


def check(rows: Sequence[Row], repo: Path = REPO) -> list[str]:
    """Every difference between the outputs on disk and a fresh run; empty when equal."""
    problems: list[str] = []
    expected: set[Path] = set()
    for row in rows:
        for output in render_row(row, repo):
            path = repo / row.out / output.relpath
            expected.add(path)
            if not path.is_file():
                problems.append(f"missing: {path.relative_to(repo)} (from `{row.command}`)")
            elif path.read_text(encoding="utf-8") != output.text:
                problems.append(f"differs: {path.relative_to(repo)} (from `{row.command}`)")
    generated_root = repo / "generated"
    for path in sorted(generated_root.rglob("*.py")):
        if path not in expected and "__pycache__" not in path.parts:
            problems.append(f"stale: {path.relative_to(repo)} (no manifest row produces it)")
    return problems


def regenerate(rows: Sequence[Row], repo: Path = REPO) -> None:
    for row in rows:
        write_all(render_row(row, repo), repo / row.out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jenerator.regen", description=__doc__)
    parser.add_argument("--check", action="store_true", help="write nothing; report differences")
    args = parser.parse_args(argv)
    rows = read_manifest()
    if args.check:
        problems = check(rows)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("run `python -m jenerator.regen` and commit the result", file=sys.stderr)
        return 1 if problems else 0
    regenerate(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
