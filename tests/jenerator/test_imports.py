from jenerator.targets.imports import ImportBlock, isort_order, sibling_import


def test_sections_and_order() -> None:
    block = ImportBlock().std("typing").std("sys")
    block.from_("runtime.server.main", "run_server", "handler")
    block.from_("runtime.rpc.locks", "LockMode")
    block.from_(".", "types")
    sibling_import(block, None, "kvs_types", "types")
    assert block.render() == (
        "import sys\nimport typing\n\n"
        "import kvs_types as types\n"
        "from runtime.rpc.locks import LockMode\n"
        "from runtime.server.main import handler, run_server\n\n"
        "from . import types"
    )


def test_namespaced_sibling() -> None:
    block = ImportBlock()
    sibling_import(block, "pkg.sub", "kvs_types", "types")
    assert block.render() == "from pkg.sub import kvs_types as types"


def test_isort_order_puts_constants_then_classes_then_functions() -> None:
    names = ["run", "Route", "ROUTES", "handler", "LockMode"]
    assert sorted(names, key=isort_order) == ["ROUTES", "LockMode", "Route", "handler", "run"]
