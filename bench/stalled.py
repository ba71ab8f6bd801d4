"""Memory with a stalled peer: a client that does not read, a server that hangs.

``python -m bench.stalled [--seconds S] [--no-write]`` runs two cases, each with processes
of its own on 127.0.0.1:

- **A client that does not read its answers.** A kvs server; one connection puts a 100 KB
  value, then sends ``get``s of it, 1000 per write, for up to ``S`` seconds, and reads
  nothing. Shown: the requests written before the client's writes blocked (most of
  them wait in the kernel's socket buffers), and the server's resident memory before
  and after.
- **A server that hangs.** A proxy (``--timeout 1``) over two kvs servers, one stopped with
  SIGSTOP; 8 connections each send 64 ``put``s of a 10 KB value every 5 ms for ``S``
  seconds and read the answers (errors naming the stopped server). Shown: the proxy's
  resident memory every 2 seconds.

Both should level off: a server stops reading from a client that does not read, and a
proxy drops its connection to a server that stopped reading at the first timeout. The
``## Stalled peers`` section of ``bench/RESULTS.md`` is rewritten unless ``--no-write``.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import signal
import socket
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import msgpack

from bench._load import resident_mib
from bench.results import replace_section
from bench.rpc import machine_note
from runtime.testing import ServerProcess

REPO = Path(__file__).resolve().parent.parent
KVS = REPO / "examples" / "kvs"
SECTION = "## Stalled peers"
SAMPLE_SECONDS = 2.0


def _start(stack: ExitStack, script: str, *args: str) -> ServerProcess:
    """Start ``examples/kvs/<script>`` on a free port; stopped when ``stack`` closes."""
    process = ServerProcess(KVS / script, ["--rpc-port", "0", *args], cwd=KVS)
    return stack.enter_context(process)


def _start_server(stack: ExitStack) -> ServerProcess:
    datadir = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-stalled-"))
    return _start(stack, "kvs_impl.py", "--datadir", datadir)


def _pack(frame: list[object]) -> bytes:
    packed: bytes = msgpack.packb(frame, use_bin_type=False)
    return packed


def client_that_does_not_read(seconds: float) -> dict[str, float]:
    """Case 1: requests taken, server memory before and after."""
    with ExitStack() as stack:
        server = _start_server(stack)
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(_pack([0, 0, "put", ["", "k", "v" * 100_000]]))
            time.sleep(0.2)
            before = resident_mib(server.pid)
            batch = b"".join(_pack([0, i, "get", ["", "k"]]) for i in range(1000))
            sock.settimeout(2.0)
            sent = 0
            deadline = time.monotonic() + seconds
            try:
                while time.monotonic() < deadline:
                    sock.sendall(batch)
                    sent += 1000
            except TimeoutError:
                pass  # the server stopped reading
            after = resident_mib(server.pid)
    return {"sent": sent, "before_mib": before, "after_mib": after}


async def _putting(port: int, index: int, stop: float, answers: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    value = "v" * 10_000
    unpacker = msgpack.Unpacker(raw=True)

    async def read() -> None:
        while data := await reader.read(1 << 16):
            unpacker.feed(data)
            for _, _, error, _ in unpacker:
                answers[0 if error is None else 1] += 1

    reading = asyncio.ensure_future(read())
    msgid = 0
    while time.monotonic() < stop:
        writer.write(
            b"".join(
                _pack([0, msgid + k, "put", ["", f"k{index}-{msgid + k}", value]])
                for k in range(64)
            )
        )
        msgid = (msgid + 64) % (1 << 31)
        await writer.drain()
        await asyncio.sleep(0.005)
    reading.cancel()
    writer.close()


async def _hung_server_load(proxy: ServerProcess, seconds: float) -> list[tuple[float, float]]:
    stop = time.monotonic() + seconds
    answers = [0, 0]
    clients = [asyncio.ensure_future(_putting(proxy.port, i, stop, answers)) for i in range(8)]
    samples = [(0.0, resident_mib(proxy.pid))]
    started = time.monotonic()
    while time.monotonic() < stop:
        await asyncio.sleep(SAMPLE_SECONDS)
        samples.append((time.monotonic() - started, resident_mib(proxy.pid)))
    await asyncio.gather(*clients, return_exceptions=True)
    if answers[1] == 0:
        raise RuntimeError("no put failed: the stopped server was not in the way")
    return samples


def server_that_hangs(seconds: float) -> list[tuple[float, float]]:
    """Case 2: (seconds since the load started, proxy MiB) samples."""
    with ExitStack() as stack:
        first = _start_server(stack)
        second = _start_server(stack)
        servers = f"127.0.0.1:{first.port},127.0.0.1:{second.port}"
        proxy = _start(stack, "kvs_proxy.py", "--timeout", "1", "--servers", servers)
        os.kill(second.pid, signal.SIGSTOP)
        try:
            return asyncio.run(_hung_server_load(proxy, seconds))
        finally:
            os.kill(second.pid, signal.SIGCONT)


def _report(seconds: float, reader: dict[str, float], hung: list[tuple[float, float]]) -> str:
    trail = ", ".join(f"{at:.0f} s: {mib:.0f}" for at, mib in hung)
    return (
        f"{SECTION}\n\n"
        f"`python -m bench.stalled --seconds {seconds:g}` on {datetime.date.today()}; "
        f"{machine_note()}.\n\n"
        f"- A client that sends `get`s of a 100 KB value and reads nothing: {reader['sent']:.0f} "
        f"requests written before the client's writes blocked; server resident "
        f"memory {reader['before_mib']:.0f} MiB before, {reader['after_mib']:.0f} MiB after.\n"
        f"- A proxy (`--timeout 1`) over two kvs servers, one stopped with SIGSTOP, 8 clients "
        f"pipelining 10 KB `put`s: proxy resident memory (MiB) by time, {trail}.\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    reader = client_that_does_not_read(args.seconds)
    hung = server_that_hangs(args.seconds)
    report = _report(args.seconds, reader, hung)
    print(report)
    if not args.no_write:
        replace_section(SECTION, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
