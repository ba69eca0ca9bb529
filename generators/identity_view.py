"""C's view of G(x) for the identity loss (Sec. 4): the frozen face network C on a random crop,
rotation and flip of the generated face, resampled differentiably to C's input size.

The translator's images are framed as the renders are (`RENDER_PADDING` around the unit face frame,
no offset); each network C was trained on its own framing (`Embedder.crop`: OpenFace's tight 96x96
crop, ArcFace's 112x112 with more room above the face, dlib's 150x150 chip). The view first maps C's
framing into the render's (`canonical_affine`), then jitters it in C's frame, so that C sees faces
framed as it expects whichever network is chosen.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from recognition.faces.align import CropGeometry

if TYPE_CHECKING:
    from generators.train import TrainConfig

RENDER_PADDING = 0.25  # renders and the translator's images: CropGeometry(image_size, 0.25)


def canonical_affine(crop: CropGeometry | None, render_padding: float = RENDER_PADDING) -> tuple[float, np.ndarray]:
    """(scale, shift): C's crop in the render's normalised coordinates ([-1, 1], affine_grid's).

    A unit-frame point t sits at u = 2 (t + p + o) / (1 + 2p) - 1 in a crop of padding p and offset o
    (`CropGeometry.to_pixels`); eliminating t gives u_render = scale * u_C + shift with
    scale = (1 + 2p) / (1 + 2q) and shift = -2 o / (1 + 2q) for the render's padding q. Without a
    crop (a network with no aligned framing) the view is the whole image."""
    if crop is None:
        return 1.0, np.zeros(2)
    scale = (1 + 2 * crop.padding) / (1 + 2 * render_padding)
    shift = -2 * np.asarray(crop.offset, float) / (1 + 2 * render_padding)
    return scale, shift


class IdentityView:
    """C's view of G(x): a random crop, rotation and flip (Sec. 4) of C's own framing, resampled to C's
    input, differentiably."""

    def __init__(self, config: TrainConfig, device: torch.device = torch.device("cpu")):
        from bench.common.devices import build_on
        from recognition.embedders import get_embedder

        self.embedder = build_on(device, get_embedder, config.embedder).eval().requires_grad_(False)
        self.size = self.embedder.input_size[0]
        self.scale, shift = canonical_affine(self.embedder.crop)
        self.shift = torch.tensor(shift, dtype=torch.float32)
        self.config = config

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.embedder((self.views(images, generator) + 1) * 127.5)

    def views(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The jittered crops C sees, in -1..1 at C's input size."""
        n = images.shape[0]
        crop = self.config.identity_crop
        angle = (torch.rand(n, generator=generator) * 2 - 1) * np.radians(self.config.identity_rotation_deg)
        jitter = (torch.rand(n, 2, generator=generator) * 2 - 1) * (1 - crop)
        flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
        # in C's frame: u' = crop * R(angle) * flip * u + jitter; then into the render's frame
        cos, sin = angle.cos() * crop * self.scale, angle.sin() * crop * self.scale
        shift = jitter * self.scale + self.shift
        theta = torch.stack([torch.stack([cos * flip, -sin, shift[:, 0]], 1),
                             torch.stack([sin * flip, cos, shift[:, 1]], 1)], 1).to(images.device)  # drawn on the CPU
        grid = F.affine_grid(theta, (n, 3, self.size, self.size), align_corners=False)
        return F.grid_sample(images.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)


def network_view(images: torch.Tensor, crop: CropGeometry | None, size: int) -> torch.Tensor:
    """Render-framed images (N, 3, H, W) in C's own framing at size x size, without jitter (used to
    score GANFaces in C). A plain antialiased resize when the framings agree (dlib's chip)."""
    scale, shift = canonical_affine(crop)
    if scale == 1.0 and not shift.any():
        return F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    n = images.shape[0]
    theta = torch.tensor([[scale, 0.0, shift[0]], [0.0, scale, shift[1]]], dtype=images.dtype,
                         device=images.device).expand(n, 2, 3)
    grid = F.affine_grid(theta, (n, images.shape[1], size, size), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def embed_unjittered(embedder, images: torch.Tensor) -> torch.Tensor:
    """C's embeddings of render-framed images in -1..1 (N, 3, H, W), seen through `network_view`: how GANFaces
    are scored in C after training, and how a test measures what L_C did, with no random view in the way."""
    chips = network_view(images.float(), embedder.crop, embedder.input_size[0])
    return embedder((chips.clamp(-1, 1) + 1) * 127.5)
