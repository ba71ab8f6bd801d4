"""The classifier service behind a real RPC server on 127.0.0.1, its rows made as the
server makes them: ``classify`` reads the published snapshot with no lock, so while the
writer thread is busy (a mix applying its diff, a long load) a ``classify`` is answered at
once from the last snapshot; a ``train`` queued behind the busy writer is answered once
applied, and a ``classify`` sent after that answer sees it. And what ``model_lock_for``
may name."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Mapping
from typing import ClassVar

import pytest
import pytest_asyncio

from engines.classifier import classifier_types as types
from engines.classifier.classifier_client import AsyncClassifier
from engines.classifier.classifier_impl import handlers
from engines.classifier.classifier_serv import ClassifierServ
from runtime.rpc.dispatch import Dispatcher
from runtime.rpc.locks import LockMode
from runtime.rpc.server import RpcServer
from runtime.server.main import with_model_locks, with_wire_methods
from runtime.server.snapshot import snapshot_rows
from runtime.wire.datum import Datum

CONFIG = {
    "method": "AROW",
    "parameter": {"regularization_weight": 1.0},
    "converter": {"num_rules": [{"key": "*", "type": "num"}]},
}


@pytest_asyncio.fixture
async def served() -> AsyncIterator[tuple[RpcServer, ClassifierServ]]:
    serv = ClassifierServ(json.dumps(CONFIG))
    holder = serv.snapshot_model()
    assert holder is not None
    rows = with_wire_methods(with_model_locks(handlers(serv), serv), serv)
    dispatcher = Dispatcher(snapshot_rows(rows, holder), cluster_name="c")
    rpc = RpcServer(dispatcher, "127.0.0.1", 0, threads=2)
    await holder.start()
    await rpc.start()
    yield rpc, serv
    await rpc.close()
    await holder.stop()


def _datum(x: float) -> Datum:
    return Datum({"x": x})


@pytest.mark.asyncio
async def test_a_classify_is_answered_while_the_writer_is_busy(
    served: tuple[RpcServer, ClassifierServ],
) -> None:
    rpc, serv = served
    holder = serv.snapshot_model()
    assert holder is not None
    async with AsyncClassifier("127.0.0.1", rpc.port, "c") as client:
        examples = [types.LabeledDatum("pos", _datum(1.0)), types.LabeledDatum("neg", _datum(-1))]
        assert await client.train(examples) == 2
        before = await client.classify([_datum(0.5)])

        held, release = threading.Event(), threading.Event()

        def busy(model: object) -> None:  # what a mix's put_diff or a load does
            held.set()
            release.wait(5)

        writer = asyncio.ensure_future(asyncio.to_thread(holder.write, busy))
        try:
            assert await asyncio.to_thread(held.wait, 5)
            train = asyncio.ensure_future(client.train([types.LabeledDatum("neg", _datum(3.0))]))
            started = time.monotonic()
            during = await asyncio.wait_for(client.classify([_datum(0.5)]), 2)
            assert time.monotonic() - started < 1.0
            assert during == before  # the last published snapshot
            await asyncio.sleep(0.1)
            assert not train.done(), "the train was answered before it was applied"
        finally:
            release.set()
        await writer
        assert await asyncio.wait_for(train, 5) == 1
        after = await client.classify([_datum(0.5)])  # sent after the answer: sees it
        assert after != before
        assert {r.label for r in after[0]} == {"pos", "neg"}
    status = holder.status()
    assert status["writer.applied"] == "3"  # two trains and the busy write


def test_model_lock_for_names_only_nolock_methods() -> None:
    serv = ClassifierServ(json.dumps(CONFIG))
    table = with_model_locks(handlers(serv), serv)
    assert table["train"].lock is LockMode.UPDATE
    assert table["classify"].lock is LockMode.ANALYSIS
    assert handlers(serv)["train"].lock is LockMode.NOLOCK  # what the IDL declares

    class Misnamed(ClassifierServ):
        model_lock_for: ClassVar[Mapping[str, LockMode]] = {"trian": LockMode.UPDATE}

    with pytest.raises(ValueError, match="'trian': no such method"):
        with_model_locks(handlers(serv), Misnamed(json.dumps(CONFIG)))
    locked = with_model_locks(handlers(serv), serv)

    class Twice(ClassifierServ):
        model_lock_for: ClassVar[Mapping[str, LockMode]] = {"train": LockMode.ANALYSIS}

    with pytest.raises(ValueError, match="only #@nolock methods"):
        with_model_locks(locked, Twice(json.dumps(CONFIG)))
