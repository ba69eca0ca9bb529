"""The internal schema every 3D morphable model is converted into, and the registry of formats.

A model is linear in its coefficients:

    shape(alpha, beta) = mean_shape + sum_i alpha_i * identity_basis[i] + sum_j beta_j * expression_basis[j]

- Coordinates: millimetres; x to the image's right when the face looks at the camera, y up, z out of
  the face towards the camera; the origin roughly at the head's centre (readers recentre if needed).
- `identity_basis` is scaled by each component's standard deviation, so identity coefficients are
  N(0, 1). PCA expression models are scaled the same way (`expression_kind = "pca"`); blendshape
  models (ICT, FaceWarehouse-style) keep their deltas and take weights in [0, 1]
  (`expression_kind = "blendshapes"`).
- `albedo_mean` in [0, 1] RGB per vertex and `albedo_basis` scaled by standard deviation (both
  optional; models without a colour model use the procedural albedo of `generators.morphable.albedo`).
- `triangles` are 0-based vertex indices, counter-clockwise seen from outside.
- `landmarks_68`: vertex ids of the 68 Multi-PIE landmarks (-1 where the model has none).
- `regions`: optional boolean vertex masks (e.g. "lips", "brows", "eye_sockets", "nose").
- `origin_mm`: readers recentre the mean shape; this is the new origin in the file's own frame (mm),
  needed to reuse poses fitted in that frame (3DDFA's 300W-LP fits).

Formats register a reader with `@register_format(name, suffixes)`; `load_model(path, format=None)`
picks one by name or by file suffix.
"""
from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.common.atomic import atomic_path
from bench.common.cli import UserError

SCHEMA_VERSION = 2


class StaleModelCache(Exception):
    """A cached conversion written by another schema version: convert again."""


@dataclass
class MorphableModel:
    name: str
    mean_shape: np.ndarray  # (V, 3) float32, millimetres
    identity_basis: np.ndarray  # (K_id, V, 3) float32, scaled by std dev
    expression_basis: np.ndarray  # (K_exp, V, 3) float32
    triangles: np.ndarray  # (T, 3) int32, 0-based
    expression_kind: str = "pca"  # "pca" (coefficients N(0,1)) or "blendshapes" (weights in [0, 1])
    albedo_mean: np.ndarray | None = None  # (V, 3) float32 in [0, 1]
    albedo_basis: np.ndarray | None = None  # (K_alb, V, 3) float32, scaled by std dev
    uvs: np.ndarray | None = None  # (V, 2) float32
    landmarks_68: np.ndarray | None = None  # (68,) int32 vertex ids, -1 = none
    regions: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (V,) bool
    expression_names: list[str] = field(default_factory=list)
    origin_mm: np.ndarray | None = None  # where the recentred origin lies in the source file's frame (mm)

    def __post_init__(self) -> None:
        # contiguous float32 arrays: `shape` is a matrix product per image, it must not copy the basis
        for key in ("mean_shape", "identity_basis", "expression_basis", "albedo_mean", "albedo_basis", "uvs"):
            value = getattr(self, key)
            if value is not None:
                setattr(self, key, np.ascontiguousarray(value, dtype=np.float32))
        self.validate()

    @property
    def num_vertices(self) -> int:
        return int(self.mean_shape.shape[0])

    def validate(self) -> None:
        """Shapes and index ranges; a bad model raises ValueError naming the field."""
        v = self.mean_shape.shape[0]
        checks = {
            "mean_shape": self.mean_shape.shape == (v, 3),
            "identity_basis": self.identity_basis.ndim == 3 and self.identity_basis.shape[1:] == (v, 3),
            "expression_basis": self.expression_basis.ndim == 3 and self.expression_basis.shape[1:] == (v, 3),
            "triangles": self.triangles.ndim == 2 and self.triangles.shape[1] == 3
            and (self.triangles.size == 0 or (self.triangles.min() >= 0 and self.triangles.max() < v)),
            "expression_kind": self.expression_kind in ("pca", "blendshapes"),
            "albedo_mean": self.albedo_mean is None or self.albedo_mean.shape == (v, 3),
            "albedo_basis": self.albedo_basis is None or (self.albedo_basis.ndim == 3 and self.albedo_basis.shape[1:] == (v, 3)),
            "uvs": self.uvs is None or self.uvs.shape == (v, 2),
            "landmarks_68": self.landmarks_68 is None or (self.landmarks_68.shape == (68,) and self.landmarks_68.max() < v),
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"morphable model '{self.name}': field {name} has an invalid shape or range")
        for name, mask in self.regions.items():
            if mask.shape != (v,) or mask.dtype != bool:
                raise ValueError(f"morphable model '{self.name}': region {name} must be a ({v},) bool mask")

    def shape(self, identity: np.ndarray, expression: np.ndarray | None = None) -> np.ndarray:
        """Vertices (V, 3) for identity coefficients (and expression coefficients or weights)."""
        count = self.num_vertices * 3
        identity = np.asarray(identity, dtype=np.float32)
        flat = self.mean_shape.reshape(-1) + identity @ self.identity_basis[: len(identity)].reshape(len(identity), count)
        if expression is not None and len(expression):
            expression = np.asarray(expression, dtype=np.float32)
            flat = flat + expression @ self.expression_basis[: len(expression)].reshape(len(expression), count)
        return flat.reshape(-1, 3)

    def albedo(self, coefficients: np.ndarray) -> np.ndarray | None:
        """Per-vertex RGB in [0, 1] from colour coefficients, or None when the model has no colour model."""
        if self.albedo_mean is None:
            return None
        colour = self.albedo_mean
        if self.albedo_basis is not None and len(coefficients):
            colour = colour + np.tensordot(coefficients, self.albedo_basis[: len(coefficients)], axes=1)
        return np.clip(colour, 0.0, 1.0).astype(np.float32)

    # ---------------------------------------------------------------- npz cache of the converted model
    def save(self, path: str | Path) -> None:
        arrays = {"schema_version": np.array(SCHEMA_VERSION), "name": np.array(self.name),
                  "mean_shape": self.mean_shape, "identity_basis": self.identity_basis,
                  "expression_basis": self.expression_basis, "triangles": self.triangles,
                  "expression_kind": np.array(self.expression_kind),
                  "expression_names": np.array(self.expression_names, dtype=str)}
        for key in ("albedo_mean", "albedo_basis", "uvs", "landmarks_68", "origin_mm"):
            if getattr(self, key) is not None:
                arrays[key] = getattr(self, key)
        for region, mask in self.regions.items():
            arrays[f"region_{region}"] = mask
        with atomic_path(path) as temporary:
            np.savez(temporary, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> "MorphableModel":
        with np.load(path, allow_pickle=False) as stored:
            if int(stored["schema_version"]) != SCHEMA_VERSION:
                raise StaleModelCache(f"{path}: schema {int(stored['schema_version'])}, expected {SCHEMA_VERSION}")
            optional = {key: stored[key] for key in ("albedo_mean", "albedo_basis", "uvs", "landmarks_68", "origin_mm")
                        if key in stored}
            regions = {key[len("region_"):]: stored[key] for key in stored.files if key.startswith("region_")}
            return cls(name=str(stored["name"]), mean_shape=stored["mean_shape"],
                       identity_basis=stored["identity_basis"], expression_basis=stored["expression_basis"],
                       triangles=stored["triangles"], expression_kind=str(stored["expression_kind"]),
                       expression_names=stored["expression_names"].tolist(), regions=regions, **optional)


# -------------------------------------------------------------------------------- format registry

@dataclass(frozen=True)
class ModelFormat:
    name: str
    suffixes: tuple[str, ...]  # file name patterns, e.g. ("*.h5",)
    reader: Callable[[Path], MorphableModel]
    description: str


_FORMATS: dict[str, ModelFormat] = {}


def register_format(name: str, suffixes: tuple[str, ...], description: str):
    """Decorator: register `reader(path) -> MorphableModel` as format `name`."""

    def decorate(reader: Callable[[Path], MorphableModel]) -> Callable[[Path], MorphableModel]:
        if name in _FORMATS:
            raise ValueError(f"3DMM format '{name}' registered twice")
        _FORMATS[name] = ModelFormat(name, suffixes, reader, description)
        return reader

    return decorate


def _register_builtin_formats() -> None:
    """Import the modules whose readers register themselves (lazily: they import this module)."""
    from generators.morphable import formats, ict  # noqa: F401


def list_formats() -> list[str]:
    _register_builtin_formats()
    return sorted(_FORMATS)


def load_model(path: str | Path, format: str | None = None) -> MorphableModel:
    """Read a model file (or folder) in the named format, or the format its name matches."""
    _register_builtin_formats()
    path = Path(path)
    if not path.exists():
        raise UserError(f"3DMM file not found: {path}")
    if format is None:
        matches = [f for f in _FORMATS.values() if any(fnmatch.fnmatch(path.name, s) for s in f.suffixes)]
        if len(matches) != 1:
            known = "; ".join(f"{f.name} ({', '.join(f.suffixes)})" for f in _FORMATS.values())
            raise UserError(f"{path}: cannot tell the 3DMM format from the name; pass one of: {known}")
        format = matches[0].name
    if format not in _FORMATS:
        raise UserError(f"unknown 3DMM format '{format}'; known: {', '.join(list_formats())}")
    return _FORMATS[format].reader(path)
