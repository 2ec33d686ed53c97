"""Atomic writes: a failed write leaves the old file and no temporary; a good one a normal file."""

import os
import stat

import pytest

from tinymtl.files import atomic_write, write_text


def test_failed_write_keeps_the_old_file_and_leaves_nothing_behind(tmp_path):
    target = tmp_path / "summary.json"
    write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_write(target) as temporary:
            with open(temporary, "w") as f:
                f.write("half of the new cont")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_written_file_has_the_usual_permissions(tmp_path):
    target = tmp_path / "out.txt"
    write_text(target, "new")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask
    assert target.read_text() == "new"
