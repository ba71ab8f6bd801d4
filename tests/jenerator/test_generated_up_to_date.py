"""generated/ and the generated files of examples/kvs/ equal a fresh run of jenerator."""

from __future__ import annotations

from pathlib import Path

from jenerator import regen


def test_checked_in_output_matches_a_fresh_run() -> None:
    problems = regen.check(regen.read_manifest())
    assert problems == [], "run `python -m jenerator.regen` and commit the result"


def test_every_shipped_idl_has_rows() -> None:
    rows = regen.read_manifest()
    shipped = {p.name for p in (regen.REPO / "idl").glob("*.idl")}
    assert {Path(r.idl).name for r in rows} == shipped
    assert {r.lang for r in rows} == {"server", "python", "http"}


def test_check_reports_a_changed_file(tmp_path: Path) -> None:
    (tmp_path / "idl").mkdir()
    (tmp_path / "generated").mkdir()
    (tmp_path / "idl" / "kvs.idl").write_text((regen.REPO / "idl" / "kvs.idl").read_text())
    row = regen.Row("idl/kvs.idl", "server", "generated/server", None, False)
    regen.regenerate([row], tmp_path)
    assert regen.check([row], tmp_path) == []
    target = tmp_path / "generated" / "server" / "kvs_client.py"
    target.write_text(target.read_text() + "# edited\n")
    (tmp_path / "generated" / "server" / "stale.py").write_text("")
    problems = regen.check([row], tmp_path)
    assert any(p.startswith("differs: generated/server/kvs_client.py") for p in problems)
    assert any(p.startswith("stale: generated/server/stale.py") for p in problems)
