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

:class:`ManagedZooKeeper` and the polling helpers live with the runtime's own child
processes (:mod:`runtime.cluster.zookeeper.server`, :mod:`runtime.process.children`) and
are re-exported here. Nothing here ever listens on an address other than 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import resource
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
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
    "peak_mib",
    "rss_mib",
    "wait_until",
    "wait_until_async",
]

from runtime.cluster.zookeeper.server import ManagedZooKeeper
from runtime.process.children import (
    LOCALHOST,
    StartError as TestingError,
    free_port,
    read_text as _read_text,
    tail as _tail,
    terminate as _terminate,
    wait_until,
    wait_until_async,
)

log = logging.getLogger(__name__)


#: The line a server logs once bound: ``listening on HOST:PORT`` (IPv6 hosts in brackets).
LISTENING_RE: Final = re.compile(r"listening on \[?(?P<host>[^\s\]]+)\]?:(?P<port>\d{1,5})\b")

_POLL_INTERVAL: Final = 0.02


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
        open_files: int | None = None,
    ) -> None:
        """Prepare (not start) the process.

        :param args: arguments after the script, e.g. ``["--rpc-port", "0"]``.
        :param log_path: where stdout and stderr go (default: a new temp file, kept).
        :param env: extra environment variables (added to this process's environment).
        :param ready_timeout: seconds ``start()`` waits for the ``listening on`` line.
        :param open_files: the process's limit of open files (``ulimit -n``), if given.
        """
        self.open_files = open_files
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

    def _limit_open_files(self) -> None:  # in the child, before exec
        assert self.open_files is not None
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.open_files, self.open_files))

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
                preexec_fn=None if self.open_files is None else self._limit_open_files,
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


def _status_kib(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise TestingError(f"no {key} in /proc/{pid}/status")


def rss_mib(pid: int) -> float:
    """The resident memory of process ``pid`` now (``VmRSS``), MiB."""
    return _status_kib(pid, "VmRSS") / 1024


def peak_mib(pid: int) -> float:
    """The most resident memory process ``pid`` has had (``VmHWM``), MiB."""
    return _status_kib(pid, "VmHWM") / 1024
