"""Lifecycle: every legal transition, every illegal one, ordered start and stop."""

from __future__ import annotations

import itertools
import logging

import pytest

from runtime.process.lifecycle import TRANSITIONS, IllegalTransition, Lifecycle, State, System


class Part:
    def __init__(self, name: str, journal: list[str], *, fail_start: bool = False) -> None:
        self.name = name
        self.journal = journal
        self.fail_start = fail_start

    async def start(self) -> None:
        if self.fail_start:
            raise OSError("port taken")
        self.journal.append(f"start {self.name}")

    async def stop(self) -> None:
        self.journal.append(f"stop {self.name}")


class PausablePart(Part):
    async def suspend(self) -> None:
        self.journal.append(f"suspend {self.name}")

    async def resume(self) -> None:
        self.journal.append(f"resume {self.name}")


def _reach(state: State) -> Lifecycle:
    """A lifecycle walked along legal transitions to ``state``."""
    paths = {
        State.INITIAL: [],
        State.READY: [State.READY],
        State.DISABLED: [State.DISABLED],
        State.RUNNING: [State.READY, State.RUNNING],
        State.INTERMITTED: [State.READY, State.RUNNING, State.INTERMITTED],
        State.COMPLETED: [State.READY, State.RUNNING, State.COMPLETED],
        State.TERMINATED: [State.TERMINATED],
    }
    lifecycle = Lifecycle("sys", "part")
    for step in paths[state]:
        lifecycle.move(step)
    assert lifecycle.state is state
    return lifecycle


@pytest.mark.parametrize(
    ("source", "target"),
    [(s, t) for s, targets in TRANSITIONS.items() for t in sorted(targets, key=lambda x: x.value)],
)
def test_every_legal_transition(source: State, target: State) -> None:
    lifecycle = _reach(source)
    lifecycle.move(target)
    assert lifecycle.state is target


@pytest.mark.parametrize(
    ("source", "target"),
    [(s, t) for s, t in itertools.product(State, State) if t not in TRANSITIONS[s]],
)
def test_every_illegal_transition_is_an_error(source: State, target: State) -> None:
    lifecycle = _reach(source)
    with pytest.raises(IllegalTransition, match=f"{source.value} -> {target.value}"):
        lifecycle.move(target)
    assert lifecycle.state is source


def test_transitions_are_logged_with_system_and_pid(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="runtime.process.lifecycle")
    Lifecycle("kvs-server", "rpc").move(State.READY)
    assert "lifecycle kvs-server/rpc pid=" in caplog.text
    assert "initial -> ready" in caplog.text


@pytest.mark.asyncio
async def test_children_start_in_order_and_stop_in_reverse() -> None:
    journal: list[str] = []
    system = System(
        "srv", [Part("rpc", journal), Part("membership", journal), Part("mixer", journal)]
    )
    assert system.state is State.INITIAL
    await system.start()
    assert system.status()["state"] == "running"
    await system.stop()
    assert system.status()["state"] == "completed"
    assert journal == [
        "start rpc", "start membership", "start mixer",
        "stop mixer", "stop membership", "stop rpc",
    ]  # fmt: skip
    assert system.status() == {
        "state": "completed",
        "state.rpc": "completed",
        "state.membership": "completed",
        "state.mixer": "completed",
    }


@pytest.mark.asyncio
async def test_a_child_that_fails_to_start_is_disabled_and_the_others_stop() -> None:
    journal: list[str] = []
    system = System("srv", [Part("rpc", journal), Part("zk", journal, fail_start=True)])
    with pytest.raises(OSError, match="port taken"):
        await system.start()
    assert journal == ["start rpc", "stop rpc"]
    assert system.lifecycles["zk"].state is State.DISABLED
    assert system.lifecycles["rpc"].state is State.COMPLETED
    assert system.state is State.DISABLED


@pytest.mark.asyncio
async def test_suspend_and_resume() -> None:
    journal: list[str] = []
    system = System("srv", [Part("rpc", journal), PausablePart("mixer", journal)])
    await system.start()
    await system.suspend("mixer")
    assert system.status()["state"] == "intermitted"
    with pytest.raises(IllegalTransition):
        await system.suspend("mixer")
    with pytest.raises(IllegalTransition, match="cannot be suspended"):
        await system.suspend("rpc")
    await system.resume("mixer")
    assert system.status()["state"] == "running"
    await system.stop()
    assert journal[-4:] == ["suspend mixer", "resume mixer", "stop mixer", "stop rpc"]


@pytest.mark.asyncio
async def test_terminate_marks_unfinished_children() -> None:
    system = System("srv", [Part("rpc", []), Part("zk", [])])
    await system.start()
    system.terminate("second signal")
    assert system.state is State.TERMINATED
    with pytest.raises(IllegalTransition):
        system.lifecycles["rpc"].move(State.RUNNING)
