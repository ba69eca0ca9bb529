"""AdaFace's IResNet (`adaface:ARCH:PATH`, mk-minchul/AdaFace net.py): sizes from insightface's by the two
differences read in their code, their state-dict names, their subsampling shortcut, a Lightning-style
checkpoint embedding BGR input as the network does, and files of the other naming told apart."""
import argparse

import numpy as np
import pytest
import torch

from bench.common.cli import UserError
from recognition.embedders import get_embedder
from recognition.embedders.adaface import SubsampledBasicBlock, build_adaface
from recognition.embedders.iresnet import build_iresnet
from tests.recognition.test_iresnet import direct

TORCH_THREADS = 2


@pytest.mark.parametrize("architecture, insightface_count", [("r50", 43_590_848), ("r100", 65_156_160)])
def test_size_is_insightfaces_less_two_parts(architecture, insightface_count):
    """net.py's Backbone differs from insightface's IResNet (test_iresnet's counts) in two parameterised parts:
    the first block keeps 64 channels, so its shortcut is MaxPool2d(1, 2), not a 1x1 conv + BN (64*64 + 2*64
    fewer), and the output BatchNorm1d(512, affine=False) has no weight and bias (2*512 fewer)."""
    with torch.device("meta"):
        network = build_adaface(architecture)
    assert sum(p.numel() for p in network.parameters()) == insightface_count - (64 * 64 + 2 * 64) - 2 * 512


def test_state_dict_names_and_shapes_are_adafaces():
    with torch.device("meta"):
        state = build_adaface("r50").state_dict()
    expected = {
        "input_layer.0.weight": (64, 3, 3, 3), "input_layer.1.running_var": (64,), "input_layer.2.weight": (64,),
        "body.0.res_layer.0.weight": (64,), "body.0.res_layer.1.weight": (64, 64, 3, 3), "body.0.res_layer.2.bias": (64,),
        "body.0.res_layer.3.weight": (64,), "body.0.res_layer.4.weight": (64, 64, 3, 3), "body.0.res_layer.5.weight": (64,),
        "body.3.shortcut_layer.0.weight": (128, 64, 1, 1), "body.3.shortcut_layer.1.weight": (128,),
        "body.7.shortcut_layer.0.weight": (256, 128, 1, 1), "body.21.shortcut_layer.0.weight": (512, 256, 1, 1),
        "body.23.res_layer.5.bias": (512,), "output_layer.0.weight": (512,), "output_layer.3.weight": (512, 512 * 7 * 7),
        "output_layer.3.bias": (512,), "output_layer.4.running_mean": (512,), "output_layer.4.num_batches_tracked": (),
    }
    assert {name: tuple(state[name].shape) for name in expected if name in state} == expected
    for absent in ("body.0.shortcut_layer.0.weight", "body.4.shortcut_layer.0.weight", "body.24.res_layer.0.weight",
                   "output_layer.4.weight"):
        assert absent not in state


def test_a_block_that_keeps_its_channels_adds_the_subsampled_input():
    torch.manual_seed(0)
    block = SubsampledBasicBlock(64, 64, stride=2).eval()
    x = torch.randn(1, 64, 8, 8)
    with torch.inference_mode():
        np.testing.assert_allclose(block(x).numpy(), (block.res_layer(x) + x[:, :, ::2, ::2]).numpy(), atol=1e-6)


def test_lightning_checkpoint_embeds_bgr_as_the_network(tmp_path):
    torch.manual_seed(0)
    network = build_adaface("r18")
    for module in network.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-0.1, 0.1)
    network.eval()
    path = tmp_path / "adaface_ir18.ckpt"
    state = {f"model.{k}": v for k, v in network.state_dict().items()} | {"head.kernel": torch.randn(512, 10)}
    torch.save({"epoch": 25, "state_dict": state, "hyper_parameters": {"arch": "ir_18", "head": "adaface"}}, path)
    embedder = get_embedder(f"adaface:r18:{path}")
    assert embedder.config["colour"] == "bgr"
    chips = torch.rand(2, 3, 112, 112) * 255
    with torch.inference_mode():
        features = embedder(chips).numpy()
    np.testing.assert_allclose(features, direct(network, chips, bgr=True), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(features, axis=1), 1, atol=1e-5)
    assert not np.allclose(features, direct(network, chips), atol=1e-3)  # RGB input would give other features
    with pytest.raises(UserError, match=rf"{path} is not a state dict of insightface's IResNet r18: .*use adaface:r18:PATH"):
        get_embedder(f"iresnet:r18:{path}")


def test_other_files_are_user_errors(tmp_path):
    with torch.device("meta"):
        names = list(build_iresnet("r50").state_dict())
    insightface = tmp_path / "backbone.pth"
    torch.save({key: torch.zeros(1) for key in names}, insightface)
    with pytest.raises(UserError, match=rf"{insightface} is not a state dict of AdaFace's IResNet r50: .*use iresnet:r50:PATH"):
        get_embedder(f"adaface:r50:{insightface}")
    pickled = tmp_path / "with-namespace.ckpt"
    torch.save({"state_dict": {"model.x": torch.zeros(1)}, "hparams": argparse.Namespace(arch="ir_50")}, pickled)
    with pytest.raises(UserError, match=rf"{pickled} holds a pickled argparse.Namespace beside the weights"):
        get_embedder(f"adaface:r50:{pickled}")
    with pytest.raises(UserError, match="unknown AdaFace IResNet 'r200'"):
        get_embedder(f"adaface:r200:{insightface}")
