"""``jubaconfig``: a cluster's config in ZooKeeper, as Jubatus's tool of the same name.

::

    jubaconfig -c write|read|delete|list [-t TYPE] [-n NAME] [-f FILE] [-z HOST:PORT] [--force]

``-z`` defaults to the ``ZK`` environment variable. Exit status 0 on success, 1 when the
operation fails (the reason on stderr), 2 on a usage error. The work is done by
:mod:`runtime.cluster.zookeeper.config`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from kazoo.client import KazooClient

from runtime.cluster.zookeeper import paths
from runtime.cluster.zookeeper.config import (
    connect,
    delete_config,
    list_configs,
    read_config,
    write_config,
)
from runtime.errors import ConfigError, MembershipError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jubaconfig",
        description="Read and write Jubatus-style cluster configs in ZooKeeper.",
    )
    parser.add_argument("-c", "--cmd", required=True, choices=["write", "read", "delete", "list"])
    parser.add_argument("-t", "--type", default="", help="service type, e.g. classifier")
    parser.add_argument("-n", "--name", default="", help="cluster name")
    parser.add_argument("-f", "--file", default="", help="config file to write ('-': stdin)")
    parser.add_argument(
        "-z",
        "--zookeeper",
        default=os.environ.get("ZK", ""),
        help="ZooKeeper HOST:PORT[,...] (default: $ZK)",
    )
    parser.add_argument("--force", action="store_true", help="change it even if servers run")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for ZK")
    return parser


def main(
    argv: Sequence[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    """``jubaconfig``: returns the exit status (0 ok, 1 failed, 2 usage)."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    usage = _usage_problem(args)
    if usage:
        err.write(f"{parser.prog}: error: {usage}\n")
        return 2
    try:
        text = _read_input(args.file) if args.cmd == "write" else ""
        with connect(args.zookeeper, args.timeout) as zk:
            _run(args, zk, text, out)
    except (ConfigError, MembershipError) as error:
        err.write(f"{parser.prog}: error: {error}\n")
        return 1
    return 0


def _usage_problem(args: Any) -> str:
    if not args.zookeeper:
        return "give ZooKeeper with -z HOST:PORT or the ZK environment variable"
    if args.timeout <= 0:
        return "--timeout must be > 0"
    if args.cmd != "list" and not (args.type and args.name):
        return f"-c {args.cmd} needs -t TYPE and -n NAME"
    if args.cmd == "write" and not args.file:
        return "-c write needs -f FILE"
    for label, value in (("type", args.type), ("name", args.name)):
        if value:
            try:
                paths.check_segment(label, value)
            except ValueError as error:
                return str(error)
    return ""


def _read_input(file: str) -> str:
    try:
        if file == "-":
            return sys.stdin.read()
        with open(file, encoding="utf-8") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read {file}: {error}") from None


def _run(args: Any, zk: KazooClient, text: str, out: TextIO) -> None:
    if args.cmd == "write":
        source = "<stdin>" if args.file == "-" else args.file
        write_config(zk, args.type, args.name, text, force=args.force, source=source)
    elif args.cmd == "read":
        config = read_config(zk, args.type, args.name)
        out.write(config if config.endswith("\n") else config + "\n")
    elif args.cmd == "delete":
        delete_config(zk, args.type, args.name, force=args.force)
    else:
        for (service_type, name), config in list_configs(zk, args.type or None).items():
            out.write(f"{service_type}/{name}:\n")
            out.write(config if config.endswith("\n") else config + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
