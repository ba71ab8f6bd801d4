import os
import stat
from pathlib import Path

import pytest

from jenerator.errors import OutputError
from jenerator.writer import OutputFile, write_all


def test_writes_every_file(tmp_path: Path) -> None:
    written = write_all([OutputFile("a.py", "A\n"), OutputFile("pkg/b.py", "B\n")], tmp_path)
    assert [p.name for p in written] == ["a.py", "b.py"]
    assert (tmp_path / "a.py").read_text() == "A\n"
    assert (tmp_path / "pkg" / "b.py").read_text() == "B\n"


def test_nothing_is_written_when_one_file_fails(tmp_path: Path) -> None:
    (tmp_path / "old.py").write_text("old\n")
    (tmp_path / "blocker").write_text("a file where a folder should be")
    with pytest.raises(OutputError):
        write_all([OutputFile("old.py", "new\n"), OutputFile("blocker/x.py", "x\n")], tmp_path)
    assert (tmp_path / "old.py").read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker", "old.py"]


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_files_get_the_mode_the_umask_gives(tmp_path: Path, umask: int, mode: int) -> None:
    """Not the 0600 of a private temp file: a copy of the template must stay readable."""
    old = os.umask(umask)
    try:
        [path] = write_all([OutputFile("kvs_serv.tmpl.py", "x = 1\n")], tmp_path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == mode
    assert [p.name for p in tmp_path.iterdir()] == ["kvs_serv.tmpl.py"]  # no temp left
