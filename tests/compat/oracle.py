"""Drive the oracle venv (official jubatus client, msgpack-rpc-python) from the test venv.

The oracle libraries need msgpack 0.5 and cannot share a process with msgpack 1.x, so
every use goes through a subprocess running ``.venv-oracle/bin/python`` on a script in
``oracle_scripts/``, with JSON on stdin and stdout. JSON gains a few tags (see
:func:`tag`), mirrored by ``oracle_scripts/_tagged.py``.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
ORACLE_PYTHON = REPO / ".venv-oracle" / "bin" / "python"
SCRIPTS = Path(__file__).resolve().parent / "oracle_scripts"
GOLDEN = Path(__file__).resolve().parent / "golden_frames.json"


def require_oracle() -> Path:
    """The oracle interpreter; fails the test with the remedy when it is missing."""
    if not ORACLE_PYTHON.exists():
        pytest.fail(
            f"{ORACLE_PYTHON} is missing: create the oracle venv with `make oracle` "
            "(jubatus 1.1.0 and msgpack-rpc-python 0.4.1 in a venv of their own)",
            pytrace=False,
        )
    return ORACLE_PYTHON


def run_script(script: str, request: object, *, timeout: float = 60) -> Any:
    """Run ``oracle_scripts/<script>`` with ``request`` as JSON on stdin; its JSON reply."""
    python = require_oracle()
    try:
        done = subprocess.run(
            [str(python), str(SCRIPTS / script)],
            input=json.dumps(request),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=SCRIPTS,
            env=environment_without_pythonpath(),
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        stderr = error.stderr.decode() if isinstance(error.stderr, bytes) else error.stderr
        pytest.fail(f"oracle script {script} ran past {timeout} s; stderr:\n{stderr}")
    if done.returncode != 0:
        pytest.fail(f"oracle script {script} exited {done.returncode}; stderr:\n{done.stderr}")
    return json.loads(done.stdout)


@dataclass
class OracleServer:
    """A server process running in the oracle venv."""

    process: subprocess.Popen[str]
    port: int


@contextmanager
def oracle_server(script: str, *args: str, timeout: float = 30) -> Iterator[OracleServer]:
    """Start an oracle script that prints ``PORT <n>``; kill it (by its pid) on exit."""
    python = require_oracle()
    process = subprocess.Popen(
        [str(python), str(SCRIPTS / script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=SCRIPTS,
        env=environment_without_pythonpath(),
    )
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + timeout
        line = ""
        while not line:
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([process.stdout], [], [], max(remaining, 0))
            if not ready:
                pytest.fail(f"oracle server {script} printed no port within {timeout} s")
            line = process.stdout.readline()
            if not line:
                break
        if not line.startswith("PORT "):
            process.kill()
            _, err = process.communicate(timeout=10)
            pytest.fail(f"oracle server {script} did not start ({line!r}); stderr:\n{err}")
        yield OracleServer(process, int(line.split()[1]))
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
        if process.stderr is not None:
            process.stderr.close()


def tag(value: object) -> Any:
    """Python value → tagged JSON: bytes ``{"$bytes": hex}``, maps ``{"$map": pairs}``."""
    if isinstance(value, bytes):
        return {"$bytes": value.hex()}
    if isinstance(value, list | tuple):
        return [tag(v) for v in value]
    if isinstance(value, dict):
        return {"$map": [[tag(k), tag(v)] for k, v in value.items()]}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"cannot tag {value!r}")


def untag(value: Any) -> Any:
    """Tagged JSON → Python value (the inverse of :func:`tag` for bytes, maps and lists)."""
    if isinstance(value, list):
        return [untag(v) for v in value]
    if isinstance(value, dict):
        if "$bytes" in value:
            return bytes.fromhex(value["$bytes"])
        if "$map" in value:
            return {_hashable(untag(k)): untag(v) for k, v in value["$map"]}
        raise ValueError(f"unexpected tag {value!r}")
    return value


def _hashable(value: Any) -> Any:
    return tuple(_hashable(v) for v in value) if isinstance(value, list) else value


def strict_equal(a: object, b: object) -> bool:
    """Equality that keeps bool, int, float, bytes and str apart (``1 != 1.0 != True``)."""
    if type(a) is not type(b):
        if isinstance(a, list | tuple) and isinstance(b, list | tuple):
            pass
        else:
            return False
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(strict_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(strict_equal(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def golden_calls() -> list[dict[str, Any]]:
    """The calls recorded from the official client (``golden_frames.json``)."""
    data: dict[str, Any] = json.loads(GOLDEN.read_text(encoding="utf-8"))
    calls: list[dict[str, Any]] = data["calls"]
    return calls


def golden_cluster_name() -> str:
    name: str = json.loads(GOLDEN.read_text(encoding="utf-8"))["cluster_name"]
    return name


def environment_without_pythonpath() -> dict[str, str]:
    """The environment for oracle processes: no PYTHONPATH leaking the test venv in."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    return env
