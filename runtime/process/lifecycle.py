"""Lifecycle: states of a server's parts, legal transitions, ordered start and stop.

A :class:`System` (a server or a proxy) is made of subsystems (RPC listener, membership,
mixer, ...). Each has a :class:`State`::

    initial ──► ready ──► running ──► completed
       │          ▲ │        │ ▲
       ▼          │ ▼        ▼ │
     disabled ────┘ (ready ► disabled)   intermitted (suspended; resumable)

    and from any state but completed/terminated: ──► terminated (forced stop)

``disabled`` means "cannot run as configured" (bad config, port taken); it is fixable and
leads back to ``ready``. Only these transitions are allowed; anything else raises
:class:`IllegalTransition` instead of silently changing state. Every transition is logged
with the time, the system's name and the pid, and :meth:`System.status` exposes the states
for ``get_status``.

Children start in order and stop in reverse; if one fails to start, the ones already
running are stopped (in reverse) and the failed one is ``disabled``. The parent's state is
derived: ready when all children are ready, running when all run, completed when all
have completed.
"""

from __future__ import annotations

import enum
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, runtime_checkable

from runtime.errors import JubakoError

log = logging.getLogger(__name__)


class State(enum.Enum):
    INITIAL = "initial"  #: created, not configured yet
    READY = "ready"  #: configured; can start
    RUNNING = "running"  #: serving
    COMPLETED = "completed"  #: stopped normally (final)
    DISABLED = "disabled"  #: cannot run as configured; fixable
    INTERMITTED = "intermitted"  #: suspended; can resume
    TERMINATED = "terminated"  #: forced stop (final)


_FINAL = frozenset({State.COMPLETED, State.TERMINATED})

#: Legal transitions: state → states it may move to.
TRANSITIONS: dict[State, frozenset[State]] = {
    State.INITIAL: frozenset({State.READY, State.DISABLED, State.TERMINATED}),
    State.READY: frozenset({State.RUNNING, State.DISABLED, State.TERMINATED}),
    State.DISABLED: frozenset({State.READY, State.TERMINATED}),
    State.RUNNING: frozenset({State.COMPLETED, State.INTERMITTED, State.TERMINATED}),
    State.INTERMITTED: frozenset({State.RUNNING, State.COMPLETED, State.TERMINATED}),
    State.COMPLETED: frozenset(),
    State.TERMINATED: frozenset(),
}


class IllegalTransition(JubakoError):
    """A transition the lifecycle diagram does not allow: a bug in the caller."""


class Subsystem(Protocol):
    """One part of a system; ``start`` and ``stop`` are called once each, in order."""

    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@runtime_checkable
class Suspendable(Subsystem, Protocol):
    """A subsystem that can pause without stopping (a mixer, training)."""

    async def suspend(self) -> None: ...

    async def resume(self) -> None: ...


class Part:
    """A subsystem made of two coroutines functions: how to start it and how to stop it."""

    def __init__(
        self,
        name: str,
        start: Callable[[], Awaitable[None]],
        stop: Callable[[], Awaitable[None]],
    ) -> None:
        self.name = name
        self._start = start
        self._stop = stop

    async def start(self) -> None:
        await self._start()

    async def stop(self) -> None:
        await self._stop()


class Lifecycle:
    """The state of one named part, changed only along :data:`TRANSITIONS`."""

    #: Changes of state made by every lifecycle of the process (a key of their status).
    moves = 0

    def __init__(self, system: str, name: str) -> None:
        self.system = system
        self.name = name
        self._state = State.INITIAL

    @property
    def state(self) -> State:
        return self._state

    def move(self, target: State, reason: str = "") -> None:
        """Change state; raises :class:`IllegalTransition` if the diagram forbids it."""
        if target not in TRANSITIONS[self._state]:
            raise IllegalTransition(
                f"{self.system}/{self.name}: {self._state.value} -> {target.value} is not allowed"
            )
        log.info(
            "lifecycle %s/%s pid=%d: %s -> %s%s",
            self.system,
            self.name,
            os.getpid(),
            self._state.value,
            target.value,
            f" ({reason})" if reason else "",
        )
        self._state = target
        Lifecycle.moves += 1


class System:
    """A named system of subsystems started in order and stopped in reverse."""

    def __init__(self, name: str, children: Sequence[Subsystem]) -> None:
        self.name = name
        self.children = list(children)
        self.lifecycles = {child.name: Lifecycle(name, child.name) for child in self.children}
        if len(self.lifecycles) != len(self.children):
            raise ValueError("subsystem names must be unique")
        #: :meth:`status`, and the children's states it was made from.
        self._status: tuple[tuple[State, ...], dict[str, str]] | None = None

    @property
    def state(self) -> State:
        """Derived from the children (``initial`` for a system without children)."""
        states = [lc.state for lc in self.lifecycles.values()]
        if not states:
            return State.INITIAL
        for candidate in (State.TERMINATED, State.DISABLED, State.INTERMITTED):
            if candidate in states:
                return candidate
        if all(s is states[0] for s in states):
            return states[0]
        if all(s in _FINAL for s in states):
            return State.COMPLETED
        return State.INITIAL if State.INITIAL in states else State.READY

    def configure(self) -> None:
        """Mark every child ready (their constructors have validated the config)."""
        for lifecycle in self.lifecycles.values():
            if lifecycle.state in (State.INITIAL, State.DISABLED):
                lifecycle.move(State.READY)

    async def start(self) -> None:
        """Start children in order; on a failure stop the started ones and re-raise."""
        self.configure()
        started: list[Subsystem] = []
        for child in self.children:
            lifecycle = self.lifecycles[child.name]
            try:
                await child.start()
            except BaseException as error:
                lifecycle.move(State.DISABLED, f"start failed: {error}")
                for running in reversed(started):
                    await self._stop_one(running)
                raise
            lifecycle.move(State.RUNNING)
            started.append(child)

    async def stop(self) -> None:
        """Stop running or suspended children in reverse order; errors are logged, and
        the remaining children are still stopped."""
        for child in reversed(self.children):
            await self._stop_one(child)

    async def _stop_one(self, child: Subsystem) -> None:
        lifecycle = self.lifecycles[child.name]
        if lifecycle.state not in (State.RUNNING, State.INTERMITTED):
            return
        try:
            await child.stop()
        except Exception:
            log.exception("%s/%s: stop failed", self.name, child.name)
            lifecycle.move(State.TERMINATED, "stop failed")
            return
        lifecycle.move(State.COMPLETED)

    def terminate(self, reason: str = "forced stop") -> None:
        """Mark every unfinished child terminated (the process is about to exit)."""
        for lifecycle in self.lifecycles.values():
            if lifecycle.state not in _FINAL:
                lifecycle.move(State.TERMINATED, reason)

    async def suspend(self, name: str) -> None:
        """Suspend the running child ``name`` (it must be :class:`Suspendable`)."""
        child, lifecycle = self._suspendable(name)
        if lifecycle.state is not State.RUNNING:
            state = lifecycle.state.value
            raise IllegalTransition(f"{self.name}/{name}: cannot suspend while {state}")
        await child.suspend()
        lifecycle.move(State.INTERMITTED)

    async def resume(self, name: str) -> None:
        """Resume the suspended child ``name``."""
        child, lifecycle = self._suspendable(name)
        if lifecycle.state is not State.INTERMITTED:
            state = lifecycle.state.value
            raise IllegalTransition(f"{self.name}/{name}: cannot resume while {state}")
        await child.resume()
        lifecycle.move(State.RUNNING)

    def _suspendable(self, name: str) -> tuple[Suspendable, Lifecycle]:
        for child in self.children:
            if child.name == name:
                if not isinstance(child, Suspendable):
                    raise IllegalTransition(f"{self.name}/{name} cannot be suspended")
                return child, self.lifecycles[name]
        raise KeyError(name)

    def status_key(self) -> int:
        """What :meth:`status` is made from (it changes with any child's state)."""
        return Lifecycle.moves

    def status(self) -> dict[str, str]:
        """``state`` and ``state.<child>`` keys for ``get_status`` (made again only when a
        child's state changed)."""
        states = tuple(lc.state for lc in self.lifecycles.values())
        made = self._status
        if made is None or made[0] != states:
            status = {"state": self.state.value}
            status.update({f"state.{n}": lc.state.value for n, lc in self.lifecycles.items()})
            made = self._status = (states, status)
        return dict(made[1])
