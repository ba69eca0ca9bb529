"""Paths in committed records: written relative to the data root or the checkout, so other machines can read them."""
import os

from bench.common.datasets import portable_path


def test_paths_under_the_data_root_are_written_from_facebench_data(tmp_path, monkeypatch):
    root = tmp_path / "data"
    (root / "lfw-py").mkdir(parents=True)
    monkeypatch.setenv("FACEBENCH_DATA", str(root))
    monkeypatch.chdir(tmp_path)
    assert portable_path(root) == "$FACEBENCH_DATA"
    assert portable_path(root / "lfw-py" / "pairs.txt") == "$FACEBENCH_DATA/lfw-py/pairs.txt"
    assert portable_path(str(root / "lfw-py")) == "$FACEBENCH_DATA/lfw-py"
    assert portable_path("$FACEBENCH_DATA/lfw-py") == "$FACEBENCH_DATA/lfw-py"  # already portable: unchanged


def test_an_explicit_data_root_counts_as_the_data_root(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEBENCH_DATA", str(tmp_path / "elsewhere"))
    monkeypatch.chdir(tmp_path)
    given = tmp_path / "given-root"
    assert portable_path(given / "IJB-A_11_sets", root=given) == "$FACEBENCH_DATA/IJB-A_11_sets"
    assert portable_path(given / "IJB-A_11_sets") == "given-root/IJB-A_11_sets"  # only under the working folder


def test_paths_under_the_working_folder_become_relative_and_others_stay(tmp_path, monkeypatch):
    checkout = tmp_path / "checkout"
    (checkout / "runs" / "demo").mkdir(parents=True)
    monkeypatch.setenv("FACEBENCH_DATA", str(tmp_path / "data"))
    monkeypatch.chdir(checkout)
    assert portable_path(checkout / "runs" / "demo") == "runs/demo"
    assert portable_path(checkout) == "."
    assert portable_path("runs/demo") == "runs/demo"
    assert portable_path(tmp_path / "outside") == str(tmp_path / "outside")


def test_a_symlinked_checkout_is_recognised(tmp_path, monkeypatch):
    real = tmp_path / "real"
    (real / "runs").mkdir(parents=True)
    link = tmp_path / "link"
    os.symlink(real, link)
    monkeypatch.setenv("FACEBENCH_DATA", str(tmp_path / "data"))
    monkeypatch.chdir(link)
    assert portable_path(link / "runs") == "runs"
    assert portable_path(real / "runs") == "runs"


def test_paths_under_the_cache_folder_are_written_from_facebench_cache(tmp_path, monkeypatch):
    """Fixtures built into the cache (bench.leaderboard --fixtures) are recorded without the machine's home folder."""
    monkeypatch.setenv("FACEBENCH_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("FACEBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    fixture = tmp_path / "cache" / "leaderboard-fixtures" / "ijbc"
    assert portable_path(fixture) == "$FACEBENCH_CACHE/leaderboard-fixtures/ijbc"


def test_a_portable_command_keeps_its_variable_expandable_and_quotes_the_rest(tmp_path, monkeypatch):
    from bench.common.datasets import portable_command

    root = tmp_path / "data"
    (root / "lfw py").mkdir(parents=True)
    monkeypatch.setenv("FACEBENCH_DATA", str(root))
    monkeypatch.chdir(tmp_path)
    command = portable_command(["python", "-m", "x", "--lfw", str(root / "lfw py"), "--name", "a b", "--out", str(tmp_path / "runs")])
    assert command == "python -m x --lfw $FACEBENCH_DATA/'lfw py' --name 'a b' --out runs"
