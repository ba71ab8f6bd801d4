"""A proxy process's lifecycle: states in get_proxy_status, SIGTERM drains calls in flight,
a second signal exits at once. Real jubaclassifier server and proxy processes."""

from __future__ import annotations

import re
import signal
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from engines.classifier.classifier_client import Classifier
from runtime.testing import ServerProcess
from tests.e2e.classifier_cluster import IMPL, PROXY, labeled, make_data, write_config

pytestmark = pytest.mark.e2e

#: A train call that keeps the server busy for a second or more.
BIG = labeled(make_data(seed=5, count=30_000, dims=20))


def _cluster(stack: ExitStack, tmp_path: Path) -> tuple[ServerProcess, ServerProcess]:
    config = write_config(tmp_path)
    server = stack.enter_context(
        ServerProcess(IMPL, ["--rpc-port", "0", "--configpath", str(config)])
    )
    proxy = stack.enter_context(
        ServerProcess(
            PROXY,
            ["--rpc-port", "0", "--servers", f"127.0.0.1:{server.port}", "--drain-timeout", "30"],
        )
    )
    return server, proxy


def _forwarded(port: int) -> int:
    with Classifier("127.0.0.1", port, "c") as client:
        [status] = client.get_proxy_status().values()
    return int(status["forward_count"])


def _train_in_background(port: int) -> tuple[threading.Thread, list[object]]:
    outcome: list[object] = []

    def train() -> None:
        try:
            with Classifier("127.0.0.1", port, "c", timeout=60) as client:
                outcome.append(client.train(BIG))
        except Exception as error:
            outcome.append(error)

    before = _forwarded(port)
    thread = threading.Thread(target=train, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while _forwarded(port) == before:  # wait until the proxy has sent it on
        assert time.monotonic() < deadline, "the train call never reached the server"
        time.sleep(0.02)
    return thread, outcome


def test_states_show_and_sigterm_drains_the_call_in_flight(tmp_path: Path) -> None:
    with ExitStack() as stack:
        _, proxy = _cluster(stack, tmp_path)
        with Classifier("127.0.0.1", proxy.port, "c") as client:
            [status] = client.get_proxy_status().values()
        assert status["state"] == "running"
        assert {k: v for k, v in status.items() if k.startswith("state.")} == {
            "state.membership": "running",
            "state.pool": "running",
            "state.rpc": "running",
        }
        thread, outcome = _train_in_background(proxy.port)
        assert thread.is_alive(), "the train call is in flight"
        assert proxy.stop(signal.SIGTERM, timeout=60) == 0
        thread.join(60)
        assert outcome == [len(BIG)], "the call in flight was answered before the exit"
        log = proxy.log_text()
        stops = re.findall(r"classifier-proxy/(\w+) pid=\d+: running -> completed", log)
        assert stops == ["rpc", "pool", "membership"], "stopped in reverse order"


def test_a_second_signal_exits_at_once(tmp_path: Path) -> None:
    with ExitStack() as stack:
        _, proxy = _cluster(stack, tmp_path)
        thread, outcome = _train_in_background(proxy.port)
        proxy.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        proxy.send_signal(signal.SIGINT)
        assert proxy.wait(10) == 1
        thread.join(60)
        assert outcome and isinstance(outcome[0], Exception), "the client saw the proxy go"
        assert "second signal: exiting at once" in proxy.log_text()
