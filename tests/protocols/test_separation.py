"""Identity separation analysis on 3DMM renders written by the test."""
import numpy as np
import pytest

from bench.cli import UserError
from protocols.separation import folder_dataset, sample_pairs, separation
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
    row, same, different = separation(folder_dataset("renders", renders), get_embedder("dlib-resnet"), 40,
                                      progress=False, use_cache=False, workers=0)
    assert len(same) == len(different) == 40
    assert row["mean_same"] < row["mean_different"]  # the same 3DMM identity stays closer in dlib's space
    assert np.isfinite(row["d_prime"]) and 0.5 < row["auc"] <= 1 and 0 <= row["eer"] < 0.5


def test_a_folder_without_identities_is_refused(tmp_path):
    (tmp_path / "only").mkdir()
    with pytest.raises(UserError, match="at least 2 identity folders"):
        folder_dataset("x", tmp_path)
