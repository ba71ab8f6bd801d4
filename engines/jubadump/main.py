"""The ``jubadump`` command: ``jubadump -i FILE`` prints the model in a model file as JSON.

As Jubatus's ``jubadump`` 1.1.0 does: the options are ``-i``/``--input`` (required) and
``-?``/``--help``; with no arguments, or with ``--help``, it prints its usage on stderr and
exits 0; a bad option prints the error and the usage and exits 1. A dump goes to stdout
(exit 0); a file it cannot dump prints ``Error: failed to dump "FILE": REASON`` on stderr
and exits 255. Unlike Jubatus's, it verifies the file as ``load`` does (header, lengths,
checksum) before reading the model, and dumps every engine Jubako has
(:data:`engines.jubadump.dumps.EXTENSIONS`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NoReturn

from engines.jubadump.dumps import DumpError, dump
from engines.jubadump.printer import pretty
from runtime.errors import ModelFileError
from runtime.server.persistence import decode_model_file

USAGE = (
    "usage: jubadump --input=string [options] ... \n"
    "options:\n"
    "  -i, --input    Input file (string)\n"
    "  -?, --help     print this message\n"
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{message}\n{USAGE}")
        sys.exit(1)


def _parse(argv: list[str]) -> str | None:
    """The input path, or None when the usage was asked for (printed here)."""
    parser = _Parser(prog="jubadump", add_help=False)
    parser.add_argument("-i", "--input")
    parser.add_argument("-?", "--help", action="store_true")
    args = parser.parse_args(argv)
    if not argv or args.help:
        sys.stderr.write(USAGE)
        return None
    if args.input is None:
        parser.error("option needs value: --input")
    path: str = args.input
    return path


def run(path: str) -> int:
    """Dump ``path`` to stdout; 0, or 255 with Jubatus's error line on stderr."""
    try:
        try:
            data = Path(path).read_bytes()
        except OSError:
            raise DumpError(f"Cannot open: {path}") from None
        try:
            model = decode_model_file(data, service_type=None, user_data_version=None)
        except ModelFileError as error:
            raise DumpError(f"invalid model file structure: {error}") from None
        value = dump(
            model.service_type,
            model.config_json,
            model.payload,
            lambda line: print(line, file=sys.stderr),
        )
        text = pretty(value)
    except (DumpError, ValueError) as error:
        print(f'Error: failed to dump "{path}": {error}', file=sys.stderr)
        return 255
    sys.stdout.write(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    path = _parse(sys.argv[1:] if argv is None else argv)
    if path is None:
        return 0
    return run(path)


if __name__ == "__main__":
    sys.exit(main())
