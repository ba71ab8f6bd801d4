"""Generated code of every IDL we ship and of the test corpus: lint, types, imports, wire.

Each IDL is generated with both targets into one temporary tree (server files flat, client
packages under ``py/``, each ``*_serv.tmpl.py`` also copied to ``*_serv.py`` so the
template is checked as the user will run it). Then ruff and ``mypy --strict`` run once over
the whole tree, and every message of every IDL is built, sent through msgpack the way the
wire does it, and decoded back equal.
"""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import msgpack
import pytest

from jenerator import naming
from jenerator.frontend import load_idl_file
from jenerator.model import (
    Enum,
    ExceptionDef,
    Idl,
    ListType,
    MapType,
    Message,
    NamedType,
    NullableType,
    PrimitiveType,
    TupleType,
    TypeExpr,
)
from jenerator.targets import Options, generate
from jenerator.writer import write_all
from runtime.wire.datum import Datum

REPO = Path(__file__).resolve().parents[2]
IDLS = sorted([*(REPO / "idl").glob("*.idl"), *(REPO / "tests/jenerator/cases/ok").glob("*.idl")])
BIN = Path(sys.executable).parent


def _multi_service(idl: Idl) -> bool:
    return len(idl.services) != 1


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("generated")
    stems = [p.stem for p in IDLS]
    assert len(stems) == len(set(stems)), "IDL names must be unique across idl/ and the corpus"
    for path in IDLS:
        idl = load_idl_file(str(path))
        options = Options(source_name=path.name, template=True)
        if not _multi_service(idl):
            write_all(generate(idl, "server", options), root / "srv")
            template = root / "srv" / f"{path.stem}_serv.tmpl.py"
            shutil.copy(template, root / "srv" / f"{path.stem}_serv.py")
        package = Options(source_name=path.name, namespace="corpus")
        write_all(generate(idl, "python", package), root / "py")
    namespaced = load_idl_file(str(REPO / "idl" / "kvs.idl"))
    write_all(
        generate(namespaced, "server", Options("kvs.idl", namespace="nsroot.inner", template=True)),
        root / "ns" / "nsroot" / "inner",
    )
    for folder in (root / "ns" / "nsroot", root / "ns" / "nsroot" / "inner"):
        (folder / "__init__.py").write_text("")
    return root


def test_ruff_passes_on_generated_code(tree: Path) -> None:
    src = f'src = ["{REPO}", "{tree / "srv"}", "{tree / "py"}", "{tree / "ns"}"]'
    result = subprocess.run(
        [str(BIN / "ruff"), "check", "--no-cache", "--config", str(REPO / "pyproject.toml"),
         "--config", src, str(tree)],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_passes_on_generated_code(tree: Path) -> None:
    files = [str(p) for p in tree.rglob("*.py") if not p.name.endswith(".tmpl.py")]
    result = subprocess.run(
        [str(BIN / "mypy"), "--strict", "--no-incremental", "--explicit-package-bases",
         "--config-file", str(REPO / "pyproject.toml"), *files],
        capture_output=True,
        text=True,
        env={"MYPYPATH": f"{REPO}:{tree / 'srv'}:{tree / 'py'}:{tree / 'ns'}", "PATH": "/bin"},
        cwd=REPO,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture()
def importable(tree: Path) -> Iterator[Path]:
    before = set(sys.modules)
    sys.path[:0] = [str(tree / "srv"), str(tree / "py")]
    try:
        yield tree
    finally:
        del sys.path[:2]
        for name in set(sys.modules) - before:
            if not name.startswith(("runtime", "jenerator", "msgpack", "_pytest", "pytest")):
                sys.modules.pop(name, None)


def _sample(expr: TypeExpr, idl: Idl, module: ModuleType, depth: int = 0) -> object:
    """A deterministic value of ``expr`` built from the generated classes."""
    match expr:
        case PrimitiveType(name=name):
            return {
                "bool": True, "byte": -7, "short": 300, "int": -70000, "long": 2**40,
                "ubyte": 200, "ushort": 60000, "uint": 2**31, "ulong": 2**63,
                "float": 0.5, "double": -2.25, "raw": b"\x00\xff raw", "string": "s\u00e9",
                "object": [1, 2.5, None], "datum": Datum({"text": "hi", "x": 1.5}),
            }[name]  # fmt: skip
        case ListType(element=element):
            return [] if depth > 2 else [_sample(element, idl, module, depth + 1)]
        case MapType(key=key, value=value):
            if depth > 2:
                return {}
            return {_sample(key, idl, module, depth + 1): _sample(value, idl, module, depth + 1)}
        case TupleType(elements=elements):
            return tuple(_sample(e, idl, module, depth + 1) for e in elements)
        case NullableType(inner=inner):
            return None if depth % 2 else _sample(inner, idl, module, depth + 1)
        case NamedType(name=name):
            declaration = idl.type_named(name)
            cls = getattr(module, naming.class_name(name))
            if isinstance(declaration, Enum):
                return list(cls)[-1]
            assert isinstance(declaration, Message | ExceptionDef)
            fields = sorted(declaration.fields, key=lambda f: f.id)
            return cls(*(_sample(f.type, idl, module, depth + 1) for f in fields))
    raise AssertionError(expr)


@pytest.mark.parametrize("path", IDLS, ids=[p.stem for p in IDLS])
def test_messages_round_trip_through_the_wire(importable: Path, path: Path) -> None:
    idl = load_idl_file(str(path))
    package = importlib.import_module(f"corpus.{path.stem}.types")
    declared: tuple[Message | ExceptionDef, ...] = (*idl.messages, *idl.exceptions)
    for declaration in declared:
        cls = getattr(package, naming.class_name(declaration.name))
        value: Any = _sample(NamedType(declaration.name), idl, package)
        wire = msgpack.packb(value.to_msgpack(), use_bin_type=False)
        decoded = cls.from_msgpack(msgpack.unpackb(wire, raw=True, strict_map_key=False))
        assert vars(decoded) == vars(value), declaration.name
        assert isinstance(decoded, cls)
    for service in idl.services:
        client = importlib.import_module(f"corpus.{path.stem}.client")
        cls = getattr(client, naming.class_name(service.name))
        for method in service.methods:
            assert callable(
                getattr(cls, naming.python_identifier(method.name, naming.CLIENT_RESERVED))
            )
