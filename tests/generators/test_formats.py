"""Readers of user-supplied 3DMM files, each on a tiny synthetic model written in that exact on-disk format.

The real models cannot be downloaded here, so every test writes a ~20-vertex model (a face-like height
field, or a closed head-like ellipsoid for FLAME) with known components in the format's layout, reads
it back through `load_model`, and checks the conversion into the schema: millimetres, recentred mean,
std-scaled bases, 0-based outward triangles, colours in [0, 1], and a UserError naming a missing field.
"""
from __future__ import annotations

import contextlib
import os
import pickle
import struct
import sys
import types

import h5py
import numpy as np
import pytest
import scipy.io
import scipy.sparse

import generators.morphable.formats  # noqa: F401  (registers the formats)
from bench.common.cli import UserError
from generators.morphable.model import load_model

RNG_SEED = 20180908
ABSENT = object()


# ----------------------------------------------------------------------------------------- meshes

def face_mask(nx: int = 5, ny: int = 4, offset=(10.0, 20.0, 30.0)) -> tuple[np.ndarray, np.ndarray]:
    """A face-sized height field bulging towards +z (mm), off-centre; triangles counter-clockwise from +z."""
    x, y = np.meshgrid(np.linspace(-75, 75, nx), np.linspace(-100, 100, ny))
    z = 60 * (1 - (x / 90) ** 2 - (y / 120) ** 2)
    vertices = np.stack([x, y, z], -1).reshape(-1, 3) + np.asarray(offset)
    triangles = []
    for j in range(ny - 1):
        for i in range(nx - 1):
            v00, v10, v01, v11 = j * nx + i, j * nx + i + 1, (j + 1) * nx + i, (j + 1) * nx + i + 1
            triangles += [(v00, v10, v11), (v00, v11, v01)]
    return vertices, np.array(triangles)


def head_ellipsoid(rings: int = 3, segments: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """A closed head-sized ellipsoid in metres (as FLAME), off-centre; triangles outward."""
    points = [(0.0, 1.0, 0.0)]
    for r in range(1, rings + 1):
        polar = np.pi * r / (rings + 1)
        for s in range(segments):
            azimuth = 2 * np.pi * s / segments
            points.append((np.sin(polar) * np.sin(azimuth), np.cos(polar), np.sin(polar) * np.cos(azimuth)))
    points.append((0.0, -1.0, 0.0))
    vertices = np.array(points) * np.array([0.075, 0.11, 0.09]) + np.array([0.01, 0.02, -0.03])
    ring = lambda r, s: 1 + (r - 1) * segments + s % segments  # noqa: E731
    bottom = len(points) - 1
    triangles = []
    for s in range(segments):
        triangles.append((0, ring(1, s), ring(1, s + 1)))
        for r in range(1, rings):
            triangles += [(ring(r, s), ring(r + 1, s), ring(r + 1, s + 1)),
                          (ring(r, s), ring(r + 1, s + 1), ring(r, s + 1))]
        triangles.append((bottom, ring(rings, s + 1), ring(rings, s)))
    triangles = np.array(triangles)
    outward = outward_scores(vertices, triangles)
    triangles[outward < 0] = triangles[outward < 0][:, [0, 2, 1]]  # make the fixture itself outward
    assert (outward_scores(vertices, triangles) > 0).all()
    return vertices, triangles


def normals(vertices, triangles) -> np.ndarray:
    a, b, c = (vertices[triangles[:, k]] for k in range(3))
    return np.cross(b - a, c - a)


def outward_scores(vertices, triangles) -> np.ndarray:
    """Per triangle: its normal along the direction from the centre to its centroid (> 0 = outward)."""
    centre = (vertices.max(0) + vertices.min(0)) / 2
    centroids = vertices[triangles].mean(1)
    return np.einsum("ij,ij->i", normals(vertices, triangles), centroids - centre)


def recentred(vertices: np.ndarray) -> np.ndarray:
    return vertices - (vertices.max(0) + vertices.min(0)) / 2


def orthonormal(rows: int, cols: int, rng) -> np.ndarray:
    return np.linalg.qr(rng.normal(size=(rows, cols)))[0]


def as_vertices(flat: np.ndarray) -> np.ndarray:
    return np.asarray(flat).reshape(-1, 3)


def as_components(columns: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(3V, K) columns times std -> (K, V, 3), the schema's layout."""
    return (columns * np.asarray(std).reshape(1, -1)).T.reshape(len(std), -1, 3)


def check_mask_outward(model):
    assert model.triangles.dtype == np.int32 and model.triangles.min() >= 0
    assert (normals(model.mean_shape.astype(np.float64), model.triangles)[:, 2] > 0).all()


def check_common(model, expected_mean_mm):
    assert model.mean_shape.dtype == np.float32 and model.identity_basis.dtype == np.float32
    np.testing.assert_allclose(model.mean_shape, recentred(expected_mean_mm), atol=1e-3)
    np.testing.assert_allclose(model.mean_shape.max(0) + model.mean_shape.min(0), 0, atol=1e-3)


# ---------------------------------------------------------------------------------------- bfm2009

def write_bfm2009(path, winding: str = "bfm", drop: str | None = None) -> dict:
    rng = np.random.default_rng(RNG_SEED)
    vertices, triangles = face_mask()
    v = len(vertices)
    tl = triangles[:, [0, 2, 1]] if winding == "bfm" else triangles  # BFM's own triangles are clockwise
    fields = {
        "shapeMU": (vertices * 1000).reshape(-1, 1).astype(np.float32),  # micrometres
        "shapePC": orthonormal(3 * v, 3, rng).astype(np.float32),
        "shapeEV": np.array([[5000.0], [3000.0], [1000.0]], dtype=np.float32),  # std devs in micrometres
        "texMU": rng.uniform(30, 220, size=(3 * v, 1)).astype(np.float32),  # 0-255
        "texPC": orthonormal(3 * v, 2, rng).astype(np.float32),
        "texEV": np.array([[40.0], [20.0]], dtype=np.float32),
        "tl": (tl + 1).astype(np.float64),  # 1-based, stored as doubles
        "segbin": np.zeros((v, 4), dtype=np.uint8),
    }
    if drop:
        del fields[drop]
    scipy.io.savemat(path, fields)
    return {**fields, "vertices": vertices, "triangles": triangles}


@pytest.mark.parametrize("winding", ["bfm", "counter_clockwise"])
def test_bfm2009(tmp_path, winding):
    path = tmp_path / "01_MorphableModel.mat"
    written = write_bfm2009(path, winding)
    for model in (load_model(path, format="bfm2009"), load_model(path)):  # by name and by file name
        assert model.name == "bfm2009-01_MorphableModel"
        check_common(model, written["vertices"])
        np.testing.assert_allclose(model.identity_basis,
                                   as_components(written["shapePC"], written["shapeEV"] / 1000), atol=1e-4)
        np.testing.assert_array_equal(model.triangles, written["triangles"])
        check_mask_outward(model)
        assert model.expression_kind == "pca" and model.expression_basis.shape == (0, 20, 3)
        np.testing.assert_allclose(model.albedo_mean, as_vertices(written["texMU"]) / 255, atol=1e-6)
        assert 0 <= model.albedo_mean.min() and model.albedo_mean.max() <= 1
        np.testing.assert_allclose(model.albedo_basis, as_components(written["texPC"], written["texEV"] / 255),
                                   atol=1e-6)
        assert model.landmarks_68 is None


@pytest.mark.parametrize("field", ["shapeEV", "tl", "texMU"])
def test_bfm2009_missing_variable(tmp_path, field):
    path = tmp_path / "01_MorphableModel.mat"
    write_bfm2009(path, drop=field)
    with pytest.raises(UserError, match=rf"01_MorphableModel\.mat: missing variable '{field}'"):
        load_model(path, format="bfm2009")


def test_bfm2009_given_an_lsfm_file_says_so(tmp_path):
    path = tmp_path / "model.mat"
    write_lsfm(path)
    with pytest.raises(UserError, match="missing variable 'shapeMU'.*pass format 'lsfm'"):
        load_model(path, format="bfm2009")


def test_mat_suffix_alone_is_ambiguous(tmp_path):
    path = tmp_path / "model.mat"
    write_lsfm(path)
    with pytest.raises(UserError, match="cannot tell the 3DMM format"):
        load_model(path)


# ---------------------------------------------------------------------------------------- bfm2017

def write_bfm2017(path, with_colour: bool = True, with_expression: bool = True, drop: str | None = None) -> dict:
    rng = np.random.default_rng(RNG_SEED + 1)
    vertices, triangles = face_mask(offset=(-5.0, 12.0, 40.0))
    v = len(vertices)
    data = {
        "shape/model/mean": vertices.reshape(-1).astype(np.float32),  # millimetres
        "shape/model/pcaBasis": orthonormal(3 * v, 3, rng).astype(np.float32),
        "shape/model/pcaVariance": np.array([25.0, 9.0, 1.0], dtype=np.float32),
        "shape/model/noiseVariance": np.array(0.0, dtype=np.float32),
        "shape/representer/points": vertices.T.astype(np.float32),
        "shape/representer/cells": triangles.T.astype(np.int32),
    }
    if with_colour:
        data.update({"color/model/mean": rng.uniform(0.2, 0.8, 3 * v).astype(np.float32),
                     "color/model/pcaBasis": orthonormal(3 * v, 2, rng).astype(np.float32),
                     "color/model/pcaVariance": np.array([0.01, 0.0025], dtype=np.float32)})
    if with_expression:
        data.update({"expression/model/mean": rng.normal(0, 0.5, 3 * v).astype(np.float32),
                     "expression/model/pcaBasis": orthonormal(3 * v, 2, rng).astype(np.float32),
                     "expression/model/pcaVariance": np.array([4.0, 1.0], dtype=np.float32)})
    if drop:
        del data[drop]
    with h5py.File(path, "w") as handle:
        for key, value in data.items():
            handle.create_dataset(key, data=value)
    return {**data, "vertices": vertices, "triangles": triangles}


def test_bfm2017(tmp_path):
    path = tmp_path / "model2017-1_bfm_nomouth.h5"
    w = write_bfm2017(path)
    for model in (load_model(path, format="bfm2017"), load_model(path)):
        assert model.name == "bfm2017-model2017-1_bfm_nomouth"
        check_common(model, w["vertices"] + as_vertices(w["expression/model/mean"]))  # plus the mean expression
        np.testing.assert_allclose(model.identity_basis, as_components(w["shape/model/pcaBasis"], [5, 3, 1]), atol=1e-5)
        assert model.expression_kind == "pca"
        np.testing.assert_allclose(model.expression_basis, as_components(w["expression/model/pcaBasis"], [2, 1]),
                                   atol=1e-5)
        np.testing.assert_array_equal(model.triangles, w["triangles"])
        check_mask_outward(model)
        np.testing.assert_allclose(model.albedo_mean, as_vertices(w["color/model/mean"]), atol=1e-6)
        assert 0 <= model.albedo_mean.min() and model.albedo_mean.max() <= 1
        np.testing.assert_allclose(model.albedo_basis, as_components(w["color/model/pcaBasis"], [0.1, 0.05]), atol=1e-6)


def test_bfm2017_shape_only(tmp_path):
    path = tmp_path / "shape_only.h5"
    w = write_bfm2017(path, with_colour=False, with_expression=False)
    model = load_model(path, format="bfm2017")
    check_common(model, w["vertices"])
    assert model.albedo_mean is None and model.expression_basis.shape == (0, 20, 3)


@pytest.mark.parametrize("field", ["shape/model/pcaVariance", "shape/representer/cells", "expression/model/pcaBasis"])
def test_bfm2017_missing_dataset(tmp_path, field):
    path = tmp_path / "model2017-1_bfm_nomouth.h5"
    write_bfm2017(path, drop=field)
    with pytest.raises(UserError, match=rf"model2017-1_bfm_nomouth\.h5: missing dataset '{field}'"):
        load_model(path, format="bfm2017")


# ------------------------------------------------------------------------------------------ flame

@contextlib.contextmanager
def fake_chumpy():
    """A stand-in 'chumpy' package in sys.modules, so pickles really reference chumpy.ch.Ch; removed after."""

    class Ch:
        def __init__(self, x):  # the state real chumpy pickles: __dict__ less _parents and _cache
            self.x = np.asarray(x, dtype=np.float64)
            self._dirty_vars = {"x"}
            self._itr = None
            self._depends_on_deps = {}
            self._make_dense = False
            self._make_sparse = False

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    package, module = types.ModuleType("chumpy"), types.ModuleType("chumpy.ch")
    module.Ch, package.ch = Ch, module
    previous = {name: sys.modules.get(name, ABSENT) for name in ("chumpy", "chumpy.ch")}
    sys.modules["chumpy"], sys.modules["chumpy.ch"] = package, module
    try:
        yield Ch
    finally:
        for name, value in previous.items():
            if value is ABSENT:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = value


def write_flame(path, drop: str | None = None, inward: bool = True, protocol: int = 2) -> dict:
    rng = np.random.default_rng(RNG_SEED + 2)
    vertices, triangles = head_ellipsoid()
    v = len(vertices)
    shapedirs = rng.normal(0, 1e-3, size=(v, 3, 400))  # metres, 300 identity + 100 expression
    with fake_chumpy() as Ch:
        content = {
            "v_template": vertices,
            "shapedirs": Ch(shapedirs),
            "posedirs": Ch(rng.normal(0, 1e-4, size=(v, 3, 36))),
            "f": (triangles[:, [0, 2, 1]] if inward else triangles).astype(np.uint32),
            "J_regressor": scipy.sparse.csc_matrix(np.eye(5, v)),
            "weights": rng.uniform(size=(v, 5)),
            "kintree_table": np.array([[4294967295, 0, 1, 1, 1], [0, 1, 2, 3, 4]], dtype=np.int64),
            "bs_style": "lbs",
            "bs_type": "lrotmin",
        }
        if drop:
            del content[drop]
        data = pickle.dumps(content, protocol=protocol)  # 2: FLAME's Python 2 files
        if protocol == 2:  # and numpy 1's module names, as in the released files
            data = data.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
        path.write_bytes(data)
    assert b"chumpy.ch" in path.read_bytes()
    return {"vertices": vertices, "triangles": triangles, "shapedirs": shapedirs}


@pytest.fixture
def no_chumpy(monkeypatch):
    """Reading must work with chumpy not importable (whether or not it is installed)."""
    monkeypatch.setitem(sys.modules, "chumpy", None)  # `import chumpy` now raises ImportError
    with pytest.raises(ImportError):
        import chumpy  # noqa: F401


@pytest.mark.parametrize("protocol", [2, 0, 5])
def test_flame(tmp_path, no_chumpy, protocol):
    path = tmp_path / "generic_model.pkl"
    w = write_flame(path, protocol=protocol)
    for model in (load_model(path, format="flame"), load_model(path)):
        assert model.name == "flame-generic_model"
        check_common(model, w["vertices"] * 1000)
        assert 150 < np.ptp(model.mean_shape, axis=0).max() < 250  # millimetres
        components = np.moveaxis(w["shapedirs"], 2, 0) * 1000
        assert model.identity_basis.shape == (300, 20, 3) and model.expression_basis.shape == (100, 20, 3)
        np.testing.assert_allclose(model.identity_basis, components[:300], atol=1e-5)
        np.testing.assert_allclose(model.expression_basis, components[300:], atol=1e-5)
        assert model.expression_kind == "pca" and model.albedo_mean is None and model.landmarks_68 is None
        # the file's winding was inward: the reader flips it so every triangle of the closed head faces out
        np.testing.assert_array_equal(model.triangles, w["triangles"])
        assert (outward_scores(model.mean_shape.astype(np.float64), model.triangles) > 0).all()


def test_flame_missing_key(tmp_path, no_chumpy):
    path = tmp_path / "generic_model.pkl"
    write_flame(path, drop="shapedirs")
    with pytest.raises(UserError, match=r"generic_model\.pkl: missing key 'shapedirs'"):
        load_model(path, format="flame")


class _Evil:
    def __init__(self, function, argument):
        self.function, self.argument = function, argument

    def __reduce__(self):
        return self.function, (self.argument,)


@pytest.mark.parametrize("function", ["system", "eval"])
def test_flame_refuses_foreign_globals(tmp_path, function):
    marker = tmp_path / "pwned"
    call = os.system if function == "system" else eval
    argument = f"touch {marker}" if function == "system" else f"open({str(marker)!r}, 'w')"
    path = tmp_path / "generic_model.pkl"
    path.write_bytes(pickle.dumps({"v_template": _Evil(call, argument)}, protocol=2))
    with pytest.raises(UserError, match=r"generic_model\.pkl: refusing to unpickle '(posix|nt|os|builtins)\."):
        load_model(path, format="flame")
    assert not marker.exists()


def test_flame_refuses_binary_codecs(tmp_path):
    path = tmp_path / "generic_model.pkl"
    # {"v_template": _codecs.encode("x", "zlib_codec")}: only text encodings are let through
    path.write_bytes(b"\x80\x02}q\x00X\n\x00\x00\x00v_templateq\x01c_codecs\nencode\nq\x02X\x01\x00\x00\x00x"
                     b"X\n\x00\x00\x00zlib_codec\x86R\x73.")
    with pytest.raises(UserError, match="refusing _codecs.encode with encoding 'zlib_codec'"):
        load_model(path, format="flame")


def test_flame_damaged_pickle(tmp_path):
    path = tmp_path / "generic_model.pkl"
    path.write_bytes(b"\x80\x02}q\x00(X")
    with pytest.raises(UserError, match="not a readable FLAME pickle"):
        load_model(path, format="flame")


# ------------------------------------------------------------------------------------------- lsfm

def write_lsfm(path, mean_layout: str = "row", components_layout: str = "K x 3V", drop: str | None = None,
               v73: bool = False) -> dict:
    rng = np.random.default_rng(RNG_SEED + 3)
    vertices, triangles = face_mask(offset=(3.0, -7.0, 55.0))
    v = len(vertices)
    columns = orthonormal(3 * v, 3, rng)
    fields = {
        "mean": vertices.reshape(1, -1) if mean_layout == "row" else vertices,  # millimetres
        "components": columns.T if components_layout == "K x 3V" else columns,
        "eigenvalues": np.array([[16.0, 4.0, 0.25]]),  # variances
        "trilist": triangles.astype(np.int32),  # 0-based
    }
    if drop:
        del fields[drop]
    if v73:  # MATLAB v7.3 is HDF5, each variable stored transposed (column-major)
        with h5py.File(path, "w") as handle:
            for key, value in fields.items():
                handle.create_dataset(key, data=np.asarray(value).T)
    else:
        scipy.io.savemat(path, fields)
    return {"vertices": vertices, "triangles": triangles, "columns": columns}


@pytest.mark.parametrize("mean_layout,components_layout,v73", [
    ("row", "K x 3V", False), ("V x 3", "3V x K", False), ("row", "K x 3V", True)])
def test_lsfm(tmp_path, mean_layout, components_layout, v73):
    path = tmp_path / "lsfm_all.mat"
    w = write_lsfm(path, mean_layout, components_layout, v73=v73)
    for model in (load_model(path, format="lsfm"), load_model(path)):
        assert model.name == "lsfm-lsfm_all"
        check_common(model, w["vertices"])
        np.testing.assert_allclose(model.identity_basis, as_components(w["columns"], [4, 2, 0.5]), atol=1e-5)
        np.testing.assert_array_equal(model.triangles, w["triangles"])
        check_mask_outward(model)
        assert model.expression_kind == "pca" and model.expression_basis.shape == (0, 20, 3)
        assert model.albedo_mean is None


def test_lsfm_missing_variable(tmp_path):
    path = tmp_path / "lsfm_all.mat"
    write_lsfm(path, drop="eigenvalues")
    with pytest.raises(UserError, match=r"lsfm_all\.mat: missing variable 'eigenvalues'"):
        load_model(path, format="lsfm")


def test_lsfm_not_a_mat_file(tmp_path):
    path = tmp_path / "lsfm_all.mat"
    path.write_text("not matlab")
    with pytest.raises(UserError, match=r"lsfm_all\.mat: not a MATLAB \.mat file"):
        load_model(path, format="lsfm")


# -------------------------------------------------------------------------------------------- eos

class EosWriter:
    """Writes the layout documented in generators/morphable/formats/eos.py (eos save_model, cereal binary)."""

    def __init__(self, version: int, portable: bool = False):
        self.out = bytearray(b"\x01" if portable else b"")
        self.version = version
        self.out += struct.pack("<I", version)

    def eigen(self, matrix):
        matrix = np.asarray(matrix, dtype=np.float32)
        matrix = matrix.reshape(-1, 1) if matrix.ndim == 1 else matrix
        self.out += struct.pack("<ii", *matrix.shape) + matrix.astype("<f4").tobytes(order="F")

    def triangles(self, triangles):
        self.out += struct.pack("<Q", len(triangles)) + np.asarray(triangles, dtype="<i4").tobytes()

    def string(self, text):
        raw = text.encode()
        self.out += struct.pack("<Q", len(raw)) + raw

    def pca(self, mean, basis, eigenvalues, triangles):
        self.eigen(mean)
        self.eigen(basis)
        self.eigen(eigenvalues)
        self.triangles(triangles)

    def optional(self, present: bool):
        self.out += struct.pack("<?", not present)  # cereal writes "nullopt"


def write_eos(path, version: int = 4, expression: str | None = "pca", colour: bool = True, unit: float = 1.0,
              portable: bool = False, landmarks: dict | None = None, uvs: bool = True) -> dict:
    rng = np.random.default_rng(RNG_SEED + 4)
    vertices, triangles = face_mask(offset=(0.0, 30.0, -20.0))
    v = len(vertices)
    w = {"vertices": vertices, "triangles": triangles, "shape_basis": orthonormal(3 * v, 3, rng)}
    writer = EosWriter(version, portable)
    writer.pca(vertices.reshape(-1) * unit, w["shape_basis"], np.array([36.0, 4.0, 1.0]) * unit**2, triangles)
    if colour:
        w["colour_mean"] = rng.uniform(0.1, 0.9, 3 * v)
        w["colour_basis"] = orthonormal(3 * v, 2, rng)
        writer.pca(w["colour_mean"], w["colour_basis"], np.array([0.04, 0.01]), triangles)
    else:
        writer.pca(np.zeros(0), np.zeros((0, 0)), np.zeros(0), [])
    if version >= 2:
        writer.optional(expression is not None)
        if expression == "pca":
            w["expression_mean"] = rng.normal(0, 0.3, 3 * v)
            w["expression_basis"] = orthonormal(3 * v, 2, rng)
            writer.out += struct.pack("<i", 0)
            writer.pca(w["expression_mean"] * unit, w["expression_basis"], np.array([9.0, 1.0]) * unit**2, triangles)
        elif expression == "blendshapes":
            w["blendshapes"] = {"jaw_open": rng.normal(0, 2, 3 * v), "smile": rng.normal(0, 2, 3 * v)}
            writer.out += struct.pack("<i", 1) + struct.pack("<Q", 2)
            for name, deformation in w["blendshapes"].items():
                writer.string(name)
                writer.eigen(deformation * unit)
    if version >= 3:
        writer.optional(landmarks is not None)
        if landmarks is not None:
            writer.out += struct.pack("<Q", len(landmarks))
            for key, vertex in landmarks.items():
                writer.string(key)
                writer.out += struct.pack("<i", vertex)
    w["uvs"] = rng.uniform(0, 1, (v, 2)) if uvs else np.zeros((0, 2))
    writer.out += struct.pack("<Q", len(w["uvs"])) + w["uvs"].astype("<f8").tobytes()
    if version >= 4:
        writer.triangles([])
    path.write_bytes(bytes(writer.out))
    return w


def test_eos_version4_pca_expression(tmp_path):
    path = tmp_path / "sfm_3448.bin"
    w = write_eos(path, landmarks={"1": 3, "31": 7, "68": 19})
    for model in (load_model(path, format="eos"), load_model(path)):
        assert model.name == "eos-sfm_3448"
        check_common(model, w["vertices"] + as_vertices(w["expression_mean"]))
        np.testing.assert_allclose(model.identity_basis, as_components(w["shape_basis"], [6, 2, 1]), atol=1e-5)
        assert model.expression_kind == "pca"
        np.testing.assert_allclose(model.expression_basis, as_components(w["expression_basis"], [3, 1]), atol=1e-5)
        np.testing.assert_array_equal(model.triangles, w["triangles"])
        check_mask_outward(model)
        np.testing.assert_allclose(model.albedo_mean, as_vertices(w["colour_mean"]), atol=1e-6)
        assert 0 <= model.albedo_mean.min() and model.albedo_mean.max() <= 1
        np.testing.assert_allclose(model.albedo_basis, as_components(w["colour_basis"], [0.2, 0.1]), atol=1e-6)
        expected_landmarks = -np.ones(68, dtype=np.int32)
        expected_landmarks[[0, 30, 67]] = [3, 7, 19]
        np.testing.assert_array_equal(model.landmarks_68, expected_landmarks)
        np.testing.assert_allclose(model.uvs, w["uvs"], atol=1e-6)


def test_eos_blendshapes_portable_archive(tmp_path):
    path = tmp_path / "bfm_blendshapes.bin"
    w = write_eos(path, version=3, expression="blendshapes", portable=True, landmarks={"left.eye": 2})
    model = load_model(path, format="eos")
    check_common(model, w["vertices"])
    assert model.expression_kind == "blendshapes" and model.expression_names == ["jaw_open", "smile"]
    np.testing.assert_allclose(model.expression_basis, np.stack([as_vertices(d) for d in w["blendshapes"].values()]),
                               atol=1e-5)
    assert model.landmarks_68 is None  # not ibug ids


def test_eos_version1_shape_only_in_micrometres(tmp_path):
    path = tmp_path / "bfm2009.bin"  # eos's BFM 2009 converter keeps BFM's micrometres
    w = write_eos(path, version=1, expression=None, colour=False, unit=1000.0, uvs=False)
    model = load_model(path, format="eos")
    check_common(model, w["vertices"])
    np.testing.assert_allclose(model.identity_basis, as_components(w["shape_basis"], [6, 2, 1]), atol=1e-4)
    assert model.albedo_mean is None and model.uvs is None and model.expression_basis.shape == (0, 20, 3)


def test_eos_truncated_and_foreign_files(tmp_path):
    path = tmp_path / "sfm_3448.bin"
    write_eos(path)
    data = path.read_bytes()
    path.write_bytes(data[:400])
    with pytest.raises(UserError, match=r"sfm_3448\.bin: file ends while reading 'shape_model\.orthonormal_pca_basis'"):
        load_model(path, format="eos")
    path.write_bytes(data + b"\x00" * 8)
    with pytest.raises(UserError, match="bytes are left after the model"):
        load_model(path, format="eos")
    path.write_bytes(b"\x07\x00\x00\x00" + data[4:])
    with pytest.raises(UserError, match="not an eos morphable model of versions 1-4"):
        load_model(path, format="eos")
