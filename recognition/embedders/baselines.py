"""Embedders that need no weights: a floor to compare learned embeddings against.

- `pixels`: the grey face box at 32x32, standardised per image (cosine): the simplest floor.
- `lbp`: uniform local binary pattern histograms on a grid over the face box (Ahonen et al., TPAMI
  2006), square-rooted (Hellinger) and L2-normalised, compared by cosine. A classic non-learned LFW
  baseline. Computed in PyTorch so it runs batched like every other embedder. Its geometry (64x64
  face box, 8x8 cells) was chosen on View 1 DevTrain pairs only (67-68% there for every setting tried).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.transforms import functional as TF

from recognition.embedders.registry import LFW_GEOMETRY_EXPANSION, Embedder, register_embedder


def face_box_crop(image: Image.Image, box_scale: float) -> Image.Image:
    """The centred square of side `box_scale` x (face box side) from a loose crop in LFW geometry."""
    side = min(image.size) / LFW_GEOMETRY_EXPANSION * box_scale
    return TF.center_crop(image, [round(side), round(side)])


@register_embedder("pixels")
class PixelEmbedder(Embedder):
    metric = "cosine"

    def __init__(self, size: int = 32, box_scale: float = 1.0):
        super().__init__(size=size, box_scale=box_scale)
        self.input_size = (size, size)

    def transform(self, image: Image.Image) -> torch.Tensor:
        crop = face_box_crop(image.convert("L"), self.config["box_scale"])
        return TF.to_tensor(crop.resize(self.input_size, Image.BILINEAR))

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        flat = batch.flatten(1)
        flat = flat - flat.mean(dim=1, keepdim=True)
        return F.normalize(flat, dim=1)


def _uniform_pattern_table(bits: int = 8) -> torch.Tensor:
    """Map each LBP code to its uniform-pattern bin (at most 2 circular 0/1 transitions), others to one bin."""
    table = torch.empty(2**bits, dtype=torch.long)
    next_bin = 0
    codes_by_bin: dict[int, int] = {}
    for code in range(2**bits):
        rotated = ((code >> 1) | ((code & 1) << (bits - 1)))
        transitions = bin(code ^ rotated).count("1")
        if transitions <= 2:
            codes_by_bin[code] = next_bin
            next_bin += 1
    for code in range(2**bits):
        table[code] = codes_by_bin.get(code, next_bin)
    return table  # 58 uniform bins + 1 shared bin for 8 bits


@register_embedder("lbp")
class LBPEmbedder(Embedder):
    metric = "cosine"

    def __init__(self, size: int = 64, grid: int = 8, box_scale: float = 1.0):
        super().__init__(size=size, grid=grid, box_scale=box_scale)
        self.input_size = (size, size)
        table = _uniform_pattern_table()
        self.register_buffer("pattern_table", table, persistent=False)
        self.bins = int(table.max()) + 1

    def transform(self, image: Image.Image) -> torch.Tensor:
        crop = face_box_crop(image.convert("L"), self.config["box_scale"])
        return TF.to_tensor(crop.resize(self.input_size, Image.BILINEAR))

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        grey = batch[:, 0]
        centre = grey[:, 1:-1, 1:-1]
        height, width = centre.shape[-2:]
        codes = torch.zeros_like(centre, dtype=torch.long)
        neighbours = [(-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1)]  # circular order
        for bit, (dy, dx) in enumerate(neighbours):
            neighbour = grey[:, 1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width]
            codes |= (neighbour >= centre).long() << bit
        patterns = self.pattern_table[codes]
        one_hot = F.one_hot(patterns, self.bins).permute(0, 3, 1, 2).float()
        histograms = F.adaptive_avg_pool2d(one_hot, self.config["grid"])
        return F.normalize(histograms.flatten(1).sqrt(), dim=1)
