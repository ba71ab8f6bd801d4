"""The ``jubako`` command: a local cluster (``cluster up|down|ps``) and ``status``.

Examples::

    jubako cluster up --server examples/kvs/kvs_impl.py --proxy examples/kvs/kvs_proxy.py \\
        --config examples/kvs/config.json --servers 3 --proxies 1 --zookeeper local
    jubako status 127.0.0.1:PORT --name local
    jubako cluster down

Exit status: 0 on success, 1 when the command failed (one line on stderr says why), 2 on
usage errors.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from runtime.errors import JubakoError, RPCError, UnknownMethod
from runtime.rpc.client import Client
from runtime.tools import batch
from runtime.tools.local_cluster import ClusterSpec, ClusterState, down, up
from runtime.tools.status_table import render_json, render_table, text_status, with_states
from runtime.version import __version__

DEFAULT_DIR = ".jubako-cluster"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jubako", description="Run a local Jubako cluster and look at running services."
    )
    parser.add_argument("-v", "--version", action="version", version=f"jubako {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    cluster = commands.add_parser("cluster", help="start, list or stop a local cluster")
    actions = cluster.add_subparsers(dest="action", required=True)
    start = actions.add_parser(
        "up",
        help="start ZooKeeper (optional), servers and proxies; wait until all serve",
        description="Start a cluster of one service on this machine and wait until every "
        "process serves. Pids, addresses and logs are kept in --dir.",
    )
    start.add_argument(
        "--server", required=True, help="server entry: a *_impl.py file or a command"
    )
    start.add_argument("--proxy", required=True, help="proxy entry: a *_proxy.py file or a command")
    start.add_argument("--config", required=True, help="the service's JSON config file")
    start.add_argument("--servers", type=int, default=3, help="number of servers (default 3)")
    start.add_argument("--proxies", type=int, default=1, help="number of proxies (default 1)")
    start.add_argument("--name", default="local", help="cluster name (default local)")
    start.add_argument(
        "--zookeeper",
        default="none",
        help="none: static membership, no ZooKeeper (default); local: start a private "
        "ZooKeeper; HOST:PORT: use a running one",
    )
    start.add_argument(
        "--server-arg",
        action="append",
        default=[],
        dest="server_args",
        help="an extra server flag, e.g. --server-arg=--interval_sec=5 (repeatable)",
    )
    start.add_argument("--timeout", type=float, default=30.0, help="seconds to wait per process")
    _dir(start)
    stop = actions.add_parser(
        "down", help="stop every process of the cluster", description="Stop proxies, "
        "servers and ZooKeeper (SIGTERM, then SIGKILL after --timeout); logs stay."
    )  # fmt: skip
    stop.add_argument("--timeout", type=float, default=10.0, help="seconds before SIGKILL")
    _dir(stop)
    _dir(actions.add_parser("ps", help="list the cluster's processes and whether they run"))

    status = commands.add_parser(
        "status",
        help="show get_status (and get_proxy_status) of a server or proxy as a table",
        description="Call get_status on HOST:PORT (a server, or a proxy: then every server "
        "of the cluster) and, for a proxy, get_proxy_status.",
    )
    status.add_argument("address", help="HOST:PORT of a server or proxy")
    status.add_argument("--name", default="", help="cluster name (default: any, as '')")
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    status.add_argument("--width", type=int, default=32, help="cut values to this many chars")
    status.add_argument("--timeout", type=float, default=10.0, help="call timeout in seconds")
    batch.add_parser(commands)
    return parser


def _dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dir", type=Path, default=Path(DEFAULT_DIR), help=f"state directory ({DEFAULT_DIR})"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="jubako: %(message)s")
    try:
        if args.command == "status":
            return _status(args)
        if args.command == "batch":
            return batch.run(args)
        if args.action == "up":
            return _up(args)
        if args.action == "down":
            return _down(args)
        return _ps(args)
    except JubakoError as error:
        print(f"jubako: {error}", file=sys.stderr)
        return 1


def _up(args: argparse.Namespace) -> int:
    spec = ClusterSpec(
        server=args.server,
        proxy=args.proxy,
        config=args.config,
        servers=args.servers,
        proxies=args.proxies,
        name=args.name,
        zookeeper=args.zookeeper,
        server_args=tuple(args.server_args),
        start_timeout=args.timeout,
    )
    state = up(spec, args.dir)
    print(f"cluster {state.name!r} is up ({state.mode}); state in {args.dir}")
    _print_processes(state)
    return 0


def _down(args: argparse.Namespace) -> int:
    outcomes = down(args.dir, args.timeout)
    for process, outcome in outcomes:
        print(f"{process.role:9} {process.address:21} pid {process.pid:<7} {outcome}")
    killed = sum(outcome == "killed" for _, outcome in outcomes)
    print(f"stopped {len(outcomes)} process(es)" + (f", {killed} needed SIGKILL" if killed else ""))
    return 0


def _ps(args: argparse.Namespace) -> int:
    state = ClusterState.load(args.dir)
    print(f"cluster {state.name!r} ({state.mode})")
    _print_processes(state)
    return 0


def _print_processes(state: ClusterState) -> None:
    for process in state.processes:
        alive = "running" if process.alive else "gone"
        print(f"{process.role:9} {process.address:21} pid {process.pid:<7} {alive:7} {process.log}")


def _status(args: argparse.Namespace) -> int:
    host, _, port_text = args.address.rpartition(":")
    if not host or not port_text.isdigit():
        print(f"jubako: {args.address!r} is not HOST:PORT", file=sys.stderr)
        return 2
    sections: dict[str, dict[str, dict[str, str]]] = {}
    try:
        with Client(host, int(port_text), timeout=args.timeout) as client:
            sections["get_status"] = text_status(client.call("get_status", [args.name]))
            try:
                proxy = client.call("get_proxy_status", [args.name])
            except UnknownMethod:
                pass  # a server, not a proxy
            else:
                sections["get_proxy_status"] = text_status(proxy)
                with_states(sections["get_status"], sections["get_proxy_status"])
    except (RPCError, OSError, ValueError) as error:
        print(f"jubako: {args.address}: {error}", file=sys.stderr)
        return 1
    if args.json:
        sys.stdout.write(render_json(sections))
        return 0
    for title, status in sections.items():
        sys.stdout.write(render_table(status, max_width=args.width, title=f"== {title}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
