"""insightface's IResNet (r18, r34, r50, r100, r200), to embed with the state dicts they and others release.

    python -m protocols.lfw --embedder iresnet:r100:/models/ms1mv3_arcface_r100_fp16/backbone.pth
    get_embedder("iresnet:r50", weights="/models/glint360k_r50/backbone.pth")

The network of insightface's `recognition/arcface_torch/backbones/iresnet.py` (MIT), written again here
with its parameter and buffer names and shapes, so that a `backbone.pth` loads with strict=True: a 3x3
stem (conv1, bn1, prelu) at 112x112, four stages (layer1..layer4, 64/128/256/512 channels, each halving
the side with its first block) of "improved" residual blocks (BN -> conv3x3 -> BN -> PReLU -> strided
conv3x3 -> BN, no activation after the sum), then bn2 on the 7x7x512 map, flatten, fc to 512 and a
BatchNorm1d (`features`). The released models take RGB crops aligned to ArcFace's 112x112 five-point
template, normalised as (x / 255 - 0.5) / 0.5, and are compared by cosine: the defaults here.

The name is `iresnet:ARCH:PATH` (or `iresnet:ARCH` with `weights=PATH`, i.e. `--weights`), options
after '?' as for every bring-your-own model (`recognition.embedders.external`): mean, std, colour,
crop, metric; input_size is 112 only. A checkpoint saved from DataParallel ('module.') or holding the
state dict under a key ('state_dict', 'state_dict_backbone', 'model') loads too; a file of another
architecture or size is a UserError naming the file, the first mismatching parameters and, when it can
tell, the name that fits. Nothing is downloaded: insightface's released weights are for
non-commercial research only, and the user brings them.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from bench.common.cli import UserError
from recognition.embedders.own_model import (IRESNET_DEPTHS, ExternalEmbedder, checkpoint_argument, read_state_dict,
                                             released_embedder)
from recognition.embedders.registry import register_embedder_prefix

INPUT_SIZE = 112
STAGE_WIDTHS = (64, 128, 256, 512)
FINAL_SIDE = INPUT_SIZE // 2 ** len(STAGE_WIDTHS)  # 7: each stage halves the side
EMBEDDING_SIZE = 512
BN_EPS = 1e-5
USAGE = "iresnet:ARCH:PATH"


class ImprovedBasicBlock(nn.Module):
    """BN -> 3x3 conv -> BN -> PReLU -> 3x3 conv (`stride`) -> BN, added to the input, which a strided 1x1
    conv and BN (`downsample`) bring to the output's shape when it changes. insightface's IBasicBlock."""

    def __init__(self, channels_in: int, channels_out: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(channels_in, eps=BN_EPS)
        self.conv1 = nn.Conv2d(channels_in, channels_out, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels_out, eps=BN_EPS)
        self.prelu = nn.PReLU(channels_out)
        self.conv2 = nn.Conv2d(channels_out, channels_out, 3, stride=stride, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(channels_out, eps=BN_EPS)
        self.downsample = None
        if stride != 1 or channels_in != channels_out:
            self.downsample = nn.Sequential(nn.Conv2d(channels_in, channels_out, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(channels_out, eps=BN_EPS))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return residual + (x if self.downsample is None else self.downsample(x))


class IResNet(nn.Module):
    """(N, 3, 112, 112) normalised RGB -> (N, 512) features; `depths` = blocks in each of the four stages."""

    def __init__(self, depths: tuple[int, int, int, int], embedding_size: int = EMBEDDING_SIZE):
        super().__init__()
        self.depths = tuple(depths)
        self.conv1 = nn.Conv2d(3, STAGE_WIDTHS[0], 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(STAGE_WIDTHS[0], eps=BN_EPS)
        self.prelu = nn.PReLU(STAGE_WIDTHS[0])
        channels = STAGE_WIDTHS[0]
        for stage, (width, count) in enumerate(zip(STAGE_WIDTHS, self.depths), start=1):
            blocks = [ImprovedBasicBlock(channels if i == 0 else width, width, 2 if i == 0 else 1) for i in range(count)]
            self.add_module(f"layer{stage}", nn.Sequential(*blocks))
            channels = width
        self.bn2 = nn.BatchNorm2d(channels, eps=BN_EPS)
        self.fc = nn.Linear(channels * FINAL_SIDE * FINAL_SIDE, embedding_size)
        self.features = nn.BatchNorm1d(embedding_size, eps=BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.features(self.fc(torch.flatten(self.bn2(x), 1)))


def build_iresnet(architecture: str) -> IResNet:
    """insightface's named IResNet ('r18' ... 'r200'), randomly initialised."""
    if architecture not in IRESNET_DEPTHS:
        raise UserError(f"unknown IResNet '{architecture}'; insightface's are {', '.join(IRESNET_DEPTHS)}")
    return IResNet(IRESNET_DEPTHS[architecture])


@register_embedder_prefix("iresnet", USAGE)
def iresnet_embedder(target: str, weights: str | None = None, input_size: Any = None, mean: Any = 127.5,
                     std: Any = 127.5, colour: str = "rgb", crop: Any = "arcface", metric: str = "cosine") -> ExternalEmbedder:
    architecture, file = checkpoint_argument(target, weights, USAGE)
    return released_embedder(build_iresnet(architecture), read_state_dict(file), file, f"iresnet:{target}",
                             f"insightface's IResNet {architecture}", INPUT_SIZE, input_size, mean=mean, std=std,
                             colour=colour, crop=crop, metric=metric, kind="iresnet", architecture=architecture)
