"""The LFW readers: real protocol files parse to the official counts; malformed ones name file and line."""
from pathlib import Path

import pytest
from PIL import Image

from bench.common.cli import UserError
from protocols.lfw_files import LFWLayout, read_pairs, read_people


@pytest.fixture
def tiny_layout(tmp_path) -> LFWLayout:
    """A data root with a few real JPEG files in LFW's layout, written by the test."""
    layout = LFWLayout(tmp_path)
    for name, count in (("Ann_A", 3), ("Bob_B", 2)):
        for image in range(1, count + 1):
            path = layout.image_path(name, image)
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (250, 250), (image * 40, 90, 90)).save(path)
    return layout


def write(tmp_path: Path, text: str, name: str = "pairs.txt") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_valid_small_pairs_file(tmp_path, tiny_layout):
    path = write(tmp_path, "2\t1\nAnn_A\t1\t2\nAnn_A\t1\tBob_B\t2\nBob_B\t1\t2\nAnn_A\t3\tBob_B\t1\n")
    pairs = read_pairs(path, tiny_layout)
    assert [p.same for p in pairs] == [True, False, True, False]
    assert [p.fold for p in pairs] == [0, 0, 1, 1]


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty file"),
        ("ten\t300\n", r"pairs.txt:1: header field must be a positive integer"),
        ("1\t1\t1\n", r"pairs.txt:1: header must be"),
        ("1\t1\nAnn_A\t1\t2\n", "announces 1 fold"),
        ("1\t1\nAnn_A\t1\t2\t3\nAnn_A\t1\tBob_B\t2\n", r"pairs.txt:2: a matched pair needs 3 fields"),
        ("1\t1\nAnn_A\t1\t2\nAnn_A\t1\tBob_B\n", r"pairs.txt:3: a mismatched pair needs 4 fields"),
        ("1\t1\nAnn_A\tx\t2\nAnn_A\t1\tBob_B\t2\n", r"pairs.txt:2: image number must be a positive integer"),
        ("1\t1\nAnn_A\t1\t9\nAnn_A\t1\tBob_B\t2\n", r"pairs.txt:2: unknown image .*Ann_A_0009.jpg"),
        ("1\t1\nAnn_A\t1\t2\nCid_C\t1\tBob_B\t2\n", r"pairs.txt:3: unknown image .*Cid_C_0001.jpg"),
        ("1\t1\nAnn_A\t1\t2\nAnn_A\t1\tAnn_A\t2\n", r"pairs.txt:3: mismatched pair names the same person"),
    ],
)
def test_malformed_pairs_name_file_and_line(tmp_path, tiny_layout, text, message):
    with pytest.raises(UserError, match=message):
        read_pairs(write(tmp_path, text), tiny_layout)


@pytest.mark.parametrize(
    "text, message",
    [
        ("2\tx\n", r"people.txt:1: header must be one integer"),
        ("3\nAnn_A\t3\nBob_B\t2\n", "announces 3 people, the file lists 2"),
        ("2\nAnn_A\t3\nBob_B\n", r"people.txt:3: expected 2 fields"),
        ("2\nAnn_A\t3\nBob_B\tmany\n", r"people.txt:3: image count must be a positive integer"),
        ("2\n1\nAnn_A\t3\n", "fold 2 of 2 has no count line"),
    ],
)
def test_malformed_people_name_file_and_line(tmp_path, text, message):
    with pytest.raises(UserError, match=message):
        read_people(write(tmp_path, text, "people.txt"))


def test_missing_files_say_where_and_how(tmp_path):
    layout = LFWLayout(tmp_path)
    with pytest.raises(UserError) as caught:
        layout.pairs("pairs.txt")
    message = str(caught.value)
    assert str(tmp_path / "lfw-py" / "pairs.txt") in message
    assert str(tmp_path / "lfw-py" / "lfw-deepfunneled") in message
    assert "bench.data fetch lfw" in message and "FACEBENCH_DATA" in message


@pytest.mark.data
def test_real_protocol_files_have_official_counts(lfw_root):
    layout = LFWLayout(lfw_root)
    view2 = layout.pairs("pairs.txt")
    assert len(view2) == 6000 and sum(p.same for p in view2) == 3000
    assert sorted({p.fold for p in view2}) == list(range(10))
    assert len(layout.pairs("pairsDevTrain.txt")) == 2200
    assert len(layout.pairs("pairsDevTest.txt")) == 1000
    people = layout.people("people.txt")
    assert len({p.fold for p in people}) == 10
    train, test = layout.people("peopleDevTrain.txt"), layout.people("peopleDevTest.txt")
    assert (len(train), len(test)) == (4038, 1711)
    assert not {p.name for p in train} & {p.name for p in test}
