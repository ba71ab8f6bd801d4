"""A cluster of one service on this machine: start it, list it, stop it.

``up`` starts a ZooKeeper (``--zookeeper local``; or none: static mode; or an existing one),
N servers and M proxies of a service from its server and proxy entry points, waits until
every process serves (a server answers ``get_status``; a proxy answers it for all N
servers), and records everything in ``<dir>/cluster.json``: pids, addresses, commands and
log files (``<dir>/logs``). The processes run in sessions of their own, detached from the
command, so ``up`` returns while they keep running. If anything fails to start, ``up``
stops what it started and raises :class:`ClusterError` with the tail of the failing log.

``down`` stops proxies, then servers, then ZooKeeper: SIGTERM, a bounded wait, SIGKILL as
a last resort (reported), so no process is left behind; ``ps`` tells which recorded
processes are alive. Like jubactl and jubavisor, for one machine.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from runtime.cluster.zookeeper.server import ManagedZooKeeper
from runtime.errors import JubakoError, RPCError
from runtime.process.children import StartError
from runtime.rpc.client import Client
from runtime.tools.status_table import text_status

log = logging.getLogger(__name__)

STATE_FILE = "cluster.json"
_LISTENING = re.compile(r"listening on ([\d.]+):(\d+)")
_POLL = 0.05


class ClusterError(JubakoError):
    """The local cluster could not be started, found or stopped; the message says why."""


@dataclass
class Process:
    """One process of the cluster as recorded in the state file."""

    role: str  #: "server", "proxy" or "zookeeper"
    pid: int
    host: str
    port: int
    log: str
    command: list[str] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def alive(self) -> bool:
        return pid_alive(self.pid)


@dataclass
class ClusterState:
    """What ``up`` started, in ``<dir>/cluster.json``."""

    name: str
    mode: str  #: "static" or "zookeeper"
    zookeeper: str = ""  #: HOST:PORT in ZooKeeper mode
    zookeeper_dir: str = ""  #: the data dir of a ZooKeeper that ``up`` started
    processes: list[Process] = field(default_factory=list)

    def of_role(self, role: str) -> list[Process]:
        return [p for p in self.processes if p.role == role]

    def save(self, directory: Path) -> None:
        path = directory / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)

    @classmethod
    def load(cls, directory: Path) -> ClusterState:
        path = directory / STATE_FILE
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ClusterError(f"no cluster recorded in {directory} (no {STATE_FILE})") from None
        except (OSError, ValueError) as error:
            raise ClusterError(f"cannot read {path}: {error}") from None
        try:
            processes = [Process(**p) for p in raw.pop("processes")]
            return cls(**raw, processes=processes)
        except (TypeError, KeyError) as error:
            raise ClusterError(f"{path} is not a cluster state file: {error}") from None


@dataclass(frozen=True)
class ClusterSpec:
    """What ``up`` should start."""

    server: str  #: a ``*_impl.py`` path or a console command (``jubaclassifier``)
    proxy: str  #: a ``*_proxy.py`` path or a console command
    config: str  #: the service's JSON config file
    servers: int = 3
    proxies: int = 1
    name: str = "local"
    zookeeper: str = "none"  #: "none" (static), "local", or HOST:PORT
    server_args: tuple[str, ...] = ()
    start_timeout: float = 30.0


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def entry_command(entry: str) -> list[str]:
    """How to run ``entry``: a ``.py`` file with this interpreter, else a command on PATH
    (this interpreter's bin directory first, where the package's console scripts live)."""
    if entry.endswith(".py"):
        path = Path(entry)
        if not path.is_file():
            raise ClusterError(f"{entry}: no such file")
        return [sys.executable, str(path.resolve())]
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    found = shutil.which(entry, path=search)
    if found is None:
        raise ClusterError(f"{entry}: not a .py file nor a command on PATH")
    return [found]


def _launch(command: list[str], log_path: Path, cwd: Path) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log_file:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,
        )


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _wait_listening(
    process: subprocess.Popen[bytes], log_path: Path, what: str, timeout: float
) -> tuple[str, int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log_path.read_text(encoding="utf-8", errors="replace")
        found = _LISTENING.search(text)
        if found:
            return found.group(1), int(found.group(2))
        if process.poll() is not None:
            raise ClusterError(
                f"{what} exited with status {process.returncode} while starting; "
                f"its log ({log_path}) ends:\n{_tail(log_path)}"
            )
        time.sleep(_POLL)
    raise ClusterError(f"{what} did not start within {timeout:g}s; log ends:\n{_tail(log_path)}")


def _status_servers(address: tuple[str, int], name: str) -> int:
    """How many servers ``get_status`` through ``address`` reports (0 on any error)."""
    try:
        with Client(*address, timeout=2) as client:
            return len(text_status(client.call("get_status", [name])))
    except (RPCError, OSError, ValueError):
        return 0


def up(spec: ClusterSpec, directory: Path) -> ClusterState:
    """Start the cluster described by ``spec``, recorded in ``directory``."""
    if spec.servers < 1 or spec.proxies < 0:
        raise ClusterError("need at least one server and zero or more proxies")
    config = Path(spec.config)
    if not config.is_file():
        raise ClusterError(f"{spec.config}: no such config file")
    server_command = entry_command(spec.server)
    proxy_command = entry_command(spec.proxy) if spec.proxies else []
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / STATE_FILE).exists():
        old = ClusterState.load(directory)
        running = [p for p in old.processes if p.alive]
        if running:
            raise ClusterError(
                f"a cluster recorded in {directory} is still running "
                f"({len(running)} process(es)): run 'jubako cluster down --dir {directory}'"
            )
        log.warning("replacing the record of a cluster that is no longer running")
    logs = directory / "logs"
    data = directory / "data"
    logs.mkdir(exist_ok=True)
    data.mkdir(exist_ok=True)
    mode = "static" if spec.zookeeper == "none" else "zookeeper"
    state = ClusterState(name=spec.name, mode=mode)
    try:
        if spec.zookeeper == "local":
            _start_zookeeper(state, directory)
        elif mode == "zookeeper":
            state.zookeeper = spec.zookeeper
        state.save(directory)
        membership = (
            ["--zookeeper", state.zookeeper, "--name", spec.name] if state.zookeeper else []
        )
        started = []
        for index in range(spec.servers):
            command = [
                *server_command, "--rpc-port", "0", "--configpath", str(config.resolve()),
                "--datadir", str(data.resolve()), *membership, *spec.server_args,
            ]  # fmt: skip
            log_path = logs / f"server-{index}.log"
            started.append((_launch(command, log_path, directory), log_path, command))
        for index, (process, log_path, command) in enumerate(started):
            host, port = _wait_listening(process, log_path, f"server {index}", spec.start_timeout)
            state.processes.append(
                Process("server", process.pid, host, port, str(log_path), command)
            )
            state.save(directory)
        servers = state.of_role("server")
        for server in servers:
            _wait_ready((server.host, server.port), spec.name, 1, spec.start_timeout, "server")
        members = (
            ["--zookeeper", state.zookeeper]
            if state.zookeeper
            else ["--servers", ",".join(s.address for s in servers)]
        )
        for index in range(spec.proxies):
            command = [*proxy_command, "--rpc-port", "0", *members]
            log_path = logs / f"proxy-{index}.log"
            process = _launch(command, log_path, directory)
            host, port = _wait_listening(process, log_path, f"proxy {index}", spec.start_timeout)
            state.processes.append(
                Process("proxy", process.pid, host, port, str(log_path), command)
            )
            state.save(directory)
            _wait_ready((host, port), spec.name, spec.servers, spec.start_timeout, "proxy")
    except BaseException:
        stopped = stop_all(state, timeout=5.0)
        log.debug("stopped %d process(es) after a failed start", len(stopped))
        (directory / STATE_FILE).unlink(missing_ok=True)
        raise
    return state


def _start_zookeeper(state: ClusterState, directory: Path) -> None:
    zookeeper = ManagedZooKeeper(base_dir=directory)
    try:
        zookeeper.start()
    except StartError as error:
        zookeeper.close()
        raise ClusterError(f"cannot start ZooKeeper: {error}") from None
    pid = zookeeper.pid
    assert pid is not None
    state.zookeeper = zookeeper.hosts
    state.zookeeper_dir = str(zookeeper.root)
    state.processes.append(
        Process("zookeeper", pid, "127.0.0.1", zookeeper.port, str(zookeeper.log_path))
    )


def _wait_ready(
    address: tuple[str, int], name: str, servers: int, timeout: float, what: str
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _status_servers(address, name) >= servers:
            return
        time.sleep(_POLL * 2)
    host, port = address
    raise ClusterError(f"{what} {host}:{port} did not report {servers} server(s) in {timeout:g}s")


def stop_process(process: Process, timeout: float) -> str:
    """SIGTERM, wait up to ``timeout``, then SIGKILL; how it ended ("stopped", "killed",
    "gone")."""
    pid = process.pid
    if not pid_alive(pid):
        return "gone"
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return "gone"
    if _wait_gone(pid, timeout):
        return "stopped"
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return "stopped"
    _wait_gone(pid, 5.0)
    return "killed"


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL)
    return True


def stop_all(state: ClusterState, timeout: float) -> list[tuple[Process, str]]:
    """Stop proxies, then servers, then ZooKeeper; remove a ZooKeeper data dir ``up`` made."""
    outcomes = []
    for role in ("proxy", "server", "zookeeper"):
        for process in reversed(state.of_role(role)):
            outcomes.append((process, stop_process(process, timeout)))
    if state.zookeeper_dir:
        zk_dir = Path(state.zookeeper_dir)
        zk_log = zk_dir / "zookeeper.log"
        if zk_log.is_file():  # keep the log with the others
            logs = zk_dir.parent / "logs"
            logs.mkdir(exist_ok=True)
            shutil.copyfile(zk_log, logs / "zookeeper.log")
        shutil.rmtree(zk_dir, ignore_errors=True)
    return outcomes


def down(directory: Path, timeout: float = 10.0) -> list[tuple[Process, str]]:
    """Stop everything recorded in ``directory`` and forget it (logs stay)."""
    state = ClusterState.load(directory)
    outcomes = stop_all(state, timeout)
    (directory / STATE_FILE).unlink(missing_ok=True)
    return outcomes
