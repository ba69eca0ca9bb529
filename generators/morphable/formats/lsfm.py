"""The LSFM reader (registered as `lsfm`).

lsfm     LSFM (Booth et al.) `.mat`: mean (3V, 1 x 3V, 3V x 1 or V x 3) in millimetres, components
         (K x 3V or 3V x K, told apart by which side is 3V), eigenvalues (K, variances: basis scaled
         by sqrt), trilist (T x 3, 0-based; a list whose largest index equals V is taken as 1-based).
         Shape only (albedo None), no expression model. MATLAB v7.3 (HDF5) .mat files are read with
         h5py, transposing each variable back to MATLAB's orientation.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from bench.common.cli import UserError
from generators.morphable.formats.common import _build, _flat_vertices, _load_mat, _require, _scaled_basis, _std_from_variances, _triangles
from generators.morphable.model import MorphableModel, register_format

log = logging.getLogger(__name__)


@register_format("lsfm", ("lsfm*.mat", "*_lsfm.mat", "all_all_all*.mat"), "LSFM (Large Scale Facial Model) .mat")
def read_lsfm(path: Path) -> MorphableModel:
    path = Path(path)
    what = "format lsfm reads an LSFM .mat with mean, components, eigenvalues and trilist"
    mat = _load_mat(path, "lsfm")
    raw_mean = _require(mat, "mean", path, what)
    components = _require(mat, "components", path, what)
    eigenvalues = _require(mat, "eigenvalues", path, what)
    trilist = _require(mat, "trilist", path, what)
    mean = _flat_vertices(raw_mean, path, "mean")  # (V, 3) row-major flattens to x1,y1,z1,... too
    v = len(mean)
    if components.ndim != 2 or 3 * v not in components.shape:
        raise UserError(f"{path}: 'components' has shape {components.shape}; expected (K, {3 * v}) or ({3 * v}, K) "
                        f"for the {v} vertices of 'mean'")
    columns = components if components.shape[0] == 3 * v else components.T
    std = _std_from_variances(eigenvalues, path, "eigenvalues")
    identity = _scaled_basis(columns, std, v, path, "components")
    trilist = np.asarray(trilist)
    one_based = trilist.size > 0 and trilist.min() >= 1 and trilist.max() == v
    if one_based:
        log.warning("%s: 'trilist' indices run 1..%d: taken as 1-based", path, v)
    triangles = _triangles(trilist, v, path, "trilist", one_based=one_based)
    return _build("lsfm", path, mean, identity, triangles, expression_kind="pca")
