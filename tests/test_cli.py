"""Every command line: user errors give a message and exit code 2, never a traceback."""
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


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
        (("protocols.ijbc", "--embedder", "lbp", "--root", "/nonexistent-ijbc"), "IJB folder not found: /nonexistent-ijbc"),
        (("protocols.ijbc_fixture", "--out", "/tmp/x", "--subjects", "1"), "--subjects must be at least 2"),
        (("protocols.verification", "--bin", "/nonexistent/agedb_30.bin", "--embedder", "lbp"),
         "verification set not found: /nonexistent/agedb_30.bin"),
        (("protocols.bin_fixture", "--out", "/tmp/lfw.txt"), "name the file NAME.bin"),
        (("bench.data", "fetch", "nothing"), "invalid choice: 'nothing'"),
        (("bench.leaderboard", "--embedders", "lbp,nope"), "--embedders: 'nope': unknown embedder 'nope'"),
        (("bench.leaderboard", "--embedders", "lbp,,pixels"), "--embedders 'lbp,,pixels': a comma-separated list"),
        (("bench.compare", "--group", "A=/nonexistent-run", "--group", "B=/nonexistent-run"), "has no results.json"),
        (("bench.grid", "--plan", "--seeds", "x"), "--seeds x: give comma-separated integers"),
        (("generators.train", "--out", "/tmp/x", "--halvings", "9,3"), "--halvings 9,3: give increasing"),
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


COMMANDS = sorted(
    str(path.relative_to(ROOT).with_suffix("")).replace("/", ".").removesuffix(".__main__")
    for package in ("bench", "generators", "recognition", "protocols")
    for path in (ROOT / package).rglob("*.py")
    if 'if __name__ == "__main__"' in path.read_text()
)


def test_the_commands_are_found():
    assert {"bench.run", "bench.data", "generators.align", "generators.real_faces", "protocols.lfw",
            "recognition.train"} <= set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_answers_help(command, capsys):
    """`python -m X --help` keeps working wherever its code lives (thin entry points included); run in-process."""
    package_main = (ROOT / command.replace(".", "/") / "__main__.py").is_file()  # bench.perf, bench.leaderboard
    module = importlib.import_module(command + ".__main__" if package_main else command)
    with pytest.raises(SystemExit) as stopped:
        module.main(["--help"])
    assert stopped.value.code == 0
    assert f"usage: python -m {command}" in capsys.readouterr().out.replace("\n", " ").replace("  ", " ")


@pytest.mark.parametrize("command, required", [
    ("bench.run", []), ("generators.render", ["--out", "unused"]), ("generators.synthesize", ["--out", "unused"]),
    ("generators.train", ["--out", "unused"]), ("recognition.train", ["--out", "unused"]), ("recognition.data", []),
    ("protocols.separation", ["--dataset", "lfw"]), ("protocols.ijba_fixture", ["--out", "unused"]),
    ("protocols.ijbc_fixture", ["--out", "unused"]),
])
def test_a_negative_seed_is_a_user_error_naming_the_option(command, required, tmp_path, monkeypatch):
    """Issue 20, item 7: `--seed -1` crashed deep inside numpy; it is refused before any work (in-process)."""
    from bench.common.cli import UserError

    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match="^--seed must be at least 0, not -1$"):
        importlib.import_module(command).main([*required, "--seed", "-1"])
    assert not (tmp_path / "unused").exists()
