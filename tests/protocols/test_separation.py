"""Identity separation analysis on 3DMM renders written by the test."""
import numpy as np
import pytest

from bench.common.cli import UserError
from protocols.separation import d_prime, d_prime_interval, folder_dataset, sample_pairs, separation
from recognition.embedders import get_embedder

pytestmark = pytest.mark.data


@pytest.fixture(scope="module")
def renders(tmp_path_factory, ict_archive):
    from generators.render import RenderConfig, render_dataset

    out = tmp_path_factory.mktemp("renders")
    render_dataset(RenderConfig(identities=6, per_identity=4, batch_size=8), out, progress=False)
    return out


def test_pairs_are_seeded_and_labelled(renders):
    faces = folder_dataset("renders", renders)
    same, different = sample_pairs(faces, 20, seed=3)
    assert sample_pairs(faces, 20, seed=3) == (same, different)
    assert all(a.parent == b.parent and a != b for a, b in same)
    assert all(a.parent != b.parent for a, b in different)


def test_separation_figures_on_renders(renders):
    result = separation(folder_dataset("renders", renders), get_embedder("dlib-resnet"), 40,
                        progress=False, use_cache=False, workers=0)
    row, same, different = result.row, result.same, result.different
    assert len(same) == len(different) == 40
    assert len(result.paths) == len(result.features) and len(result.paths) <= 160
    assert row["mean_same"] < row["mean_different"]  # the same 3DMM identity stays closer in dlib's space
    assert np.isfinite(row["d_prime"]) and 0.5 < row["auc"] <= 1 and 0 <= row["eer"] < 0.5
    assert row["d_prime_low"] < row["d_prime"] < row["d_prime_high"]


def test_d_prime_interval_covers_the_truth_and_narrows_with_more_pairs():
    """Normal distances with a known d' of 1 (means 0 and 1, unit variances): the 95% interval holds 1, and
    drawing 16x the pairs makes it about 4x narrower (the 1 / sqrt(n) of sampling noise)."""
    rng = np.random.default_rng(0)
    widths = {}
    for count in (250, 4000):
        same, different = rng.normal(0.0, 1.0, count), rng.normal(1.0, 1.0, count)
        low, high = d_prime_interval(same, different, seed=0)
        assert low < 1.0 < high and low < d_prime(same, different) < high
        widths[count] = high - low
    assert 3.0 < widths[250] / widths[4000] < 5.5
    assert d_prime_interval(same, different, seed=0) == d_prime_interval(same, different, seed=0)  # seeded


def test_a_folder_without_identities_is_refused(tmp_path):
    (tmp_path / "only").mkdir()
    with pytest.raises(UserError, match="at least 2 identity folders"):
        folder_dataset("x", tmp_path)


def test_cli_writes_separation_and_realism_tables(renders, tmp_path):
    import pandas as pd

    from protocols.separation import main

    out = tmp_path / "out"
    assert main(["--dataset", f"real={renders}", "--dataset", f"renders={renders}", "--pairs", "10",
                 "--realism-reference", "real", "--realism-images", "12", "--out", str(out)]) == 0
    for name in ("separation.csv", "separation.png", "realism.csv", "realism.png"):
        assert (out / name).exists(), name
    realism = pd.read_csv(out / "realism.csv")
    assert list(realism.dataset) == ["real", "renders"] and realism.frechet_to_real.notna().all()
    assert realism.mean_r.iloc[0] == realism.mean_r.iloc[1]  # same folder, same seed: same images
    with pytest.raises(UserError, match="no --dataset has that name"):
        main(["--dataset", f"a={renders}", "--realism-reference", "lfw2", "--out", str(out)])
    with pytest.raises(UserError, match="names must differ"):
        main(["--dataset", f"a={renders}", "--dataset", f"a={renders}", "--out", str(out)])
