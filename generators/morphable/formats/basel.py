"""The Basel Face Model readers (registered as `bfm2009` and `bfm2017`).

bfm2009  `01_MorphableModel.mat` of the Basel Face Model 2009 (PublicMM1), MATLAB v5 (scipy.io).
         shapeMU (3V x 1) in micrometres, vertices interleaved x1,y1,z1,x2,...; shapePC (3V x K)
         orthonormal columns; shapeEV (K x 1) standard deviations (not variances) in micrometres;
         texMU (3V x 1) RGB in 0-255, texPC (3V x K), texEV (K x 1) standard deviations in 0-255 units;
         tl (T x 3) 1-based. Converted: shape / 1000 to mm, basis = PC * EV (/ 1000), colour / 255.
         BFM's own triangles are clockwise seen from the front (eos's converter swaps them too); the
         geometric test above decides, so either winding in the file gives outward triangles.
         No expression model: expression_basis is (0, V, 3). The segment masks (segbin) are not read.
         Same .mat suffix as LSFM, so the name pattern is the exact file name "01_MorphableModel.mat";
         another name needs format="bfm2009", and an LSFM file given as bfm2009 is named as such.
bfm2017  Basel Face Model 2017 (and 2019, and Basel's h5 release of the 2009 model): scalismo HDF5
         read with h5py. Groups shape/, color/ and expression/, each with model/mean (3V),
         model/pcaBasis (3V x K, orthonormal columns; a K x 3V dataset is transposed) and
         model/pcaVariance (K, variances: basis = pcaBasis * sqrt(pcaVariance));
         shape/representer/cells (3 x T, 0-based). Units: BFM 2017 is in millimetres (the scalismo
         models are; the mean face is about 150 mm wide, and eos's own BFM 2017 converter does not
         rescale it), so no conversion. Colours are in [0, 1] in these files; a colour mean above 1.5
         is taken as 0-255 and divided by 255. The expression model's mean is not zero (it is a mean
         expression): it is added to the mean shape, as eos and scalismo do when drawing a sample.
         color/ and expression/ are optional (the 2009 h5 release has no expression model).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.common.cli import UserError
from generators.morphable.formats.common import MICROMETRES_TO_MM, _build, _colour, _flat_vertices, _h5py, _load_mat, _require, _scaled_basis, _std_from_variances, _triangles
from generators.morphable.model import MorphableModel, register_format


@register_format("bfm2009", ("01_MorphableModel.mat",), "Basel Face Model 2009 (PublicMM1/01_MorphableModel.mat)")
def read_bfm2009(path: Path) -> MorphableModel:
    path = Path(path)
    what = "format bfm2009 reads PublicMM1/01_MorphableModel.mat of the Basel Face Model 2009"
    mat = _load_mat(path, "bfm2009")
    names = ("shapeMU", "shapePC", "shapeEV", "texMU", "texPC", "texEV", "tl")
    fields = {k: _require(mat, k, path, what) for k in names}
    mean = _flat_vertices(fields["shapeMU"], path, "shapeMU") * MICROMETRES_TO_MM
    v = len(mean)
    identity = _scaled_basis(fields["shapePC"], fields["shapeEV"] * MICROMETRES_TO_MM, v, path, "shapePC")
    tex_mean = _flat_vertices(fields["texMU"], path, "texMU")
    if len(tex_mean) != v:
        raise UserError(f"{path}: 'texMU' has {len(tex_mean)} vertices but 'shapeMU' {v}; the file is inconsistent")
    tex_basis = _scaled_basis(fields["texPC"], fields["texEV"], v, path, "texPC")
    albedo_mean = np.clip(tex_mean / 255.0, 0.0, 1.0).astype(np.float32)
    albedo_basis = (tex_basis / np.float32(255.0)).astype(np.float32)
    triangles = _triangles(fields["tl"], v, path, "tl", one_based=True)
    return _build("bfm2009", path, mean, identity, triangles, expression_kind="pca",
                  albedo_mean=albedo_mean, albedo_basis=albedo_basis)




def _h5_dataset(handle, key: str, path: Path, required: bool = True) -> np.ndarray | None:
    if key not in handle:
        if not required:
            return None
        raise UserError(f"{path}: missing dataset '{key}'; format bfm2017 reads the Basel Face Model 2017/2019 "
                        f".h5 (e.g. model2017-1_bfm_nomouth.h5) with shape/, color/ and expression/ models")
    return np.asarray(handle[key])


def _h5_pca(handle, group: str, num_vertices: int | None, path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """(mean (V, 3), basis (K, V, 3)) of group/model, or None when the group is absent (except shape)."""
    if group != "shape" and group not in handle:
        return None
    mean = _flat_vertices(_h5_dataset(handle, f"{group}/model/mean", path), path, f"{group}/model/mean")
    if num_vertices is not None and len(mean) != num_vertices:
        raise UserError(f"{path}: '{group}/model/mean' has {len(mean)} vertices but the shape model "
                        f"{num_vertices}; the file is inconsistent")
    basis = _h5_dataset(handle, f"{group}/model/pcaBasis", path)
    variance = _h5_dataset(handle, f"{group}/model/pcaVariance", path).reshape(-1)
    if basis.ndim == 2 and basis.shape[0] != 3 * len(mean) and basis.shape[1] == 3 * len(mean):
        basis = basis.T
    std = _std_from_variances(variance, path, f"{group}/model/pcaVariance")
    return mean, _scaled_basis(basis, std, len(mean), path, f"{group}/model/pcaBasis")


@register_format("bfm2017", ("model2017*.h5", "model2019*.h5", "*bfm*.h5"),
                 "Basel Face Model 2017/2019 (scalismo .h5, e.g. model2017-1_bfm_nomouth.h5)")
def read_bfm2017(path: Path) -> MorphableModel:
    path = Path(path)
    h5py = _h5py(path)
    if not h5py.is_hdf5(str(path)):
        raise UserError(f"{path}: not an HDF5 file; format bfm2017 reads the Basel Face Model .h5 files")
    with h5py.File(path, "r") as handle:
        mean, identity = _h5_pca(handle, "shape", None, path)
        v = len(mean)
        cells = _h5_dataset(handle, "shape/representer/cells", path)
        if cells.ndim == 2 and cells.shape[0] == 3 and cells.shape[1] != 3:
            cells = cells.T
        triangles = _triangles(cells, v, path, "shape/representer/cells")
        colour = _h5_pca(handle, "color", v, path)
        expression = _h5_pca(handle, "expression", v, path)
    optional = {}
    if colour is not None:
        optional["albedo_mean"], optional["albedo_basis"] = _colour(colour[0], colour[1], path, "color/model/mean")
    expression_basis = None
    if expression is not None:
        mean = mean + expression[0]  # the mean expression
        expression_basis = expression[1]
    return _build("bfm2017", path, mean, identity, triangles, expression_basis, expression_kind="pca", **optional)
