"""Settings precedence: defaults < settings file < JUBAKO_* environment < flags; errors
name the key and its source."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from runtime.errors import ConfigError
from runtime.process.cli import parse_proxy_args, parse_server_args
from runtime.process.settings import ServerSettings, resolve_settings


def test_defaults() -> None:
    settings = parse_server_args("srv", [], environ={})
    assert settings == ServerSettings()
    assert settings.thread == 2 and settings.timeout == 0.0 and settings.is_standalone


def test_precedence(tmp_path: Path) -> None:
    file = tmp_path / "settings.json"
    file.write_text(json.dumps({"thread": 3, "datadir": "/from/file", "timeout": 5}))
    environ = {"JUBAKO_THREAD": "4", "JUBAKO_LOG_LEVEL": "debug"}
    settings = parse_server_args("srv", ["--settings", str(file), "-c", "6"], environ=environ)
    assert settings.thread == 6  # flag beats environment beats file
    assert settings.log_level == "debug"  # environment beats default
    assert settings.datadir == "/from/file" and settings.timeout == 5.0
    only_env = parse_server_args("srv", ["--settings", str(file)], environ=environ)
    assert only_env.thread == 4


@pytest.mark.parametrize(
    ("file", "environ", "message"),
    [
        ({"threads": 2}, {}, "threads (from settings file"),
        ({"datadri": "/x"}, {}, "unknown setting; did you mean 'datadir'?"),
        ({"thread": "many"}, {}, "thread (from settings file"),
        ({"timeout": True}, {}, "timeout (from settings file"),
        ({}, {"JUBAKO_THREAD": "x"}, "thread (from environment JUBAKO_*): expected a number"),
        ({}, {"JUBAKO_NOPE": "1"}, "nope (from environment JUBAKO_*): unknown setting"),
    ],
)
def test_errors_name_the_key_and_source(
    tmp_path: Path, file: dict[str, object], environ: dict[str, str], message: str
) -> None:
    path = tmp_path / "s.json"
    path.write_text(json.dumps(file))
    with pytest.raises(ConfigError, match=re.escape(message)):
        resolve_settings(ServerSettings, flags={}, settings_file=str(path), environ=environ)


def test_range_errors_exit_2_naming_the_setting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        parse_server_args("srv", [], environ={"JUBAKO_THREAD": "0"})
    assert stopped.value.code == 2
    assert "thread: 0 is below the minimum 1" in capsys.readouterr().err
    broken = tmp_path / "broken.json"
    broken.write_text("[1, 2")
    with pytest.raises(SystemExit):
        parse_server_args("srv", ["--settings", str(broken)], environ={})
    assert "settings file" in capsys.readouterr().err


def test_proxy_settings_from_the_environment() -> None:
    settings = parse_proxy_args("px", [], environ={"JUBAKO_SERVERS": "127.0.0.1:1"})
    assert settings.servers == "127.0.0.1:1" and settings.thread == 4


def test_yaml_settings_file_with_the_same_precedence(tmp_path: Path) -> None:
    file = tmp_path / "settings.yaml"
    file.write_text("thread: 3\ndatadir: /from/yaml\ntimeout: 5\nevent_loop: asyncio\n")
    environ = {"JUBAKO_THREAD": "4"}
    settings = parse_server_args("srv", ["--settings", str(file)], environ=environ)
    assert settings.thread == 4 and settings.datadir == "/from/yaml"
    assert settings.timeout == 5.0 and settings.event_loop == "asyncio"
    flagged = parse_server_args("srv", ["--settings", str(file), "-c", "7"], environ=environ)
    assert flagged.thread == 7
    proxy = tmp_path / "proxy.yml"
    proxy.write_text("servers: 127.0.0.1:9199,127.0.0.1:9200\npool_size: 2\n")
    assert parse_proxy_args("px", ["--settings", str(proxy)], environ={}).pool_size == 2


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("s.yaml", "thread: [1, 2\n", "settings file {path}: while parsing"),
        ("s.json", '{"thread": ', "settings file {path}: Expecting value"),
        ("s.yaml", "- thread\n- 2\n", "settings file {path}: expected a YAML mapping of settings"),
        ("s.json", "[1]", "settings file {path}: expected a JSON object of settings"),
        ("s.yaml", "threads: 2\n", "threads (from settings file {path}): unknown setting"),
        ("s.yml", "thread: many\n", "thread (from settings file {path}): expected a number"),
        ("s.json", '{"thread": "many"}', "thread (from settings file {path}): expected a number"),
        ("s.yaml", b"thread: \xff\n", "settings file {path}: not UTF-8 text"),
        ("s.yaml", "config_test: 3\n", "config_test (from settings file {path}): expected bool"),
    ],
)
def test_settings_file_errors(tmp_path: Path, name: str, text: str | bytes, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ConfigError, match=re.escape(message.format(path=path))):
        resolve_settings(ServerSettings, flags={}, settings_file=str(path), environ={})


def test_unreadable_settings_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    with pytest.raises(
        ConfigError, match=re.escape(f"settings file {missing}: can't read: No such file")
    ):
        resolve_settings(ServerSettings, flags={}, settings_file=str(missing), environ={})
    with pytest.raises(ConfigError, match=re.escape(f"settings file {tmp_path}: can't read: ")):
        resolve_settings(ServerSettings, flags={}, settings_file=str(tmp_path), environ={})


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("file", "thread: 0 is below the minimum 1 (from settings file {path})"),
        ("env", "thread: 0 is below the minimum 1 (from environment JUBAKO_*)"),
        ("flag", "thread: 0 is below the minimum 1 (from command line)"),
    ],
)
def test_out_of_range_values_name_where_they_came_from(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str, message: str
) -> None:
    file = tmp_path / "s.yaml"
    file.write_text("thread: 0\n" if where == "file" else "datadir: /tmp\n")
    argv = ["--settings", str(file)] + (["-c", "0"] if where == "flag" else [])
    environ = {"JUBAKO_THREAD": "0"} if where == "env" else {}
    with pytest.raises(SystemExit) as stopped:
        parse_server_args("srv", argv, environ=environ)
    assert stopped.value.code == 2
    assert message.format(path=file) in capsys.readouterr().err


def test_proxy_timeout_is_per_forwarded_call_and_idle_close_has_its_own_flag(
    tmp_path: Path,
) -> None:
    servers = ["--servers", "127.0.0.1:1"]
    defaults = parse_proxy_args("px", servers, environ={})
    assert (defaults.timeout, defaults.idle_timeout) == (10.0, 0.0)
    assert parse_proxy_args("px", [*servers, "--timeout", "2.5"], environ={}).timeout == 2.5
    assert parse_proxy_args("px", [*servers, "-t", "3"], environ={}).timeout == 3.0
    # Jubatus's name for the same thing; the later flag wins, as argparse does
    assert parse_proxy_args("px", [*servers, "-I", "4"], environ={}).timeout == 4.0
    assert parse_proxy_args("px", [*servers, "-t", "3", "-I", "4"], environ={}).timeout == 4.0
    idle = parse_proxy_args("px", [*servers, "--idle_timeout", "30"], environ={})
    assert (idle.timeout, idle.idle_timeout) == (10.0, 30.0)
    file = tmp_path / "proxy.json"
    file.write_text(json.dumps({"servers": "127.0.0.1:1", "interconnect_timeout": 6}))
    assert parse_proxy_args("px", ["--settings", str(file)], environ={}).timeout == 6.0
    environ = {"JUBAKO_SERVERS": "127.0.0.1:1", "JUBAKO_INTERCONNECT_TIMEOUT": "7"}
    assert parse_proxy_args("px", [], environ=environ).timeout == 7.0


@pytest.mark.parametrize("value", ["0", "-1"])
def test_a_proxy_timeout_that_is_not_a_time_is_refused_with_a_hint(
    capsys: pytest.CaptureFixture[str], value: str
) -> None:
    with pytest.raises(SystemExit) as stopped:
        parse_proxy_args("px", ["--servers", "127.0.0.1:1", "-t", value], environ={})
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "timeout:" in err and "--idle_timeout" in err and "(from command line)" in err


def test_a_server_keeps_jubatus_meaning_of_timeout() -> None:
    settings = parse_server_args("srv", ["-t", "30", "-I", "5"], environ={})
    assert (settings.timeout, settings.interconnect_timeout) == (30.0, 5.0)
