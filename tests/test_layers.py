"""The import rules of ``docs/architecture.md``: folders import downwards only, no cycles.

Every module of ``jenerator``, ``runtime`` and ``engines`` is read (not imported) and each
import outside ``if TYPE_CHECKING:`` is checked against :data:`MAY_IMPORT`, the table the
architecture map states in words. A new folder must be added here and to the map.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("jenerator", "runtime", "engines")

#: Folder (component) → the components its modules may import, besides its own.
#: ``runtime`` alone is the public facade (``runtime/__init__.py``).
MAY_IMPORT: dict[str, set[str]] = {
    "jenerator": set(),
    "runtime.errors": set(),
    "runtime.version": set(),
    "runtime.wire": {"runtime.errors"},
    "runtime.process": {"runtime.errors", "runtime.version"},
    "runtime.rpc": {"runtime.errors", "runtime.wire"},
    "runtime.cluster": {"runtime.errors", "runtime.process"},
    "runtime.mix": {"runtime.errors", "runtime.wire", "runtime.rpc", "runtime.cluster"},
    "runtime.server": {
        "runtime.errors", "runtime.version", "runtime.wire", "runtime.rpc",
        "runtime.process", "runtime.cluster", "runtime.mix",
    },
    "runtime.proxy": {
        "runtime.errors", "runtime.version", "runtime.wire", "runtime.rpc",
        "runtime.process", "runtime.cluster",
    },
    "runtime.tools": {
        "runtime.errors", "runtime.version", "runtime.wire", "runtime.rpc",
        "runtime.process", "runtime.cluster", "runtime.server",
    },
    "runtime.http": {
        "runtime.errors", "runtime.version", "runtime.wire", "runtime.rpc", "runtime.process",
    },
    "runtime.testing": {"runtime.errors", "runtime.process", "runtime.cluster"},
    "runtime": {
        "runtime.errors", "runtime.version", "runtime.wire", "runtime.rpc",
        "runtime.mix", "runtime.server",
    },
    "engines": set(),
    "engines.common": {"runtime", "runtime.errors", "runtime.wire", "runtime.mix"},
}  # fmt: skip
#: Every engine package may import the shared package and the whole runtime.
ENGINE_MAY_IMPORT = {"engines.common", "runtime"} | {
    c for c in MAY_IMPORT if c.startswith("runtime.")
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def component(module: str) -> str:
    """The folder a module belongs to, as named in :data:`MAY_IMPORT`."""
    parts = module.split(".")
    if parts[0] == "jenerator":
        return "jenerator"
    return ".".join(parts[:2])


def modules() -> Iterator[tuple[str, Path]]:
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            yield module_name(path), path


def imports(path: Path) -> Iterator[tuple[int, str]]:
    """``(line, module)`` for every import executed at run time (not under TYPE_CHECKING)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(child) for stmt in node.body for child in ast.walk(stmt))
    package = module_name(path) if path.name == "__init__.py" else module_name(path.parent)
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            for alias in node.names:
                # ``from runtime.wire import types`` imports the module runtime.wire.types.
                yield node.lineno, base if alias.name == "*" else f"{base}.{alias.name}"


def known(name: str, names: set[str]) -> str | None:
    """The project module ``name`` refers to (the longest known prefix), if any."""
    while name:
        if name in names:
            return name
        name = name.rpartition(".")[0]
    return None


def graph() -> dict[str, set[str]]:
    names = {name for name, _ in modules()}
    edges: dict[str, set[str]] = {}
    for name, path in modules():
        edges[name] = set()
        for _, imported in imports(path):
            target = known(imported, names)
            if target is not None and target != name:
                edges[name].add(target)
    return edges


def test_every_folder_imports_only_what_the_map_allows() -> None:
    names = {name for name, _ in modules()}
    problems = []
    for name, path in modules():
        own = component(name)
        if own.startswith("engines.") and own != "engines.common":
            allowed = ENGINE_MAY_IMPORT
        else:
            assert own in MAY_IMPORT, f"{name}: folder {own} is not in the map"
            allowed = MAY_IMPORT[own]
        for line, imported in imports(path):
            target = known(imported, names)
            if target is None:
                continue
            theirs = component(target)
            if theirs != own and theirs not in allowed:
                problems.append(f"{path.relative_to(REPO)}:{line}: {own} imports {target}")
    assert not problems, "imports against docs/architecture.md:\n" + "\n".join(problems)


def test_no_module_imports_itself_through_a_cycle() -> None:
    edges = graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in edges.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            members = []
            while True:
                member = stack.pop()
                members.append(member)
                if member == node:
                    break
            # A package's __init__ importing its own modules is not a cycle.
            if len(members) > 1 and not all(m.startswith(min(members)) for m in members):
                cycles.append(sorted(members))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    assert not cycles, f"import cycles: {cycles}"


def test_the_map_in_the_docs_names_every_folder() -> None:
    text = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    folders = sorted(
        str(path.parent.relative_to(REPO)) + "/"
        for package in ("runtime", "engines")
        for path in (REPO / package).glob("*/__init__.py")
    )
    missing = [folder for folder in folders if f"`{folder}`" not in text]
    assert not missing, f"docs/architecture.md's map lacks {missing}"
