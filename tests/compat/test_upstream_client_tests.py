"""The official ``jubatus`` 1.1.0 client's own integration tests (its sdist's
``test/jubatus_test/<service>``) against Jubako's commands, as a Jubatus user would run
them: each test starts ``juba<service>`` from PATH with ``--configpath``, ``--thread 100``
and ``--datadir .``, calls it with the official client and stops it.

``make oracle`` unpacks the sdist into ``.venv-oracle/jubatus-sdist``. The tests' fixed
ports are replaced by free ones.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

from tests.compat.oracle import REPO, environment_without_pythonpath, run_script

pytestmark = pytest.mark.oracle

UPSTREAM_TESTS = REPO / ".venv-oracle" / "jubatus-sdist" / "jubatus-1.1.0" / "test"

#: service -> the number of tests its upstream module holds.
SERVICES = {"regression": 7, "recommender": 11, "nearest_neighbor": 8, "anomaly": 11}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_upstream_client_tests_pass(
    service: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not (UPSTREAM_TESTS / "jubatus_test" / service).is_dir():
        pytest.fail(
            f"{UPSTREAM_TESTS} is missing: run `make oracle` (it unpacks the official "
            "client's sdist, whose test/ holds these tests)",
            pytrace=False,
        )
    bin_dir = Path(sys.executable).parent
    assert (bin_dir / f"juba{service}").exists(), f"juba{service} is installed with the package"
    env = environment_without_pythonpath()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{env.get('PATH', '')}")
    out = run_script(
        "upstream_tests.py",
        {
            "tests": str(UPSTREAM_TESTS),
            "service": service,
            "port": _free_port(),
            "workdir": str(tmp_path),
        },
        timeout=240,
    )
    problems = out["failures"] + out["errors"]
    assert problems == [], "\n\n".join(f"{name}:\n{text}" for name, text in problems)
    assert out["run"] == SERVICES[service]
    assert out["skipped"] == []
