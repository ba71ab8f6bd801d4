"""Typed settings of servers and proxies, with Jubatus's defaults where they are sane.

Settings are frozen dataclasses; :mod:`runtime.process.cli` fills them from command-line flags, a
JSON or YAML settings file and ``JUBAKO_*`` environment variables.
Values are checked here (``validate``) so every entry point gets the same errors, each
naming the setting: a :class:`~runtime.errors.ConfigError`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, TypeVar

import yaml

from runtime.errors import ConfigError, StartModeError, did_you_mean

DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024 * 1024
#: Client connections a server or proxy keeps open at once (fewer when the process may
#: not open that many files: see :func:`connection_cap`).
DEFAULT_MAX_CONNECTIONS = 1000
#: Seconds a request that has begun to arrive may go without progress.
DEFAULT_READ_TIMEOUT = 30.0
#: Descriptors kept for everything but client connections (logs, ZooKeeper, workers,
#: a proxy's pool gets its own share on top).
FILE_RESERVE = 64
#: The event loops a process can run on (``auto``: uvloop when it is installed).
EVENT_LOOPS = ("auto", "asyncio", "uvloop")


@dataclass(frozen=True)
class ServerSettings:
    """Everything a server main needs; field names follow the long flags."""

    rpc_port: int = 9199
    listen_addr: str = ""
    listen_if: str = ""
    thread: int = 2
    timeout: float = 0.0
    datadir: str = "/tmp"
    logdir: str = ""
    log_config: str = ""
    log_level: str = "INFO"
    configpath: str = ""
    model_file: str = ""
    config_test: bool = False
    #: Run in the background (``-D``), the log in ``--logdir``.
    daemon: bool = False
    zookeeper: str = ""
    name: str = ""
    mixer: str = "linear_mixer"
    interval_sec: float = 16.0
    interval_count: int = 512
    zookeeper_timeout: float = 10.0
    interconnect_timeout: float = 10.0
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    drain_timeout: float = 10.0
    event_loop: str = "auto"
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    read_timeout: float = DEFAULT_READ_TIMEOUT
    allow: str = ""

    @property
    def is_standalone(self) -> bool:
        return not self.zookeeper

    def validate(self) -> ServerSettings:
        """Return self, or raise ConfigError naming the first bad setting."""
        _port("rpc_port", self.rpc_port, allow_zero=True)
        _at_least("thread", self.thread, 1)
        _at_least("timeout", self.timeout, 0)
        _at_least("interval_sec", self.interval_sec, 0)
        _at_least("interval_count", self.interval_count, 0)
        _at_least("max_message_size", self.max_message_size, 1024)
        _at_least("drain_timeout", self.drain_timeout, 0)
        _at_least("max_connections", self.max_connections, 1)
        _at_least("read_timeout", self.read_timeout, 0)
        if self.zookeeper:
            if not self.name:
                raise StartModeError("can't start multinode mode without name specified")
            _at_least("zookeeper_timeout", self.zookeeper_timeout, 1)
            _at_least("interconnect_timeout", self.interconnect_timeout, 1)
        if self.mixer not in {"linear_mixer"}:
            raise ConfigError(f"unsupported mix type ({self.mixer})")
        if self.log_level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ConfigError(f"log_level: unknown level {self.log_level!r}")
        _event_loop(self.event_loop)
        return self


@dataclass(frozen=True)
class ProxySettings:
    """Everything a proxy main needs."""

    #: Other names of settings: Jubatus's flag for the forwarding timeout.
    ALIASES: ClassVar[Mapping[str, str]] = {"interconnect_timeout": "timeout"}

    rpc_port: int = 9199
    listen_addr: str = ""
    listen_if: str = ""
    thread: int = 4
    #: Seconds a forwarded call may take (Jubatus spells it ``--interconnect_timeout``).
    timeout: float = 10.0
    #: Seconds before an idle client connection is closed; 0 never (``--timeout`` on a
    #: Jubatus proxy).
    idle_timeout: float = 0.0
    logdir: str = ""
    log_config: str = ""
    log_level: str = "INFO"
    #: Run in the background (``-D``), the log in ``--logdir``.
    daemon: bool = False
    zookeeper: str = ""
    servers: str = ""
    zookeeper_timeout: float = 10.0
    pool_expire: float = 60.0
    pool_size: int = 0
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    drain_timeout: float = 10.0
    event_loop: str = "auto"
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    read_timeout: float = DEFAULT_READ_TIMEOUT
    allow: str = ""

    def validate(self) -> ProxySettings:
        _port("rpc_port", self.rpc_port, allow_zero=True)
        _at_least("thread", self.thread, 1)
        if not self.timeout > 0:
            raise ConfigError(
                f"timeout: {self.timeout} is not a time a forwarded call may take (give seconds"
                " > 0; --idle_timeout closes idle client connections)"
            )
        _at_least("idle_timeout", self.idle_timeout, 0)
        _at_least("zookeeper_timeout", self.zookeeper_timeout, 1)
        _at_least("pool_size", self.pool_size, 0)
        _at_least("max_message_size", self.max_message_size, 1024)
        _at_least("max_connections", self.max_connections, 1)
        _at_least("read_timeout", self.read_timeout, 0)
        if bool(self.zookeeper) == bool(self.servers):
            raise ConfigError("give exactly one of --zookeeper HOST:PORT or --servers H:P,H:P")
        _event_loop(self.event_loop)
        return self


ENV_PREFIX = "JUBAKO_"
T = TypeVar("T")


def _convert(key: str, kind: str, value: object, source: str) -> object:
    """``value`` as the setting's type; ConfigError naming the key and its source."""
    where = f"{key} (from {source})"
    if isinstance(value, str) and kind != "str":
        text = value.strip()
        if kind == "bool":
            if text.lower() in {"1", "true", "yes", "on"}:
                return True
            if text.lower() in {"0", "false", "no", "off"}:
                return False
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        try:
            return int(text) if kind == "int" else float(text)
        except ValueError:
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    ok = {
        "str": isinstance(value, str),
        "bool": isinstance(value, bool),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, int | float) and not isinstance(value, bool),
    }[kind]
    if not ok:
        raise ConfigError(f"{where}: expected {kind}, got {type(value).__name__} {value!r}")
    return float(value) if kind == "float" else value  # type: ignore[arg-type]


def resolve_settings(
    cls: type[T],
    *,
    flags: Mapping[str, object],
    settings_file: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> T:
    """Defaults, overridden by a settings file (JSON, or YAML for ``.yaml``/``.yml``), by
    ``JUBAKO_<NAME>`` environment variables, then by command-line flags. Unknown keys and
    wrong types are ConfigErrors naming the key and where it came from."""
    return resolve_with_sources(cls, flags=flags, settings_file=settings_file, environ=environ)[0]


def resolve_with_sources(
    cls: type[T],
    *,
    flags: Mapping[str, object],
    settings_file: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[T, dict[str, str]]:
    """:func:`resolve_settings`, plus where each setting that is not a default came from."""
    kinds = {f.name: str(f.type) for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    aliases: Mapping[str, str] = getattr(cls, "ALIASES", {})
    values: dict[str, object] = {}
    sources: dict[str, str] = {}
    layers: list[tuple[str, Mapping[str, object]]] = []
    if settings_file:
        layers.append((f"settings file {settings_file}", read_settings_file(settings_file)))
    env = os.environ if environ is None else environ
    from_env = {k[len(ENV_PREFIX) :].lower(): v for k, v in env.items() if k.startswith(ENV_PREFIX)}
    layers.append(("environment " + ENV_PREFIX + "*", from_env))
    layers.append(("command line", flags))
    for source, layer in layers:
        for name, value in layer.items():
            key = aliases.get(name, name)
            if key not in kinds:
                hint = did_you_mean(name, [*kinds, *aliases])
                raise ConfigError(f"{name} (from {source}): unknown setting{hint}")
            values[key] = _convert(name, kinds[key], value, source)
            sources[key] = source
    return cls(**values), sources


def read_settings_file(path: str) -> Mapping[str, object]:
    """The mapping in a JSON or YAML (``.yaml``/``.yml``) settings file; ConfigError else."""
    is_yaml = Path(path).suffix.lower() in {".yaml", ".yml"}
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"settings file {path}: can't read: {error.strerror}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"settings file {path}: not UTF-8 text ({error})") from None
    try:
        loaded = yaml.safe_load(text) if is_yaml else json.loads(text)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise ConfigError(f"settings file {path}: {error}") from None
    if not isinstance(loaded, dict):
        kind = "YAML mapping" if is_yaml else "JSON object"
        raise ConfigError(f"settings file {path}: expected a {kind} of settings")
    return {str(key): value for key, value in loaded.items()}


def explain(error: ConfigError, sources: Mapping[str, str]) -> ConfigError:
    """``error`` from ``validate()`` with the source of the setting it names, if known."""
    message = str(error)
    key = message.split(":", 1)[0]
    if key in sources:
        return ConfigError(f"{message} (from {sources[key]})")
    return error


def connection_cap(requested: int, reserve: int = FILE_RESERVE) -> tuple[int, str]:
    """``--max-connections`` as the process can honour it: at most the open-files limit
    (``ulimit -n``) less ``reserve``; with a note saying why when it is lowered."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):
        return requested, ""
    if soft == resource.RLIM_INFINITY or requested <= soft - reserve:
        return requested, ""
    cap = max(1, soft - reserve)
    return cap, (
        f"max_connections lowered from {requested} to {cap}: the process may open {soft} "
        f"files (ulimit -n) and keeps {reserve} for its own"
    )


def _event_loop(value: str) -> None:
    if value not in EVENT_LOOPS:
        raise ConfigError(f"event_loop: {value!r} is not one of {', '.join(EVENT_LOOPS)}")


def _port(name: str, value: int, *, allow_zero: bool) -> None:
    low = 0 if allow_zero else 1
    if not low <= value <= 65535:
        raise ConfigError(f"{name}: {value} is not a port ({low}..65535)")


def _at_least(name: str, value: float, minimum: float) -> None:
    if value < minimum:
        raise ConfigError(f"{name}: {value} is below the minimum {minimum}")


def interface_address(interface: str) -> str:
    """The IPv4 address of network interface ``interface`` (``--listen_if``)."""
    import fcntl
    import socket
    import struct

    siocgifaddr = 0x8915
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            packed = fcntl.ioctl(
                sock.fileno(), siocgifaddr, struct.pack("256s", interface.encode()[:15])
            )
        except OSError as error:
            raise ConfigError(f"listen_if: no IPv4 address on {interface!r} ({error})") from None
    return socket.inet_ntoa(packed[20:24])


def listen_host(listen_addr: str, listen_if: str) -> str:
    """The address to bind and advertise: ``--listen_addr``, else the address of
    ``--listen_if``, else loopback. Jubatus would pick the first non-loopback address;
    we stay on loopback until told otherwise, so nothing is exposed by accident."""
    if listen_addr:
        return listen_addr
    if listen_if:
        return interface_address(listen_if)
    return "127.0.0.1"
