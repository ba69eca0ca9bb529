"""Verification .bin sets: the restricted reader, both accuracy conventions on hand-made scores, the
ArcFace-to-embedder warp on a real LFW face, and the command line on a tiny fixture built from LFW."""
import io
import os
import pickle
from collections import OrderedDict

import numpy as np
import pytest
from PIL import Image

from bench.common.cli import UserError, run_main
from protocols.metrics import kfold_accuracies
from protocols.verification import (INSIGHTFACE_THRESHOLDS, _items, consecutive_folds, evaluate_bin,
                                    insightface_kfold_accuracies, insightface_squared_distances, main)
from protocols.verification_files import FIXTURE_MARKER_SUFFIX, find_sets, read_bin, write_bin
from recognition.embedders import get_embedder


def png(colour, size=(112, 112)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


class RunsAShellCommand:
    """What a malicious .bin would hold: unpickling it calls os.system."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


# --- the reader ---------------------------------------------------------------------------------------------


def test_a_pickled_shell_command_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "executed"
    evil = tmp_path / "evil.bin"
    evil.write_bytes(pickle.dumps(([png("red"), RunsAShellCommand(marker)], [True])))
    with pytest.raises(UserError) as refused:
        read_bin(evil)
    assert str(evil) in str(refused.value) and "refused to unpickle" in str(refused.value)
    assert "system" in str(refused.value)
    assert not marker.exists()


@pytest.mark.parametrize("payload", [os.system, OrderedDict(a=1), ValueError("x")],
                         ids=["function", "class", "exception"])
def test_any_other_global_is_refused(tmp_path, payload):
    path = tmp_path / "other.bin"
    path.write_bytes(pickle.dumps(([png("red"), png("blue")], [payload])))
    with pytest.raises(UserError, match=r"other\.bin: refused to unpickle '.+'"):
        read_bin(path)


def test_numpy_arrays_are_read_and_files_identified(tmp_path):
    images = [np.frombuffer(png(c), dtype=np.uint8) for c in ("red", "blue", "green", "white")]
    first, second = write_bin(tmp_path / "a.bin", [png("red")] * 4, [True, False]), tmp_path / "b.bin"
    second.write_bytes(pickle.dumps((images, np.array([True, False])), protocol=2))
    read = read_bin(second)
    assert read.images[1] == png("blue") and read.issame.tolist() == [True, False] and read.fixture_note is None
    assert read.file_id.startswith("b-") and read.file_id != read_bin(first).file_id
    embedder = get_embedder("pixels")
    keys_a = {item.key for item in _items(embedder, read_bin(first))[0]}
    keys_b = {item.key for item in _items(embedder, read)[0]}
    assert len(keys_a) == 1 and not keys_a & keys_b  # repeated faces embedded once; files never share keys


@pytest.mark.parametrize("content, message", [
    (b"not a pickle at all", "is not a verification .bin"),
    (pickle.dumps({"images": []}), "expected a pickled pair (images, issame), found dict"),
    (pickle.dumps(([png("red")] * 3, [True])), "3 images for 1 issame flags"),
    (pickle.dumps(([png("red"), "text"], [True])), "image 1 is a str"),
    (pickle.dumps(([png("red"), b"\xff\xd8 broken"], [True])), "image 1 is not a readable JPEG/PNG"),
    (pickle.dumps(([png("red"), png("red", (112, 96))], [True])), "image 1 is 112x96"),
    (pickle.dumps(([png("red")] * 2, ["yes"])), "flat list of booleans"),
], ids=["garbage", "dict", "count", "str", "broken", "not-square", "flags"])
def test_format_errors_name_the_file(tmp_path, content, message):
    path = tmp_path / "bad.bin"
    path.write_bytes(content)
    with pytest.raises(UserError) as error:
        read_bin(path)
    assert str(path) in str(error.value) and message in str(error.value)


def test_find_sets_in_the_fields_order(tmp_path):
    with pytest.raises(UserError, match="no verification set in"):
        find_sets(tmp_path)
    for name in ("cplfw", "lfw", "other"):
        write_bin(tmp_path / f"{name}.bin", [png("red")] * 2, [True])
    assert [p.name for p in find_sets(tmp_path)] == ["lfw.bin", "cplfw.bin"]


# --- the two conventions on hand-made distances --------------------------------------------------------------


def test_folds_are_sklearns_unshuffled_kfold():
    from sklearn.model_selection import KFold

    for pairs in (6000, 23, 10):
        folds = consecutive_folds(pairs)
        for fold, (_, test) in enumerate(KFold(10, shuffle=False).split(np.arange(pairs))):
            assert np.flatnonzero(folds == fold).tolist() == test.tolist()


def test_insightface_distance_is_squared_between_unit_vectors():
    features = np.array([[3.0, 0.0], [0.0, 2.0], [-5.0, 0.0]])
    distances = insightface_squared_distances(features, np.array([0, 0]), np.array([1, 2]))
    np.testing.assert_allclose(distances, [2.0, 4.0])


def test_conventions_agree_where_the_grid_can_separate():
    """Ten pairs, one per fold: eight easy, one genuine at 1.195 farther than one impostor at 1.0.
    By hand, insightface: the easy folds and their training sets (best: 8 of 9) pick t = 0.51, right on the
    easy pair; holding out the hard genuine, the rest separate at t = 0.51 (it is then called different); holding
    out the hard impostor, the rest separate at t = 1.20 (it is then called same). 8/10, std 0.4 (ddof 0).
    The project's midpoint thresholds make the same calls: 8/10."""
    same = np.array([True, False] * 4 + [True, False])
    distances = np.array([0.505, 1.5] * 4 + [1.195, 1.0])
    folds = consecutive_folds(10)
    accuracies, thresholds = insightface_kfold_accuracies(distances, same, folds)
    assert accuracies.tolist() == [1.0] * 8 + [0.0, 0.0]
    assert accuracies.mean() == pytest.approx(0.8) and accuracies.std() == pytest.approx(0.4)
    np.testing.assert_allclose(thresholds, [0.51] * 9 + [1.20])
    ours, our_thresholds = kfold_accuracies(-distances, same.astype(int), folds)
    assert ours.tolist() == [1.0] * 8 + [0.0, 0.0]
    assert ours.std(ddof=1) == pytest.approx(np.sqrt(1.6 / 9))
    np.testing.assert_allclose(our_thresholds[[0, 8, 9]], [-0.7525, -0.7525, -1.3475])


def test_conventions_differ_below_the_grid_step():
    """Genuine pairs at 0.503 and impostors at 0.507: no threshold of the 0.01 grid falls between them.
    By hand, insightface: holding out a genuine pair, the training set (4 genuine, 5 impostors) is best with
    everything 'different' (t = 0, 5/9), so the held-out pair is wrong; holding out an impostor, it is best
    with everything 'same' (t = 0.51), wrong again: 0%. The project's threshold lies halfway, 0.505: 100%."""
    same = np.array([True, False] * 5)
    distances = np.where(same, 0.503, 0.507)
    folds = consecutive_folds(10)
    accuracies, thresholds = insightface_kfold_accuracies(distances, same, folds)
    assert accuracies.tolist() == [0.0] * 10
    np.testing.assert_allclose(thresholds, [0.0, 0.51] * 5)
    ours, our_thresholds = kfold_accuracies(-distances, same.astype(int), folds)
    assert ours.tolist() == [1.0] * 10
    np.testing.assert_allclose(our_thresholds, -0.505)
    assert INSIGHTFACE_THRESHOLDS[0] == 0 and len(INSIGHTFACE_THRESHOLDS) == 400


# --- on real LFW faces -----------------------------------------------------------------------------------------


@pytest.mark.data
def test_arcface_chip_rewarped_to_the_dlib_chip_matches_aligning_the_photo(lfw_root):
    """An ArcFace chip warped by the template similarity equals, where the chip has pixels, the dlib chip cut
    from the photo with the same landmarks (up to the 112 px chip's resolution)."""
    from protocols.lfw_files import LFWLayout
    from recognition.faces.align import (ARCFACE_CROP, CANONICAL_CROP, DLIB_CHIP, MTCNNAligner,
                                         PrealignedAligner, warp_to_crop)

    with Image.open(LFWLayout(lfw_root).image_path("Aaron_Peirsol", 1)) as opened:
        photo = opened.convert("RGB")
    landmarks, found = MTCNNAligner().landmarks([photo])
    assert found[0]
    chip = warp_to_crop(photo, landmarks[0], ARCFACE_CROP)
    direct = np.asarray(warp_to_crop(photo, landmarks[0], DLIB_CHIP), dtype=float)
    (rewarped,), _ = PrealignedAligner(ARCFACE_CROP).chips([chip], DLIB_CHIP)
    (wrong,), _ = PrealignedAligner(CANONICAL_CROP).chips([chip], DLIB_CHIP)
    rewarped, wrong = np.asarray(rewarped, dtype=float), np.asarray(wrong, dtype=float)
    # the ArcFace crop ends at unit-frame y = 1.128; the dlib chip goes to 1.25: its last rows have no source
    last_row = int((1.128 + DLIB_CHIP.padding) / (1 + 2 * DLIB_CHIP.padding) * DLIB_CHIP.size) - 2
    inside = np.abs(rewarped[:last_row] - direct[:last_row]).mean()
    assert inside < 6, inside
    assert np.abs(wrong[:last_row] - direct[:last_row]).mean() > 4 * inside
    assert rewarped[last_row + 4 :].max() == 0  # outside the 112 px face: black


@pytest.fixture(scope="module")
def tiny_bin(lfw_root, tmp_path_factory):
    """20 LFW pairs (two per fold, as protocols.bin_fixture spreads them) in a .bin written to a temporary folder."""
    from protocols.bin_fixture import build_lfw_bin

    return build_lfw_bin(lfw_root, tmp_path_factory.mktemp("bins") / "lfw.bin", limit=20, progress=False)


@pytest.mark.data
def test_fixture_round_trip_and_evaluation(tiny_bin, monkeypatch):
    data = read_bin(tiny_bin)
    assert data.pairs == 20 and data.issame.sum() == 10 and len(data.images) == 40
    assert "FORMAT FIXTURE" in data.fixture_note and tiny_bin.with_name("lfw.bin" + FIXTURE_MARKER_SUFFIX).is_file()
    with Image.open(io.BytesIO(data.images[0])) as face:
        assert face.size == (112, 112) and face.format == "JPEG"
    embedder = get_embedder("lbp")  # no crop geometry: gets LFW's loose crop warped from the ArcFace face
    first = evaluate_bin(embedder, data, flip=True, progress=False)
    assert first.summary["pairs"] == 20 and len(first.folds) == 10 and first.folds.pairs.tolist() == [2] * 10
    assert 0 <= first.summary["insightface_accuracy_percent"] <= 100 and first.config["fixture"]

    def refuse(*args, **kwargs):
        raise AssertionError("features should come from the cache")

    monkeypatch.setattr(type(embedder), "forward", refuse)
    second = evaluate_bin(embedder, data, flip=True, progress=False)
    np.testing.assert_array_equal(first.scores, second.scores)


@pytest.mark.data
def test_loose_crop_faces_are_warped_only_when_embedded_and_as_before(tiny_bin):
    """An embedder without a crop geometry gets each ArcFace face warped into LFW's loose crop by the template's
    five points inside embed_items (so a cached evaluation skips the warp): the same features as warping every
    face up front into a PNG loose crop, the way this used to be done."""
    from pathlib import Path

    from protocols.embedding import LOOSE_CROP, FaceItem, embed_items, pair_similarity
    from recognition.faces.align import ARCFACE_CROP, warp_to_crop

    data = read_bin(tiny_bin)
    embedder = get_embedder("lbp")
    lazy = evaluate_bin(embedder, data, flip=False, progress=False, use_cache=False)
    eager = []
    for position, content in enumerate(data.images):
        with Image.open(io.BytesIO(content)) as opened:
            face = opened.convert("RGB")
        buffer = io.BytesIO()
        warp_to_crop(face, ARCFACE_CROP.resized(face.width).template(), LOOSE_CROP).save(buffer, format="PNG")
        eager.append(FaceItem(f"eager/{position}", Path(f"lfw.bin#image{position}"), content=buffer.getvalue()))
    features = embed_items(embedder, eager, use_cache=False, progress=False).features
    scores = pair_similarity(features, np.arange(0, len(eager), 2), np.arange(1, len(eager), 2), embedder.metric)
    np.testing.assert_allclose(lazy.scores, scores, rtol=0, atol=1e-6)


@pytest.mark.data
def test_command_line_writes_the_report(tiny_bin, tmp_path, capsys):
    assert main(["--all", str(tiny_bin.parent), "--embedder", "pixels", "--no-flip", "--workers", "0",
                 "--out", str(tmp_path / "out")]) == 0
    report = (tmp_path / "out" / "lfw" / "metrics.md").read_text()
    assert "FORMAT FIXTURE" in report and "insightface_accuracy_percent" in report and "100-eer_percent" in report
    assert "insightface_accuracy_percent" in (tmp_path / "out" / "lfw" / "folds.csv").read_text()
    assert "lfw (fixture)" in (tmp_path / "out" / "summary.md").read_text()


@pytest.mark.parametrize("arguments, message", [
    (["--bin", "{folder}/cfp_fp.bin"], "{folder}/cfp_fp.bin is not a verification .bin"),
    (["--all", "{folder}/missing"], "--all: folder not found: {folder}/missing"),
], ids=["garbage-bin", "missing-folder"])
def test_command_line_bad_input_exits_2_naming_the_file(tmp_path, capsys, arguments, message):
    """In-process through run_main (what `python -m` runs): exit code 2 and a one-line message, no traceback."""
    (tmp_path / "cfp_fp.bin").write_bytes(b"garbage")
    with pytest.raises(SystemExit) as stopped:
        run_main(main, [a.format(folder=tmp_path) for a in arguments] + ["--embedder", "lbp"])
    assert stopped.value.code == 2
    assert message.format(folder=tmp_path) in capsys.readouterr().err
