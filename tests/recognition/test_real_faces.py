"""Preparing the real domain from a user's photo folder: the cases that crashed or misled (issue 20, item 6)."""
import numpy as np
import pytest
from PIL import Image

from generators.real_faces import main
from recognition.faces.real_faces import photo_keys, prepare_faces

pytestmark = pytest.mark.data


@pytest.fixture
def photo_folder(lfw_root, tmp_path):
    """Two people's photos named face.jpg and face.png in one folder, a 16-bit grey PNG of a third, a 1x1
    image and a file that is not an image."""
    people = sorted((lfw_root / "lfw-py" / "lfw-deepfunneled").glob("A*/*_0001.jpg"))[:3]
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.open(people[0]).save(folder / "face.jpg")
    Image.open(people[1]).save(folder / "face.png")
    grey = np.asarray(Image.open(people[2]).convert("L"), dtype=np.uint16) * 257
    Image.fromarray(grey).save(folder / "sixteen-bit.png")
    assert Image.open(folder / "sixteen-bit.png").mode.startswith("I")
    Image.new("RGB", (1, 1)).save(folder / "tiny.png")
    (folder / "broken.jpg").write_bytes(b"not a jpeg at all")
    return folder


def test_a_users_folder_aligns_every_readable_face_and_names_the_rest(photo_folder, tmp_path, capsys):
    out = tmp_path / "real"
    assert main(["--images", str(photo_folder), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    written = sorted(p.name for p in out.glob("*.png"))
    assert written == ["face-jpg.png", "face-png.png", "sixteen-bit.png"]  # two people, two crops
    assert "'aligned': 3" in printed and "'no face': 1" in printed and "'unreadable': 1" in printed
    assert str(photo_folder / "broken.jpg") in printed  # named, not only counted
    crop = np.asarray(Image.open(out / "sixteen-bit.png"))
    assert 40 < crop.mean() < 200 and (crop == 255).mean() < 0.2  # read at its brightness, not clipped white


def test_keys_keep_suffix_and_folders_only_where_they_would_clash(tmp_path):
    paths = [tmp_path / "a" / "face.jpg", tmp_path / "a" / "face.png", tmp_path / "b" / "other.jpg",
             tmp_path / "a_b" / "c.jpg", tmp_path / "a" / "b_c.jpg"]
    assert [key for key, _ in photo_keys(tmp_path, paths)] == ["a-face-jpg", "a-face-png", "b_other",
                                                               "a_b-c-jpg", "a-b_c-jpg"]


def test_two_photos_with_one_key_are_refused(tmp_path, lfw_root):
    from bench.common.cli import UserError

    photo = sorted((lfw_root / "lfw-py" / "lfw-deepfunneled").glob("A*/*_0001.jpg"))[0]
    with pytest.raises(UserError, match="same crop"):
        prepare_faces([("x", photo), ("x", photo)], tmp_path / "out", progress=False)


def test_mtcnn_runs_on_the_device_given_on_the_command_line(photo_folder, tmp_path, monkeypatch):
    """`--device` reaches MTCNN (issue 17: every stage that runs a torch network takes it)."""
    import recognition.faces.real_faces as real_faces

    devices = []

    class RecordingAligner(real_faces.MTCNNAligner):
        def __init__(self, device="cpu", **options):
            devices.append(device)
            super().__init__(device=device, **options)

    monkeypatch.setattr(real_faces, "MTCNNAligner", RecordingAligner)
    assert main(["--images", str(photo_folder), "--out", str(tmp_path / "out"), "--device", "cpu"]) == 0
    assert devices == ["cpu"] and sorted(p.name for p in (tmp_path / "out").iterdir())
