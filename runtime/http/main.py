"""``python NAME_http.py --port 8080 --upstream HOST:PORT [--name NAME] ...``: uvicorn inside.

The socket is bound here (``--port 0`` picks a free port) and the gateway logs
``listening on HOST:PORT`` once it serves, as servers and proxies do. SIGTERM and SIGINT
stop it gracefully: jobs pause and resume at the next start.
"""

from __future__ import annotations

import argparse
import gc
import logging
import re
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

import uvicorn
from fastapi import APIRouter

from runtime.http.app import build_app
from runtime.http.gateway import GatewaySettings
from runtime.http.limits import DEFAULT_MAX_REQUEST
from runtime.http.runner import JobSettings
from runtime.http.spec import ServiceSpec
from runtime.http.store import Store, StoreError
from runtime.http.upstream import parse_address

log = logging.getLogger("runtime.http.main")

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def duration(text: str) -> float:
    """Seconds from ``90``, ``90s``, ``15m``, ``12h`` or ``7d``."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration (e.g. 3600, 90m, 12h, 7d)")
    return float(match[1]) * _UNITS[match[2] or "s"]


def _address(text: str) -> str:
    try:
        parse_address(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def _text(text: str) -> str:
    """Text the wire can carry (an argument of bytes that are not UTF-8 cannot be sent)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise argparse.ArgumentTypeError(f"{text!r} is not UTF-8 text") from None
    return text


def _size(text: str) -> int:
    """A byte count of at least 1."""
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size in bytes (1 or more)")
    return int(text)


def parser(service: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"{service}_http.py",
        description=f"HTTP gateway of {service}: FastAPI on uvicorn, forwarding to a server "
        "or proxy; batch jobs kept in SQLite under --datadir.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--upstream", required=True, type=_address, help="HOST:PORT of a server or proxy"
    )
    p.add_argument("--name", default="", type=_text, help="cluster name sent with every call")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=8080, help="port to listen on (0: a free one)")
    p.add_argument("--timeout", type=float, default=10.0, help="online call timeout (s)")
    p.add_argument("--connections", type=int, default=4, help="connections to the upstream at most")
    p.add_argument("--datadir", type=Path, default=Path("/tmp"), help="where the job store lives")
    p.add_argument(
        "--job-ttl",
        type=duration,
        default=7 * 86400.0,
        help="keep finished jobs this long (s, or 90m, 12h, 7d)",
    )
    p.add_argument("--job-concurrency", type=int, default=256, help="calls in flight per job")
    p.add_argument("--job-chunk", type=int, default=1024, help="inputs read from the store at once")
    p.add_argument("--job-timeout", type=float, default=60.0, help="timeout of a job's call (s)")
    p.add_argument("--max-running-jobs", type=int, default=1, help="jobs run at once")
    p.add_argument("--max-upload", type=_size, default=1 << 30, help="largest job upload (bytes)")
    p.add_argument(
        "--max-request", type=_size, default=DEFAULT_MAX_REQUEST,
        help="largest online request body (bytes)",
    )  # fmt: skip
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return p  # fmt: skip


def settings_from(args: argparse.Namespace) -> GatewaySettings:
    jobs = JobSettings(
        concurrency=max(1, args.job_concurrency), chunk=max(1, args.job_chunk),
        timeout=args.job_timeout, max_running=max(1, args.max_running_jobs), ttl=args.job_ttl,
    )  # fmt: skip
    return GatewaySettings(
        upstream=args.upstream, name=args.name, timeout=args.timeout,
        connections=max(1, args.connections), datadir=args.datadir, jobs=jobs,
        max_upload=args.max_upload, max_request=args.max_request,
    )  # fmt: skip


class _Server(uvicorn.Server):
    """uvicorn, saying ``listening on HOST:PORT`` once the app has started."""

    address = ("", 0)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            log.info("listening on %s:%d", *self.address)


def run_gateway(service: ServiceSpec, router: APIRouter, argv: Sequence[str] | None = None) -> int:
    """Parse the flags and serve until SIGTERM or SIGINT; the exit status."""
    args = parser(service.name).parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    log.setLevel(logging.INFO)  # "listening on" is always said, whatever --log-level
    settings = settings_from(args)
    try:
        sock = socket.create_server((args.host, args.port), reuse_port=False)
        # Accepted sockets inherit it: uvicorn serving a socket it was given leaves Nagle
        # on, and a response written in two parts then waits for a delayed ACK (40 ms).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError as error:
        print(
            f"{service.name}_http: cannot listen on {args.host}:{args.port}: {error}",
            file=sys.stderr,
        )
        return 1
    try:  # a clear error now rather than a failed start-up later
        Store(settings.store_path(service.name)).close()
    except StoreError as error:
        print(f"{service.name}_http: {error}", file=sys.stderr)
        sock.close()
        return 1
    app = build_app(service, router, settings)
    # What exists now lives as long as the process: keep it out of the cyclic collector's
    # passes, and let those come less often (a job allocates a result per input).
    gc.freeze()
    gc.set_threshold(20000, 50, 50)
    config = uvicorn.Config(app, log_level=args.log_level, access_log=False, lifespan="on")
    server = _Server(config)
    server.address = sock.getsockname()[:2]
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    return 0 if server.started else 1
