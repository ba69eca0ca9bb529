"""What every bring-your-own embedder shares: input conventions, options, model files and checkpoints.

`ExternalEmbedder` wraps a user's network with its input conventions (size, mean/std, colour order,
crop, metric), all given as options that are checked here once, whichever prefix built the network
(`onnx:`, `torchscript:`, `timm:` in `external`; `iresnet:`, `mobilefacenet:`, `adaface:` in their own
modules). `read_state_dict` opens a checkpoint safely (tensors and plain containers only) and unwraps
the usual containers; `load_exactly` loads it into a network with strict names and shapes, or raises a
UserError naming the file and the first mismatching parameters.
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
from recognition.embedders.registry import Embedder

DEFAULT_SIZE = 112
COLOURS = ("rgb", "bgr")
METRICS = ("cosine", "euclidean")
NAMED_CROPS = {"arcface": ARCFACE_CROP, "dlib": CropGeometry(ARCFACE_CROP.size, 0.25)}
# keys under which training scripts keep the network's state dict inside a checkpoint (timm's EMA, Lightning and
# most scripts, insightface arcface_torch's checkpoint_gpu_N.pt, torchvision references)
STATE_DICT_KEYS = ("state_dict_ema", "state_dict", "state_dict_backbone", "model")
SHOWN_MISMATCHES = 3  # how many mismatching parameters of each kind a message names


def numbers(value: Any, option: str, source: str) -> tuple[float, ...]:
    """One or three numbers from a number, a sequence or text such as '0.5,0.5,0.5'."""
    items = re.split(r"[,\s]+", value.strip()) if isinstance(value, str) else value
    items = list(items) if isinstance(items, Sequence) else [items]
    try:
        values = tuple(float(item) for item in items)
    except (TypeError, ValueError):
        raise UserError(f"{source}: option {option} must be one number or three, not '{value}'") from None
    if len(values) not in (1, 3):
        raise UserError(f"{source}: option {option} must be one number or three, not {len(values)}")
    return values


def integer(value: Any, option: str, source: str, minimum: int) -> int:
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
    """A user's network with its input conventions (see `recognition.embedders.external`'s docstring)."""

    def __init__(self, network: nn.Module, source: str, file: Path, input_size: Any = None, mean: Any = 127.5,
                 std: Any = 127.5, colour: str = "rgb", crop: Any = "arcface", metric: str = "cosine", **identity: Any):
        size = integer(input_size if input_size is not None else DEFAULT_SIZE, "input_size", source, 8)
        mean, std = numbers(mean, "mean", source), numbers(std, "std", source)
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


def model_file(path: str, kind: str) -> Path:
    """The user's model file, which must exist."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise UserError(f"{kind} file not found: {file}")
    return file


def checkpoint_argument(target: str, weights: str | None, usage: str) -> tuple[str, Path]:
    """(architecture, file) of a target 'ARCH:PATH', or 'ARCH' with the file given as `weights` (--weights)."""
    architecture, _, checkpoint = target.partition(":")
    if checkpoint and weights:
        raise UserError(f"{usage.split(':')[0]}:{target}: give the checkpoint once, in the name or as weights=, not both")
    if not (checkpoint or weights):
        raise UserError(f"{usage.split(':')[0]}:{target} needs a weights file: {usage} (or --weights PATH); "
                        f"nothing is downloaded")
    return architecture, model_file(str(checkpoint or weights), "checkpoint")


def read_state_dict(file: Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file, unwrapped from the usual containers and DataParallel's 'module.'."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns before refusing a TorchScript archive
            state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:
        if "TorchScript" in str(error):
            raise UserError(f"{file} is a TorchScript file, not a state dict: use torchscript:{file}") from None
        unsupported = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
        if unsupported:  # e.g. a training checkpoint that pickled its own classes beside the weights
            raise UserError(f"{file} holds a pickled {unsupported.group(1)} beside the weights, which is not loaded "
                            f"(unpickling it could run code); if you trust the file, keep the state dict alone: "
                            f"torch.save(torch.load(PATH, weights_only=False)['state_dict'], NEW_PATH)") from None
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"{file} is not a PyTorch checkpoint that can be loaded safely: {first}") from None
    for key in STATE_DICT_KEYS:
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{file} holds no state dict (a dict of tensors); save one with torch.save(model.state_dict(), PATH)")
    return {k.removeprefix("module."): v for k, v in state.items()}


def state_dict_mismatches(network: nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    """What keeps `state` from loading into `network` strictly: the first missing, unexpected and wrongly
    shaped parameters or buffers, in the network's order; empty when it fits."""
    expected = network.state_dict()
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    shapes = [f"{key} {tuple(state[key].shape)} (expected {tuple(value.shape)})" for key, value in expected.items()
              if key in state and tuple(state[key].shape) != tuple(value.shape)]
    problems = []
    for kind, keys in (("wrong shape", shapes), ("missing", missing), ("unexpected", unexpected)):
        if keys:
            more = f" and {len(keys) - SHOWN_MISMATCHES} more" if len(keys) > SHOWN_MISMATCHES else ""
            problems.append(f"{kind}: {', '.join(keys[:SHOWN_MISMATCHES])}{more}")
    return problems


def load_exactly(network: nn.Module, state: dict[str, torch.Tensor], file: Path, what: str, hint: str = "") -> nn.Module:
    """`network` with `state` loaded (strict names and shapes), in eval mode; a mismatch is a UserError naming
    `file`, `what` it should hold and the first mismatching parameters, then `hint` (e.g. what the file holds)."""
    problems = state_dict_mismatches(network, state)
    if problems:
        raise UserError(f"{file} is not a state dict of {what}: {'; '.join(problems)}" + (f". {hint}" if hint else ""))
    network.load_state_dict(state, strict=True)
    return network.eval()


# Residual blocks per stage of the IResNets insightface (arcface_torch backbones/iresnet.py: iresnet18 ... 200)
# and AdaFace (net.py: get_blocks 18 ... 100, the same counts) released
IRESNET_DEPTHS = {"r18": (2, 2, 2, 2), "r34": (3, 4, 6, 3), "r50": (3, 4, 14, 3), "r100": (3, 13, 30, 3),
                  "r200": (6, 26, 60, 6)}


def fixed_input_size(input_size: Any, size: int, source: str) -> int:
    """`size`, the only input side a network with a fully connected head takes; another `input_size` is an error."""
    if input_size is not None and integer(input_size, "input_size", source, 8) != size:
        raise UserError(f"{source}: this network takes {size}x{size} images only (its head is fully connected), "
                        f"not input_size {input_size}")
    return size


def released_embedder(network: nn.Module, state: dict[str, torch.Tensor], file: Path, source: str, description: str,
                      size: int, input_size: Any, **options: Any) -> ExternalEmbedder:
    """A released face network (insightface's, AdaFace's) as an embedder: its checkpoint loaded exactly, with the
    advice of `released_format` when the file is another release's; its one input side; `options` are the
    preprocessing options and identity (kind, architecture) of ExternalEmbedder. Shared so that every released
    format fails and identifies itself in the same way."""
    size = fixed_input_size(input_size, size, source)
    network = load_exactly(network, state, file, description, released_format(state))
    return ExternalEmbedder(network, source, file, size, **options)


def _architecture_of(depths: tuple[int, ...]) -> str:
    return next((name for name, known in IRESNET_DEPTHS.items() if known == depths), "")


def released_format(state: dict[str, torch.Tensor]) -> str:
    """Which released face-network format a state dict looks like, as advice on the name to use ('' if none)."""
    state = {key.removeprefix("model."): value for key, value in state.items() if key.startswith("model.")} or state
    if "conv_sep.layers.0.weight" in state:
        return "It looks like insightface's MobileFaceNet: use mobilefacenet:PATH"
    stages = [1 + max((int(key.split(".")[1]) for key in state if key.startswith(f"layer{stage}.")), default=-1)
              for stage in range(1, 5)]
    if "conv1.weight" in state and all(stages):
        name = _architecture_of(tuple(stages))
        return (f"It holds insightface's IResNet with {', '.join(map(str, stages))} blocks per stage"
                + (f": use iresnet:{name}:PATH" if name else ", which is none of theirs"))
    blocks = sorted({int(key.split(".")[1]) for key in state if key.startswith("body.")})
    if "input_layer.0.weight" in state and blocks:
        starts = [0] + [n for n in blocks if n > 0 and f"body.{n}.shortcut_layer.0.weight" in state] + [blocks[-1] + 1]
        stages = [b - a for a, b in zip(starts, starts[1:])]
        name = _architecture_of(tuple(stages))
        return (f"It holds AdaFace's IResNet with {', '.join(map(str, stages))} blocks per stage"
                + (f": use adaface:{name}:PATH" if name else ", which is none of theirs"))
    return ""
