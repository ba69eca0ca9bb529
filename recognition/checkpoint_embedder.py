"""The trained recognizer as an Embedder, so that protocols.lfw and protocols.ijba evaluate it like any other.

    python -m protocols.lfw --embedder recognizer --weights runs/recognizer/checkpoint.pt --split view1

`weights` is a checkpoint of `python -m recognition.train` (or its run folder); the backbone named in
its config is rebuilt and loaded, the heads are not needed. Geometry: the canonical 108x108 crop
(MTCNN's five points, padding 0.25), the crop the training sets hold, of which the central 96x96 is
taken (the mean of the training's random crops); the feature is the L2-normalised penultimate layer,
compared by cosine (Sec. 5.2). Without weights the embedder is `backbone` with seeded random weights:
an untrained floor, and what the registry's tests build.
"""
from __future__ import annotations

import logging
import pickle
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.transforms.v2 import functional as TF

from bench.common.cli import UserError
from recognition.faces.align import CANONICAL_CROP
from recognition.data import CROP_SIZE, IMAGE_SIZE, centre_crop, network_input
from recognition.embedders.registry import (
    Embedder,
    random_weights_fingerprint,
    register_embedder,
)
from recognition.models import Backbone, create_backbone

log = logging.getLogger(__name__)

UNTRAINED_BACKBONE = "resnet18"


def checkpoint_path(weights: str | Path) -> Path:
    """A run folder means its checkpoint.pt."""
    path = Path(weights)
    return (path / "checkpoint.pt" if path.is_dir() else path).resolve()


def read_checkpoint(path: Path) -> dict:
    """A recognition.train checkpoint (or its run folder), read without unpickling code."""
    path = checkpoint_path(path)
    if not path.is_file():
        raise UserError(f"recognizer weights not found: {path} (a run folder of python -m recognition.train, "
                        "or its checkpoint.pt)")
    try:
        stored = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, OSError, EOFError, ValueError) as error:  # not a safe checkpoint
        raise UserError(f"{path} is not a checkpoint that can be loaded safely: {error}") from None
    if not isinstance(stored, dict) or "model" not in stored or "backbone" not in stored.get("config", {}):
        raise UserError(f"{path} is not a checkpoint of python -m recognition.train (no 'model' and 'config')")
    return stored


def load_backbone(path: Path) -> tuple[Backbone, dict]:
    """The trained backbone of a checkpoint (every weight from the file, nothing downloaded), and the checkpoint."""
    stored = read_checkpoint(path)
    backbone = create_backbone(stored["config"]["backbone"], "none")
    prefix = "backbone."
    weights = {key[len(prefix):]: value for key, value in stored["model"].items() if key.startswith(prefix)}
    try:
        backbone.load_state_dict(weights)
    except RuntimeError as error:
        raise UserError(f"{path}: its backbone weights do not fit '{stored['config']['backbone']}': {error}") from None
    return backbone, stored


@register_embedder("recognizer")
class RecognizerEmbedder(Embedder):
    metric = "cosine"
    crop = CANONICAL_CROP
    input_size = (CROP_SIZE, CROP_SIZE)

    def __init__(self, weights: str | Path | None = None, backbone: str | None = None):
        if weights is None:
            name = backbone or UNTRAINED_BACKBONE
            log.warning("recognizer embedder without weights: %s with random weights (an untrained floor)", name)
            with torch.random.fork_rng():
                torch.manual_seed(0)
                network = create_backbone(name, "none")
            config = {"weights": None, "backbone": name}
        else:
            network, stored = load_backbone(Path(weights))
            if backbone is not None and backbone != network.name:
                raise UserError(f"{weights} holds a '{network.name}' backbone, not '{backbone}'")
            config = {"weights": str(checkpoint_path(weights)), "backbone": network.name,
                      "iteration": stored.get("state", {}).get("iteration")}
        super().__init__(**config, fingerprint=random_weights_fingerprint(network))
        self.backbone = network.eval()

    def transform(self, crop: Image.Image) -> torch.Tensor:
        pixels = TF.pil_to_tensor(crop.convert("RGB"))
        if pixels.shape[-2:] != (IMAGE_SIZE, IMAGE_SIZE):
            pixels = TF.resize(pixels, [IMAGE_SIZE, IMAGE_SIZE], antialias=True)
        return network_input(centre_crop(pixels))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.backbone(images), dim=1)
