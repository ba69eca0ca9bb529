"""IJB-A 1:1 protocol: pooling, parsers, and the whole path on the LFW-built format fixture (not IJB-A)."""
import numpy as np
import pandas as pd
import pytest

from bench.common.cli import UserError
from protocols import ijba
from protocols.embedding import FaceItem, load_loose_crop
from protocols.ijba import (
    evaluate_ijba,
    read_comparisons,
    read_metadata,
)
from protocols.ijba_fixture import build_ijba_fixture
from protocols.lfw_files import LFWLayout
from recognition.embedders import get_embedder


def test_missing_column_is_named(tmp_path):
    path = tmp_path / "verify_metadata_1.csv"
    path.write_text("TEMPLATE_ID,SUBJECT_ID,FILE,MEDIA_ID,SIGHTING_ID,FACE_X,FACE_Y,FACE_WIDTH\n1,1,a.jpg,1,1,0,0,5\n")
    with pytest.raises(UserError, match="missing column FACE_HEIGHT"):
        read_metadata(path)


def test_bad_value_names_line(tmp_path):
    path = tmp_path / "verify_metadata_1.csv"
    path.write_text("TEMPLATE_ID,SUBJECT_ID,FILE,MEDIA_ID,SIGHTING_ID,FACE_X,FACE_Y,FACE_WIDTH,FACE_HEIGHT\n"
                    "1,1,a.jpg,1,1,0,0,5,5\n2,1,b.jpg,2,2,0,zero,5,5\n")
    with pytest.raises(UserError, match=r"verify_metadata_1.csv:3: column FACE_Y"):
        read_metadata(path)


@pytest.mark.parametrize("text, message", [("1,2\n1;2\n", ":2: expected two template ids"),
                                           ("1,2\n1,7\n", ":2: template 7 is not in")])
def test_bad_comparisons(tmp_path, text, message):
    path = tmp_path / "verify_comparisons_1.csv"
    path.write_text(text)
    with pytest.raises(UserError, match=message):
        read_comparisons(path, {1, 2})


def test_protocol_folder_without_splits(tmp_path):
    with pytest.raises(UserError, match="no split folders"):
        ijba.find_splits(tmp_path)


@pytest.fixture(scope="module")
def fixture_dir(lfw_root, tmp_path_factory):
    return build_ijba_fixture(lfw_root, tmp_path_factory.mktemp("ijba") / "fixture", splits=2, subjects=40,
                              impostors=1000, seed=3, progress=False)


@pytest.mark.data
def test_fixture_layout_and_readme(fixture_dir):
    assert "NOT IJB-A" in (fixture_dir / "README.txt").read_text()
    split = ijba.load_split(fixture_dir, 1)
    assert split.metadata.SUBJECT_ID.nunique() == 40
    assert len(split.comparisons) >= 1000 + 40


@pytest.mark.data
def test_crop_by_box_recovers_the_lfw_face(lfw_root, tmp_path):
    """With no box jitter, the loose crop from the canvas is the original LFW photo again."""
    out = build_ijba_fixture(lfw_root, tmp_path / "exact", splits=1, subjects=5, impostors=5, jitter=0.0,
                             progress=False)
    metadata = pd.read_csv(out / "split1" / "verify_metadata_1.csv")
    layout = LFWLayout(lfw_root)
    for row in metadata.head(6).itertuples():
        crop = load_loose_crop(FaceItem("k", out / "images" / row.FILE,
                                        (row.FACE_X, row.FACE_Y, row.FACE_WIDTH, row.FACE_HEIGHT)))
        name, number = row.LFW_SOURCE.rsplit("_", 1)
        original = np.asarray(load_loose_crop(FaceItem("o", layout.image_path(name, int(number)))), dtype=float)
        centre = slice(70, 180)  # the face box, always inside the canvas
        difference = np.abs(np.asarray(crop, dtype=float)[centre, centre] - original[centre, centre]).mean()
        assert difference < 12, f"{row.FILE}: crop differs from the LFW photo by {difference:.1f} grey levels"


@pytest.mark.data
def test_whole_ijba_path_on_fixture(fixture_dir, tmp_path, capsys):
    result = evaluate_ijba(get_embedder("lbp"), fixture_dir, progress=False)
    assert list(result.per_split.split) == [1, 2]
    assert 0 < result.summary["tar@far=0.001_mean"] <= result.summary["tar@far=0.01_mean"] < 1
    assert result.summary["auc_mean"] > 0.7  # template pooling of LBP features separates LFW people
    assert ijba.main(["--protocol-dir", str(fixture_dir), "--embedder", "pixels", "--splits", "2",
                      "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "roc.png").exists() and "tar@far=0.01" in capsys.readouterr().out


@pytest.mark.data
def test_missing_image_is_reported_with_its_path(fixture_dir, tmp_path):
    import shutil

    copy = tmp_path / "broken"
    shutil.copytree(fixture_dir, copy)
    victim = pd.read_csv(copy / "split1" / "verify_metadata_1.csv").FILE.iloc[0]
    (copy / "images" / victim).unlink()
    with pytest.raises(UserError, match=victim):
        evaluate_ijba(get_embedder("pixels"), copy, splits=[1], progress=False, use_cache=False)


@pytest.mark.data
@pytest.mark.parametrize("subjects, impostors", [(1, 1), (2, 100)])
def test_fixture_refuses_more_impostor_pairs_than_exist(lfw_root, tmp_path, subjects, impostors):
    """Issue 20, item 4: asking for more impostor pairs than the subjects' templates make looped forever."""
    import os
    import subprocess
    import sys

    out = tmp_path / "fixture"
    result = subprocess.run(
        [sys.executable, "-m", "protocols.ijba_fixture", "--out", str(out), "--splits", "1",
         "--subjects", str(subjects), "--impostors", str(impostors)],
        env={**os.environ, "FACEBENCH_DATA": str(lfw_root)}, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("error: --impostors") and "impostor pairs" in message
    assert not list(out.glob("images/img/*.jpg")), "refused before writing images"


@pytest.mark.parametrize("row, message", [("1,1,a.jpg,1,1,0,0,inf,5", ":2: column FACE_WIDTH is empty or not a finite"),
                                          ("1,1,a.jpg,1,1,0,0,5,0", ":2: FACE_HEIGHT must be positive")])
def test_infinite_or_empty_boxes_name_their_line(tmp_path, row, message):
    """Issue 20, item 5: FACE_WIDTH=inf was embedded as a black crop with exit 0."""
    path = tmp_path / "verify_metadata_1.csv"
    path.write_text("TEMPLATE_ID,SUBJECT_ID,FILE,MEDIA_ID,SIGHTING_ID,FACE_X,FACE_Y,FACE_WIDTH,FACE_HEIGHT\n" + row + "\n")
    with pytest.raises(UserError, match=message):
        read_metadata(path)


def test_a_non_utf8_byte_in_comparisons_names_line_and_byte(tmp_path):
    path = tmp_path / "verify_comparisons_1.csv"
    path.write_bytes(b"1,2\n2,\xff1\n")
    with pytest.raises(UserError, match=r"verify_comparisons_1.csv:2: not UTF-8 text \(byte 0xff at column 3\)"):
        read_comparisons(path, {1, 2})


@pytest.mark.data
def test_a_box_outside_its_image_and_an_empty_split_are_errors(fixture_dir, tmp_path):
    """Issue 20, item 5: a face box wholly outside its photo was embedded as a black crop, and an empty split
    folder silently dropped its split from the mean; both now stop the run, naming what is wrong."""
    import shutil

    copy = tmp_path / "broken"
    shutil.copytree(fixture_dir, copy)
    (copy / "split3").mkdir()
    with pytest.raises(UserError, match="split3/ lacks verify_metadata_3.csv"):
        ijba.find_splits(copy)
    shutil.rmtree(copy / "split3")
    metadata_path = copy / "split1" / "verify_metadata_1.csv"
    metadata = pd.read_csv(metadata_path)
    metadata.loc[0, "FACE_X"] = 5000
    metadata.to_csv(metadata_path, index=False)
    with pytest.raises(UserError, match=r"face box \(5000.0, .* lies outside the \d+x\d+ image"):
        evaluate_ijba(get_embedder("pixels"), copy, splits=[1], progress=False, use_cache=False)


@pytest.mark.data
def test_devtest_fixture_holds_view1_test_people_only(lfw_root, tmp_path):
    """`--people devtest`: every subject is a View 1 test person (peopleDevTest.txt) and none is a DevTrain
    person (peopleDevTrain.txt, the people a bench.run recognizer and translator train on), on the real files."""
    from protocols.ijba_fixture import fixture_identity_names, lfw_identities
    from recognition.data import set_identity_names
    from recognition.leakage import check_identity_leakage, fixture_evaluations

    layout = LFWLayout(lfw_root)
    devtest = {person.name for person in layout.people("peopleDevTest.txt")}
    devtrain = {person.name for person in layout.people("peopleDevTrain.txt")}
    pool = lfw_identities(layout, 4, "devtest")
    assert len(pool) == 180 and set(pool) <= devtest and not set(pool) & devtrain
    assert set(lfw_identities(layout, 4)) - devtest  # all of LFW would draw other people
    out = build_ijba_fixture(lfw_root, tmp_path / "devtest", splits=2, subjects=12, impostors=50, seed=1,
                             progress=False, people="devtest")
    names = fixture_identity_names(out)
    assert len(names) >= 12 and set(names) <= devtest and not set(names) & devtrain
    for split in (1, 2):
        sources = pd.read_csv(out / f"split{split}" / f"verify_metadata_{split}.csv").LFW_SOURCE
        assert {source.rsplit("_", 1)[0] for source in sources} <= set(names)
    assert "peopleDevTest" in (out / "README.txt").read_text()
    # the training people of bench.run pass the guard on View 1 and this fixture together
    assert check_identity_leakage({"real set": set_identity_names("lfw:peopleDevTrain", lfw_root)}, "view1", lfw_root,
                                  other_evaluations=fixture_evaluations(out)) == {}
