"""Every registered embedder, on real LFW images (parametrised over the registry)."""
import numpy as np
import pytest
import torch
from PIL import Image

from bench.cli import UserError
from protocols.lfw_files import LFWLayout
from recognition.embedders import get_embedder, list_embedders


def test_unknown_name_lists_known_ones():
    with pytest.raises(UserError, match="known embedders: .*lbp"):
        get_embedder("no-such-embedder")


@pytest.mark.data
@pytest.mark.parametrize("name", list_embedders())
def test_embedder_on_real_faces(name, lfw_root):
    layout = LFWLayout(lfw_root)
    embedder = get_embedder(name)
    images = [Image.open(layout.image_path("George_W_Bush", i)).convert("RGB") for i in range(1, 9)]
    batch = torch.stack([embedder.transform(image) for image in images])
    with torch.inference_mode():
        features = embedder(batch).numpy()
        again = embedder(batch).numpy()
    assert features.shape[0] == 8 and features.ndim == 2
    assert np.isfinite(features).all()
    np.testing.assert_array_equal(features, again)
    assert len({embedder.cache_key, get_embedder(name).cache_key}) == 1
