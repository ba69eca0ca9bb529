"""Every command line: user errors give a message and exit code 2, never a traceback."""
import os
import subprocess
import sys

import pytest


def run(*args, env_extra=None):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.parametrize(
    "args, message",
    [
        (("protocols.lfw", "--embedder", "nope"), "unknown embedder 'nope'; known embedders:"),
        (("protocols.lfw", "--embedder", "lbp", "--data-root", "/nonexistent-root"), "/nonexistent-root/lfw-py/pairs.txt"),
        (("protocols.lfw", "--embedder", "lbp", "--split", "view3"), "invalid choice: 'view3'"),
        (("protocols.ijba", "--embedder", "lbp", "--protocol-dir", "/nonexistent-ijba"), "protocol folder not found"),
        (("protocols.ijba", "--embedder", "lbp", "--protocol-dir", ".", "--splits", "one"), "--splits must be"),
        (("protocols.ijba_fixture", "--out", "/tmp/x", "--subjects", "0"), "must be positive"),
        (("bench.data", "fetch", "nothing"), "invalid choice: 'nothing'"),
        (("protocols.lfw", "--embedder", "lbp", "--weights", "w.pt"), "embedder 'lbp' has no option weights"),
        (("protocols.lfw", "--embedder", "openface-nn4", "--weights", "/nonexistent.pt"), "no nn4.small2 weights at"),
    ],
)
def test_user_errors_exit_2_without_traceback(args, message):
    result = run(*args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_malformed_pairs_file_on_the_command_line(tmp_path):
    lfw = tmp_path / "lfw-py"
    (lfw / "lfw-deepfunneled").mkdir(parents=True)
    (lfw / "pairs.txt").write_text("10\t300\nAnn\t1\n")
    result = run("protocols.lfw", "--embedder", "lbp", "--data-root", str(tmp_path))
    assert result.returncode == 2
    assert "pairs.txt: header (line 1) announces 10 fold(s)" in result.stderr
    assert "Traceback" not in result.stderr
