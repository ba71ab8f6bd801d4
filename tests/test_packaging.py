"""The top-level names ``runtime`` and ``jenerator`` are generic: make a clash fail loudly."""

from pathlib import Path

import jenerator
import runtime

REPO = Path(__file__).resolve().parent.parent


def test_runtime_is_this_repository() -> None:
    assert Path(runtime.__file__).resolve().is_relative_to(REPO)


def test_jenerator_is_this_repository() -> None:
    assert Path(jenerator.__file__).resolve().is_relative_to(REPO)


def test_grammar_ships_as_package_data() -> None:
    assert (Path(jenerator.__file__).parent / "grammar" / "msgpack_idl.lark").is_file()
