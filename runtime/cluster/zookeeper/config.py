"""Cluster configs in ZooKeeper, as Jubatus's ``jubaconfig`` keeps them.

A cluster's JSON config lives in ``/jubatus/config/<type>/<name>``. Servers started with
``--zookeeper`` read it there (:func:`read_config_from`). :func:`write_config` and
:func:`delete_config` guard it as jubaconfig does:

- the text must be a non-empty JSON object ("config is empty", "syntax error in
  configuration: FILE:LINE:COL: ...");
- the config lock (``…/<name>/config_lock``) is taken for writing, so a write never races
  another writer or a server holding its read lock ("any user is using config?");
- while servers of that cluster are running (``nodes`` is not empty) the config is not
  changed unless ``force=True``: a running server would not see the change and new
  servers would disagree with old ones.

Every problem is a :class:`~runtime.errors.ConfigError` (bad text, missing config, running
servers, lock taken) or a :class:`~runtime.errors.MembershipError` (ZooKeeper unreachable
or failing); the stored config is never left half-written (one znode write).

The ``jubaconfig`` command over these functions is :mod:`runtime.tools.jubaconfig`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Iterator

from kazoo.client import KazooClient
from kazoo.exceptions import KazooException, NodeExistsError, NoNodeError

from runtime.cluster.zookeeper import paths
from runtime.cluster.zookeeper.lock import config_write_lock
from runtime.cluster.zookeeper.membership import connect_client
from runtime.errors import ConfigError, MembershipError

__all__ = [
    "check_config_text",
    "connect",
    "delete_config",
    "list_configs",
    "read_config",
    "read_config_from",
    "write_config",
]

log = logging.getLogger(__name__)


def check_config_text(text: str, source: str = "<config>") -> None:
    """Raise ConfigError unless ``text`` is a JSON object; messages name ``source``."""
    if not text.strip():
        raise ConfigError(f"config is empty: {source}")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(
            f"syntax error in configuration: {source}:{error.lineno}:{error.colno}: {error.msg}"
        ) from None
    except RecursionError:
        raise ConfigError(f"syntax error in configuration: {source}: nested too deeply") from None
    if not isinstance(value, dict):
        raise ConfigError(
            f"configuration must be a JSON object, not {type(value).__name__}: {source}"
        )


@contextlib.contextmanager
def connect(hosts: str, timeout: float = 10.0) -> Iterator[KazooClient]:
    """A started client for one short job; closed on exit. MembershipError if unreachable."""
    client = connect_client(hosts, timeout)
    try:
        yield client
    finally:
        client.stop()
        client.close()


def _running_servers(zk: KazooClient, service_type: str, name: str) -> list[str]:
    try:
        children: list[str] = zk.get_children(paths.nodes_path(service_type, name))
    except NoNodeError:
        return []
    return sorted(children)


@contextlib.contextmanager
def _config_guard(
    zk: KazooClient,
    service_type: str,
    name: str,
    *,
    force: bool,
    lock_tries: int,
    lock_retry_interval: float,
) -> Iterator[None]:
    """Hold the config write lock and check no server runs (unless forced)."""
    lock = config_write_lock(zk, service_type, name)
    for attempt in range(lock_tries):
        if lock.try_acquire():
            break
        if attempt + 1 < lock_tries:
            time.sleep(lock_retry_interval)
    else:
        raise ConfigError(
            f"config of {service_type}/{name} is locked by someone else "
            "(any user is using config? a running server holds a read lock)"
        )
    try:
        running = _running_servers(zk, service_type, name)
        if running and not force:
            raise ConfigError(
                f"any server is running: {service_type}, {name} ({', '.join(running)}); "
                "stop them first or force it"
            )
        yield
    finally:
        lock.release()


def write_config(
    zk: KazooClient,
    service_type: str,
    name: str,
    text: str,
    *,
    force: bool = False,
    source: str = "<config>",
    lock_tries: int = 3,
    lock_retry_interval: float = 1.0,
) -> None:
    """Store ``text`` as the config of ``service_type``/``name`` (creating or replacing it).

    :param force: write even while servers of the cluster run.
    :param source: where the text came from, for error messages.
    """
    check_config_text(text, source)
    path = paths.config_path(service_type, name)
    data = text.encode("utf-8")
    with (
        _kazoo_errors(),
        _config_guard(
            zk,
            service_type,
            name,
            force=force,
            lock_tries=lock_tries,
            lock_retry_interval=lock_retry_interval,
        ),
    ):
        zk.ensure_path(paths.config_type_path(service_type))
        try:
            zk.create(path, data)
        except NodeExistsError:
            zk.set(path, data)
    log.info("wrote %s (%d bytes)", path, len(data))


def read_config(zk: KazooClient, service_type: str, name: str) -> str:
    """The config text of ``service_type``/``name``; ConfigError if there is none."""
    path = paths.config_path(service_type, name)
    with _kazoo_errors():
        try:
            data, _ = zk.get(path)
        except NoNodeError:
            raise ConfigError(f"config does not exist: {path}") from None
    return _decode(data, path)


def delete_config(
    zk: KazooClient,
    service_type: str,
    name: str,
    *,
    force: bool = False,
    lock_tries: int = 3,
    lock_retry_interval: float = 1.0,
) -> None:
    """Remove the config of ``service_type``/``name``; ConfigError if there is none."""
    path = paths.config_path(service_type, name)
    with (
        _kazoo_errors(),
        _config_guard(
            zk,
            service_type,
            name,
            force=force,
            lock_tries=lock_tries,
            lock_retry_interval=lock_retry_interval,
        ),
    ):
        try:
            zk.delete(path)
        except NoNodeError:
            raise ConfigError(f"config does not exist: {path}") from None
    log.info("deleted %s", path)


def list_configs(zk: KazooClient, service_type: str | None = None) -> dict[tuple[str, str], str]:
    """Every stored config as ``{(type, name): text}``, sorted; only ``service_type``'s if given."""
    found: dict[tuple[str, str], str] = {}
    with _kazoo_errors():
        try:
            types = [service_type] if service_type else sorted(zk.get_children(paths.CONFIG))
        except NoNodeError:
            return found
        for each_type in types:
            try:
                names = sorted(zk.get_children(paths.config_type_path(each_type)))
            except NoNodeError:
                continue
            for name in names:
                path = paths.config_path(each_type, name)
                try:
                    data, _ = zk.get(path)
                except NoNodeError:
                    continue  # deleted while we listed
                found[(each_type, name)] = _decode(data, path)
    return found


def read_config_from(
    hosts: str, service_type: str, name: str, *, timeout: float = 10.0
) -> tuple[str, str]:
    """Connect, read the cluster's config, disconnect: ``(text, znode path)``.

    The text is checked to be a JSON object (ConfigError otherwise, naming the path).
    """
    path = paths.config_path(service_type, name)
    with connect(hosts, timeout) as zk:
        text = read_config(zk, service_type, name)
    check_config_text(text, path)
    return text, path


def _decode(data: bytes, path: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"config {path} is not UTF-8 text: {error}") from None


@contextlib.contextmanager
def _kazoo_errors() -> Iterator[None]:
    try:
        yield
    except KazooException as error:
        raise MembershipError(f"ZooKeeper failed: {error!r}") from None
