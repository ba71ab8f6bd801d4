"""Real parts for tests: a private ZooKeeper, server processes, and a relay to cut links.

Services built on Jubako are tested the way Jubako itself is: against a real ZooKeeper and
real server processes on 127.0.0.1, never mocks. This module ships with the runtime so
users' test suites can import it under any pytest import mode.

- :class:`ManagedZooKeeper` runs Debian's ZooKeeper (3.8, ``/usr/share/java``) standalone
  from a private temp dir; ``restart()`` keeps its port and data.
- :class:`ServerProcess` runs a Python server main and learns its port from the
  ``listening on HOST:PORT`` line the server logs (servers bind port 0).
- :class:`TcpRelay` forwards a local port to a target and can cut every connection, which
  is how a network partition (and a ZooKeeper session expiry) is produced for real.
- :func:`wait_until` / :func:`wait_until_async` poll a condition with a deadline, the
  alternative to fixed sleeps.
- :func:`free_port` exists for ZooKeeper alone (see there).

Nothing here is imported by production code paths, and nothing here ever listens on an
address other than 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Final, Self

__all__ = [
    "LISTENING_RE",
    "ManagedZooKeeper",
    "ServerProcess",
    "TcpRelay",
    "TestingError",
    "free_port",
    "wait_until",
    "wait_until_async",
]

log = logging.getLogger(__name__)

LOCALHOST: Final = "127.0.0.1"
#: The line a server logs once bound: ``listening on HOST:PORT`` (IPv6 hosts in brackets).
LISTENING_RE: Final = re.compile(r"listening on \[?(?P<host>[^\s\]]+)\]?:(?P<port>\d{1,5})\b")

_POLL_INTERVAL: Final = 0.02
_JAVA_DIR: Final = Path("/usr/share/java")


class TestingError(RuntimeError):
    """A test helper could not bring its part up (the message says why, with a log tail)."""

    __test__ = False  # not a test class, whatever pytest's collection patterns say


def free_port(host: str = LOCALHOST) -> int:
    """A TCP port that was free a moment ago. Use it only where a program cannot bind 0.

    Binding port 0 and reading the bound port is the only race-free way to get a port, and
    every Jubako server does that. ZooKeeper cannot: it takes ``clientPort`` from its config
    and neither accepts 0 nor reports what it bound. So :class:`ManagedZooKeeper` is the one
    place that picks a port ahead, and it retries with another port when ZooKeeper finds the
    port taken by the time it binds. Do not use this for anything that can bind 0.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until(
    predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.01, what: str = ""
) -> float:
    """Poll ``predicate`` until it is truthy; the seconds it took. TimeoutError past ``timeout``.

    A bounded poll instead of a fixed sleep: fast when the condition comes quickly, and a
    clear failure (naming ``what``) when it never does.
    """
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"not true within {timeout:g}s: {what or predicate!r}")
        time.sleep(interval)
    return time.monotonic() - start


async def wait_until_async(
    predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.01, what: str = ""
) -> float:
    """:func:`wait_until` for event-loop code: sleeps with ``asyncio.sleep`` between polls."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"not true within {timeout:g}s: {what or predicate!r}")
        await asyncio.sleep(interval)
    return time.monotonic() - start


def _tail(text: str, lines: int) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _read_text(path: Path, offset: int = 0) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            return handle.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def _terminate(process: subprocess.Popen[bytes], sig: int, timeout: float) -> int:
    """Send ``sig`` to ``process``, wait ``timeout`` seconds, then SIGKILL it if needed."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(sig)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("pid %d ignored signal %d for %.1fs: killing it", process.pid, sig, timeout)
            with contextlib.suppress(ProcessLookupError):
                process.kill()
    return process.wait()


# ---------------------------------------------------------------------------------------------
# ZooKeeper


class ManagedZooKeeper:
    """A private standalone ZooKeeper on 127.0.0.1 for tests.

    Lives in a temp dir (``conf/zoo.cfg``, ``data/``, ``zookeeper.log``). ``start()`` returns
    once ``srvr`` answers ``Mode: standalone`` *and* the answer provably came from this
    process (its log names the probe's source port), so a foreign server on a recycled port
    is never mistaken for ours. ``stop()`` keeps the data; ``restart()`` reuses the port and
    the data, as a real restart does; ``close()`` (and leaving the ``with`` block) stops it
    and removes the temp dir. Not thread-safe: drive one instance from one thread.

    The port is the one thing picked ahead of time (:func:`free_port`): ZooKeeper reads
    ``clientPort`` from its config and can neither bind port 0 nor report what it bound. If
    another process takes the port before ZooKeeper binds it, ZooKeeper exits with "Address
    already in use" and ``start()`` tries a fresh port (``port_attempts`` in all).

    A standalone ZooKeeper keeps sessions in its data dir and restarts their timers when it
    starts: a client that reconnects within its session timeout after a restart keeps its
    session and its ephemeral nodes, however long the outage was. To make a session expire,
    cut the client off with a :class:`TcpRelay` for longer than the timeout.
    """

    def __init__(
        self,
        *,
        tick_time_ms: int = 200,
        max_session_timeout_ms: int = 60_000,
        start_timeout: float = 30.0,
        port_attempts: int = 5,
        java: str = "java",
        base_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        """Prepare (not start) a server.

        :param tick_time_ms: ZooKeeper's tick; the shortest session is 2 ticks.
        :param max_session_timeout_ms: the longest session a client may ask for.
        :param start_timeout: seconds ``start()`` waits for the server to answer.
        :param port_attempts: ports tried when the chosen one is taken at bind time.
        :param base_dir: where to make the temp dir (default: the system's).
        """
        self.tick_time_ms = tick_time_ms
        self.max_session_timeout_ms = max_session_timeout_ms
        self.start_timeout = start_timeout
        self.port_attempts = port_attempts
        self.java = java
        self._base_dir = base_dir
        self._root: Path | None = None
        self._port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None

    # -- paths and facts ------------------------------------------------------------------

    @property
    def root(self) -> Path:
        """The temp dir (made on first use)."""
        if self._root is None:
            self._root = Path(tempfile.mkdtemp(prefix="jubako-zk-", dir=self._base_dir))
        return self._root

    @property
    def conf_dir(self) -> Path:
        return self.root / "conf"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_path(self) -> Path:
        return self.root / "zookeeper.log"

    @property
    def port(self) -> int:
        """The client port (known once started)."""
        if self._port is None:
            raise TestingError("ZooKeeper has not been started")
        return self._port

    @property
    def hosts(self) -> str:
        """The connect string, ``"127.0.0.1:PORT"``."""
        return f"{LOCALHOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log_text(self) -> str:
        """Everything ZooKeeper has logged (all runs of this instance)."""
        return _read_text(self.log_path)

    def log_tail(self, lines: int = 80) -> str:
        return _tail(self.log_text(), lines)

    def classpath(self) -> str:
        """The conf dir, ZooKeeper's jar (its manifest names its dependencies) and a logger."""
        jar = _JAVA_DIR / "zookeeper.jar"
        if not jar.is_file():
            raise TestingError(
                f"{jar} not found: install Debian's ZooKeeper "
                "(apt-get install zookeeper) to run ZooKeeper tests"
            )
        parts = [str(self.conf_dir), str(jar)]
        # zookeeper.jar pulls in slf4j-api but no binding; without one it logs nothing.
        simple = _JAVA_DIR / "slf4j-simple.jar"
        if simple.is_file():
            parts.append(str(simple))
        return os.pathsep.join(parts)

    def command(self) -> list[str]:
        if shutil.which(self.java) is None:
            raise TestingError(f"{self.java!r} is not on PATH: ZooKeeper needs a Java runtime")
        return [
            self.java,
            "-Xmx256m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-Djava.net.preferIPv4Stack=true",
            "-Dzookeeper.admin.enableServer=false",
            "-Dorg.slf4j.simpleLogger.showDateTime=true",
            "-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS",
            "-cp",
            self.classpath(),
            "org.apache.zookeeper.server.quorum.QuorumPeerMain",
            str(self.conf_dir / "zoo.cfg"),
        ]

    def _write_config(self, port: int) -> None:
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        lines = [
            f"tickTime={self.tick_time_ms}",
            f"dataDir={self.data_dir}",
            f"clientPort={port}",
            f"clientPortAddress={LOCALHOST}",
            f"maxSessionTimeout={self.max_session_timeout_ms}",
            "admin.enableServer=false",
            "4lw.commands.whitelist=ruok,srvr,stat",
            "",
        ]
        (self.conf_dir / "zoo.cfg").write_text("\n".join(lines), encoding="utf-8")

    # -- life cycle -----------------------------------------------------------------------

    def start(self, preferred_port: int | None = None) -> Self:
        """Start and wait until it serves; a port clash at bind time moves to another port.

        :param preferred_port: tried first; if it is taken, fresh ports are tried.
        """
        if self.running:
            raise TestingError(f"ZooKeeper already running on {self.hosts}")
        for attempt in range(1, self.port_attempts + 1):
            port = preferred_port if attempt == 1 and preferred_port else free_port()
            if self._launch(port):
                return self
            log.info("ZooKeeper could not bind port %d (attempt %d); trying another", port, attempt)
        raise TestingError(
            f"ZooKeeper found its port taken {self.port_attempts} times in a row\n"
            + self.log_tail()
        )

    def restart(self) -> Self:
        """Stop (if running) and start again on the same port with the same data."""
        port = self.port
        self.stop()
        if not self._launch(port):
            raise TestingError(f"ZooKeeper cannot rebind its port {port}\n{self.log_tail()}")
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM by pid, wait up to ``timeout`` seconds, then SIGKILL. Keeps the data."""
        process, self._process = self._process, None
        if process is None:
            return
        code = _terminate(process, signal.SIGTERM, timeout)
        log.info("ZooKeeper on port %s stopped (exit %d)", self._port, code)

    def close(self) -> None:
        """Stop and remove the temp dir."""
        self.stop()
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def srvr(self, timeout: float = 1.0) -> str:
        """The answer to the ``srvr`` four-letter command ("" when nothing answers)."""
        return self._probe(timeout)[0]

    def _probe(self, timeout: float) -> tuple[str, int]:
        """Send ``srvr``; return (answer, local port of the probe); ("", 0) on failure."""
        try:
            with socket.create_connection((LOCALHOST, self.port), timeout=timeout) as conn:
                local_port: int = conn.getsockname()[1]
                conn.sendall(b"srvr")
                chunks = []
                while chunk := conn.recv(4096):
                    chunks.append(chunk)
        except OSError:
            return "", 0
        return b"".join(chunks).decode("utf-8", "replace"), local_port

    def _launch(self, port: int) -> bool:
        """Run the JVM on ``port``; True once it serves, False if the port was taken."""
        self._port = port
        self._write_config(port)
        command = self.command()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log_file:
            offset = log_file.tell()
            log_file.write(f"---- jubako: starting ZooKeeper on port {port} ----\n".encode())
            log_file.flush()
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=self.root,
            )
        self._process = process
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                self._process = None
                text = _read_text(self.log_path, offset)
                if "Address already in use" in text:
                    return False
                raise TestingError(
                    f"ZooKeeper exited with status {process.returncode} while starting\n"
                    + _tail(text, 80)
                )
            answer, local_port = self._probe(0.5)
            # An answer proves nothing until our own log names the probe: a foreign server
            # may hold the port, and then our process is about to fail to bind.
            if "Mode: standalone" in answer and self._probe_logged(offset, local_port):
                log.info("ZooKeeper ready on %s (pid %d)", self.hosts, process.pid)
                return True
            time.sleep(_POLL_INTERVAL * 2)
        self.stop()
        raise TestingError(
            f"ZooKeeper did not answer within {self.start_timeout}s on port {port}\n"
            + _tail(_read_text(self.log_path, offset), 80)
        )

    def _probe_logged(self, offset: int, local_port: int) -> bool:
        """Whether our ZooKeeper logged serving the probe from ``local_port``."""
        pattern = re.compile(rf"Processing srvr command from /127\.0\.0\.1:{local_port}\b")
        for _ in range(25):
            if pattern.search(_read_text(self.log_path, offset)):
                return True
            time.sleep(_POLL_INTERVAL)
        return False


# ---------------------------------------------------------------------------------------------
# Server processes


class ServerProcess:
    """A Python server main run as a subprocess, its output in a log file.

    ``start()`` returns once the server has logged ``listening on HOST:PORT`` (the port it
    bound, typically after ``--rpc-port 0``); ``.port`` is that port. If the process exits
    or stays silent past ``ready_timeout``, :class:`TestingError` carries its log tail.
    """

    def __init__(
        self,
        script: str | os.PathLike[str],
        args: Sequence[str] = (),
        *,
        log_path: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        python: str = sys.executable,
        ready_timeout: float = 30.0,
    ) -> None:
        """Prepare (not start) the process.

        :param args: arguments after the script, e.g. ``["--rpc-port", "0"]``.
        :param log_path: where stdout and stderr go (default: a new temp file, kept).
        :param env: extra environment variables (added to this process's environment).
        :param ready_timeout: seconds ``start()`` waits for the ``listening on`` line.
        """
        self.script = Path(script)
        self.args = list(args)
        self.python = python
        self.ready_timeout = ready_timeout
        self.cwd = Path(cwd) if cwd is not None else None
        self._env = dict(env or {})
        if log_path is None:
            handle, name = tempfile.mkstemp(prefix=f"{self.script.stem}-", suffix=".log")
            os.close(handle)
            log_path = name
        self.log_path = Path(log_path)
        self._process: subprocess.Popen[bytes] | None = None
        self.host: str | None = None
        self._port: int | None = None

    @property
    def command(self) -> list[str]:
        return [self.python, str(self.script), *self.args]

    @property
    def port(self) -> int:
        """The port the server said it bound."""
        if self._port is None:
            raise TestingError(f"{self.script.name} has not reported a port")
        return self._port

    @property
    def pid(self) -> int:
        if self._process is None:
            raise TestingError(f"{self.script.name} has not been started")
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        """The exit status once it has exited (negative: killed by that signal)."""
        return self._process.poll() if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log_text(self) -> str:
        return _read_text(self.log_path)

    def log_tail(self, lines: int = 80) -> str:
        return _tail(self.log_text(), lines)

    def start(self) -> Self:
        """Start and wait for the ``listening on HOST:PORT`` line."""
        if self._process is not None:
            raise TestingError(f"{self.script.name} was already started")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self._env}
        with self.log_path.open("ab") as log_file:
            offset = log_file.tell()
            self._process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.cwd,
            )
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            match = LISTENING_RE.search(_read_text(self.log_path, offset))
            if match is not None:
                self.host = match["host"]
                self._port = int(match["port"])
                log.info(
                    "%s (pid %d) listening on %s:%d",
                    self.script.name,
                    self.pid,
                    self.host,
                    self._port,
                )
                return self
            if self._process.poll() is not None:
                raise TestingError(
                    f"{self.script.name} exited with status {self._process.returncode} "
                    f"before listening\n{self.log_tail()}"
                )
            time.sleep(_POLL_INTERVAL)
        self.kill()
        raise TestingError(
            f"{self.script.name} logged no 'listening on HOST:PORT' within "
            f"{self.ready_timeout}s\n{self.log_tail()}"
        )

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        """Send ``sig``, wait up to ``timeout`` seconds (then SIGKILL); the exit status."""
        if self._process is None:
            raise TestingError(f"{self.script.name} has not been started")
        return _terminate(self._process, sig, timeout)

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` without waiting (see :meth:`stop` to wait for the exit)."""
        if self._process is None:
            raise TestingError(f"{self.script.name} has not been started")
        self._process.send_signal(sig)

    def kill(self) -> int:
        """SIGKILL (a crash, as far as the cluster can tell); the exit status."""
        return self.stop(signal.SIGKILL, timeout=10.0)

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the process to exit by itself (``subprocess.TimeoutExpired`` if not)."""
        if self._process is None:
            raise TestingError(f"{self.script.name} has not been started")
        return self._process.wait(timeout)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._process is not None and self._process.poll() is None:
            self.stop()


# ---------------------------------------------------------------------------------------------
# A relay that can cut connections


class TcpRelay:
    """Forwards ``127.0.0.1:<port>`` to ``target``; ``cut()`` makes a partition.

    While cut, every relayed connection is closed and new ones are closed as soon as they
    are accepted, so the client sees its peer vanish and cannot get back, exactly as in a
    network partition; the target keeps running. ``restore()`` lets connections through
    again. The relay binds port 0 and reports ``.port``. One background thread does all the
    work; a thread, not asyncio, so tests of any flavour can use it.
    """

    def __init__(self, target_host: str, target_port: int, *, connect_timeout: float = 2.0):
        self.target = (target_host, target_port)
        self.connect_timeout = connect_timeout
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((LOCALHOST, 0))
        self._listener.listen(64)
        self._listener.setblocking(False)
        self.port: int = self._listener.getsockname()[1]
        self._wake_r, self._wake_w = socket.socketpair()
        self._selector = selectors.DefaultSelector()
        self._peers: dict[socket.socket, socket.socket] = {}
        self._eof: set[socket.socket] = set()  # sockets whose peer has finished sending
        self._lock = threading.Lock()
        self._cut = False
        self._closing = False
        self._commands: list[str] = []
        self._thread: threading.Thread | None = None
        #: Connections accepted so far (including ones refused while cut).
        self.accepted = 0

    @property
    def hosts(self) -> str:
        return f"{LOCALHOST}:{self.port}"

    @property
    def is_cut(self) -> bool:
        return self._cut

    def start(self) -> Self:
        self._selector.register(self._listener, selectors.EVENT_READ, "accept")
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._thread = threading.Thread(target=self._run, name=f"relay-{self.port}", daemon=True)
        self._thread.start()
        return self

    def cut(self) -> None:
        """Drop every relayed connection and refuse new ones until :meth:`restore`."""
        self._cut = True
        self._command("cut")

    def restore(self) -> None:
        self._cut = False

    def close(self) -> None:
        self._closing = True
        self._command("close")
        if self._thread is not None:
            self._thread.join(5.0)
        for sock in (self._listener, self._wake_r, self._wake_w):
            sock.close()
        self._selector.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _command(self, command: str) -> None:
        with self._lock:
            self._commands.append(command)
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def _run(self) -> None:
        while not self._closing:
            for key, _ in self._selector.select(timeout=1.0):
                if key.data == "wake":
                    with contextlib.suppress(OSError):
                        self._wake_r.recv(4096)
                    with self._lock:
                        commands, self._commands = self._commands, []
                    if "cut" in commands or "close" in commands:
                        self._drop_all()
                elif key.data == "accept":
                    self._accept()
                else:
                    assert isinstance(key.fileobj, socket.socket)
                    self._pump(key.fileobj)
        self._drop_all()

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except BlockingIOError:
            return
        self.accepted += 1
        if self._cut:
            client.close()
            return
        try:
            upstream = socket.create_connection(self.target, timeout=self.connect_timeout)
        except OSError as error:
            log.debug("relay %d: target %s unreachable: %s", self.port, self.target, error)
            client.close()
            return
        client.setblocking(True)
        upstream.settimeout(self.connect_timeout)
        client.settimeout(self.connect_timeout)
        self._peers[client] = upstream
        self._peers[upstream] = client
        self._selector.register(client, selectors.EVENT_READ, "peer")
        self._selector.register(upstream, selectors.EVENT_READ, "peer")

    def _pump(self, source: socket.socket) -> None:
        sink = self._peers.get(source)
        if sink is None:
            return
        try:
            data = source.recv(65536)
            if data:
                sink.sendall(data)
                return
            # End of stream one way: pass the half-close on, keep the other way open.
            self._selector.unregister(source)
            self._eof.add(source)
            sink.shutdown(socket.SHUT_WR)
            if sink not in self._eof:
                return
        except OSError:
            pass
        self._drop(source)

    def _drop(self, sock: socket.socket) -> None:
        other = self._peers.pop(sock, None)
        for one in (sock, other):
            if one is None:
                continue
            self._peers.pop(one, None)
            self._eof.discard(one)
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(one)
            one.close()

    def _drop_all(self) -> None:
        for sock in list(self._peers):
            self._drop(sock)
