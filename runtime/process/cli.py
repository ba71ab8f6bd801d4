"""Command-line flags of server and proxy mains, as Jubatus spells them.

Long and short forms follow Jubatus (``--rpc-port``/``-p``, ``--thread``/``-c``, ...), so
scripts written for Jubatus servers keep working. Parsing gives a validated
:class:`~runtime.process.settings.ServerSettings` or
:class:`~runtime.process.settings.ProxySettings`; bad values exit with status 2 and a
message naming the flag, and flags that name no mode to start in (``-z`` without ``-n``)
with Jubatus's line and status 1.
"""

from __future__ import annotations

import argparse
import sys
import typing
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from runtime.errors import ConfigError, StartModeError
from runtime.process.settings import (
    EVENT_LOOPS,
    ProxySettings,
    ServerSettings,
    explain,
    resolve_with_sources,
)
from runtime.version import JUBATUS_VERSION, __version__

S = TypeVar("S", ServerSettings, ProxySettings)


def version_text(prog: str) -> str:
    """``--version``: Jubatus's words (``jubatus-1.1.1 (jubaclassifier)``), then Jubako's
    own version on the same line: ``jubatus-1.1.1 (jubaclassifier) jubako-0.1.0``."""
    return f"jubatus-{JUBATUS_VERSION} ({prog}) jubako-{__version__}"


class _DefaultsShown(argparse.HelpFormatter):
    """``--help`` with each flag's default, unless its help already says it or there is
    none to show (an empty string, a switch)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            "default" in text
            or default is None
            or isinstance(default, bool)
            or default == ""
            or default is argparse.SUPPRESS
            or not action.option_strings
        ):
            return text
        shown = f"{default:g}" if isinstance(default, float) else "%(default)s"
        return f"{text} (default: {shown})"


def _common(parser: argparse.ArgumentParser, defaults: ServerSettings | ProxySettings) -> None:
    add = parser.add_argument
    add(
        "-p",
        "--rpc-port",
        dest="rpc_port",
        type=int,
        default=defaults.rpc_port,
        help="port to listen on; 0 picks a free one (logged as 'listening on HOST:PORT')",
    )
    add(
        "-b",
        "--listen_addr",
        default=defaults.listen_addr,
        help="IPv4 address to bind and advertise (default: 127.0.0.1)",
    )
    add(
        "-B",
        "--listen_if",
        default=defaults.listen_if,
        help="bind to the IPv4 address of this interface (ignored with --listen_addr)",
    )
    add("-c", "--thread", type=int, default=defaults.thread, help="worker threads")
    add("-l", "--logdir", default=defaults.logdir, help="write the log to a file in this directory")
    add("-g", "--log_config", default=defaults.log_config, help="accepted for compatibility")
    add(
        "--log-level",
        dest="log_level",
        default=defaults.log_level,
        help="DEBUG, INFO, WARNING or ERROR",
    )
    add(
        "-Z",
        "--zookeeper_timeout",
        type=float,
        default=defaults.zookeeper_timeout,
        help="ZooKeeper session timeout in seconds",
    )
    add(
        "--max-message-size",
        dest="max_message_size",
        type=int,
        default=defaults.max_message_size,
        help="largest request accepted, in bytes; also what one connection's requests and "
        "answers in flight may hold (see docs/operating.md, Limits)",
    )
    add(
        "--max-connections",
        dest="max_connections",
        type=int,
        default=defaults.max_connections,
        help="client connections open at once; more are closed at once (lowered to what "
        "ulimit -n allows)",
    )
    add(
        "--read-timeout",
        dest="read_timeout",
        type=float,
        default=defaults.read_timeout,
        help="drop a connection whose request in progress gains under 64 KiB in this many "
        "seconds; 0 never",
    )
    add(
        "--allow",
        default=defaults.allow,
        help="serve only clients from these addresses or networks, e.g. "
        "10.0.0.0/8,192.168.1.5 (default: every client that can reach the address bound)",
    )
    add(
        "--drain-timeout",
        dest="drain_timeout",
        type=float,
        default=defaults.drain_timeout,
        help="on SIGTERM/SIGINT, wait this long for calls in flight",
    )
    add(
        "--event-loop",
        dest="event_loop",
        default=defaults.event_loop,
        choices=EVENT_LOOPS,
        help="asyncio, uvloop, or auto (default: uvloop when installed, e.g. by "
        "pip install 'jubako[uvloop]')",
    )
    add(
        "--settings",
        default=None,
        help="settings file, JSON or YAML (.yaml/.yml), keys as the long flags with "
        '"_" (e.g. {"thread": 4} or thread: 4); JUBAKO_<SETTING> environment variables '
        "override it, flags override both",
    )
    add(
        "-D",
        "--daemon",
        action="store_true",
        help="run in the background once the flags and config are checked; the log goes "
        "to a file in --logdir (without one it is lost: a warning says so)",
    )
    add("-v", "--version", action="version", version=version_text("%(prog)s"))


def server_parser(prog: str) -> argparse.ArgumentParser:
    """The argument parser of a server main."""
    defaults = ServerSettings()
    parser = argparse.ArgumentParser(
        prog=prog, description=f"{prog}: a Jubako server", formatter_class=_DefaultsShown
    )
    _common(parser, defaults)
    add = parser.add_argument
    add(
        "-t",
        "--timeout",
        type=float,
        default=defaults.timeout,
        help="close client connections idle this many seconds; 0 never",
    )
    add(
        "-I",
        "--interconnect_timeout",
        type=float,
        default=defaults.interconnect_timeout,
        help="timeout in seconds of server-to-server calls (mix)",
    )
    add("-d", "--datadir", default=defaults.datadir, help="where save/load keep model files")
    add("-f", "--configpath", default=defaults.configpath, help="JSON config file")
    add(
        "-m",
        "--model_file",
        default=defaults.model_file,
        help="model file to load at start-up; its saved config wins over --configpath",
    )
    add("-T", "--config_test", action="store_true", help="check the config and exit")
    add(
        "-z",
        "--zookeeper",
        default=defaults.zookeeper,
        help="HOST:PORT[,HOST:PORT...] of ZooKeeper; absent = standalone",
    )
    add("-n", "--name", default=defaults.name, help="cluster name (required with --zookeeper)")
    add("-x", "--mixer", default=defaults.mixer, help="mixer (linear_mixer)")
    add(
        "-s",
        "--interval_sec",
        type=float,
        default=defaults.interval_sec,
        help="mix when this many seconds have passed since the last mix; 0 off",
    )
    add(
        "-i",
        "--interval_count",
        type=int,
        default=defaults.interval_count,
        help="mix after this many updates; 0 off",
    )
    return parser


def proxy_parser(prog: str) -> argparse.ArgumentParser:
    """The argument parser of a proxy main."""
    defaults = ProxySettings()
    parser = argparse.ArgumentParser(
        prog=prog, description=f"{prog}: a Jubako proxy", formatter_class=_DefaultsShown
    )
    _common(parser, defaults)
    add = parser.add_argument
    add(
        "-t",
        "--timeout",
        type=float,
        default=defaults.timeout,
        help="seconds a forwarded call may take before it fails (or, for a read, goes to "
        "the next replica)",
    )
    add(
        "-I",
        "--interconnect_timeout",
        dest="timeout",
        type=float,
        default=defaults.timeout,
        help="the same as --timeout (Jubatus's name for it)",
    )
    add(
        "--idle_timeout",
        type=float,
        default=defaults.idle_timeout,
        help="close client connections idle this many seconds; 0 never",
    )
    add("-z", "--zookeeper", default=defaults.zookeeper, help="HOST:PORT of ZooKeeper")
    add(
        "--servers",
        default=defaults.servers,
        help="static membership: HOST:PORT,HOST:PORT,... (no ZooKeeper)",
    )
    add(
        "-E",
        "--pool_expire",
        type=float,
        default=defaults.pool_expire,
        help="close pooled connections idle this many seconds",
    )
    add(
        "-S",
        "--pool_size",
        type=int,
        default=defaults.pool_size,
        help="pooled connections per server; 0 unlimited",
    )
    return parser


def _given(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> dict[str, Any]:
    """Only the flags written on the command line (defaults left out), parsed and typed."""
    saved = {action.dest: action.default for action in parser._actions}
    try:
        for action in parser._actions:
            action.default = argparse.SUPPRESS
        return vars(parser.parse_args(argv))
    finally:
        for action in parser._actions:
            action.default = saved[action.dest]


def _parse(
    parser: argparse.ArgumentParser,
    cls: type[S],
    argv: Sequence[str] | None,
    environ: Mapping[str, str] | None,
) -> S:
    parser.parse_args(argv)  # usage errors and --help first, with the usual messages
    given = _given(parser, argv)
    settings_file = given.pop("settings", None)
    try:
        settings, sources = resolve_with_sources(
            cls, flags=given, settings_file=settings_file, environ=environ
        )
    except ConfigError as error:
        parser.error(str(error))
    try:
        return settings.validate()
    except StartModeError as error:
        start_mode_error(parser, str(error))
    except ConfigError as error:
        parser.error(str(explain(error, sources)))


def start_mode_error(parser: argparse.ArgumentParser, message: str) -> typing.NoReturn:
    """Exit as Jubatus does when the flags name no mode to start in: its line on stderr
    (``message``'s first line is Jubatus's own), the usage, status 1."""
    print(message, file=sys.stderr)
    parser.print_usage(sys.stderr)
    sys.exit(1)


def parse_server_args(
    prog: str, argv: Sequence[str] | None, environ: Mapping[str, str] | None = None
) -> ServerSettings:
    """Server settings: defaults < ``--settings`` file < ``JUBAKO_*`` environment < flags.

    Exits with status 2 and a message naming the setting and its source on an error.
    """
    return _parse(server_parser(prog), ServerSettings, argv, environ)


def parse_proxy_args(
    prog: str, argv: Sequence[str] | None, environ: Mapping[str, str] | None = None
) -> ProxySettings:
    """Proxy settings, with the same precedence as :func:`parse_server_args`."""
    return _parse(proxy_parser(prog), ProxySettings, argv, environ)
