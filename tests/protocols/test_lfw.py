"""The LFW protocol end to end on the real LFW of the data root."""
import json
import re

import numpy as np
import pytest

from protocols.lfw_files import LFWLayout

from protocols import lfw
from protocols.lfw import evaluate_lfw, write_lfw_report
from recognition.embedders import get_embedder

pytestmark = pytest.mark.data


@pytest.fixture(scope="module")
def tenfold(lfw_root):
    return evaluate_lfw(get_embedder("lbp"), lfw_root, "10fold", progress=False)


def test_tenfold_protocol_on_real_lfw(tenfold):
    summary = tenfold.summary
    assert len(tenfold.folds) == 10 and len(tenfold.scores) == 6000 and tenfold.labels.sum() == 3000
    # LBP histograms are a weak but real signal: clearly above chance, far below learned embeddings
    assert 60 < summary["accuracy_percent"] < 85
    assert summary["accuracy_std_percent"] > 0
    assert summary["accuracy_stderr_percent"] == pytest.approx(summary["accuracy_std_percent"] / np.sqrt(10))
    assert summary["auc"] > 0.6 and summary["100-eer_percent"] > 55
    assert 0 <= summary["tar@far=0.001"] <= summary["tar@far=0.01"] <= 1
    assert np.isnan(summary["tar@far=0.0001"])  # 3,000 impostor pairs cannot measure 1e-4
    assert tenfold.folds.accuracy_percent.mean() == pytest.approx(summary["accuracy_percent"])


def test_view1_and_cache_reuse(lfw_root, tenfold, monkeypatch):
    embedder = get_embedder("lbp")
    first = evaluate_lfw(embedder, lfw_root, "view1", progress=False)
    assert 55 < first.summary["accuracy_percent"] < 85 and len(first.scores) == 1000

    def refuse(*args, **kwargs):
        raise AssertionError("features should come from the cache")

    monkeypatch.setattr(type(embedder), "forward", refuse)
    second = evaluate_lfw(embedder, lfw_root, "view1", progress=False)
    np.testing.assert_array_equal(first.scores, second.scores)


def test_flip_test_changes_features(lfw_root, tenfold):
    flipped = evaluate_lfw(get_embedder("pixels"), lfw_root, "view1", flip=True, progress=False)
    plain = evaluate_lfw(get_embedder("pixels"), lfw_root, "view1", progress=False)
    assert not np.allclose(flipped.scores, plain.scores)
    assert flipped.config["flip"] and not plain.config["flip"]


def test_report_files(tenfold, tmp_path):
    out = write_lfw_report(tenfold, tmp_path / "report")
    stored = json.loads((out / "metrics.json").read_text())
    assert stored["metrics"]["accuracy_percent"] == pytest.approx(tenfold.summary["accuracy_percent"])
    assert "accuracy_percent" in (out / "metrics.md").read_text()
    assert (out / "folds.csv").read_text().count("\n") == 11
    for picture in ("roc.png", "scores.png"):
        assert (out / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_writes_results_then_reuses_them(lfw_root, tmp_path, capsys, tenfold):
    argv = ["--embedder", "lbp", "--split", "10fold", "--out", str(tmp_path / "cli"), "--data-root", str(lfw_root)]
    assert lfw.main(argv) == 0
    assert "accuracy_percent" in capsys.readouterr().out
    assert lfw.main(argv) == 0
    assert "cached" in capsys.readouterr().out


def test_cli_refuses_an_out_that_is_a_file_before_embedding(lfw_root, tmp_path, monkeypatch):
    """Issue 20, item 7: --out naming a file failed only after embedding all 4,992 images."""
    from bench.common.cli import UserError

    def no_embedding(*args, **kwargs):
        raise AssertionError("embedding started before --out was checked")

    monkeypatch.setattr(lfw, "evaluate_lfw", no_embedding)
    (tmp_path / "taken").write_text("a file")
    for out in (tmp_path / "taken", tmp_path / "taken" / "below"):
        with pytest.raises(UserError, match=re.escape(f"--out {out}: {tmp_path / 'taken'} is a file")):
            lfw.main(["--embedder", "lbp", "--split", "view1", "--out", str(out), "--data-root", str(lfw_root)])


@pytest.mark.parametrize("recorded_root", ["absolute", "$FACEBENCH_DATA", "another machine's"])
def test_cli_reuses_a_stored_result_whichever_way_it_names_the_data_root(lfw_root, tmp_path, monkeypatch, capsys,
                                                                         recorded_root):
    """Issue 20, item 10: metrics.json records the data root as $FACEBENCH_DATA, and a stored result counts as
    the same evaluation by the content of its pairs files, not the path of the data root it was made on."""
    monkeypatch.setenv("FACEBENCH_DATA", str(lfw_root))
    out = tmp_path / "lbp-view1"
    out.mkdir()
    recorded = {"absolute": str(lfw_root), "$FACEBENCH_DATA": "$FACEBENCH_DATA", "another machine's": "/elsewhere"}
    config = {"embedder": "lbp", "embedder_key": get_embedder("lbp").cache_key, "data_root": recorded[recorded_root],
              "pairs_digest": lfw.pairs_digest(LFWLayout(lfw_root), "view1"), "aligner": None, "flip": False,
              "split": "view1"}
    (out / "metrics.json").write_text(json.dumps({"title": "LFW view1: lbp", "config": config,
                                                  "metrics": {"accuracy_percent": 67.3}}))

    def no_evaluation(*args, **kwargs):
        raise AssertionError("the stored result should have been reused")

    monkeypatch.setattr(lfw, "evaluate_lfw", no_evaluation)
    assert lfw.main(["--embedder", "lbp", "--split", "view1", "--out", str(out)]) == 0
    assert "cached" in capsys.readouterr().out


def test_cli_does_not_reuse_a_result_of_other_pairs(lfw_root, tmp_path, monkeypatch):
    """A copy of LFW whose pairs file differs (damaged, edited) is evaluated afresh, not served a stored result."""
    copy = tmp_path / "copy" / "lfw-py"
    copy.mkdir(parents=True)
    (copy / "lfw-deepfunneled").symlink_to(lfw_root / "lfw-py" / "lfw-deepfunneled")
    for name in ("pairsDevTrain.txt", "pairsDevTest.txt"):
        (copy / name).write_bytes((lfw_root / "lfw-py" / name).read_bytes())
    out = tmp_path / "lbp-view1"
    out.mkdir()
    config = {"embedder_key": get_embedder("lbp").cache_key, "pairs_digest": lfw.pairs_digest(LFWLayout(lfw_root), "view1"),
              "aligner": None, "flip": False, "split": "view1"}
    (out / "metrics.json").write_text(json.dumps({"title": "t", "config": config, "metrics": {}}))
    (copy / "pairsDevTest.txt").write_bytes((copy / "pairsDevTest.txt").read_bytes() + b"\n")

    class Evaluated(Exception):
        pass

    def evaluation(*args, **kwargs):
        raise Evaluated

    monkeypatch.setattr(lfw, "evaluate_lfw", evaluation)
    with pytest.raises(Evaluated):
        lfw.main(["--embedder", "lbp", "--split", "view1", "--out", str(out), "--data-root", str(tmp_path / "copy")])
