"""C's view of G(x) for the identity loss (Sec. 4): the frozen face network C on a random crop,
rotation and flip of the generated face, resampled differentiably to C's input size."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from generators.train import TrainConfig


class IdentityView:
    """C's view of G(x): a random crop, rotation and flip (Sec. 4), resampled to C's input, differentiably."""

    def __init__(self, config: TrainConfig, device: torch.device = torch.device("cpu")):
        from bench.common.devices import build_on
        from recognition.embedders import get_embedder

        self.embedder = build_on(device, get_embedder, config.embedder).eval().requires_grad_(False)
        self.size = self.embedder.input_size[0]
        self.config = config

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n = images.shape[0]
        crop = self.config.identity_crop
        angle = (torch.rand(n, generator=generator) * 2 - 1) * np.radians(self.config.identity_rotation_deg)
        shift = (torch.rand(n, 2, generator=generator) * 2 - 1) * (1 - crop)
        flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
        cos, sin = angle.cos() * crop, angle.sin() * crop
        theta = torch.stack([torch.stack([cos * flip, -sin, shift[:, 0]], 1),
                             torch.stack([sin * flip, cos, shift[:, 1]], 1)], 1).to(images.device)  # drawn on the CPU
        grid = F.affine_grid(theta, (n, 3, self.size, self.size), align_corners=False)
        view = F.grid_sample(images.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)
        return self.embedder((view + 1) * 127.5)
