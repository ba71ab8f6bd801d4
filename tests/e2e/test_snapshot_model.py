"""jubaclassifier holds its model the snapshot way: real server processes, real ZooKeeper.

- A reader hammering ``classify`` on a member while a mix of a 1e5-feature model applies:
  no read waits for the apply (the worst read is far shorter than the apply; the tight
  figure is ``bench.mix``'s), and every answer is the model before or after the mix,
  never half of it.
- A full buffer: ``train`` calls wait, then fail with a clear error after the buffer's
  timeout; every example of an acknowledged call is learned, none of a failed one.
- A bad update fails alone: the writer goes on, the model is the last good one (applied
  and fire-and-forget modes).
- ``load`` of a corrupt file while readers run: they see the old model; a good ``load``:
  each answer is one model or the other.
- SIGTERM with a non-empty buffer: the buffered updates are applied, in-flight calls are
  answered, and the process exits 0.
- A client that trains then classifies on one connection sees its training; a train of
  one example the model knows is learnt at once (no batch) and seen by the next read;
  bad trains get the same errors whether the server tries calls at once or not.
- Servers that trained nothing during a round hold the same model as the others after it.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import msgpack
import pytest

from engines.classifier import classifier_types as types
from engines.classifier.classifier_client import AsyncClassifier, Classifier
from engines.classifier.model import ClassifierModel
from runtime.errors import RemoteError
from runtime.server.persistence import model_path, write_model_file
from runtime.testing import ServerProcess
from runtime.wire.datum import Datum
from tests.e2e.classifier_cluster import (
    CONFIG,
    IMPL,
    client,
    start_server,
    status,
    up_to_date,
    wait_for,
    write_config,
)

pytestmark = [pytest.mark.e2e]


def standalone(stack: ExitStack, tmp: Path, config: dict[str, Any] | None = None) -> ServerProcess:
    path = tmp / f"classifier-{time.monotonic_ns()}.json"
    path.write_text(json.dumps(config or CONFIG))
    args = ["--rpc-port", "0", "--configpath", str(path), "--datadir", str(tmp)]
    log = tmp / f"standalone-{time.monotonic_ns()}.log"
    return stack.enter_context(ServerProcess(IMPL, args, log_path=log))


def wide(label: str, features: range, value: float = 1.0) -> types.LabeledDatum:
    return types.LabeledDatum(label, Datum({f"f{k}": value for k in features}))


def answers(c: Classifier, probe: list[Datum]) -> list[list[tuple[str, float]]]:
    return [[(r.label, r.score) for r in row] for row in c.classify(probe)]


class Hammer:
    """A thread classifying ``probe`` on a server back to back: its answers and times."""

    def __init__(self, port: int, probe: list[Datum], name: str = "m") -> None:
        self.port, self.probe, self.name = port, probe, name
        self.stop = threading.Event()
        self.seen: list[list[list[tuple[str, float]]]] = []
        self.times: list[float] = []
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Hammer:
        self.thread.start()
        while not self.seen and not self.errors:
            time.sleep(0.005)
        return self

    def _run(self) -> None:
        try:
            with Classifier("127.0.0.1", self.port, self.name, timeout=60) as c:
                while not self.stop.is_set():
                    started = time.perf_counter()
                    self.seen.append(answers(c, self.probe))
                    self.times.append(time.perf_counter() - started)
        except BaseException as error:
            self.errors.append(error)

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(30)
        assert not self.errors, self.errors


@pytest.mark.zookeeper
def test_classify_during_a_large_mix_never_waits_for_it_nor_sees_half_of_it(
    zk_hosts: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path)
    with ExitStack() as stack:
        servers = [start_server(stack, tmp_path, config, zk_hosts, index=i) for i in range(2)]
        wait_for(lambda: up_to_date(servers), "the servers to join")
        probe = [Datum({f"f{k}": 1.0 for k in range(40)}), Datum({"f7": 2.0, "f99998": 1.0})]
        member = servers[1]
        slowest: list[tuple[float, float]] = []
        # A second round only if the first saw a slow read: a read that waits for the apply
        # is slow in every round, a pause of a busy machine (CI) seldom twice.
        for round_ in range(2):
            train_halves(servers, flip=round_ == 1)
            with client(member) as c:
                before = answers(c, probe)
            with Hammer(member.port, probe) as hammer:
                with client(servers[0], timeout=120) as master:
                    assert master.do_mix() is True
                time.sleep(0.2)
            with client(member) as c:
                after = answers(c, probe)
            assert after != before
            # Never half a model: every answer is the model before or after the mix.
            assert all(seen in (before, after) for seen in hammer.seen), "a torn read"
            assert before in hammer.seen[:1] and after in hammer.seen
            apply_seconds = float(status(member)["writer.last_apply_seconds"])
            assert apply_seconds > 0.0
            slowest.append((max(hammer.times), apply_seconds))
            # Reads did not wait for the apply (bench.mix measures the tight figure).
            if max(hammer.times) < max(0.1, apply_seconds / 2):
                break
        else:
            pytest.fail(f"a read waited in both rounds (slowest, apply seconds): {slowest}")


def train_halves(servers: list[ServerProcess], *, flip: bool = False) -> None:
    """Each server learns half of 1e5 features for two labels, server ``i``'s values ``i +
    1`` (the servers differ, so a mix changes every score); ``flip`` swaps the labels, so a
    model that learned them once changes again."""
    size = 100_000
    first, second = ("b", "a") if flip else ("a", "b")
    for i, server in enumerate(servers):
        keys = list(range(i, size, 2))
        examples = []
        for start in range(0, len(keys), 100):
            values = {f"f{k}": 1.0 + i for k in keys[start : start + 100]}
            examples.append(types.LabeledDatum(first, Datum(values)))
            examples.append(types.LabeledDatum(second, Datum({k: -v for k, v in values.items()})))
        with client(server, timeout=120) as c:
            for start in range(0, len(examples), 100):
                assert c.train(examples[start : start + 100]) == 100


def test_a_full_buffer_makes_train_wait_then_fail_clearly_losing_nothing_acknowledged(
    tmp_path: Path,
) -> None:
    config = {**CONFIG, "jubako": {"buffer_size": 50, "wait_timeout": 0.05}}
    with ExitStack() as stack:
        server = standalone(stack, tmp_path, config)

        async def flood() -> tuple[int, list[int], list[str]]:
            async with AsyncClassifier("127.0.0.1", server.port, "m", timeout=60) as c:
                # A batch that keeps the writer busy for a while (some 0.2 s with the
                # compiled kernels, 0.5 s without), then many small ones: the server reads
                # them with its end, as they come in one write (a larger batch pauses the
                # connection's reading while it is applied, and they would come after it).
                big = [wide(f"c{i % 3}", range(i % 50, i % 50 + 40)) for i in range(6000)]
                slow = asyncio.ensure_future(c.train(big))
                await asyncio.sleep(0.05)
                small = [c.train([wide("x", range(k, k + 5))] * 20) for k in range(30)]
                outcomes = await asyncio.gather(*small, return_exceptions=True)
                done = await slow
            trained = [o for o in outcomes if isinstance(o, int)]
            failed = [str(o) for o in outcomes if isinstance(o, BaseException)]
            return done, trained, failed

        done, trained, failed = asyncio.run(flood())
        assert done == 6000
        assert failed, "no call waited past the buffer's timeout"
        assert all("UpdateBufferFull" in e and "stayed full for 0.05 s" in e for e in failed)
        assert trained and all(n == 20 for n in trained)
        with client(server) as c:
            labels = c.get_labels()
        # Every example of an acknowledged call is there, none of a refused one.
        assert sum(labels.values()) == 6000 + sum(trained)
        assert labels.get("x", 0) == sum(trained)
        values = status(server)
        assert int(values["buffer.timed_out"]) == len(failed)
        assert values["buffer.size"] == "50"


@pytest.mark.parametrize("mode", ["applied", "queued"])
def test_a_bad_update_fails_alone_and_the_model_is_the_last_good_one(
    tmp_path: Path, mode: str
) -> None:
    good = [wide("a", range(3), 1.0), wide("b", range(2, 5), 1.0)]
    bad = [wide("a", range(3)), types.LabeledDatum("b", Datum({"x$y": 1.0}))]
    later = [wide("b", range(2), 2.0)]
    expected = ClassifierModel(CONFIG)
    for batch in (good, later):
        expected.train([(e.label, e.data) for e in batch])
    probe = [Datum({"f0": 1.0, "f1": 0.5, "f4": 2.0})]
    with ExitStack() as stack:
        server = standalone(stack, tmp_path, {**CONFIG, "jubako": {"train": mode}})
        with client(server) as c:
            assert c.train(good) == 2
            if mode == "applied":
                with pytest.raises(RemoteError, match=r"train\[1\]: feature key cannot contain"):
                    c.train(bad)
            else:  # answered once queued; the writer refuses it and logs why
                assert c.train(bad) == 2
            assert c.train(later) == 1
            if mode == "queued":  # answered before applied: an update answered once applied
                # and published (only train is queued) comes after them in the writer's order
                assert c.delete_label("no such label") is False
            got = answers(c, probe)
        values = status(server)
    want = [[(label, score) for label, score in row] for row in expected.classify(probe)]
    assert got == want  # the bad call changed nothing, the writer went on
    assert values["writer.failed"] == "1"
    assert "feature key cannot contain" in values["writer.last_error"]
    if mode == "queued":
        assert "queued train failed" in server.log_text()


def test_load_while_readers_run_shows_one_whole_model_or_the_other(tmp_path: Path) -> None:
    probe = [Datum({"f0": 1.0, "f5": -1.0}), Datum({"f3": 2.0})]
    with ExitStack() as stack:
        server = standalone(stack, tmp_path)
        with client(server) as c:
            c.train([wide("a", range(4)), wide("b", range(3, 8))])
            c.save("first")
            first = answers(c, probe)
            c.train([wide("b", range(2), 3.0), wide("c", range(4, 9))])
            second = answers(c, probe)
            assert second != first
        # A corrupt model file, whole as a file (its checks pass): the model inside is bad.
        with client(server) as c:
            config = c.get_config()
        path = model_path(tmp_path, f"127.0.0.1_{server.port}", "classifier", "bad")
        write_model_file(
            path,
            service_type="classifier",
            model_id="bad",
            config_json=config,
            user_data_version=2,
            payload={"version": 0, "count": 1, "weights": {"master": {"a": {"f0": "x"}}}},
        )
        with Hammer(server.port, probe) as hammer, client(server) as c:
            with pytest.raises(RemoteError, match="ModelFileError"):
                c.load("bad")
            time.sleep(0.05)
        assert hammer.seen and all(seen == second for seen in hammer.seen)
        with Hammer(server.port, probe) as hammer, client(server) as c:
            assert c.load("first") is True
            time.sleep(0.05)
            assert answers(c, probe) == first
        assert all(seen in (first, second) for seen in hammer.seen)
        assert hammer.seen[-1] == first


#: The calls of the SIGTERM test: examples per call.
SIZES = [12000, 50, 50, 50]


@pytest.mark.parametrize("mode", ["applied", "queued"])
def test_sigterm_with_a_non_empty_buffer_applies_it_and_answers(tmp_path: Path, mode: str) -> None:
    with ExitStack() as stack:
        server = standalone(stack, tmp_path, {**CONFIG, "jubako": {"train": mode}})

        async def train_then_stop() -> list[object]:
            # A large call, then three small ones, packed first and sent in one write: the
            # small ones wait in the buffer while the writer applies the large one (some
            # 0.3 s with the compiled kernels, 1 s without), whatever the client's pace.
            def request(msgid: int, count: int) -> bytes:
                big = [wide(f"c{i % 3}", range(i % 50, i % 50 + 40)) for i in range(count)]
                examples = [[e.label, e.data.to_msgpack()] for e in big]
                return bytes(msgpack.packb([0, msgid, "train", ["m", examples]]))

            requests = b"".join(request(msgid, n) for msgid, n in enumerate(SIZES))
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(requests)
            answers = msgpack.Unpacker()

            async def answered() -> list[object]:
                results: dict[int, object] = {}
                while len(results) < len(SIZES):
                    chunk = await asyncio.wait_for(reader.read(65536), 60)
                    assert chunk, "the server closed the connection before answering"
                    answers.feed(chunk)
                    for _, msgid, error, result in answers:
                        results[msgid] = error or result
                return [results[msgid] for msgid in range(len(SIZES))]

            try:
                if mode == "queued":
                    got = await answered()
                    server.stop(signal.SIGTERM, timeout=60)
                    return got
                deadline = time.monotonic() + 30
                while int(status(server)["buffer.depth"]) < sum(SIZES[1:]):  # they wait
                    assert time.monotonic() < deadline, "the small calls never waited"
                    await asyncio.sleep(0.01)
                stopping = asyncio.ensure_future(asyncio.to_thread(server.stop, signal.SIGTERM, 60))
                got = await answered()
                await stopping
                return got
            finally:
                writer.close()

        answered = asyncio.run(train_then_stop())
        assert answered == SIZES  # every call answered, none cut off
        assert server.returncode == 0
        log = server.log_text()
    if mode == "queued":  # acknowledged, still in the buffer at SIGTERM: applied first
        left = re.search(r"applying the (\d+) update\(s\) left in the buffer", log)
        assert left is not None and int(left.group(1)) >= 1, log[-2000:]
        assert "applied the buffered updates; writer stopped" in log


@pytest.mark.parametrize("inline_weight", [16, 0])
def test_a_client_sees_its_own_training_on_its_connection(
    tmp_path: Path, inline_weight: int
) -> None:
    """On the event loop (small trains while the writer is idle) or on the writer thread,
    a train is answered once a read sees it, and the model is the in-process one."""
    config = {**CONFIG, "jubako": {"inline_weight": inline_weight}}
    expected = ClassifierModel(CONFIG)
    with ExitStack() as stack:
        server = standalone(stack, tmp_path, config)
        with client(server) as c:
            for i in range(40):
                example = wide(f"L{i}", range(i, i + 3))
                assert c.train([example]) == 1
                expected.train([(example.label, example.data)])
                labels = [r.label for r in c.classify([Datum({f"f{i}": 1.0})])[0]]
                assert f"L{i}" in labels, f"L{i} trained, then not seen"
            probe = [Datum({f"f{k}": 1.0}) for k in range(0, 45, 4)]
            assert answers(c, probe) == expected.classify(probe)
        inline = int(status(server)["writer.inline"])
        assert inline > 0 if inline_weight else inline == 0


def test_known_examples_are_learnt_at_once_and_seen_by_the_next_read(tmp_path: Path) -> None:
    """A train of one example whose label and features the model knows is learnt as it is
    read (at once: no batch, no publish of a copy), and the next read sees it exactly."""
    expected = ClassifierModel(CONFIG)
    with ExitStack() as stack:
        server = standalone(stack, tmp_path)
        with client(server) as c:
            for example in (wide("A", range(13)), wide("B", range(13))):
                assert c.train([example]) == 1  # new label and features: a batch
                expected.train([(example.label, example.data)])
            before = status(server)
            for i in range(60):
                example = wide("AB"[i % 2], range(i % 10, i % 10 + 3), 1.0 + i % 3)
                assert c.train([example]) == 1
                expected.train([(example.label, example.data)])
                probe = [Datum({f"f{i % 10}": 1.0, f"f{i % 7}": 2.0})]
                assert answers(c, probe) == expected.classify(probe)
            after = status(server)
        assert int(after["writer.batches"]) == int(before["writer.batches"])
        assert int(after["writer.inline"]) == int(before["writer.inline"]) + 60
        assert int(after["writer.applied"]) == int(before["writer.applied"]) + 60


def test_a_bad_train_is_answered_alike_whether_tried_at_once_or_not(tmp_path: Path) -> None:
    """Bad ``train`` calls sent raw (bad cluster names, shapes, labels, datums) get the
    same error replies from a server that tries calls at once as from one that does not
    (``inline_weight`` 0), change nothing, and the server goes on."""
    import socket

    known = [[[b"f1", b"x"]], [[b"f2", 1.0]], []]
    bad: list[list[Any]] = [
        [7, [[b"A", known]]],
        [b"\xff", [[b"A", known]]],
        [b"", [[b"A"]]],
        [b"", [[1, known]]],
        [b"", [[b"", known]]],
        [b"", [[b"\xff\xfe", known]]],
        [b"", [[b"A", b"not a datum"]]],
        [b"", [[b"A", [[[b"f1", 3]], [], []]]]],
        [b"", [[b"A", [[[b"f1"]], [], []]]]],
        [b"", [[b"A", [[], [[b"f2", b"text"]], []]]]],
        [b"", [[b"A", [[], [[b"f2", float("nan")]], []]]]],
        [b"", "not a list"],
        [b"", [[b"A", known], [b"B", None]]],
    ]

    def replies(server: ServerProcess) -> list[Any]:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            unpacker = msgpack.Unpacker(raw=False)
            answers: list[Any] = []
            calls = [[b"", [[b"A", known]]], [b"", [[b"B", known]]], *bad, [b"", []]]
            calls.append([b"", [[b"A", known]]])
            for msgid, params in enumerate(calls):
                sock.sendall(msgpack.packb([0, msgid, "train", params], use_bin_type=False))
                while len(answers) <= msgid:
                    data = sock.recv(65536)
                    assert data, "the server closed the connection"
                    unpacker.feed(data)
                    answers.extend(unpacker)
        return [(error, result) for _, _, error, result in answers]

    seen = []
    for inline_weight in (16, 0):
        config = {**CONFIG, "jubako": {"inline_weight": inline_weight}}
        with ExitStack() as stack:
            server = standalone(stack, tmp_path, config)
            got = replies(server)
            with client(server) as c:
                labels = c.get_labels()
            seen.append((got, labels, status(server)["writer.applied"]))
    assert seen[0] == seen[1]
    got, labels, _ = seen[0]
    assert got[:2] == [(None, 1), (None, 1)] and got[-2:] == [(None, 0), (None, 1)]
    assert all(error is not None for error, _ in got[2:-2]), got
    assert labels == {"A": 2, "B": 1}


@pytest.mark.zookeeper
def test_servers_idle_during_a_round_hold_the_same_model_after_it(
    zk_hosts: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path)
    probe = [Datum({f"f{k}": float(k % 3) - 1.0 for k in range(30)})]
    with ExitStack() as stack:
        servers = [start_server(stack, tmp_path, config, zk_hosts, index=i) for i in range(3)]
        wait_for(lambda: up_to_date(servers), "the servers to join")
        for i, server in enumerate(servers[:2]):  # the third trains nothing
            with client(server) as c:
                c.train([wide(f"c{(i + j) % 3}", range(j, j + 10)) for j in range(20)])
        with client(servers[0]) as c:
            assert c.do_mix() is True
        seen = []
        labels = []
        for server in servers:
            with client(server) as c:
                seen.append(answers(c, probe))
                labels.append(c.get_labels())
        assert seen[0] == seen[1] == seen[2]
        assert labels[0] == labels[1] == labels[2]
