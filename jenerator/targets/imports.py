"""Import blocks for generated modules, sorted the way ruff's isort rules expect.

Sections: standard library, then first party (``runtime`` and the generated siblings),
then relative imports. Inside a section, ``import x`` lines come before ``from x import y``
lines; names are ordered constants, classes, then functions, as isort's ``order_by_type``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


def isort_order(name: str) -> tuple[int, str]:
    """Sort key of isort's ``order_by_type`` (also ruff's order for ``__all__``)."""
    return _name_order(name)


def _name_order(name: str) -> tuple[int, str]:
    bare = name.split(" as ")[0]
    if bare.isupper():
        return (0, bare)
    if bare[:1].isupper():
        return (1, bare)
    return (2, bare)


@dataclass
class _Section:
    plain: set[str] = field(default_factory=set)
    froms: dict[str, set[str]] = field(default_factory=dict)

    def lines(self) -> list[str]:
        out = [f"import {module}" for module in sorted(self.plain, key=lambda m: m.split()[0])]
        for module in sorted(self.froms):
            names = ", ".join(sorted(self.froms[module], key=_name_order))
            line = f"from {module} import {names}"
            if len(line) > 100:
                inner = "".join(f"    {n},\n" for n in sorted(self.froms[module], key=_name_order))
                line = f"from {module} import (\n{inner})"
            out.append(line)
        return out


@dataclass
class ImportBlock:
    """Collects imports; :meth:`render` gives the sorted block without a final newline."""

    stdlib: _Section = field(default_factory=_Section)
    first_party: _Section = field(default_factory=_Section)
    local: _Section = field(default_factory=_Section)

    def std(self, module: str) -> ImportBlock:
        self.stdlib.plain.add(module)
        return self

    def plain(self, module: str) -> ImportBlock:
        """``import module`` (``module`` may carry ``as alias``), first party."""
        self.first_party.plain.add(module)
        return self

    def from_(self, module: str, *names: str) -> ImportBlock:
        section = self.local if module.startswith(".") else self.first_party
        section.froms.setdefault(module, set()).update(names)
        return self

    def render(self) -> str:
        blocks = [s.lines() for s in (self.stdlib, self.first_party, self.local)]
        return "\n\n".join("\n".join(lines) for lines in blocks if lines)


def sibling_import(block: ImportBlock, namespace: str | None, module: str, alias: str) -> None:
    """Import a generated sibling module as ``alias``, inside ``namespace`` when given."""
    if namespace:
        block.from_(namespace, f"{module} as {alias}")
    else:
        block.plain(f"{module} as {alias}")
