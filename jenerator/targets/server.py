"""The ``server`` target: types, client, server main (impl), proxy main and serv template.

For ``NAME.idl`` it writes ``NAME_types.py``, ``NAME_client.py``, ``NAME_impl.py``,
``NAME_proxy.py`` and, with ``-t``, ``NAME_serv.tmpl.py``. The modules import each other
by plain name (or from ``-n NAMESPACE``), so they run as scripts from their directory.
"""

from __future__ import annotations

from jenerator.diagnostics import Diagnostic
from jenerator.errors import IdlError
from jenerator.model import Idl
from jenerator.naming import module_prefix
from jenerator.pyexpr import call, layout
from jenerator.render import render
from jenerator.targets import Options
from jenerator.targets.context import IdlContext, ServiceContext, build_context
from jenerator.targets.imports import ImportBlock, isort_order, sibling_import
from jenerator.writer import OutputFile


def build(idl: Idl, options: Options) -> list[OutputFile]:
    """Every file of the server target for ``idl``."""
    if len(idl.services) != 1:
        message = f"the server target needs exactly one service; found {len(idl.services)}"
        if len(idl.services) > 1:
            raise IdlError([Diagnostic.error(idl.services[1].span, message)])
        raise IdlError([Diagnostic.at_file(idl.path, message)])
    ctx = build_context(idl, options.source_name, "types.")
    service = ctx.services[0]
    base = ctx.base_name
    files = [
        OutputFile(f"{base}_types.py", render("common/types.py.j2", ctx=ctx)),
        OutputFile(f"{base}_client.py", _client(ctx, options)),
        OutputFile(f"{base}_impl.py", _impl(ctx, service, options)),
        OutputFile(f"{base}_proxy.py", _proxy(ctx, service, options)),
    ]
    if options.template:
        files.append(OutputFile(f"{base}_serv.tmpl.py", _serv_template(ctx, service, options)))
    return files


def _client(ctx: IdlContext, options: Options) -> str:
    block = ImportBlock().from_("runtime.rpc.service_client", "AsyncClientBase", "ClientBase")
    sibling_import(block, options.namespace, f"{ctx.base_name}_types", "types")
    if ctx.methods_need_datum:
        block.from_("runtime.wire.datum", "Datum")
    return client_module(ctx, block)


def client_module(ctx: IdlContext, block: ImportBlock) -> str:
    """The client module text (shared with the ``python`` target)."""
    exports = sorted(
        (name for s in ctx.services for name in (s.class_name, f"Async{s.class_name}")),
        key=isort_order,
    )
    return render("common/client.py.j2", ctx=ctx, imports=block.render(), client_exports=exports)


def _impl(ctx: IdlContext, service: ServiceContext, options: Options) -> str:
    block = ImportBlock().std("sys").std("typing")
    block.from_("runtime.rpc.locks", "LockMode")
    block.from_("runtime.rpc.dispatch", "Handler")
    block.from_("runtime.server.main", "handler", "run_server")
    sibling_import(block, options.namespace, f"{ctx.base_name}_types", "types")
    if ctx.methods_need_datum:
        block.from_("runtime.wire.datum", "Datum")
    rows = [
        layout(
            call(
                "handler",
                f"types.{m.signature}",
                f"serv.{m.serv_name}",
                f"LockMode.{m.lock}",
            ),
            indent=2,
            lead=f'"{m.wire_name}": ',
            trail=",",
        )
        for m in service.methods
    ]
    serv_module = module_prefix(options.namespace) + f"{ctx.base_name}_serv"
    return render(
        "server/impl.py.j2",
        ctx=ctx,
        service=service,
        imports=block.render(),
        rows=rows,
        serv_module=serv_module,
    )


def _proxy(ctx: IdlContext, service: ServiceContext, options: Options) -> str:
    block = ImportBlock().std("sys").std("typing")
    block.from_("runtime.rpc.locks", "LockMode")
    block.from_("runtime.proxy.routing", "Route", "Routing")
    block.from_("runtime.proxy.main", "run_proxy")
    sibling_import(block, options.namespace, f"{ctx.base_name}_types", "types")
    rows = []
    for m in service.proxied_methods:
        args = [f"types.{m.signature}", f"Routing.{m.routing}", f"LockMode.{m.lock}"]
        args.append(f'"{m.aggregator}"')
        if m.routing == "CHT":
            args.append(f"replicas={m.replicas}")
        rows.append(layout(call("Route", *args), indent=1, trail=","))
    return render("server/proxy.py.j2", ctx=ctx, service=service, imports=block.render(), rows=rows)


def _serv_template(ctx: IdlContext, service: ServiceContext, options: Options) -> str:
    # The names a service author uses come from the runtime package itself.
    public = ["Datum", "ServerBase"] if ctx.methods_need_datum else ["ServerBase"]
    block = ImportBlock().from_("runtime", *public)
    if ctx.methods_need_types:
        sibling_import(block, options.namespace, f"{ctx.base_name}_types", "types")
    return render("server/serv_tmpl.py.j2", ctx=ctx, service=service, imports=block.render())
