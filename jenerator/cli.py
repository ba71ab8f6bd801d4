"""``jenerator -l server|python|http [-o DIR] [-n NAMESPACE] [-t] FILE.idl``.

Exit status: 0 on success, silently; 1 when the IDL has errors (each printed on stderr
as ``PATH:LINE:COL: error: MESSAGE``, no traceback); 2 on a usage error, an unreadable
or non-UTF-8 input, or an output directory that cannot be written (one line
``jenerator: error: ...``). Nothing is written unless everything succeeded.

This module only wires argparse to the front end, the targets and the writer; it holds
no logic of its own.
"""

from __future__ import annotations

import argparse
import keyword
import sys
from collections.abc import Sequence
from pathlib import Path

from jenerator import __version__
from jenerator.errors import IdlError, InputError, OutputError
from jenerator.frontend import load_idl_file
from jenerator.targets import TARGETS, Options, generate
from jenerator.writer import write_all

PROG = "jenerator"


def namespace_argument(text: str) -> str:
    """``-n``: a dotted Python package path such as ``acme.clients``."""
    parts = text.split(".")
    if not all(part.isidentifier() and not keyword.iskeyword(part) for part in parts):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a dotted Python package name (e.g. acme.clients)"
        )
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Generate Jubako servers, proxies and clients from a MessagePack-IDL file.",
    )
    parser.add_argument(
        "-l",
        "--lang",
        required=True,
        choices=TARGETS,
        help="server: types, client, server main and proxy main; python: a client package; "
        "http: NAME_http.py, a FastAPI gateway to a server or proxy",
    )
    parser.add_argument("-o", "--output", default=".", help="output directory (default: .)")
    parser.add_argument(
        "-n",
        "--namespace",
        type=namespace_argument,
        default=None,
        help="package the generated modules live in and import from",
    )
    parser.add_argument(
        "-t",
        "--template",
        action="store_true",
        help="with -l server, also write NAME_serv.tmpl.py to start the service from",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument("idl", metavar="FILE.idl", help="the MessagePack-IDL file")
    return parser  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command with ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # --help, --version and usage errors (already printed)
        return exit_.code if isinstance(exit_.code, int) else 2
    try:
        idl = load_idl_file(args.idl)
        options = Options(Path(args.idl).name, args.namespace, args.template)
        write_all(generate(idl, args.lang, options), Path(args.output))
    except IdlError as error:
        for diagnostic in error.diagnostics:
            print(diagnostic, file=sys.stderr)
        return 1
    except (InputError, OutputError) as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    return 0
