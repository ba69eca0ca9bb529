"""Bring-your-own embedders (onnx:, torchscript:, timm:): a tiny network written to a temporary file,
embedded through the protocols' code path, equals the same network run directly; bad files and
options are one clear UserError naming the file."""
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from bench.common.cli import UserError
from recognition.faces.align import ARCFACE_CROP, CropGeometry, MTCNNAligner
from recognition.embedders import get_embedder, list_embedder_prefixes
from recognition.embedders.registry import file_safe_name, parse_embedder_name

TORCH_THREADS = 1


class TinyNet(nn.Module):
    """A small embedding network: conv, pool, linear -> (N, 16)."""

    def __init__(self, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(3, 8, 5, stride=4, padding=2)  # 112 -> 28, 96 -> 24: pooled to 4x4 exactly
        self.fc = nn.Linear(8 * 4 * 4, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.adaptive_avg_pool2d(torch.relu(self.conv(x)), 4)
        return self.fc(x.flatten(1))


class NotAnEmbedding(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, :2, :2]  # (N, 3, 2, 2): not (N, D)


@pytest.fixture(scope="module")
def tiny():
    return TinyNet().eval()


def export_onnx(model: nn.Module, path, size: int = 112, dynamic: bool = True):
    pytest.importorskip("onnx", reason="pip install onnx==1.23.2")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.rand(2, 3, size, size),), str(path), input_names=["image"],
                          output_names=["features"], dynamo=False,
                          dynamic_axes={"image": {0: "n"}, "features": {0: "n"}} if dynamic else None)
    return path


@pytest.fixture(scope="module")
def onnx_file(tiny, tmp_path_factory):
    pytest.importorskip("onnx2torch", reason="pip install --no-deps onnx2torch==1.5.15")
    return export_onnx(tiny, tmp_path_factory.mktemp("onnx") / "tiny.onnx")


@pytest.fixture(scope="module")
def scripted_file(tiny, tmp_path_factory):
    path = tmp_path_factory.mktemp("ts") / "tiny.pt"
    torch.jit.script(tiny).save(str(path))
    return path


@pytest.fixture(scope="module")
def traced_file(tiny, tmp_path_factory):
    path = tmp_path_factory.mktemp("ts") / "tiny-traced.pt"
    torch.jit.trace(tiny, torch.rand(1, 3, 112, 112)).save(str(path))
    return path


def direct(model: nn.Module, chips: torch.Tensor, mean=127.5, std=127.5, bgr=False) -> np.ndarray:
    """The network run by hand on 0..255 RGB chips, normalised as documented."""
    x = chips.flip(1) if bgr else chips
    mean, std = torch.tensor(mean, dtype=torch.float32).reshape(-1, 1, 1), torch.tensor(std, dtype=torch.float32).reshape(-1, 1, 1)
    with torch.inference_mode():
        return model((x - mean) / std).numpy()


def test_prefixes_are_listed_and_parsed():
    assert list_embedder_prefixes() == ["onnx:PATH", "torchscript:PATH", "timm:NAME[:CHECKPOINT]", "iresnet:ARCH:PATH",
                                       "mobilefacenet:PATH", "adaface:ARCH:PATH"]
    assert parse_embedder_name("onnx:/m/a.onnx?std=128&colour=bgr") == ("onnx", "/m/a.onnx", {"std": "128", "colour": "bgr"})
    assert parse_embedder_name("timm:resnet18:/c.pth") == ("timm", "resnet18:/c.pth", {})
    assert parse_embedder_name("sface") is None and parse_embedder_name("C:/models/a.onnx") is None
    with pytest.raises(UserError, match="'std' is not key=value"):
        parse_embedder_name("onnx:a.onnx?std")
    with pytest.raises(UserError, match="unknown embedder 'nope:x'.*bring your own model: onnx:PATH"):
        get_embedder("nope:x")


def test_file_safe_names():
    assert file_safe_name("dlib-resnet") == "dlib-resnet"
    safe = file_safe_name("onnx:/models/arc face.onnx?std=128")
    assert "/" not in safe and ":" not in safe and "?" not in safe and safe.startswith("onnx-models-arc-face.onnx-std-128-")
    assert file_safe_name("onnx:/a/x.onnx") != file_safe_name("onnx:/b/x.onnx")


@pytest.mark.parametrize("kind", ["onnx", "onnx-onnxruntime", "torchscript", "traced"])
def test_same_features_as_the_network_itself(kind, tiny, request):
    if kind == "onnx-onnxruntime":
        pytest.importorskip("onnxruntime", reason="pip install onnxruntime==1.32.0")
    file = request.getfixturevalue({"onnx": "onnx_file", "onnx-onnxruntime": "onnx_file", "torchscript": "scripted_file",
                                    "traced": "traced_file"}[kind])
    prefix = "torchscript" if kind in ("torchscript", "traced") else "onnx"
    options = {"backend": "onnxruntime"} if kind == "onnx-onnxruntime" else {}
    embedder = get_embedder(f"{prefix}:{file}", **options)
    assert embedder.crop == ARCFACE_CROP and embedder.input_size == (112, 112) and embedder.metric == "cosine"
    chips = torch.rand(5, 3, 112, 112) * 255
    with torch.inference_mode():
        features = embedder(chips).numpy()
    np.testing.assert_allclose(features, direct(tiny, chips), atol=1e-5)
    assert embedder.embedding_size == 16


@pytest.mark.parametrize("prefix", ["onnx", "torchscript"])
def test_gradients_reach_the_input(prefix, onnx_file, scripted_file):
    embedder = get_embedder(f"{prefix}:{onnx_file if prefix == 'onnx' else scripted_file}")
    chips = torch.full((2, 3, 112, 112), 100.0, requires_grad=True)
    embedder(chips).square().sum().backward()
    assert chips.grad is not None and chips.grad.abs().sum() > 0


def test_options_in_the_name_colour_normalisation_crop_metric(tiny, onnx_file):
    name = f"onnx:{onnx_file}?colour=bgr&mean=100,110,120&std=50&crop=0.25&metric=euclidean"
    embedder = get_embedder(name)
    assert embedder.crop == CropGeometry(112, 0.25) and embedder.metric == "euclidean"
    chips = torch.rand(3, 3, 112, 112) * 255
    with torch.inference_mode():
        features = embedder(chips).numpy()
    np.testing.assert_allclose(features, direct(tiny, chips, (100, 110, 120), 50, bgr=True), atol=1e-5)
    assert embedder.cache_key != get_embedder(f"onnx:{onnx_file}").cache_key
    assert embedder.cache_key.startswith(file_safe_name(name))
    assert get_embedder(f"onnx:{onnx_file}", crop="dlib").crop == CropGeometry(112, 0.25)


def test_timm_architecture_with_a_checkpoint(tmp_path):
    timm = pytest.importorskip("timm")
    network = timm.create_model("test_resnet", pretrained=False, num_classes=32).eval()
    checkpoint = tmp_path / "face.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in network.state_dict().items()}}, checkpoint)
    embedder = get_embedder(f"timm:test_resnet:{checkpoint}?num_classes=32&input_size=96")
    chips = torch.rand(2, 3, 96, 96) * 255
    with torch.inference_mode():
        features = embedder(chips).numpy()
    np.testing.assert_allclose(features, direct(network, chips), atol=1e-5)
    assert get_embedder("timm:test_resnet", weights=str(checkpoint), num_classes=32).cache_key == \
        get_embedder("timm:test_resnet", weights=str(checkpoint), num_classes="32").cache_key
    with pytest.raises(UserError, match=rf"{checkpoint} does not fit timm's test_resnet with num_classes=0"):
        get_embedder(f"timm:test_resnet:{checkpoint}")
    with pytest.raises(UserError, match="needs a checkpoint"):
        get_embedder("timm:test_resnet")
    with pytest.raises(UserError, match="timm cannot build 'no_such_net'"):
        get_embedder(f"timm:no_such_net:{checkpoint}")


def test_bad_files_name_the_file(tmp_path, onnx_file, scripted_file):
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00not a model" * 10)
    with pytest.raises(UserError, match=rf"{garbage} is not a valid ONNX model"):
        get_embedder(f"onnx:{garbage}")
    with pytest.raises(UserError, match=r"ONNX file not found: .*missing\.onnx"):
        get_embedder(f"onnx:{tmp_path / 'missing.onnx'}")
    with pytest.raises(UserError, match=rf"{onnx_file} is not a TorchScript file"):
        get_embedder(f"torchscript:{onnx_file}")
    state_dict = tmp_path / "state.pt"
    torch.save(TinyNet().state_dict(), state_dict)
    with pytest.raises(UserError, match=rf"{state_dict} is not a TorchScript file.*timm:NAME:CHECKPOINT"):
        get_embedder(f"torchscript:{state_dict}")
    with pytest.raises(UserError, match=rf"{scripted_file} is a TorchScript file, not a state dict: use torchscript:"):
        get_embedder(f"timm:test_resnet:{scripted_file}")
    tensor_only = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), tensor_only)
    with pytest.raises(UserError, match=rf"{tensor_only} holds no state dict"):
        get_embedder(f"timm:test_resnet:{tensor_only}")


def test_bad_options_are_user_errors(onnx_file):
    name = f"onnx:{onnx_file}"
    for options, message in [({"colour": "rgba"}, "colour must be rgb or bgr"), ({"metric": "l1"}, "metric must be"),
                             ({"std": "0"}, "std must not be 0"), ({"mean": "1,2"}, "mean must be one number or three"),
                             ({"crop": "wide"}, "crop must be arcface, dlib or a padding"), ({"input_size": "11.5"}, "integer"),
                             ({"backend": "tvm"}, "backend must be 'torch' or 'onnxruntime'"),
                             ({"weights": "x"}, "has no option weights")]:
        with pytest.raises(UserError, match=message):
            get_embedder(name, **options)
    with pytest.raises(UserError, match="given in the name and as an argument"):
        get_embedder(f"{name}?std=1", std=2)


def test_static_onnx_input_size_is_read_and_checked(tiny, tmp_path):
    fixed = export_onnx(tiny, tmp_path / "fixed96.onnx", size=96, dynamic=False)
    pytest.importorskip("onnx2torch", reason="pip install --no-deps onnx2torch==1.5.15")
    assert get_embedder(f"onnx:{fixed}").input_size == (96, 96)
    with pytest.raises(UserError, match=rf"{fixed}: the graph takes 96x96 images, not input_size 112"):
        get_embedder(f"onnx:{fixed}", input_size=112)


def test_wrong_output_shape_is_caught_on_first_use(tmp_path):
    path = tmp_path / "patches.pt"
    torch.jit.script(NotAnEmbedding()).save(str(path))
    embedder = get_embedder(f"torchscript:{path}")
    with pytest.raises(UserError, match=rf"torchscript:{path} \({path}\) returned shape \(2, 3, 2, 2\).*\(N, D\)"):
        embedder(torch.zeros(2, 3, 112, 112))
    with pytest.raises(UserError, match=r"expected chips of shape \(N, 3, 112, 112\), got \(2, 3, 64, 64\)"):
        embedder(torch.zeros(2, 3, 64, 64))


@pytest.mark.data
@pytest.mark.parametrize("prefix", ["onnx", "torchscript"])
def test_real_lfw_faces_through_the_protocol_embedding_path(prefix, tiny, onnx_file, scripted_file, lfw_root):
    """embed_items (MTCNN alignment, loose LFW crops, batching) gives what the network gives on the same chips."""
    from protocols.embedding import FaceItem, embed_items
    from protocols.lfw_files import LFWLayout

    layout = LFWLayout(lfw_root)
    paths = [layout.image_path("George_W_Bush", i) for i in range(1, 7)] + [layout.image_path("Colin_Powell", i) for i in range(1, 3)]
    items = [FaceItem(f"{p.parent.name}/{p.name}", p) for p in paths]
    embedder = get_embedder(f"{prefix}:{onnx_file if prefix == 'onnx' else scripted_file}?crop=0.3&std=64")
    embeddings = embed_items(embedder, items, aligner="mtcnn", batch_size=4, workers=0, use_cache=False, progress=False)
    chips, found = MTCNNAligner().chips([Image.open(p).convert("RGB") for p in paths], CropGeometry(112, 0.3))
    expected = direct(tiny, torch.stack([embedder.transform(chip) for chip in chips]), 127.5, 64)
    assert found.all() and embeddings.features.shape == (8, 16)
    np.testing.assert_allclose(embeddings.features, expected, atol=1e-5)
