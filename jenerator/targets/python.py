"""The ``python`` target: a client package ``DIR/[NAMESPACE/]NAME/``.

The package holds ``__init__.py`` (re-exports), ``types.py`` and ``client.py``; modules
inside it import each other relatively, so the package works wherever it is placed.
"""

from __future__ import annotations

from jenerator.model import Idl
from jenerator.render import render
from jenerator.targets import Options
from jenerator.targets.context import build_context
from jenerator.targets.imports import ImportBlock, isort_order
from jenerator.targets.server import client_module
from jenerator.writer import OutputFile


def build(idl: Idl, options: Options) -> list[OutputFile]:
    """Every file of the client package for ``idl``."""
    ctx = build_context(idl, options.source_name, "types.")
    folder = "/".join([*(options.namespace or "").split("."), ctx.base_name]).strip("/")
    client_block = ImportBlock().from_(
        "runtime.rpc.service_client", "AsyncClientBase", "ClientBase"
    )
    client_block.from_(".", "types")
    if ctx.methods_need_datum:
        client_block.from_("runtime.wire.datum", "Datum")
    clients = sorted(n for s in ctx.services for n in (s.class_name, f"Async{s.class_name}"))
    init_block = ImportBlock()
    if clients:
        init_block.from_(".client", *clients)
    type_names = list(ctx.types_exports)
    if type_names:
        init_block.from_(".types", *type_names)
    init = render(
        "python/__init__.py.j2",
        ctx=ctx,
        imports=init_block.render(),
        exports=sorted([*clients, *type_names], key=isort_order),
    )
    return [
        OutputFile(f"{folder}/__init__.py", init),
        OutputFile(f"{folder}/types.py", render("common/types.py.j2", ctx=ctx)),
        OutputFile(f"{folder}/client.py", client_module(ctx, client_block)),
    ]
