"""Data root resolution, `bench.data check`, and the download code path (on local files, no network)."""
import hashlib
import tarfile
import urllib.error

import pytest

from bench import data as bench_data
from bench.common.datasets import data_root
from bench.common.cli import UserError
from bench.common.download import download, extract_tar


def test_data_root_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("FACEBENCH_DATA", str(tmp_path / "env"))
    assert data_root(tmp_path / "explicit") == (tmp_path / "explicit").resolve()
    assert data_root() == (tmp_path / "env").resolve()
    monkeypatch.delenv("FACEBENCH_DATA")
    assert str(data_root()).endswith(".cache/facebench")


def test_check_on_empty_root_lists_missing(tmp_path, capsys):
    assert bench_data.main(["--data-root", str(tmp_path), "check"]) == 1
    out = capsys.readouterr().out
    assert "lfw-py/pairs.txt" in out and "missing" in out and "bench.data fetch lfw" in out


def test_check_detects_corrupt_protocol_file(tmp_path):
    (tmp_path / "lfw-py").mkdir()
    (tmp_path / "lfw-py" / "pairs.txt").write_text("10\t300\n")
    table = bench_data.check_table(tmp_path)
    assert table.set_index("path").loc["lfw-py/pairs.txt", "status"] == "checksum mismatch"


@pytest.mark.data
def test_check_on_real_data_root(lfw_root, capsys):
    table = bench_data.check_table(lfw_root)
    lfw_rows = table[table.dataset == "lfw"]
    assert (lfw_rows.status == "ok").all(), lfw_rows.to_string()


def test_download_verifies_checksum_and_is_atomic(tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(b"face" * 1000)
    digest = hashlib.md5(source.read_bytes()).hexdigest()
    dest = tmp_path / "out" / "file.bin"
    download(source.as_uri(), dest, digest)
    assert dest.read_bytes() == source.read_bytes()
    wrong = tmp_path / "out" / "wrong.bin"
    with pytest.raises(UserError, match="expected 0+"):
        download(source.as_uri(), wrong, "0" * 32)
    assert not wrong.exists() and not wrong.with_name("wrong.bin.part").exists()


def test_fetch_offline_fails_fast_with_a_hint(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr("urllib.request.urlopen", offline)
    with pytest.raises(UserError, match="Are you offline.*lfw-deepfunneled"):
        bench_data.fetch("lfw", tmp_path / "root")
    assert not list((tmp_path / "root" / "lfw-py").glob("*.part"))


def test_fetch_unknown_dataset(tmp_path):
    with pytest.raises(UserError, match="unknown dataset"):
        bench_data.fetch("imagenet", tmp_path)


def test_fetch_ict_rejects_a_download_with_other_model_files(tmp_path, monkeypatch):
    """A zip whose FaceXModel files differ from the pinned commit's is not kept."""
    import zipfile

    fake = tmp_path / "fake.zip"
    with zipfile.ZipFile(fake, "w") as archive:
        archive.writestr("ICT-FaceKit-x/FaceXModel/generic_neutral_mesh.obj", "v 0 0 0\n")
    monkeypatch.setattr("generators.morphable.ict.ARCHIVE_URL", fake.as_uri())
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(UserError, match="SHA-256 is"):
        bench_data.fetch("ict-facekit", root)
    assert not list(root.iterdir())


def test_extract_tar_moves_top_folder_into_place(tmp_path):
    folder = tmp_path / "payload" / "top"
    folder.mkdir(parents=True)
    (folder / "a.txt").write_text("a")
    archive = tmp_path / "a.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="top")
    (tmp_path / "dest").mkdir()
    target = extract_tar(archive, tmp_path / "dest", "top")
    assert (target / "a.txt").read_text() == "a"
    assert not list((tmp_path / "dest").glob(".tmp-*"))
    with pytest.raises(UserError, match="expected a top folder 'other'"):
        extract_tar(archive, tmp_path / "dest", "other")
