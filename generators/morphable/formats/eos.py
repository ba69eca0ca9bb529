"""The eos `.bin` reader (registered as `eos`).

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

import logging
import struct
from pathlib import Path

import numpy as np

from bench.common.cli import UserError
from generators.morphable.formats.common import METRES_TO_MM, MICROMETRES_TO_MM, _build, _colour, _flat_vertices, _scaled_basis, _std_from_variances, _triangles
from generators.morphable.model import MorphableModel, register_format

log = logging.getLogger(__name__)


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
                        f"not an eos model of the layout this reader knows (see generators/morphable/formats/eos.py)")

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


