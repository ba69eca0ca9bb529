"""Recognition backbones behind one registry and one factory, and the dual-softmax recognizer (Sec. 5.2).

    from recognition.models import create_backbone, DualHeadRecognizer
    backbone = create_backbone("vgg19", pretrained="imagenet")    # the paper's network
    backbone = create_backbone("resnet18", pretrained="none")     # any timm model name, for CPU-sized runs

A backbone takes RGB images in [0, 1] at 96x96 (the paper's random crops of its 108x108 faces),
normalises them as its ImageNet weights expect, and returns the embedding: the penultimate layer of
the classification network. `DualHeadRecognizer` puts the paper's two softmax heads on it, one over the
real data set's identities and one over the synthetic (GANFaces) identities; `dual_softmax_loss` is
the objective CE_real + 0.5 CE_synthetic, the factor being the paper's halved gradient of the
GANFaces head.

`vgg19` is torchvision's VGG19 without its last layer (fc8). At 96x96 its conv5 map is 3x3, which
torchvision's adaptive pooling would replicate to 7x7 before fc6; that replication is a fixed linear
map, so it is folded into fc6 once (the network computes exactly what torchvision's does at this
size, with 4608 instead of 25088 inputs to fc6). Every other name goes to `timm.create_model`.

`pretrained="imagenet"` reads the weights from the local caches (torch hub's checkpoints folder,
`<data root>/models/timm/<name>.safetensors|.pth`, the Hugging Face cache) and downloads them only
when the host answers; offline it stops with a UserError naming the file to place.
"""
from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from bench.common.cli import UserError
from bench.common.datasets import data_root

log = logging.getLogger(__name__)

PRETRAINED = ("imagenet", "none")
INPUT_SIZE = 96  # the paper's random crops of the 108x108 aligned faces
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Backbone(nn.Module):
    """An embedding network behind input normalisation: images in [0, 1] -> (N, embedding_size)."""

    def __init__(self, name: str, network: nn.Module, mean=IMAGENET_MEAN, std=IMAGENET_STD, head_dropout: float = 0.0):
        super().__init__()
        self.name, self.network, self.head_dropout = name, network, head_dropout
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        training = network.training
        network.eval()
        try:
            with torch.no_grad():
                probe = network(torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE))
        except (RuntimeError, AssertionError, ValueError) as error:
            raise UserError(f"backbone '{name}' does not take {INPUT_SIZE}x{INPUT_SIZE} input ({error}); "
                            "choose another --backbone") from None
        network.train(training)
        if probe.ndim != 2:
            raise UserError(f"backbone '{name}' returns a {tuple(probe.shape)} map, not one vector per image")
        self.embedding_size = int(probe.shape[1])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.network((images - self.mean) / self.std)


# -------------------------------------------------------------------------------- the registry

_BACKBONES: dict[str, Callable[[bool], Backbone]] = {}


def register_backbone(name: str):
    """Decorator: register a factory `(pretrained: bool) -> Backbone` under `name` (others come from timm)."""

    def decorate(factory: Callable[[bool], Backbone]) -> Callable[[bool], Backbone]:
        if name in _BACKBONES:
            raise ValueError(f"backbone '{name}' registered twice")
        _BACKBONES[name] = factory
        return factory

    return decorate


def list_backbones() -> list[str]:
    """The registered backbones; any timm model name (`timm.list_models()`) is accepted as well."""
    return sorted(_BACKBONES)


def create_backbone(name: str, pretrained: str = "none") -> Backbone:
    """The backbone `name` (registered, else a timm model), with ImageNet weights when `pretrained='imagenet'`."""
    if pretrained not in PRETRAINED:
        raise UserError(f"--pretrained must be one of {', '.join(PRETRAINED)}, not '{pretrained}'")
    if name in _BACKBONES:
        return _BACKBONES[name](pretrained == "imagenet")
    import timm

    if not timm.is_model(name):
        close = timm.list_models(f"*{name}*")[:8]
        hint = f"; timm models like it: {', '.join(close)}" if close else ""
        raise UserError(f"unknown backbone '{name}': registered {', '.join(list_backbones())}, or any timm model name "
                        f"(python -c \"import timm; print(timm.list_models('resnet*'))\"){hint}")
    network = _timm_network(name, pretrained == "imagenet")
    config = network.pretrained_cfg
    return Backbone(name, network, config.get("mean", IMAGENET_MEAN), config.get("std", IMAGENET_STD))


# ------------------------------------------------------------------------------- VGG19 (paper)

class VGG19Embedding(nn.Module):
    """torchvision's VGG19 up to fc7 (its last layer removed), with the 7x7 adaptive pool folded into fc6."""

    def __init__(self, vgg: nn.Module, input_size: int = INPUT_SIZE):
        super().__init__()
        self.features = vgg.features
        grid = input_size // 32  # five 2x2 max-pools
        self.fc6 = fold_adaptive_pool_into_linear(vgg.classifier[0], vgg.avgpool, channels=512, grid=grid)
        self.fc7 = vgg.classifier[3]
        self.dropout = nn.Dropout(0.5)  # VGG's dropout after fc6 (the one after fc7 sits before the heads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x).flatten(1)
        x = self.dropout(F.relu(self.fc6(x)))
        return F.relu(self.fc7(x))


def fold_adaptive_pool_into_linear(linear: nn.Linear, pool: nn.Module, channels: int, grid: int) -> nn.Linear:
    """A Linear on the flattened (channels, grid, grid) map equal to `linear(pool(map).flatten(1))`.

    The pool acts on each channel alike, so it is the (grid^2 -> pooled^2) matrix P obtained by pooling
    the unit maps; the folded weight is W P per channel.
    """
    with torch.no_grad():
        unit_maps = torch.eye(grid * grid).view(grid * grid, 1, grid, grid)
        pooling = pool(unit_maps).flatten(1)  # (grid^2, pooled^2): pooled cell q = sum_p P[p, q] x[p]
        weight = linear.weight.view(linear.out_features, channels, pooling.shape[1])
        folded = nn.Linear(channels * grid * grid, linear.out_features)
        folded.weight.copy_(torch.einsum("ocq,pq->ocp", weight, pooling).reshape(linear.out_features, -1))
        folded.bias.copy_(linear.bias)
    return folded


@register_backbone("vgg19")
def vgg19(pretrained: bool) -> Backbone:
    """VGG19 (Simonyan & Zisserman), the paper's recognition network: ImageNet initialisation, fc8 removed."""
    from torchvision.models import VGG19_Weights
    from torchvision.models import vgg19 as torchvision_vgg19

    network = torchvision_vgg19()
    if pretrained:
        network.load_state_dict(_torchvision_state_dict(VGG19_Weights.IMAGENET1K_V1))
    return Backbone("vgg19", VGG19Embedding(network), head_dropout=0.5)


# ----------------------------------------------------------------------------- pretrained weights

def host_reachable(host: str) -> bool:
    """Whether `host` resolves: offline machines fail here at once instead of after minutes of retries."""
    if os.environ.get("HF_HUB_OFFLINE") == "1" and host == "huggingface.co":
        return False
    try:
        socket.getaddrinfo(host, 443)
        return True
    except OSError:
        return False


def _torchvision_state_dict(weights) -> dict:
    """torchvision's weights from torch hub's checkpoints folder, downloaded there only when online."""
    path = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    if not path.is_file() and not host_reachable("download.pytorch.org"):
        raise UserError(f"ImageNet weights for {weights} are not in the local cache and there is no network: "
                        f"pass --pretrained none, or place the weights at {path} (from {weights.url})")
    try:
        return weights.get_state_dict(progress=True)
    except OSError as error:
        raise UserError(f"cannot download {weights.url} ({error}): pass --pretrained none or place the weights "
                        f"at {path}") from None


def timm_weight_candidates(name: str) -> list[Path]:
    folder = data_root() / "models" / "timm"
    return [folder / f"{name}{suffix}" for suffix in (".safetensors", ".pth", ".bin")]


def _hugging_face_cached(name: str) -> Path | None:
    import timm

    config = timm.models.get_pretrained_cfg(name)
    hub_id = config.hf_hub_id if config is not None else None
    if not hub_id:
        return None
    from huggingface_hub import try_to_load_from_cache

    for filename in ("model.safetensors", "pytorch_model.bin"):
        cached = try_to_load_from_cache(hub_id, filename)
        if isinstance(cached, str):
            return Path(cached)
    return None


def _timm_network(name: str, pretrained: bool) -> nn.Module:
    import timm

    if not pretrained:
        return timm.create_model(name, pretrained=False, num_classes=0)
    local = next((p for p in timm_weight_candidates(name) if p.is_file()), None) or _hugging_face_cached(name)
    if local is not None:
        log.info("ImageNet weights for %s from %s", name, local)
        return timm.create_model(name, pretrained=True, num_classes=0, pretrained_cfg_overlay={"file": str(local)})
    where = timm_weight_candidates(name)[0]
    if not host_reachable("huggingface.co"):
        raise UserError(f"ImageNet weights for timm model '{name}' are not in the local caches and there is no "
                        f"network: pass --pretrained none, or place the weights at {where}")
    try:
        return timm.create_model(name, pretrained=True, num_classes=0)
    except (OSError, RuntimeError, ValueError) as error:
        raise UserError(f"cannot load ImageNet weights for timm model '{name}' ({error}): pass --pretrained none "
                        f"or place the weights at {where}") from None


# ------------------------------------------------------------------------ the dual-softmax recognizer

class DualHeadRecognizer(nn.Module):
    """A backbone with two softmax heads on its penultimate layer: real identities and synthetic identities.

    `forward(images, real_count)` runs the backbone once over the concatenated batch (real images
    first) and gives the first `real_count` embeddings to the real head, the rest to the synthetic head,
    so the two label spaces never meet.
    """

    def __init__(self, backbone: Backbone, real_identities: int, synthetic_identities: int = 0):
        super().__init__()
        self.backbone = backbone
        self.dropout = nn.Dropout(backbone.head_dropout)
        self.real_head = nn.Linear(backbone.embedding_size, real_identities)
        self.synthetic_head = nn.Linear(backbone.embedding_size, synthetic_identities) if synthetic_identities else None

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """The penultimate layer (unnormalised); evaluation L2-normalises it."""
        return self.backbone(images)

    def forward(self, images: torch.Tensor, real_count: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        embeddings = self.dropout(self.embed(images))
        real_logits = self.real_head(embeddings[:real_count])
        if self.synthetic_head is None:
            if real_count != len(images):
                raise ValueError("synthetic images given to a recognizer without a synthetic head")
            return real_logits, None
        return real_logits, self.synthetic_head(embeddings[real_count:])

    def head_parameters(self) -> list[nn.Parameter]:
        heads = [self.real_head] + ([self.synthetic_head] if self.synthetic_head is not None else [])
        return [p for head in heads for p in head.parameters()]


def dual_softmax_loss(real_logits: torch.Tensor, real_labels: torch.Tensor, synthetic_logits: torch.Tensor | None,
                      synthetic_labels: torch.Tensor | None, synthetic_weight: float
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(CE_real + synthetic_weight * CE_synthetic, CE_real, CE_synthetic): Sec. 5.2's two softmax losses.

    With synthetic_weight = 0.5 every gradient that flows from the GANFaces head (into the head and
    into the shared layers) is exactly half of what the unweighted loss would give: the paper's halved
    gradient. Each head's cross-entropy is over its own labels only.
    """
    real = F.cross_entropy(real_logits.float(), real_labels)
    if synthetic_logits is None or synthetic_logits.numel() == 0:
        return real, real, None
    synthetic = F.cross_entropy(synthetic_logits.float(), synthetic_labels)
    return real + synthetic_weight * synthetic, real, synthetic
