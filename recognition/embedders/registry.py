"""The embedder registry: `register_embedder` decorates a factory, `get_embedder(name)` builds one."""
from __future__ import annotations

import fnmatch
import hashlib
import json
from collections.abc import Callable
from typing import Any

import torch
from PIL import Image
from torch import nn

from bench.cli import UserError
from generators.align import CropGeometry

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

    def transform(self, image: Image.Image) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def cache_key(self) -> str:
        """Name plus a short hash of the configuration (and weights file, when there is one)."""
        blob = json.dumps({"name": self.name, **self.config}, sort_keys=True, default=str)
        return f"{self.name}-{hashlib.sha1(blob.encode()).hexdigest()[:10]}"


_REGISTRY: dict[str, Callable[..., Embedder]] = {}


def register_embedder(name: str):
    """Decorator: register a factory `(**kwargs) -> Embedder` under `name`."""

    def decorate(factory: Callable[..., Embedder]) -> Callable[..., Embedder]:
        if name in _REGISTRY:
            raise ValueError(f"embedder '{name}' registered twice")
        _REGISTRY[name] = factory
        return factory

    return decorate


def list_embedders(pattern: str = "*") -> list[str]:
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def get_embedder(name: str, **kwargs: Any) -> Embedder:
    """Build the embedder registered as `name`; an unknown name lists the known ones."""
    if name not in _REGISTRY:
        raise UserError(f"unknown embedder '{name}'; known embedders: {', '.join(list_embedders())}")
    embedder = _REGISTRY[name](**kwargs)
    embedder.name = name
    return embedder.eval()
