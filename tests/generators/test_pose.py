"""The pose distributions: `lfw` matches the fits of real photos, and the sampler draws what is measured."""
import numpy as np
import pandas as pd
import pytest

from bench.common.cli import UserError
from generators.morphable.sampling import POSE_DISTRIBUTIONS, sample_image, sampling_config
from generators.pose import fitted_poses, main, sampled_poses


def write_pairs(folder, yaw, status=None):
    folder.mkdir(exist_ok=True)
    n = len(yaw)
    pd.DataFrame({"key": range(n), "status": status or ["ok"] * n, "yaw": yaw, "pitch": np.zeros(n),
                  "roll": np.zeros(n)}).to_csv(folder / "pairs.csv", index=False)
    return folder


def test_sample_image_draws_the_named_distribution(ict_model):
    """The image sampler itself (not only generators.pose's copy of its rule) follows `lfw`: narrow yaw."""
    lfw = [sample_image(ict_model, 0, i, j, sampling_config("lfw")).yaw for i in range(20) for j in range(20)]
    wide = [sample_image(ict_model, 0, i, j).yaw for i in range(20) for j in range(20)]
    assert max(map(abs, lfw)) <= 35 and 9 < np.std(lfw) < 14
    assert np.std(wide) > 25 and max(map(abs, wide)) > 60
    assert np.std(sampled_poses("lfw", 400).yaw) == pytest.approx(np.std(lfw), rel=0.2)


def test_the_summary_reads_fits_and_skips_failed_ones(tmp_path, capsys):
    pairs = write_pairs(tmp_path / "pairs", [-20.0, 0.0, 20.0, 80.0], status=["ok", "ok", "ok", "no-face"])
    assert list(fitted_poses(pairs).yaw) == [-20.0, 0.0, 20.0]
    assert main(["--pairs", str(pairs), "--out", str(tmp_path / "out"), "--samples", "1000"]) == 0
    table = pd.read_csv(tmp_path / "out" / "pose.csv")
    real = table[(table.angle == "yaw") & table.source.str.startswith("real")].iloc[0]
    assert real.n == 3 and real.abs_max_deg == 20 and real.std_deg == pytest.approx(20)
    assert set(table.source) == {"real photos (pairs)", *(f"sampler '{n}'" for n in POSE_DISTRIBUTIONS)}
    assert (tmp_path / "out" / "pose.png").stat().st_size > 10_000


def test_bad_pairs_folders_are_named(tmp_path):
    with pytest.raises(UserError, match="pairs.csv: not found"):
        fitted_poses(tmp_path)
    with pytest.raises(UserError, match="no fit with status ok"):
        fitted_poses(write_pairs(tmp_path / "p", [1.0], status=["failed"]))
    with pytest.raises(ValueError, match="choose from"):
        sampling_config("profile")
