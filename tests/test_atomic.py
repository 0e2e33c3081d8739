from pathlib import Path

import pytest

from dqm_playground_ds.atomic import atomic_write


def test_replaces_the_file_whole(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    atomic_write(target, lambda tmp: Path(tmp).write_text("first"))
    atomic_write(target, lambda tmp: Path(tmp).write_text("second"))
    assert target.read_text() == "second"
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out.parquet"
    target.write_text("old")

    def broken(tmp):
        Path(tmp).write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, broken, suffix=".parquet")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.parquet"]
