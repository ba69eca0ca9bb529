"""Atomic writes: a reader sees the old file or the new one, and the new one has the permissions of any other."""
import contextlib
import os
import stat

import numpy as np
import pytest

from bench.common.atomic import save_image_atomically, write_json, write_text


@contextlib.contextmanager
def umask(mask: int):
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002])
def test_written_files_follow_the_umask_like_ordinary_files(tmp_path, mask):
    """Issue 20, item 9: mkstemp's 0600 made configs, images and checkpoints unreadable to other users."""
    with umask(mask):
        (tmp_path / "ordinary.txt").write_text("x")
        write_text(tmp_path / "a.txt", "text")
        write_json(tmp_path / "a.json", {"a": 1})
        save_image_atomically(np.zeros((4, 4, 3), np.uint8), tmp_path / "a.png", "png")
    expected = stat.S_IMODE((tmp_path / "ordinary.txt").stat().st_mode)
    assert expected == 0o666 & ~mask
    for name in ("a.txt", "a.json", "a.png"):
        assert oct(stat.S_IMODE((tmp_path / name).stat().st_mode)) == oct(expected), name


def test_an_existing_file_is_replaced_whole(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    write_text(target, "new")
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"], "no temporary left behind"
