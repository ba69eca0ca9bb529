"""facenet-pytorch's InceptionResnetV1 (FaceNet trained on VGGFace2 or CASIA-WebFace) as an embedder.

Its weights are not in the facenet-pytorch wheel; facenet-pytorch downloads them at run time, which
cannot happen offline. Here they are used only when present locally: `weights=PATH`, else
`<data root>/models/<file>`, else facenet-pytorch's own cache (`$TORCH_HOME/checkpoints/<file>`).
Otherwise the factory stops at once with the URL to fetch by hand; it never tries the network.
`pretrained=None` builds random weights (for training).

Crops: 160x160 with padding 0.4 around the unit face frame, which approximates facenet-pytorch's
MTCNN box crop with its default margin; inputs are standardised as (x - 127.5) / 128.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from PIL import Image
from torchvision.transforms import functional as TF

from bench.common.cli import UserError
from bench.common.datasets import data_root
from recognition.faces.align import CropGeometry
from recognition.embedders.registry import Embedder, load_state_dict, random_weights_fingerprint, register_embedder

RELEASE = "https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9/"
WEIGHT_FILES = {"vggface2": "20180402-114759-vggface2.pt", "casia-webface": "20180408-102900-casia-webface.pt"}


def weight_candidates(filename: str) -> list[Path]:
    torch_home = Path(os.environ.get("TORCH_HOME", Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")) / "torch"))
    return [data_root() / "models" / filename, torch_home.expanduser() / "checkpoints" / filename]


@register_embedder("inception-resnet-v1")
class InceptionResnetV1Embedder(Embedder):
    metric = "cosine"
    crop = CropGeometry(160, 0.4)
    input_size = (160, 160)

    def __init__(self, pretrained: str | None = "vggface2", weights: str | Path | None = None):
        from facenet_pytorch import InceptionResnetV1

        if pretrained is not None and pretrained not in WEIGHT_FILES:
            raise UserError(f"pretrained must be one of {', '.join(WEIGHT_FILES)} or None, not '{pretrained}'")
        num_classes = {"vggface2": 8631, "casia-webface": 10575}.get(pretrained)
        self.network = None
        network = InceptionResnetV1(pretrained=None, classify=False, num_classes=num_classes)
        if weights is None and pretrained is not None:
            found = [p for p in weight_candidates(WEIGHT_FILES[pretrained]) if p.is_file()]
            if not found:
                listed = ", ".join(str(p) for p in weight_candidates(WEIGHT_FILES[pretrained]))
                raise UserError(f"InceptionResnetV1 '{pretrained}' weights not found (looked at {listed}); they are not "
                                f"in the facenet-pytorch wheel and are not downloaded here. Online, fetch "
                                f"{RELEASE}{WEIGHT_FILES[pretrained]} into <data root>/models/, or pass weights=PATH, "
                                f"or pretrained=None for random weights")
            weights = found[0]
        if weights is not None:
            load_state_dict(network, Path(weights))
            super().__init__(weights=str(Path(weights).resolve()), weights_bytes=Path(weights).stat().st_size)
        else:
            super().__init__(weights=None, random_init=random_weights_fingerprint(network))
        self.network = network

    def transform(self, crop: Image.Image) -> torch.Tensor:
        crop = crop.convert("RGB")
        if crop.size != self.input_size:
            crop = crop.resize(self.input_size, Image.Resampling.BILINEAR)
        return (TF.pil_to_tensor(crop).float() - 127.5) / 128.0

    def forward(self, standardised: torch.Tensor) -> torch.Tensor:
        return self.network(standardised)
