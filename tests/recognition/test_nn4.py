"""FaceNet NN4 (OpenFace's nn4.small2): shapes, gradients, weights round trip and the user's mistakes."""
import pytest
import torch
from PIL import Image

from bench.common.cli import UserError
from recognition.embedders import nn4  # noqa: F401  (registers 'facenet-nn4')
from recognition.embedders.nn4 import NN4Embedder, NN4Small2
from recognition.embedders.registry import get_embedder

TORCH_THREADS = 1  # keep these tests small (see tests/recognition/conftest.py)


@pytest.fixture
def saved_model(tmp_path):
    torch.manual_seed(0)
    model = NN4Small2().eval()
    path = tmp_path / "nn4.pt"
    torch.save(model.state_dict(), path)
    return model, path


def test_forward_gives_unit_norm_features_and_gradients():
    torch.manual_seed(0)
    embedder = NN4Embedder(pretrained=False).eval()
    images = torch.rand(4, 3, 96, 96, requires_grad=True)
    features = embedder(images)
    assert features.shape == (4, 128)
    assert torch.isfinite(features).all()
    torch.testing.assert_close(features.norm(dim=1), torch.ones(4))
    (features[:, 0] + features[:, 1]).sum().backward()  # a unit-norm sum would have zero gradient
    assert images.grad is not None and torch.isfinite(images.grad).all() and images.grad.abs().sum() > 0


def test_transform_gives_96x96_rgb_in_unit_range():
    embedder = NN4Embedder(pretrained=False)
    assert embedder.crop.size == 96 and embedder.metric == "euclidean"
    tensor = embedder.transform(Image.new("L", (96, 96), 255))
    assert tensor.shape == (3, 96, 96) and tensor.dtype == torch.float32
    assert tensor.min() == 1.0 and tensor.max() == 1.0
    assert embedder.transform(Image.new("RGB", (120, 120))).shape == (3, 96, 96)


def test_state_dict_round_trip(saved_model):
    model, path = saved_model
    embedder = NN4Embedder(weights=path).eval()
    images = torch.rand(2, 3, 96, 96)
    with torch.inference_mode():
        assert torch.equal(embedder(images), model(images))
    assert embedder.config["weights"] == str(path.resolve())
    assert embedder.config["weights_bytes"] == path.stat().st_size


def test_default_location_and_registry(saved_model, tmp_path, monkeypatch):
    model, path = saved_model
    monkeypatch.setenv("FACEBENCH_DATA", str(tmp_path))
    (tmp_path / "models").mkdir()
    path.rename(tmp_path / "models" / "nn4.small2.pt")
    embedder = get_embedder("facenet-nn4")
    assert embedder.name == "facenet-nn4" and not embedder.training
    assert embedder.cache_key == get_embedder("facenet-nn4").cache_key
    images = torch.rand(1, 3, 96, 96)
    with torch.inference_mode():
        assert torch.equal(embedder(images), model(images))


def test_missing_weights_say_where_they_were_looked_for(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEBENCH_DATA", str(tmp_path))
    expected = tmp_path.resolve() / "models" / "nn4.small2.pt"
    with pytest.raises(UserError) as error:
        get_embedder("facenet-nn4")
    message = str(error.value)
    assert str(expected) in message
    assert "no pretrained weights ship" in message and "weights=PATH" in message
    with pytest.raises(UserError, match="no nn4.small2 weights at .*elsewhere.pt"):
        NN4Embedder(weights=tmp_path / "elsewhere.pt")


def test_random_weights_are_explicit_and_get_their_own_cache_key():
    a, b = NN4Embedder(pretrained=False), NN4Embedder(pretrained=False)
    assert a.cache_key != b.cache_key  # two random initialisations must not share an embedding cache
    with pytest.raises(UserError, match="not both"):
        NN4Embedder(weights="x.pt", pretrained=False)


def test_wrong_shape_names_the_file_and_key(saved_model):
    model, path = saved_model
    state = model.state_dict()
    state["fc.weight"] = torch.zeros(64, 736)
    torch.save(state, path)
    with pytest.raises(UserError, match=r"nn4\.pt.*key 'fc\.weight' has shape \(64, 736\), expected \(128, 736\)"):
        NN4Embedder(weights=path)


def test_missing_and_unexpected_keys_are_named(saved_model):
    model, path = saved_model
    state = model.state_dict()
    del state["inception_4a.branch_1x1.conv.bias"]
    torch.save(state, path)
    with pytest.raises(UserError, match="key 'inception_4a.branch_1x1.conv.bias' is missing"):
        NN4Embedder(weights=path)
    state = model.state_dict()
    state["extra.weight"] = torch.zeros(1)
    torch.save(state, path)
    with pytest.raises(UserError, match="unexpected key 'extra.weight'"):
        NN4Embedder(weights=path)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="nn4.pt is not a PyTorch state dict"):
        NN4Embedder(weights=path)


def test_parameter_count_is_that_of_nn4_small2():
    count = sum(p.numel() for p in NN4Small2().parameters())
    # OpenFace gives 3,733,968 parameters for nn4.small2 (conv weights and biases, batch-norm scale
    # and shift, the 736->128 layer). The range, +-2% around it, is what "about 3.7M" means: it
    # separates nn4.small2 from FaceNet's full NN2/NN4 (about 7.5M, Schroff et al. 2015, Table 2,
    # with inception 4b-4d), while tolerating bias-free convolutions (4,656 fewer). The exact
    # figure then pins the channel table of the docstring.
    assert 3_660_000 <= count <= 3_810_000, count
    assert count == 3_733_968
