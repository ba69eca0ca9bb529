"""The translator's networks: G (synthetic -> realistic), G' (realistic -> synthetic), BEGAN discriminators.

G follows the shallow ResNet of the paper (Sec. 4, after CycleGAN's generator): c7s1-32, d64, d128,
three residual blocks, u64, u32, c7s1-3 with tanh; batch norm; dropout with keep rate 0.9 after each
block; skip connections u64 + d64 and u32 + c7s1 (added). `NetworkConfig` switches each of these to
what the authors' code does instead (no norm, dropout after the residual blocks only and kept on at
generation, concatenated skips: `NETWORK_VARIANTS["reference"]`) or to resize-convolutions. G' is the same trunk without dropout or
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


NORMS = ("batch", "instance", "none")
DROPOUT_PLACES = ("every-layer", "after-residual-blocks")
SKIP_MODES = ("add", "concat")
UPSAMPLING = ("transposed", "resize-conv")


@dataclass(frozen=True)
class NetworkConfig:
    """Sizes, and the switches where this project and the authors' code differ (README, Deviations):
    the defaults are this project's G; `NETWORK_VARIANTS["reference"]` is the authors' code's."""

    image_size: int = 108
    generator_width: int = 32  # c7s1-32; d64 and d128 are 2x and 4x
    residual_blocks: int = 3
    dropout: float = 0.1  # keep rate 0.9
    discriminator_width: int = 64
    bottleneck: int = 64
    norm: str = "batch"  # in G and G'; the reference has none (its 'batch_norm' is not a name its _norm knows)
    dropout_at: str = "every-layer"  # the reference: after each residual block only
    dropout_at_generation: bool = False  # the reference keeps dropout on when it synthesises
    skip: str = "add"  # u64 + d64 and u32 + c7s1; the reference concatenates them
    upsample: str = "transposed"  # 3x3 stride-2 transposed conv (both); resize-conv avoids its checkerboard

    def __post_init__(self):
        for name, allowed in (("norm", NORMS), ("dropout_at", DROPOUT_PLACES), ("skip", SKIP_MODES),
                              ("upsample", UPSAMPLING)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"NetworkConfig.{name} = {getattr(self, name)!r}; choose from {', '.join(allowed)}")


NETWORK_VARIANTS = {
    "project": {},
    "reference": {"norm": "none", "dropout_at": "after-residual-blocks", "dropout_at_generation": True, "skip": "concat"},
    "resize-conv": {"upsample": "resize-conv"},
}


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    return nn.Identity()


def _conv_bn_relu(in_channels: int, out_channels: int, kernel: int, stride: int = 1, norm: str = "batch") -> nn.Sequential:
    """Conv, norm, ReLU; 7x7 convolutions pad by reflection (CycleGAN's c7s1), others by zeros."""
    padding_mode = "reflect" if kernel == 7 else "zeros"
    conv = nn.Conv2d(in_channels, out_channels, kernel, stride, kernel // 2, padding_mode=padding_mode)
    return nn.Sequential(conv, _norm(norm, out_channels), nn.ReLU(inplace=True))


def _upsampling(in_channels: int, out_channels: int, kind: str, norm: str) -> nn.Sequential:
    """u-k: x2 upsampling, norm, ReLU. `transposed`: the 3x3 stride-2 transposed convolution of both
    codes, whose uneven kernel overlap prints a checkerboard (Odena et al., Distill 2016);
    `resize-conv`: nearest x2 then a 3x3 convolution, which cannot."""
    if kind == "transposed":
        up = nn.ConvTranspose2d(in_channels, out_channels, 3, 2, 1, output_padding=1)
    else:
        up = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(in_channels, out_channels, 3, 1, 1))
    return nn.Sequential(up, _norm(norm, out_channels), nn.ReLU(inplace=True))


class ResidualBlock(nn.Module):
    def __init__(self, channels: int, norm: str = "batch"):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, 1, 1, padding_mode="reflect"), _norm(norm, channels), nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, 1, 1, padding_mode="reflect"), _norm(norm, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Translator(nn.Module):
    """G (`skips=True`, dropout) or G' (`skips=False`, no dropout): an image-to-image ResNet."""

    def __init__(self, config: NetworkConfig, skips: bool, dropout: float):
        super().__init__()
        w, norm = config.generator_width, config.norm
        self.skips = skips
        self.concat = skips and config.skip == "concat"
        widen = 2 if self.concat else 1  # concatenated skips double the next layer's input
        self.stem = _conv_bn_relu(3, w, 7, norm=norm)  # c7s1-32
        self.down1 = _conv_bn_relu(w, 2 * w, 3, 2, norm=norm)  # d64
        self.down2 = _conv_bn_relu(2 * w, 4 * w, 3, 2, norm=norm)  # d128
        self.blocks = nn.ModuleList(ResidualBlock(4 * w, norm) for _ in range(config.residual_blocks))
        self.up1 = _upsampling(4 * w, 2 * w, config.upsample, norm)  # u64
        self.up2 = _upsampling(2 * w * widen, w, config.upsample, norm)  # u32
        self.head = nn.Conv2d(w * widen, 3, 7, 1, 3, padding_mode="reflect")  # c7s1-3
        self.dropout_rate = dropout
        self.dropout_everywhere = config.dropout_at == "every-layer"
        self.dropout_at_generation = config.dropout_at_generation

    def _drop(self, h: torch.Tensor, here: bool = True) -> torch.Tensor:
        """Dropout where the configuration puts it; on in training, and at generation if so configured."""
        if not here or self.dropout_rate == 0:
            return h
        return F.dropout(h, self.dropout_rate, training=self.training or self.dropout_at_generation)

    def _join(self, up: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        if not self.skips:
            return up
        return torch.cat([up, skip], 1) if self.concat else up + skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        every = self.dropout_everywhere
        stem = self._drop(self.stem(x), every)
        down1 = self._drop(self.down1(stem), every)
        h = self._drop(self.down2(down1), every)
        for block in self.blocks:
            h = self._drop(block(h))
        up1 = self.up1(h)[..., : down1.shape[-2], : down1.shape[-1]]  # odd sizes: crop the upsampled map
        up2 = self.up2(self._drop(self._join(up1, down1), every))[..., : stem.shape[-2], : stem.shape[-1]]
        return torch.tanh(self.head(self._drop(self._join(up2, stem), every)))


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

