"""insightface's MobileFaceNet (arcface_torch `get_mbf`), to embed with the state dicts they release.

    python -m protocols.lfw --embedder mobilefacenet:/models/ms1mv3_mbf/backbone.pth

The network of insightface's `recognition/arcface_torch/backbones/mobilefacenet.py` (MIT; adapted there
from cavaface), written again here with its parameter and buffer names and shapes, so that a released
`backbone.pth` loads with strict=True. `get_mbf`'s configuration: width scale 2, blocks (1, 4, 6, 2):
a strided 3x3 stem to 128 channels at 56x56 and a grouped 3x3 conv; three strided inverted-bottleneck
stages ("DepthWise": 1x1 expand -> depthwise 3x3 -> linear 1x1 projection) each followed by residual
repeats at the same width (128, 256, 256 channels at 28, 14, 7 pixels); a 1x1 conv to 512; then the
global depthwise conv (GDC): a 7x7 depthwise conv, flatten, a bias-free linear to 512 and a BatchNorm1d.
About 0.45 GFLOPs (insightface's "mobilefacenet-0.45G"). Inputs and options as for `iresnet:`: RGB
crops aligned to ArcFace's 112x112 template, (x / 255 - 0.5) / 0.5, cosine; the name is
`mobilefacenet:PATH`. The weights are the user's; nothing is downloaded.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from recognition.embedders.own_model import (ExternalEmbedder, model_file, read_state_dict, released_embedder)
from recognition.embedders.registry import register_embedder_prefix

INPUT_SIZE = 112
EMBEDDING_SIZE = 512
SCALE = 2  # get_mbf's width multiplier
REPEATS = (1, 4, 6, 2)  # get_mbf's blocks: stem repeats, then residual repeats after each strided stage
USAGE = "mobilefacenet:PATH"


class ConvUnit(nn.Module):
    """conv (no bias) -> BN [-> PReLU] in `layers` (insightface's ConvBlock; LinearBlock without the PReLU)."""

    def __init__(self, channels_in: int, channels_out: int, kernel: int = 1, stride: int = 1, groups: int = 1,
                 prelu: bool = True):
        super().__init__()
        padding = 1 if kernel == 3 else 0  # 3x3 convs keep the side (before striding); 1x1 and the 7x7 head need none
        self.layers = nn.Sequential(nn.Conv2d(channels_in, channels_out, kernel, stride=stride, padding=padding,
                                              groups=groups, bias=False),
                                    nn.BatchNorm2d(channels_out), *([nn.PReLU(channels_out)] if prelu else []))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class InvertedBottleneck(nn.Module):
    """1x1 conv to `expanded` channels -> depthwise 3x3 (`stride`) -> linear 1x1 to `channels_out`, plus the
    input when `residual` (insightface's DepthWise, whose `groups` is the expanded width)."""

    def __init__(self, channels_in: int, channels_out: int, expanded: int, stride: int, residual: bool):
        super().__init__()
        self.residual = residual
        self.layers = nn.Sequential(ConvUnit(channels_in, expanded), ConvUnit(expanded, expanded, 3, stride, groups=expanded),
                                    ConvUnit(expanded, channels_out, prelu=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.layers(x) if self.residual else self.layers(x)


class ResidualStage(nn.Module):
    """`count` residual inverted bottlenecks at one width in `layers` (insightface's Residual)."""

    def __init__(self, channels: int, expanded: int, count: int):
        super().__init__()
        self.layers = nn.Sequential(*(InvertedBottleneck(channels, channels, expanded, 1, True) for _ in range(count)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class GlobalDepthwiseHead(nn.Module):
    """7x7 depthwise conv + BN, flatten, bias-free linear, BatchNorm1d (the GDC head)."""

    def __init__(self, channels: int, embedding_size: int):
        super().__init__()
        self.layers = nn.Sequential(ConvUnit(channels, channels, 7, groups=channels, prelu=False), nn.Flatten(),
                                    nn.Linear(channels, embedding_size, bias=False), nn.BatchNorm1d(embedding_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class MobileFaceNet(nn.Module):
    """(N, 3, 112, 112) normalised RGB -> (N, 512) features; `get_mbf`'s configuration."""

    def __init__(self, embedding_size: int = EMBEDDING_SIZE):
        super().__init__()
        narrow, wide = 64 * SCALE, 128 * SCALE
        if REPEATS[0] != 1:
            raise ValueError("only get_mbf's single stem block is written here")
        self.layers = nn.ModuleList([
            ConvUnit(3, narrow, 3, stride=2),
            ConvUnit(narrow, narrow, 3, groups=64),
            InvertedBottleneck(narrow, narrow, 128, stride=2, residual=False),
            ResidualStage(narrow, 128, REPEATS[1]),
            InvertedBottleneck(narrow, wide, 256, stride=2, residual=False),
            ResidualStage(wide, 256, REPEATS[2]),
            InvertedBottleneck(wide, wide, 512, stride=2, residual=False),
            ResidualStage(wide, 256, REPEATS[3]),
        ])
        self.conv_sep = ConvUnit(wide, 512)
        self.features = GlobalDepthwiseHead(512, embedding_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return self.features(self.conv_sep(x))


@register_embedder_prefix("mobilefacenet", USAGE)
def mobilefacenet_embedder(target: str, input_size: Any = None, mean: Any = 127.5, std: Any = 127.5,
                           colour: str = "rgb", crop: Any = "arcface", metric: str = "cosine") -> ExternalEmbedder:
    file = model_file(target, "checkpoint")
    return released_embedder(MobileFaceNet(), read_state_dict(file), file, f"mobilefacenet:{target}",
                             "insightface's MobileFaceNet (get_mbf)", INPUT_SIZE, input_size, mean=mean, std=std,
                             colour=colour, crop=crop, metric=metric, kind="mobilefacenet")
