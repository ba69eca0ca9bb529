"""Bring your own face network, in every protocol and as the identity network C: ONNX, TorchScript, timm.

    python -m protocols.lfw --embedder 'onnx:/models/arcface.onnx?colour=rgb&std=127.5' --split 10fold
    get_embedder("torchscript:/models/net.pt", input_size=112, crop=0.25, metric="euclidean")
    get_embedder("timm:resnet18:/runs/face/checkpoint.pth", num_classes=512)

Names: `onnx:PATH`, `torchscript:PATH` (a file saved by `torch.jit.script(model).save(PATH)` or
`torch.jit.trace`) and `timm:NAME[:CHECKPOINT]` (a timm architecture and a state dict trained for it;
timm's own pretrained weights come from the Hugging Face hub, which this project never contacts, so a
checkpoint is required; `weights=PATH`, i.e. `--weights`, gives it too). Options, as keywords of
`get_embedder` or after '?' in the name (values as text there; lists comma-separated):

- `input_size`: side of the square input in pixels; default: the ONNX graph's own size, else 112;
- `mean`, `std`: the network receives (x - mean) / std of 0..255 pixel values; one number or three,
  in the network's channel order. Default 127.5 and 127.5 (inputs in [-1, 1], as ArcFace/insightface);
  for ImageNet-style weights use mean=123.675,116.28,103.53 and std=58.395,57.12,57.375;
- `colour`: 'rgb' (default) or 'bgr' (networks trained on OpenCV-loaded images without a swap);
- `crop`: 'arcface' (default: `align.ARCFACE_CROP`, the 112x112 five-point template of ArcFace and of
  most public face models), 'dlib' (padding 0.25, the project's canonical crop), or a number: the
  padding around the unit face frame (see recognition/faces/align.py);
- `metric`: 'cosine' (default) or 'euclidean';
- `backend` (onnx only): 'torch' (onnx2torch; differentiable, the default) or 'onnxruntime';
- `num_classes` (timm only): size of the head; 0 (default) gives the pooled features.

`forward` takes RGB chips of 0..255 values, (N, 3, S, S), like every embedder, and applies the colour
order and normalisation itself, so any of these can serve as C. Files are read when the embedder is
built and the output shape is checked on the first batch (it must be (N, D)); any problem is a
UserError that names the file. Cache keys include the file's SHA-256, so a changed file is re-embedded.
"""
from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bench.common.cli import UserError
from bench.common.download import file_digest
from recognition.faces.align import ARCFACE_CROP, CropGeometry
from recognition.embedders.onnx_graph import OnnxRuntimeNetwork, input_shape, load_onnx, to_torch
from recognition.embedders.registry import Embedder, register_embedder_prefix

DEFAULT_SIZE = 112
COLOURS = ("rgb", "bgr")
METRICS = ("cosine", "euclidean")
NAMED_CROPS = {"arcface": ARCFACE_CROP, "dlib": CropGeometry(ARCFACE_CROP.size, 0.25)}


def _numbers(value: Any, option: str, source: str) -> tuple[float, ...]:
    """One or three numbers from a number, a sequence or text such as '0.5,0.5,0.5'."""
    items = re.split(r"[,\s]+", value.strip()) if isinstance(value, str) else value
    items = list(items) if isinstance(items, Sequence) else [items]
    try:
        numbers = tuple(float(item) for item in items)
    except (TypeError, ValueError):
        raise UserError(f"{source}: option {option} must be one number or three, not '{value}'") from None
    if len(numbers) not in (1, 3):
        raise UserError(f"{source}: option {option} must be one number or three, not {len(numbers)}")
    return numbers


def _integer(value: Any, option: str, source: str, minimum: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise UserError(f"{source}: option {option} must be an integer, not '{value}'") from None
    if number < minimum or str(value).strip() != str(number):
        raise UserError(f"{source}: option {option} must be an integer >= {minimum}, not '{value}'")
    return number


def crop_geometry(crop: Any, size: int, source: str) -> CropGeometry:
    """The aligned crop a `crop` option names, at `size` pixels."""
    if isinstance(crop, str) and crop.lower() in NAMED_CROPS:
        return NAMED_CROPS[crop.lower()].resized(size)
    try:
        padding = float(crop)
    except (TypeError, ValueError):
        raise UserError(f"{source}: option crop must be {', '.join(NAMED_CROPS)} or a padding (a number), not '{crop}'") from None
    if not 0 <= padding <= 2:
        raise UserError(f"{source}: crop padding {padding} is outside 0..2 (0.25 = the project's canonical crop)")
    return CropGeometry(size, padding)


class ExternalEmbedder(Embedder):
    """A user's network with its input conventions; see the module docstring."""

    def __init__(self, network: nn.Module, source: str, file: Path, input_size: Any = None, mean: Any = 127.5,
                 std: Any = 127.5, colour: str = "rgb", crop: Any = "arcface", metric: str = "cosine", **identity: Any):
        size = _integer(input_size if input_size is not None else DEFAULT_SIZE, "input_size", source, 8)
        mean, std = _numbers(mean, "mean", source), _numbers(std, "std", source)
        if any(s == 0 for s in std):
            raise UserError(f"{source}: option std must not be 0")
        if str(colour).lower() not in COLOURS:
            raise UserError(f"{source}: option colour must be {' or '.join(COLOURS)}, not '{colour}'")
        if metric not in METRICS:
            raise UserError(f"{source}: option metric must be {' or '.join(METRICS)}, not '{metric}'")
        geometry = crop_geometry(crop, size, source)
        super().__init__(file_sha256=file_digest(file, "sha256"), input_size=size, mean=mean, std=std,
                         colour=str(colour).lower(), crop=geometry.tag, metric=metric, **identity)
        self.network, self.source, self.file = network, source, file
        self.input_size, self.crop, self.metric = (size, size), geometry, metric
        self.bgr = self.config["colour"] == "bgr"
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).reshape(-1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).reshape(-1, 1, 1), persistent=False)
        self.embedding_size: int | None = None  # known after the first batch

    def normalise(self, chips_0_255: torch.Tensor) -> torch.Tensor:
        """What the network receives: colour order, then (x - mean) / std."""
        x = chips_0_255.flip(1) if self.bgr else chips_0_255
        return (x - self.mean) / self.std

    def forward(self, chips_0_255: torch.Tensor) -> torch.Tensor:
        if self.embedding_size is not None:
            return self.network(self.normalise(chips_0_255))
        return self._first_batch(chips_0_255)

    def _first_batch(self, chips_0_255: torch.Tensor) -> torch.Tensor:
        """Run the first batch, turning any failure or a wrong output shape into a UserError naming the file."""
        shape = tuple(chips_0_255.shape)
        if len(shape) != 4 or shape[1:] != (3, *self.input_size):
            raise UserError(f"{self.source}: expected chips of shape (N, 3, {self.input_size[0]}, {self.input_size[1]}), "
                            f"got {shape}")
        try:
            features = self.network(self.normalise(chips_0_255))
        except Exception as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise UserError(f"{self.source} ({self.file}) failed on a batch of shape {shape}: {first}. Check "
                            f"input_size ({self.input_size[0]}) and that the batch axis is dynamic") from None
        if not isinstance(features, torch.Tensor):
            raise UserError(f"{self.source} ({self.file}) returned {type(features).__name__}, not one feature tensor")
        if features.ndim != 2 or features.shape[0] != shape[0]:
            raise UserError(f"{self.source} ({self.file}) returned shape {tuple(features.shape)} for a batch of "
                            f"{shape[0]}; an embedder must return (N, D)")
        self.embedding_size = int(features.shape[1])
        return features


def _model_file(path: str, kind: str) -> Path:
    file = Path(path).expanduser()
    if not file.is_file():
        raise UserError(f"{kind} file not found: {file}")
    return file


@register_embedder_prefix("onnx", "onnx:PATH")
def onnx_embedder(target: str, backend: str = "torch", input_size: Any = None, mean: Any = 127.5, std: Any = 127.5,
                  colour: str = "rgb", crop: Any = "arcface", metric: str = "cosine") -> ExternalEmbedder:
    file = _model_file(target, "ONNX")
    model = load_onnx(file)
    dims = input_shape(model)
    if len(dims) != 4 or dims[1] not in (3, None):
        raise UserError(f"{file}: the input must be (N, 3, H, W) images; the graph's input has shape {dims}")
    if dims[2] is not None and dims[3] is not None:
        if dims[2] != dims[3]:
            raise UserError(f"{file}: the input is {dims[2]}x{dims[3]}; only square inputs are supported")
        if input_size is not None and _integer(input_size, "input_size", str(file), 8) != dims[2]:
            raise UserError(f"{file}: the graph takes {dims[2]}x{dims[3]} images, not input_size {input_size}")
        input_size = dims[2]
    if backend not in ("torch", "onnxruntime"):
        raise UserError(f"onnx:{target}: option backend must be 'torch' or 'onnxruntime', not '{backend}'")
    network = to_torch(model, file) if backend == "torch" else OnnxRuntimeNetwork(model, file)
    return ExternalEmbedder(network, f"onnx:{target}", file, input_size, mean, std, colour, crop, metric,
                            kind="onnx", backend=backend)


@register_embedder_prefix("torchscript", "torchscript:PATH")
def torchscript_embedder(target: str, input_size: Any = None, mean: Any = 127.5, std: Any = 127.5,
                         colour: str = "rgb", crop: Any = "arcface", metric: str = "cosine") -> ExternalEmbedder:
    file = _model_file(target, "TorchScript")
    try:
        network = torch.jit.load(str(file), map_location="cpu").eval()
    except Exception as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"{file} is not a TorchScript file ({first}); save one with torch.jit.script(model).save(PATH), "
                        f"or for a state dict of a timm model use timm:NAME:CHECKPOINT") from None
    return ExternalEmbedder(network, f"torchscript:{target}", file, input_size, mean, std, colour, crop, metric,
                            kind="torchscript")


def _state_dict(file: Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file, unwrapped from the usual containers and DataParallel's 'module.'."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns before refusing a TorchScript archive
            state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:
        if "TorchScript" in str(error):
            raise UserError(f"{file} is a TorchScript file, not a state dict: use torchscript:{file}") from None
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"{file} is not a PyTorch checkpoint that can be loaded safely: {first}") from None
    for key in ("state_dict_ema", "state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{file} holds no state dict (a dict of tensors); save one with torch.save(model.state_dict(), PATH)")
    return {k.removeprefix("module."): v for k, v in state.items()}


@register_embedder_prefix("timm", "timm:NAME[:CHECKPOINT]")
def timm_embedder(target: str, weights: str | None = None, num_classes: Any = 0, input_size: Any = None,
                  mean: Any = 127.5, std: Any = 127.5, colour: str = "rgb", crop: Any = "arcface",
                  metric: str = "cosine") -> ExternalEmbedder:
    import timm

    name, _, checkpoint = target.partition(":")
    if checkpoint and weights:
        raise UserError(f"timm:{target}: give the checkpoint once, in the name or as weights=, not both")
    checkpoint = checkpoint or weights
    if not checkpoint:
        raise UserError(f"timm:{name} needs a checkpoint: timm:{name}:PATH (or weights=PATH). timm's pretrained "
                        f"weights are downloaded from the Hugging Face hub at run time, which this project never does")
    file = _model_file(str(checkpoint), "checkpoint")
    classes = _integer(num_classes, "num_classes", f"timm:{target}", 0)
    try:
        network = timm.create_model(name, pretrained=False, num_classes=classes)
    except Exception as error:  # timm raises RuntimeError('Unknown model ...') and others
        raise UserError(f"timm cannot build '{name}': {error}") from None
    try:
        network.load_state_dict(_state_dict(file))
    except RuntimeError as error:
        lines = str(error).strip().splitlines()
        raise UserError(f"{file} does not fit timm's {name} with num_classes={classes}: "
                        f"{' '.join(line.strip() for line in lines[1:3]) or lines[0]}") from None
    return ExternalEmbedder(network.eval(), f"timm:{target}", file, input_size, mean, std, colour, crop, metric,
                            kind="timm", architecture=name, num_classes=classes)
