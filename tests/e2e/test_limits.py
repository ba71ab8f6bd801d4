"""What a hostile client can cost a server or proxy: one test per attack, on real kvs
processes with small limits (``--max-message-size 1MiB``). Each checks the bound the
docs state (``operating.md``, Limits) and that a well-formed call on a fresh connection is
still answered."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import msgpack
import pytest
from kazoo.client import KazooClient

from runtime.testing import ManagedZooKeeper, ServerProcess, peak_mib, rss_mib, wait_until

pytestmark = pytest.mark.e2e

MIB = 1 << 20
LIMIT = MIB
#: What the docs promise a hostile connection can cost: 4 * --max-message-size plus a
#: constant (one read's worth of objects, the interpreter's own arenas).
BOUND_MIB = 4 * LIMIT / MIB + 40


def pack(frame: object) -> bytes:
    packed: bytes = msgpack.packb(frame, use_bin_type=False)
    return packed


def call(port: int, method: str, params: list[object], timeout: float = 5.0) -> list[object]:
    """One request on a fresh connection; the reply as unpacked."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(pack([0, 1, method, params]))
        unpacker = msgpack.Unpacker(raw=False)
        while True:
            data = sock.recv(65536)
            assert data, "the server closed the connection without answering"
            unpacker.feed(data)
            for reply in unpacker:
                return list(reply)


def send_until_closed(sock: socket.socket, chunks: Iterator[bytes], limit: int) -> int:
    """Send chunks until the server closes or ``limit`` bytes went; bytes sent."""
    sent = 0
    try:
        for chunk in chunks:
            sock.sendall(chunk)
            sent += len(chunk)
            if sent >= limit:
                break
    except (BrokenPipeError, ConnectionResetError, TimeoutError):
        pass
    return sent


def closed_by_peer(sock: socket.socket, within: float = 5.0) -> bool:
    sock.settimeout(within)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


@pytest.fixture
def kvs_server(kvs_dir: Path, tmp_path: Path) -> Iterator[ServerProcess]:
    args = [
        "--rpc-port", "0", "--configpath", str(kvs_dir / "config.json"),
        "--datadir", str(tmp_path), "--max-message-size", str(LIMIT), "--read-timeout", "1",
    ]  # fmt: skip
    with ServerProcess(kvs_dir / "kvs_impl.py", args, cwd=kvs_dir) as server:
        yield server


def test_an_unfinished_array_of_empty_arrays_costs_a_bounded_amount(
    kvs_server: ServerProcess,
) -> None:
    before = rss_mib(kvs_server.pid)
    with closing(socket.create_connection(("127.0.0.1", kvs_server.port))) as sock:
        sock.settimeout(5)
        # [0, 1, "put", ["c", "k", [[[], [], ...], [[], [], ...], ...: arrays of 65535
        # empty arrays, 16 MiB of them (each header within msgpack's own length limits).
        header = b"\x94\x00\x01\xa3put\x93\xa1c\xa1k\xdc\xff\xff"
        inner = b"\xdc\xff\xff" + b"\x90" * 65535
        sock.sendall(header[:3])
        chunks = iter([header[3:], *([inner] * 256)])
        sent = send_until_closed(sock, chunks, 16 * MIB)
        assert closed_by_peer(sock)
    assert sent < 16 * MIB, "the server read everything"
    assert peak_mib(kvs_server.pid) - before < BOUND_MIB
    assert call(kvs_server.port, "put", ["c", "k", "v"]) == [1, 1, None, True]
    log = kvs_server.log_path.read_text()
    assert "would take more than 2097152 bytes of memory once decoded" in log


def test_the_message_limit_is_exact(kvs_server: ServerProcess) -> None:
    def request(size: int) -> bytes:
        frame = pack([0, 1, "put", ["c", "k", "x" * size]])
        return pack([0, 1, "put", ["c", "k", "x" * (size - (len(frame) - size))]])

    exact = request(LIMIT)
    assert len(exact) == LIMIT
    with socket.create_connection(("127.0.0.1", kvs_server.port), timeout=5) as sock:
        sock.sendall(exact)
        unpacker = msgpack.Unpacker(raw=False)
        while not (replies := list(unpacker)):
            unpacker.feed(sock.recv(65536))
        assert replies == [[1, 1, None, True]]
    over = request(LIMIT + 1)
    assert len(over) == LIMIT + 1
    with socket.create_connection(("127.0.0.1", kvs_server.port), timeout=5) as sock:
        sock.sendall(over)
        assert closed_by_peer(sock)
    stored = call(kvs_server.port, "get", ["c", "k"])[3]
    overhead = len(pack([0, 1, "put", ["c", "k", ""]])) + 4  # a str 32 header for the value
    assert isinstance(stored, str) and len(stored) == LIMIT - overhead


def test_answers_to_a_client_that_does_not_read_count_as_they_are_made(
    kvs_server: ServerProcess,
) -> None:
    value = "v" * (256 << 10)
    assert call(kvs_server.port, "put", ["c", "big", value])[2] is None
    before = rss_mib(kvs_server.pid)
    with closing(socket.create_connection(("127.0.0.1", kvs_server.port))) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        gets = b"".join(pack([0, i, "get", ["c", "big"]]) for i in range(2000))  # 500 MiB asked
        sock.settimeout(2)
        send_until_closed(sock, iter([gets]), len(gets))
        time.sleep(0.5)
        started = time.monotonic()
        assert call(kvs_server.port, "get", ["c", "small"]) == [1, 1, None, ""]
        other_wait = time.monotonic() - started
        grown = peak_mib(kvs_server.pid) - before
    assert grown < BOUND_MIB, f"{grown:.0f} MiB for answers nobody reads"
    assert other_wait < 1.0


def test_connections_over_the_cap_are_closed_without_a_log_storm(
    kvs_dir: Path, tmp_path: Path
) -> None:
    args = [
        "--rpc-port", "0", "--configpath", str(kvs_dir / "config.json"),
        "--datadir", str(tmp_path), "--max-connections", "500",
    ]  # fmt: skip
    # 64 files: the cap is lowered to what the process can open (and says so).
    with ServerProcess(kvs_dir / "kvs_impl.py", args, cwd=kvs_dir, open_files=96) as server:
        held: list[socket.socket] = []
        try:
            for _ in range(120):  # past the descriptors the server has
                try:
                    held.append(socket.create_connection(("127.0.0.1", server.port), timeout=2))
                except ConnectionResetError:
                    # Over the cap the server accepts and resets at once; with a timeout,
                    # connect() waits for the handshake and may see that reset first.
                    continue
            time.sleep(2.0)
            cpu = _cpu_seconds(server.pid)
            log_size = server.log_path.stat().st_size
            time.sleep(3.0)
            assert _cpu_seconds(server.pid) - cpu < 0.5, "the server spins"
            assert server.log_path.stat().st_size - log_size < 2000, "the log grows"
        finally:
            for sock in held:
                sock.close()
        assert call(server.port, "put", ["c", "k", "v"]) == [1, 1, None, True]
        log = server.log_path.read_text()
        assert "max_connections lowered from 500 to 32" in log
        assert "refusing a connection from 127.0.0.1" in log


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_a_client_that_dribbles_a_request_is_dropped(kvs_server: ServerProcess) -> None:
    """--read-timeout 1: one byte every 0.2 s does not keep a request alive."""
    frame = pack([0, 1, "put", ["c", "k", "v" * 100]])
    with closing(socket.create_connection(("127.0.0.1", kvs_server.port))) as sock:
        started = time.monotonic()
        dropped = False
        for byte in frame:
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                dropped = True
                break
            time.sleep(0.2)
            if time.monotonic() - started > 6:
                break
        assert dropped or closed_by_peer(sock, within=1.0)
        assert time.monotonic() - started < 6
    assert "a request has gained" in kvs_server.log_path.read_text()
    assert call(kvs_server.port, "put", ["c", "k", "v"]) == [1, 1, None, True]


def test_long_names_in_requests_do_not_make_long_log_lines(kvs_server: ServerProcess) -> None:
    name = "m" * (LIMIT // 2)
    for _ in range(50):
        reply = call(kvs_server.port, name, ["c"])
        assert reply[2] == 1  # unknown method, as msgpack-rpc says it
    error = call(kvs_server.port, "save", ["c", "s" * (LIMIT // 2)])[2]
    assert str(error).startswith("ModelFileError: model ID is longer than 255 characters")
    assert len(str(error)) < 1000
    log = kvs_server.log_path.read_text()
    assert max(len(line) for line in log.splitlines()) < 1000
    assert log.count("unknown method") <= 3  # the first, then one a second with a count


def test_replies_to_requests_before_a_bad_byte_are_sent(kvs_server: ServerProcess) -> None:
    with closing(socket.create_connection(("127.0.0.1", kvs_server.port), timeout=5)) as sock:
        sock.sendall(pack([0, 7, "put", ["c", "k", "v"]]) + b"\xc1")
        unpacker = msgpack.Unpacker(raw=False)
        replies = []
        while True:
            data = sock.recv(65536)
            if not data:
                break
            unpacker.feed(data)
            replies += list(unpacker)
    assert replies == [[1, 7, None, True]]


def test_stale_temporary_files_of_interrupted_saves_are_removed(
    kvs_dir: Path, tmp_path: Path
) -> None:
    args = ["--configpath", str(kvs_dir / "config.json"), "--datadir", str(tmp_path)]
    stale_other = tmp_path / ".127.0.0.1_1_kvs_x.jubatus.0123456789ab.tmp"
    fresh_other = tmp_path / ".127.0.0.1_2_kvs_x.jubatus.0123456789ab.tmp"
    not_ours = tmp_path / ".127.0.0.1_1_stat_x.jubatus.0123456789ab.tmp"
    for path in (stale_other, fresh_other, not_ours):
        path.write_bytes(b"x" * 1000)
    os.utime(stale_other, (time.time() - 7200, time.time() - 7200))
    os.utime(not_ours, (time.time() - 7200, time.time() - 7200))
    start = ["--rpc-port", "0", *args]
    with ServerProcess(kvs_dir / "kvs_impl.py", start, cwd=kvs_dir) as first:
        wait_until(lambda: f"removed {stale_other}" in first.log_path.read_text(), timeout=5)
        port = first.port
    assert not stale_other.exists()
    assert fresh_other.exists(), "another server's save may still be running"
    assert not_ours.exists(), "another service's files are left alone"
    own = tmp_path / f".127.0.0.1_{port}_kvs_y.jubatus.0123456789ab.tmp"
    own.write_bytes(b"x")  # what a save a crash interrupted on this port leaves, however new
    restart = ["--rpc-port", str(port), *args]
    with ServerProcess(kvs_dir / "kvs_impl.py", restart, cwd=kvs_dir) as again:
        wait_until(lambda: f"removed {own}" in again.log_path.read_text(), timeout=5)
    assert not own.exists()


@pytest.mark.zookeeper
def test_a_zookeeper_proxy_creates_nothing_for_names_no_server_joined(
    kvs_dir: Path, zookeeper: ManagedZooKeeper
) -> None:
    hosts = f"127.0.0.1:{zookeeper.port}"
    args = ["--rpc-port", "0", "--zookeeper", hosts, "--zookeeper_timeout", "4"]
    with (
        ServerProcess(kvs_dir / "kvs_proxy.py", args, cwd=kvs_dir) as proxy,
        closing(KazooClient(hosts=hosts)) as zk,
    ):
        zk.start()

        def znodes() -> set[str]:
            found, stack = set(), ["/"]
            while stack:
                path = stack.pop()
                for child in zk.get_children(path):
                    found.add(f"{path.rstrip('/')}/{child}")
                    stack.append(f"{path.rstrip('/')}/{child}")
            return found

        proxy_node = f"/jubatus/jubaproxies/kvs/127.0.0.1_{proxy.port}"
        wait_until(lambda: zk.exists(proxy_node) is not None, timeout=5)
        before = znodes()
        before_rss = rss_mib(proxy.pid)
        for index in range(100):
            reply = call(proxy.port, "get", [f"made-up-{index}", "k"])
            assert "no server found" in str(reply[2]), reply
        assert znodes() == before, znodes() ^ before
        assert rss_mib(proxy.pid) - before_rss < 20
        zk.stop()


def test_a_static_proxy_keeps_no_state_for_long_made_up_names(
    kvs_dir: Path, kvs_server: ServerProcess
) -> None:
    args = ["--rpc-port", "0", "--servers", f"127.0.0.1:{kvs_server.port}"]
    with ServerProcess(kvs_dir / "kvs_proxy.py", args, cwd=kvs_dir) as proxy:
        assert call(proxy.port, "put", ["c", "k", "v"])[2] is None
        before = rss_mib(proxy.pid)
        for index in range(100):
            name = f"{index}-" + "n" * (256 << 10)
            assert call(proxy.port, "get", [name, "k"])[3] == "v"
        assert rss_mib(proxy.pid) - before < 40
