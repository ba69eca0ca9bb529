"""insightface's MobileFaceNet (`mobilefacenet:PATH`, arcface_torch's get_mbf): its size and cost against a
hand count and insightface's published FLOPs, their state-dict names and shapes, a saved file embedding as
the network does, and files of other architectures named in a UserError that says which name fits."""
import numpy as np
import pytest
import torch

from bench.common.cli import UserError
from recognition.embedders import get_embedder
from recognition.embedders.iresnet import build_iresnet
from recognition.embedders.mobilefacenet import MobileFaceNet
from tests.recognition.test_iresnet import conv_and_linear_macs, direct

TORCH_THREADS = 2


def conv_unit(cin, cout, kernel=1, groups=1, prelu=True) -> int:
    """ConvBlock / LinearBlock of arcface_torch/backbones/mobilefacenet.py: bias-free conv, BN (2 per channel), PReLU."""
    return cin // groups * cout * kernel * kernel + 2 * cout + (cout if prelu else 0)


def depthwise(cin, cout, expanded) -> int:
    """Their DepthWise: 1x1 ConvBlock to `groups` channels, depthwise 3x3 ConvBlock, 1x1 LinearBlock."""
    return conv_unit(cin, expanded) + conv_unit(expanded, expanded, 3, expanded) + conv_unit(expanded, cout, prelu=False)


def test_size_and_cost_match_insightface():
    """get_mbf (scale 2, blocks 1, 4, 6, 2) counted by hand from their MobileFaceNet.__init__: 2,059,520 parameters;
    arcface_torch's README calls it 'mobilefacenet-0.45G' (ptflops at 112x112, which also counts BN and PReLU):
    the convs and linear layer alone come to 0.4375 G, within 3% below."""
    expected = (conv_unit(3, 128, 3) + conv_unit(128, 128, 3, 64)
                + depthwise(128, 128, 128) + 4 * depthwise(128, 128, 128)
                + depthwise(128, 256, 256) + 6 * depthwise(256, 256, 256)
                + depthwise(256, 256, 512) + 2 * depthwise(256, 256, 256)
                + conv_unit(256, 512) + conv_unit(512, 512, 7, 512, prelu=False) + 512 * 512 + 2 * 512)
    with torch.device("meta"):
        network = MobileFaceNet()
    assert sum(p.numel() for p in network.parameters()) == expected == 2_059_520
    assert 0.97 * 0.45 < conv_and_linear_macs(network) < 0.45


def test_state_dict_names_and_shapes_are_insightfaces():
    with torch.device("meta"):
        state = MobileFaceNet().state_dict()
    expected = {
        "layers.0.layers.0.weight": (128, 3, 3, 3), "layers.0.layers.1.running_mean": (128,), "layers.0.layers.2.weight": (128,),
        "layers.1.layers.0.weight": (128, 2, 3, 3),  # ConvBlock(128, 128, groups=64)
        "layers.2.layers.0.layers.0.weight": (128, 128, 1, 1), "layers.2.layers.1.layers.0.weight": (128, 1, 3, 3),
        "layers.2.layers.2.layers.1.weight": (128,), "layers.3.layers.3.layers.2.layers.0.weight": (128, 128, 1, 1),
        "layers.4.layers.0.layers.0.weight": (256, 128, 1, 1), "layers.4.layers.2.layers.0.weight": (256, 256, 1, 1),
        "layers.5.layers.5.layers.1.layers.2.weight": (256,), "layers.6.layers.0.layers.0.weight": (512, 256, 1, 1),
        "layers.7.layers.1.layers.2.layers.0.weight": (256, 256, 1, 1), "conv_sep.layers.0.weight": (512, 256, 1, 1),
        "conv_sep.layers.2.weight": (512,), "features.layers.0.layers.0.weight": (512, 1, 7, 7),
        "features.layers.0.layers.1.bias": (512,), "features.layers.2.weight": (512, 512),
        "features.layers.3.weight": (512,), "features.layers.3.num_batches_tracked": (),
    }
    assert {name: tuple(state[name].shape) for name in expected if name in state} == expected
    assert "layers.2.layers.2.layers.2.weight" not in state and "features.layers.2.bias" not in state
    assert "layers.3.layers.4.layers.0.layers.0.weight" not in state and "layers.7.layers.2.layers.0.layers.0.weight" not in state


def test_a_saved_file_embeds_as_the_network_and_others_are_named(tmp_path):
    torch.manual_seed(0)
    network = MobileFaceNet()
    for module in network.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-0.1, 0.1)
    network.eval()
    path = tmp_path / "backbone.pth"
    torch.save({f"module.{k}": v for k, v in network.state_dict().items()}, path)
    embedder = get_embedder(f"mobilefacenet:{path}")
    chips = torch.rand(3, 3, 112, 112) * 255
    with torch.inference_mode():
        np.testing.assert_allclose(embedder(chips).numpy(), direct(network, chips), rtol=1e-4, atol=1e-4)
    with pytest.raises(UserError, match=rf"{path} is not a state dict of insightface's IResNet r50: .*use mobilefacenet:PATH"):
        get_embedder(f"iresnet:r50:{path}")
    with torch.device("meta"):
        r18_state = build_iresnet("r18").state_dict()
    r18_file = tmp_path / "r18-shapes.pth"  # names and shapes are what the message reads: tiny stand-in tensors
    torch.save({key: torch.zeros(1) for key in r18_state}, r18_file)
    with pytest.raises(UserError, match=rf"{r18_file} is not a state dict of insightface's MobileFaceNet .*"
                                        r"missing: layers\.0\.layers\.0\.weight.*use iresnet:r18:PATH"):
        get_embedder(f"mobilefacenet:{r18_file}")
