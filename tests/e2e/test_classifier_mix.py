"""A classifier cluster that learns on split data and mixes: real servers, ZooKeeper, proxy.

Margin: after one mix, each server of three, each trained on a disjoint third of the data,
classifies held-out data at least as accurately as one server trained on all of it minus
3 percentage points (on this data set the single server scores about 0.9).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from engines.classifier.classifier_client import Classifier
from engines.classifier.model import ClassifierModel
from runtime.cluster.zookeeper import paths
from runtime.errors import RemoteError
from runtime.mix.mixable import fold_diffs
from runtime.testing import ManagedZooKeeper, ServerProcess, TcpRelay
from runtime.wire.datum import Datum
from tests.e2e.classifier_cluster import (
    CONFIG,
    IMPL,
    PROXY,
    Example,
    accuracy,
    client,
    labeled,
    make_data,
    predictions,
    start_server,
    status,
    up_to_date,
    wait_for,
    write_config,
)
from tests.oracle.model_cases import BM25_CONVERTER, _text_labelled

pytestmark = [pytest.mark.e2e, pytest.mark.zookeeper]

MARGIN = 0.03
DATA = make_data(seed=11, count=2400)
TRAIN, TEST = DATA[:1800], DATA[1800:]


def _train_in_batches(c: Classifier, examples: Sequence[Example], batch: int = 200) -> int:
    trained = 0
    for start in range(0, len(examples), batch):
        trained += c.train(labeled(examples[start : start + batch]))
    return trained


def _joined(
    stack: ExitStack, tmp_path: Path, zk_hosts: str, count: int, *extra: str
) -> list[ServerProcess]:
    """``count`` servers of cluster ``m``, once every one is up to date."""
    config = write_config(tmp_path)
    servers = [
        start_server(stack, tmp_path, config, zk_hosts, *extra, index=i) for i in range(count)
    ]
    wait_for(lambda: up_to_date(servers), "the servers to join")
    return servers


def _train_thirds(servers: list[ServerProcess], limit: int | None = None) -> None:
    """Server i learns TRAIN[i::3] (its first ``limit`` examples)."""
    for i, server in enumerate(servers):
        share = TRAIN[i::3][:limit]
        with client(server) as c:
            assert _train_in_batches(c, share) == len(share)


def _node(server: ServerProcess) -> str:
    return paths.encode_node("127.0.0.1", server.port)


def test_three_servers_trained_on_split_data_converge_by_mix(zk_hosts: str, tmp_path: Path) -> None:
    config = write_config(tmp_path)
    with ExitStack() as stack:
        single = stack.enter_context(
            ServerProcess(IMPL, ["--rpc-port", "0", "--configpath", str(config)])
        )
        servers = [start_server(stack, tmp_path, config, zk_hosts, index=i) for i in range(3)]
        wait_for(lambda: up_to_date(servers), "the servers to join")
        with Classifier("127.0.0.1", single.port, "m") as alone:
            assert _train_in_batches(alone, TRAIN) == len(TRAIN)
            baseline = accuracy(alone, TEST)
            with pytest.raises(RemoteError, match="standalone"):
                alone.do_mix()
        assert baseline > 0.8, "the data set is learnable"
        for i, server in enumerate(servers):
            with client(server) as c:
                assert _train_in_batches(c, TRAIN[i::3]) == len(TRAIN[i::3])
        before = [status(s)["mix.model_version"] for s in servers]
        with client(servers[0]) as c:
            assert c.do_mix() is True
        wait_for(lambda: up_to_date(servers), "every server to apply the mix")
        after = [status(s) for s in servers]
        assert all(int(s["mix.model_version"]) == int(before[0]) + 1 for s in after)
        assert after[0]["mix.last_servers"] == "3"
        clients = [stack.enter_context(client(s)) for s in servers]
        guesses = [predictions(c, TEST) for c in clients]
        assert guesses[0] == guesses[1] == guesses[2], "every server classifies the same"
        for c in clients:
            assert accuracy(c, TEST) >= baseline - MARGIN
            labels = c.get_labels()
            assert sum(labels.values()) == len(TRAIN)
        proxy = stack.enter_context(
            ServerProcess(PROXY, ["--rpc-port", "0", "--zookeeper", zk_hosts])
        )
        with Classifier("127.0.0.1", proxy.port, "m") as through_proxy:
            assert predictions(through_proxy, TEST[:50]) == guesses[0][:50]
            assert sorted(through_proxy.get_status()) == sorted(
                f"127.0.0.1_{s.port}" for s in servers
            )


def test_interval_count_triggers_a_mix(zk_hosts: str, tmp_path: Path) -> None:
    with ExitStack() as stack:
        servers = _joined(stack, tmp_path, zk_hosts, 2, "--interval_count", "50")
        start_version = int(status(servers[0])["mix.model_version"])
        with client(servers[0]) as c:
            for example in TRAIN[:49]:
                c.train(labeled([example]))
            assert status(servers[0])["linear_mixer.count"] == "49"
            c.train(labeled([TRAIN[49]]))
        wait_for(
            lambda: all(int(status(s)["mix.model_version"]) > start_version for s in servers),
            "a mix triggered by the 50th update",
        )
        with client(servers[1]) as other:
            assert sum(other.get_labels().values()) == 50


def test_a_joining_server_copies_the_model_before_it_is_active(
    zk_hosts: str, zk_client: KazooClient, tmp_path: Path
) -> None:
    config = write_config(tmp_path)
    actives = paths.actives_path("classifier", "m")
    with ExitStack() as stack:
        first = start_server(stack, tmp_path, config, zk_hosts, index=0)
        wait_for(lambda: up_to_date([first]), "the first server")
        with client(first) as c:
            _train_in_batches(c, TRAIN[:600])
            assert c.do_mix() is True
            expected = predictions(c, TEST)
        second = start_server(stack, tmp_path, config, zk_hosts, index=1)
        wait_for(lambda: up_to_date([first, second]), "the new server to catch up")
        assert status(second)["mix.catch_ups"] == "1"
        assert _node(second) in zk_client.get_children(actives)
        with client(second) as c:
            assert predictions(c, TEST) == expected, "the copy classifies as the original"
            assert sum(c.get_labels().values()) == 600


def test_a_member_killed_before_a_mix_is_left_out(zk_hosts: str, tmp_path: Path) -> None:
    with ExitStack() as stack:
        servers = _joined(stack, tmp_path, zk_hosts, 3)
        _train_thirds(servers)
        servers[2].kill()  # still registered until its session times out
        with client(servers[0]) as c:
            assert c.do_mix() is True
        survivors = servers[:2]
        wait_for(lambda: up_to_date(survivors), "the survivors to apply the mix")
        assert status(servers[0])["mix.last_servers"] == "2"
        with client(servers[0]) as a, client(servers[1]) as b:
            assert predictions(a, TEST) == predictions(b, TEST)
            assert sum(a.get_labels().values()) == len(TRAIN[0::3]) + len(TRAIN[1::3])


def test_a_new_master_takes_over_when_the_master_is_killed(
    zk_hosts: str, zk_client: KazooClient, tmp_path: Path
) -> None:
    lock_path = paths.master_lock_path("classifier", "m")
    nodes = paths.nodes_path("classifier", "m")
    with ExitStack() as stack:
        servers = _joined(stack, tmp_path, zk_hosts, 3)
        _train_thirds(servers)
        master = servers[0]
        session = zk_client.get(f"{nodes}/{_node(master)}")[1].ephemeralOwner

        def holds_lock() -> bool:
            for child in zk_client.get_children(lock_path):
                stat = zk_client.exists(f"{lock_path}/{child}")
                if stat is not None and stat.ephemeralOwner == session:
                    return True
            return False

        caught = False
        for _ in range(20):  # kill it while it holds the master lock, if we catch it
            mixing = threading.Thread(target=_do_mix_quietly, args=(master,), daemon=True)
            mixing.start()
            deadline = time.monotonic() + 2
            while mixing.is_alive() and time.monotonic() < deadline:
                if holds_lock():
                    caught = True
                    break
            if caught:
                break
            mixing.join(5)
        master.kill()
        survivors = servers[1:]
        with client(survivors[0]) as c:
            started = time.monotonic()
            assert c.do_mix() is True, "a survivor becomes master once the lock is freed"
            took = time.monotonic() - started
        wait_for(lambda: up_to_date(survivors), "the survivors to agree")
        with client(survivors[0]) as a, client(survivors[1]) as b:
            assert predictions(a, TEST) == predictions(b, TEST)
        assert took < 15, f"took over in {took:.1f}s (lock held by the dead master: {caught})"


def _do_mix_quietly(server: ServerProcess) -> None:
    try:
        with client(server, timeout=5) as c:
            c.do_mix()
    except (RemoteError, OSError):
        pass  # the server was killed mid-call


def test_a_server_that_lost_its_session_rejoins_the_mix(
    private_zookeeper: ManagedZooKeeper, tmp_path: Path
) -> None:
    config = write_config(tmp_path)
    hosts = private_zookeeper.hosts
    with ExitStack() as stack:
        relay = stack.enter_context(TcpRelay("127.0.0.1", private_zookeeper.port))
        direct = [start_server(stack, tmp_path, config, hosts, index=i) for i in range(2)]
        cut_off = start_server(stack, tmp_path, config, f"127.0.0.1:{relay.port}", index=2)
        servers = [*direct, cut_off]
        wait_for(lambda: up_to_date(servers), "the servers to join")
        nodes = paths.nodes_path("classifier", "m")
        actives = paths.actives_path("classifier", "m")
        admin = KazooClient(hosts=hosts)
        admin.start(timeout=10)
        stack.callback(admin.close)
        stack.callback(admin.stop)
        relay.cut()
        wait_for(
            lambda: _node(cut_off) not in admin.get_children(nodes),
            "the session of the cut-off server to expire",
        )
        relay.restore()
        wait_for(
            lambda: (
                _node(cut_off) in admin.get_children(nodes)
                and _node(cut_off) in admin.get_children(actives)
            ),
            "the server to register again",
        )
        _train_thirds(servers, limit=200)
        with client(direct[0]) as c:
            assert c.do_mix() is True
        wait_for(lambda: up_to_date(servers), "every server to apply the mix")
        assert status(direct[0])["mix.last_servers"] == "3"
        with client(cut_off) as c:
            assert sum(c.get_labels().values()) == 600


def test_a_suspended_mixer_starts_no_round_until_resumed(zk_hosts: str, tmp_path: Path) -> None:
    with ExitStack() as stack:
        servers = _joined(stack, tmp_path, zk_hosts, 2, "--interval_count", "5")
        version = status(servers[0])["mix.model_version"]
        for server in servers:
            with client(server) as c:
                assert c.get_client().call("suspend_mixer", ["m"]) is True
                assert status(server)["state.mixer"] == "intermitted"
        with client(servers[0]) as c:
            for example in TRAIN[:10]:
                c.train(labeled([example]))
        time.sleep(1.5)  # three mixer ticks: a running mixer would have mixed by now
        assert status(servers[0])["mix.model_version"] == version
        assert status(servers[0])["linear_mixer.count"] == "10"
        with client(servers[0]) as c:
            assert c.get_client().call("resume_mixer", ["m"]) is True
        wait_for(
            lambda: status(servers[1])["mix.model_version"] != version,
            "the resumed mixer to mix",
        )
        assert status(servers[0])["state.mixer"] == "running"
        with client(servers[0]) as c:
            with pytest.raises(RemoteError, match="cannot resume while running"):
                c.get_client().call("resume_mixer", ["m"])


def test_sigterm_exits_cleanly_while_zookeeper_is_down(
    private_zookeeper: ManagedZooKeeper, tmp_path: Path
) -> None:
    config = write_config(tmp_path)
    with ExitStack() as stack:
        server = start_server(stack, tmp_path, config, private_zookeeper.hosts)
        wait_for(lambda: up_to_date([server]), "the server to join")
        private_zookeeper.stop()
        with client(server) as c:
            assert c.train(labeled(TRAIN[:10])) == 10, "serving goes on without ZooKeeper"
        # stop() waits 8 s before SIGKILL (exit status -9): a clean exit is 0.
        assert server.stop(timeout=8) == 0


def test_training_while_rounds_run_loses_no_example(zk_hosts: str, tmp_path: Path) -> None:
    """Rounds triggered every 10 updates while two clients train through a proxy: after a
    final mix every server counts every example exactly once."""
    with ExitStack() as stack:
        servers = _joined(stack, tmp_path, zk_hosts, 3, "--interval_count", "10")
        proxy = stack.enter_context(
            ServerProcess(PROXY, ["--rpc-port", "0", "--zookeeper", zk_hosts])
        )
        examples = TRAIN[:1200]
        errors: list[BaseException] = []

        def train(share: list[tuple[str, object]]) -> None:
            try:
                with Classifier("127.0.0.1", proxy.port, "m") as c:
                    for start in range(0, len(share), 10):
                        c.train(labeled(share[start : start + 10]))  # type: ignore[arg-type]
            except BaseException as error:  # reported below
                errors.append(error)

        workers = [threading.Thread(target=train, args=(examples[i::2],)) for i in range(2)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(120)
        assert not errors, errors
        rounds = sum(int(status(s)["mix.rounds"]) for s in servers)
        assert rounds >= 2, f"rounds ran while training ({rounds})"
        with client(servers[0]) as c:
            assert c.do_mix() is True
        wait_for(lambda: up_to_date(servers), "every server to apply the last mix")
        for server in servers:
            with client(server) as c:
                assert sum(c.get_labels().values()) == len(examples)


def test_a_config_over_the_whole_converter_mixes_its_counts(zk_hosts: str, tmp_path: Path) -> None:
    """bm25 (with its group counts), the weight global weight and hashing: two servers
    trained on halves answer, after one mix, as two models mixed in this process."""
    full: dict[str, object] = {**CONFIG, "converter": BM25_CONVERTER}
    data = [(label, Datum(row)) for label, row in _text_labelled(41, 100)]
    halves = [data[:60][i::2] for i in range(2)]
    models = [ClassifierModel(full) for _ in range(2)]
    with ExitStack() as stack:
        servers = [
            start_server(stack, tmp_path, write_config(tmp_path, full), zk_hosts, index=i)
            for i in range(2)
        ]
        wait_for(lambda: up_to_date(servers), "the servers to join")
        for server, model, half in zip(servers, models, halves, strict=True):
            with client(server) as c:
                assert c.train(labeled(half)) == len(half)
            model.train(half)
        with client(servers[0]) as c:
            assert c.do_mix() is True
        wait_for(lambda: up_to_date(servers), "every server to apply the mix")
        mixed = fold_diffs(models[0], [m.get_diff() for m in models])
        assert all(m.put_diff(mixed) for m in models)
        probe = [datum for _, datum in data[60:]]
        expected = models[0].classify(probe)
        for server in servers:
            with client(server) as c:
                rows = c.classify(probe)
            for row, want in zip(rows, expected, strict=True):
                got = sorted((r.label, r.score) for r in row)
                assert [label for label, _ in got] == [label for label, _ in want]
                assert all(
                    abs(a - b) <= 1e-12 * max(1.0, abs(b))
                    for (_, a), (_, b) in zip(got, want, strict=True)
                )
