"""The test helpers themselves: server processes, ZooKeeper, the relay."""

from __future__ import annotations

import os
import signal
import socket
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from runtime.testing import (
    LISTENING_RE,
    ManagedZooKeeper,
    ServerProcess,
    TcpRelay,
    TestingError,
    free_port,
)

# An echo server that binds port 0 and logs its port as Jubako servers do. SIGTERM → exit 0.
ECHO_SERVER = textwrap.dedent(
    """
    import signal, socket, sys, threading

    mode = sys.argv[1] if len(sys.argv) > 1 else "serve"
    if mode == "crash":
        print("about to fail", flush=True)
        sys.exit(3)
    if mode == "silent":
        signal.pause()
    if mode == "stubborn":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    print("INFO some.logger: listening on 127.0.0.1:%d" % listener.getsockname()[1], flush=True)

    def echo(conn):
        with conn:
            while data := conn.recv(4096):
                conn.sendall(data)

    while True:
        conn, _ = listener.accept()
        # The thread starts with SIGTERM blocked (it inherits the mask), so the signal goes
        # to this thread: taken by the other, it would leave this one blocked in accept()
        # with the handler never run.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        threading.Thread(target=echo, args=(conn,), daemon=True).start()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    """
)


@pytest.fixture
def echo_script(tmp_path: Path) -> Path:
    path = tmp_path / "echo_server.py"
    path.write_text(ECHO_SERVER, encoding="utf-8")
    return path


def _echo(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(payload)
        conn.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := conn.recv(4096):
            chunks.append(chunk)
    return b"".join(chunks)


# -- ServerProcess ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "host", "port"),
    [
        ("2024 INFO x: listening on 127.0.0.1:9199", "127.0.0.1", 9199),
        ("listening on 0.0.0.0:1", "0.0.0.0", 1),
        ("listening on [::1]:65535", "::1", 65535),
        ("listening on localhost:80 (pid 3)", "localhost", 80),
    ],
)
def test_listening_line_is_parsed(line: str, host: str, port: int) -> None:
    match = LISTENING_RE.search(line)
    assert match is not None
    assert (match["host"], int(match["port"])) == (host, port)


def test_server_process_reports_the_bound_port_and_stops_cleanly(server_process, echo_script):
    process = server_process(echo_script)
    assert process.host == "127.0.0.1"
    assert process.running
    assert _echo(process.port, b"ping") == b"ping"
    assert "listening on 127.0.0.1:" in process.log_text()
    assert process.stop() == 0
    assert not process.running
    assert process.returncode == 0


def test_server_process_that_exits_early_reports_its_log(tmp_path, echo_script):
    process = ServerProcess(echo_script, ["crash"], log_path=tmp_path / "crash.log")
    with pytest.raises(TestingError, match=r"exited with status 3 before listening") as info:
        process.start()
    assert "about to fail" in str(info.value)


def test_server_process_that_never_listens_times_out_and_is_killed(tmp_path, echo_script):
    process = ServerProcess(
        echo_script, ["silent"], log_path=tmp_path / "silent.log", ready_timeout=0.5
    )
    with pytest.raises(TestingError, match="logged no 'listening on HOST:PORT'"):
        process.start()
    assert process.returncode == -signal.SIGKILL


def test_stop_kills_a_process_that_ignores_the_signal(tmp_path, echo_script):
    with ServerProcess(echo_script, ["stubborn"], log_path=tmp_path / "s.log") as process:
        assert process.stop(timeout=0.3) == -signal.SIGKILL


def test_kill_and_exit_status(tmp_path, echo_script):
    process = ServerProcess(echo_script, log_path=tmp_path / "k.log").start()
    pid = process.pid
    assert process.kill() == -signal.SIGKILL
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_server_process_uses_the_given_interpreter_and_env(tmp_path):
    script = tmp_path / "env.py"
    script.write_text(
        "import os, sys, time\n"
        "print('listening on 127.0.0.1:%s' % os.environ['FAKE_PORT'], sys.executable,"
        " flush=True)\n"
        "time.sleep(60)\n",
        encoding="utf-8",
    )
    with ServerProcess(script, env={"FAKE_PORT": "4242"}, log_path=tmp_path / "e.log") as proc:
        assert proc.port == 4242
        assert sys.executable in proc.log_text()


def test_unstarted_server_process_has_no_port_or_pid(tmp_path, echo_script):
    process = ServerProcess(echo_script, log_path=tmp_path / "n.log")
    with pytest.raises(TestingError):
        _ = process.port
    with pytest.raises(TestingError):
        _ = process.pid


# -- ZooKeeper --------------------------------------------------------------------------------


@pytest.mark.zookeeper
def test_session_zookeeper_serves_standalone(zookeeper: ManagedZooKeeper) -> None:
    assert zookeeper.running
    assert zookeeper.hosts == f"127.0.0.1:{zookeeper.port}"
    assert "Mode: standalone" in zookeeper.srvr()
    assert f"binding to port /127.0.0.1:{zookeeper.port}" in zookeeper.log_text()


@pytest.mark.zookeeper
def test_port_clash_moves_on_and_restart_keeps_port_and_data(zookeeper: ManagedZooKeeper):
    private = ManagedZooKeeper()
    try:
        private.start(preferred_port=zookeeper.port)  # taken: must move to another port
        assert private.port != zookeeper.port
        assert "Address already in use" in private.log_text()
        client = KazooClient(hosts=private.hosts)
        client.start(timeout=10)
        try:
            client.create("/kept", b"data")
        finally:
            client.stop()
            client.close()

        port, root = private.port, private.root
        private.restart()
        assert private.port == port
        assert "Mode: standalone" in private.srvr()
        client = KazooClient(hosts=private.hosts)
        client.start(timeout=10)
        try:
            assert client.get("/kept")[0] == b"data"
        finally:
            client.stop()
            client.close()

        private.stop()
        assert not private.running
        assert private.srvr(timeout=0.5) == ""
        assert root.exists()  # stop keeps the data
    finally:
        private.close()
    assert not root.exists()


def test_managed_zookeeper_without_java_fails_clearly() -> None:
    server = ManagedZooKeeper(java="no-such-java-binary")
    try:
        with pytest.raises(TestingError, match="not on PATH"):
            server.start()
    finally:
        server.close()


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        assert sock.getsockname()[1] == port


# -- TcpRelay ---------------------------------------------------------------------------------


@pytest.fixture
def echo_listener() -> Iterator[int]:
    """An in-process echo server on port 0 (threads); yields its port."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.05)  # so the thread notices `stop` (close() does not wake accept)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            threading.Thread(target=_echo_conn, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(5)
    listener.close()


def _echo_conn(conn: socket.socket) -> None:
    with conn:
        try:
            while data := conn.recv(4096):
                conn.sendall(data)
        except OSError:
            pass


def test_relay_forwards_cuts_and_restores(echo_listener: int) -> None:
    with TcpRelay("127.0.0.1", echo_listener) as relay:
        assert _echo(relay.port, b"hello") == b"hello"

        held = socket.create_connection(("127.0.0.1", relay.port), timeout=5)
        held.sendall(b"x")
        assert held.recv(1) == b"x"
        relay.cut()
        assert relay.is_cut
        assert held.recv(1) == b""  # the relayed connection was dropped
        held.close()
        with socket.create_connection(("127.0.0.1", relay.port), timeout=5) as refused:
            assert refused.recv(1) == b""  # accepted and closed at once while cut

        relay.restore()
        assert _echo(relay.port, b"again") == b"again"
        assert relay.accepted >= 4


# -- the conftest's failure reports -----------------------------------------------------------


@pytest.mark.zookeeper
def test_failing_tests_report_the_logs_they_touched(
    pytester: pytest.Pytester, echo_script: Path
) -> None:
    conftest = Path(__file__).parents[1] / "conftest.py"
    pytester.makeconftest(conftest.read_text(encoding="utf-8"))
    pytester.makepyfile(
        test_inner=f"""
        def test_zk_fails(zookeeper):
            assert False, "boom"

        def test_process_fails(server_process):
            server_process({str(echo_script)!r})
            assert False, "bang"

        def test_zk_passes(zookeeper):
            assert zookeeper.running
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=2, passed=1)
    result.stdout.fnmatch_lines(
        [
            "*_ test_zk_fails _*",
            "*- ZooKeeper log (last 60 lines) -*",
            "*_ test_process_fails _*",
            "*- echo_server.py #1 log (last 60 lines) -*",
            "*listening on 127.0.0.1:*",
        ]
    )
    assert "ZooKeeper log" not in result.stdout.str().split("_ test_process_fails _")[1]
