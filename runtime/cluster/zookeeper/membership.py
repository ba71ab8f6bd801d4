"""Membership kept in ZooKeeper with kazoo, in Jubatus's znode layout.

A server registers ephemeral znodes (``nodes/<ip>_<port>``, the 8 ``cht/<md5>`` vnodes if
its service uses cht, ``actives/<ip>_<port>`` while its model is current); a proxy
registers ``/jubatus/jubaproxies/<type>/<ip>_<port>``. Everyone watches ``nodes``,
``actives`` and ``cht`` with kazoo's ``ChildrenWatch`` and keeps the lists in a cache.

What happens when ZooKeeper goes away:

- While the connection is down, the cache keeps the last known lists and serving goes on
  with them. Nothing is dropped because ZooKeeper is silent.
- If the session expired meanwhile (kazoo reports LOST), the ephemeral znodes are gone;
  once a new session is CONNECTED they are created again, on a kazoo worker thread (the
  state listener itself only schedules that: blocking there would stall kazoo).
  ``reregistrations`` and ``last_reregistration_seconds`` tell how it went.
- A standalone ZooKeeper that restarts keeps its sessions: a client that reconnects within
  its timeout after the restart resumes the same session and its znodes are still there.

Threads: kazoo runs its own threads and calls watches on them. Every blocking ZooKeeper
call made for the ``async`` methods runs in a worker thread (``asyncio.to_thread``) and is
bounded by the session timeout; list reads come from the cache; watch callbacks are handed
to the caller's loop (:class:`~runtime.cluster.membership.Watchers`).

This module never decides what a change means (the proxy and the mixer do) and never
exits the process on a session loss (Jubatus does; we re-register instead).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Final

from kazoo.client import KazooClient
from kazoo.exceptions import KazooException, NodeExistsError, NoNodeError
from kazoo.protocol.states import KazooState
from kazoo.recipe.watchers import ChildrenWatch

from runtime.cluster.membership import ChangeCallback, DownList, Node, Snapshot, Watchers
from runtime.cluster.zookeeper import paths
from runtime.errors import MembershipError

__all__ = ["ZooKeeperMembership", "connect_client", "make_client"]

log = logging.getLogger(__name__)

_POLL: Final = 0.1


def make_client(hosts: str, session_timeout: float = 10.0) -> KazooClient:
    """A kazoo client (not started) that retries connecting forever, at least every 2 s.

    kazoo's default back-off grows to a minute between attempts, which would keep a
    process away from a ZooKeeper that came back long ago.
    """
    if session_timeout <= 0:
        raise ValueError(f"session_timeout must be > 0, not {session_timeout}")
    max_delay = max(0.2, min(2.0, session_timeout / 4))
    return KazooClient(
        hosts=hosts,
        timeout=session_timeout,
        connection_retry={"max_tries": -1, "delay": 0.1, "backoff": 2, "max_delay": max_delay},
    )


def connect_client(hosts: str, session_timeout: float = 10.0) -> KazooClient:
    """A started client (:func:`make_client`); blocks up to ``session_timeout`` seconds.

    Raises MembershipError ("cannot connect zk in N sec: HOSTS", Jubatus's words) when
    ZooKeeper does not answer in time, and for a malformed ``hosts``. Call it off the event
    loop (``asyncio.to_thread``). The caller stops and closes the client.
    """
    try:
        client = make_client(hosts, session_timeout)
    except ValueError as error:
        raise MembershipError(f"bad ZooKeeper address {hosts!r}: {error}") from None
    try:
        client.start(timeout=session_timeout)
    except client.handler.timeout_exception:
        client.close()
        raise MembershipError(f"cannot connect zk in {session_timeout:g} sec: {hosts}") from None
    return client


class ZooKeeperMembership:
    """A :class:`~runtime.cluster.membership.Membership` for one cluster, kept in ZooKeeper.

    Give it either a connect string (it then owns a client: ``start()`` connects, ``stop()``
    closes the session, which removes its ephemeral znodes at once) or a started
    ``KazooClient`` shared with other parts of the process (``stop()`` then deletes only
    the znodes this instance created and leaves the client open).
    """

    def __init__(
        self,
        zk: str | KazooClient,
        service_type: str,
        name: str,
        *,
        use_cht: bool = False,
        session_timeout: float = 10.0,
        retry_interval: float = 10.0,
        create: bool = True,
    ) -> None:
        """
        :param zk: ``"host:port[,host:port...][/chroot]"`` or a started client.
        :param service_type: e.g. ``"classifier"``; :param name: the cluster name.
        :param use_cht: the service has cht methods: register vnodes.
        :param session_timeout: seconds; also bounds every call made here.
        :param retry_interval: seconds a server marked down stays out of ``actives()``.
        :param create: create the cluster's persistent znodes (a server); a proxy only
            watches a cluster some server created, and creates nothing for a name a client
            made up (``start`` raises MembershipError for an unknown cluster).
        """
        self.service_type = service_type
        self.name = name
        self.use_cht = use_cht
        self.create = create
        self.session_timeout = session_timeout
        # Fail on a bad type or name now, not on a kazoo thread later.
        self._nodes_path = paths.nodes_path(service_type, name)
        self._actives_path = paths.actives_path(service_type, name)
        self._cht_path = paths.cht_path(service_type, name)
        if isinstance(zk, str):
            self._hosts = zk
            self._client = make_client(zk, session_timeout)
            self._owns_client = True
        else:
            self._hosts = str(zk.hosts)
            self._client = zk
            self._owns_client = False
        self._watchers = Watchers()
        self._down = DownList(retry_interval)
        self._cache_lock = threading.Lock()
        self._snapshot = Snapshot()
        self._cht_owner: dict[str, Node | None] = {}
        # Every ephemeral znode this instance keeps: path -> data. Guarded by _reg_lock,
        # which is held across the ZooKeeper calls that create or delete them.
        self._reg_lock = threading.Lock()
        self._ephemerals: dict[str, bytes] = {}
        self._self_node: Node | None = None
        self._children_watches: list[ChildrenWatch] = []
        self._started = False
        self._closed = False
        self._session_lost = False
        #: Times the ephemeral znodes were created again after a session loss.
        self.reregistrations = 0
        #: Seconds from the new session's CONNECTED to the znodes being back (last time).
        self.last_reregistration_seconds: float | None = None

    # -- facts ------------------------------------------------------------------------------

    @property
    def client(self) -> KazooClient:
        return self._client

    @property
    def connected(self) -> bool:
        return bool(self._client.connected)

    @property
    def registered_paths(self) -> list[str]:
        """The ephemeral znodes this instance keeps, sorted."""
        with self._reg_lock:
            return sorted(self._ephemerals)

    def members(self) -> list[Node]:
        return list(self.snapshot().members)

    def actives(self) -> list[Node]:
        return self._down.usable(self.snapshot().actives)

    def cht_members(self) -> list[Node]:
        return list(self.snapshot().cht)

    def snapshot(self) -> Snapshot:
        with self._cache_lock:
            return self._snapshot

    def watch(self, callback: ChangeCallback) -> Callable[[], None]:
        return self._watchers.add(callback)

    def mark_down(self, host: str, port: int) -> None:
        if not self._down.is_down((host, port)):
            log.debug(  # the proxy's keeper logs each server's state
                "%s:%d marked down; retried after %.1fs", host, port, self._down.retry_interval
            )
        self._down.mark_down((host, port))
        self._watchers.notify(self.snapshot())

    def down(self) -> list[Node]:
        return self._down.down()

    def mark_up(self, host: str, port: int) -> None:
        if self._down.mark_up((host, port)):
            log.debug("%s:%d is up again", host, port)
            self._watchers.notify(self.snapshot())

    # -- life cycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect (own client), create the persistent znodes, load and watch the lists."""
        if self._closed:
            raise MembershipError("membership was stopped; make a new one")
        if self._started:
            raise MembershipError("membership already started")
        await asyncio.to_thread(self._start_sync)
        self._started = True

    def _start_sync(self) -> None:
        if self._owns_client:
            try:
                self._client.start(timeout=self.session_timeout)
            except self._client.handler.timeout_exception:
                raise MembershipError(
                    f"cannot connect zk in {self.session_timeout:g} sec: {self._hosts}"
                ) from None
        elif not self._client.connected:
            raise MembershipError("the ZooKeeper client given to membership is not connected")
        self._client.add_listener(self._on_state)
        try:
            if self.create:
                for path in paths.persistent_paths(self.service_type, self.name):
                    self._wait(self._client.ensure_path_async(path), f"create {path}")
            else:
                for path in (self._nodes_path, self._actives_path, self._cht_path):
                    if self._wait(self._client.exists_async(path), f"look up {path}") is None:
                        raise MembershipError(
                            f"no cluster {self.service_type}/{self.name}: no server has joined it"
                        )
            for path, on_change in (
                (self._nodes_path, self._on_nodes),
                (self._actives_path, self._on_actives),
                (self._cht_path, self._on_cht),
            ):
                self._children_watches.append(ChildrenWatch(self._client, path, on_change))
        except BaseException:
            self._close_sync()
            raise
        snapshot = self.snapshot()
        log.info(
            "membership %s/%s: %d members, %d active, %d on the ring",
            self.service_type,
            self.name,
            len(snapshot.members),
            len(snapshot.actives),
            len(snapshot.cht),
        )

    async def stop(self) -> None:
        """Withdraw this process's znodes and stop watching (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._watchers.clear()
        await asyncio.to_thread(self._close_sync)

    def _close_sync(self) -> None:
        self._closed = True
        self._client.remove_listener(self._on_state)
        if self._owns_client:
            # Closing the session removes every ephemeral znode at once.
            try:
                self._client.stop()
            finally:
                self._client.close()
        else:
            with self._reg_lock:
                for path in list(self._ephemerals):
                    self._delete_quietly(path)
                self._ephemerals.clear()
        log.info("membership %s/%s stopped", self.service_type, self.name)

    # -- registration -----------------------------------------------------------------------

    async def register_node(self, host: str, port: int) -> None:
        """Create ``cht`` vnodes (cht services) and ``nodes/<ip>_<port>``, as Jubatus does.

        A znode left by an earlier process on the same address (killed, session not yet
        expired) is waited for until the session timeout has passed; then MembershipError.
        """
        self._require_started()
        if host in {"0.0.0.0", ""}:
            raise MembershipError(
                f"register a reachable address, not {host!r} (see --listen_addr/--listen_if)"
            )
        node_name = paths.encode_node(host, port)
        if self._self_node is not None and self._self_node != (host, port):
            registered = "{}:{}".format(*self._self_node)
            raise MembershipError(f"already registered as {registered}")
        self._self_node = (host, port)
        wanted: list[tuple[str, bytes]] = []
        if self.use_cht:
            wanted += [
                (f"{self._cht_path}/{vnode}", data.encode("ascii"))
                for vnode, data in paths.cht_vnodes(host, port)
            ]
        wanted.append((f"{self._nodes_path}/{node_name}", b""))
        await asyncio.to_thread(self._register_sync, wanted)
        log.info("registered %s in %s/%s", node_name, self.service_type, self.name)

    async def set_active(self, active: bool) -> None:
        """Create (``True``) or delete (``False``) ``actives/<ip>_<port>`` for this server."""
        self._require_started()
        if self._self_node is None:
            raise MembershipError("set_active() before register_node()")
        path = f"{self._actives_path}/{paths.encode_node(*self._self_node)}"
        if active:
            await asyncio.to_thread(self._register_sync, [(path, b"")])
        else:
            await asyncio.to_thread(self._unregister_sync, path)
        log.info("%s is %s", path, "active" if active else "not active")

    async def register_proxy(self, host: str, port: int) -> None:
        """Create ``/jubatus/jubaproxies/<type>/<ip>_<port>``."""
        self._require_started()
        path = paths.proxy_path(self.service_type, host, port)
        await asyncio.to_thread(self._register_sync, [(path, b"")])
        log.info("registered proxy %s", path)

    def _require_started(self) -> None:
        if not self._started or self._closed:
            raise MembershipError("membership is not running (start() it first)")

    def _register_sync(self, wanted: list[tuple[str, bytes]]) -> None:
        with self._reg_lock:
            for path, data in wanted:
                # Recorded first: if ZooKeeper does not answer now, the next session
                # still creates it.
                self._ephemerals[path] = data
                self._create_ephemeral(path, data, wait_for_stale=self.session_timeout * 1.5)

    def _unregister_sync(self, path: str) -> None:
        with self._reg_lock:
            self._ephemerals.pop(path, None)
            self._delete(path)

    def _create_ephemeral(self, path: str, data: bytes, *, wait_for_stale: float) -> None:
        """Create ``path``; fine if our own session holds it; wait out a stale owner."""
        deadline = time.monotonic() + wait_for_stale
        warned = False
        while True:
            try:
                self._wait(self._client.create_async(path, data, ephemeral=True), f"create {path}")
                return
            except NodeExistsError:
                pass
            stat = self._wait(self._client.exists_async(path), f"check {path}")
            if stat is None:
                continue  # vanished meanwhile: create again
            if stat.ephemeralOwner == self._client.client_id[0]:
                return
            if time.monotonic() >= deadline:
                raise MembershipError(
                    f"{path} is held by another ZooKeeper session (another process on the "
                    f"same address?) and did not go away within {wait_for_stale:g}s"
                )
            if not warned:
                log.warning("%s is held by another session; waiting for it to expire", path)
                warned = True
            time.sleep(_POLL)

    def _delete(self, path: str) -> None:
        try:
            self._wait(self._client.delete_async(path), f"delete {path}")
        except NoNodeError:
            pass

    def _delete_quietly(self, path: str) -> None:
        if not self._client.connected:
            log.warning("not connected: %s is left to expire with the session", path)
            return
        try:
            self._delete(path)
        except (MembershipError, KazooException) as error:
            log.warning("could not delete %s: %s", path, error)

    def _wait(self, result: Any, what: str) -> Any:
        """The value of a kazoo async result, waiting at most the session timeout."""
        try:
            return result.get(timeout=self.session_timeout)
        except self._client.handler.timeout_exception:
            raise MembershipError(
                f"ZooKeeper did not answer within {self.session_timeout:g}s ({what})"
            ) from None

    # -- session events ---------------------------------------------------------------------

    def _on_state(self, state: str) -> None:
        """kazoo's state listener: runs on kazoo's connection thread, so it must not block."""
        if self._closed:
            return
        if state == KazooState.LOST:
            self._session_lost = True
            log.warning("ZooKeeper session lost; serving with the last known membership")
        elif state == KazooState.SUSPENDED:
            log.warning("ZooKeeper connection suspended; serving with the last known membership")
        elif state == KazooState.CONNECTED:
            if self._session_lost:
                self._session_lost = False
                self._client.handler.spawn(self._reregister, time.monotonic())
            else:
                log.info("ZooKeeper connection back (same session)")

    def _reregister(self, connected_at: float) -> None:
        """Create every ephemeral znode again in the new session (on a kazoo worker)."""
        with self._reg_lock:
            if self._closed:
                return
            wanted = sorted(self._ephemerals.items())
            try:
                for path, data in wanted:
                    self._create_ephemeral(path, data, wait_for_stale=self.session_timeout * 1.5)
            except (MembershipError, KazooException) as error:
                log.error("could not register again after the session loss: %s", error)
                self._session_lost = True  # try again on the next CONNECTED
                return
        elapsed = time.monotonic() - connected_at
        self.reregistrations += 1
        self.last_reregistration_seconds = elapsed
        log.warning(
            "registered %d znodes again %.3fs after the new session connected",
            len(wanted),
            elapsed,
        )

    # -- watches (kazoo threads) ------------------------------------------------------------

    def _on_nodes(self, children: list[str]) -> bool:
        return self._update(members=_decode_all(children, self._nodes_path))

    def _on_actives(self, children: list[str]) -> bool:
        return self._update(actives=_decode_all(children, self._actives_path))

    def _on_cht(self, children: list[str]) -> bool:
        """Vnode names are hashes: the owner is in each vnode's data (read once per name)."""
        if self._closed:
            return False
        owners: dict[str, Node | None] = {}
        for name in children:
            if name in self._cht_owner:
                owners[name] = self._cht_owner[name]
                continue
            try:
                data, _ = self._client.get(f"{self._cht_path}/{name}")
                owners[name] = paths.decode_node(data.decode("ascii", "replace"))
            except NoNodeError:
                continue  # gone already
            except ValueError as error:
                log.warning("ignoring cht vnode %s: %s", name, error)
                owners[name] = None  # remembered, so it is not read again
            except KazooException as error:
                log.warning("cannot read cht vnode %s yet: %s", name, error)
        self._cht_owner = owners
        ring = tuple(sorted({node for node in owners.values() if node is not None}))
        return self._update(cht=ring)

    def _update(
        self,
        *,
        members: tuple[Node, ...] | None = None,
        actives: tuple[Node, ...] | None = None,
        cht: tuple[Node, ...] | None = None,
    ) -> bool:
        """Store what a watch saw; notify if it changed. False stops the watch after stop()."""
        if self._closed:
            return False
        with self._cache_lock:
            old = self._snapshot
            new = Snapshot(
                members=old.members if members is None else members,
                actives=old.actives if actives is None else actives,
                cht=old.cht if cht is None else cht,
            )
            self._snapshot = new
        if new != old:
            log.debug("membership %s/%s: %s", self.service_type, self.name, new)
            self._watchers.notify(new)
        return True


def _decode_all(children: list[str], parent: str) -> tuple[Node, ...]:
    nodes = set()
    for child in children:
        try:
            nodes.add(paths.decode_node(child))
        except ValueError as error:
            log.warning("ignoring %s/%s: %s", parent, child, error)
    return tuple(sorted(nodes))
