"""jubakit 0.6.2, Jubatus's toolkit, against Jubako's commands, as a Jubatus user runs it.

jubakit starts ``juba<service>`` itself from PATH (and retries on the port-in-use line),
reads ``get_status``, calls ``jubadump`` and parses model files. It needs Python <= 3.9,
msgpack 0.5 and tornado 4.5, so it lives in ``.venv-jubakit`` (``make jubakit``) and every
use here is a subprocess with Jubako's ``.venv/bin`` first on PATH.

Two sets of jubakit's own unit tests run (the test ids say which):

- ``sdist``: what the PyPI sdist ships (``jubakit/test/integration``: the jubash service
  shells of classifier and stat, model save/transform/load, the shell), from the sdist
  ``make jubakit`` unpacks. Always.
- ``git``: the tests only jubakit's git tree (tag 0.6.2) has: classifier, model (with
  ``jubadump``), shell and base. From ``$JUBAKIT_SOURCE`` (an export of that tree) or the
  local mirror (``$JUBAKIT_MIRROR``, a bare git dir); skipped with that reason when
  neither is there (CI).

Then the tools themselves against Jubako's servers and files: ``jubash`` (scripts and
``--command``) and ``jubamodel`` (json/text/binary, ``--transform``, ``--replace-config``,
``--fix-header``), and, with the git tree, Jubatus's example iris model served by Jubako.
Nothing of jubakit is kept in this repository.
"""

from __future__ import annotations

import csv
import glob
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from runtime.testing import ServerProcess
from tests.compat.oracle import REPO, environment_without_pythonpath

pytestmark = [pytest.mark.oracle, pytest.mark.e2e]

JUBAKIT_VENV = REPO / ".venv-jubakit"
JUBAKIT_BIN = JUBAKIT_VENV / "bin"
SDIST_TREE = JUBAKIT_VENV / "jubakit-sdist" / "jubakit-0.6.2"
#: jubakit's git repository (a bare git dir), mirrored on development machines (not in CI).
MIRROR = Path(os.environ.get("JUBAKIT_MIRROR", "/work/.mirror/jubatus+jubakit/repo"))
TAG = "0.6.2"
SCRIPTS = Path(__file__).resolve().parent / "jubakit_scripts"
#: Jubako's console scripts (jubaclassifier, jubastat, jubadump, ...).
ENGINE_BIN = Path(sys.executable).parent

#: set -> jubakit test module -> the number of tests in it.
MODULES = {
    "sdist": {
        "jubakit.test.integration._cli.service.test_classifier": 3,
        "jubakit.test.integration._cli.service.test_stat": 2,
        "jubakit.test.integration.test_model": 6,
        "jubakit.test.integration.test_shell": 4,
    },
    "git": {
        "jubakit.test.test_classifier": 18,
        "jubakit.test.test_model": 9,
        "jubakit.test.test_shell": 4,
        "jubakit.test.test_base": 45,
    },
}

CLUSTERING = "jubakit.test.integration.test_model.JubaModelTransformationTest.test_from_clustering"
#: jubakit tests that fail against Jubako on purpose: id -> (text its failure shows, why).
EXPECTED_FAILURES = {
    CLUSTERING: (
        "jubaclustering could not be started",
        "Jubako has no clustering engine (docs/operating.md, Differences from Jubatus: Engines)",
    ),
}

#: jubakit's own skips (optional libraries this venv leaves out): id -> its skip reason.
JUBAKIT_SKIPS = {
    # embedded_jubatus is Jubatus's C++ engine in-process: no server involved.
    "jubakit.test.test_classifier.ClassifierTest.test_embedded": "requires embedded_jubatus",
    # Loading numpy/scipy arrays into datums: no server involved.
    "jubakit.test.test_classifier.DatasetTest.test_from_data": "requires scikit-learn",
    "jubakit.test.test_classifier.DatasetTest.test_from_matrix": "requires scikit-learn",
    "jubakit.test.test_base.GenericSchemaTest.test_numpy": "requires scikit-learn",
}

CLASSIFIER_CONFIG = {
    "method": "AROW",
    "parameter": {"regularization_weight": 1.0},
    "converter": {
        "num_rules": [{"key": "*", "type": "num"}],
        "string_rules": [
            {"key": "*", "type": "str", "sample_weight": "bin", "global_weight": "bin"}
        ],
    },
}


# --- the jubakit venv and trees --------------------------------------------------------


def python39() -> str | None:
    """A Python 3.9 the way ``make jubakit`` finds one (pyenv's, or python3.9 on PATH)."""
    found = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.9*/bin/python")))
    return found[-1] if found else shutil.which("python3.9")


def require_jubakit() -> Path:
    """jubakit's interpreter; skips without a Python 3.9, fails with the remedy otherwise."""
    python = JUBAKIT_BIN / "python"
    if python.exists() and (SDIST_TREE / "jubakit" / "test").is_dir():
        return python
    if python39() is None:
        pytest.skip(
            "jubakit 0.6.2 needs Python <= 3.9 and this machine has none "
            "(~/.pyenv/versions/3.9*/bin/python or python3.9 on PATH)"
        )
    pytest.fail(
        f"{JUBAKIT_VENV} is missing or incomplete: create it with `make jubakit` (jubakit "
        "0.6.2, jubatus 1.1.0, msgpack 0.5, tornado 4.5 on Python 3.9, and its sdist)",
        pytrace=False,
    )


def tool_environment() -> dict[str, str]:
    """Jubako's commands first on PATH, no PYTHONPATH from this venv."""
    env = environment_without_pythonpath()
    env["PATH"] = os.pathsep.join([str(ENGINE_BIN), env.get("PATH", "")])
    return env


@pytest.fixture(scope="module")
def git_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """jubakit's git tree at tag 0.6.2: ``$JUBAKIT_SOURCE``, or exported from the mirror."""
    source = os.environ.get("JUBAKIT_SOURCE")
    if source:
        tree = Path(source)
        if not (tree / "jubakit" / "test" / "__init__.py").is_file():
            pytest.fail(f"JUBAKIT_SOURCE={source} holds no jubakit/test/__init__.py", pytrace=False)
        return tree
    if not MIRROR.is_dir() or shutil.which("git") is None:
        pytest.skip(
            "jubakit's git tree is not available (set JUBAKIT_SOURCE to an export of tag "
            f"{TAG}; the PyPI sdist lacks jubakit/test/__init__.py and its unit tests): "
            "only the sdist set ran"
        )
    tree = tmp_path_factory.mktemp("jubakit-git")
    archive = subprocess.run(
        ["git", "--git-dir", str(MIRROR), "archive", "--format=tar", TAG],
        capture_output=True,
        check=True,
        timeout=60,
    )
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True, timeout=60)
    return tree


# --- jubakit's own tests ---------------------------------------------------------------


@dataclass
class Outcome:
    run: int
    passed: list[str]
    failed: dict[str, str]  # failures and errors: id -> traceback
    skipped: dict[str, str]  # id -> reason


def run_jubakit_tests(root: Path, modules: Sequence[str], workdir: Path) -> Outcome:
    python = require_jubakit()
    out = workdir / "outcome.json"
    request = {
        "root": str(root),
        "tests": list(modules),
        "workdir": str(workdir),
        "path": [str(ENGINE_BIN)],
        "out": str(out),
    }
    try:
        done = subprocess.run(
            [str(python), str(SCRIPTS / "run_unittests.py")],
            input=json.dumps(request),
            capture_output=True,
            text=True,
            timeout=420,
            cwd=workdir,
            env=tool_environment(),
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"jubakit's tests in {root} ran past {error.timeout} s")
    if done.returncode != 0 or not out.exists():
        pytest.fail(f"jubakit's test runner exited {done.returncode}; stderr:\n{done.stderr}")
    data: dict[str, Any] = json.loads(out.read_text())
    return Outcome(
        run=data["run"],
        passed=data["passed"],
        failed=dict(data["failures"] + data["errors"]),
        skipped=dict(data["skipped"]),
    )


@pytest.fixture(scope="module")
def sdist_outcome(tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    require_jubakit()
    workdir = tmp_path_factory.mktemp("jubakit-sdist-run")
    return run_jubakit_tests(SDIST_TREE, list(MODULES["sdist"]), workdir)


@pytest.fixture(scope="module")
def git_outcome(git_tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    require_jubakit()
    workdir = tmp_path_factory.mktemp("jubakit-git-run")
    return run_jubakit_tests(git_tree, list(MODULES["git"]), workdir)


@pytest.mark.parametrize(
    ("which", "module"),
    [(which, module) for which, modules in MODULES.items() for module in modules],
    ids=[f"{w}-{m.removeprefix('jubakit.test.')}" for w, ms in MODULES.items() for m in ms],
)
def test_jubakit_own_tests_pass(which: str, module: str, request: pytest.FixtureRequest) -> None:
    """Every test of the module passes, but for the expected failures (checked on their
    own below) and jubakit's own skips for libraries left out."""
    outcome: Outcome = request.getfixturevalue(f"{which}_outcome")
    prefix = module + "."
    mine = [t for t in [*outcome.passed, *outcome.failed, *outcome.skipped] if t.startswith(prefix)]
    assert len(mine) == MODULES[which][module], sorted(mine)
    problems = {
        name: text
        for name, text in outcome.failed.items()
        if name.startswith(prefix) and name not in EXPECTED_FAILURES
    }
    assert problems == {}, "\n\n".join(f"{name}:\n{text}" for name, text in problems.items())
    skipped = {name: why for name, why in outcome.skipped.items() if name.startswith(prefix)}
    expected_skips = {n: why for n, why in JUBAKIT_SKIPS.items() if n.startswith(prefix)}
    assert skipped == expected_skips
    print(
        f"jubakit {which} set, {module}: {len(mine)} run, "
        f"{sum(t.startswith(prefix) for t in outcome.passed)} passed, "
        f"{sum(t.startswith(prefix) for t in outcome.failed)} failed as expected, "
        f"{len(skipped)} skipped by jubakit"
    )


class JubakitTestFailed(Exception):
    """A jubakit test failed the way it is expected to."""


@pytest.mark.xfail(strict=True, raises=JubakitTestFailed, reason=EXPECTED_FAILURES[CLUSTERING][1])
def test_jubakit_model_from_clustering(sdist_outcome: Outcome) -> None:
    """jubakit's clustering model test starts ``jubaclustering``, which Jubako lacks."""
    expect_pass(sdist_outcome, CLUSTERING)


def expect_pass(outcome: Outcome, name: str) -> None:
    if name in outcome.passed:
        return
    text = outcome.failed.get(name)
    assert text is not None, f"{name} did not run"
    shows, _ = EXPECTED_FAILURES[name]
    assert shows in text, f"{name} failed otherwise than expected:\n{text}"
    raise JubakitTestFailed(shows)


# --- jubash and jubamodel against Jubako's servers and files ---------------------------


def tool(name: str, *args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run jubakit's ``jubash`` or ``jubamodel`` from its venv."""
    require_jubakit()
    try:
        return subprocess.run(
            [str(JUBAKIT_BIN / name), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=cwd,
            env=tool_environment(),
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"{name} {' '.join(args)} ran past {error.timeout} s")


def jubash_script(
    port: int, commands: Sequence[str], workdir: Path, *options: str
) -> list[tuple[str, list[str]]]:
    """Run ``commands`` as a jubash script; each command with the lines it printed."""
    script = workdir / "commands.jsh"
    script.write_text("".join(f"{command}\n" for command in commands))
    done = tool("jubash", "-P", str(port), *options, str(script), cwd=workdir)
    assert done.returncode == 0, done.stdout + done.stderr
    answers: list[tuple[str, list[str]]] = []
    for line in done.stdout.splitlines():
        if line.startswith(">> "):
            answers.append((line[3:], []))
        else:
            assert answers, f"output before the first command: {done.stdout}"
            answers[-1][1].append(line)
    assert [command for command, _ in answers] == list(commands), done.stdout
    return answers


def scores(lines: Sequence[str]) -> list[tuple[str, float]]:
    """``label: score`` lines (jubash's classify), in the order printed."""
    pairs = [line.rsplit(": ", 1) for line in lines]
    return [(label, float(value)) for label, value in pairs]


@contextmanager
def engine(command: str, *args: str, workdir: Path) -> Iterator[ServerProcess]:
    """A Jubako server (``juba<service>``) on a free port of 127.0.0.1."""
    server = ServerProcess(
        ENGINE_BIN / command,
        ["--rpc-port", "0", "--datadir", str(workdir), *args],
        log_path=workdir / f"{command}-{len(list(workdir.glob('*.log')))}.log",
    )
    with server:
        yield server


def model_json(path: Path, workdir: Path, *options: str) -> dict[str, Any]:
    done = tool("jubamodel", "-o", "json", *options, str(path), cwd=workdir)
    assert done.returncode == 0, done.stdout + done.stderr
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def test_jubash_drives_a_classifier_server(tmp_path: Path) -> None:
    """A jubash script against ``jubaclassifier``: the service detected from get_status,
    train/classify/labels/save/status/config answered and printed as for Jubatus."""
    config = tmp_path / "classifier.json"
    config.write_text(json.dumps(CLASSIFIER_CONFIG))
    with engine("jubaclassifier", "--configpath", str(config), workdir=tmp_path) as server:
        answers = dict(
            jubash_script(
                server.port,
                [
                    "train pos x 1 y 1",
                    "train neg x -1 y -1",
                    "classify x 2 y 2",
                    "get_labels",
                    "save m1",
                    "get_status",
                    "get_config",
                ],
                tmp_path,
            )
        )
        ranked = scores(answers["classify x 2 y 2"])
        assert [label for label, _ in ranked] == ["pos", "neg"]
        assert ranked[0][1] > 0 > ranked[1][1]
        assert sorted(answers["get_labels"]) == ["neg: 1", "pos: 1"]
        saved = tmp_path / f"127.0.0.1_{server.port}_classifier_m1.jubatus"
        assert answers["save m1"] == [f"127.0.0.1_{server.port}:\t{saved}"]
        assert saved.is_file()
        status = answers["get_status"]
        assert status[0] == f"Server 127.0.0.1:{server.port}"
        assert "  type: classifier" in status and "  PROGNAME: jubaclassifier" in status
        assert "  VERSION: 1.1.1" in status  # Jubatus's release, as Jubatus reports it
        assert json.loads("\n".join(answers["get_config"])) == CLASSIFIER_CONFIG

        # One-shot commands, the service named, any cluster name; a failing script line.
        done = tool(
            "jubash", "-P", str(server.port), "-s", "classifier", "-C", "any-name",
            "--command", "classify x -2 y -2", cwd=tmp_path,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert scores(done.stdout.splitlines()[1:])[0][0] == "neg"
        script = tmp_path / "bad.jsh"
        script.write_text("classify x\nget_labels\n")
        done = tool("jubash", "-P", str(server.port), "--fail-fast", str(script), cwd=tmp_path)
        assert done.returncode != 0
        assert "value for the last datum key (x) is missing" in done.stdout
        assert ">> get_labels" not in done.stdout


def test_jubamodel_reads_rewrites_and_transforms_a_classifier_model(tmp_path: Path) -> None:
    """``jubamodel`` on a file Jubako saved (CRC checked), and Jubako on what jubamodel
    writes: a rewritten config with a fixed header, a broken header refused, a model
    transformed into ``weight``."""
    config = tmp_path / "classifier.json"
    config.write_text(json.dumps(CLASSIFIER_CONFIG))
    with engine("jubaclassifier", "--configpath", str(config), workdir=tmp_path) as server:
        answers = dict(
            jubash_script(
                server.port,
                ["train pos x 1 y 1 s red", "train neg x -1 y -1 s blue", "save m1",
                 "classify x 2 y 2 s red"],
                tmp_path,
            )
        )  # fmt: skip
        expected = scores(answers["classify x 2 y 2 s red"])
        saved = tmp_path / f"127.0.0.1_{server.port}_classifier_m1.jubatus"

        model = model_json(saved, tmp_path)
        assert model["header"]["format_version"] == 1
        assert model["header"]["jubatus_version_major"] == 1
        assert model["system"]["type"] == "classifier" and model["system"]["id"] == "m1"
        assert json.loads(model["system"]["config"]) == CLASSIFIER_CONFIG
        assert model["user"]["version"] == 1
        user = json.dumps(model["user"]["user_data"])
        assert '"x@num"' in user and '"s$red@str#bin/bin"' in user
        text = tool("jubamodel", str(saved), cwd=tmp_path)
        assert text.returncode == 0 and "type                    classifier" in text.stdout

        # JSON back to binary: the same bytes.
        as_json = tmp_path / "m1.json"
        copy = tmp_path / "copy.jubatus"
        for args in (
            ["-o", "json", "-O", str(as_json), str(saved)],
            ["-i", "json", "-o", "binary", "-O", str(copy), str(as_json)],
        ):
            done = tool("jubamodel", *args, cwd=tmp_path)
            assert done.returncode == 0, done.stdout + done.stderr
        assert copy.read_bytes() == saved.read_bytes()

        # A version rewritten without fixing the header: Jubako's load refuses the CRC.
        broken = tmp_path / f"127.0.0.1_{server.port}_classifier_broken.jubatus"
        done = tool("jubamodel", "-Z", "1.1.9", "-o", "binary", "-O", str(broken), str(saved),
                    cwd=tmp_path)  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        done = tool("jubash", "-P", str(server.port), "--command", "load broken", cwd=tmp_path)
        assert done.returncode != 0 and "invalid crc32 checksum" in done.stdout, done.stdout

    # Another config written in with a fixed header: a server started from the file takes
    # the config inside and classifies as before.
    other = {**CLASSIFIER_CONFIG, "parameter": {"regularization_weight": 0.5}}
    other_path = tmp_path / "other.json"
    other_path.write_text(json.dumps(other))
    rewritten = tmp_path / "rewritten.jubatus"
    done = tool("jubamodel", "-R", str(other_path), "-F", "-o", "binary", "-O", str(rewritten),
                str(saved), cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    with engine("jubaclassifier", "--model_file", str(rewritten), workdir=tmp_path) as server:
        answers = dict(
            jubash_script(server.port, ["get_config", "classify x 2 y 2 s red"], tmp_path)
        )
        assert json.loads("\n".join(answers["get_config"])) == other
        assert scores(answers["classify x 2 y 2 s red"]) == expected

    # Transformed into a weight model (JubaModel.transform): jubaweight serves it.
    weight = tmp_path / "weight.jubatus"
    done = tool("jubamodel", "-T", "weight", "-o", "binary", "-O", str(weight), str(saved),
                cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert model_json(weight, tmp_path)["system"]["type"] == "weight"
    with engine("jubaweight", "--model_file", str(weight), workdir=tmp_path) as server:
        answers = dict(jubash_script(server.port, ["calc_weight x 3 s red", "get_config"],
                                     tmp_path))  # fmt: skip
        assert sorted(answers["calc_weight x 3 s red"]) == ["s$red@str#bin/bin\t1.0", "x@num\t3.0"]
        assert json.loads("\n".join(answers["get_config"])) == {
            "converter": CLASSIFIER_CONFIG["converter"]
        }


def test_jubash_and_jubamodel_with_stat(tmp_path: Path) -> None:
    """A jubash script against ``jubastat``; the saved model read by jubamodel and served
    again from ``--model_file``."""
    config = tmp_path / "stat.json"
    config.write_text(json.dumps({"window_size": 128}))
    with engine("jubastat", "--configpath", str(config), workdir=tmp_path) as server:
        answers = dict(
            jubash_script(
                server.port,
                ["push x 1", "push x 2", "push y 3", "push y 4", "sum x", "stddev y", "max x",
                 "min y", "entropy x", "moment y 2 0", "save s1"],
                tmp_path,
            )
        )  # fmt: skip
        assert answers["sum x"] == ["3.0"] and answers["stddev y"] == ["0.5"]
        assert answers["max x"] == ["2.0"] and answers["min y"] == ["3.0"]
        assert float(answers["entropy x"][0]) == pytest.approx(0.6931471805599453)
        assert answers["moment y 2 0"] == ["12.5"]
        saved = tmp_path / f"127.0.0.1_{server.port}_stat_s1.jubatus"
        assert answers["save s1"] == [f"127.0.0.1_{server.port}:\t{saved}"]

    model = model_json(saved, tmp_path)
    assert model["system"]["type"] == "stat" and model["system"]["id"] == "s1"
    assert json.loads(model["system"]["config"]) == {"window_size": 128}
    user = json.dumps(model["user"]["user_data"])
    assert '"x", 1.0' in user and '"y", 4.0' in user
    with engine("jubastat", "--model_file", str(saved), workdir=tmp_path) as server:
        answers = dict(jubash_script(server.port, ["sum x", "max y", "get_config"], tmp_path))
        assert answers["sum x"] == ["3.0"] and answers["max y"] == ["4.0"]
        assert json.loads("\n".join(answers["get_config"])) == {"window_size": 128}


def test_jubatus_iris_model_served_by_jubako(git_tree: Path, tmp_path: Path) -> None:
    """jubakit's example model, saved by Jubatus 1.0: jubamodel reads it, and a Jubako
    classifier started from it classifies jubakit's iris.csv (git tree only: the sdist
    ships neither file)."""
    iris_model = git_tree / "example" / "classifier_iris_model.jubatus"
    model = model_json(iris_model, tmp_path)
    assert model["system"]["type"] == "classifier"
    assert json.loads(model["system"]["config"])["method"] == "AROW"
    with (git_tree / "example" / "iris.csv").open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 150
    commands = [
        "classify " + " ".join(f"{k} {v}" for k, v in row.items() if k != "Species") for row in rows
    ]
    with engine("jubaclassifier", "--model_file", str(iris_model), workdir=tmp_path) as server:
        answers = jubash_script(server.port, [*commands, "get_labels"], tmp_path)
    assert sorted(answers[-1][1]) == [
        "Iris-setosa: 50", "Iris-versicolor: 50", "Iris-virginica: 50"
    ]  # fmt: skip
    right = sum(
        scores(lines)[0][0] == row["Species"]
        for (_, lines), row in zip(answers, rows, strict=False)
    )
    assert right >= 135, f"{right} of 150 iris rows classified right"
