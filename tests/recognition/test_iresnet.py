"""insightface's IResNet (`iresnet:ARCH:PATH`): the architecture counted against insightface's published
figures, their state-dict names and shapes, files saved by a network built here loaded through the
registry (plain, DataParallel's 'module.', wrapped, fp16), embedding real LFW faces as the network
itself does, mismatched files named in one UserError, and the command line on a small .bin of LFW faces."""
import io

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from bench.common.cli import UserError, run_main
from recognition.embedders import get_embedder
from recognition.embedders.iresnet import build_iresnet
from recognition.faces.align import ARCFACE_CROP, MTCNNAligner

TORCH_THREADS = 2
MIB_FLOAT32 = 2**20 / 4  # float32 parameters per MiB


def expected_iresnet_parameters(depths, widths=(64, 128, 256, 512), embedding=512, side=7) -> int:
    """Parameters of insightface's IResNet, counted from arcface_torch/backbones/iresnet.py by hand:
    stem conv1 3x3x3x64 + bn1 (2x64) + prelu (64); per IBasicBlock(in, out): bn1 2*in, conv1 9*in*out, bn2 2*out,
    prelu out, conv2 9*out*out, bn3 2*out, and on each stage's first block (stride 2) downsample = 1x1 conv
    in*out + BN 2*out; then bn2 (2x512), fc (512*7*7 -> 512, with bias), features BatchNorm1d (2x512)."""
    total, channels = 27 * 64 + 2 * 64 + 64, 64
    for width, count in zip(widths, depths):
        for block in range(count):
            cin = channels if block == 0 else width
            total += 2 * cin + 9 * cin * width + 2 * width + width + 9 * width * width + 2 * width
            if block == 0:
                total += cin * width + 2 * width
        channels = width
    return total + 2 * channels + channels * side * side * embedding + embedding + 2 * embedding


def conv_and_linear_macs(network: nn.Module, size: int = 112) -> float:
    """Multiply-accumulates (G) of the convs and linear layers for one image, counted on the meta device."""
    total = [0]

    def count(module, inputs, output):
        if isinstance(module, nn.Conv2d):
            total[0] += output[0].numel() * module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
        elif isinstance(module, nn.Linear):
            total[0] += module.in_features * module.out_features

    hooks = [m.register_forward_hook(count) for m in network.modules()]
    network.eval()(torch.empty(1, 3, size, size, device="meta"))
    for hook in hooks:
        hook.remove()
    return total[0] / 1e9


@pytest.mark.parametrize("architecture, depths, onnx_mib, gflops", [
    ("r18", (2, 2, 2, 2), 91.658, 2.6), ("r50", (3, 4, 14, 3), 166.305, 6.3), ("r100", (3, 13, 30, 3), 248.590, 12.1),
    ("r200", (6, 26, 60, 6), None, 23.5)])
def test_size_and_cost_match_insightface(architecture, depths, onnx_mib, gflops):
    """Parameters equal the hand count above: r50 43,590,848 (~43.6M), r100 65,156,160 (~65.2M). Published
    figures agree: insightface's ONNX files of these networks (challenges/mfr/README.md, 'size(mb)' of the
    MS1MV3 models: float32 weights, MiB) hold within 0.05% as many float32 numbers, and arcface_torch's README
    gives 2.6 / 6.3 / 12.1 / 23.5 GFLOPs (ptflops MACs at 112x112) for r18 / r50 / r100 / r200, which the
    convs and fc alone reach within 1%."""
    with torch.device("meta"):  # shapes only: even r200 is built in milliseconds
        network = build_iresnet(architecture)
    parameters = sum(p.numel() for p in network.parameters())
    assert parameters == expected_iresnet_parameters(depths)
    assert {"r50": 43_590_848, "r100": 65_156_160}.get(architecture, parameters) == parameters
    if onnx_mib is not None:
        assert parameters == pytest.approx(onnx_mib * MIB_FLOAT32, rel=5e-4)
    assert conv_and_linear_macs(network) == pytest.approx(gflops, rel=0.01)


def test_state_dict_names_and_shapes_are_insightfaces():
    """Names and shapes read from arcface_torch/backbones/iresnet.py (IResNet, IBasicBlock, _make_layer) for r50."""
    with torch.device("meta"):
        state = build_iresnet("r50").state_dict()
    expected = {
        "conv1.weight": (64, 3, 3, 3), "bn1.weight": (64,), "bn1.running_var": (64,), "prelu.weight": (64,),
        "layer1.0.bn1.weight": (64,), "layer1.0.conv1.weight": (64, 64, 3, 3), "layer1.0.bn2.bias": (64,),
        "layer1.0.prelu.weight": (64,), "layer1.0.conv2.weight": (64, 64, 3, 3), "layer1.0.bn3.running_mean": (64,),
        "layer1.0.downsample.0.weight": (64, 64, 1, 1), "layer1.0.downsample.1.weight": (64,),
        "layer2.0.conv1.weight": (128, 64, 3, 3), "layer2.0.downsample.0.weight": (128, 64, 1, 1),
        "layer3.13.conv2.weight": (256, 256, 3, 3), "layer4.2.bn3.weight": (512,), "bn2.weight": (512,),
        "fc.weight": (512, 512 * 7 * 7), "fc.bias": (512,), "features.weight": (512,), "features.bias": (512,),
        "features.running_mean": (512,), "features.num_batches_tracked": (),
    }
    assert {name: tuple(state[name].shape) for name in expected if name in state} == expected
    assert "layer1.1.downsample.0.weight" not in state and "layer3.14.conv1.weight" not in state
    # stem 7 + 24 blocks x 18 (three BNs of 5, two convs, a PReLU) + 4 downsamples x 6 + tail 12 (bn2 5, fc 2, features 5)
    assert len(state) == 7 + 24 * 18 + 4 * 6 + 12


def trained_looking(seed: int = 0) -> nn.Module:
    """An r18 with random weights and BN statistics (so a file that failed to load would show)."""
    torch.manual_seed(seed)
    network = build_iresnet("r18")
    for module in network.modules():
        if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
            module.weight.data.uniform_(0.5, 1.5)
    return network.eval()


@pytest.fixture(scope="module")
def r18():
    return trained_looking()


@pytest.fixture(scope="module")
def r18_file(r18, tmp_path_factory):
    path = tmp_path_factory.mktemp("iresnet") / "backbone.pth"
    torch.save(r18.state_dict(), path)
    return path


def direct(network: nn.Module, chips_0_255: torch.Tensor, bgr: bool = False) -> np.ndarray:
    """insightface's preprocessing by hand: (x / 255 - 0.5) / 0.5 of RGB (or BGR) chips."""
    x = chips_0_255.flip(1) if bgr else chips_0_255
    with torch.inference_mode():
        return network((x / 255 - 0.5) / 0.5).numpy()


def test_saved_state_dicts_load_in_every_wrapping(r18, r18_file, tmp_path):
    embedder = get_embedder(f"iresnet:r18:{r18_file}")
    assert embedder.crop == ARCFACE_CROP and embedder.metric == "cosine" and embedder.input_size == (112, 112)
    chips = torch.rand(2, 3, 112, 112) * 255
    expected = direct(r18, chips)
    with torch.inference_mode():
        np.testing.assert_allclose(embedder(chips).numpy(), expected, rtol=1e-4, atol=1e-4)
    state = r18.state_dict()
    for label, content in [("dataparallel", {f"module.{k}": v for k, v in state.items()}),
                           ("arcface-checkpoint", {"epoch": 3, "state_dict_backbone": state, "state_optimizer": {}}),
                           ("fp16", {k: v.half() if v.is_floating_point() else v for k, v in state.items()})]:
        torch.save(content, tmp_path / f"{label}.pth")
        wrapped = get_embedder("iresnet:r18", weights=str(tmp_path / f"{label}.pth"))
        with torch.inference_mode():
            features = wrapped(chips).numpy()
        tolerance = 0.05 if label == "fp16" else 1e-4  # weights rounded to half precision
        cosine = (features * expected).sum(1) / np.linalg.norm(features, axis=1) / np.linalg.norm(expected, axis=1)
        assert cosine.min() > 1 - tolerance, label
        if label != "fp16":
            np.testing.assert_allclose(features, expected, rtol=1e-4, atol=1e-4)
    assert get_embedder(f"iresnet:r18:{r18_file}?colour=bgr").cache_key != embedder.cache_key


def test_cache_key_follows_the_files_content(r18, tmp_path):
    path = tmp_path / "backbone.pth"
    torch.save(r18.state_dict(), path)
    first = get_embedder(f"iresnet:r18:{path}").cache_key
    torch.save(trained_looking(seed=1).state_dict(), path)
    assert get_embedder(f"iresnet:r18:{path}").cache_key != first


def test_wrong_files_and_names_are_user_errors(r18_file, tmp_path):
    with pytest.raises(UserError, match=rf"{r18_file} is not a state dict of insightface's IResNet r34: "
                                        rf"missing: layer1\.2\.bn1\.weight.*use iresnet:r18:PATH"):
        get_embedder(f"iresnet:r34:{r18_file}")
    adaface_like = tmp_path / "adaface.ckpt"
    torch.save({"input_layer.0.weight": torch.zeros(64, 3, 3, 3), "body.0.res_layer.0.weight": torch.zeros(64)}, adaface_like)
    with pytest.raises(UserError, match=rf"{adaface_like} is not a state dict of insightface's IResNet r50: .*AdaFace"):
        get_embedder(f"iresnet:r50:{adaface_like}")
    with pytest.raises(UserError, match="unknown IResNet 'r99'; insightface's are r18, r34, r50, r100, r200"):
        get_embedder(f"iresnet:r99:{r18_file}")
    with pytest.raises(UserError, match=r"iresnet:r50 needs a weights file: iresnet:ARCH:PATH"):
        get_embedder("iresnet:r50")
    with pytest.raises(UserError, match=r"checkpoint file not found: .*missing\.pth"):
        get_embedder(f"iresnet:r50:{tmp_path / 'missing.pth'}")
    with pytest.raises(UserError, match="takes 112x112 images only"):
        get_embedder(f"iresnet:r18:{r18_file}?input_size=96")


def lfw_photos(root, count: int):
    from protocols.lfw_files import LFWLayout

    layout = LFWLayout(root)
    names = [("George_W_Bush", 1), ("George_W_Bush", 2), ("Colin_Powell", 1), ("Tony_Blair", 1),
             ("Colin_Powell", 2), ("Tony_Blair", 2), ("Donald_Rumsfeld", 1), ("Donald_Rumsfeld", 2)]
    return [layout.image_path(name, index) for name, index in names[:count]]


@pytest.mark.data
def test_real_lfw_faces_embed_as_the_network_does(r18, r18_file, lfw_root):
    """embed_items (MTCNN to ArcFace's crop, batching) through get_embedder gives what the module gives on the chips."""
    from protocols.embedding import FaceItem, embed_items

    paths = lfw_photos(lfw_root, 4)
    embedder = get_embedder(f"iresnet:r18:{r18_file}")
    embeddings = embed_items(embedder, [FaceItem(f"{p.parent.name}/{p.name}", p) for p in paths], aligner="mtcnn",
                             batch_size=4, workers=0, use_cache=False, progress=False)
    chips, found = MTCNNAligner().chips([Image.open(p).convert("RGB") for p in paths], ARCFACE_CROP)
    expected = direct(r18, torch.stack([torch.from_numpy(np.asarray(c, dtype=np.float32)).permute(2, 0, 1) for c in chips]))
    assert found.all() and embeddings.features.shape == (4, 512)
    np.testing.assert_allclose(embeddings.features, expected, rtol=1e-4, atol=1e-4)
    assert not np.allclose(embeddings.features[0], embeddings.features[2], atol=1e-2)  # two people, two features


@pytest.fixture(scope="module")
def small_bin(lfw_root, tmp_path_factory):
    """A .bin in insightface's layout of 10 pairs over 8 LFW photos, centre-cropped (not aligned: the command
    line's path is what is tested, not accuracy)."""
    from protocols.verification_files import write_bin

    faces = []
    for path in lfw_photos(lfw_root, 8):
        with Image.open(path) as photo:
            buffer = io.BytesIO()
            photo.convert("RGB").crop((69, 69, 181, 181)).save(buffer, format="JPEG", quality=95)
            faces.append(buffer.getvalue())
    pairs = [(0, 1), (2, 4), (3, 5), (6, 7), (0, 2), (1, 3), (4, 6), (5, 7), (0, 7), (2, 3)]
    return write_bin(tmp_path_factory.mktemp("bin") / "lfw.bin", [faces[i] for pair in pairs for i in pair],
                     [True] * 4 + [False] * 6)


@pytest.mark.data
def test_command_line_runs_and_names_a_wrong_file(small_bin, r18_file, tmp_path, capsys):
    from protocols.verification import main

    run = ["--bin", str(small_bin), "--no-flip", "--workers", "0", "--no-cache", "--out", str(tmp_path / "out")]
    assert main(run + ["--embedder", f"iresnet:r18:{r18_file}"]) == 0
    report = (tmp_path / "out" / "metrics.md").read_text()
    assert "insightface_accuracy_percent" in report and f"iresnet:r18:{r18_file}" in report
    with pytest.raises(SystemExit) as stopped:
        run_main(main, run + ["--embedder", "iresnet:r34", "--weights", str(r18_file)])
    error = capsys.readouterr().err
    assert stopped.value.code == 2 and f"{r18_file} is not a state dict of insightface's IResNet r34" in error
    assert "Traceback" not in error
