"""Readers for the 3D morphable model files users bring: BFM 2009, BFM 2017, FLAME, LSFM and eos.

None of these models can be downloaded by the project (each has its own licence and registration), so
every reader converts a file the user points at into the internal schema of
`generators.morphable.model` (millimetres, identity basis scaled by standard deviation, colours in
[0, 1], 0-based counter-clockwise triangles). Each is registered with `register_format`, so
`load_model(path, format=NAME)` (or the file's name alone, where a pattern below matches) reads it.

What every reader does the same way:
- required fields are checked first; a missing or malformed one raises `UserError` naming the file
  and the field, and saying what to do;
- the mean shape is recentred at its bounding-box centre (bases are differences, unaffected);
- triangles are made counter-clockwise seen from outside (`_outward_triangles`): for an open face mask
  (BFM, LSFM) the summed face normal must point to +z (out of the face, the schema's axis); for a
  wrap-around surface whose summed normal is small against its area (FLAME's whole head) the normals
  must point away from the bounding-box centre on balance. The winding is flipped if not, and logged;
- `name` is "<format>-<file stem>"; `landmarks_68` is None unless the file carries them (only eos
  files can, as ibug/Multi-PIE ids "1".."68");
- a mean face whose largest bounding-box side is not 50-500 mm is logged as a warning (wrong units?).

Per format (units and layouts, with what is assumed where the model's documentation is silent):

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
flame    FLAME `generic_model.pkl` (also male/female_model.pkl), a Python 2 pickle whose arrays are
         numpy arrays or chumpy `Ch` objects (the array is the `x` entry of their pickled __dict__),
         plus a scipy.sparse J_regressor. Read WITHOUT chumpy or the pickle's own classes: the
         unpickler resolves only numpy array/dtype/scalar reconstructors and a few harmless builtins
         (set, frozenset, object, slice, complex, bytearray, copyreg's reconstructors, and
         _codecs.encode for text encodings only); any chumpy or scipy.sparse class becomes an inert
         stand-in that only keeps its pickled state; every other global (os.system, builtins.eval,
         ...) is refused with a UserError before anything runs. Python 2 pickles need
         encoding="latin1", which is used.
         v_template (V x 3) in metres -> x1000 to mm; shapedirs (V x 3 x K) in metres: the first 300
         components are identity, the rest (100 in FLAME 2017-2023) expression (expression_kind
         "pca"). Assumption: FLAME's shape and expression components are already scaled by their
         standard deviations (as SMPL's are), so coefficients ~ N(0, 1) and no rescaling is applied.
         f (T x 3, 0-based). No colour model (FLAME's albedo is a separate file), no landmarks (the
         landmark embedding is a separate file).
lsfm     LSFM (Booth et al.) `.mat`: mean (3V, 1 x 3V, 3V x 1 or V x 3) in millimetres, components
         (K x 3V or 3V x K, told apart by which side is 3V), eigenvalues (K, variances: basis scaled
         by sqrt), trilist (T x 3, 0-based; a list whose largest index equals V is taken as 1-based).
         Shape only (albedo None), no expression model. MATLAB v7.3 (HDF5) .mat files are read with
         h5py, transposing each variable back to MATLAB's orientation.
eos      An eos morphable model `.bin` as eos::morphablemodel::save_model writes it. Layout, from
         eos's MorphableModel.hpp, PcaModel.hpp, Blendshape.hpp and io/eigen_cerealisation.hpp:
         save_model uses cereal's (non-portable) BinaryOutputArchive, i.e. raw little-endian values
         with no header. A cereal PortableBinaryOutputArchive file, which starts with one byte
         (1 = little-endian data, 0 = big-endian), is also accepted, as the brief anticipated.
           uint32   version of the MorphableModel class (cereal writes it before the class's first
                    use): 1, 2, 3 or 4 (eos 1.x writes 4).
           PcaModel shape_model
           PcaModel color_model            (may be empty: rows 0 mean, 0 x 0 basis)
           if version >= 2: optional<variant<PcaModel, Blendshapes>> expression_model
                    = bool (1 byte) "nullopt"; if 0: int32 variant index (0 = PcaModel,
                      1 = Blendshapes) then the PcaModel or the Blendshapes
           if version >= 3: optional<unordered_map<string, int>> landmark_definitions
                    = bool nullopt; if 0: uint64 count, then count x (string key, int32 vertex id)
           vector<array<double, 2>> texture_coordinates = uint64 count, count x 2 float64
           if version == 4: vector<array<int, 3>> texture_triangle_indices = uint64 count, count x 3 int32
         PcaModel  = Eigen mean (3V x 1), Eigen orthonormal_pca_basis (3V x K, orthonormal columns),
                     Eigen eigenvalues (K x 1, variances), vector<array<int, 3>> triangle_list
                     (uint64 count, count x 3 int32, 0-based). No class version is written for it.
         Eigen     = int32 rows, int32 cols, rows*cols float32 in column-major (Eigen's default) order.
         Blendshapes = uint64 count, count x (string name, Eigen deformation 3V x 1).
         string    = uint64 length, then that many bytes (UTF-8).
         Vectors are interleaved x1,y1,z1,... (colours r1,g1,b1,...). Basis = orthonormal basis *
         sqrt(eigenvalues) (eos's rescale_pca_basis). A PCA expression model's mean is added to the
         mean shape (eos's draw_sample adds it); blendshape expression models keep their deltas
         (expression_kind "blendshapes"). Not supported: the cv::Mat files of eos before 2017
         (version 0) and the one-week layout of early March 2017 that stored two bases.
         Units: eos keeps whatever its source model used (the Surrey Face Model is in millimetres;
         eos's BFM 2009 converter keeps BFM's micrometres), so the unit is inferred from the mean
         face's largest bounding-box side L: L > 5000 micrometres (/1000), 50 < L <= 5000 millimetres,
         5 < L <= 50 centimetres (x10), L <= 5 metres (x1000); logged. Colours are in [0, 1] (eos's
         converters divide BFM's 0-255 by 255); a colour mean above 1.5 is taken as 0-255.
         Landmark definitions whose keys are all "1".."68" (ibug numbering, which is the Multi-PIE
         68 order) fill landmarks_68 (-1 for ids not given). Texture coordinates are kept as `uvs`
         only when there is one per vertex and no separate texture triangulation.
"""
from __future__ import annotations

import importlib
import logging
import pickle
import struct
from pathlib import Path

import numpy as np

from bench.cli import UserError
from generators.morphable.model import MorphableModel, register_format

log = logging.getLogger(__name__)

MICROMETRES_TO_MM = 1e-3
METRES_TO_MM = 1e3
FACE_EXTENT_MM = (50.0, 500.0)  # plausible largest bounding-box side of a mean face (or head)
FLAME_IDENTITY_COMPONENTS = 300

# --------------------------------------------------------------------------------------------- shared


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


# ------------------------------------------------------------------------------------------ .mat files

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


# ------------------------------------------------------------------------------------------- bfm2009

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


# ------------------------------------------------------------------------------------------- bfm2017

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


# --------------------------------------------------------------------------------------------- flame

class _PickledStandIn:
    """An inert stand-in for a chumpy or scipy.sparse object: keeps constructor args and pickled state."""

    source = "?"
    args: tuple = ()
    state = None

    def __new__(cls, *args, **kwargs):
        instance = object.__new__(cls)
        instance.args = args
        return instance

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        self.state = state


_STAND_INS: dict[str, type] = {}


def _stand_in(module: str, name: str) -> type:
    key = f"{module}.{name}"
    if key not in _STAND_INS:
        _STAND_INS[key] = type(name, (_PickledStandIn,), {"source": key})
    return _STAND_INS[key]


def _numpy_core(submodule: str):
    for prefix in ("numpy._core.", "numpy.core."):
        try:
            return importlib.import_module(prefix + submodule)
        except ImportError:
            continue
    raise ImportError(submodule)


def _text_to_bytes(text: str, encoding: str = "utf-8") -> bytes:
    """`_codecs.encode` limited to text encodings (no zlib/bz2 codecs: no decompression bombs)."""
    if not isinstance(text, str) or encoding.lower().replace("-", "").replace("_", "") not in (
            "latin1", "iso88591", "utf8", "ascii"):
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode(encoding)


_SAFE_BUILTINS = {"set", "frozenset", "object", "slice", "complex", "bytearray"}
_SAFE_NUMPY_CORE = {("multiarray", "_reconstruct"), ("multiarray", "scalar"), ("numeric", "_frombuffer")}
_MODULE_RENAMES = {"__builtin__": "builtins", "copy_reg": "copyreg"}  # Python 2 names


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only numpy's array reconstructors and a few builtins; chumpy/scipy.sparse become stand-ins."""

    def __init__(self, handle, path: Path):
        super().__init__(handle, encoding="latin1")
        self.path = path

    def find_class(self, module: str, name: str):
        module = _MODULE_RENAMES.get(module, module)
        if module == "builtins" and name in _SAFE_BUILTINS:
            return getattr(__import__("builtins"), name)
        if (module, name) in {("copyreg", "_reconstructor"), ("copyreg", "__newobj__")}:
            return getattr(importlib.import_module(module), name)
        if (module, name) == ("_codecs", "encode"):  # how Python 3 protocol-2 pickles write bytes
            return _text_to_bytes
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        for prefix in ("numpy.core.", "numpy._core."):
            if module.startswith(prefix) and (module[len(prefix):], name) in _SAFE_NUMPY_CORE:
                return getattr(_numpy_core(module[len(prefix):]), name)
        if module == "chumpy" or module.startswith("chumpy."):
            return _stand_in(module, name)
        if (module == "scipy.sparse" or module.startswith("scipy.sparse.")) and name.endswith(("_matrix", "_array")):
            return _stand_in(module, name)
        raise UserError(f"{self.path}: refusing to unpickle '{module}.{name}': a FLAME model holds only numpy, "
                        f"scipy.sparse and chumpy objects, so this file is not a FLAME model or has been "
                        f"tampered with; do not open it with pickle elsewhere either")


def _load_pickle(path: Path) -> object:
    try:
        with open(path, "rb") as handle:
            return _RestrictedUnpickler(handle, path).load()
    except UserError:
        raise
    except Exception as error:  # UnpicklingError, EOFError, ValueError, ... from a damaged or foreign file
        raise UserError(f"{path}: not a readable FLAME pickle ({type(error).__name__}: {error}); "
                        f"format flame reads FLAME's generic_model.pkl") from None


def _plain_array(value: object, path: Path, field: str) -> np.ndarray:
    """A numpy array from a numpy value or a chumpy Ch stand-in (its `x`)."""
    for _ in range(16):
        if not isinstance(value, _PickledStandIn):
            break
        state = value.state
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], dict):
            state = state[0]
        if not (isinstance(state, dict) and "x" in state):
            raise UserError(f"{path}: '{field}' is a pickled {value.source} without a plain array ('x'); "
                            f"only plain chumpy arrays can be read without chumpy: re-save the model with "
                            f"numpy arrays")
        value = state["x"]
    try:
        array = np.asarray(value)
    except Exception:
        array = np.asarray(None, dtype=object)
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number)):
        raise UserError(f"{path}: '{field}' is not a numeric array ({type(value).__name__}); is this a FLAME model?")
    return array


@register_format("flame", ("generic_model.pkl", "male_model.pkl", "female_model.pkl", "FLAME*.pkl", "*flame*.pkl"),
                 "FLAME (generic_model.pkl; read without chumpy, with a restricted unpickler)")
def read_flame(path: Path) -> MorphableModel:
    path = Path(path)
    content = _load_pickle(path)
    if not isinstance(content, dict):
        raise UserError(f"{path}: the pickle holds a {type(content).__name__}, not FLAME's dict of arrays; "
                        f"format flame reads FLAME's generic_model.pkl")

    def field(key: str) -> np.ndarray:
        if key not in content:
            raise UserError(f"{path}: missing key '{key}'; format flame reads FLAME's generic_model.pkl "
                            f"(keys v_template, shapedirs, f); keys present: {', '.join(sorted(map(str, content)))}")
        return _plain_array(content[key], path, key)

    template = field("v_template")
    if template.ndim != 2 or template.shape[1] != 3:
        raise UserError(f"{path}: 'v_template' has shape {template.shape}, expected (V, 3)")
    v = len(template)
    shapedirs = field("shapedirs")
    if shapedirs.ndim != 3 or shapedirs.shape[:2] != (v, 3):
        raise UserError(f"{path}: 'shapedirs' has shape {shapedirs.shape}, expected ({v}, 3, K)")
    triangles = _triangles(field("f"), v, path, "f")
    components = np.moveaxis(shapedirs.astype(np.float64) * METRES_TO_MM, 2, 0)  # (K, V, 3)
    identity = components[:FLAME_IDENTITY_COMPONENTS]
    expression = components[FLAME_IDENTITY_COMPONENTS:]
    return _build("flame", path, template * METRES_TO_MM, identity, triangles, expression, expression_kind="pca")


# ---------------------------------------------------------------------------------------------- lsfm

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


# ----------------------------------------------------------------------------------------------- eos

EOS_VERSIONS = (1, 2, 3, 4)


class _CerealReader:
    """Sequential reads of a cereal binary archive, each failure naming the field being read."""

    def __init__(self, data: bytes, path: Path, offset: int, endian: str):
        self.data, self.path, self.offset, self.endian = data, path, offset, endian

    def _take(self, size: int, field: str) -> bytes:
        if size < 0 or self.offset + size > len(self.data):
            raise UserError(f"{self.path}: file ends while reading '{field}' (needs {size} bytes at offset "
                            f"{self.offset} of {len(self.data)}); the file is truncated or not an eos model "
                            f"(.bin written by eos::morphablemodel::save_model, versions 1-4)")
        chunk = self.data[self.offset : self.offset + size]
        self.offset += size
        return chunk

    def scalar(self, code: str, field: str):
        return struct.unpack(self.endian + code, self._take(struct.calcsize(code), field))[0]

    def array(self, dtype: str, count: int, field: str) -> np.ndarray:
        kind = np.dtype(dtype).newbyteorder(self.endian)
        return np.frombuffer(self._take(count * kind.itemsize, field), dtype=kind).astype(dtype)

    def boolean(self, field: str) -> bool:
        value = self.scalar("B", field)
        if value > 1:
            raise UserError(f"{self.path}: '{field}' should be a bool (0 or 1) but is {value} at offset "
                            f"{self.offset - 1}; not an eos model of the layout this reader knows")
        return bool(value)

    def size(self, field: str) -> int:
        return int(self.scalar("Q", field))

    def eigen(self, field: str) -> np.ndarray:
        rows, cols = self.scalar("i", f"{field} rows"), self.scalar("i", f"{field} cols")
        if rows < 0 or cols < 0:
            raise UserError(f"{self.path}: '{field}' has a negative size {rows} x {cols}; not an eos model")
        values = self.array("float32", rows * cols, field)
        return values.reshape(cols, rows).T  # Eigen stores column-major

    def string(self, field: str) -> str:
        raw = self._take(self.size(f"{field} length"), field)
        return raw.decode("utf-8", errors="replace")

    def triangle_list(self, field: str) -> np.ndarray:
        count = self.size(f"{field} count")
        return self.array("int32", 3 * count, field).reshape(count, 3)

    def pca_model(self, field: str) -> dict:
        mean = self.eigen(f"{field}.mean").reshape(-1)
        basis = self.eigen(f"{field}.orthonormal_pca_basis")
        eigenvalues = self.eigen(f"{field}.eigenvalues").reshape(-1)
        triangles = self.triangle_list(f"{field}.triangle_list")
        return {"field": field, "mean": mean, "basis": basis, "eigenvalues": eigenvalues, "triangles": triangles}

    def blendshapes(self, field: str) -> list[tuple[str, np.ndarray]]:
        count = self.size(f"{field} count")
        return [(self.string(f"{field}[{i}].name"), self.eigen(f"{field}[{i}].deformation").reshape(-1))
                for i in range(count)]


def _eos_header(data: bytes, path: Path) -> tuple[int, str, int]:
    """(offset after the version, endianness, version): plain binary archive, or portable with its flag byte."""
    if len(data) >= 4 and struct.unpack("<I", data[:4])[0] in EOS_VERSIONS:
        return 4, "<", struct.unpack("<I", data[:4])[0]
    if len(data) >= 5 and data[0] in (0, 1):
        endian = "<" if data[0] == 1 else ">"
        version = struct.unpack(endian + "I", data[1:5])[0]
        if version in EOS_VERSIONS:
            return 5, endian, version
    found = struct.unpack("<I", data[:4])[0] if len(data) >= 4 else None
    raise UserError(f"{path}: not an eos morphable model of versions 1-4 (first uint32 is {found}); eos files "
                    f"older than 2017 (cv::Mat, version 0) must be re-downloaded or re-converted with a current eos")


def _eos_scale(mean: np.ndarray, path: Path) -> float:
    extent = float(np.ptp(mean, axis=0).max()) if len(mean) else 0.0
    if extent > 5000:
        unit, scale = "micrometres", MICROMETRES_TO_MM
    elif extent > 50:
        unit, scale = "millimetres", 1.0
    elif extent > 5:
        unit, scale = "centimetres", 10.0
    else:
        unit, scale = "metres", METRES_TO_MM
    log.info("%s: mean face %.4g units across: taken as %s", path, extent, unit)
    return scale


def _eos_pca(model: dict, num_vertices: int, path: Path) -> tuple[np.ndarray, np.ndarray]:
    field = model["field"]
    mean = _flat_vertices(model["mean"], path, f"{field}.mean")
    if len(mean) != num_vertices:
        raise UserError(f"{path}: '{field}.mean' has {len(mean)} vertices but the shape model {num_vertices}; "
                        f"the file is inconsistent")
    std = _std_from_variances(model["eigenvalues"], path, f"{field}.eigenvalues")
    return mean, _scaled_basis(model["basis"], std, num_vertices, path, f"{field}.orthonormal_pca_basis")


@register_format("eos", ("sfm_*.bin", "bfm*.bin", "*eos*.bin"), "eos morphable model (.bin, cereal binary archive)")
def read_eos(path: Path) -> MorphableModel:
    path = Path(path)
    data = path.read_bytes()
    offset, endian, version = _eos_header(data, path)
    reader = _CerealReader(data, path, offset, endian)
    shape = reader.pca_model("shape_model")
    colour = reader.pca_model("color_model")
    expression = None
    if version >= 2 and not reader.boolean("expression_model nullopt"):
        index = reader.scalar("i", "expression_model variant index")
        if index == 0:
            expression = ("pca", reader.pca_model("expression_model"))
        elif index == 1:
            expression = ("blendshapes", reader.blendshapes("expression_model"))
        else:
            raise UserError(f"{path}: 'expression_model' variant index is {index}, expected 0 (PcaModel) or "
                            f"1 (Blendshapes); not an eos model of the layout this reader knows")
    landmarks: dict[str, int] = {}
    if version >= 3 and not reader.boolean("landmark_definitions nullopt"):
        for i in range(reader.size("landmark_definitions count")):
            key = reader.string(f"landmark_definitions[{i}] key")
            landmarks[key] = reader.scalar("i", f"landmark_definitions[{i}] value")
    uv_count = reader.size("texture_coordinates count")
    texture_coordinates = reader.array("float64", 2 * uv_count, "texture_coordinates").reshape(uv_count, 2)
    texture_triangles = reader.triangle_list("texture_triangle_indices") if version >= 4 else np.zeros((0, 3))
    if reader.offset != len(data):
        raise UserError(f"{path}: {len(data) - reader.offset} bytes are left after the model (version {version}); "
                        f"not an eos model of the layout this reader knows (see generators/morphable/formats.py)")

    mean_raw = _flat_vertices(shape["mean"], path, "shape_model.mean")
    v = len(mean_raw)
    scale = _eos_scale(mean_raw, path)
    _, identity = _eos_pca(shape, v, path)
    mean = mean_raw * scale
    identity = identity * np.float32(scale)
    triangles = _triangles(shape["triangles"], v, path, "shape_model.triangle_list")
    optional: dict = {"expression_kind": "pca"}
    expression_basis = None
    if expression is not None and expression[0] == "pca":
        expression_mean, expression_basis = _eos_pca(expression[1], v, path)
        mean = mean + expression_mean * scale
        expression_basis = expression_basis * np.float32(scale)
    elif expression is not None:
        names, deltas = [], []
        for name, deformation in expression[1]:
            deltas.append(_flat_vertices(deformation, path, f"expression_model blendshape '{name}'") * scale)
            if len(deltas[-1]) != v:
                raise UserError(f"{path}: blendshape '{name}' has {len(deltas[-1])} vertices but the shape model "
                                f"{v}; the file is inconsistent")
            names.append(name)
        expression_basis = np.stack(deltas) if deltas else None
        optional.update(expression_kind="blendshapes", expression_names=names)
    if colour["mean"].size:
        colour_mean, colour_basis = _eos_pca(colour, v, path)
        optional["albedo_mean"], optional["albedo_basis"] = _colour(colour_mean, colour_basis, path, "color_model.mean")
    if landmarks and all(key.isdigit() and 1 <= int(key) <= 68 for key in landmarks):
        ids = -np.ones(68, dtype=np.int32)
        for key, vertex in landmarks.items():
            if not 0 <= vertex < v:
                raise UserError(f"{path}: landmark '{key}' is vertex {vertex}, outside the {v} vertices")
            ids[int(key) - 1] = vertex
        optional["landmarks_68"] = ids
    elif landmarks:
        log.info("%s: landmark definitions are not ibug 1-68 ids; not used", path)
    if uv_count == v and len(texture_triangles) == 0:
        optional["uvs"] = texture_coordinates.astype(np.float32)
    elif uv_count:
        log.info("%s: texture coordinates are not one per vertex (separate uv triangulation); not used", path)
    return _build("eos", path, mean, identity, triangles, expression_basis, **optional)


__all__ = ["read_bfm2009", "read_bfm2017", "read_flame", "read_lsfm", "read_eos"]
