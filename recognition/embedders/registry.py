"""The embedder registry: `register_embedder` decorates a factory, `get_embedder(name)` builds one.

Besides registered names, a name may bring the user's own model: `PREFIX:TARGET`, where the prefix
was registered with `register_embedder_prefix` (recognition.embedders.external registers `onnx:PATH`,
`torchscript:PATH` and `timm:NAME[:CHECKPOINT]`). Options may follow the target as a query string,
`PREFIX:TARGET?key=value&key=value`, so every command line that takes an embedder name takes them too;
`get_embedder`'s keyword options are merged in (naming one option both ways is an error).
"""
from __future__ import annotations

import fnmatch
import importlib.metadata
import inspect
import hashlib
import json
import re
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn
from pathlib import Path

from bench.common.cli import UserError
from recognition.faces.align import CropGeometry

LFW_GEOMETRY_SIZE = 250  # side of a loose face crop, as in LFW
LFW_GEOMETRY_EXPANSION = 2.2  # crop side / face box side, as in LFW


class Embedder(nn.Module):
    """A face embedding: `transform` (PIL image -> tensor) and `forward` (batch -> (N, D)).

    Without `crop`, `transform` takes loose crops in LFW geometry; with `crop`, aligned crops of that
    geometry (`protocols.embedding` aligns first).

    `metric` says how its features are compared ('cosine' or 'euclidean'); `config` holds whatever
    changes the output, so that caches can be keyed by it.
    """

    name: str = "embedder"
    metric: str = "cosine"
    input_size: tuple[int, int] = (112, 112)
    crop: CropGeometry | None = None  # set: `transform` takes aligned crops of this geometry

    def __init__(self, **config: Any):
        super().__init__()
        self.config = dict(config)

    def transform(self, image: Image.Image) -> torch.Tensor:
        """An aligned crop -> (3, H, W) float RGB in 0..255 at `input_size` (what every pretrained network
        here takes; each normalises inside `forward`, so it stays differentiable from 0..255 images)."""
        image = image.convert("RGB")
        if image.size != tuple(self.input_size):
            image = image.resize(tuple(self.input_size), Image.Resampling.BILINEAR)
        return torch.from_numpy(np.asarray(image, dtype=np.float32).copy()).permute(2, 0, 1)

    @property
    def cache_key(self) -> str:
        """Name plus a short hash of the configuration (and weights file, when there is one)."""
        blob = json.dumps({"name": self.name, **self.config}, sort_keys=True, default=str)
        return f"{file_safe_name(self.name)}-{hashlib.sha1(blob.encode()).hexdigest()[:10]}"


def file_safe_name(name: str) -> str:
    """`name` itself when it is a plain file name, else its tail made file-safe plus a hash of it
    (a prefixed name holds a path and options: 'onnx:/models/arc.onnx?std=128' -> 'onnx-models-arc.onnx-std-128-<hash>')."""
    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]*", name):
        return name
    tail = re.sub(r"[^A-Za-z0-9._+-]+", "-", name).strip("-.")[-48:].strip("-.")
    return f"{tail}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"


_REGISTRY: dict[str, Callable[..., Embedder]] = {}
_PREFIXES: dict[str, tuple[Callable[..., Embedder], str]] = {}


def register_embedder(name: str):
    """Decorator: register an Embedder class (or a factory `(**options) -> Embedder`) under `name`."""

    def decorate(factory: Callable[..., Embedder]) -> Callable[..., Embedder]:
        if name in _REGISTRY:
            raise ValueError(f"embedder '{name}' registered twice")
        _REGISTRY[name] = factory
        return factory

    return decorate


def register_embedder_prefix(prefix: str, usage: str):
    """Decorator: register a factory `(target, **options) -> Embedder` for names `prefix:target`;
    `usage` (e.g. 'onnx:PATH') is shown when a name is unknown."""

    def decorate(factory: Callable[..., Embedder]) -> Callable[..., Embedder]:
        if prefix in _PREFIXES:
            raise ValueError(f"embedder prefix '{prefix}' registered twice")
        _PREFIXES[prefix] = (factory, usage)
        return factory

    return decorate


def parse_embedder_name(name: str) -> tuple[str, str, dict[str, str]] | None:
    """(prefix, target, options as text) of a name with a registered prefix, else None."""
    prefix, colon, rest = name.partition(":")
    if not colon or prefix not in _PREFIXES:
        return None
    target, _, query = rest.partition("?")
    if not target:
        raise UserError(f"embedder '{name}': nothing after '{prefix}:'; usage: {_PREFIXES[prefix][1]}")
    options = {}
    for item in filter(None, query.split("&")):
        key, equals, value = item.partition("=")
        if not equals or not key:
            raise UserError(f"embedder '{name}': option '{item}' is not key=value")
        options[key] = value
    return prefix, target, options


def list_embedder_prefixes() -> list[str]:
    """Usage of each bring-your-own prefix, e.g. 'onnx:PATH'."""
    return [usage for _, usage in _PREFIXES.values()]


# Embedders defined above this layer (the trained recognizer) or outside the project declare themselves as
# entry points of this group; they are imported the first time a name is looked up, so the registry
# (the faces layer) never imports upward. In pyproject.toml:
#   [project.entry-points."facebench.embedders"]
#   recognizer = "recognition.checkpoint_embedder"
ENTRY_POINT_GROUP = "facebench.embedders"
_plugins_loaded = False


def load_plugins() -> None:
    """Import every module declared under the entry-point group (each registers its embedders)."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        entry_point.load()


def list_embedders(pattern: str = "*") -> list[str]:
    load_plugins()
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def _accepted_options(factory: Callable[..., Embedder]) -> set[str]:
    """Keyword options a registered embedder class (or factory) takes."""
    parameters = inspect.signature(factory).parameters
    return {n for n, p in parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def get_embedder(name: str, **kwargs: Any) -> Embedder:
    """Build the embedder registered as `name` (or `PREFIX:TARGET?options`); an unknown name lists the known ones."""
    if name not in _REGISTRY:
        load_plugins()
    parsed = parse_embedder_name(name) if name not in _REGISTRY else None
    if parsed is not None:
        prefix, target, options = parsed
        both = sorted(set(options) & set(kwargs))
        if both:
            raise UserError(f"embedder '{name}': option {', '.join(both)} given in the name and as an argument")
        factory, kwargs = partial(_PREFIXES[prefix][0], target), {**options, **kwargs}
    elif name in _REGISTRY:
        factory = _REGISTRY[name]
    else:
        own = f"; or bring your own model: {', '.join(list_embedder_prefixes())}" if _PREFIXES else ""
        raise UserError(f"unknown embedder '{name}'; known embedders: {', '.join(list_embedders())}{own}")
    accepted = _accepted_options(factory)
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise UserError(f"embedder '{name}' has no option {', '.join(unknown)}; its options: {', '.join(sorted(accepted)) or 'none'}")
    embedder = factory(**kwargs)
    embedder.name = name
    return embedder.eval()


def load_state_dict(model: nn.Module, path: Path) -> None:
    """Load a state dict saved from `model`'s class; any mismatch is the user's file, named with its first bad key."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # unpickling refuses anything but tensors and plain containers
        raise UserError(f"{path} is not a PyTorch state dict that can be loaded safely: {error}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # a checkpoint that wraps the state dict
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{path} does not hold a state dict (a dict of tensors) of {type(model).__name__}; "
                        f"save one with torch.save(model.state_dict(), PATH)")
    expected = model.state_dict()
    for key, value in expected.items():
        if key not in state:
            raise UserError(f"{path} is not a {type(model).__name__} state dict: key '{key}' is missing")
        if tuple(state[key].shape) != tuple(value.shape):
            raise UserError(f"{path} is not a {type(model).__name__} state dict: key '{key}' has shape "
                            f"{tuple(state[key].shape)}, expected {tuple(value.shape)}")
    unexpected = [key for key in state if key not in expected]
    if unexpected:
        raise UserError(f"{path} is not a {type(model).__name__} state dict: unexpected key '{unexpected[0]}'"
                        + (f" (and {len(unexpected) - 1} more)" if len(unexpected) > 1 else ""))
    model.load_state_dict(state)


def random_weights_fingerprint(network: nn.Module) -> str:
    """A short hash of a network's weights, so two randomly initialised embedders never share a cache."""
    digest = hashlib.sha1()
    for tensor in network.state_dict().values():
        digest.update(tensor.detach().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]
