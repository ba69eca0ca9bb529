"""Every registered embedder, on real LFW images (parametrised over the registry)."""
import numpy as np
import pytest
import torch
from PIL import Image

from bench.common.cli import UserError
from recognition.faces.align import MTCNNAligner
from protocols.lfw_files import LFWLayout
from recognition.embedders import get_embedder, list_embedders

# embedders whose weights do not ship in any installed package: built with random weights here
RANDOM_WEIGHTS = {"inception-resnet-v1": {"pretrained": None}}
# embedders that need optional packages (runtimes, weight carriers): skipped with the reason when absent
OPTIONAL = {"dlib-bin", "sface", "sface-int8bq", "facenet-keras"}
# embedders whose weights come from an optional package: the fixture that skips without it
OPTIONAL_WEIGHTS = {"openface-nn4": "openface_weights", "facenet-nn4": "openface_weights"}


def test_unknown_name_lists_known_ones():
    with pytest.raises(UserError, match="known embedders: .*lbp"):
        get_embedder("no-such-embedder")


@pytest.mark.parametrize("name", sorted(RANDOM_WEIGHTS))
def test_missing_weights_are_a_clear_user_error(name, monkeypatch, tmp_path):
    monkeypatch.setenv("FACEBENCH_DATA", str(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(UserError, match="weights"):
        get_embedder(name)


@pytest.mark.data
@pytest.mark.parametrize("name", list_embedders())
def test_embedder_on_real_faces(name, lfw_root, request):
    if name == "dlib-bin":
        pytest.importorskip("dlib", reason="dlib-bin is the optional reference implementation")
    if name in OPTIONAL_WEIGHTS:
        request.getfixturevalue(OPTIONAL_WEIGHTS[name])
    layout = LFWLayout(lfw_root)
    try:
        embedder = get_embedder(name, **RANDOM_WEIGHTS.get(name, {}))
    except UserError as error:
        if name in OPTIONAL:
            pytest.skip(f"{name} is optional and not available here: {error}")
        raise
    images = [Image.open(layout.image_path("George_W_Bush", i)).convert("RGB") for i in range(1, 9)]
    if embedder.crop is not None:
        images, found = MTCNNAligner().chips(images, embedder.crop)
        assert found.all()
    batch = torch.stack([embedder.transform(image) for image in images])
    with torch.inference_mode():
        features = embedder(batch).numpy()
        again = embedder(batch).numpy()
    assert features.shape[0] == 8 and features.ndim == 2
    assert np.isfinite(features).all()
    np.testing.assert_allclose(features, again, rtol=1e-5, atol=1e-6)
    if name not in RANDOM_WEIGHTS:
        assert embedder.cache_key == get_embedder(name).cache_key
