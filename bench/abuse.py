"""What a hostile client costs a server or proxy, attack by attack, before and after.

``python -m bench.abuse [--compare-with DIR] [--loops asyncio,uvloop] [--no-write]`` runs
each attack against kvs processes of this checkout (and, with ``--compare-with``, of
another one, e.g. ``git worktree add /tmp/base <commit>``: its ``examples/kvs``), on each
event loop asked for, and prints for every run: bytes sent, the server's resident memory
before, at its peak (VmHWM) and after, its CPU seconds and log growth during the attack,
and how long a probe client's calls on fresh connections took meanwhile (p99 and max, one
`get` every 20 ms). The ``## Abuse`` section of ``bench/RESULTS.md`` is rewritten unless
``--no-write``.

The attacks (servers run with ``--max-message-size 1048576`` unless said):

- ``arrays``: a request whose last argument is arrays of 65535 empty arrays, 16 MiB of
  them, sent as fast as the server reads (also to a proxy);
- ``arrays@64MiB``: the same at the default limit;
- ``strings@64MiB``: arrays of one-character strings (walked element by element);
- ``answers``: pipelined ``get``s of a 2 MiB value, the answers never read;
- ``files``: 400 connections held open against a server with ``ulimit -n 256``;
- ``slowloris``: 50 connections sending one byte a second (``--timeout 5``);
- ``names``: 300 requests naming different 1 MiB clusters, through a static proxy;
- ``log``: an unknown method of 10 MB and a save id of 10 MB, 20 times each.

The ZooKeeper proxy's names are measured by the tests (``tests/e2e/test_limits.py``).
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing
from dataclasses import dataclass
from pathlib import Path

import msgpack

from bench.results import replace_section
from bench.rpc import machine_note
from runtime.testing import ServerProcess

REPO = Path(__file__).resolve().parent.parent
SECTION = "## Abuse"
MIB = 1 << 20


def _pack(frame: object) -> bytes:
    packed: bytes = msgpack.packb(frame, use_bin_type=False)
    return packed


def _status_kib(pid: int, key: str) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return float("nan")


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Tree:
    """A checkout whose examples/kvs is run: this one, or the one compared with."""

    label: str
    root: Path

    def server(
        self, datadir: Path, loop: str, *extra: str, open_files: int | None = None
    ) -> ServerProcess:
        kvs = self.root / "examples" / "kvs"
        args = ["--rpc-port", "0", "--configpath", str(kvs / "config.json")]
        args += ["--datadir", str(datadir), "--event-loop", loop, *extra]
        return ServerProcess(
            kvs / "kvs_impl.py",
            args,
            cwd=kvs,
            env={"PYTHONPATH": str(self.root)},
            open_files=open_files,
        )

    def proxy(self, servers: str, loop: str, *extra: str) -> ServerProcess:
        kvs = self.root / "examples" / "kvs"
        args = ["--rpc-port", "0", "--servers", servers, "--event-loop", loop, *extra]
        return ServerProcess(
            kvs / "kvs_proxy.py", args, cwd=kvs, env={"PYTHONPATH": str(self.root)}
        )


@dataclass
class Outcome:
    tree: str
    loop: str
    attack: str
    sent: int
    before: float
    peak: float
    after: float
    cpu: float
    log_growth: int
    probe_p99_ms: float
    probe_max_ms: float
    note: str


class Probe:
    """A well-behaved client: a ``get`` on a fresh connection every 20 ms, timed."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.times: list[float] = []
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Probe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        frame = _pack([0, 1, "get", ["c", "probe"]])
        while not self._stop.wait(0.02):
            started = time.monotonic()
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
                    sock.sendall(frame)
                    if not sock.recv(65536):
                        raise ConnectionError("closed")
                self.times.append(time.monotonic() - started)
            except OSError:
                self.failures += 1

    def summary(self) -> tuple[float, float]:
        if not self.times:
            return float("nan"), float("nan")
        times = sorted(self.times)
        p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
        return p99 * 1000, max(times) * 1000


def _send(sock: socket.socket, chunks: Iterator[bytes], limit: int) -> int:
    sent = 0
    try:
        for chunk in chunks:
            sock.sendall(chunk)
            sent += len(chunk)
            if sent >= limit:
                break
    except OSError:
        pass
    return sent


# -- the attacks: each takes the target's port and returns (bytes sent, a note) ------------


def attack_arrays(port: int, size: int = 16 * MIB) -> tuple[int, str]:
    header = b"\x94\x00\x01\xa3put\x93\xa1c\xa1k\xdc\xff\xff"
    inner = b"\xdc\xff\xff" + b"\x90" * 65535
    with closing(socket.create_connection(("127.0.0.1", port))) as sock:
        sock.settimeout(5)
        sent = _send(sock, iter([header, *([inner] * (size // len(inner) + 1))]), size)
        closed = _closed(sock, 3)
    return sent, "closed" if closed else "still open"


def attack_strings(port: int, size: int = 16 * MIB) -> tuple[int, str]:
    """Arrays of one-character strings: each element is walked in Python."""
    header = b"\x94\x00\x01\xa3put\x93\xa1c\xa1k\xdc\xff\xff"
    inner = b"\xdc\xff\xff" + b"\xa1x" * 65535
    with closing(socket.create_connection(("127.0.0.1", port))) as sock:
        sock.settimeout(5)
        sent = _send(sock, iter([header, *([inner] * (size // len(inner) + 1))]), size)
        closed = _closed(sock, 5)
    return sent, "closed" if closed else "still open"


def attack_answers(port: int) -> tuple[int, str]:
    with closing(socket.create_connection(("127.0.0.1", port), timeout=5)) as sock:
        sock.sendall(_pack([0, 0, "put", ["c", "big", "v" * (2 * MIB)]]))
        sock.recv(65536)
    with closing(socket.create_connection(("127.0.0.1", port))) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(3)
        gets = b"".join(_pack([0, i, "get", ["c", "big"]]) for i in range(256))
        sent = _send(sock, iter([gets]), len(gets))
        time.sleep(3)
    return sent, f"{sent // len(_pack([0, 1, 'get', ['c', 'big']]))} gets of 2 MiB asked"


def attack_files(port: int) -> tuple[int, str]:
    held = []
    try:
        for _ in range(400):
            try:
                held.append(socket.create_connection(("127.0.0.1", port), timeout=2))
            except OSError:
                break
        time.sleep(10)
    finally:
        for sock in held:
            sock.close()
    return 0, f"{len(held)} connections held 10 s"


def attack_slowloris(port: int) -> tuple[int, str]:
    frame = _pack([0, 1, "put", ["c", "k", "v" * 100]])
    socks = [socket.create_connection(("127.0.0.1", port), timeout=2) for _ in range(50)]
    sent = 0
    open_at_end = 0
    try:
        for index in range(12):
            for sock in socks:
                try:
                    sock.sendall(frame[index : index + 1])
                    sent += 1
                except OSError:
                    pass
            time.sleep(1)
        for sock in socks:
            open_at_end += not _closed(sock, 0.05)
    finally:
        for sock in socks:
            sock.close()
    return sent, f"{open_at_end} of 50 still open after 12 s"


def attack_names(port: int) -> tuple[int, str]:
    sent = 0
    for index in range(300):
        frame = _pack([0, 1, "get", [f"{index}-" + "n" * MIB, "k"]])
        with closing(socket.create_connection(("127.0.0.1", port), timeout=5)) as sock:
            sock.sendall(frame)
            sock.recv(65536)
        sent += len(frame)
    return sent, "300 names of 1 MiB"


def attack_log(port: int) -> tuple[int, str]:
    sent = 0
    for index in range(20):
        for frame in (
            _pack([0, index, "m" * (10 * MIB), ["c"]]),
            _pack([0, index, "save", ["c", "s" * (10 * MIB)]]),
        ):
            with closing(socket.create_connection(("127.0.0.1", port), timeout=10)) as sock:
                sock.sendall(frame)
                sock.recv(65536)
            sent += len(frame)
    return sent, "10 MB names and ids"


def _closed(sock: socket.socket, within: float) -> bool:
    sock.settimeout(within)
    try:
        while sock.recv(65536):
            pass
        return True
    except ConnectionResetError:
        return True
    except OSError:
        return False


# -- running --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attack:
    name: str
    run: Callable[[int], tuple[int, str]]
    server_flags: tuple[str, ...] = ("--max-message-size", str(MIB))
    through_proxy: bool = False
    open_files: int | None = None


ATTACKS = (
    Attack("arrays", attack_arrays),
    Attack("arrays via proxy", attack_arrays, through_proxy=True),
    Attack("arrays@64MiB", attack_arrays, server_flags=()),
    Attack("strings@64MiB", attack_strings, server_flags=()),
    Attack("answers", attack_answers, server_flags=("--max-message-size", str(4 * MIB))),
    Attack("files", attack_files, open_files=256),
    Attack("slowloris", attack_slowloris, server_flags=("--timeout", "5")),
    Attack(
        "names",
        attack_names,
        server_flags=("--max-message-size", str(2 * MIB)),
        through_proxy=True,
    ),
    Attack("log", attack_log, server_flags=("--max-message-size", str(32 * MIB))),
)


def run_attack(tree: Tree, loop: str, attack: Attack) -> Outcome:
    with ExitStack() as stack:
        datadir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-abuse-")))
        server = stack.enter_context(
            tree.server(datadir, loop, *attack.server_flags, open_files=attack.open_files)
        )
        target = server
        if attack.through_proxy:
            proxy_flags = tuple(f for f in attack.server_flags if f != "--timeout")
            target = stack.enter_context(
                tree.proxy(f"127.0.0.1:{server.port}", loop, *proxy_flags)
            )
        time.sleep(0.3)
        before = _status_kib(target.pid, "VmRSS") / 1024
        cpu = _cpu_seconds(target.pid)
        log_size = target.log_path.stat().st_size
        with Probe(target.port) as probe:
            sent, note = attack.run(target.port)
            time.sleep(1)
        p99, worst = probe.summary()
        if probe.failures:
            note += f"; {probe.failures} probe calls failed"
        return Outcome(
            tree=tree.label,
            loop=loop,
            attack=attack.name,
            sent=sent,
            before=before,
            peak=_status_kib(target.pid, "VmHWM") / 1024,
            after=_status_kib(target.pid, "VmRSS") / 1024,
            cpu=_cpu_seconds(target.pid) - cpu,
            log_growth=target.log_path.stat().st_size - log_size,
            probe_p99_ms=p99,
            probe_max_ms=worst,
            note=note,
        )


def render(outcomes: list[Outcome], command: str) -> str:
    lines = [
        SECTION,
        "",
        f"Command: `{command}`  ",
        f"Date: {datetime.date.today()}; {machine_note(with_loop=False)}.",
        "",
        "Per attack: bytes sent; the target's resident memory before, at its peak (VmHWM,",
        "since start) and after, MiB; its CPU seconds and log bytes during the attack; a probe",
        "client's `get` on a fresh connection every 20 ms meanwhile (p99 / max, ms).",
        "",
        "| code | loop | attack | sent | before | peak | after | CPU s | log bytes | probe p99 | "
        "probe max | note |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for o in outcomes:
        lines.append(
            f"| {o.tree} | {o.loop} | {o.attack} | {o.sent:,} | {o.before:.0f} | {o.peak:.0f} | "
            f"{o.after:.0f} | {o.cpu:.2f} | {o.log_growth:,} | {o.probe_p99_ms:.1f} | "
            f"{o.probe_max_ms:.1f} | {o.note} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--compare-with", type=Path, default=None, metavar="DIR")
    parser.add_argument("--loops", default="")
    parser.add_argument("--attacks", default="", help="comma-separated subset of names")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    loops = args.loops.split(",") if args.loops else ["asyncio"]
    if not args.loops and importlib.util.find_spec("uvloop") is not None:
        loops.append("uvloop")
    trees = [Tree("now", REPO)]
    if args.compare_with is not None:
        trees.append(Tree("before", args.compare_with))
    wanted = set(args.attacks.split(",")) if args.attacks else None
    outcomes = []
    for attack in ATTACKS:
        if wanted is not None and attack.name not in wanted:
            continue
        for loop in loops:
            for tree in trees:
                outcome = run_attack(tree, loop, attack)
                outcomes.append(outcome)
                print(render([outcome], "").splitlines()[-1], flush=True)
    command = "python -m bench.abuse " + " ".join(sys.argv[1:] if argv is None else argv)
    text = render(outcomes, command.strip())
    print(text)
    if not args.no_write:
        replace_section(SECTION, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
