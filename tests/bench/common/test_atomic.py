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


def test_a_full_disk_names_the_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    """Issue 20, item 7: a full or read-only disk gave a traceback naming a temporary file."""
    import errno
    import os

    import pytest

    from bench.common import atomic
    from bench.common.atomic import OutputError, write_json

    target = tmp_path / "metrics.json"
    write_json(target, {"old": 1})

    def full_disk(source, destination):
        raise OSError(errno.ENOSPC, "No space left on device", str(source))

    monkeypatch.setattr(atomic.os, "replace", full_disk)
    with pytest.raises(OutputError, match=rf"cannot write {target}: No space left on device"):
        write_json(target, {"new": 2})
    assert target.read_text().strip().startswith("{") and "old" in target.read_text()
    assert not list(tmp_path.glob(".tmp-*"))
    monkeypatch.undo()

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(tmp_path / "new"))

    monkeypatch.setattr(atomic.tempfile, "mkstemp", read_only)
    with pytest.raises(OutputError, match=r"new[/\\]result.json: Read-only file system"):
        write_json(tmp_path / "new" / "result.json", {})
    assert os.path.exists(target)


def test_a_command_meeting_a_full_disk_exits_2_without_traceback(capsys):
    import errno

    import pytest

    from bench.common.cli import run_main

    def main(argv):
        raise OSError(errno.ENOSPC, "No space left on device", "/data/out/embeddings.npz")

    with pytest.raises(SystemExit) as stopped:
        run_main(main, [])
    assert stopped.value.code == 2
    assert capsys.readouterr().err.strip() == "error: /data/out/embeddings.npz: No space left on device"
