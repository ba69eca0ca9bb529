"""The translator's networks: G (synthetic -> realistic), G' (realistic -> synthetic), BEGAN discriminators.

G follows the shallow ResNet of the paper (Sec. 4, after CycleGAN's generator): c7s1-32, d64, d128,
three residual blocks, u64, u32, c7s1-3 with tanh; batch norm; dropout with keep rate 0.9 after each
block; skip connections u64 + d64 and u32 + c7s1 (added). G' is the same trunk without dropout or
skips (the paper's "3DMM fitting network"). D_R and D_S are BEGAN autoencoders (Berthelot et al.,
2017): ELU convolutions, `width` hidden channels growing by `width` per level, a fully connected
bottleneck of `bottleneck` units, a mirrored decoder; the number of levels comes from the image size
(halving down to at most 8x8). Images are in [-1, 1]; every size and width comes from `NetworkConfig`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class NetworkConfig:
    image_size: int = 108
    generator_width: int = 32  # c7s1-32; d64 and d128 are 2x and 4x
    residual_blocks: int = 3
    dropout: float = 0.1  # keep rate 0.9
    discriminator_width: int = 64
    bottleneck: int = 64


def _conv_bn_relu(in_channels: int, out_channels: int, kernel: int, stride: int = 1) -> nn.Sequential:
    """Conv, batch norm, ReLU; 7x7 convolutions pad by reflection (CycleGAN's c7s1), others by zeros."""
    padding_mode = "reflect" if kernel == 7 else "zeros"
    conv = nn.Conv2d(in_channels, out_channels, kernel, stride, kernel // 2, padding_mode=padding_mode)
    return nn.Sequential(conv, nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, 1, 1, padding_mode="reflect"), nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, 1, 1, padding_mode="reflect"), nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Translator(nn.Module):
    """G (`skips=True`, dropout) or G' (`skips=False`, no dropout): an image-to-image ResNet."""

    def __init__(self, config: NetworkConfig, skips: bool, dropout: float):
        super().__init__()
        w = config.generator_width
        self.skips = skips
        self.stem = _conv_bn_relu(3, w, 7)  # c7s1-32
        self.down1 = _conv_bn_relu(w, 2 * w, 3, 2)  # d64
        self.down2 = _conv_bn_relu(2 * w, 4 * w, 3, 2)  # d128
        self.blocks = nn.ModuleList(ResidualBlock(4 * w) for _ in range(config.residual_blocks))
        self.up1 = nn.Sequential(nn.ConvTranspose2d(4 * w, 2 * w, 3, 2, 1, output_padding=1),
                                 nn.BatchNorm2d(2 * w), nn.ReLU(inplace=True))  # u64
        self.up2 = nn.Sequential(nn.ConvTranspose2d(2 * w, w, 3, 2, 1, output_padding=1),
                                 nn.BatchNorm2d(w), nn.ReLU(inplace=True))  # u32
        self.head = nn.Conv2d(w, 3, 7, 1, 3, padding_mode="reflect")  # c7s1-3
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stem = self.dropout(self.stem(x))
        down1 = self.dropout(self.down1(stem))
        h = self.dropout(self.down2(down1))
        for block in self.blocks:
            h = self.dropout(block(h))
        up1 = self.up1(h)[..., : down1.shape[-2], : down1.shape[-1]]  # odd sizes: crop the transposed conv
        if self.skips:
            up1 = up1 + down1
        up2 = self.up2(self.dropout(up1))[..., : stem.shape[-2], : stem.shape[-1]]
        if self.skips:
            up2 = up2 + stem
        return torch.tanh(self.head(self.dropout(up2)))


def make_generator(config: NetworkConfig) -> Translator:
    """G: synthetic -> realistic, with skips and dropout."""
    return Translator(config, skips=True, dropout=config.dropout)


def make_fitting_network(config: NetworkConfig) -> Translator:
    """G': realistic -> synthetic, the same trunk without dropout or skips."""
    return Translator(config, skips=False, dropout=0.0)


def _encoder_sizes(image_size: int) -> list[int]:
    """Spatial sizes from the image down to at most 8 by stride-2 convolutions (padding 1)."""
    sizes = [image_size]
    while sizes[-1] > 8:
        sizes.append((sizes[-1] - 1) // 2 + 1)
    return sizes


class BeganDiscriminator(nn.Module):
    """BEGAN's autoencoder: D(y) reconstructs y; its L1 reconstruction error is the adversarial signal."""

    def __init__(self, config: NetworkConfig):
        super().__init__()
        n, sizes = config.discriminator_width, _encoder_sizes(config.image_size)
        self.sizes = sizes
        levels = len(sizes) - 1
        encoder: list[nn.Module] = [nn.Conv2d(3, n, 3, 1, 1), nn.ELU()]
        for level in range(levels + 1):
            channels = n * (level + 1)
            encoder += [nn.Conv2d(channels, channels, 3, 1, 1), nn.ELU(), nn.Conv2d(channels, channels, 3, 1, 1), nn.ELU()]
            if level < levels:
                encoder += [nn.Conv2d(channels, n * (level + 2), 3, 2, 1), nn.ELU()]
        self.encoder = nn.Sequential(*encoder)
        self.bottom_channels = n * (levels + 1)
        self.to_code = nn.Linear(self.bottom_channels * sizes[-1] ** 2, config.bottleneck)
        self.from_code = nn.Linear(config.bottleneck, n * sizes[-1] ** 2)
        self.decoder_levels = nn.ModuleList(
            nn.Sequential(nn.Conv2d(n, n, 3, 1, 1), nn.ELU(), nn.Conv2d(n, n, 3, 1, 1), nn.ELU()) for _ in range(levels + 1))
        self.to_image = nn.Conv2d(n, 3, 3, 1, 1)
        self.width = n

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        code = self.to_code(self.encoder(y).flatten(1))
        h = self.from_code(code).view(-1, self.width, self.sizes[-1], self.sizes[-1])
        for level, block in enumerate(self.decoder_levels):
            h = block(h)
            if level < len(self.decoder_levels) - 1:
                h = F.interpolate(h, size=self.sizes[-2 - level], mode="nearest")
        return self.to_image(h)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())

