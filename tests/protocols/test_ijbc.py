"""IJB-B/C (insightface's IJB_release layout): parsers, 1:N metrics by hand, and the whole path on the LFW-built
format fixture (not IJB-C). The pooling shared with IJB-A is tested once, in test_templates.py."""
import shutil

import numpy as np
import pytest

from bench.common.cli import UserError
from protocols import ijbc
from protocols.embedding import FaceItem, embed_items
from protocols.ijbc import evaluate_ijb, load_protocol, read_face_list, read_landmarks, read_search_csv, read_template_pairs
from protocols.ijbc_fixture import build_ijbc_fixture
from protocols.lfw_files import LFWLayout
from protocols.metrics import identification_metrics, tpir_at_fpir
from recognition.embedders import get_embedder


@pytest.mark.parametrize("text, message", [
    ("1.jpg 1 1\n2.jpg 1\n", r"ijbc_face_tid_mid.txt:2: expected 'image template_id media_id', found 2"),
    ("1.jpg 1 1\n\n3.jpg one 1\n", r"ijbc_face_tid_mid.txt:3: template_id must be an integer, found 'one'"),
])
def test_face_list_errors_name_the_line(tmp_path, text, message):
    path = tmp_path / "ijbc_face_tid_mid.txt"
    path.write_text(text)
    with pytest.raises(UserError, match=message):
        read_face_list(path)


@pytest.mark.parametrize("line, message", [
    ("2.jpg 1 2 3 4 5 6 7 8 9 10", r":2: expected .* \(12 fields\), found 11"),
    ("2.jpg 1 2 3 4 5 6 7 8 9 x 0.9", r":2: landmarks and score must be numbers"),
    ("2.jpg 1 2 3 4 5 6 7 8 9 nan 0.9", r":2: landmarks must be finite"),
    ("1.jpg 1 2 3 4 5 6 7 8 9 10 0.5", r":2: image 1.jpg is listed again with other landmarks"),
])
def test_landmark_errors_name_the_line(tmp_path, line, message):
    path = tmp_path / "ijbc_name_5pts_score.txt"
    path.write_text("1.jpg 1 2 3 4 5 6 7 8 9 10 0.9\n" + line + "\n")
    with pytest.raises(UserError, match=message):
        read_landmarks(path)
    path.write_text("1.jpg 1 2 3 4 5 6 7 8 9 10 0.9\n")
    assert read_landmarks(path) == {"1.jpg": ((1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0), 0.9)}


@pytest.mark.parametrize("text, message", [
    ("1 2 1\n1 3 2\n", r":2: label must be 1 \(genuine\) or 0 \(impostor\), found 2"),
    ("1 2 1\n1 9 0\n", r":2: template 9 has no face in the face list"),
    ("1 2 1\n1 3\n", r":2: expected 'template1 template2 label'"),
    ("1 2 1\n1 3 1\n", r"all 2 pairs are genuine; need both"),
])
def test_pair_errors_name_the_line(tmp_path, text, message):
    path = tmp_path / "ijbc_template_pair_label.txt"
    path.write_text(text)
    with pytest.raises(UserError, match=message):
        read_template_pairs(path, {1, 2, 3})


@pytest.mark.parametrize("text, message", [
    ("TEMPLATE_ID,FILENAME\n1,a.jpg\n", "missing column SUBJECT_ID"),
    ("TEMPLATE_ID,SUBJECT_ID,FILENAME\n1,5,a.jpg\n2,x,b.jpg\n", r"G1.csv:3: SUBJECT_ID must be an integer, found 'x'"),
    ("TEMPLATE_ID,SUBJECT_ID\n1,5\n7,5\n", r"G1.csv:3: template 7 has no face in the face list"),
    ("TEMPLATE_ID,SUBJECT_ID\n1,5\n1,6\n", r"G1.csv:3: template 1 is given two subjects"),
])
def test_search_csv_errors_name_the_line(tmp_path, text, message):
    path = tmp_path / "ijbc_1N_gallery_G1.csv"
    path.write_text(text)
    with pytest.raises(UserError, match=message):
        read_search_csv(path, {1, 2})


def test_search_csv_gives_one_row_per_template(tmp_path):
    path = tmp_path / "ijbc_1N_probe_mixed.csv"
    path.write_text("TEMPLATE_ID, SUBJECT_ID, FILENAME\n2,7,a.jpg\n2,7,b.jpg\n1,8,c.jpg\n")
    frame = read_search_csv(path, {1, 2})
    assert frame.TEMPLATE_ID.tolist() == [2, 1] and frame.SUBJECT_ID.tolist() == [7, 8]


def test_identification_metrics_by_construction():
    """4 gallery templates (subjects 10, 11, 12, 13); 4 mated probes at ranks 1, 1, 2, 6-or-more (not in the
    top 4: rank 5), and 10 non-mated probes whose top scores are 0.05, 0.10, ..., 0.50."""
    gallery = np.array([10, 11, 12, 13])
    mated = np.array([[0.9, 0.1, 0.2, 0.0],    # subject 10: rank 1, score 0.9
                      [0.1, 0.4, 0.3, 0.2],    # subject 11: rank 1, score 0.4
                      [0.2, 0.1, 0.3, 0.8],    # subject 12: rank 2 (0.8 of subject 13 above)
                      [0.5, 0.6, 0.7, 0.1]])   # subject 13: rank 4
    nonmated = np.tile(np.arange(1, 11)[:, None] * 0.05, (1, 4)) * np.array([1.0, 0.5, 0.5, 0.5])
    similarity = np.vstack([mated, nonmated])
    probes = np.array([10, 11, 12, 13] + [99] * 10)
    figures = identification_metrics(similarity, probes, gallery, ranks=(1, 2, 3, 4), fpirs=(0.1, 0.3, 0.01))
    assert figures["mated_searches"] == 4 and figures["nonmated_searches"] == 10
    assert [figures[f"rank-{k}"] for k in (1, 2, 3, 4)] == [0.5, 0.75, 0.75, 1.0]
    # FPIR 0.1: one non-mated search may pass, so the threshold is the 2nd highest top score (0.45, exclusive):
    # rank-1 mates above it: 0.9 only -> 1/4. FPIR 0.3: threshold 0.35 -> 0.9 and 0.4 -> 2/4.
    assert figures["tpir@fpir=0.1"] == 0.25
    assert figures["tpir@fpir=0.3"] == 0.5
    assert np.isnan(figures["tpir@fpir=0.01"])  # 10 non-mated searches cannot measure FPIR 0.01
    # a tie at the threshold is rejected: a mate scoring exactly the threshold does not count
    assert tpir_at_fpir([0.45, 0.46], [1, 1], np.arange(1, 11) * 0.05, 0.1) == 0.5


def test_identification_needs_a_mated_search():
    with pytest.raises(ValueError, match="no probe has a mate"):
        identification_metrics(np.zeros((2, 2)), [1, 2], [3, 4])


def test_items_with_landmarks_are_warped_not_detected(tmp_path):
    """Given five points, a face reaches the embedder through a similarity warp (no detector); a warp of the
    image's own template points into LFW's loose crop is the same picture."""
    from PIL import Image

    from protocols.embedding import LOOSE_CROP

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (250, 250, 3), dtype=np.uint8)
    path = tmp_path / "face.png"
    Image.fromarray(pixels).save(path)
    points = tuple(LOOSE_CROP.template().ravel())
    embedder = get_embedder("pixels")
    given = embed_items(embedder, [FaceItem("a", path, landmarks=points)], workers=0, use_cache=False, progress=False)
    plain = embed_items(embedder, [FaceItem("b", path)], workers=0, use_cache=False, progress=False)
    np.testing.assert_allclose(given.features, plain.features, atol=0.05)
    with pytest.raises(ValueError, match="1 of 2 items carry landmarks"):
        embed_items(embedder, [FaceItem("a", path, landmarks=points), FaceItem("b", path)], workers=0,
                    use_cache=False, progress=False)


@pytest.fixture(scope="module")
def fixture_dir(lfw_root, tmp_path_factory):
    return build_ijbc_fixture(lfw_root, tmp_path_factory.mktemp("ijbc") / "IJBC", subjects=24, seed=1, progress=False)


@pytest.mark.data
def test_fixture_layout_and_readme(fixture_dir, lfw_root):
    assert (fixture_dir / "README.txt").read_text().startswith("FORMAT FIXTURE - NOT IJB-C.")
    protocol = load_protocol(fixture_dir)
    assert protocol.set_name == "ijbc" and protocol.fixture_note.startswith("FORMAT FIXTURE")
    assert set(protocol.galleries) == {"G1", "G2"}
    g1, g2 = (set(g.SUBJECT_ID) for g in protocol.galleries.values())
    assert len(g1) + len(g2) == 24 and not g1 & g2
    probes = set(protocol.probes.SUBJECT_ID)
    assert probes - g1 and probes - g2  # each gallery misses some probe subjects (open set)
    sources = dict(line.split() for line in (fixture_dir / "fixture_sources.txt").read_text().splitlines())
    devtest = {person.name for person in LFWLayout(lfw_root).people("peopleDevTest.txt")}
    assert {source.rsplit("_", 1)[0] for source in sources.values()} <= devtest
    media_per_template = protocol.faces.groupby("template").media.nunique()
    assert media_per_template.between(1, 3).all() and media_per_template.max() > 1


@pytest.mark.data
def test_whole_ijbc_path_on_fixture(fixture_dir, tmp_path, capsys):
    result = evaluate_ijb(get_embedder("lbp"), fixture_dir, progress=False)
    s = result.summary
    assert s["auc"] > 0.7  # pooled LBP features separate LFW people
    assert np.isnan(s["tar@far=1e-06"]) and np.isnan(s["tar@far=0.0001"])  # too few impostor pairs: never extrapolated
    assert 0 < s["tar@far=0.1"] <= 1
    assert list(result.identification.gallery) == ["G1", "G2"]
    assert s["1:N rank-1"] > 2 / 24  # above chance (12 gallery templates per gallery)
    assert s["1:N rank-1"] <= s["1:N rank-5"] <= s["1:N rank-10"]
    weighted = evaluate_ijb(get_embedder("lbp"), fixture_dir, score_weighting=True, pooling="faces", progress=False)
    assert weighted.summary["auc"] > 0.7 and weighted.config["pooling"] == "faces"
    assert ijbc.main(["--root", str(fixture_dir), "--embedder", "pixels", "--flip", "--workers", "0",
                      "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "FORMAT FIXTURE" in out and "1:N rank-1" in out
    assert (tmp_path / "out" / "roc.png").exists() and (tmp_path / "out" / "identification.csv").exists()


@pytest.mark.data
def test_a_missing_crop_or_landmark_line_is_named(fixture_dir, tmp_path):
    copy = tmp_path / "IJBC"
    shutil.copytree(fixture_dir, copy)
    marks = copy / "meta" / "ijbc_name_5pts_score.txt"
    lines = marks.read_text().splitlines(keepends=True)
    marks.write_text("".join(lines[1:]))
    with pytest.raises(UserError, match=r"ijbc_name_5pts_score.txt: no landmarks for 1 image\(s\) of "
                                        r"ijbc_face_tid_mid.txt, the first 1.jpg \(line 1\)"):
        load_protocol(copy)
    marks.write_text("".join(lines))
    (copy / "loose_crop" / "1.jpg").unlink()
    with pytest.raises(UserError, match="loose_crop/1.jpg"):
        evaluate_ijb(get_embedder("pixels"), copy, use_cache=False, progress=False, workers=0)
    (copy / "meta" / "ijbc_1N_probe_mixed.csv").unlink()
    with pytest.raises(UserError, match="1:N needs the galleries"):
        load_protocol(copy)


@pytest.mark.data
def test_ijbb_names_are_found(fixture_dir, tmp_path):
    """IJB-B's files carry the prefix ijbb and name its galleries S1 and S2; the set is found from the files."""
    copy = tmp_path / "IJBB"
    shutil.copytree(fixture_dir, copy)
    for path in (copy / "meta").iterdir():
        path.rename(path.with_name(path.name.replace("ijbc_", "ijbb_").replace("_G", "_S")))
    (copy / "README.txt").unlink()
    protocol = load_protocol(copy)
    assert protocol.set_name == "ijbb" and list(protocol.galleries) == ["S1", "S2"] and protocol.fixture_note is None
    with pytest.raises(UserError, match="no meta/ijbc_face_tid_mid.txt or meta/ijbb_face_tid_mid.txt"):
        load_protocol(tmp_path)
