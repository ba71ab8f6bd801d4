"""The classifier service behind a real RPC server on 127.0.0.1: its ``#@nolock`` methods
run under the framework's model lock (``model_lock_for``), so while a writer on another
thread (as the mixer applying a diff) holds it, a ``classify`` waits in the server's queue
and the event loop goes on answering. And what ``model_lock_for`` may name."""

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
from runtime.errors import UnknownMethod
from runtime.rpc.client import AsyncClient
from runtime.rpc.dispatch import Dispatcher
from runtime.rpc.locks import LockMode
from runtime.rpc.server import RpcServer
from runtime.server.main import with_model_locks
from runtime.wire.datum import Datum

CONFIG = {
    "method": "AROW",
    "parameter": {"regularization_weight": 1.0},
    "converter": {"num_rules": [{"key": "*", "type": "num"}]},
}


@pytest_asyncio.fixture
async def served() -> AsyncIterator[tuple[RpcServer, ClassifierServ]]:
    serv = ClassifierServ(json.dumps(CONFIG))
    dispatcher = Dispatcher(with_model_locks(handlers(serv), serv), cluster_name="c")
    rpc = RpcServer(dispatcher, "127.0.0.1", 0, threads=2)
    await rpc.start()
    yield rpc, serv
    await rpc.close()


def _datum(x: float) -> Datum:
    return Datum({"x": x})


@pytest.mark.asyncio
async def test_a_classify_waits_for_a_writer_without_stopping_the_loop(
    served: tuple[RpcServer, ClassifierServ],
) -> None:
    rpc, _ = served
    async with AsyncClassifier("127.0.0.1", rpc.port, "c") as client:
        examples = [types.LabeledDatum("pos", _datum(1.0)), types.LabeledDatum("neg", _datum(-1))]
        for _ in range(3):  # after its first calls, classify is known fast: it runs inline
            await client.train(examples)
            await client.classify([_datum(0.5)])
        assert rpc.timings["classify"].fast

        held = threading.Event()
        release = threading.Event()

        def writer() -> None:  # what the mixer does while it applies a diff
            with rpc.dispatcher.model_lock.write():
                held.set()
                release.wait(5)

        thread = threading.Thread(target=writer)
        thread.start()
        try:
            assert await asyncio.to_thread(held.wait, 5)
            classify = asyncio.ensure_future(client.classify([_datum(0.5)]))
            await asyncio.sleep(0.2)
            assert not classify.done(), "classify ran while a writer held the model lock"
            # The loop is free: another connection is answered at once.
            started = time.monotonic()
            async with AsyncClient("127.0.0.1", rpc.port, timeout=5) as other:
                with pytest.raises(UnknownMethod):
                    await other.call("no_such_method", ["c"])
            assert time.monotonic() - started < 0.5
        finally:
            release.set()
            thread.join(5)
        results = await asyncio.wait_for(classify, 5)
        assert [result.label for result in results[0]] == ["neg", "pos"]


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
