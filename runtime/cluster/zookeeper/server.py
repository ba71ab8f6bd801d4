"""A private standalone ZooKeeper on 127.0.0.1: Debian's 3.8 run from a temp dir.

For tests and for ``jubako cluster up --zookeeper local``; a real deployment runs its own
ensemble (``docs/operating.md`` says how to start Debian's package by hand).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Final, Self

from runtime.process.children import LOCALHOST, StartError, free_port, read_text, tail, terminate

log = logging.getLogger(__name__)

_POLL_INTERVAL: Final = 0.02
_JAVA_DIR: Final = Path("/usr/share/java")


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
            raise StartError("ZooKeeper has not been started")
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
        return read_text(self.log_path)

    def logtail(self, lines: int = 80) -> str:
        return tail(self.log_text(), lines)

    def classpath(self) -> str:
        """The conf dir, ZooKeeper's jar (its manifest names its dependencies) and a logger."""
        jar = _JAVA_DIR / "zookeeper.jar"
        if not jar.is_file():
            raise StartError(
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
            raise StartError(f"{self.java!r} is not on PATH: ZooKeeper needs a Java runtime")
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
            raise StartError(f"ZooKeeper already running on {self.hosts}")
        for attempt in range(1, self.port_attempts + 1):
            port = preferred_port if attempt == 1 and preferred_port else free_port()
            if self._launch(port):
                return self
            log.info("ZooKeeper could not bind port %d (attempt %d); trying another", port, attempt)
        raise StartError(
            f"ZooKeeper found its port taken {self.port_attempts} times in a row\n"
            + self.logtail()
        )

    def restart(self) -> Self:
        """Stop (if running) and start again on the same port with the same data."""
        port = self.port
        self.stop()
        if not self._launch(port):
            raise StartError(f"ZooKeeper cannot rebind its port {port}\n{self.logtail()}")
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM by pid, wait up to ``timeout`` seconds, then SIGKILL. Keeps the data."""
        process, self._process = self._process, None
        if process is None:
            return
        code = terminate(process, signal.SIGTERM, timeout)
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
                text = read_text(self.log_path, offset)
                if "Address already in use" in text:
                    return False
                raise StartError(
                    f"ZooKeeper exited with status {process.returncode} while starting\n"
                    + tail(text, 80)
                )
            answer, local_port = self._probe(0.5)
            # An answer proves nothing until our own log names the probe: a foreign server
            # may hold the port, and then our process is about to fail to bind.
            if "Mode: standalone" in answer and self._probe_logged(offset, local_port):
                log.info("ZooKeeper ready on %s (pid %d)", self.hosts, process.pid)
                return True
            time.sleep(_POLL_INTERVAL * 2)
        self.stop()
        raise StartError(
            f"ZooKeeper did not answer within {self.start_timeout}s on port {port}\n"
            + tail(read_text(self.log_path, offset), 80)
        )

    def _probe_logged(self, offset: int, local_port: int) -> bool:
        """Whether our ZooKeeper logged serving the probe from ``local_port``."""
        pattern = re.compile(rf"Processing srvr command from /127\.0\.0\.1:{local_port}\b")
        for _ in range(25):
            if pattern.search(read_text(self.log_path, offset)):
                return True
            time.sleep(_POLL_INTERVAL)
        return False
