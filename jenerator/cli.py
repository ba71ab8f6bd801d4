"""``jenerator -l server|python [-o DIR] [-n NAMESPACE] [-t] FILE.idl``.

Exit status: 0 on success; 1 when the IDL has errors (each printed on stderr as
``PATH:LINE:COL: error: MESSAGE``, no traceback); 2 on usage errors, an unreadable input
or an unwritable output directory. Nothing is written unless everything succeeded.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from jenerator import __version__
from jenerator.errors import IdlError, InputError, OutputError
from jenerator.frontend import load_idl_file
from jenerator.targets import TARGETS, Options, generate
from jenerator.writer import write_all


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jenerator",
        description="Generate Jubako servers, proxies and clients from a MessagePack-IDL file.",
    )
    parser.add_argument(
        "-l",
        "--lang",
        required=True,
        choices=TARGETS,
        help="server: types, client, server main, proxy main; python: a client package",
    )
    parser.add_argument("-o", "--output", default=".", help="output directory (default: .)")
    parser.add_argument(
        "-n",
        "--namespace",
        default=None,
        help="package the generated modules live in and import from",
    )
    parser.add_argument(
        "-t", "--template", action="store_true", help="with -l server, also write NAME_serv.tmpl.py"
    )
    parser.add_argument("--version", action="version", version=f"jenerator {__version__}")
    parser.add_argument("idl", help="the .idl file")
    return parser  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        idl = load_idl_file(args.idl)
        options = Options(Path(args.idl).name, args.namespace or None, args.template)
        write_all(generate(idl, args.lang, options), Path(args.output))
    except IdlError as error:
        for diagnostic in error.diagnostics:
            print(diagnostic, file=sys.stderr)
        return 1
    except (InputError, OutputError) as error:
        print(f"jenerator: error: {error}", file=sys.stderr)
        return 2
    return 0
