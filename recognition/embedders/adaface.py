"""AdaFace's IResNet (mk-minchul/AdaFace `net.py`, IR_18 ... IR_101), to embed with the checkpoints they release.

    python -m protocols.lfw --embedder adaface:r100:/models/adaface_ir101_webface12m.ckpt

AdaFace trains the same family of improved residual networks as insightface (`recognition.embedders.iresnet`)
under other names and with two differences in the network: where a block keeps its channels, the
shortcut is the input subsampled by its stride (a 1x1 max-pool; so the first block of the first stage
has no shortcut conv), and the final BatchNorm1d has no affine parameters; their forward returns the
L2-normalised features (and the norm, dropped here). Names and shapes are theirs, so their state dicts
load with strict=True: `input_layer` (conv, BN, PReLU), `body.N` (blocks in order; `res_layer` 0..5 =
BN, conv3x3, BN, PReLU, strided conv3x3, BN, and `shortcut_layer` 0..1 = strided 1x1 conv, BN where the
channels change), `output_layer` (0: BN2d, 3: Linear 7x7x512 -> 512, 4: BatchNorm1d without affine).

Their released checkpoints are PyTorch Lightning `.ckpt` files: the state dict under 'state_dict', the
network's keys prefixed 'model.' beside the margin head's ('head.kernel', dropped). Their networks take
**BGR** crops (cv2 order) aligned to the 112x112 ArcFace template, (x / 255 - 0.5) / 0.5: colour
defaults to bgr here; other options as for `iresnet:`. `adaface:ARCH:PATH` or `adaface:ARCH` with
`weights=PATH` (`--weights`); ARCH is r18, r34, r50 or r100 (their IR_101). Nothing is downloaded.
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
FINAL_SIDE = 7
EMBEDDING_SIZE = 512
ARCHITECTURES = ("r18", "r34", "r50", "r100")  # AdaFace's basic-block IRs (their 152 and 200 use bottlenecks)
LIGHTNING_PREFIX = "model."  # their LightningModule keeps the backbone as `self.model`
USAGE = "adaface:ARCH:PATH"


class SubsampledBasicBlock(nn.Module):
    """BN -> 3x3 conv -> BN -> PReLU -> 3x3 conv (`stride`) -> BN in `res_layer`, plus `shortcut_layer`: the
    input subsampled by `stride` when the channels stay, else a strided 1x1 conv and BN (AdaFace's BasicBlockIR)."""

    def __init__(self, channels_in: int, channels_out: int, stride: int):
        super().__init__()
        if channels_in == channels_out:
            self.shortcut_layer = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(nn.Conv2d(channels_in, channels_out, 1, stride=stride, bias=False),
                                                nn.BatchNorm2d(channels_out))
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(channels_in), nn.Conv2d(channels_in, channels_out, 3, stride=1, padding=1, bias=False),
            nn.BatchNorm2d(channels_out), nn.PReLU(channels_out),
            nn.Conv2d(channels_out, channels_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(channels_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


class AdaFaceIResNet(nn.Module):
    """(N, 3, 112, 112) normalised BGR -> (N, 512) unit-length features; `depths` = blocks per stage."""

    def __init__(self, depths: tuple[int, int, int, int], embedding_size: int = EMBEDDING_SIZE):
        super().__init__()
        self.input_layer = nn.Sequential(nn.Conv2d(3, STAGE_WIDTHS[0], 3, stride=1, padding=1, bias=False),
                                         nn.BatchNorm2d(STAGE_WIDTHS[0]), nn.PReLU(STAGE_WIDTHS[0]))
        blocks, channels = [], STAGE_WIDTHS[0]
        for width, count in zip(STAGE_WIDTHS, depths):
            blocks += [SubsampledBasicBlock(channels if i == 0 else width, width, 2 if i == 0 else 1) for i in range(count)]
            channels = width
        self.body = nn.Sequential(*blocks)
        self.output_layer = nn.Sequential(nn.BatchNorm2d(channels), nn.Dropout(0.4), nn.Flatten(),
                                          nn.Linear(channels * FINAL_SIDE * FINAL_SIDE, embedding_size),
                                          nn.BatchNorm1d(embedding_size, affine=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.output_layer(self.body(self.input_layer(x)))
        return features / torch.linalg.vector_norm(features, dim=1, keepdim=True)


def build_adaface(architecture: str) -> AdaFaceIResNet:
    """AdaFace's named IR ('r18' ... 'r100'), randomly initialised."""
    if architecture not in ARCHITECTURES:
        raise UserError(f"unknown AdaFace IResNet '{architecture}'; theirs are {', '.join(ARCHITECTURES)} "
                        f"(r100 is their IR_101)")
    return AdaFaceIResNet(IRESNET_DEPTHS[architecture])


def backbone_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The backbone's tensors of a Lightning checkpoint's state dict ('model.' keys, the head dropped), else `state`."""
    if not any(key.startswith(LIGHTNING_PREFIX) for key in state):
        return state
    return {key.removeprefix(LIGHTNING_PREFIX): value for key, value in state.items() if key.startswith(LIGHTNING_PREFIX)}


@register_embedder_prefix("adaface", USAGE)
def adaface_embedder(target: str, weights: str | None = None, input_size: Any = None, mean: Any = 127.5,
                     std: Any = 127.5, colour: str = "bgr", crop: Any = "arcface", metric: str = "cosine") -> ExternalEmbedder:
    architecture, file = checkpoint_argument(target, weights, USAGE)
    return released_embedder(build_adaface(architecture), backbone_state(read_state_dict(file)), file,
                             f"adaface:{target}", f"AdaFace's IResNet {architecture}", INPUT_SIZE, input_size,
                             mean=mean, std=std, colour=colour, crop=crop, metric=metric, kind="adaface",
                             architecture=architecture)
