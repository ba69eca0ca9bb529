"""What every 3DMM reader shares: unit constants, field checks that name the file and the field,
outward triangle winding, the schema builder, and MATLAB .mat loading (v5 with scipy, v7.3 with h5py).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from bench.common.cli import UserError
from generators.morphable.model import MorphableModel

log = logging.getLogger(__name__)


MICROMETRES_TO_MM = 1e-3
METRES_TO_MM = 1e3
FACE_EXTENT_MM = (50.0, 500.0)  # plausible largest bounding-box side of a mean face (or head)




def _flat_vertices(flat: np.ndarray, path: Path, field: str) -> np.ndarray:
    """An interleaved x1,y1,z1,x2,... vector (any 1-column/1-row shape) as (V, 3) float64."""
    flat = np.asarray(flat, dtype=np.float64).reshape(-1)
    if flat.size == 0 or flat.size % 3:
        raise UserError(f"{path}: '{field}' has {flat.size} values, not a positive multiple of 3 (x, y, z "
                        f"per vertex); is this file a complete model of the format given?")
    return flat.reshape(-1, 3)


def _scaled_basis(columns: np.ndarray, std: np.ndarray, num_vertices: int, path: Path, field: str) -> np.ndarray:
    """(3V, K) orthonormal columns times per-component standard deviations -> (K, V, 3) float32."""
    columns = np.asarray(columns)
    std = np.asarray(std, dtype=np.float64).reshape(-1)
    if columns.ndim != 2 or columns.shape[0] != 3 * num_vertices:
        raise UserError(f"{path}: '{field}' has shape {columns.shape}, expected ({3 * num_vertices}, K) "
                        f"for {num_vertices} vertices; the file is inconsistent or not of the format given")
    if columns.shape[1] != std.size:
        raise UserError(f"{path}: '{field}' has {columns.shape[1]} components but {std.size} standard "
                        f"deviations/variances are given for it; the file is inconsistent")
    if not np.all(np.isfinite(std)):
        raise UserError(f"{path}: the standard deviations/variances of '{field}' are not all finite")
    scaled = columns.astype(np.float32) * std.astype(np.float32)[None, :]
    return np.ascontiguousarray(scaled.T).reshape(-1, num_vertices, 3)


def _std_from_variances(variances: np.ndarray, path: Path, field: str) -> np.ndarray:
    variances = np.asarray(variances, dtype=np.float64).reshape(-1)
    if np.any(variances < -1e-9 * max(1.0, float(np.abs(variances).max(initial=0.0)))):
        raise UserError(f"{path}: '{field}' holds negative variances; is it really a PCA model's variances?")
    return np.sqrt(np.clip(variances, 0.0, None))


def _triangles(array: np.ndarray, num_vertices: int, path: Path, field: str, one_based: bool = False) -> np.ndarray:
    """(T, 3) int32, 0-based, with every index in range."""
    array = np.asarray(array)
    if array.ndim != 2 or array.shape[1] != 3 or array.shape[0] == 0:
        raise UserError(f"{path}: '{field}' has shape {array.shape}, expected (T, 3) triangles")
    if not np.issubdtype(array.dtype, np.integer):
        if not np.all(np.isfinite(array)) or not np.all(array == np.round(array)):
            raise UserError(f"{path}: '{field}' holds non-integer vertex indices")
    triangles = array.astype(np.int64) - (1 if one_based else 0)
    if triangles.min() < 0 or triangles.max() >= num_vertices:
        base = "1-based" if one_based else "0-based"
        raise UserError(f"{path}: '{field}' has vertex indices {int(array.min())}..{int(array.max())}, outside the "
                        f"{base} range of the {num_vertices} vertices; the file is inconsistent")
    return triangles.astype(np.int32)


def _outward_triangles(vertices: np.ndarray, triangles: np.ndarray) -> tuple[np.ndarray, bool]:
    """Triangles counter-clockwise seen from outside; returns them and whether the winding was flipped."""
    a, b, c = (vertices[triangles[:, k]].astype(np.float64) for k in range(3))
    area_vectors = np.cross(b - a, c - a)
    total = float(np.linalg.norm(area_vectors, axis=1).sum())
    if total == 0.0:
        return triangles, False
    summed = area_vectors.sum(axis=0)
    if abs(summed[2]) >= 0.25 * total:  # an open surface facing the camera: a face mask
        outward = summed[2] > 0
    else:  # wraps around (a whole head): normals should point away from the centre on balance
        centre = (vertices.max(axis=0) + vertices.min(axis=0)) / 2
        outward = float(np.einsum("ij,ij->", area_vectors, (a + b + c) / 3 - centre)) > 0
    if outward:
        return triangles, False
    return np.ascontiguousarray(triangles[:, [0, 2, 1]]), True


def _colour(mean: np.ndarray, basis: np.ndarray | None, path: Path, field: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Colour mean in [0, 1] (0-255 detected and divided) and its basis scaled alike."""
    scale = 1.0
    if float(np.max(mean)) > 1.5:
        log.info("%s: %s looks like 0-255 colour; dividing by 255", path, field)
        scale = 1.0 / 255.0
    mean = np.clip(mean * scale, 0.0, 1.0).astype(np.float32)
    if basis is not None:
        basis = (basis * np.float32(scale)).astype(np.float32)
    return mean, basis


def _build(fmt: str, path: Path, mean: np.ndarray, identity: np.ndarray, triangles: np.ndarray,
           expression: np.ndarray | None = None, **optional) -> MorphableModel:
    """Recentre, orient the triangles, cast and validate into a MorphableModel."""
    mean = np.asarray(mean, dtype=np.float64)
    origin = (mean.max(axis=0) + mean.min(axis=0)) / 2
    mean = mean - origin
    extent = float(np.ptp(mean, axis=0).max())
    if not FACE_EXTENT_MM[0] <= extent <= FACE_EXTENT_MM[1]:
        log.warning("%s: the mean face is %.4g mm across, outside the usual %g-%g mm; are the units right "
                    "for format %s?", path, extent, *FACE_EXTENT_MM, fmt)
    triangles, flipped = _outward_triangles(mean, triangles)
    if flipped:
        log.info("%s: triangles were clockwise seen from outside; winding flipped", path)
    if expression is None:
        expression = np.zeros((0, len(mean), 3), dtype=np.float32)
    try:
        return MorphableModel(name=f"{fmt}-{path.stem}", mean_shape=mean.astype(np.float32),
                              identity_basis=np.ascontiguousarray(identity, dtype=np.float32),
                              expression_basis=np.ascontiguousarray(expression, dtype=np.float32),
                              triangles=triangles.astype(np.int32), origin_mm=origin.astype(np.float32), **optional)
    except ValueError as error:
        raise UserError(f"{path}: the converted {fmt} model is inconsistent ({error}); "
                        f"is the file complete and of format {fmt}?") from None




def _load_mat(path: Path, fmt: str) -> dict[str, np.ndarray]:
    """Variables of a MATLAB .mat file: v5 with scipy.io, v7.3 (HDF5) with h5py."""
    import scipy.io

    try:
        return {k: v for k, v in scipy.io.loadmat(path).items() if not k.startswith("__")}
    except NotImplementedError:  # MATLAB v7.3, an HDF5 file
        pass
    except Exception as error:  # scipy raises ValueError/TypeError/OSError on files that are not .mat
        if not _is_hdf5(path):
            raise UserError(f"{path}: not a MATLAB .mat file scipy can read ({error}); "
                            f"format {fmt} expects a .mat model file") from None
    h5py = _h5py(path)
    variables = {}
    with h5py.File(path, "r") as handle:
        for key, item in handle.items():
            if isinstance(item, h5py.Dataset) and not key.startswith("#"):
                variables[key] = np.asarray(item).T  # MATLAB stores column-major: transpose back
    return variables


def _is_hdf5(path: Path) -> bool:
    try:
        import h5py
    except ImportError:
        return False
    return bool(h5py.is_hdf5(str(path)))


def _h5py(path: Path):
    try:
        import h5py
    except ImportError:
        raise UserError(f"{path}: reading this HDF5 file needs the h5py package; run `pip install h5py`") from None
    return h5py


def _mat_format_hint(variables: dict) -> str:
    if {"shapeMU", "shapePC"} <= variables.keys():
        return "; its variables look like the Basel Face Model 2009: pass format 'bfm2009'"
    if {"components", "trilist"} <= variables.keys():
        return "; its variables look like an LSFM model: pass format 'lsfm'"
    return f"; its variables are: {', '.join(sorted(variables)) or 'none'}"


def _require(variables: dict, key: str, path: Path, what: str) -> np.ndarray:
    if key not in variables:
        raise UserError(f"{path}: missing variable '{key}'; {what}{_mat_format_hint(variables)}")
    return np.asarray(variables[key])
