"""Static membership: the --servers list, failures marked by callers, retry, watchers."""

from __future__ import annotations

import asyncio
import threading

import pytest

from runtime.cluster.membership import DownList, Membership, Snapshot, Watchers
from runtime.cluster.static import StaticMembership, parse_servers


class Clock:
    """A hand-driven monotonic clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


A, B, C = ("10.0.0.1", 9199), ("10.0.0.2", 9199), ("10.0.0.3", 9200)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("10.0.0.1:9199", [("10.0.0.1", 9199)]),
        ("b:2,a:1", [("b", 2), ("a", 1)]),
        (" localhost:9199 , 127.0.0.1:9200 ", [("localhost", 9199), ("127.0.0.1", 9200)]),
        ("[::1]:9199", [("::1", 9199)]),
        ("h:65535,h:1", [("h", 65535), ("h", 1)]),
    ],
)
def test_parse_servers(spec: str, expected: list[tuple[str, int]]) -> None:
    assert parse_servers(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "expected HOST:PORT"),
        ("   ", "expected HOST:PORT"),
        ("a:1,", "expected HOST:PORT"),
        ("a:1,,b:2", "expected HOST:PORT"),
        ("hostonly", "expected HOST:PORT"),
        (":9199", "expected HOST:PORT"),
        ("a b:1", "expected HOST:PORT"),
        ("h:", "port '' is not in 1..65535"),
        ("h:0", "port '0' is not in 1..65535"),
        ("h:65536", "port '65536' is not in 1..65535"),
        ("h:-1", "is not in 1..65535"),
        ("h:9x", "is not in 1..65535"),
        ("h:" + "9" * 5000, "is not in 1..65535"),
        ("::1:9199", "write IPv6 addresses as"),
        ("[::1]9199", "expected HOST:PORT"),
        ("a:1,a:1", "listed twice"),
    ],
)
def test_parse_servers_rejects_bad_lists(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(".", r"\.")):
        parse_servers(spec)


def test_lists_are_sorted_and_everything_is_active_and_on_the_ring() -> None:
    membership = StaticMembership([C, A, B, A])
    assert isinstance(membership, Membership)
    assert membership.members() == [A, B, C]
    assert membership.actives() == [A, B, C]
    assert membership.cht_members() == [A, B, C]
    assert membership.snapshot() == Snapshot(members=(A, B, C), actives=(A, B, C), cht=(A, B, C))


def test_an_empty_list_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one server"):
        StaticMembership([])


def test_from_spec() -> None:
    assert StaticMembership.from_spec("10.0.0.2:9199,10.0.0.1:9199").members() == [A, B]


def test_mark_down_leaves_a_server_out_until_its_retry_time() -> None:
    clock = Clock()
    membership = StaticMembership([A, B, C], retry_interval=5.0, clock=clock)
    membership.mark_down(*B)
    assert membership.actives() == [A, C]
    assert membership.down() == [B]
    assert membership.members() == [A, B, C]  # still a member
    assert membership.cht_members() == [A, B, C]  # the ring does not move on a failure
    clock.now += 4.9
    assert membership.actives() == [A, C]
    clock.now += 0.2
    assert membership.actives() == [A, B, C]  # tried again
    assert membership.down() == []
    membership.mark_down(*B)  # failed again: out for another interval
    assert membership.actives() == [A, C]


def test_mark_up_brings_a_server_back_at_once() -> None:
    clock = Clock()
    membership = StaticMembership([A, B], retry_interval=60.0, clock=clock)
    membership.mark_down(*A)
    membership.mark_up(*A)
    assert membership.actives() == [A, B]
    membership.mark_up(*A)  # not down: nothing to do
    assert membership.actives() == [A, B]


def test_when_every_server_is_down_all_are_offered() -> None:
    membership = StaticMembership([A, B], retry_interval=60.0, clock=Clock())
    membership.mark_down(*A)
    membership.mark_down(*B)
    assert membership.actives() == [A, B]
    assert membership.down() == [A, B]


def test_marking_an_unknown_server_is_ignored() -> None:
    membership = StaticMembership([A], clock=Clock())
    membership.mark_down("10.9.9.9", 1)
    assert membership.down() == []
    assert membership.actives() == [A]


@pytest.mark.asyncio
async def test_registration_is_accepted_and_changes_nothing() -> None:
    membership = StaticMembership([A, B])
    await membership.start()
    await membership.register_node("10.0.0.9", 1)
    await membership.set_active(True)
    await membership.register_proxy("10.0.0.9", 2)
    assert membership.members() == [A, B]
    assert membership.actives() == [A, B]
    await membership.stop()


@pytest.mark.asyncio
async def test_watchers_hear_mark_down_and_mark_up_on_their_loop() -> None:
    membership = StaticMembership([A, B], retry_interval=60.0)
    seen: list[tuple[list[tuple[str, int]], int]] = []
    changed = asyncio.Event()

    def on_change(snapshot: Snapshot) -> None:
        seen.append((membership.actives(), threading.get_ident()))
        changed.set()

    unsubscribe = membership.watch(on_change)
    membership.mark_down(*A)
    await asyncio.wait_for(changed.wait(), 5)
    changed.clear()
    membership.mark_up(*A)
    await asyncio.wait_for(changed.wait(), 5)
    assert [actives for actives, _ in seen] == [[B], [A, B]]
    assert {thread for _, thread in seen} == {threading.get_ident()}

    unsubscribe()
    unsubscribe()  # twice is harmless
    membership.mark_down(*B)
    await asyncio.sleep(0)  # give a (wrongly) scheduled callback its chance
    assert len(seen) == 2


def test_watch_needs_a_running_loop() -> None:
    with pytest.raises(RuntimeError, match="running event loop"):
        StaticMembership([A]).watch(lambda snapshot: None)


@pytest.mark.asyncio
async def test_watchers_deliver_from_other_threads_and_survive_a_failing_callback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    watchers = Watchers()
    got: list[Snapshot] = []
    done = asyncio.Event()

    def broken(snapshot: Snapshot) -> None:
        raise ValueError("bug in a callback")

    def good(snapshot: Snapshot) -> None:
        got.append(snapshot)
        done.set()

    watchers.add(broken)
    watchers.add(good)
    snapshot = Snapshot(members=(A,))
    thread = threading.Thread(target=watchers.notify, args=(snapshot,))
    thread.start()
    thread.join()
    await asyncio.wait_for(done.wait(), 5)
    assert got == [snapshot]
    assert "bug in a callback" in caplog.text


def test_watchers_drop_callbacks_whose_loop_has_closed() -> None:
    watchers = Watchers()

    async def register() -> None:
        watchers.add(lambda snapshot: None)

    asyncio.run(register())  # the loop closes when run() returns
    assert len(watchers) == 1
    watchers.notify(Snapshot())
    assert len(watchers) == 0


def test_down_list_rejects_a_negative_interval() -> None:
    with pytest.raises(ValueError, match="retry_interval"):
        DownList(-1)


def test_down_list_with_zero_interval_never_leaves_anyone_out() -> None:
    down = DownList(0.0, clock=Clock())
    down.mark_down(A)
    assert not down.is_down(A)
    assert down.usable([A, B]) == [A, B]
