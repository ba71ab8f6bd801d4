"""Settings precedence: defaults < settings file < JUBAKO_* environment < flags; errors
name the key and its source."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from runtime.cli import parse_proxy_args, parse_server_args
from runtime.config import ServerSettings, resolve_settings
from runtime.errors import ConfigError


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
