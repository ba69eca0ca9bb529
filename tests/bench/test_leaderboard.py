"""bench.leaderboard on a small LFW View 2 built from the real LFW (10 folds x 10 + 10 pairs), lbp and pixels."""
from __future__ import annotations

import shutil

import pandas as pd
import pytest

from bench.leaderboard import cells as leaderboard_cells
from bench.leaderboard import columns as leaderboard_columns
from bench.leaderboard.__main__ import main
from bench.common.cli import UserError
from protocols.ijba import evaluate_ijba
from protocols.lfw import evaluate_lfw
from protocols.verification import evaluate_bin
from protocols.verification_files import FIXTURE_MARKER_SUFFIX, read_bin
from recognition.embedders import get_embedder

FIELD_ORDER = ["LFW", "CFP-FP", "AgeDB-30", "CALFW", "CPLFW", "IJB-B", "IJB-C", "IJB-A"]


@pytest.fixture(scope="module")
def small_lfw(lfw_root, tmp_path_factory):
    """A data root whose pairs.txt holds the first 10 matched and 10 mismatched pairs of each real fold."""
    root = tmp_path_factory.mktemp("small-lfw")
    (root / "lfw-py").mkdir()
    for real in (lfw_root / "lfw-py").iterdir():  # the images and the other protocol files as they are
        if real.name != "pairs.txt":
            (root / "lfw-py" / real.name).symlink_to(real)
    body = (lfw_root / "lfw-py" / "pairs.txt").read_text().splitlines()[1:]
    lines = ["10\t10"]
    for fold in range(10):
        block = body[fold * 600:(fold + 1) * 600]
        lines += block[:10] + block[300:310]
    (root / "lfw-py" / "pairs.txt").write_text("\n".join(lines) + "\n")
    return root


def run(root, tmp_path, embedders, *extra):
    argv = ["--embedders", embedders, "--data-root", str(root), "--results", str(tmp_path / "results"),
            "--out", str(tmp_path / "board"), "--workers", "0", *extra]
    assert main(argv) == 0
    return pd.read_csv(tmp_path / "board" / "leaderboard.csv"), (tmp_path / "board" / "leaderboard.md").read_text()


def test_columns_are_in_the_fields_order():
    assert [column.title for column in leaderboard_columns.COLUMNS] == FIELD_ORDER
    assert all("FIXTURE" in column.title and column.fixture for column in leaderboard_columns.FIXTURE_COLUMNS)


@pytest.mark.data
def test_lfw_figure_is_evaluate_lfws_and_absent_sets_are_missing(small_lfw, tmp_path):
    cells, text = run(small_lfw, tmp_path, "lbp")
    expected = evaluate_lfw(get_embedder("lbp"), small_lfw, "10fold", progress=False).summary
    lfw = cells[cells.column == "LFW"].iloc[0]
    assert lfw.status == "computed"
    assert lfw.value == pytest.approx(expected["accuracy_percent"], abs=1e-12)
    assert lfw["std"] == pytest.approx(expected["accuracy_std_percent"], abs=1e-12)
    assert f"{expected['accuracy_percent']:.2f} ± {expected['accuracy_std_percent']:.2f}" in text
    missing = cells[cells.column != "LFW"]
    assert list(missing.column) == FIELD_ORDER[1:] and set(missing.status) == {"missing"}
    assert missing.value.isna().all()
    for looked_for in ("verification/cfp_fp.bin", "verification/agedb_30.bin", "IJB_release/IJBB/meta/ijbb_face_tid_mid.txt",
                       "IJB_release/IJBC/meta/ijbc_face_tid_mid.txt", "IJB-A_11_sets"):
        assert f"**missing**, looked for `$FACEBENCH_DATA/{looked_for}`" in text
    header = next(line for line in text.splitlines() if line.startswith("| embedder"))
    assert [cell.strip() for cell in header.strip("|").split("|")] == ["embedder", *FIELD_ORDER]
    assert "python -m bench.leaderboard --embedders lbp" in text and "Machine: " in text and " UTC" in text
    assert "FIXTURE" not in text  # no fixture table without --fixtures


@pytest.mark.data
def test_a_rerun_with_one_more_embedder_evaluates_only_that_one(small_lfw, tmp_path, monkeypatch):
    evaluated = []

    def spy(embedder, *args, **kwargs):
        evaluated.append(embedder.name)
        return evaluate_lfw(embedder, *args, **kwargs)

    monkeypatch.setattr(leaderboard_cells, "evaluate_lfw", spy)
    first, _ = run(small_lfw, tmp_path, "lbp")
    assert evaluated == ["lbp"]
    second, _ = run(small_lfw, tmp_path, "lbp,pixels")
    assert evaluated == ["lbp", "pixels"]  # lbp's stored result was reused
    lfw = second[second.column == "LFW"].set_index("embedder")
    assert lfw.status.to_dict() == {"lbp": "stored", "pixels": "computed"}
    assert lfw.value["lbp"] == first[first.column == "LFW"].value.iloc[0]
    run(small_lfw, tmp_path, "lbp,pixels", "--force")
    assert evaluated == ["lbp", "pixels", "lbp", "pixels"]


@pytest.mark.parametrize("text, message", [
    ("lbp,,pixels", "--embedders 'lbp,,pixels': a comma-separated list"),
    (" ", "--embedders ' ': a comma-separated list"),
    ("lbp,lbp", "--embedders: lbp named twice"),
    ("nope", "--embedders: 'nope': unknown embedder 'nope'; known embedders:"),
    ("recognizer:", "--embedders: 'recognizer:': nothing after 'recognizer:'"),
    ("recognizer:/nonexistent/run", "--embedders: 'recognizer:/nonexistent/run': recognizer weights not found"),
])
def test_bad_embedder_lists_are_user_errors_naming_the_option(text, message, tmp_path):
    with pytest.raises(UserError) as raised:
        main(["--embedders", text, "--out", str(tmp_path / "board"), "--results", str(tmp_path / "r")])
    assert str(raised.value).startswith(message)
    assert not (tmp_path / "board").exists()


def test_name_colon_weights_builds_the_registered_embedder_with_those_weights(monkeypatch):
    built = {}

    def fake(name, **options):
        built[name] = options
        return get_embedder("lbp")

    monkeypatch.setattr(leaderboard_cells, "get_embedder", fake)
    leaderboard_cells.build_embedder("recognizer:runs/rec")
    leaderboard_cells.build_embedder("lbp")
    assert built == {"recognizer": {"weights": "runs/rec"}, "lbp": {}}


@pytest.mark.data
def test_fixtures_are_separate_marked_and_equal_their_protocols(small_lfw, tmp_path, monkeypatch):
    """Small fixtures (20 .bin pairs, 3 IJB-C people, 2 IJB-A splits of 24 people); a fixture found where a real set belongs
    is marked as one."""
    monkeypatch.setattr(leaderboard_columns, "FIXTURE_BIN_PAIRS", 20)
    monkeypatch.setattr(leaderboard_columns, "FIXTURE_IJBC_SUBJECTS", 3)
    monkeypatch.setattr(leaderboard_columns, "FIXTURE_IJBA", {"splits": 2, "subjects": 24, "impostors": 1000})
    built = leaderboard_columns.build_fixtures(small_lfw, tmp_path / "fixtures")
    bins = tmp_path / "bins"
    bins.mkdir()
    for name in ("cfp_fp.bin", "cfp_fp.bin" + FIXTURE_MARKER_SUFFIX):
        shutil.copy(built["lfw-bin"].with_name(name.replace("cfp_fp", "lfw")), bins / name)
    monkeypatch.setattr(leaderboard_columns, "build_fixtures", lambda root, folder: built)
    cells, text = run(small_lfw, tmp_path, "lbp", "--fixtures", "--bin-dir", str(bins))
    cells = cells.set_index("column")
    lbp = get_embedder("lbp")
    on_bin = evaluate_bin(lbp, read_bin(built["lfw-bin"]), flip=True, progress=False).summary
    assert cells.value["LFW .bin FIXTURE"] == pytest.approx(on_bin["insightface_accuracy_percent"], abs=1e-12)
    assert cells.value["CFP-FP"] == pytest.approx(on_bin["insightface_accuracy_percent"], abs=1e-12)
    assert cells.fixture["CFP-FP"] and not cells.fixture["AgeDB-30"]
    on_ijba = evaluate_ijba(lbp, built["ijba"], progress=False).summary
    assert cells.value["IJB-A layout FIXTURE"] == pytest.approx(100 * on_ijba["tar@far=0.001_mean"], abs=1e-9)
    assert pd.isna(cells.value["IJB-C layout FIXTURE"])  # 3 people: too few impostor pairs for FAR=1e-4
    real, fixtures = text.split("## Format fixtures")
    assert "FIXTURE" not in real.split("## Columns")[0].replace("(fixture)", "")
    assert "| `lbp` " in fixtures and "n/a" in fixtures and "LFW .bin FIXTURE" in fixtures
    assert f"{on_bin['insightface_accuracy_percent']:.2f} ± {on_bin['insightface_accuracy_std_percent']:.2f} (fixture)" in real


def test_row_labels_name_no_folder_of_this_machine(tmp_path, monkeypatch):
    """A `NAME:WEIGHTS` or `onnx:PATH?options` entry with an absolute path is labelled (and its results folder
    named) as another machine can read it: relative to the checkout, or under $FACEBENCH_DATA."""
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    assert leaderboard_cells.portable_label(f"recognizer:{tmp_path}/runs/rec") == "recognizer:runs/rec"
    assert leaderboard_cells.portable_label(f"onnx:{data}/m.onnx?colour=bgr", data) == \
        "onnx:$FACEBENCH_DATA/m.onnx?colour=bgr"
    assert leaderboard_cells.portable_label("timm:resnet18") == "timm:resnet18"
    assert leaderboard_cells.portable_label("lbp") == "lbp"


def test_an_ijba_folder_without_splits_is_a_missing_column_with_the_reason(small_lfw, tmp_path):
    """A folder where IJB-A belongs but without its split folders leaves that column missing, says why, and the
    other columns are still evaluated (it used to stop the whole leaderboard)."""
    broken = tmp_path / "IJB-A_11_sets"
    (broken / "images").mkdir(parents=True)
    cells, text = run(small_lfw, tmp_path, "lbp", "--ijba-dir", str(broken))
    assert cells.set_index("column").loc["IJB-A", "status"] == "missing"
    assert cells.set_index("column").loc["LFW", "status"] == "computed"
    assert "IJB-A: **missing**, looked for" in text and "no split folders" in text
